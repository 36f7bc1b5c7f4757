//! Golden tests: a small hand-written history whose funnel, lifecycle and rep numbers are
//! computed by hand below.

mod projections_support;

use chrono::NaiveDate;
use pipeline_ledger::domain::{
    Correction, CustomerHistory, CustomerId, LeadSource, LedgerEvent, LostReason, Stage,
};
use pipeline_ledger::projections::activity::{RepsParams, reps};
use pipeline_ledger::projections::conversion::{FunnelParams, Ratio, StageFunnel, funnel};
use pipeline_ledger::projections::lifecycle::customer_report;
use pipeline_ledger::projections::meta::{ReportAt, meta_for};
use pipeline_ledger::projections::model::LifecycleState;
use pipeline_ledger::projections::stalled::pipeline;
use pipeline_ledger::projections::time::Period;
use pipeline_ledger::projections::{Policy, ReadModel, replay};
use projections_support::*;
use std::collections::BTreeMap;

/// Every event passes the domain rules, in order.
fn assert_valid(events: &[LedgerEvent]) {
    let mut histories: BTreeMap<CustomerId, CustomerHistory> = BTreeMap::new();
    for e in events {
        let h = histories
            .entry(e.customer_id.clone())
            .or_insert_with(|| CustomerHistory::new(e.customer_id.clone()));
        let proposed = proposed_of(e);
        h.decide(&proposed, e.recorded_at)
            .unwrap_or_else(|err| panic!("position {}: {err}", e.position));
        h.record(e.event_id, e.payload.clone());
    }
}

/// acme: a clean run to a win, reassigned alice → bob before the contract, one follow-up.
/// beta: skips first visit, moves back to it, is lost there, reopened, skips demo.
/// gamma: its first visit is retracted, then it is lost at lead.
/// delta: a lead that occurred on day 50 but was recorded on day 70.
fn history() -> Vec<LedgerEvent> {
    let mut log = LogBuilder::default();
    log.push("acme", day(0), lead("a1", "alice", LeadSource::Referral));
    log.push("beta", day(1), lead("b1", "carol", LeadSource::Web));
    log.push("gamma", day(2), lead("g1", "carol", LeadSource::Web));
    log.push("acme", day(3), step(Stage::FirstVisit, "a1", "alice"));
    let visit = log.push("gamma", day(4), step(Stage::FirstVisit, "g1", "carol"));
    log.push("beta", day(5), step(Stage::Demo, "b1", "carol"));
    log.push(
        "gamma",
        day(6),
        correct("carol", visit, Correction::Retract),
    );
    log.push("beta", day(8), step(Stage::FirstVisit, "b1", "carol"));
    log.push(
        "gamma",
        day(9),
        lost("g1", "carol", Stage::Lead, LostReason::Timing),
    );
    log.push("acme", day(10), step(Stage::Demo, "a1", "bob"));
    log.push("acme", day(12), reassign("mgr", "alice", "bob"));
    log.push(
        "beta",
        day(15),
        lost("b1", "carol", Stage::FirstVisit, LostReason::Price),
    );
    log.push("acme", day(20), step(Stage::Negotiation, "a1", "bob"));
    log.push("beta", day(25), reopened("b1", "carol"));
    log.push("beta", day(28), step(Stage::Negotiation, "b1", "carol"));
    log.push("acme", day(30), contract("a1", "bob", 5_000_000));
    let due = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    log.push("acme", day(40), follow_up("a1", "bob", Some(due)));
    log.push_at(
        "delta",
        day(50),
        day(70),
        lead("d1", "alice", LeadSource::Referral),
    );
    assert_valid(&log.events);
    log.events
}

fn model() -> ReadModel {
    replay(&Policy::default(), &history())
}

fn at_day_65() -> ReportAt {
    ReportAt {
        now: Some(day(65)),
        ..ReportAt::default()
    }
}

fn stage(stages: &[StageFunnel], s: Stage) -> &StageFunnel {
    stages.iter().find(|x| x.stage == s).unwrap()
}

/// A stage's next-step and moved-forward conversions as (count, of); `None` where the rate has
/// no meaning (the last stage).
type Conversions = (Option<(u64, u64)>, Option<(u64, u64)>);

#[allow(clippy::too_many_arguments)]
fn check(
    f: &StageFunnel,
    entered: u64,
    advanced: u64,
    lost: u64,
    back: u64,
    still: u64,
    (next, forward): Conversions,
    cumulative: (u64, u64),
) {
    assert_eq!(
        (f.entered, f.advanced, f.lost_here, f.moved_back, f.still_in),
        (entered, advanced, lost, back, still),
        "{:?}",
        f.stage
    );
    let ratio = |r: Option<(u64, u64)>| r.map(|(count, of)| Ratio::new(count, of));
    assert_eq!(f.next_step, ratio(next), "next step, {:?}", f.stage);
    assert_eq!(
        f.moved_forward,
        ratio(forward),
        "moved forward, {:?}",
        f.stage
    );
    assert_eq!(
        f.cumulative,
        Ratio::new(cumulative.0, cumulative.1),
        "{:?}",
        f.stage
    );
}

#[test]
fn funnel_by_hand() {
    let policy = Policy::default();
    let m = model();
    let r = funnel(
        &m,
        &policy,
        meta_for(&m, &at_day_65()),
        FunnelParams::default(),
    );
    let c = &r.total.cohort;
    assert_eq!((c.deals, c.won, c.lost, c.open), (4, 1, 1, 2));
    assert_eq!(c.win_rate, Ratio::new(1, 2));
    assert_eq!(c.win_rate.rate, Some(0.5));
    assert_eq!(c.open_share, Ratio::new(2, 4));
    // Lead: a1 and b1 advanced, g1 lost there, d1 still in it. Only a1 went straight to the
    // next stage (first visit); b1 skipped to demo, which counts as moved forward only.
    let lead = (Some((1, 4)), Some((2, 4)));
    check(stage(&c.stages, Stage::Lead), 4, 2, 1, 0, 1, lead, (4, 4));
    // First visit: a1, and b1 whose latest stay (after the reopen) advanced; b1 entered it
    // three times in all: back from demo, and reopened. b1 left it for negotiation, skipping
    // demo: moved forward, not the next step.
    let fv = stage(&c.stages, Stage::FirstVisit);
    check(fv, 2, 2, 0, 0, 0, (Some((1, 2)), Some((2, 2))), (2, 4));
    assert_eq!((fv.entries, fv.re_entries, fv.skipped), (3, 2, 0));
    // Demo: a1 advanced, b1 moved back (so only a1 converted).
    let demo = (Some((1, 2)), Some((1, 2)));
    check(stage(&c.stages, Stage::Demo), 2, 1, 0, 1, 0, demo, (2, 4));
    check(
        stage(&c.stages, Stage::Negotiation),
        2,
        1,
        0,
        0,
        1,
        (Some((1, 2)), Some((1, 2))),
        (2, 4),
    );
    // Won is the last stage: no next step to take (null, not 0%).
    check(
        stage(&c.stages, Stage::Won),
        1,
        0,
        0,
        0,
        1,
        (None, None),
        (1, 4),
    );
    // Days from first entry to first move forward: lead a1 3, b1 4; first visit a1 7, b1 20.
    let lead_days = &stage(&c.stages, Stage::Lead).days_to_next;
    assert_eq!(
        (lead_days.count, lead_days.median, lead_days.p90),
        (2, Some(3.5), Some(4.0))
    );
    let fv_days = &fv.days_to_next;
    assert_eq!((fv_days.median, fv_days.p90), (Some(13.5), Some(20.0)));
    // Cumulative time in first visit for b1: 7 days (8→15) + 3 days (25→28); a1: 7 days.
    assert_eq!(fv.cumulative_days.median, Some(8.5));
    assert_eq!(c.lost_by_stage, BTreeMap::from([("lead".to_string(), 1)]));
    assert_eq!(
        c.lost_by_reason,
        BTreeMap::from([("timing".to_string(), 1)])
    );
    let moves: BTreeMap<(String, String), u64> = c
        .transitions
        .iter()
        .map(|t| ((t.from.clone(), t.to.clone()), t.count))
        .collect();
    let expected: BTreeMap<(String, String), u64> = [
        ("start", "lead", 4),
        ("lead", "first_visit", 1),
        ("lead", "demo", 1),
        ("lead", "lost", 1),
        ("first_visit", "demo", 1),
        ("first_visit", "negotiation", 1),
        ("first_visit", "lost", 1),
        ("demo", "first_visit", 1),
        ("demo", "negotiation", 1),
        ("negotiation", "won", 1),
        ("lost", "first_visit", 1),
    ]
    .into_iter()
    .map(|(a, b, n)| ((a.to_string(), b.to_string()), n))
    .collect();
    assert_eq!(moves, expected);
}

#[test]
fn period_view_counts_what_happened_inside_the_window() {
    let policy = Policy::default();
    let m = model();
    let params = FunnelParams {
        from: Some(day(0)),
        to: Some(day(14)),
        ..FunnelParams::default()
    };
    let r = funnel(&m, &policy, meta_for(&m, &ReportAt::default()), params);
    let p = &r.total.period;
    // a1, b1 and g1 were sourced inside the window; only g1's loss (day 9) falls inside it.
    assert_eq!((p.new_deals, p.won, p.lost, p.reopened), (3, 0, 1, 0));
    assert_eq!(p.win_rate, Ratio::new(0, 1));
    // The cohort view keeps the same three deals and follows them to today.
    assert_eq!(r.total.cohort.deals, 3);
    assert_eq!(r.total.cohort.won, 1);
}

#[test]
fn lifecycle_by_hand() {
    let m = model();
    let meta = meta_for(&m, &at_day_65());
    let acme = customer_report(&m, meta.clone(), "acme").unwrap();
    assert_eq!(acme.customer.state, LifecycleState::Retained);
    assert_eq!(acme.state_now, LifecycleState::Retained);
    assert_eq!(acme.customer.owner_rep, "bob");
    assert_eq!(acme.customer.current_stage, Some(Stage::Won));
    assert_eq!(
        acme.customer.next_followup_due,
        NaiveDate::from_ymd_opt(2024, 3, 1)
    );
    assert_eq!(acme.customer.dormant_after, Some(day(40 + 180)));
    assert_eq!(acme.values[0].contracts_minor, 5_000_000);
    assert_eq!(acme.stage_history.len(), 5);

    let beta = customer_report(&m, meta.clone(), "beta").unwrap();
    assert_eq!(beta.customer.state, LifecycleState::Negotiating);
    assert_eq!(beta.customer.current_stage_since, Some(day(28)));
    assert_eq!(beta.days_in_current_stage, Some(37.0));
    assert_eq!(beta.stage_history.len(), 5);

    let gamma = customer_report(&m, meta.clone(), "gamma").unwrap();
    assert_eq!(gamma.customer.state, LifecycleState::Lost);
    // The retracted visit is gone; the correction itself is not an event of the history.
    assert_eq!(gamma.customer.event_count, 2);
    assert_eq!(gamma.stage_history.len(), 1);

    let delta = customer_report(&m, meta.clone(), "delta").unwrap();
    assert_eq!(delta.customer.state, LifecycleState::Lead);

    // At day 300 acme has had no interaction for 260 days: dormant.
    let late = meta_for(
        &m,
        &ReportAt {
            now: Some(day(300)),
            ..ReportAt::default()
        },
    );
    let acme = customer_report(&m, late, "acme").unwrap();
    assert_eq!(acme.state_now, LifecycleState::Dormant);
}

#[test]
fn reps_by_hand() {
    let m = model();
    let r = reps(
        &m,
        meta_for(&m, &at_day_65()),
        RepsParams {
            period: Period::Quarter,
            rep: None,
        },
    );
    let row = |rep: &str| r.rows.iter().find(|x| x.rep == rep).unwrap();
    assert!(r.rows.iter().all(|x| x.period == "2024-Q1"));
    let alice = row("alice");
    assert_eq!(
        (
            alice.interactions_total,
            alice.customers_touched,
            alice.new_leads
        ),
        (3, 2, 2)
    );
    // The contract was signed after the reassignment: bob owned acme then.
    assert_eq!((alice.deals_won, alice.reassigned_out), (0, 1));
    let bob = row("bob");
    assert_eq!((bob.interactions_total, bob.customers_touched), (4, 1));
    assert_eq!((bob.deals_won, bob.reassigned_in), (1, 1));
    assert_eq!(bob.won_value_minor.get("EUR"), Some(&5_000_000));
    assert_eq!(bob.days_to_close.median, Some(30.0));
    assert_eq!(bob.win_rate, Ratio::new(1, 1));
    // Due 2024-03-01, nothing since, report clock 2024-03-06.
    assert_eq!(bob.overdue_followups, 1);
    let carol = row("carol");
    // beta: lead, demo, visit, lost, reopened, negotiation; gamma: lead, lost (visit retracted).
    assert_eq!((carol.interactions_total, carol.customers_touched), (8, 2));
    assert_eq!((carol.deals_won, carol.deals_lost), (0, 2));
    assert_eq!(carol.win_rate, Ratio::new(0, 2));
    let mgr = row("mgr");
    assert_eq!((mgr.interactions_total, mgr.customers_touched), (1, 0));
}

#[test]
fn bitemporal_replays_by_hand() {
    let policy = Policy::default();
    let events = history();
    // As of day 14: beta's loss (day 15) has not happened; beta sits at first visit.
    let as_of = ReportAt {
        as_of: Some(day(14)),
        ..ReportAt::default()
    };
    let filtered: Vec<_> = events
        .iter()
        .filter(|e| as_of.includes(e))
        .cloned()
        .collect();
    let m = replay(&policy, &filtered);
    let beta = customer_report(&m, meta_for(&m, &as_of), "beta").unwrap();
    assert_eq!(beta.customer.state, LifecycleState::Visited);
    // Delta occurred on day 50 but was recorded on day 70.
    let count = |at: ReportAt| {
        let f: Vec<_> = events.iter().filter(|e| at.includes(e)).cloned().collect();
        replay(&policy, &f).customers.len()
    };
    let t = day(60);
    assert_eq!(
        count(ReportAt {
            as_of: Some(t),
            ..ReportAt::default()
        }),
        4
    );
    assert_eq!(
        count(ReportAt {
            known_at: Some(t),
            ..ReportAt::default()
        }),
        3
    );
}

#[test]
fn pipeline_by_hand() {
    let policy = Policy::default();
    let m = model();
    let r = pipeline(&m, &policy, meta_for(&m, &at_day_65()));
    // Open deals: b1 in negotiation (last activity day 28: 37 days > 14, no progress 37 < 60)
    // and d1 at lead (since day 50: 15 days > 14 without activity, 15 < 30 without progress).
    let ids = |v: &[pipeline_ledger::projections::stalled::StalledDeal]| {
        v.iter().map(|s| s.deal_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&r.stalled_no_activity), vec!["b1", "d1"]);
    assert!(r.stalled_no_progress.is_empty());
    assert_eq!(r.overdue_followups.len(), 1);
    assert_eq!(r.overdue_followups[0].days_overdue, 5);
    assert_eq!(r.customers_by_state.get("retained"), Some(&1));
    assert_eq!(r.deals_by_status.get("open"), Some(&2));
}

#[test]
fn an_amended_contract_counts_with_its_replacement() {
    let mut log = LogBuilder::default();
    log.push("acme", day(0), lead("a1", "alice", LeadSource::Web));
    let signed = log.push("acme", day(5), contract("a1", "alice", 1_000));
    log.push(
        "acme",
        day(6),
        correct(
            "alice",
            signed,
            Correction::Amend {
                replacement: Box::new(contract("a1", "alice", 7_000)),
            },
        ),
    );
    assert_valid(&log.events);
    let m = replay(&Policy::default(), &log.events);
    assert_eq!(m.values[0].contracts_minor, 7_000);
    assert_eq!(m.deals[0].won_value_minor, Some(7_000));
}

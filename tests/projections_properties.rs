//! Property tests of the projections over generated histories valid under the domain rules.

mod projections_support;

use pipeline_ledger::domain::{CustomerId, EventPayload, LedgerEvent, Stage};
use pipeline_ledger::projections::activity::{RepsParams, reps};
use pipeline_ledger::projections::conversion::{FunnelParams, GroupBy, Ratio, funnel};
use pipeline_ledger::projections::lifecycle::customer_report;
use pipeline_ledger::projections::meta::{ReportAt, ReportSource, meta_for};
use pipeline_ledger::projections::model::{CustomerRows, ReadModel};
use pipeline_ledger::projections::time::Period;
use pipeline_ledger::projections::{Policy, Projector, replay};
use pipeline_ledger::query::{CustomerRequest, Queries};
use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::read_models::sqlite::SqliteReadModels;
use pipeline_ledger::runner;
use pipeline_ledger::store::sqlite::SqliteStore;
use projections_support::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn model_of(tables: &BTreeMap<CustomerId, CustomerRows>, p: &Projector) -> ReadModel {
    let mut m = ReadModel {
        position: p.position(),
        log_time: p.log_time(),
        ..ReadModel::default()
    };
    for rows in tables.values() {
        m.extend(rows.clone());
    }
    m.normalize();
    m
}

fn check_ratio(r: &Ratio) {
    assert!(r.count <= r.of, "{r:?}");
    match r.rate {
        Some(x) => {
            assert!((0.0..=1.0).contains(&x), "{r:?}");
            assert!(r.of > 0);
        }
        None => assert_eq!(r.of, 0),
    }
}

fn cuts(events: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|x| x % (events + 1)).collect();
    c.push(events);
    c.sort();
    c.dedup();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Incremental application in arbitrary batches, with restarts (memory lost, customers
    /// reloaded from the log up to the checkpoint) at random points, equals a full replay.
    #[test]
    fn incremental_batches_with_restarts_equal_a_full_replay(
        seed in any::<u64>(),
        customers in 1usize..6,
        steps in 1usize..120,
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..8),
        restarts in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let policy = Policy::default();
        let events = generate(seed, customers, steps);
        let mut tables: BTreeMap<CustomerId, CustomerRows> = BTreeMap::new();
        let mut fold = Projector::new(policy.clone());
        let mut start = 0;
        for (i, end) in cuts(events.len(), &raw_cuts).into_iter().enumerate() {
            if restarts[i % restarts.len()] {
                fold = Projector::resume(policy.clone(), fold.position(), fold.event_id(), fold.log_time());
            }
            for e in &events[start..end] {
                if !fold.is_loaded(&e.customer_id) {
                    let before: Vec<LedgerEvent> = events[..start]
                        .iter()
                        .filter(|x| x.customer_id == e.customer_id)
                        .cloned()
                        .collect();
                    fold.seed(e.customer_id.clone(), before);
                }
                fold.apply(e);
            }
            // A redelivered batch changes nothing.
            for e in &events[start..end] {
                fold.apply(e);
            }
            for (c, rows) in fold.take_changes() {
                tables.insert(c, rows);
            }
            start = end;
        }
        prop_assert_eq!(model_of(&tables, &fold), replay(&policy, &events));
    }

    /// The stage invariant holds for every stage and group; every percentage lies in [0, 1]
    /// with the counts behind it consistent.
    #[test]
    fn funnel_invariants_hold(seed in any::<u64>(), customers in 1usize..8, steps in 1usize..150) {
        let policy = Policy::default();
        let events = generate(seed, customers, steps);
        let model = replay(&policy, &events);
        for by in [None, Some(GroupBy::Source), Some(GroupBy::Rep), Some(GroupBy::Cohort)] {
            let params = FunnelParams { by, ..FunnelParams::default() };
            let r = funnel(&model, &policy, meta_for(&model, &ReportAt::default()), params);
            let mut group_deals = 0;
            for g in std::iter::once(&r.total).chain(&r.groups) {
                let c = &g.cohort;
                prop_assert_eq!(c.won + c.lost + c.open, c.deals);
                check_ratio(&c.win_rate);
                check_ratio(&c.open_share);
                check_ratio(&g.period.win_rate);
                let mut previous_cumulative = c.deals;
                for s in &c.stages {
                    prop_assert_eq!(
                        s.entered,
                        s.advanced + s.lost_here + s.moved_back + s.still_in,
                        "stage {:?} of group {}", s.stage, g.key
                    );
                    prop_assert!(s.entries >= s.entered);
                    prop_assert!(s.entered + s.skipped <= c.deals);
                    check_ratio(&s.cumulative);
                    // The last stage has no next one; every other has both rates, and the
                    // strict one never exceeds "moved forward".
                    prop_assert_eq!(s.next_step.is_none(), s.stage == Stage::Won);
                    prop_assert_eq!(s.moved_forward.is_none(), s.stage == Stage::Won);
                    if let (Some(next), Some(forward)) = (&s.next_step, &s.moved_forward) {
                        check_ratio(next);
                        check_ratio(forward);
                        prop_assert_eq!(next.of, s.entered);
                        prop_assert_eq!(forward.of, s.entered);
                        prop_assert!(next.count <= forward.count);
                        prop_assert!(forward.count <= s.entered);
                    }
                    prop_assert!(g.period.lost_final <= g.period.lost);
                    prop_assert!(s.cumulative.count <= previous_cumulative);
                    previous_cumulative = s.cumulative.count;
                    if s.stage == Stage::Won {
                        prop_assert_eq!(s.entered, c.won);
                        prop_assert_eq!(s.still_in, c.won);
                    }
                }
                let lost_total: u64 = c.lost_by_reason.values().sum();
                prop_assert_eq!(lost_total, c.lost);
                let lost_by_stage: u64 = c.lost_by_stage.values().sum();
                prop_assert_eq!(lost_by_stage, c.lost);
                if by.is_some() && g.key != "all" {
                    group_deals += c.deals;
                }
            }
            if by.is_some() {
                prop_assert_eq!(group_deals, r.total.cohort.deals);
            }
        }
        for period in [Period::Day, Period::Week, Period::Month, Period::Quarter] {
            let r = reps(&model, meta_for(&model, &ReportAt::default()), RepsParams { period, rep: None });
            let total: u64 = r.rows.iter().map(|x| x.interactions_total).sum();
            prop_assert_eq!(total, model.activities.len() as u64);
            for row in &r.rows {
                check_ratio(&row.win_rate);
                prop_assert!(row.customers_touched <= row.interactions_total);
            }
        }
    }

    /// A reassignment never loses a customer's history or the activity credited to reps: the
    /// same history without its reassignments has the same deals, stays and performer credits.
    #[test]
    fn reassignment_keeps_history_and_credit(seed in any::<u64>(), customers in 1usize..5, steps in 1usize..120) {
        let policy = Policy::default();
        let events = generate(seed, customers, steps);
        let without: Vec<LedgerEvent> = events
            .iter()
            .filter(|e| !matches!(e.payload, EventPayload::CustomerReassigned(_)))
            .cloned()
            .collect();
        let with = replay(&policy, &events);
        let base = replay(&policy, &without);
        prop_assert_eq!(&with.stays, &base.stays);
        let strip = |m: &ReadModel| -> Vec<(String, String, String)> {
            m.activities
                .iter()
                .filter(|a| a.event_type != "CustomerReassigned")
                .map(|a| (a.event_id.clone(), a.performer_rep.clone(), a.event_type.clone()))
                .collect()
        };
        prop_assert_eq!(strip(&with), strip(&base));
        let ids = |m: &ReadModel| m.customers.iter().map(|c| (c.customer_id.clone(), c.event_count as usize)).collect::<Vec<_>>();
        let reassignments: usize = with.activities.iter().filter(|a| a.event_type == "CustomerReassigned").count();
        let total_with: usize = ids(&with).iter().map(|x| x.1).sum();
        let total_base: usize = ids(&base).iter().map(|x| x.1).sum();
        prop_assert_eq!(total_with, total_base + reassignments);
        // The owner credited for a contract is the owner at that moment, whoever owns it now.
        for a in with.activities.iter().filter(|a| a.event_type == "ContractSigned") {
            let d = with.deals.iter().find(|d| Some(&d.deal_id) == a.deal_id.as_ref()).unwrap();
            prop_assert_eq!(d.won_owner.as_ref(), Some(&a.owner_rep));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Through the real store and runner: chunks appended and projected by separate runs
    /// (restarts) give the tables a full rebuild gives and an in-memory replay gives; reports
    /// at a position, as of a time and as known at a time equal replays of the filtered events.
    #[test]
    fn runner_rebuild_and_bitemporal_reports_agree_with_replays(
        seed in any::<u64>(),
        customers in 1usize..5,
        steps in 1usize..80,
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..4),
        cut_day in 0i64..200,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger.db");
            let store = Arc::new(SqliteStore::open(&path).unwrap());
            let read_models: Arc<dyn ReadModels> = Arc::new(SqliteReadModels::open(&dir.path().join("rm.db")));
            let policy = Policy::default();
            let events = generate(seed, customers, steps);
            let mut start = 0;
            for end in cuts(events.len(), &raw_cuts) {
                append(&store, &events[start..end]).await;
                start = end;
                let done = runner::project(&*store, &read_models, &policy, false, &mut |_| {}, std::future::ready(())).await.unwrap();
                assert_eq!(done.lag, 0);
            }
            let stored = read_back(&store).await;
            let expected = replay(&policy, &stored);
            let live = read_models.load_live().unwrap().unwrap_or_default();
            if !stored.is_empty() {
                assert_eq!(&live, &expected);
            }
            runner::rebuild(&*store, &read_models, &policy, &mut |_| {}).await.unwrap();
            let rebuilt = read_models.load_live().unwrap().unwrap_or_default();
            assert_eq!(&rebuilt, &live);

            let t = day(cut_day);
            for at in [
                ReportAt { as_of: Some(t), ..ReportAt::default() },
                ReportAt { known_at: Some(t), ..ReportAt::default() },
                ReportAt { at_position: (!stored.is_empty()).then(|| 1 + (cut_day as u64 % stored.len() as u64)), ..ReportAt::default() },
            ] {
                let queries = Queries::new(store.clone(), read_models.clone(), policy.clone());
                let (model, meta) = queries.model(&at).await.unwrap();
                let filtered: Vec<LedgerEvent> = stored.iter().filter(|e| at.includes(e)).cloned().collect();
                assert_eq!(model, replay(&policy, &filtered));
                assert_eq!(meta.source, ReportSource::Replay);
                // One customer's past state, which the query layer replays from that
                // customer's stream alone, equals the customer in the whole replay.
                let at = ReportAt { now: Some(t), ..at };
                let (whole, whole_meta) = queries.model(&at).await.unwrap();
                for c in &whole.customers {
                    let request = CustomerRequest { customer_id: c.customer_id.clone(), at };
                    let report = queries.customer(request).await.unwrap();
                    let expected = customer_report(&whole, whole_meta.clone(), &c.customer_id).unwrap();
                    assert_eq!(serde_json::to_value(report).unwrap(), serde_json::to_value(expected).unwrap());
                }
            }
        });
    }
}

/// The generator produces the situations the properties are about.
#[test]
fn generated_histories_cover_the_interesting_cases() {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let policy = Policy::default();
    let (mut skips, mut backs, mut reopens) = (0, 0, 0);
    for seed in 0..40 {
        let events = generate(seed, 4, 120);
        for e in &events {
            *counts
                .entry(e.payload.event_type().as_str().to_string())
                .or_default() += 1;
        }
        let m = replay(&policy, &events);
        for s in &m.stays {
            if let Some(from) = s.from_stage {
                if policy.rank(s.stage) > policy.rank(from) + 1 {
                    skips += 1;
                }
                if policy.rank(s.stage) < policy.rank(from) {
                    backs += 1;
                }
            }
            if s.entry == pipeline_ledger::projections::model::EntryKind::Reopened {
                reopens += 1;
            }
        }
    }
    for t in [
        "LeadSourced",
        "ContractSigned",
        "DealLost",
        "DealReopened",
        "FollowUpLogged",
        "CustomerReassigned",
        "EventCorrected",
    ] {
        assert!(counts.get(t).copied().unwrap_or(0) > 5, "{t}: {counts:?}");
    }
    assert!(
        skips > 0 && backs > 0 && reopens > 0,
        "{skips} {backs} {reopens}"
    );
}

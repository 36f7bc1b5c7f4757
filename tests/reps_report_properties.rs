//! The rep report is computed two ways: `activity::reps` over a replayed read model, and
//! `aggregates::reps_report` over counters kept incrementally. This property checks that they
//! agree over generated histories cut into random batches.
//!
//! The counters are kept by the in-memory read models (`read_models::memory`, which the
//! read-model contract suite checks the SQLite ones against), written batch by batch as the
//! runner writes them, and rebuilt at the end; the inputs of `reps_report` are read through the
//! port (`reps_inputs_live`).

mod projections_support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pipeline_ledger::demo::{DemoConfig, generate_customers};
use pipeline_ledger::domain::LedgerEvent;
use pipeline_ledger::projections::activity::{RepsParams, reps};
use pipeline_ledger::projections::aggregates::{PERIODS, RepsInputs, reps_report};
use pipeline_ledger::projections::meta::{ReportAt, meta_for};
use pipeline_ledger::projections::time::Period;
use pipeline_ledger::projections::{Policy, Projector, replay};
use pipeline_ledger::read_models::memory::MemoryReadModels;
use pipeline_ledger::read_models::{Checkpoint, ReadModels, Tables};
use projections_support::*;
use proptest::prelude::*;

/// The rep report's inputs as the read models give them, at report clock `clock`.
fn inputs(
    read_models: &dyn ReadModels,
    period: Period,
    rep: Option<&str>,
    clock: Option<DateTime<Utc>>,
) -> RepsInputs {
    read_models
        .reps_inputs_live(period, rep, &|_| clock)
        .unwrap()
        .expect("projected")
        .1
}

/// Given the log up to a batch's end and the counters kept to it: the report from the counters
/// equals the report from a full replay, for every period, for all reps and for one, at the log's
/// clock and at another.
fn check_reports(
    policy: &Policy,
    log: &[LedgerEvent],
    kept: &dyn ReadModels,
    clock_days: i64,
    label: &str,
) -> Result<(), TestCaseError> {
    let model = replay(policy, log);
    let one_rep = model.activities.first().map(|a| a.owner_rep.clone());
    let clocks = [None, model.log_time.map(|t| t + Duration::days(clock_days))];
    for now in clocks {
        let at = ReportAt {
            now,
            ..ReportAt::default()
        };
        let meta = meta_for(&model, &at);
        for period in PERIODS {
            for rep in [None, one_rep.clone()] {
                let params = RepsParams { period, rep };
                let inputs = inputs(kept, period, params.rep.as_deref(), meta.evaluated_at);
                let kept_report = reps_report(meta.clone(), params.clone(), inputs);
                let full = reps(&model, meta.clone(), params.clone());
                prop_assert_eq!(
                    &kept_report,
                    &full,
                    "{} at {:?}: {:?} over {} events",
                    label,
                    now,
                    params,
                    log.len()
                );
            }
        }
    }
    Ok(())
}

/// Cut points: the batches' ends, increasing, the last one the whole log.
fn cuts(events: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|x| x % (events + 1)).collect();
    c.push(events);
    c.sort();
    c.dedup();
    c
}

/// Projects the log in batches ending at `cuts`, checking the reports after each batch, and
/// after a rebuild at the end.
fn check_batches(
    events: &[LedgerEvent],
    raw_cuts: &[usize],
    clock_days: i64,
) -> Result<(), TestCaseError> {
    let policy = Policy::default();
    let mut fold = Projector::new(policy.clone());
    let kept = MemoryReadModels::new();
    let mut start = 0;
    for end in cuts(events.len(), raw_cuts) {
        let expected = fold.position();
        for e in &events[start..end] {
            fold.apply(e);
        }
        start = end;
        let reached = Checkpoint {
            position: fold.position(),
            event_id: fold.event_id(),
            log_time: fold.log_time(),
        };
        if reached.position.is_none() {
            continue; // nothing projected yet
        }
        let changes = fold.take_changes();
        assert!(
            kept.write_batch(Tables::Live, expected, &changes, reached)
                .unwrap()
        );
        check_reports(&policy, &events[..end], &kept, clock_days, "incremental")?;
    }
    if events.is_empty() {
        return Ok(());
    }
    let rebuilt = MemoryReadModels::new();
    rebuild_read_models(&rebuilt, &policy, events, usize::MAX);
    for period in PERIODS {
        let clock = |m: &MemoryReadModels| inputs(m, period, None, None);
        let (mut a, mut b) = (clock(&rebuilt), clock(&kept));
        for i in [&mut a, &mut b] {
            i.counters.sort();
            i.close_spreads
                .sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        }
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{:?}", period);
    }
    check_reports(&policy, events, &rebuilt, clock_days, "rebuilt")
}

/// The demo's customers `range` (seeded), in the order the ledger records them.
fn demo_log(seed: u64, range: std::ops::Range<usize>) -> Vec<LedgerEvent> {
    let until = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let config = DemoConfig::new(range.end, seed, until);
    let mut proposed = generate_customers(&config, range);
    proposed.sort_by_key(|e| e.recorded_at);
    let mut log = LogBuilder::default();
    for p in proposed {
        let recorded = p.recorded_at.expect("the demo sets recorded_at");
        log.push_at(p.customer_id.as_str(), p.occurred_at, recorded, p.payload);
    }
    log.events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Several customers with skips, losses, reopenings, reassignments, corrections, follow-ups
    /// with due dates and late logging.
    #[test]
    fn kept_rep_report_equals_the_replayed_one(
        seed in any::<u64>(),
        customers in 1usize..7,
        steps in 1usize..150,
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..6),
        clock_days in -20i64..90,
    ) {
        check_batches(&generate(seed, customers, steps), &raw_cuts, clock_days)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The demo's customers: several currencies, repeat orders, a dozen reps.
    #[test]
    fn kept_rep_report_equals_the_replayed_one_on_demo_customers(
        seed in any::<u64>(),
        first in 0usize..500,
        raw_cuts in proptest::collection::vec(any::<usize>(), 0..6),
        clock_days in -20i64..90,
    ) {
        check_batches(&demo_log(seed, first..first + 12), &raw_cuts, clock_days)?;
    }
}

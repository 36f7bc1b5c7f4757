//! The rep report is computed two ways: `activity::reps` over a replayed read model, and
//! `aggregates::reps_report` over counters kept incrementally. This property checks that they
//! agree over generated histories cut into random batches.
//!
//! The counters are kept here in memory exactly as the SQLite read models keep them
//! (`projections::storage`): per batch, the changed customers' old rows are subtracted and their
//! new rows added (`Deltas::contribute`), a counter back to 0 is dropped, and the days-to-close
//! spread of every group a changed contract belongs to is recomputed from the contracts inside
//! that group's period bounds. A rebuild adds every customer once and computes every spread
//! from scratch. The inputs of `reps_report` are then read as `reps_inputs_live` reads them.

mod projections_support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pipeline_ledger::demo::{DemoConfig, generate_customers};
use pipeline_ledger::domain::{CustomerId, LedgerEvent};
use pipeline_ledger::projections::activity::{RepsParams, reps};
use pipeline_ledger::projections::aggregates::{
    self, AggKey, CloseGroup, DUE_VIEW, Deltas, PERIODS, RepsInputs, reps_report,
};
use pipeline_ledger::projections::meta::{ReportAt, meta_for};
use pipeline_ledger::projections::model::CustomerRows;
use pipeline_ledger::projections::time::{Period, Spread};
use pipeline_ledger::projections::{Policy, Projector, replay};
use projections_support::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// The read models' rows and aggregates, in memory.
#[derive(Default)]
struct Kept {
    rows: BTreeMap<CustomerId, CustomerRows>,
    /// `rm_aggregates`: no counter is 0 (a counter back to 0 is deleted).
    counters: HashMap<AggKey, i64>,
    /// `rm_close_spreads`: (period, rep, label) → spread, only groups with contracts.
    spreads: HashMap<(String, String, String), Spread>,
}

impl Kept {
    /// `ReadModelDb::write_batch` on the live tables.
    fn write_batch(&mut self, changes: Vec<(CustomerId, CustomerRows)>) {
        let mut deltas = Deltas::default();
        let mut groups = HashMap::new();
        for (customer, rows) in changes {
            if let Some(old) = self.rows.get(&customer) {
                deltas.contribute(old, -1);
                aggregates::close_groups(old, &mut groups);
            }
            deltas.contribute(&rows, 1);
            aggregates::close_groups(&rows, &mut groups);
            self.rows.insert(customer, rows);
        }
        self.add(&deltas);
        for (group, inside) in groups {
            self.recompute_spread(group, inside);
        }
    }

    /// `write_deltas`.
    fn add(&mut self, deltas: &Deltas) {
        for (key, v) in &deltas.counts {
            let now = self.counters.entry(key.clone()).or_insert(0);
            *now += v;
            if *now == 0 {
                self.counters.remove(key);
            }
        }
    }

    /// `write_close_spreads` for one group: the group's contracts are those inside the period
    /// bounds of a time inside it.
    fn recompute_spread(&mut self, (period, rep, label): CloseGroup, inside: DateTime<Utc>) {
        let (start, end) = period.bounds(inside);
        let seconds = self
            .rows
            .values()
            .flat_map(|r| &r.activities)
            .filter(|a| aggregates::counts_as_close(a) && a.owner_rep == rep)
            .filter(|a| a.occurred_at >= start && a.occurred_at < end)
            .filter_map(|a| a.close_seconds);
        let spread = aggregates::close_spread(seconds);
        let key = (period.as_str().to_string(), rep, label);
        if spread.median.is_some() {
            self.spreads.insert(key, spread);
        } else {
            self.spreads.remove(&key);
        }
    }

    /// A rebuild: every customer's rows counted once (`write_new_customers`, `write_counters`)
    /// and every spread computed from all contracts (`rewrite_all_close_spreads`).
    fn rebuilt(rows: &BTreeMap<CustomerId, CustomerRows>) -> Kept {
        let mut kept = Kept {
            rows: rows.clone(),
            ..Kept::default()
        };
        let mut deltas = Deltas::default();
        let mut groups: BTreeMap<(String, String, String), Vec<i64>> = BTreeMap::new();
        for r in rows.values() {
            deltas.contribute(r, 1);
            for a in r
                .activities
                .iter()
                .filter(|a| aggregates::counts_as_close(a))
            {
                for period in PERIODS {
                    let key = (
                        period.as_str().to_string(),
                        a.owner_rep.clone(),
                        period.label(a.occurred_at),
                    );
                    groups.entry(key).or_default().extend(a.close_seconds);
                }
            }
        }
        kept.add(&deltas);
        for (key, seconds) in groups {
            let spread = aggregates::close_spread(seconds);
            if spread.median.is_some() {
                kept.spreads.insert(key, spread);
            }
        }
        kept
    }

    /// `read_reps_inputs`: the period's counters (of `rep` only, if given), the follow-ups not
    /// met yet due before the clock's day (every rep), the period's spreads.
    fn inputs(
        &self,
        period: Period,
        rep: Option<&str>,
        clock: Option<DateTime<Utc>>,
    ) -> RepsInputs {
        let view = aggregates::reps_view(period);
        let wanted = |r: &str| rep.is_none_or(|x| x == r);
        let counters = self
            .counters
            .iter()
            .filter(|((v, grp, _, _), _)| *v == view && wanted(grp))
            .map(|((_, grp, key, metric), v)| (grp.clone(), key.clone(), metric.clone(), *v))
            .collect();
        // Due dates are compared as the stored text, as SQLite compares them.
        let open_due = clock.map_or_else(Vec::new, |now| {
            let today = now.date_naive().format("%Y-%m-%d").to_string();
            self.counters
                .iter()
                .filter(|((v, grp, _, _), _)| v == DUE_VIEW && *grp < today)
                .map(|((_, grp, key, _), v)| (grp.parse().unwrap(), key.clone(), *v))
                .collect()
        });
        let close_spreads = self
            .spreads
            .iter()
            .filter(|((p, r, _), _)| p == period.as_str() && wanted(r))
            .map(|((_, r, label), s)| (r.clone(), label.clone(), *s))
            .collect();
        RepsInputs {
            counters,
            open_due,
            close_spreads,
        }
    }
}

/// Given the log up to a batch's end and the counters kept to it: the report from the counters
/// equals the report from a full replay, for every period, for all reps and for one, at the log's
/// clock and at another.
fn check_reports(
    policy: &Policy,
    log: &[LedgerEvent],
    kept: &Kept,
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
                let inputs = kept.inputs(period, params.rep.as_deref(), meta.evaluated_at);
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
    let mut kept = Kept::default();
    let mut start = 0;
    for end in cuts(events.len(), raw_cuts) {
        for e in &events[start..end] {
            fold.apply(e);
        }
        start = end;
        kept.write_batch(fold.take_changes());
        check_reports(&policy, &events[..end], &kept, clock_days, "incremental")?;
    }
    let rebuilt = Kept::rebuilt(&kept.rows);
    prop_assert_eq!(&rebuilt.counters, &kept.counters);
    prop_assert_eq!(&rebuilt.spreads, &kept.spreads);
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

//! Incrementally maintained aggregates (`rm_aggregates`): per-customer contributions to the
//! rep report's counters, kept up to date by the runner in the same transaction as the rows and
//! the checkpoint. When a customer's rows are re-derived, the contribution of its old rows is
//! subtracted and that of its new rows added, so every counter stays equal to what a full scan
//! of the rows would give. Counters that depend on the report clock (overdue follow-ups not met
//! yet) are kept per due date and finished at query time.
//!
//! Keys are `(view, grp, key, metric)`:
//!
//! | view | grp | key | metric | value |
//! |------|-----|-----|--------|-------|
//! | `reps:<period>` | rep | period label | `i:<EventType>` | events performed |
//! | `reps:<period>` | rep | period label | `touched` | distinct customers performed on (reassignments excluded) |
//! | `reps:<period>` | rep | period label | `won`, `lost` | contracts / losses credited to the owner |
//! | `reps:<period>` | rep | period label | `value:<CUR>`, `valn:<CUR>` | contract value sum / contracts with a value |
//! | `reps:<period>` | rep | period label | `re_in`, `re_out` | reassignments to / from |
//! | `reps:<period>` | rep | period label | `overdue` | follow-ups due in the period, met late |
//! | `due` | due date | rep | `open` | follow-ups due that day, not met yet |
//!
//! The days-to-close median and p90 of each rep and period are not sums, so they are kept apart
//! (`rm_close_spreads`): after each batch, the groups whose contracts changed are recomputed
//! from their contracts (an index range read); a rebuild computes them all once at its end.

use super::activity::{RepPeriod, RepsParams, RepsReport, row};
use super::conversion::Ratio;
use super::meta::ReportMeta;
use super::model::{ActivityRow, CustomerRows, FollowUpRow};
use super::time::{Period, SECONDS_PER_DAY, Spread};
use crate::domain::EventType;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Version of the aggregates' layout; stored aggregates of another version are recomputed from
/// the rows when the read models are opened.
pub const VERSION: i64 = 2;
/// The view, and metric, of the counter that records the layout version ([`VERSION`]).
pub const VERSION_VIEW: &str = "_meta";
/// See [`VERSION_VIEW`].
pub const VERSION_METRIC: &str = "version";
/// The rep report periods, each kept as its own view.
pub const PERIODS: [Period; 5] = [
    Period::Day,
    Period::Week,
    Period::Month,
    Period::Quarter,
    Period::Year,
];
/// The view of the follow-ups not met yet, per due date.
pub const DUE_VIEW: &str = "due";

/// One aggregate counter's key: view, group, key, metric.
pub type AggKey = (String, String, String, String);

/// Changes to counters, summed over a batch before they are written.
///
/// Summed in `i128`, which no batch can overflow (each change is an `i64`, and a batch holds far
/// fewer than 2^63 of them); a counter itself is an `i64` and is added to with
/// [`saturating_counter_add`], so that a sum never wraps (see `projections/README.md`, "Money").
#[derive(Debug, Default)]
pub struct Deltas {
    pub counts: HashMap<AggKey, i128>,
}

/// A stored counter plus a batch's change: exact while the sum fits an `i64`, else the nearest
/// `i64` (what the replay path's saturating sums give). Never wraps.
pub fn saturating_counter_add(stored: i64, delta: i128) -> i64 {
    let sum = i128::from(stored).saturating_add(delta);
    i64::try_from(sum).unwrap_or(if sum > 0 { i64::MAX } else { i64::MIN })
}

impl Deltas {
    fn add(&mut self, view: &str, grp: &str, key: &str, metric: &str, v: i64) {
        if v == 0 {
            return;
        }
        let sum = self
            .counts
            .entry((
                view.to_string(),
                grp.to_string(),
                key.to_string(),
                metric.to_string(),
            ))
            .or_insert(0);
        *sum = sum.saturating_add(i128::from(v));
    }

    /// Adds (`sign` = 1) or subtracts (`sign` = -1) one customer's contribution.
    pub fn contribute(&mut self, rows: &CustomerRows, sign: i64) {
        for period in PERIODS {
            let view = reps_view(period);
            let mut touched: BTreeSet<(&str, String)> = BTreeSet::new();
            for a in &rows.activities {
                let label = period.label(a.occurred_at);
                self.contribute_activity(&view, &label, a, sign);
                if touches(a) {
                    touched.insert((a.performer_rep.as_str(), label));
                }
            }
            for (rep, label) in touched {
                self.add(&view, rep, &label, "touched", sign);
            }
        }
        for f in &rows.followups {
            self.contribute_followup(f, sign);
        }
    }

    /// Adds the change of one customer's contribution from its `old` rows to its `new` ones:
    /// the same sums as `contribute(old, -1)` then `contribute(new, 1)`, computed from the rows
    /// that differ. A customer's next event changes a few of its rows, so a live batch no
    /// longer recounts a long history for every event. Every counter is a sum over rows but
    /// `touched` (distinct reps and periods), which changes only for a rep and period of a
    /// changed row, and is looked up for those alone.
    pub fn contribute_change(&mut self, old: &CustomerRows, new: &CustomerRows) {
        let (gone, came) = differing(&old.activities, &new.activities, |a| &a.event_id);
        for period in PERIODS {
            let view = reps_view(period);
            for (rows, sign) in [(&gone, -1), (&came, 1)] {
                for a in rows.iter() {
                    let label = period.label(a.occurred_at);
                    self.contribute_activity(&view, &label, a, sign);
                }
            }
            let mut candidates: BTreeMap<(&str, String), PeriodBounds> = BTreeMap::new();
            for a in gone.iter().chain(&came).filter(|a| touches(a)) {
                candidates.insert(
                    (a.performer_rep.as_str(), period.label(a.occurred_at)),
                    period.bounds(a.occurred_at),
                );
            }
            for ((rep, label), (start, end)) in candidates {
                let in_period = |rows: &[ActivityRow]| {
                    rows.iter().any(|a| {
                        touches(a)
                            && a.performer_rep == rep
                            && a.occurred_at >= start
                            && a.occurred_at < end
                    })
                };
                match (in_period(&old.activities), in_period(&new.activities)) {
                    (true, false) => self.add(&view, rep, &label, "touched", -1),
                    (false, true) => self.add(&view, rep, &label, "touched", 1),
                    _ => {}
                }
            }
        }
        let (gone, came) = differing(&old.followups, &new.followups, |f| &f.event_id);
        for f in gone {
            self.contribute_followup(f, -1);
        }
        for f in came {
            self.contribute_followup(f, 1);
        }
    }

    /// One activity row's counters in one period view (all but `touched`).
    fn contribute_activity(&mut self, view: &str, label: &str, a: &ActivityRow, sign: i64) {
        let kind = EventType::parse(&a.event_type);
        let p = a.performer_rep.as_str();
        self.add(view, p, label, &format!("i:{}", a.event_type), sign);
        if !a.applied {
            return;
        }
        match kind {
            Some(EventType::ContractSigned) => {
                self.add(view, &a.owner_rep, label, "won", sign);
                if let (Some(v), Some(c)) = (a.value_minor, &a.currency) {
                    self.add(view, &a.owner_rep, label, &format!("valn:{c}"), sign);
                    self.add(
                        view,
                        &a.owner_rep,
                        label,
                        &format!("value:{c}"),
                        // `sign` is 1 or -1, and amounts are never negative.
                        sign.saturating_mul(v),
                    );
                }
            }
            Some(EventType::DealLost) => self.add(view, &a.owner_rep, label, "lost", sign),
            Some(EventType::CustomerReassigned) => {
                if let Some(to) = &a.to_rep {
                    self.add(view, to, label, "re_in", sign);
                }
                if let Some(from) = &a.from_rep {
                    self.add(view, from, label, "re_out", sign);
                }
            }
            _ => {}
        }
    }

    /// One follow-up row's counters: overdue in every period view, open per due date.
    fn contribute_followup(&mut self, f: &FollowUpRow, sign: i64) {
        if let Some(done) = f.fulfilled_at
            && done.date_naive() > f.due_on
        {
            for period in PERIODS {
                let label = period.label_date(f.due_on);
                self.add(&reps_view(period), &f.owner_rep, &label, "overdue", sign);
            }
        }
        if f.fulfilled_at.is_none() {
            self.add(DUE_VIEW, &f.due_on.to_string(), &f.owner_rep, "open", sign);
        }
    }
}

/// A period's first instant and the first instant after it.
type PeriodBounds = (DateTime<Utc>, DateTime<Utc>);

/// Whether an activity counts for `touched` (reassignments do not).
fn touches(a: &ActivityRow) -> bool {
    EventType::parse(&a.event_type) != Some(EventType::CustomerReassigned)
}

/// The rows of `old` that `new` does not hold unchanged, and the rows of `new` that `old` does
/// not: matched by `key` (unique within a customer's rows of one table).
fn differing<'a, R: PartialEq>(
    old: &'a [R],
    new: &'a [R],
    key: impl Fn(&R) -> &String,
) -> (Vec<&'a R>, Vec<&'a R>) {
    let by_key = |rows: &'a [R]| -> HashMap<&'a String, &'a R> {
        rows.iter().map(|r| (key(r), r)).collect()
    };
    let (old_by_key, new_by_key) = (by_key(old), by_key(new));
    let gone = old
        .iter()
        .filter(|r| new_by_key.get(key(r)) != Some(r))
        .collect();
    let came = new
        .iter()
        .filter(|r| old_by_key.get(key(r)) != Some(r))
        .collect();
    (gone, came)
}

/// A rep report group whose days-to-close spread is kept: period, owner rep, period label.
pub type CloseGroup = (Period, String, String);

/// Adds to `groups` the groups of a customer's closed contracts (those the spreads count), with
/// a time inside each group's period.
pub fn close_groups(rows: &CustomerRows, groups: &mut HashMap<CloseGroup, DateTime<Utc>>) {
    for a in rows.activities.iter().filter(|a| counts_as_close(a)) {
        for period in PERIODS {
            groups.insert(
                (period, a.owner_rep.clone(), period.label(a.occurred_at)),
                a.occurred_at,
            );
        }
    }
}

/// Whether an activity row is a closed contract of the days-to-close spread.
pub fn counts_as_close(a: &ActivityRow) -> bool {
    a.applied && a.close_seconds.is_some() && a.event_type == EventType::ContractSigned.as_str()
}

/// The days-to-close spread of contracts closed after these many seconds.
pub fn close_spread(close_seconds: impl IntoIterator<Item = i64>) -> Spread {
    Spread::of(
        close_seconds
            .into_iter()
            .map(|s| s as f64 / SECONDS_PER_DAY)
            .collect(),
    )
}

/// The view name of a rep report period.
pub fn reps_view(period: Period) -> String {
    format!("reps:{}", period.as_str())
}

/// What the rep report reads from the store, besides its own view's counters.
#[derive(Debug, Default)]
pub struct RepsInputs {
    /// `(rep, period label, metric, value)` of the period's view.
    pub counters: Vec<(String, String, String, i64)>,
    /// `(due date, rep, count)` of follow-ups not met yet, due before the report clock's day.
    pub open_due: Vec<(NaiveDate, String, i64)>,
    /// `(owner rep, period label, days-to-close spread)` of the period's groups with contracts.
    pub close_spreads: Vec<(String, String, Spread)>,
}

/// Builds the rep report from the aggregates: the same rows and numbers as
/// [`super::activity::reps`] over the whole model.
pub fn reps_report(meta: ReportMeta, params: RepsParams, input: RepsInputs) -> RepsReport {
    let wanted = |rep: &str| params.rep.as_deref().is_none_or(|r| r == rep);
    let mut table: BTreeMap<(String, String), RepPeriod> = BTreeMap::new();
    let mut valued: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut values: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for (rep, period, metric, v) in input.counters {
        if v == 0 || !wanted(&rep) {
            continue;
        }
        let n = v as u64;
        if let Some(t) = metric.strip_prefix("i:") {
            let r = row(&mut table, &rep, &period);
            r.interactions.insert(t.to_string(), n);
            r.interactions_total += n;
            if t == EventType::LeadSourced.as_str() {
                r.new_leads += n;
            }
        } else if let Some(c) = metric.strip_prefix("valn:") {
            valued.insert((rep, period, c.to_string()));
        } else if let Some(c) = metric.strip_prefix("value:") {
            values.insert((rep, period, c.to_string()), v);
        } else {
            let r = row(&mut table, &rep, &period);
            match metric.as_str() {
                "touched" => r.customers_touched = n,
                "won" => r.deals_won = n,
                "lost" => r.deals_lost = n,
                "re_in" => r.reassigned_in = n,
                "re_out" => r.reassigned_out = n,
                "overdue" => r.overdue_followups += n,
                _ => {}
            }
        }
    }
    for (rep, period, currency) in valued {
        let v = values
            .get(&(rep.clone(), period.clone(), currency.clone()))
            .copied()
            .unwrap_or(0);
        row(&mut table, &rep, &period)
            .won_value_minor
            .insert(currency, v);
    }
    for (due, rep, n) in input.open_due {
        if n > 0 && wanted(&rep) {
            let label = params.period.label_date(due);
            row(&mut table, &rep, &label).overdue_followups += n as u64;
        }
    }
    let mut spreads: HashMap<(String, String), Spread> = input
        .close_spreads
        .into_iter()
        .map(|(rep, label, spread)| ((rep, label), spread))
        .collect();
    for (key, r) in table.iter_mut() {
        r.win_rate = Ratio::new(r.deals_won, r.deals_won + r.deals_lost);
        r.days_to_close = spreads.remove(key).unwrap_or_default();
    }
    RepsReport {
        meta,
        params,
        rows: table.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn activity(
        (id, rep, owner, day, kind, applied, value): (u8, u8, u8, i64, u8, bool, Option<i64>),
    ) -> ActivityRow {
        let kinds = [
            EventType::LeadSourced,
            EventType::ContractSigned,
            EventType::DealLost,
            EventType::CustomerReassigned,
            EventType::FollowUpLogged,
        ];
        ActivityRow {
            customer_id: "c".into(),
            event_id: format!("e{id}"),
            position: u64::from(id),
            occurred_at: Utc.with_ymd_and_hms(2025, 12, 20, 9, 0, 0).unwrap() + Duration::days(day),
            event_type: kinds[kind as usize].as_str().into(),
            deal_id: Some("d".into()),
            performer_rep: format!("r{rep}"),
            owner_rep: format!("r{owner}"),
            value_minor: value,
            currency: value.map(|_| "EUR".into()),
            close_seconds: None,
            from_rep: Some(format!("r{owner}")),
            to_rep: Some(format!("r{rep}")),
            applied,
        }
    }

    fn followup((id, due, done): (u8, i64, Option<i64>)) -> FollowUpRow {
        let day = |d: i64| Utc.with_ymd_and_hms(2025, 12, 20, 9, 0, 0).unwrap() + Duration::days(d);
        FollowUpRow {
            customer_id: "c".into(),
            event_id: format!("f{id}"),
            deal_id: "d".into(),
            due_on: day(due).date_naive(),
            owner_rep: "r1".into(),
            fulfilled_at: done.map(day),
        }
    }

    fn rows_strategy() -> impl Strategy<Value = CustomerRows> {
        let activity = (
            0u8..12,
            0u8..3,
            0u8..3,
            0i64..40,
            0u8..5,
            any::<bool>(),
            proptest::option::of(0i64..1_000),
        )
            .prop_map(activity);
        let followup = (0u8..6, 0i64..40, proptest::option::of(0i64..50)).prop_map(followup);
        (
            proptest::collection::vec(activity, 0..12),
            proptest::collection::vec(followup, 0..5),
        )
            .prop_map(|(mut activities, mut followups)| {
                // One row per key, as in a customer's rows.
                activities.sort_by(|a, b| a.event_id.cmp(&b.event_id));
                activities.dedup_by(|a, b| a.event_id == b.event_id);
                followups.sort_by(|a, b| a.event_id.cmp(&b.event_id));
                followups.dedup_by(|a, b| a.event_id == b.event_id);
                CustomerRows {
                    activities,
                    followups,
                    ..CustomerRows::default()
                }
            })
    }

    fn nonzero(d: Deltas) -> BTreeMap<AggKey, i128> {
        d.counts.into_iter().filter(|(_, v)| *v != 0).collect()
    }

    proptest! {
        /// The change computed from the differing rows is the whole subtraction and addition,
        /// for any two sets of a customer's rows (sharing some rows, as an old and a new
        /// derivation do, across the turn of a year, a quarter and a week).
        #[test]
        fn a_change_from_the_differing_rows_equals_the_whole_recount(
            old in rows_strategy(),
            new in rows_strategy(),
            keep in proptest::collection::vec(any::<bool>(), 12),
        ) {
            // Let `new` hold some of `old`'s rows unchanged.
            let mut new = new;
            for (a, keep) in old.activities.iter().zip(&keep) {
                if *keep {
                    new.activities.retain(|b| b.event_id != a.event_id);
                    new.activities.push(a.clone());
                }
            }
            let mut whole = Deltas::default();
            whole.contribute(&old, -1);
            whole.contribute(&new, 1);
            let mut change = Deltas::default();
            change.contribute_change(&old, &new);
            prop_assert_eq!(nonzero(change), nonzero(whole));
        }
    }

    #[test]
    fn counter_sums_saturate_and_never_wrap() {
        let max = i128::from(i64::MAX);
        for (stored, delta, expected) in [
            (1, 2, 3),
            (i64::MAX, max, i64::MAX),
            (0, 2 * max, i64::MAX),
            (i64::MIN, -1, i64::MIN),
            (i64::MAX, -max, 0),
            (-5, i128::MIN, i64::MIN),
        ] {
            assert_eq!(
                saturating_counter_add(stored, delta),
                expected,
                "{stored} + {delta}"
            );
        }
    }
}

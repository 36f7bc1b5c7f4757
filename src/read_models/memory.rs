//! The read models in memory: a plain model of what the port promises, kept in `BTreeMap`s
//! under one lock. The contract suite runs against it and the SQLite read models alike, so that
//! the port says what the read models do and not how SQLite does it; programs that embed the
//! ledger and tests can use it too. Nothing is kept across processes.

use super::{Binding, Checkpoint, KeptReport, ReadModelError, ReadModels, Tables};
use crate::domain::CustomerId;
use crate::projections::aggregates::{self, AggKey, Deltas, RepsInputs};
use crate::projections::model::{ActivityRow, CustomerRows, DealRow, ReadModel, StageStayRow};
use crate::projections::time::{Period, Spread};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// One set of tables.
#[derive(Debug, Default, Clone)]
struct TableSet {
    checkpoint: Checkpoint,
    binding: Option<Binding>,
    /// Every customer's rows, by customer id.
    customers: BTreeMap<String, CustomerRows>,
    counters: BTreeMap<AggKey, i64>,
    /// Days-to-close spreads by (period, rep, label).
    spreads: BTreeMap<(String, String, String), Spread>,
    /// Kept reports by name: position, policy, body.
    reports: BTreeMap<String, (u64, String, String)>,
}

impl TableSet {
    fn add(&mut self, deltas: &Deltas) {
        for (key, v) in &deltas.counts {
            let stored = self.counters.get(key).copied().unwrap_or(0);
            let now = aggregates::saturating_counter_add(stored, *v);
            if now == 0 {
                self.counters.remove(key);
            } else {
                self.counters.insert(key.clone(), now);
            }
        }
    }

    fn contracts(&self) -> impl Iterator<Item = &ActivityRow> {
        self.customers
            .values()
            .flat_map(|rows| rows.activities.iter())
            .filter(|a| aggregates::counts_as_close(a))
    }

    fn put_spread(&mut self, period: &str, rep: &str, label: &str, seconds: Vec<i64>) {
        let key = (period.to_string(), rep.to_string(), label.to_string());
        let spread = aggregates::close_spread(seconds);
        if spread.median.is_some() && spread.p90.is_some() {
            self.spreads.insert(key, spread);
        } else {
            self.spreads.remove(&key);
        }
    }

    fn recompute_spreads(&mut self, groups: &HashMap<aggregates::CloseGroup, DateTime<Utc>>) {
        for ((period, rep, label), inside) in groups {
            let (start, end) = period.bounds(*inside);
            let seconds: Vec<i64> = self
                .contracts()
                .filter(|a| &a.owner_rep == rep && a.occurred_at >= start && a.occurred_at < end)
                .filter_map(|a| a.close_seconds)
                .collect();
            self.put_spread(period.as_str(), rep, label, seconds);
        }
    }

    fn recompute_all_spreads(&mut self) {
        let mut groups: BTreeMap<(&'static str, String, String), Vec<i64>> = BTreeMap::new();
        for a in self.contracts() {
            for period in aggregates::PERIODS {
                groups
                    .entry((
                        period.as_str(),
                        a.owner_rep.clone(),
                        period.label(a.occurred_at),
                    ))
                    .or_default()
                    .extend(a.close_seconds);
            }
        }
        self.spreads.clear();
        for ((period, rep, label), seconds) in groups {
            self.put_spread(period, &rep, &label, seconds);
        }
    }

    fn model(&self, customer: Option<&str>) -> ReadModel {
        let mut m = ReadModel {
            position: self.checkpoint.position,
            log_time: self.checkpoint.log_time,
            ..ReadModel::default()
        };
        let rows = self
            .customers
            .iter()
            .filter(|(id, _)| customer.is_none_or(|c| c == id.as_str()));
        for (_, rows) in rows {
            m.extend(rows.clone());
        }
        m.normalize();
        m
    }
}

#[derive(Debug, Default)]
struct State {
    live: TableSet,
    staging: TableSet,
}

impl State {
    fn tables(&mut self, tables: Tables) -> &mut TableSet {
        match tables {
            Tables::Live => &mut self.live,
            Tables::Staging => &mut self.staging,
        }
    }
}

/// The read models in memory.
#[derive(Debug, Default)]
pub struct MemoryReadModels {
    state: Mutex<State>,
}

impl MemoryReadModels {
    /// Empty read models.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, ReadModelError> {
        self.state
            .lock()
            .map_err(|_| ReadModelError::Poisoned { what: "state" })
    }

    /// The live tables if projected: every read starts here.
    fn live<T>(&self, read: impl FnOnce(&TableSet) -> T) -> Result<Option<T>, ReadModelError> {
        let state = self.state()?;
        Ok(state
            .live
            .checkpoint
            .position
            .is_some()
            .then(|| read(&state.live)))
    }
}

/// Replaces changed customers' rows in `set`, counting their old rows out and the new ones in
/// (into `pending` instead, for new customers of a rebuild), and the spreads they touch (with
/// `keep_spreads`).
fn write_rows(
    set: &mut TableSet,
    changes: &[(CustomerId, CustomerRows)],
    reached: Checkpoint,
    keep_spreads: bool,
    pending: Option<&mut Deltas>,
) {
    let customers_are_new = pending.is_some();
    let mut own = Deltas::default();
    let deltas = pending.unwrap_or(&mut own);
    let mut groups = HashMap::new();
    for (customer, rows) in changes {
        if !customers_are_new && let Some(old) = set.customers.get(customer.as_str()) {
            deltas.contribute(old, -1);
            if keep_spreads {
                aggregates::close_groups(old, &mut groups);
            }
        }
        deltas.contribute(rows, 1);
        if keep_spreads {
            aggregates::close_groups(rows, &mut groups);
        }
        set.customers
            .insert(customer.as_str().to_string(), rows.clone());
    }
    if !customers_are_new {
        set.add(deltas);
    }
    set.recompute_spreads(&groups);
    set.checkpoint = reached;
}

impl ReadModels for MemoryReadModels {
    fn checkpoint(&self, tables: Tables) -> Result<Checkpoint, ReadModelError> {
        Ok(self.state()?.tables(tables).checkpoint)
    }

    fn binding(&self, tables: Tables) -> Result<Option<Binding>, ReadModelError> {
        Ok(self.state()?.tables(tables).binding.clone())
    }

    fn bind(&self, tables: Tables, binding: &Binding) -> Result<(), ReadModelError> {
        self.state()?.tables(tables).binding = Some(binding.clone());
        Ok(())
    }

    fn write_batch(
        &self,
        tables: Tables,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
    ) -> Result<bool, ReadModelError> {
        let mut state = self.state()?;
        let set = state.tables(tables);
        if set.checkpoint.position != expected {
            return Ok(false);
        }
        write_rows(set, changes, reached, tables == Tables::Live, None);
        Ok(true)
    }

    fn write_new_customers(
        &self,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
        pending: &mut Deltas,
    ) -> Result<bool, ReadModelError> {
        let mut state = self.state()?;
        if state.staging.checkpoint.position != expected {
            return Ok(false);
        }
        write_rows(&mut state.staging, changes, reached, false, Some(pending));
        Ok(true)
    }

    fn write_counters(&self, deltas: &Deltas) -> Result<(), ReadModelError> {
        self.state()?.staging.add(deltas);
        Ok(())
    }

    fn start_staging(&self) -> Result<(), ReadModelError> {
        self.state()?.staging = TableSet::default();
        Ok(())
    }

    fn set_aside(&self) -> Result<Option<std::path::PathBuf>, ReadModelError> {
        Ok(None) // memory is never damaged
    }

    fn swap_in_staging(&self) -> Result<(), ReadModelError> {
        let mut state = self.state()?;
        let mut staged = std::mem::take(&mut state.staging);
        staged.recompute_all_spreads();
        state.live = staged;
        Ok(())
    }

    fn load_live(&self) -> Result<Option<ReadModel>, ReadModelError> {
        self.live(|set| set.model(None))
    }

    fn load_customer_live(&self, customer_id: &str) -> Result<Option<ReadModel>, ReadModelError> {
        self.live(|set| set.model(Some(customer_id)))
    }

    fn reps_inputs_live(
        &self,
        period: Period,
        rep: Option<&str>,
        clock: &dyn Fn(&Checkpoint) -> Option<DateTime<Utc>>,
    ) -> Result<Option<(Checkpoint, RepsInputs)>, ReadModelError> {
        let view = aggregates::reps_view(period);
        self.live(|set| {
            let mut out = RepsInputs::default();
            for ((v, grp, key, metric), value) in &set.counters {
                if *v == view && rep.is_none_or(|r| r == grp) {
                    out.counters
                        .push((grp.clone(), key.clone(), metric.clone(), *value));
                }
            }
            if let Some(now) = clock(&set.checkpoint) {
                let before = now.date_naive();
                for ((v, grp, key, _), value) in &set.counters {
                    let due = NaiveDate::parse_from_str(grp, "%Y-%m-%d");
                    if v == aggregates::DUE_VIEW
                        && let Ok(due) = due
                        && due < before
                    {
                        out.open_due.push((due, key.clone(), *value));
                    }
                }
            }
            for ((p, r, label), spread) in &set.spreads {
                if p == period.as_str() && rep.is_none_or(|rep| rep == r) {
                    out.close_spreads.push((r.clone(), label.clone(), *spread));
                }
            }
            (set.checkpoint, out)
        })
    }

    fn fold_live_deals(
        &self,
        each: &mut dyn FnMut(&Checkpoint, DealRow, Vec<StageStayRow>),
    ) -> Result<Option<Checkpoint>, ReadModelError> {
        // The deals are copied out first, so that `each` never runs under the lock.
        let Some((cp, deals)) = self.live(|set| {
            let deals: Vec<(DealRow, Vec<StageStayRow>)> = set
                .customers
                .values()
                .flat_map(|rows| {
                    let mut deals = rows.deals.clone();
                    deals.sort_by(|a, b| a.deal_id.cmp(&b.deal_id));
                    deals.into_iter().map(|d| {
                        let mut stays: Vec<StageStayRow> = rows
                            .stays
                            .iter()
                            .filter(|s| s.deal_id == d.deal_id)
                            .cloned()
                            .collect();
                        stays.sort_by_key(|s| s.seq);
                        (d, stays)
                    })
                })
                .collect();
            (set.checkpoint, deals)
        })?
        else {
            return Ok(None);
        };
        for (deal, stays) in deals {
            each(&cp, deal, stays);
        }
        Ok(Some(cp))
    }

    fn write_reports(&self, policy: &str, reports: &[KeptReport]) -> Result<(), ReadModelError> {
        let mut state = self.state()?;
        for r in reports {
            let kept_later = state
                .live
                .reports
                .get(&r.name)
                .is_some_and(|(position, _, _)| *position > r.position);
            if !kept_later {
                let row = (r.position, policy.to_string(), r.body.clone());
                state.live.reports.insert(r.name.clone(), row);
            }
        }
        Ok(())
    }

    fn read_report(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<Option<(u64, String)>, ReadModelError> {
        let state = self.state()?;
        Ok(state
            .live
            .reports
            .get(name)
            .filter(|(_, p, _)| p == policy)
            .map(|(position, _, body)| (*position, body.clone())))
    }
}

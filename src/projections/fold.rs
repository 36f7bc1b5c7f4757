//! The fold: events in, read-model rows out. Pure (no I/O), so that the runner, the rebuild,
//! bitemporal replays and tests all compute the same rows.
//!
//! A customer's rows depend only on that customer's events, so the fold keeps each customer's
//! event list and re-derives the customer's rows whenever an event of that customer arrives.
//! That is how corrections work: an `EventCorrected` re-derives the customer from its effective
//! history, so a retracted event stops counting and an amended one counts with its replacement.

use super::model::{CustomerRows, ReadModel};
use super::policy::Policy;
use super::{activity, conversion, lifecycle, timeline};
use crate::domain::{CustomerId, LedgerEvent};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Derives every row of one customer from its events (stream order).
pub fn derive(policy: &Policy, customer: &CustomerId, events: &[LedgerEvent]) -> CustomerRows {
    let w = timeline::walk(policy, customer, events);
    let (customer, values) = lifecycle::rows(policy, &w);
    let (deals, stays) = conversion::rows(&w);
    let (activities, followups) = activity::rows(&w);
    CustomerRows {
        customer,
        values,
        deals,
        stays,
        activities,
        followups,
    }
}

/// The fold of the three projections over the log.
#[derive(Debug, Clone)]
pub struct Projector {
    policy: Policy,
    histories: BTreeMap<CustomerId, Vec<LedgerEvent>>,
    dirty: BTreeSet<CustomerId>,
    position: Option<u64>,
    /// The id of the event at `position` (the last one applied or skipped).
    event_id: Option<Uuid>,
    log_time: Option<DateTime<Utc>>,
    cached_events: usize,
}

impl Projector {
    /// An empty fold (nothing applied).
    pub fn new(policy: Policy) -> Self {
        Self::resume(policy, None, None, None)
    }

    /// A fold resuming after `position`, with no customer loaded: the caller seeds the
    /// customers it is about to apply events to.
    pub fn resume(
        policy: Policy,
        position: Option<u64>,
        event_id: Option<Uuid>,
        log_time: Option<DateTime<Utc>>,
    ) -> Self {
        Projector {
            policy,
            histories: BTreeMap::new(),
            dirty: BTreeSet::new(),
            position,
            event_id,
            log_time,
            cached_events: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Position of the last event applied.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// The latest `occurred_at` of a sales event applied (erasures do not count).
    pub fn log_time(&self) -> Option<DateTime<Utc>> {
        self.log_time
    }

    /// Whether a customer's history is loaded.
    pub fn is_loaded(&self, customer: &CustomerId) -> bool {
        self.histories.contains_key(customer)
    }

    /// Events held in memory.
    pub fn cached_events(&self) -> usize {
        self.cached_events
    }

    /// Loads a customer's already-applied events (positions at or before the fold's position)
    /// without marking it changed.
    pub fn seed(&mut self, customer: CustomerId, events: Vec<LedgerEvent>) {
        self.cached_events += events.len();
        if let Some(old) = self.histories.insert(customer, events) {
            self.cached_events -= old.len();
        }
    }

    /// Applies one event. An event at or before the fold's position was applied already and is
    /// ignored, so a redelivery never counts twice.
    pub fn apply(&mut self, event: &LedgerEvent) {
        if self.position.is_some_and(|p| event.position <= p) {
            return;
        }
        self.position = Some(event.position);
        self.event_id = Some(event.event_id);
        // An erasure's time is not a time of the sales process: it must not move the clock
        // that time-dependent figures are evaluated at.
        if !event.payload.is_administrative() {
            self.log_time = Some(
                self.log_time
                    .map_or(event.occurred_at, |t| t.max(event.occurred_at)),
            );
        }
        self.histories
            .entry(event.customer_id.clone())
            .or_default()
            .push(event.clone());
        self.cached_events += 1;
        self.dirty.insert(event.customer_id.clone());
    }

    /// Records that the log advanced to `position` through events that are not the ledger's
    /// (another application's streams in a shared store).
    pub fn skip_to(&mut self, position: u64, event_id: Uuid) {
        if self.position.is_none_or(|p| position > p) {
            self.position = Some(position);
            self.event_id = Some(event_id);
        }
    }

    /// The id of the event at [`position`](Self::position).
    pub fn event_id(&self) -> Option<Uuid> {
        self.event_id
    }

    /// The rows of every customer changed since the last call, derived afresh.
    pub fn take_changes(&mut self) -> Vec<(CustomerId, CustomerRows)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|c| {
                let events = self.histories.get(&c).map_or(&[][..], |v| v.as_slice());
                let rows = derive(&self.policy, &c, events);
                (c, rows)
            })
            .collect()
    }

    /// Forgets every loaded history (after the changes were taken), to bound memory; customers
    /// are seeded again when their next event arrives.
    pub fn evict(&mut self) {
        debug_assert!(self.dirty.is_empty(), "evicting unsaved changes");
        self.histories.clear();
        self.cached_events = 0;
    }

    /// The whole read model from the loaded histories (complete only for a fold that saw every
    /// event, as replays do).
    pub fn model(&self) -> ReadModel {
        let mut model = ReadModel {
            position: self.position,
            log_time: self.log_time,
            ..ReadModel::default()
        };
        for (c, events) in &self.histories {
            model.extend(derive(&self.policy, c, events));
        }
        model.normalize();
        model
    }
}

/// Replays events (in log order) into a read model in memory.
pub fn replay<'a>(policy: &Policy, events: impl IntoIterator<Item = &'a LedgerEvent>) -> ReadModel {
    let mut p = Projector::new(policy.clone());
    for e in events {
        p.apply(e);
    }
    p.model()
}

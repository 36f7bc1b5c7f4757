//! The walk over one customer's effective history (corrections applied) that every projection
//! derives its rows from. Pure: events in, a [`Walk`] out.
//!
//! Events are walked in stream order (the order the rules decided them in); durations use
//! `occurred_at`. Events that the rules would have refused (possible only in filtered replays,
//! where an event's predecessor may fall outside the filter) are kept as activity but change no
//! deal (`applied = false`).

use super::model::{ActivityRow, DealStatus, EntryKind, ExitKind};
use super::policy::Policy;
use crate::domain::rules::effective_history;
use crate::domain::{
    CustomerId, DealId, EventPayload, LeadSource, LedgerEvent, LostReason, Money, RepId, Stage,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};

/// One stay of a deal in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub stage: Stage,
    pub entered_at: DateTime<Utc>,
    pub entry: EntryKind,
    pub from: Option<Stage>,
    pub exited_at: Option<DateTime<Utc>>,
    pub exit: Option<ExitKind>,
    pub to: Option<Stage>,
    pub lost_reason: Option<LostReason>,
}

/// One deal as walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealWalk {
    pub id: DealId,
    pub source: LeadSource,
    pub opened_at: DateTime<Utc>,
    pub owner_at_open: RepId,
    pub status: DealStatus,
    pub stays: Vec<Stay>,
    pub last_activity: DateTime<Utc>,
    pub won_at: Option<DateTime<Utc>>,
    pub won_value: Option<Money>,
    pub won_owner: Option<RepId>,
    pub lost_at: Option<DateTime<Utc>>,
    pub lost_reason: Option<LostReason>,
    pub reopen_count: u32,
}

impl DealWalk {
    /// The stage the deal is in (or was lost in).
    pub fn stage(&self) -> Stage {
        self.stays.last().map_or(Stage::Lead, |s| s.stage)
    }

    fn close_stay(&mut self, at: DateTime<Utc>, exit: ExitKind, to: Option<Stage>) {
        if let Some(stay) = self.stays.last_mut()
            && stay.exited_at.is_none()
        {
            stay.exited_at = Some(at);
            stay.exit = Some(exit);
            stay.to = to;
        }
    }
}

/// A follow-up due date, and whether a later follow-up met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligation {
    pub event_id: String,
    pub deal_id: DealId,
    pub due_on: NaiveDate,
    pub fulfilled_at: Option<DateTime<Utc>>,
}

/// Contract and repeat-order totals in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueTotals {
    pub contracts_minor: i64,
    pub contract_count: u32,
    pub repeat_orders_minor: i64,
}

/// Everything the projections need to know about one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    pub customer_id: CustomerId,
    pub company: Option<String>,
    pub owner: Option<RepId>,
    /// Ownership changes in stream order: (when, new owner); the first is the first lead.
    pub owner_changes: Vec<(DateTime<Utc>, RepId)>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_interaction: Option<DateTime<Utc>>,
    pub last_position: u64,
    pub effective_count: u32,
    /// Deals in the order they were opened.
    pub deals: Vec<DealWalk>,
    pub activities: Vec<ActivityRow>,
    pub obligations: Vec<Obligation>,
    pub values: BTreeMap<String, ValueTotals>,
    pub latest_win_at: Option<DateTime<Utc>>,
    pub followup_since_win: bool,
    pub reengaged_since_win: bool,
    pub reengagements: u32,
}

impl Walk {
    /// The owner at time `t`: the latest ownership change at or before `t`, else the first owner.
    pub fn owner_at(&self, t: DateTime<Utc>) -> Option<&RepId> {
        self.owner_changes
            .iter()
            .rfind(|(when, _)| *when <= t)
            .or_else(|| self.owner_changes.first())
            .map(|(_, rep)| rep)
    }

    /// The deal shown as the customer's current one: the latest-opened open deal, else the
    /// latest won deal, else the latest deal.
    pub fn current_deal(&self) -> Option<&DealWalk> {
        let latest = |status| self.deals.iter().rev().find(|d| d.status == status);
        latest(DealStatus::Open)
            .or_else(|| latest(DealStatus::Won))
            .or_else(|| self.deals.last())
    }
}

/// Walks a customer's events (stream order; corrections included, they are applied here).
pub fn walk(policy: &Policy, customer_id: &CustomerId, events: &[LedgerEvent]) -> Walk {
    let by_id: HashMap<uuid::Uuid, &LedgerEvent> = events.iter().map(|e| (e.event_id, e)).collect();
    let effective = effective_history(events.iter().map(|e| (e.event_id, &e.payload)));
    let mut w = Walk {
        customer_id: customer_id.clone(),
        company: None,
        owner: None,
        owner_changes: Vec::new(),
        first_seen: None,
        last_interaction: None,
        last_position: events.iter().map(|e| e.position).max().unwrap_or(0),
        effective_count: 0,
        deals: Vec::new(),
        activities: Vec::new(),
        obligations: Vec::new(),
        values: BTreeMap::new(),
        latest_win_at: None,
        followup_since_win: false,
        reengaged_since_win: false,
        reengagements: 0,
    };
    let dormant = policy.dormant_after();
    for (id, payload) in effective {
        let Some(env) = by_id.get(&id) else { continue };
        w.effective_count += 1;
        let t = env.occurred_at;
        let owner_before = w.owner.clone();
        let mut applied = true;
        let mut value: Option<Money> = None;
        let mut close_seconds = None;
        let (mut from_rep, mut to_rep) = (None, None);

        if payload.deal_id().is_some() {
            // A won customer that comes back after a dormant spell is re-engaged.
            if let (Some(_), Some(last)) = (w.latest_win_at, w.last_interaction)
                && t - last > dormant
            {
                w.reengagements += 1;
                w.reengaged_since_win = true;
            }
            w.last_interaction = Some(w.last_interaction.map_or(t, |l| l.max(t)));
        }

        match payload {
            EventPayload::LeadSourced(e) => {
                if w.owner.is_none() {
                    w.owner = Some(e.rep_id.clone());
                    w.owner_changes.push((t, e.rep_id.clone()));
                }
                if w.company.is_none() {
                    w.company = Some(e.company.clone());
                }
                w.first_seen = Some(w.first_seen.map_or(t, |f| f.min(t)));
                if w.deals.iter().any(|d| d.id == e.deal_id) {
                    applied = false;
                } else {
                    w.deals.push(DealWalk {
                        id: e.deal_id.clone(),
                        source: e.source,
                        opened_at: t,
                        owner_at_open: w.owner.clone().unwrap_or_else(|| e.rep_id.clone()),
                        status: DealStatus::Open,
                        stays: vec![Stay {
                            stage: Stage::Lead,
                            entered_at: t,
                            entry: EntryKind::Opened,
                            from: None,
                            exited_at: None,
                            exit: None,
                            to: None,
                            lost_reason: None,
                        }],
                        last_activity: t,
                        won_at: None,
                        won_value: None,
                        won_owner: None,
                        lost_at: None,
                        lost_reason: None,
                        reopen_count: 0,
                    });
                }
            }
            EventPayload::FirstVisitMade(_)
            | EventPayload::DemoGiven(_)
            | EventPayload::NegotiationHeld(_)
            | EventPayload::ContractSigned(_) => {
                let stage = payload.stage_entered().unwrap_or(Stage::Lead);
                let deal_id = payload.deal_id().cloned();
                let deal = deal_id
                    .as_ref()
                    .and_then(|id| w.deals.iter_mut().find(|d| &d.id == id));
                match deal {
                    Some(deal) if deal.status == DealStatus::Open => {
                        deal.last_activity = deal.last_activity.max(t);
                        let current = deal.stage();
                        if current != stage {
                            let forward = policy.rank(stage) > policy.rank(current);
                            let (exit, entry) = if forward {
                                (ExitKind::Advanced, EntryKind::Advanced)
                            } else {
                                (ExitKind::MovedBack, EntryKind::MovedBack)
                            };
                            deal.close_stay(t, exit, Some(stage));
                            deal.stays.push(Stay {
                                stage,
                                entered_at: t,
                                entry,
                                from: Some(current),
                                exited_at: None,
                                exit: None,
                                to: None,
                                lost_reason: None,
                            });
                        }
                        if let EventPayload::ContractSigned(c) = payload {
                            deal.status = DealStatus::Won;
                            deal.won_at = Some(t);
                            deal.won_value = Some(c.value);
                            deal.won_owner = owner_before.clone();
                            value = Some(c.value);
                            close_seconds = Some((t - deal.opened_at).num_seconds().max(0));
                            let totals = w
                                .values
                                .entry(c.value.currency.as_str().to_string())
                                .or_default();
                            totals.contracts_minor =
                                totals.contracts_minor.saturating_add(c.value.amount_minor);
                            totals.contract_count += 1;
                            w.latest_win_at = Some(t);
                            w.followup_since_win = false;
                            w.reengaged_since_win = false;
                        }
                    }
                    _ => applied = false,
                }
            }
            EventPayload::FollowUpLogged(f) => {
                let won = w
                    .deals
                    .iter_mut()
                    .find(|d| d.id == f.deal_id && d.status == DealStatus::Won);
                match won {
                    Some(deal) => {
                        deal.last_activity = deal.last_activity.max(t);
                        w.followup_since_win = true;
                        for o in w
                            .obligations
                            .iter_mut()
                            .filter(|o| o.fulfilled_at.is_none())
                        {
                            o.fulfilled_at = Some(t);
                        }
                        if let Some(due) = f.next_due_on {
                            w.obligations.push(Obligation {
                                event_id: id.to_string(),
                                deal_id: f.deal_id.clone(),
                                due_on: due,
                                fulfilled_at: None,
                            });
                        }
                        if let Some(order) = f.order_value {
                            value = Some(order);
                            let totals = w
                                .values
                                .entry(order.currency.as_str().to_string())
                                .or_default();
                            totals.repeat_orders_minor = totals
                                .repeat_orders_minor
                                .saturating_add(order.amount_minor);
                        }
                    }
                    None => applied = false,
                }
            }
            EventPayload::DealLost(l) => {
                match w
                    .deals
                    .iter_mut()
                    .find(|d| d.id == l.deal_id && d.status == DealStatus::Open)
                {
                    Some(deal) => {
                        deal.last_activity = deal.last_activity.max(t);
                        deal.close_stay(t, ExitKind::Lost, None);
                        if let Some(stay) = deal.stays.last_mut() {
                            stay.lost_reason = Some(l.reason);
                        }
                        deal.status = DealStatus::Lost;
                        deal.lost_at = Some(t);
                        deal.lost_reason = Some(l.reason);
                    }
                    None => applied = false,
                }
            }
            EventPayload::DealReopened(r) => {
                match w
                    .deals
                    .iter_mut()
                    .find(|d| d.id == r.deal_id && d.status == DealStatus::Lost)
                {
                    Some(deal) => {
                        let stage = deal.stage();
                        deal.last_activity = deal.last_activity.max(t);
                        deal.status = DealStatus::Open;
                        deal.lost_at = None;
                        deal.lost_reason = None;
                        deal.reopen_count += 1;
                        deal.stays.push(Stay {
                            stage,
                            entered_at: t,
                            entry: EntryKind::Reopened,
                            from: None,
                            exited_at: None,
                            exit: None,
                            to: None,
                            lost_reason: None,
                        });
                    }
                    None => applied = false,
                }
            }
            EventPayload::CustomerReassigned(r) => {
                from_rep = Some(r.from_rep_id.to_string());
                to_rep = Some(r.to_rep_id.to_string());
                if w.owner.is_some() {
                    w.owner = Some(r.to_rep_id.clone());
                    w.owner_changes.push((t, r.to_rep_id.clone()));
                } else {
                    applied = false;
                }
            }
            // `effective_history` leaves corrections out.
            EventPayload::EventCorrected(_) => continue,
        }

        w.activities.push(ActivityRow {
            customer_id: customer_id.to_string(),
            event_id: id.to_string(),
            position: env.position,
            occurred_at: t,
            event_type: payload.event_type().as_str().to_string(),
            deal_id: payload.deal_id().map(|d| d.to_string()),
            performer_rep: payload.rep_id().to_string(),
            owner_rep: owner_before
                .or_else(|| w.owner.clone())
                .map_or_else(|| payload.rep_id().to_string(), |r| r.to_string()),
            value_minor: value.map(|v| v.amount_minor),
            currency: value.map(|v| v.currency.as_str().to_string()),
            close_seconds,
            from_rep,
            to_rep,
            applied,
        });
    }
    w
}

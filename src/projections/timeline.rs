//! The walk over one customer's effective history (corrections applied) that every projection
//! derives its rows from. Pure: events in, a [`Walk`] out.
//!
//! Events are walked in stream order (the order the rules decided them in); durations use
//! `occurred_at`. Each event is first decided again by the rules
//! ([`CustomerHistory::admit`]) at its place in the history given: in the whole stream every
//! event passes (the rules accepted it when it was recorded), while in a filtered one (`--as-of`,
//! `--known-at`) an event whose predecessors fell outside the filter may be refused, and is then
//! left out as if it had never been recorded: neither counted nor booked elsewhere. Deals move
//! through the domain's deal state machine ([`crate::domain::deal`]), the same the rules decide
//! with.
//!
//! "Latest" means the greatest `occurred_at`, stream order breaking ties: the current deal, the
//! latest contract, and what happened since it (retention, re-engagement) are read on that time
//! axis, not in the order events happened to be logged.

use super::model::{ActivityRow, DealStatus, EntryKind, ExitKind};
use super::policy::Policy;
use crate::domain::deal::{self, DealEvent, DealState, DealTransition};
use crate::domain::rules::{CustomerHistory, effective_history};
use crate::domain::{
    CustomerId, DealId, EventPayload, FollowUpLogged, LeadSource, LeadSourced, LedgerEvent,
    LostReason, Money, Qualification, RepId, Stage,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
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
    /// The lead's qualification worksheet, when it had one.
    pub qualification: Option<Qualification>,
    /// The buying intent judged at the deal's first visit (the earliest first visit walked).
    pub first_visit_intent: Option<u8>,
}

impl DealWalk {
    /// The stage the deal is in (or was lost in).
    pub fn stage(&self) -> Stage {
        self.stays.last().map_or(Stage::Lead, |s| s.stage)
    }

    /// The deal's state in the deal state machine.
    pub fn state(&self) -> DealState {
        DealState {
            stage: self.stage(),
            status: self.status,
        }
    }

    /// A deal opened by its lead at `t`; `owner` owns the customer (the lead's rep when none
    /// does yet).
    fn opened(e: &LeadSourced, owner: Option<&RepId>, t: DateTime<Utc>) -> DealWalk {
        DealWalk {
            id: e.deal_id.clone(),
            source: e.source,
            opened_at: t,
            owner_at_open: owner.unwrap_or(&e.rep_id).clone(),
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
            qualification: e.qualification,
            first_visit_intent: None,
        }
    }

    /// A stage interaction at `t` moved the deal from `from` to `to`: a new stay unless it stays
    /// in its stage, an advance or a move back in the policy's stage order.
    fn enter(&mut self, policy: &Policy, from: Stage, to: Stage, t: DateTime<Utc>) {
        if from != to {
            let (exit, entry) = if policy.rank(to) > policy.rank(from) {
                (ExitKind::Advanced, EntryKind::Advanced)
            } else {
                (ExitKind::MovedBack, EntryKind::MovedBack)
            };
            self.close_stay(t, exit, Some(to));
            self.stays.push(Stay {
                stage: to,
                entered_at: t,
                entry,
                from: Some(from),
                exited_at: None,
                exit: None,
                to: None,
                lost_reason: None,
            });
        }
    }

    /// The deal was lost at `t`, in the stage it is in.
    fn lose(&mut self, reason: LostReason, t: DateTime<Utc>) {
        self.close_stay(t, ExitKind::Lost, None);
        if let Some(stay) = self.stays.last_mut() {
            stay.lost_reason = Some(reason);
        }
        self.lost_at = Some(t);
        self.lost_reason = Some(reason);
    }

    /// The lost deal was reopened at `t`, in the stage `at` it was lost in.
    fn reopen(&mut self, at: Stage, t: DateTime<Utc>) {
        self.lost_at = None;
        self.lost_reason = None;
        self.reopen_count += 1;
        self.stays.push(Stay {
            stage: at,
            entered_at: t,
            entry: EntryKind::Reopened,
            from: None,
            exited_at: None,
            exit: None,
            to: None,
            lost_reason: None,
        });
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
    /// Events of this history the rules refuse at their place in it (only a filtered history
    /// has any): left out of every row.
    pub refused: u32,
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
    /// latest-won deal, else the latest-opened deal. Latest by `occurred_at` (of the lead, of
    /// the contract); of two at the same instant, the later in the stream.
    pub fn current_deal(&self) -> Option<&DealWalk> {
        // `deals` is in stream order of the leads, so the index breaks ties by stream order.
        let latest = |status: Option<DealStatus>, at: fn(&DealWalk) -> Option<DateTime<Utc>>| {
            self.deals
                .iter()
                .enumerate()
                .filter(|(_, d)| status.is_none_or(|s| d.status == s))
                .max_by_key(|(i, d)| (at(d), *i))
                .map(|(_, d)| d)
        };
        latest(Some(DealStatus::Open), |d| Some(d.opened_at))
            .or_else(|| latest(Some(DealStatus::Won), |d| d.won_at))
            .or_else(|| latest(None, |d| Some(d.opened_at)))
    }
}

/// What an applied event adds to its activity row.
#[derive(Debug, Default)]
struct Credit {
    value: Option<Money>,
    close_seconds: Option<i64>,
}

impl Walk {
    /// A customer before its first event.
    fn empty(customer_id: &CustomerId, last_position: u64) -> Walk {
        Walk {
            customer_id: customer_id.clone(),
            company: None,
            owner: None,
            owner_changes: Vec::new(),
            refused: 0,
            first_seen: None,
            last_interaction: None,
            last_position,
            effective_count: 0,
            deals: Vec::new(),
            activities: Vec::new(),
            obligations: Vec::new(),
            values: BTreeMap::new(),
            latest_win_at: None,
            followup_since_win: false,
            reengaged_since_win: false,
            reengagements: 0,
        }
    }

    /// Deal `i` was won at `t` by a contract of `value`, signed while `owner` owned the
    /// customer: the customer's contract totals and win count. Returns the activity's credit.
    fn win(&mut self, i: usize, value: Money, t: DateTime<Utc>, owner: &Option<RepId>) -> Credit {
        let deal = &mut self.deals[i];
        deal.won_at = Some(t);
        deal.won_value = Some(value);
        deal.won_owner = owner.clone();
        let close_seconds = Some((t - deal.opened_at).num_seconds().max(0));
        let totals = self
            .values
            .entry(value.currency.as_str().to_string())
            .or_default();
        totals.contracts_minor = totals.contracts_minor.saturating_add(value.amount_minor);
        totals.contract_count += 1;
        Credit {
            value: Some(value),
            close_seconds,
        }
    }

    /// A follow-up of a won deal at `t`: it meets every due date still open, sets the next one
    /// and may carry a repeat order, whose value it returns.
    fn follow_up(&mut self, id: uuid::Uuid, f: &FollowUpLogged, t: DateTime<Utc>) -> Option<Money> {
        for o in self
            .obligations
            .iter_mut()
            .filter(|o| o.fulfilled_at.is_none())
        {
            o.fulfilled_at = Some(t);
        }
        if let Some(due) = f.next_due_on {
            self.obligations.push(Obligation {
                event_id: id.to_string(),
                deal_id: f.deal_id.clone(),
                due_on: due,
                fulfilled_at: None,
            });
        }
        let order = f.order_value?;
        let totals = self
            .values
            .entry(order.currency.as_str().to_string())
            .or_default();
        totals.repeat_orders_minor = totals
            .repeat_orders_minor
            .saturating_add(order.amount_minor);
        Some(order)
    }
}

/// An interaction of the customer (an event of one of its deals), for the signals read on the
/// time axis: the latest contract, and what happened since.
struct Touch {
    at: DateTime<Utc>,
    /// Place in the effective history: stream order, to break ties.
    seq: usize,
    kind: TouchKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TouchKind {
    /// A contract that won its deal.
    Win,
    /// A follow-up of a won deal.
    FollowUp,
    Other,
}

/// Walks a customer's events (stream order; corrections included, they are applied here).
pub fn walk(policy: &Policy, customer_id: &CustomerId, events: &[LedgerEvent]) -> Walk {
    // Each event decided again where it stands in this history; the refused are left out.
    let mut rules = CustomerHistory::new(customer_id.clone());
    let admitted: Vec<&LedgerEvent> = events
        .iter()
        .filter(|e| rules.admit(e.event_id, &e.payload).is_ok())
        .collect();
    let by_id: HashMap<uuid::Uuid, &LedgerEvent> =
        admitted.iter().map(|e| (e.event_id, *e)).collect();
    let effective = effective_history(admitted.iter().map(|e| (e.event_id, &e.payload)));
    let last_position = admitted.iter().map(|e| e.position).max().unwrap_or(0);
    let mut w = Walk::empty(customer_id, last_position);
    w.refused = (events.len() - admitted.len()) as u32;
    let mut touches = Vec::new();
    for (seq, (id, payload)) in effective.into_iter().enumerate() {
        let Some(env) = by_id.get(&id) else { continue };
        // An erasure of personal data is no interaction and changes no report: projections
        // never read personal data, so erasing it must not move a number.
        if matches!(payload, EventPayload::PersonalDataErased(_)) {
            continue;
        }
        w.effective_count += 1;
        let t = env.occurred_at;
        let owner_before = w.owner.clone();
        let mut applied = true;
        let mut credit = Credit::default();
        let (mut from_rep, mut to_rep) = (None, None);

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
            _ => {}
        }
        if let Some(event) = DealEvent::of(payload) {
            match step_deal(&mut w, policy, (id, payload, t), event, &owner_before) {
                Some(c) => credit = c,
                None => applied = false,
            }
            let kind = match payload {
                _ if !applied => TouchKind::Other,
                EventPayload::ContractSigned(_) => TouchKind::Win,
                EventPayload::FollowUpLogged(_) => TouchKind::FollowUp,
                _ => TouchKind::Other,
            };
            touches.push(Touch { at: t, seq, kind });
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
            value_minor: credit.value.map(|v| v.amount_minor),
            currency: credit.value.map(|v| v.currency.as_str().to_string()),
            close_seconds: credit.close_seconds,
            from_rep,
            to_rep,
            applied,
        });
    }
    read_since_latest_win(&mut w, policy.dormant_after(), touches);
    w
}

/// The last interaction, the latest contract and what happened since it, read in time order
/// (`occurred_at`, then stream order): a won customer that comes back after a gap longer than
/// `dormant` is re-engaged; a follow-up after the latest contract retains it.
fn read_since_latest_win(w: &mut Walk, dormant: Duration, mut touches: Vec<Touch>) {
    touches.sort_by_key(|t| (t.at, t.seq));
    for touch in touches {
        if let (Some(_), Some(last)) = (w.latest_win_at, w.last_interaction)
            && touch.at - last > dormant
        {
            w.reengagements += 1;
            w.reengaged_since_win = true;
        }
        w.last_interaction = Some(touch.at);
        match touch.kind {
            TouchKind::Win => {
                w.latest_win_at = Some(touch.at);
                w.followup_since_win = false;
                w.reengaged_since_win = false;
            }
            TouchKind::FollowUp => w.followup_since_win = true,
            TouchKind::Other => {}
        }
    }
}

/// Moves an event's deal through the deal state machine and records the step in the walk.
/// `None` when the machine refuses the event, which the rules' admission above rules out but for
/// histories recorded under other rules: the event then changes no deal.
fn step_deal(
    w: &mut Walk,
    policy: &Policy,
    (id, payload, t): (uuid::Uuid, &EventPayload, DateTime<Utc>),
    event: DealEvent,
    owner_before: &Option<RepId>,
) -> Option<Credit> {
    let deal_id = payload.deal_id().expect("deal events name a deal");
    let index = w.deals.iter().position(|d| &d.id == deal_id);
    let state = index.map(|i| w.deals[i].state());
    // The rules admitted the event, with the same machine: a refusal here is a history that
    // was recorded under other rules (the event then changes no deal, `applied = false`).
    let step = deal::transition(state, event).ok()?;
    let mut credit = Credit::default();
    let i = match (index, step.transition) {
        (None, DealTransition::Opened) => {
            let EventPayload::LeadSourced(e) = payload else {
                unreachable!("only a lead opens a deal")
            };
            w.deals.push(DealWalk::opened(e, w.owner.as_ref(), t));
            w.deals.len() - 1
        }
        (Some(i), transition) => {
            let deal = &mut w.deals[i];
            deal.last_activity = deal.last_activity.max(t);
            match (transition, payload) {
                (DealTransition::Entered { from, to }, _) => {
                    deal.enter(policy, from, to, t);
                    if let EventPayload::FirstVisitMade(v) = payload {
                        deal.first_visit_intent.get_or_insert(v.intent_level);
                    }
                    if let EventPayload::ContractSigned(c) = payload {
                        credit = w.win(i, c.value, t, owner_before);
                    }
                }
                (DealTransition::FollowedUp, EventPayload::FollowUpLogged(f)) => {
                    credit.value = w.follow_up(id, f, t);
                }
                (DealTransition::Lost { .. }, EventPayload::DealLost(l)) => deal.lose(l.reason, t),
                (DealTransition::Reopened { at }, _) => deal.reopen(at, t),
                (transition, _) => unreachable!("{transition:?} from {payload:?}"),
            }
            i
        }
        (None, transition) => unreachable!("{transition:?} of a deal not walked"),
    };
    // The status is the machine's; the stage is the last stay's, which the bookkeeping above
    // must have put where the machine says.
    w.deals[i].status = step.state.status;
    assert_eq!(w.deals[i].state(), step.state, "deal {deal_id}");
    Some(credit)
}

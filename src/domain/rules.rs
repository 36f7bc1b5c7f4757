//! The decision: may this event be recorded, given the customer's own history?
//!
//! Each customer is decided alone, from its own stream, so that decisions never need a lock
//! across customers: the store's expected revision guards the stream against concurrent writers.
//! Corrections are part of the history: a retracted event no longer counts, an amended one counts
//! with its replacement data, and a correction is refused if the history it would leave could not
//! have been recorded.

use super::deal::{self, DealEvent, DealRefusal};
use super::events::{Correction, EventPayload, EventType, LedgerEvent, ProposedEvent};
use super::ids::{CustomerId, DealId, RepId};
use crate::limits::CLOCK_SKEW_TOLERANCE_SECONDS;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

// The deal types were defined here before the state machine had a module of its own.
pub use super::deal::{DealState, DealStatus};

/// Why an event may not be recorded. Nothing is written when a decision fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error(
        "customer {customer} is unknown: its first event must be LeadSourced, not {event_type}"
    )]
    UnknownCustomer {
        customer: CustomerId,
        event_type: EventType,
    },
    #[error(
        "occurred_at {occurred_at} is in the future (the ledger's time is {now}; at most {CLOCK_SKEW_TOLERANCE_SECONDS} s of clock skew is tolerated)"
    )]
    OccurredInFuture {
        occurred_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error(
        "customer {customer}'s leads were all retracted, so it is unknown again and {event_type} cannot follow: amend a retracted LeadSourced back with an EventCorrected naming it, or record a new LeadSourced"
    )]
    LeadRetracted {
        customer: CustomerId,
        event_type: EventType,
    },
    #[error("deal {deal} already exists for customer {customer}; a new lead needs a new deal_id")]
    DealExists { customer: CustomerId, deal: DealId },
    #[error("deal {deal} is unknown for customer {customer}; a deal starts with LeadSourced")]
    UnknownDeal { customer: CustomerId, deal: DealId },
    #[error("deal {deal} is lost; record DealReopened before {event_type}")]
    DealIsLost { deal: DealId, event_type: EventType },
    #[error("deal {deal} is already won; {event_type} does not apply to a won deal")]
    DealIsWon { deal: DealId, event_type: EventType },
    #[error("deal {deal} is at stage {stage}; follow-ups maintain won deals")]
    FollowUpBeforeWin { deal: DealId, stage: &'static str },
    #[error("DealLost names stage {claimed} but deal {deal} is at stage {actual}")]
    LostStageMismatch {
        deal: DealId,
        claimed: &'static str,
        actual: &'static str,
    },
    #[error("deal {deal} is not lost; only a lost deal can be reopened")]
    DealNotLost { deal: DealId },
    #[error("a reassignment must name a different rep; {rep} already owns customer {customer}")]
    SameRep { customer: CustomerId, rep: RepId },
    #[error("customer {customer} is owned by {owner}, not by from_rep_id {claimed}")]
    NotTheOwner {
        customer: CustomerId,
        owner: RepId,
        claimed: RepId,
    },
    #[error(
        "field /data/corrected_event_id: event {event_id} is not in customer {customer}'s history; a correction names an event of the same customer"
    )]
    UnknownCorrectedEvent {
        customer: CustomerId,
        event_id: Uuid,
    },
    #[error(
        "field /data/corrected_event_id: event {event_id} is itself a correction; correct the original event instead"
    )]
    CorrectingACorrection { event_id: Uuid },
    #[error(
        "field /data/corrected_event_id: event {event_id} is an erasure of personal data; the key it destroyed cannot be restored, so an erasure is never corrected"
    )]
    CorrectingAnErasure { event_id: Uuid },
    #[error(
        "field /data/correction/replacement/type: the replacement is a {replacement}, but event {event_id} is a {original}; an amendment keeps the type"
    )]
    ReplacementTypeMismatch {
        event_id: Uuid,
        original: EventType,
        replacement: EventType,
    },
    #[error(
        "field /data/correction: correcting event {event_id} would leave a history that could not have been recorded: {reason}"
    )]
    CorrectionBreaksHistory { event_id: Uuid, reason: String },
}

/// What the rules need of one event: its type and the few fields they read. A history keeps
/// these instead of whole payloads (company names, contacts, visit notes), which a bulk import
/// would otherwise hold for every event of every customer it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fact {
    event_type: EventType,
    kind: FactKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FactKind {
    /// LeadSourced: opens the deal; its rep owns a new customer.
    Lead {
        deal: DealId,
        rep: RepId,
    },
    /// Every other event on a deal, as the deal state machine reads it.
    Deal {
        deal: DealId,
        event: DealEvent,
    },
    Reassigned {
        from: RepId,
        to: RepId,
    },
    Corrected {
        event_id: Uuid,
        correction: FactCorrection,
    },
    /// PersonalDataErased: changes nothing the rules read.
    Erased,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FactCorrection {
    Retract,
    Amend(Box<Fact>),
}

impl Fact {
    /// The facts of a payload, copying the few identifiers they keep.
    fn of(payload: &EventPayload) -> Fact {
        let kind = match payload {
            EventPayload::LeadSourced(e) => FactKind::Lead {
                deal: e.deal_id.clone(),
                rep: e.rep_id.clone(),
            },
            EventPayload::FirstVisitMade(_)
            | EventPayload::DemoGiven(_)
            | EventPayload::NegotiationHeld(_)
            | EventPayload::ContractSigned(_)
            | EventPayload::FollowUpLogged(_)
            | EventPayload::DealLost(_)
            | EventPayload::DealReopened(_) => FactKind::Deal {
                deal: payload.deal_id().expect("deal events name a deal").clone(),
                event: DealEvent::of(payload).expect("deal events are deal events"),
            },
            EventPayload::CustomerReassigned(e) => FactKind::Reassigned {
                from: e.from_rep_id.clone(),
                to: e.to_rep_id.clone(),
            },
            EventPayload::PersonalDataErased(_) => FactKind::Erased,
            EventPayload::EventCorrected(c) => FactKind::Corrected {
                event_id: c.corrected_event_id,
                correction: match &c.correction {
                    Correction::Retract => FactCorrection::Retract,
                    Correction::Amend { replacement } => {
                        FactCorrection::Amend(Box::new(Fact::of(replacement)))
                    }
                },
            },
        };
        Fact {
            event_type: payload.event_type(),
            kind,
        }
    }

    fn is_correction(&self) -> bool {
        matches!(self.kind, FactKind::Corrected { .. })
    }
}

/// What the rules know about a customer, folded from its effective history.
#[derive(Debug, Clone, Default)]
struct Derived {
    known: bool,
    owner: Option<RepId>,
    deals: BTreeMap<DealId, DealState>,
}

impl Derived {
    /// Checks that an event with these facts may follow the history folded so far (time is
    /// checked elsewhere).
    fn check(&self, customer: &CustomerId, fact: &Fact) -> Result<(), RuleViolation> {
        let event_type = fact.event_type;
        if !self.known && event_type != EventType::LeadSourced {
            return Err(RuleViolation::UnknownCustomer {
                customer: customer.clone(),
                event_type,
            });
        }
        match &fact.kind {
            FactKind::Lead { deal, .. } => self
                .step(customer, deal, DealEvent::Open, event_type)
                .map(drop),
            FactKind::Deal { deal, event } => {
                self.step(customer, deal, *event, event_type).map(drop)
            }
            FactKind::Reassigned { from, to } => {
                // `known` implies an owner: the first LeadSourced sets it.
                let owner = self.owner.as_ref().expect("a known customer has an owner");
                if from != owner {
                    return Err(RuleViolation::NotTheOwner {
                        customer: customer.clone(),
                        owner: owner.clone(),
                        claimed: from.clone(),
                    });
                }
                if to == from {
                    return Err(RuleViolation::SameRep {
                        customer: customer.clone(),
                        rep: to.clone(),
                    });
                }
                Ok(())
            }
            // Corrections are checked against the whole history in `CustomerHistory::decide`.
            FactKind::Corrected { .. } | FactKind::Erased => Ok(()),
        }
    }

    /// The deal state machine's step for an event on `deal`, its refusal told as the rules tell
    /// it.
    fn step(
        &self,
        customer: &CustomerId,
        deal: &DealId,
        event: DealEvent,
        event_type: EventType,
    ) -> Result<deal::DealStep, RuleViolation> {
        deal::transition(self.deals.get(deal).copied(), event).map_err(|refusal| {
            let deal = deal.clone();
            match refusal {
                DealRefusal::Exists => RuleViolation::DealExists {
                    customer: customer.clone(),
                    deal,
                },
                DealRefusal::Unknown => RuleViolation::UnknownDeal {
                    customer: customer.clone(),
                    deal,
                },
                DealRefusal::IsLost => RuleViolation::DealIsLost { deal, event_type },
                DealRefusal::IsWon => RuleViolation::DealIsWon { deal, event_type },
                DealRefusal::NotWon { stage } => RuleViolation::FollowUpBeforeWin {
                    deal,
                    stage: stage.as_str(),
                },
                DealRefusal::LostStageMismatch { claimed, actual } => {
                    RuleViolation::LostStageMismatch {
                        deal,
                        claimed: claimed.as_str(),
                        actual: actual.as_str(),
                    }
                }
                DealRefusal::NotLost => RuleViolation::DealNotLost { deal },
            }
        })
    }

    /// Folds one effective (non-correction) event. The history was decided event by event, so
    /// the machine accepts it; an event it refuses here (never expected) changes no deal, as in
    /// the projections' walk.
    fn apply(&mut self, fact: &Fact) {
        let (deal, event) = match &fact.kind {
            FactKind::Lead { deal, rep } => {
                self.known = true;
                self.owner.get_or_insert_with(|| rep.clone());
                (deal, DealEvent::Open)
            }
            FactKind::Deal { deal, event } => (deal, *event),
            FactKind::Reassigned { to, .. } => {
                self.owner = Some(to.clone());
                return;
            }
            FactKind::Corrected { .. } | FactKind::Erased => return,
        };
        if let Ok(step) = deal::transition(self.deals.get(deal).copied(), event) {
            self.deals.insert(deal.clone(), step.state);
        }
    }
}

/// [`effective_history`] over facts: the same rules (latest correction wins, retracted events
/// and corrections left out, amended events replaced).
fn effective_facts<'a>(events: impl Iterator<Item = (Uuid, &'a Fact)> + Clone) -> Vec<&'a Fact> {
    let mut latest: HashMap<Uuid, &'a FactCorrection> = HashMap::new();
    for (_, fact) in events.clone() {
        if let FactKind::Corrected {
            event_id,
            correction,
        } = &fact.kind
        {
            latest.insert(*event_id, correction);
        }
    }
    events
        .filter(|(_, f)| !f.is_correction())
        .filter_map(|(id, f)| match latest.get(&id) {
            None => Some(f),
            Some(FactCorrection::Retract) => None,
            Some(FactCorrection::Amend(replacement)) => Some(&**replacement),
        })
        .collect()
}

/// Applies corrections to a history: retracted events disappear, amended events carry their
/// replacement, and correction events themselves are left out, as are administrative events
/// (erasures: they are not part of the sale). The latest correction of an event
/// wins. Projections and rules both read history through this one function.
pub fn effective_history<'a>(
    events: impl Iterator<Item = (Uuid, &'a EventPayload)> + Clone,
) -> Vec<(Uuid, &'a EventPayload)> {
    let mut latest: HashMap<Uuid, &'a Correction> = HashMap::new();
    for (_, payload) in events.clone() {
        if let EventPayload::EventCorrected(c) = payload {
            latest.insert(c.corrected_event_id, &c.correction);
        }
    }
    events
        .filter(|(_, p)| !matches!(p, EventPayload::EventCorrected(_)) && !p.is_administrative())
        .filter_map(|(id, p)| match latest.get(&id) {
            None => Some((id, p)),
            Some(Correction::Retract) => None,
            Some(Correction::Amend { replacement }) => Some((id, &**replacement)),
        })
        .collect()
}

/// A customer's history, kept to decide the next event: the facts of each event (not its whole
/// payload) and what they fold to.
#[derive(Debug, Clone)]
pub struct CustomerHistory {
    customer: CustomerId,
    events: Vec<(Uuid, Fact)>,
    derived: Derived,
    /// The stream revision of the last event, `None` for a new customer.
    revision: Option<u64>,
}

impl CustomerHistory {
    /// An empty history: the customer is not known yet.
    pub fn new(customer: CustomerId) -> Self {
        Self {
            customer,
            events: Vec::new(),
            derived: Derived::default(),
            revision: None,
        }
    }

    /// Rebuilds a history from recorded events of one customer, in stream order.
    pub fn from_events<'a>(
        customer: CustomerId,
        events: impl IntoIterator<Item = &'a LedgerEvent>,
    ) -> Self {
        let mut history = Self::new(customer);
        for event in events {
            assert_eq!(event.customer_id, history.customer, "one customer's stream");
            history.push(event.event_id, Fact::of(&event.payload));
            history.revision = Some(event.revision);
        }
        history
    }

    /// The customer.
    pub fn customer(&self) -> &CustomerId {
        &self.customer
    }

    /// The stream revision of the last event folded, `None` when the stream is empty.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// Whether the customer is known (has a lead).
    pub fn is_known(&self) -> bool {
        self.derived.known
    }

    /// The rep who owns the customer now.
    pub fn owner(&self) -> Option<&RepId> {
        self.derived.owner.as_ref()
    }

    /// The state of a deal.
    pub fn deal(&self, deal: &DealId) -> Option<DealState> {
        self.derived.deals.get(deal).copied()
    }

    /// Whether an event id is already in this history.
    pub fn contains(&self, event_id: Uuid) -> bool {
        self.events.iter().any(|(id, _)| *id == event_id)
    }

    /// Decides whether `proposed` may be recorded now (`now` is the ledger's clock, or the
    /// given `recorded_at` for migrated history). Changes nothing.
    pub fn decide(
        &self,
        proposed: &ProposedEvent,
        now: DateTime<Utc>,
    ) -> Result<(), RuleViolation> {
        assert_eq!(
            proposed.customer_id, self.customer,
            "decided on the right stream"
        );
        if proposed.occurred_at > now + Duration::seconds(CLOCK_SKEW_TOLERANCE_SECONDS) {
            return Err(RuleViolation::OccurredInFuture {
                occurred_at: proposed.occurred_at,
                now,
            });
        }
        self.check(
            proposed.event_id,
            &proposed.payload,
            &Fact::of(&proposed.payload),
        )
    }

    /// Decides a recorded event again, by the rules but not the clock (whether it was in the
    /// future is a matter of when it was recorded, which does not change), and folds it when the
    /// rules accept it. This is how a filtered history (`--as-of`, `--known-at`) is read: each
    /// event is decided at its place in the stream, as if only the events that pass the filter
    /// had been recorded, and one the rules refuse there is left out.
    pub fn admit(&mut self, event_id: Uuid, payload: &EventPayload) -> Result<(), RuleViolation> {
        let fact = Fact::of(payload);
        self.check(event_id, payload, &fact)?;
        self.push(event_id, fact);
        self.revision = Some(self.revision.map_or(0, |r| r + 1));
        Ok(())
    }

    /// The rules (not the clock) for an event with these facts after this history.
    fn check(
        &self,
        event_id: Uuid,
        payload: &EventPayload,
        fact: &Fact,
    ) -> Result<(), RuleViolation> {
        // A customer whose every lead was retracted is unknown again, but its history is still
        // there: a correction of it (amending a lead back) is decided against that history, and
        // anything else is told why the customer is unknown.
        let retracted = !self.derived.known && !self.events.is_empty();
        match payload {
            // An erasure concerns any customer the ledger has events of, whatever its deals.
            EventPayload::PersonalDataErased(_) if !self.events.is_empty() => Ok(()),
            EventPayload::EventCorrected(c) => {
                if !retracted {
                    self.derived.check(&self.customer, fact)?;
                }
                self.check_correction(event_id, c, fact)
            }
            _ if retracted && fact.event_type != EventType::LeadSourced => {
                Err(RuleViolation::LeadRetracted {
                    customer: self.customer.clone(),
                    event_type: fact.event_type,
                })
            }
            _ => self.derived.check(&self.customer, fact),
        }
    }

    /// Folds an event that has been decided (or was already recorded).
    pub fn record(&mut self, event_id: Uuid, payload: EventPayload) {
        self.push(event_id, Fact::of(&payload));
        self.revision = Some(self.revision.map_or(0, |r| r + 1));
    }

    fn push(&mut self, event_id: Uuid, fact: Fact) {
        let is_correction = fact.is_correction();
        if !is_correction {
            self.derived.apply(&fact);
        }
        self.events.push((event_id, fact));
        if is_correction {
            self.derived = Derived::default();
            for f in effective_facts(self.events.iter().map(|(id, f)| (*id, f))) {
                self.derived.apply(f);
            }
        }
    }

    fn check_correction(
        &self,
        correction_id: Uuid,
        c: &super::events::EventCorrected,
        proposed: &Fact,
    ) -> Result<(), RuleViolation> {
        let Some((_, original)) = self
            .events
            .iter()
            .find(|(id, _)| *id == c.corrected_event_id)
        else {
            return Err(RuleViolation::UnknownCorrectedEvent {
                customer: self.customer.clone(),
                event_id: c.corrected_event_id,
            });
        };
        if original.is_correction() {
            return Err(RuleViolation::CorrectingACorrection {
                event_id: c.corrected_event_id,
            });
        }
        if original.event_type == EventType::PersonalDataErased {
            return Err(RuleViolation::CorrectingAnErasure {
                event_id: c.corrected_event_id,
            });
        }
        if let Correction::Amend { replacement } = &c.correction
            && replacement.event_type() != original.event_type
        {
            return Err(RuleViolation::ReplacementTypeMismatch {
                event_id: c.corrected_event_id,
                original: original.event_type,
                replacement: replacement.event_type(),
            });
        }
        // Replay the history as it would read after the correction: every remaining event must
        // still be one the rules would have accepted, in order.
        let all = self
            .events
            .iter()
            .map(|(id, f)| (*id, f))
            .chain(std::iter::once((correction_id, proposed)));
        let mut replay = Derived::default();
        for f in effective_facts(all) {
            replay.check(&self.customer, f).map_err(|e| {
                RuleViolation::CorrectionBreaksHistory {
                    event_id: c.corrected_event_id,
                    reason: e.to_string(),
                }
            })?;
            replay.apply(f);
        }
        Ok(())
    }
}

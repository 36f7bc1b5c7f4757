//! The events of the ledger: the six interactions of the customer-development process and the
//! lifecycle events around them. Each type's data is what that step produces (shared/DOMAIN.md).
//!
//! These types are the source of the published JSON Schemas in `schemas/`: a change here changes
//! the contract, and the schema tests fail until `schemas/` is regenerated.

use super::ids::{ActorId, CustomerId, DealId, RepId};
use super::money::Money;
use super::personal::PersonalText;
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Deserializes an integer and checks that it lies in `MIN..=MAX`, the range the published
/// schema states with `#[schemars(range)]`, so that the types refuse what the schema refuses.
pub(crate) fn in_range<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Into<u64> + Copy + std::fmt::Display,
{
    let value = T::deserialize(d)?;
    if !(MIN..=MAX).contains(&value.into()) {
        return Err(serde::de::Error::custom(format!(
            "{value} is out of range: expected {MIN} to {MAX}"
        )));
    }
    Ok(value)
}

/// Where a lead came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    Referral,
    TradeShow,
    Web,
    ColdCall,
    Partner,
    /// A new need found at an existing customer (a follow-up, a repeat order).
    ExistingCustomer,
    Other,
}

impl LeadSource {
    /// Every source, in a stable order.
    pub const ALL: [LeadSource; 7] = [
        LeadSource::Referral,
        LeadSource::TradeShow,
        LeadSource::Web,
        LeadSource::ColdCall,
        LeadSource::Partner,
        LeadSource::ExistingCustomer,
        LeadSource::Other,
    ];

    /// The wire name (`trade_show`).
    pub fn as_str(&self) -> &'static str {
        match self {
            LeadSource::Referral => "referral",
            LeadSource::TradeShow => "trade_show",
            LeadSource::Web => "web",
            LeadSource::ColdCall => "cold_call",
            LeadSource::Partner => "partner",
            LeadSource::ExistingCustomer => "existing_customer",
            LeadSource::Other => "other",
        }
    }
}

/// The stages of a deal, in pipeline order. `Won` is reached by a signed contract.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Lead,
    FirstVisit,
    Demo,
    Negotiation,
    Won,
}

impl Stage {
    /// Every stage in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Lead,
        Stage::FirstVisit,
        Stage::Demo,
        Stage::Negotiation,
        Stage::Won,
    ];

    /// The wire name (`first_visit`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Lead => "lead",
            Stage::FirstVisit => "first_visit",
            Stage::Demo => "demo",
            Stage::Negotiation => "negotiation",
            Stage::Won => "won",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The person at the customer who plays a buying role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuyingRole {
    Suggester,
    Influencer,
    User,
    DecisionMaker,
    Buyer,
}

/// A contact at the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Full name. Personal data.
    #[schemars(extend("x-personal-data" = true))]
    pub name: PersonalText,
    /// Personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-personal-data" = true))]
    pub phone: Option<PersonalText>,
    /// Personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-personal-data" = true))]
    pub email: Option<PersonalText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<BuyingRole>,
}

/// The seven yes/no criteria of the lead qualification worksheet (潜力客户工作表).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub customer_growing: bool,
    pub has_business_plan: bool,
    pub revenue_potential: bool,
    pub has_opportunities: bool,
    pub solution_fits: bool,
    pub we_are_competitive: bool,
    pub has_relationship: bool,
}

impl Qualification {
    /// The criteria's names, in the worksheet's order (the order of [`Qualification::met`]).
    pub const CRITERIA: [&'static str; 7] = [
        "customer_growing",
        "has_business_plan",
        "revenue_potential",
        "has_opportunities",
        "solution_fits",
        "we_are_competitive",
        "has_relationship",
    ];

    /// Whether each criterion is met, in the worksheet's order.
    pub fn met(&self) -> [bool; 7] {
        [
            self.customer_growing,
            self.has_business_plan,
            self.revenue_potential,
            self.has_opportunities,
            self.solution_fits,
            self.we_are_competitive,
            self.has_relationship,
        ]
    }

    /// The criteria met as bits: bit i is criterion i of [`Qualification::CRITERIA`].
    pub fn bits(&self) -> u32 {
        self.met()
            .into_iter()
            .enumerate()
            .map(|(i, met)| u32::from(met) << i)
            .sum()
    }

    /// The worksheet score: one point per criterion met (0 to 7).
    pub fn score(&self) -> u8 {
        self.met().into_iter().map(u8::from).sum()
    }
}

/// Step 1 (寻找客户): a lead with buying intent was found. Opens a deal; the first one also makes
/// the customer known to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadSourced {
    pub deal_id: DealId,
    /// The rep who sourced the lead; becomes the owner of a new customer.
    pub rep_id: RepId,
    pub source: LeadSource,
    /// The customer's company name.
    pub company: String,
    pub contact: Contact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<Qualification>,
    /// Free text about the lead. Personal data: it may name or describe a person (other free
    /// text, such as needs, objections and visit records, is business content and must not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-personal-data" = true))]
    pub notes: Option<PersonalText>,
}

/// Purpose, action plan and expected result of a planned visit, and what actually happened
/// (拜访目的 · 行动计划 · 预期结果 · 实际结果).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitRecord {
    pub purpose: String,
    pub action_plan: String,
    pub expected_result: String,
    pub actual_outcome: String,
}

/// Step 2 (初步拜访): the first visit, which digs out the customer's needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstVisitMade {
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub visit: VisitRecord,
    /// The needs and intent form (需求意向表): needs found.
    pub needs: Vec<String>,
    /// Buying intent judged at the visit, 1 (none) to 5 (ready to buy).
    #[schemars(range(min = 1, max = 5))]
    #[serde(deserialize_with = "in_range::<_, u8, 1, 5>")]
    pub intent_level: u8,
}

/// Step 3 (产品展示): a demo by a lead presenter, with an optional second presenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoGiven {
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub visit: VisitRecord,
    /// The lead presenter (主谈).
    pub lead_presenter: RepId,
    /// The second presenter (副谈).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_presenter: Option<RepId>,
    pub products_shown: Vec<String>,
    /// Buying roles present at the demo.
    #[serde(default)]
    pub attendees: Vec<BuyingRole>,
}

/// A named method of handling an objection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectionHandling {
    GiveFace,
    ChangeTime,
    ChangePlace,
    FindAcquaintance,
    GoHigherUp,
    ApplyPressure,
    LeaveRoom,
    FindCause,
}

/// One objection raised in a negotiation, and how it was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objection {
    pub objection: String,
    pub handling: ObjectionHandling,
    pub resolved: bool,
}

/// Step 4 (商务谈判): a negotiation round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NegotiationHeld {
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub visit: VisitRecord,
    pub objections: Vec<Objection>,
    /// A price concession offered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concession: Option<Money>,
}

/// Step 5 (签订合同): the contract closes the deal as won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSigned {
    pub deal_id: DealId,
    pub rep_id: RepId,
    /// The contract value.
    pub value: Money,
    /// Contract term in months.
    #[schemars(range(min = 1, max = 600))]
    #[serde(deserialize_with = "in_range::<_, u32, 1, 600>")]
    pub term_months: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_ref: Option<String>,
}

/// What a follow-up was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    CareCall,
    Visit,
    NewNeed,
    RepeatOrder,
    Complaint,
    NewProduct,
}

/// Step 6 (客户维护): a follow-up with a won customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpLogged {
    /// The won deal this follow-up maintains.
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub kind: FollowUpKind,
    pub outcome: String,
    /// When the next follow-up is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due_on: Option<NaiveDate>,
    /// A repeat order's value, for `repeat_order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_value: Option<Money>,
}

/// Why a deal was lost.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LostReason {
    Price,
    Competitor,
    NoBudget,
    NoDecision,
    Timing,
    ProductFit,
    Unresponsive,
    Other,
}

impl LostReason {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LostReason::Price => "price",
            LostReason::Competitor => "competitor",
            LostReason::NoBudget => "no_budget",
            LostReason::NoDecision => "no_decision",
            LostReason::Timing => "timing",
            LostReason::ProductFit => "product_fit",
            LostReason::Unresponsive => "unresponsive",
            LostReason::Other => "other",
        }
    }
}

/// An open deal was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealLost {
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub reason: LostReason,
    /// The stage the deal was in when it was lost (checked against the deal's history).
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// A lost deal came back; it resumes at the stage where it was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealReopened {
    pub deal_id: DealId,
    pub rep_id: RepId,
    pub reason: String,
}

/// The customer moves to another rep, with its whole history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerReassigned {
    /// Who made the reassignment (a manager, or the rep).
    pub rep_id: RepId,
    pub from_rep_id: RepId,
    pub to_rep_id: RepId,
    pub reason: String,
}

/// What a correction does to the event it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Correction {
    /// The event did not happen: projections ignore it from now on.
    Retract,
    /// The event happened with different data: projections use `replacement` instead. The
    /// replacement has the same type as the corrected event.
    Amend { replacement: Box<EventPayload> },
}

/// Amends or retracts an earlier event of the same customer by its id. Nothing is ever edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCorrected {
    pub rep_id: RepId,
    pub corrected_event_id: Uuid,
    pub correction: Correction,
    pub reason: String,
}

/// A customer's personal data was erased (`forget`): its data key was destroyed, so every
/// personal field of its events is unreadable from now on. The event itself holds no personal
/// data; who erased it is `recorded_by`, when is `recorded_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    /// Who carried out the erasure (the actor who ran `forget`).
    pub rep_id: RepId,
    /// Why (the request it honours, e.g. "GDPR art. 17 request 2026-114").
    pub reason: String,
    /// Sealed personal fields made unreadable by destroying the key.
    pub sealed_fields: u64,
    /// Personal fields stored in plaintext before encryption began, which this erasure could not
    /// reach (`migrate-personal-data` copies the log into a store where they are sealed).
    #[serde(default)]
    pub plaintext_fields: u64,
}

macro_rules! event_types {
    ($($name:ident => $version:expr),* $(,)?) => {
        /// The type of an event (KurrentDB convention: PascalCase).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum EventType { $($name),* }

        impl EventType {
            /// Every event type.
            pub const ALL: &'static [EventType] = &[$(EventType::$name),*];

            /// The type's name on the wire and in the store.
            pub fn as_str(&self) -> &'static str {
                match self { $(EventType::$name => stringify!($name)),* }
            }

            /// Parses a type name.
            pub fn parse(name: &str) -> Option<EventType> {
                match name { $(stringify!($name) => Some(EventType::$name),)* _ => None }
            }

            /// The schema version the current Rust type writes; older versions are upcast on read.
            pub fn current_version(&self) -> u32 {
                match self { $(EventType::$name => $version),* }
            }
        }

        /// The typed data of an event. On the wire: `{"type": "...", "data": {...}}`.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum EventPayload { $($name($name)),* }

        impl EventPayload {
            /// The event's type.
            pub fn event_type(&self) -> EventType {
                match self { $(EventPayload::$name(_) => EventType::$name),* }
            }

            /// Serializes the data (without the type tag) at the current schema version.
            pub fn data_json(&self) -> serde_json::Value {
                let value = match self { $(EventPayload::$name(d) => serde_json::to_value(d)),* };
                // Plain structs of strings, numbers and enums always serialize.
                value.expect("event data serializes")
            }

            /// Deserializes JSON text of the current schema version for `event_type`, without
            /// building an intermediate JSON value (the hot path of every read).
            pub fn from_data_str(event_type: EventType, data: &str) -> Result<Self, serde_json::Error> {
                Ok(match event_type { $(EventType::$name => EventPayload::$name(serde_json::from_str(data)?)),* })
            }

            /// Deserializes data of the current schema version for `event_type`.
            pub fn from_data(event_type: EventType, data: serde_json::Value) -> Result<Self, serde_json::Error> {
                Ok(match event_type { $(EventType::$name => EventPayload::$name(serde_json::from_value(data)?)),* })
            }
        }
    };
}

event_types! {
    LeadSourced => 1,
    FirstVisitMade => 1,
    DemoGiven => 1,
    NegotiationHeld => 1,
    // Version 1 carried the value as a decimal string; see `upcast`.
    ContractSigned => 2,
    FollowUpLogged => 1,
    DealLost => 1,
    DealReopened => 1,
    CustomerReassigned => 1,
    EventCorrected => 1,
    PersonalDataErased => 1,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventPayload {
    /// The one amount of money the data carries, if any, with its JSON pointer inside `data`.
    pub fn amount(&self) -> Option<(&'static str, Money)> {
        match self {
            EventPayload::NegotiationHeld(e) => e.concession.map(|m| ("/concession", m)),
            EventPayload::ContractSigned(e) => Some(("/value", e.value)),
            EventPayload::FollowUpLogged(e) => e.order_value.map(|m| ("/order_value", m)),
            EventPayload::EventCorrected(EventCorrected {
                correction: Correction::Amend { replacement },
                ..
            }) => match replacement.amount()? {
                ("/concession", m) => Some(("/correction/replacement/data/concession", m)),
                ("/value", m) => Some(("/correction/replacement/data/value", m)),
                ("/order_value", m) => Some(("/correction/replacement/data/order_value", m)),
                (_, m) => Some(("/correction/replacement/data", m)),
            },
            _ => None,
        }
    }

    /// The rep who performed the interaction (activity is credited to this rep).
    pub fn rep_id(&self) -> &RepId {
        match self {
            EventPayload::LeadSourced(e) => &e.rep_id,
            EventPayload::FirstVisitMade(e) => &e.rep_id,
            EventPayload::DemoGiven(e) => &e.rep_id,
            EventPayload::NegotiationHeld(e) => &e.rep_id,
            EventPayload::ContractSigned(e) => &e.rep_id,
            EventPayload::FollowUpLogged(e) => &e.rep_id,
            EventPayload::DealLost(e) => &e.rep_id,
            EventPayload::DealReopened(e) => &e.rep_id,
            EventPayload::CustomerReassigned(e) => &e.rep_id,
            EventPayload::EventCorrected(e) => &e.rep_id,
            EventPayload::PersonalDataErased(e) => &e.rep_id,
        }
    }

    /// Every personal field of the data, with its path under `/data` (`contact/name`, `notes`;
    /// inside an amend, the replacement's), for sealing, opening and withholding.
    pub fn personal_fields_mut(&mut self) -> Vec<(&'static str, &mut PersonalText)> {
        let mut fields = Vec::new();
        match self {
            EventPayload::LeadSourced(e) => lead_personal_fields(e, "", &mut fields),
            EventPayload::EventCorrected(EventCorrected {
                correction: Correction::Amend { replacement },
                ..
            }) => {
                if let EventPayload::LeadSourced(e) = &mut **replacement {
                    lead_personal_fields(e, "correction/replacement/", &mut fields);
                }
            }
            _ => {}
        }
        fields
    }

    /// Whether the event is about the ledger's handling of data (an erasure), not about the
    /// sale: it moves no figure, and its time is not a time of the sales process (reports'
    /// clocks and stays ignore it).
    pub fn is_administrative(&self) -> bool {
        matches!(self, EventPayload::PersonalDataErased(_))
    }

    /// The deal the event belongs to; `None` for customer-level events.
    pub fn deal_id(&self) -> Option<&DealId> {
        match self {
            EventPayload::LeadSourced(e) => Some(&e.deal_id),
            EventPayload::FirstVisitMade(e) => Some(&e.deal_id),
            EventPayload::DemoGiven(e) => Some(&e.deal_id),
            EventPayload::NegotiationHeld(e) => Some(&e.deal_id),
            EventPayload::ContractSigned(e) => Some(&e.deal_id),
            EventPayload::FollowUpLogged(e) => Some(&e.deal_id),
            EventPayload::DealLost(e) => Some(&e.deal_id),
            EventPayload::DealReopened(e) => Some(&e.deal_id),
            EventPayload::CustomerReassigned(_)
            | EventPayload::EventCorrected(_)
            | EventPayload::PersonalDataErased(_) => None,
        }
    }

    /// The stage this event moves its deal into, for the stage-advancing interactions.
    pub fn stage_entered(&self) -> Option<Stage> {
        match self {
            EventPayload::LeadSourced(_) => Some(Stage::Lead),
            EventPayload::FirstVisitMade(_) => Some(Stage::FirstVisit),
            EventPayload::DemoGiven(_) => Some(Stage::Demo),
            EventPayload::NegotiationHeld(_) => Some(Stage::Negotiation),
            EventPayload::ContractSigned(_) => Some(Stage::Won),
            _ => None,
        }
    }
}

fn lead_personal_fields<'a>(
    e: &'a mut LeadSourced,
    prefix: &'static str,
    out: &mut Vec<(&'static str, &'a mut PersonalText)>,
) {
    let paths: [&'static str; 4] = if prefix.is_empty() {
        ["contact/name", "contact/phone", "contact/email", "notes"]
    } else {
        [
            "correction/replacement/data/contact/name",
            "correction/replacement/data/contact/phone",
            "correction/replacement/data/contact/email",
            "correction/replacement/data/notes",
        ]
    };
    out.push((paths[0], &mut e.contact.name));
    if let Some(phone) = &mut e.contact.phone {
        out.push((paths[1], phone));
    }
    if let Some(email) = &mut e.contact.email {
        out.push((paths[2], email));
    }
    if let Some(notes) = &mut e.notes {
        out.push((paths[3], notes));
    }
}

/// An event as the ledger knows it: envelope and typed data, upcast to the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEvent {
    /// Event id (UUID v7); also the idempotency key.
    pub event_id: Uuid,
    pub customer_id: CustomerId,
    /// Revision within the customer's stream, from 0, gapless.
    pub revision: u64,
    /// Position in the whole log, strictly increasing in append order.
    pub position: u64,
    /// The schema version the event was written with (the payload is upcast to current).
    pub stored_version: u32,
    /// When the interaction happened in the world (given by the caller).
    pub occurred_at: DateTime<Utc>,
    /// When the ledger accepted the event (or the source system did, for migrated history).
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it.
    pub recorded_by: ActorId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub payload: EventPayload,
}

impl LedgerEvent {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}

/// An event proposed for recording: everything but what the store assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEvent {
    pub event_id: Uuid,
    pub customer_id: CustomerId,
    pub occurred_at: DateTime<Utc>,
    /// Kept when given (migrated history, re-imported exports); otherwise set by the ledger.
    pub recorded_at: Option<DateTime<Utc>>,
    pub recorded_by: ActorId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub payload: EventPayload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_match_the_serde_tag() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            let v = serde_json::to_value(t).unwrap();
            assert_eq!(v, serde_json::Value::String(t.as_str().to_string()));
        }
        assert_eq!(EventType::parse("leadsourced"), None);
    }

    #[test]
    fn qualification_score_counts_criteria_met() {
        let q = Qualification {
            customer_growing: true,
            has_business_plan: false,
            revenue_potential: true,
            has_opportunities: true,
            solution_fits: false,
            we_are_competitive: true,
            has_relationship: false,
        };
        assert_eq!(q.score(), 4);
    }

    #[test]
    fn numbers_outside_the_published_ranges_are_refused() {
        let visit = |level: i64| {
            serde_json::json!({
                "deal_id": "d1", "rep_id": "r1", "needs": [], "intent_level": level,
                "visit": {"purpose": "p", "action_plan": "a", "expected_result": "e", "actual_outcome": "o"}
            })
        };
        assert!(EventPayload::from_data(EventType::FirstVisitMade, visit(5)).is_ok());
        for bad in [0, 6, 300] {
            assert!(
                EventPayload::from_data(EventType::FirstVisitMade, visit(bad)).is_err(),
                "{bad}"
            );
        }
        let contract = |term: i64| {
            serde_json::json!({
                "deal_id": "d1", "rep_id": "r1", "term_months": term,
                "value": {"amount_minor": 1, "currency": "EUR"}
            })
        };
        assert!(EventPayload::from_data(EventType::ContractSigned, contract(600)).is_ok());
        let err = EventPayload::from_data(EventType::ContractSigned, contract(0)).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(EventPayload::from_data(EventType::ContractSigned, contract(601)).is_err());
    }

    #[test]
    fn unknown_fields_in_data_are_refused() {
        let data = serde_json::json!({
            "deal_id": "d1", "rep_id": "r1", "reason": "back", "surprise": 1
        });
        let err = EventPayload::from_data(EventType::DealReopened, data).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }
}

//! The one set of values the suite is built from: proptest strategies for every type, and the
//! valid sample lines (one per shape of event) that the table-driven cases start from.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use pipeline_ledger::contract::line::line_for;
use pipeline_ledger::domain::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Strategies for every type. Each is boxed: the unboxed strategy types nest so deeply that
// generating a value overflows a test thread's stack in debug builds.
// ---------------------------------------------------------------------------------------------

pub fn ident() -> BoxedStrategy<String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}".boxed()
}

pub fn rep_id() -> BoxedStrategy<RepId> {
    ident().prop_map(|s| RepId::new(s).unwrap()).boxed()
}

pub fn deal_id() -> BoxedStrategy<DealId> {
    ident().prop_map(|s| DealId::new(s).unwrap()).boxed()
}

/// Any text, including quotes, escapes, CJK and emoji.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        "\\PC{0,24}",
        Just("寻找客户 \"quoted\" \\ back\tslash \u{1F600}".to_string()),
        Just(String::new()),
    ]
    .boxed()
}

/// An active ISO 4217 code: new input names no other (stored events may).
pub fn currency() -> BoxedStrategy<Currency> {
    prop::sample::select(pipeline_ledger::domain::money::ISO_4217_ACTIVE)
        .prop_map(|(code, _)| Currency::new(code).unwrap())
        .boxed()
}

pub fn money() -> BoxedStrategy<Money> {
    (
        prop_oneof![
            0i64..1_000_000,
            Just(0),
            Just(pipeline_ledger::limits::AMOUNT_MINOR_MAX)
        ],
        currency(),
    )
        .prop_map(|(amount_minor, currency)| Money {
            amount_minor,
            currency,
        })
        .boxed()
}

pub fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970 to 2100, to the microsecond (the ledger's resolution).
    (0i64..4_102_444_800_000_000).prop_map(|us| DateTime::from_timestamp_micros(us).unwrap())
}

/// A `recorded_at` of new input: never in the future (1970 to 2025).
pub fn past_time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..1_735_689_600_000_000).prop_map(|us| DateTime::from_timestamp_micros(us).unwrap())
}

pub fn date() -> BoxedStrategy<NaiveDate> {
    (0i64..60_000)
        .prop_map(|d| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(d as u64))
        .boxed()
}

pub fn visit() -> BoxedStrategy<VisitRecord> {
    (text(), text(), text(), text())
        .prop_map(
            |(purpose, action_plan, expected_result, actual_outcome)| VisitRecord {
                purpose,
                action_plan,
                expected_result,
                actual_outcome,
            },
        )
        .boxed()
}

pub fn buying_role() -> BoxedStrategy<BuyingRole> {
    prop::sample::select(vec![
        BuyingRole::Suggester,
        BuyingRole::Influencer,
        BuyingRole::User,
        BuyingRole::DecisionMaker,
        BuyingRole::Buyer,
    ])
    .boxed()
}

/// A personal field in any of its three forms: plaintext as producers send it, sealed as the
/// store keeps it, withheld as a reader without the key sees it.
pub fn personal_text() -> BoxedStrategy<PersonalText> {
    prop_oneof![
        6 => text().prop_map(PersonalText::Plain),
        2 => "[A-Za-z0-9_-]{1,80}".prop_map(PersonalText::Sealed),
        1 => prop::sample::select(vec![Withheld::Erased, Withheld::Redacted])
            .prop_map(PersonalText::Withheld),
    ]
    .boxed()
}

pub fn lead_sourced() -> BoxedStrategy<EventPayload> {
    let contact = (
        personal_text(),
        prop::option::of(personal_text()),
        prop::option::of(personal_text()),
        prop::option::of(buying_role()),
    )
        .prop_map(|(name, phone, email, role)| Contact {
            name,
            phone,
            email,
            role,
        });
    let qualification = prop::array::uniform7(any::<bool>()).prop_map(|b| Qualification {
        customer_growing: b[0],
        has_business_plan: b[1],
        revenue_potential: b[2],
        has_opportunities: b[3],
        solution_fits: b[4],
        we_are_competitive: b[5],
        has_relationship: b[6],
    });
    (
        deal_id(),
        rep_id(),
        prop::sample::select(LeadSource::ALL.to_vec()),
        text(),
        contact,
        prop::option::of(qualification),
        prop::option::of(personal_text()),
    )
        .prop_map(
            |(deal_id, rep_id, source, company, contact, qualification, notes)| {
                EventPayload::LeadSourced(LeadSourced {
                    deal_id,
                    rep_id,
                    source,
                    company,
                    contact,
                    qualification,
                    notes,
                })
            },
        )
        .boxed()
}

pub fn stage_events() -> BoxedStrategy<EventPayload> {
    let first_visit = (
        deal_id(),
        rep_id(),
        visit(),
        prop::collection::vec(text(), 0..3),
        1u8..=5,
    )
        .prop_map(|(deal_id, rep_id, visit, needs, intent_level)| {
            EventPayload::FirstVisitMade(FirstVisitMade {
                deal_id,
                rep_id,
                visit,
                needs,
                intent_level,
            })
        });
    let demo = (
        deal_id(),
        rep_id(),
        visit(),
        rep_id(),
        prop::option::of(rep_id()),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(buying_role(), 0..3),
    )
        .prop_map(
            |(
                deal_id,
                rep_id,
                visit,
                lead_presenter,
                second_presenter,
                products_shown,
                attendees,
            )| {
                EventPayload::DemoGiven(DemoGiven {
                    deal_id,
                    rep_id,
                    visit,
                    lead_presenter,
                    second_presenter,
                    products_shown,
                    attendees,
                })
            },
        );
    let objection = (
        text(),
        prop::sample::select(vec![
            ObjectionHandling::GiveFace,
            ObjectionHandling::ChangeTime,
            ObjectionHandling::ChangePlace,
            ObjectionHandling::FindAcquaintance,
            ObjectionHandling::GoHigherUp,
            ObjectionHandling::ApplyPressure,
            ObjectionHandling::LeaveRoom,
            ObjectionHandling::FindCause,
        ]),
        any::<bool>(),
    )
        .prop_map(|(objection, handling, resolved)| Objection {
            objection,
            handling,
            resolved,
        });
    let negotiation = (
        deal_id(),
        rep_id(),
        visit(),
        prop::collection::vec(objection, 0..3),
        prop::option::of(money()),
    )
        .prop_map(|(deal_id, rep_id, visit, objections, concession)| {
            EventPayload::NegotiationHeld(NegotiationHeld {
                deal_id,
                rep_id,
                visit,
                objections,
                concession,
            })
        });
    let contract = (
        deal_id(),
        rep_id(),
        money(),
        1u32..=600,
        prop::option::of(text()),
    )
        .prop_map(|(deal_id, rep_id, value, term_months, contract_ref)| {
            EventPayload::ContractSigned(ContractSigned {
                deal_id,
                rep_id,
                value,
                term_months,
                contract_ref,
            })
        });
    prop_oneof![first_visit, demo, negotiation, contract].boxed()
}

pub fn lifecycle_events() -> BoxedStrategy<EventPayload> {
    let follow_up = (
        deal_id(),
        rep_id(),
        prop::sample::select(vec![
            FollowUpKind::CareCall,
            FollowUpKind::Visit,
            FollowUpKind::NewNeed,
            FollowUpKind::RepeatOrder,
            FollowUpKind::Complaint,
            FollowUpKind::NewProduct,
        ]),
        text(),
        prop::option::of(date()),
        prop::option::of(money()),
    )
        .prop_map(
            |(deal_id, rep_id, kind, outcome, next_due_on, order_value)| {
                EventPayload::FollowUpLogged(FollowUpLogged {
                    deal_id,
                    rep_id,
                    kind,
                    outcome,
                    next_due_on,
                    order_value,
                })
            },
        );
    let lost = (
        deal_id(),
        rep_id(),
        prop::sample::select(vec![
            LostReason::Price,
            LostReason::Competitor,
            LostReason::NoBudget,
            LostReason::NoDecision,
            LostReason::Timing,
            LostReason::ProductFit,
            LostReason::Unresponsive,
            LostReason::Other,
        ]),
        prop::sample::select(Stage::ALL.to_vec()),
        prop::option::of(text()),
    )
        .prop_map(|(deal_id, rep_id, reason, stage, details)| {
            EventPayload::DealLost(DealLost {
                deal_id,
                rep_id,
                reason,
                stage,
                details,
            })
        });
    let reopened = (deal_id(), rep_id(), text()).prop_map(|(deal_id, rep_id, reason)| {
        EventPayload::DealReopened(DealReopened {
            deal_id,
            rep_id,
            reason,
        })
    });
    let reassigned = (rep_id(), rep_id(), rep_id(), text()).prop_map(
        |(rep_id, from_rep_id, to_rep_id, reason)| {
            EventPayload::CustomerReassigned(CustomerReassigned {
                rep_id,
                from_rep_id,
                to_rep_id,
                reason,
            })
        },
    );
    let erased = (rep_id(), text(), any::<u16>(), any::<u16>()).prop_map(
        |(rep_id, reason, sealed, plaintext)| {
            EventPayload::PersonalDataErased(PersonalDataErased {
                rep_id,
                reason,
                sealed_fields: sealed.into(),
                plaintext_fields: plaintext.into(),
            })
        },
    );
    prop_oneof![follow_up, lost, reopened, reassigned, erased].boxed()
}

pub fn plain_payload() -> BoxedStrategy<EventPayload> {
    prop_oneof![lead_sourced(), stage_events(), lifecycle_events()].boxed()
}

pub fn correction() -> BoxedStrategy<EventPayload> {
    let retract = Just(Correction::Retract).boxed();
    let amend = plain_payload()
        .prop_map(|p| Correction::Amend {
            replacement: Box::new(p),
        })
        .boxed();
    (rep_id(), any::<u128>(), prop_oneof![retract, amend], text())
        .prop_map(|(rep_id, id, correction, reason)| {
            EventPayload::EventCorrected(EventCorrected {
                rep_id,
                corrected_event_id: Uuid::from_u128(id),
                correction,
                reason,
            })
        })
        .boxed()
}

pub fn payload() -> BoxedStrategy<EventPayload> {
    prop_oneof![4 => plain_payload(), 1 => correction()].boxed()
}

pub fn proposed_event() -> BoxedStrategy<ProposedEvent> {
    (
        any::<u128>(),
        ident(),
        time(),
        prop::option::of(past_time()),
        ident(),
        prop::option::of(any::<u128>()),
        prop::option::of(any::<u128>()),
        payload(),
    )
        .prop_map(
            |(id, customer, occurred_at, recorded_at, by, correlation, causation, payload)| {
                ProposedEvent {
                    event_id: Uuid::from_u128(id),
                    customer_id: CustomerId::new(customer).unwrap(),
                    occurred_at,
                    recorded_at,
                    recorded_by: ActorId::new(by).unwrap(),
                    correlation_id: correlation.map(Uuid::from_u128),
                    causation_id: causation.map(Uuid::from_u128),
                    payload,
                }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Sample lines
// ---------------------------------------------------------------------------------------------

/// A valid interchange line of each shape, as a producer writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    Contract,
    Visit,
    Lead,
    Correction,
    FollowUp,
}

impl Sample {
    /// The bases every case is derived from, in the order the suite has always used them.
    pub const BASES: [Sample; 4] = [
        Sample::Contract,
        Sample::Visit,
        Sample::Lead,
        Sample::Correction,
    ];

    pub fn line(self) -> Value {
        match self {
            Sample::Contract => valid_line(contract_payload()),
            Sample::Visit => valid_line(EventPayload::FirstVisitMade(FirstVisitMade {
                deal_id: DealId::new("d-1").unwrap(),
                rep_id: RepId::new("rep-1").unwrap(),
                visit: VisitRecord {
                    purpose: "p".into(),
                    action_plan: "a".into(),
                    expected_result: "e".into(),
                    actual_outcome: "o".into(),
                },
                needs: vec!["n".into()],
                intent_level: 3,
            })),
            Sample::Lead => valid_line(EventPayload::LeadSourced(LeadSourced {
                deal_id: DealId::new("d-1").unwrap(),
                rep_id: RepId::new("rep-1").unwrap(),
                source: LeadSource::Web,
                company: "ACME".into(),
                contact: Contact {
                    name: "Li".into(),
                    phone: None,
                    email: None,
                    role: None,
                },
                qualification: None,
                notes: None,
            })),
            Sample::Correction => valid_line(EventPayload::EventCorrected(EventCorrected {
                rep_id: RepId::new("rep-1").unwrap(),
                corrected_event_id: Uuid::from_u128(7),
                correction: Correction::Amend {
                    replacement: Box::new(contract_payload()),
                },
                reason: "typo".into(),
            })),
            Sample::FollowUp => valid_line(EventPayload::FollowUpLogged(FollowUpLogged {
                deal_id: DealId::new("d-1").unwrap(),
                rep_id: RepId::new("rep-1").unwrap(),
                kind: FollowUpKind::RepeatOrder,
                outcome: "ordered".into(),
                next_due_on: Some(NaiveDate::from_ymd_opt(2025, 4, 1).unwrap()),
                order_value: None,
            })),
        }
    }
}

/// The contract of the `Contract` sample, also the replacement its `Correction` amends to.
fn contract_payload() -> EventPayload {
    EventPayload::ContractSigned(ContractSigned {
        deal_id: DealId::new("d-1").unwrap(),
        rep_id: RepId::new("rep-1").unwrap(),
        value: Money {
            amount_minor: 100_000,
            currency: Currency::new("EUR").unwrap(),
        },
        term_months: 12,
        contract_ref: None,
    })
}

/// The line of a payload, with a fixed envelope.
pub fn valid_line(payload: EventPayload) -> Value {
    let proposed = ProposedEvent {
        event_id: Uuid::from_u128(0x0190_a0b0_0000_7000_8000_0000_0000_0002),
        customer_id: CustomerId::new("cust-1").unwrap(),
        occurred_at: Utc.with_ymd_and_hms(2025, 3, 1, 9, 30, 0).unwrap(),
        recorded_at: None,
        recorded_by: ActorId::new("rep-1").unwrap(),
        correlation_id: None,
        causation_id: None,
        payload,
    };
    serde_json::to_value(line_for(&proposed)).unwrap()
}

/// A version 1 `ContractSigned` line (the decimal-string money of the first contract).
pub fn v1_line(data: Value) -> Value {
    json!({
        "event_id": "0190a0b0-0000-7000-8000-000000000001",
        "customer_id": "cust-1",
        "type": "ContractSigned",
        "schema_version": 1,
        "occurred_at": "2024-03-01T10:00:00Z",
        "recorded_by": "legacy-crm",
        "data": data
    })
}

/// Sets the value at a JSON pointer (creating the last key), or removes it when `value` is None.
pub fn with(mut line: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = line
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    match value {
        Some(v) => {
            target[key] = v;
        }
        None => {
            target.as_object_mut().unwrap().remove(key);
        }
    }
    line
}

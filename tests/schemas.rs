//! The published contract under `schemas/` and the Rust types never drift apart:
//!
//! - the checked-in files equal what the types generate (`UPDATE_SCHEMAS=1 cargo test --test
//!   schemas` rewrites them);
//! - every value the types and the demo generator produce validates against the interchange line
//!   schema and its event's schema, and decodes back to the same value;
//! - invalid values are rejected both by the schema validator and by typed deserialization;
//! - the version 1 `ContractSigned` line validates and is upcast to version 2.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use pipeline_ledger::contract::line::{InterchangeLine, LineValidator, line_for};
use pipeline_ledger::contract::{self, DIALECT, schema_files, schema_key, write_schema_files};
use pipeline_ledger::demo::{DemoConfig, generate};
use pipeline_ledger::domain::upcast::{self, UpcastError};
use pipeline_ledger::domain::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use uuid::Uuid;

const UPDATE_ENV: &str = "UPDATE_SCHEMAS";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Every `.json` file under `dir`, by its path relative to `dir` (with `/` separators).
fn checked_in(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(root).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn checked_in_schemas_equal_the_generated_ones() {
    let dir = schemas_dir();
    let generated = schema_files();
    if std::env::var_os(UPDATE_ENV).is_some() {
        for stale in checked_in(&dir)
            .keys()
            .filter(|k| !generated.contains_key(*k))
        {
            std::fs::remove_file(dir.join(stale)).unwrap();
        }
        write_schema_files(&dir).unwrap();
    }
    let files = checked_in(&dir);
    let regenerate = format!(
        "schemas/ is stale: run `{UPDATE_ENV}=1 cargo test --test schemas` to regenerate it, \
         and review and commit the change (it changes the published contract)"
    );
    let missing: Vec<&String> = generated
        .keys()
        .filter(|k| !files.contains_key(*k))
        .collect();
    let extra: Vec<&String> = files
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    let differing: Vec<&String> = generated
        .iter()
        .filter(|(k, text)| files.get(*k).is_some_and(|f| f != *text))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "{regenerate}\n  missing: {missing:?}\n  not generated any more: {extra:?}\n  differing: {differing:?}"
    );
}

#[test]
fn every_event_type_and_version_has_a_published_schema() {
    let files = schema_files();
    for t in EventType::ALL {
        for v in 1..=t.current_version() {
            assert!(
                files.contains_key(&format!("events/{}.json", schema_key(*t, v))),
                "{t} v{v}"
            );
        }
    }
    assert!(files.contains_key("envelope.json"));
    assert!(files.contains_key("interchange-line.json"));
}

#[test]
fn every_schema_is_draft_2020_12_and_compiles() {
    for (path, text) in schema_files() {
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["$schema"], json!(DIALECT), "{path}");
        jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{path} does not compile: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------------------------

fn line_validator() -> &'static LineValidator {
    static V: OnceLock<LineValidator> = OnceLock::new();
    V.get_or_init(LineValidator::new)
}

/// The published schema of each event type and version, compiled, keyed `Type.vN`.
fn event_validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        contract::event_schemas()
            .into_iter()
            .map(|(key, schema)| {
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap();
                (key, v)
            })
            .collect()
    })
}

fn envelope_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&contract::envelope_schema())
            .unwrap()
    })
}

/// Decoding a line with the types alone, without any schema: the line, then its data at its
/// version, upcast to the current one.
fn typed_decode(line: &Value) -> Result<EventPayload, String> {
    let line: InterchangeLine = serde_json::from_value(line.clone()).map_err(|e| e.to_string())?;
    upcast::decode(line.event_type, line.schema_version, line.data).map_err(|e| e.to_string())
}

/// Checks that a typed event validates everywhere and decodes back to itself.
fn assert_valid_everywhere(proposed: &ProposedEvent) -> Result<(), TestCaseError> {
    let line = serde_json::to_value(line_for(proposed)).unwrap();
    if let Err(e) = line_validator().check_value(&line) {
        return Err(TestCaseError::fail(format!(
            "line schema refuses {line}: {e}"
        )));
    }
    let t = proposed.payload.event_type();
    let key = schema_key(t, t.current_version());
    let data = &line["data"];
    let errors: Vec<String> = event_validators()[&key]
        .iter_errors(data)
        .map(|e| e.to_string())
        .collect();
    prop_assert!(errors.is_empty(), "{} refuses {}: {:?}", key, data, errors);
    let parsed = line_validator()
        .parse_value(line.clone())
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&parsed.proposed, proposed);
    prop_assert_eq!(parsed.schema_version, t.current_version());
    prop_assert_eq!(&typed_decode(&line).unwrap(), &proposed.payload);
    let round_trip: EventPayload =
        serde_json::from_value(serde_json::to_value(&proposed.payload).unwrap()).unwrap();
    prop_assert_eq!(&round_trip, &proposed.payload);
    // As exported (with revision and position), the envelope validates without its data.
    let mut exported = line;
    exported["recorded_at"] = json!("2025-01-01T00:00:00Z");
    exported["revision"] = json!(3);
    exported["position"] = json!(17);
    exported.as_object_mut().unwrap().remove("data");
    let errors: Vec<String> = envelope_validator()
        .iter_errors(&exported)
        .map(|e| e.to_string())
        .collect();
    prop_assert!(
        errors.is_empty(),
        "envelope refuses {}: {:?}",
        exported,
        errors
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Everything the generator and the types produce validates
// ---------------------------------------------------------------------------------------------

#[test]
fn every_event_of_the_demo_generator_validates_and_round_trips() {
    let until = Utc.with_ymd_and_hms(2025, 6, 30, 18, 0, 0).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in [1, 7, 42] {
        for proposed in generate(&DemoConfig::new(60, seed, until)) {
            seen.insert(proposed.payload.event_type());
            if let EventPayload::EventCorrected(EventCorrected {
                correction: Correction::Amend { replacement },
                ..
            }) = &proposed.payload
            {
                seen.insert(replacement.event_type());
            }
            assert_valid_everywhere(&proposed).unwrap();
        }
    }
    assert_eq!(
        seen.len(),
        EventType::ALL.len(),
        "the demo produces every type"
    );
}

// Strategies for every type. Each is boxed: the unboxed strategy types nest so deeply that
// generating a value overflows a test thread's stack in debug builds.

fn ident() -> BoxedStrategy<String> {
    ident_unboxed().boxed()
}

fn ident_unboxed() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
}

fn rep_id() -> BoxedStrategy<RepId> {
    rep_id_unboxed().boxed()
}

fn rep_id_unboxed() -> impl Strategy<Value = RepId> {
    ident().prop_map(|s| RepId::new(s).unwrap())
}

fn deal_id() -> BoxedStrategy<DealId> {
    deal_id_unboxed().boxed()
}

fn deal_id_unboxed() -> impl Strategy<Value = DealId> {
    ident().prop_map(|s| DealId::new(s).unwrap())
}

/// Any text, including quotes, escapes, CJK and emoji.
fn text() -> BoxedStrategy<String> {
    text_unboxed().boxed()
}

fn text_unboxed() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        Just("寻找客户 \"quoted\" \\ back\tslash \u{1F600}".to_string()),
        Just(String::new()),
    ]
}

fn currency() -> BoxedStrategy<Currency> {
    currency_unboxed().boxed()
}

fn currency_unboxed() -> impl Strategy<Value = Currency> {
    "[A-Z]{3}".prop_map(|s| Currency::new(&s).unwrap())
}

fn money() -> BoxedStrategy<Money> {
    money_unboxed().boxed()
}

fn money_unboxed() -> impl Strategy<Value = Money> {
    (
        prop_oneof![0i64..1_000_000, Just(0), Just(i64::MAX)],
        currency(),
    )
        .prop_map(|(amount_minor, currency)| Money {
            amount_minor,
            currency,
        })
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970 to 2100, to the microsecond (the ledger's resolution).
    (0i64..4_102_444_800_000_000).prop_map(|us| DateTime::from_timestamp_micros(us).unwrap())
}

fn date() -> BoxedStrategy<NaiveDate> {
    date_unboxed().boxed()
}

fn date_unboxed() -> impl Strategy<Value = NaiveDate> {
    (0i64..60_000)
        .prop_map(|d| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(d as u64))
}

fn visit() -> BoxedStrategy<VisitRecord> {
    visit_unboxed().boxed()
}

fn visit_unboxed() -> impl Strategy<Value = VisitRecord> {
    (text(), text(), text(), text()).prop_map(
        |(purpose, action_plan, expected_result, actual_outcome)| VisitRecord {
            purpose,
            action_plan,
            expected_result,
            actual_outcome,
        },
    )
}

fn buying_role() -> BoxedStrategy<BuyingRole> {
    buying_role_unboxed().boxed()
}

fn buying_role_unboxed() -> impl Strategy<Value = BuyingRole> {
    prop::sample::select(vec![
        BuyingRole::Suggester,
        BuyingRole::Influencer,
        BuyingRole::User,
        BuyingRole::DecisionMaker,
        BuyingRole::Buyer,
    ])
}

fn lead_sourced() -> BoxedStrategy<EventPayload> {
    lead_sourced_unboxed().boxed()
}

fn lead_sourced_unboxed() -> impl Strategy<Value = EventPayload> {
    let contact = (
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
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
        prop::option::of(text()),
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
}

fn stage_events() -> BoxedStrategy<EventPayload> {
    stage_events_unboxed().boxed()
}

fn stage_events_unboxed() -> impl Strategy<Value = EventPayload> {
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
    prop_oneof![first_visit, demo, negotiation, contract]
}

fn lifecycle_events() -> BoxedStrategy<EventPayload> {
    lifecycle_events_unboxed().boxed()
}

fn lifecycle_events_unboxed() -> impl Strategy<Value = EventPayload> {
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
    prop_oneof![follow_up, lost, reopened, reassigned]
}

fn plain_payload() -> BoxedStrategy<EventPayload> {
    plain_payload_unboxed().boxed()
}

fn plain_payload_unboxed() -> impl Strategy<Value = EventPayload> {
    prop_oneof![lead_sourced(), stage_events(), lifecycle_events()]
}

fn correction() -> BoxedStrategy<EventPayload> {
    correction_unboxed().boxed()
}

fn correction_unboxed() -> impl Strategy<Value = EventPayload> {
    let retract = Just(Correction::Retract).boxed();
    let amend = plain_payload()
        .prop_map(|p| Correction::Amend {
            replacement: Box::new(p),
        })
        .boxed();
    (rep_id(), any::<u128>(), prop_oneof![retract, amend], text()).prop_map(
        |(rep_id, id, correction, reason)| {
            EventPayload::EventCorrected(EventCorrected {
                rep_id,
                corrected_event_id: Uuid::from_u128(id),
                correction,
                reason,
            })
        },
    )
}

fn payload() -> BoxedStrategy<EventPayload> {
    payload_unboxed().boxed()
}

fn payload_unboxed() -> impl Strategy<Value = EventPayload> {
    prop_oneof![4 => plain_payload(), 1 => correction()]
}

fn proposed_event() -> BoxedStrategy<ProposedEvent> {
    proposed_event_unboxed().boxed()
}

fn proposed_event_unboxed() -> impl Strategy<Value = ProposedEvent> {
    (
        any::<u128>(),
        ident(),
        time(),
        prop::option::of(time()),
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
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_value_the_types_produce_validates_and_round_trips(proposed in proposed_event()) {
        assert_valid_everywhere(&proposed)?;
    }

    #[test]
    fn a_v1_contract_validates_and_upcasts_to_minor_units(
        whole in 0u64..10_000_000,
        cents in 0u64..100,
        with_cents in any::<bool>(),
        term in 1u32..=600,
        contract_ref in prop::option::of("[A-Z]-[0-9]{1,4}"),
    ) {
        let value = if with_cents { format!("{whole}.{cents:02}") } else { whole.to_string() };
        let mut data = json!({
            "deal_id": "d-1", "rep_id": "rep-1", "value": value, "currency": "EUR",
            "term_months": term,
        });
        if let Some(r) = &contract_ref {
            data["contract_ref"] = json!(r);
        }
        let line = v1_line(data.clone());
        prop_assert!(line_validator().check_value(&line).is_ok());
        let schema_errors = event_validators()["ContractSigned.v1"].iter_errors(&data).count();
        prop_assert_eq!(schema_errors, 0);
        let parsed = line_validator().parse_value(line).unwrap();
        prop_assert_eq!(parsed.schema_version, 1);
        let EventPayload::ContractSigned(c) = parsed.proposed.payload else {
            return Err(TestCaseError::fail("not a contract"));
        };
        let minor = whole as i64 * 100 + if with_cents { cents as i64 } else { 0 };
        prop_assert_eq!(c.value.amount_minor, minor);
        prop_assert_eq!(c.value.currency.as_str(), "EUR");
        prop_assert_eq!(c.term_months, term);
        prop_assert_eq!(c.contract_ref, contract_ref);
    }
}

// ---------------------------------------------------------------------------------------------
// The version 1 contract
// ---------------------------------------------------------------------------------------------

fn v1_line(data: Value) -> Value {
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

#[test]
fn the_v1_contract_line_validates_and_upcasts() {
    let line = v1_line(json!({
        "deal_id": "d-1", "rep_id": "rep-1", "value": "1250.50", "currency": "EUR",
        "term_months": 24, "contract_ref": "C-1"
    }));
    line_validator().check_value(&line).unwrap();
    let parsed = line_validator().parse_value(line.clone()).unwrap();
    // Stored as written (version 1), decoded to version 2.
    assert_eq!(parsed.schema_version, 1);
    let expected = EventPayload::ContractSigned(ContractSigned {
        deal_id: DealId::new("d-1").unwrap(),
        rep_id: RepId::new("rep-1").unwrap(),
        value: Money {
            amount_minor: 125_050,
            currency: Currency::new("EUR").unwrap(),
        },
        term_months: 24,
        contract_ref: Some("C-1".into()),
    });
    assert_eq!(parsed.proposed.payload, expected);
    assert_eq!(typed_decode(&line).unwrap(), expected);
    // Exponents per currency: JPY has none, KWD three.
    for (value, currency, minor) in [("980000", "JPY", 980_000), ("1.250", "KWD", 1_250)] {
        let line = v1_line(json!({
            "deal_id": "d-1", "rep_id": "rep-1", "value": value, "currency": currency,
            "term_months": 1
        }));
        let EventPayload::ContractSigned(c) =
            line_validator().parse_value(line).unwrap().proposed.payload
        else {
            panic!("not a contract")
        };
        assert_eq!(c.value.amount_minor, minor, "{value} {currency}");
    }
    // The version 2 shape under version 1 is refused, and the reverse.
    let v2_data = serde_json::to_value(&expected).unwrap()["data"].clone();
    assert!(
        line_validator()
            .check_value(&v1_line(v2_data.clone()))
            .is_err()
    );
    assert!(typed_decode(&v1_line(v2_data)).is_err());
    let mut v1_as_v2 = line;
    v1_as_v2["schema_version"] = json!(2);
    assert!(line_validator().check_value(&v1_as_v2).is_err());
    assert!(typed_decode(&v1_as_v2).is_err());
}

// ---------------------------------------------------------------------------------------------
// Invalid values are rejected by both
// ---------------------------------------------------------------------------------------------

fn valid_line(payload: EventPayload) -> Value {
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

fn contract_line() -> Value {
    valid_line(EventPayload::ContractSigned(ContractSigned {
        deal_id: DealId::new("d-1").unwrap(),
        rep_id: RepId::new("rep-1").unwrap(),
        value: Money {
            amount_minor: 100_000,
            currency: Currency::new("EUR").unwrap(),
        },
        term_months: 12,
        contract_ref: None,
    }))
}

fn visit_line() -> Value {
    valid_line(EventPayload::FirstVisitMade(FirstVisitMade {
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
    }))
}

fn lead_line() -> Value {
    valid_line(EventPayload::LeadSourced(LeadSourced {
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
    }))
}

fn correction_line() -> Value {
    valid_line(EventPayload::EventCorrected(EventCorrected {
        rep_id: RepId::new("rep-1").unwrap(),
        corrected_event_id: Uuid::from_u128(7),
        correction: Correction::Amend {
            replacement: Box::new(typed_decode(&contract_line()).unwrap()),
        },
        reason: "typo".into(),
    }))
}

/// Sets the value at a JSON pointer (creating the last key), or removes it when `value` is None.
fn with(mut line: Value, pointer: &str, value: Option<Value>) -> Value {
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

#[test]
fn the_valid_bases_are_valid() {
    for line in [
        contract_line(),
        visit_line(),
        lead_line(),
        correction_line(),
    ] {
        line_validator().check_value(&line).unwrap();
        typed_decode(&line).unwrap();
    }
}

#[test]
fn invalid_values_are_rejected_by_the_schema_and_by_the_types() {
    let cases: Vec<(&str, Value)> = vec![
        // Wrong types.
        (
            "string intent level",
            with(visit_line(), "/data/intent_level", Some(json!("3"))),
        ),
        (
            "string term",
            with(contract_line(), "/data/term_months", Some(json!("12"))),
        ),
        (
            "float amount",
            with(
                contract_line(),
                "/data/value/amount_minor",
                Some(json!(10.5)),
            ),
        ),
        (
            "string amount",
            with(
                contract_line(),
                "/data/value/amount_minor",
                Some(json!("1000")),
            ),
        ),
        (
            "needs not a list",
            with(visit_line(), "/data/needs", Some(json!("n"))),
        ),
        (
            "numeric customer",
            with(contract_line(), "/customer_id", Some(json!(5))),
        ),
        (
            "bad event id",
            with(contract_line(), "/event_id", Some(json!("not-a-uuid"))),
        ),
        (
            "numeric occurred_at",
            with(contract_line(), "/occurred_at", Some(json!(1_700_000_000))),
        ),
        (
            "occurred_at not a date",
            with(contract_line(), "/occurred_at", Some(json!("yesterday"))),
        ),
        (
            "version as string",
            with(contract_line(), "/schema_version", Some(json!("2"))),
        ),
        (
            "data not an object",
            with(contract_line(), "/data", Some(json!([1, 2]))),
        ),
        // Missing fields.
        ("no data", with(contract_line(), "/data", None)),
        (
            "no occurred_at",
            with(contract_line(), "/occurred_at", None),
        ),
        ("no deal", with(contract_line(), "/data/deal_id", None)),
        (
            "no contact name",
            with(lead_line(), "/data/contact/name", None),
        ),
        // Unknown fields, at every level.
        (
            "unknown line field",
            with(contract_line(), "/surprise", Some(json!(1))),
        ),
        (
            "unknown data field",
            with(contract_line(), "/data/surprise", Some(json!(1))),
        ),
        (
            "unknown money field",
            with(contract_line(), "/data/value/cents", Some(json!(1))),
        ),
        (
            "unknown contact field",
            with(lead_line(), "/data/contact/fax", Some(json!("1"))),
        ),
        (
            "unknown visit field",
            with(visit_line(), "/data/visit/mood", Some(json!("good"))),
        ),
        (
            "unknown field in an amendment",
            with(
                correction_line(),
                "/data/correction/replacement/data/surprise",
                Some(json!(1)),
            ),
        ),
        // Bad currencies.
        (
            "lower-case currency",
            with(contract_line(), "/data/value/currency", Some(json!("eur"))),
        ),
        (
            "four-letter currency",
            with(contract_line(), "/data/value/currency", Some(json!("EURO"))),
        ),
        (
            "digit in currency",
            with(contract_line(), "/data/value/currency", Some(json!("E1R"))),
        ),
        (
            "numeric currency",
            with(contract_line(), "/data/value/currency", Some(json!(978))),
        ),
        (
            "currency as bytes",
            with(
                contract_line(),
                "/data/value/currency",
                Some(json!([69, 85, 82])),
            ),
        ),
        // Negative and out-of-range numbers.
        (
            "negative amount",
            with(contract_line(), "/data/value/amount_minor", Some(json!(-1))),
        ),
        (
            "negative amount in an amendment",
            with(
                correction_line(),
                "/data/correction/replacement/data/value/amount_minor",
                Some(json!(-100)),
            ),
        ),
        (
            "intent level 0",
            with(visit_line(), "/data/intent_level", Some(json!(0))),
        ),
        (
            "intent level 6",
            with(visit_line(), "/data/intent_level", Some(json!(6))),
        ),
        (
            "term 0",
            with(contract_line(), "/data/term_months", Some(json!(0))),
        ),
        (
            "term 601",
            with(contract_line(), "/data/term_months", Some(json!(601))),
        ),
        // Bad identifiers and enums.
        (
            "customer with a space",
            with(contract_line(), "/customer_id", Some(json!("cust 1"))),
        ),
        (
            "empty rep",
            with(contract_line(), "/data/rep_id", Some(json!(""))),
        ),
        (
            "rep too long",
            with(contract_line(), "/data/rep_id", Some(json!("r".repeat(65)))),
        ),
        (
            "unknown lead source",
            with(lead_line(), "/data/source", Some(json!("billboard"))),
        ),
        (
            "unknown correction action",
            with(
                correction_line(),
                "/data/correction/action",
                Some(json!("delete")),
            ),
        ),
        (
            "amendment of an unknown type",
            with(
                correction_line(),
                "/data/correction/replacement/type",
                Some(json!("DealWon")),
            ),
        ),
        // Unknown types and versions.
        (
            "unknown type",
            with(contract_line(), "/type", Some(json!("DealWon"))),
        ),
        (
            "type in lower case",
            with(contract_line(), "/type", Some(json!("contractsigned"))),
        ),
        (
            "version 0",
            with(contract_line(), "/schema_version", Some(json!(0))),
        ),
        (
            "version 3",
            with(contract_line(), "/schema_version", Some(json!(3))),
        ),
        (
            "version 2 of a v1-only type",
            with(visit_line(), "/schema_version", Some(json!(2))),
        ),
        (
            "negative version",
            with(contract_line(), "/schema_version", Some(json!(-1))),
        ),
        // Data of another type.
        (
            "visit data under a contract",
            with(contract_line(), "/data", Some(visit_line()["data"].clone())),
        ),
    ];
    let mut failures = Vec::new();
    for (name, line) in &cases {
        let schema = line_validator().check_value(line);
        let typed = typed_decode(line);
        if schema.is_ok() {
            failures.push(format!("{name}: the schema accepts {line}"));
        }
        if let Ok(p) = typed {
            failures.push(format!("{name}: the types accept it as {p:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn schema_violations_name_the_field() {
    let line = with(contract_line(), "/data/value/currency", Some(json!("eur")));
    let err = line_validator().check_value(&line).unwrap_err().to_string();
    assert!(err.contains("/data/value/currency"), "{err}");
    let line = with(visit_line(), "/data/intent_level", Some(json!(9)));
    let err = line_validator().parse_value(line).unwrap_err().to_string();
    assert!(err.contains("/data/intent_level"), "{err}");
}

#[test]
fn an_unknown_version_is_reported_as_such_by_the_types() {
    let line: InterchangeLine =
        serde_json::from_value(with(contract_line(), "/schema_version", Some(json!(3)))).unwrap();
    assert!(matches!(
        upcast::decode(line.event_type, line.schema_version, line.data),
        Err(UpcastError::UnknownVersion {
            version: 3,
            current: 2,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// The importer's fast path and the full path agree
// ---------------------------------------------------------------------------------------------

/// Checks that `LineValidator::parse` (which takes a fast typed path for plainly valid lines)
/// gives exactly what the full path gives (`Value`, the schema, typed decoding): the same event
/// and stored data, or the same error.
fn assert_paths_agree(text: &str) -> Result<(), TestCaseError> {
    let fast = line_validator().parse(text.as_bytes());
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        prop_assert!(fast.is_err(), "malformed JSON accepted: {}", text);
        return Ok(());
    };
    let full = line_validator().parse_value(value);
    match (fast, full) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(&a.proposed, &b.proposed, "{}", text);
            prop_assert_eq!(a.schema_version, b.schema_version, "{}", text);
            prop_assert_eq!(&a.data, &b.data, "{}", text);
        }
        (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string(), "{}", text),
        (a, b) => {
            return Err(TestCaseError::fail(format!(
                "the paths disagree on {text}:\n  parse: {a:?}\n  full: {b:?}"
            )));
        }
    }
    Ok(())
}

fn follow_up_line() -> Value {
    valid_line(EventPayload::FollowUpLogged(FollowUpLogged {
        deal_id: DealId::new("d-1").unwrap(),
        rep_id: RepId::new("rep-1").unwrap(),
        kind: FollowUpKind::RepeatOrder,
        outcome: "ordered".into(),
        next_due_on: Some(NaiveDate::from_ymd_opt(2025, 4, 1).unwrap()),
        order_value: None,
    }))
}

#[test]
fn the_fast_path_agrees_with_the_full_path_on_generated_lines() {
    let until = Utc.with_ymd_and_hms(2025, 6, 30, 18, 0, 0).unwrap();
    for seed in [1, 7] {
        for proposed in generate(&DemoConfig::new(40, seed, until)) {
            let text = serde_json::to_string(&line_for(&proposed)).unwrap();
            assert_paths_agree(&text).unwrap();
        }
    }
}

#[test]
fn the_fast_path_agrees_with_the_full_path_on_tricky_values() {
    let times = [
        json!("2025-03-01T09:30:00Z"),
        json!("2025-03-01t09:30:00z"),
        json!("2025-03-01T09:30:00.123456789+08:00"),
        json!("2025-03-01 09:30:00Z"),
        json!("2025-03-01T09:30:00"),
        json!("2025-3-01T09:30:00Z"),
        json!("+2025-03-01T09:30:00Z"),
        json!("2016-12-31T23:59:60Z"),
        json!("2016-12-31T22:59:60Z"),
        json!("2025-02-29T00:00:00Z"),
        json!("2025-03-01T09:30:00+24:00"),
        json!("2025-03-01"),
        json!("2025-03-01T09:30:00\u{0}Z"),
        json!(null),
        json!(5),
    ];
    let ids = [
        json!("0190a0b0-0000-7000-8000-000000000009"),
        json!("0190A0B0-0000-7000-8000-00000000000A"),
        json!("0190a0b000007000800000000000000a"),
        json!("{0190a0b0-0000-7000-8000-00000000000a}"),
        json!("urn:uuid:0190a0b0-0000-7000-8000-00000000000a"),
        json!("0190a0b0-0000-7000-8000-00000000000g"),
        json!(null),
        json!(7),
    ];
    let dates = [
        json!("2025-04-01"),
        json!("2025-4-01"),
        json!("+2025-04-01"),
        json!("2025-04-01T00:00:00Z"),
        json!("2025-02-29"),
        json!("2024-02-29"),
        json!(" 2025-04-01"),
        json!(null),
    ];
    let idents = [
        json!("cust-1"),
        json!("cust 1"),
        json!("-cust"),
        json!("c".repeat(64)),
        json!("c".repeat(65)),
        json!("cüst"),
        json!(""),
        json!(null),
    ];
    let numbers = [
        json!(1),
        json!(2),
        json!(1.0),
        json!(2.0),
        json!(-1),
        json!(0),
        json!(1e1),
        json!(u64::MAX),
        json!("2"),
        json!(null),
    ];
    let mut cases: Vec<Value> = Vec::new();
    for base in [
        contract_line(),
        visit_line(),
        lead_line(),
        correction_line(),
    ] {
        for t in &times {
            cases.push(with(base.clone(), "/occurred_at", Some(t.clone())));
            cases.push(with(base.clone(), "/recorded_at", Some(t.clone())));
        }
        for id in &ids {
            for field in ["/event_id", "/correlation_id", "/causation_id"] {
                cases.push(with(base.clone(), field, Some(id.clone())));
            }
        }
        for ident in &idents {
            for field in [
                "/customer_id",
                "/recorded_by",
                "/data/rep_id",
                "/data/deal_id",
            ] {
                cases.push(with(base.clone(), field, Some(ident.clone())));
            }
        }
        for n in &numbers {
            for field in ["/schema_version", "/revision", "/position"] {
                cases.push(with(base.clone(), field, Some(n.clone())));
            }
        }
        cases.push(with(base.clone(), "/data", Some(json!(null))));
        cases.push(with(base.clone(), "/data", Some(json!({}))));
        cases.push(with(base.clone(), "/type", Some(json!("DealWon"))));
    }
    for d in &dates {
        cases.push(with(follow_up_line(), "/data/next_due_on", Some(d.clone())));
    }
    cases.push(with(follow_up_line(), "/data/next_due_on", None));
    for n in &numbers {
        cases.push(with(visit_line(), "/data/intent_level", Some(n.clone())));
        cases.push(with(contract_line(), "/data/term_months", Some(n.clone())));
        cases.push(with(
            contract_line(),
            "/data/value/amount_minor",
            Some(n.clone()),
        ));
    }
    cases.push(with(
        correction_line(),
        "/data/correction",
        Some(json!({"action": "retract", "replacement": null})),
    ));
    cases.push(with(
        correction_line(),
        "/data/correction",
        Some(json!({"action": "retract"})),
    ));
    cases.push(v1_line(json!({
        "deal_id": "d-1", "rep_id": "rep-1", "value": "1250.50", "currency": "EUR",
        "term_months": 24
    })));
    for case in cases {
        assert_paths_agree(&serde_json::to_string(&case).unwrap()).unwrap();
    }
}

#[test]
fn the_fast_path_agrees_with_the_full_path_on_the_text_of_a_line() {
    let contract = serde_json::to_string(&contract_line()).unwrap();
    let lead = serde_json::to_string(&lead_line()).unwrap();
    let texts = [
        // Whitespace inside and outside `data`.
        contract.replace(':', ": ").replace(',', " , "),
        contract.replace("\"data\":{", "\"data\": {\n"),
        // Keys of `data` out of order, or repeated (the last one wins in a `Value`).
        contract
            .replace("\"deal_id\":\"d-1\",", "")
            .replace("}}", ",\"deal_id\":\"d-1\"}}"),
        contract.replace(
            "\"deal_id\":\"d-1\"",
            "\"deal_id\":\"d-0\",\"deal_id\":\"d-1\"",
        ),
        // A repeated envelope key.
        contract.replace(
            "\"customer_id\":\"cust-1\"",
            "\"customer_id\":\"x\",\"customer_id\":\"cust-1\"",
        ),
        // Escapes serde_json would not write, in data and in the envelope.
        lead.replace("ACME", "AC\\/ME"),
        lead.replace("ACME", "AC\\u004dE"),
        lead.replace("ACME", "A\\tC\\\"M\\\\E\\n"),
        lead.replace("\"Li\"", "\"L\\u00ef\""),
        lead.replace("\"rep-1\"", "\"rep\\u002d1\""),
        // Numbers written differently.
        contract.replace("100000", "1e5"),
        contract.replace("100000", "100000.0"),
        contract.replace("\"term_months\":12", "\"term_months\":12.0"),
        // Not JSON, or more than one value.
        contract.replace("}}", "}"),
        format!("{contract} {contract}"),
        format!("[{contract}]"),
        String::new(),
    ];
    for text in texts {
        assert_paths_agree(&text).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_agrees_with_the_full_path(proposed in proposed_event()) {
        let text = serde_json::to_string(&line_for(&proposed)).unwrap();
        assert_paths_agree(&text)?;
        // The same line written with a different layout takes the full path and still agrees.
        assert_paths_agree(&serde_json::to_string_pretty(&line_for(&proposed)).unwrap())?;
    }
}

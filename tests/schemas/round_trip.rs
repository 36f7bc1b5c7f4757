//! Every value the demo generator and the types produce validates against the interchange line
//! schema, its event's schema and the envelope, and decodes back to the same value.

use crate::generators::proposed_event;
use crate::validators::{envelope_validator, event_validators, line_validator, typed_decode};
use chrono::{TimeZone, Utc};
use pipeline_ledger::contract::line::line_for;
use pipeline_ledger::contract::schema_key;
use pipeline_ledger::demo::{DemoConfig, generate};
use pipeline_ledger::domain::*;
use proptest::prelude::*;
use serde_json::json;

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
    // Every type a producer sends; `PersonalDataErased` is written by `forget` alone.
    assert_eq!(
        seen.len(),
        EventType::ALL.len() - 1,
        "the demo produces every type"
    );
    assert!(!seen.contains(&EventType::PersonalDataErased));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_value_the_types_produce_validates_and_round_trips(proposed in proposed_event()) {
        assert_valid_everywhere(&proposed)?;
    }
}

//! The importer's fast path (`LineValidator::parse`) and the full path (`Value`, the schema,
//! typed decoding) agree on every line: the same event and stored data, or the same error.

use crate::generators::{Sample, proposed_event, v1_line, with};
use crate::validators::line_validator;
use chrono::{TimeZone, Utc};
use pipeline_ledger::contract::line::line_for;
use pipeline_ledger::demo::{DemoConfig, generate};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Checks that `LineValidator::parse` (which takes a fast typed path for plainly valid lines)
/// gives exactly what the full path gives (`Value`, the schema, typed decoding): the same event
/// and stored data, or the same error.
fn assert_paths_agree(text: &str) -> Result<(), TestCaseError> {
    let fast = line_validator().parse(text.as_bytes());
    let full = line_validator().parse_text(text);
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
    for base in Sample::BASES.map(Sample::line) {
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
        cases.push(with(
            Sample::FollowUp.line(),
            "/data/next_due_on",
            Some(d.clone()),
        ));
    }
    cases.push(with(Sample::FollowUp.line(), "/data/next_due_on", None));
    for n in &numbers {
        cases.push(with(
            Sample::Visit.line(),
            "/data/intent_level",
            Some(n.clone()),
        ));
        cases.push(with(
            Sample::Contract.line(),
            "/data/term_months",
            Some(n.clone()),
        ));
        cases.push(with(
            Sample::Contract.line(),
            "/data/value/amount_minor",
            Some(n.clone()),
        ));
    }
    cases.push(with(
        Sample::Correction.line(),
        "/data/correction",
        Some(json!({"action": "retract", "replacement": null})),
    ));
    cases.push(with(
        Sample::Correction.line(),
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
    let contract = serde_json::to_string(&Sample::Contract.line()).unwrap();
    let lead = serde_json::to_string(&Sample::Lead.line()).unwrap();
    let texts = [
        // Whitespace inside and outside `data`.
        contract.replace(':', ": ").replace(',', " , "),
        contract.replace("\"data\":{", "\"data\": {\n"),
        // Keys of `data` out of order, or repeated (refused by both paths, naming the key).
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

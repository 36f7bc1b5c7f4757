//! What the contract refuses: invalid values are rejected both by the schema validator and by
//! typed deserialization, and the errors name the field.

use crate::generators::{Sample, with};
use crate::validators::{line_validator, typed_decode};
use pipeline_ledger::contract::line::InterchangeLine;
use pipeline_ledger::domain::upcast::{self, UpcastError};
use serde_json::{Value, json};

/// A line that the schema and the types must both refuse: what is wrong with it, the valid sample
/// it is made from, the JSON pointer changed, and the value put there (`None`: the key removed).
type Invalid = (&'static str, Sample, &'static str, Option<Value>);

#[rustfmt::skip]
fn invalid_lines() -> Vec<Invalid> {
    use Sample::*;
    vec![
        // Wrong types.
        ("string intent level",             Visit,      "/data/intent_level", Some(json!("3"))),
        ("string term",                     Contract,   "/data/term_months", Some(json!("12"))),
        ("float amount",                    Contract,   "/data/value/amount_minor", Some(json!(10.5))),
        ("string amount",                   Contract,   "/data/value/amount_minor", Some(json!("1000"))),
        ("needs not a list",                Visit,      "/data/needs", Some(json!("n"))),
        ("numeric customer",                Contract,   "/customer_id", Some(json!(5))),
        ("bad event id",                    Contract,   "/event_id", Some(json!("not-a-uuid"))),
        ("numeric occurred_at",             Contract,   "/occurred_at", Some(json!(1_700_000_000))),
        ("occurred_at not a date",          Contract,   "/occurred_at", Some(json!("yesterday"))),
        ("version as string",               Contract,   "/schema_version", Some(json!("2"))),
        ("data not an object",              Contract,   "/data", Some(json!([1, 2]))),
        // Missing fields.
        ("no data",                         Contract,   "/data", None),
        ("no occurred_at",                  Contract,   "/occurred_at", None),
        ("no deal",                         Contract,   "/data/deal_id", None),
        ("no contact name",                 Lead,       "/data/contact/name", None),
        // Unknown fields, at every level.
        ("unknown line field",              Contract,   "/surprise", Some(json!(1))),
        ("unknown data field",              Contract,   "/data/surprise", Some(json!(1))),
        ("unknown money field",             Contract,   "/data/value/cents", Some(json!(1))),
        ("unknown contact field",           Lead,       "/data/contact/fax", Some(json!("1"))),
        ("unknown visit field",             Visit,      "/data/visit/mood", Some(json!("good"))),
        ("unknown field in an amendment",   Correction, "/data/correction/replacement/data/surprise", Some(json!(1))),
        // Bad currencies.
        ("lower-case currency",             Contract,   "/data/value/currency", Some(json!("eur"))),
        ("four-letter currency",            Contract,   "/data/value/currency", Some(json!("EURO"))),
        ("digit in currency",               Contract,   "/data/value/currency", Some(json!("E1R"))),
        ("numeric currency",                Contract,   "/data/value/currency", Some(json!(978))),
        ("currency as bytes",               Contract,   "/data/value/currency", Some(json!([69, 85, 82]))),
        // Negative and out-of-range numbers.
        ("negative amount",                 Contract,   "/data/value/amount_minor", Some(json!(-1))),
        ("negative amount in an amendment", Correction, "/data/correction/replacement/data/value/amount_minor", Some(json!(-100))),
        ("intent level 0",                  Visit,      "/data/intent_level", Some(json!(0))),
        ("intent level 6",                  Visit,      "/data/intent_level", Some(json!(6))),
        ("term 0",                          Contract,   "/data/term_months", Some(json!(0))),
        ("term 601",                        Contract,   "/data/term_months", Some(json!(601))),
        // Bad identifiers and enums.
        ("customer with a space",           Contract,   "/customer_id", Some(json!("cust 1"))),
        ("empty rep",                       Contract,   "/data/rep_id", Some(json!(""))),
        ("rep too long",                    Contract,   "/data/rep_id", Some(json!("r".repeat(65)))),
        ("unknown lead source",             Lead,       "/data/source", Some(json!("billboard"))),
        ("unknown correction action",       Correction, "/data/correction/action", Some(json!("delete"))),
        ("amendment of an unknown type",    Correction, "/data/correction/replacement/type", Some(json!("DealWon"))),
        // Unknown types and versions.
        ("unknown type",                    Contract,   "/type", Some(json!("DealWon"))),
        ("type in lower case",              Contract,   "/type", Some(json!("contractsigned"))),
        ("version 0",                       Contract,   "/schema_version", Some(json!(0))),
        ("version 3",                       Contract,   "/schema_version", Some(json!(3))),
        ("version 2 of a v1-only type",     Visit,      "/schema_version", Some(json!(2))),
        ("negative version",                Contract,   "/schema_version", Some(json!(-1))),
        // Data of another type.
        ("visit data under a contract",     Contract,   "/data", Some(Visit.line()["data"].clone())),
    ]
}

#[test]
fn the_valid_bases_are_valid() {
    for line in Sample::BASES.map(Sample::line) {
        line_validator().check_value(&line).unwrap();
        typed_decode(&line).unwrap();
    }
}

#[test]
fn invalid_values_are_rejected_by_the_schema_and_by_the_types() {
    let mut failures = Vec::new();
    for (name, base, pointer, value) in invalid_lines() {
        let line = with(base.line(), pointer, value);
        let schema = line_validator().check_value(&line);
        let typed = typed_decode(&line);
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
    let line = with(
        Sample::Contract.line(),
        "/data/value/currency",
        Some(json!("eur")),
    );
    let err = line_validator().check_value(&line).unwrap_err().to_string();
    assert!(err.contains("/data/value/currency"), "{err}");
    let line = with(Sample::Visit.line(), "/data/intent_level", Some(json!(9)));
    let err = line_validator().parse_value(line).unwrap_err().to_string();
    assert!(err.contains("/data/intent_level"), "{err}");
}

#[test]
fn an_unknown_version_is_reported_as_such_by_the_types() {
    let line: InterchangeLine = serde_json::from_value(with(
        Sample::Contract.line(),
        "/schema_version",
        Some(json!(3)),
    ))
    .unwrap();
    assert!(matches!(
        upcast::decode(line.event_type, line.schema_version, line.data),
        Err(UpcastError::UnknownVersion {
            version: 3,
            current: 2,
            ..
        })
    ));
}

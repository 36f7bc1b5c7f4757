//! The version 1 `ContractSigned` line (money as a decimal string) validates against its own
//! schema and is upcast to version 2 (integer minor units); neither shape passes as the other.

use crate::generators::v1_line;
use crate::validators::{event_validators, line_validator, typed_decode};
use pipeline_ledger::domain::*;
use proptest::prelude::*;
use serde_json::json;

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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

//! The three ways a line is judged: the published schemas (compiled once per run), the ledger's
//! `LineValidator`, and the types alone without any schema.

use pipeline_ledger::contract;
use pipeline_ledger::contract::line::{InterchangeLine, LineValidator};
use pipeline_ledger::domain::EventPayload;
use pipeline_ledger::domain::upcast;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub fn line_validator() -> &'static LineValidator {
    static V: OnceLock<LineValidator> = OnceLock::new();
    V.get_or_init(LineValidator::new)
}

/// The published schema of each event type and version, compiled, keyed `Type.vN`.
pub fn event_validators() -> &'static BTreeMap<String, jsonschema::Validator> {
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

pub fn envelope_validator() -> &'static jsonschema::Validator {
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
pub fn typed_decode(line: &Value) -> Result<EventPayload, String> {
    let line: InterchangeLine = serde_json::from_value(line.clone()).map_err(|e| e.to_string())?;
    upcast::decode(line.event_type, line.schema_version, line.data).map_err(|e| e.to_string())
}

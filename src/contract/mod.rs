//! The published contract: JSON Schemas (draft 2020-12) generated from the Rust types, written to
//! `schemas/`, and the validator that every event entering the ledger from outside passes.
//!
//! **API Boundary:** the files under `schemas/` are what other teams' producers code against. They
//! are generated from the types here and a test fails when the checked-in copies are stale, so the
//! contract and the code cannot drift apart.

pub mod line;

use crate::domain::upcast::ContractSignedV1;
use crate::domain::*;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub use line::InterchangeLine;

/// The JSON Schema dialect of every published schema.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    generator.into_root_schema_for::<T>().to_value()
}

/// The data schema of every event type at every version, keyed `Type.vN`.
pub fn event_schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for t in EventType::ALL {
        let current = match t {
            EventType::LeadSourced => schema_of::<LeadSourced>(),
            EventType::FirstVisitMade => schema_of::<FirstVisitMade>(),
            EventType::DemoGiven => schema_of::<DemoGiven>(),
            EventType::NegotiationHeld => schema_of::<NegotiationHeld>(),
            EventType::ContractSigned => schema_of::<ContractSigned>(),
            EventType::FollowUpLogged => schema_of::<FollowUpLogged>(),
            EventType::DealLost => schema_of::<DealLost>(),
            EventType::DealReopened => schema_of::<DealReopened>(),
            EventType::CustomerReassigned => schema_of::<CustomerReassigned>(),
            EventType::EventCorrected => schema_of::<EventCorrected>(),
            EventType::PersonalDataErased => schema_of::<PersonalDataErased>(),
        };
        out.insert(schema_key(*t, t.current_version()), current);
    }
    out.insert(
        schema_key(EventType::ContractSigned, 1),
        schema_of::<ContractSignedV1>(),
    );
    // Every version from 1 to current must have a schema: a gap would leave old events
    // unvalidatable.
    for t in EventType::ALL {
        for v in 1..=t.current_version() {
            assert!(out.contains_key(&schema_key(*t, v)), "schema for {t} v{v}");
        }
    }
    out
}

/// The key of an event schema: `ContractSigned.v2`.
pub fn schema_key(t: EventType, version: u32) -> String {
    format!("{}.v{version}", t.as_str())
}

/// The envelope every stored event has (as exported, without `data`).
pub fn envelope_schema() -> Value {
    let mut schema = schema_of::<InterchangeLine>();
    let obj = schema.as_object_mut().expect("object schema");
    obj.insert("title".into(), json!("Envelope"));
    obj.insert(
        "description".into(),
        json!("The envelope of a recorded event: identity, position in the log, times and actors. `revision` and `position` are set by the ledger."),
    );
    let props = obj["properties"].as_object_mut().expect("properties");
    props.remove("data");
    obj.insert(
        "required".into(),
        json!([
            "event_id",
            "customer_id",
            "type",
            "schema_version",
            "occurred_at",
            "recorded_at",
            "recorded_by",
            "revision",
            "position"
        ]),
    );
    schema
}

/// One line of the NDJSON interchange format, with `data` checked against the schema of the
/// line's type and version. Self-contained: every definition is inlined under `$defs`.
pub fn interchange_line_schema() -> Value {
    let mut schema = schema_of::<InterchangeLine>();
    let mut defs = serde_json::Map::new();
    let mut rules = Vec::new();
    for (key, mut event_schema) in event_schemas() {
        let obj = event_schema.as_object_mut().expect("object schema");
        if let Some(Value::Object(inner)) = obj.remove("$defs") {
            defs.extend(inner);
        }
        obj.remove("$schema");
        let (type_name, version) = key.split_once(".v").expect("Type.vN");
        let version: u32 = version.parse().expect("version number");
        rules.push(json!({
            "if": {
                "properties": {"type": {"const": type_name}, "schema_version": {"const": version}},
                "required": ["type", "schema_version"]
            },
            "then": {"properties": {"data": {"$ref": format!("#/$defs/{key}")}}}
        }));
        defs.insert(key, event_schema);
    }
    for t in EventType::ALL {
        let versions: Vec<u32> = (1..=t.current_version()).collect();
        rules.push(json!({
            "if": {"properties": {"type": {"const": t.as_str()}}, "required": ["type"]},
            "then": {"properties": {"schema_version": {"enum": versions}}}
        }));
    }
    let obj = schema.as_object_mut().expect("object schema");
    if let Some(Value::Object(inner)) = obj.remove("$defs") {
        defs.extend(inner);
    }
    obj.insert("allOf".into(), Value::Array(rules));
    obj.insert("$defs".into(), Value::Object(defs));
    schema
}

/// Every published schema file, by its path under `schemas/`.
pub fn schema_files() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut put = |path: String, value: Value| {
        let text = serde_json::to_string_pretty(&value).expect("schemas serialize") + "\n";
        files.insert(path, text);
    };
    for (key, schema) in event_schemas() {
        put(format!("events/{key}.json"), schema);
    }
    put("envelope.json".into(), envelope_schema());
    put("interchange-line.json".into(), interchange_line_schema());
    files
}

/// Writes every schema file under `dir` (the `schemas/` folder), replacing stale ones.
pub fn write_schema_files(dir: &Path) -> std::io::Result<()> {
    for (path, text) in schema_files() {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, text)?;
    }
    Ok(())
}

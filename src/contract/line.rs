//! One line of the NDJSON interchange format (import and export), and its validation: raw bytes
//! in, a typed proposed event out, or an error that names the field.

use crate::domain::money::CurrencyError;
use crate::domain::upcast::{self, UpcastError};
use crate::domain::{ActorId, CustomerId, EventPayload, EventType, ProposedEvent};
use crate::limits::{
    AMOUNT_MINOR_MAX, CLOCK_SKEW_TOLERANCE_SECONDS, LINE_BYTES_MAX, LINE_ERRORS_MAX,
    PAYLOAD_BYTES_MAX,
};
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod fast;
mod unique;

/// One event in the NDJSON interchange format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "InterchangeLine",
    description = "One event per line of the NDJSON interchange format used by import and export."
)]
pub struct InterchangeLine {
    /// Event id (UUID v7 when made by the ledger); also the idempotency key.
    pub event_id: Uuid,
    /// The customer; its stream is `customer-<customer_id>`.
    pub customer_id: CustomerId,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The version of `data`'s schema.
    #[schemars(range(min = 1))]
    pub schema_version: u32,
    /// When the interaction happened (RFC 3339, UTC).
    pub occurred_at: DateTime<Utc>,
    /// When the ledger (or the system it was migrated from) recorded the event. Kept on import
    /// when given; set by the ledger when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// The user or system that recorded the event.
    pub recorded_by: ActorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The event's data, per the schema of `type` at `schema_version`.
    pub data: Value,
    /// Revision in the customer's stream (export only; ignored on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Global position in the log (export only; ignored on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}

/// Why a line was refused. Each names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("not UTF-8: invalid byte at column {column}")]
    NotUtf8 { column: usize },
    #[error("line is {bytes} bytes; the limit is {LINE_BYTES_MAX}")]
    TooLong { bytes: usize },
    #[error("malformed JSON at column {column}: {reason}")]
    MalformedJson { column: usize, reason: String },
    #[error("{}", format_violations(.0))]
    Schema(Vec<(String, String)>),
    #[error("field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error(
        "field {}: key {key:?} appears more than once; send each key once (readers disagree on which value a repeated key has)",
        if .pointer.is_empty() { "(line)" } else { .pointer.as_str() }
    )]
    RepeatedKey { key: String, pointer: String },
    #[error("field data: {0}")]
    Upcast(#[from] UpcastError),
}

fn format_violations(violations: &[(String, String)]) -> String {
    violations
        .iter()
        .map(|(path, msg)| {
            let field = if path.is_empty() {
                "(line)"
            } else {
                path.as_str()
            };
            format!("field {field}: {msg}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A line that passed validation.
#[derive(Debug, Clone)]
pub struct ValidLine {
    pub proposed: ProposedEvent,
    /// The version `data` was written with (stored as is, upcast on read).
    pub schema_version: u32,
    /// `data` as canonical JSON text, at `schema_version`.
    pub data: String,
}

/// Validates lines against the published interchange schema, then decodes them.
pub struct LineValidator {
    validator: jsonschema::Validator,
}

impl LineValidator {
    /// Compiles the interchange-line schema.
    pub fn new() -> Self {
        let schema = super::interchange_line_schema();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .expect("the generated interchange schema compiles");
        Self { validator }
    }

    /// Validates a JSON value against the schema; violations name the field by JSON pointer.
    pub fn check_value(&self, value: &Value) -> Result<(), LineError> {
        if self.validator.is_valid(value) {
            return Ok(());
        }
        let violations: Vec<(String, String)> = self
            .validator
            .iter_errors(value)
            .take(LINE_ERRORS_MAX)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect();
        Err(LineError::Schema(violations))
    }

    /// Parses and validates one line of bytes (without its newline).
    ///
    /// Plainly valid lines take a fast path straight into the typed event (`fast`); every other
    /// line is judged by the full path below, exactly as [`LineValidator::parse_value`] does, so
    /// that the same lines are refused with the same messages.
    pub fn parse(&self, bytes: &[u8]) -> Result<ValidLine, LineError> {
        if bytes.len() > LINE_BYTES_MAX {
            return Err(LineError::TooLong { bytes: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| LineError::NotUtf8 {
            column: e.valid_up_to() + 1,
        })?;
        if let Some(valid) = fast::parse(text) {
            return Ok(valid);
        }
        self.parse_text(text)
    }

    /// The full path for one line of text: JSON with unique keys, then [`Self::parse_value`].
    /// [`LineValidator::parse`] gives the same result, faster for plainly valid lines.
    pub fn parse_text(&self, text: &str) -> Result<ValidLine, LineError> {
        let value = parse_unique_json(text.as_bytes(), usize::MAX)?;
        self.parse_value(value)
    }

    /// Validates and decodes one line already parsed as JSON.
    ///
    /// A number with a zero fraction (`"schema_version": 1.0`) is an integer to JSON Schema, so
    /// the published schema accepts it where it asks for an integer; it is read as that integer
    /// (the types would refuse a float), so that every line the schema accepts decodes.
    pub fn parse_value(&self, mut value: Value) -> Result<ValidLine, LineError> {
        self.check_value(&value)?;
        integral_floats_to_integers(&mut value);
        let line: InterchangeLine =
            serde_json::from_value(value).map_err(|e| LineError::Field {
                field: "(line)".into(),
                reason: e.to_string(),
            })?;
        let data = serde_json::to_string(&line.data).expect("JSON values serialize");
        if data.len() > PAYLOAD_BYTES_MAX {
            return Err(LineError::Field {
                field: "data".into(),
                reason: format!("{} bytes; the limit is {PAYLOAD_BYTES_MAX}", data.len()),
            });
        }
        let payload = upcast::decode(line.event_type, line.schema_version, line.data)?;
        let proposed = ProposedEvent {
            event_id: line.event_id,
            customer_id: line.customer_id,
            occurred_at: truncate_to_micros(line.occurred_at),
            recorded_at: line.recorded_at.map(truncate_to_micros),
            recorded_by: line.recorded_by,
            correlation_id: line.correlation_id,
            causation_id: line.causation_id,
            payload,
        };
        check_new_input(&proposed, Utc::now())?;
        Ok(ValidLine {
            proposed,
            schema_version: line.schema_version,
            data,
        })
    }
}

/// Parses one JSON text of at most `bytes_max` bytes as the interchange format reads a line:
/// UTF-8, well-formed, every key once. For front ends (the HTTP API) that add fields of their
/// own to what a caller sent before [`LineValidator::parse_value`] judges it.
pub fn parse_unique_json(bytes: &[u8], bytes_max: usize) -> Result<Value, LineError> {
    if bytes.len() > bytes_max {
        return Err(LineError::TooLong { bytes: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LineError::NotUtf8 {
        column: e.valid_up_to() + 1,
    })?;
    parse_unique_text(text)
}

/// JSON text with every key once, errors as line errors.
fn parse_unique_text(text: &str) -> Result<Value, LineError> {
    unique::parse(text).map_err(|e| match e {
        unique::ParseError::Malformed(e) => LineError::MalformedJson {
            column: e.column(),
            reason: e.to_string(),
        },
        unique::ParseError::Repeated(r) => LineError::RepeatedKey {
            key: r.key,
            pointer: r.pointer,
        },
    })
}

/// Rewrites every number with a zero fraction that fits an `i64` or `u64` as that integer.
fn integral_floats_to_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 {
                // `as` saturates; the round trip checks that the value was in range.
                if f >= 0.0 && (f as u64) as f64 == f && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && (f as i64) as f64 == f && f > i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Decodes the replacement of an amendment as given to `record correct --amend`:
/// `{"type": "...", "data": {...}}` with `data` at the type's current version. Every error names
/// the JSON pointer inside that text of the field it is about (`/type`, `/data/value/currency`).
pub fn parse_replacement(text: &str) -> Result<EventPayload, LineError> {
    let value = parse_unique_text(text)?;
    let field = |field: &str, reason: String| LineError::Field {
        field: field.to_string(),
        reason,
    };
    let Value::Object(mut object) = value else {
        return Err(field(
            "(amend)",
            "expected an object {\"type\": \"...\", \"data\": {...}}".into(),
        ));
    };
    if let Some(key) = object.keys().find(|k| *k != "type" && *k != "data") {
        let reason = "is not a field of a replacement; give only \"type\" and \"data\"";
        return Err(field(&format!("/{key}"), reason.into()));
    }
    let event_type = match object.remove("type") {
        None => {
            return Err(field(
                "/type",
                "is missing; name the corrected event's type".into(),
            ));
        }
        Some(Value::String(name)) => EventType::parse(&name).ok_or_else(|| {
            let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            field(
                "/type",
                format!("{name:?} is not an event type ({})", types.join(", ")),
            )
        })?,
        Some(other) => return Err(field("/type", format!("{other} is not a string"))),
    };
    let Some(data) = object.remove("data") else {
        return Err(field(
            "/data",
            "is missing; give the corrected event's data".into(),
        ));
    };
    let schema = super::event_schemas()
        .remove(&super::schema_key(event_type, event_type.current_version()))
        .expect("every type has a schema at its current version");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the generated event schemas compile");
    let violations: Vec<(String, String)> = validator
        .iter_errors(&data)
        .take(LINE_ERRORS_MAX)
        .map(|e| (format!("/data{}", e.instance_path()), e.to_string()))
        .collect();
    if !violations.is_empty() {
        return Err(LineError::Schema(violations));
    }
    EventPayload::from_data(event_type, data).map_err(|e| field("/data", e.to_string()))
}

/// The checks that apply to new input only (both paths of [`LineValidator::parse`], and
/// `record`), never to events already stored, which must always decode so that `rebuild` works
/// on every existing store: `recorded_at` at most `now` plus the clock-skew tolerance (a later
/// one would hide the event from every `--known-at` report), and money in an active ISO 4217
/// currency, at most [`AMOUNT_MINOR_MAX`]. The published schema states the last two as well.
pub fn check_new_input(proposed: &ProposedEvent, now: DateTime<Utc>) -> Result<(), LineError> {
    if let Some(recorded_at) = proposed.recorded_at
        && recorded_at > now + Duration::seconds(CLOCK_SKEW_TOLERANCE_SECONDS)
    {
        return Err(LineError::Field {
            field: "/recorded_at".into(),
            reason: format!(
                "{recorded_at} is in the future (the ledger's time is {now}; at most {CLOCK_SKEW_TOLERANCE_SECONDS} s of clock skew is tolerated)"
            ),
        });
    }
    if let Some((pointer, money)) = proposed.payload.amount() {
        if !money.currency.is_active() {
            return Err(LineError::Field {
                field: format!("/data{pointer}/currency"),
                reason: CurrencyError::NotActive(money.currency.to_string()).to_string(),
            });
        }
        if money.amount_minor > AMOUNT_MINOR_MAX {
            return Err(LineError::Field {
                field: format!("/data{pointer}/amount_minor"),
                reason: format!(
                    "{} is more than the limit of {AMOUNT_MINOR_MAX} minor units per event",
                    money.amount_minor
                ),
            });
        }
    }
    Ok(())
}

impl Default for LineValidator {
    fn default() -> Self {
        Self::new()
    }
}

/// Times are kept to the microsecond, the store's resolution, so that a retry compares equal.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Builds the line for a typed event at the current schema version.
pub fn line_for(proposed: &ProposedEvent) -> InterchangeLine {
    let event_type: EventType = proposed.payload.event_type();
    InterchangeLine {
        event_id: proposed.event_id,
        customer_id: proposed.customer_id.clone(),
        event_type,
        schema_version: event_type.current_version(),
        occurred_at: proposed.occurred_at,
        recorded_at: proposed.recorded_at,
        recorded_by: proposed.recorded_by.clone(),
        correlation_id: proposed.correlation_id,
        causation_id: proposed.causation_id,
        data: EventPayload::data_json(&proposed.payload),
        revision: None,
        position: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: the repro `import-duplicate-keys-last-wins.sh`, whose line repeats `company` in
    /// `data` and `customer_id` in the envelope.
    const REPEATED: &str = r#"{"event_id":"0190a5d0-0000-7000-8000-0000000000d1","customer_id":"good","type":"LeadSourced","schema_version":1,"occurred_at":"2025-06-08T16:08:29Z","recorded_by":"rep-02","data":{"company":"Good Co","company":"Evil Co","contact":{"name":"N"},"deal_id":"d1","rep_id":"rep-02","source":"web"},"customer_id":"evil"}"#;

    /// Issue 10: `schema_version: 1.0` (shared/repros/data-safety/schema-version-1.0-one-line.ndjson)
    /// is an integer to the published schema, so it is accepted, as 1.
    #[test]
    fn integral_floats_are_read_as_the_integers_the_schema_accepts() {
        let line = r#"{"event_id":"0197504c-f048-7bb5-b82a-5c32b19d66c8","customer_id":"cust-00043","type":"LeadSourced","schema_version":1.0,"occurred_at":"2025-06-08T16:08:29Z","recorded_at":"2025-06-08T20:03:29Z","recorded_by":"rep-02","data":{"company":"Maple Energy 43","contact":{"email":"buyer@cust-00043.example","name":"Contact cust-00043","phone":"+86 21 5555 2968","role":"decision_maker"},"deal_id":"cust-00043-d1","qualification":{"customer_growing":true,"has_business_plan":false,"has_opportunities":true,"has_relationship":false,"revenue_potential":true,"solution_fits":false,"we_are_competitive":false},"rep_id":"rep-02","source":"web"},"revision":0,"position":1}"#;
        let v = LineValidator::new();
        let valid = v.parse(line.as_bytes()).unwrap();
        assert_eq!(valid.schema_version, 1);
        let as_integer = v.parse(line.replace("1.0,", "1,").as_bytes()).unwrap();
        assert_eq!(valid.proposed, as_integer.proposed);
        assert_eq!(valid.data, as_integer.data);
        // A fraction is still refused, naming the field.
        let err = v
            .parse(line.replace("1.0,", "1.5,").as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("field /schema_version"), "{err}");
    }

    #[track_caller]
    fn check_refused(text: &str, expected: &str) {
        let v = LineValidator::new();
        assert!(fast::parse(text).is_none(), "the fast path accepted {text}");
        let err = v.parse(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(err, expected, "{text}");
        let full = v.parse_text(text).unwrap_err().to_string();
        assert_eq!(full, expected, "{text}");
    }

    #[test]
    fn repeated_keys_are_refused_on_both_paths_naming_key_and_pointer() {
        check_refused(
            REPEATED,
            "field /data: key \"company\" appears more than once; send each key once (readers disagree on which value a repeated key has)",
        );
        let envelope = REPEATED.replace(r#""company":"Good Co","#, "");
        check_refused(
            &envelope,
            "field (line): key \"customer_id\" appears more than once; send each key once (readers disagree on which value a repeated key has)",
        );
        // A line that the fast path would take but for the repeated key in canonical `data`.
        let plain = envelope.replace(r#","customer_id":"evil""#, "");
        assert!(fast::parse(&plain).is_some(), "{plain}");
        let nested = plain.replace(r#""name":"N""#, r#""name":"N","name":"M""#);
        check_refused(
            &nested,
            "field /data/contact: key \"name\" appears more than once; send each key once (readers disagree on which value a repeated key has)",
        );
    }
}

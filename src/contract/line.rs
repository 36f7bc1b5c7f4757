//! One line of the NDJSON interchange format (import and export), and its validation: raw bytes
//! in, a typed proposed event out, or an error that names the field.

use crate::domain::upcast::{self, UpcastError};
use crate::domain::{ActorId, CustomerId, EventPayload, EventType, ProposedEvent};
use crate::limits::{LINE_BYTES_MAX, LINE_ERRORS_MAX, PAYLOAD_BYTES_MAX};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod fast;

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
        let value: Value = serde_json::from_str(text).map_err(|e| LineError::MalformedJson {
            column: e.column(),
            reason: e.to_string(),
        })?;
        self.parse_value(value)
    }

    /// Validates and decodes one line already parsed as JSON.
    pub fn parse_value(&self, value: Value) -> Result<ValidLine, LineError> {
        self.check_value(&value)?;
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
        Ok(ValidLine {
            proposed,
            schema_version: line.schema_version,
            data,
        })
    }
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

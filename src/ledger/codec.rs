//! Between typed events and store records: stream names, encoding, and decoding with upcasting.

use crate::contract::InterchangeLine;
use crate::domain::upcast::{self, UpcastError};
use crate::domain::{ActorId, CustomerId, EventPayload, EventType, LedgerEvent, ProposedEvent};
use crate::store::{NewRecord, Record, StreamFilter};

/// Prefix of every customer stream; also the filter of the ledger's streams in a shared store.
pub const STREAM_PREFIX: &str = "customer-";

/// The stream of a customer.
pub fn stream_name(customer: &CustomerId) -> String {
    format!("{STREAM_PREFIX}{customer}")
}

/// The customer a stream belongs to, as its name spells it (not yet validated as an identifier);
/// `None` when it is not a customer stream (another application's, in a shared store).
pub fn customer_of_stream(stream: &str) -> Option<&str> {
    stream.strip_prefix(STREAM_PREFIX)
}

/// The ledger's streams, for a store shared with others: every customer stream.
pub fn stream_filter() -> StreamFilter {
    StreamFilter::prefix(STREAM_PREFIX)
}

/// Why a stored record could not be read back as a typed event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event at position {position}: stream {stream:?} is not a customer stream")]
    NotACustomerStream { position: u64, stream: String },
    #[error("event at position {position}: unknown event type {event_type:?}")]
    UnknownType { position: u64, event_type: String },
    #[error("event at position {position}: data is not JSON: {source}")]
    BadJson {
        position: u64,
        source: serde_json::Error,
    },
    #[error("event at position {position}: {source}")]
    Upcast { position: u64, source: UpcastError },
    #[error("event at position {position}: recorded_by {value:?} is not an identifier")]
    BadActor { position: u64, value: String },
}

/// The store record for a validated event; `data` is canonical JSON at `schema_version`.
pub fn to_new_record(proposed: &ProposedEvent, schema_version: u32, data: String) -> NewRecord {
    NewRecord {
        event_id: proposed.event_id,
        event_type: proposed.payload.event_type().as_str().to_string(),
        schema_version,
        data,
        occurred_at: proposed.occurred_at,
        recorded_at: proposed.recorded_at,
        recorded_by: proposed.recorded_by.to_string(),
        correlation_id: proposed.correlation_id,
        causation_id: proposed.causation_id,
    }
}

/// Decodes a stored record into a typed event at the current schema version.
pub fn decode(record: &Record) -> Result<LedgerEvent, DecodeError> {
    let position = record.position;
    let customer_id = customer_of_stream(&record.stream)
        .and_then(|id| CustomerId::new(id).ok())
        .ok_or_else(|| DecodeError::NotACustomerStream {
            position,
            stream: record.stream.clone(),
        })?;
    let event_type =
        EventType::parse(&record.event_type).ok_or_else(|| DecodeError::UnknownType {
            position,
            event_type: record.event_type.clone(),
        })?;
    let payload = if record.schema_version == event_type.current_version() {
        EventPayload::from_data_str(event_type, &record.data).map_err(|source| {
            DecodeError::Upcast {
                position,
                source: UpcastError::BadData {
                    event_type,
                    version: record.schema_version,
                    source,
                },
            }
        })?
    } else {
        let data: serde_json::Value = serde_json::from_str(&record.data)
            .map_err(|source| DecodeError::BadJson { position, source })?;
        upcast::decode(event_type, record.schema_version, data)
            .map_err(|source| DecodeError::Upcast { position, source })?
    };
    let recorded_by =
        ActorId::new(record.recorded_by.clone()).map_err(|_| DecodeError::BadActor {
            position,
            value: record.recorded_by.clone(),
        })?;
    Ok(LedgerEvent {
        event_id: record.event_id,
        customer_id,
        revision: record.revision,
        position,
        stored_version: record.schema_version,
        occurred_at: record.occurred_at,
        recorded_at: record.recorded_at,
        recorded_by,
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        payload,
    })
}

/// The export line of a record: the event as stored (its original schema version), with its
/// revision and position, so that an import reproduces it exactly.
pub fn to_line(record: &Record) -> Result<InterchangeLine, DecodeError> {
    let event = decode(record)?;
    let data = serde_json::from_str(&record.data).map_err(|source| DecodeError::BadJson {
        position: record.position,
        source,
    })?;
    Ok(InterchangeLine {
        event_id: event.event_id,
        customer_id: event.customer_id,
        event_type: event.payload.event_type(),
        schema_version: record.schema_version,
        occurred_at: record.occurred_at,
        recorded_at: Some(record.recorded_at),
        recorded_by: event.recorded_by,
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        data,
        revision: Some(record.revision),
        position: Some(record.position),
    })
}

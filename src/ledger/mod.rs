//! The ledger service: what the command line and other programs call. It reads a customer's
//! history from the store, asks the domain whether an event may be recorded, and appends it with
//! the expected revision it decided on, so that a concurrent writer cannot slip in between.

pub mod codec;
pub mod forget;
pub mod import;
pub mod personal;

use crate::contract::line::{LineError, LineValidator, ValidLine, line_for};
use crate::domain::{
    CustomerHistory, CustomerId, EventPayload, LedgerEvent, ProposedEvent, RuleViolation,
};
use crate::keys::vault::{Vault, VaultError};
use crate::limits::{RECORD_CONFLICT_ATTEMPTS_MAX, RECORD_CONFLICT_RETRY_MILLIS_MAX};
use crate::store::{
    AppendError, CurrentRevision, EventStore, ExpectedRevision, NewRecord, ReadError, Record,
};
use chrono::Utc;
use codec::{DecodeError, decode, stream_name, to_new_record};
pub use personal::PersonalView;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Longest pause before the second try of a `record` that lost a race with another writer; the
/// bound doubles with each try up to [`RECORD_BACKOFF_MAX`], and the pause is a random part of
/// it (full jitter), so that writers who collided spread out instead of colliding again.
pub const RECORD_BACKOFF_MIN: Duration = Duration::from_millis(4);
/// Longest pause between two tries of a contended `record`.
pub const RECORD_BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Events read per page when scanning the log.
pub const READ_PAGE_EVENTS: usize = 4096;

/// Why an event could not be recorded. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid event: {0}")]
    Invalid(#[from] LineError),
    #[error("refused: {0}; nothing was written")]
    Refused(#[from] RuleViolation),
    #[error(
        "event {event_id} was already recorded with different content; nothing was written. An \
         event id names one event: a retry must repeat the original's content, a new event needs \
         a new id"
    )]
    IdUsed { event_id: Uuid },
    #[error(
        "customer {customer}'s stream is at {actual}, but the caller expected {expected}; nothing \
         was written. Read the customer's history, decide again, and name its current revision"
    )]
    Conflict {
        customer: CustomerId,
        expected: ExpectedRevision,
        actual: CurrentRevision,
    },
    #[error(
        "other writers kept changing customer {customer}'s stream: gave up after {attempts} \
         tries in {elapsed_ms} ms; nothing was written. Try again (with the same event id a \
         retry is safe)"
    )]
    Contended {
        customer: CustomerId,
        attempts: u32,
        elapsed_ms: u128,
    },
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("reading the customer's history failed: {0}")]
    Read(#[from] ReadError),
    #[error("the customer's history cannot be decoded: {0}")]
    Decode(#[from] DecodeError),
    #[error("{0}; nothing was written")]
    Personal(#[from] personal::SealError),
}

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub event_id: Uuid,
    pub revision: u64,
    pub position: u64,
    /// False when this was a retry of an event already recorded.
    pub written: bool,
}

/// How `record` treats an event beyond its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordOptions {
    /// The revision of the customer's stream the caller decided on. When given, a stream at
    /// another revision is reported at once as [`RecordError::Conflict`], never retried. When not,
    /// a race lost to another writer is decided again on the new history, with backoff, within
    /// [`RECORD_CONFLICT_ATTEMPTS_MAX`] tries and [`RECORD_CONFLICT_RETRY_MILLIS_MAX`] ms.
    pub expected: Option<ExpectedRevision>,
    /// The fields the ledger filled in because the caller left them out.
    pub filled_in: FilledIn,
}

/// Fields of a proposed event that the ledger filled in, not the caller. A retry with the same
/// event id is not compared on them, because a retry fills them in anew (`occurred_at` with a
/// new "now"): it is the same event if the fields the caller gave are the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilledIn {
    pub occurred_at: bool,
    pub recorded_by: bool,
}

impl FilledIn {
    /// Whether `new` is a retry of `stored` (same id, same stream), comparing the fields the
    /// caller gave only.
    fn is_retry_of(&self, stored: &Record, stream: &str, mut new: NewRecord) -> bool {
        if self.occurred_at {
            new.occurred_at = stored.occurred_at;
        }
        if self.recorded_by {
            new.recorded_by.clone_from(&stored.recorded_by);
        }
        stored.is_same_event(stream, &new)
    }
}

/// The pause before try `attempt + 1` of a contended `record`: a random part of a bound that
/// doubles per try from [`RECORD_BACKOFF_MIN`] up to [`RECORD_BACKOFF_MAX`].
fn record_backoff(attempt: u32) -> Duration {
    let bound = RECORD_BACKOFF_MIN
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(RECORD_BACKOFF_MAX);
    let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=micros))
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("customer {0} is unknown (no events)")]
    UnknownCustomer(CustomerId),
    #[error(transparent)]
    Read(ReadError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("reading the key store failed: {0}")]
    Keys(#[from] VaultError),
}

/// A customer's history in stream order, decoded to current schema versions; an error for a
/// customer with no events.
pub async fn customer_history(
    store: &dyn EventStore,
    customer: &CustomerId,
) -> Result<Vec<LedgerEvent>, HistoryError> {
    let stream = stream_name(customer);
    let mut streams = store
        .read_streams(std::slice::from_ref(&stream))
        .await
        .map_err(HistoryError::Read)?;
    let records = streams.remove(&stream).unwrap_or_default();
    if records.is_empty() {
        return Err(HistoryError::UnknownCustomer(customer.clone()));
    }
    records
        .iter()
        .map(|r| decode(r).map_err(HistoryError::from))
        .collect()
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the key store failed: {0}")]
    Keys(#[from] VaultError),
}

/// The ledger over any event store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn EventStore>,
    validator: Arc<LineValidator>,
    /// The key store of personal data; `None` keeps personal fields as they are given (a library
    /// user's choice: the command line and the server always open one).
    personal: Option<Arc<Vault>>,
}

impl Ledger {
    /// A ledger over `store` that keeps personal fields as given (see
    /// [`Ledger::with_personal_data`]).
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            validator: Arc::new(LineValidator::new()),
            personal: None,
        }
    }

    /// This ledger, sealing personal fields with the customers' keys in `vault` on the way in
    /// and opening them for readers allowed to see them.
    pub fn with_personal_data(mut self, vault: Arc<Vault>) -> Self {
        self.personal = Some(vault);
        self
    }

    /// The key store of personal data, when the ledger has one.
    pub fn vault(&self) -> Option<&Arc<Vault>> {
        self.personal.as_ref()
    }

    /// Turns the personal fields of `events` into what a reader with `view` may see.
    pub fn reveal(&self, events: &mut [LedgerEvent], view: PersonalView) -> Result<(), VaultError> {
        for event in events {
            personal::reveal(event, view, self.personal.as_deref())?;
        }
        Ok(())
    }

    /// Seals a validated line's personal fields (nothing to do without a key store).
    fn seal(&self, valid: &mut ValidLine) -> Result<(), personal::SealError> {
        if let EventPayload::PersonalDataErased(_) = valid.proposed.payload {
            // Only `forget` may say the data is gone, and it destroys the key before it says so.
            let customer = &valid.proposed.customer_id;
            let erased = self
                .personal
                .as_ref()
                .is_some_and(|vault| vault.erasure(customer.as_str()).is_some());
            if !erased {
                return Err(personal::SealError::ErasureNotByForget {
                    customer: customer.clone(),
                });
            }
            return Ok(());
        }
        let Some(vault) = &self.personal else {
            return Ok(());
        };
        if !personal::has_personal_fields(&valid.proposed.payload) {
            return Ok(());
        }
        let customer = valid.proposed.customer_id.as_str();
        let key = if personal::has_plaintext(&mut valid.proposed.payload) {
            let mut keys = vault.keys_for_writing([customer])?;
            keys.remove(customer).expect("asked for this customer")
        } else {
            vault.key(customer)?
        };
        personal::seal_line(valid, &key)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The schema validator every incoming event passes.
    pub fn validator(&self) -> &LineValidator {
        &self.validator
    }

    /// Every event of a customer's stream; an empty vector for a new customer.
    pub async fn read_customer(&self, customer: &CustomerId) -> Result<Vec<Record>, ReadError> {
        let stream = stream_name(customer);
        let mut streams = self
            .store
            .read_streams(std::slice::from_ref(&stream))
            .await?;
        Ok(streams.remove(&stream).unwrap_or_default())
    }

    /// A customer's history, decoded to current schema versions.
    pub async fn history(&self, customer: &CustomerId) -> Result<Vec<LedgerEvent>, HistoryError> {
        customer_history(&*self.store, customer).await
    }

    /// Validates a typed event against the published schema, as if it came from outside.
    pub fn validate(&self, proposed: &ProposedEvent) -> Result<ValidLine, LineError> {
        let line = serde_json::to_value(line_for(proposed)).expect("lines serialize");
        self.validator.parse_value(line)
    }

    /// Records one event: validate, decide against the customer's history, append.
    pub async fn record(&self, proposed: ProposedEvent) -> Result<Recorded, RecordError> {
        self.record_with(proposed, RecordOptions::default()).await
    }

    /// Records one event with `options` (an expected revision, the fields the ledger filled in).
    pub async fn record_with(
        &self,
        proposed: ProposedEvent,
        options: RecordOptions,
    ) -> Result<Recorded, RecordError> {
        let valid = self.validate(&proposed)?;
        self.record_valid_with(valid, options).await
    }

    /// Records an event that passed schema validation.
    pub async fn record_valid(&self, valid: ValidLine) -> Result<Recorded, RecordError> {
        self.record_valid_with(valid, RecordOptions::default())
            .await
    }

    /// Records an event that passed schema validation, with `options`. A retry of an event
    /// already recorded (same id, same content where the caller gave it) returns where it landed
    /// and writes nothing.
    pub async fn record_valid_with(
        &self,
        mut valid: ValidLine,
        options: RecordOptions,
    ) -> Result<Recorded, RecordError> {
        self.seal(&mut valid)?;
        let customer = valid.proposed.customer_id.clone();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let lost_race = match self.try_record(&valid, &options).await? {
                Ok(recorded) => return Ok(recorded),
                Err(actual) => actual,
            };
            if let Some(expected) = options.expected {
                return Err(RecordError::Conflict {
                    customer,
                    expected,
                    actual: lost_race,
                });
            }
            // Another writer got there first: decide again on the new history, after a pause.
            let pause = record_backoff(attempt);
            let budget = Duration::from_millis(RECORD_CONFLICT_RETRY_MILLIS_MAX);
            if attempt >= RECORD_CONFLICT_ATTEMPTS_MAX || started.elapsed() + pause > budget {
                return Err(RecordError::Contended {
                    customer,
                    attempts: attempt,
                    elapsed_ms: started.elapsed().as_millis(),
                });
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One try of `record`: read the history, recognise a retry, decide, append. `Ok(Err(actual))`
    /// when the stream was not at the revision decided on (another writer got there first, or
    /// the caller's expected revision is stale): nothing was written.
    async fn try_record(
        &self,
        valid: &ValidLine,
        options: &RecordOptions,
    ) -> Result<Result<Recorded, CurrentRevision>, RecordError> {
        let customer = &valid.proposed.customer_id;
        let stream = stream_name(customer);
        let records = self.read_customer(customer).await?;
        let new = to_new_record(&valid.proposed, valid.schema_version, valid.data.clone());
        // A retry of an event already recorded returns where it landed.
        if let Some(existing) = records.iter().find(|r| r.event_id == new.event_id) {
            if !options.filled_in.is_retry_of(existing, &stream, new) {
                return Err(RecordError::IdUsed {
                    event_id: existing.event_id,
                });
            }
            return Ok(Ok(Recorded {
                event_id: existing.event_id,
                revision: existing.revision,
                position: existing.position,
                written: false,
            }));
        }
        let current = match records.last() {
            None => CurrentRevision::NoStream,
            Some(r) => CurrentRevision::Current(r.revision),
        };
        if let Some(expected) = options.expected
            && !expected.is_met_by(current)
        {
            return Ok(Err(current));
        }
        let events = records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let history = CustomerHistory::from_events(customer.clone(), &events);
        // A given recorded_at (migrated history) decides, but never later than our clock:
        // otherwise a future recorded_at would let occurred_at into the future too.
        let now = Utc::now();
        let now = valid.proposed.recorded_at.map_or(now, |r| r.min(now));
        history.decide(&valid.proposed, now)?;
        let expected = match history.revision() {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        match self.store.append(&stream, expected, vec![new]).await {
            Ok(result) => Ok(Ok(Recorded {
                event_id: valid.proposed.event_id,
                revision: result.next_expected_revision,
                position: result.last_position,
                written: result.written,
            })),
            Err(AppendError::WrongExpectedRevision { actual, .. }) => Ok(Err(actual)),
            // The id is used by another customer's event (the store keeps ids unique).
            Err(AppendError::IdempotencyConflict { event_id }) => {
                Err(RecordError::IdUsed { event_id })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes every event as stored as NDJSON, in position order. Returns the number of events.
    pub async fn export(&self, out: &mut dyn Write) -> Result<u64, ExportError> {
        self.export_range(None, None, PersonalView::AsStored, out)
            .await
    }

    /// The export line of a record, its personal fields as `view` shows them: as stored, the
    /// record's own data; otherwise the event's data with its personal fields opened or
    /// withheld (only event types at their current version carry personal fields).
    pub fn line_of(
        &self,
        record: &Record,
        view: PersonalView,
    ) -> Result<crate::contract::InterchangeLine, ExportError> {
        let mut line = codec::to_line(record)?;
        if view != PersonalView::AsStored && personal::has_personal_fields_type(line.event_type) {
            let mut event = decode(record)?;
            if personal::has_personal_fields(&event.payload) {
                personal::reveal(&mut event, view, self.personal.as_deref())?;
                line.data = event.payload.data_json();
                line.schema_version = event.payload.event_type().current_version();
            }
        }
        Ok(line)
    }

    /// Writes the events at positions `from..=to` (each bound optional) as NDJSON, in position
    /// order, personal fields as `view` shows them. Returns the number of events.
    pub async fn export_range(
        &self,
        from: Option<u64>,
        to: Option<u64>,
        view: PersonalView,
        out: &mut dyn Write,
    ) -> Result<u64, ExportError> {
        let mut after = from.and_then(|f| f.checked_sub(1)).filter(|&p| p > 0);
        let mut count = 0;
        loop {
            let page = self.store.read_all(after, READ_PAGE_EVENTS).await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = Some(last.position);
            for record in &page {
                if to.is_some_and(|to| record.position > to) {
                    return Ok(count);
                }
                let line = self.line_of(record, view)?;
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                count += 1;
            }
        }
    }

    /// Counts of events per type over the whole log.
    pub async fn count_by_type(&self) -> Result<HashMap<String, u64>, ReadError> {
        let mut after = None;
        let mut counts = HashMap::new();
        loop {
            let page = self.store.read_all(after, READ_PAGE_EVENTS).await?;
            let Some(last) = page.last() else {
                return Ok(counts);
            };
            after = Some(last.position);
            for record in page {
                *counts.entry(record.event_type).or_insert(0) += 1;
            }
        }
    }
}

/// Why reading the log decoded stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadDecodedError {
    #[error("reading the event log failed: {0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("decoding stopped unexpectedly: {0}")]
    Decoder(String),
}

/// Reads the whole log in order, decoded into ledger events (other applications' streams in a
/// shared store are skipped), and hands it to `visit` a page of `page_events` records at a time
/// until `visit` breaks. The next page is read while this one is decoded on every core: decoding
/// is most of the work, and SQLite reads on its own thread.
pub async fn read_decoded(
    store: &dyn EventStore,
    page_events: usize,
    mut visit: impl FnMut(Vec<LedgerEvent>) -> std::ops::ControlFlow<()>,
) -> Result<(), ReadDecodedError> {
    let mut page = store.read_all(None, page_events).await?;
    loop {
        let Some(last) = page.last().map(|r| r.position) else {
            return Ok(());
        };
        let decoding = tokio::task::spawn_blocking(move || decode_page(&page));
        let (next, decoded) = tokio::join!(store.read_all(Some(last), page_events), decoding);
        let events = decoded.map_err(|e| ReadDecodedError::Decoder(e.to_string()))??;
        if visit(events).is_break() {
            return Ok(());
        }
        page = next?;
    }
}

fn decode_page(page: &[Record]) -> Result<Vec<LedgerEvent>, DecodeError> {
    use rayon::prelude::*;
    page.par_iter()
        .filter(|r| codec::customer_of_stream(&r.stream).is_some())
        .map(decode)
        .collect()
}

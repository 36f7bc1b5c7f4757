//! The event store: an append-only log of events grouped in streams, behind one trait that every
//! backend implements. Shaped after KurrentDB's semantics (expected revisions, `$all` positions,
//! catch-up subscriptions), so that the embedded SQLite backend and a KurrentDB backend are
//! interchangeable.
//!
//! The store knows nothing of the domain: an event is a type name, a schema version, JSON data
//! and metadata. Decoding into typed events happens in the ledger (`ledger::codec`), which also
//! tells the store which streams are its own (a [`StreamFilter`]) where the store is shared.

pub mod backup;
pub mod chain;
pub mod files;
pub mod kurrent;
pub mod sqlite;

use crate::limits::{APPEND_EVENTS_MAX, PAYLOAD_BYTES_MAX};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Events read per page when a whole stream is read.
pub const READ_STREAM_PAGE_EVENTS: usize = 4096;

/// A stream name (the ledger's are `customer-<id>`).
pub type StreamName = String;

/// Which streams of a store are its caller's: those whose name starts with a prefix. A store
/// shared with other applications (KurrentDB) reads and subscribes to these streams only, and
/// never sees the others (system streams, other applications'). The caller names them: the store
/// knows nothing of what its streams mean. The embedded store holds only what its callers append,
/// and reads all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFilter {
    prefix: String,
}

impl StreamFilter {
    /// The streams whose name starts with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix every stream of the filter starts with.
    pub fn as_prefix(&self) -> &str {
        &self.prefix
    }
}

/// The revision a writer expects the stream to be at; the append fails otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist (have at least one event).
    StreamExists,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl std::fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// The revision a stream is actually at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentRevision {
    NoStream,
    Current(u64),
}

impl std::fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CurrentRevision::NoStream => f.write_str("no stream"),
            CurrentRevision::Current(n) => write!(f, "revision {n}"),
        }
    }
}

impl ExpectedRevision {
    /// Whether a stream at `current` satisfies this expectation.
    pub fn is_met_by(&self, current: CurrentRevision) -> bool {
        match (self, current) {
            (ExpectedRevision::Any, _) => true,
            (ExpectedRevision::NoStream, CurrentRevision::NoStream) => true,
            (ExpectedRevision::StreamExists, CurrentRevision::Current(_)) => true,
            (ExpectedRevision::Exact(n), CurrentRevision::Current(c)) => *n == c,
            _ => false,
        }
    }
}

/// An event handed to the store: what the writer decides; the store adds stream, revision,
/// position (and `recorded_at` when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// JSON text of the event data.
    pub data: String,
    pub occurred_at: DateTime<Utc>,
    /// `None`: the store sets it to the time of the append.
    pub recorded_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub event_id: Uuid,
    pub stream: StreamName,
    pub revision: u64,
    /// Global position, from 1, strictly increasing in append order.
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub data: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl Record {
    /// Whether `new` is a retry of this record: same id, same content. `recorded_at` is compared
    /// only when the retry gives one, because a retry without it would get a new clock reading.
    pub fn is_same_event(&self, stream: &str, new: &NewRecord) -> bool {
        self.event_id == new.event_id
            && self.stream == stream
            && self.event_type == new.event_type
            && self.schema_version == new.schema_version
            && self.data == new.data
            && self.occurred_at == new.occurred_at
            && new.recorded_at.is_none_or(|r| r == self.recorded_at)
            && self.recorded_by == new.recorded_by
            && self.correlation_id == new.correlation_id
            && self.causation_id == new.causation_id
    }
}

/// One stream's part of an append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<NewRecord>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Revision of the last event appended.
    pub next_expected_revision: u64,
    /// Position of the first and last event appended.
    pub first_position: u64,
    pub last_position: u64,
    /// False when the append was a retry of one already recorded: nothing was written.
    pub written: bool,
}

/// Why an append failed. Nothing of a failed append is written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at {actual}, but the writer expected {expected}")]
    WrongExpectedRevision {
        stream: StreamName,
        expected: ExpectedRevision,
        actual: CurrentRevision,
    },
    #[error(
        "event {event_id} was already recorded with different content; an event id can be used once"
    )]
    IdempotencyConflict { event_id: Uuid },
    #[error("an append needs at least one event")]
    Empty,
    #[error("{count} events in one append; the limit is {APPEND_EVENTS_MAX}")]
    TooManyEvents { count: usize },
    #[error("event {event_id} data is {bytes} bytes; the limit is {PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge { event_id: Uuid, bytes: usize },
    #[error("event id {event_id} appears twice in one append")]
    DuplicateInAppend { event_id: Uuid },
    #[error("the bulk append was abandoned before its commit; nothing was written")]
    Abandoned,
    #[error("the store failed: {0}")]
    Storage(#[from] StorageError),
}

/// One message of a bulk append: a chunk of appends, or the commit that ends it.
#[derive(Debug)]
pub enum BulkMessage {
    Chunk(Vec<StreamAppend>),
    Commit,
}

/// What a bulk append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkResult {
    /// Events newly written.
    pub written: u64,
    /// Events of appends that were retries of appends already recorded.
    pub already_present: u64,
    /// Position of the last event written.
    pub last_position: Option<u64>,
}

impl BulkResult {
    /// Adds the results of one chunk's appends (`results[i]` is the result of `appends[i]`).
    /// Counts events from the appends, not from positions: positions are not dense on every
    /// backend (KurrentDB's are byte offsets).
    pub fn add(&mut self, appends: &[StreamAppend], results: &[AppendResult]) {
        for (append, r) in appends.iter().zip(results) {
            let events = append.events.len() as u64;
            if r.written {
                self.written += events;
                self.last_position = Some(
                    self.last_position
                        .map_or(r.last_position, |p| p.max(r.last_position)),
                );
            } else {
                self.already_present += events;
            }
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("stream {0} does not exist")]
    StreamNotFound(StreamName),
    #[error("the store failed: {0}")]
    Storage(#[from] StorageError),
}

/// A failure of the storage itself (I/O, corruption, a closed store).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store stopped after an earlier write failure ({0}); close and reopen it")]
    Poisoned(String),
    #[error("the store is closed")]
    Closed,
    #[error("the store {0} was opened read-only; this command cannot write to it")]
    ReadOnly(String),
    /// A write failed and nothing of it was acknowledged; the message names the cause.
    #[error("{0}")]
    WriteFailed(WriteFailure),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The server cannot be reached or failed; the message says whether a write may have
    /// happened and what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

/// Direction of a stream read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionMessage {
    Event(Record),
    /// Everything recorded before this point has been delivered; what follows is live.
    CaughtUp {
        position: Option<u64>,
    },
    /// The server cannot be reached; the subscription tries again, from its last position, on
    /// the next call. Nothing was skipped. Says so at once, so that someone watching knows why
    /// nothing arrives. (The embedded store never sends it.)
    Retrying(RetryNotice),
}

/// A subscription's failed attempt to reach its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNotice {
    /// Why, with where the server is.
    pub reason: String,
    /// This attempt, from 1, and the attempt after which the subscription gives up.
    pub attempt: u32,
    pub attempts_max: u32,
    /// The pause before the next attempt.
    pub retry_in: std::time::Duration,
}

impl std::fmt::Display for RetryNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; retrying in {:.1} s (attempt {} of {})",
            self.reason,
            self.retry_in.as_secs_f64(),
            self.attempt,
            self.attempts_max
        )
    }
}

/// A subscription to all events, in position order, without gap or duplicate.
#[async_trait]
pub trait Subscription: Send {
    /// The next message; waits for new events once caught up.
    async fn next(&mut self) -> Result<SubscriptionMessage, ReadError>;
}

/// The operations every backend offers.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to one stream atomically, if the stream is at `expected`.
    /// Retrying with the same event ids and content returns the original result and writes
    /// nothing; the same ids with other content is an [`AppendError::IdempotencyConflict`].
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewRecord>,
    ) -> Result<AppendResult, AppendError> {
        let mut results = self
            .append_many(vec![StreamAppend {
                stream: stream.to_string(),
                expected,
                events,
            }])
            .await?;
        Ok(results.pop().expect("one result per stream append"))
    }

    /// Appends to several streams in one atomic unit: all or nothing.
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError>;

    /// Reads up to `max_count` events of a stream, forwards from `from_revision` (default the
    /// start) or backwards from it (default the end).
    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from_revision: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError>;

    /// Reads up to `max_count` events of the whole log with a position greater than `after`.
    async fn read_all(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError>;

    /// The event at `position`, if the log holds one there. On a store whose positions are not
    /// dense (KurrentDB), most positions are no record's, and `None` says so.
    async fn record_at(&self, position: u64) -> Result<Option<Record>, ReadError> {
        Ok(self
            .read_all(position.checked_sub(1), 1)
            .await?
            .into_iter()
            .next()
            .filter(|r| r.position == position))
    }

    /// Subscribes to every event after the checkpoint `after`: catch-up, then live.
    async fn subscribe_all(&self, after: Option<u64>) -> Result<Box<dyn Subscription>, ReadError>;

    /// The position of the last event, `None` for an empty log.
    async fn head_position(&self) -> Result<Option<u64>, ReadError>;

    /// What this store skipped while reading that its user should know of, each once: on
    /// KurrentDB, the streams found hard-deleted (their tombstones carry no event and are
    /// skipped, so that no reader stops at them). Empty for a store that skips nothing.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// The store's identity: an id given to it once, when it was created, and kept by copies
    /// and backups of it. Derived data (the read models) records it, so that it is never read
    /// against another store. `None` when the store has none and cannot be given one now (a
    /// store of an older version opened read-only).
    async fn identity(&self) -> Result<Option<String>, ReadError>;

    /// What the store holds of its hash chain; `None` when it keeps none (a store of an older
    /// format opened read-only, or a backend without one).
    async fn chain_info(&self) -> Result<Option<chain::ChainInfo>, ReadError> {
        Ok(None)
    }

    /// Up to `max_count` events with a position greater than `after`, each with the hashes the
    /// store keeps for it (none, by default).
    async fn read_chained(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<chain::ChainedRecord>, ReadError> {
        Ok(self
            .read_all(after, max_count)
            .await?
            .into_iter()
            .map(|record| chain::ChainedRecord {
                record,
                event_hash: None,
                chain_hash: None,
            })
            .collect())
    }

    /// The events with a position in `after + 1 ..= upto`, each with its stored hashes. A
    /// verifier of a chain over the log reads several such ranges at once.
    async fn read_chained_between(
        &self,
        after: u64,
        upto: u64,
    ) -> Result<Vec<chain::ChainedRecord>, ReadError> {
        let wanted = usize::try_from(upto.saturating_sub(after)).unwrap_or(usize::MAX);
        let mut page = self.read_chained(Some(after), wanted).await?;
        page.retain(|c| c.record.position <= upto);
        Ok(page)
    }

    /// The chain hash stored at `position`, on a store whose chain runs over the log.
    async fn chain_link_at(&self, position: u64) -> Result<Option<chain::Digest>, ReadError> {
        let _ = position;
        Ok(None)
    }

    /// The position of the event whose stored event hash is `hash`, if any: how a verifier tells
    /// a moved event from a changed one.
    async fn find_event_hash(&self, hash: chain::Digest) -> Result<Option<u64>, ReadError> {
        let _ = hash;
        Ok(None)
    }

    /// Appends chunks as they arrive, as one atomic unit: everything is written when
    /// [`BulkMessage::Commit`] arrives, nothing if the sender goes away first or a chunk fails
    /// (the receiver is then dropped, so the sender's next send fails and it can stop early).
    /// Lets a producer validate chunk n+1 while the store writes chunk n, with memory bounded
    /// by the chunks in flight. This default gathers the chunks and appends them at the commit.
    async fn append_bulk(
        &self,
        mut chunks: tokio::sync::mpsc::Receiver<BulkMessage>,
    ) -> Result<BulkResult, AppendError> {
        let mut all = Vec::new();
        loop {
            match chunks.recv().await {
                Some(BulkMessage::Chunk(chunk)) => all.extend(chunk),
                Some(BulkMessage::Commit) => break,
                None => return Err(AppendError::Abandoned),
            }
        }
        let mut result = BulkResult::default();
        if !all.is_empty() {
            let results = self.append_many(all.clone()).await?;
            result.add(&all, &results);
        }
        Ok(result)
    }

    /// Up to `max_count` events with a position at or before `upto`, ordered by stream and
    /// revision, starting after the (stream, revision) key `after`. Rebuilds use it to fold one
    /// customer at a time. `Ok(None)` when the backend cannot read in this order; callers then
    /// read in log order.
    async fn read_by_stream(
        &self,
        upto: u64,
        after: Option<(StreamName, u64)>,
        max_count: usize,
    ) -> Result<Option<Vec<Record>>, ReadError> {
        let _ = (upto, after, max_count);
        Ok(None)
    }

    /// Every event of each of `streams`, forwards; a missing stream reads as empty. Batch
    /// readers (imports) use it; a backend may answer many streams in one round trip.
    async fn read_streams(
        &self,
        streams: &[StreamName],
    ) -> Result<std::collections::HashMap<StreamName, Vec<Record>>, ReadError> {
        let mut out = std::collections::HashMap::with_capacity(streams.len());
        for stream in streams {
            let mut records: Vec<Record> = Vec::new();
            loop {
                let from = records.last().map(|r| r.revision + 1);
                let page = match self
                    .read_stream(stream, Direction::Forwards, from, READ_STREAM_PAGE_EVENTS)
                    .await
                {
                    Ok(page) => page,
                    Err(ReadError::StreamNotFound(_)) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let full = page.len() == READ_STREAM_PAGE_EVENTS;
                records.extend(page);
                if !full {
                    break;
                }
            }
            out.insert(stream.clone(), records);
        }
        Ok(out)
    }
}

/// Why a store named on the command line could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] sqlite::SqliteOpenError),
    #[error(transparent)]
    Kurrent(#[from] kurrent::KurrentOpenError),
}

/// How a store is opened: whether a missing one is created, whether it may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Create the store if it does not exist (`init`, `record`, `import`).
    #[default]
    CreateIfMissing,
    /// Refuse a store that does not exist, naming `pipeline-ledger init`.
    MustExist,
    /// Refuse a missing store, and never write it: no writer, read-only connections.
    ReadOnly,
}

/// How to open a store (the embedded backend; KurrentDB ignores them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreOptions {
    pub access: Access,
    /// The mode of files the store creates.
    pub file_mode: files::FileMode,
}

/// Why a write failed, as far as SQLite tells: each says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// The file or its directory cannot be written.
    ReadOnly(String),
    /// No space left on the device.
    DiskFull(String),
    /// Another process held the write lock for longer than the store waits.
    Busy(String),
    /// Any other failure (I/O, corruption).
    Other(String),
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteFailure::ReadOnly(e) => write!(
                f,
                "the write failed because the store cannot be written ({e}); nothing was \
                 acknowledged; check the permissions of the store file, its -wal and -shm files \
                 and its directory"
            ),
            WriteFailure::DiskFull(e) => write!(
                f,
                "the write failed because the disk is full ({e}); nothing was acknowledged; \
                 free space, then close and reopen the store"
            ),
            WriteFailure::Busy(e) => write!(
                f,
                "the write failed because another process held the store's write lock for too \
                 long ({e}); nothing was written; try again"
            ),
            WriteFailure::Other(e) => write!(
                f,
                "the write failed ({e}); nothing was acknowledged; close and reopen the store \
                 and check it with `PRAGMA integrity_check`"
            ),
        }
    }
}

impl WriteFailure {
    /// Classifies a SQLite error of a write.
    pub fn of(e: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let text = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
                WriteFailure::ReadOnly(text)
            }
            Some(ErrorCode::DiskFull) => WriteFailure::DiskFull(text),
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                WriteFailure::Busy(text)
            }
            _ => WriteFailure::Other(text),
        }
    }

    /// Whether the store must refuse later writes until reopened: after a failure that may
    /// have left the file in an uncertain state. A busy lock wrote nothing.
    pub fn poisons(&self) -> bool {
        !matches!(self, WriteFailure::Busy(_))
    }
}

/// Which backend a store location names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Kurrent,
}

impl Backend {
    /// KurrentDB for a KurrentDB connection string (`kurrentdb://`, `kurrentdb+discover://`,
    /// `esdb://`, `esdb+discover://`, …), the embedded SQLite store for anything else (a path).
    pub fn of(location: &str) -> Self {
        if kurrent::is_connection_string(location) {
            Backend::Kurrent
        } else {
            Backend::Sqlite
        }
    }
}

/// Opens the store a location names (see [`Backend::of`]), which reads the streams `filter`
/// names where it is shared with others. Opening KurrentDB needs a running tokio runtime and does
/// not contact the server yet.
pub fn open_url(
    location: &str,
    filter: StreamFilter,
) -> Result<std::sync::Arc<dyn EventStore>, OpenError> {
    open_url_with(location, filter, StoreOptions::default())
}

/// [`open_url`] with options for the embedded store (whether a missing one is created, whether
/// it is opened read-only, the mode of new files).
pub fn open_url_with(
    location: &str,
    filter: StreamFilter,
    options: StoreOptions,
) -> Result<std::sync::Arc<dyn EventStore>, OpenError> {
    Ok(match Backend::of(location) {
        Backend::Kurrent => std::sync::Arc::new(kurrent::KurrentStore::connect(location, filter)?),
        Backend::Sqlite => std::sync::Arc::new(sqlite::SqliteStore::open_with(location, options)?),
    })
}

/// Checks what every append must satisfy before it reaches a backend.
pub fn check_append(appends: &[StreamAppend]) -> Result<(), AppendError> {
    let events = appends.iter().map(|a| a.events.len()).sum();
    let mut seen = std::collections::HashSet::with_capacity(events);
    for append in appends {
        if append.events.is_empty() {
            return Err(AppendError::Empty);
        }
        if append.events.len() > APPEND_EVENTS_MAX {
            return Err(AppendError::TooManyEvents {
                count: append.events.len(),
            });
        }
        for event in &append.events {
            if event.data.len() > PAYLOAD_BYTES_MAX {
                return Err(AppendError::PayloadTooLarge {
                    event_id: event.event_id,
                    bytes: event.data.len(),
                });
            }
            if !seen.insert(event.event_id) {
                return Err(AppendError::DuplicateInAppend {
                    event_id: event.event_id,
                });
            }
        }
    }
    if appends.is_empty() {
        return Err(AppendError::Empty);
    }
    Ok(())
}

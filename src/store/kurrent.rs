//! The KurrentDB backend, through the official `kurrentdb` client (KurrentDB and EventStoreDB
//! 20+, over gRPC).
//!
//! Mapping:
//! - one KurrentDB stream per ledger stream (`customer-<id>`), same name;
//! - our event type is KurrentDB's event type, the data is JSON (`content-type:
//!   application/json`), our event id is KurrentDB's event id, so the server's own idempotency
//!   check applies to retries;
//! - the rest of a record (`occurred_at`, `recorded_at`, `recorded_by`, correlation and causation
//!   ids, schema version) travels in the event's custom metadata, as JSON ([`EventMetadata`]);
//!   correlation and causation use KurrentDB's conventional `$correlationId` / `$causationId`
//!   keys, so that the server's system projections understand them;
//! - expected revisions map one to one to KurrentDB's stream states;
//! - a record's `position` is the event's **commit position** in `$all`. KurrentDB writes each
//!   event of an append as its own committed record, so commit positions are unique and strictly
//!   increasing in `$all` order, but they are byte offsets in the server's log: **positions are
//!   not dense** (they jump by hundreds), unlike the embedded store's 1, 2, 3 …;
//! - `read_all` and `subscribe_all` read `$all` filtered to the caller's streams (a
//!   [`StreamFilter`] given when connecting; the ledger's is the prefix `customer-`), so that other
//!   streams of a shared server (system streams, other applications) are never seen.
//!
//! Differences from the embedded store (the contract suite states them too):
//! - `append_many` over several streams is **not atomic across streams**: the client has no
//!   multi-stream append, so each stream is appended in turn (each one atomically); a failure
//!   leaves the earlier streams written.
//! - Idempotency is the server's: a retry is recognised by its event ids at the position the
//!   expected revision names (permanent for `NoStream` and `Exact`, which the ledger uses), but
//!   with `Any` or `StreamExists` only while the ids are in the server's recent-event cache.
//!   A retry must therefore carry the same expected revision as the original.
//! - Event ids are unique per stream, not across the whole log (KurrentDB has no global index by
//!   id).

mod deletions;

use super::chain::{self, ChainInfo, ChainedRecord, Digest, GENESIS};
use super::{
    AppendError, AppendResult, CurrentRevision, Direction, EventStore, ExpectedRevision, NewRecord,
    ReadError, Record, RetryNotice, StorageError, StreamAppend, StreamFilter, Subscription,
    SubscriptionMessage, check_append,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use deletions::{DeletionRecord, Deletions};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    ReadStreamOptions, StreamPosition, StreamState, SubscribeToAllOptions, SubscriptionEvent,
    SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How long one read may take before it fails (reads are streaming calls, which the client
/// leaves without a deadline).
pub const READ_DEADLINE: Duration = Duration::from_secs(30);
/// How long one append may take before it fails; the outcome is then unknown, and a retry with
/// the same event ids and expected revision is safe.
pub const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// Events read per page by `read_all` callers inside this backend.
pub const PAGE_EVENTS: usize = 1024;
/// How many times a read that found nothing before its deadline is tried again, each time with
/// twice the deadline (30 s, 1, 2, 4, 8 min): on a server shared with other applications, a
/// filtered `$all` read can scan for minutes before it meets one of the ledger's events.
pub const READ_DEADLINE_GROWTH_MAX: u32 = 4;
/// Records read per page when looking for the head backwards past tombstones.
pub const HEAD_PAGE_EVENTS: usize = 16;
/// How long what `read_all` knows of deletions (see `kurrent/deletions.rs`) is used before the
/// log is searched again for newer ones: a deletion younger than this may not yet hide its
/// stream's events from a read. Subscriptions search whenever they (re)subscribe, and meet
/// later deletions as they come.
pub const DELETIONS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Records asked for per page when searching the log for deletion records.
pub const DELETIONS_PAGE_EVENTS: usize = 4096;
/// What the server answers a read of `$all` from a position inside a record (KurrentDB
/// `RpcExceptions.cs` `InvalidPositionException`: `InvalidArgument`, since 20.10).
const INVALID_POSITION_MESSAGE: &str = "Trying to read from an invalid position.";
/// First pause before a subscription reconnects; doubled after each failure up to the maximum.
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
/// Longest pause between two reconnection attempts.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);
/// Consecutive failed reconnections after which a subscription gives up with an error
/// (about two minutes of outage with the delays above).
pub const RECONNECT_ATTEMPTS_MAX: u32 = 30;
/// Failed attempts after which a subscription that has never reached its server gives up
/// (about ten seconds with the delays above): a wrong address or a server that is not running
/// is reported while the operator is still watching, whereas an outage of a server that was
/// reached is waited out for [`RECONNECT_ATTEMPTS_MAX`] attempts.
pub const FIRST_CONNECT_ATTEMPTS_MAX: u32 = 8;

/// Why a KurrentDB store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KurrentOpenError {
    #[error(
        "invalid KurrentDB connection string: {0} (expected e.g. kurrentdb://localhost:2113?tls=false)"
    )]
    BadConnectionString(String),
    #[error("cannot create the KurrentDB client: {0}")]
    Client(String),
    #[error("opening a KurrentDB store needs a running tokio runtime")]
    NoRuntime,
    #[error(
        "PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX is {0:?}; give the server's maximum append size in bytes (a whole number above 0)"
    )]
    BadAppendBytesMax(String),
}

/// The bytes one append may carry: `PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX`, else
/// [`crate::limits::KURRENT_APPEND_BYTES_MAX`].
fn append_bytes_max() -> Result<usize, KurrentOpenError> {
    match std::env::var("PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX") {
        Err(_) => Ok(crate::limits::KURRENT_APPEND_BYTES_MAX),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(KurrentOpenError::BadAppendBytesMax(text)),
        },
    }
}

/// The metadata this backend stores with each event (KurrentDB's custom metadata, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventMetadata {
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
    #[serde(
        rename = "$correlationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<Uuid>,
    #[serde(
        rename = "$causationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub causation_id: Option<Uuid>,
    /// Identifies the append call that wrote the event. A retry carries a new one, so reading
    /// the events back tells whether this call wrote them or the server recognised a retry
    /// (its reply is the same in both cases).
    pub append_id: Uuid,
    /// The event's hash and its stream's chain hash (hex; see `store::chain`). Absent on events
    /// written before the chain existed: the chain of such a stream is computed over them from
    /// the genesis hash when its next event is appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_hash: Option<String>,
}

/// The KurrentDB event store. Cheap to clone; clones share the connection.
/// The stream that holds the store's identity (see [`EventStore::identity`]).
pub const IDENTITY_STREAM: &str = "pipeline-ledger-identity";
/// The type of the one event of [`IDENTITY_STREAM`].
pub const IDENTITY_EVENT_TYPE: &str = "StoreIdentified";
/// The type of the record a hard delete (tombstone) writes into the deleted stream, which `$all`
/// readers and subscriptions receive (KurrentDB `SystemNames.cs`, `SystemEventTypes.StreamDeleted`).
pub const TOMBSTONE_EVENT_TYPE: &str = "$streamDeleted";

#[derive(Clone)]

pub struct KurrentStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientSettings,
    /// The client; replaced when it reports its connection closed for good (the client's
    /// connection task stops after its first failed node discovery, and never recovers).
    client: RwLock<Client>,
    /// Connection string without credentials, for messages.
    display: String,
    /// The streams of `$all` this store reads and subscribes to.
    filter: StreamFilter,
    /// Streams found hard-deleted (tombstoned) while reading `$all`: skipped, and told.
    deleted_seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Records of `$all` in the caller's streams that are not the ledger's (another program
    /// wrote them): skipped by readers, and told.
    foreign_seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The deletions found in `$all`, whose streams' earlier events readers skip.
    deletions: std::sync::Mutex<Deletions>,
    /// Positions given to a read that are not the position of any record (a checkpoint of
    /// another cluster, a position typed by hand): the read found its place another way, told.
    invalid_positions_seen: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    /// Bytes one append may carry ([`crate::limits::KURRENT_APPEND_BYTES_MAX`]).
    append_bytes_max: usize,
    /// The first deadline of a read ([`READ_DEADLINE`]); doubled, up to
    /// [`READ_DEADLINE_GROWTH_MAX`] times, for a read that finds nothing before it passes.
    read_deadline: Duration,
}

impl std::fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurrentStore")
            .field("server", &self.inner.display)
            .finish()
    }
}

/// Whether `s` is a KurrentDB connection string (by its scheme).
pub fn is_connection_string(s: &str) -> bool {
    let scheme = s.split("://").next().unwrap_or_default();
    s.contains("://")
        && matches!(
            scheme,
            "kurrentdb"
                | "kurrentdb+discover"
                | "kurrent"
                | "kurrent+discover"
                | "kdb"
                | "kdb+discover"
                | "esdb"
                | "esdb+discover"
        )
}

/// The connection string with any password replaced, for messages.
fn redact(s: &str) -> String {
    match (s.find("://"), s.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &s[..scheme_end], &s[at + 1..])
        }
        _ => s.to_string(),
    }
}

impl KurrentStore {
    /// Connects to KurrentDB with a connection string (`kurrentdb://host:2113?tls=false`, any
    /// form the client accepts); `read_all` and `subscribe_all` see the streams `filter` names
    /// only. Connecting is lazy: an unreachable server shows on the first operation, as a
    /// [`StorageError::Unavailable`]. Must be called inside a tokio runtime.
    pub fn connect(
        connection_string: &str,
        filter: StreamFilter,
    ) -> Result<Self, KurrentOpenError> {
        let settings: ClientSettings =
            connection_string
                .parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    KurrentOpenError::BadConnectionString(e.to_string())
                })?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KurrentOpenError::NoRuntime);
        }
        let client =
            Client::new(settings.clone()).map_err(|e| KurrentOpenError::Client(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                client: RwLock::new(client),
                display: redact(connection_string),
                filter,
                deleted_seen: Default::default(),
                foreign_seen: Default::default(),
                deletions: Default::default(),
                invalid_positions_seen: Default::default(),
                append_bytes_max: append_bytes_max()?,
                read_deadline: READ_DEADLINE,
            }),
        })
    }

    /// The same store, splitting appends over `bytes` (for a server whose `MaxAppendSize` is
    /// not the default).
    pub fn with_append_bytes_max(self, bytes: usize) -> Self {
        let read_deadline = self.inner.read_deadline;
        self.rebuilt(bytes.max(1), read_deadline)
    }

    /// The same store, giving reads `deadline` at first (for tests, and servers slower than
    /// [`READ_DEADLINE`] allows for).
    pub fn with_read_deadline(self, deadline: Duration) -> Self {
        let append_bytes_max = self.inner.append_bytes_max;
        self.rebuilt(append_bytes_max, deadline)
    }

    fn rebuilt(self, append_bytes_max: usize, read_deadline: Duration) -> Self {
        let inner = Inner {
            settings: self.inner.settings.clone(),
            client: RwLock::new(self.client()),
            display: self.inner.display.clone(),
            filter: self.inner.filter.clone(),
            deleted_seen: Default::default(),
            foreign_seen: Default::default(),
            deletions: Default::default(),
            invalid_positions_seen: Default::default(),
            append_bytes_max,
            read_deadline,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Whether a record of `$all` is a tombstone (a hard delete of its stream), which carries no
    /// event of ours: readers skip it, and the stream is noted for [`EventStore::notices`].
    fn is_tombstone(&self, event: &kurrentdb::RecordedEvent) -> bool {
        if event.event_type != TOMBSTONE_EVENT_TYPE {
            return false;
        }
        self.inner
            .deleted_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event.stream_id().to_string());
        true
    }

    /// A record of `$all` as the ledger's [`Record`], or `None` for one another program wrote
    /// into the caller's streams (its metadata is not the ledger's): `$all` readers skip it,
    /// noted for [`EventStore::notices`], rather than stop at it for good.
    fn ledger_record(&self, event: &kurrentdb::RecordedEvent) -> Option<Record> {
        self.ledger_stored(event).map(|s| s.record)
    }

    /// [`Self::ledger_record`] with the append id and hashes.
    fn ledger_stored(&self, event: &kurrentdb::RecordedEvent) -> Option<Stored> {
        match to_record(event) {
            Ok(stored) => Some(stored),
            Err(why) => {
                self.inner
                    .foreign_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(why.to_string());
                None
            }
        }
    }

    /// The server-side filter of `$all` to the caller's streams.
    fn subscription_filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(self.inner.filter.as_prefix())
    }

    /// [`Self::subscription_filter`] and the metadata streams of the caller's streams
    /// (`$$customer-…`), where soft deletes are written: what a subscription follows.
    fn subscription_filter_with_metadata(&self) -> SubscriptionFilter {
        self.subscription_filter()
            .add_prefix(format!("$${}", self.inner.filter.as_prefix()))
    }

    fn deletions(&self) -> std::sync::MutexGuard<'_, Deletions> {
        self.inner
            .deletions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a deletion hides this record of `$all` (see `kurrent/deletions.rs`); noted for
    /// [`EventStore::notices`] when it does.
    fn is_hidden(&self, event: &kurrentdb::RecordedEvent) -> bool {
        let mut deletions = self.deletions();
        let hidden = deletions.hides(event.stream_id(), event.revision, event.position.commit);
        if hidden {
            deletions.note_skipped(event.stream_id());
        }
        hidden
    }

    /// The deletion of one of the caller's streams this record of `$all` is, if it is one.
    fn deletion_record(&self, event: &kurrentdb::RecordedEvent) -> Option<DeletionRecord> {
        DeletionRecord::parse(
            self.inner.filter.as_prefix(),
            event.stream_id(),
            &event.event_type,
            &event.data,
            event.position.commit,
        )
    }

    /// Notes a position a caller gave that is no record's, for [`EventStore::notices`].
    fn note_invalid_position(&self, position: u64) {
        self.inner
            .invalid_positions_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(position);
    }

    /// Makes every deletion of the caller's streams after `after` known, unless the last search
    /// covers it and is younger than `fresh_for`: searches `$all` from where the last search
    /// ended for the metadata records of the caller's streams (soft deletes, truncations) and
    /// for tombstones (hard deletes). Both searches are filtered on the server, which sends only
    /// the few records that match.
    async fn refresh_deletions(
        &self,
        after: Option<u64>,
        fresh_for: Duration,
    ) -> Result<(), kurrentdb::Error> {
        let Some(from) = self.deletions().search_from(after, fresh_for) else {
            return Ok(());
        };
        // Where the log ends now; the next search starts there.
        let end = self.last_record_position().await?.unwrap_or(0);
        let mut found = Vec::new();
        for filter in [
            SubscriptionFilter::on_stream_name()
                .add_prefix(format!("$${}", self.inner.filter.as_prefix())),
            SubscriptionFilter::on_event_type().add_prefix(TOMBSTONE_EVENT_TYPE),
        ] {
            self.search_deletions(from, filter, &mut found).await?;
        }
        found.sort_by_key(|(position, _)| *position);
        let mut deletions = self.deletions();
        for (_, record) in &found {
            deletions.apply(record);
        }
        deletions.searched(from, end);
        Ok(())
    }

    /// The position of the last record of `$all`, whoever wrote it; `None` for an empty log.
    async fn last_record_position(&self) -> Result<Option<u64>, kurrentdb::Error> {
        self.read_one(
            ReadAllOptions::default()
                .position(StreamPosition::End)
                .backwards(),
        )
        .await
        .map(|e| e.map(|e| e.get_original_event().position.commit))
    }

    /// The first record a read of `$all` with `options` gives, if any. A read that passes its
    /// deadline is made again with a longer one, a bounded number of times.
    async fn read_one(
        &self,
        options: ReadAllOptions,
    ) -> Result<Option<kurrentdb::ResolvedEvent>, kurrentdb::Error> {
        let mut deadline = self.inner.read_deadline;
        let mut growths = 0;
        loop {
            let options = options.clone().max_count(1).deadline(deadline);
            let first = async {
                let mut read = self.client().read_all(&options).await?;
                read.next().await
            }
            .await;
            match first {
                Err(kurrentdb::Error::DeadlineExceeded) if growths < READ_DEADLINE_GROWTH_MAX => {
                    (growths, deadline) = (growths + 1, deadline * 2);
                }
                other => return other,
            }
        }
    }

    /// Reads the records `filter` selects after `after` to the end of `$all`, adding the
    /// deletions among them to `found`. A position that is no record's is read past from the
    /// start of the log.
    async fn search_deletions(
        &self,
        after: Option<u64>,
        filter: SubscriptionFilter,
        found: &mut Vec<(u64, DeletionRecord)>,
    ) -> Result<(), kurrentdb::Error> {
        let mut from = after;
        let mut relocated = false;
        let mut deadline = self.inner.read_deadline;
        let mut growths = 0;
        loop {
            let options = ReadAllOptions::default()
                .forwards()
                .position(start_at(from))
                .filter(filter.clone())
                .max_count(DELETIONS_PAGE_EVENTS)
                .deadline(deadline);
            let mut received = 0;
            let outcome = async {
                let mut read = self.client().read_all(&options).await?;
                while let Some(event) = read.next().await? {
                    received += 1;
                    let event = event.get_original_event();
                    let position = event.position.commit;
                    if from.is_some_and(|f| position <= f) || after.is_some_and(|a| position <= a) {
                        continue;
                    }
                    from = Some(position);
                    if let Some(record) = self.deletion_record(event) {
                        found.push((position, record));
                    }
                }
                Ok::<(), kurrentdb::Error>(())
            }
            .await;
            match outcome {
                Ok(()) if received < DELETIONS_PAGE_EVENTS => return Ok(()),
                Ok(()) => {}
                Err(e) if is_invalid_position(&e) && !relocated && from == after => {
                    relocated = true;
                    from = None;
                }
                Err(kurrentdb::Error::DeadlineExceeded)
                    if received == 0 && growths < READ_DEADLINE_GROWTH_MAX =>
                {
                    (growths, deadline) = (growths + 1, deadline * 2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn client(&self) -> Client {
        self.inner
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Maps a client error to ours; replaces the client when its connection task has stopped,
    /// so that the next operation connects anew instead of failing forever.
    fn storage_error(&self, e: kurrentdb::Error) -> StorageError {
        use kurrentdb::Error as E;
        match e {
            E::ConnectionClosed | E::GrpcConnectionError(_) => {
                if let Ok(fresh) = Client::new(self.inner.settings.clone()) {
                    *self.inner.client.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                }
                StorageError::Unavailable(format!(
                    "KurrentDB at {} cannot be reached ({e}); nothing was written by a failed \
                     append, retry when the server is back",
                    self.inner.display
                ))
            }
            E::ServerError(msg) => StorageError::Unavailable(format!(
                "KurrentDB at {} failed or is unreachable ({msg}); an append that failed this way \
                 may or may not have been written: retry it with the same event ids",
                self.inner.display
            )),
            E::DeadlineExceeded => StorageError::Unavailable(format!(
                "KurrentDB at {} did not answer in time; an append that failed this way may or \
                 may not have been written: retry it with the same event ids",
                self.inner.display
            )),
            E::Grpc {
                code: tonic::Code::Aborted,
                message,
            } => StorageError::Unavailable(format!(
                "KurrentDB at {} did not confirm the append ({message}): it may or may not have \
                 been written. Retry it with the same event ids: what was written is recognised \
                 and not written twice",
                self.inner.display
            )),
            E::NotLeaderException(leader) => StorageError::Unavailable(format!(
                "KurrentDB at {} answered that it is not the leader (the leader is {}:{}), again \
                 after {} attempts: nothing was written; retry once the cluster has elected its \
                 leader",
                self.inner.display,
                leader.host,
                leader.port,
                crate::limits::KURRENT_NOT_LEADER_RETRIES_MAX + 1
            )),
            E::Grpc {
                code: tonic::Code::InvalidArgument,
                message,
            } if message.starts_with("Maximum Append Size") => StorageError::Other(format!(
                "KurrentDB at {} refused an append as too large ({message}); nothing of it was \
                 written. Set PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX to the server's \
                 MaxAppendSize (now {} bytes)",
                self.inner.display, self.inner.append_bytes_max
            )),
            E::AccessDenied => StorageError::Other(format!(
                "KurrentDB at {} refused access: check the credentials in the connection string",
                self.inner.display
            )),
            other => StorageError::Other(format!("KurrentDB: {other}")),
        }
    }

    /// Appends to one stream; see the module documentation for the semantics. An append over
    /// the server's size limit goes as consecutive appends, each expecting the revision the one
    /// before it ended at: atomic per part, and a retry of the whole (same ids) completes it.
    async fn append_one(&self, append: &StreamAppend) -> Result<AppendResult, AppendError> {
        let mut attempt = 0;
        loop {
            let start = self.chain_start(append).await?;
            match self.append_chained(append, &start).await {
                // The stream moved between reading its chain and appending to it, and the
                // caller did not name a revision: read the chain again and append on top.
                Err(AppendError::WrongExpectedRevision { .. })
                    if start.pinned && attempt < CHAIN_PIN_RETRIES_MAX =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Where an append's events join their stream's chain: the chain hash the first one links
    /// to, and the expectation to send. An append that names no revision
    /// (`Any`, `StreamExists`) is pinned to the revision read, so that two writers can never
    /// link to the same hash; KurrentDB then refuses the second, which reads again.
    async fn chain_start(&self, append: &StreamAppend) -> Result<ChainStart, AppendError> {
        let storage = |e: ReadError| match e {
            ReadError::Storage(s) => AppendError::Storage(s),
            other => AppendError::Storage(StorageError::Other(other.to_string())),
        };
        let last = match self
            .read_stream_raw(&append.stream, Direction::Backwards, None, 1)
            .await
        {
            Ok(mut page) => page.pop(),
            Err(ReadError::StreamNotFound(_)) => None,
            Err(e) => return Err(storage(e)),
        };
        let Some(last) = last else {
            let pinned = append.expected == ExpectedRevision::Any;
            return Ok(ChainStart {
                expected: if pinned {
                    ExpectedRevision::NoStream
                } else {
                    append.expected
                },
                previous: GENESIS,
                pinned,
            });
        };
        let at = last.record.revision;
        let previous = match last.chain_hash {
            Some(hash) => hash,
            // Written before the chain existed: the chain of the stream so far, from genesis.
            None => self.stream_chain(&append.stream).await.map_err(storage)?,
        };
        let start = |expected, pinned| ChainStart {
            expected,
            previous,
            pinned,
        };
        Ok(match append.expected {
            ExpectedRevision::Exact(r) if r < at => start(append.expected, false),
            // The stream is behind what the caller expects: refused as the server would, rather
            // than appended later with a hash of an older head.
            ExpectedRevision::Exact(r) if r > at => {
                return Err(AppendError::WrongExpectedRevision {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual: CurrentRevision::Current(at),
                });
            }
            ExpectedRevision::Exact(_) | ExpectedRevision::NoStream => {
                start(append.expected, false)
            }
            ExpectedRevision::Any | ExpectedRevision::StreamExists => {
                // A retry of the append that wrote the stream's last event: left to the server,
                // which recognises it by its ids.
                let retry = append.events.last().map(|e| e.event_id) == Some(last.record.event_id);
                if retry {
                    start(append.expected, false)
                } else {
                    start(ExpectedRevision::Exact(at), true)
                }
            }
        })
    }

    /// The chain hash at the end of `stream`, computed from genesis over its events.
    async fn stream_chain(&self, stream: &str) -> Result<Digest, ReadError> {
        let mut previous = GENESIS;
        let mut next = Some(0);
        while let Some(from) = next {
            let page = self
                .read_stream_raw(stream, Direction::Forwards, Some(from), READ_STREAM_PAGE)
                .await?;
            next = (page.len() == READ_STREAM_PAGE)
                .then(|| page.last().map(|s| s.record.revision + 1))
                .flatten();
            for s in &page {
                previous = chain::link(&previous, &chain::record_hash(&s.record));
            }
        }
        Ok(previous)
    }

    /// Appends `append`'s events at `start`, each carrying its event hash and chain hash.
    async fn append_chained(
        &self,
        append: &StreamAppend,
        start: &ChainStart,
    ) -> Result<AppendResult, AppendError> {
        let now = super::sqlite::truncate_to_micros(Utc::now());
        let mut previous = start.previous;
        let append_id = Uuid::new_v4();
        let mut parts: Vec<(Vec<EventData>, std::ops::Range<usize>)> = Vec::new();
        let (mut part, mut part_start, mut part_bytes) = (Vec::new(), 0, 0);
        for (i, e) in append.events.iter().enumerate() {
            let occurred_at = super::sqlite::truncate_to_micros(e.occurred_at);
            let recorded_at = e
                .recorded_at
                .map(super::sqlite::truncate_to_micros)
                .unwrap_or(now);
            let event_hash = chain::event_hash(&chain::EventParts {
                event_id: e.event_id,
                stream: &append.stream,
                event_type: &e.event_type,
                schema_version: e.schema_version,
                occurred_at,
                recorded_at,
                recorded_by: &e.recorded_by,
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                data: &e.data,
            });
            previous = chain::link(&previous, &event_hash);
            let metadata = EventMetadata {
                schema_version: e.schema_version,
                occurred_at,
                recorded_at,
                recorded_by: e.recorded_by.clone(),
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                append_id,
                event_hash: Some(chain::to_hex(&event_hash)),
                chain_hash: Some(chain::to_hex(&previous)),
            };
            let custom = Metadata::from(&metadata);
            // Sent verbatim (a raw JSON value): re-serializing would reorder keys, and a retry's
            // data must compare equal with what was stored.
            let data = serde_json::value::RawValue::from_string(e.data.clone()).map_err(|err| {
                StorageError::Other(format!(
                    "event {} data is not JSON ({err}); KurrentDB stores JSON events",
                    e.event_id
                ))
            })?;
            let event = EventData::json(&e.event_type, &data)
                .and_then(|d| d.metadata_as_json(&custom))
                .map_err(|err| {
                    StorageError::Other(format!("encoding event {}: {err}", e.event_id))
                })?
                .id(e.event_id);
            // As the server counts it (`Data/Event.cs`): data, custom metadata, twice the type.
            let custom_bytes = serde_json::to_vec(&custom).map_or(0, |v| v.len());
            let bytes = e.data.len() + custom_bytes + 2 * e.event_type.len();
            if !part.is_empty() && part_bytes + bytes > self.inner.append_bytes_max {
                parts.push((std::mem::take(&mut part), part_start..i));
                (part_start, part_bytes) = (i, 0);
            }
            part.push(event);
            part_bytes += bytes;
        }
        parts.push((part, part_start..append.events.len()));
        let mut expected = start.expected;
        let mut done: Option<AppendResult> = None;
        for (events, range) in parts {
            let result = self
                .append_part(append, expected, events, range, append_id)
                .await?;
            expected = ExpectedRevision::Exact(result.next_expected_revision);
            done = Some(match done {
                None => result,
                Some(before) => AppendResult {
                    next_expected_revision: result.next_expected_revision,
                    first_position: before.first_position,
                    last_position: result.last_position,
                    written: before.written || result.written,
                },
            });
        }
        Ok(done.expect("an append has at least one event"))
    }

    /// Appends the events `range` of `append` (encoded as `events`), expecting `expected`, and
    /// checks what the server acknowledged against them. A refusal by a follower is sent again,
    /// to the leader the client was told of, a bounded number of times.
    async fn append_part(
        &self,
        append: &StreamAppend,
        expected: ExpectedRevision,
        events: Vec<EventData>,
        range: std::ops::Range<usize>,
        append_id: Uuid,
    ) -> Result<AppendResult, AppendError> {
        let options = AppendToStreamOptions::default()
            .stream_state(stream_state(expected))
            .deadline(APPEND_DEADLINE);
        let mut attempt = 0;
        let written = loop {
            let sent = self
                .client()
                .append_to_stream(append.stream.as_str(), &options, events.clone())
                .await;
            match sent {
                Ok(w) => break w,
                Err(kurrentdb::Error::NotLeaderException(_))
                    if attempt < crate::limits::KURRENT_NOT_LEADER_RETRIES_MAX =>
                {
                    // Nothing was written; the client now talks to the leader it was told of.
                    attempt += 1;
                    tokio::time::sleep(RECONNECT_DELAY_MIN * attempt).await;
                }
                Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                    return Err(AppendError::WrongExpectedRevision {
                        stream: append.stream.clone(),
                        expected,
                        actual: match current {
                            kurrentdb::CurrentRevision::Current(r) => CurrentRevision::Current(r),
                            kurrentdb::CurrentRevision::NoStream => CurrentRevision::NoStream,
                        },
                    });
                }
                Err(kurrentdb::Error::ResourceDeleted) => {
                    return Err(self.deleted(append.stream.as_str()).into());
                }
                Err(e) => return Err(self.storage_error(e).into()),
            }
        };
        let sent = &append.events[range];
        // The reply does not say whether the server wrote the events or recognised a retry, nor
        // where the first event landed: read them back. They end at `next_expected_version`.
        let count = sent.len();
        let last = written.next_expected_version;
        let first = (last + 1).checked_sub(count as u64).ok_or_else(|| {
            StorageError::Other(format!(
                "KurrentDB acknowledged {count} events on {} ending at revision {last}",
                append.stream
            ))
        })?;
        let stored = self
            .read_stream_raw(&append.stream, Direction::Forwards, Some(first), count)
            .await
            .map_err(|e| match e {
                ReadError::Storage(s) => s,
                other => StorageError::Other(other.to_string()),
            })?;
        if stored.len() != count {
            return Err(StorageError::Other(format!(
                "KurrentDB acknowledged the append to {} but {} of its {count} events read back",
                append.stream,
                stored.len()
            ))
            .into());
        }
        let mut all_ours = true;
        for (
            new,
            Stored {
                record,
                append_id: stored_append_id,
                ..
            },
        ) in sent.iter().zip(&stored)
        {
            if record.event_id != new.event_id {
                // The server matched a retry by the first ids but these differ: not one append.
                return Err(AppendError::IdempotencyConflict {
                    event_id: new.event_id,
                });
            }
            let ours = *stored_append_id == append_id;
            all_ours &= ours;
            let normalized = NewRecord {
                occurred_at: super::sqlite::truncate_to_micros(new.occurred_at),
                recorded_at: new.recorded_at.map(super::sqlite::truncate_to_micros),
                ..new.clone()
            };
            if !ours && !record.is_same_event(&append.stream, &normalized) {
                return Err(AppendError::IdempotencyConflict {
                    event_id: new.event_id,
                });
            }
        }
        Ok(AppendResult {
            next_expected_revision: last,
            first_position: stored[0].record.position,
            last_position: stored[count - 1].record.position,
            written: all_ours,
        })
    }

    async fn read_all_after(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError> {
        Ok(self
            .read_chained_after(after, max_count)
            .await?
            .into_iter()
            .map(|c| c.record)
            .collect())
    }

    /// [`Self::read_all_after`], each record with the hashes its metadata holds.
    ///
    /// Skips what is not an event of the caller's: tombstones, records another program wrote,
    /// and the events a deletion hides. A position `after` that is no record's (the server
    /// refuses to read from inside a record) is read past as the position after it when a
    /// record starts there (callers that mean "from position P" ask for `P - 1`), else from the
    /// start of the log, and noted.
    async fn read_chained_after(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<ChainedRecord>, ReadError> {
        self.refresh_deletions(after, DELETIONS_REFRESH_INTERVAL)
            .await
            .map_err(|e| ReadError::from(self.storage_error(e)))?;
        let mut records = Vec::new();
        // Where the next server page starts (the record there included): the caller's
        // position, then the last record received, which the page repeats. Tombstones and
        // hidden events are skipped, so a server page can yield fewer records than asked for
        // without being the end of the log; only a short server page is.
        let mut from = after;
        let mut last_seen: Option<u64> = None;
        let mut relocations = 0;
        let mut deadline = self.inner.read_deadline;
        let mut growths = 0;
        while records.len() < max_count {
            let asked = max_count - records.len() + 1;
            let options = ReadAllOptions::default()
                .forwards()
                .position(start_at(from))
                .filter(self.subscription_filter())
                .max_count(asked)
                .deadline(deadline);
            let mut received = 0;
            // The deadline covers the whole streamed read. Passed after some records: they are
            // a page (the caller reads on from the last). Passed before any: the server is still
            // scanning, so the read is made again with a longer deadline, a bounded number of
            // times.
            let mut timed_out = false;
            let mut failure = None;
            let mut stream = match self.client().read_all(&options).await {
                Ok(stream) => Some(stream),
                Err(kurrentdb::Error::DeadlineExceeded) => {
                    timed_out = true;
                    None
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            };
            while let Some(reading) = stream.as_mut()
                && records.len() < max_count
            {
                let event = match reading.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(kurrentdb::Error::DeadlineExceeded) => {
                        timed_out = true;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                received += 1;
                let event = event.get_original_event();
                let position = event.position.commit;
                if last_seen.is_some_and(|l| position < l) {
                    return Err(not_increasing(last_seen, position));
                }
                if last_seen == Some(position) {
                    continue;
                }
                last_seen = Some(position);
                from = Some(position);
                if after.is_some_and(|a| position <= a)
                    || self.is_tombstone(event)
                    || self.is_hidden(event)
                {
                    continue;
                }
                if let Some(stored) = self.ledger_stored(event) {
                    records.push(stored.chained());
                }
            }
            if let Some(e) = failure {
                if let Some(a) = after
                    && is_invalid_position(&e)
                    && last_seen.is_none()
                    && relocations < 2
                {
                    // First the next position (a record may start there: the usual case), then
                    // the start of the log, which is told.
                    from = if relocations == 0 {
                        Some(a + 1)
                    } else {
                        self.note_invalid_position(a);
                        None
                    };
                    relocations += 1;
                    continue;
                }
                return Err(self.storage_error(e).into());
            }
            if timed_out {
                if !records.is_empty() {
                    break;
                }
                if growths == READ_DEADLINE_GROWTH_MAX {
                    return Err(self
                        .storage_error(kurrentdb::Error::DeadlineExceeded)
                        .into());
                }
                growths += 1;
                deadline *= 2;
                continue;
            }
            if received < asked {
                break;
            }
        }
        Ok(records)
    }

    /// Reads a stream, each record with the id of the append that wrote it.
    async fn read_stream_raw(
        &self,
        stream: &str,
        direction: Direction,
        from_revision: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Stored>, ReadError> {
        let position = match (direction, from_revision) {
            (_, Some(r)) => StreamPosition::Position(r),
            (Direction::Forwards, None) => StreamPosition::Start,
            (Direction::Backwards, None) => StreamPosition::End,
        };
        let options = ReadStreamOptions::default().position(position);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        }
        // Count 0 would read nothing and so could not tell a missing stream: read one, drop it.
        .max_count(max_count.max(1))
        .deadline(READ_DEADLINE);
        let mut read = match self.client().read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceDeleted) => return Err(self.deleted(stream).into()),
            Err(e) => return Err(self.storage_error(e).into()),
        };
        let mut records = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(event)) => {
                    if records.len() < max_count {
                        records.push(to_record(event.get_original_event())?);
                    }
                }
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) => {
                    return Err(ReadError::StreamNotFound(stream.to_string()));
                }
                Err(kurrentdb::Error::ResourceDeleted) => return Err(self.deleted(stream).into()),
                Err(e) => return Err(self.storage_error(e).into()),
            }
        }
        Ok(records)
    }

    /// The position of the last event of the caller's streams in `$all`.
    async fn head(&self) -> Result<Option<u64>, ReadError> {
        self.head_raw()
            .await
            .map_err(|e| self.storage_error(e).into())
    }

    /// [`Self::head`] with the client's own error, for callers that report it their own way.
    /// Tombstones and the events a deletion hides are not read as events: the head is the last
    /// record that is.
    async fn head_raw(&self) -> Result<Option<u64>, kurrentdb::Error> {
        let mut before = StreamPosition::End;
        let mut deadline = self.inner.read_deadline;
        let mut growths = 0;
        loop {
            let options = ReadAllOptions::default()
                .position(before)
                .backwards()
                .filter(self.subscription_filter())
                .max_count(HEAD_PAGE_EVENTS)
                .deadline(deadline);
            // The scan back to the last of the ledger's events may outlast a deadline on a
            // shared server: tried again with a longer one, a bounded number of times.
            let again = |e: &kurrentdb::Error, growths: u32| {
                matches!(e, kurrentdb::Error::DeadlineExceeded)
                    && growths < READ_DEADLINE_GROWTH_MAX
            };
            let mut read = match self.client().read_all(&options).await {
                Ok(read) => read,
                Err(e) if again(&e, growths) => {
                    (growths, deadline) = (growths + 1, deadline * 2);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut received = 0;
            loop {
                let event = match read.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(e) if again(&e, growths) => {
                        (growths, deadline) = (growths + 1, deadline * 2);
                        received = HEAD_PAGE_EVENTS;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                received += 1;
                let event = event.get_original_event();
                // Reading backwards from a position excludes the record at it.
                before = StreamPosition::Position(event.position);
                if self.is_tombstone(event) {
                    continue;
                }
                let position = event.position.commit;
                // Only a deletion after an event can hide it.
                self.refresh_deletions(Some(position), DELETIONS_REFRESH_INTERVAL)
                    .await?;
                if !self
                    .deletions()
                    .hides(event.stream_id(), event.revision, position)
                {
                    return Ok(Some(position));
                }
            }
            if received < HEAD_PAGE_EVENTS {
                return Ok(None);
            }
        }
    }

    /// The error for an append to, or a read of, a hard-deleted stream.
    fn deleted(&self, stream: &str) -> StorageError {
        StorageError::Other(format!(
            "stream {stream} was hard-deleted (tombstoned) in KurrentDB at {}: it can no longer \
             be read or appended to, and nothing was written. Record the customer under a new \
             id; the ledger's other customers are not affected",
            self.inner.display
        ))
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    /// Appends stream by stream: atomic per stream, **not across streams** (see the module
    /// documentation). Stops at the first refused stream; the streams before it stay written.
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        check_append(&appends)?;
        let mut results = Vec::with_capacity(appends.len());
        for append in &appends {
            results.push(self.append_one(append).await?);
        }
        Ok(results)
    }

    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from_revision: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError> {
        Ok(self
            .read_stream_raw(stream, direction, from_revision, max_count)
            .await?
            .into_iter()
            .map(|s| s.record)
            .collect())
    }

    async fn read_all(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError> {
        self.read_all_after(after, max_count).await
    }

    /// Kept as the first event of a stream of its own ([`IDENTITY_STREAM`], outside the
    /// caller's filter, so readers of the ledger's streams never see it), written once by the
    /// first store that finds none (the append expects no stream: one writer wins, the others
    /// read the winner's).
    async fn chain_info(&self) -> Result<Option<ChainInfo>, ReadError> {
        Ok(Some(ChainInfo {
            per_stream: true,
            last_position: None,
            upgrades: Vec::new(),
        }))
    }

    async fn read_chained(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<ChainedRecord>, ReadError> {
        self.read_chained_after(after, max_count).await
    }

    async fn identity(&self) -> Result<Option<String>, ReadError> {
        let read = || async {
            let first = match self
                .read_stream(IDENTITY_STREAM, Direction::Forwards, None, 1)
                .await
            {
                Ok(records) => records.into_iter().next(),
                Err(ReadError::StreamNotFound(_)) => None,
                Err(e) => return Err(e),
            };
            Ok(first.map(|r| r.event_id.to_string()))
        };
        if let Some(id) = read().await? {
            return Ok(Some(id));
        }
        let given = NewRecord {
            event_id: Uuid::now_v7(),
            event_type: IDENTITY_EVENT_TYPE.to_string(),
            schema_version: 1,
            data: "{}".to_string(),
            occurred_at: chrono::Utc::now(),
            recorded_at: None,
            recorded_by: "pipeline-ledger".to_string(),
            correlation_id: None,
            causation_id: None,
        };
        match self
            .append(IDENTITY_STREAM, ExpectedRevision::NoStream, vec![given])
            .await
        {
            Ok(_) | Err(AppendError::WrongExpectedRevision { .. }) => read().await,
            Err(e) => Err(ReadError::Storage(StorageError::Other(format!(
                "giving the store its identity failed: {e}"
            )))),
        }
    }

    /// One read of `$all` at `position`: the server answers a position inside a record as
    /// invalid, which means no event is there.
    async fn record_at(&self, position: u64) -> Result<Option<Record>, ReadError> {
        let first = self
            .read_one(
                ReadAllOptions::default()
                    .forwards()
                    .position(start_at(Some(position)))
                    .filter(self.subscription_filter()),
            )
            .await;
        let event = match first {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(e) if is_invalid_position(&e) => return Ok(None),
            Err(e) => return Err(self.storage_error(e).into()),
        };
        let event = event.get_original_event();
        if event.position.commit != position || self.is_tombstone(event) {
            return Ok(None);
        }
        self.refresh_deletions(Some(position), DELETIONS_REFRESH_INTERVAL)
            .await
            .map_err(|e| ReadError::from(self.storage_error(e)))?;
        if self
            .deletions()
            .hides(event.stream_id(), event.revision, position)
        {
            return Ok(None);
        }
        Ok(self.ledger_record(event))
    }

    async fn subscribe_all(&self, after: Option<u64>) -> Result<Box<dyn Subscription>, ReadError> {
        Ok(Box::new(KurrentSubscription {
            store: self.clone(),
            after,
            from_start: false,
            live: None,
            caught_up: false,
            head_at_start: None,
            failures: 0,
            reached: false,
            retry_at: None,
            started: tokio::time::Instant::now(),
        }))
    }

    async fn head_position(&self) -> Result<Option<u64>, ReadError> {
        self.head().await
    }

    fn notices(&self) -> Vec<String> {
        let deleted = self
            .inner
            .deleted_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let foreign = self
            .inner
            .foreign_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let invalid = self
            .inner
            .invalid_positions_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let display = &self.inner.display;
        deleted
            .iter()
            .map(|stream| {
                format!(
                    "stream {stream} was hard-deleted (tombstoned) in KurrentDB at {display}; \
                     the customer can no longer be recorded, and its events are left out of \
                     reads of the log"
                )
            })
            .chain(self.deletions().notices(display))
            .chain(invalid.iter().map(|position| {
                format!(
                    "position {position} is no record's in KurrentDB at {display} (a position \
                     of another cluster, or typed by hand): what follows it was found by reading \
                     from the start of the log"
                )
            }))
            .chain(foreign.iter().map(|why| {
                format!(
                    "skipped a record that is not the ledger's: {why}. Reports leave it out; \
                     remove it from that stream (or move it out of the ledger's streams) to \
                     record for that customer again"
                )
            }))
            .collect()
    }
}

/// A catch-up subscription to `$all`, filtered to the caller's streams.
///
/// It says it has caught up when the server says so (KurrentDB 23.10 and later), or when it has
/// delivered the ledger's head as read at (re)subscription time (older servers send no
/// caught-up message), whichever comes first. On a dropped connection it resubscribes from the
/// last delivered position with exponential backoff; events at or before that position are
/// skipped, so nothing is delivered twice and, since the server resends everything after it,
/// nothing is lost.
struct KurrentSubscription {
    store: KurrentStore,
    /// The checkpoint: position of the last event delivered.
    after: Option<u64>,
    /// Whether the server refused `after` as no record's position: the subscription then
    /// starts at the start of the log and skips what is not after it.
    from_start: bool,
    live: Option<kurrentdb::Subscription>,
    caught_up: bool,
    /// The head when the current server subscription started; `Some(None)`: the log was empty.
    head_at_start: Option<Option<u64>>,
    /// Consecutive failures since the last message received.
    failures: u32,
    /// Whether the server has answered once.
    reached: bool,
    /// When the next attempt may be made, after a failure.
    retry_at: Option<tokio::time::Instant>,
    /// When the subscription was made, for the message of a first contact that never happens.
    started: tokio::time::Instant,
}

impl KurrentSubscription {
    fn caught_up_message(&mut self) -> SubscriptionMessage {
        self.caught_up = true;
        SubscriptionMessage::CaughtUp {
            position: self.after,
        }
    }

    /// Notes a failure: the notice to deliver now (the pause is taken before the next attempt),
    /// or the error that ends the subscription after too many failures in a row.
    fn failed(&mut self, error: kurrentdb::Error) -> Result<SubscriptionMessage, ReadError> {
        self.live = None;
        self.head_at_start = None;
        self.failures += 1;
        let display = &self.store.inner.display;
        let reason = format!("KurrentDB at {display} cannot be reached ({error})");
        // Replaces the client when its connection task has stopped.
        let _ = self.store.storage_error(error);
        let attempts_max = if self.reached {
            RECONNECT_ATTEMPTS_MAX
        } else {
            FIRST_CONNECT_ATTEMPTS_MAX
        };
        if self.failures >= attempts_max {
            let message = if self.reached {
                format!(
                    "the subscription to KurrentDB gave up after {attempts_max} failed \
                     reconnections; start it again to resume from position {:?}. Last error: \
                     {reason}",
                    self.after
                )
            } else {
                format!(
                    "{reason}: gave up after {attempts_max} attempts in {:.0} s. Check the \
                     address and that the server is running",
                    self.started.elapsed().as_secs_f64()
                )
            };
            return Err(StorageError::Unavailable(message).into());
        }
        let exp = self.failures.saturating_sub(1).min(16);
        let delay = (RECONNECT_DELAY_MIN * 2u32.saturating_pow(exp)).min(RECONNECT_DELAY_MAX);
        self.retry_at = Some(tokio::time::Instant::now() + delay);
        Ok(SubscriptionMessage::Retrying(RetryNotice {
            reason,
            attempt: self.failures,
            attempts_max,
            retry_in: delay,
        }))
    }
}

#[async_trait]
impl Subscription for KurrentSubscription {
    async fn next(&mut self) -> Result<SubscriptionMessage, ReadError> {
        loop {
            if let Some(at) = self.retry_at {
                // Cancel-safe: a caller that stops waiting finds the pause still pending.
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            if self.live.is_none() {
                if !self.caught_up {
                    match self.store.head_raw().await {
                        Ok(head) => {
                            self.reached = true;
                            self.head_at_start = Some(head);
                        }
                        Err(kurrentdb::Error::AccessDenied) => {
                            return Err(self
                                .store
                                .storage_error(kurrentdb::Error::AccessDenied)
                                .into());
                        }
                        Err(e) => return self.failed(e),
                    }
                }
                // Every deletion after the checkpoint is known before catching up, so that the
                // events deletions hide are skipped; later ones arrive through the subscription.
                if let Err(e) = self
                    .store
                    .refresh_deletions(self.after, Duration::ZERO)
                    .await
                {
                    return self.failed(e);
                }
                // A subscription from a position starts after it.
                let start = if self.from_start {
                    StreamPosition::Start
                } else {
                    start_at(self.after)
                };
                let options = SubscribeToAllOptions::default()
                    .position(start)
                    .filter(self.store.subscription_filter_with_metadata());
                self.live = Some(self.store.client().subscribe_to_all(&options).await);
            }
            if !self.caught_up
                && let Some(head) = self.head_at_start
                && (head.is_none() || head <= self.after)
            {
                return Ok(self.caught_up_message());
            }
            let live = self.live.as_mut().expect("subscribed above");
            match live.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(event)) => {
                    self.failures = 0;
                    self.reached = true;
                    let event = event.get_original_event();
                    if let Some(deletion) = self.store.deletion_record(event) {
                        // A hard or soft delete of one customer's stream: no event of ours, and
                        // no reason to stop. One the search before subscribing did not find
                        // may hide events delivered already: told (`notices`).
                        let _ = self.store.is_tombstone(event);
                        let mut deletions = self.store.deletions();
                        if deletions.apply(&deletion) {
                            deletions.note_late(event.stream_id());
                        }
                        continue;
                    }
                    if self.store.is_tombstone(event) || self.store.is_hidden(event) {
                        continue;
                    }
                    let Some(record) = self.store.ledger_record(event) else {
                        continue;
                    };
                    if self.after.is_some_and(|a| record.position <= a) {
                        // Resent after a reconnection: already delivered.
                        continue;
                    }
                    self.after = Some(record.position);
                    return Ok(SubscriptionMessage::Event(record));
                }
                Ok(SubscriptionEvent::CaughtUp(_)) => {
                    self.failures = 0;
                    self.reached = true;
                    if !self.caught_up {
                        return Ok(self.caught_up_message());
                    }
                }
                Ok(_) => self.failures = 0,
                Err(kurrentdb::Error::AccessDenied) => {
                    return Err(self
                        .store
                        .storage_error(kurrentdb::Error::AccessDenied)
                        .into());
                }
                Err(e) if is_invalid_position(&e) && !self.from_start => {
                    // Events at or before the checkpoint are skipped as after a reconnection.
                    if let Some(after) = self.after {
                        self.store.note_invalid_position(after);
                    }
                    self.from_start = true;
                    self.live = None;
                    self.head_at_start = None;
                }
                Err(e) => return self.failed(e),
            }
        }
    }
}

/// Where a read of `$all` that wants what follows `after` starts: at `after` (the server
/// includes the record there; readers skip it), or at the start of the log.
fn start_at(after: Option<u64>) -> StreamPosition<Position> {
    match after {
        Some(p) => StreamPosition::Position(Position {
            commit: p,
            prepare: p,
        }),
        None => StreamPosition::Start,
    }
}

/// Whether the server refused a read because its position is inside a record, not at one's
/// start ([`INVALID_POSITION_MESSAGE`]).
fn is_invalid_position(e: &kurrentdb::Error) -> bool {
    matches!(
        e,
        kurrentdb::Error::Grpc {
            code: tonic::Code::InvalidArgument,
            message,
        } if message.starts_with(INVALID_POSITION_MESSAGE)
    )
}

fn not_increasing(last: Option<u64>, next: u64) -> ReadError {
    StorageError::Corrupt(format!(
        "$all position {next} follows {last:?}: commit positions are not strictly increasing \
         (events written in an explicit transaction by another program?)"
    ))
    .into()
}

/// The custom metadata as written: [`EventMetadata`] with times at microsecond precision, so
/// that what is read back compares equal with what was written.
#[derive(Serialize)]
struct Metadata<'a> {
    schema_version: u32,
    occurred_at: String,
    recorded_at: String,
    recorded_by: &'a str,
    #[serde(rename = "$correlationId", skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(rename = "$causationId", skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    append_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_hash: Option<&'a str>,
}

impl<'a> From<&'a EventMetadata> for Metadata<'a> {
    fn from(m: &'a EventMetadata) -> Self {
        Self {
            schema_version: m.schema_version,
            occurred_at: m.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            recorded_at: m.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            recorded_by: &m.recorded_by,
            correlation_id: m.correlation_id,
            causation_id: m.causation_id,
            append_id: m.append_id,
            event_hash: m.event_hash.as_deref(),
            chain_hash: m.chain_hash.as_deref(),
        }
    }
}

fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::StreamExists => StreamState::StreamExists,
        ExpectedRevision::Exact(r) => StreamState::StreamRevision(r),
    }
}

/// A KurrentDB event read back: the record, the id of the append that wrote it, and the hashes
/// in its metadata.
struct Stored {
    record: Record,
    append_id: Uuid,
    event_hash: Option<Digest>,
    chain_hash: Option<Digest>,
}

impl Stored {
    fn chained(self) -> ChainedRecord {
        ChainedRecord {
            record: self.record,
            event_hash: self.event_hash,
            chain_hash: self.chain_hash,
        }
    }
}

/// Where an append joins its stream's chain ([`KurrentStore::chain_start`]).
struct ChainStart {
    /// The expectation sent to the server.
    expected: ExpectedRevision,
    /// The chain hash the first event links to.
    previous: Digest,
    /// Whether `expected` was pinned to the revision read (the caller named none).
    pinned: bool,
}

/// Times an append that named no revision reads the chain again after another writer moved
/// the stream first.
const CHAIN_PIN_RETRIES_MAX: u32 = 16;
/// Events per page when a stream's chain is computed from its start.
const READ_STREAM_PAGE: usize = 4096;

/// Reads a KurrentDB event back as a record, with the id of the append that wrote it and its
/// hashes.
fn to_record(event: &kurrentdb::RecordedEvent) -> Result<Stored, ReadError> {
    let corrupt = |what: String| {
        ReadError::Storage(StorageError::Corrupt(format!(
            "event {} in {} at revision {}: {what}",
            event.id,
            event.stream_id(),
            event.revision
        )))
    };
    let metadata: EventMetadata = serde_json::from_slice(&event.custom_metadata).map_err(|e| {
        corrupt(format!(
            "metadata is not this ledger's ({e}); was it written by another program? The ledger \
             cannot read this customer's history while that record is in its stream"
        ))
    })?;
    let data = String::from_utf8(event.data.to_vec())
        .map_err(|_| corrupt("data is not UTF-8 JSON".into()))?;
    let append_id = metadata.append_id;
    // A hash that is not 64 hex digits can never match: `verify` reports it as replaced.
    let digest = |h: &Option<String>| {
        h.as_deref()
            .map(|h| chain::from_hex(h).unwrap_or([0xff; 32]))
    };
    let (event_hash, chain_hash) = (digest(&metadata.event_hash), digest(&metadata.chain_hash));
    let record = Record {
        event_id: event.id,
        stream: event.stream_id().to_string(),
        revision: event.revision,
        position: event.position.commit,
        event_type: event.event_type.clone(),
        schema_version: metadata.schema_version,
        data,
        occurred_at: metadata.occurred_at,
        recorded_at: metadata.recorded_at,
        recorded_by: metadata.recorded_by,
        correlation_id: metadata.correlation_id,
        causation_id: metadata.causation_id,
    };
    Ok(Stored {
        record,
        append_id,
        event_hash,
        chain_hash,
    })
}

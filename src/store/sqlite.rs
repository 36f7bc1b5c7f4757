//! The embedded backend: the whole log in one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that owns the only writing connection. Appends that arrive
//! while a commit is in flight wait in a queue and are committed together in the next transaction
//! (group commit): one fsync serves many appends, so durability does not cost throughput. Each
//! append runs inside its own savepoint, so one refused append never takes its neighbours down.
//! An append is acknowledged only after its transaction committed with `synchronous=FULL`, that is,
//! after the WAL was flushed to disk.
//!
//! Readers use their own connections and see only committed transactions, so no reader ever sees
//! part of an append. Positions are assigned inside the write transaction from the table's own
//! maximum, so that several processes may write to one file (SQLite serializes them).

mod chain;

use super::chain::{ChainInfo, ChainedRecord, Digest};
use super::files::{self, FileKind, STORE_APPLICATION_ID};
use super::{Access, StoreOptions};
use super::{
    AppendError, AppendResult, BulkMessage, BulkResult, CurrentRevision, Direction, EventStore,
    NewRecord, ReadError, Record, StorageError, StreamAppend, Subscription, SubscriptionMessage,
    check_append,
};
use crate::limits::{GROUP_COMMIT_APPENDS_MAX, WRITE_QUEUE_DEPTH_MAX};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// Events read per page by subscriptions.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1024;
/// How often a live subscription looks for events written by other processes.
pub const SUBSCRIPTION_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Size the WAL file is truncated to after a checkpoint, in bytes.
const WAL_BYTES_KEPT_MAX: i64 = 64 * 1024 * 1024;
/// Page cache of the writing connection, in KiB.
const WRITER_CACHE_KIB: i64 = 256 * 1024;
/// Page cache of the writing connection during a bulk append, in KiB. The `(stream, revision)`
/// index takes its inserts in random order; once it outgrows the cache, every insert reads a page
/// back through a WAL of gigabytes (a 10M import has an index of about 0.5 GiB).
const BULK_CACHE_KIB: i64 = 1024 * 1024;
/// How long a connection waits for another connection's lock before failing.
pub const BUSY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often a connection waiting for a lock tries again. SQLite's own busy handler backs off
/// to 100 ms sleeps; the read models' writer, waiting for the event writer's back-to-back group
/// commits, then slept through every free moment and fell seconds behind.
const BUSY_RETRY_INTERVAL: Duration = Duration::from_micros(200);
/// The file format version (`PRAGMA user_version`).
/// 2: the hash chain (`event_chain`, `chain_upgrades`). Stores of format 1 (and 0, the first
/// builds) are upgraded when first opened for writing.
const FORMAT_VERSION: i32 = 2;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    #[error("cannot open store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "there is no store at {path}; check --store (or PIPELINE_LEDGER_STORE), or create one \
         with `pipeline-ledger init`"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot write store {path} ({source}); check the permissions of the file, its -wal and \
         -shm files and its directory (export, history and the reports need read access only)"
    )]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create store {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a pipeline-ledger store (another SQLite database); it was left untouched"
    )]
    NotALedger { path: PathBuf },
    #[error(
        "{path} is a pipeline-ledger read-models file, not a store; name the store with --store"
    )]
    ReadModelsFile { path: PathBuf },
    #[error("{path} is empty, not a pipeline-ledger store; create one with `pipeline-ledger init`")]
    EmptyFile { path: PathBuf },
    #[error("{path} has store format {found}; this build reads format {FORMAT_VERSION}")]
    UnsupportedFormat { path: PathBuf, found: i32 },
    #[error("cannot start the store's writer thread: {0}")]
    Thread(std::io::Error),
}

struct WriteRequest {
    appends: Vec<StreamAppend>,
    reply: oneshot::Sender<Result<Vec<AppendResult>, AppendError>>,
}

/// A bulk append: the writer holds one transaction open while its chunks arrive.
struct BulkRequest {
    chunks: mpsc::Receiver<BulkMessage>,
    reply: oneshot::Sender<Result<BulkResult, AppendError>>,
}

enum WriterMessage {
    Append(WriteRequest),
    Bulk(BulkRequest),
}

struct Shared {
    path: PathBuf,
    /// The store's identity ([`EventStore::identity`]), read or given at open.
    identity: Option<String>,
    /// How readers open the file.
    readers_open: ReaderOpen,
    readers: Mutex<Vec<Connection>>,
    /// The position of the last committed event (0 when empty), for live subscriptions.
    head: watch::Sender<u64>,
}

/// How reading connections open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderOpen {
    /// Read-write flags, `query_only`: the store is open for writing too.
    Normal,
    /// `SQLITE_OPEN_READ_ONLY`: nothing can be written through these connections.
    ReadOnly,
    /// Read-only and `immutable=1`: a store on read-only media, where SQLite cannot create the
    /// `-shm` file WAL readers need. Used only when no `-wal` file is beside it, so that nothing
    /// committed is missed, and only when nothing can write the file anyway.
    Immutable,
}

/// The writer thread and the channel to it. Dropping the last handle closes the channel and
/// waits for the thread, which checkpoints the WAL into the database file and closes its
/// connection: after a clean exit the store is one complete file.
struct WriterHandle {
    tx: Option<mpsc::Sender<WriterMessage>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WriterHandle {
    fn sender(&self) -> Result<&mpsc::Sender<WriterMessage>, StorageError> {
        self.tx.as_ref().ok_or(StorageError::Closed)
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The embedded SQLite event store. Cheap to clone; clones share the writer. When the last
/// clone is dropped the writer checkpoints the WAL into the database file and closes.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    /// `None` when the store was opened read-only.
    writer: Option<Arc<WriterHandle>>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (0600) if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SqliteOpenError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the store at `path` as `options` say. The file is checked to be a store (or an
    /// empty file) before anything is written to it.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Self, SqliteOpenError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            match options.access {
                Access::MustExist | Access::ReadOnly => {
                    return Err(SqliteOpenError::Missing { path });
                }
                Access::CreateIfMissing => {
                    files::create_file(&path, options.file_mode).map_err(|source| {
                        SqliteOpenError::Create {
                            path: path.clone(),
                            source,
                        }
                    })?;
                }
            }
        }
        if options.access == Access::ReadOnly {
            return Self::open_read_only(path);
        }
        let sqlite = |source| SqliteOpenError::Sqlite {
            path: path.clone(),
            source,
        };
        // SQLite would silently open a file it cannot write read-only, and fail at the first
        // append; say so now. (Opening for writing, without truncating, changes nothing.)
        if let Err(source) = std::fs::OpenOptions::new().write(true).open(&path) {
            return Err(SqliteOpenError::NotWritable { path, source });
        }
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        wait_when_busy(&mut conn).map_err(sqlite)?;
        init_schema(&mut conn, &path)?;
        let identity = ensure_identity(&conn).map_err(sqlite)?;
        chain::ensure_chain(&mut conn).map_err(sqlite)?;
        stamp_format(&conn).map_err(sqlite)?;
        let head = max_position(&conn).map_err(sqlite)?;
        let (head_tx, _) = watch::channel(head);
        let shared = Arc::new(Shared {
            path: path.clone(),
            identity,
            readers_open: ReaderOpen::Normal,
            readers: Mutex::new(Vec::new()),
            head: head_tx,
        });
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_DEPTH_MAX);
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_shared))
            .map_err(SqliteOpenError::Thread)?;
        let writer = WriterHandle {
            tx: Some(tx),
            thread: Some(thread),
        };
        Ok(Self {
            shared,
            writer: Some(Arc::new(writer)),
        })
    }

    /// Opens an existing store for reading only: no writer, and every connection opened with
    /// `SQLITE_OPEN_READ_ONLY`, so that a store on read-only media or owned by another user can
    /// be exported and reported on.
    fn open_read_only(path: PathBuf) -> Result<Self, SqliteOpenError> {
        let sqlite = |source| SqliteOpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let (conn, readers_open) = open_read_only_reader(&path).map_err(sqlite)?;
        check_kind(&conn, &path)?;
        let identity = read_identity(&conn).map_err(sqlite)?;
        let head = max_position(&conn).map_err(sqlite)?;
        let (head_tx, _) = watch::channel(head);
        let shared = Arc::new(Shared {
            path,
            identity,
            readers_open,
            readers: Mutex::new(vec![conn]),
            head: head_tx,
        });
        Ok(Self {
            shared,
            writer: None,
        })
    }

    fn writer(&self) -> Result<&mpsc::Sender<WriterMessage>, StorageError> {
        match &self.writer {
            Some(handle) => handle.sender(),
            None => Err(StorageError::ReadOnly(
                self.shared.path.display().to_string(),
            )),
        }
    }

    /// Finds recorded events by id, in any stream.
    pub async fn find_events(&self, ids: &[Uuid]) -> Result<Vec<Record>, ReadError> {
        let ids = ids.to_vec();
        self.with_reader(move |conn| {
            let mut found = Vec::new();
            for id in ids {
                if let Some(r) = find_by_id(conn, id).map_err(StorageError::from)? {
                    found.push(r);
                }
            }
            Ok(found)
        })
        .await
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs `f` on a read connection from the pool, off the async threads.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, ReadError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = shared.readers.lock().expect("reader pool lock").pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&shared.path, shared.readers_open)?,
            };
            let result = f(&conn);
            shared.readers.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StorageError::Other(format!("read task failed: {e}")))?
    }
}

/// Makes `conn` wait for a busy lock by retrying every [`BUSY_RETRY_INTERVAL`], up to
/// [`BUSY_WAIT_MAX`], instead of with SQLite's backing-off sleeps.
pub fn wait_when_busy(conn: &mut Connection) -> rusqlite::Result<()> {
    const RETRIES_MAX: u128 = BUSY_WAIT_MAX.as_micros() / BUSY_RETRY_INTERVAL.as_micros();
    // SQLite calls back a plain `fn`, so the limit is a constant rather than a captured value.
    fn retry(retries: i32) -> bool {
        if retries as u128 >= RETRIES_MAX {
            return false;
        }
        std::thread::sleep(BUSY_RETRY_INTERVAL);
        true
    }
    conn.busy_handler(Some(retry))
}

fn open_reader(path: &Path, how: ReaderOpen) -> Result<Connection, StorageError> {
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = match how {
        ReaderOpen::Normal => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
        ReaderOpen::ReadOnly => Connection::open_with_flags(path, read_only)?,
        ReaderOpen::Immutable => Connection::open_with_flags(
            immutable_uri(path),
            read_only | OpenFlags::SQLITE_OPEN_URI,
        )?,
    };
    wait_when_busy(&mut conn)?;
    conn.pragma_update(None, "query_only", true)?;
    stable_plans(&conn)?;
    Ok(conn)
}

/// A reading connection of a store opened read-only, and how the next ones are opened. WAL
/// readers need the `-shm` file; where it does not exist and cannot be created (read-only
/// media, another user's directory) and no `-wal` file holds commits, the file is read as
/// immutable.
fn open_read_only_reader(path: &Path) -> rusqlite::Result<(Connection, ReaderOpen)> {
    let probe = |conn: Connection| -> rusqlite::Result<Connection> {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    };
    let first = open_reader(path, ReaderOpen::ReadOnly)
        .map_err(storage_to_sqlite)
        .and_then(probe);
    match first {
        Ok(conn) => Ok((conn, ReaderOpen::ReadOnly)),
        Err(e) => {
            let wal = files::sqlite_files(path)[1].clone();
            let wal_holds_commits = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
            if wal_holds_commits {
                return Err(e);
            }
            let conn = open_reader(path, ReaderOpen::Immutable)
                .map_err(storage_to_sqlite)
                .and_then(probe)
                .map_err(|_| e)?;
            Ok((conn, ReaderOpen::Immutable))
        }
    }
}

/// `file:PATH?immutable=1`, every byte outside the unreserved set percent-escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Turns on SQLite's query planner stability guarantee. The bundled SQLite is built with
/// `SQLITE_ENABLE_STAT4`, which marks statements whose parameters sit in an indexed `WHERE` term
/// as "re-prepare when a new value is bound": without this, every cached statement such as
/// `SELECT max(revision) FROM events WHERE stream = ?1` was parsed and planned again on every
/// call (an eighth of a bulk import's profile). The plans of this store's statements do not
/// depend on the values bound (there is no `ANALYZE` data), so nothing is lost.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// The store's identity, if it has one (stores of older versions have none until written).
fn read_identity(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'store_identity'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    conn.query_row("SELECT id FROM store_identity LIMIT 1", [], |r| r.get(0))
        .optional()
}

/// The store's identity, given once (a version-7 UUID) to a store that has none: stores
/// created before identities existed get theirs the first time they are opened for writing.
/// `None` when the store has none and cannot be written.
fn ensure_identity(conn: &Connection) -> rusqlite::Result<Option<String>> {
    if let Some(id) = read_identity(conn)? {
        return Ok(Some(id));
    }
    let given = conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS store_identity (id TEXT NOT NULL);
         INSERT INTO store_identity (id) SELECT '{}' WHERE NOT EXISTS (SELECT 1 FROM store_identity);
         COMMIT;",
        Uuid::now_v7()
    ));
    match given {
        Ok(()) => read_identity(conn),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ReadOnly => {
            let _ = conn.execute_batch("ROLLBACK");
            Ok(None)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Refuses a file that is not a store; checks the format of one that is. Only reads.
/// Returns whether the file is still empty (a store to be created).
fn check_kind(conn: &Connection, path: &Path) -> Result<bool, SqliteOpenError> {
    let sqlite = |source| SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let path = path.to_path_buf();
    match files::file_kind(conn) {
        Ok(FileKind::Empty) => return Ok(true),
        Ok(FileKind::Store) => {}
        Ok(FileKind::ReadModels) => return Err(SqliteOpenError::ReadModelsFile { path }),
        Ok(FileKind::Foreign) => return Err(SqliteOpenError::NotALedger { path }),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(SqliteOpenError::NotALedger { path });
        }
        Err(e) => return Err(sqlite(e)),
    }
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    // A store of an older build of this project (id 0, the `events` table) has version 0.
    if !(0..=FORMAT_VERSION).contains(&version) {
        return Err(SqliteOpenError::UnsupportedFormat {
            path,
            found: version,
        });
    }
    Ok(false)
}

/// Checks that the file is a store, or an empty file, before anything is written; then sets
/// the connection up for writing (WAL, `synchronous=FULL`) and creates the schema in an empty
/// file.
fn init_schema(conn: &mut Connection, path: &Path) -> Result<(), SqliteOpenError> {
    let sqlite = |source| SqliteOpenError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let empty = check_kind(conn, path)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sqlite)?;
    debug_assert_eq!(mode.to_lowercase(), "wal");
    // FULL: the WAL is synced at every commit, so an acknowledged append survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite)?;
    // After a checkpoint the WAL file is cut back to this size instead of keeping its peak.
    conn.pragma_update(None, "journal_size_limit", WAL_BYTES_KEPT_MAX)
        .map_err(sqlite)?;
    // The indexes' pages that appends touch are spread over the file once it holds millions of
    // events; SQLite's default 2 MiB cache turned each append into several page reads.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(sqlite)?;
    stable_plans(conn).map_err(sqlite)?;
    let stamped: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if stamped == STORE_APPLICATION_ID {
        // A store: nothing to create, and no write lock taken just to open it.
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    // Checked again under the write lock: another process may have created the store meanwhile.
    let id: i32 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if empty && id == 0 {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                position       INTEGER PRIMARY KEY,
                event_id       BLOB    NOT NULL UNIQUE,
                stream         TEXT    NOT NULL,
                revision       INTEGER NOT NULL,
                event_type     TEXT    NOT NULL,
                schema_version INTEGER NOT NULL,
                occurred_at    INTEGER NOT NULL,
                recorded_at    INTEGER NOT NULL,
                recorded_by    TEXT    NOT NULL,
                correlation_id BLOB,
                causation_id   BLOB,
                data           TEXT    NOT NULL,
                UNIQUE (stream, revision)
            );",
        )
        .map_err(sqlite)?;
        chain::create_tables(&tx).map_err(sqlite)?;
    }
    if id == 0 {
        // A new store, or one of an older build that was not stamped yet.
        tx.execute_batch(&format!(
            "PRAGMA application_id = {STORE_APPLICATION_ID}; PRAGMA user_version = {FORMAT_VERSION};"
        ))
        .map_err(sqlite)?;
    }
    tx.commit().map_err(sqlite)?;
    Ok(())
}

/// Records the current format in a store opened for writing, once its chain exists.
fn stamp_format(conn: &Connection) -> rusqlite::Result<()> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != FORMAT_VERSION {
        conn.pragma_update(None, "user_version", FORMAT_VERSION)?;
    }
    Ok(())
}

fn max_position(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|p| p as u64)
}

fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(micros: i64) -> Result<DateTime<Utc>, rusqlite::Error> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("timestamp {micros} out of range").into(),
        )
    })
}

fn uuid_from(bytes: Option<Vec<u8>>) -> Result<Option<Uuid>, rusqlite::Error> {
    bytes
        .map(|b| {
            Uuid::from_slice(&b).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
            })
        })
        .transpose()
}

/// Deletes a store's files (the database, its WAL and shared-memory files), ignoring missing
/// ones. For fresh demo and benchmark stores only: the ledger itself never deletes anything.
pub fn remove_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The stored form of a time: whole microseconds, so that what is read back compares equal.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

const SELECT_COLUMNS: &str = "event_id, stream, revision, position, event_type, schema_version, \
     data, occurred_at, recorded_at, recorded_by, correlation_id, causation_id";
/// [`SELECT_COLUMNS`] of the table aliased `e`.
const SELECT_COLUMNS_OF_E: &str = "e.event_id, e.stream, e.revision, e.position, e.event_type, \
     e.schema_version, e.data, e.occurred_at, e.recorded_at, e.recorded_by, e.correlation_id, \
     e.causation_id";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let id: Vec<u8> = row.get(0)?;
    Ok(Record {
        event_id: uuid_from(Some(id))?.expect("present"),
        stream: row.get(1)?,
        revision: row.get::<_, i64>(2)? as u64,
        position: row.get::<_, i64>(3)? as u64,
        event_type: row.get(4)?,
        schema_version: row.get::<_, i64>(5)? as u32,
        data: row.get(6)?,
        occurred_at: from_micros(row.get(7)?)?,
        recorded_at: from_micros(row.get(8)?)?,
        recorded_by: row.get(9)?,
        correlation_id: uuid_from(row.get(10)?)?,
        causation_id: uuid_from(row.get(11)?)?,
    })
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<WriterMessage>, shared: Arc<Shared>) {
    // After a failed commit the file's state is uncertain from here: refuse every later write
    // until the store is reopened, instead of guessing (as redb does).
    let mut poisoned: Option<String> = None;
    let mut pending_bulk: Option<BulkRequest> = None;
    loop {
        let first = match pending_bulk.take() {
            Some(bulk) => WriterMessage::Bulk(bulk),
            None => match rx.blocking_recv() {
                Some(message) => message,
                None => {
                    close_writer(conn);
                    return;
                }
            },
        };
        let mut batch = Vec::new();
        match first {
            WriterMessage::Append(request) => batch.push(request),
            WriterMessage::Bulk(bulk) => {
                let result = match &poisoned {
                    Some(reason) => Err(StorageError::Poisoned(reason.clone()).into()),
                    None => commit_bulk(&mut conn, bulk.chunks, &shared, &mut poisoned),
                };
                let _ = bulk.reply.send(result);
                continue;
            }
        }
        // Group commit: everything already waiting joins this transaction. A bulk append waits
        // for the next round, in its own transaction.
        while batch.len() < GROUP_COMMIT_APPENDS_MAX {
            match rx.try_recv() {
                Ok(WriterMessage::Append(request)) => batch.push(request),
                Ok(WriterMessage::Bulk(bulk)) => {
                    pending_bulk = Some(bulk);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(reason) = &poisoned {
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(StorageError::Poisoned(reason.clone()).into()));
            }
            continue;
        }
        match commit_batch(&mut conn, &batch) {
            Ok((outcomes, head)) => {
                publish_head(&shared, head);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    // The appender may have given up waiting; the append is durable regardless.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) => {
                // The first failure names its cause; only a failure that may have left the
                // file uncertain makes the later writes refuse until the store is reopened.
                let failure = super::WriteFailure::of(&e);
                if failure.poisons() {
                    poisoned = Some(failure.to_string());
                }
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StorageError::WriteFailed(failure.clone()).into()));
                }
            }
        }
    }
}

/// Closes the writing connection on a clean shutdown: folds the WAL into the database file and
/// truncates it, so that the store file alone holds every acknowledged event (a copy of it is a
/// complete ledger). Best effort: a reader of another process may hold an old snapshot, and
/// then its own close (or the next checkpoint) finishes the job.
fn close_writer(conn: Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = conn.close();
}

fn publish_head(shared: &Shared, head: u64) {
    shared.head.send_if_modified(|h| {
        let moved = head > *h;
        *h = (*h).max(head);
        moved
    });
}

/// Runs one bulk append in one transaction: commits when the producer says so, rolls back if
/// the producer goes away or a chunk is refused.
fn commit_bulk(
    conn: &mut Connection,
    chunks: mpsc::Receiver<BulkMessage>,
    shared: &Shared,
    poisoned: &mut Option<String>,
) -> Result<BulkResult, AppendError> {
    let sql = |e: rusqlite::Error| AppendError::Storage(StorageError::Sqlite(e));
    conn.pragma_update(None, "cache_size", -BULK_CACHE_KIB)
        .map_err(sql)?;
    let result = commit_bulk_in_cache(conn, chunks, shared, poisoned);
    // Back to the everyday cache; the pages beyond it are let go.
    let _ = conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB);
    result
}

/// [`commit_bulk`] with its page cache set.
fn commit_bulk_in_cache(
    conn: &mut Connection,
    mut chunks: mpsc::Receiver<BulkMessage>,
    shared: &Shared,
    poisoned: &mut Option<String>,
) -> Result<BulkResult, AppendError> {
    let sql = |e: rusqlite::Error| AppendError::Storage(StorageError::Sqlite(e));
    let write_failed = |e: rusqlite::Error| {
        AppendError::Storage(StorageError::WriteFailed(super::WriteFailure::of(&e)))
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write_failed)?;
    let mut next_position = max_position(&tx).map_err(sql)? + 1;
    let mut chain_head = chain::head_link(&tx, next_position - 1)?;
    let now = truncate_to_micros(Utc::now());
    let mut result = BulkResult::default();
    // The transaction holds the file's write lock until it commits or rolls back as a whole, so
    // the revisions it has seen stay true across its chunks: each stream is asked for once.
    let mut revisions = HashMap::new();
    // Written chunks are freed on a helper thread: in a bulk append this thread is the
    // bottleneck, and freeing the strings of thousands of events per chunk is work it need not
    // do. (Without the helper, chunks are freed here.)
    let (to_free, freed) = std::sync::mpsc::channel::<Vec<StreamAppend>>();
    let freer = std::thread::Builder::new()
        .name("ledger-free".into())
        .spawn(move || freed.into_iter().for_each(drop))
        .is_ok();
    loop {
        match chunks.blocking_recv() {
            Some(BulkMessage::Chunk(appends)) => {
                check_append(&appends)?;
                // An error returns early: dropping `tx` rolls everything back, and dropping
                // `chunks` tells the producer to stop.
                let mut cursor = Cursor {
                    next_position: &mut next_position,
                    chain_head: &mut chain_head,
                    now,
                };
                let results = apply_appends(&tx, &appends, &mut cursor, &mut revisions)?;
                result.add(&appends, &results);
                if freer {
                    let _ = to_free.send(appends);
                }
            }
            Some(BulkMessage::Commit) => break,
            None => return Err(AppendError::Abandoned),
        }
    }
    if let Err(e) = tx.commit() {
        let failure = super::WriteFailure::of(&e);
        if failure.poisons() {
            *poisoned = Some(failure.to_string());
        }
        return Err(AppendError::Storage(StorageError::WriteFailed(failure)));
    }
    if let Some(head) = result.last_position {
        publish_head(shared, head);
    }
    // A bulk append leaves its whole transaction in the WAL (gigabytes for millions of events).
    // Fold it into the database now, while the importer waits anyway; otherwise every later
    // commit pays for part of it and appends slow down tenfold. Best effort: a busy reader only
    // delays it to the automatic checkpoints.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(result)
}

type Outcome = Result<Vec<AppendResult>, AppendError>;

/// Commits every request of `batch` that its checks allow, in one transaction. Returns each
/// request's outcome and the position of the last committed event.
fn commit_batch(
    conn: &mut Connection,
    batch: &[WriteRequest],
) -> Result<(Vec<Outcome>, u64), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut next_position = max_position(&tx)? + 1;
    let mut chain_head = chain::head_link(&tx, next_position - 1).map_err(storage_to_sqlite)?;
    let now = truncate_to_micros(Utc::now());
    let mut outcomes = Vec::with_capacity(batch.len());
    // Savepoint statements are prepared once and reused: parsing them for every append was a
    // visible share of the group-commit profile.
    let run = |sql: &str| tx.prepare_cached(sql)?.execute([]).map(|_| ());
    for request in batch {
        run("SAVEPOINT append_request")?;
        let (position_before, chain_before) = (next_position, chain_head);
        // A request's revisions are only valid inside its savepoint: each starts afresh.
        let mut revisions = HashMap::new();
        let mut cursor = Cursor {
            next_position: &mut next_position,
            chain_head: &mut chain_head,
            now,
        };
        match apply_appends(&tx, &request.appends, &mut cursor, &mut revisions) {
            Ok(results) => {
                run("RELEASE append_request")?;
                outcomes.push(Ok(results));
            }
            Err(AppendError::Storage(e)) => return Err(storage_to_sqlite(e)),
            Err(e) => {
                // This request is rolled back, and nothing else.
                run("ROLLBACK TO append_request")?;
                run("RELEASE append_request")?;
                next_position = position_before;
                chain_head = chain_before;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit()?;
    Ok((outcomes, next_position - 1))
}

fn storage_to_sqlite(e: StorageError) -> rusqlite::Error {
    match e {
        StorageError::Sqlite(e) => e,
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

fn current_revision(conn: &Connection, stream: &str) -> rusqlite::Result<CurrentRevision> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT max(revision) FROM events WHERE stream = ?1")?
        .query_row([stream], |r| r.get(0))?;
    Ok(max.map_or(CurrentRevision::NoStream, |m| {
        CurrentRevision::Current(m as u64)
    }))
}

fn find_by_id(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<Record>> {
    conn.prepare_cached(&format!(
        "SELECT {SELECT_COLUMNS} FROM events WHERE event_id = ?1"
    ))?
    .query_row([id.as_bytes().as_slice()], row_to_record)
    .optional()
}

/// Where the log stands inside a write transaction: the next position, the chain hash the next
/// event links to, and the time stamped on events recorded without one.
struct Cursor<'a> {
    next_position: &'a mut u64,
    chain_head: &'a mut Digest,
    now: DateTime<Utc>,
}

fn apply_appends(
    conn: &Connection,
    appends: &[StreamAppend],
    cursor: &mut Cursor<'_>,
    revisions: &mut HashMap<String, CurrentRevision>,
) -> Result<Vec<AppendResult>, AppendError> {
    let (next_position, now) = (&mut *cursor.next_position, cursor.now);
    let sql = |e: rusqlite::Error| AppendError::Storage(StorageError::Sqlite(e));
    let mut results = Vec::with_capacity(appends.len());
    // `revisions`: stream revisions as the appends so far leave them, so that many runs of the
    // same stream ask SQLite once per stream. The caller keeps it only as long as it is true.
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (position, event_id, stream, revision, event_type, \
             schema_version, occurred_at, recorded_at, recorded_by, correlation_id, \
             causation_id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(sql)?;
    for append in appends {
        let actual = match revisions.get(append.stream.as_str()) {
            Some(r) => *r,
            None => current_revision(conn, &append.stream).map_err(sql)?,
        };
        if !append.expected.is_met_by(actual) {
            // A retry of an append that succeeded finds the stream moved on: answer it with the
            // original result rather than a conflict.
            if let Some(original) = retry_of(conn, append)? {
                results.push(original);
                continue;
            }
            return Err(AppendError::WrongExpectedRevision {
                stream: append.stream.clone(),
                expected: append.expected,
                actual,
            });
        }
        let mut revision = match actual {
            CurrentRevision::NoStream => 0,
            CurrentRevision::Current(r) => r + 1,
        };
        let first_position = *next_position;
        for (i, event) in append.events.iter().enumerate() {
            let recorded_at = event.recorded_at.unwrap_or(now);
            let inserted = insert.execute(params![
                *next_position as i64,
                event.event_id.as_bytes().as_slice(),
                append.stream,
                revision as i64,
                event.event_type,
                event.schema_version as i64,
                to_micros(event.occurred_at),
                to_micros(recorded_at),
                event.recorded_by,
                event.correlation_id.as_ref().map(|u| u.as_bytes().to_vec()),
                event.causation_id.as_ref().map(|u| u.as_bytes().to_vec()),
                event.data,
            ]);
            match inserted {
                Ok(_) => {}
                // The event id is taken (the unique index said so): either this whole append is
                // a retry, or an id is reused, which is a conflict. The request's savepoint
                // rolls back whatever this append inserted before.
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    if i == 0
                        && let Some(original) = retry_of(conn, append)?
                    {
                        results.push(original);
                        break;
                    }
                    return Err(AppendError::IdempotencyConflict {
                        event_id: event.event_id,
                    });
                }
                Err(e) => return Err(sql(e)),
            }
            // Hashed as it will be read back: times at the stored precision.
            let event_hash = chain::new_event_hash(&append.stream, event, recorded_at);
            *cursor.chain_head = super::chain::link(cursor.chain_head, &event_hash);
            chain::insert_link(conn, *next_position, &event_hash, cursor.chain_head)
                .map_err(sql)?;
            *next_position += 1;
            revision += 1;
        }
        if *next_position == first_position {
            continue; // answered as a retry
        }
        let now_at = CurrentRevision::Current(revision - 1);
        match revisions.get_mut(append.stream.as_str()) {
            Some(r) => *r = now_at,
            None => {
                revisions.insert(append.stream.clone(), now_at);
            }
        }
        results.push(AppendResult {
            next_expected_revision: revision - 1,
            first_position,
            last_position: *next_position - 1,
            written: true,
        });
    }
    Ok(results)
}

/// If every event of `append` is already recorded exactly as given, the original result.
/// `None` when none of its ids is recorded; a conflict when some are, or differ.
fn retry_of(conn: &Connection, append: &StreamAppend) -> Result<Option<AppendResult>, AppendError> {
    let sql = |e: rusqlite::Error| AppendError::Storage(StorageError::Sqlite(e));
    let mut existing = Vec::new();
    for event in &append.events {
        if let Some(record) = find_by_id(conn, event.event_id).map_err(sql)? {
            existing.push((event, record));
        }
    }
    if existing.is_empty() {
        return Ok(None);
    }
    original_result(append, &existing).map(Some)
}

/// The result of the original append, if `existing` shows that `append` is an exact retry of it.
fn original_result(
    append: &StreamAppend,
    existing: &[(&NewRecord, Record)],
) -> Result<AppendResult, AppendError> {
    let conflict = |event_id| AppendError::IdempotencyConflict { event_id };
    if existing.len() != append.events.len() {
        // Some ids are new and some are not: not a retry of one append.
        let new = append
            .events
            .iter()
            .find(|e| !existing.iter().any(|(n, _)| n.event_id == e.event_id))
            .expect("a new event exists");
        let old = &existing[0].0;
        return Err(if old.event_id != new.event_id {
            conflict(old.event_id)
        } else {
            conflict(new.event_id)
        });
    }
    for (i, (new, record)) in existing.iter().enumerate() {
        let normalized = NewRecord {
            occurred_at: truncate_to_micros(new.occurred_at),
            recorded_at: new.recorded_at.map(truncate_to_micros),
            ..(*new).clone()
        };
        if !record.is_same_event(&append.stream, &normalized) {
            return Err(conflict(new.event_id));
        }
        if i > 0 && record.revision != existing[i - 1].1.revision + 1 {
            return Err(conflict(new.event_id));
        }
    }
    let first = &existing[0].1;
    let last = &existing[existing.len() - 1].1;
    Ok(AppendResult {
        next_expected_revision: last.revision,
        first_position: first.position,
        last_position: last.position,
        written: false,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        check_append(&appends)?;
        let (reply, response) = oneshot::channel();
        self.writer()?
            .send(WriterMessage::Append(WriteRequest { appends, reply }))
            .await
            .map_err(|_| StorageError::Closed)?;
        response.await.map_err(|_| StorageError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from_revision: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError> {
        let stream = stream.to_string();
        self.with_reader(move |conn| {
            let (cmp, order, default) = match direction {
                Direction::Forwards => (">=", "ASC", 0),
                Direction::Backwards => ("<=", "DESC", i64::MAX),
            };
            let from = from_revision.map_or(default, |r| r as i64);
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SELECT_COLUMNS} FROM events WHERE stream = ?1 AND revision {cmp} ?2 \
                     ORDER BY revision {order} LIMIT ?3"
                ))
                .map_err(StorageError::from)?;
            let rows = stmt
                .query_map(params![stream, from, max_count as i64], row_to_record)
                .map_err(StorageError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StorageError::from)?;
            if rows.is_empty()
                && current_revision(conn, &stream).map_err(StorageError::from)?
                    == CurrentRevision::NoStream
            {
                return Err(ReadError::StreamNotFound(stream));
            }
            Ok(rows)
        })
        .await
    }

    async fn append_bulk(
        &self,
        chunks: mpsc::Receiver<BulkMessage>,
    ) -> Result<BulkResult, AppendError> {
        let (reply, response) = oneshot::channel();
        self.writer()?
            .send(WriterMessage::Bulk(BulkRequest { chunks, reply }))
            .await
            .map_err(|_| StorageError::Closed)?;
        response.await.map_err(|_| StorageError::Closed)?
    }

    async fn read_by_stream(
        &self,
        upto: u64,
        after: Option<(super::StreamName, u64)>,
        max_count: usize,
    ) -> Result<Option<Vec<Record>>, ReadError> {
        self.with_reader(move |conn| {
            // The (stream, revision) index gives this order without sorting.
            let (stream, revision) = after.map_or((String::new(), -1), |(s, r)| (s, r as i64));
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SELECT_COLUMNS} FROM events \
                     WHERE (stream, revision) > (?1, ?2) AND position <= ?3 \
                     ORDER BY stream, revision LIMIT ?4"
                ))
                .map_err(StorageError::from)?;
            let rows = stmt
                .query_map(
                    params![stream, revision, upto as i64, max_count as i64],
                    row_to_record,
                )
                .map_err(StorageError::from)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StorageError::from)?;
            Ok(Some(rows))
        })
        .await
    }

    async fn read_streams(
        &self,
        streams: &[super::StreamName],
    ) -> Result<HashMap<super::StreamName, Vec<Record>>, ReadError> {
        let streams = streams.to_vec();
        // One blocking task and one prepared statement for the whole batch of streams.
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SELECT_COLUMNS} FROM events WHERE stream = ?1 ORDER BY revision"
                ))
                .map_err(StorageError::from)?;
            let mut out = HashMap::with_capacity(streams.len());
            for stream in streams {
                let rows = stmt
                    .query_map([&stream], row_to_record)
                    .map_err(StorageError::from)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StorageError::from)?;
                out.insert(stream, rows);
            }
            Ok(out)
        })
        .await
    }

    async fn read_all(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<Record>, ReadError> {
        self.with_reader(move |conn| read_all_sync(conn, after, max_count))
            .await
    }

    async fn subscribe_all(&self, after: Option<u64>) -> Result<Box<dyn Subscription>, ReadError> {
        Ok(Box::new(SqliteSubscription {
            store: self.clone(),
            after,
            buffer: VecDeque::new(),
            caught_up: false,
            head: self.shared.head.subscribe(),
        }))
    }

    async fn head_position(&self) -> Result<Option<u64>, ReadError> {
        self.with_reader(|conn| {
            let p = max_position(conn).map_err(StorageError::from)?;
            Ok((p > 0).then_some(p))
        })
        .await
    }

    async fn identity(&self) -> Result<Option<String>, ReadError> {
        Ok(self.shared.identity.clone())
    }

    async fn chain_info(&self) -> Result<Option<ChainInfo>, ReadError> {
        self.with_reader(chain::info).await
    }

    async fn read_chained(
        &self,
        after: Option<u64>,
        max_count: usize,
    ) -> Result<Vec<ChainedRecord>, ReadError> {
        self.with_reader(move |conn| chain::read_chained(conn, after, max_count))
            .await
    }

    async fn read_chained_between(
        &self,
        after: u64,
        upto: u64,
    ) -> Result<Vec<ChainedRecord>, ReadError> {
        self.with_reader(move |conn| chain::read_chained_between(conn, after, upto))
            .await
    }

    async fn chain_link_at(&self, position: u64) -> Result<Option<Digest>, ReadError> {
        self.with_reader(move |conn| chain::link_at(conn, position))
            .await
    }

    async fn find_event_hash(&self, hash: Digest) -> Result<Option<u64>, ReadError> {
        self.with_reader(move |conn| chain::position_of_event_hash(conn, &hash))
            .await
    }
}

/// Reads the log after a position, synchronously (also used by the projection runner).
pub fn read_all_sync(
    conn: &Connection,
    after: Option<u64>,
    max_count: usize,
) -> Result<Vec<Record>, ReadError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))
        .map_err(StorageError::from)?;
    let rows = stmt
        .query_map(
            params![after.unwrap_or(0) as i64, max_count as i64],
            row_to_record,
        )
        .map_err(StorageError::from)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StorageError::from)?;
    Ok(rows)
}

struct SqliteSubscription {
    store: SqliteStore,
    /// The checkpoint: position of the last event delivered.
    after: Option<u64>,
    buffer: VecDeque<Record>,
    caught_up: bool,
    head: watch::Receiver<u64>,
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn next(&mut self) -> Result<SubscriptionMessage, ReadError> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                debug_assert!(self.after.is_none_or(|a| record.position > a));
                self.after = Some(record.position);
                return Ok(SubscriptionMessage::Event(record));
            }
            let page = self
                .store
                .read_all(self.after, SUBSCRIPTION_PAGE_EVENTS)
                .await?;
            if !page.is_empty() {
                self.buffer.extend(page);
                continue;
            }
            if !self.caught_up {
                self.caught_up = true;
                return Ok(SubscriptionMessage::CaughtUp {
                    position: self.after,
                });
            }
            // Wake on a commit by this process, or poll for commits by other processes.
            let after = self.after.unwrap_or(0);
            let _ = tokio::time::timeout(
                SUBSCRIPTION_POLL_INTERVAL,
                self.head.wait_for(|head| *head > after),
            )
            .await;
        }
    }
}

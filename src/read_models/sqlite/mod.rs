//! The read models in SQLite: `rm_` tables in a file of their own (by default beside the event
//! store's, [`read_models_beside`]). Each batch of changes and the checkpoint it reaches are
//! written in one transaction; a rebuild writes `rm_new_` tables and swaps them in with renames
//! inside one transaction.
//!
//! - [`columns`]: every table's columns, named once (DDL, inserts, selects, decoding).
//! - [`write`] and [`read`]: the statements, inside a transaction the caller holds.
//! - [`checkpointer`]: the thread that folds the WAL into the file off the commit path.

pub mod checkpointer;
pub mod columns;
pub mod read;
pub mod write;

use super::{Binding, Checkpoint, KeptReport, ReadModelError, ReadModels, Tables};
use crate::domain::CustomerId;
use crate::projections::aggregates::{self, Deltas, RepsInputs};
use crate::projections::model::{CustomerRows, DealRow, ReadModel, StageStayRow};
use crate::projections::time::Period;
use crate::store::files::{self, FileKind, FileMode, READ_MODELS_APPLICATION_ID};
use checkpointer::Checkpointer;
use chrono::{DateTime, Utc};
use columns::{LoadError, TABLES};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Prefix of the live read-model tables.
pub const LIVE: &str = "rm_";
/// Prefix of the tables a rebuild writes before swapping them in.
pub const STAGING: &str = "rm_new_";
/// Prepared statements kept per connection: every table has its own delete, insert and select
/// statements, for live and staging prefixes, more than rusqlite's default cache of 16 (which
/// made each batch re-parse them).
const STATEMENT_CACHE_CAPACITY: usize = 256;
/// The writing connection's page cache, in KiB. SQLite's default (2 MiB) held a sliver of a
/// 100k store's 50 MB of read models, so each live batch read back the changed customers' rows
/// and the counters' index pages from the file again (a profile of `serve` under appends: a
/// fifth of the runner's time in page reads). Only the writer keeps its cache across
/// transactions (no other connection writes the file), so only the writer gets a large one.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Reading connections kept open for reuse.
const IDLE_READERS_MAX: usize = 8;

/// The prefix of a set of tables.
pub fn prefix(tables: Tables) -> &'static str {
    match tables {
        Tables::Live => LIVE,
        Tables::Staging => STAGING,
    }
}

/// The read models' own file beside a SQLite event store: `ledger.db` → `ledger.read-models.db`,
/// any other name → the name and `.read-models` (`ledger.sqlite` → `ledger.sqlite.read-models`).
/// Two stores in one directory never share one: the two forms cannot meet, and each keeps
/// the whole name apart from the `.db`.
///
/// They are kept apart from the log because SQLite lets one connection write a file at a time:
/// sharing it, every batch of read-model rows waited for the appends' group commits and every
/// append for the batch, and the projection lag under a steady write load was seconds instead
/// of milliseconds. The read models can always be rebuilt from the log.
pub fn read_models_beside(store: &Path) -> PathBuf {
    crate::store::files::beside(store, "read-models")
}

/// The writing connection, with the checkpointing thread it starts on its first commit.
struct Writer {
    conn: Connection,
    checkpointer: Option<Checkpointer>,
}

/// The read models in a SQLite file: one writing connection, and reading connections reused
/// from a small pool (SQLite's WAL lets them read while the writer writes; each read runs in
/// one read transaction, so it sees whole batches only).
pub struct SqliteReadModels {
    path: PathBuf,
    /// Set once the file and its live tables were made ready (on first use: a command that
    /// only replays the log never touches the read models' file).
    ready: std::sync::atomic::AtomicBool,
    /// Held from `start_staging` to `swap_in_staging`: one rebuild at a time, and a process
    /// that finds staging tables nobody holds this for knows they are a killed rebuild's.
    rebuild_lock: Mutex<Option<std::fs::File>>,
    writer: Mutex<Option<Writer>>,
    readers: Mutex<Vec<Connection>>,
    /// The mode of the file when it is created.
    file_mode: FileMode,
}

impl std::fmt::Debug for SqliteReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReadModels")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteReadModels {
    /// The read models in the SQLite file at `path`. The file is opened on first use, when it
    /// and the live tables are created if missing, and counters of an older layout recounted.
    pub fn open(path: &Path) -> Self {
        Self::with_file_mode(path, FileMode::default())
    }

    /// [`open`](Self::open), creating the file with `file_mode` if it is missing.
    pub fn with_file_mode(path: &Path, file_mode: FileMode) -> Self {
        SqliteReadModels {
            path: path.to_path_buf(),
            ready: std::sync::atomic::AtomicBool::new(false),
            rebuild_lock: Mutex::new(None),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            file_mode,
        }
    }

    /// Creates the file (with its mode) if missing, refuses one that is not a read-models file
    /// before anything is written to it, and stamps a new one with
    /// [`READ_MODELS_APPLICATION_ID`].
    /// Returns the connection it identified the file with, for the caller to set up and use:
    /// opening and closing a connection of its own made every first use pay for SQLite's
    /// checkpoint-on-last-close of the WAL.
    fn claim_file(&self) -> Result<Connection, ReadModelError> {
        files::create_file(&self.path, self.file_mode).map_err(|source| {
            ReadModelError::Create {
                path: self.path.clone(),
                source,
            }
        })?;
        let not_ours = |what| ReadModelError::NotReadModels {
            path: self.path.clone(),
            what,
        };
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.sqlite(e))?;
        let kind = match files::file_kind(&conn) {
            Ok(kind) => kind,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                return Err(not_ours("not a SQLite database"));
            }
            Err(e) => return Err(self.sqlite(e)),
        };
        match kind {
            FileKind::ReadModels | FileKind::Empty => {}
            FileKind::Store => return Err(not_ours("it is an event store")),
            FileKind::Foreign => return Err(not_ours("another SQLite database")),
        }
        let id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.sqlite(e))?;
        if id == 0 {
            conn.pragma_update(None, "application_id", READ_MODELS_APPLICATION_ID)
                .map_err(|e| self.sqlite(e))?;
        }
        Ok(conn)
    }

    /// Opens the file and makes its live tables ready, once.
    fn ready(&self) -> Result<(), ReadModelError> {
        if self.ready.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let rm = self;
        let mut conn = rm.claim_file()?;
        rm.configure(&mut conn)?;
        let sql = |e| rm.sqlite(e);
        conn.execute_batch(&columns::schema(LIVE)).map_err(sql)?;
        conn.execute_batch(&indexes(LIVE)).map_err(sql)?;
        if read::aggregates_version(&conn, LIVE).map_err(sql)? != Some(aggregates::VERSION) {
            // Tables written by an older version: recount, once, under the write lock.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            if read::aggregates_version(&tx, LIVE).map_err(sql)? != Some(aggregates::VERSION) {
                write::recount_aggregates(&tx, LIVE).map_err(|e| rm.load(e))?;
            }
            tx.commit().map_err(sql)?;
        }
        rm.drop_abandoned_staging(&conn)?;
        rm.give_back(conn);
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The lock file a rebuild holds (`<read models>.rebuild-lock`).
    fn rebuild_lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".rebuild-lock");
        PathBuf::from(name)
    }

    /// Takes the rebuild lock without waiting; `None` when another process holds it.
    fn try_rebuild_lock(&self) -> Result<Option<std::fs::File>, ReadModelError> {
        let path = self.rebuild_lock_path();
        let _ = files::create_file(&path, self.file_mode);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| ReadModelError::Create {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => {
                Err(ReadModelError::Create { path, source })
            }
        }
    }

    /// Drops staging tables a killed rebuild left behind (nobody holds the rebuild lock);
    /// leaves those of a rebuild that is running.
    fn drop_abandoned_staging(&self, conn: &Connection) -> Result<(), ReadModelError> {
        let staged: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\\_new\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))?;
        if staged == 0 {
            return Ok(());
        }
        let held_here = self
            .rebuild_lock
            .lock()
            .map_err(|_| ReadModelError::Poisoned { what: "rebuild" })?
            .is_some();
        if held_here {
            return Ok(());
        }
        if let Some(_unheld) = self.try_rebuild_lock()? {
            conn.execute_batch(&drop_tables(STAGING))
                .map_err(|e| self.sqlite(e))?;
        }
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self, source: rusqlite::Error) -> ReadModelError {
        ReadModelError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn load(&self, e: LoadError) -> ReadModelError {
        match e {
            LoadError::Sqlite(source) => self.sqlite(source),
            LoadError::Corrupt(e) => e,
        }
    }

    /// A new connection to the file, set up for the read models.
    fn connect(&self) -> Result<Connection, ReadModelError> {
        let mut conn = Connection::open(&self.path).map_err(|e| self.sqlite(e))?;
        self.configure(&mut conn)?;
        Ok(conn)
    }

    /// Sets a connection up for the read models.
    fn configure(&self, conn: &mut Connection) -> Result<(), ReadModelError> {
        let sql = |e| self.sqlite(e);
        crate::store::sqlite::wait_when_busy(conn).map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // Read models are derived data: a commit lost to a power cut is redone from the
        // checkpoint that was lost with it, so they need not wait for the WAL's fsync.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Readers of the event log are never blocked by the read models' writes in WAL mode.
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        Ok(())
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.readers.lock()
            && idle.len() < IDLE_READERS_MAX
        {
            idle.push(conn);
        }
    }

    /// Runs `read` in one read transaction of a pooled connection.
    fn read<T>(
        &self,
        read: impl FnOnce(&Transaction<'_>) -> Result<T, LoadError>,
    ) -> Result<T, ReadModelError> {
        self.ready()?;
        let idle = self
            .readers
            .lock()
            .map_err(|_| ReadModelError::Poisoned { what: "readers" })?
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let tx = conn.transaction().map_err(|e| self.sqlite(e))?;
        let out = read(&tx).map_err(|e| self.load(e))?;
        tx.finish().map_err(|e| self.sqlite(e))?;
        self.give_back(conn);
        Ok(out)
    }

    /// Runs `read` in one read transaction of the live tables with the checkpoint they
    /// reflect; `None` (and `read` not run) if they were never projected.
    fn read_live<T>(
        &self,
        read: impl FnOnce(&Transaction<'_>, &Checkpoint) -> Result<T, LoadError>,
    ) -> Result<Option<(Checkpoint, T)>, ReadModelError> {
        self.read(|tx| {
            let cp = read::read_checkpoint(tx, LIVE)?;
            if cp.position.is_none() {
                return Ok(None);
            }
            Ok(Some((cp, read(tx, &cp)?)))
        })
    }

    fn writer(&self) -> Result<MutexGuard<'_, Option<Writer>>, ReadModelError> {
        self.ready()?;
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| ReadModelError::Poisoned { what: "writer" })?;
        if guard.is_none() {
            let conn = self.connect()?;
            conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
                .map_err(|e| self.sqlite(e))?;
            *guard = Some(Writer {
                conn,
                checkpointer: None,
            });
        }
        Ok(guard)
    }

    /// Runs `write` in one write transaction (`BEGIN IMMEDIATE`: it waits for the file's write
    /// lock now, not at its first write); commits if it returns `Ok(true)`, and hands the WAL
    /// to the checkpointing thread.
    fn write(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<bool, LoadError>,
    ) -> Result<bool, ReadModelError> {
        let mut guard = self.writer()?;
        let w = guard.as_mut().expect("the writer was just opened");
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sqlite(e))?;
        if !write(&tx).map_err(|e| self.load(e))? {
            return Ok(false);
        }
        tx.commit().map_err(|e| self.sqlite(e))?;
        // The checkpoint of what the commit wrote runs on a thread of its own, so that the next
        // batch's commit does not run it (and hold the write lock meanwhile).
        if w.checkpointer.is_none() {
            let started = Checkpointer::start(&w.conn, &self.path).map_err(|e| self.sqlite(e))?;
            w.checkpointer = Some(started);
        }
        if let Some(checkpointer) = &w.checkpointer {
            checkpointer.nudge();
        }
        Ok(true)
    }
}

/// Drops every table under prefix `p`.
fn drop_tables(p: &str) -> String {
    TABLES
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {p}{};", t.name))
        .collect()
}

/// The secondary indexes the queries need (every customer table is already keyed by customer).
fn indexes(p: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {p}activity_contracts \
         ON {p}activity (event_type, applied, owner_rep, occurred_at, close_seconds);"
    )
}

impl ReadModels for SqliteReadModels {
    fn checkpoint(&self, tables: Tables) -> Result<Checkpoint, ReadModelError> {
        self.read(|tx| read::read_checkpoint(tx, prefix(tables)))
    }

    fn binding(&self, tables: Tables) -> Result<Option<Binding>, ReadModelError> {
        self.read(|tx| read::read_binding(tx, prefix(tables)))
    }

    fn bind(&self, tables: Tables, binding: &Binding) -> Result<(), ReadModelError> {
        self.write(|tx| {
            write::write_binding(tx, prefix(tables), binding)?;
            Ok(true)
        })
        .map(drop)
    }

    fn write_batch(
        &self,
        tables: Tables,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
    ) -> Result<bool, ReadModelError> {
        let p = prefix(tables);
        self.write(|tx| {
            if !write::checkpoint_is(tx, p, expected)? {
                return Ok(false);
            }
            write::write_rows(tx, p, changes, reached, tables == Tables::Live, None)?;
            Ok(true)
        })
    }

    fn write_new_customers(
        &self,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
        pending: &mut Deltas,
    ) -> Result<bool, ReadModelError> {
        self.write(|tx| {
            if !write::checkpoint_is(tx, STAGING, expected)? {
                return Ok(false);
            }
            write::write_rows(tx, STAGING, changes, reached, false, Some(pending))?;
            Ok(true)
        })
    }

    fn write_counters(&self, deltas: &Deltas) -> Result<(), ReadModelError> {
        self.write(|tx| {
            write::write_deltas(tx, STAGING, deltas)?;
            Ok(true)
        })
        .map(drop)
    }

    fn start_staging(&self) -> Result<(), ReadModelError> {
        {
            let mut held = self
                .rebuild_lock
                .lock()
                .map_err(|_| ReadModelError::Poisoned { what: "rebuild" })?;
            if held.is_none() {
                *held = Some(self.try_rebuild_lock()?.ok_or_else(|| {
                    ReadModelError::RebuildRunning {
                        path: self.path.clone(),
                    }
                })?);
            }
        }
        let drop_all = drop_tables(STAGING);
        self.write(|tx| {
            tx.execute_batch(&drop_all)?;
            tx.execute_batch(&columns::schema(STAGING))?;
            Ok(true)
        })
        .map(drop)
    }

    fn swap_in_staging(&self) -> Result<(), ReadModelError> {
        self.write(|tx| {
            // The staging counters were kept up to date during the rebuild; the spreads are
            // computed now, once. Then their layout is marked.
            write::rewrite_all_close_spreads(tx, STAGING)?;
            write::mark_aggregates_version(tx, STAGING)?;
            for t in TABLES {
                let t = t.name;
                tx.execute_batch(&format!(
                    "DROP TABLE IF EXISTS {LIVE}{t}; ALTER TABLE {STAGING}{t} RENAME TO {LIVE}{t};"
                ))?;
            }
            tx.execute_batch(&indexes(LIVE))?;
            Ok(true)
        })?;
        if let Ok(mut held) = self.rebuild_lock.lock() {
            *held = None; // unlocked when closed
        }
        // A rebuild writes the whole read model through the WAL: fold it into the file now and
        // cut the WAL back, rather than leave a WAL the size of the read models. Best effort: a
        // busy reader only delays it to the automatic checkpoints.
        if let Ok(guard) = self.writer()
            && let Some(w) = guard.as_ref()
        {
            let _ = w
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        Ok(())
    }

    fn set_aside(&self) -> Result<Option<PathBuf>, ReadModelError> {
        if !is_ours_by_header(&self.path) {
            return Ok(None);
        }
        // Every connection is closed first: they hold the file.
        if let Ok(mut writer) = self.writer.lock() {
            *writer = None;
        }
        if let Ok(mut readers) = self.readers.lock() {
            readers.clear();
        }
        self.ready
            .store(false, std::sync::atomic::Ordering::Release);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = |suffix: &str| {
            let mut from = self.path.as_os_str().to_owned();
            from.push(suffix);
            let mut to = self.path.as_os_str().to_owned();
            to.push(format!(".damaged-{stamp}{suffix}"));
            (PathBuf::from(from), PathBuf::from(to))
        };
        let moved = aside("").1;
        for suffix in ["", "-wal", "-shm"] {
            let (from, to) = aside(suffix);
            if from.exists() {
                std::fs::rename(&from, &to).map_err(|source| ReadModelError::SetAside {
                    path: from.clone(),
                    source,
                })?;
            }
        }
        Ok(Some(moved))
    }

    fn load_live(&self) -> Result<Option<ReadModel>, ReadModelError> {
        let loaded = self.read_live(|tx, _| read::load_model(tx, LIVE, None))?;
        Ok(loaded.map(|(_, model)| model))
    }

    fn load_customer_live(&self, customer_id: &str) -> Result<Option<ReadModel>, ReadModelError> {
        let loaded = self.read_live(|tx, _| read::load_model(tx, LIVE, Some(customer_id)))?;
        Ok(loaded.map(|(_, model)| model))
    }

    fn reps_inputs_live(
        &self,
        period: Period,
        rep: Option<&str>,
        clock: &dyn Fn(&Checkpoint) -> Option<DateTime<Utc>>,
    ) -> Result<Option<(Checkpoint, RepsInputs)>, ReadModelError> {
        self.read_live(|tx, cp| read::read_reps_inputs(tx, LIVE, period, rep, clock(cp)))
    }

    fn fold_live_deals(
        &self,
        each: &mut dyn FnMut(&Checkpoint, DealRow, Vec<StageStayRow>),
    ) -> Result<Option<Checkpoint>, ReadModelError> {
        let folded = self.read_live(|tx, cp| {
            read::each_deal_with_stays(tx, LIVE, |deal, stays| each(cp, deal, stays))
        })?;
        Ok(folded.map(|(cp, ())| cp))
    }

    fn write_reports(&self, policy: &str, reports: &[KeptReport]) -> Result<(), ReadModelError> {
        self.write(|tx| {
            write::write_reports(tx, LIVE, policy, reports)?;
            Ok(true)
        })
        .map(drop)
    }

    fn read_report(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<Option<(u64, String)>, ReadModelError> {
        self.read(|tx| read::read_report(tx, LIVE, name, policy))
    }
}

/// Whether the file's header carries the read models' application id (read from the bytes,
/// since a damaged file may not open).
fn is_ours_by_header(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 72];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    read.is_ok()
        && header.starts_with(b"SQLite format 3\0")
        && i32::from_be_bytes([header[68], header[69], header[70], header[71]])
            == READ_MODELS_APPLICATION_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_models_live_beside_the_store() {
        assert_eq!(
            read_models_beside(Path::new("/data/ledger.db")),
            Path::new("/data/ledger.read-models.db")
        );
        assert_eq!(
            read_models_beside(Path::new("ledger.sqlite")),
            Path::new("ledger.sqlite.read-models")
        );
        assert_eq!(
            read_models_beside(Path::new("ledger")),
            Path::new("ledger.read-models")
        );
    }

    /// Any two store names in one directory map to two read-model files.
    #[test]
    fn two_stores_never_share_read_models() {
        let names = [
            "ledger",
            "ledger.db",
            "ledger.sqlite",
            "ledger.db.db",
            "ledger.read-models",
            "ledger.read-models.db",
            "a.b",
            "a.b.db",
        ];
        let mut seen = std::collections::BTreeMap::new();
        for name in names {
            let rm = read_models_beside(Path::new(name));
            assert_ne!(rm, Path::new(name), "{name} maps to itself");
            if let Some(other) = seen.insert(rm.clone(), name) {
                panic!("{name} and {other} share {}", rm.display());
            }
        }
    }
}

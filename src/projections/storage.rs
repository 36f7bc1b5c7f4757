//! The read models in SQLite: `rm_` tables in their own file (by default beside the event store's,
//! [`read_models_beside`]), written through the projections' own connection. Each batch of changes and the checkpoints it reaches are written
//! in one transaction, so a crash at any moment neither skips nor double-counts an event.
//! A rebuild writes `rm_new_` tables and swaps them in with renames inside one transaction.

use super::aggregates::{self, Deltas};
use super::model::{
    ActivityRow, CustomerRow, CustomerRows, CustomerValueRow, DealRow, FollowUpRow, ReadModel,
    StageStayRow,
};
use super::time::Spread;
use super::{activity, conversion, lifecycle};
use crate::domain::CustomerId;
use crate::store::checkpointer::Checkpointer;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Prefix of the live read-model tables.
pub const LIVE: &str = "rm_";
/// Prefix of the tables a rebuild writes before swapping them in.
pub const STAGING: &str = "rm_new_";
/// The tables of the read models, without prefix.
pub const TABLES: [&str; 10] = [
    "checkpoints",
    "customers",
    "customer_values",
    "deals",
    "stage_stays",
    "activity",
    "followups",
    "aggregates",
    "close_spreads",
    "reports",
];
/// The tables holding one customer's rows (`customer_id` first in their primary key).
const CUSTOMER_TABLES: [&str; 6] = [
    "customers",
    "customer_values",
    "deals",
    "stage_stays",
    "activity",
    "followups",
];
/// The projections whose checkpoints are kept.
pub const PROJECTIONS: [&str; 3] = [lifecycle::NAME, conversion::NAME, activity::NAME];

/// Why the read-model storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("read models in {path}: SQLite: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "read-model table {table}, column {column} holds {value:?}, which this version cannot read; run `pipeline-ledger rebuild`"
    )]
    Corrupt {
        table: String,
        column: &'static str,
        value: String,
    },
}

/// Where the read models stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Position of the last event applied.
    pub position: Option<u64>,
    /// The latest `occurred_at` applied.
    pub log_time: Option<DateTime<Utc>>,
}

/// The read models' own file beside a SQLite event store (`ledger.db` → `ledger.read-models.db`).
///
/// They are kept apart from the log because SQLite lets one connection write a file at a time:
/// sharing it, every batch of read-model rows waited for the appends' group commits and every
/// append for the batch, and the projection lag under a steady write load was seconds instead
/// of milliseconds. The log stays the one file that must be kept; the read models can always be
/// rebuilt from it.
pub fn read_models_beside(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map_or_else(|| "pipeline-ledger".into(), |s| s.to_string_lossy());
    store.with_file_name(format!("{stem}.read-models.db"))
}

/// Names the read-model file in SQLite errors (for use where a transaction borrows the database).
fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StorageError + Copy + '_ {
    move |source| StorageError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Names the read-model file in errors of reading rows (SQLite, or a value this version cannot
/// read).
fn load_error(path: &Path) -> impl Fn(LoadError) -> StorageError + Copy + '_ {
    move |e| match e {
        LoadError::Sqlite(source) => sqlite_error(path)(source),
        LoadError::Corrupt(e) => e,
    }
}

/// Starts a write transaction now (`BEGIN IMMEDIATE`), waiting for the file's write lock.
fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// The projections' connection to the read models' file.
pub struct ReadModelDb {
    conn: Connection,
    path: PathBuf,
    /// Started by the first batch written: connections that only query need none.
    checkpointer: Option<Checkpointer>,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl ReadModelDb {
    /// Opens the read models in the SQLite file at `path` (any file: its own, or even the event
    /// store's) and creates the live tables if missing.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let sql = |source| StorageError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sql)?;
        crate::store::sqlite::wait_when_busy(&mut conn).map_err(sql)?;
        // Every table has its own delete, insert and select statements, for live and staging
        // prefixes: more than rusqlite's default cache of 16, which made each batch re-parse them.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // Read models are derived data: a commit lost to a power cut is redone from the
        // checkpoint that was lost with it, so they need not wait for the WAL's fsync.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Readers of the event log are never blocked by the read models' writes in WAL mode.
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        let mut db = ReadModelDb {
            conn,
            path: path.to_path_buf(),
            checkpointer: None,
        };
        db.create_tables(LIVE)?;
        db.create_indexes(LIVE)?;
        db.ensure_aggregates(LIVE)?;
        Ok(db)
    }

    /// Hands the checkpoint of what a commit wrote to the WAL to the checkpointing thread, so
    /// that the next batch's commit does not run it (and hold the write lock meanwhile).
    fn wal_written(&mut self) -> Result<(), StorageError> {
        if self.checkpointer.is_none() {
            let started = Checkpointer::start(&self.conn, &self.path).map_err(|e| self.sql(e))?;
            self.checkpointer = Some(started);
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.nudge();
        }
        Ok(())
    }

    fn sql(&self, source: rusqlite::Error) -> StorageError {
        StorageError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables under `prefix` if missing.
    pub fn create_tables(&self, prefix: &str) -> Result<(), StorageError> {
        self.conn
            .execute_batch(&schema(prefix))
            .map_err(|e| self.sql(e))
    }

    /// Creates the secondary indexes of the tables under `prefix` if missing. A rebuild creates
    /// them when it swaps its tables in (building an index after a bulk load is faster than
    /// keeping it up to date during the load).
    pub fn create_indexes(&self, prefix: &str) -> Result<(), StorageError> {
        self.conn
            .execute_batch(&indexes(prefix))
            .map_err(|e| self.sql(e))
    }

    /// Makes sure the aggregates under `prefix` are of this version's layout: if not (tables
    /// written by an older version), recomputes them from the stored rows, in one transaction.
    pub fn ensure_aggregates(&mut self, prefix: &str) -> Result<(), StorageError> {
        let version_sql = format!(
            "SELECT value FROM {prefix}aggregates \
             WHERE view = '_meta' AND grp = '' AND key = '' AND metric = 'version'"
        );
        let current: Option<i64> = self
            .conn
            .query_row(&version_sql, [], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))?;
        if current == Some(aggregates::VERSION) {
            return Ok(());
        }
        let err = load_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| err(e.into()))?;
        let current: Option<i64> = tx
            .query_row(&version_sql, [], |r| r.get(0))
            .optional()
            .map_err(|e| err(e.into()))?;
        if current != Some(aggregates::VERSION) {
            tx.execute(&format!("DELETE FROM {prefix}aggregates"), [])
                .map_err(|e| err(e.into()))?;
            let model = load_model(&tx, prefix, None).map_err(err)?;
            let mut deltas = Deltas::default();
            for rows in split_by_customer(model).values() {
                deltas.contribute(rows, 1);
            }
            write_deltas(&tx, prefix, &deltas).map_err(|e| err(e.into()))?;
            rewrite_all_close_spreads(&tx, prefix).map_err(err)?;
            tx.execute(
                &format!(
                    "INSERT INTO {prefix}aggregates (view, grp, key, metric, value) \
                     VALUES ('_meta', '', '', 'version', ?1)"
                ),
                [aggregates::VERSION],
            )
            .map_err(|e| err(e.into()))?;
        }
        tx.commit().map_err(|e| err(e.into()))
    }

    /// Drops the tables under `prefix`.
    pub fn drop_tables(&self, prefix: &str) -> Result<(), StorageError> {
        let sql: String = TABLES
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {prefix}{t};"))
            .collect();
        self.conn.execute_batch(&sql).map_err(|e| self.sql(e))
    }

    /// The checkpoint of the tables under `prefix`: the lowest of the projections' checkpoints
    /// (they move together; the lowest is the safe one to resume from).
    pub fn checkpoint(&self, prefix: &str) -> Result<Checkpoint, StorageError> {
        let row: Option<(Option<i64>, Option<i64>)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT min(position), min(log_time) FROM {prefix}checkpoints \
                     HAVING count(*) = {}",
                    PROJECTIONS.len()
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let (position, log_time) = row.unwrap_or((None, None));
        Ok(Checkpoint {
            position: position.map(|p| p as u64),
            log_time: log_time.and_then(DateTime::from_timestamp_micros),
        })
    }

    /// Writes the rows of changed customers and the checkpoint they reach, in one transaction.
    /// `expected` is the checkpoint the writer started from; if another writer moved it, nothing
    /// is written and `Ok(false)` is returned, so the caller can resume from the stored one.
    pub fn write_batch(
        &mut self,
        prefix: &str,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
    ) -> Result<bool, StorageError> {
        self.write_rows(prefix, expected, changes, reached, None)
    }

    /// [`write_batch`](Self::write_batch) for customers that have no rows yet (a rebuild in
    /// stream order writes each customer once, into empty staging tables): their old rows are
    /// not read back, which was most of a rebuild's reads. Their contributions to the counters
    /// are added to `pending` instead of written: a rebuild writes each counter once, at its end
    /// ([`write_counters`](Self::write_counters)), rather than once per batch that touches it.
    pub fn write_new_customers(
        &mut self,
        prefix: &str,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
        pending: &mut Deltas,
    ) -> Result<bool, StorageError> {
        self.write_rows(prefix, expected, changes, reached, Some(pending))
    }

    /// Writes counter changes gathered by [`write_new_customers`](Self::write_new_customers).
    pub fn write_counters(&mut self, prefix: &str, deltas: &Deltas) -> Result<(), StorageError> {
        let sql = sqlite_error(&self.path);
        let tx = write_transaction(&mut self.conn).map_err(sql)?;
        write_deltas(&tx, prefix, deltas).map_err(sql)?;
        tx.commit().map_err(sql)?;
        self.wal_written()
    }

    fn write_rows(
        &mut self,
        prefix: &str,
        expected: Option<u64>,
        changes: &[(CustomerId, CustomerRows)],
        reached: Checkpoint,
        new_customers_counted_in: Option<&mut Deltas>,
    ) -> Result<bool, StorageError> {
        let customers_are_new = new_customers_counted_in.is_some();
        let sql = sqlite_error(&self.path);
        let tx = write_transaction(&mut self.conn).map_err(sql)?;
        let current: Option<i64> = tx
            .query_row(
                &format!(
                    "SELECT min(position) FROM {prefix}checkpoints HAVING count(*) = {}",
                    PROJECTIONS.len()
                ),
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?
            .flatten();
        if current.map(|p| p as u64) != expected {
            return Ok(false);
        }
        let mut own_deltas = Deltas::default();
        let deltas = new_customers_counted_in.unwrap_or(&mut own_deltas);
        // Staging spreads are computed once, when the rebuild swaps its tables in.
        let keep_spreads = prefix == LIVE;
        let mut close_groups = HashMap::new();
        for (customer, rows) in changes {
            if !customers_are_new {
                let old = load_model(&tx, prefix, Some(customer.as_str()))
                    .map_err(load_error(&self.path))?;
                for old in split_by_customer(old).values() {
                    deltas.contribute(old, -1);
                    if keep_spreads {
                        aggregates::close_groups(old, &mut close_groups);
                    }
                }
            }
            deltas.contribute(rows, 1);
            if keep_spreads {
                aggregates::close_groups(rows, &mut close_groups);
            }
            write_customer(&tx, prefix, customer.as_str(), rows, !customers_are_new)
                .map_err(sql)?;
        }
        if !customers_are_new {
            write_deltas(&tx, prefix, deltas).map_err(sql)?;
        }
        write_close_spreads(&tx, prefix, &close_groups).map_err(sql)?;
        let now = micros(Utc::now());
        for name in PROJECTIONS {
            tx.execute(
                &format!(
                    "INSERT INTO {prefix}checkpoints (projection, position, log_time, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection) DO UPDATE SET \
                     position = excluded.position, log_time = excluded.log_time, \
                     updated_at = excluded.updated_at"
                ),
                params![
                    name,
                    reached.position.map(|p| p as i64),
                    reached.log_time.map(micros),
                    now
                ],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        self.wal_written()?;
        Ok(true)
    }

    /// Replaces the live tables by the staging tables in one transaction: a reader sees either
    /// the old read models or the new ones, never a mix.
    pub fn swap_in_staging(&mut self) -> Result<(), StorageError> {
        let sql = sqlite_error(&self.path);
        let tx = write_transaction(&mut self.conn).map_err(sql)?;
        // The staging counters were kept up to date during the rebuild; the spreads are computed
        // now, once. Then their layout is marked.
        rewrite_all_close_spreads(&tx, STAGING).map_err(load_error(&self.path))?;
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO {STAGING}aggregates (view, grp, key, metric, value) \
                 VALUES ('_meta', '', '', 'version', ?1)"
            ),
            [aggregates::VERSION],
        )
        .map_err(sql)?;
        for t in TABLES {
            tx.execute_batch(&format!(
                "DROP TABLE IF EXISTS {LIVE}{t}; ALTER TABLE {STAGING}{t} RENAME TO {LIVE}{t};"
            ))
            .map_err(sql)?;
        }
        tx.execute_batch(&indexes(LIVE)).map_err(sql)?;
        tx.commit().map_err(sql)?;
        // A rebuild writes the whole read model through the WAL: fold it into the file now and
        // cut the WAL back, rather than leave a WAL the size of the read models.
        // Best effort: a busy reader only delays it to the automatic checkpoints.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(())
    }

    /// Loads the whole read model under `prefix` (in one read transaction, so it is consistent).
    pub fn load(&mut self, prefix: &str) -> Result<ReadModel, StorageError> {
        let sql = sqlite_error(&self.path);
        let tx = self.conn.transaction().map_err(sql)?;
        let model = load_model(&tx, prefix, None).map_err(load_error(&self.path))?;
        tx.finish().map_err(sql)?;
        Ok(model)
    }

    /// One customer's rows in the live tables (by primary key) and the checkpoint they reflect,
    /// read in one transaction; `None` if never projected.
    pub fn load_customer_live(&mut self, id: &str) -> Result<Option<ReadModel>, StorageError> {
        let err = load_error(&self.path);
        let tx = self.conn.transaction().map_err(|e| err(e.into()))?;
        let model = load_model(&tx, LIVE, Some(id)).map_err(err)?;
        tx.finish().map_err(|e| err(e.into()))?;
        Ok(model.position.is_some().then_some(model))
    }

    /// What the rep report needs from the live tables, in one read transaction: the period's
    /// counters, the follow-ups not met yet due before the clock's day, and the contracts'
    /// closing times. `clock` gives the report clock from the checkpoint. `None` if never
    /// projected.
    pub fn reps_inputs_live(
        &mut self,
        period: super::time::Period,
        rep: Option<&str>,
        clock: impl Fn(&Checkpoint) -> Option<DateTime<Utc>>,
    ) -> Result<Option<(Checkpoint, aggregates::RepsInputs)>, StorageError> {
        self.read_live(|tx, cp| read_reps_inputs(tx, period, rep, clock(cp)))
    }

    /// Runs `read` in one read transaction of the live tables, with the checkpoint they reflect;
    /// `None` (and `read` not run) if they were never projected.
    fn read_live<T>(
        &mut self,
        read: impl FnOnce(&Transaction<'_>, &Checkpoint) -> Result<T, LoadError>,
    ) -> Result<Option<(Checkpoint, T)>, StorageError> {
        let (sql, err) = (sqlite_error(&self.path), load_error(&self.path));
        let tx = self.conn.transaction().map_err(sql)?;
        let cp = read_checkpoint(&tx, LIVE).map_err(sql)?;
        if cp.position.is_none() {
            return Ok(None);
        }
        let read = read(&tx, &cp).map_err(err)?;
        tx.finish().map_err(sql)?;
        Ok(Some((cp, read)))
    }

    /// Stores reports `(name, log position computed at, body)` computed under `policy` (its
    /// JSON), replacing older ones of the same names; a stored report of a later position is
    /// kept instead.
    pub fn write_reports(
        &mut self,
        policy: &str,
        reports: &[(String, u64, String)],
    ) -> Result<(), StorageError> {
        let sql = sqlite_error(&self.path);
        let tx = write_transaction(&mut self.conn).map_err(sql)?;
        {
            let mut put = tx
                .prepare_cached(&format!(
                    "INSERT INTO {LIVE}reports (name, position, policy, computed_at, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET \
                     position = excluded.position, policy = excluded.policy, \
                     computed_at = excluded.computed_at, body = excluded.body \
                     WHERE excluded.position >= {LIVE}reports.position"
                ))
                .map_err(sql)?;
            let now = micros(Utc::now());
            for (name, position, body) in reports {
                put.execute(params![name, *position as i64, policy, now, body])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        self.wal_written()
    }

    /// A stored report and the log position it was computed at, if one was computed under
    /// `policy` (its JSON).
    pub fn read_report(
        &mut self,
        name: &str,
        policy: &str,
    ) -> Result<Option<(u64, String)>, StorageError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT position, body FROM {LIVE}reports WHERE name = ?1 AND policy = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![name, policy], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
                })
                .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Folds every live deal with its stage stays, one deal at a time, in one read transaction
    /// (what the funnel needs, without holding the tables in memory): `start` makes the fold's
    /// state from the checkpoint the deals reflect, `f` adds a deal to it. `None` if never
    /// projected.
    pub fn fold_live_deals<S>(
        &mut self,
        start: impl FnOnce(&Checkpoint) -> S,
        mut f: impl FnMut(&mut S, DealRow, Vec<StageStayRow>),
    ) -> Result<Option<S>, StorageError> {
        let folded = self.read_live(|tx, cp| {
            let mut state = start(cp);
            each_deal_with_stays(tx, LIVE, |deal, stays| f(&mut state, deal, stays))?;
            Ok(state)
        })?;
        Ok(folded.map(|(_, state)| state))
    }

    /// Loads the read model if the live tables hold a checkpoint, `None` if never projected.
    pub fn load_live(&mut self) -> Result<Option<ReadModel>, StorageError> {
        if self.checkpoint(LIVE)?.position.is_none() {
            return Ok(None);
        }
        self.load(LIVE).map(Some)
    }
}

fn schema(p: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {p}checkpoints (
            projection TEXT PRIMARY KEY,
            position   INTEGER,
            log_time   INTEGER,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS {p}customers (
            customer_id         TEXT PRIMARY KEY,
            company             TEXT NOT NULL,
            state               TEXT NOT NULL,
            owner_rep           TEXT NOT NULL,
            current_deal_id     TEXT,
            current_stage       TEXT,
            current_stage_since INTEGER,
            first_seen_at       INTEGER NOT NULL,
            last_interaction_at INTEGER NOT NULL,
            next_followup_due   TEXT,
            dormant_after       INTEGER,
            open_deals          INTEGER NOT NULL,
            won_deals           INTEGER NOT NULL,
            lost_deals          INTEGER NOT NULL,
            reengagements       INTEGER NOT NULL,
            event_count         INTEGER NOT NULL,
            last_position       INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}customer_values (
            customer_id         TEXT NOT NULL,
            currency            TEXT NOT NULL,
            contracts_minor     INTEGER NOT NULL,
            contract_count      INTEGER NOT NULL,
            repeat_orders_minor INTEGER NOT NULL,
            PRIMARY KEY (customer_id, currency)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}deals (
            customer_id      TEXT NOT NULL,
            deal_id          TEXT NOT NULL,
            source           TEXT NOT NULL,
            opened_at        INTEGER NOT NULL,
            owner_at_open    TEXT NOT NULL,
            status           TEXT NOT NULL,
            stage            TEXT NOT NULL,
            stage_since      INTEGER NOT NULL,
            last_activity_at INTEGER NOT NULL,
            won_at           INTEGER,
            won_value_minor  INTEGER,
            won_currency     TEXT,
            won_owner        TEXT,
            lost_at          INTEGER,
            lost_reason      TEXT,
            reopen_count     INTEGER NOT NULL,
            PRIMARY KEY (customer_id, deal_id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}stage_stays (
            customer_id TEXT NOT NULL,
            deal_id     TEXT NOT NULL,
            seq         INTEGER NOT NULL,
            stage       TEXT NOT NULL,
            entered_at  INTEGER NOT NULL,
            entry       TEXT NOT NULL,
            from_stage  TEXT,
            exited_at   INTEGER,
            exit        TEXT,
            to_stage    TEXT,
            lost_reason TEXT,
            PRIMARY KEY (customer_id, deal_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}activity (
            customer_id   TEXT NOT NULL,
            event_id      TEXT NOT NULL,
            position      INTEGER NOT NULL,
            occurred_at   INTEGER NOT NULL,
            event_type    TEXT NOT NULL,
            deal_id       TEXT,
            performer_rep TEXT NOT NULL,
            owner_rep     TEXT NOT NULL,
            value_minor   INTEGER,
            currency      TEXT,
            close_seconds INTEGER,
            from_rep      TEXT,
            to_rep        TEXT,
            applied       INTEGER NOT NULL,
            PRIMARY KEY (customer_id, event_id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}followups (
            customer_id  TEXT NOT NULL,
            event_id     TEXT NOT NULL,
            deal_id      TEXT NOT NULL,
            due_on       TEXT NOT NULL,
            owner_rep    TEXT NOT NULL,
            fulfilled_at INTEGER,
            PRIMARY KEY (customer_id, event_id)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}aggregates (
            view   TEXT NOT NULL,
            grp    TEXT NOT NULL,
            key    TEXT NOT NULL,
            metric TEXT NOT NULL,
            value  INTEGER NOT NULL,
            PRIMARY KEY (view, grp, key, metric)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}close_spreads (
            period      TEXT NOT NULL,
            rep         TEXT NOT NULL,
            label       TEXT NOT NULL,
            contracts   INTEGER NOT NULL,
            median_days REAL NOT NULL,
            p90_days    REAL NOT NULL,
            PRIMARY KEY (period, rep, label)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS {p}reports (
            name        TEXT PRIMARY KEY,
            position    INTEGER NOT NULL,
            policy      TEXT NOT NULL,
            computed_at INTEGER NOT NULL,
            body        TEXT NOT NULL
        ) WITHOUT ROWID;"
    )
}

/// Recomputes the days-to-close spreads of `groups` from their contracts (read through the
/// contracts index, one period of one rep each); a group left without contracts is deleted.
fn write_close_spreads(
    tx: &Transaction<'_>,
    p: &str,
    groups: &HashMap<aggregates::CloseGroup, DateTime<Utc>>,
) -> rusqlite::Result<()> {
    let mut closes = tx.prepare_cached(&format!(
        "SELECT close_seconds FROM {p}activity \
         WHERE event_type = 'ContractSigned' AND applied = 1 AND owner_rep = ?1 \
         AND occurred_at >= ?2 AND occurred_at < ?3 AND close_seconds IS NOT NULL"
    ))?;
    for ((period, rep, label), inside) in groups {
        let (start, end) = period.bounds(*inside);
        let seconds = closes
            .query_map(params![rep, micros(start), micros(end)], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        put_close_spread(tx, p, (period.as_str(), rep, label), seconds)?;
    }
    Ok(())
}

/// Stores one group's spread (or deletes the group when it has no contracts).
fn put_close_spread(
    tx: &Transaction<'_>,
    p: &str,
    (period, rep, label): (&str, &str, &str),
    close_seconds: Vec<i64>,
) -> rusqlite::Result<()> {
    let spread = aggregates::close_spread(close_seconds);
    match (spread.median, spread.p90) {
        (Some(median), Some(p90)) => {
            tx.prepare_cached(&format!(
                "INSERT INTO {p}close_spreads \
                 (period, rep, label, contracts, median_days, p90_days) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (period, rep, label) DO UPDATE SET \
                 contracts = excluded.contracts, median_days = excluded.median_days, \
                 p90_days = excluded.p90_days"
            ))?
            .execute(params![
                period,
                rep,
                label,
                spread.count as i64,
                median,
                p90
            ])?;
        }
        _ => {
            tx.prepare_cached(&format!(
                "DELETE FROM {p}close_spreads WHERE period = ?1 AND rep = ?2 AND label = ?3"
            ))?
            .execute(params![period, rep, label])?;
        }
    }
    Ok(())
}

/// Recomputes every days-to-close spread under prefix `p` from all its contracts, in one pass.
fn rewrite_all_close_spreads(tx: &Transaction<'_>, p: &str) -> Result<(), LoadError> {
    tx.execute(&format!("DELETE FROM {p}close_spreads"), [])?;
    let r = Reader { table: "activity" };
    let mut stmt = tx.prepare(&format!(
        "SELECT owner_rep, occurred_at, close_seconds FROM {p}activity \
         WHERE event_type = 'ContractSigned' AND applied = 1 AND close_seconds IS NOT NULL"
    ))?;
    let mut groups: BTreeMap<(&'static str, String, String), Vec<i64>> = BTreeMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let rep: String = row.get(0)?;
        let at = r.time("occurred_at", row.get(1)?)?;
        let seconds: i64 = row.get(2)?;
        for period in aggregates::PERIODS {
            groups
                .entry((period.as_str(), rep.clone(), period.label(at)))
                .or_default()
                .push(seconds);
        }
    }
    for ((period, rep, label), seconds) in groups {
        put_close_spread(tx, p, (period, &rep, &label), seconds)?;
    }
    Ok(())
}

/// The secondary indexes the queries need (every customer table is already keyed by customer).
fn indexes(p: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {p}activity_contracts \
         ON {p}activity (event_type, applied, owner_rep, occurred_at, close_seconds);"
    )
}

/// Adds summed counter changes to the aggregates; a counter back to 0 is deleted.
fn write_deltas(tx: &Transaction<'_>, p: &str, deltas: &Deltas) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {p}aggregates (view, grp, key, metric, value) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (view, grp, key, metric) DO UPDATE SET value = value + excluded.value \
         RETURNING value"
    ))?;
    let mut delete = tx.prepare_cached(&format!(
        "DELETE FROM {p}aggregates WHERE view = ?1 AND grp = ?2 AND key = ?3 AND metric = ?4"
    ))?;
    for ((view, grp, key, metric), v) in &deltas.counts {
        if *v == 0 {
            continue;
        }
        let now: i64 = upsert.query_row(params![view, grp, key, metric, v], |r| r.get(0))?;
        if now == 0 {
            delete.execute(params![view, grp, key, metric])?;
        }
    }
    Ok(())
}

/// Splits a model's rows by customer.
fn split_by_customer(m: ReadModel) -> BTreeMap<String, CustomerRows> {
    let mut out: BTreeMap<String, CustomerRows> = BTreeMap::new();
    for c in m.customers {
        let id = c.customer_id.clone();
        out.entry(id).or_default().customer = Some(c);
    }
    for v in m.values {
        out.entry(v.customer_id.clone()).or_default().values.push(v);
    }
    for d in m.deals {
        out.entry(d.customer_id.clone()).or_default().deals.push(d);
    }
    for s in m.stays {
        out.entry(s.customer_id.clone()).or_default().stays.push(s);
    }
    for a in m.activities {
        out.entry(a.customer_id.clone())
            .or_default()
            .activities
            .push(a);
    }
    for f in m.followups {
        out.entry(f.customer_id.clone())
            .or_default()
            .followups
            .push(f);
    }
    out
}

/// Writes one customer's rows; `replace` deletes its earlier rows first (not needed for a
/// customer that has none, as in a rebuild: six lookups per customer saved).
fn write_customer(
    tx: &Transaction<'_>,
    p: &str,
    customer: &str,
    rows: &CustomerRows,
    replace: bool,
) -> rusqlite::Result<()> {
    if replace {
        for t in CUSTOMER_TABLES {
            tx.prepare_cached(&format!("DELETE FROM {p}{t} WHERE customer_id = ?1"))?
                .execute([customer])?;
        }
    }
    if let Some(c) = &rows.customer {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}customers VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))?
        .execute(params![
            c.customer_id,
            c.company,
            c.state.as_str(),
            c.owner_rep,
            c.current_deal_id,
            c.current_stage.map(|s| s.as_str()),
            c.current_stage_since.map(micros),
            micros(c.first_seen_at),
            micros(c.last_interaction_at),
            c.next_followup_due.map(|d| d.to_string()),
            c.dormant_after.map(micros),
            c.open_deals,
            c.won_deals,
            c.lost_deals,
            c.reengagements,
            c.event_count,
            c.last_position as i64,
        ])?;
    }
    for v in &rows.values {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}customer_values VALUES (?1, ?2, ?3, ?4, ?5)"
        ))?
        .execute(params![
            v.customer_id,
            v.currency,
            v.contracts_minor,
            v.contract_count,
            v.repeat_orders_minor
        ])?;
    }
    for d in &rows.deals {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}deals VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ))?
        .execute(params![
            d.customer_id,
            d.deal_id,
            d.source.as_str(),
            micros(d.opened_at),
            d.owner_at_open,
            d.status.as_str(),
            d.stage.as_str(),
            micros(d.stage_since),
            micros(d.last_activity_at),
            d.won_at.map(micros),
            d.won_value_minor,
            d.won_currency,
            d.won_owner,
            d.lost_at.map(micros),
            d.lost_reason.map(|r| r.as_str()),
            d.reopen_count,
        ])?;
    }
    for s in &rows.stays {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}stage_stays VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?
        .execute(params![
            s.customer_id,
            s.deal_id,
            s.seq,
            s.stage.as_str(),
            micros(s.entered_at),
            s.entry.as_str(),
            s.from_stage.map(|x| x.as_str()),
            s.exited_at.map(micros),
            s.exit.map(|x| x.as_str()),
            s.to_stage.map(|x| x.as_str()),
            s.lost_reason.map(|r| r.as_str()),
        ])?;
    }
    for a in &rows.activities {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}activity VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?
        .execute(params![
            a.customer_id,
            a.event_id,
            a.position as i64,
            micros(a.occurred_at),
            a.event_type,
            a.deal_id,
            a.performer_rep,
            a.owner_rep,
            a.value_minor,
            a.currency,
            a.close_seconds,
            a.from_rep,
            a.to_rep,
            a.applied,
        ])?;
    }
    for f in &rows.followups {
        tx.prepare_cached(&format!(
            "INSERT INTO {p}followups VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))?
        .execute(params![
            f.customer_id,
            f.event_id,
            f.deal_id,
            f.due_on.to_string(),
            f.owner_rep,
            f.fulfilled_at.map(micros),
        ])?;
    }
    Ok(())
}

fn read_checkpoint(conn: &Connection, p: &str) -> rusqlite::Result<Checkpoint> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .query_row(
            &format!(
                "SELECT min(position), min(log_time) FROM {p}checkpoints HAVING count(*) = {}",
                PROJECTIONS.len()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (position, log_time) = row.unwrap_or((None, None));
    Ok(Checkpoint {
        position: position.map(|p| p as u64),
        log_time: log_time.and_then(DateTime::from_timestamp_micros),
    })
}

fn read_reps_inputs(
    conn: &Connection,
    period: super::time::Period,
    rep: Option<&str>,
    now: Option<DateTime<Utc>>,
) -> Result<aggregates::RepsInputs, LoadError> {
    let mut out = aggregates::RepsInputs::default();
    let view = aggregates::reps_view(period);
    let rep_filter = if rep.is_some() { " AND grp = ?2" } else { "" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT grp, key, metric, value FROM {LIVE}aggregates WHERE view = ?1{rep_filter}"
    ))?;
    let args: Vec<&str> = std::iter::once(view.as_str()).chain(rep).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(row) = rows.next()? {
        out.counters
            .push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
    }
    if let Some(now) = now {
        let r = Reader {
            table: "aggregates",
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT grp, key, value FROM {LIVE}aggregates WHERE view = ?1 AND grp < ?2"
        ))?;
        let mut rows = stmt.query(params![
            aggregates::DUE_VIEW,
            now.date_naive().format("%Y-%m-%d").to_string()
        ])?;
        while let Some(row) = rows.next()? {
            // The report keeps only the rep asked for.
            out.open_due
                .push((r.date("grp", row.get(0)?)?, row.get(1)?, row.get(2)?));
        }
    }
    let rep_filter = if rep.is_some() { " AND rep = ?2" } else { "" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT rep, label, contracts, median_days, p90_days FROM {LIVE}close_spreads \
         WHERE period = ?1{rep_filter}"
    ))?;
    let args: Vec<&str> = std::iter::once(period.as_str()).chain(rep).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(2)?;
        out.close_spreads.push((
            row.get(0)?,
            row.get(1)?,
            Spread {
                count: count as u64,
                median: Some(row.get(3)?),
                p90: Some(row.get(4)?),
            },
        ));
    }
    Ok(out)
}

enum LoadError {
    Sqlite(rusqlite::Error),
    Corrupt(StorageError),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> Self {
        LoadError::Sqlite(e)
    }
}

/// Reads typed values out of rows, turning bad stored values into [`StorageError::Corrupt`].
struct Reader<'a> {
    table: &'a str,
}

impl Reader<'_> {
    fn corrupt(&self, column: &'static str, value: impl ToString) -> LoadError {
        LoadError::Corrupt(StorageError::Corrupt {
            table: self.table.to_string(),
            column,
            value: value.to_string(),
        })
    }
    fn time(&self, column: &'static str, v: i64) -> Result<DateTime<Utc>, LoadError> {
        DateTime::from_timestamp_micros(v).ok_or_else(|| self.corrupt(column, v))
    }
    fn opt_time(
        &self,
        column: &'static str,
        v: Option<i64>,
    ) -> Result<Option<DateTime<Utc>>, LoadError> {
        v.map(|v| self.time(column, v)).transpose()
    }
    fn en<T: DeserializeOwned>(&self, column: &'static str, v: String) -> Result<T, LoadError> {
        use serde::de::IntoDeserializer;
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            v.as_str().into_deserializer();
        T::deserialize(de).map_err(|_| self.corrupt(column, v))
    }
    fn opt_en<T: DeserializeOwned>(
        &self,
        column: &'static str,
        v: Option<String>,
    ) -> Result<Option<T>, LoadError> {
        v.map(|v| self.en(column, v)).transpose()
    }
    fn date(&self, column: &'static str, v: String) -> Result<NaiveDate, LoadError> {
        NaiveDate::parse_from_str(&v, "%Y-%m-%d").map_err(|_| self.corrupt(column, v))
    }
}

/// Loads the rows under `p`, all of them or one customer's (by its primary-key prefix).
fn load_model(conn: &Connection, p: &str, customer: Option<&str>) -> Result<ReadModel, LoadError> {
    load_tables(conn, p, customer, &CUSTOMER_TABLES)
}

/// Runs `sql` with `args` and hands each row to `f`; does nothing for a table not asked for.
fn each_row(
    conn: &Connection,
    sql: &str,
    args: &[&str],
    wanted: bool,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    if !wanted {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(row) = rows.next()? {
        f(row)?;
    }
    Ok(())
}

/// A `deals` row (`SELECT *`).
fn deal_from_row(r: &Reader<'_>, row: &rusqlite::Row<'_>) -> Result<DealRow, LoadError> {
    Ok(DealRow {
        customer_id: row.get(0)?,
        deal_id: row.get(1)?,
        source: r.en("source", row.get(2)?)?,
        opened_at: r.time("opened_at", row.get(3)?)?,
        owner_at_open: row.get(4)?,
        status: r.en("status", row.get(5)?)?,
        stage: r.en("stage", row.get(6)?)?,
        stage_since: r.time("stage_since", row.get(7)?)?,
        last_activity_at: r.time("last_activity_at", row.get(8)?)?,
        won_at: r.opt_time("won_at", row.get(9)?)?,
        won_value_minor: row.get(10)?,
        won_currency: row.get(11)?,
        won_owner: row.get(12)?,
        lost_at: r.opt_time("lost_at", row.get(13)?)?,
        lost_reason: r.opt_en("lost_reason", row.get(14)?)?,
        reopen_count: row.get(15)?,
    })
}

/// A `stage_stays` row (`SELECT *`).
fn stay_from_row(r: &Reader<'_>, row: &rusqlite::Row<'_>) -> Result<StageStayRow, LoadError> {
    Ok(StageStayRow {
        customer_id: row.get(0)?,
        deal_id: row.get(1)?,
        seq: row.get(2)?,
        stage: r.en("stage", row.get(3)?)?,
        entered_at: r.time("entered_at", row.get(4)?)?,
        entry: r.en("entry", row.get(5)?)?,
        from_stage: r.opt_en("from_stage", row.get(6)?)?,
        exited_at: r.opt_time("exited_at", row.get(7)?)?,
        exit: r.opt_en("exit", row.get(8)?)?,
        to_stage: r.opt_en("to_stage", row.get(9)?)?,
        lost_reason: r.opt_en("lost_reason", row.get(10)?)?,
    })
}

/// Hands every deal under prefix `p`, with its stage stays in order, to `f`, one deal at a time:
/// both tables are read in key order side by side, so memory holds one deal.
fn each_deal_with_stays(
    conn: &Connection,
    p: &str,
    mut f: impl FnMut(DealRow, Vec<StageStayRow>),
) -> Result<(), LoadError> {
    let deals_reader = Reader { table: "deals" };
    let stays_reader = Reader {
        table: "stage_stays",
    };
    let mut deals = conn.prepare(&format!(
        "SELECT * FROM {p}deals ORDER BY customer_id, deal_id"
    ))?;
    let mut stays = conn.prepare(&format!(
        "SELECT * FROM {p}stage_stays ORDER BY customer_id, deal_id, seq"
    ))?;
    let mut deal_rows = deals.query([])?;
    let mut stay_rows = stays.query([])?;
    let mut next_stay = match stay_rows.next()? {
        Some(row) => Some(stay_from_row(&stays_reader, row)?),
        None => None,
    };
    while let Some(row) = deal_rows.next()? {
        let deal = deal_from_row(&deals_reader, row)?;
        let key = (deal.customer_id.as_str(), deal.deal_id.as_str());
        let mut own = Vec::new();
        while let Some(stay) = next_stay.take() {
            let stay_key = (stay.customer_id.as_str(), stay.deal_id.as_str());
            if stay_key > key {
                next_stay = Some(stay);
                break;
            }
            // A stay of no deal (a smaller key) is never written by the runner; it is skipped.
            if stay_key == key {
                own.push(stay);
            }
            next_stay = match stay_rows.next()? {
                Some(row) => Some(stay_from_row(&stays_reader, row)?),
                None => None,
            };
        }
        f(deal, own);
    }
    Ok(())
}

/// Loads the rows of the tables named in `tables` (others stay empty).
fn load_tables(
    conn: &Connection,
    p: &str,
    customer: Option<&str>,
    tables: &[&str],
) -> Result<ReadModel, LoadError> {
    let filter = if customer.is_some() {
        " WHERE customer_id = ?1"
    } else {
        ""
    };
    let args: Vec<&str> = customer.into_iter().collect();
    let (position, log_time): (Option<i64>, Option<i64>) = conn
        .query_row(
            &format!(
                "SELECT min(position), min(log_time) FROM {p}checkpoints HAVING count(*) = {}",
                PROJECTIONS.len()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((None, None));
    let mut m = ReadModel {
        position: position.map(|p| p as u64),
        log_time: log_time.and_then(DateTime::from_timestamp_micros),
        ..ReadModel::default()
    };

    let r = Reader { table: "customers" };
    each_row(
        conn,
        &format!("SELECT * FROM {p}customers{filter}"),
        &args,
        tables.contains(&"customers"),
        |row| {
            m.customers.push(CustomerRow {
                customer_id: row.get(0)?,
                company: row.get(1)?,
                state: r.en("state", row.get(2)?)?,
                owner_rep: row.get(3)?,
                current_deal_id: row.get(4)?,
                current_stage: r.opt_en("current_stage", row.get(5)?)?,
                current_stage_since: r.opt_time("current_stage_since", row.get(6)?)?,
                first_seen_at: r.time("first_seen_at", row.get(7)?)?,
                last_interaction_at: r.time("last_interaction_at", row.get(8)?)?,
                next_followup_due: row
                    .get::<_, Option<String>>(9)?
                    .map(|d| r.date("next_followup_due", d))
                    .transpose()?,
                dormant_after: r.opt_time("dormant_after", row.get(10)?)?,
                open_deals: row.get(11)?,
                won_deals: row.get(12)?,
                lost_deals: row.get(13)?,
                reengagements: row.get(14)?,
                event_count: row.get(15)?,
                last_position: row.get::<_, i64>(16)? as u64,
            });
            Ok(())
        },
    )?;

    each_row(
        conn,
        &format!("SELECT * FROM {p}customer_values{filter}"),
        &args,
        tables.contains(&"customer_values"),
        |row| {
            m.values.push(CustomerValueRow {
                customer_id: row.get(0)?,
                currency: row.get(1)?,
                contracts_minor: row.get(2)?,
                contract_count: row.get(3)?,
                repeat_orders_minor: row.get(4)?,
            });
            Ok(())
        },
    )?;

    let r = Reader { table: "deals" };
    each_row(
        conn,
        &format!("SELECT * FROM {p}deals{filter}"),
        &args,
        tables.contains(&"deals"),
        |row| {
            m.deals.push(deal_from_row(&r, row)?);
            Ok(())
        },
    )?;

    let r = Reader {
        table: "stage_stays",
    };
    each_row(
        conn,
        &format!("SELECT * FROM {p}stage_stays{filter}"),
        &args,
        tables.contains(&"stage_stays"),
        |row| {
            m.stays.push(stay_from_row(&r, row)?);
            Ok(())
        },
    )?;

    let r = Reader { table: "activity" };
    each_row(
        conn,
        &format!("SELECT * FROM {p}activity{filter}"),
        &args,
        tables.contains(&"activity"),
        |row| {
            m.activities.push(ActivityRow {
                customer_id: row.get(0)?,
                event_id: row.get(1)?,
                position: row.get::<_, i64>(2)? as u64,
                occurred_at: r.time("occurred_at", row.get(3)?)?,
                event_type: row.get(4)?,
                deal_id: row.get(5)?,
                performer_rep: row.get(6)?,
                owner_rep: row.get(7)?,
                value_minor: row.get(8)?,
                currency: row.get(9)?,
                close_seconds: row.get(10)?,
                from_rep: row.get(11)?,
                to_rep: row.get(12)?,
                applied: row.get(13)?,
            });
            Ok(())
        },
    )?;

    let r = Reader { table: "followups" };
    each_row(
        conn,
        &format!("SELECT * FROM {p}followups{filter}"),
        &args,
        tables.contains(&"followups"),
        |row| {
            m.followups.push(FollowUpRow {
                customer_id: row.get(0)?,
                event_id: row.get(1)?,
                deal_id: row.get(2)?,
                due_on: r.date("due_on", row.get(3)?)?,
                owner_rep: row.get(4)?,
                fulfilled_at: r.opt_time("fulfilled_at", row.get(5)?)?,
            });
            Ok(())
        },
    )?;
    m.normalize();
    Ok(m)
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
            read_models_beside(Path::new("ledger")),
            Path::new("ledger.read-models.db")
        );
    }
}

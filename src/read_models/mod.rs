//! The read models' port: what the projection runner writes and the queries read, whatever keeps
//! the rows. [`ReadModels`] is the trait; [`sqlite::SqliteReadModels`] keeps them in a SQLite file
//! of their own (the default), [`memory::MemoryReadModels`] in memory (a model to check the
//! SQLite one against, as redb checks its B-tree against a `BTreeMap`, and a backend for tests
//! and embedding programs). `tests/read_model_contract.rs` runs one suite against both.
//!
//! The rows are those of `projections::model`; their exact columns are documented in
//! `projections/README.md`. Every batch of rows is written with the checkpoint it reaches in one
//! atomic step, so a crash at any moment neither skips nor double-counts an event. A rebuild
//! writes a second, staging set of tables and swaps it in atomically.

pub mod memory;
pub mod sqlite;

use crate::projections::aggregates::{Deltas, RepsInputs};
use crate::projections::model::{CustomerRows, DealRow, ReadModel, StageStayRow};
use crate::projections::time::Period;
use crate::projections::{activity, conversion, lifecycle};
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// The projections whose checkpoints are kept (they move together).
pub const PROJECTIONS: [&str; 3] = [lifecycle::NAME, conversion::NAME, activity::NAME];

/// Which set of tables an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tables {
    /// The tables the reports read.
    Live,
    /// The tables a rebuild fills before it swaps them in.
    Staging,
}

/// Where a set of read models stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Position of the last event applied (`None`: nothing applied yet).
    pub position: Option<u64>,
    /// The id of the event at `position`: a store restored from an older backup, or re-created,
    /// may hold another event there, and then these read models are not of it.
    pub event_id: Option<uuid::Uuid>,
    /// The latest `occurred_at` applied: the default clock of reports.
    pub log_time: Option<DateTime<Utc>>,
}

/// What a set of read models was derived from and how: recorded when the runner starts to fill
/// them, checked before they are read or added to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The identity of the store they were folded from (`EventStore::identity`).
    pub store_id: Option<String>,
    /// The projections' version and the policy's fingerprint (`projections::derivation`).
    pub derivation: String,
}

/// A report the runner keeps computed: its name, the log position it reflects, and its body
/// (the report's JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptReport {
    pub name: String,
    pub position: u64,
    pub body: String,
}

/// Why the read models could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("read models in {path}: SQLite: {source}{}", damage_hint(source))]
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
    #[error("the read models' {what} lock was poisoned by a thread that panicked; reopen them")]
    Poisoned { what: &'static str },
    #[error(
        "{path} is not a pipeline-ledger read-models file ({what}); it was left untouched; \
         name another file with --read-models"
    )]
    NotReadModels { path: PathBuf, what: &'static str },
    #[error("another rebuild of the read models in {path} is running; wait for it to finish")]
    RebuildRunning { path: PathBuf },
    #[error("cannot set the damaged read models {path} aside: {source}")]
    SetAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the read models' file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to do about a damaged file, for the message of a SQLite error.
fn damage_hint(source: &rusqlite::Error) -> &'static str {
    if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) {
        "; the read models are damaged: run `pipeline-ledger rebuild`, which moves them aside and rebuilds them from the log"
    } else {
        ""
    }
}

impl ReadModelError {
    /// Whether the read models themselves are damaged (their file is corrupt): a rebuild sets
    /// them aside and starts afresh; nothing else can use them.
    pub fn is_damage(&self) -> bool {
        match self {
            ReadModelError::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt)
            }
            _ => false,
        }
    }
}

/// The read models, as the runner and the queries use them. Implementations are blocking (the
/// query layer calls them off the async threads) and shared between threads: the runner's
/// writes and any number of reads may run at once, and a read sees whole batches only.
pub trait ReadModels: Send + Sync {
    /// Where the tables stand: the lowest of the projections' checkpoints (they move
    /// together; the lowest is the safe one to resume from).
    fn checkpoint(&self, tables: Tables) -> Result<Checkpoint, ReadModelError>;

    /// What the tables were derived from; `None` if never bound (empty, or written by a
    /// version that did not record it).
    fn binding(&self, tables: Tables) -> Result<Option<Binding>, ReadModelError>;

    /// Records what the tables are derived from (before the first batch; a rebuild binds its
    /// staging tables, which are swapped in with their binding).
    fn bind(&self, tables: Tables, binding: &Binding) -> Result<(), ReadModelError>;

    /// Replaces the rows of the changed customers, updates the counters and the days-to-close
    /// spreads they contribute to (the spreads only in the live tables: a rebuild computes them
    /// once, when it swaps its tables in), and stores the checkpoint they reach, atomically.
    /// `expected` is the checkpoint the writer started from: if the stored one differs (another
    /// writer moved it), nothing is written and `Ok(false)` is returned.
    fn write_batch(
        &self,
        tables: Tables,
        expected: Option<u64>,
        changes: &[(crate::domain::CustomerId, CustomerRows)],
        reached: Checkpoint,
    ) -> Result<bool, ReadModelError>;

    /// [`write_batch`](Self::write_batch) into the staging tables, for customers that have no
    /// rows there yet (a rebuild in stream order writes each customer once): their old rows are
    /// not looked for, and their contributions to the counters are added to `pending` instead
    /// of written, for [`write_counters`](Self::write_counters) to write once at the end.
    fn write_new_customers(
        &self,
        expected: Option<u64>,
        changes: &[(crate::domain::CustomerId, CustomerRows)],
        reached: Checkpoint,
        pending: &mut Deltas,
    ) -> Result<bool, ReadModelError>;

    /// Adds counter changes gathered by [`write_new_customers`](Self::write_new_customers) to
    /// the staging tables.
    fn write_counters(&self, deltas: &Deltas) -> Result<(), ReadModelError>;

    /// Empties the staging tables (a rebuild interrupted earlier left some) and creates them.
    /// Refused while another rebuild of the same read models runs.
    fn start_staging(&self) -> Result<(), ReadModelError>;

    /// Moves damaged read models out of the way (renamed, never deleted), so that a rebuild
    /// starts afresh; returns where they went, `None` if there was nothing to move. Only read
    /// models that are recognisably this ledger's are moved.
    fn set_aside(&self) -> Result<Option<PathBuf>, ReadModelError>;

    /// Computes the staging tables' days-to-close spreads and replaces the live tables by them,
    /// atomically: a reader sees either the old read models or the new ones, never a mix.
    fn swap_in_staging(&self) -> Result<(), ReadModelError>;

    /// The whole live read model, read consistently; `None` if never projected.
    fn load_live(&self) -> Result<Option<ReadModel>, ReadModelError>;

    /// One customer's live rows and the checkpoint they reflect; `None` if never projected.
    fn load_customer_live(&self, customer_id: &str) -> Result<Option<ReadModel>, ReadModelError>;

    /// What the rep report needs from the live tables, read consistently: the period's counters
    /// (of `rep` only, if given), the follow-ups due before the report clock's day and not met,
    /// and the days-to-close spreads. `clock` gives the report clock from the checkpoint.
    /// `None` if never projected.
    fn reps_inputs_live(
        &self,
        period: Period,
        rep: Option<&str>,
        clock: &dyn Fn(&Checkpoint) -> Option<DateTime<Utc>>,
    ) -> Result<Option<(Checkpoint, RepsInputs)>, ReadModelError>;

    /// Hands every live deal with its stage stays (in order), one deal at a time and in key
    /// order, to `each`, with the checkpoint they reflect; all read consistently, memory holding
    /// one deal. Returns that checkpoint; `None` (and `each` never called) if never projected.
    fn fold_live_deals(
        &self,
        each: &mut dyn FnMut(&Checkpoint, DealRow, Vec<StageStayRow>),
    ) -> Result<Option<Checkpoint>, ReadModelError>;

    /// Stores reports computed under `policy` (its JSON), replacing older ones of the same
    /// names; a stored report of a later position is kept instead.
    fn write_reports(&self, policy: &str, reports: &[KeptReport]) -> Result<(), ReadModelError>;

    /// A stored report's position and body, if one was computed under `policy` (its JSON).
    fn read_report(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<Option<(u64, String)>, ReadModelError>;
}

//! Every read-model table's columns, named once. A table is declared with [`table!`]: its row
//! type, its name and its columns in order, each with the field it stores. From that one
//! declaration come the `CREATE TABLE`, the `INSERT`, the `SELECT` and the row decoding, so the
//! four can no longer drift apart by position. `projections/README.md` documents the same
//! columns; a test checks it lists them in this order.

use super::{LIVE, STAGING};
use crate::domain::{LeadSource, LostReason, Stage};
use crate::projections::model::{
    ActivityRow, CustomerRow, CustomerValueRow, DealRow, DealStatus, EntryKind, ExitKind,
    FollowUpRow, LifecycleState, StageStayRow,
};
use crate::read_models::ReadModelError;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use std::borrow::Cow;
use std::sync::OnceLock;

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    /// SQLite's type affinity (`TEXT`, `INTEGER`, `REAL`).
    pub affinity: &'static str,
    pub nullable: bool,
}

/// A table's layout.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// The name without the `rm_`/`rm_new_` prefix.
    pub name: &'static str,
    pub columns: &'static [Column],
    pub primary_key: &'static [&'static str],
}

impl TableDef {
    /// `CREATE TABLE IF NOT EXISTS` for the table under `prefix` (clustered on its key).
    pub fn ddl(&self, prefix: &str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                format!("    {} {}{null}", c.name, c.affinity)
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {prefix}{} (\n{},\n    PRIMARY KEY ({})\n) WITHOUT ROWID;\n",
            self.name,
            columns.join(",\n"),
            self.primary_key.join(", ")
        )
    }

    /// The column names, comma-separated, in order.
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        names.join(", ")
    }

    /// `INSERT` of one row, every column bound in order.
    pub fn insert_sql(&self, prefix: &str) -> String {
        let slots: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {prefix}{} ({}) VALUES ({})",
            self.name,
            self.column_list(),
            slots.join(", ")
        )
    }

    /// `DELETE` of one row by its primary key, the key's columns bound in order as `?1…?n`.
    pub fn delete_by_key_sql(&self, prefix: &str) -> String {
        let matches: Vec<String> = self
            .primary_key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ?{}", i + 1))
            .collect();
        format!(
            "DELETE FROM {prefix}{} WHERE {}",
            self.name,
            matches.join(" AND ")
        )
    }

    /// `SELECT` of every column in order, followed by `rest` (a `WHERE`/`ORDER BY` clause).
    pub fn select_sql(&self, prefix: &str, rest: &str) -> String {
        format!(
            "SELECT {} FROM {prefix}{}{rest}",
            self.column_list(),
            self.name
        )
    }
}

/// Why a stored row could not be read: SQLite failed, or a column holds a value this version
/// cannot decode.
#[derive(Debug)]
pub enum LoadError {
    Sqlite(rusqlite::Error),
    Corrupt(ReadModelError),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> Self {
        LoadError::Sqlite(e)
    }
}

/// The error for a value of `table.column` this version cannot read.
pub fn corrupt(table: &str, column: &'static str, value: impl ToString) -> LoadError {
    LoadError::Corrupt(ReadModelError::Corrupt {
        table: table.to_string(),
        column,
        value: value.to_string(),
    })
}

/// A Rust value kept in one column: how it is stored and read back.
pub trait SqlColumn: Sized {
    const AFFINITY: &'static str;
    const NULLABLE: bool = false;
    /// The stored form.
    fn to_sql(&self) -> ToSqlOutput<'_>;
    /// Decodes a stored value; `table`/`column` name the place in errors.
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError>;
}

/// Binds a [`SqlColumn`] as a statement parameter.
pub struct Bind<'a, T>(pub &'a T);

impl<T: SqlColumn> rusqlite::ToSql for Bind<'_, T> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.0.to_sql())
    }
}

fn shown(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

impl<T: SqlColumn> SqlColumn for Option<T> {
    const AFFINITY: &'static str = T::AFFINITY;
    const NULLABLE: bool = true;
    fn to_sql(&self) -> ToSqlOutput<'_> {
        match self {
            Some(v) => v.to_sql(),
            None => ToSqlOutput::Owned(Value::Null),
        }
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v, table, column).map(Some),
        }
    }
}

impl SqlColumn for String {
    const AFFINITY: &'static str = "TEXT";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(self.as_bytes()))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Text(t) => {
                String::from_utf8(t.to_vec()).map_err(|_| corrupt(table, column, shown(v)))
            }
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

impl SqlColumn for i64 {
    const AFFINITY: &'static str = "INTEGER";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(*self))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

/// Counters are stored as SQLite's signed 64-bit integers; a stored value out of the type's
/// range is a damaged file, not a wrapped number.
impl SqlColumn for u32 {
    const AFFINITY: &'static str = "INTEGER";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(i64::from(*self)))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Integer(i) => u32::try_from(i).map_err(|_| corrupt(table, column, i)),
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

/// Log positions and counts are stored in SQLite's 64-bit integers bit for bit (a position
/// above `i64::MAX`, which KurrentDB's commit positions could in principle reach, round-trips).
impl SqlColumn for u64 {
    const AFFINITY: &'static str = "INTEGER";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(*self as i64))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Integer(i) => Ok(i as u64),
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

impl SqlColumn for bool {
    const AFFINITY: &'static str = "INTEGER";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(i64::from(*self)))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Integer(0) => Ok(false),
            ValueRef::Integer(1) => Ok(true),
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

impl SqlColumn for f64 {
    const AFFINITY: &'static str = "REAL";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Real(*self))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Real(r) => Ok(r),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

/// Times are stored as microseconds since the Unix epoch (what both event times keep).
impl SqlColumn for DateTime<Utc> {
    const AFFINITY: &'static str = "INTEGER";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Integer(self.timestamp_micros()))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        match v {
            ValueRef::Integer(i) => {
                DateTime::from_timestamp_micros(i).ok_or_else(|| corrupt(table, column, i))
            }
            other => Err(corrupt(table, column, shown(other))),
        }
    }
}

/// Dates are stored as `YYYY-MM-DD` text, so that they compare in date order.
impl SqlColumn for NaiveDate {
    const AFFINITY: &'static str = "TEXT";
    fn to_sql(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(Value::Text(self.format("%Y-%m-%d").to_string()))
    }
    fn from_sql(v: ValueRef<'_>, table: &str, column: &'static str) -> Result<Self, LoadError> {
        let text = String::from_sql(v, table, column)?;
        NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| corrupt(table, column, text))
    }
}

/// Enumerations are stored by their published names (`as_str`), read back with serde (the
/// names are their serde names).
macro_rules! text_enum_column {
    ($($t:ty),*) => {$(
        impl SqlColumn for $t {
            const AFFINITY: &'static str = "TEXT";
            fn to_sql(&self) -> ToSqlOutput<'_> {
                ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes()))
            }
            fn from_sql(
                v: ValueRef<'_>,
                table: &str,
                column: &'static str,
            ) -> Result<Self, LoadError> {
                use serde::Deserialize;
                use serde::de::IntoDeserializer;
                let text = String::from_sql(v, table, column)?;
                let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                    text.as_str().into_deserializer();
                <$t>::deserialize(de).map_err(|_| corrupt(table, column, text))
            }
        }
    )*};
}
text_enum_column!(
    Stage,
    LeadSource,
    LostReason,
    DealStatus,
    EntryKind,
    ExitKind,
    LifecycleState
);

/// One statement's text for a table under the live and the staging prefix, formatted once per
/// process: the projection runner writes rows one statement at a time, and formatting the text
/// again for every row (to look up the prepared statement) was a measurable share of a live
/// batch.
pub struct StatementText {
    live: OnceLock<String>,
    staging: OnceLock<String>,
}

impl StatementText {
    /// Not yet formatted.
    pub const fn new() -> Self {
        StatementText {
            live: OnceLock::new(),
            staging: OnceLock::new(),
        }
    }

    /// The text under `prefix`, made by `make` the first time (and every time for a prefix
    /// other than [`LIVE`] and [`STAGING`]).
    pub fn get(
        &'static self,
        prefix: &str,
        make: impl FnOnce(&str) -> String,
    ) -> Cow<'static, str> {
        let slot = match prefix {
            LIVE => &self.live,
            STAGING => &self.staging,
            _ => return Cow::Owned(make(prefix)),
        };
        Cow::Borrowed(slot.get_or_init(|| make(prefix)))
    }
}

impl Default for StatementText {
    fn default() -> Self {
        Self::new()
    }
}

/// A row type kept in one table.
pub trait TableRow: Sized {
    /// The table's layout.
    const TABLE: TableDef;
    /// Runs `stmt` with the row's columns bound in order as `?1…?n` (an `INSERT` from
    /// [`TableDef::insert_sql`], possibly with an `ON CONFLICT` clause).
    fn execute_in(&self, stmt: &mut rusqlite::Statement<'_>) -> rusqlite::Result<usize>;
    /// [`TableDef::insert_sql`] under `prefix`, formatted once.
    fn insert_sql(prefix: &str) -> Cow<'static, str>;
    /// [`TableDef::delete_by_key_sql`] under `prefix`, formatted once.
    fn delete_by_key_sql(prefix: &str) -> Cow<'static, str>;
    /// Inserts the row into the table under `prefix` (a cached statement).
    fn insert(&self, conn: &rusqlite::Connection, prefix: &str) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(&Self::insert_sql(prefix))?;
        self.execute_in(&mut stmt)?;
        Ok(())
    }
    /// Deletes the row with this row's primary key from the table under `prefix`.
    fn delete_by_key(&self, conn: &rusqlite::Connection, prefix: &str) -> rusqlite::Result<()>;
    /// Orders two rows by their primary keys, column by column as the key lists them.
    fn key_cmp(&self, other: &Self) -> std::cmp::Ordering;
    /// Decodes a row selected with [`TableDef::select_sql`].
    fn from_row(row: &rusqlite::Row<'_>) -> Result<Self, LoadError>;
}

/// Declares a table: its row type, name, primary key, and columns in order (`field: Type`, the
/// field of the row it stores; the compiler checks the type against the row's field).
macro_rules! table {
    (
        $(#[$doc:meta])*
        $row:ident as $name:literal, key ($($key:ident),+) {
            $($field:ident: $ty:ty),+ $(,)?
        }
    ) => {
        impl TableRow for $row {
            const TABLE: TableDef = TableDef {
                name: $name,
                columns: &[$(Column {
                    name: stringify!($field),
                    affinity: <$ty as SqlColumn>::AFFINITY,
                    nullable: <$ty as SqlColumn>::NULLABLE,
                }),+],
                primary_key: &[$(stringify!($key)),+],
            };
            fn execute_in(&self, stmt: &mut rusqlite::Statement<'_>) -> rusqlite::Result<usize> {
                stmt.execute(rusqlite::params![$(Bind::<$ty>(&self.$field)),+])
            }
            fn insert_sql(prefix: &str) -> Cow<'static, str> {
                static TEXT: StatementText = StatementText::new();
                TEXT.get(prefix, |p| Self::TABLE.insert_sql(p))
            }
            fn delete_by_key_sql(prefix: &str) -> Cow<'static, str> {
                static TEXT: StatementText = StatementText::new();
                TEXT.get(prefix, |p| Self::TABLE.delete_by_key_sql(p))
            }
            fn delete_by_key(
                &self,
                conn: &rusqlite::Connection,
                prefix: &str,
            ) -> rusqlite::Result<()> {
                let mut stmt = conn.prepare_cached(&Self::delete_by_key_sql(prefix))?;
                stmt.execute(rusqlite::params![$(Bind(&self.$key)),+])?;
                Ok(())
            }
            fn key_cmp(&self, other: &Self) -> std::cmp::Ordering {
                std::cmp::Ordering::Equal$(.then_with(|| self.$key.cmp(&other.$key)))+
            }
            fn from_row(row: &rusqlite::Row<'_>) -> Result<Self, LoadError> {
                let mut index = 0usize;
                let mut next = || {
                    index += 1;
                    index - 1
                };
                Ok($row {
                    $($field: <$ty as SqlColumn>::from_sql(
                        row.get_ref(next())?,
                        $name,
                        stringify!($field),
                    )?),+
                })
            }
        }
    };
}

table!(CustomerRow as "customers", key (customer_id) {
    customer_id: String,
    company: String,
    state: LifecycleState,
    owner_rep: String,
    current_deal_id: Option<String>,
    current_stage: Option<Stage>,
    current_stage_since: Option<DateTime<Utc>>,
    first_seen_at: DateTime<Utc>,
    last_interaction_at: DateTime<Utc>,
    next_followup_due: Option<NaiveDate>,
    dormant_after: Option<DateTime<Utc>>,
    open_deals: u32,
    won_deals: u32,
    lost_deals: u32,
    reengagements: u32,
    event_count: u32,
    last_position: u64,
});

table!(CustomerValueRow as "customer_values", key (customer_id, currency) {
    customer_id: String,
    currency: String,
    contracts_minor: i64,
    contract_count: u32,
    repeat_orders_minor: i64,
});

table!(DealRow as "deals", key (customer_id, deal_id) {
    customer_id: String,
    deal_id: String,
    source: LeadSource,
    opened_at: DateTime<Utc>,
    owner_at_open: String,
    status: DealStatus,
    stage: Stage,
    stage_since: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    won_at: Option<DateTime<Utc>>,
    won_value_minor: Option<i64>,
    won_currency: Option<String>,
    won_owner: Option<String>,
    lost_at: Option<DateTime<Utc>>,
    lost_reason: Option<LostReason>,
    reopen_count: u32,
    qualification_score: Option<u32>,
    qualification_criteria: Option<u32>,
    first_visit_intent: Option<u32>,
});

table!(StageStayRow as "stage_stays", key (customer_id, deal_id, seq) {
    customer_id: String,
    deal_id: String,
    seq: u32,
    stage: Stage,
    entered_at: DateTime<Utc>,
    entry: EntryKind,
    from_stage: Option<Stage>,
    exited_at: Option<DateTime<Utc>>,
    exit: Option<ExitKind>,
    to_stage: Option<Stage>,
    lost_reason: Option<LostReason>,
});

table!(ActivityRow as "activity", key (customer_id, event_id) {
    customer_id: String,
    event_id: String,
    position: u64,
    occurred_at: DateTime<Utc>,
    event_type: String,
    deal_id: Option<String>,
    performer_rep: String,
    owner_rep: String,
    value_minor: Option<i64>,
    currency: Option<String>,
    close_seconds: Option<i64>,
    from_rep: Option<String>,
    to_rep: Option<String>,
    applied: bool,
});

table!(FollowUpRow as "followups", key (customer_id, event_id) {
    customer_id: String,
    event_id: String,
    deal_id: String,
    due_on: NaiveDate,
    owner_rep: String,
    fulfilled_at: Option<DateTime<Utc>>,
});

/// `rm_checkpoints`: where each projection stands.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRow {
    pub projection: String,
    pub position: Option<u64>,
    pub log_time: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

table!(CheckpointRow as "checkpoints", key (projection) {
    projection: String,
    position: Option<u64>,
    log_time: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
});

/// `rm_aggregates`: the counters the rep report reads (see `projections::aggregates`).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub view: String,
    pub grp: String,
    pub key: String,
    pub metric: String,
    pub value: i64,
}

table!(AggregateRow as "aggregates", key (view, grp, key, metric) {
    view: String,
    grp: String,
    key: String,
    metric: String,
    value: i64,
});

/// `rm_close_spreads`: days from lead to contract, per rep and period.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseSpreadRow {
    pub period: String,
    pub rep: String,
    pub label: String,
    pub contracts: u64,
    pub median_days: f64,
    pub p90_days: f64,
}

table!(CloseSpreadRow as "close_spreads", key (period, rep, label) {
    period: String,
    rep: String,
    label: String,
    contracts: u64,
    median_days: f64,
    p90_days: f64,
});

/// `rm_reports`: reports the runner keeps computed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub name: String,
    pub position: u64,
    pub policy: String,
    pub computed_at: DateTime<Utc>,
    pub body: String,
}

table!(ReportRow as "reports", key (name) {
    name: String,
    position: u64,
    policy: String,
    computed_at: DateTime<Utc>,
    body: String,
});

/// `rm_binding`: what the read models were derived from (see `read_models::Binding`), and the
/// id of the event at their checkpoint; one row per key.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRow {
    pub key: String,
    pub value: Option<String>,
}

/// The `rm_binding` keys.
pub const BINDING_STORE_ID: &str = "store_id";
/// See [`BINDING_STORE_ID`].
pub const BINDING_DERIVATION: &str = "derivation";
/// See [`BINDING_STORE_ID`].
pub const BINDING_CHECKPOINT_EVENT: &str = "checkpoint_event_id";

table!(BindingRow as "binding", key (key) {
    key: String,
    value: Option<String>,
});

/// Every table of the read models, in the order they are created and documented.
pub const TABLES: [TableDef; 11] = [
    BindingRow::TABLE,
    CheckpointRow::TABLE,
    CustomerRow::TABLE,
    CustomerValueRow::TABLE,
    DealRow::TABLE,
    StageStayRow::TABLE,
    ActivityRow::TABLE,
    FollowUpRow::TABLE,
    AggregateRow::TABLE,
    CloseSpreadRow::TABLE,
    ReportRow::TABLE,
];

/// The tables holding one customer's rows (`customer_id` first in their primary key).
pub const CUSTOMER_TABLES: [TableDef; 6] = [
    CustomerRow::TABLE,
    CustomerValueRow::TABLE,
    DealRow::TABLE,
    StageStayRow::TABLE,
    ActivityRow::TABLE,
    FollowUpRow::TABLE,
];

/// The whole schema under `prefix`.
pub fn schema(prefix: &str) -> String {
    TABLES.iter().map(|t| t.ddl(prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_keyed_by_its_own_columns() {
        for t in TABLES {
            for key in t.primary_key {
                assert!(
                    t.columns.iter().any(|c| c.name == *key),
                    "{}: key column {key} is not a column",
                    t.name
                );
            }
        }
        for t in CUSTOMER_TABLES {
            assert_eq!(t.primary_key[0], "customer_id", "{}", t.name);
        }
    }

    #[test]
    fn the_schema_creates_every_table() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&schema("rm_")).unwrap();
        for t in TABLES {
            let names: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('rm_{}')",
                    t.name
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let declared: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
            assert_eq!(names, declared, "{}", t.name);
        }
    }

    /// `projections/README.md` documents every table's columns in order (a cell may name
    /// several columns, comma-separated).
    #[test]
    fn the_documented_columns_are_the_declared_ones() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/README.md"),
        )
        .unwrap();
        for t in TABLES {
            let heading = format!("### `rm_{}`", t.name);
            let section = readme
                .split_once(&heading)
                .unwrap_or_else(|| panic!("projections/README.md has no {heading}"))
                .1;
            let section = section.split("\n### ").next().unwrap();
            let documented: Vec<String> = section
                .lines()
                .skip_while(|l| !l.starts_with("| column"))
                .skip(2)
                .take_while(|l| l.starts_with('|'))
                .flat_map(|l| {
                    let cell = l.split('|').nth(1).unwrap_or("");
                    cell.split(',')
                        .map(|c| c.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let declared: Vec<String> = t.columns.iter().map(|c| c.name.to_string()).collect();
            assert_eq!(
                documented, declared,
                "rm_{} in projections/README.md",
                t.name
            );
        }
    }

    #[test]
    fn a_value_this_version_cannot_read_names_its_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&schema("rm_")).unwrap();
        conn.execute(
            "INSERT INTO rm_checkpoints (projection, position, log_time, updated_at) \
             VALUES ('x', 'five', NULL, 0)",
            [],
        )
        .unwrap();
        let err = conn
            .query_row(&CheckpointRow::TABLE.select_sql("rm_", ""), [], |row| {
                Ok(CheckpointRow::from_row(row))
            })
            .unwrap()
            .unwrap_err();
        match err {
            LoadError::Corrupt(e) => assert!(e.to_string().contains("position"), "{e}"),
            LoadError::Sqlite(e) => panic!("{e}"),
        }
    }
}

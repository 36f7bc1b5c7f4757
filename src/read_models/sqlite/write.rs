//! Writing the read models' rows, counters, spreads, checkpoints and kept reports inside a
//! transaction the caller holds.

use super::columns::{
    AggregateRow, BINDING_CHECKPOINT_EVENT, BINDING_DERIVATION, BINDING_STORE_ID, BindingRow,
    CheckpointRow, CloseSpreadRow, LoadError, ReportRow, TableRow,
};
use super::read::{load_model, read_checkpoint};
use crate::domain::EventType;
use crate::projections::aggregates::{self, Deltas};
use crate::projections::model::CustomerRows;
use crate::read_models::{Binding, Checkpoint, KeptReport, PROJECTIONS};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap};

/// Writes changed customers' rows, their counters (unless `pending` gathers them) and
/// spreads (with `keep_spreads`), and the checkpoint they reach. `customers_are_new`: their
/// old rows are not looked for.
pub fn write_rows(
    tx: &Connection,
    p: &str,
    changes: &[(crate::domain::CustomerId, CustomerRows)],
    reached: Checkpoint,
    keep_spreads: bool,
    pending: Option<&mut Deltas>,
) -> Result<(), LoadError> {
    let customers_are_new = pending.is_some();
    let mut own_deltas = Deltas::default();
    let deltas = pending.unwrap_or(&mut own_deltas);
    let mut close_groups = HashMap::new();
    for (customer, rows) in changes {
        let old = if customers_are_new {
            CustomerRows::default()
        } else {
            let stored = load_model(tx, p, Some(customer.as_str()))?;
            let old = stored
                .split_by_customer()
                .into_values()
                .next()
                .unwrap_or_default();
            if keep_spreads {
                aggregates::close_groups(&old, &mut close_groups);
            }
            old
        };
        if customers_are_new {
            deltas.contribute(rows, 1);
        } else {
            // From the rows that differ: see `Deltas::contribute_change`. The in-memory read
            // models keep the whole subtraction and addition, and the contract's property test
            // compares the two.
            deltas.contribute_change(&old, rows);
        }
        if keep_spreads {
            aggregates::close_groups(rows, &mut close_groups);
        }
        write_customer(tx, p, &old, rows)?;
    }
    if !customers_are_new {
        write_deltas(tx, p, deltas)?;
    }
    write_close_spreads(tx, p, &close_groups)?;
    write_checkpoint(tx, p, reached)?;
    Ok(())
}

/// Sets one `rm_binding` key.
pub fn put_binding(
    tx: &Connection,
    p: &str,
    key: &str,
    value: Option<String>,
) -> rusqlite::Result<()> {
    let sql = format!(
        "{} ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        BindingRow::TABLE.insert_sql(p)
    );
    let row = BindingRow {
        key: key.to_string(),
        value,
    };
    let mut stmt = tx.prepare_cached(&sql)?;
    row.execute_in(&mut stmt)?;
    Ok(())
}

/// Records what the tables under `p` are derived from.
pub fn write_binding(tx: &Connection, p: &str, binding: &Binding) -> rusqlite::Result<()> {
    put_binding(tx, p, BINDING_STORE_ID, binding.store_id.clone())?;
    put_binding(tx, p, BINDING_DERIVATION, Some(binding.derivation.clone()))
}

/// Stores `reached` as every projection's checkpoint, with the id of its event.
pub fn write_checkpoint(tx: &Connection, p: &str, reached: Checkpoint) -> rusqlite::Result<()> {
    put_binding(
        tx,
        p,
        BINDING_CHECKPOINT_EVENT,
        reached.event_id.map(|id| id.to_string()),
    )?;
    let now = Utc::now();
    let mut put = tx.prepare_cached(&format!(
        "{} ON CONFLICT (projection) DO UPDATE SET position = excluded.position, \
         log_time = excluded.log_time, updated_at = excluded.updated_at",
        CheckpointRow::TABLE.insert_sql(p)
    ))?;
    for name in PROJECTIONS {
        let row = CheckpointRow {
            projection: name.to_string(),
            position: reached.position,
            log_time: reached.log_time,
            updated_at: now,
        };
        row.execute_in(&mut put)?;
    }
    Ok(())
}

/// Whether the stored checkpoint is still `expected` (no other writer moved it).
pub fn checkpoint_is(tx: &Connection, p: &str, expected: Option<u64>) -> Result<bool, LoadError> {
    Ok(read_checkpoint(tx, p)?.position == expected)
}

/// Writes one customer's rows over its `old` ones (empty for a customer that has none, as in a
/// rebuild): only the rows that differ are deleted and inserted. A customer's next event
/// usually changes a few of its rows (its new activity, one deal, one or two stays), so a live
/// batch no longer rewrites every row of a long history for each event.
fn write_customer(
    tx: &Connection,
    p: &str,
    old: &CustomerRows,
    rows: &CustomerRows,
) -> rusqlite::Result<()> {
    write_changed(tx, p, old.customer.as_slice(), rows.customer.as_slice())?;
    write_changed(tx, p, &old.values, &rows.values)?;
    write_changed(tx, p, &old.deals, &rows.deals)?;
    write_changed(tx, p, &old.stays, &rows.stays)?;
    write_changed(tx, p, &old.activities, &rows.activities)?;
    write_changed(tx, p, &old.followups, &rows.followups)
}

/// Turns one table's stored rows `old` into `new`: a row whose key is gone is deleted, a new
/// key's row inserted, a row whose key stayed but whose columns changed deleted and inserted
/// again; equal rows are left alone. Both sides are matched in primary-key order.
fn write_changed<R: TableRow + Eq>(
    tx: &Connection,
    p: &str,
    old: &[R],
    new: &[R],
) -> rusqlite::Result<()> {
    let (old, new) = (in_key_order(old), in_key_order(new));
    let (mut o, mut n) = (0, 0);
    while o < old.len() || n < new.len() {
        let order = match (old.get(o), new.get(n)) {
            (Some(a), Some(b)) => a.key_cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                old[o].delete_by_key(tx, p)?;
                o += 1;
            }
            std::cmp::Ordering::Greater => {
                new[n].insert(tx, p)?;
                n += 1;
            }
            std::cmp::Ordering::Equal => {
                if old[o] != new[n] {
                    old[o].delete_by_key(tx, p)?;
                    new[n].insert(tx, p)?;
                }
                o += 1;
                n += 1;
            }
        }
    }
    Ok(())
}

/// `rows` in primary-key order.
fn in_key_order<R: TableRow>(rows: &[R]) -> Vec<&R> {
    let mut sorted: Vec<&R> = rows.iter().collect();
    sorted.sort_by(|a, b| a.key_cmp(b));
    sorted
}

/// Adds summed counter changes to the aggregates; a counter back to 0 is deleted. The sum
/// saturates at the bounds of an `i64` as `aggregates::saturating_counter_add` does (SQLite's
/// own `+` would turn an overflowing sum into an inexact REAL).
pub fn write_deltas(tx: &Connection, p: &str, deltas: &Deltas) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "{} ON CONFLICT (view, grp, key, metric) DO UPDATE SET value = CASE \
         WHEN excluded.value > 0 AND value > {max} - excluded.value THEN {max} \
         WHEN excluded.value < 0 AND value < {min} - excluded.value THEN {min} \
         ELSE value + excluded.value END \
         RETURNING value",
        AggregateRow::TABLE.insert_sql(p),
        max = i64::MAX,
        // i64::MIN, written so that SQLite reads an INTEGER (its literal 9223372036854775808 is
        // a REAL).
        min = format!("(-{} - 1)", i64::MAX),
    ))?;
    let mut delete = tx.prepare_cached(&format!(
        "DELETE FROM {p}aggregates WHERE view = ?1 AND grp = ?2 AND key = ?3 AND metric = ?4"
    ))?;
    for ((view, grp, key, metric), v) in &deltas.counts {
        if *v == 0 {
            continue;
        }
        // A batch's change beyond an `i64` saturates the counter either way.
        let v = aggregates::saturating_counter_add(0, *v);
        let now: i64 = upsert.query_row(params![view, grp, key, metric, v], |r| r.get(0))?;
        if now == 0 {
            delete.execute(params![view, grp, key, metric])?;
        }
    }
    Ok(())
}

/// The contracts that count for the days-to-close spreads, selected by the index
/// `activity_contracts`; `rest` narrows them further.
fn contracts_sql(p: &str, columns: &str, rest: &str) -> String {
    format!(
        "SELECT {columns} FROM {p}activity \
         WHERE event_type = '{}' AND applied = 1 AND close_seconds IS NOT NULL{rest}",
        EventType::ContractSigned.as_str()
    )
}

/// Recomputes the days-to-close spreads of `groups` from their contracts (read through the
/// contracts index, one period of one rep each); a group left without contracts is deleted.
fn write_close_spreads(
    tx: &Connection,
    p: &str,
    groups: &HashMap<aggregates::CloseGroup, DateTime<Utc>>,
) -> rusqlite::Result<()> {
    let mut closes = tx.prepare_cached(&contracts_sql(
        p,
        "close_seconds",
        " AND owner_rep = ?1 AND occurred_at >= ?2 AND occurred_at < ?3",
    ))?;
    for ((period, rep, label), inside) in groups {
        let (start, end) = period.bounds(*inside);
        let seconds = closes
            .query_map(
                params![rep, start.timestamp_micros(), end.timestamp_micros()],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        put_close_spread(tx, p, (period.as_str(), rep, label), seconds)?;
    }
    Ok(())
}

/// Stores one group's spread (or deletes the group when it has no contracts).
fn put_close_spread(
    tx: &Connection,
    p: &str,
    (period, rep, label): (&str, &str, &str),
    close_seconds: Vec<i64>,
) -> rusqlite::Result<()> {
    let spread = aggregates::close_spread(close_seconds);
    match (spread.median, spread.p90) {
        (Some(median_days), Some(p90_days)) => {
            let row = CloseSpreadRow {
                period: period.to_string(),
                rep: rep.to_string(),
                label: label.to_string(),
                contracts: spread.count,
                median_days,
                p90_days,
            };
            tx.prepare_cached(&format!(
                "DELETE FROM {p}close_spreads WHERE period = ?1 AND rep = ?2 AND label = ?3"
            ))?
            .execute(params![period, rep, label])?;
            row.insert(tx, p)
        }
        _ => {
            tx.prepare_cached(&format!(
                "DELETE FROM {p}close_spreads WHERE period = ?1 AND rep = ?2 AND label = ?3"
            ))?
            .execute(params![period, rep, label])?;
            Ok(())
        }
    }
}

/// Recomputes every days-to-close spread under prefix `p` from all its contracts, in one pass.
pub fn rewrite_all_close_spreads(tx: &Connection, p: &str) -> Result<(), LoadError> {
    tx.execute(&format!("DELETE FROM {p}close_spreads"), [])?;
    let mut stmt = tx.prepare(&contracts_sql(
        p,
        "owner_rep, occurred_at, close_seconds",
        "",
    ))?;
    let mut groups: BTreeMap<(&'static str, String, String), Vec<i64>> = BTreeMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        use super::columns::SqlColumn;
        let rep = String::from_sql(row.get_ref(0)?, "activity", "owner_rep")?;
        let at = DateTime::<Utc>::from_sql(row.get_ref(1)?, "activity", "occurred_at")?;
        let seconds = i64::from_sql(row.get_ref(2)?, "activity", "close_seconds")?;
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

/// Recomputes the counters under `p` from the stored rows (tables of an older layout).
pub fn recount_aggregates(tx: &Connection, p: &str) -> Result<(), LoadError> {
    tx.execute(&format!("DELETE FROM {p}aggregates"), [])?;
    let model = load_model(tx, p, None)?;
    let mut deltas = Deltas::default();
    for rows in model.split_by_customer().values() {
        deltas.contribute(rows, 1);
    }
    write_deltas(tx, p, &deltas)?;
    rewrite_all_close_spreads(tx, p)?;
    mark_aggregates_version(tx, p)?;
    Ok(())
}

/// Marks the counters under `p` as of this version's layout.
pub fn mark_aggregates_version(tx: &Connection, p: &str) -> rusqlite::Result<()> {
    let row = AggregateRow {
        view: aggregates::VERSION_VIEW.to_string(),
        grp: String::new(),
        key: String::new(),
        metric: aggregates::VERSION_METRIC.to_string(),
        value: aggregates::VERSION,
    };
    let sql = format!(
        "{} ON CONFLICT DO NOTHING",
        AggregateRow::TABLE.insert_sql(p)
    );
    row.execute_in(&mut tx.prepare(&sql)?)?;
    Ok(())
}

/// Stores kept reports, keeping a stored one of a later position instead.
pub fn write_reports(
    tx: &Connection,
    p: &str,
    policy: &str,
    reports: &[KeptReport],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(&format!(
        "{} ON CONFLICT (name) DO UPDATE SET \
         position = excluded.position, policy = excluded.policy, \
         computed_at = excluded.computed_at, body = excluded.body \
         WHERE excluded.position >= {p}reports.position",
        ReportRow::TABLE.insert_sql(p)
    ))?;
    let computed_at = Utc::now();
    for r in reports {
        let row = ReportRow {
            name: r.name.clone(),
            position: r.position,
            policy: policy.to_string(),
            computed_at,
            body: r.body.clone(),
        };
        row.execute_in(&mut put)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::sqlite::columns::schema;

    /// Issue 10 (won-value-overflow.sh): counters saturate at the bounds of an `i64`, the way
    /// the replay path's sums do; they never wrap and never turn into a REAL.
    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&schema("rm_")).unwrap();
        let key = || {
            (
                "reps:month".to_string(),
                "rep-07".to_string(),
                "2025-06".to_string(),
                "value:EUR".to_string(),
            )
        };
        let value = |conn: &Connection| -> i64 {
            conn.query_row("SELECT value FROM rm_aggregates", [], |r| r.get(0))
                .unwrap()
        };
        let apply = |conn: &Connection, deltas: &[i128]| {
            for d in deltas {
                let mut batch = Deltas::default();
                batch.counts.insert(key(), *d);
                write_deltas(conn, "rm_", &batch).unwrap();
            }
        };
        let max = i128::from(i64::MAX);
        apply(&conn, &[max]);
        assert_eq!(value(&conn), i64::MAX);
        apply(&conn, &[max]);
        assert_eq!(value(&conn), i64::MAX, "two i64::MAX contracts saturate");
        apply(&conn, &[2 * max]);
        assert_eq!(value(&conn), i64::MAX, "a batch beyond i64 saturates");
        apply(&conn, &[-max, -max]);
        assert_eq!(value(&conn), i64::MIN + 1);
        apply(&conn, &[-max]);
        assert_eq!(value(&conn), i64::MIN);
        apply(&conn, &[5, -3]);
        assert_eq!(value(&conn), i64::MIN + 2);
    }
}

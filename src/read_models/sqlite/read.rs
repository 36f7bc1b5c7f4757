//! Reading the read models' rows inside a transaction the caller holds.

use super::columns::{AggregateRow, BindingRow, CheckpointRow, LoadError, SqlColumn, TableRow};
use crate::projections::aggregates::{self, RepsInputs};
use crate::projections::model::{
    ActivityRow, CustomerRow, CustomerValueRow, DealRow, FollowUpRow, ReadModel, StageStayRow,
};
use crate::projections::time::{Period, Spread};
use crate::read_models::{Binding, Checkpoint, PROJECTIONS};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// The checkpoint of the tables under `p`: the lowest of the projections' checkpoints, or none
/// until every projection has one.
pub fn read_checkpoint(conn: &Connection, p: &str) -> Result<Checkpoint, LoadError> {
    let table = CheckpointRow::TABLE.name;
    let sql = format!(
        "SELECT min(position), min(log_time) FROM {p}{table} HAVING count(*) = {}",
        PROJECTIONS.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(Checkpoint::default());
    };
    let position = Option::<u64>::from_sql(row.get_ref(0)?, table, "position")?;
    // A stored time this version cannot read is reported, never taken for "no time".
    let log_time = Option::<DateTime<Utc>>::from_sql(row.get_ref(1)?, table, "log_time")?;
    drop(rows);
    let event_id = match read_binding_key(conn, p, super::columns::BINDING_CHECKPOINT_EVENT)? {
        Some(text) => Some(
            uuid::Uuid::parse_str(&text)
                .map_err(|_| super::columns::corrupt("binding", "value", &text))?,
        ),
        None => None,
    };
    Ok(Checkpoint {
        position,
        event_id,
        log_time,
    })
}

/// One `rm_binding` value, if set.
pub fn read_binding_key(
    conn: &Connection,
    p: &str,
    key: &str,
) -> Result<Option<String>, LoadError> {
    let mut found = None;
    each(
        conn,
        &BindingRow::TABLE.select_sql(p, " WHERE key = ?1"),
        &[key],
        |row: BindingRow| found = row.value,
    )?;
    Ok(found)
}

/// What the tables under `p` were derived from; `None` if never bound.
pub fn read_binding(conn: &Connection, p: &str) -> Result<Option<Binding>, LoadError> {
    use super::columns::{BINDING_DERIVATION, BINDING_STORE_ID};
    let Some(derivation) = read_binding_key(conn, p, BINDING_DERIVATION)? else {
        return Ok(None);
    };
    Ok(Some(Binding {
        store_id: read_binding_key(conn, p, BINDING_STORE_ID)?,
        derivation,
    }))
}

/// Runs `sql` with `args` and decodes each row as a `T`.
fn each<T: TableRow>(
    conn: &Connection,
    sql: &str,
    args: &[&str],
    mut f: impl FnMut(T),
) -> Result<(), LoadError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(row) = rows.next()? {
        f(T::from_row(row)?);
    }
    Ok(())
}

/// Every row of type `T` under `p`, or one customer's (by its primary-key prefix).
fn rows_of<T: TableRow>(
    conn: &Connection,
    p: &str,
    customer: Option<&str>,
) -> Result<Vec<T>, LoadError> {
    let filter = if customer.is_some() {
        " WHERE customer_id = ?1"
    } else {
        ""
    };
    let args: Vec<&str> = customer.into_iter().collect();
    let mut out = Vec::new();
    each(conn, &T::TABLE.select_sql(p, filter), &args, |r| {
        out.push(r)
    })?;
    Ok(out)
}

/// Loads the rows under `p`, all of them or one customer's, with their checkpoint.
pub fn load_model(
    conn: &Connection,
    p: &str,
    customer: Option<&str>,
) -> Result<ReadModel, LoadError> {
    let cp = read_checkpoint(conn, p)?;
    let mut m = ReadModel {
        position: cp.position,
        log_time: cp.log_time,
        customers: rows_of::<CustomerRow>(conn, p, customer)?,
        values: rows_of::<CustomerValueRow>(conn, p, customer)?,
        deals: rows_of::<DealRow>(conn, p, customer)?,
        stays: rows_of::<StageStayRow>(conn, p, customer)?,
        activities: rows_of::<ActivityRow>(conn, p, customer)?,
        followups: rows_of::<FollowUpRow>(conn, p, customer)?,
    };
    m.normalize();
    Ok(m)
}

/// Hands every deal under prefix `p`, with its stage stays in order, to `f`, one deal at a time:
/// both tables are read in key order side by side, so memory holds one deal.
pub fn each_deal_with_stays(
    conn: &Connection,
    p: &str,
    mut f: impl FnMut(DealRow, Vec<StageStayRow>),
) -> Result<(), LoadError> {
    let mut deals =
        conn.prepare(&DealRow::TABLE.select_sql(p, " ORDER BY customer_id, deal_id"))?;
    let mut stays =
        conn.prepare(&StageStayRow::TABLE.select_sql(p, " ORDER BY customer_id, deal_id, seq"))?;
    let mut deal_rows = deals.query([])?;
    let mut stay_rows = stays.query([])?;
    let mut next_stay = match stay_rows.next()? {
        Some(row) => Some(StageStayRow::from_row(row)?),
        None => None,
    };
    while let Some(row) = deal_rows.next()? {
        let deal = DealRow::from_row(row)?;
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
                Some(row) => Some(StageStayRow::from_row(row)?),
                None => None,
            };
        }
        f(deal, own);
    }
    Ok(())
}

/// What the rep report needs from the tables under `p` (see
/// [`ReadModels::reps_inputs_live`](crate::read_models::ReadModels::reps_inputs_live)).
pub fn read_reps_inputs(
    conn: &Connection,
    p: &str,
    period: Period,
    rep: Option<&str>,
    now: Option<DateTime<Utc>>,
) -> Result<RepsInputs, LoadError> {
    let mut out = RepsInputs::default();
    let view = aggregates::reps_view(period);
    let rep_filter = if rep.is_some() { " AND grp = ?2" } else { "" };
    let args: Vec<&str> = std::iter::once(view.as_str()).chain(rep).collect();
    each(
        conn,
        &AggregateRow::TABLE.select_sql(p, &format!(" WHERE view = ?1{rep_filter}")),
        &args,
        |a: AggregateRow| out.counters.push((a.grp, a.key, a.metric, a.value)),
    )?;
    if let Some(now) = now {
        let before = now.date_naive().format("%Y-%m-%d").to_string();
        let mut open_due = Vec::new();
        each(
            conn,
            &AggregateRow::TABLE.select_sql(p, " WHERE view = ?1 AND grp < ?2"),
            &[aggregates::DUE_VIEW, &before],
            |a: AggregateRow| open_due.push(a),
        )?;
        for a in open_due {
            // The report keeps only the rep asked for.
            let due = NaiveDate::parse_from_str(&a.grp, "%Y-%m-%d")
                .map_err(|_| super::columns::corrupt("aggregates", "grp", &a.grp))?;
            out.open_due.push((due, a.key, a.value));
        }
    }
    let rep_filter = if rep.is_some() { " AND rep = ?2" } else { "" };
    let args: Vec<&str> = std::iter::once(period.as_str()).chain(rep).collect();
    each(
        conn,
        &super::columns::CloseSpreadRow::TABLE
            .select_sql(p, &format!(" WHERE period = ?1{rep_filter}")),
        &args,
        |s: super::columns::CloseSpreadRow| {
            out.close_spreads.push((
                s.rep,
                s.label,
                Spread {
                    count: s.contracts,
                    median: Some(s.median_days),
                    p90: Some(s.p90_days),
                },
            ))
        },
    )?;
    Ok(out)
}

/// A kept report's position and body, if computed under `policy`.
pub fn read_report(
    conn: &Connection,
    p: &str,
    name: &str,
    policy: &str,
) -> Result<Option<(u64, String)>, LoadError> {
    let sql = format!("SELECT position, body FROM {p}reports WHERE name = ?1 AND policy = ?2");
    let found = conn
        .prepare_cached(&sql)?
        .query_row(params![name, policy], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })
        .optional()?;
    Ok(found)
}

/// The layout version of the counters under `p`, if marked.
pub fn aggregates_version(conn: &Connection, p: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        &format!(
            "SELECT value FROM {p}aggregates WHERE view = ?1 AND grp = '' AND key = '' AND metric = ?2"
        ),
        params![aggregates::VERSION_VIEW, aggregates::VERSION_METRIC],
        |r| r.get(0),
    )
    .optional()
}

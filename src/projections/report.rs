//! Where a report's numbers come from: the live read models, or a replay of the log up to a
//! position, as of an occurred time, or as known at a recorded time. Every report carries the
//! log position it was computed at, so that `--at-position` reproduces it later.

use super::activity::{RepsParams, RepsReport};
use super::aggregates::reps_report;
use super::conversion::{FunnelParams, FunnelReport, funnel};
use super::fold::replay;
use super::lifecycle::{CustomerReport, customer_report};
use super::model::ReadModel;
use super::policy::Policy;
use super::runner::lag;
use super::storage::{Checkpoint, ReadModelDb, StorageError};
use crate::domain::LedgerEvent;
use crate::ledger::codec::{DecodeError, STREAM_PREFIX, decode};
use crate::store::{EventStore, ReadError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Events read per page when replaying the log.
pub const REPLAY_PAGE_EVENTS: usize = 4_096;

/// Which state of the pipeline a report describes. All filters combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportAt {
    /// Only events at or before this log position.
    pub at_position: Option<u64>,
    /// Only events that occurred at or before this time (the pipeline as it happened).
    pub as_of: Option<DateTime<Utc>>,
    /// Only events recorded at or before this time (the pipeline as the ledger knew it).
    pub known_at: Option<DateTime<Utc>>,
    /// The clock for time-dependent figures (stalled, dormant, overdue, time in stage);
    /// default: `as_of`/`known_at` if given, else the latest `occurred_at` in the log.
    pub now: Option<DateTime<Utc>>,
}

impl ReportAt {
    /// Whether the report needs a replay (any filter given).
    pub fn is_replay(&self) -> bool {
        self.at_position.is_some() || self.as_of.is_some() || self.known_at.is_some()
    }

    /// Whether an event passes the filters.
    pub fn includes(&self, e: &LedgerEvent) -> bool {
        self.at_position.is_none_or(|p| e.position <= p)
            && self.as_of.is_none_or(|t| e.occurred_at <= t)
            && self.known_at.is_none_or(|t| e.recorded_at <= t)
    }
}

/// What every report says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The log position the report was computed at: `--at-position` with it reproduces it.
    pub position: Option<u64>,
    /// The log's head when the report was made.
    pub head_position: Option<u64>,
    /// head − position: events recorded but not in this report.
    pub lag: u64,
    /// The clock used for time-dependent figures.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// `read_models` (the rm_ tables) or `replay` (the log replayed in memory).
    pub source: String,
    pub as_of: Option<DateTime<Utc>>,
    pub known_at: Option<DateTime<Utc>>,
}

/// Why a report's data could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the event log failed: {0}")]
    Store(#[from] ReadError),
    #[error("{0}; the replay cannot read this event")]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "position {asked} is beyond the log's head ({head:?}); give a position at or before it"
    )]
    BeyondHead { asked: u64, head: Option<u64> },
    #[error("customer {0} is not in the read model at this position")]
    UnknownCustomer(String),
}

/// Reads the events of the log that pass `at`'s filters, in log order.
pub async fn read_events(
    store: &dyn EventStore,
    at: &ReportAt,
) -> Result<Vec<LedgerEvent>, ReportError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.read_all(after, REPLAY_PAGE_EVENTS).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.position);
        for record in &page {
            if at.at_position.is_some_and(|p| record.position > p) {
                return Ok(out);
            }
            if !record.stream.starts_with(STREAM_PREFIX) {
                continue;
            }
            let event = decode(record)?;
            if at.includes(&event) {
                out.push(event);
            }
        }
    }
}

/// The read model a report is computed from, and the report's metadata.
pub async fn load(
    store: &dyn EventStore,
    db_path: &Path,
    policy: &Policy,
    at: &ReportAt,
) -> Result<(ReadModel, ReportMeta), ReportError> {
    let head = store.head_position().await?;
    if let Some(p) = at.at_position
        && head.is_none_or(|h| p > h)
    {
        return Err(ReportError::BeyondHead { asked: p, head });
    }
    let live = if at.is_replay() {
        None
    } else {
        ReadModelDb::open(db_path)?.load_live()?
    };
    let (model, source, position) = match live {
        Some(m) => {
            let p = m.position;
            (m, "read_models", p)
        }
        None => {
            let events = read_events(store, at).await?;
            let m = replay(policy, &events);
            (m, "replay", at.at_position.or(head))
        }
    };
    let bound = match (at.as_of, at.known_at) {
        (Some(a), Some(k)) => Some(a.min(k)),
        (a, k) => a.or(k),
    };
    let meta = ReportMeta {
        position,
        head_position: head,
        lag: lag(head, position),
        evaluated_at: at.now.or(bound).or(model.log_time),
        source: source.to_string(),
        as_of: at.as_of,
        known_at: at.known_at,
    };
    Ok((model, meta))
}

/// The metadata of a report over the live read models at checkpoint `cp`.
fn live_meta(head: Option<u64>, cp: &Checkpoint, at: &ReportAt) -> ReportMeta {
    ReportMeta {
        position: cp.position,
        head_position: head,
        lag: lag(head, cp.position),
        evaluated_at: at.now.or(cp.log_time),
        source: "read_models".to_string(),
        as_of: None,
        known_at: None,
    }
}

/// The `customer ID` report from the live read models, reading only that customer's rows (by
/// primary key). `Ok(None)` when the report needs a replay or the read models were never
/// projected: use [`load`] then.
pub async fn live_customer(
    store: &dyn EventStore,
    db_path: &Path,
    at: &ReportAt,
    id: &str,
) -> Result<Option<CustomerReport>, ReportError> {
    if at.is_replay() {
        return Ok(None);
    }
    let head = store.head_position().await?;
    let Some(model) = ReadModelDb::open(db_path)?.load_customer_live(id)? else {
        return Ok(None);
    };
    let cp = Checkpoint {
        position: model.position,
        log_time: model.log_time,
    };
    let meta = live_meta(head, &cp, at);
    customer_report(&model, meta, id)
        .map(Some)
        .ok_or_else(|| ReportError::UnknownCustomer(id.to_string()))
}

/// The rep report from the live read models: counters from the aggregates, closing times from
/// the contracts' index. `Ok(None)` when the report needs a replay or the read models were never
/// projected: use [`load`] then.
pub async fn live_reps(
    store: &dyn EventStore,
    db_path: &Path,
    at: &ReportAt,
    params: RepsParams,
) -> Result<Option<RepsReport>, ReportError> {
    if at.is_replay() {
        return Ok(None);
    }
    let head = store.head_position().await?;
    let now = at.now;
    let Some((cp, inputs)) = ReadModelDb::open(db_path)?.reps_inputs_live(
        params.period,
        params.rep.as_deref(),
        |cp| now.or(cp.log_time),
    )?
    else {
        return Ok(None);
    };
    let meta = live_meta(head, &cp, at);
    Ok(Some(reps_report(meta, params, inputs)))
}

/// The funnel from the live read models, reading only the deals and stage stays (not the
/// activity, follow-ups or customers), then computing it as over the whole model, so every
/// window and grouping gives the same numbers. `Ok(None)` when the report needs a replay or the
/// read models were never projected: use [`load`] then.
pub async fn live_funnel(
    store: &dyn EventStore,
    db_path: &Path,
    policy: &Policy,
    at: &ReportAt,
    params: FunnelParams,
) -> Result<Option<FunnelReport>, ReportError> {
    if at.is_replay() {
        return Ok(None);
    }
    let head = store.head_position().await?;
    let Some(model) = ReadModelDb::open(db_path)?.load_conversion_live()? else {
        return Ok(None);
    };
    let cp = Checkpoint {
        position: model.position,
        log_time: model.log_time,
    };
    let meta = live_meta(head, &cp, at);
    Ok(Some(funnel(&model, policy, meta, params)))
}

/// The metadata of a report over an in-memory model (tests, embedding programs).
pub fn meta_for(model: &ReadModel, at: &ReportAt) -> ReportMeta {
    let bound = match (at.as_of, at.known_at) {
        (Some(a), Some(k)) => Some(a.min(k)),
        (a, k) => a.or(k),
    };
    ReportMeta {
        position: model.position,
        head_position: model.position,
        lag: 0,
        evaluated_at: at.now.or(bound).or(model.log_time),
        source: "replay".to_string(),
        as_of: at.as_of,
        known_at: at.known_at,
    }
}

/// Why the demo report failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoReportError {
    #[error("bringing the read models up to date failed: {0}")]
    Project(#[from] super::runner::RunError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The `demo` command's report: brings the read models up to date, then prints the funnel (by
/// lead source), the rep report per quarter and the pipeline with its stalled deals.
pub async fn demo_report(
    store: &dyn EventStore,
    db_path: &Path,
    policy: &Policy,
    out: &mut dyn std::io::Write,
) -> Result<(), DemoReportError> {
    use super::render::{Format, write_funnel, write_pipeline, write_reps};
    super::runner::project(
        store,
        db_path,
        policy,
        false,
        &mut |_| {},
        std::future::ready(()),
    )
    .await?;
    let at = ReportAt::default();
    let (model, meta) = load(store, db_path, policy, &at).await?;
    writeln!(out, "== Funnel by lead source ==")?;
    let params = super::conversion::FunnelParams {
        by: Some(super::conversion::GroupBy::Source),
        ..Default::default()
    };
    let funnel = super::conversion::funnel(&model, policy, meta.clone(), params);
    write_funnel(out, Format::Table, &funnel)?;
    writeln!(out, "== Reps per quarter ==")?;
    let reps = super::activity::reps(&model, meta.clone(), Default::default());
    write_reps(out, Format::Table, &reps)?;
    writeln!(out, "== Pipeline and stalled deals ==")?;
    let pipeline = super::stalled::pipeline(&model, policy, meta);
    write_pipeline(out, Format::Table, &pipeline)?;
    Ok(())
}

//! Where a report's numbers come from: the live read models, or a replay of the log up to a
//! position, as of an occurred time, or as known at a recorded time. Every report carries the
//! log position it was computed at, so that `--at-position` reproduces it later.

use super::activity::{RepsParams, RepsReport};
use super::aggregates::reps_report;
use super::conversion::{FunnelFold, FunnelGroup, FunnelParams, FunnelReport, GroupBy};
use super::fold::replay;
use super::lifecycle::{CustomerReport, customer_report};
use super::model::ReadModel;
use super::model::StageStayRow;
use super::policy::Policy;
use super::runner::lag;
use super::storage::{Checkpoint, ReadModelDb, StorageError};
use super::time::Period;
use crate::domain::LedgerEvent;
use crate::ledger::codec::DecodeError;
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
    #[error(transparent)]
    Replay(#[from] crate::ledger::ReadDecodedError),
    #[error(
        "a materialized report in the read models cannot be read ({0}); run `pipeline-ledger rebuild`, or ask with --fresh"
    )]
    Stored(serde_json::Error),
}

/// Reads the events of the log that pass `at`'s filters, in log order.
pub async fn read_events(
    store: &dyn EventStore,
    at: &ReportAt,
) -> Result<Vec<LedgerEvent>, ReportError> {
    use std::ops::ControlFlow;
    let mut out = Vec::new();
    crate::ledger::read_decoded(store, REPLAY_PAGE_EVENTS, |page| {
        for event in page {
            if at.at_position.is_some_and(|p| event.position > p) {
                return ControlFlow::Break(());
            }
            if at.includes(&event) {
                out.push(event);
            }
        }
        ControlFlow::Continue(())
    })
    .await?;
    Ok(out)
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

/// The rep report from the live read models: counters from `rm_aggregates`, days-to-close
/// spreads from `rm_close_spreads`. `Ok(None)` when the report needs a replay or the read models were never
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

/// The funnels kept computed in the read models (`rm_reports`): over all deals, at the read
/// models' own clock, whole and by each grouping (cohorts by month). These are what sales ops ask
/// for most, and computing one reads every deal and stage stay: seconds at 10M events.
pub const MATERIALIZED_FUNNELS: [Option<GroupBy>; 4] = [
    None,
    Some(GroupBy::Source),
    Some(GroupBy::Rep),
    Some(GroupBy::Cohort),
];

/// The name a funnel is kept under, if its parameters are among [`MATERIALIZED_FUNNELS`].
fn materialized_name(params: &FunnelParams) -> Option<String> {
    let kept = params.from.is_none()
        && params.to.is_none()
        && params.cohort == Period::Month
        && MATERIALIZED_FUNNELS.contains(&params.by);
    kept.then(|| {
        match params.by {
            None => "funnel",
            Some(GroupBy::Source) => "funnel:source",
            Some(GroupBy::Rep) => "funnel:rep",
            Some(GroupBy::Cohort) => "funnel:cohort",
        }
        .to_string()
    })
}

/// Why the materialized reports could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("a report could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the refresh stopped unexpectedly: {0}")]
    Panicked(String),
}

/// Computes the [`MATERIALIZED_FUNNELS`] from the live read models (one read of the deals and
/// stays for all of them) and stores them with the position they reflect. Returns that
/// position; `None` when the read models were never projected. Blocking: run it off the async
/// threads when other work waits.
pub fn materialize_funnels(
    db_path: &Path,
    policy: &Policy,
) -> Result<Option<u64>, MaterializeError> {
    let mut db = ReadModelDb::open(db_path)?;
    let policy_json = serde_json::to_string(policy)?;
    let checkpoint = db.checkpoint(super::storage::LIVE)?.position;
    let stored = db.read_report("funnel", &policy_json)?.map(|(p, _)| p);
    if checkpoint.is_some() && stored == checkpoint {
        return Ok(checkpoint); // nothing new since the last refresh
    }
    // One pass over the deals per funnel, each in its own read transaction and stating its
    // own position: a pass holds its counters and durations, never the deals. The first pass
    // computes the total the others share, unless the checkpoint moved in between.
    let meta = |cp: &Checkpoint| live_meta(cp.position, cp, &ReportAt::default());
    let mut reports = Vec::new();
    let mut reached = None;
    let mut total: Option<(Option<u64>, FunnelGroup)> = None;
    for by in MATERIALIZED_FUNNELS {
        let params = FunnelParams {
            by,
            ..FunnelParams::default()
        };
        let mut with_total = total.is_none();
        let mut pass = fold_live_funnel(&mut db, policy, params, with_total, meta)?;
        let total_at = total.as_ref().map(|(at, _)| *at);
        if !with_total && pass.as_ref().map(|(cp, _)| cp.position) != total_at {
            with_total = true;
            pass = fold_live_funnel(&mut db, policy, params, with_total, meta)?;
        }
        let Some((cp, mut report)) = pass else {
            return Ok(None);
        };
        let Some(position) = cp.position else {
            return Ok(None);
        };
        match &total {
            Some((_, shared)) if !with_total => report.total = shared.clone(),
            Some(_) => {}
            None => total = Some((cp.position, report.total.clone())),
        }
        let name = materialized_name(&params).expect("every materialized funnel has a name");
        reports.push((name, position, serde_json::to_string(&report)?));
        reached = Some(position);
    }
    db.write_reports(&policy_json, &reports)?;
    Ok(reached)
}

/// The funnel as last materialized by the runner ([`materialize_funnels`]), if `params` are
/// among [`MATERIALIZED_FUNNELS`], the clock is the read models' own and the policy is the one
/// it was computed under. Its position may be behind the read models' checkpoint (the runner
/// refreshes it when it catches up, and every [`super::runner::FUNNEL_REFRESH_INTERVAL`] while
/// following); the report states its position and lag like any other.
pub async fn materialized_funnel(
    store: &dyn EventStore,
    db_path: &Path,
    policy: &Policy,
    at: &ReportAt,
    params: FunnelParams,
) -> Result<Option<FunnelReport>, ReportError> {
    let Some(name) = materialized_name(&params) else {
        return Ok(None);
    };
    if at.is_replay() || at.now.is_some() {
        return Ok(None);
    }
    let policy_json = serde_json::to_string(policy).map_err(ReportError::Stored)?;
    let Some((_, body)) = ReadModelDb::open(db_path)?.read_report(&name, &policy_json)? else {
        return Ok(None);
    };
    let mut report: FunnelReport = serde_json::from_str(&body).map_err(ReportError::Stored)?;
    let head = store.head_position().await?;
    report.meta.head_position = head;
    report.meta.lag = lag(head, report.meta.position);
    Ok(Some(report))
}

/// The funnel from the live read models, folding the deals and stage stays one deal at a time
/// (not the activity, follow-ups or customers; memory holds the counters, not the tables) as
/// over the whole model, so every window and grouping gives the same numbers. `Ok(None)` when
/// the report needs a replay or the read models were never projected: use [`load`] then.
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
    let mut db = ReadModelDb::open(db_path)?;
    let folded = fold_live_funnel(&mut db, policy, params, true, |cp| live_meta(head, cp, at))?;
    Ok(folded.map(|(_, report)| report))
}

/// Folds the live deals into the funnel of `params` (its total too, with `with_total`), with
/// the metadata `meta` gives for the checkpoint read. `None` if never projected.
fn fold_live_funnel(
    db: &mut ReadModelDb,
    policy: &Policy,
    params: FunnelParams,
    with_total: bool,
    meta: impl FnOnce(&Checkpoint) -> ReportMeta,
) -> Result<Option<(Checkpoint, FunnelReport)>, StorageError> {
    let folded = db.fold_live_deals(
        |cp| {
            let meta = meta(cp);
            let fold = FunnelFold::new(policy, params, meta.evaluated_at, with_total);
            (*cp, meta, fold)
        },
        |(_, _, fold), deal, stays| {
            let stays: Vec<&StageStayRow> = stays.iter().collect();
            fold.add(&deal, &stays);
        },
    )?;
    Ok(folded.map(|(cp, meta, fold)| (cp, fold.finish(meta))))
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

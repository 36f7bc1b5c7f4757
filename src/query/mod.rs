//! The query layer: one function per report, for every front end (the command line, the
//! benchmark, the HTTP server to come). Each takes a typed request and returns the typed
//! report with its [`ReportMeta`]; the layer, not the caller, decides where the numbers come
//! from, in this order:
//!
//! 1. a report the runner keeps computed (`rm_reports`: the funnels over all deals), unless the
//!    request asks for a fresh one, a window, another clock or a past state;
//! 2. the live read models (only the rows the report needs);
//! 3. a replay of the log, for `at_position`, `as_of` and `known_at`, or when the read models
//!    were never projected.
//!
//! Blocking work (the read models, folding a replay) runs off the async threads, so a server's
//! runtime keeps answering while a report is computed.

use crate::domain::{CustomerId, LedgerEvent};
use crate::ledger::{HistoryError, ReadDecodedError, customer_history, read_decoded};
use crate::projections::Policy;
use crate::projections::activity::{RepsParams, RepsReport, reps};
use crate::projections::aggregates::reps_report;
use crate::projections::conversion::{FunnelParams, FunnelReport, funnel};
use crate::projections::fold::replay;
use crate::projections::lifecycle::{CustomerReport, customer_report};
use crate::projections::meta::{ReportAt, ReportMeta, lag};
use crate::projections::model::ReadModel;
use crate::projections::qualification::{QualificationReport, qualification};
use crate::projections::ranking::{RankingParams, RankingReport, ranking};
use crate::projections::retention::{RetentionParams, RetentionReport, retention};
use crate::projections::scorecard::{ScorecardReport, is_quarter_label, scorecard};
use crate::projections::stalled::{PipelineReport, pipeline};
use crate::projections::time::Period;
use crate::read_models::Tables;
use crate::read_models::{ReadModelError, ReadModels};
use crate::runner::binding::{Staleness, expected_binding, staleness};
use crate::runner::kept::{fold_live_funnel, kept_funnel_name, policy_key};
use crate::store::{EventStore, ReadError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Events read per page when replaying the log.
pub const REPLAY_PAGE_EVENTS: usize = 4_096;

/// Why a report could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("reading the event log failed: {0}")]
    Store(#[from] ReadError),
    #[error(transparent)]
    ReadModels(#[from] ReadModelError),
    #[error(
        "position {asked} is beyond the log's head ({head:?}); give a position at or before it"
    )]
    BeyondHead { asked: u64, head: Option<u64> },
    #[error("customer {0} is not in the read model at this position")]
    UnknownCustomer(String),
    #[error(transparent)]
    Replay(#[from] ReadDecodedError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(
        "a kept report in the read models cannot be read ({0}); run `pipeline-ledger rebuild`, or ask with --fresh"
    )]
    Kept(serde_json::Error),
    #[error("the query stopped unexpectedly: {0}")]
    Panicked(String),
    #[error(
        "{0}; they are not reported from: run `pipeline-ledger project` (which rebuilds them) or `pipeline-ledger rebuild`, or replay the log with --at-position, --as-of or --known-at"
    )]
    Stale(Staleness),
    #[error(
        "the report needed a replay of the log that did not finish within its time limit; ask for a later date, a narrower report, or read the kept reports"
    )]
    DeadlineExceeded,
    #[error("{0:?} is not a quarter; give one like 2026-Q3")]
    NotAQuarter(String),
    #[error("the window is empty: from {from} is later than to {to}; give from at or before to")]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// The funnel: conversion, transitions, win rate, lost reasons, time in stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunnelRequest {
    pub params: FunnelParams,
    pub at: ReportAt,
    /// Compute it now from the read models rather than read the one the runner keeps.
    pub fresh: bool,
}

/// Rep activity and results per period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepsRequest {
    pub params: RepsParams,
    pub at: ReportAt,
}

/// The quarterly rep scorecard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScorecardRequest {
    /// The quarter (`2026-Q3`); default the latest quarter with a rep row.
    pub quarter: Option<String>,
    /// Only this rep's row (ranks stay those among every rep).
    pub rep: Option<String>,
    pub at: ReportAt,
}

/// Retention: repeat orders, revenue from new and existing customers, dormancy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionRequest {
    pub params: RetentionParams,
    pub at: ReportAt,
}

/// Customers classed A+ / A / B / C by revenue per period (the 80/20 rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingRequest {
    pub params: RankingParams,
    pub at: ReportAt,
}

/// Win rates by the qualification worksheet's score and criteria, and by first-visit intent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualificationRequest {
    pub at: ReportAt,
}

/// One customer's lifecycle state, stage history and time in stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRequest {
    pub customer_id: String,
    pub at: ReportAt,
}

/// Counts per state and stage, stalled deals and overdue follow-ups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineRequest {
    pub at: ReportAt,
    /// Only this rep's stalled deals and overdue follow-ups (the counts stay the ledger's).
    pub owner: Option<String>,
}

/// The reports over one ledger: its event store, its read models and the policy they were
/// derived under. Cheap to clone; share one between tasks.
#[derive(Clone)]
pub struct Queries {
    store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModels>,
    policy: Arc<crate::projections::Policy>,
    /// When given, a replay stops at this instant with [`QueryError::DeadlineExceeded`]: its
    /// reading and its folding both check it, so the work itself stops, not only the answer.
    deadline: Option<Instant>,
}

impl Queries {
    /// The reports over `store`'s events, read from `read_models` where they can be.
    pub fn new(
        store: Arc<dyn EventStore>,
        read_models: Arc<dyn ReadModels>,
        policy: Policy,
    ) -> Self {
        Queries {
            store,
            read_models,
            policy: Arc::new(policy),
            deadline: None,
        }
    }

    /// The same reports, whose replays stop at `deadline` (a server's bound on expensive work).
    pub fn with_deadline(&self, deadline: Instant) -> Queries {
        Queries {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The policy the reports are computed under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The funnel.
    pub async fn funnel(&self, req: FunnelRequest) -> Result<FunnelReport, QueryError> {
        let FunnelRequest { params, at, fresh } = req;
        if let (Some(from), Some(to)) = (params.from, params.to)
            && from > to
        {
            return Err(QueryError::EmptyWindow { from, to });
        }
        if !at.is_replay() {
            self.ensure_current().await?;
        }
        if !fresh && let Some(kept) = self.kept_funnel(&at, params).await? {
            return Ok(kept);
        }
        if !at.is_replay() {
            let head = self.store.head_position().await?;
            let policy = self.policy.clone();
            let folded = self
                .blocking(move |rm| {
                    let meta = |cp: &crate::read_models::Checkpoint| {
                        ReportMeta::live(cp.position, head, cp.log_time, &at)
                    };
                    fold_live_funnel(rm, &policy, params, true, meta)
                })
                .await?;
            if let Some((_, report)) = folded {
                return Ok(report);
            }
        }
        let (model, meta) = self.model(&at).await?;
        Ok(funnel(&model, &self.policy, meta, params))
    }

    /// The funnel the runner keeps, if `params` are among those kept, the clock is the read
    /// models' own and the policy is the one it was computed under. Its position may be behind
    /// the read models' checkpoint; the report states its position and lag like any other.
    async fn kept_funnel(
        &self,
        at: &ReportAt,
        params: FunnelParams,
    ) -> Result<Option<FunnelReport>, QueryError> {
        let Some(name) = kept_funnel_name(&params) else {
            return Ok(None);
        };
        if at.is_replay() || at.now.is_some() {
            return Ok(None);
        }
        let policy = policy_key(&self.policy).map_err(QueryError::Kept)?;
        let Some((_, body)) = self
            .blocking(move |rm| rm.read_report(name, &policy))
            .await?
        else {
            return Ok(None);
        };
        let mut report: FunnelReport = serde_json::from_str(&body).map_err(QueryError::Kept)?;
        let head = self.store.head_position().await?;
        report.meta.head_position = head;
        report.meta.lag = lag(head, report.meta.position);
        Ok(Some(report))
    }

    /// The rep report: from the live counters and spreads, or a replay.
    pub async fn reps(&self, req: RepsRequest) -> Result<RepsReport, QueryError> {
        let RepsRequest { params, at } = req;
        if !at.is_replay() {
            self.ensure_current().await?;
            let head = self.store.head_position().await?;
            let (period, rep) = (params.period, params.rep.clone());
            let inputs = self
                .blocking(move |rm| {
                    rm.reps_inputs_live(period, rep.as_deref(), &|cp| at.now.or(cp.log_time))
                })
                .await?;
            if let Some((cp, inputs)) = inputs {
                let meta = ReportMeta::live(cp.position, head, cp.log_time, &at);
                return Ok(reps_report(meta, params, inputs));
            }
        }
        let (model, meta) = self.model(&at).await?;
        Ok(reps(&model, meta, params))
    }

    /// The quarterly rep scorecard, over the quarterly rep report (so its credit rules and its
    /// sources, live or replayed, are the rep report's), under the policy's scorecard.
    pub async fn scorecard(&self, req: ScorecardRequest) -> Result<ScorecardReport, QueryError> {
        let ScorecardRequest { quarter, rep, at } = req;
        if let Some(q) = &quarter
            && !is_quarter_label(q)
        {
            return Err(QueryError::NotAQuarter(q.clone()));
        }
        let params = RepsParams {
            period: Period::Quarter,
            rep: None,
        };
        let reps = self.reps(RepsRequest { params, at }).await?;
        let mut report = scorecard(&reps, &self.policy.scorecard, quarter.as_deref());
        if let Some(rep) = rep {
            report.rows.retain(|r| r.rep == rep);
        }
        Ok(report)
    }

    /// One customer: from its live rows (read by key), or a replay.
    pub async fn customer(&self, req: CustomerRequest) -> Result<CustomerReport, QueryError> {
        let CustomerRequest { customer_id, at } = req;
        let unknown = || QueryError::UnknownCustomer(customer_id.clone());
        if !at.is_replay() {
            self.ensure_current().await?;
            let head = self.store.head_position().await?;
            let id = customer_id.clone();
            let live = self.blocking(move |rm| rm.load_customer_live(&id)).await?;
            if let Some(model) = live {
                let meta = ReportMeta::live(model.position, head, model.log_time, &at);
                return customer_report(&model, meta, &customer_id).ok_or_else(unknown);
            }
        }
        // A customer's rows depend on its own events only, so a past state of one customer is
        // a replay of its stream. The clock must not need the whole log's latest time.
        if at.now.is_some() || at.time_bound().is_some() {
            let head = self.store.head_position().await?;
            if let Some(p) = at.at_position
                && head.is_none_or(|h| p > h)
            {
                return Err(QueryError::BeyondHead { asked: p, head });
            }
            let Ok(id) = CustomerId::new(&customer_id) else {
                return Err(unknown());
            };
            let events = match customer_history(&*self.store, &id).await {
                Err(HistoryError::UnknownCustomer(_)) => return Err(unknown()),
                other => other?,
            };
            let events: Vec<LedgerEvent> = events.into_iter().filter(|e| at.includes(e)).collect();
            let model = replay(&self.policy, &events);
            let meta = ReportMeta::replayed(at.at_position.or(head), head, None, &at);
            return customer_report(&model, meta, &customer_id).ok_or_else(unknown);
        }
        let (model, meta) = self.model(&at).await?;
        customer_report(&model, meta, &customer_id).ok_or_else(unknown)
    }

    /// The pipeline: states, stages, stalled deals, overdue follow-ups.
    pub async fn pipeline(&self, req: PipelineRequest) -> Result<PipelineReport, QueryError> {
        let (model, meta) = self.model(&req.at).await?;
        let mut report = pipeline(&model, &self.policy, meta);
        if let Some(owner) = &req.owner {
            report.keep_worklist_of(owner);
        }
        Ok(report)
    }

    /// Retention, over the whole read model (live, or a replay for a past state).
    pub async fn retention(&self, req: RetentionRequest) -> Result<RetentionReport, QueryError> {
        let (model, meta) = self.model(&req.at).await?;
        Ok(retention(
            &model,
            meta,
            req.params,
            self.policy.costs.as_ref(),
        ))
    }

    /// The customer ranking, over the whole read model (live, or a replay for a past state),
    /// under the policy's rates and classes.
    pub async fn ranking(&self, req: RankingRequest) -> Result<RankingReport, QueryError> {
        let (model, meta) = self.model(&req.at).await?;
        Ok(ranking(&model, &self.policy, meta, req.params))
    }

    /// The qualification report, over the deal rows (live, or a replay for a past state).
    pub async fn qualification(
        &self,
        req: QualificationRequest,
    ) -> Result<QualificationReport, QueryError> {
        let (model, meta) = self.model(&req.at).await?;
        Ok(qualification(&model, meta))
    }

    /// A customer's events in stream order, decoded to current schema versions.
    pub async fn history(&self, customer: &CustomerId) -> Result<Vec<LedgerEvent>, QueryError> {
        Ok(customer_history(&*self.store, customer).await?)
    }

    /// The whole read model a report is computed from, and the report's metadata: the live
    /// read models, or a replay of the log when `at` filters it or they were never projected.
    pub async fn model(&self, at: &ReportAt) -> Result<(ReadModel, ReportMeta), QueryError> {
        let head = self.store.head_position().await?;
        if let Some(p) = at.at_position
            && head.is_none_or(|h| p > h)
        {
            return Err(QueryError::BeyondHead { asked: p, head });
        }
        if !at.is_replay() {
            self.ensure_current().await?;
        }
        if !at.is_replay()
            && let Some(model) = self.blocking(|rm| rm.load_live()).await?
        {
            let meta = ReportMeta::live(model.position, head, model.log_time, at);
            return Ok((model, meta));
        }
        let events = read_events_until(&*self.store, at, self.deadline).await?;
        let policy = self.policy.clone();
        let deadline = self.deadline;
        let model = tokio::task::spawn_blocking(move || {
            let mut past = false;
            let events = events.iter().enumerate().take_while(|(i, _)| {
                // Checked every 4,096 events: often enough to stop within milliseconds.
                if i % 4096 == 0 {
                    past = deadline.is_some_and(|d| Instant::now() >= d);
                }
                !past
            });
            let model = replay(&policy, events.map(|(_, e)| e));
            (!past).then_some(model)
        })
        .await
        .map_err(|e| QueryError::Panicked(e.to_string()))?
        .ok_or(QueryError::DeadlineExceeded)?;
        let meta = ReportMeta::replayed(at.at_position.or(head), head, model.log_time, at);
        Ok((model, meta))
    }

    /// Fails when the live read models belong to another store, another point of its history
    /// or other definitions (read models never projected pass: the reports replay then).
    async fn ensure_current(&self) -> Result<(), QueryError> {
        let (checkpoint, bound) = self
            .blocking(|rm| Ok((rm.checkpoint(Tables::Live)?, rm.binding(Tables::Live)?)))
            .await?;
        if checkpoint.position.is_none() {
            return Ok(());
        }
        let expected = expected_binding(&*self.store, &self.policy).await?;
        match staleness(&*self.store, &checkpoint, bound.as_ref(), &expected).await? {
            Some(why) => Err(QueryError::Stale(why)),
            None => Ok(()),
        }
    }

    /// Runs `read` on the read models on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn ReadModels) -> Result<T, ReadModelError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let read_models = self.read_models.clone();
        let out = tokio::task::spawn_blocking(move || read(&*read_models))
            .await
            .map_err(|e| QueryError::Panicked(e.to_string()))??;
        Ok(out)
    }
}

/// Reads the events of the log that pass `at`'s filters, in log order.
pub async fn read_events(
    store: &dyn EventStore,
    at: &ReportAt,
) -> Result<Vec<LedgerEvent>, QueryError> {
    read_events_until(store, at, None).await
}

/// [`read_events`], stopping with [`QueryError::DeadlineExceeded`] at `deadline`.
async fn read_events_until(
    store: &dyn EventStore,
    at: &ReportAt,
    deadline: Option<Instant>,
) -> Result<Vec<LedgerEvent>, QueryError> {
    use std::ops::ControlFlow;
    let mut out = Vec::new();
    let mut past = false;
    read_decoded(store, REPLAY_PAGE_EVENTS, |page| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            past = true;
            return ControlFlow::Break(());
        }
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
    if past {
        return Err(QueryError::DeadlineExceeded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::conversion::FunnelParams;
    use crate::read_models::memory::MemoryReadModels;
    use crate::store::sqlite::SqliteStore;

    /// Issue 10: a window whose start is after its end is refused, naming both ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_from_after_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("ledger.db")).unwrap();
        let queries = Queries::new(
            Arc::new(store),
            Arc::new(MemoryReadModels::new()),
            Policy::default(),
        );
        let from = "2025-07-01T00:00:00Z".parse().unwrap();
        let to = "2025-06-01T00:00:00Z".parse().unwrap();
        let request = FunnelRequest {
            params: FunnelParams {
                from: Some(from),
                to: Some(to),
                ..FunnelParams::default()
            },
            at: ReportAt::default(),
            fresh: true,
        };
        let err = queries.funnel(request).await.unwrap_err();
        assert!(matches!(err, QueryError::EmptyWindow { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the window is empty: from 2025-07-01 00:00:00 UTC is later than to 2025-06-01 00:00:00 UTC; give from at or before to"
        );
    }
}

//! The reports over HTTP: the query layer answers, `present` prints, exactly as for the CLI's
//! `--json` (and `--csv` when the request sends `Accept: text/csv`). Past-date replays and fresh
//! funnels are expensive: at most `HTTP_EXPENSIVE_QUERIES_MAX` run at once, and each stops
//! after `HTTP_EXPENSIVE_QUERY_SECONDS_MAX`.

use super::auth::Caller;
use super::problem::Problem;
use super::read::time_param;
use super::{Shared, format_of};
use crate::present::reports::{
    Format, write_customer, write_funnel, write_pipeline, write_qualification, write_ranking,
    write_reps, write_retention, write_scorecard,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use pipeline_ledger::access::Action;
use pipeline_ledger::projections::activity::RepsParams;
use pipeline_ledger::projections::conversion::{FunnelParams, GroupBy};
use pipeline_ledger::projections::meta::ReportAt;
use pipeline_ledger::projections::ranking::{RANKING_LIMIT_DEFAULT, RankingParams};
use pipeline_ledger::projections::retention::RetentionParams;
use pipeline_ledger::projections::time::{Period, parse_time_start, quarter_of};
use pipeline_ledger::query::{
    CustomerRequest, FunnelRequest, PipelineRequest, QualificationRequest, Queries, RankingRequest,
    RepsRequest, RetentionRequest, ScorecardRequest,
};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::SemaphorePermit;

/// The time travel parameters every report takes (the CLI's `--at-position`, `--as-of`,
/// `--known-at`, `--now`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtParams {
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// The report's point in time from the time travel parameters of a query type that has them.
macro_rules! report_at {
    ($($query:ty),*) => {$(
        impl $query {
            fn at(&self) -> Result<ReportAt, Problem> {
                Ok(ReportAt {
                    at_position: self.at_position,
                    as_of: time_param("as_of", self.as_of.as_deref())?,
                    known_at: time_param("known_at", self.known_at.as_deref())?,
                    now: time_param("now", self.now.as_deref())?,
                })
            }
        }
    )*};
}

report_at!(
    AtParams,
    FunnelQuery,
    RepsQuery,
    ScorecardQuery,
    RetentionQuery,
    RankingQuery
);

/// Query parameters of the funnel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `source`, `rep` or `cohort`.
    pub by: Option<String>,
    /// `month` (default) or `quarter`.
    pub cohort: Option<String>,
    pub fresh: Option<bool>,
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// Query parameters of the rep report.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepsQuery {
    /// `day`, `week`, `month`, `quarter` (default) or `year`.
    pub period: Option<String>,
    pub rep: Option<String>,
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// Query parameters of the retention report.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionQuery {
    /// `day`, `week`, `month`, `quarter` (default) or `year`.
    pub period: Option<String>,
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// Query parameters of the customer ranking.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankingQuery {
    /// `day`, `week`, `month`, `quarter` (default) or `year`.
    pub period: Option<String>,
    /// A time or period inside the period whose customers are listed.
    #[serde(rename = "in")]
    pub within: Option<String>,
    /// How many customers to list (0: all).
    pub limit: Option<usize>,
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// Query parameters of the rep scorecard.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardQuery {
    /// A quarter (`2026-Q3`), or any time or period inside one (`2026-08`); default the latest.
    pub quarter: Option<String>,
    pub rep: Option<String>,
    pub at_position: Option<u64>,
    pub as_of: Option<String>,
    pub known_at: Option<String>,
    pub now: Option<String>,
}

/// The `period` parameter: `day`, `week`, `month`, `quarter` (default) or `year`.
fn period_param(period: Option<&str>) -> Result<Period, Problem> {
    Ok(match period {
        Some("day") => Period::Day,
        Some("week") => Period::Week,
        Some("month") => Period::Month,
        None | Some("quarter") => Period::Quarter,
        Some("year") => Period::Year,
        Some(other) => {
            return Err(Problem::bad_request(
                "period",
                format!("period {other:?}: give day, week, month, quarter or year"),
            ));
        }
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(t)| t)
        .map_err(|e| Problem::bad_request("(query)", e.body_text()))
}

/// The queries to answer with: bounded in number and time when the request replays the log.
async fn bounded<'a>(
    state: &'a Shared,
    expensive: bool,
) -> Result<(Queries, Option<SemaphorePermit<'a>>), Problem> {
    if !expensive {
        return Ok((state.queries.clone(), None));
    }
    let permit = state.expensive.try_acquire().map_err(|_| {
        Problem::unavailable(
            "too-many-expensive-queries",
            format!(
                "{} past-date or fresh reports are running (HTTP_EXPENSIVE_QUERIES_MAX); try again shortly, or ask for the kept report",
                state.limits.expensive_queries
            ),
            2,
        )
    })?;
    let seconds = state.limits.expensive_query_seconds;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    Ok((state.queries.with_deadline(deadline), Some(permit)))
}

fn respond(
    format: Format,
    write: impl FnOnce(&mut Vec<u8>, Format) -> std::io::Result<()>,
) -> Result<Response, Problem> {
    let mut body = Vec::new();
    write(&mut body, format).map_err(Problem::internal)?;
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        _ => "application/json",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `GET /v1/reports/funnel`.
pub async fn funnel(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<FunnelQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let at = q.at()?;
    let by = match q.by.as_deref() {
        None | Some("") | Some("none") => None,
        Some("source") => Some(GroupBy::Source),
        Some("rep") => Some(GroupBy::Rep),
        Some("cohort") => Some(GroupBy::Cohort),
        Some(other) => {
            return Err(Problem::bad_request(
                "by",
                format!("by {other:?}: give source, rep or cohort"),
            ));
        }
    };
    let cohort = match q.cohort.as_deref() {
        None | Some("month") => Period::Month,
        Some("quarter") => Period::Quarter,
        Some("year") => Period::Year,
        Some(other) => {
            return Err(Problem::bad_request(
                "cohort",
                format!("cohort {other:?}: give month, quarter or year"),
            ));
        }
    };
    let from = q
        .from
        .as_deref()
        .map(|v| {
            parse_time_start(v).map_err(|e| Problem::bad_request("from", format!("from: {e}")))
        })
        .transpose()?;
    let to = time_param("to", q.to.as_deref())?;
    let fresh = q.fresh.unwrap_or(false);
    let request = FunnelRequest {
        params: FunnelParams {
            from,
            to,
            by,
            cohort,
        },
        at,
        fresh,
    };
    let (queries, _permit) = bounded(&state, fresh || at.is_replay()).await?;
    let report = queries.funnel(request).await?;
    respond(format_of(&headers), |out, f| write_funnel(out, f, &report))
}

/// `GET /v1/reports/reps`.
pub async fn reps(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<RepsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let at = q.at()?;
    let period = period_param(q.period.as_deref())?;
    let request = RepsRequest {
        params: RepsParams { period, rep: q.rep },
        at,
    };
    let (queries, _permit) = bounded(&state, at.is_replay()).await?;
    let report = queries.reps(request).await?;
    respond(format_of(&headers), |out, f| write_reps(out, f, &report))
}

/// `GET /v1/reports/retention`.
pub async fn retention(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<RetentionQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let at = q.at()?;
    let request = RetentionRequest {
        params: RetentionParams {
            period: period_param(q.period.as_deref())?,
        },
        at,
    };
    // The whole read model is read: bounded like a replay.
    let (queries, _permit) = bounded(&state, true).await?;
    let report = queries.retention(request).await?;
    respond(format_of(&headers), |out, f| {
        write_retention(out, f, &report)
    })
}

/// `GET /v1/reports/ranking`.
pub async fn ranking(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<RankingQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let at = q.at()?;
    let within = match q.within.as_deref() {
        None => None,
        Some(text) => Some(
            parse_time_start(text).map_err(|e| Problem::bad_request("in", format!("in: {e}")))?,
        ),
    };
    let request = RankingRequest {
        params: RankingParams {
            period: period_param(q.period.as_deref())?,
            within,
            limit: q.limit.unwrap_or(RANKING_LIMIT_DEFAULT),
        },
        at,
    };
    // The whole read model is read: bounded like a replay.
    let (queries, _permit) = bounded(&state, true).await?;
    let report = queries.ranking(request).await?;
    respond(format_of(&headers), |out, f| write_ranking(out, f, &report))
}

/// `GET /v1/reports/qualification`.
pub async fn qualification(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<AtParams>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let request = QualificationRequest { at: q.at()? };
    // The whole read model is read: bounded like a replay.
    let (queries, _permit) = bounded(&state, true).await?;
    let report = queries.qualification(request).await?;
    respond(format_of(&headers), |out, f| {
        write_qualification(out, f, &report)
    })
}

/// `GET /v1/reports/scorecard`.
pub async fn scorecard(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<ScorecardQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let q = query(q)?;
    let at = q.at()?;
    let quarter = match q.quarter.as_deref() {
        None => None,
        Some(text) => {
            Some(quarter_of(text).map_err(|e| Problem::bad_request("quarter", e.to_string()))?)
        }
    };
    let request = ScorecardRequest {
        quarter,
        rep: q.rep,
        at,
    };
    let (queries, _permit) = bounded(&state, at.is_replay()).await?;
    let report = queries.scorecard(request).await?;
    respond(format_of(&headers), |out, f| {
        write_scorecard(out, f, &report)
    })
}

/// `GET /v1/reports/pipeline`.
pub async fn pipeline(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<AtParams>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let at = query(q)?.at()?;
    let (queries, _permit) = bounded(&state, at.is_replay()).await?;
    let report = queries
        .pipeline(PipelineRequest { at, owner: None })
        .await?;
    respond(format_of(&headers), |out, f| {
        write_pipeline(out, f, &report, &Default::default())
    })
}

/// `GET /v1/customers/{customer}/report`: one customer's lifecycle (the CLI's `customer`).
pub async fn customer(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    Path(customer): Path<String>,
    q: Result<Query<AtParams>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::Reports)?;
    let at = query(q)?.at()?;
    // One customer's past by time is a replay of its own stream only: cheap. At a log position
    // it is a replay of the log up to it: bounded like every replay.
    let (queries, _permit) = bounded(&state, at.at_position.is_some()).await?;
    let report = queries
        .customer(CustomerRequest {
            customer_id: customer,
            at,
        })
        .await?;
    respond(format_of(&headers), |out, f| {
        write_customer(out, f, &report)
    })
}

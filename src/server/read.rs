//! Reading the log itself (auditors): a customer's history, the log in pages, and the live feed
//! (Server-Sent Events, resumable with `Last-Event-ID`).

use super::Shared;
use super::auth::Caller;
use super::problem::Problem;
use crate::present::history::history_json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream::Stream;
use pipeline_ledger::access::Action;
use pipeline_ledger::domain::CustomerId;
use pipeline_ledger::ledger::HistoryError;
use pipeline_ledger::ledger::codec::customer_of_stream;
use pipeline_ledger::ledger::{Ledger, PersonalView};
use pipeline_ledger::limits::HTTP_LOG_PAGE_EVENTS_MAX;
use pipeline_ledger::projections::meta::ReportAt;
use pipeline_ledger::projections::time::parse_time_end;
use pipeline_ledger::store::{Record, SubscriptionMessage};
use serde::Deserialize;
use std::time::Duration;

/// The media type of the log's pages.
pub const NDJSON: &str = "application/x-ndjson";

/// Parses an end-of-range time parameter (a period means its last instant, UTC).
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    value
        .map(|v| parse_time_end(v).map_err(|e| Problem::bad_request(name, format!("{name}: {e}"))))
        .transpose()
}

/// Query parameters of a history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    pub as_of: Option<String>,
    pub known_at: Option<String>,
}

/// `GET /v1/customers/{customer}/history`: the customer's events in stream order (the CLI's
/// `history --json`), cut at `as_of` (occurred) and `known_at` (recorded) when given.
pub async fn history(
    State(state): State<Shared>,
    caller: Caller,
    Path(customer): Path<String>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::ReadLog)?;
    let Query(params) = params.map_err(|e| Problem::bad_request("(query)", e.body_text()))?;
    let at = ReportAt {
        as_of: time_param("as_of", params.as_of.as_deref())?,
        known_at: time_param("known_at", params.known_at.as_deref())?,
        ..ReportAt::default()
    };
    let unknown = || Problem::not_found("no such customer (no events)");
    let id = CustomerId::new(&customer).map_err(|_| unknown())?;
    let events = match state.ledger.history(&id).await {
        Ok(events) => events,
        Err(HistoryError::UnknownCustomer(_)) => return Err(unknown()),
        Err(e) => return Err(Problem::internal(e)),
    };
    let mut events: Vec<_> = events.into_iter().filter(|e| at.includes(e)).collect();
    state
        .ledger
        .reveal(&mut events, view_of(&caller))
        .map_err(Problem::internal)?;
    let mut body = Vec::new();
    history_json(&events, &mut body).map_err(Problem::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Query parameters of a page of the log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Events after this position (exclusive); from the start when absent.
    pub after: Option<u64>,
    /// Events on the page (default and most: [`HTTP_LOG_PAGE_EVENTS_MAX`]).
    pub limit: Option<usize>,
}

/// `GET /v1/log?after=P&limit=N`: a page of the log as NDJSON (the export format). The
/// `Next-After` header is the position to ask after for the next page; an empty page means the
/// reader has caught up.
pub async fn log(
    State(state): State<Shared>,
    caller: Caller,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::ReadLog)?;
    let view = view_of(&caller);
    let Query(params) = params.map_err(|e| Problem::bad_request("(query)", e.body_text()))?;
    let limit = params.limit.unwrap_or(HTTP_LOG_PAGE_EVENTS_MAX);
    if limit == 0 || limit > HTTP_LOG_PAGE_EVENTS_MAX {
        return Err(Problem::bad_request(
            "limit",
            format!("limit is 1 to {HTTP_LOG_PAGE_EVENTS_MAX} events (HTTP_LOG_PAGE_EVENTS_MAX)"),
        ));
    }
    let page = state
        .store
        .read_all(params.after, limit)
        .await
        .map_err(|e| Problem::unavailable("store-unavailable", e.to_string(), 1))?;
    let mut body = Vec::new();
    for record in page
        .iter()
        .filter(|r| customer_of_stream(&r.stream).is_some())
    {
        line_of(&state.ledger, record, view, &mut body)?;
        body.push(b'\n');
    }
    let next = page.last().map(|r| r.position).or(params.after);
    let mut response = ([(header::CONTENT_TYPE, NDJSON)], body).into_response();
    if let Some(next) = next
        && let Ok(v) = HeaderValue::from_str(&next.to_string())
    {
        response.headers_mut().insert("next-after", v);
    }
    Ok(response)
}

/// What a caller gets of personal fields: decrypted for the roles allowed to read them
/// (auditor, admin), withheld for everyone else.
fn view_of(caller: &Caller) -> PersonalView {
    if caller.may(Action::ReadPersonalData).is_ok() {
        PersonalView::Decrypted
    } else {
        PersonalView::Redacted
    }
}

fn line_of(
    ledger: &Ledger,
    record: &Record,
    view: PersonalView,
    out: &mut Vec<u8>,
) -> Result<(), Problem> {
    let line = ledger.line_of(record, view).map_err(Problem::internal)?;
    serde_json::to_writer(&mut *out, &line).map_err(Problem::internal)
}

/// Query parameters of the feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    /// Events after this position; `Last-Event-ID` takes precedence (a resumed connection).
    pub after: Option<u64>,
}

/// `GET /v1/feed`: every event after a position as Server-Sent Events, then live ones as they
/// are recorded. Each event's `id` is its log position, so a client that reconnects with
/// `Last-Event-ID` resumes exactly after the last event it received. A `caught-up` event says
/// when the past has been delivered.
pub async fn feed(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.may(Action::ReadLog)?;
    let view = view_of(&caller);
    let Query(params) = params.map_err(|e| Problem::bad_request("(query)", e.body_text()))?;
    let after = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request(
                        "Last-Event-ID",
                        "Last-Event-ID is the position of the last event received",
                    )
                })?,
        ),
        None => params.after,
    };
    let Ok(permit) = state.feeds.clone().try_acquire_owned() else {
        return Err(Problem::unavailable(
            "too-many-subscribers",
            "the server has as many live-feed subscribers as it serves (HTTP_FEED_SUBSCRIBERS_MAX); try again later",
            5,
        ));
    };
    let subscription = state
        .store
        .subscribe_all(after)
        .await
        .map_err(|e| Problem::unavailable("store-unavailable", e.to_string(), 1))?;
    let stopping = state.stopping.clone();
    let stream = events(subscription, stopping, permit, state.ledger.clone(), view);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// The feed's events, until the subscription fails or the server stops.
fn events(
    mut subscription: Box<dyn pipeline_ledger::store::Subscription>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
    ledger: Ledger,
    view: PersonalView,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    async_stream_like(move |tx| async move {
        let _permit = permit;
        loop {
            let message = tokio::select! {
                m = subscription.next() => m,
                _ = stopping.wait_for(|s| *s) => return,
            };
            // An error ends the feed (after saying why); the client reconnects with its
            // Last-Event-ID and misses nothing.
            let end = message.is_err();
            let event = match message {
                Ok(SubscriptionMessage::Event(record)) => {
                    if customer_of_stream(&record.stream).is_none() {
                        continue;
                    }
                    let mut data = Vec::new();
                    if line_of(&ledger, &record, view, &mut data).is_err() {
                        continue;
                    }
                    Event::default()
                        .id(record.position.to_string())
                        .event(&record.event_type)
                        .data(String::from_utf8_lossy(&data))
                }
                Ok(SubscriptionMessage::CaughtUp { position }) => Event::default()
                    .event("caught-up")
                    .data(serde_json::json!({ "position": position }).to_string()),
                Ok(SubscriptionMessage::Retrying(notice)) => Event::default()
                    .event("retrying")
                    .data(serde_json::json!({ "notice": notice.to_string() }).to_string()),
                Err(e) => Event::default()
                    .event("error")
                    .data(serde_json::json!({ "detail": e.to_string() }).to_string()),
            };
            if tx.send(Ok(event)).await.is_err() || end {
                return;
            }
        }
    })
}

/// A stream fed by a task through a bounded channel (the feed's backpressure: a slow reader
/// holds the task at `send`, never grows a buffer).
fn async_stream_like<T, F, Fut>(body: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

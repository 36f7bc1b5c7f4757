//! Appends over HTTP: one event (`POST /v1/customers/{customer}/events`) or an NDJSON batch
//! (`POST /v1/events`), both through the same validation and domain rules as `record` and
//! `import`. The server sets `recorded_by` to the token's name: a writer cannot record as
//! someone else, and `recorded_at` is the server's clock, never the caller's.

use super::Shared;
use super::auth::Caller;
use super::problem::{LineProblem, Problem};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use pipeline_ledger::access::{Action, Principal};
use pipeline_ledger::contract::line::{LineError, parse_unique_json};
use pipeline_ledger::domain::EventType;
use pipeline_ledger::ledger::{FilledIn, RecordOptions};
use pipeline_ledger::limits::{
    BAD_LINES_REPORTED_MAX, HTTP_BATCH_BYTES_MAX, HTTP_BATCH_EVENTS_MAX, HTTP_EVENT_BODY_BYTES_MAX,
    LINE_BYTES_MAX,
};
use pipeline_ledger::store::ExpectedRevision;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Instant;
use uuid::Uuid;

/// Where an appended event landed.
#[derive(Debug, Serialize)]
pub struct Appended {
    pub event_id: Uuid,
    pub customer_id: String,
    /// The customer stream's revision after the append (send it as `If-Match` next time).
    pub revision: u64,
    pub position: u64,
    /// False when this was a retry of an event already recorded: nothing new was written.
    pub written: bool,
    /// Who the event is recorded by: the token's name.
    pub recorded_by: String,
}

/// What a batch did.
#[derive(Debug, Serialize)]
pub struct BatchAppended {
    pub events: u64,
    pub written: u64,
    pub already_present: u64,
    pub last_position: Option<u64>,
}

fn body_problem(rejection: BytesRejection, limit: usize, name: &str) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {limit} bytes ({name}); nothing was written"),
        );
    }
    Problem::bad_request("(body)", format!("the body could not be read: {rejection}"))
}

fn line_problem(e: &LineError) -> Problem {
    let detail = e.to_string();
    let mut p = Problem::unprocessable("", detail.clone());
    p.field = match e {
        LineError::Field { field, .. } => Some(format!("/{}", field.replace('.', "/"))),
        LineError::RepeatedKey { pointer, key } => Some(format!("{pointer}/{key}")),
        LineError::Schema(v) => v.first().map(|(path, _)| path.clone()),
        _ => None,
    };
    p
}

/// Fills in what the server owns in a caller's event object and refuses what it may not say.
/// `customer` is the path's customer (single appends) or `None` (a batch line names its own).
fn complete(
    object: &mut Map<String, Value>,
    principal: &Principal,
    customer: Option<&str>,
) -> Result<FilledIn, (String, String)> {
    let refuse = |field: &str, why: &str| Err((format!("/{field}"), why.to_string()));
    match object.get("recorded_by") {
        Some(Value::String(by)) if *by == principal.name => {}
        Some(_) => {
            return refuse(
                "recorded_by",
                "is set by the server to the token's name; leave it out (a writer cannot record as someone else)",
            );
        }
        None => {}
    }
    if object.contains_key("recorded_at") {
        return refuse(
            "recorded_at",
            "is set by the server's clock; leave it out (`import` keeps a migrated history's recorded_at)",
        );
    }
    for field in ["revision", "position"] {
        if object.contains_key(field) {
            return refuse(field, "is given by the store; leave it out");
        }
    }
    if let Some(customer) = customer {
        match object.get("customer_id") {
            Some(Value::String(c)) if c == customer => {}
            Some(_) => return refuse("customer_id", "differs from the customer in the path"),
            None => {
                object.insert("customer_id".into(), Value::String(customer.into()));
            }
        }
    }
    let mut filled = FilledIn {
        occurred_at: false,
        recorded_by: false,
    };
    if !object.contains_key("recorded_by") {
        object.insert("recorded_by".into(), Value::String(principal.name.clone()));
    }
    if !object.contains_key("occurred_at") {
        object.insert("occurred_at".into(), Value::String(Utc::now().to_rfc3339()));
        filled.occurred_at = true;
    }
    if !object.contains_key("event_id") {
        object.insert("event_id".into(), Value::String(Uuid::now_v7().to_string()));
    }
    if !object.contains_key("schema_version")
        && let Some(t) = object
            .get("type")
            .and_then(Value::as_str)
            .and_then(EventType::parse)
    {
        object.insert("schema_version".into(), Value::from(t.current_version()));
    }
    Ok(filled)
}

/// The expected revision, from the body's `expected_revision` or `If-Match` (not both).
fn expected_revision(
    object: &mut Map<String, Value>,
    headers: &HeaderMap,
) -> Result<Option<ExpectedRevision>, Problem> {
    let from_body = match object.remove("expected_revision") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(ExpectedRevision::Exact),
        Some(Value::String(s)) if s == "no_stream" => Some(ExpectedRevision::NoStream),
        Some(_) => {
            return Err(Problem::unprocessable(
                "/expected_revision",
                "expected_revision is a stream revision (an integer ≥ 0) or \"no_stream\"",
            ));
        }
    };
    let from_header = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or("").trim();
            let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            if text == "*" {
                Some(ExpectedRevision::StreamExists)
            } else {
                match text.parse::<u64>() {
                    Ok(r) => Some(ExpectedRevision::Exact(r)),
                    Err(_) => {
                        return Err(Problem::bad_request(
                            "If-Match",
                            "If-Match is the customer's stream revision, as the ETag of an append gave it (\"5\"), or *",
                        ));
                    }
                }
            }
        }
    };
    match (from_body, from_header) {
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "If-Match",
            "give the expected revision once: in If-Match or in expected_revision, not both",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// `POST /v1/customers/{customer}/events`: appends one event through the rules.
pub async fn append_one(
    State(state): State<Shared>,
    caller: Caller,
    Path(customer): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let principal = caller.may(Action::Append)?.clone();
    let body =
        body.map_err(|r| body_problem(r, HTTP_EVENT_BODY_BYTES_MAX, "HTTP_EVENT_BODY_BYTES_MAX"))?;
    if body.len() > HTTP_EVENT_BODY_BYTES_MAX {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!(
                "the body is {} bytes, larger than {HTTP_EVENT_BODY_BYTES_MAX} (HTTP_EVENT_BODY_BYTES_MAX); nothing was written",
                body.len()
            ),
        ));
    }
    let value =
        parse_unique_json(&body, HTTP_EVENT_BODY_BYTES_MAX).map_err(|e| line_problem(&e))?;
    let Value::Object(mut object) = value else {
        return Err(Problem::unprocessable(
            "",
            "the body is one JSON object: an event",
        ));
    };
    let expected = expected_revision(&mut object, &headers)?;
    let filled_in = complete(&mut object, &principal, Some(&customer))
        .map_err(|(field, why)| Problem::unprocessable(&field, format!("{field}: {why}")))?;
    // The schema, the history, the rules and the append run on the appends runtime (see
    // `appends_runtime`); this handler waits for them. If the request is dropped (its timeout,
    // the client gone), the append is aborted at its next step, as it was when it ran here.
    let ledger = state.ledger.clone();
    let started = Instant::now();
    let mut append = AbortOnDrop(state.appends.spawn(async move {
        let valid = ledger
            .validator()
            .parse_value(Value::Object(object))
            .map_err(|e| line_problem(&e))?;
        let recorded = ledger
            .record_valid_with(
                valid,
                RecordOptions {
                    expected,
                    filled_in,
                },
            )
            .await;
        Ok::<_, Problem>((recorded, started.elapsed()))
    }));
    let (recorded, took) = (&mut *append)
        .await
        .map_err(|e| Problem::internal(format!("the append stopped unexpectedly: {e}")))??;
    state.metrics.observe_append(took, recorded.is_ok());
    let recorded = recorded?;
    let status = if recorded.written {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = Appended {
        event_id: recorded.event_id,
        customer_id: customer,
        revision: recorded.revision,
        position: recorded.position,
        written: recorded.written,
        recorded_by: principal.name,
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", recorded.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// A task aborted when its handle is dropped unfinished.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::ops::Deref for AbortOnDrop<T> {
    type Target = tokio::task::JoinHandle<T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> std::ops::DerefMut for AbortOnDrop<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// The lines of a batch as they arrive: each checked and completed, kept for the one atomic
/// import at the end; the bad ones counted and the first of them reported.
struct BatchLines<'p> {
    principal: &'p Principal,
    /// The completed lines, as NDJSON for `import`.
    out: Vec<u8>,
    bad: Vec<LineProblem>,
    bad_total: usize,
    events: usize,
    line_no: u64,
}

impl BatchLines<'_> {
    /// Takes the next line (without its newline). Fails only when the batch is over its event
    /// limit; a bad line is noted and the batch goes on, so that every bad line is reported.
    fn line(&mut self, raw: &[u8]) -> Result<(), Problem> {
        self.line_no += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.events += 1;
        if self.events > HTTP_BATCH_EVENTS_MAX {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch-too-large",
                format!(
                    "the batch has more than {HTTP_BATCH_EVENTS_MAX} events (HTTP_BATCH_EVENTS_MAX); nothing was written. Split it, or use `pipeline-ledger import`"
                ),
            ));
        }
        let line = self.line_no;
        let mut refuse = |detail: String| {
            self.bad_total += 1;
            if self.bad.len() < BAD_LINES_REPORTED_MAX {
                self.bad.push(LineProblem { line, detail });
            }
        };
        let value = match parse_unique_json(raw, LINE_BYTES_MAX) {
            Ok(v) => v,
            Err(e) => {
                refuse(e.to_string());
                return Ok(());
            }
        };
        let Value::Object(mut object) = value else {
            refuse("a line is one JSON object: an event".into());
            return Ok(());
        };
        if let Err((field, why)) = complete(&mut object, self.principal, None) {
            refuse(format!("field {field}: {why}"));
            return Ok(());
        }
        serde_json::to_writer(&mut self.out, &Value::Object(object)).expect("values serialize");
        self.out.push(b'\n');
        Ok(())
    }
}

/// The answer to a batch body over [`HTTP_BATCH_BYTES_MAX`].
fn batch_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!(
            "the body is larger than {HTTP_BATCH_BYTES_MAX} bytes (HTTP_BATCH_BYTES_MAX); nothing was written"
        ),
    )
}

/// `POST /v1/events`: an NDJSON batch, every line validated and decided, then all written
/// atomically or nothing (on KurrentDB: atomic per customer stream, as `import` is there).
///
/// The body is read as it streams in: each line is checked as soon as it is whole, and the raw
/// body is never held; only the checked lines are, for the one atomic import at the end. A
/// `Content-Length` over the limit is refused before anything is read.
pub async fn append_batch(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<BatchAppended>, Problem> {
    use futures_util::StreamExt;
    let principal = caller.may(Action::Append)?.clone();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > HTTP_BATCH_BYTES_MAX) {
        return Err(batch_too_large());
    }
    let mut batch = BatchLines {
        principal: &principal,
        out: Vec::new(),
        bad: Vec::new(),
        bad_total: 0,
        events: 0,
        line_no: 0,
    };
    // A line cut by a chunk's end waits here for the rest of it.
    let mut partial: Vec<u8> = Vec::new();
    let mut received = 0usize;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::bad_request("(body)", format!("the body could not be read: {e}"))
        })?;
        received += chunk.len();
        if received > HTTP_BATCH_BYTES_MAX {
            return Err(batch_too_large());
        }
        let mut rest: &[u8] = &chunk;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            if partial.is_empty() {
                batch.line(&rest[..newline])?;
            } else {
                partial.extend_from_slice(&rest[..newline]);
                batch.line(&std::mem::take(&mut partial))?;
            }
            rest = &rest[newline + 1..];
        }
        partial.extend_from_slice(rest);
    }
    if !partial.is_empty() {
        batch.line(&partial)?;
    }
    let BatchLines {
        out: lines_out,
        bad,
        bad_total,
        events,
        ..
    } = batch;
    if bad_total > 0 {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-batch",
            format!("{bad_total} bad line(s) in the batch; nothing was written"),
        );
        p.errors = bad;
        return Err(p);
    }
    if events == 0 {
        return Err(Problem::unprocessable(
            "(body)",
            "the batch is empty: send NDJSON, one event per line",
        ));
    }
    // On the appends runtime, as a single append is.
    let ledger = state.ledger.clone();
    let started = Instant::now();
    let mut import = AbortOnDrop(state.appends.spawn(async move {
        let mut input = std::io::Cursor::new(lines_out);
        let result = ledger.import(&mut input, &|_| {}).await;
        (result, started.elapsed())
    }));
    let (result, took) = (&mut *import)
        .await
        .map_err(|e| Problem::internal(format!("the batch stopped unexpectedly: {e}")))?;
    state.metrics.observe_append(took, result.is_ok());
    let report = result?;
    Ok(Json(BatchAppended {
        events: report.events,
        written: report.written,
        already_present: report.already_present,
        last_position: report.last_position,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_ledger::access::Role;

    fn writer() -> Principal {
        Principal {
            name: "crm-sync".into(),
            role: Role::Writer,
        }
    }

    #[test]
    fn the_server_sets_recorded_by_and_refuses_another_name() {
        let mut o = Map::new();
        complete(&mut o, &writer(), Some("acme")).unwrap();
        assert_eq!(o["recorded_by"], "crm-sync");
        assert_eq!(o["customer_id"], "acme");
        let mut o = Map::new();
        o.insert("recorded_by".into(), "sales-director".into());
        let (field, _) = complete(&mut o, &writer(), Some("acme")).unwrap_err();
        assert_eq!(field, "/recorded_by");
        let mut o = Map::new();
        o.insert("recorded_at".into(), "2020-01-01T00:00:00Z".into());
        assert_eq!(
            complete(&mut o, &writer(), None).unwrap_err().0,
            "/recorded_at"
        );
        let mut o = Map::new();
        o.insert("customer_id".into(), "other".into());
        assert_eq!(
            complete(&mut o, &writer(), Some("acme")).unwrap_err().0,
            "/customer_id"
        );
    }

    #[test]
    fn the_expected_revision_comes_from_the_body_or_if_match_not_both() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, "\"4\"".parse().unwrap());
        let mut o = Map::new();
        assert_eq!(
            expected_revision(&mut o, &h).unwrap(),
            Some(ExpectedRevision::Exact(4))
        );
        o.insert("expected_revision".into(), 4.into());
        assert!(expected_revision(&mut o, &h).is_err());
        let mut o = Map::new();
        o.insert("expected_revision".into(), "no_stream".into());
        assert_eq!(
            expected_revision(&mut o, &HeaderMap::new()).unwrap(),
            Some(ExpectedRevision::NoStream)
        );
        h.insert(header::IF_MATCH, "soon".parse().unwrap());
        assert!(expected_revision(&mut Map::new(), &h).is_err());
    }
}

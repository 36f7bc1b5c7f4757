//! The OpenAPI 3.1 document of `/v1`, generated here from the route table below and the
//! published contract (`contract::interchange_line_schema`, the same code that writes
//! `schemas/interchange-line.json`), served at `/v1/openapi.json` and checked in as
//! `schemas/openapi.json` (a test fails when the copy is stale).
//!
//! Within `/v1`, changes are additive only: new fields and new endpoints, never a removed or
//! renamed one, nor a changed meaning.

use axum::Json;
use pipeline_ledger::contract::interchange_line_schema;
use pipeline_ledger::domain::EventType;
use serde_json::{Map, Value, json};

/// A parameter of an operation.
#[derive(Clone)]
struct Param {
    name: &'static str,
    place: &'static str,
    schema: Value,
    description: &'static str,
}

/// One operation of the API.
struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// The roles allowed (`None`: no token needed).
    roles: Option<&'static str>,
    params: Vec<Param>,
    request: Option<(&'static str, Value)>,
    /// Success responses: status, description, media type, schema.
    ok: Vec<(u16, &'static str, &'static str, Value)>,
    /// Error statuses beyond the ones every authenticated route has.
    errors: &'static [u16],
}

fn string_param(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: "query",
        schema: json!({"type": "string"}),
        description,
    }
}

fn time_params() -> Vec<Param> {
    vec![
        Param {
            name: "at_position",
            place: "query",
            schema: json!({"type": "integer", "minimum": 0}),
            description: "Reproduce the report as it was at this log position (replays the log up to it).",
        },
        string_param(
            "as_of",
            "The pipeline as it happened: only events that occurred at or before this time (RFC 3339, or a period: 2024-03-31, 2024-W13, 2024-03, 2024-Q1 or 2024, meaning its last instant, UTC).",
        ),
        string_param(
            "known_at",
            "The pipeline as the ledger knew it: only events recorded at or before this time.",
        ),
        string_param(
            "now",
            "The clock for stalled, dormant and overdue figures (default: as_of/known_at, else the latest time in the log).",
        ),
    ]
}

fn customer_param() -> Param {
    Param {
        name: "customer",
        place: "path",
        schema: json!({"allOf": [{"$ref": "#/components/schemas/CustomerId"}], "examples": ["cust-00001"]}),
        description: "The customer id.",
    }
}

fn report(description: &'static str) -> Vec<(u16, &'static str, &'static str, Value)> {
    vec![
        (
            200,
            description,
            "application/json",
            json!({"type": "object", "description": "The same document as the command line's --json; its fields are defined in projections/README.md."}),
        ),
        (
            200,
            description,
            "text/csv",
            json!({"type": "string", "description": "With Accept: text/csv: the report's main table, as the command line's --csv."}),
        ),
    ]
}

fn operations() -> Vec<Operation> {
    let ndjson = json!({"type": "string", "description": "NDJSON: one InterchangeLine per line."});
    vec![
        Operation {
            method: "post",
            path: "/v1/customers/{customer}/events",
            summary: "Append one event to a customer, through the domain rules. The server sets recorded_by (the token's name) and recorded_at. The expected revision comes from expected_revision or If-Match; the same event_id with the same content returns the original result (200), with other content 409; a rule violation is 422.",
            roles: Some("writer"),
            params: vec![
                customer_param(),
                Param {
                    name: "If-Match",
                    place: "header",
                    schema: json!({"type": "string"}),
                    description: "The customer stream's revision the caller decided on (\"5\", as the ETag of the last append gave it), or * for a stream that exists.",
                },
            ],
            request: Some(("application/json", json!({"$ref": "#/components/schemas/AppendEvent"}))),
            ok: vec![
                (201, "Recorded.", "application/json", json!({"$ref": "#/components/schemas/Appended"})),
                (200, "A retry of an event already recorded: nothing new was written.", "application/json", json!({"$ref": "#/components/schemas/Appended"})),
            ],
            errors: &[400, 409, 412, 413, 422],
        },
        Operation {
            method: "post",
            path: "/v1/events",
            summary: "Append an NDJSON batch, atomically: every line is validated and decided, then all are written or none (on KurrentDB, atomic per customer stream only, as import is there). The server sets recorded_by on every line.",
            roles: Some("writer"),
            params: vec![],
            request: Some((
                "application/x-ndjson",
                json!({"type": "array", "description": "NDJSON: each item is one line (a BatchLine), in order. More than HTTP_BATCH_EVENTS_MAX (10,000) lines, or more than HTTP_BATCH_BYTES_MAX (32 MiB), is answered 413.", "items": {"$ref": "#/components/schemas/BatchLine"}}),
            )),
            ok: vec![(200, "Written (or already present).", "application/json", json!({"$ref": "#/components/schemas/BatchAppended"}))],
            errors: &[400, 413, 422],
        },
        Operation {
            method: "get",
            path: "/v1/customers/{customer}/history",
            summary: "A customer's events in stream order (the command line's history --json), cut at as_of and known_at when given. Personal fields are decrypted for the auditor role only; others get {\"withheld\": \"redacted\"}, and an erased customer's read {\"withheld\": \"erased\"}.",
            roles: Some("auditor, admin"),
            params: vec![
                customer_param(),
                string_param("as_of", "Only events that occurred at or before this time."),
                string_param("known_at", "Only events recorded at or before this time."),
            ],
            request: None,
            ok: vec![(200, "The events.", "application/json", json!({"type": "array", "items": {"type": "object"}}))],
            errors: &[400, 404],
        },
        Operation {
            method: "get",
            path: "/v1/customers/{customer}/report",
            summary: "One customer's lifecycle state, deals, stage history and follow-ups (the command line's customer --json).",
            roles: Some("reader, auditor, admin"),
            params: [vec![customer_param()], time_params()].concat(),
            request: None,
            ok: report("The customer report."),
            errors: &[400, 404, 422],
        },
        Operation {
            method: "get",
            path: "/v1/log",
            summary: "A page of the log as NDJSON (the export format), after a position. The Next-After header is the position to ask after next; an empty page means caught up. Personal fields as for history.",
            roles: Some("auditor, admin"),
            params: vec![
                Param { name: "after", place: "query", schema: json!({"type": "integer", "minimum": 0}), description: "Events after this position (exclusive)." },
                Param { name: "limit", place: "query", schema: json!({"type": "integer", "minimum": 1, "maximum": pipeline_ledger::limits::HTTP_LOG_PAGE_EVENTS_MAX}), description: "Events on the page." },
            ],
            request: None,
            ok: vec![(200, "The page.", "application/x-ndjson", ndjson)],
            errors: &[400],
        },
        Operation {
            method: "get",
            path: "/v1/feed",
            summary: "Every event after a position as Server-Sent Events, then live ones as they are recorded. Each event's id is its log position: reconnect with Last-Event-ID to resume after it. A caught-up event marks the end of the past.",
            roles: Some("auditor, admin"),
            params: vec![
                Param { name: "after", place: "query", schema: json!({"type": "integer", "minimum": 0}), description: "Events after this position." },
                Param { name: "Last-Event-ID", place: "header", schema: json!({"type": "string"}), description: "The position of the last event received (takes precedence over after)." },
            ],
            request: None,
            ok: vec![(200, "The event stream.", "text/event-stream", json!({"type": "object", "description": "One Server-Sent Event: id is the log position, event the event type (or caught-up, retrying, error), data an InterchangeLine as JSON.", "properties": {"id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string"}, "retry": {"type": "integer"}}}))],
            errors: &[400],
        },
        Operation {
            method: "get",
            path: "/v1/reports/funnel",
            summary: "The funnel: stage conversion (cohort and period views), transitions, win rate, lost reasons, time in stage.",
            roles: Some("reader, auditor, admin"),
            params: [
                vec![
                    string_param("from", "Window start, inclusive (RFC 3339, or a period: 2024-03-31, 2024-W13, 2024-03, 2024-Q1 or 2024, meaning its first instant)."),
                    string_param("to", "Window end, inclusive (RFC 3339, or a period meaning its last instant)."),
                    Param { name: "by", place: "query", schema: json!({"type": "string", "enum": ["source", "rep", "cohort"]}), description: "Break the funnel down by lead source, rep (owner when the lead was sourced) or cohort." },
                    Param { name: "cohort", place: "query", schema: json!({"type": "string", "enum": ["month", "quarter", "year"]}), description: "Cohort granularity for by=cohort." },
                    Param { name: "fresh", place: "query", schema: json!({"type": "boolean"}), description: "Compute it now rather than read the kept funnel." },
                ],
                time_params(),
            ]
            .concat(),
            request: None,
            ok: report("The funnel report."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/reps",
            summary: "Rep activity and results per period.",
            roles: Some("reader, auditor, admin"),
            params: [
                vec![
                    Param { name: "period", place: "query", schema: json!({"type": "string", "enum": ["day", "week", "month", "quarter", "year"]}), description: "The period (default quarter)." },
                    string_param("rep", "Only this rep."),
                ],
                time_params(),
            ]
            .concat(),
            request: None,
            ok: report("The rep report."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/scorecard",
            summary: "The quarterly rep scorecard: activity, results and quality against the policy's targets, weighted, ranked, with the movement from the quarter before.",
            roles: Some("reader, auditor, admin"),
            params: [
                vec![
                    string_param("quarter", "The quarter (2026-Q3), or a time or period inside one; default the latest quarter with a rep row."),
                    string_param("rep", "Only this rep's row (ranks stay those among every rep)."),
                ],
                time_params(),
            ]
            .concat(),
            request: None,
            ok: report("The rep scorecard."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/retention",
            summary: "Retention: repeat orders, revenue from new and existing customers per period and currency, dormancy and re-engagement.",
            roles: Some("reader, auditor, admin"),
            params: [
                vec![
                    Param { name: "period", place: "query", schema: json!({"type": "string", "enum": ["day", "week", "month", "quarter", "year"]}), description: "The period of the per-period rows (default quarter)." },
                ],
                time_params(),
            ]
            .concat(),
            request: None,
            ok: report("The retention report."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/ranking",
            summary: "Customer ranking (80/20): customers classed A+ / A / B / C by revenue per period, the share of the top 20%, and the movement between classes; in the home currency with the policy's exchange rates, else per currency.",
            roles: Some("reader, auditor, admin"),
            params: [
                vec![
                    Param { name: "period", place: "query", schema: json!({"type": "string", "enum": ["day", "week", "month", "quarter", "year"]}), description: "The period (default quarter)." },
                    string_param("in", "List the customers of the period holding this time or period (2026-Q2, 2026-05, 2026-05-14, RFC 3339); default the latest period with revenue."),
                    Param { name: "limit", place: "query", schema: json!({"type": "integer", "minimum": 0}), description: "How many customers of the listed period (default 20; 0: all)." },
                ],
                time_params(),
            ]
            .concat(),
            request: None,
            ok: report("The customer ranking."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/qualification",
            summary: "Qualification: win rate and conversion by the lead worksheet's score and criteria (with the lift), the score's calibration per band, and by first-visit intent.",
            roles: Some("reader, auditor, admin"),
            params: time_params(),
            request: None,
            ok: report("The qualification report."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/reports/pipeline",
            summary: "Counts per state and stage, stalled deals and overdue follow-ups.",
            roles: Some("reader, auditor, admin"),
            params: time_params(),
            request: None,
            ok: report("The pipeline report."),
            errors: &[400, 422],
        },
        Operation {
            method: "get",
            path: "/v1/session",
            summary: "Who the caller is: the token's name and role.",
            roles: Some("any"),
            params: vec![],
            request: None,
            ok: vec![(200, "The caller.", "application/json", json!({"$ref": "#/components/schemas/Principal"}))],
            errors: &[],
        },
        Operation {
            method: "post",
            path: "/v1/session",
            summary: "The dashboard's login: the token goes into an HttpOnly, SameSite=Strict cookie (never to scripts, URLs or storage). The cookie authenticates reads only.",
            roles: None,
            params: vec![],
            request: Some(("application/json", json!({"type": "object", "required": ["token"], "additionalProperties": false, "properties": {"token": {"type": "string"}}}))),
            ok: vec![(200, "Logged in.", "application/json", json!({"$ref": "#/components/schemas/Principal"}))],
            errors: &[400, 401, 415, 422],
        },
        Operation {
            method: "delete",
            path: "/v1/session",
            summary: "The dashboard's logout: clears the cookie.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(204, "Logged out.", "", Value::Null)],
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/definitions",
            summary: "What every figure of the reports means, in the words of projections/README.md.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(200, "The definitions.", "application/json", json!({"type": "array", "items": {"type": "object", "required": ["key", "label", "text"], "properties": {"key": {"type": "string"}, "label": {"type": "string"}, "text": {"type": "string"}}}}))],
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/openapi.json",
            summary: "This document.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(200, "The OpenAPI document.", "application/json", json!({"type": "object"}))],
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/healthz",
            summary: "The process is up.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(200, "Up.", "text/plain", json!({"type": "string"}))],
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/readyz",
            summary: "Ready: the store answers and the read models are within READY_LAG_EVENTS_MAX events of the log.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(200, "Ready.", "application/json", json!({"type": "object"}))],
            errors: &[503],
        },
        Operation {
            method: "get",
            path: "/metrics",
            summary: "Prometheus text format: appends and their latency, projection checkpoint and lag, requests by route and status.",
            roles: None,
            params: vec![],
            request: None,
            ok: vec![(200, "The metrics.", "text/plain", json!({"type": "string"}))],
            errors: &[],
        },
    ]
}

/// Rewrites the contract's `#/$defs/X` references to `#/components/schemas/X`.
fn rehome_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{name}");
            }
            map.values_mut().for_each(rehome_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rehome_refs),
        _ => {}
    }
}

/// The components: the published line schema and its definitions, the append body derived
/// from it, and the API's own documents.
fn components() -> Map<String, Value> {
    let mut line = interchange_line_schema();
    rehome_refs(&mut line);
    let Value::Object(mut line) = line else {
        unreachable!("the line schema is an object")
    };
    line.remove("$schema");
    let mut schemas = match line.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    // The append body: the line's fields, less what the server or the path sets, plus the
    // expected revision; `data` is any of the published payload schemas at their current
    // versions (referenced, never described twice). The line's own `if`/`then` pairing of type
    // and data stays in `InterchangeLine`, which the server applies as well.
    let mut props = match line.get("properties") {
        Some(Value::Object(p)) => p.clone(),
        _ => Map::new(),
    };
    for field in ["recorded_at", "revision", "position"] {
        props.remove(field);
    }
    let payloads: Vec<Value> = EventType::ALL
        .iter()
        .map(|t| json!({"$ref": format!("#/components/schemas/{}.v{}", t.as_str(), t.current_version())}))
        .collect();
    props.insert(
        "data".into(),
        json!({"description": "The event's data, per the published schema of `type` at `schema_version`.", "anyOf": payloads}),
    );
    props.insert(
        "expected_revision".into(),
        json!({"description": "The revision of the customer's stream the caller decided on, or \"no_stream\" for a new customer; leave it out to let the ledger decide on the current history.", "oneOf": [{"type": "integer", "minimum": 0}, {"const": "no_stream"}]}),
    );
    if let Some(Value::Object(by)) = props.get_mut("recorded_by") {
        by.insert(
            "description".into(),
            "Set by the server to the token's name; when given it must be that name.".into(),
        );
    }
    let append = json!({
        "title": "AppendEvent",
        "description": "An event for the customer in the path: an InterchangeLine less what the server sets (recorded_at, revision, position; recorded_by is the token's name). event_id (the idempotency key), occurred_at (now) and schema_version (the current one) may be left out.",
        "type": "object",
        "additionalProperties": false,
        "required": ["type", "data"],
        "properties": props,
    });
    let mut batch_line = append.clone();
    batch_line["title"] = "BatchLine".into();
    batch_line["description"] =
        "One line of a batch: an AppendEvent that names its customer.".into();
    batch_line["required"] = json!(["type", "data", "customer_id"]);
    if let Some(Value::Object(p)) = batch_line.get_mut("properties") {
        p.remove("expected_revision");
    }
    schemas.insert("InterchangeLine".into(), Value::Object(line));
    schemas.insert("AppendEvent".into(), append);
    schemas.insert("BatchLine".into(), batch_line);
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "An RFC 9457 problem document.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": "string", "description": "The request field the problem is about: a JSON pointer into the body, a query parameter or a header."},
                "errors": {"type": "array", "items": {"type": "object", "required": ["line", "detail"], "properties": {"line": {"type": "integer"}, "detail": {"type": "string"}}}}
            }
        }),
    );
    schemas.insert(
        "Appended".into(),
        json!({
            "type": "object",
            "required": ["event_id", "customer_id", "revision", "position", "written", "recorded_by"],
            "properties": {
                "event_id": {"type": "string", "format": "uuid"},
                "customer_id": {"type": "string"},
                "revision": {"type": "integer", "minimum": 0},
                "position": {"type": "integer", "minimum": 1},
                "written": {"type": "boolean"},
                "recorded_by": {"type": "string"}
            }
        }),
    );
    schemas.insert(
        "BatchAppended".into(),
        json!({
            "type": "object",
            "required": ["events", "written", "already_present", "last_position"],
            "properties": {
                "events": {"type": "integer"},
                "written": {"type": "integer"},
                "already_present": {"type": "integer"},
                "last_position": {"type": ["integer", "null"]}
            }
        }),
    );
    schemas.insert(
        "Principal".into(),
        json!({
            "type": "object",
            "required": ["name", "role"],
            "properties": {
                "name": {"type": "string"},
                "role": {"type": "string", "enum": ["writer", "reader", "auditor", "admin"]}
            }
        }),
    );
    schemas
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "A parameter, header or body is malformed; `field` names it.",
        401 => "No valid token.",
        403 => "The token's role may not do this.",
        404 => "No such customer (the same answer whether or not it exists for another role).",
        408 => "The request took longer than HTTP_REQUEST_SECONDS_MAX.",
        409 => "The event id was already used for other content.",
        412 => "The customer's stream is not at the expected revision.",
        413 => "The body is larger than its limit, or the batch has too many events.",
        415 => "The body is not application/json.",
        422 => {
            "The event (or a line of the batch) is invalid or refused by the rules; `field` or `errors` say where."
        }
        503 => {
            "Busy or not ready (a limit was reached, the store cannot be reached); Retry-After says when to try again."
        }
        _ => "Error.",
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut operation = Map::new();
        let roles = match op.roles {
            Some(roles) => format!(" Roles: {roles}."),
            None => " No token needed.".into(),
        };
        operation.insert(
            "summary".into(),
            Value::String(format!("{}{roles}", op.summary)),
        );
        operation.insert(
            "operationId".into(),
            Value::String(format!(
                "{}{}",
                op.method,
                op.path.replace(['/', '{', '}', '.'], "_")
            )),
        );
        if op.roles.is_none() {
            operation.insert("security".into(), json!([]));
        }
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": p.place,
                    "required": p.place == "path",
                    "description": p.description,
                    "schema": p.schema,
                })
            })
            .collect();
        if !params.is_empty() {
            operation.insert("parameters".into(), Value::Array(params));
        }
        if let Some((media, schema)) = &op.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {*media: {"schema": schema}}}),
            );
        }
        let mut responses = Map::new();
        for (status, description, media, schema) in &op.ok {
            let entry = responses
                .entry(status.to_string())
                .or_insert_with(|| json!({"description": description}));
            if !media.is_empty() {
                entry
                    .as_object_mut()
                    .expect("responses are objects")
                    .entry("content")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("content is an object")
                    .insert((*media).into(), json!({"schema": schema}));
            }
        }
        let mut errors: Vec<u16> = op.errors.to_vec();
        if op.roles.is_some() {
            errors.extend([401, 403]);
        }
        // Every route: the request timeout and the server being busy.
        errors.extend([408, 503]);
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({
                    "description": status_text(status),
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        paths
            .entry(op.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("paths are objects")
            .insert(op.method.into(), Value::Object(operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pipeline-ledger",
            "version": "1",
            "description": "The HTTP API of pipeline-ledger, an event-sourced sales-pipeline ledger. Within /v1, changes are additive only: new fields and new endpoints. Reports are the same documents as the command line's --json; their fields are defined in projections/README.md. Every error is application/problem+json (RFC 9457)."
        },
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from `pipeline-ledger token create`."},
                "session": {"type": "apiKey", "in": "cookie", "name": "pl_session", "description": "The dashboard's login cookie (reads only)."}
            }
        },
        "security": [{"bearer": []}, {"session": []}]
    })
}

/// The document as checked in: pretty, with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}

/// `GET /v1/openapi.json`.
pub async fn serve_document() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the checked-in copy lives, relative to the repository.
    const OPENAPI_FILE: &str = "schemas/openapi.json";

    /// The checked-in copy is the published contract: it must be what the code generates.
    /// `UPDATE_SCHEMAS=1 cargo test` rewrites it.
    #[test]
    fn the_checked_in_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(OPENAPI_FILE);
        let now = document_text();
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == now,
            "{OPENAPI_FILE} is stale: run `UPDATE_SCHEMAS=1 cargo test --bin pipeline-ledger openapi` and commit it"
        );
    }

    #[test]
    fn every_reference_resolves_inside_the_document() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("local references only");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}

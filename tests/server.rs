//! Drives the real `pipeline-ledger serve` over HTTP: every endpoint, role and error, appends
//! (single, batch, concurrent, retried), the live feed resumed after a disconnect, the limits,
//! tokens revoked across two servers, and a graceful stop with appends in flight.

mod serve_support;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use serve_support::ServeProcess;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-ledger");

/// A store in a temporary directory.
struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    /// An empty store.
    fn empty() -> Ledger {
        let ledger = Ledger {
            dir: tempfile::tempdir().unwrap(),
        };
        ledger.cli(&["init"]);
        ledger
    }

    /// The demo's store with `customers` customers, its read models projected.
    fn demo(customers: usize) -> Ledger {
        let ledger = Ledger {
            dir: tempfile::tempdir().unwrap(),
        };
        ledger.cli(&[
            "demo",
            "--customers",
            &customers.to_string(),
            "--until",
            "2026-06-30",
        ]);
        ledger
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// Runs the CLI on this store and returns its standard output; fails the test on failure.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("--store")
            .arg(self.store())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn token(&self, role: &str, name: &str) -> String {
        self.cli(&["token", "create", "--role", role, "--name", name])
            .trim()
            .to_string()
    }

    /// Every event id in the log, in order.
    fn event_ids(&self) -> Vec<String> {
        self.cli(&["export"])
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

/// A running server, killed when dropped.
struct Server {
    process: ServeProcess,
    url: String,
    http: Client,
}

impl Server {
    fn start(ledger: &Ledger) -> Server {
        Server::start_with(ledger, &[])
    }

    /// Starts `serve` on a free port with extra environment (limit overrides).
    fn start_with(ledger: &Ledger, env: &[(&str, &str)]) -> Server {
        Server::start_args(&ledger.store(), env, &[])
    }

    /// Starts `serve` on a free port with `args` added and `env` set.
    fn start_args(store: &Path, env: &[(&str, &str)], args: &[&std::ffi::OsStr]) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("--store")
            .arg(store)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped());
        let process = ServeProcess::spawn(command);
        let url = process.url.clone();
        Server {
            process,
            url,
            http: Client::new(),
        }
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(
        &self,
        path: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
        if_match: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .body(body);
        if let Some(m) = if_match {
            request = request.header("If-Match", m);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends SIGTERM and waits for the process; returns its exit status and standard error.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let child = &mut self.process.child;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            stderr.read_to_string(&mut err).unwrap();
        }
        (status, err)
    }
}

fn lead(customer: &str, company: &str) -> Value {
    json!({
        "type": "LeadSourced",
        "data": {
            "company": company,
            "contact": {"name": "Li Wei", "role": "buyer"},
            "deal_id": format!("{customer}-d1"),
            "rep_id": "rep-01",
            "source": "referral"
        }
    })
}

/// Asserts `body` is a problem document with `status`, and returns its detail.
fn problem(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["type"].as_str().unwrap().starts_with("/problems/"),
        "{body}"
    );
    body["detail"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_wants_a_token_and_the_right_role_and_errors_are_problem_documents() {
    let ledger = Ledger::demo(60);
    let reader = ledger.token("reader", "bi");
    let writer = ledger.token("writer", "crm-sync");
    let auditor = ledger.token("auditor", "audit");
    let admin = ledger.token("admin", "ops");
    let server = Server::start(&ledger);
    let customer = "cust-00001";
    // Given no token, or a wrong one: 401, as a problem document naming the header.
    for path in [
        "/v1/reports/funnel",
        "/v1/reports/reps",
        "/v1/reports/scorecard",
        "/v1/reports/retention",
        "/v1/reports/pipeline",
        &format!("/v1/customers/{customer}/report"),
        &format!("/v1/customers/{customer}/history"),
        "/v1/log",
        "/v1/feed",
        "/v1/session",
    ] {
        for token in [None, Some("plt_not-a-token")] {
            let (status, body) = server.get(path, token).await;
            problem(status, &body, StatusCode::UNAUTHORIZED);
            assert_eq!(body["field"], "Authorization");
        }
    }
    let response = server
        .http
        .get(format!("{}/v1/log", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // Reports: reader, auditor, admin; not a writer.
    for token in [&reader, &auditor, &admin] {
        let (status, _) = server.get("/v1/reports/funnel", Some(token)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = server.get("/v1/reports/funnel", Some(&writer)).await;
    let detail = problem(status, &body, StatusCode::FORBIDDEN);
    assert!(detail.contains("reader or auditor or admin"), "{detail}");
    // The log itself: auditor and admin only.
    for path in [&format!("/v1/customers/{customer}/history"), "/v1/log"] {
        for token in [&reader, &writer] {
            let (status, body) = server.get(path, Some(token)).await;
            problem(status, &body, StatusCode::FORBIDDEN);
        }
        let (status, _) = server.get(path, Some(&auditor)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Appends: writers only.
    for token in [&reader, &auditor, &admin] {
        let (status, _, body) = server
            .post(
                "/v1/customers/new-1/events",
                token,
                lead("new-1", "A").to_string(),
                None,
            )
            .await;
        problem(status, &body, StatusCode::FORBIDDEN);
    }
    // A wrong role learns nothing about customers: the same 403 for one that exists and one
    // that does not.
    let (_, exists) = server
        .get(&format!("/v1/customers/{customer}/history"), Some(&reader))
        .await;
    let (_, missing) = server
        .get("/v1/customers/no-such-customer/history", Some(&reader))
        .await;
    assert_eq!(exists, missing);
    // Unknown customers and routes: 404 problems; bad parameters: 400 naming them.
    let (status, body) = server
        .get("/v1/customers/no-such-customer/report", Some(&reader))
        .await;
    problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server
        .get("/v1/customers/no-such-customer/history", Some(&auditor))
        .await;
    problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server.get("/v1/nowhere", Some(&reader)).await;
    problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server
        .get("/v1/reports/funnel?by=planet", Some(&reader))
        .await;
    problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "by");
    let (status, body) = server
        .get("/v1/reports/funnel?as_of=yesterday-ish", Some(&reader))
        .await;
    problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "as_of");
    let (status, body) = server
        .get("/v1/reports/funnel?at_position=99999999", Some(&reader))
        .await;
    problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "at_position");
    // Who am I.
    let (status, body) = server.get("/v1/session", Some(&writer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"name": "crm-sync", "role": "writer"}));
    // Operations need no token.
    assert_eq!(server.get("/healthz", None).await.0, StatusCode::OK);
    let (status, body) = server.get("/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_the_command_lines_json_and_csv() {
    let ledger = Ledger::demo(80);
    let reader = ledger.token("reader", "bi");
    let server = Server::start(&ledger);
    wait_ready(&server).await;
    let cases: [(&str, &[&str]); 13] = [
        ("/v1/reports/funnel", &["funnel", "--json"]),
        (
            "/v1/reports/funnel?by=source",
            &["funnel", "--json", "--by", "source"],
        ),
        (
            "/v1/reports/funnel?as_of=2026-03-31",
            &["funnel", "--json", "--as-of", "2026-03-31"],
        ),
        (
            "/v1/reports/reps?period=month",
            &["reps", "--json", "--period", "month"],
        ),
        ("/v1/reports/pipeline", &["pipeline", "--json"]),
        ("/v1/reports/scorecard", &["scorecard", "--json"]),
        ("/v1/reports/retention", &["retention", "--json"]),
        ("/v1/reports/ranking", &["ranking", "--json"]),
        ("/v1/reports/qualification", &["qualification", "--json"]),
        (
            "/v1/reports/ranking?period=year&in=2026-02-01&limit=0&as_of=2026-06-30",
            &[
                "ranking",
                "--json",
                "--period",
                "year",
                "--in",
                "2026-02-01",
                "--limit",
                "0",
                "--as-of",
                "2026-06-30",
            ],
        ),
        (
            "/v1/reports/retention?period=month&as_of=2026-03-31",
            &[
                "retention",
                "--json",
                "--period",
                "month",
                "--as-of",
                "2026-03-31",
            ],
        ),
        (
            "/v1/reports/scorecard?quarter=2026-02&rep=rep-02",
            &[
                "scorecard",
                "--json",
                "--quarter",
                "2026-Q1",
                "--rep",
                "rep-02",
            ],
        ),
        (
            "/v1/customers/cust-00002/report",
            &["customer", "cust-00002", "--json"],
        ),
    ];
    for (path, args) in cases {
        let (status, body) = server.get(path, Some(&reader)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let cli: Value = serde_json::from_str(&ledger.cli(args)).unwrap();
        assert_eq!(body, cli, "{path} differs from {args:?}");
    }
    let csv = server
        .http
        .get(format!("{}/v1/reports/funnel?by=rep", server.url))
        .bearer_auth(&reader)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert_eq!(csv, ledger.cli(&["funnel", "--csv", "--by", "rep"]));
    // A quarter that is none: 400, naming the parameter.
    let (status, body) = server
        .get("/v1/reports/scorecard?quarter=2026-Q7", Some(&reader))
        .await;
    problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "quarter");
}

async fn wait_ready(server: &Server) {
    let started = Instant::now();
    loop {
        let (status, body) = server.get("/readyz", None).await;
        if status == StatusCode::OK {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_goes_through_the_rules_and_a_refused_one_writes_nothing() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "crm-sync");
    let auditor = ledger.token("auditor", "audit");
    let server = Server::start(&ledger);
    let path = "/v1/customers/acme/events";
    let mut body = lead("acme", "Acme");
    body["event_id"] = json!("01975000-0000-7000-8000-00000000a001");
    // Given a new customer, when a writer appends its lead: 201, the revision as ETag.
    let (status, headers, first) = server.post(path, &writer, body.to_string(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(headers["etag"], "\"0\"");
    assert_eq!(first["recorded_by"], "crm-sync");
    assert_eq!(first["written"], true);
    // The same id and content again: the original result, nothing new.
    let (status, _, again) = server.post(path, &writer, body.to_string(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["position"], first["position"]);
    assert_eq!(again["written"], false);
    // The same id with other content: 409.
    let mut other = body.clone();
    other["data"]["company"] = json!("Other");
    let (status, _, p) = server.post(path, &writer, other.to_string(), None).await;
    problem(status, &p, StatusCode::CONFLICT);
    assert_eq!(p["field"], "/event_id");
    let before = ledger.event_ids();
    // Refusals, each naming its field, none writing anything.
    let lost_unknown_deal = json!({"type": "DealLost", "data": {"deal_id": "nope", "rep_id": "rep-01", "reason": "price", "stage": "lead"}});
    let (status, _, p) = server
        .post(path, &writer, lost_unknown_deal.to_string(), None)
        .await;
    let detail = problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["type"], "/problems/rule-violation");
    assert!(detail.contains("nope"), "{detail}");
    let (status, _, p) = server
        .post(path, &writer, lead("acme", "B").to_string(), Some("\"7\""))
        .await;
    problem(status, &p, StatusCode::PRECONDITION_FAILED);
    assert_eq!(p["field"], "expected_revision");
    let mut as_boss = lead("acme", "C");
    as_boss["recorded_by"] = json!("sales-director");
    let (status, _, p) = server.post(path, &writer, as_boss.to_string(), None).await;
    problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["field"], "/recorded_by");
    let mut backdated = lead("acme", "D");
    backdated["recorded_at"] = json!("2020-01-01T00:00:00Z");
    let (status, _, p) = server
        .post(path, &writer, backdated.to_string(), None)
        .await;
    assert_eq!(p["field"], "/recorded_at", "{status} {p}");
    let (status, _, p) = server.post(path, &writer, "{\"type\": ", None).await;
    let detail = problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("column 9"), "{detail}");
    let (status, _, p) = server
        .post(path, &writer, vec![b'{', 0xff, b'}'], None)
        .await;
    let detail = problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("not UTF-8"), "{detail}");
    let (status, _, p) = server
        .post(
            path,
            &writer,
            "{\"type\": \"LeadSourced\", \"type\": \"DealLost\"}",
            None,
        )
        .await;
    let detail = problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("more than once"), "{detail}");
    let mut wrong_type = lead("acme", "E");
    wrong_type["data"]["deal_id"] = json!(42);
    let (status, _, p) = server
        .post(path, &writer, wrong_type.to_string(), None)
        .await;
    problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["field"].as_str().unwrap().starts_with("/data"), "{p}");
    let mut huge = lead("acme", "F");
    huge["data"]["notes"] = json!("x".repeat(200_000));
    let (status, _, p) = server.post(path, &writer, huge.to_string(), None).await;
    problem(status, &p, StatusCode::PAYLOAD_TOO_LARGE);
    let mut elsewhere = lead("acme", "G");
    elsewhere["customer_id"] = json!("not-acme");
    let (status, _, p) = server
        .post(path, &writer, elsewhere.to_string(), None)
        .await;
    assert_eq!(p["field"], "/customer_id", "{status} {p}");
    assert_eq!(
        ledger.event_ids(),
        before,
        "a refused append wrote something"
    );
    // The expected revision, when right, lets the append through; the history names the token.
    let visit = json!({"type": "FirstVisitMade", "data": {"deal_id": "acme-d1", "rep_id": "rep-01", "intent_level": 4, "needs": ["a CRM"],
        "visit": {"purpose": "meet", "action_plan": "demo next", "expected_result": "demo booked", "actual_outcome": "demo booked"}}});
    let (status, headers, p) = server
        .post(path, &writer, visit.to_string(), Some("\"0\""))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(headers["etag"], "\"1\"");
    let (status, history) = server
        .get("/v1/customers/acme/history", Some(&auditor))
        .await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| e["recorded_by"] == "crm-sync"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_whole_or_not_at_all() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "loader");
    let server = Server::start(&ledger);
    let line = |customer: &str| {
        let mut l = lead(customer, "Co");
        l["customer_id"] = json!(customer);
        l["event_id"] = json!(uuid_for(customer));
        l["occurred_at"] = json!("2026-01-05T10:00:00Z");
        l.to_string()
    };
    // A bad line anywhere: 422 naming each bad line, nothing written.
    let bad = format!(
        "{}\n{}\nnot json\n{}\n",
        line("b-1"),
        line("b-2"),
        json!({"type": "LeadSourced", "customer_id": "b-3", "recorded_by": "someone-else", "data": {}})
    );
    let (status, _, p) = server.post("/v1/events", &writer, bad, None).await;
    problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    let lines: Vec<u64> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4], "{p}");
    assert!(ledger.event_ids().is_empty());
    // A good batch: written, atomically; again: already present.
    let good: String = (1..=50).map(|i| line(&format!("b-{i}")) + "\n").collect();
    let (status, _, report) = server.post("/v1/events", &writer, good.clone(), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["written"], 50);
    let (_, _, report) = server.post("/v1/events", &writer, good, None).await;
    assert_eq!(report["already_present"], 50);
    assert_eq!(ledger.event_ids().len(), 50);
    // Over the events limit: 413, nothing written.
    let many: String = (0..10_001)
        .map(|i| line(&format!("m-{i}")) + "\n")
        .collect();
    let (status, _, p) = server.post("/v1/events", &writer, many, None).await;
    let detail = problem(status, &p, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(detail.contains("HTTP_BATCH_EVENTS_MAX"), "{detail}");
    assert_eq!(ledger.event_ids().len(), 50);
}

/// The batch body is read as it streams in (chunked, without a Content-Length): lines cut
/// across chunks are put back together, and a body that grows past HTTP_BATCH_BYTES_MAX is
/// refused with 413 when it passes the limit, nothing written, the server still up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_streams_in_chunks_and_its_size_limit_holds_without_a_length() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "loader");
    let server = Server::start(&ledger);
    let body: String = (1..=20)
        .map(|i| {
            let customer = format!("s-{i}");
            let mut l = lead(&customer, "Co");
            l["customer_id"] = json!(customer);
            l["event_id"] = json!(uuid_for(&customer));
            l.to_string() + "\n"
        })
        .collect();
    // Chunks of 7 bytes: almost every line is cut somewhere, some inside a UTF-8 sequence.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.as_bytes().chunks(7).map(|c| Ok(c.to_vec())).collect();
    let response = server
        .http
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&writer)
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let report: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["written"], 20, "{report}");
    // Past the byte limit, in 1 MiB chunks and without a length: 413 once it passes.
    let limit = pipeline_ledger::limits::HTTP_BATCH_BYTES_MAX;
    let chunk = "\n".repeat(1024 * 1024);
    let count = limit / chunk.len() + 2;
    let oversized =
        futures_util::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let response = server
        .http
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&writer)
        .body(reqwest::Body::wrap_stream(oversized))
        .send()
        .await;
    // The server may answer before the client has sent everything, and close the request.
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let p: Value = response.json().await.unwrap();
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("HTTP_BATCH_BYTES_MAX"),
            "{p}"
        );
    }
    assert_eq!(ledger.event_ids().len(), 20);
    let (status, _) = server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A stable event id per customer (UUID v7 layout, its tail from the name).
fn uuid_for(name: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("01975000-0000-7000-8000-{:012x}", hash & 0xffff_ffff_ffff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_each_acknowledged_once_and_retries_stay_single() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "crm-sync");
    let server = std::sync::Arc::new(Server::start(&ledger));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let server = server.clone();
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..8 {
                // Half the tasks share customers, so the rules decide on contended streams.
                let customer = format!("c-{}", (t % 8) * 100 + i);
                let mut body = lead(&customer, "Co");
                body["event_id"] = json!(uuid_for(&format!("{t}-{i}")));
                let path = format!("/v1/customers/{customer}/events");
                let (status, _, r) = server.post(&path, &writer, body.to_string(), None).await;
                if status == StatusCode::CREATED {
                    acked.push(r["event_id"].as_str().unwrap().to_string());
                } else {
                    // The second lead of a shared customer for the same deal is refused.
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
                }
                // A retry of the same event never adds a second copy.
                let (status, _, _) = server.post(&path, &writer, body.to_string(), None).await;
                assert!(status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let mut ids = ledger.event_ids();
    ids.sort();
    acked.sort();
    assert_eq!(ids, acked, "the log holds exactly the acknowledged events");
    assert_eq!(acked.len(), 64, "one lead per customer");
}

/// Reads SSE events (id, event, data) from a raw stream until `n` events with ids arrived.
async fn read_feed(response: &mut reqwest::Response, n: usize) -> Vec<(u64, String)> {
    let mut buffer = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(Instant::now() < deadline, "feed stalled after {out:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("a feed chunk within 10 s")
            .unwrap()
            .expect("the feed stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut event = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                }
            }
            if let Some(id) = id {
                out.push((id, event));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_delivers_live_events_and_resumes_after_a_disconnect() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "crm-sync");
    let auditor = ledger.token("auditor", "audit");
    let server = Server::start(&ledger);
    for i in 0..5 {
        let c = format!("f-{i}");
        let (status, _, _) = server
            .post(
                &format!("/v1/customers/{c}/events"),
                &writer,
                lead(&c, "Co").to_string(),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut feed = server
        .http
        .get(format!("{}/v1/feed", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let past = read_feed(&mut feed, 5).await;
    assert_eq!(
        past.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(past.iter().all(|e| e.1 == "LeadSourced"));
    // Live: an append arrives on the open feed.
    let (_, _, r) = server
        .post(
            "/v1/customers/f-live/events",
            &writer,
            lead("f-live", "Co").to_string(),
            None,
        )
        .await;
    let live = read_feed(&mut feed, 1).await;
    assert_eq!(live[0].0, r["position"].as_u64().unwrap());
    drop(feed);
    // Disconnected, then more events; a resumed feed starts right after the last one received.
    for i in 0..3 {
        let c = format!("g-{i}");
        server
            .post(
                &format!("/v1/customers/{c}/events"),
                &writer,
                lead(&c, "Co").to_string(),
                None,
            )
            .await;
    }
    let mut resumed = server
        .http
        .get(format!("{}/v1/feed", server.url))
        .bearer_auth(&auditor)
        .header("Last-Event-ID", live[0].0.to_string())
        .send()
        .await
        .unwrap();
    let next = read_feed(&mut resumed, 3).await;
    assert_eq!(
        next.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![live[0].0 + 1, live[0].0 + 2, live[0].0 + 3]
    );
    // The log in pages says the same.
    let page = server
        .http
        .get(format!("{}/v1/log?after=2&limit=3", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["next-after"], "5");
    let text = page.text().await.unwrap();
    let positions: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, vec![3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_appends_in_flight_finish_and_loses_no_acknowledged_event() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "crm-sync");
    let server = Server::start(&ledger);
    let url = server.url.clone();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let writer = writer.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = Client::new();
            let mut acked = Vec::new();
            for i in 0..40 {
                let customer = format!("s-{t}-{i}");
                let Ok(response) = http
                    .post(format!("{url}/v1/customers/{customer}/events"))
                    .bearer_auth(&writer)
                    .body(lead(&customer, "Co").to_string())
                    .send()
                    .await
                else {
                    break;
                };
                if response.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                acked.push(body["event_id"].as_str().unwrap().to_string());
            }
            acked
        }));
    }
    // Stop while the writers are busy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, stderr) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "serve exited with {status}: {stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "no append was acknowledged before the stop"
    );
    let ids: std::collections::HashSet<String> = ledger.event_ids().into_iter().collect();
    let lost: Vec<_> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // The store is whole and reopens: the CLI reads it and its read models at once.
    ledger.cli(&["project"]);
}

/// Opens a raw TCP connection and sends `bytes`.
fn raw(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(bytes).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_clearly_and_the_server_stays_up() {
    let ledger = Ledger::demo(40);
    let writer = ledger.token("writer", "crm-sync");
    let reader = ledger.token("reader", "bi");
    let server = Server::start_with(
        &ledger,
        &[
            ("PIPELINE_LEDGER_HTTP_REQUEST_SECONDS_MAX", "2"),
            ("PIPELINE_LEDGER_HTTP_HEADER_SECONDS_MAX", "1"),
            ("PIPELINE_LEDGER_HTTP_CONNECTIONS_MAX", "4"),
            ("PIPELINE_LEDGER_HTTP_EXPENSIVE_QUERY_SECONDS_MAX", "0"),
        ],
    );
    let addr = server.addr();
    // A slow client that never finishes its body: 408 after the request limit.
    let started = Instant::now();
    let slow = raw(
        &addr,
        format!(
            "POST /v1/customers/x/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {writer}\r\nContent-Length: 500\r\n\r\n{{\"type\":"
        )
        .as_bytes(),
    );
    let answer = tokio::task::spawn_blocking(move || read_all(slow))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("HTTP_REQUEST_SECONDS_MAX"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A client that never finishes its headers is cut off.
    let stalled = raw(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || read_all(stalled))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "not cut off");
    assert!(!answer.contains("200 OK"), "{answer}");
    // Past the connection limit: 503 at once, as a problem document.
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let extra = raw(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || read_all(extra))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("HTTP_CONNECTIONS_MAX"), "{answer}");
    drop(held);
    // A past-date replay stops at its deadline (0 s here): the work stops, with a clear 503.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, p) = server
        .get("/v1/reports/funnel?as_of=2026-03-31", Some(&reader))
        .await;
    let detail = problem(status, &p, StatusCode::SERVICE_UNAVAILABLE);
    assert!(detail.contains("time limit"), "{detail}");
    // The kept funnel is no replay, and answers.
    let (status, _) = server.get("/v1/reports/funnel", Some(&reader)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/healthz", None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_the_command_line_is_refused_by_every_server_within_the_bound() {
    let ledger = Ledger::empty();
    let one = Server::start(&ledger);
    let two = Server::start(&ledger);
    // Issued after both started: both accept it within the refresh bound.
    let token = ledger.token("reader", "bi-nightly");
    let bound = Duration::from_secs(pipeline_ledger::limits::ACCESS_REFRESH_SECONDS + 3);
    for server in [&one, &two] {
        wait_for_status(server, &token, StatusCode::OK, bound).await;
    }
    ledger.cli(&["token", "revoke", "bi-nightly", "--reason", "rotated"]);
    for server in [&one, &two] {
        wait_for_status(server, &token, StatusCode::UNAUTHORIZED, bound).await;
    }
    // The grants' log says who issued and revoked it, and why; never the token.
    let list = ledger.cli(&["token", "list", "--json"]);
    assert!(!list.contains(&token));
    let grants: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(grants[0]["name"], "bi-nightly");
    assert_eq!(grants[0]["revoke_reason"], "rotated");
    assert!(grants[0]["revoked_at"].is_string());
    // Only the hash is stored: the token's text is nowhere in the grants' file.
    let file = std::fs::read(ledger.dir.path().join("ledger.access.db")).unwrap();
    assert!(!file.windows(token.len()).any(|w| w == token.as_bytes()));
}

async fn wait_for_status(server: &Server, token: &str, want: StatusCode, within: Duration) {
    let started = Instant::now();
    loop {
        let (status, _) = server.get("/v1/session", Some(token)).await;
        if status == want {
            return;
        }
        assert!(started.elapsed() < within, "still {status}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_cookie_reads_but_never_writes() {
    let ledger = Ledger::demo(30);
    let reader = ledger.token("reader", "bi");
    let writer = ledger.token("writer", "crm-sync");
    let server = Server::start(&ledger);
    let page = server
        .http
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Login puts the token in an HttpOnly, SameSite=Strict cookie.
    let login = server
        .http
        .post(format!("{}/v1/session", server.url))
        .json(&json!({"token": reader}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let report = server
        .http
        .get(format!("{}/v1/reports/pipeline", server.url))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), StatusCode::OK);
    // A writer's token in a cookie cannot append: writes need the Authorization header.
    let writer_cookie = format!("pl_session={writer}");
    let append = server
        .http
        .post(format!("{}/v1/customers/csrf/events", server.url))
        .header("Cookie", writer_cookie)
        .body(lead("csrf", "Co").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), StatusCode::UNAUTHORIZED);
    // A bad login is a problem naming the token; a form post is refused.
    let bad = server
        .http
        .post(format!("{}/v1/session", server.url))
        .json(&json!({"token": "plt_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let form = server
        .http
        .post(format!("{}/v1/session", server.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={reader}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert!(form.headers().get("set-cookie").is_none());
    // Metrics count appends and requests by route; readiness reports the lag.
    let (_, metrics) = server.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("pipeline_ledger_projection_checkpoint_position"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/v1/session\",method=\"POST\",status=\"200\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_a_certificate_and_key_serves_https() {
    let ledger = Ledger::empty();
    let reader = ledger.token("reader", "bi");
    let dir = ledger.dir.path();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let server = Server::start_args(
        &ledger.store(),
        &[],
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let url = server.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    let http = Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let login = http
        .post(format!("{url}/v1/session"))
        .json(&json!({"token": reader}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
}

/// Issue 13: personal data over HTTP. Appends are sealed like the command line's; only the
/// auditor reads the fields decrypted; an erasure on the command line reaches a running server
/// within the journal's notice bound; `PersonalDataErased` cannot be appended by hand.
#[tokio::test]
async fn personal_data_is_shown_to_the_auditor_alone_and_erasure_reaches_the_server() {
    let ledger = Ledger::empty();
    let writer = ledger.token("writer", "crm-sync");
    let auditor = ledger.token("auditor", "audit");
    let admin = ledger.token("admin", "ops");
    let server = Server::start(&ledger);
    let path = "/v1/customers/acme/events";
    let (status, _, body) = server
        .post(path, &writer, lead("acme", "Acme").to_string(), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let raw = std::fs::read(ledger.store()).unwrap();
    let wal = std::fs::read(ledger.dir.path().join("ledger.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(6).any(|w| w == b"Li Wei"),
            "plaintext in the store"
        );
    }
    let history = "/v1/customers/acme/history";
    let (status, events) = server.get(history, Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events[0]["data"]["contact"]["name"], "Li Wei", "{events}");
    let (status, events) = server.get(history, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events[0]["data"]["contact"]["name"],
        json!({"withheld": "redacted"})
    );
    let (_, page) = server.get("/v1/log?after=0", Some(&admin)).await;
    assert!(!page.to_string().contains("Li Wei"), "{page}");

    // By hand, an erasure event is refused: only `forget` may say the data is gone.
    let by_hand = json!({"type": "PersonalDataErased", "data": {"rep_id": "rep-01", "reason": "x", "sealed_fields": 1}});
    let (status, _, p) = server.post(path, &writer, by_hand.to_string(), None).await;
    let detail = problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("forget"), "{detail}");

    ledger.cli(&["forget", "acme", "--reason", "request 11"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, events) = server.get(history, Some(&auditor)).await;
        if events[0]["data"]["contact"]["name"] == json!({"withheld": "erased"}) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server still shows the erased name: {events}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new event carrying the erased customer's personal data is refused, naming the field.
    let mut second = lead("acme", "Acme");
    second["data"]["deal_id"] = json!("acme-d2");
    let (status, _, p) = server.post(path, &writer, second.to_string(), None).await;
    problem(status, &p, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["type"], "/problems/personal-data-erased", "{p}");
    assert_eq!(p["field"], "/data/contact/name", "{p}");
}

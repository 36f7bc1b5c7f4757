//! The server's figures, side by side in one run on one store: durable appends through the
//! rules from 64 tasks calling the library (`Ledger::record_valid`), then from 64 keep-alive
//! HTTP clients against a real `serve` process on the same machine; while the HTTP appends run,
//! the kept funnel and one customer's report are queried over HTTP, and a live-feed subscriber
//! times each event's delivery from its acknowledgement.

use super::{BenchError, CONCURRENT_WRITERS, percentile, sorted, step};
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::ledger::codec::customer_of_stream;
use pipeline_ledger::store::EventStore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Existing customers the appends go to (spread over the start of the log).
const HTTP_CUSTOMERS_MAX: usize = 4096;

/// What the server's part of the benchmark measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpFigures {
    pub library_eps: f64,
    pub http_eps: f64,
    pub funnel_p99_ms: f64,
    pub customer_p99_ms: f64,
    pub feed_p99_ms: f64,
}

/// A `serve` process, stopped when dropped.
struct ServeProcess(Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // SIGTERM, so that it stops as in production (checkpoint saved); then make sure.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The part of an append's answer the benchmark reads.
#[derive(serde::Deserialize)]
struct Acknowledged {
    position: u64,
}

/// Runs `work` on a new thread named `name`, in a single-threaded runtime of its own.
fn on_own_runtime(
    name: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, BenchError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work),
                Err(e) => eprintln!("{e}"),
            }
        })
        .map_err(step("start a thread"))
}

/// The body of one append: a new deal's lead for an existing customer, so that every append
/// reads that customer's history and is decided by the rules.
fn lead_body(customer: &str, n: u64) -> Value {
    json!({
        "type": "LeadSourced",
        "data": {
            "company": format!("Bench {customer}"),
            "contact": {"name": "Bench Contact"},
            "deal_id": format!("bench-http-{n}"),
            "rep_id": "rep-01",
            "source": "web"
        }
    })
}

async fn sample_customers(store: &dyn EventStore) -> Result<Vec<String>, BenchError> {
    let page = store
        .read_all(None, 50_000)
        .await
        .map_err(step("read customers"))?;
    let mut seen = std::collections::BTreeSet::new();
    for r in &page {
        if let Some(c) = customer_of_stream(&r.stream) {
            seen.insert(c.to_string());
        }
        if seen.len() >= HTTP_CUSTOMERS_MAX {
            break;
        }
    }
    Ok(seen.into_iter().collect())
}

fn cli(exe: &Path, store: &Path, args: &[&str]) -> Result<String, BenchError> {
    let out = Command::new(exe)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .map_err(step("run the CLI"))?;
    if !out.status.success() {
        return Err(BenchError::Step(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Measures the library's and the server's appends through the rules, and the server's queries
/// and feed under that load.
pub async fn measure(
    exe: &Path,
    store_path: &Path,
    read_models_path: &Path,
    store: Arc<dyn EventStore>,
    ledger: Ledger,
    appends_per_writer: usize,
    log: &mut dyn Write,
) -> Result<HttpFigures, BenchError> {
    let mut figures = HttpFigures::default();
    let customers = Arc::new(sample_customers(&*store).await?);
    let total = (CONCURRENT_WRITERS * appends_per_writer) as u64;

    // The library: 64 tasks, the same validation and rules the server's handler calls.
    // The benchmark's ledger, sealing with the key store the server opens too.
    let ledger = Arc::new(ledger);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENT_WRITERS {
        let ledger = ledger.clone();
        let customers = customers.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends_per_writer {
                let n = (w * appends_per_writer + i) as u64;
                let customer = &customers[n as usize % customers.len()];
                let mut line = lead_body(customer, n);
                line["customer_id"] = json!(customer);
                line["recorded_by"] = json!("bench-library");
                line["event_id"] = json!(uuid::Uuid::now_v7());
                line["occurred_at"] = json!(chrono::Utc::now());
                line["schema_version"] = json!(1);
                let valid = ledger
                    .validator()
                    .parse_value(line)
                    .map_err(|e| e.to_string())?;
                ledger
                    .record_valid(valid)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(step("library task"))?
            .map_err(|e| BenchError::Step(format!("library append: {e}")))?;
    }
    figures.library_eps = total as f64 / t.elapsed().as_secs_f64();
    writeln!(
        log,
        "  library appends through the rules: {:.0} events/s",
        figures.library_eps
    )?;

    // The server, in its own process, as deployed.
    let writer = cli(
        exe,
        store_path,
        &[
            "token",
            "create",
            "--role",
            "writer",
            "--name",
            "bench-writer",
        ],
    )?;
    let reader = cli(
        exe,
        store_path,
        &[
            "token",
            "create",
            "--role",
            "reader",
            "--name",
            "bench-reader",
        ],
    )?;
    let auditor = cli(
        exe,
        store_path,
        &[
            "token",
            "create",
            "--role",
            "auditor",
            "--name",
            "bench-auditor",
        ],
    )?;
    let mut child = Command::new(exe)
        .arg("--store")
        .arg(store_path)
        .arg("--read-models")
        .arg(read_models_path)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(step("start serve"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(step("read serve's address"))?;
    let _server = ServeProcess(child);
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| BenchError::Step(format!("serve printed {line:?}")))?
        .to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENT_WRITERS * 2)
        .build()
        .map_err(step("HTTP client"))?;
    // Ready once the runner has caught up with the library's appends.
    let started = Instant::now();
    while http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::Step("serve never became ready".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    // The feed, from the head: when each event arrived.
    let head = store
        .head_position()
        .await
        .map_err(step("head"))?
        .unwrap_or(0);
    let received: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    // The feed's subscriber and the reporting client below are other programs than the load
    // generator: each runs on a thread and runtime of its own, with its own HTTP client, so
    // that what they measure is the server's delay, not a wait behind the 64 appending tasks
    // in this process's runtime.
    let feed = {
        let (url, auditor, received, stop) =
            (url.clone(), auditor.clone(), received.clone(), stop.clone());
        on_own_runtime("bench-feed", async move {
            let http = reqwest::Client::new();
            let Ok(mut response) = http
                .get(format!("{url}/v1/feed?after={head}"))
                .bearer_auth(&auditor)
                .send()
                .await
            else {
                return;
            };
            let mut buffer = String::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(Some(chunk))) =
                    tokio::time::timeout(Duration::from_millis(500), response.chunk()).await
                else {
                    continue;
                };
                let now = Instant::now();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(id) = block
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        received.lock().expect("not poisoned").insert(id, now);
                    }
                }
            }
        })?
    };
    // The queries under load.
    let query_latencies: Arc<Mutex<(Vec<f64>, Vec<f64>)>> = Arc::default();
    let queries = {
        let (url, reader, latencies, stop, customers) = (
            url.clone(),
            reader.clone(),
            query_latencies.clone(),
            stop.clone(),
            customers.clone(),
        );
        on_own_runtime("bench-reports", async move {
            let http = reqwest::Client::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http
                    .get(format!("{url}/v1/reports/funnel"))
                    .bearer_auth(&reader)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let funnel_ms = t.elapsed().as_secs_f64() * 1e3;
                let customer = &customers[(i * 7919) % customers.len()];
                let t = Instant::now();
                let ok2 = http
                    .get(format!("{url}/v1/customers/{customer}/report"))
                    .bearer_auth(&reader)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let customer_ms = t.elapsed().as_secs_f64() * 1e3;
                if ok && ok2 {
                    let mut l = latencies.lock().expect("not poisoned");
                    l.0.push(funnel_ms);
                    l.1.push(customer_ms);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })?
    };

    // 64 keep-alive clients appending through the server.
    let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENT_WRITERS {
        let (http, url, writer, customers, acked, failed) = (
            http.clone(),
            url.clone(),
            writer.clone(),
            customers.clone(),
            acked.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..appends_per_writer {
                let n = (1 << 40) + (w * appends_per_writer + i) as u64;
                let customer = &customers[n as usize % customers.len()];
                // Encoded before the clock starts and read back for its position only: the
                // load generator shares the cores, so it does no more work than it must.
                let body = lead_body(customer, n).to_string();
                let response = http
                    .post(format!("{url}/v1/customers/{customer}/events"))
                    .bearer_auth(&writer)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                let at = Instant::now();
                match response {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(body) = r.bytes().await
                            && let Ok(ack) = serde_json::from_slice::<Acknowledged>(&body)
                        {
                            acked.lock().expect("not poisoned").push((ack.position, at));
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(step("HTTP client task"))?;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let acked = std::mem::take(&mut *acked.lock().expect("not poisoned"));
    figures.http_eps = acked.len() as f64 / elapsed;
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        writeln!(log, "  {failed} HTTP appends failed")?;
    }
    // Let the feed deliver the tail, then stop the helpers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || (feed.join(), queries.join())).await;
    let received = received.lock().expect("not poisoned");
    let delivery: Vec<f64> = acked
        .iter()
        .filter_map(|(p, at)| {
            received
                .get(p)
                .map(|r| r.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    if delivery.len() < acked.len() {
        writeln!(
            log,
            "  the feed delivered {} of {} acknowledged events within 1 s after the load",
            delivery.len(),
            acked.len()
        )?;
    }
    figures.feed_p99_ms = percentile(&sorted(delivery), 0.99);
    let (funnel, customer) = std::mem::take(&mut *query_latencies.lock().expect("not poisoned"));
    figures.funnel_p99_ms = percentile(&sorted(funnel), 0.99);
    figures.customer_p99_ms = percentile(&sorted(customer), 0.99);
    writeln!(
        log,
        "  HTTP appends through the rules: {:.0} events/s ({:.0}% of the library's)",
        figures.http_eps,
        100.0 * figures.http_eps / figures.library_eps
    )?;
    Ok(figures)
}

//! `pipeline-ledger serve`: the HTTP API (JSON under `/v1`), the live feed and the dashboard.
//!
//! Handlers parse, authorise and print; the ledger records (through the domain rules) and the
//! query layer answers every report, exactly as for the command line: no handler computes a
//! report itself. Reports are printed by `present`, so the API's JSON and CSV are the CLI's.
//!
//! One process holds one store: the projection runner follows the log inside it, the grants of
//! the tokens are re-read every [`ACCESS_REFRESH_SECONDS`], and SIGTERM stops it gracefully
//! (requests in flight finish and are answered, then the runner saves its checkpoint).

mod auth;
mod dashboard;
mod limits;
mod listener;
mod metrics;
pub mod openapi;
mod problem;
mod read;
mod reports;
mod write;

use crate::present::reports::Format;
use auth::Registry;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pipeline_ledger::access::Access;
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::limits::{ACCESS_REFRESH_SECONDS, HTTP_FEED_SUBSCRIBERS_MAX};
use pipeline_ledger::projections::Policy;
use pipeline_ledger::query::Queries;
use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::runner::{self, Progress};
use pipeline_ledger::store::EventStore;
use problem::Problem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

pub use limits::ServerLimits;
pub use listener::Tls;

/// Events the read models may be behind the log for `/readyz` to say ready.
pub const READY_LAG_EVENTS_MAX: u64 = 10_000;

/// What `serve` needs.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub store: Arc<dyn EventStore>,
    pub read_models: Arc<dyn ReadModels>,
    pub access: Access,
    pub policy: Policy,
    pub tls: Option<Tls>,
    /// Where the dashboard's login cookie may travel: `Secure` when served over TLS, or behind
    /// a proxy that terminates it (`--behind-tls-proxy`).
    pub secure_cookies: bool,
    /// The key store of personal data: appends seal with it, and auditors read through it.
    pub vault: Option<Arc<pipeline_ledger::keys::vault::Vault>>,
}

/// What every handler shares.
pub struct AppState {
    pub ledger: Ledger,
    pub queries: Queries,
    pub store: Arc<dyn EventStore>,
    pub registry: Registry,
    pub metrics: metrics::Metrics,
    /// Permits for expensive queries (past-date replays, fresh funnels).
    pub expensive: Semaphore,
    /// Permits for live-feed subscribers.
    pub feeds: Arc<Semaphore>,
    /// The projection runner's checkpoint (0: none yet) and whether it caught up once.
    pub checkpoint: AtomicU64,
    pub caught_up: std::sync::atomic::AtomicBool,
    /// Flips to true when the server begins to stop; long-lived responses (the feed) end then.
    pub stopping: watch::Receiver<bool>,
    pub secure_cookies: bool,
    pub limits: ServerLimits,
    /// Where appends are validated, decided and recorded: see [`appends_runtime`].
    pub appends: tokio::runtime::Handle,
}

type Shared = Arc<AppState>;

/// The routes, with their limits and the request timeout.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route(
            "/v1/customers/{customer}/events",
            // Read up to 16 times the limit, so that a body somewhat over it is answered with a
            // clean 413 (the handler checks the limit) rather than a connection reset mid-body.
            post(write::append_one).layer(DefaultBodyLimit::max(
                16 * pipeline_ledger::limits::HTTP_EVENT_BODY_BYTES_MAX,
            )),
        )
        .route(
            "/v1/events",
            post(write::append_batch).layer(DefaultBodyLimit::max(
                pipeline_ledger::limits::HTTP_BATCH_BYTES_MAX,
            )),
        )
        .route("/v1/customers/{customer}/history", get(read::history))
        .route("/v1/customers/{customer}/report", get(reports::customer))
        .route("/v1/log", get(read::log))
        .route("/v1/reports/funnel", get(reports::funnel))
        .route("/v1/reports/reps", get(reports::reps))
        .route("/v1/reports/scorecard", get(reports::scorecard))
        .route("/v1/reports/retention", get(reports::retention))
        .route("/v1/reports/ranking", get(reports::ranking))
        .route("/v1/reports/qualification", get(reports::qualification))
        .route("/v1/reports/pipeline", get(reports::pipeline))
        .route(
            "/v1/session",
            get(auth::session_get)
                .post(auth::session_post)
                .delete(auth::session_delete),
        )
        .route("/v1/definitions", get(dashboard::definitions))
        .route("/v1/openapi.json", get(openapi::serve_document))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::serve))
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ));
    // The feed stays open by design: outside the request timeout.
    Router::new()
        .route("/v1/feed", get(read::feed))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route; /v1/openapi.json lists them")
}

/// Answers 408 when a request (body reading included) takes longer than
/// [`HTTP_REQUEST_SECONDS_MAX`]; its work is dropped with it.
async fn request_timeout(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let seconds = state.limits.request_seconds;
    let limit = Duration::from_secs(seconds);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut r = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "the request took longer than {seconds} s (HTTP_REQUEST_SECONDS_MAX), body included; nothing of an unfinished append was written"
                ),
            )
            .into_response();
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        }
    }
}

/// Headers on every response: no sniffing, no framing, and the dashboard's script policy. A
/// refused request whose body was sent closes its connection (`Connection: close`): the body may
/// not have been read, and a client must not send its next request on that connection.
async fn security_headers(request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut response = next.run(request).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(dashboard::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the store answers, and the read models are within [`READY_LAG_EVENTS_MAX`] of it.
async fn readyz(State(state): State<Shared>) -> Response {
    let head = match tokio::time::timeout(Duration::from_secs(2), state.store.head_position()).await
    {
        Ok(Ok(head)) => head.unwrap_or(0),
        Ok(Err(e)) => {
            return Problem::unavailable("not-ready", format!("the store cannot be read: {e}"), 1)
                .into_response();
        }
        Err(_) => {
            return Problem::unavailable("not-ready", "the store did not answer within 2 s", 1)
                .into_response();
        }
    };
    let checkpoint = state.checkpoint.load(Ordering::Relaxed);
    let lag = head.saturating_sub(checkpoint);
    if !state.caught_up.load(Ordering::Relaxed) || lag > READY_LAG_EVENTS_MAX {
        return Problem::unavailable(
            "not-ready",
            format!(
                "the read models are {lag} events behind the log (at {checkpoint}, head {head}); ready within {READY_LAG_EVENTS_MAX}"
            ),
            1,
        )
        .into_response();
    }
    axum::Json(
        serde_json::json!({"status": "ready", "head": head, "checkpoint": checkpoint, "lag": lag}),
    )
    .into_response()
}

/// The report format a request asks for: CSV with `Accept: text/csv`, else JSON.
pub fn format_of(headers: &HeaderMap) -> Format {
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|m| m.trim().starts_with("text/csv")));
    if wants_csv { Format::Csv } else { Format::Json }
}

/// Runs the server until SIGTERM or Ctrl-C. Prints `listening on <url>` once bound.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let ServeOptions {
        listen,
        store,
        read_models,
        access,
        policy,
        tls,
        secure_cookies,
        vault,
    } = options;
    let limits = ServerLimits::from_env()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = Registry::load(access.clone()).await?;
    let appends_runtime = appends_runtime()?;
    let state = Arc::new(AppState {
        ledger: match vault {
            Some(vault) => Ledger::new(store.clone()).with_personal_data(vault),
            None => Ledger::new(store.clone()),
        },
        queries: Queries::new(store.clone(), read_models.clone(), policy.clone()),
        store: store.clone(),
        registry,
        metrics: metrics::Metrics::default(),
        expensive: Semaphore::new(limits.expensive_queries),
        feeds: Arc::new(Semaphore::new(HTTP_FEED_SUBSCRIBERS_MAX)),
        checkpoint: AtomicU64::new(0),
        caught_up: Default::default(),
        stopping: stop_rx.clone(),
        secure_cookies,
        limits,
        appends: appends_runtime.handle().clone(),
    });

    // The grants, re-read on a timer so that a revoke anywhere takes effect here too.
    let refresher = {
        let state = state.clone();
        let mut stopping = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(ACCESS_REFRESH_SECONDS));
            loop {
                tokio::select! {
                    _ = tick.tick() => state.registry.refresh().await,
                    _ = stopping.changed() => return,
                }
            }
        })
    };

    // The projection runner, following the log until the server stops, on a thread of its own:
    // it writes each batch of read-model rows synchronously, and on one of the runtime's two
    // workers that held up every request queued behind it (the queries' p99 under an append
    // load was several times their median).
    let runner = {
        let state = state.clone();
        let mut stopping = stop_rx.clone();
        on_own_thread("projections", BACKGROUND_NICE, move || async move {
            let mut told = std::collections::HashSet::new();
            let mut progress = |p: &Progress| {
                if let Some(notice) = &p.retrying {
                    eprintln!("projections: {notice}");
                }
                // What the store skipped or found while the runner read it (a deleted KurrentDB
                // stream, a record that is not the ledger's), each text once, once caught up.
                if p.caught_up {
                    for notice in store.notices() {
                        if told.insert(notice.clone()) {
                            eprintln!("warning: {notice}");
                        }
                    }
                }
                state
                    .checkpoint
                    .store(p.position.unwrap_or(0), Ordering::Relaxed);
                if p.caught_up {
                    state.caught_up.store(true, Ordering::Relaxed);
                }
            };
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            runner::project(&*store, &read_models, &policy, true, &mut progress, stop).await
        })?
    };

    let app = router(state.clone());
    let bound = listener::Bound::bind(listen, tls, limits).await?;
    println!("listening on {}", bound.url());
    let shutdown = async {
        wait_for_signal().await;
        eprintln!("stopping: finishing requests in flight");
    };
    bound.run(app, shutdown, stop_tx).await;
    // Every append in flight was answered before `run` returned.
    appends_runtime.shutdown_background();
    refresher.abort();
    match runner.await {
        Ok(Ok(done)) => eprintln!(
            "stopped; read models at position {}",
            done.position.map_or("-".into(), |p| p.to_string())
        ),
        Ok(Err(e)) => eprintln!("the projection runner stopped with an error: {e}"),
        Err(_) => {
            eprintln!("the projection runner's thread stopped without a result (it panicked)")
        }
    }
    Ok(())
}

/// How much lower than the server's own the CPU priority of the append workers and of the
/// projection runner is (a Linux nice value: 10 gives a thread about a tenth of a core's share
/// against one at 0 when both want it).
///
/// Reads are short and latency-bound; appends and projection are throughput-bound and queue
/// anyway. When appends saturate the cores, the readers' requests are served first, so a report
/// keeps answering in milliseconds instead of waiting behind the queue of appends (measured in
/// BENCHMARKS.md: kept funnel p99 under 64 appending clients). When the cores are idle, nice
/// changes nothing.
pub const BACKGROUND_NICE: i32 = 10;

/// The runtime that runs appends (parsing them against the schema, reading the customer's
/// history, the rules, the durable append): two worker threads at [`BACKGROUND_NICE`], so that
/// the main runtime's workers, which read requests and answer reports, are never queued behind
/// a backlog of appends.
fn appends_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("appends")
        .on_thread_start(|| lower_thread_priority(BACKGROUND_NICE))
        .enable_all()
        .build()
}

/// Lowers the calling thread's CPU priority by `nice` (Linux, where a nice value is a thread's
/// own; elsewhere it would be the whole process's, so nothing is done).
fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority and gettid take and return plain integers; a failure (a sandbox
        // refusing it) leaves the priority as it was, which is only slower.
        let tid = unsafe { libc::gettid() };
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Runs the future `make` returns on a new thread named `name`, at `nice` (see
/// [`lower_thread_priority`]), in a single-threaded runtime of its own; the returned receiver
/// gets its output (or an error if the thread panicked).
fn on_own_thread<F, Fut>(
    name: &str,
    nice: i32,
    make: F,
) -> std::io::Result<tokio::sync::oneshot::Receiver<Fut::Output>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future,
    Fut::Output: Send + 'static,
{
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_thread_priority(nice);
            let out = runtime.block_on(make());
            let _ = done_tx.send(out);
        })?;
    Ok(done_rx)
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

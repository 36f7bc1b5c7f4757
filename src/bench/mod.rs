//! The benchmark: measures the embedded store and the projections on the demo generator's data
//! at several sizes, and prints one table of figures against the targets of issue 5.
//!
//! Benchmarks measure; nothing here asserts a time. Every figure is measured in the same run, so
//! ratios between sizes compare like with like.

mod http;

use crate::present::progress::{Output, Progress, Unit};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use pipeline_ledger::contract::line::line_for;
use pipeline_ledger::demo::{DemoConfig, generate_customers};
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::ledger::codec::{stream_name, to_new_record};
use pipeline_ledger::projections::Policy;
use pipeline_ledger::read_models::sqlite::read_models_beside;
use pipeline_ledger::runner;
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{EventStore, ExpectedRevision, NewRecord};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Customers generated per slice of the dataset (bounds the generator's memory).
const DATASET_SLICE_CUSTOMERS: usize = 20_000;
/// Customers the customer query picks from (spread over the log).
const QUERY_CUSTOMERS_MAX: usize = 1000;
/// Concurrent writers of the group-commit figure.
pub const CONCURRENT_WRITERS: usize = 64;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Dataset sizes, in events.
    pub sizes: Vec<u64>,
    /// Where datasets and stores go (datasets are kept and reused across runs).
    pub dir: PathBuf,
    /// Seed of the generator.
    pub seed: u64,
    /// Query repetitions per query kind.
    pub query_samples: usize,
    /// Repetitions of the past-date queries that replay the log (`funnel --as-of`, …).
    pub replay_samples: usize,
    /// Appends per writer in the append figures.
    pub appends_per_writer: usize,
    /// Single-writer appends.
    pub single_appends: usize,
    /// Duration of the projection-lag measurement.
    pub lag_duration: Duration,
    /// Write rate of the projection-lag measurement, in events per second.
    pub lag_rate: u64,
    /// The binary to run rebuilds in (to measure their peak memory alone); in-process if `None`.
    pub exe: Option<PathBuf>,
    /// Where the phases of each size (generating, importing, rebuilding) are shown.
    pub progress: Output,
}

/// A target a figure is held to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    Report,
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: &'static str,
    pub unit: &'static str,
    pub target: Target,
    /// Whether the figure should grow linearly with the data (the 10M/1M ratio is shown).
    pub growth: bool,
    /// Value per dataset size.
    pub values: Vec<(u64, f64)>,
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Step(String),
}

fn step<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Step(format!("{what}: {e}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The end of the generated period: fixed, so that datasets are reproducible.
fn dataset_until() -> DateTime<Utc> {
    "2026-10-01T00:00:00Z".parse().expect("valid time")
}

/// Writes a dataset of exactly `events` events as NDJSON (reused if it exists), calling
/// `written_so_far` after each slice of customers.
pub fn write_dataset(
    path: &Path,
    events: u64,
    seed: u64,
    written_so_far: &mut dyn FnMut(u64),
) -> Result<(), BenchError> {
    if let Ok(file) = std::fs::File::open(path)
        && BufReader::new(file).lines().count() as u64 == events
    {
        return Ok(());
    }
    let config = DemoConfig::new(usize::MAX, seed, dataset_until());
    let tmp = path.with_extension("partial");
    let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
    let mut written = 0u64;
    let mut first = 0usize;
    while written < events {
        let mut slice = generate_customers(&config, first..first + DATASET_SLICE_CUSTOMERS);
        first += DATASET_SLICE_CUSTOMERS;
        // Within a slice, events are in the order they were recorded; a prefix of that order
        // is a prefix of every customer's stream, so truncating keeps every history valid.
        slice.sort_by_key(|e| e.recorded_at);
        for event in slice {
            if written == events {
                break;
            }
            serde_json::to_writer(&mut out, &line_for(&event)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        written_so_far(written);
    }
    out.flush()?;
    drop(out);
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn file_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

/// Peak resident memory of a process (VmHWM), in bytes, while it runs.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A new single event for a new customer (`n` makes it unique), ready for the store.
fn lead_record(n: u64, at: DateTime<Utc>) -> (String, NewRecord) {
    use pipeline_ledger::domain::*;
    let customer = CustomerId::new(format!("bench-{n}")).expect("valid id");
    let payload = EventPayload::LeadSourced(LeadSourced {
        deal_id: DealId::new(format!("bench-{n}-d1")).expect("valid id"),
        rep_id: RepId::new("rep-01").expect("valid id"),
        source: LeadSource::Web,
        company: format!("Bench {n}"),
        contact: Contact {
            name: "Bench Contact".into(),
            phone: None,
            email: None,
            role: None,
        },
        qualification: None,
        notes: None,
    });
    let proposed = ProposedEvent {
        event_id: uuid::Uuid::now_v7(),
        customer_id: customer.clone(),
        occurred_at: at,
        recorded_at: None,
        recorded_by: ActorId::new("bench").expect("valid id"),
        correlation_id: None,
        causation_id: None,
        payload,
    };
    let data = serde_json::to_string(&proposed.payload.data_json()).expect("serializes");
    (stream_name(&customer), to_new_record(&proposed, 1, data))
}

/// The read models in the SQLite file at `path` (opened when first used).
/// A fresh key store of personal data beside the benchmark's store, where the command line
/// looks for it (`store-N.keys.db`, `store-N.master.key`, `store-N.erasures.ndjson`), so that
/// the server the benchmark starts seals with the same keys.
pub fn personal_vault(
    store_path: &Path,
) -> Result<Arc<pipeline_ledger::keys::vault::Vault>, BenchError> {
    use pipeline_ledger::keys::vault::{MasterKeySource, Vault, VaultPaths};
    let paths = VaultPaths::beside(store_path);
    if let MasterKeySource::File(master_key) = &paths.master_key {
        let _ = std::fs::remove_file(master_key);
    }
    for path in [&paths.key_store, &paths.erasure_journal] {
        let _ = std::fs::remove_file(path);
    }
    let (vault, _) = Vault::open(&paths, true, true).map_err(step("open key store"))?;
    Ok(Arc::new(vault))
}

fn open_read_models(path: &Path) -> Arc<dyn pipeline_ledger::read_models::ReadModels> {
    Arc::new(pipeline_ledger::read_models::sqlite::SqliteReadModels::open(path))
}

/// Samples of the reports that read the whole read model (retention, the ranking): about half
/// a second each at 1M events, so 200 samples would make a 1M run half an hour longer. Their
/// "p99" is the slowest of these.
const WHOLE_MODEL_QUERY_SAMPLES_MAX: usize = 20;

/// A query the benchmark times.
enum Query<'a> {
    Funnel,
    Customer(&'a str),
    Reps,
    /// The quarterly rep scorecard of the latest quarter.
    Scorecard,
    /// Retention per quarter.
    Retention,
    /// The customer ranking per quarter.
    Ranking,
    /// `funnel --as-of T` or (`known`) `funnel --known-at T`.
    FunnelPast {
        at: DateTime<Utc>,
        known: bool,
    },
    /// `customer ID --as-of T`.
    CustomerAsOf(&'a str, DateTime<Utc>),
    /// `pipeline --as-of T`.
    PipelineAsOf(DateTime<Utc>),
}

/// The cut of the past-date queries: a quarter before the dataset's end.
fn past_date() -> DateTime<Utc> {
    dataset_until() - ChronoDuration::days(90)
}

/// Answers one query as `pipeline-ledger <query>` does, from the policy file to the printed
/// table: a fresh read-model connection, the query layer, the rendering. Returns the bytes
/// printed.
async fn query(
    store: &Arc<SqliteStore>,
    path: &Path,
    query: Query<'_>,
) -> Result<usize, BenchError> {
    use crate::present::reports::{
        Format, write_customer, write_funnel, write_pipeline, write_ranking, write_reps,
        write_retention, write_scorecard,
    };
    use pipeline_ledger::projections::ReportAt;
    use pipeline_ledger::query::{
        CustomerRequest, FunnelRequest, PipelineRequest, Queries, RankingRequest, RepsRequest,
        RetentionRequest, ScorecardRequest,
    };
    let policy = Policy::load(None).map_err(step("policy"))?;
    let store: Arc<dyn EventStore> = store.clone();
    let queries = Queries::new(store, open_read_models(path), policy);
    let mut out = Vec::new();
    match query {
        Query::Funnel => {
            let r = queries
                .funnel(FunnelRequest::default())
                .await
                .map_err(step("funnel"))?;
            write_funnel(&mut out, Format::default(), &r)?;
        }
        Query::Customer(id) => {
            let request = CustomerRequest {
                customer_id: id.to_string(),
                at: Default::default(),
            };
            let r = queries.customer(request).await.map_err(step("customer"))?;
            write_customer(&mut out, Format::default(), &r)?;
        }
        Query::Reps => {
            let r = queries
                .reps(RepsRequest::default())
                .await
                .map_err(step("reps"))?;
            write_reps(&mut out, Format::default(), &r)?;
        }
        Query::Scorecard => {
            let r = queries
                .scorecard(ScorecardRequest::default())
                .await
                .map_err(step("scorecard"))?;
            write_scorecard(&mut out, Format::default(), &r)?;
        }
        Query::Retention => {
            let r = queries
                .retention(RetentionRequest::default())
                .await
                .map_err(step("retention"))?;
            write_retention(&mut out, Format::default(), &r)?;
        }
        Query::Ranking => {
            let r = queries
                .ranking(RankingRequest::default())
                .await
                .map_err(step("ranking"))?;
            write_ranking(&mut out, Format::default(), &r)?;
        }
        Query::FunnelPast { at, known } => {
            let at = match known {
                false => ReportAt {
                    as_of: Some(at),
                    ..ReportAt::default()
                },
                true => ReportAt {
                    known_at: Some(at),
                    ..ReportAt::default()
                },
            };
            let request = FunnelRequest {
                at,
                ..FunnelRequest::default()
            };
            let r = queries.funnel(request).await.map_err(step("funnel"))?;
            write_funnel(&mut out, Format::default(), &r)?;
        }
        Query::CustomerAsOf(id, at) => {
            let request = CustomerRequest {
                customer_id: id.to_string(),
                at: ReportAt {
                    as_of: Some(at),
                    ..ReportAt::default()
                },
            };
            let r = queries.customer(request).await.map_err(step("customer"))?;
            write_customer(&mut out, Format::default(), &r)?;
        }
        Query::PipelineAsOf(at) => {
            let request = PipelineRequest {
                owner: None,
                at: ReportAt {
                    as_of: Some(at),
                    ..ReportAt::default()
                },
            };
            let r = queries.pipeline(request).await.map_err(step("pipeline"))?;
            write_pipeline(&mut out, Format::default(), &r, &Default::default())?;
        }
    }
    Ok(out.len())
}

/// Everything measured at one size.
#[derive(Debug, Default, Clone)]
struct Sample {
    import_eps: f64,
    bytes_per_event: f64,
    read_eps: f64,
    rebuild_eps: f64,
    rebuild_peak_bytes: Option<f64>,
    funnel_p99_ms: f64,
    customer_p99_ms: f64,
    reps_p99_ms: f64,
    scorecard_p99_ms: f64,
    retention_p99_ms: f64,
    ranking_p99_ms: f64,
    customer_as_of_p99_ms: f64,
    funnel_as_of_max_ms: f64,
    funnel_known_at_max_ms: f64,
    pipeline_as_of_max_ms: f64,
    concurrent_eps: f64,
    single_eps: f64,
    single_latency_ms: f64,
    lag_p99_ms: f64,
    import_seconds: f64,
    rebuild_seconds: f64,
    verify_chain_eps: f64,
    verify_schemas_eps: f64,
    /// The server's figures (when the benchmark knows its own executable to start `serve`).
    http: Option<http::HttpFigures>,
}

async fn measure(
    config: &BenchConfig,
    size: u64,
    log: &mut dyn Write,
) -> Result<Sample, BenchError> {
    let mut s = Sample::default();
    std::fs::create_dir_all(&config.dir)?;
    let dataset = config.dir.join(format!("events-{size}.ndjson"));
    let shown = Progress::new(config.progress);
    let t = Instant::now();
    shown.start("generating", Unit::Events, size);
    write_dataset(&dataset, size, config.seed, &mut |n| shown.set(n))?;
    shown.complete();
    writeln!(
        log,
        "[{size}] dataset ready in {:.1} s",
        t.elapsed().as_secs_f64()
    )?;

    // Bulk import, durable when it returns.
    let store_path = config.dir.join(format!("store-{size}.db"));
    let read_models = read_models_beside(&store_path);
    pipeline_ledger::store::sqlite::remove_files(&store_path);
    pipeline_ledger::store::sqlite::remove_files(&read_models);
    // The server's tokens of an earlier run live beside the store: a fresh store starts without
    // them (their names would clash with the tokens this run creates).
    pipeline_ledger::store::sqlite::remove_files(&pipeline_ledger::access::access_store_beside(
        &store_path,
    ));
    let store = Arc::new(SqliteStore::open(&store_path).map_err(step("open store"))?);
    // Sealing personal data is part of the writer's work, as in every command that writes.
    let vault = personal_vault(&store_path)?;
    let ledger = Ledger::new(store.clone() as Arc<dyn EventStore>).with_personal_data(vault);
    let dataset_file = std::fs::File::open(&dataset)?;
    let dataset_bytes = dataset_file.metadata().map_or(0, |m| m.len());
    let mut input = BufReader::with_capacity(1 << 20, dataset_file);
    let t = Instant::now();
    // Progress costs the import a lock per chunk of lines: nothing beside its work.
    shown.start("importing", Unit::Bytes, dataset_bytes);
    let report = ledger
        .import(&mut input, &|p| match p {
            pipeline_ledger::ledger::import::Progress::Checked { bytes, .. } => shown.set(bytes),
            pipeline_ledger::ledger::import::Progress::Committing { events } => {
                shown.start("committing", Unit::Events, events)
            }
        })
        .await
        .map_err(step("import"))?;
    shown.complete();
    s.import_seconds = t.elapsed().as_secs_f64();
    s.import_eps = report.written as f64 / s.import_seconds;
    writeln!(
        log,
        "[{size}] imported {} events in {:.1} s",
        report.written, s.import_seconds
    )?;
    s.bytes_per_event = file_bytes(&store_path) as f64 / size as f64;

    // Verifying the hash chain, alone and with every event checked against its schema.
    for schemas in [false, true] {
        let t = Instant::now();
        let report = pipeline_ledger::audit::verify::verify(
            &*store,
            pipeline_ledger::audit::verify::VerifyOptions {
                from: None,
                schemas,
            },
            Vec::new(),
        )
        .await
        .map_err(step("verify"))?;
        if let Some(b) = report.first_break {
            return Err(BenchError::Step(format!(
                "verify found the fresh store broken at position {}: {}",
                b.position, b.detail
            )));
        }
        let eps = report.events as f64 / t.elapsed().as_secs_f64();
        if schemas {
            s.verify_schemas_eps = eps;
        } else {
            s.verify_chain_eps = eps;
        }
    }
    writeln!(log, "[{size}] verified the chain")?;

    // Reading every event back, decoded into typed events.
    let t = Instant::now();
    let mut decoded = 0u64;
    let mut sample_customers: Vec<String> = Vec::new();
    pipeline_ledger::ledger::read_decoded(
        &*store,
        pipeline_ledger::ledger::READ_PAGE_EVENTS,
        |page| {
            for event in page {
                if sample_customers.len() < QUERY_CUSTOMERS_MAX && decoded.is_multiple_of(97) {
                    sample_customers.push(event.customer_id.to_string());
                }
                decoded += 1;
            }
            std::ops::ControlFlow::Continue(())
        },
    )
    .await
    .map_err(step("read all"))?;
    s.read_eps = decoded as f64 / t.elapsed().as_secs_f64();
    writeln!(log, "[{size}] read back {decoded} events")?;

    // Rebuilding all projections from zero, alone in a process to see its peak memory.
    shown.start("rebuilding", Unit::Events, size);
    let t = Instant::now();
    match &config.exe {
        Some(exe) => {
            let mut child = std::process::Command::new(exe)
                .arg("--store")
                .arg(&store_path)
                .arg("rebuild")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let mut peak = 0u64;
            let status = loop {
                if let Some(rss) = peak_rss(child.id()) {
                    peak = peak.max(rss);
                }
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if !status.success() {
                return Err(BenchError::Step(format!("rebuild exited with {status}")));
            }
            s.rebuild_peak_bytes = Some(peak as f64);
        }
        None => {
            let policy = Policy::load(None).map_err(step("policy"))?;
            let read_models = open_read_models(&read_models);
            runner::rebuild(&*store, &read_models, &policy, &mut |p| {
                shown.set(p.events_applied)
            })
            .await
            .map_err(step("rebuild"))?;
        }
    }
    // The child process's progress is not shown (its standard error is not read): the phase
    // ends with its figures.
    shown.complete();
    s.rebuild_seconds = t.elapsed().as_secs_f64();
    s.rebuild_eps = size as f64 / s.rebuild_seconds;
    writeln!(
        log,
        "[{size}] rebuilt the projections in {:.1} s",
        s.rebuild_seconds
    )?;

    // Query latency on the read models.
    let mut funnel = Vec::new();
    let mut customer = Vec::new();
    let mut reps = Vec::new();
    let mut scorecard = Vec::new();
    let mut retention = Vec::new();
    let mut ranking = Vec::new();
    for i in 0..config.query_samples {
        let t = Instant::now();
        query(&store, &read_models, Query::Funnel).await?;
        funnel.push(t.elapsed().as_secs_f64() * 1e3);
        let id = &sample_customers[i % sample_customers.len()];
        let t = Instant::now();
        query(&store, &read_models, Query::Customer(id)).await?;
        customer.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        query(&store, &read_models, Query::Reps).await?;
        reps.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        query(&store, &read_models, Query::Scorecard).await?;
        scorecard.push(t.elapsed().as_secs_f64() * 1e3);
        if i < WHOLE_MODEL_QUERY_SAMPLES_MAX {
            let t = Instant::now();
            query(&store, &read_models, Query::Retention).await?;
            retention.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            query(&store, &read_models, Query::Ranking).await?;
            ranking.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    s.funnel_p99_ms = percentile(&sorted(funnel), 0.99);
    s.customer_p99_ms = percentile(&sorted(customer), 0.99);
    s.reps_p99_ms = percentile(&sorted(reps), 0.99);
    s.scorecard_p99_ms = percentile(&sorted(scorecard), 0.99);
    s.retention_p99_ms = percentile(&sorted(retention), 0.99);
    s.ranking_p99_ms = percentile(&sorted(ranking), 0.99);
    writeln!(log, "[{size}] queried the read models")?;

    // Past-date queries: one customer's stream, or (the funnel, the pipeline) a replay of the
    // log up to the cut, which takes long enough that a few samples are all a run can afford.
    let past = past_date();
    let mut customer_as_of = Vec::new();
    for i in 0..config.query_samples {
        let id = &sample_customers[i % sample_customers.len()];
        let t = Instant::now();
        query(&store, &read_models, Query::CustomerAsOf(id, past)).await?;
        customer_as_of.push(t.elapsed().as_secs_f64() * 1e3);
    }
    s.customer_as_of_p99_ms = percentile(&sorted(customer_as_of), 0.99);
    let replays = config.replay_samples.max(1);
    let slowest = async |q: &dyn Fn() -> Query<'static>| {
        let mut max: f64 = 0.0;
        for _ in 0..replays {
            let t = Instant::now();
            query(&store, &read_models, q()).await?;
            max = max.max(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok::<f64, BenchError>(max)
    };
    let (as_of, known) = (false, true);
    s.funnel_as_of_max_ms = slowest(&|| Query::FunnelPast {
        at: past,
        known: as_of,
    })
    .await?;
    s.funnel_known_at_max_ms = slowest(&|| Query::FunnelPast { at: past, known }).await?;
    s.pipeline_as_of_max_ms = slowest(&|| Query::PipelineAsOf(past)).await?;
    writeln!(log, "[{size}] queried past dates ({replays} replays each)")?;

    // Durable single-event appends: 64 concurrent writers (group commit), then one writer.
    let now = Utc::now();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENT_WRITERS {
        let store = store.clone();
        let n = config.appends_per_writer;
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let (stream, record) = lead_record(((w * n + i) as u64) << 1, now);
                store
                    .append(&stream, ExpectedRevision::NoStream, vec![record])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(step("writer task"))?
            .map_err(|e| BenchError::Step(format!("append: {e}")))?;
    }
    s.concurrent_eps =
        (CONCURRENT_WRITERS * config.appends_per_writer) as f64 / t.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let t = Instant::now();
    for i in 0..config.single_appends {
        let (stream, record) = lead_record(((i as u64) << 1) | 1, now);
        let one = Instant::now();
        store
            .append(&stream, ExpectedRevision::NoStream, vec![record])
            .await
            .map_err(step("append"))?;
        latencies.push(one.elapsed().as_secs_f64() * 1e3);
    }
    s.single_eps = config.single_appends as f64 / t.elapsed().as_secs_f64();
    s.single_latency_ms = percentile(&sorted(latencies), 0.5);
    writeln!(log, "[{size}] measured appends")?;

    s.lag_p99_ms = measure_lag(config, &store, &read_models, now).await?;
    writeln!(log, "[{size}] measured projection lag")?;
    if let Some(exe) = &config.exe {
        writeln!(
            log,
            "[{size}] measuring appends through the rules, library and HTTP"
        )?;
        s.http = Some(
            http::measure(
                exe,
                &store_path,
                &read_models,
                store.clone() as Arc<dyn EventStore>,
                ledger.clone(),
                config.appends_per_writer,
                log,
            )
            .await?,
        );
    }
    drop(ledger);
    drop(store);
    pipeline_ledger::store::sqlite::remove_files(&store_path);
    pipeline_ledger::store::sqlite::remove_files(&read_models);
    Ok(s)
}

/// Appends at a steady rate while the projection runner follows the log; the lag of an event is
/// the time from its append's acknowledgement to the runner's commit that covers it.
async fn measure_lag(
    config: &BenchConfig,
    store: &Arc<SqliteStore>,
    read_models: &Path,
    now: DateTime<Utc>,
) -> Result<f64, BenchError> {
    let policy = Policy::load(None).map_err(step("policy"))?;
    // Catch the read models up first, so that only the steady load is measured.
    let read_models = open_read_models(read_models);
    runner::project(&**store, &read_models, &policy, false, &mut |_| {}, async {
    })
    .await
    .map_err(step("project"))?;
    let commits: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner_store = store.clone();
    let runner_read_models = read_models.clone();
    let runner_commits = commits.clone();
    let follower = tokio::spawn(async move {
        let mut progress = move |p: &runner::Progress| {
            if let Some(position) = p.position {
                runner_commits
                    .lock()
                    .expect("lock")
                    .push((position, Instant::now()));
            }
        };
        runner::project(
            &*runner_store,
            &runner_read_models,
            &policy,
            true,
            &mut progress,
            async {
                let _ = stop_rx.await;
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    // Writers pace themselves to `lag_rate` in total, each appending single events.
    let writers = 16u64;
    let interval = Duration::from_secs_f64(writers as f64 / config.lag_rate as f64);
    let per_writer = (config.lag_rate * config.lag_duration.as_secs().max(1)) / writers;
    let acks: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            for i in 0..per_writer {
                tick.tick().await;
                let n = (1u64 << 40) + w * per_writer + i;
                let (stream, record) = lead_record(n, now - ChronoDuration::seconds(1));
                let result = store
                    .append(&stream, ExpectedRevision::NoStream, vec![record])
                    .await
                    .map_err(|e| e.to_string())?;
                acks.lock()
                    .expect("lock")
                    .push((result.last_position, Instant::now()));
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(step("writer task"))?
            .map_err(|e| BenchError::Step(format!("append: {e}")))?;
    }
    // Let the runner catch up with the last appends before stopping it.
    let last = acks.lock().expect("lock").iter().map(|a| a.0).max();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let reached = commits.lock().expect("lock").last().map(|c| c.0);
        if reached >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(());
    follower
        .await
        .map_err(step("runner task"))?
        .map_err(|e| BenchError::Step(format!("runner: {e}")))?;
    let commits = commits.lock().expect("lock").clone();
    let acks = acks.lock().expect("lock").clone();
    let mut lags = Vec::with_capacity(acks.len());
    for (position, acked) in acks {
        // The first commit at or past the event's position made it visible.
        let idx = commits.partition_point(|c| c.0 < position);
        let Some((_, visible)) = commits.get(idx) else {
            return Err(BenchError::Step(format!(
                "the runner never reached position {position}"
            )));
        };
        lags.push(visible.saturating_duration_since(acked).as_secs_f64() * 1e3);
    }
    Ok(percentile(&sorted(lags), 0.99))
}

/// Runs every measurement at every size and returns the figures.
pub async fn run(config: &BenchConfig, log: &mut dyn Write) -> Result<Vec<Figure>, BenchError> {
    let mut samples = Vec::new();
    for &size in &config.sizes {
        samples.push((size, measure(config, size, log).await?));
    }
    let figure = |name, unit, target, growth, f: &dyn Fn(&Sample) -> Option<f64>| Figure {
        name,
        unit,
        target,
        growth,
        values: samples
            .iter()
            .filter_map(|(size, s)| f(s).map(|v| (*size, v)))
            .collect(),
    };
    Ok(vec![
        figure(
            "bulk import (validated, durable)",
            "events/s",
            Target::AtLeast(500_000.0),
            false,
            &|s| Some(s.import_eps),
        ),
        figure("import time", "s", Target::Report, true, &|s| {
            Some(s.import_seconds)
        }),
        figure(
            "appends, 64 concurrent writers",
            "events/s",
            Target::AtLeast(50_000.0),
            false,
            &|s| Some(s.concurrent_eps),
        ),
        figure(
            "appends, one writer",
            "events/s",
            Target::Report,
            false,
            &|s| Some(s.single_eps),
        ),
        figure(
            "append latency, one writer (median)",
            "ms",
            Target::Report,
            false,
            &|s| Some(s.single_latency_ms),
        ),
        figure(
            "read all, decoded",
            "events/s",
            Target::AtLeast(2_000_000.0),
            false,
            &|s| Some(s.read_eps),
        ),
        figure(
            "rebuild all projections",
            "events/s",
            Target::AtLeast(1_000_000.0),
            false,
            &|s| Some(s.rebuild_eps),
        ),
        figure("rebuild time", "s", Target::Report, true, &|s| {
            Some(s.rebuild_seconds)
        }),
        figure(
            "verify: hash chain",
            "events/s",
            Target::AtLeast(1_000_000.0),
            false,
            &|s| Some(s.verify_chain_eps),
        ),
        figure(
            "verify: chain and schemas",
            "events/s",
            Target::Report,
            false,
            &|s| Some(s.verify_schemas_eps),
        ),
        figure(
            "projection lag p99 at 10k events/s",
            "ms",
            Target::AtMost(50.0),
            false,
            &|s| Some(s.lag_p99_ms),
        ),
        figure("funnel query p99", "ms", Target::AtMost(5.0), false, &|s| {
            Some(s.funnel_p99_ms)
        }),
        figure(
            "customer query p99",
            "ms",
            Target::AtMost(2.0),
            false,
            &|s| Some(s.customer_p99_ms),
        ),
        figure("rep report p99", "ms", Target::AtMost(10.0), false, &|s| {
            Some(s.reps_p99_ms)
        }),
        figure(
            "rep scorecard p99",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| Some(s.scorecard_p99_ms),
        ),
        figure(
            "retention p99 (≤ 20 samples)",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| Some(s.retention_p99_ms),
        ),
        figure(
            "customer ranking p99 (≤ 20 samples)",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| Some(s.ranking_p99_ms),
        ),
        figure(
            "customer --as-of query p99",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| Some(s.customer_as_of_p99_ms),
        ),
        figure(
            "funnel --as-of query (slowest replay)",
            "ms",
            Target::AtMost(100.0),
            true,
            &|s| Some(s.funnel_as_of_max_ms),
        ),
        figure(
            "funnel --known-at query (slowest replay)",
            "ms",
            Target::AtMost(100.0),
            true,
            &|s| Some(s.funnel_known_at_max_ms),
        ),
        figure(
            "pipeline --as-of query (slowest replay)",
            "ms",
            Target::AtMost(100.0),
            true,
            &|s| Some(s.pipeline_as_of_max_ms),
        ),
        figure(
            "rebuild peak memory",
            "MiB",
            Target::AtMost(1024.0),
            false,
            &|s| s.rebuild_peak_bytes.map(|b| b / (1 << 20) as f64),
        ),
        figure("store size", "bytes/event", Target::Report, false, &|s| {
            Some(s.bytes_per_event)
        }),
        figure(
            "appends via rules, library, 64 tasks",
            "events/s",
            Target::Report,
            false,
            &|s| s.http.map(|h| h.library_eps),
        ),
        figure(
            "appends via rules, HTTP, 64 clients",
            "events/s",
            Target::Report,
            false,
            &|s| s.http.map(|h| h.http_eps),
        ),
        figure(
            "HTTP appends / library appends",
            "%",
            Target::AtLeast(50.0),
            false,
            &|s| s.http.map(|h| 100.0 * h.http_eps / h.library_eps),
        ),
        figure(
            "kept funnel p99, HTTP, under appends",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| s.http.map(|h| h.funnel_p99_ms),
        ),
        figure(
            "customer report p99, HTTP, under appends",
            "ms",
            Target::AtMost(10.0),
            false,
            &|s| s.http.map(|h| h.customer_p99_ms),
        ),
        figure(
            "live-feed delivery p99 from ack",
            "ms",
            Target::AtMost(50.0),
            false,
            &|s| s.http.map(|h| h.feed_p99_ms),
        ),
    ])
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints the figures as one table: figure, value per size, target, met, and the growth ratio
/// (largest ÷ smallest size) for the figures that should grow linearly.
pub fn print_table(figures: &[Figure], sizes: &[u64], out: &mut dyn Write) -> std::io::Result<()> {
    let size_name = |n: u64| {
        if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
            format!("{}M", n / 1_000_000)
        } else if n >= 1_000 && n.is_multiple_of(1_000) {
            format!("{}k", n / 1_000)
        } else {
            n.to_string()
        }
    };
    let mut header: Vec<String> = vec!["figure".into(), "unit".into()];
    header.extend(sizes.iter().map(|&n| format!("at {}", size_name(n))));
    header.extend(["target".into(), "met".into()]);
    if sizes.len() > 1 {
        header.push(format!(
            "{}/{}",
            size_name(*sizes.last().expect("sizes")),
            size_name(sizes[0])
        ));
    }
    let mut t = crate::present::table::Table::new(
        "",
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for f in figures {
        let mut row = vec![f.name.to_string(), f.unit.to_string()];
        for &size in sizes {
            row.push(
                f.values
                    .iter()
                    .find(|(s, _)| *s == size)
                    .map_or("-".into(), |(_, v)| fmt_value(*v)),
            );
        }
        let (target, met) = match f.target {
            Target::AtLeast(x) => (
                format!("≥ {}", fmt_value(x)),
                f.values.iter().all(|(_, v)| *v >= x),
            ),
            Target::AtMost(x) => (
                format!("≤ {}", fmt_value(x)),
                f.values.iter().all(|(_, v)| *v <= x),
            ),
            Target::Report => ("report".into(), true),
        };
        row.push(target);
        row.push(match f.target {
            Target::Report => "-".into(),
            _ if f.values.is_empty() => "-".into(),
            _ if met => "yes".into(),
            _ => "NO".into(),
        });
        if sizes.len() > 1 {
            let first = f.values.first().map(|v| v.1);
            let last = f.values.last().map(|v| v.1);
            row.push(match (f.growth, first, last) {
                (true, Some(a), Some(b)) if a > 0.0 => format!("{:.1} (target ≤ 11)", b / a),
                _ => String::new(),
            });
        }
        t.row(row);
    }
    t.write_text(out, crate::present::table::Layout::default())
}

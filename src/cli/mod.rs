//! The command-line front end: parses arguments, opens the store, calls the library, prints.
//! Errors are typed below this module; here, at the edge, they become messages and exit codes.

pub mod projection_commands;
pub mod record;

use crate::present::history;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline_ledger::demo::{DemoConfig, generate};
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::ledger::import::{self, ImportError, Progress};
use pipeline_ledger::read_models::sqlite::read_models_beside;
use pipeline_ledger::store::{Backend, EventStore};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The store used when neither `--store` nor `PIPELINE_LEDGER_STORE` says otherwise.
pub const DEFAULT_STORE: &str = "./pipeline-ledger.db";
/// The demo's own store, so that running the demo never touches a real ledger.
pub const DEFAULT_DEMO_STORE: &str = "./pipeline-ledger-demo.db";
/// Where the read models live when the events live in KurrentDB and `--read-models` is not given.
pub const DEFAULT_READ_MODELS: &str = "./pipeline-ledger-read-models.db";

/// An event-sourced sales-pipeline ledger.
#[derive(Debug, Parser)]
#[command(name = "pipeline-ledger", version, about)]
pub struct Cli {
    /// The store: a SQLite file path, or a KurrentDB connection string
    /// (`kurrentdb://host:2113?tls=false`, `esdb://…`, any form the KurrentDB client accepts).
    #[arg(long, global = true, env = "PIPELINE_LEDGER_STORE")]
    pub store: Option<PathBuf>,
    /// The SQLite file of the read models (projections and their checkpoints). Default: beside a
    /// SQLite store (`ledger.db` → `ledger.read-models.db`); `./pipeline-ledger-read-models.db`
    /// when the store is KurrentDB.
    #[arg(long, global = true, env = "PIPELINE_LEDGER_READ_MODELS")]
    pub read_models: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store (nothing happens if it exists).
    Init,
    /// Record one interaction; prints its event id, stream revision and position.
    Record {
        #[command(subcommand)]
        interaction: Box<record::RecordCommand>,
    },
    /// Import NDJSON events (one per line) from FILE, or `-` for standard input. Every line is
    /// validated first; a file with a bad line writes nothing. Importing twice adds nothing.
    Import {
        /// The NDJSON file, or `-`.
        file: PathBuf,
    },
    /// Export every event as NDJSON, in log order.
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// A customer's timeline.
    History {
        customer: pipeline_ledger::domain::CustomerId,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Projection(projection_commands::ProjectionCommand),
    /// Measure import, appends, reads, rebuilds, projection lag and query latency on generated
    /// data at each size, and print one table against the targets (see BENCHMARKS.md).
    Bench {
        /// Dataset sizes in events, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
        sizes: Vec<u64>,
        /// Where datasets (kept for the next run) and stores go.
        #[arg(long, default_value = "./bench-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Repetitions of each query.
        #[arg(long, default_value_t = 200)]
        query_samples: usize,
        /// Appends per writer (64 writers) in the group-commit figure.
        #[arg(long, default_value_t = 500)]
        appends_per_writer: usize,
        /// Appends of the single-writer figure.
        #[arg(long, default_value_t = 500)]
        single_appends: usize,
        /// Seconds of steady load in the projection-lag figure.
        #[arg(long, default_value_t = 10)]
        lag_seconds: u64,
        /// Events per second of the steady load.
        #[arg(long, default_value_t = 10_000)]
        lag_rate: u64,
    },
    /// The main job: generate a realistic seeded pipeline into a fresh store and report on it.
    Demo {
        /// Number of customers.
        #[arg(long, default_value_t = 400)]
        customers: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// End of the simulated period (default: now).
        #[arg(long, value_parser = record::parse_time)]
        until: Option<DateTime<Utc>>,
    },
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`export | head`) is the reader's choice, not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            // Typed errors often wrap their cause in their own message; print each fact once.
            let mut said = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !said.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                    said.push_str(&cause);
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// The read models' SQLite file for the store at `store`: `chosen` (the `--read-models`
/// option), else [`DEFAULT_READ_MODELS`] when the events live in KurrentDB, else the file beside
/// the SQLite store ([`read_models_beside`]).
pub fn read_models_path(chosen: Option<PathBuf>, store: &Path) -> PathBuf {
    chosen.unwrap_or_else(|| {
        if Backend::of(&store.to_string_lossy()) == Backend::Kurrent {
            PathBuf::from(DEFAULT_READ_MODELS)
        } else {
            read_models_beside(store)
        }
    })
}

/// Where `import -` keeps its temporary copy of standard input: beside a SQLite store (the same
/// file system, whose room the store needs anyway), the system's temporary directory for
/// KurrentDB.
fn spool_dir(store: &Path) -> PathBuf {
    if Backend::of(&store.to_string_lossy()) == Backend::Kurrent {
        return std::env::temp_dir();
    }
    match store.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens the store at `location`: a SQLite file, or KurrentDB for a connection string.
fn open(location: &Path) -> anyhow::Result<(Arc<dyn EventStore>, Ledger)> {
    let store = pipeline_ledger::store::open_url(
        &location.to_string_lossy(),
        pipeline_ledger::ledger::codec::stream_filter(),
    )?;
    let ledger = Ledger::new(store.clone());
    Ok((store, ledger))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store_path = cli
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Init => {
            let (store, _) = open(&store_path)?;
            let head = store.head_position().await?;
            writeln!(
                out,
                "store {} ready ({} events)",
                store_path.display(),
                head.unwrap_or(0)
            )?;
        }
        Command::Record { interaction } => {
            let (proposed, options) = record::proposed_event(*interaction)?;
            let (_, ledger) = open(&store_path)?;
            let recorded = ledger.record_with(proposed, options).await?;
            let verb = if recorded.written {
                "recorded"
            } else {
                "already recorded"
            };
            writeln!(
                out,
                "{verb} {} at revision {}, position {}",
                recorded.event_id, recorded.revision, recorded.position
            )?;
        }
        Command::Import { file } => {
            // Standard input is copied to a temporary file first, so that the store's write
            // lock is held only while writing, never while a producer is slow.
            let mut input: Box<dyn BufRead> = if file.as_os_str() == "-" {
                let spool = spool_dir(&store_path);
                let copy = tokio::task::block_in_place(|| {
                    import::spool(&mut std::io::stdin().lock(), &spool)
                })?;
                Box::new(BufReader::new(copy))
            } else {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                Box::new(BufReader::new(f))
            };
            let (_, ledger) = open(&store_path)?;
            let bar = progress_bar();
            let result = ledger.import(&mut input, &|p| show_progress(&bar, p)).await;
            bar.finish_and_clear();
            match result {
                Ok(report) => writeln!(
                    out,
                    "imported {} events: {} written, {} already present{}",
                    report.events,
                    report.written,
                    report.already_present,
                    report
                        .last_position
                        .map(|p| format!(", log at position {p}"))
                        .unwrap_or_default()
                )?,
                Err(ImportError::BadLines { bad, total }) => {
                    let mut err = std::io::stderr().lock();
                    for line in &bad {
                        writeln!(err, "{}: {line}", file.display())?;
                    }
                    if total > bad.len() {
                        writeln!(err, "… and {} more bad lines", total - bad.len())?;
                    }
                    bail!(
                        "{total} bad line(s) in {}; nothing was written",
                        file.display()
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::Export { output } => {
            let (_, ledger) = open(&store_path)?;
            let count = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = ledger.export(&mut w).await?;
                    w.flush()?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::new(&mut out);
                    let n = ledger.export(&mut w).await?;
                    w.flush()?;
                    n
                }
            };
            eprintln!("exported {count} events");
        }
        Command::History { customer, json } => {
            let (_, ledger) = open(&store_path)?;
            let events = ledger.history(&customer).await?;
            if json {
                history::history_json(&events, &mut out)?;
            } else {
                history::history_table(&events, &mut out)?;
            }
        }
        Command::Projection(cmd) => {
            let (store, _) = open(&store_path)?;
            let read_models = read_models_path(cli.read_models, &store_path);
            let read_models = projection_commands::open_read_models(&read_models);
            projection_commands::run(cmd, store, read_models, &mut out).await?;
        }
        Command::Bench {
            sizes,
            dir,
            seed,
            query_samples,
            appends_per_writer,
            single_appends,
            lag_seconds,
            lag_rate,
        } => {
            let config = crate::bench::BenchConfig {
                sizes: sizes.clone(),
                dir,
                seed,
                query_samples,
                appends_per_writer,
                single_appends,
                lag_duration: std::time::Duration::from_secs(lag_seconds),
                lag_rate,
                exe: std::env::current_exe().ok(),
            };
            let mut log = std::io::stderr();
            let figures = crate::bench::run(&config, &mut log).await?;
            crate::bench::print_table(&figures, &sizes, &mut out)?;
        }
        Command::Demo {
            customers,
            seed,
            until,
        } => {
            let path = cli
                .store
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DEMO_STORE));
            run_demo(
                &path,
                &read_models_path(cli.read_models, &path),
                customers,
                seed,
                until.unwrap_or_else(Utc::now),
                &mut out,
            )
            .await?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn run_demo(
    path: &Path,
    read_models: &Path,
    customers: usize,
    seed: u64,
    until: DateTime<Utc>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if Backend::of(&path.to_string_lossy()) == Backend::Kurrent {
        // A server is never wiped: the demo only runs on one that holds no ledger events.
        let (store, _) = open(path)?;
        if store.head_position().await?.is_some() {
            bail!(
                "the demo writes a fresh ledger, but KurrentDB at {} already holds ledger events; \
                 use an empty server",
                path.display()
            );
        }
    } else if path.exists() {
        let (store, _) = open(path)?;
        let head = store.head_position().await?;
        drop(store);
        if head.is_some() && path != Path::new(DEFAULT_DEMO_STORE) {
            bail!(
                "the demo writes a fresh store, but {} already holds events; name another --store",
                path.display()
            );
        }
        pipeline_ledger::store::sqlite::remove_files(path);
    }
    let (_, ledger) = open(path)?;
    writeln!(
        out,
        "Generating {customers} customers (seed {seed}) into {} …",
        path.display()
    )?;
    let events = generate(&DemoConfig::new(customers, seed, until));
    let lines = events
        .iter()
        .enumerate()
        .map(|(i, e)| Ok((i as u64 + 1, ledger.validate(e)?)))
        .collect::<Result<Vec<_>, pipeline_ledger::contract::line::LineError>>()?;
    let bar = progress_bar();
    let report = ledger
        .record_batch(lines, &|p| show_progress(&bar, p))
        .await?;
    bar.finish_and_clear();
    writeln!(
        out,
        "Recorded {} events for {customers} customers.\n",
        report.written
    )?;
    let counts = ledger.count_by_type().await?;
    history::counts_table(&counts, out)?;
    writeln!(out)?;
    // The read models of a fresh ledger start fresh too.
    pipeline_ledger::store::sqlite::remove_files(read_models);
    let policy = pipeline_ledger::projections::Policy::load(None)?;
    demo_report(ledger.store().clone(), read_models, policy, out).await?;
    Ok(())
}

/// The demo's report: brings the read models up to date, then prints the funnel by lead
/// source, the rep report per quarter and the pipeline with its stalled deals.
async fn demo_report(
    store: Arc<dyn EventStore>,
    read_models: &Path,
    policy: pipeline_ledger::projections::Policy,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use crate::present::reports::{Format, write_funnel, write_pipeline, write_reps};
    use pipeline_ledger::query::{FunnelRequest, PipelineRequest, Queries, RepsRequest};
    let read_models = projection_commands::open_read_models(read_models);
    let ready = std::future::ready(());
    pipeline_ledger::runner::project(&*store, &read_models, &policy, false, &mut |_| {}, ready)
        .await?;
    let queries = Queries::new(store, read_models, policy);
    // The demo's funnel is computed from the read models now, over the same model as the
    // other two reports.
    let funnel = queries
        .funnel(FunnelRequest {
            params: pipeline_ledger::projections::conversion::FunnelParams {
                by: Some(pipeline_ledger::projections::conversion::GroupBy::Source),
                ..Default::default()
            },
            fresh: true,
            ..Default::default()
        })
        .await?;
    writeln!(out, "== Funnel by lead source ==")?;
    write_funnel(out, Format::Table, &funnel)?;
    writeln!(out, "== Reps per quarter ==")?;
    let reps = queries.reps(RepsRequest::default()).await?;
    write_reps(out, Format::Table, &reps)?;
    writeln!(out, "== Pipeline and stalled deals ==")?;
    let pipeline = queries.pipeline(PipelineRequest::default()).await?;
    write_pipeline(out, Format::Table, &pipeline)?;
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    bar
}

fn show_progress(bar: &ProgressBar, p: Progress) {
    match p {
        Progress::Checked { lines, bytes } => {
            if bytes > 0 {
                bar.set_message(format!("checked {lines} lines ({} MiB)", bytes >> 20));
            } else {
                bar.set_message(format!("checked {lines} events"));
            }
            bar.tick();
        }
        Progress::Committing { events } => {
            bar.set_message(format!("committing {events} events"));
            bar.tick();
        }
    }
}

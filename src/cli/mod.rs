//! The command-line front end: parses arguments, opens the store, calls the library, prints.
//! Errors are typed below this module; here, at the edge, they become messages and exit codes.

pub mod audit_commands;
pub mod examples;
pub mod personal_data;
pub mod projection_commands;
pub mod record;
pub mod serve_commands;
pub mod suggest;

use crate::present::history;
use crate::present::progress::{self, Output, Unit};
use crate::present::table::Layout;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use pipeline_ledger::audit::migration::migrate_personal_data;
use pipeline_ledger::demo::{DemoConfig, generate_reporting};
use pipeline_ledger::ledger::import::{self, ImportError, Progress};
use pipeline_ledger::ledger::{Ledger, PersonalView};
use pipeline_ledger::read_models::sqlite::read_models_beside;
use pipeline_ledger::store::backup::BackupOptions;
use pipeline_ledger::store::files::{self, FileKind, FileMode};
use pipeline_ledger::store::{Access, Backend, EventStore, StoreOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The store used when neither `--store` nor `PIPELINE_LEDGER_STORE` says otherwise.
pub const DEFAULT_STORE: &str = "./pipeline-ledger.db";
/// Events the demo validates between two updates of its progress.
const DEMO_VALIDATE_REPORT_EVENTS: usize = 1_024;
/// The demo's own store, so that running the demo never touches a real ledger.
pub const DEFAULT_DEMO_STORE: &str = "./pipeline-ledger-demo.db";
/// Where the read models live when the events live in KurrentDB and `--read-models` is not
/// given: this, a hash of the cluster's address, and `.db` ([`kurrent_read_models`]).
pub const DEFAULT_READ_MODELS_STEM: &str = "./pipeline-ledger-read-models";

/// An event-sourced sales-pipeline ledger.
#[derive(Debug, Parser)]
#[command(name = "pipeline-ledger", version, about)]
pub struct Cli {
    /// The store: a SQLite file path, or a KurrentDB connection string
    /// (`kurrentdb://host:2113?tls=false`, `esdb://…`, any form the KurrentDB client accepts).
    #[arg(long, global = true, env = "PIPELINE_LEDGER_STORE")]
    pub store: Option<PathBuf>,
    /// The SQLite file of the read models (projections and their checkpoints). Default: beside a
    /// SQLite store (`ledger.db` → `ledger.read-models.db`); when the store is KurrentDB,
    /// `./pipeline-ledger-read-models-<hash of the cluster's address>.db`.
    #[arg(long, global = true, env = "PIPELINE_LEDGER_READ_MODELS")]
    pub read_models: Option<PathBuf>,
    /// Create new files (store, -wal, -shm, read models, backups, exports) 0640 instead of
    /// 0600, for reporting jobs that run as another user of the group.
    #[arg(
        long,
        global = true,
        env = "PIPELINE_LEDGER_GROUP_READABLE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub group_readable: bool,
    /// Show no progress on standard error (the phases of `demo`, `import`, `project`,
    /// `rebuild` and `bench`, with counts, rate and time left). Results, notices, warnings and
    /// errors are still printed.
    #[arg(
        long,
        short,
        global = true,
        env = "PIPELINE_LEDGER_QUIET",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub quiet: bool,
    #[command(flatten)]
    pub personal: personal_data::PersonalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store (nothing happens if it exists). Every command but `init`, `record`,
    /// `import` and `demo` refuses a store that does not exist.
    #[command(after_long_help = examples::INIT)]
    Init,
    /// Record one interaction; prints its event id, stream revision and position. Creates the
    /// store if it does not exist (and says so on standard error).
    Record {
        #[command(subcommand)]
        interaction: Box<record::RecordCommand>,
    },
    /// Import NDJSON events (one per line) from FILE, or `-` for standard input. Every line is
    /// validated first; a file with a bad line writes nothing. Importing twice adds nothing.
    /// Creates the store if it does not exist (and says so on standard error).
    #[command(after_long_help = examples::IMPORT)]
    Import {
        /// The NDJSON file, or `-`.
        file: PathBuf,
        /// Check FILE against this manifest (`export --manifest`) first; a slice that does not
        /// match it writes nothing.
        #[arg(long, value_name = "MANIFEST")]
        manifest: Option<PathBuf>,
        /// With --manifest: the key the manifest must be signed with (PEM file or 64 hex).
        #[arg(long, value_name = "KEY", requires = "manifest")]
        public_key: Option<String>,
    },
    /// Export events as NDJSON, in log order (all of them, or positions --from to --to). Opens
    /// the store read-only.
    #[command(after_long_help = examples::EXPORT)]
    Export {
        /// Write here instead of standard output: into a temporary file beside it, renamed over
        /// it once the export is complete. Never the store or the read models.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The first position to export (default: the first event).
        #[arg(long, value_name = "POSITION")]
        from: Option<u64>,
        /// The last position to export (default: the head).
        #[arg(long, value_name = "POSITION")]
        to: Option<u64>,
        /// Write a manifest here, beside the NDJSON: positions, count, the chain hash before
        /// the slice and at its end, the store's identity and the file's SHA-256, so that a
        /// recipient can check the slice alone (`verify --export F --manifest M`). The slice's
        /// stored hashes are checked on the way.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Sign the manifest with this secret key (`keygen`).
        #[arg(long, value_name = "FILE", requires = "manifest")]
        key: Option<PathBuf>,
        /// Personal fields (contact name, phone, e-mail, lead notes): `as-stored` (sealed; a
        /// recipient can verify it, and it imports into a ledger holding the keys),
        /// `decrypted` (needs the master key) or `redacted` (withheld, for sharing).
        #[arg(long, value_name = "VIEW", default_value = "as-stored", value_parser = parse_view, conflicts_with = "manifest")]
        personal: PersonalView,
    },
    /// Erase a customer's personal data (GDPR art. 17): destroy its data key, so every sealed
    /// personal field of its events is unreadable for good, and record a PersonalDataErased
    /// event (who, when, why). Reports, `verify` and `rebuild` are unaffected.
    #[command(after_long_help = examples::FORGET)]
    Forget {
        /// The customer's id.
        #[arg(value_name = "CUSTOMER")]
        customer: pipeline_ledger::domain::CustomerId,
        /// Why: the request the erasure honours.
        #[arg(long)]
        reason: String,
        /// Who carries it out (recorded as recorded_by and in the event).
        #[arg(long, value_name = "ID", default_value = "data-protection")]
        by: pipeline_ledger::domain::ActorId,
    },
    /// Copy this store's log into a new store with every personal field sealed: the audited way
    /// to erase personal data written in plaintext before sealing began (an append-only log
    /// cannot erase it in place). Verifies and seals the old head, copies every event (ids,
    /// times, order kept; an erased customer's plaintext withheld as erased), seals the new
    /// head and signs a statement that links the two. The old store is left untouched, for you
    /// to destroy once the new one is in service.
    #[command(after_long_help = examples::MIGRATE_PERSONAL_DATA)]
    MigratePersonalData {
        /// The new SQLite store (created; it must hold no events).
        #[arg(long, value_name = "STORE")]
        to: PathBuf,
        /// The secret key (`keygen`) that signs the seals and the statement.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Write the signed statement here. Default: beside the new store
        /// (`new.db` → `new.migration.json`).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Copy the running store into DEST: a consistent online backup (WAL included) as one
    /// self-contained file, verified before it replaces DEST. SQLite stores only.
    #[command(after_long_help = examples::BACKUP)]
    Backup {
        /// The backup file.
        dest: PathBuf,
        /// Replace DEST if it exists (only ever a pipeline-ledger store).
        #[arg(long)]
        force: bool,
    },
    /// A customer's timeline.
    #[command(after_long_help = examples::HISTORY)]
    History {
        /// The customer's id, as recorded (`customer-<id>` is its stream).
        #[arg(value_name = "CUSTOMER")]
        customer: pipeline_ledger::domain::CustomerId,
        /// Print JSON instead of a table.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV instead of a table (full RFC 3339 times).
        #[arg(long)]
        csv: bool,
        /// Withhold personal fields even when the master key is at hand (for sharing).
        #[arg(long)]
        redacted: bool,
        #[command(flatten)]
        filter: HistoryFilter,
        #[command(flatten)]
        layout: projection_commands::LayoutArgs,
    },
    #[command(flatten)]
    Projection(projection_commands::ProjectionCommand),
    #[command(flatten)]
    Audit(audit_commands::AuditCommand),
    /// Serve the HTTP API (/v1), the live feed and the dashboard, following the log with the
    /// projection runner; stops gracefully on SIGTERM or Ctrl-C.
    #[command(after_long_help = examples::SERVE)]
    Serve(serve_commands::ServeArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (the copy checked in as schemas/openapi.json).
    #[command(after_long_help = examples::OPENAPI)]
    Openapi,
    /// Manage the server's bearer tokens (issue, list, revoke).
    Token {
        #[command(subcommand)]
        command: serve_commands::TokenCommand,
    },
    /// Measure import, appends, reads, rebuilds, projection lag and query latency on generated
    /// data at each size, and print one table against the targets (see BENCHMARKS.md).
    #[command(after_long_help = examples::BENCH)]
    Bench {
        /// Dataset sizes in events, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
        sizes: Vec<u64>,
        /// Where datasets (kept for the next run) and stores go.
        #[arg(long, default_value = "./bench-data")]
        dir: PathBuf,
        /// Seed of the dataset generator: the same seed and size give the same events.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Repetitions of each query.
        #[arg(long, default_value_t = 200)]
        query_samples: usize,
        /// Repetitions of each past-date query that replays the log (`funnel --as-of`, …).
        #[arg(long, default_value_t = 5)]
        replay_samples: usize,
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
    #[command(after_long_help = examples::DEMO)]
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
        /// After the one-screen summary, the full reports: the funnel by lead source, the reps
        /// per quarter and the pipeline with every stalled deal.
        #[arg(long)]
        full: bool,
    },
}

/// Which events of a customer's history `history` shows.
#[derive(Debug, clap::Args)]
pub struct HistoryFilter {
    /// Only events that occurred at or before T: the history as it happened (RFC 3339, or a
    /// period meaning its last instant: 2026-03-31, 2026-W10, 2026-03, 2026-Q1, 2026).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    as_of: Option<DateTime<Utc>>,
    /// Only events recorded at or before T: the history as the ledger knew it (as --as-of).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    known_at: Option<DateTime<Utc>>,
    /// Only events that occurred at or after T (a period means its first instant).
    #[arg(long, value_name = "T", value_parser = parse_start)]
    from: Option<DateTime<Utc>>,
    /// Only events that occurred at or before T (a period means its last instant).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    to: Option<DateTime<Utc>>,
    /// Only events of this type (repeatable): LeadSourced, FirstVisitMade, DemoGiven,
    /// NegotiationHeld, ContractSigned, FollowUpLogged, DealLost, DealReopened,
    /// CustomerReassigned, EventCorrected.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_event_type)]
    types: Vec<pipeline_ledger::domain::EventType>,
    /// Only events of this rep (the rep who performed the interaction).
    #[arg(long, value_name = "REP")]
    rep: Option<String>,
}

impl HistoryFilter {
    /// Whether `e` is shown.
    fn keeps(&self, e: &pipeline_ledger::domain::LedgerEvent) -> bool {
        self.as_of.is_none_or(|t| e.occurred_at <= t)
            && self.known_at.is_none_or(|t| e.recorded_at <= t)
            && self.from.is_none_or(|t| e.occurred_at >= t)
            && self.to.is_none_or(|t| e.occurred_at <= t)
            && (self.types.is_empty() || self.types.contains(&e.event_type()))
            && self
                .rep
                .as_deref()
                .is_none_or(|r| e.payload.rep_id().as_str() == r)
    }
}

/// Parses a time argument that ends a range: RFC 3339, or a period meaning its last instant.
pub(crate) fn parse_end(s: &str) -> Result<DateTime<Utc>, String> {
    pipeline_ledger::projections::time::parse_time_end(s).map_err(|e| e.to_string())
}

/// Parses a time argument that starts a range: RFC 3339, or a period meaning its first instant.
pub(crate) fn parse_start(s: &str) -> Result<DateTime<Utc>, String> {
    pipeline_ledger::projections::time::parse_time_start(s).map_err(|e| e.to_string())
}

/// Parses a quarter argument: a quarter (2026-Q2), or a time or period inside one.
pub(crate) fn parse_quarter(s: &str) -> Result<String, String> {
    pipeline_ledger::projections::time::quarter_of(s).map_err(|e| e.to_string())
}

fn parse_view(s: &str) -> Result<PersonalView, String> {
    PersonalView::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a view; one of {}",
            PersonalView::NAMES.join(", ")
        )
    })
}

fn parse_event_type(s: &str) -> Result<pipeline_ledger::domain::EventType, String> {
    pipeline_ledger::domain::EventType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = pipeline_ledger::domain::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        format!("{s:?} is not an event type; one of {}", names.join(", "))
    })
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
    let result = runtime.block_on(run(cli));
    // What the stores skipped while the command read them (a hard-deleted KurrentDB stream),
    // said whether the command succeeded or not; then the stores go, inside the runtime their
    // connections belong to.
    let stores = std::mem::take(&mut *OPENED.lock().unwrap_or_else(|p| p.into_inner()));
    for store in &stores {
        for notice in store.notices() {
            eprintln!("warning: {notice}");
        }
    }
    {
        let _runtime = runtime.enter();
        drop(stores);
    }
    match result {
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
/// option), else, when the events live in KurrentDB, a file in the current directory named
/// after the cluster ([`kurrent_read_models`]), else the file beside the SQLite store
/// ([`read_models_beside`]).
pub fn read_models_path(chosen: Option<PathBuf>, store: &Path) -> PathBuf {
    chosen.unwrap_or_else(|| {
        let location = store.to_string_lossy();
        if Backend::of(&location) == Backend::Kurrent {
            kurrent_read_models(&location)
        } else {
            read_models_beside(store)
        }
    })
}

/// The default read models of a KurrentDB store: `./pipeline-ledger-read-models-<hash>.db`, the
/// hash (FNV-1a) of the connection string without its credentials, so that every cluster used
/// from one directory has its own file (and changing a password does not orphan it).
pub fn kurrent_read_models(connection: &str) -> PathBuf {
    use std::hash::Hasher;
    let without_credentials = match connection.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, hosts)) => format!("{scheme}://{hosts}"),
            None => connection.to_string(),
        },
        None => connection.to_string(),
    };
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(without_credentials.as_bytes());
    PathBuf::from(format!(
        "{DEFAULT_READ_MODELS_STEM}-{:016x}.db",
        hasher.finish()
    ))
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

/// The KurrentDB stores this process opened, for their notices at exit. (Only those: an
/// embedded store kept alive to the end would never be closed, and SQLite folds the WAL into the
/// store file on the last close.)
static OPENED: std::sync::Mutex<Vec<Arc<dyn EventStore>>> = std::sync::Mutex::new(Vec::new());

/// Opens the store at `location`: a SQLite file, or KurrentDB for a connection string.
fn open(location: &Path, options: StoreOptions) -> anyhow::Result<(Arc<dyn EventStore>, Ledger)> {
    let created = options.access == Access::CreateIfMissing
        && Backend::of(&location.to_string_lossy()) == Backend::Sqlite
        && !location.exists();
    let store = pipeline_ledger::store::open_url_with(
        &location.to_string_lossy(),
        pipeline_ledger::ledger::codec::stream_filter(),
        options,
    )?;
    if created {
        eprintln!("created a new store at {}", location.display());
    }
    if Backend::of(&location.to_string_lossy()) == Backend::Kurrent {
        OPENED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store.clone());
    }
    let ledger = Ledger::new(store.clone());
    Ok((store, ledger))
}

/// The options of a store opened with `access`, creating files with `mode`.
fn with(access: Access, file_mode: FileMode) -> StoreOptions {
    StoreOptions { access, file_mode }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    personal_data::set_flags(cli.personal.clone());
    let store_path = cli
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let mode = if cli.group_readable {
        FileMode::GroupReadable
    } else {
        FileMode::Private
    };
    let shown = progress::Progress::new(Output::detect(cli.quiet));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Init => {
            let (store, _) = open(&store_path, with(Access::CreateIfMissing, mode))?;
            personal_data::open_vault(&store_path, Access::CreateIfMissing)?;
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
            let (_, ledger) = open(&store_path, with(Access::CreateIfMissing, mode))?;
            let ledger = personal_data::attach(ledger, &store_path, Access::CreateIfMissing)?;
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
        Command::Import {
            file,
            manifest,
            public_key,
        } => {
            if let Some(manifest) = manifest {
                check_import_manifest(&file, &manifest, public_key.as_deref())?;
            }
            // Standard input is copied to a temporary file first, so that the store's write
            // lock is held only while writing, never while a producer is slow.
            let input_file = if file.as_os_str() == "-" {
                let spool = spool_dir(&store_path);
                tokio::task::block_in_place(|| import::spool(&mut std::io::stdin().lock(), &spool))?
            } else {
                std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?
            };
            // The input's size is the checking phase's total (its lines are counted as read).
            let input_bytes = input_file.metadata().map_or(0, |m| m.len());
            let mut input: Box<dyn BufRead + Send> = Box::new(BufReader::new(input_file));
            let (_, ledger) = open(&store_path, with(Access::CreateIfMissing, mode))?;
            let ledger = personal_data::attach(ledger, &store_path, Access::CreateIfMissing)?;
            shown.start("checking", Unit::Bytes, input_bytes);
            let result = ledger.import(&mut input, &|p| show_batch(&shown, p)).await;
            if result.is_ok() {
                shown.complete();
            }
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
        Command::Export {
            output,
            from,
            to,
            manifest,
            key,
            personal,
        } => {
            let read_models = read_models_path(cli.read_models.clone(), &store_path);
            for path in output.iter().chain(&manifest) {
                refuse_ledger_file(path, &store_path, &read_models)?;
            }
            if let (Some(output), Some(manifest)) = (&output, &manifest)
                && files::is_part_of(output, manifest)
            {
                bail!(
                    "the manifest goes beside the export, never into it: name another file \
                     than {}",
                    output.display()
                );
            }
            let key = key
                .map(|k| pipeline_ledger::keys::SecretKey::read(&k))
                .transpose()?;
            let (_, ledger) = open(&store_path, with(Access::ReadOnly, mode))?;
            let ledger = personal_data::attach(ledger, &store_path, Access::ReadOnly)?;
            if personal == PersonalView::Decrypted && ledger.vault().is_none() {
                bail!(
                    "--personal decrypted needs the master key and the key store of {};                      without them, export as-stored or redacted",
                    store_path.display()
                );
            }
            let what = ExportSlice {
                personal,
                from,
                to,
                manifest: manifest.is_some(),
                key: key.as_ref(),
            };
            let (count, made) = match &output {
                Some(path) => export_to_file(&ledger, &what, path, mode).await?,
                None => {
                    let mut w = std::io::BufWriter::new(&mut out);
                    let done = export_into(&ledger, &what, &mut w).await?;
                    w.flush()?;
                    done
                }
            };
            if let (Some(path), Some(made)) = (&manifest, made) {
                let text = serde_json::to_string_pretty(&made)? + "\n";
                audit_commands::write_file(path, text.as_bytes(), mode)?;
                eprintln!(
                    "wrote the manifest {} (last hash {})",
                    path.display(),
                    made.statement.last_hash
                );
            }
            eprintln!("exported {count} events");
        }
        Command::Backup { dest, force } => {
            if Backend::of(&store_path.to_string_lossy()) == Backend::Kurrent {
                bail!(
                    "`backup` copies a SQLite store; KurrentDB keeps its own backups: use the \
                     server's backup procedure (see the KurrentDB documentation, \"Backup and \
                     restore\")"
                );
            }
            let options = BackupOptions {
                force,
                file_mode: mode,
            };
            let report = pipeline_ledger::store::backup::backup(&store_path, &dest, options)?;
            writeln!(
                out,
                "backed up {} events (up to position {}) into {} ({} bytes), verified",
                report.events,
                report.head,
                dest.display(),
                report.bytes
            )?;
            // The key store after the log: every key the copied log needs is in the copy.
            let keys = personal_data::vault_paths(&store_path).key_store;
            if keys.exists() {
                let keys_dest = personal_data::vault_paths(&dest).key_store;
                pipeline_ledger::keys::vault::copy_key_store(&keys, &keys_dest)?;
                writeln!(
                    out,
                    "backed up the key store into {}; the master key and the erasure journal \
                     are not copied (keep them apart)",
                    keys_dest.display()
                )?;
            }
        }
        Command::History {
            customer,
            json,
            csv,
            redacted,
            filter,
            layout,
        } => {
            let (store, ledger) = open(&store_path, with(Access::ReadOnly, mode))?;
            let ledger = personal_data::attach(ledger, &store_path, Access::ReadOnly)?;
            let events = match ledger.history(&customer).await {
                Ok(events) => events,
                Err(pipeline_ledger::ledger::HistoryError::UnknownCustomer(_)) => {
                    // Suggestions come from the read models, when there are any to read.
                    let path = read_models_path(cli.read_models.clone(), &store_path);
                    let read_models =
                        matches!(files::kind_of_file(&path), Ok(Some(FileKind::ReadModels)))
                            .then(|| projection_commands::open_read_models(&path, mode));
                    let hint = suggest::unknown_customer_hint(
                        &*store,
                        read_models.as_ref(),
                        customer.as_str(),
                        false,
                    )
                    .await;
                    bail!("{hint}");
                }
                Err(e) => return Err(e.into()),
            };
            let mut events: Vec<_> = events.into_iter().filter(|e| filter.keeps(e)).collect();
            let view = if redacted {
                PersonalView::Redacted
            } else {
                PersonalView::Decrypted
            };
            ledger.reveal(&mut events, view)?;
            if json {
                history::history_json(&events, &mut out)?;
            } else if csv {
                history::history_csv(&events, &mut out)?;
            } else {
                history::history_table(&events, &mut out, layout.layout())?;
            }
        }
        Command::MigratePersonalData { to, key, output } => {
            let (_, old) = open(&store_path, with(Access::MustExist, mode))?;
            let old = personal_data::attach(old, &store_path, Access::MustExist)?;
            let Some(vault) = old.vault().cloned() else {
                bail!("the store's key store could not be opened: nothing can be sealed");
            };
            if files::is_part_of(&to, &store_path) || to == store_path {
                bail!("--to must name a new store, not this one");
            }
            let (_, new) = open(&to, with(Access::CreateIfMissing, mode))?;
            let new = new.with_personal_data(vault);
            let key = pipeline_ledger::keys::SecretKey::read(&key)?;
            let done = migrate_personal_data(&old, &new, &key).await?;
            let path = output.unwrap_or_else(|| {
                let stem = to.file_stem().unwrap_or_default().to_string_lossy();
                to.with_file_name(format!("{stem}.migration.json"))
            });
            let text = serde_json::to_string_pretty(&done)? + "\n";
            audit_commands::write_file(&path, text.as_bytes(), mode)?;
            // Each seal on its own too, for `verify --seal` against each store.
            let stem = to.file_stem().unwrap_or_default().to_string_lossy();
            for (end, seal) in [("from", &done.statement.from), ("to", &done.statement.to)] {
                let seal_path = to.with_file_name(format!("{stem}.{end}.seal"));
                let text = serde_json::to_string_pretty(seal)? + "\n";
                audit_commands::write_file(&seal_path, text.as_bytes(), mode)?;
            }
            let carried = personal_data::carry_over(&store_path, &to)?;
            let (from, into) = (&done.statement.from.statement, &done.statement.to.statement);
            writeln!(
                out,
                "copied {} events (old head: position {}, hash {}) into {} (new head: position \
                 {}, hash {}); {} plaintext personal field(s) sealed, {} of erased customers \
                 withheld",
                from.events,
                from.position,
                from.head_hash,
                to.display(),
                into.position,
                into.head_hash,
                done.statement.sealed_fields,
                done.statement.withheld_fields
            )?;
            for file in carried {
                writeln!(out, "copied {} for the new store", file.display())?;
            }
            writeln!(
                out,
                "signed statement: {} (the seals of both heads are also in {stem}.from.seal and \
                 {stem}.to.seal, for `verify --seal`). Point the ledger \
                 at {}, then destroy {} and its copies: the plaintext stays in them",
                path.display(),
                to.display(),
                store_path.display()
            )?;
        }
        Command::Forget {
            customer,
            reason,
            by,
        } => {
            let (_, ledger) = open(&store_path, with(Access::MustExist, mode))?;
            let ledger = personal_data::attach(ledger, &store_path, Access::MustExist)?;
            personal_data::forget(&ledger, &customer, &reason, &by, &mut out).await?;
        }
        Command::Projection(cmd) => {
            // Every projection command only reads the store (`project` and `rebuild` write the
            // read models, which are files of their own).
            let (store, _) = open(&store_path, with(Access::ReadOnly, mode))?;
            let read_models = open_read_models(cli.read_models, &store_path, mode)?;
            projection_commands::run(cmd, store, read_models, &shown, &mut out).await?;
        }
        Command::Serve(args) => {
            let (store, _) = open(&store_path, with(Access::MustExist, mode))?;
            let read_models = open_read_models(cli.read_models, &store_path, mode)?;
            let access =
                serve_commands::open_access(&store_path, &store, Access::CreateIfMissing, mode)?;
            let vault = personal_data::open_vault(&store_path, Access::MustExist)?;
            serve_commands::serve(args, store, read_models, access, vault).await?;
        }
        Command::Audit(command) => {
            let location = store_path.clone();
            let opener = || async move {
                let (store, _) = open(&location, with(Access::ReadOnly, mode))?;
                anyhow::Ok(store)
            };
            audit_commands::run(command, opener, mode, &mut out).await?;
        }
        Command::Openapi => {
            out.write_all(crate::server::openapi::document_text().as_bytes())?;
        }
        Command::Token { command } => {
            let (store, _) = open(&store_path, with(Access::MustExist, mode))?;
            let access =
                serve_commands::open_access(&store_path, &store, Access::CreateIfMissing, mode)?;
            serve_commands::token(command, access, &mut out).await?;
        }
        Command::Bench {
            sizes,
            dir,
            seed,
            query_samples,
            replay_samples,
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
                replay_samples,
                appends_per_writer,
                single_appends,
                lag_duration: std::time::Duration::from_secs(lag_seconds),
                lag_rate,
                exe: std::env::current_exe().ok(),
                progress: shown.output(),
            };
            let mut log = std::io::stderr();
            let figures = crate::bench::run(&config, &mut log).await?;
            crate::bench::print_table(&figures, &sizes, &mut out)?;
        }
        Command::Demo {
            customers,
            seed,
            until,
            full,
        } => {
            let path = cli
                .store
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DEMO_STORE));
            run_demo(
                &path,
                &read_models_path(cli.read_models, &path),
                mode,
                &DemoConfig::new(customers, seed, until.unwrap_or_else(Utc::now)),
                &shown,
                full,
                &mut out,
            )
            .await?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Opens the read models of the store at `store` (`chosen`: the `--read-models` option), never
/// the store's own file.
fn open_read_models(
    chosen: Option<PathBuf>,
    store: &Path,
    mode: FileMode,
) -> anyhow::Result<Arc<dyn pipeline_ledger::read_models::ReadModels>> {
    let path = read_models_path(chosen, store);
    if files::is_part_of(&path, store) {
        bail!(
            "--read-models names the store {} itself; name the read models' own file",
            store.display()
        );
    }
    Ok(projection_commands::open_read_models(&path, mode))
}

/// Refuses `output` when it is a file of the ledger: the store, its -wal or -shm, or the read
/// models (and theirs).
fn refuse_ledger_file(output: &Path, store: &Path, read_models: &Path) -> anyhow::Result<()> {
    if Backend::of(&store.to_string_lossy()) == Backend::Sqlite && files::is_part_of(output, store)
    {
        bail!(
            "{} is the store (or its -wal or -shm file); export to another file",
            output.display()
        );
    }
    if files::is_part_of(output, read_models) {
        bail!(
            "{} is the read models' file; export to another file",
            output.display()
        );
    }
    Ok(())
}

/// What `export` writes: positions `from..=to`, and whether a manifest proves them.
struct ExportSlice<'a> {
    personal: PersonalView,
    from: Option<u64>,
    to: Option<u64>,
    manifest: bool,
    key: Option<&'a pipeline_ledger::keys::SecretKey>,
}

/// Writes the export into `w`: the events, and the manifest when one is asked for.
async fn export_into(
    ledger: &Ledger,
    what: &ExportSlice<'_>,
    w: &mut dyn Write,
) -> anyhow::Result<(u64, Option<pipeline_ledger::audit::manifest::Manifest>)> {
    if what.manifest {
        let made = pipeline_ledger::audit::manifest::export_slice(
            &**ledger.store(),
            what.from,
            what.to,
            what.key,
            w,
        )
        .await?;
        Ok((made.statement.events, Some(made)))
    } else {
        Ok((
            ledger
                .export_range(what.from, what.to, what.personal, w)
                .await?,
            None,
        ))
    }
}

/// Refuses an import whose file does not match its manifest, before anything is written.
fn check_import_manifest(file: &Path, manifest: &Path, key: Option<&str>) -> anyhow::Result<()> {
    if file.as_os_str() == "-" {
        bail!("--manifest checks a file; standard input cannot be read twice: import a file");
    }
    let pinned = key
        .map(pipeline_ledger::keys::PublicKey::read)
        .transpose()?;
    let manifest = audit_commands::read_manifest(manifest)?;
    let check = audit_commands::check_slice_file(file, &manifest, pinned.as_ref())?;
    if let Some(p) = check.problem {
        let at = p.line.map(|l| format!(" at line {l}")).unwrap_or_default();
        bail!(
            "{} does not match its manifest{at}: {}; nothing was written",
            file.display(),
            p.detail
        );
    }
    eprintln!(
        "{} matches its manifest ({} events, store {})",
        file.display(),
        check.events,
        manifest.statement.store_identity
    );
    Ok(())
}

/// Exports into a temporary file beside `path` (created with `mode`), synced and renamed over
/// `path` only once the export is complete: a failed export leaves `path` as it was.
async fn export_to_file(
    ledger: &Ledger,
    what: &ExportSlice<'_>,
    path: &Path,
    mode: FileMode,
) -> anyhow::Result<(u64, Option<pipeline_ledger::audit::manifest::Manifest>)> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?
        .to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.export-{}.tmp", std::process::id()));
    let file = files::create_new_file(&temp, mode)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    let result = async {
        let mut w = std::io::BufWriter::new(file);
        let n = export_into(ledger, what, &mut w).await?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))?;
        anyhow::Ok(n)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Refuses a demo whose read-models path is the store, or a file that is not a read-models
/// file of ours: the demo removes only the read models it made for itself.
fn check_demo_read_models(store: &Path, read_models: &Path) -> anyhow::Result<()> {
    if files::is_part_of(read_models, store) {
        bail!(
            "--read-models names the demo's store {} itself; nothing was touched; name the read \
             models' own file",
            store.display()
        );
    }
    match files::kind_of_file(read_models)
        .with_context(|| format!("cannot read {}", read_models.display()))?
    {
        None | Some(FileKind::ReadModels) => Ok(()),
        Some(_) => bail!(
            "the demo starts its read models afresh, but {} is not a pipeline-ledger read-models \
             file; nothing was touched; name another --read-models",
            read_models.display()
        ),
    }
}

async fn run_demo(
    path: &Path,
    read_models: &Path,
    mode: FileMode,
    config: &DemoConfig,
    shown: &progress::Progress,
    full: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    check_demo_read_models(path, read_models)?;
    if Backend::of(&path.to_string_lossy()) == Backend::Kurrent {
        // A server is never wiped: the demo only runs on one that holds no ledger events.
        let (store, _) = open(path, with(Access::MustExist, mode))?;
        if store.head_position().await?.is_some() {
            bail!(
                "the demo writes a fresh ledger, but KurrentDB at {} already holds ledger events; \
                 use an empty server",
                path.display()
            );
        }
    } else if path.exists() {
        let (store, _) = open(path, with(Access::MustExist, mode))?;
        let head = store.head_position().await?;
        drop(store);
        if head.is_some() && path != Path::new(DEFAULT_DEMO_STORE) {
            bail!(
                "the demo writes a fresh store, but {} already holds events; name another --store",
                path.display()
            );
        }
        pipeline_ledger::store::sqlite::remove_files(path);
        personal_data::remove_demo_files(path);
    }
    let (_, ledger) = open(path, with(Access::CreateIfMissing, mode))?;
    let ledger = personal_data::attach(ledger, path, Access::CreateIfMissing)?;
    let (customers, seed) = (config.customers, config.seed);
    writeln!(
        out,
        "Generating {customers} customers (seed {seed}) into {} …",
        path.display()
    )?;
    shown.start("generating", Unit::Customers, customers as u64);
    let events = generate_reporting(config, &mut |n| shown.set(n as u64));
    shown.start("validating", Unit::Events, events.len() as u64);
    let mut lines = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        lines.push((i as u64 + 1, ledger.validate(e)?));
        if (i + 1) % DEMO_VALIDATE_REPORT_EVENTS == 0 {
            shown.set(i as u64 + 1);
        }
    }
    shown.set(lines.len() as u64);
    shown.start("checking", Unit::Events, lines.len() as u64);
    let report = ledger
        .record_batch(lines, &|p| show_batch(shown, p))
        .await?;
    shown.complete();
    writeln!(
        out,
        "Recorded {} events for {customers} customers.\n",
        report.written
    )?;
    if full {
        let counts = ledger.count_by_type().await?;
        history::counts_table(&counts, out, Layout::for_stdout())?;
    }
    // The read models of a fresh ledger start fresh too: checked above to be a read-models
    // file of ours (or missing), and checked again now, just before it is removed.
    check_demo_read_models(path, read_models)?;
    pipeline_ledger::store::sqlite::remove_files(read_models);
    let policy = pipeline_ledger::projections::Policy::load(None)?;
    let store_hint = if cli_store_is_default(path) {
        String::new()
    } else {
        format!("export PIPELINE_LEDGER_STORE={}", path.display())
    };
    demo_report(
        ledger.store().clone(),
        read_models,
        mode,
        policy,
        shown,
        DemoReport { full, store_hint },
        out,
    )
    .await?;
    Ok(())
}

/// Whether the other commands find the store at `path` without being told.
fn cli_store_is_default(path: &Path) -> bool {
    let default = std::env::var_os("PIPELINE_LEDGER_STORE")
        .map_or_else(|| PathBuf::from(DEFAULT_STORE), PathBuf::from);
    path == default
}

/// What the demo prints after recording.
struct DemoReport {
    /// The full reports after the summary.
    full: bool,
    /// How the next commands find the store (see [`crate::present::summary::write_summary`]).
    store_hint: String,
}

/// The demo's report: brings the read models up to date, then prints the one-screen summary
/// and, when asked, the funnel by lead source, the rep report per quarter and the pipeline
/// with its stalled deals.
async fn demo_report(
    store: Arc<dyn EventStore>,
    read_models: &Path,
    mode: FileMode,
    policy: pipeline_ledger::projections::Policy,
    shown: &progress::Progress,
    report: DemoReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use crate::present::reports::{Format, Worklist, write_funnel, write_pipeline, write_reps};
    use pipeline_ledger::query::{FunnelRequest, PipelineRequest, Queries, RepsRequest};
    let read_models = projection_commands::open_read_models(read_models, mode);
    // The demo's read models start empty, so this is a rebuild: no need to say why.
    let ready = std::future::ready(());
    projection_commands::catch_up(&*store, &read_models, &policy, false, shown, &|_| {}, ready)
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
    let reps = queries.reps(RepsRequest::default()).await?;
    let scorecard = queries
        .scorecard(pipeline_ledger::query::ScorecardRequest::default())
        .await?;
    let ranking = queries
        .ranking(pipeline_ledger::query::RankingRequest::default())
        .await?;
    let pipeline = queries.pipeline(PipelineRequest::default()).await?;
    crate::present::summary::write_summary(
        out,
        &funnel,
        &reps,
        &scorecard,
        &ranking,
        &pipeline,
        &report.store_hint,
    )?;
    if report.full {
        let format = Format::Table(Layout::for_stdout());
        writeln!(out, "\n== Funnel by lead source ==")?;
        write_funnel(out, format, &funnel)?;
        writeln!(out, "== Reps per quarter ==")?;
        write_reps(out, format, &reps)?;
        writeln!(out, "== Rep scorecard ==")?;
        crate::present::reports::write_scorecard(out, format, &scorecard)?;
        writeln!(out, "== Customer ranking ==")?;
        crate::present::reports::write_ranking(out, format, &ranking)?;
        writeln!(out, "== Pipeline and stalled deals ==")?;
        write_pipeline(out, format, &pipeline, &Worklist::default())?;
    }
    Ok(())
}

/// Shows a batch's progress (an import's or the demo's) in the phase under way: `checking`,
/// whose count is bytes of input for an import and events for the demo, then `committing`.
fn show_batch(shown: &progress::Progress, p: Progress) {
    match p {
        Progress::Checked { lines, bytes } => shown.set(if bytes > 0 { bytes } else { lines }),
        Progress::Committing { events } => shown.start("committing", Unit::Events, events),
    }
}

#[cfg(test)]
mod tests {
    use super::kurrent_read_models;

    #[test]
    fn every_cluster_has_its_own_read_models_and_credentials_do_not_count() {
        let a = kurrent_read_models("kurrentdb://admin:changeit@db1:2113?tls=false");
        let b = kurrent_read_models("kurrentdb://db2:2113?tls=false");
        let a_again = kurrent_read_models("kurrentdb://ops:other@db1:2113?tls=false");
        assert_ne!(a, b);
        assert_eq!(a, a_again);
        assert!(
            a.to_string_lossy()
                .starts_with("./pipeline-ledger-read-models-")
        );
    }
}

#[cfg(test)]
mod help_tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every (sub)command with its path, depth first.
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            let path = if prefix.is_empty() {
                cmd.get_name().to_string()
            } else {
                format!("{prefix} {}", cmd.get_name())
            };
            out.push((path.clone(), cmd.clone()));
            for sub in cmd.get_subcommands() {
                walk(&path, sub, out);
            }
        }
        let mut out = Vec::new();
        walk("", &Cli::command(), &mut out);
        out
    }

    /// Issue 15: every flag and argument of every command says what it is.
    #[test]
    fn every_flag_and_argument_is_described() {
        let mut undescribed = Vec::new();
        for (path, cmd) in commands() {
            for arg in cmd.get_arguments() {
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    undescribed.push(format!("{path} {}", arg.get_id()));
                }
            }
        }
        assert!(undescribed.is_empty(), "undescribed: {undescribed:#?}");
    }

    /// Issue 15: every command a user runs shows at least one example in its `--help`.
    #[test]
    fn every_command_shows_an_example() {
        let mut without = Vec::new();
        for (path, mut cmd) in commands() {
            if cmd.has_subcommands() || cmd.get_name() == "help" {
                continue;
            }
            let help = cmd.render_long_help().to_string();
            if !help.contains("Example") {
                without.push(path);
            }
        }
        assert!(without.is_empty(), "no example: {without:#?}");
    }
}

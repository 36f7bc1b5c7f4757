//! The projection commands: `project`, `rebuild`, `funnel`, `reps`, `customer`, `pipeline`.
//! Parsing and printing only: the runner brings the read models up to date, and the query layer
//! answers every report (choosing a kept report, the live read models or a replay).

use super::{parse_end, parse_start};
use crate::present::progress::{Progress, Unit};
use crate::present::reports::{
    Format, Layout, Worklist, write_customer, write_funnel, write_pipeline, write_qualification,
    write_ranking, write_reps, write_retention, write_scorecard,
};
use chrono::{DateTime, Utc};
use pipeline_ledger::projections::activity::RepsParams;
use pipeline_ledger::projections::conversion::{FunnelParams, GroupBy};
use pipeline_ledger::projections::meta::ReportAt;
use pipeline_ledger::projections::policy::Policy;
use pipeline_ledger::projections::ranking::RankingParams;
use pipeline_ledger::projections::retention::RetentionParams;
use pipeline_ledger::projections::time::Period;
use pipeline_ledger::query::{
    CustomerRequest, FunnelRequest, PipelineRequest, QualificationRequest, Queries, QueryError,
    RankingRequest, RepsRequest, RetentionRequest, ScorecardRequest,
};
use pipeline_ledger::read_models::ReadModelError;
use pipeline_ledger::read_models::ReadModels;
use pipeline_ledger::read_models::sqlite::SqliteReadModels;
use pipeline_ledger::runner;
use pipeline_ledger::store::EventStore;
use pipeline_ledger::store::files::FileMode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options shared by every report.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Print JSON (one document) instead of tables.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the report's main table as CSV, with the log position on every row.
    #[arg(long)]
    pub csv: bool,
    /// Reproduce the report as it was at this log position (replays the log up to it).
    #[arg(long, value_name = "P")]
    pub at_position: Option<u64>,
    /// The pipeline as it happened: only events that occurred at or before T (RFC 3339, or a
    /// period meaning its last instant, UTC: 2026-03-31, 2026-W10, 2026-03, 2026-Q1, 2026).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    pub as_of: Option<DateTime<Utc>>,
    /// The pipeline as the ledger knew it: only events recorded at or before T (as --as-of).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    pub known_at: Option<DateTime<Utc>>,
    /// The clock for stalled, dormant and overdue figures (default: --as-of/--known-at, else
    /// the latest time in the log).
    #[arg(long, value_name = "T", value_parser = parse_end)]
    pub now: Option<DateTime<Utc>>,
    /// Policy file (default: $PIPELINE_LEDGER_POLICY, ./projections/policy.json, built-in).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

/// How tables are laid out for a person (every command that prints tables).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LayoutArgs {
    /// Under each table, what each of its figures means (the definitions of
    /// projections/README.md; the dashboard and /v1/definitions show the same texts).
    #[arg(long, conflicts_with_all = ["json", "csv"])]
    pub explain: bool,
    /// Lay tables out for this many columns (40 or more): wider tables fold into stacked
    /// sections and long cells wrap (default: the terminal's width; no limit when piped).
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..))]
    pub width: Option<u16>,
}

impl LayoutArgs {
    /// The layout asked for, the terminal's width unless `--width` says otherwise.
    pub fn layout(&self) -> Layout {
        Layout {
            width: self
                .width
                .map(usize::from)
                .or_else(crate::present::table::terminal_width),
            explain: self.explain,
        }
    }
}

impl ReportArgs {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.csv {
            Format::Csv
        } else {
            Format::Table(self.layout.layout())
        }
    }

    fn at(&self) -> ReportAt {
        ReportAt {
            at_position: self.at_position,
            as_of: self.as_of,
            known_at: self.known_at,
            now: self.now,
        }
    }
}

/// Funnel grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ByArg {
    Source,
    Rep,
    Cohort,
}

/// Cohort granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CohortArg {
    Month,
    Quarter,
    Year,
}

/// The length of a report's periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeriodArg {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl From<PeriodArg> for Period {
    fn from(p: PeriodArg) -> Period {
        match p {
            PeriodArg::Day => Period::Day,
            PeriodArg::Week => Period::Week,
            PeriodArg::Month => Period::Month,
            PeriodArg::Quarter => Period::Quarter,
            PeriodArg::Year => Period::Year,
        }
    }
}

/// The projection subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ProjectionCommand {
    /// Bring the read models (rm_ tables) up to date with the log; --follow keeps them live.
    #[command(after_long_help = super::examples::PROJECT)]
    Project {
        /// Keep running and apply new events as they are recorded (Ctrl-C stops).
        #[arg(long)]
        follow: bool,
        /// Policy file.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Rebuild the read models from the start of the log into new tables, then swap them in.
    #[command(after_long_help = super::examples::REBUILD)]
    Rebuild {
        /// Policy file.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Stage conversion: cohort and period views, transitions, win rate, lost reasons.
    #[command(after_long_help = super::examples::FUNNEL)]
    Funnel {
        /// Window start, inclusive: RFC 3339, or a period meaning its first instant (2026-03-31,
        /// 2026-W10, 2026-03, 2026-Q1, 2026).
        #[arg(long, value_parser = parse_start)]
        from: Option<DateTime<Utc>>,
        /// Window end, inclusive: RFC 3339, or a period meaning its last instant (2026-Q1 is up
        /// to the end of March).
        #[arg(long, value_parser = parse_end)]
        to: Option<DateTime<Utc>>,
        /// Break the funnel down by lead source, by rep (owner when the lead was sourced) or by
        /// cohort.
        #[arg(long, value_enum)]
        by: Option<ByArg>,
        /// Cohort granularity for --by cohort.
        #[arg(long, value_enum, default_value = "month")]
        cohort: CohortArg,
        /// Compute it from the read models now, instead of reading the funnel the runner keeps
        /// computed (whole, and by source, rep and month cohort, over all deals): that one is
        /// refreshed when `project` or `rebuild` finish and every minute under `project --follow`,
        /// and states the position it reflects.
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Rep activity and results per period.
    #[command(after_long_help = super::examples::REPS)]
    Reps {
        /// The length of each period the figures are given for.
        #[arg(long, value_enum, default_value = "quarter")]
        period: PeriodArg,
        /// Only this rep.
        #[arg(long)]
        rep: Option<String>,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// The quarterly rep scorecard: activity, results and quality against the policy's
    /// targets, weighted and ranked, with each rep's movement since the quarter before.
    #[command(after_long_help = super::examples::SCORECARD)]
    Scorecard {
        /// The quarter (2026-Q2), or a date or month inside it; default the latest quarter
        /// with a rep row.
        #[arg(long, value_name = "QUARTER", value_parser = super::parse_quarter)]
        quarter: Option<String>,
        /// Only this rep's row (the ranks stay those among every rep).
        #[arg(long)]
        rep: Option<String>,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Retention: repeat orders, revenue from new and existing customers per period and
    /// currency, dormancy and re-engagement, days from a win to the first repeat order.
    #[command(after_long_help = super::examples::RETENTION)]
    Retention {
        /// The length of each period of the per-period rows.
        #[arg(long, value_enum, default_value = "quarter")]
        period: PeriodArg,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Customer ranking (80/20): customers classed A+ / A / B / C by revenue per period, the
    /// share of the top 20%, and how customers moved between classes since the period before.
    /// With exchange rates in the policy (fx) money is converted into the home currency;
    /// without them each currency is ranked on its own.
    #[command(after_long_help = super::examples::RANKING)]
    Ranking {
        /// The length of each period.
        #[arg(long, value_enum, default_value = "quarter")]
        period: PeriodArg,
        /// List the customers of the period holding this time or period (2026-Q2, 2026-05,
        /// 2026-05-14); default the latest period with revenue.
        #[arg(long = "in", value_name = "TIME", value_parser = super::parse_start)]
        within: Option<DateTime<Utc>>,
        /// How many customers of that period to list (0: all).
        #[arg(long, default_value_t = pipeline_ledger::projections::ranking::RANKING_LIMIT_DEFAULT)]
        limit: usize,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Qualification: win rate and conversion by the lead worksheet's score (0–7) and by each
    /// criterion (met against not met, and the lift), the calibration of the score per band,
    /// and the same by the intent judged at the first visit.
    #[command(after_long_help = super::examples::QUALIFICATION)]
    Qualification {
        #[command(flatten)]
        report: ReportArgs,
    },
    /// One customer: state, owner, stage history, time in stage.
    #[command(after_long_help = super::examples::CUSTOMER)]
    Customer {
        /// The customer's id, as recorded.
        #[arg(value_name = "CUSTOMER")]
        id: String,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Counts per state and stage, stalled deals and overdue follow-ups.
    #[command(after_long_help = super::examples::PIPELINE)]
    Pipeline {
        /// Only this rep's stalled deals and overdue follow-ups (REP: a rep id, rep-03).
        #[arg(long, value_name = "REP")]
        owner: Option<String>,
        /// At most N stalled deals per owner, the longest stalled first (default: 10 in the
        /// table, all in the CSV; JSON always has all).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        report: ReportArgs,
    },
}

/// Stalled deals shown per owner in `pipeline`'s table unless `--limit` says otherwise: a
/// worklist a rep can get through, not every stalled deal of the ledger.
pub const WORKLIST_PER_OWNER_DEFAULT: usize = 10;

/// Shows the runner's progress: the phase (`rebuilding` or `projecting`) with its count and
/// total (the log's head for a rebuild, what was behind for a projection), rate and time left;
/// once a follower has caught up, its position and lag as they change.
struct RunnerProgress<'a> {
    shown: &'a Progress,
    /// Whether the phase shown is a rebuild's; `None` when no phase is shown.
    phase: Option<bool>,
    /// Whether the run has caught up before (a follower's later figures are its live state).
    was_caught_up: bool,
    /// Whether the run follows the log once caught up (`project --follow`).
    follow: bool,
}

impl<'a> RunnerProgress<'a> {
    fn new(shown: &'a Progress, follow: bool) -> Self {
        RunnerProgress {
            shown,
            phase: None,
            was_caught_up: false,
            follow,
        }
    }

    /// Starts the `rebuilding` phase before the rebuild's first figures (a rebuild reports
    /// every few thousand customers only): its total, the log's head, is known at once.
    fn begin_rebuild(&mut self, head: u64) {
        self.shown.start("rebuilding", Unit::Events, head);
        self.phase = Some(true);
        self.was_caught_up = false;
    }

    fn update(&mut self, p: &runner::Progress) {
        if let Some(notice) = &p.retrying {
            // Always said, on a terminal too: it explains why nothing moves.
            self.shown.note(&format!("projections: {notice}"));
            return;
        }
        if self.was_caught_up && !p.rebuilding && p.caught_up {
            self.shown.status(&live_line(p), false);
            return;
        }
        // A rebuild's figures have no position until its end; its total is the head it reads
        // up to. A projection's total is what it applied and what is still behind.
        let total = match p.position {
            None => p.head.unwrap_or(0).max(p.events_applied),
            Some(_) => p.events_applied.saturating_add(p.lag),
        };
        if self.phase != Some(p.rebuilding) {
            let name = if p.rebuilding {
                "rebuilding"
            } else {
                "projecting"
            };
            self.shown.start(name, Unit::Events, total);
            self.phase = Some(p.rebuilding);
        }
        self.shown.set_with_total(p.events_applied, total);
        if p.caught_up && p.rebuilding {
            // The rebuild has folded the log; it still indexes the new tables, swaps them in
            // and refreshes the kept funnels (seconds, uncounted): shown as a step of its own.
            self.shown.start_step("swapping in");
            self.phase = None;
            self.was_caught_up = false;
            return;
        }
        if p.caught_up {
            self.shown.finish();
            self.phase = None;
            self.was_caught_up = true;
            if self.follow {
                self.shown.status(&live_line(p), true);
            }
        }
    }
}

/// A follower's live state: position, head, lag, events applied.
fn live_line(p: &runner::Progress) -> String {
    format!(
        "projections at position {} (head {}, lag {}), {} events applied, caught up",
        p.position.map_or("-".into(), |x| x.to_string()),
        p.head.map_or("-".into(), |x| x.to_string()),
        p.lag,
        p.events_applied,
    )
}

/// Brings the read models up to date with the log (with `follow`, keeps them so until
/// `stop`), as `runner::project` does, but takes the rebuild path when it is faster
/// ([`runner::rebuild_is_faster`]: empty read models, or more than
/// [`runner::REBUILD_WHEN_BEHIND_PERCENT`] of the log behind), calling `announce` with the
/// reason first. The read models are the same either way: a rebuild derives each customer from
/// its whole history, which is what the fold reaches (the tests compare the two), and the
/// projection that follows it applies what was recorded meanwhile.
///
/// Why this is safe to do on its own: a rebuild writes staging tables and swaps them in
/// atomically, so readers never see a half-built model; a runner following the same read
/// models in another process (`serve`, `project --follow`) finds the checkpoint moved at its
/// next batch and resumes from the swapped-in one (each batch is written with the checkpoint
/// it expects, so nothing is applied twice); and the read models' rebuild lock keeps two
/// rebuilds apart. When another process holds that lock, its rebuild will swap in read models
/// at its own head anyway: this one says so and projects as before, without waiting.
/// The decision is made here, not inside `runner::project`, so that the runner's incremental
/// path stays what its own callers and tests exercise.
pub async fn catch_up(
    store: &dyn EventStore,
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
    follow: bool,
    shown: &Progress,
    announce: &dyn Fn(runner::CatchUp),
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<runner::Progress, runner::RunError> {
    let mut reporter = RunnerProgress::new(shown, follow);
    // Taking the rebuild path is only a shortcut: when the store cannot even be asked (a
    // KurrentDB that is down), the incremental path below says so, retries and gives up as it
    // always has, rather than failing here at once.
    let faster = runner::rebuild_is_faster(store, read_models, policy)
        .await
        .ok()
        .flatten();
    if let Some(why) = faster {
        announce(why);
        let head = match why {
            runner::CatchUp::Empty { head } | runner::CatchUp::FarBehind { head, .. } => head,
        };
        reporter.begin_rebuild(head);
        match runner::rebuild(store, read_models, policy, &mut |p| reporter.update(p)).await {
            Ok(_) => {}
            Err(runner::RunError::ReadModels(ReadModelError::RebuildRunning { path })) => {
                shown.abandon();
                reporter.phase = None;
                shown.note(&format!(
                    "another process is rebuilding {}; projecting instead (its rebuild will \
                     replace these read models when it ends)",
                    path.display()
                ));
            }
            Err(e) => return Err(e),
        }
    }
    runner::project(
        store,
        read_models,
        policy,
        follow,
        &mut |p| reporter.update(p),
        stop,
    )
    .await
}

/// The read models in the SQLite file at `path` (opened when first used).
pub fn open_read_models(path: &Path, mode: FileMode) -> Arc<dyn ReadModels> {
    Arc::new(SqliteReadModels::with_file_mode(path, mode))
}

/// Runs a projection command over `store`, with the read models `read_models`.
pub async fn run(
    cmd: ProjectionCommand,
    store: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModels>,
    shown: &Progress,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let queries = |policy: &Option<PathBuf>| -> anyhow::Result<Queries> {
        let policy = Policy::load(policy.as_deref())?;
        Ok(Queries::new(store.clone(), read_models.clone(), policy))
    };
    match cmd {
        ProjectionCommand::Project { follow, policy } => {
            let policy = Policy::load(policy.as_deref())?;
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let announce = |why: runner::CatchUp| {
                shown.note(&format!(
                    "{why}: rebuilding them from the log, which is faster than projecting \
                     (as `pipeline-ledger rebuild` does), then projecting what follows"
                ));
            };
            let done = catch_up(
                &*store,
                &read_models,
                &policy,
                follow,
                shown,
                &announce,
                stop,
            )
            .await?;
            if let Some(why) = done.rebuilt {
                writeln!(out, "read models rebuilt from the log: {why}")?;
            }
            writeln!(
                out,
                "read models at position {} (lag {})",
                done.position.map_or("-".into(), |x| x.to_string()),
                done.lag
            )?;
        }
        ProjectionCommand::Rebuild { policy } => {
            let policy = Policy::load(policy.as_deref())?;
            let mut reporter = RunnerProgress::new(shown, false);
            if let Some(head) = store.head_position().await? {
                reporter.begin_rebuild(head);
            }
            let done = runner::rebuild(&*store, &read_models, &policy, &mut |p| reporter.update(p))
                .await?;
            shown.finish();
            if let Some(aside) = &done.set_aside {
                writeln!(
                    out,
                    "the read models were damaged; they were moved to {} and rebuilt",
                    aside.display()
                )?;
            }
            writeln!(
                out,
                "read models rebuilt to position {} ({} events)",
                done.position.map_or("-".into(), |x| x.to_string()),
                done.events_applied
            )?;
        }
        ProjectionCommand::Funnel {
            from,
            to,
            by,
            cohort,
            fresh,
            report,
        } => {
            if let (Some(from), Some(to)) = (from, to)
                && from > to
            {
                anyhow::bail!(
                    "--from {from} is later than --to {to}: the window would be empty; give --from at or before --to"
                );
            }
            let params = FunnelParams {
                from,
                to,
                by: by.map(|b| match b {
                    ByArg::Source => GroupBy::Source,
                    ByArg::Rep => GroupBy::Rep,
                    ByArg::Cohort => GroupBy::Cohort,
                }),
                cohort: match cohort {
                    CohortArg::Month => Period::Month,
                    CohortArg::Quarter => Period::Quarter,
                    CohortArg::Year => Period::Year,
                },
            };
            let request = FunnelRequest {
                params,
                at: report.at(),
                fresh,
            };
            let r = queries(&report.policy)?.funnel(request).await?;
            write_funnel(out, report.format(), &r)?;
        }
        ProjectionCommand::Reps {
            period,
            rep,
            report,
        } => {
            let params = RepsParams {
                period: period.into(),
                rep,
            };
            let request = RepsRequest {
                params,
                at: report.at(),
            };
            let r = queries(&report.policy)?.reps(request).await?;
            write_reps(out, report.format(), &r)?;
        }
        ProjectionCommand::Scorecard {
            quarter,
            rep,
            report,
        } => {
            let request = ScorecardRequest {
                quarter,
                rep,
                at: report.at(),
            };
            let r = queries(&report.policy)?.scorecard(request).await?;
            write_scorecard(out, report.format(), &r)?;
        }
        ProjectionCommand::Retention { period, report } => {
            let request = RetentionRequest {
                params: RetentionParams {
                    period: period.into(),
                },
                at: report.at(),
            };
            let r = queries(&report.policy)?.retention(request).await?;
            write_retention(out, report.format(), &r)?;
        }
        ProjectionCommand::Ranking {
            period,
            within,
            limit,
            report,
        } => {
            let request = RankingRequest {
                params: RankingParams {
                    period: period.into(),
                    within,
                    limit,
                },
                at: report.at(),
            };
            let r = queries(&report.policy)?.ranking(request).await?;
            write_ranking(out, report.format(), &r)?;
        }
        ProjectionCommand::Qualification { report } => {
            let request = QualificationRequest { at: report.at() };
            let r = queries(&report.policy)?.qualification(request).await?;
            write_qualification(out, report.format(), &r)?;
        }
        ProjectionCommand::Customer { id, report } => {
            let at = report.at();
            let time_travel = at.is_replay();
            let request = CustomerRequest {
                customer_id: id.clone(),
                at,
            };
            let r = match queries(&report.policy)?.customer(request).await {
                Ok(r) => r,
                Err(QueryError::UnknownCustomer(_)) => {
                    let hint = super::suggest::unknown_customer_hint(
                        &*store,
                        Some(&read_models),
                        &id,
                        time_travel,
                    )
                    .await;
                    anyhow::bail!("{hint}");
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!("looking up customer {id}")));
                }
            };
            write_customer(out, report.format(), &r)?;
        }
        ProjectionCommand::Pipeline {
            owner,
            limit,
            report,
        } => {
            let request = PipelineRequest {
                at: report.at(),
                owner,
            };
            let r = queries(&report.policy)?.pipeline(request).await?;
            let format = report.format();
            let per_owner_max = match format {
                Format::Table(_) => Some(limit.unwrap_or(WORKLIST_PER_OWNER_DEFAULT)),
                _ => limit,
            };
            write_pipeline(out, format, &r, &Worklist { per_owner_max })?;
        }
    }
    Ok(())
}

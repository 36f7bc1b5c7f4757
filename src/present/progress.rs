//! Progress of the long commands (`demo`, `import`, `project`, `rebuild`, `bench`) on standard
//! error, never standard output, so that reports, JSON and CSV stay exactly what jobs read.
//!
//! A command goes through named *phases* (`generating`, `validating`, `checking`, `committing`,
//! `rebuilding`, `projecting`, …), each with a known total. How a phase is shown depends on where
//! standard error goes ([`Output`]):
//! - a terminal: a live bar with the phase, count/total, percentage, rate and time left, and
//!   one plain line when the phase ends;
//! - a pipe or a log file: a plain line every [`PIPE_LINE_INTERVAL`] with the same figures, and
//!   one when the phase ends, so that a job's log is never silent for long and stays short;
//! - `--quiet`: nothing.
//!
//! Notices (why a command took another path, why it waits) are not progress: they are shown
//! under `--quiet` too, like warnings.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When standard error is not a terminal, the longest a phase goes without a progress line:
/// often enough that a job's log shows a long step is alive, rarely enough that a rebuild of
/// millions of events writes tens of lines, not thousands.
pub const PIPE_LINE_INTERVAL: Duration = Duration::from_secs(3);

/// How often a terminal's bar is redrawn at most (indicatif's own limit is higher; a bar that
/// moves 20 times a second is as readable and costs the work less).
const TERMINAL_REDRAWS_PER_SECOND: u8 = 10;

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A live bar on standard error, a terminal.
    Terminal,
    /// Plain lines on standard error, a pipe or a file.
    Lines,
    /// No progress (`--quiet`).
    Quiet,
}

impl Output {
    /// The output for this process: nothing when `quiet`, else a bar when standard error is a
    /// terminal and plain lines when it is not.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Output::Quiet
        } else if std::io::stderr().is_terminal() {
            Output::Terminal
        } else {
            Output::Lines
        }
    }
}

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Customers (the demo's generator).
    Customers,
    /// Events (validated, checked, committed, projected).
    Events,
    /// Bytes of input (an import, whose number of lines is known only at its end).
    Bytes,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Customers => "customers",
            Unit::Events => "events",
            Unit::Bytes => "bytes",
        }
    }

    /// `n` in this unit, for a plain line: bytes in MiB, everything else as the count.
    fn amount(self, n: u64) -> String {
        match self {
            Unit::Bytes => format!("{:.1}", n as f64 / (1u64 << 20) as f64),
            _ => n.to_string(),
        }
    }

    /// The unit's name after an amount.
    fn label(self) -> &'static str {
        match self {
            Unit::Bytes => "MiB",
            other => other.name(),
        }
    }
}

/// The phase under way.
struct Phase {
    name: &'static str,
    /// What it counts; `None` for a step whose progress cannot be counted (an index build).
    unit: Option<Unit>,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl Phase {
    /// Units per second since the phase started.
    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }

    /// The time left at the rate so far; `None` before anything is done.
    fn left(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0 && self.done > 0).then(|| {
            let left = self.total.saturating_sub(self.done) as f64 / rate;
            // A bound no phase comes near; it keeps a wild early estimate from overflowing.
            Duration::from_secs_f64(left.min(1e9))
        })
    }

    /// The line shown while the phase runs on a pipe.
    fn running_line(&self) -> String {
        let Some(unit) = self.unit else {
            return format!("{}: {} so far", self.name, seconds(self.started.elapsed()));
        };
        let percent = percent(self.done, self.total);
        let left = self.left().map_or_else(
            || "time left unknown".to_string(),
            |d| format!("about {} left", seconds(d)),
        );
        format!(
            "{}: {}/{} {} ({percent}%), {} {}/s, {left}",
            self.name,
            unit.amount(self.done),
            unit.amount(self.total),
            unit.label(),
            unit.amount(self.rate().round() as u64),
            unit.label(),
        )
    }

    /// The line shown when the phase ends, on a terminal and on a pipe.
    fn end_line(&self) -> String {
        let Some(unit) = self.unit else {
            return format!("{}: done in {}", self.name, seconds(self.started.elapsed()));
        };
        format!(
            "{}: done, {}/{} {} in {} ({} {}/s)",
            self.name,
            unit.amount(self.done),
            unit.amount(self.total),
            unit.label(),
            seconds(self.started.elapsed()),
            unit.amount(self.rate().round() as u64),
            unit.label(),
        )
    }
}

/// `done` of `total` in whole percent (100 when there was nothing to do).
fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        100
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    }
}

/// A duration as people read it in a log: `0.4 s`, `12 s`, `3 min 05 s`.
fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 60.0 {
        format!("{secs:.0} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The bar of a phase on a terminal.
fn bar_style(unit: Unit) -> ProgressStyle {
    let template = match unit {
        Unit::Bytes => {
            "{prefix:>11} [{bar:24}] {bytes}/{total_bytes} ({percent}%), {bytes_per_sec}, {eta} left"
                .to_string()
        }
        other => format!(
            "{{prefix:>11}} [{{bar:24}}] {{pos}}/{{len}} {} ({{percent}}%), {{per_sec:0}}, {{eta}} left",
            other.name()
        ),
    };
    // The templates are made in this file; the fallback only keeps a typo from panicking.
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// How often a step's spinner turns (it has no figures to move it).
const STEP_TICK: Duration = Duration::from_millis(250);

/// The spinner of a step that cannot be counted, on a terminal.
fn step_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>11} {spinner} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The spinner of open-ended work on a terminal (`project --follow` once caught up).
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The progress of one command: one phase at a time. Shared by reference with the library's
/// callbacks (it is `Sync`: they may be called from other threads).
pub struct Progress {
    output: Output,
    phase: Mutex<Option<Phase>>,
    /// The spinner of open-ended work, and when its last plain line was written.
    status: Mutex<Option<(Option<ProgressBar>, Option<Instant>)>>,
}

impl Progress {
    /// Progress shown on `output`.
    pub fn new(output: Output) -> Self {
        Progress {
            output,
            phase: Mutex::new(None),
            status: Mutex::new(None),
        }
    }

    /// Where this progress goes.
    pub fn output(&self) -> Output {
        self.output
    }

    fn phase_lock(&self) -> MutexGuard<'_, Option<Phase>> {
        // A panic elsewhere while the lock was held leaves figures, never broken invariants.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the phase under way (if any) and starts the phase `name`, of `total` units.
    pub fn start(&self, name: &'static str, unit: Unit, total: u64) {
        self.begin(name, Some(unit), total);
    }

    /// Ends the phase under way (if any) and starts the step `name`, whose progress cannot be
    /// counted: a spinner and the time so far on a terminal, its end line on a pipe.
    pub fn start_step(&self, name: &'static str) {
        self.begin(name, None, 0);
    }

    fn begin(&self, name: &'static str, unit: Option<Unit>, total: u64) {
        self.finish();
        self.clear_status();
        let bar = (self.output == Output::Terminal).then(|| {
            let target = ProgressDrawTarget::stderr_with_hz(TERMINAL_REDRAWS_PER_SECOND);
            let bar = match unit {
                Some(unit) => {
                    ProgressBar::with_draw_target(Some(total), target).with_style(bar_style(unit))
                }
                None => {
                    let bar = ProgressBar::with_draw_target(None, target).with_style(step_style());
                    bar.enable_steady_tick(STEP_TICK);
                    bar
                }
            }
            .with_prefix(name);
            bar.tick();
            bar
        });
        let now = Instant::now();
        *self.phase_lock() = Some(Phase {
            name,
            unit,
            total,
            done: 0,
            started: now,
            last_line: now,
            bar,
        });
    }

    /// The phase under way has done `done` of its units (clamped to its total).
    pub fn set(&self, done: u64) {
        let mut guard = self.phase_lock();
        let Some(phase) = guard.as_mut() else { return };
        phase.done = done.min(phase.total);
        self.show(phase);
    }

    /// The phase under way has done `done` units of `total`: for phases whose total moves
    /// (projecting while events are recorded).
    pub fn set_with_total(&self, done: u64, total: u64) {
        let mut guard = self.phase_lock();
        let Some(phase) = guard.as_mut() else { return };
        phase.total = total.max(done);
        phase.done = done;
        if let Some(bar) = &phase.bar {
            bar.set_length(phase.total);
        }
        self.show(phase);
    }

    /// Draws the bar, or writes a line when the last one is [`PIPE_LINE_INTERVAL`] old.
    fn show(&self, phase: &mut Phase) {
        match &phase.bar {
            Some(bar) => bar.set_position(phase.done),
            None if self.output == Output::Lines
                && phase.last_line.elapsed() >= PIPE_LINE_INTERVAL =>
            {
                eprintln!("{}", phase.running_line());
                phase.last_line = Instant::now();
            }
            None => {}
        }
    }

    /// Ends the phase under way, if any, with all of its units done: for phases told no more
    /// than their start (a commit).
    pub fn complete(&self) {
        if let Some(phase) = self.phase_lock().as_mut() {
            phase.done = phase.total;
            if let Some(bar) = &phase.bar {
                bar.set_position(phase.total);
            }
        }
        self.finish();
    }

    /// Ends the phase under way, if any, without its end line: it did not happen after all.
    pub fn abandon(&self) {
        if let Some(phase) = self.phase_lock().take()
            && let Some(bar) = phase.bar
        {
            bar.finish_and_clear();
        }
    }

    /// Ends the phase under way, if any, with its end line (counts, time, rate).
    pub fn finish(&self) {
        let Some(phase) = self.phase_lock().take() else {
            return;
        };
        if let Some(bar) = &phase.bar {
            bar.finish_and_clear();
        }
        if self.output != Output::Quiet {
            eprintln!("{}", phase.end_line());
        }
    }

    /// Shows `text` as the state of open-ended work: a spinner's message on a terminal, a line
    /// at most every [`PIPE_LINE_INTERVAL`] on a pipe (and whenever `always`, for changes of
    /// state a log should show).
    pub fn status(&self, text: &str, always: bool) {
        if self.output == Output::Quiet {
            return;
        }
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let (bar, last_line) = status.get_or_insert_with(|| {
            let bar = (self.output == Output::Terminal).then(|| {
                let bar =
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
                bar.set_style(spinner_style());
                bar
            });
            (bar, None)
        });
        match bar {
            Some(bar) => {
                bar.set_message(text.to_string());
                bar.tick();
            }
            None => {
                if always || last_line.is_none_or(|t| t.elapsed() >= PIPE_LINE_INTERVAL) {
                    eprintln!("{text}");
                    *last_line = Some(Instant::now());
                }
            }
        }
    }

    fn clear_status(&self) {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((Some(bar), _)) = status {
            bar.finish_and_clear();
        }
    }

    /// Writes `text` on a line of its own, above the bar if one is shown; under `--quiet` too.
    pub fn note(&self, text: &str) {
        let guard = self.phase_lock();
        match guard.as_ref().and_then(|p| p.bar.as_ref()) {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for Progress {
    /// A command that fails mid-phase leaves no half-drawn bar above its error (and no end line:
    /// the phase did not end).
    fn drop(&mut self) {
        self.abandon();
        self.clear_status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(unit: Unit, done: u64, total: u64, elapsed: Duration) -> Phase {
        let started = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        Phase {
            name: "checking",
            unit: Some(unit),
            total,
            done,
            started,
            last_line: started,
            bar: None,
        }
    }

    #[test]
    fn lines_carry_counts_percentage_rate_and_time_left() {
        let p = phase(Unit::Events, 500, 2_000, Duration::from_secs(10));
        let line = p.running_line();
        assert!(
            line.starts_with("checking: 500/2000 events (25%), "),
            "{line}"
        );
        assert!(line.contains(" events/s, about "), "{line}");
        assert!(line.ends_with(" left"), "{line}");
        let end = p.end_line();
        assert!(
            end.starts_with("checking: done, 500/2000 events in "),
            "{end}"
        );
    }

    #[test]
    fn nothing_done_yet_says_so_instead_of_dividing_by_zero() {
        let p = phase(Unit::Events, 0, 0, Duration::ZERO);
        assert!(p.running_line().contains("(100%)"), "{}", p.running_line());
        assert!(p.running_line().ends_with("time left unknown"));
        assert_eq!(p.left(), None);
        let bytes = phase(Unit::Bytes, 3 << 20, 12 << 20, Duration::from_secs(1));
        assert!(bytes.running_line().contains("3.0/12.0 MiB (25%)"));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        for (secs, shown) in [(0.44, "0.4 s"), (12.4, "12 s"), (185.0, "3 min 05 s")] {
            assert_eq!(seconds(Duration::from_secs_f64(secs)), shown);
        }
        assert_eq!(percent(3, 0), 100);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
        assert_eq!(percent(5, 3), 100);
    }

    #[test]
    fn quiet_progress_accepts_every_call() {
        let p = Progress::new(Output::Quiet);
        p.set(3); // before any phase
        p.start("generating", Unit::Customers, 10);
        p.set(20);
        p.set_with_total(5, 2);
        p.status("following", true);
        p.start_step("swapping in");
        p.finish();
        p.finish();
    }
}

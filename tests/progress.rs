//! Issue 15: the long commands explain themselves. Drives the real binary with its standard
//! error on a pseudo-terminal (`rustix-openpty`: no system package) and on a pipe, and checks
//! what each shows: the phases, counts with their real totals, percentages and time left on a
//! terminal; a line at each phase's end on a pipe; nothing with `--quiet`; and standard output
//! the same in every case.

mod bin_support;
use bin_support::Output;
use rustix_openpty::rustix::termios::Winsize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-ledger");
/// Customers of the demo ledgers: enough for several progress updates, small enough for CI.
const CUSTOMERS: &str = "2000";
/// The demo's report clock, fixed so that two runs print the same reports.
const UNTIL: &str = "2026-06-30T00:00:00Z";
/// The longest a command may run before the test gives up on it (a hung process fails the
/// test instead of hanging CI; no assertion is made on how long anything takes).
const COMMAND_DEADLINE: Duration = Duration::from_secs(300);

/// A command's standard output, and everything written to the terminal (its standard error).
struct OnTerminal {
    code: i32,
    stdout: String,
    terminal: String,
}

/// Runs the binary with `args`, standard error (and input) on a new pseudo-terminal of 160
/// columns, standard output on a pipe.
fn on_terminal(args: &[&str]) -> OnTerminal {
    let size = Winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = rustix_openpty::openpty(None, Some(&size)).expect("a pseudo-terminal");
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("PIPELINE_LEDGER_QUIET")
        .stdin(Stdio::from(pty.user.try_clone().expect("dup")))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(pty.user));
    let mut child = command.spawn().expect("the binary starts");
    // The command holds the terminal's user side until dropped: without this, the reader below
    // would never see the end of the output.
    drop(command);
    let mut controller = std::fs::File::from(pty.controller);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        // Linux answers EIO once the last user-side descriptor is closed: the end.
        while let Ok(n) = controller.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let mut stdout = child.stdout.take().expect("piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > COMMAND_DEADLINE {
            let _ = child.kill();
            panic!("{args:?} did not finish within {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen = reader.join().expect("the terminal's reader");
    OnTerminal {
        code: status.code().unwrap_or(-1),
        stdout: stdout_reader.join().expect("the output's reader"),
        terminal: without_escapes(&String::from_utf8_lossy(&seen)),
    }
}

/// Runs the binary with `args` and both streams on pipes.
fn piped(args: &[&str]) -> Output {
    Output::of(
        Command::new(BIN)
            .args(args)
            .env_remove("PIPELINE_LEDGER_QUIET")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs"),
    )
}

/// `text` without the terminal's control sequences (CSI: colours, cursor moves, erasing), and
/// with carriage returns as line ends: what a person reads, line by line.
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, up to the final byte (@ to ~).
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

/// A demo ledger's files in a temporary directory.
struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    fn new() -> Self {
        Demo {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("demo.db")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// The demo's arguments, with `extra` global flags before the command.
    fn demo_args(&self, extra: &[&'static str]) -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(
            ["--store", &self.store().to_string_lossy()]
                .iter()
                .map(|s| s.to_string()),
        );
        args.extend(
            ["demo", "--customers", CUSTOMERS, "--until", UNTIL]
                .iter()
                .map(|s| s.to_string()),
        );
        args
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The number of events the demo says it recorded.
fn recorded_events(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Recorded "))
        .unwrap_or_else(|| panic!("no `Recorded N events` line:\n{stdout}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// `stdout` with the temporary directory written as `<dir>`, to compare two runs' output.
fn normalised(stdout: &str, dir: &Path) -> String {
    stdout.replace(&*dir.to_string_lossy(), "<dir>")
}

/// The end line of `phase` on standard error: `phase: done, N/N unit in …`.
fn end_line(phase: &str, total: u64, unit: &str) -> String {
    format!("{phase}: done, {total}/{total} {unit} in ")
}

/// Every phase of the demo, with what it counts.
fn demo_phases(events: u64) -> [(&'static str, u64, &'static str); 5] {
    let customers = CUSTOMERS.parse().expect("a number");
    [
        ("generating", customers, "customers"),
        ("validating", events, "events"),
        ("checking", events, "events"),
        ("committing", events, "events"),
        // The demo's read models start empty: they are rebuilt, not projected.
        ("rebuilding", events, "events"),
    ]
}

#[test]
fn a_terminal_shows_each_phase_with_its_count_total_rate_and_time_left() {
    let demo = Demo::new();
    let args = demo.demo_args(&[]);
    let run = on_terminal(&strs(&args));
    assert_eq!(run.code, 0, "{args:?}\n{}\n{}", run.stdout, run.terminal);
    let events = recorded_events(&run.stdout);
    let shown = &run.terminal;
    for (phase, total, unit) in demo_phases(events) {
        // The live bar: the phase's name, count/total, percentage and time left.
        let live = shown.lines().find(|l| {
            l.trim_start().starts_with(phase) && l.contains(&format!("/{total} {unit} ("))
        });
        let live = live.unwrap_or_else(|| panic!("no live bar of {phase}:\n{shown}"));
        assert!(live.contains("%), "), "no percentage in {live:?}");
        assert!(live.contains("/s, "), "no rate in {live:?}");
        assert!(
            live.trim_end().ends_with(" left"),
            "no time left in {live:?}"
        );
        assert!(
            shown.contains(&end_line(phase, total, unit)),
            "no end line of {phase}:\n{shown}"
        );
    }
    // Progress is on standard error only: the reports on standard output carry none of it.
    for shown_only in ["/s, ", ": done, ", "generating", "rebuilding"] {
        assert!(
            !run.stdout.contains(shown_only),
            "{shown_only:?}:\n{}",
            run.stdout
        );
    }

    // `rebuild` shows its phase against the log's head.
    let store = demo.store().to_string_lossy().into_owned();
    let rebuild = on_terminal(&["--store", &store, "rebuild"]);
    assert_eq!(rebuild.code, 0, "{}", rebuild.terminal);
    assert!(
        rebuild.terminal.contains(&format!("/{events} events (")),
        "{}",
        rebuild.terminal
    );
    assert!(
        rebuild
            .terminal
            .contains(&end_line("rebuilding", events, "events")),
        "{}",
        rebuild.terminal
    );
    assert_eq!(
        rebuild.stdout,
        format!("read models rebuilt to position {events} ({events} events)\n")
    );

    // `project` on empty read models takes the rebuild path on its own, says so, and ends
    // where a projection would.
    let fresh = demo.path("fresh.read-models.db");
    let project = on_terminal(&["--store", &store, "--read-models", &fresh, "project"]);
    assert_eq!(project.code, 0, "{}", project.terminal);
    let shown = &project.terminal;
    assert!(
        shown.contains(&format!(
            "the read models are empty and the log holds {events} events: rebuilding them"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&end_line("rebuilding", events, "events")),
        "{shown}"
    );
    // What was recorded after the rebuild's head (nothing here) is projected after it.
    assert!(
        shown.contains(&end_line("projecting", 0, "events")),
        "{shown}"
    );
    assert_eq!(
        project.stdout,
        format!("read models at position {events} (lag 0)\n")
    );
}

#[test]
fn a_pipe_gets_a_plain_line_at_each_phase_end_and_quiet_gets_none() {
    let demo = Demo::new();
    let args = demo.demo_args(&[]);
    let out = piped(&strs(&args));
    let stderr = out.stderr.clone();
    let stdout = out.ok(&strs(&args));
    let events = recorded_events(&stdout);
    for (phase, total, unit) in demo_phases(events) {
        assert!(
            stderr.contains(&end_line(phase, total, unit)),
            "no end line of {phase} on the pipe:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "a pipe gets no escapes:\n{stderr:?}"
    );
    assert!(
        !stderr.contains('\r'),
        "a pipe gets whole lines:\n{stderr:?}"
    );

    // --quiet: no progress on a terminal either, and the same standard output.
    let quiet = Demo::new();
    let quiet_args = quiet.demo_args(&["--quiet"]);
    let run = on_terminal(&strs(&quiet_args));
    assert_eq!(run.code, 0, "{quiet_args:?}\n{}", run.terminal);
    for (phase, _, _) in demo_phases(events) {
        assert!(
            !run.terminal.contains(phase),
            "--quiet showed {phase}:\n{}",
            run.terminal
        );
    }
    assert!(!run.terminal.contains(" left"), "{}", run.terminal);
    assert_eq!(
        normalised(&run.stdout, quiet.dir.path()),
        normalised(&stdout, demo.dir.path()),
        "--quiet changed standard output"
    );
}

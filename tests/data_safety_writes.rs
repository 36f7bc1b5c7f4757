//! Issue 10, the write side: retries with `--event-id`, contending `record`s, `import -` from a
//! slow producer, import memory on an overlong line, and `project --follow` against a KurrentDB
//! that cannot be reached. Each test drives the real binary, as a user would.

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Ledger {
    dir: tempfile::TempDir,
    store: PathBuf,
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("pipeline-ledger")
}

impl Ledger {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ledger.db");
        Self { dir, store }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .env("PIPELINE_LEDGER_STORE", &self.store)
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .args(args)
            .output()
            .unwrap();
        Output::of(out)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn export(&self) -> String {
        self.ok(&["export"])
    }

    fn event_count(&self) -> usize {
        self.export().lines().count()
    }

    /// The files in the store's directory, sorted, but SQLite's own (`-wal`, `-shm`, which come
    /// and go with open connections).
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        names.sort();
        names
    }

    /// A command of the binary on this store, not yet started.
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin());
        cmd.env("PIPELINE_LEDGER_STORE", &self.store)
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .args(args);
        cmd
    }
}

fn lead(ledger: &Ledger, customer: &str) {
    let deal = format!("{customer}-d");
    ledger.ok(&[
        "record",
        "lead-sourced",
        "--customer",
        customer,
        "--rep",
        "rep-01",
        "--deal",
        &deal,
        "--source",
        "web",
        "--company",
        "Acme",
        "--contact-name",
        "Li",
    ]);
}

/// `record negotiation` on the customer's deal, with `extra` flags.
fn negotiation<'a>(customer: &'a str, deal: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "record",
        "negotiation",
        "--customer",
        customer,
        "--rep",
        "rep-01",
        "--deal",
        deal,
        "--purpose",
        "p",
        "--plan",
        "p",
        "--expected",
        "e",
        "--outcome",
        "o",
    ];
    args.extend_from_slice(extra);
    args
}

// ---- 1. Retries with --event-id ----

#[test]
fn an_identical_retry_with_an_event_id_returns_the_original_result() {
    let ledger = Ledger::new();
    lead(&ledger, "i1");
    let id = "0190a5d0-0000-7000-8000-0000000000aa";
    // No --occurred-at and no --recorded-by: the ledger fills them in, and a retry a moment later
    // fills them in differently. The retry is still the same event.
    let args = negotiation("i1", "i1-d", &["--event-id", id]);
    let first = ledger.ok(&args);
    assert!(
        first.starts_with(&format!("recorded {id} at revision 1")),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(20));
    let retry = ledger.ok(&args);
    assert_eq!(
        retry.trim(),
        first.trim().replacen("recorded", "already recorded", 1),
        "a retry reports where the original landed"
    );
    assert_eq!(ledger.event_count(), 2);

    // A field the caller gives is compared: a retry with another outcome is another event.
    let mut other = args.clone();
    let at = other.iter().position(|a| *a == "o").unwrap();
    other[at] = "another outcome";
    let out = ledger.run(&other);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("different content"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    // So is a time the caller gives.
    let mut dated = args.clone();
    dated.extend_from_slice(&["--occurred-at", "2026-01-05T10:00:00Z"]);
    let out = ledger.run(&dated);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(ledger.event_count(), 2);
}

#[test]
fn the_same_event_id_for_another_customer_is_refused_and_writes_nothing() {
    let ledger = Ledger::new();
    lead(&ledger, "i1");
    lead(&ledger, "i2");
    let id = "0190a5d0-0000-7000-8000-0000000000ab";
    ledger.ok(&negotiation("i1", "i1-d", &["--event-id", id]));
    let out = ledger.run(&negotiation("i2", "i2-d", &["--event-id", id]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains(id), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(ledger.event_count(), 3);
}

// ---- 2. Contention ----

#[test]
fn sixteen_contending_records_on_one_customer_all_succeed() {
    const WRITERS: usize = 16;
    const RECORDS_PER_WRITER: usize = 6;
    let ledger = Ledger::new();
    lead(&ledger, "k0");
    let failures: Vec<String> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    for _ in 0..RECORDS_PER_WRITER {
                        let out = ledger.run(&negotiation("k0", "k0-d", &[]));
                        if out.code != 0 {
                            failed.push(out.stderr);
                        }
                    }
                    failed
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} contending records failed, e.g.:\n{}",
        failures.len(),
        WRITERS * RECORDS_PER_WRITER,
        failures[0]
    );
    assert_eq!(ledger.event_count(), 1 + WRITERS * RECORDS_PER_WRITER);
}

#[test]
fn a_named_expected_revision_is_checked_at_once_and_never_retried() {
    let ledger = Ledger::new();
    lead(&ledger, "e1");
    // The stream is at revision 0 (the lead): naming it records.
    let out = ledger.ok(&negotiation("e1", "e1-d", &["--expected-revision", "0"]));
    assert!(out.contains("at revision 1"), "{out}");
    // Naming it again is a conflict: the stream moved on, and the caller decides what to do.
    let id = "0190a5d0-0000-7000-8000-0000000000cc";
    let stale = negotiation(
        "e1",
        "e1-d",
        &["--expected-revision", "0", "--event-id", id],
    );
    let out = ledger.run(&stale);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("revision 1"), "{}", out.stderr);
    assert!(out.stderr.contains("expected revision 0"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(ledger.event_count(), 2);
    // `none`: the customer must have no events yet.
    let out = ledger.run(&negotiation("e1", "e1-d", &["--expected-revision", "none"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    // With the current revision it records, and an identical retry returns the original result
    // even though the revision it named is now stale.
    let current = negotiation(
        "e1",
        "e1-d",
        &["--expected-revision", "1", "--event-id", id],
    );
    let first = ledger.ok(&current);
    assert!(first.starts_with("recorded"), "{first}");
    let retry = ledger.ok(&current);
    assert!(retry.starts_with("already recorded"), "{retry}");
    assert_eq!(ledger.event_count(), 3);
}

// ---- 3. import - from a slow producer ----

/// Two valid interchange lines (leads of customers `s1` and `s2`), taken from a scratch ledger.
fn two_lead_lines() -> (String, String) {
    let scratch = Ledger::new();
    lead(&scratch, "s1");
    lead(&scratch, "s2");
    let export = scratch.export();
    let mut lines = export.lines().map(str::to_string);
    (lines.next().unwrap(), lines.next().unwrap())
}

#[test]
fn a_slow_producer_piped_into_import_does_not_block_other_writers() {
    let ledger = Ledger::new();
    lead(&ledger, "l1");
    let before = ledger.files();
    let (one, two) = two_lead_lines();
    // The producer writes a line, then pauses as a slow job would, then writes another.
    let script = format!("printf '%s\\n' '{one}'; sleep 8; printf '%s\\n' '{two}'");
    let mut producer = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut import = ledger
        .command(&["import", "-"])
        .stdin(producer.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // The spool is created 0600 and has no name: nothing new is visible beside the store.
    assert_eq!(ledger.files(), before, "a spool file is visible");
    let out = ledger.run(&negotiation("l1", "l1-d", &[]));
    assert_eq!(
        out.code, 0,
        "record failed while the producer was slow: {}",
        out.stderr
    );
    assert!(
        import.try_wait().unwrap().is_none(),
        "the record waited for the import to finish"
    );
    assert!(producer.wait().unwrap().success());
    let status = import.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut import.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(ledger.event_count(), 4);
    assert_eq!(ledger.files(), before, "the spool was left behind");
}

#[test]
fn a_failed_or_interrupted_import_from_standard_input_leaves_no_spool() {
    let ledger = Ledger::new();
    lead(&ledger, "l1");
    let before = ledger.files();
    // A bad line: refused, nothing written, nothing left.
    let mut import = ledger
        .command(&["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"not\": \"an event\"}\n")
        .unwrap();
    let out = import.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
    assert_eq!(ledger.files(), before);
    // Interrupted (Ctrl-C) while the producer is still writing. The child gets SIGINT's default
    // action, as on a terminal: a test run started in the background (`cmd &` in a script)
    // inherits SIGINT ignored, and the import would then wait for its input for ever.
    let mut command = ledger.command(&["import", "-"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `signal` is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut import = command.spawn().unwrap();
    let mut stdin = import.stdin.take().unwrap();
    stdin.write_all(two_lead_lines().0.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &import.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = import.wait().unwrap();
    drop(stdin);
    assert_eq!(ledger.files(), before);
    assert_eq!(ledger.event_count(), 1);
}

// ---- 4. Import memory is bounded by the line limit ----

/// Runs `child` to its end and returns its exit code and its peak resident set, in KiB.
fn wait_with_peak_rss(child: Child) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value, and wait4 writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, not yet waited for (std's handle is dropped unwaited).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    std::mem::forget(child);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn an_overlong_line_is_refused_without_being_held_in_memory() {
    const LINE_BYTES: usize = 64 * 1024 * 1024;
    let ledger = Ledger::new();
    let (one, _) = two_lead_lines();
    let file = ledger.dir.path().join("long.ndjson");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "{one}").unwrap();
        w.write_all(b"{\"a\":\"").unwrap();
        let block = vec![b'x'; 1024 * 1024];
        for _ in 0..LINE_BYTES / block.len() {
            w.write_all(&block).unwrap();
        }
        w.write_all(b"\"}\n{\"short\": true}\n").unwrap();
    }
    // The same import of a one-line file: what the process takes whatever its input.
    let small = ledger.dir.path().join("small.ndjson");
    std::fs::write(&small, format!("{one}\n{{\"short\": true}}\n")).unwrap();
    let child = ledger
        .command(&["import", small.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, baseline_kib) = wait_with_peak_rss(child);
    assert_eq!(code, 1);
    let child = ledger
        .command(&["import", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(ledger.dir.path().join("stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let (code, peak_kib) = wait_with_peak_rss(child);
    let stderr = std::fs::read_to_string(ledger.dir.path().join("stderr")).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("line 2: line is {} bytes", LINE_BYTES + 8)),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3:"),
        "the line after it is read: {stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    eprintln!(
        "peak RSS importing a {LINE_BYTES}-byte line: {peak_kib} KiB (one short line: \
         {baseline_kib} KiB)"
    );
    assert!(
        ((peak_kib - baseline_kib).max(0) as usize) * 1024 < LINE_BYTES / 4,
        "peak RSS {peak_kib} KiB (one short line: {baseline_kib} KiB) follows the line's size"
    );
    assert_eq!(ledger.run(&["export"]).stdout, "");
}

// ---- 5. project --follow against a KurrentDB that cannot be reached ----

/// A KurrentDB address where nothing listens.
fn unreachable_kurrentdb() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("kurrentdb://127.0.0.1:{port}?tls=false")
}

#[test]
fn following_an_unreachable_kurrentdb_says_so_promptly_and_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = unreachable_kurrentdb();
    let mut child = follow(dir.path(), &url);
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send((started.elapsed(), line));
        }
    });
    let (first_at, first) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("nothing said within 15 s");
    assert!(
        first_at < Duration::from_secs(10),
        "first message after {first_at:?}"
    );
    assert!(first.contains("cannot be reached"), "{first}");
    assert!(
        first.contains(&url.replace("kurrentdb://", "")),
        "names where: {first}"
    );
    assert!(first.contains("retrying"), "{first}");
    // It gives up within a bounded time, with a clear error and a failure exit.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still retrying after 90 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let said: Vec<String> = rx.try_iter().map(|(_, l)| l).collect();
    let last = said.iter().rev().find(|l| l.starts_with("error:"));
    let last = last.unwrap_or_else(|| panic!("no error line in {said:?}"));
    assert!(last.contains("gave up"), "{last}");
    eprintln!("gave up after {:?}: {last}", started.elapsed());
}

fn follow(dir: &Path, url: &str) -> Child {
    std::process::Command::new(bin())
        .current_dir(dir)
        .env_remove("PIPELINE_LEDGER_STORE")
        .env_remove("PIPELINE_LEDGER_READ_MODELS")
        .args(["--store", url, "project", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

//! I/O fault injection on the real binary and the real SQLite files: the n-th write, sync or
//! read on the files under the store's directory fails (EIO, or what `FAULT_ERRNO` names), for
//! n = 1, 2, 3, …, during `record`, `import`, `project` and `rebuild`. The faults come from an
//! `LD_PRELOAD` shim, `tests/faults/nth_fault.c`, compiled here with the machine's `gcc`.
//!
//! After each fault:
//!
//! - the command did not panic, crash or hang (a clean error is fine);
//! - the store and the read models pass `PRAGMA integrity_check`, and the store opens
//!   (`export` succeeds);
//! - the log holds every event it held before, every event of a command that exited 0, and of a
//!   failed command all of its events or none (no partial append), and nothing else;
//! - after `project` (the faulted one if it exited 0, else a clean one), the read models equal a
//!   `rebuild` of the same log into a file of its own (every `rm_` table, row for row).
//!
//! CI runs a bounded set of n per operation and kind (`CI_NTH`), in well under a minute in
//! release. `scripts/fault-injection.sh` runs the whole loop: every n until the command no
//! longer reaches its n-th call (`FAULT_FULL=1`), with `FAULT_ERRNO` (EIO, ENOSPC),
//! `FAULT_PERSIST=1` (the disk stays broken from the n-th call on) and `FAULT_KINDS`
//! (`write,sync,read,truncate`).

use pipeline_ledger::contract::line::line_for;
use pipeline_ledger::demo::{DemoConfig, generate_customers};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-ledger");
/// The n tried under `cargo test`: the first few calls one by one, then further apart.
const CI_NTH: &[u64] = &[1, 2, 3, 6, 14, 40];
/// Customers in the store every case starts from, and in the file `import` brings.
const BASE_CUSTOMERS: usize = 24;
const IMPORT_CUSTOMERS: usize = 4;
/// A faulted command that runs longer than this has hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Read-model columns that say when, not what, so differ between any two runs: the checkpoint's
/// wall-clock time, and the kept reports' computing time and body (a funnel's time in stage of
/// open deals runs to the report clock; its rows and position are compared).
const CLOCK_COLUMNS: &[(&str, &str)] = &[
    ("rm_checkpoints", "updated_at"),
    ("rm_reports", "computed_at"),
    ("rm_reports", "body"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Record,
    Import,
    Project,
    Rebuild,
}

#[test]
fn faults_during_record() {
    fault_loop(Op::Record);
}

#[test]
fn faults_during_import() {
    fault_loop(Op::Import);
}

#[test]
fn faults_during_project() {
    fault_loop(Op::Project);
}

#[test]
fn faults_during_rebuild() {
    fault_loop(Op::Rebuild);
}

// ---------------------------------------------------------------------------------------------
// Settings and the shim
// ---------------------------------------------------------------------------------------------

struct Settings {
    full: bool,
    kinds: Vec<String>,
    errno: String,
    persist: bool,
    /// In the full loop, the largest n tried (a guard against a command that never ends).
    nth_max: u64,
}

fn settings() -> Settings {
    let kinds = std::env::var("FAULT_KINDS").unwrap_or_else(|_| "write,sync,read".into());
    Settings {
        full: std::env::var("FAULT_FULL").is_ok_and(|v| v == "1"),
        kinds: kinds.split(',').map(|k| k.trim().to_string()).collect(),
        errno: std::env::var("FAULT_ERRNO").unwrap_or_else(|_| "EIO".into()),
        persist: std::env::var("FAULT_PERSIST").is_ok_and(|v| v == "1"),
        nth_max: std::env::var("FAULT_NTH_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000),
    }
}

/// Compiles the shim once per test process. Without gcc the test fails, never passes quietly.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/nth_fault.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nth_fault-{}.so", std::process::id()));
        let result = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-ldl")
            .output();
        match result {
            Err(e) => panic!(
                "fault injection needs gcc to compile {} (running gcc failed: {e}); \
                 install gcc (Debian: apt-get install gcc)",
                source.display()
            ),
            Ok(o) if !o.status.success() => panic!(
                "gcc could not compile {}:\n{}",
                source.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Ok(_) => out,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The template every case starts from
// ---------------------------------------------------------------------------------------------

struct Template {
    _dir: tempfile::TempDir,
    /// A store of `BASE_CUSTOMERS` customers, projected.
    store_dir: PathBuf,
    /// `IMPORT_CUSTOMERS` other customers, as NDJSON.
    import_file: PathBuf,
    import_ids: BTreeSet<String>,
    base_ids: BTreeSet<String>,
}

fn ndjson(customers: std::ops::Range<usize>) -> String {
    let config = DemoConfig::new(usize::MAX, 42, chrono::Utc::now() - chrono::Days::new(1));
    let mut events = generate_customers(&config, customers);
    events.sort_by_key(|e| e.recorded_at);
    events
        .iter()
        .map(|e| serde_json::to_string(&line_for(e)).unwrap() + "\n")
        .collect()
}

fn ids_of(ndjson: &str) -> BTreeSet<String> {
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn template() -> Template {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let base = ndjson(0..BASE_CUSTOMERS);
    let extra = ndjson(BASE_CUSTOMERS..BASE_CUSTOMERS + IMPORT_CUSTOMERS);
    let base_file = dir.path().join("base.ndjson");
    let import_file = dir.path().join("import.ndjson");
    std::fs::write(&base_file, &base).unwrap();
    std::fs::write(&import_file, &extra).unwrap();
    let store = store_dir.join("ledger.db");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(BIN)
            .arg("--store")
            .arg(&store)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "template: {args:?}: {}", text(&out));
    };
    run(&["init".as_ref()]);
    run(&["import".as_ref(), base_file.as_os_str()]);
    run(&["project".as_ref()]);
    Template {
        store_dir,
        import_file,
        import_ids: ids_of(&extra),
        base_ids: ids_of(&base),
        _dir: dir,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    fired: u64,
    exited_0: u64,
    failed_cleanly: u64,
    failed_but_whole_append_present: u64,
    /// Per kind: the largest n that fired.
    deepest: BTreeMap<String, u64>,
}

fn fault_loop(op: Op) {
    let settings = settings();
    let shim = shim();
    let template = template();
    let mut tally = Tally::default();
    let started = Instant::now();
    for kind in &settings.kinds {
        let nths: Box<dyn Iterator<Item = u64>> = if settings.full {
            Box::new(1..=settings.nth_max)
        } else {
            Box::new(CI_NTH.iter().copied())
        };
        for n in nths {
            let fired = run_case(op, kind, n, &settings, shim, &template, &mut tally);
            if !fired {
                // The command made fewer than n such calls: larger n cannot fire either.
                break;
            }
            tally.deepest.insert(kind.clone(), n);
        }
    }
    eprintln!(
        "fault injection, {op:?} ({} {}{}): {tally:?} in {:.1?}",
        settings.kinds.join(","),
        settings.errno,
        if settings.persist { ", persistent" } else { "" },
        started.elapsed()
    );
    assert!(
        tally.fired > 0,
        "{op:?}: no fault ever fired: the shim does not see the store's I/O"
    );
}

/// Runs one faulted command and checks everything after it; returns whether the fault fired.
fn run_case(
    op: Op,
    kind: &str,
    n: u64,
    settings: &Settings,
    shim: &Path,
    template: &Template,
    tally: &mut Tally,
) -> bool {
    let case = tempfile::tempdir().unwrap();
    let store_dir = case.path().join("store");
    copy_dir(&template.store_dir, &store_dir);
    let store = store_dir.join("ledger.db");
    let log = case.path().join("fault.log");
    let context = format!("{op:?}, {kind} #{n} fails with {}", settings.errno);

    let record_id = uuid::Uuid::now_v7().to_string();
    let mut command = Command::new(BIN);
    command.arg("--store").arg(&store);
    match op {
        Op::Record => {
            command.args([
                "record",
                "lead-sourced",
                "--customer",
                "fault-injected",
                "--rep",
                "rep-01",
                "--deal",
                "fault-d1",
                "--source",
                "referral",
                "--company",
                "Fault Foods",
                "--contact-name",
                "Ann Fault",
                "--event-id",
                record_id.as_str(),
            ]);
        }
        Op::Import => {
            command.arg("import").arg(&template.import_file);
        }
        Op::Project => {
            // Bring the read models from where the template left them over the imported file.
            let out = Command::new(BIN)
                .arg("--store")
                .arg(&store)
                .arg("import")
                .arg(&template.import_file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{context}: setup import: {}",
                text(&out)
            );
            command.arg("project");
        }
        Op::Rebuild => {
            command.arg("rebuild");
        }
    }
    let before = match op {
        Op::Project => &template.base_ids | &template.import_ids,
        _ => template.base_ids.clone(),
    };
    command
        .env("LD_PRELOAD", shim)
        .env("NTH_FAULT_PATH", format!("{}/", store_dir.display()))
        .env("NTH_FAULT_KIND", kind)
        .env("NTH_FAULT_N", n.to_string())
        .env("NTH_FAULT_ERRNO", &settings.errno)
        .env(
            "NTH_FAULT_PERSIST",
            if settings.persist { "1" } else { "0" },
        )
        .env("NTH_FAULT_LOG", &log);
    let out = run_with_timeout(command, &context);
    let fired = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("fired "));
    tally.cases += 1;
    if !fired {
        assert!(
            out.status.success(),
            "{context}: the fault did not fire, yet the command failed: {}",
            text(&out)
        );
        return false;
    }
    tally.fired += 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{context}: the command panicked: {}",
        text(&out)
    );
    assert!(
        out.status.code().is_some(),
        "{context}: the command died of a signal: {}",
        text(&out)
    );
    let acknowledged = out.status.success();
    if acknowledged {
        tally.exited_0 += 1;
    } else {
        tally.failed_cleanly += 1;
    }

    integrity_check(&store, &context);
    let read_models = store_dir.join("ledger.read-models.db");
    if read_models.exists() {
        integrity_check(&read_models, &context);
    }
    let after = exported_ids(&store, case.path(), &context);

    // The log: what was there, plus the command's events if acknowledged, whole or none if not.
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    let lost: Vec<&String> = before.difference(&after).collect();
    assert!(lost.is_empty(), "{context}: events lost: {lost:?}");
    let own: BTreeSet<String> = match op {
        Op::Record => [record_id.clone()].into(),
        Op::Import => template.import_ids.clone(),
        Op::Project | Op::Rebuild => BTreeSet::new(),
    };
    if acknowledged {
        assert_eq!(
            added, own,
            "{context}: the log after an acknowledged command"
        );
    } else if !added.is_empty() {
        assert_eq!(
            added, own,
            "{context}: a failed command left a partial append"
        );
        tally.failed_but_whole_append_present += 1;
    }

    // The read models: equal to a rebuild once projected.
    let fresh = case.path().join("fresh.read-models.db");
    if acknowledged && matches!(op, Op::Project | Op::Rebuild) {
        rebuild_into(&store, &fresh, &context);
        assert_same_read_models(&read_models, &fresh, &context);
        std::fs::remove_file(&fresh).unwrap();
    }
    let out = Command::new(BIN)
        .arg("--store")
        .arg(&store)
        .arg("project")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: project after the fault: {}",
        text(&out)
    );
    rebuild_into(&store, &fresh, &context);
    assert_same_read_models(&read_models, &fresh, &context);
    true
}

fn run_with_timeout(mut command: Command, context: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{context}: the command hung: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn integrity_check(db: &Path, context: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        ["ok"],
        "{context}: integrity_check of {}",
        db.display()
    );
}

fn exported_ids(store: &Path, dir: &Path, context: &str) -> BTreeSet<String> {
    let file = dir.join("export.ndjson");
    let out = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("export")
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: the store does not open after the fault: {}",
        text(&out)
    );
    ids_of(&std::fs::read_to_string(&file).unwrap())
}

fn rebuild_into(store: &Path, read_models: &Path, context: &str) {
    let out = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("--read-models")
        .arg(read_models)
        .arg("rebuild")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: a fresh rebuild: {}",
        text(&out)
    );
}

/// Every `rm_` table of two read-model files, row for row (staging tables and clock columns
/// aside).
fn assert_same_read_models(a: &Path, b: &Path, context: &str) {
    let left = read_model_tables(a);
    let right = read_model_tables(b);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>(),
        "{context}: the read models' tables"
    );
    assert!(!left.is_empty(), "{context}: no read-model tables");
    for (table, rows) in &left {
        let other = &right[table];
        if rows != other {
            let only_left: Vec<_> = rows.difference(other).take(3).collect();
            let only_right: Vec<_> = other.difference(rows).take(3).collect();
            panic!(
                "{context}: {table} differs from a rebuild ({} rows against {}):\n  \
                 projected only: {only_left:?}\n  rebuilt only: {only_right:?}",
                rows.len(),
                other.len()
            );
        }
    }
}

fn read_model_tables(db: &Path) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\\_%' ESCAPE '\\' \
             AND name NOT LIKE 'rm\\_new\\_%' ESCAPE '\\' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let kept: Vec<usize> = stmt
                .column_names()
                .enumerate()
                .filter(|(_, name)| !CLOCK_COLUMNS.contains(&(table.as_str(), *name)))
                .map(|(i, _)| i)
                .collect();
            let rows = stmt
                .query_map([], |row| {
                    Ok(kept
                        .iter()
                        .map(|&i| {
                            let v: rusqlite::types::Value = row.get(i).unwrap();
                            format!("{v:?}")
                        })
                        .collect::<Vec<String>>())
                })
                .unwrap()
                .collect::<Result<BTreeSet<_>, _>>()
                .unwrap();
            (table, rows)
        })
        .collect()
}

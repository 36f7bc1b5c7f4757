//! Issue 10, data safety of files: no command destroys a file it did not create for itself;
//! read commands refuse a missing store and open it read-only; a clean exit leaves the store
//! one complete file; `backup`; `application_id` stamps; file modes; the first write failure
//! names its cause. Drives the real binary, as `tests/cli.rs` does.

mod bin_support;
use assert_cmd::Command;
use bin_support::Output;
use rusqlite::Connection;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const STORE_APPLICATION_ID: i32 = pipeline_ledger::store::files::STORE_APPLICATION_ID;
const READ_MODELS_APPLICATION_ID: i32 = pipeline_ledger::store::files::READ_MODELS_APPLICATION_ID;

/// A temporary directory holding a store `ledger.db`.
struct Dir {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Dir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ledger.db");
        Self { dir, store }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("pipeline-ledger").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .env_remove("PIPELINE_LEDGER_GROUP_READABLE")
            .env("PIPELINE_LEDGER_STORE", &self.store)
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        output(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn fails(&self, args: &[&str]) -> String {
        self.run(args).failed(args).stderr
    }

    fn record(&self, customer: &str) {
        self.ok(&record_args(customer));
    }

    /// The events of the store at `store`, by exporting it.
    fn events_in(&self, store: &Path) -> usize {
        self.ok(&["--store", store.to_str().unwrap(), "export"])
            .lines()
            .count()
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn output(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    Output::of(out)
}

fn record_args(customer: &str) -> Vec<&str> {
    vec![
        "record",
        "lead-sourced",
        "--customer",
        customer,
        "--rep",
        "rep-01",
        "--deal",
        "d1",
        "--source",
        "web",
        "--company",
        "Acme",
        "--contact-name",
        "N",
    ]
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn application_id(path: &Path) -> i32 {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap()
}

fn journal_mode(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// Another application's SQLite file, in rollback-journal mode.
fn foreign_sqlite(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

// ---- 1. demo removes only the read models it made for itself ----

#[test]
fn demo_refuses_read_models_that_are_its_own_store() {
    let d = Dir::new();
    let demo = d.path("demo.db");
    let demo_s = demo.to_str().unwrap();
    let err = d.fails(&[
        "--store",
        demo_s,
        "--read-models",
        demo_s,
        "demo",
        "--customers",
        "3",
    ]);
    assert!(err.contains("itself"), "{err}");
    assert!(!demo.exists(), "the demo wrote its store before refusing");
}

#[test]
fn demo_refuses_read_models_that_are_another_ledger_or_a_text_file() {
    let d = Dir::new();
    d.record("c1");
    let store_s = d.store.to_str().unwrap().to_string();
    let notes = d.path("notes.txt");
    std::fs::write(&notes, "keep me").unwrap();
    let demo = d.path("demo.db");
    for (target, what) in [
        (store_s.as_str(), "a ledger"),
        (notes.to_str().unwrap(), "text"),
    ] {
        let err = d.fails(&[
            "--store",
            demo.to_str().unwrap(),
            "--read-models",
            target,
            "demo",
            "--customers",
            "3",
        ]);
        assert!(
            err.contains("not a pipeline-ledger read-models file"),
            "{what}: {err}"
        );
    }
    assert_eq!(d.events_in(&d.store), 1, "the other ledger lost its event");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "keep me");
    // Its own read models, from an earlier run, it does start afresh.
    let args = [
        "--store",
        "./pipeline-ledger-demo.db",
        "--read-models",
        "demo.read-models.db",
        "demo",
        "--customers",
        "3",
    ];
    d.ok(&args);
    d.ok(&args);
}

// ---- 2. export -o never empties the store ----

#[test]
fn export_to_the_store_or_the_read_models_is_refused_and_the_store_kept() {
    let d = Dir::new();
    d.record("c1");
    d.record("c2");
    d.ok(&["project"]);
    let wal = format!("{}-wal", d.store.display());
    let rm = d.path("ledger.read-models.db");
    for target in [d.store.to_str().unwrap(), &wal, rm.to_str().unwrap()] {
        let err = d.fails(&["export", "-o", target]);
        assert!(err.contains("export to another file"), "{target}: {err}");
    }
    assert_eq!(d.events_in(&d.store), 2);
}

#[test]
fn export_replaces_its_output_only_when_complete() {
    let d = Dir::new();
    let out = d.path("out.ndjson");
    std::fs::write(&out, "previous export\n").unwrap();
    // A failed export (no store here) leaves the previous file as it was.
    d.fails(&[
        "--store",
        d.path("missing.db").to_str().unwrap(),
        "export",
        "-o",
        "out.ndjson",
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous export\n");
    d.record("c1");
    d.ok(&["export", "-o", "out.ndjson"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    assert_eq!(mode_of(&out), 0o600);
    assert!(
        d.files().iter().all(|f| !f.ends_with(".tmp")),
        "a temporary file was left: {:?}",
        d.files()
    );
}

// ---- 3. read commands refuse a missing store ----

#[test]
fn read_commands_refuse_a_missing_store_and_create_nothing() {
    let d = Dir::new();
    let cases: [&[&str]; 9] = [
        &["export"],
        &["history", "c1"],
        &["funnel"],
        &["reps"],
        &["customer", "c1"],
        &["pipeline"],
        &["project"],
        &["rebuild"],
        &["backup", "copy.db"],
    ];
    for args in cases {
        let err = d.fails(args);
        assert!(err.contains("ledger.db"), "{args:?}: {err}");
        assert!(err.contains("no store"), "{args:?}: {err}");
        assert!(
            args[0] == "backup" || err.contains("pipeline-ledger init"),
            "{args:?}: {err}"
        );
        assert_eq!(d.files(), Vec::<String>::new(), "{args:?} created files");
    }
    // `record` creates it, and says so.
    let out = d.run(&record_args("c1"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("created a new store"), "{}", out.stderr);
    assert_eq!(d.events_in(&d.store), 1);
    // `init` too.
    let other = d.path("other.db");
    d.ok(&["--store", other.to_str().unwrap(), "init"]);
    assert_eq!(d.events_in(&other), 0);
}

// ---- 4. a clean exit leaves the store one complete file ----

#[test]
fn after_clean_exits_the_store_file_alone_holds_every_event() {
    for round in 0..3 {
        let d = Dir::new();
        for c in ["w1", "w2", "w3"] {
            d.record(c);
        }
        let wal = PathBuf::from(format!("{}-wal", d.store.display()));
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(
            wal_bytes, 0,
            "round {round}: the WAL still holds {wal_bytes} bytes"
        );
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("copy.db");
        std::fs::copy(&d.store, &copy).unwrap();
        assert_eq!(d.events_in(&copy), 3, "round {round}");
    }
}

// ---- 5. backup ----

#[test]
fn backup_copies_a_running_store_verified_and_never_overwrites_by_surprise() {
    let d = Dir::new();
    d.record("c1");
    d.record("c2");
    // A writer keeps appending while the backup runs.
    let writer = {
        let store = d.store.clone();
        let cwd = d.dir.path().to_path_buf();
        std::thread::spawn(move || {
            for i in 0..5 {
                let customer = format!("bg{i}");
                Command::cargo_bin("pipeline-ledger")
                    .unwrap()
                    .current_dir(&cwd)
                    .env("PIPELINE_LEDGER_STORE", &store)
                    .args(record_args(&customer))
                    .assert()
                    .success();
            }
        })
    };
    let out = d.ok(&["backup", "copy.db"]);
    writer.join().unwrap();
    assert!(out.contains("verified"), "{out}");
    let copy = d.path("copy.db");
    let copied = d.events_in(&copy);
    assert!((2..=7).contains(&copied), "{copied}");
    assert!(out.contains(&format!("backed up {copied} events")), "{out}");
    assert_eq!(application_id(&copy), STORE_APPLICATION_ID);
    assert_eq!(
        journal_mode(&copy),
        "delete",
        "the backup is one self-contained file"
    );
    assert_eq!(mode_of(&copy), 0o600);
    // The copy is the store as it was: the same events, in the same order.
    let source = d.ok(&["export"]);
    let backup = d.ok(&["--store", copy.to_str().unwrap(), "export"]);
    assert!(source.starts_with(&backup));

    // An existing destination needs --force, and is replaced only if it is a store.
    let err = d.fails(&["backup", "copy.db"]);
    assert!(err.contains("--force"), "{err}");
    d.ok(&["backup", "copy.db", "--force"]);
    assert_eq!(d.events_in(&copy), 7);
    let notes = d.path("notes.txt");
    std::fs::write(&notes, "keep me").unwrap();
    let err = d.fails(&["backup", "notes.txt", "--force"]);
    assert!(err.contains("not a pipeline-ledger store"), "{err}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "keep me");
    let err = d.fails(&["backup", d.store.to_str().unwrap(), "--force"]);
    assert!(err.contains("the store itself"), "{err}");
    assert_eq!(d.events_in(&d.store), 7);
    assert!(
        d.files().iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        d.files()
    );
}

#[test]
fn backup_of_kurrentdb_points_to_the_servers_own_backups() {
    let d = Dir::new();
    let err = d.fails(&[
        "--store",
        "kurrentdb://localhost:2113?tls=false",
        "backup",
        "x.db",
    ]);
    assert!(err.contains("KurrentDB"), "{err}");
    assert!(!d.path("x.db").exists());
}

// ---- 6. application_id: foreign files refused untouched; our files stamped ----

#[test]
fn a_foreign_sqlite_store_is_refused_before_it_is_switched_to_wal() {
    let d = Dir::new();
    let other = d.path("other.db");
    foreign_sqlite(&other);
    assert_eq!(journal_mode(&other), "delete");
    let other_s = other.to_str().unwrap();
    for args in [
        vec!["--store", other_s, "export"],
        vec!["--store", other_s, "init"],
        [vec!["--store", other_s], record_args("c1")].concat(),
    ] {
        let err = d.fails(&args);
        assert!(
            err.contains("not a pipeline-ledger store"),
            "{args:?}: {err}"
        );
        assert_eq!(
            journal_mode(&other),
            "delete",
            "{args:?} switched it to WAL"
        );
    }
}

#[test]
fn a_foreign_or_store_file_as_read_models_is_refused_untouched() {
    let d = Dir::new();
    d.record("c1");
    let other = d.path("other.db");
    foreign_sqlite(&other);
    let err = d.fails(&["--read-models", other.to_str().unwrap(), "project"]);
    assert!(
        err.contains("not a pipeline-ledger read-models file"),
        "{err}"
    );
    assert_eq!(journal_mode(&other), "delete");
    let second = d.path("second.db");
    d.ok(&["--store", second.to_str().unwrap(), "init"]);
    let err = d.fails(&["--read-models", second.to_str().unwrap(), "project"]);
    assert!(err.contains("event store"), "{err}");
    let err = d.fails(&["--read-models", d.store.to_str().unwrap(), "project"]);
    assert!(err.contains("itself"), "{err}");
}

#[test]
fn files_the_ledger_creates_are_stamped() {
    let d = Dir::new();
    d.record("c1");
    d.ok(&["project"]);
    assert_eq!(application_id(&d.store), STORE_APPLICATION_ID);
    let rm = d.path("ledger.read-models.db");
    assert_eq!(application_id(&rm), READ_MODELS_APPLICATION_ID);
    // A read models file of an older build (id 0, only rm_ tables) is ours too, and stamped.
    let conn = Connection::open(&rm).unwrap();
    conn.pragma_update(None, "application_id", 0).unwrap();
    drop(conn);
    d.ok(&["funnel"]);
    assert_eq!(application_id(&rm), READ_MODELS_APPLICATION_ID);
}

// ---- 7. read commands open the store read-only ----

/// Runs the binary as user `nobody` (when root) against a store it may read but not write.
/// Without root, the directory and the files are made read-only instead. Either way a write
/// to the store's directory or files fails.
fn run_without_write_access(d: &Dir, args: &[&str]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("pipeline-ledger");
    for f in d.files() {
        std::fs::set_permissions(d.path(&f), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        cmd
    } else {
        Command::new(&bin)
    };
    cmd.current_dir("/")
        .env("PIPELINE_LEDGER_STORE", &d.store)
        .env_remove("PIPELINE_LEDGER_READ_MODELS")
        .args(args);
    let out = output(cmd);
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    for f in d.files() {
        std::fs::set_permissions(d.path(&f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    out
}

#[test]
fn a_store_without_write_access_can_be_exported_and_read() {
    let d = Dir::new();
    d.record("c1");
    d.record("c2");
    let before: Vec<(String, Vec<u8>)> = d
        .files()
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(d.path(&f)).unwrap()))
        .collect();
    let out = run_without_write_access(&d, &["export"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2);
    let out = run_without_write_access(&d, &["history", "c1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Acme") || out.stdout.contains("lead"),
        "{}",
        out.stdout
    );
    let after: Vec<(String, Vec<u8>)> = d
        .files()
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(d.path(&f)).unwrap()))
        .collect();
    assert!(before == after, "a read command changed the store's files");
}

// ---- 8. file modes ----

#[test]
fn files_are_created_private_or_group_readable_when_asked() {
    for (group, expected) in [(false, 0o600), (true, 0o640)] {
        let d = Dir::new();
        // An open connection of another process keeps the -wal and -shm files in place.
        let mut init = d.command(&["init"]);
        if group {
            init.env("PIPELINE_LEDGER_GROUP_READABLE", "1");
        }
        output(init);
        let keep = Connection::open(&d.store).unwrap();
        keep.query_row("SELECT count(*) FROM events", [], |_| Ok(()))
            .unwrap();
        let mut record = d.command(&record_args("c1"));
        let mut project = d.command(&["project"]);
        let mut backup = d.command(&["backup", "copy.db"]);
        let mut export = d.command(&["export", "-o", "out.ndjson"]);
        for cmd in [&mut record, &mut project, &mut backup, &mut export] {
            if group {
                cmd.env("PIPELINE_LEDGER_GROUP_READABLE", "1");
            }
            let out = output(std::mem::replace(cmd, Command::new("true")));
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
        let names = d.files();
        for part in [
            "ledger.db",
            "ledger.db-wal",
            "ledger.db-shm",
            "ledger.read-models.db",
        ] {
            assert!(
                names.contains(&part.to_string()),
                "{part} missing: {names:?}"
            );
        }
        for name in &names {
            // The keys of personal data are the owner's alone, whatever the log's mode.
            let key_file = name.contains(".keys.db") || name.ends_with(".master.key");
            assert_eq!(
                mode_of(&d.path(name)),
                if key_file { 0o600 } else { expected },
                "{name} (group readable: {group})"
            );
        }
        for key_file in ["ledger.master.key", "ledger.keys.db", "copy.keys.db"] {
            assert!(
                names.contains(&key_file.to_string()),
                "{key_file}: {names:?}"
            );
        }
        drop(keep);
    }
}

// ---- 9. the first write failure names its cause ----

#[test]
fn a_failed_write_names_its_cause_not_an_earlier_failure() {
    let d = Dir::new();
    d.record("c1");
    // An open connection keeps the -shm (and an empty -wal) in place, so that opening the
    // store writes nothing; then writes that would grow a file past 1 KiB fail (EFBIG): the
    // WAL cannot take the next event.
    let keep = Connection::open(&d.store).unwrap();
    keep.query_row("SELECT count(*) FROM events", [], |_| Ok(()))
        .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("pipeline-ledger");
    let size = 1024;
    let mut cmd = Command::new("sh");
    cmd.current_dir(d.dir.path())
        .env("PIPELINE_LEDGER_STORE", &d.store)
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={size} {} \"$@\"",
            bin.display()
        ))
        .arg("sh")
        // A second lead of c1: its key exists, so only the log is written.
        .args(
            record_args("c1")
                .into_iter()
                .map(|a| if a == "d1" { "d2" } else { a }),
        );
    let out = output(cmd);
    assert_ne!(out.code, 0, "the write did not fail: {}", out.stdout);
    assert!(
        !out.stderr.contains("earlier write failure"),
        "the first failure blames an earlier one: {}",
        out.stderr
    );
    assert!(out.stderr.contains("the write failed"), "{}", out.stderr);
    drop(keep);
    assert_eq!(d.events_in(&d.store), 1);
}

#[test]
fn a_write_to_a_store_without_write_access_says_so() {
    let d = Dir::new();
    d.record("c1");
    let out = run_without_write_access(&d, &record_args("c2"));
    assert_ne!(out.code, 0);
    assert!(
        !out.stderr.contains("earlier write failure"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("cannot write store") && out.stderr.contains("permissions"),
        "{}",
        out.stderr
    );
    assert_eq!(d.events_in(&d.store), 1);
}

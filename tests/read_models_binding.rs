//! Read models are tied to their store and to the code that derived them: after a restore from
//! an older copy, a re-created store, another policy, or read models of an older version, no
//! report is computed from them; `project` rebuilds them and says why. Through the binary.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    fn new() -> Self {
        Ledger {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary on the store `ledger.db` of this directory.
    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("PIPELINE_LEDGER_STORE")
            .env_remove("PIPELINE_LEDGER_READ_MODELS")
            .env_remove("PIPELINE_LEDGER_POLICY")
            .arg("--store")
            .arg("ledger.db")
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail, and returns its standard error.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    /// The position a report says it was computed at.
    fn funnel_position(&self) -> u64 {
        let json: serde_json::Value =
            serde_json::from_str(&self.ok(&["funnel", "--json"])).unwrap();
        json["meta"]["position"].as_u64().unwrap()
    }

    /// Copies the store's files (the log and its WAL) to `to`.
    fn copy_store(&self, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for suffix in ["", "-wal"] {
            let from = self.path(&format!("ledger.db{suffix}"));
            let dest = to.join(format!("ledger.db{suffix}"));
            let _ = std::fs::remove_file(&dest);
            if from.exists() {
                std::fs::copy(&from, &dest).unwrap();
            }
        }
    }

    /// Replaces the store's files by those in `from` (the read models stay).
    fn restore_store(&self, from: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(self.path(&format!("ledger.db{suffix}")));
        }
        for suffix in ["", "-wal"] {
            let src = from.join(format!("ledger.db{suffix}"));
            if src.exists() {
                std::fs::copy(&src, self.path(&format!("ledger.db{suffix}"))).unwrap();
            }
        }
    }
}

/// Events of a small generated pipeline, as NDJSON lines, split in two halves.
fn events(ledger: &Ledger) -> (String, String, u64) {
    events_of(ledger, 3)
}

/// Events of the generated pipeline of `seed`, split in two halves.
fn events_of(ledger: &Ledger, seed: u64) -> (String, String, u64) {
    let demo = ledger.path(&format!("demo-{seed}.db"));
    let seed = seed.to_string();
    let out = Command::cargo_bin("pipeline-ledger")
        .unwrap()
        .arg("--store")
        .arg(&demo)
        .args([
            "demo",
            "--customers",
            "40",
            "--seed",
            &seed,
            "--until",
            "2026-06-30T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::cargo_bin("pipeline-ledger")
        .unwrap()
        .arg("--store")
        .arg(&demo)
        .arg("export")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    (
        lines[..half].join("\n") + "\n",
        lines[half..].join("\n") + "\n",
        half as u64,
    )
}

fn import(ledger: &Ledger, name: &str, lines: &str) {
    std::fs::write(ledger.path(name), lines).unwrap();
    ledger.ok(&["import", name]);
}

#[test]
fn read_models_ahead_of_a_restored_store_are_rebuilt_never_reported_from() {
    let ledger = Ledger::new();
    let (first, second, half) = events(&ledger);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    ledger.copy_store(&ledger.path("backup"));
    import(&ledger, "second.ndjson", &second);
    ledger.ok(&["project"]);
    assert!(ledger.funnel_position() > half);

    // Given the store restored from the copy taken at half the events,
    ledger.restore_store(&ledger.path("backup"));
    // when a report is asked, it is refused and names the way out;
    let why = ledger.refused(&["funnel"]);
    assert!(why.contains("ahead of the store"), "{why}");
    assert!(why.contains("rebuild"), "{why}");
    let why = ledger.refused(&["reps"]);
    assert!(why.contains("ahead of the store"), "{why}");
    // a replay is still answered;
    ledger.ok(&["pipeline", "--at-position", "1"]);
    // and `project` rebuilds the read models from the restored log, saying why.
    let out = ledger.ok(&["project"]);
    assert!(out.contains("read models rebuilt from the log"), "{out}");
    assert_eq!(ledger.funnel_position(), half);
    assert!(
        !ledger.ok(&["project"]).contains("rebuilt"),
        "once is enough"
    );
}

#[test]
fn read_models_of_a_re_created_store_are_not_reported_from() {
    let ledger = Ledger::new();
    let (first, _, _) = events(&ledger);
    let (other, _, _) = events_of(&ledger, 4);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    let before = ledger.ok(&["customer", "cust-00001", "--json"]);
    // The store is deleted and another ledger is recorded under the same name.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(ledger.path(&format!("ledger.db{suffix}")));
    }
    import(&ledger, "other.ndjson", &other);
    let why = ledger.refused(&["customer", "cust-00001"]);
    assert!(why.contains("another store"), "{why}");
    let out = ledger.ok(&["project"]);
    assert!(out.contains("another store"), "{out}");
    let after = ledger.run(&["customer", "cust-00001", "--json"]);
    assert_ne!(String::from_utf8_lossy(&after.stdout), before);
}

#[test]
fn read_models_derived_under_another_policy_are_not_reported_from() {
    let ledger = Ledger::new();
    let (first, _, _) = events(&ledger);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/policy.json"),
    )
    .unwrap()
    .replace("\"dormant_after_days\": 180", "\"dormant_after_days\": 90");
    std::fs::write(ledger.path("other-policy.json"), policy).unwrap();
    let why = ledger.refused(&["pipeline", "--policy", "other-policy.json"]);
    assert!(why.contains("other definitions"), "{why}");
    // Under the policy they were derived with, they are read.
    ledger.ok(&["pipeline"]);
    // A replay under the other policy is computed from the log.
    ledger.ok(&[
        "pipeline",
        "--policy",
        "other-policy.json",
        "--at-position",
        "5",
    ]);
    // `project` under the other policy rebuilds them under it.
    let out = ledger.ok(&["project", "--policy", "other-policy.json"]);
    assert!(out.contains("other definitions"), "{out}");
    ledger.ok(&["pipeline", "--policy", "other-policy.json"]);
}

#[test]
fn read_models_of_an_older_version_are_rebuilt() {
    let ledger = Ledger::new();
    let (first, _, half) = events(&ledger);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    // Read models written before they recorded their store: no binding.
    let conn = rusqlite::Connection::open(ledger.path("ledger.read-models.db")).unwrap();
    conn.execute(
        "DELETE FROM rm_binding WHERE key <> 'checkpoint_event_id'",
        [],
    )
    .unwrap();
    drop(conn);
    let why = ledger.refused(&["funnel"]);
    assert!(why.contains("older version"), "{why}");
    let out = ledger.ok(&["project"]);
    assert!(out.contains("older version"), "{out}");
    assert_eq!(ledger.funnel_position(), half);
}

#[test]
fn damaged_read_models_are_set_aside_by_rebuild_and_foreign_files_left_alone() {
    let ledger = Ledger::new();
    let (first, _, half) = events(&ledger);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    let rm = ledger.path("ledger.read-models.db");
    // Damage: the file cut to half its size (its header, ours, intact).
    ledger.ok(&["rebuild"]); // checkpoints the WAL into the file
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(ledger.path(&format!("ledger.read-models.db{suffix}")));
    }
    let size = std::fs::metadata(&rm).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&rm).unwrap();
    file.set_len(size / 2).unwrap();
    drop(file);
    let why = ledger.refused(&["reps"]);
    assert!(why.contains("rebuild"), "{why}");
    let out = ledger.ok(&["rebuild"]);
    assert!(out.contains("were damaged; they were moved to"), "{out}");
    let aside: Vec<_> = std::fs::read_dir(ledger.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept, renamed");
    assert_eq!(aside[0].metadata().unwrap().len(), size / 2);
    assert_eq!(ledger.funnel_position(), half);

    // A file that is not ours at the read models' path is never moved or changed.
    let foreign = ledger.path("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&foreign).unwrap();
    let out = ledger.run(&["--read-models", "foreign.db", "rebuild"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

#[test]
fn staging_tables_of_a_killed_rebuild_are_dropped_on_next_use() {
    let ledger = Ledger::new();
    let (first, _, _) = events(&ledger);
    import(&ledger, "first.ndjson", &first);
    ledger.ok(&["project"]);
    // A rebuild killed midway leaves its staging tables (and holds no lock any more).
    let rm = ledger.path("ledger.read-models.db");
    let conn = rusqlite::Connection::open(&rm).unwrap();
    conn.execute_batch("CREATE TABLE rm_new_customers (customer_id TEXT PRIMARY KEY);")
        .unwrap();
    drop(conn);
    ledger.ok(&["funnel"]);
    let conn = rusqlite::Connection::open(&rm).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rm_new_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
}

//! The projection commands, run through the real binary against a store the test fills.

mod projections_support;

use pipeline_ledger::store::sqlite::SqliteStore;
use projections_support::*;
use std::sync::Arc;

/// Runs `pipeline-ledger --store PATH ARGS…` and returns its standard output; fails the test
/// on a non-zero exit.
async fn exec(_store: &Arc<SqliteStore>, path: &std::path::Path, args: &[&str]) -> String {
    let (path, args): (std::path::PathBuf, Vec<String>) = (
        path.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let out = assert_cmd::Command::cargo_bin("pipeline-ledger")
            .unwrap()
            .arg("--store")
            .arg(&path)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_runs_and_reports_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let events = generate(7, 5, 150);
    append(&store, &events).await;
    let n = events.len();

    let out = exec(&store, &path, &["project"]).await;
    assert!(out.contains(&format!("position {n}")), "{out}");
    let out = exec(&store, &path, &["rebuild"]).await;
    assert!(out.contains(&format!("position {n}")), "{out}");

    let funnel = exec(&store, &path, &["funnel", "--by", "source"]).await;
    assert!(
        funnel.contains(&format!("computed at log position {n}")),
        "{funnel}"
    );
    assert!(funnel.contains("Transitions"), "{funnel}");
    let json = exec(
        &store,
        &path,
        &["funnel", "--json", "--by", "cohort", "--cohort", "quarter"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["meta"]["position"], serde_json::json!(n));
    // The funnel the runner keeps computed is the one computed afresh.
    let kept = exec(&store, &path, &["funnel", "--json", "--by", "rep"]).await;
    let fresh = exec(
        &store,
        &path,
        &["funnel", "--json", "--by", "rep", "--fresh"],
    )
    .await;
    assert_eq!(kept, fresh);
    let csv = exec(&store, &path, &["funnel", "--csv"]).await;
    assert!(csv.starts_with("position,group,stage,"), "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{n},all,lead,")),
        "{csv}"
    );

    // A report at an earlier position is reproduced exactly by the same command later.
    let p = (n / 2).max(1).to_string();
    let first = exec(&store, &path, &["reps", "--json", "--at-position", &p]).await;
    append(
        &store,
        &generate(8, 3, 30)
            .into_iter()
            .map(|mut e| {
                e.customer_id =
                    pipeline_ledger::domain::CustomerId::new(format!("x{}", e.customer_id))
                        .unwrap();
                e
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let again = exec(&store, &path, &["reps", "--json", "--at-position", &p]).await;
    // Everything but the head (which moved) is the same.
    let (mut first, mut again): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&again).unwrap(),
    );
    for v in [&mut first, &mut again] {
        v["meta"]["head_position"] = serde_json::Value::Null;
        v["meta"]["lag"] = serde_json::Value::Null;
    }
    assert_eq!(first, again);

    for args in [
        &["reps", "--period", "week"][..],
        &["reps", "--period", "day", "--rep", "r1", "--csv"],
        &["pipeline"],
        &["pipeline", "--json", "--as-of", "2024-03-01"],
        &["pipeline", "--csv", "--known-at", "2024-02-01T00:00:00Z"],
        &["customer", "c1"],
        &["customer", "c1", "--json", "--as-of", "2024-12-31"],
        &[
            "funnel",
            "--from",
            "2024-01-01",
            "--to",
            "2024-06-30",
            "--by",
            "rep",
        ],
    ] {
        let out = exec(&store, &path, args).await;
        assert!(!out.is_empty(), "{args:?}");
    }
}

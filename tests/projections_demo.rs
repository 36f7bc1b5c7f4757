//! The demo report over the lead generator's realistic history.

use pipeline_ledger::demo::{DemoConfig, generate};
use pipeline_ledger::ledger::Ledger;
use pipeline_ledger::projections::Policy;
use pipeline_ledger::projections::report::demo_report;
use pipeline_ledger::store::sqlite::SqliteStore;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_report_prints_funnel_reps_and_stalled_deals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let ledger = Ledger::new(store.clone());
    let config = DemoConfig {
        customers: 30,
        seed: 5,
        reps: 4,
        until: chrono::Utc::now(),
        span_days: 365,
    };
    let lines: Vec<_> = generate(&config)
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, ledger.validate(p).unwrap()))
        .collect();
    ledger.record_batch(lines, &|_| {}).await.unwrap();
    let mut out = Vec::new();
    demo_report(&*store, &path, &Policy::default(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    for section in [
        "== Funnel by lead source ==",
        "Transitions",
        "== Reps per quarter ==",
        "Stalled: no activity",
        "Stalled: no progress",
        "computed at log position",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
}

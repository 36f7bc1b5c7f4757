//! The runner in follow mode: live events reach the read models, and a second runner that finds
//! the checkpoint moved under it starts over from the stored one instead of double-counting.

mod projections_support;

use pipeline_ledger::projections::{Policy, replay};
use pipeline_ledger::read_models::sqlite::SqliteReadModels;
use pipeline_ledger::read_models::{ReadModels, Tables};
use pipeline_ledger::runner::{self, Progress};
use pipeline_ledger::store::EventStore;
use pipeline_ledger::store::sqlite::SqliteStore;
use projections_support::*;
use std::sync::Arc;
use std::time::Duration;

/// Most polls while waiting for the follower to catch up (each waits a little); generous, so
/// that a slow machine only makes the test slower, never failing.
const POLLS_MAX: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_applies_live_events_and_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).unwrap();
    let read_models: Arc<dyn ReadModels> =
        Arc::new(SqliteReadModels::open(&dir.path().join("rm.db")));
    let events = generate(11, 4, 120);
    let (first, second) = events.split_at(events.len() / 2);
    append(&store, first).await;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let store = store.clone();
        let read_models = read_models.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Progress> = Vec::new();
            let done = runner::project(
                &store,
                &read_models,
                &Policy::default(),
                true,
                &mut |p| seen.push(p.clone()),
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
            .unwrap();
            (done, seen)
        })
    };
    // Live events, appended one at a time while the follower runs.
    for e in second {
        append(&store, std::slice::from_ref(e)).await;
    }
    let head = store.head_position().await.unwrap();
    for _ in 0..POLLS_MAX {
        if read_models.checkpoint(Tables::Live).unwrap().position == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(()).unwrap();
    let (done, seen) = follower.await.unwrap();
    assert_eq!(done.position, head);
    assert!(seen.iter().any(|p| p.caught_up));
    assert!(
        seen.iter()
            .all(|p| p.lag == p.head.unwrap_or(0) - p.position.unwrap_or(0))
    );
    let live = read_models.load_live().unwrap().unwrap();
    assert_eq!(live, replay(&Policy::default(), &read_back(&store).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_cannot_overwrite_a_newer_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).unwrap();
    let read_models: Arc<dyn ReadModels> =
        Arc::new(SqliteReadModels::open(&dir.path().join("rm.db")));
    append(&store, &generate(3, 3, 40)).await;
    runner::project(
        &store,
        &read_models,
        &Policy::default(),
        false,
        &mut |_| {},
        std::future::ready(()),
    )
    .await
    .unwrap();
    let cp = read_models.checkpoint(Tables::Live).unwrap();
    // A writer that believes the read models are empty is refused, and nothing changes.
    let written = read_models
        .write_batch(Tables::Live, None, &[], cp)
        .unwrap();
    assert!(!written);
    assert_eq!(read_models.checkpoint(Tables::Live).unwrap(), cp);
}

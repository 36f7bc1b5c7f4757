//! Issue 13, the chain's property: whatever sequence of acknowledged appends, refused appends,
//! retries and bulk appends (committed or abandoned) a store goes through, `verify` finds its
//! chain whole, covering exactly the events the store holds. On the embedded store and on
//! `KurrentStore` against the wire-level KurrentDB double.

mod kurrent_double;

use chrono::DateTime;
use pipeline_ledger::audit::verify::{VerifyOptions, verify};
use pipeline_ledger::store::kurrent::KurrentStore;
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{
    BulkMessage, EventStore, ExpectedRevision, NewRecord, StreamAppend, StreamFilter,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    /// Append `events` to stream `stream`, at the right expected revision or a wrong one.
    Append { stream: u8, events: u8, right: bool },
    /// Append to several streams at once.
    Many { streams: Vec<(u8, u8)> },
    /// Send the last acknowledged append again, as a client that lost the answer would.
    Retry,
    /// Reuse the last acknowledged event id with other content (refused).
    Reuse,
    /// A bulk append of chunks, committed or abandoned.
    Bulk {
        chunks: Vec<Vec<(u8, u8)>>,
        commit: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 1u8..4, any::<bool>()).prop_map(|(stream, events, right)| Op::Append {
            stream,
            events,
            right
        }),
        2 => prop::collection::vec((0u8..6, 1u8..3), 1..4).prop_map(|streams| Op::Many { streams }),
        1 => Just(Op::Retry),
        1 => Just(Op::Reuse),
        2 => (
            prop::collection::vec(prop::collection::vec((0u8..6, 1u8..3), 1..3), 1..3),
            any::<bool>()
        )
            .prop_map(|(chunks, commit)| Op::Bulk { chunks, commit }),
    ]
}

fn event(n: u64) -> NewRecord {
    let at = DateTime::from_timestamp(1_767_225_600 + n as i64 * 60, 0).unwrap();
    NewRecord {
        event_id: Uuid::now_v7(),
        event_type: "FollowUpLogged".into(),
        schema_version: 1,
        data: format!(r#"{{"n":{n}}}"#),
        occurred_at: at,
        recorded_at: n.is_multiple_of(3).then_some(at),
        recorded_by: format!("rep-{:02}", n % 4),
        correlation_id: n.is_multiple_of(2).then(Uuid::now_v7),
        causation_id: None,
    }
}

/// Builds appends at the revisions `next` says (and advances it as if they succeed).
fn appends_for(
    prefix: &str,
    streams: &[(u8, u8)],
    next: &mut [Option<u64>; 6],
    n: &mut u64,
) -> Vec<StreamAppend> {
    let mut out: Vec<StreamAppend> = Vec::new();
    for &(s, count) in streams {
        let events: Vec<NewRecord> = (0..count)
            .map(|_| {
                *n += 1;
                event(*n)
            })
            .collect();
        let stream = format!("customer-{prefix}{s}");
        // Two parts for one stream in one append: the second expects what the first leaves.
        let expected = match next[s as usize] {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        next[s as usize] = Some(next[s as usize].map_or(count as u64 - 1, |r| r + count as u64));
        out.push(StreamAppend {
            stream,
            expected,
            events,
        });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    KurrentDouble,
}

async fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut _double = None;
    let store: Box<dyn EventStore> = match backend {
        Backend::Sqlite => Box::new(SqliteStore::open(dir.path().join("ledger.db")).unwrap()),
        Backend::KurrentDouble => {
            let double = kurrent_double::Double::start().await;
            let store = KurrentStore::connect(&double.url(), StreamFilter::prefix("customer-"))
                .expect("connect to the double");
            _double = Some(double);
            Box::new(store)
        }
    };
    // Fresh stream names per case: a case never meets another's streams.
    let prefix = Uuid::new_v4().simple().to_string();
    let mut next: [Option<u64>; 6] = [None; 6];
    let mut n = 0u64;
    let mut last_ok: Option<Vec<StreamAppend>> = None;
    for op in ops {
        match op {
            Op::Append {
                stream,
                events,
                right,
            } => {
                let before = next;
                let mut appends = appends_for(&prefix, &[(stream, events)], &mut next, &mut n);
                if !right {
                    appends[0].expected = ExpectedRevision::Exact(999);
                }
                match store.append_many(appends.clone()).await {
                    Ok(_) => last_ok = Some(appends),
                    Err(_) => next = before,
                }
            }
            Op::Many { streams } => {
                let before = next;
                let appends = appends_for(&prefix, &streams, &mut next, &mut n);
                match store.append_many(appends.clone()).await {
                    Ok(_) => last_ok = Some(appends),
                    Err(_) => next = before,
                }
            }
            Op::Retry => {
                if let Some(appends) = &last_ok {
                    let results = store.append_many(appends.clone()).await;
                    prop_assert!(results.is_ok_and(|r| r.iter().all(|r| !r.written)));
                }
            }
            // KurrentDB keeps event ids unique only where an expected revision points (its
            // contract in tests/store_contract.rs); reuse is the embedded store's rule.
            Op::Reuse if backend == Backend::KurrentDouble => {}
            Op::Reuse => {
                if let Some(appends) = &last_ok {
                    let mut reused = appends[0].clone();
                    reused.events[0].data = r#"{"other":true}"#.into();
                    reused.expected = ExpectedRevision::Any;
                    prop_assert!(store.append_many(vec![reused]).await.is_err());
                }
            }
            Op::Bulk { chunks, commit } => {
                let before = next;
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let built: Vec<Vec<StreamAppend>> = chunks
                    .iter()
                    .map(|c| appends_for(&prefix, c, &mut next, &mut n))
                    .collect();
                let sender = async move {
                    for chunk in built {
                        if tx.send(BulkMessage::Chunk(chunk)).await.is_err() {
                            return;
                        }
                    }
                    if commit {
                        let _ = tx.send(BulkMessage::Commit).await;
                    }
                };
                let (_, result) = tokio::join!(sender, store.append_bulk(rx));
                if result.is_err() {
                    next = before;
                }
            }
        }
    }
    let report = verify(&*store, VerifyOptions::default(), Vec::new())
        .await
        .unwrap();
    prop_assert_eq!(&report.first_break, &None);
    let head = store.head_position().await.unwrap();
    prop_assert_eq!(report.last_position, head);
    let all = store.read_all(None, usize::MAX >> 1).await.unwrap();
    prop_assert_eq!(report.events, all.len() as u64);
    prop_assert_eq!(report.unhashed_events, 0);
    if backend == Backend::Sqlite {
        let info = store.chain_info().await.unwrap().unwrap();
        prop_assert_eq!(info.last_position, head);
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_chain_is_whole_after_any_sequence_of_writes(ops in prop::collection::vec(op(), 1..24)) {
        runtime().block_on(run(Backend::Sqlite, ops))?;
    }
}

proptest! {
    // Each case starts a double and speaks gRPC to it: fewer cases.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_per_stream_chains_are_whole_after_any_sequence_of_writes_on_kurrentdb(
        ops in prop::collection::vec(op(), 1..16)
    ) {
        runtime().block_on(run(Backend::KurrentDouble, ops))?;
    }
}

#[tokio::test]
async fn a_fresh_store_has_an_empty_chain_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ledger.db")).unwrap();
    let report = verify(&store, VerifyOptions::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(report.events, 0);
    assert_eq!(report.head_hash, None);
    assert!(report.first_break.is_none());
}

//! Properties of the embedded event store (`SqliteStore`), checked against a model.
//!
//! - per-stream revisions are gapless from 0; global positions strictly increase;
//! - an append succeeds exactly when its expected revision is met, and a refused one reports the
//!   stream's actual revision;
//! - retries (same ids, same content) never duplicate and return the original result; the same id
//!   with other content is an idempotency conflict;
//! - of N concurrent appenders with the same expected revision exactly one wins;
//! - reading everything returns exactly what was acknowledged, in order; a stream read backwards
//!   is the reverse of forwards;
//! - `append_many` is all or nothing;
//! - a subscription from a checkpoint delivers catch-up then live events, without gap or
//!   duplicate, while writers run.

use chrono::{DateTime, Duration, TimeZone, Utc};
use pipeline_ledger::limits::PAYLOAD_BYTES_MAX;
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{
    AppendError, AppendResult, CurrentRevision, Direction, EventStore, ExpectedRevision, NewRecord,
    ReadError, Record, StreamAppend, SubscriptionMessage,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

const CASES: u32 = 32;
/// Upper bound on how long any single wait may take before the test calls it a hang.
const HANG: std::time::Duration = std::time::Duration::from_secs(60);
const STREAMS: usize = 4;

fn stream(i: usize) -> String {
    format!("customer-s{i}")
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("store.db")).expect("store opens")
}

/// Runs an async property on a fresh multi-threaded runtime.
fn run<F: Future<Output = Result<(), TestCaseError>>>(f: F) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A distinct event with some content; ids are unique within the test process.
fn new_event(tag: &str) -> NewRecord {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    NewRecord {
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".into(),
        schema_version: 1,
        data: format!(r#"{{"n":{n},"tag":"{tag}"}}"#),
        // Sub-microsecond precision on purpose: the store keeps microseconds, and a retry with
        // the original value must still compare equal.
        occurred_at: base + Duration::nanoseconds(n as i64 * 1_000_123),
        recorded_at: None,
        recorded_by: "tester".into(),
        correlation_id: n.is_multiple_of(2).then(Uuid::now_v7),
        causation_id: None,
    }
}

fn events(n: usize, tag: &str) -> Vec<NewRecord> {
    (0..n).map(|_| new_event(tag)).collect()
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

/// Whether `record` is what was sent as `sent` on `stream`.
fn same_content(record: &Record, stream: &str, sent: &NewRecord) -> bool {
    record.event_id == sent.event_id
        && record.stream == stream
        && record.event_type == sent.event_type
        && record.schema_version == sent.schema_version
        && record.data == sent.data
        && record.occurred_at == micros(sent.occurred_at)
        && sent
            .recorded_at
            .is_none_or(|r| micros(r) == record.recorded_at)
        && record.recorded_by == sent.recorded_by
        && record.correlation_id == sent.correlation_id
        && record.causation_id == sent.causation_id
}

async fn read_everything(store: &SqliteStore) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map(|r: &Record| r.position);
        let page = store.read_all(after, 7).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn read_stream_all(
    store: &SqliteStore,
    name: &str,
    direction: Direction,
) -> Result<Vec<Record>, ReadError> {
    store
        .read_stream(name, direction, None, usize::MAX >> 2)
        .await
}

/// Checks the invariants of the whole log: positions strictly increase, each stream's revisions
/// are 0, 1, 2, … in position order.
fn check_log_invariants(all: &[Record]) -> Result<(), TestCaseError> {
    for pair in all.windows(2) {
        prop_assert!(
            pair[0].position < pair[1].position,
            "positions must strictly increase: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ids = HashSet::new();
    for r in all {
        let expected = next.entry(&r.stream).or_insert(0);
        prop_assert_eq!(r.revision, *expected, "stream {} has a gap", r.stream);
        *expected += 1;
        prop_assert!(ids.insert(r.event_id), "event {} appears twice", r.event_id);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sequential model test
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
    /// Exactly the stream's current revision (or no stream): what a well-behaved writer sends.
    Current,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        count: usize,
        expect: Expect,
    },
    /// Retries the `which`-th acknowledged append, with its original expectation or with Any.
    Retry { which: usize, with_any: bool },
    /// Re-sends the `which`-th acknowledged append with one event's data changed.
    Conflict { which: usize },
    /// Sends one already-recorded event together with a new one.
    Overlap { which: usize },
}

fn expect_strategy() -> impl Strategy<Value = Expect> {
    prop_oneof![
        1 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        2 => (0u64..4).prop_map(Expect::Exact),
        4 => Just(Expect::Current),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..STREAMS, 1usize..4, expect_strategy())
            .prop_map(|(stream, count, expect)| Op::Append { stream, count, expect }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(which, with_any)| Op::Retry { which, with_any }),
        1 => any::<usize>().prop_map(|which| Op::Conflict { which }),
        1 => any::<usize>().prop_map(|which| Op::Overlap { which }),
    ]
}

struct Acked {
    stream: String,
    expected: ExpectedRevision,
    events: Vec<NewRecord>,
    result: AppendResult,
}

/// The model's own reading of an expectation (not the store's `is_met_by`).
fn model_allows(expected: ExpectedRevision, len: usize) -> bool {
    match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => len == 0,
        ExpectedRevision::StreamExists => len > 0,
        ExpectedRevision::Exact(n) => len > 0 && n == len as u64 - 1,
    }
}

fn model_current(len: usize) -> CurrentRevision {
    if len == 0 {
        CurrentRevision::NoStream
    } else {
        CurrentRevision::Current(len as u64 - 1)
    }
}

async fn sequential_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // The model: each stream's events, and the log of acknowledged events in order.
    let mut streams: Vec<Vec<NewRecord>> = vec![Vec::new(); STREAMS];
    let mut log: Vec<(String, NewRecord)> = Vec::new();
    let mut acked: Vec<Acked> = Vec::new();
    let mut head: Option<u64> = None;

    for op in ops {
        match op {
            Op::Append {
                stream: s,
                count,
                expect,
            } => {
                let len = streams[s].len();
                let expected = match expect {
                    Expect::Any => ExpectedRevision::Any,
                    Expect::NoStream => ExpectedRevision::NoStream,
                    Expect::StreamExists => ExpectedRevision::StreamExists,
                    Expect::Exact(n) => ExpectedRevision::Exact(n),
                    Expect::Current if len == 0 => ExpectedRevision::NoStream,
                    Expect::Current => ExpectedRevision::Exact(len as u64 - 1),
                };
                let batch = events(count, "append");
                let outcome = store.append(&stream(s), expected, batch.clone()).await;
                if model_allows(expected, len) {
                    let result = outcome.map_err(|e| {
                        TestCaseError::fail(format!("append with {expected} at {len} failed: {e}"))
                    })?;
                    prop_assert!(result.written);
                    prop_assert_eq!(result.next_expected_revision, (len + count - 1) as u64);
                    prop_assert!(head.is_none_or(|h| result.first_position > h));
                    prop_assert!(result.first_position <= result.last_position);
                    head = Some(result.last_position);
                    for e in &batch {
                        log.push((stream(s), e.clone()));
                    }
                    streams[s].extend(batch.iter().cloned());
                    acked.push(Acked {
                        stream: stream(s),
                        expected,
                        events: batch,
                        result,
                    });
                } else {
                    match outcome {
                        Err(AppendError::WrongExpectedRevision {
                            stream: st,
                            expected: ex,
                            actual,
                        }) => {
                            prop_assert_eq!(st, stream(s));
                            prop_assert_eq!(ex, expected);
                            prop_assert_eq!(actual, model_current(len));
                        }
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "append with {expected} at length {len} must fail with \
                                 WrongExpectedRevision, got {other:?}"
                            )));
                        }
                    }
                }
            }
            Op::Retry { which, with_any } if !acked.is_empty() => {
                let a = &acked[which % acked.len()];
                let expected = if with_any {
                    ExpectedRevision::Any
                } else {
                    a.expected
                };
                let result = store
                    .append(&a.stream, expected, a.events.clone())
                    .await
                    .map_err(|e| TestCaseError::fail(format!("retry failed: {e}")))?;
                prop_assert_eq!(
                    result,
                    AppendResult {
                        written: false,
                        ..a.result
                    }
                );
            }
            Op::Conflict { which } if !acked.is_empty() => {
                let a = &acked[which % acked.len()];
                let mut changed = a.events.clone();
                let k = which % changed.len();
                changed[k].data = r#"{"changed":true}"#.into();
                let outcome = store
                    .append(&a.stream, ExpectedRevision::Any, changed)
                    .await;
                prop_assert!(
                    matches!(outcome, Err(AppendError::IdempotencyConflict { event_id }) if event_id == a.events[k].event_id),
                    "expected an idempotency conflict, got {:?}",
                    outcome
                );
            }
            Op::Overlap { which } if !acked.is_empty() => {
                let a = &acked[which % acked.len()];
                let old = a.events[which % a.events.len()].clone();
                let outcome = store
                    .append(
                        &a.stream,
                        ExpectedRevision::Any,
                        vec![new_event("overlap"), old],
                    )
                    .await;
                prop_assert!(
                    matches!(outcome, Err(AppendError::IdempotencyConflict { .. })),
                    "a new event mixed with a recorded one must conflict, got {:?}",
                    outcome
                );
            }
            _ => {}
        }
        prop_assert_eq!(store.head_position().await.unwrap(), head);
    }

    // Reading everything returns exactly what was acknowledged, in order.
    let all = read_everything(&store).await;
    check_log_invariants(&all)?;
    prop_assert_eq!(all.len(), log.len());
    for (record, (st, sent)) in all.iter().zip(&log) {
        prop_assert!(
            same_content(record, st, sent),
            "stored {:?} differs from sent {:?}",
            record,
            sent
        );
    }
    // Each acknowledged append sits where its result says.
    for a in &acked {
        let first = all
            .iter()
            .find(|r| r.event_id == a.events[0].event_id)
            .unwrap();
        let last = all
            .iter()
            .find(|r| r.event_id == a.events.last().unwrap().event_id)
            .unwrap();
        prop_assert_eq!(first.position, a.result.first_position);
        prop_assert_eq!(last.position, a.result.last_position);
        prop_assert_eq!(last.revision, a.result.next_expected_revision);
    }
    // Streams read forwards are the model; backwards, the reverse.
    for (s, model) in streams.iter().enumerate() {
        let forwards = read_stream_all(&store, &stream(s), Direction::Forwards).await;
        if model.is_empty() {
            prop_assert!(matches!(forwards, Err(ReadError::StreamNotFound(_))));
            continue;
        }
        let forwards = forwards.unwrap();
        let ids: Vec<Uuid> = forwards.iter().map(|r| r.event_id).collect();
        let model_ids: Vec<Uuid> = model.iter().map(|e| e.event_id).collect();
        prop_assert_eq!(&ids, &model_ids);
        let mut backwards = read_stream_all(&store, &stream(s), Direction::Backwards)
            .await
            .unwrap();
        backwards.reverse();
        prop_assert_eq!(backwards, forwards);
    }
    // Everything survives closing and reopening the store.
    drop(store);
    let reopened = open(&dir);
    prop_assert_eq!(read_everything(&reopened).await, all);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stream reads from a revision
// ---------------------------------------------------------------------------------------------

async fn stream_reads(len: usize, from: Option<u64>, max: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Interleave with another stream so that revisions and positions differ.
    for chunk in events(len, "read").chunks(3) {
        store
            .append(&stream(0), ExpectedRevision::Any, chunk.to_vec())
            .await
            .unwrap();
        store
            .append(&stream(1), ExpectedRevision::Any, events(1, "other"))
            .await
            .unwrap();
    }
    let all = read_stream_all(&store, &stream(0), Direction::Forwards)
        .await
        .unwrap();
    prop_assert_eq!(all.len(), len);

    let forwards = store
        .read_stream(&stream(0), Direction::Forwards, from, max)
        .await
        .unwrap();
    let start = from.unwrap_or(0) as usize;
    let expected: Vec<Record> = all.iter().skip(start).take(max).cloned().collect();
    prop_assert_eq!(forwards, expected);

    let backwards = store
        .read_stream(&stream(0), Direction::Backwards, from, max)
        .await
        .unwrap();
    let top = from.map_or(len, |f| (f as usize + 1).min(len));
    let expected: Vec<Record> = all[..top].iter().rev().take(max).cloned().collect();
    prop_assert_eq!(backwards, expected);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

async fn one_winner(appenders: usize, prefix: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let name = stream(0);
    if prefix > 0 {
        store
            .append(&name, ExpectedRevision::NoStream, events(prefix, "prefix"))
            .await
            .unwrap();
    }
    let expected = if prefix == 0 {
        ExpectedRevision::NoStream
    } else {
        ExpectedRevision::Exact(prefix as u64 - 1)
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(appenders));
    let mut tasks = Vec::new();
    for i in 0..appenders {
        let store = store.clone();
        let barrier = barrier.clone();
        let name = name.clone();
        let batch = events(1 + i % 3, "racer");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = store.append(&name, expected, batch.clone()).await;
            (batch, outcome)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (batch, outcome) = tokio::time::timeout(HANG, task).await.unwrap().unwrap();
        match outcome {
            Ok(result) => winners.push((batch, result)),
            Err(AppendError::WrongExpectedRevision { actual, .. }) => {
                prop_assert!(matches!(actual, CurrentRevision::Current(_)));
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error: {e}"))),
        }
    }
    prop_assert_eq!(winners.len(), 1, "exactly one appender wins");
    let (batch, result) = &winners[0];
    let stored = read_stream_all(&store, &name, Direction::Forwards)
        .await
        .unwrap();
    prop_assert_eq!(stored.len(), prefix + batch.len());
    let tail: Vec<Uuid> = stored[prefix..].iter().map(|r| r.event_id).collect();
    let sent: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
    prop_assert_eq!(tail, sent);
    prop_assert_eq!(result.next_expected_revision, stored.len() as u64 - 1);
    check_log_invariants(&read_everything(&store).await)?;
    Ok(())
}

async fn concurrent_writers(
    writers: usize,
    appends_each: usize,
    retry_concurrently: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..appends_each {
                let name = stream((w + i) % STREAMS);
                let batch = events(1 + (w + i) % 3, "concurrent");
                let result = store
                    .append(&name, ExpectedRevision::Any, batch.clone())
                    .await
                    .expect("append with Any succeeds");
                if retry_concurrently {
                    // The retry races with the other writers and must still change nothing.
                    let again = store
                        .append(&name, ExpectedRevision::Any, batch.clone())
                        .await
                        .expect("retry succeeds");
                    assert_eq!(
                        again,
                        AppendResult {
                            written: false,
                            ..result
                        }
                    );
                }
                acked.push((name, batch, result));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(tokio::time::timeout(HANG, task).await.unwrap().unwrap());
    }
    let all = read_everything(&store).await;
    check_log_invariants(&all)?;
    let total: usize = acked.iter().map(|(_, b, _)| b.len()).sum();
    prop_assert_eq!(
        all.len(),
        total,
        "exactly the acknowledged events are stored"
    );
    let by_id: BTreeMap<Uuid, &Record> = all.iter().map(|r| (r.event_id, r)).collect();
    for (name, batch, result) in &acked {
        // Each append is contiguous in its stream, at the positions it was acknowledged with.
        let records: Vec<&Record> = batch.iter().map(|e| by_id[&e.event_id]).collect();
        for (r, sent) in records.iter().zip(batch) {
            prop_assert!(same_content(r, name, sent));
        }
        prop_assert_eq!(records[0].position, result.first_position);
        prop_assert_eq!(records.last().unwrap().position, result.last_position);
        prop_assert_eq!(
            records.last().unwrap().revision,
            result.next_expected_revision
        );
        for pair in records.windows(2) {
            prop_assert_eq!(pair[1].revision, pair[0].revision + 1);
        }
    }
    Ok(())
}

async fn concurrent_identical_retries(copies: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let batch = events(3, "retried");
    let barrier = Arc::new(tokio::sync::Barrier::new(copies));
    let tasks: Vec<_> = (0..copies)
        .map(|_| {
            let (store, batch, barrier) = (store.clone(), batch.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(&stream(0), ExpectedRevision::NoStream, batch)
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(
            tokio::time::timeout(HANG, t)
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    prop_assert_eq!(results.iter().filter(|r| r.written).count(), 1);
    let original = *results.iter().find(|r| r.written).unwrap();
    for r in &results {
        prop_assert_eq!(
            *r,
            AppendResult {
                written: r.written,
                ..original
            }
        );
    }
    prop_assert_eq!(read_everything(&store).await.len(), 3);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// append_many
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Poison {
    WrongRevision,
    Conflict,
    TooLarge,
    Empty,
    DuplicateId,
}

async fn append_many_atomic(
    sizes: Vec<usize>,
    bad: usize,
    poison: Poison,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Some history, so that a conflict has something to conflict with.
    let earlier = events(2, "earlier");
    store
        .append(&stream(0), ExpectedRevision::NoStream, earlier.clone())
        .await
        .unwrap();
    let before = read_everything(&store).await;

    let mut appends: Vec<StreamAppend> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| StreamAppend {
            stream: stream(i % STREAMS),
            expected: ExpectedRevision::Any,
            events: events(*n, "many"),
        })
        .collect();
    // Several parts for one stream must follow each other.
    let good = store.append_many(appends.clone()).await;
    prop_assert!(good.is_ok(), "a valid append_many succeeds: {:?}", good);
    let results = good.unwrap();
    prop_assert_eq!(results.len(), appends.len());
    let after_good = read_everything(&store).await;
    check_log_invariants(&after_good)?;
    prop_assert_eq!(after_good.len(), before.len() + sizes.iter().sum::<usize>());
    // Results are in order, and their positions do not overlap.
    for pair in results.windows(2) {
        prop_assert!(pair[0].last_position < pair[1].first_position);
    }

    // Now the same shape with fresh ids and one bad part: nothing of it may be written.
    for a in &mut appends {
        a.events = events(a.events.len(), "poisoned");
    }
    let bad = bad % appends.len();
    match poison {
        Poison::WrongRevision => appends[bad].expected = ExpectedRevision::Exact(999),
        Poison::Conflict => {
            let mut changed = earlier[0].clone();
            changed.data = r#"{"other":1}"#.into();
            appends[bad].events.push(changed);
        }
        Poison::TooLarge => {
            appends[bad].events[0].data =
                format!(r#"{{"big":"{}"}}"#, "x".repeat(PAYLOAD_BYTES_MAX))
        }
        Poison::Empty => appends[bad].events.clear(),
        Poison::DuplicateId => {
            let other = (bad + 1) % appends.len();
            let dup = appends[other].events[0].clone();
            appends[bad].events.push(dup);
            if other == bad {
                // A single part: duplicate within it.
                let dup = appends[bad].events[0].clone();
                appends[bad].events.push(dup);
            }
        }
    }
    let outcome = store.append_many(appends.clone()).await;
    let ok = matches!(
        (&outcome, poison),
        (
            Err(AppendError::WrongExpectedRevision { .. }),
            Poison::WrongRevision
        ) | (
            Err(AppendError::IdempotencyConflict { .. }),
            Poison::Conflict
        ) | (Err(AppendError::PayloadTooLarge { .. }), Poison::TooLarge)
            | (Err(AppendError::Empty), Poison::Empty)
            | (
                Err(AppendError::DuplicateInAppend { .. }),
                Poison::DuplicateId
            )
    );
    prop_assert!(ok, "{:?} must be refused, got {:?}", poison, outcome);
    prop_assert_eq!(
        read_everything(&store).await,
        after_good,
        "nothing was written"
    );
    let ids: Vec<Uuid> = appends
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.event_id))
        .filter(|id| *id != earlier[0].event_id)
        .collect();
    prop_assert!(store.find_events(&ids).await.unwrap().is_empty());
    // The store still works after the refusal.
    store
        .append(&stream(0), ExpectedRevision::Any, events(1, "after"))
        .await
        .unwrap();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

async fn subscription_catch_up_then_live(
    prefill: usize,
    checkpoint: usize,
    writers: usize,
    appends_each: usize,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    for i in 0..prefill {
        store
            .append(
                &stream(i % STREAMS),
                ExpectedRevision::Any,
                events(1, "prefill"),
            )
            .await
            .unwrap();
    }
    let prefilled = read_everything(&store).await;
    // The checkpoint: a position already delivered to the subscriber, or none (from the start).
    let after = match checkpoint % (prefill + 1) {
        0 => None,
        k => Some(prefilled[k - 1].position),
    };

    // Writers start before the subscription, so catch-up and live traffic overlap.
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..appends_each {
                    store
                        .append(
                            &stream((w + i) % STREAMS),
                            ExpectedRevision::Any,
                            events(1 + i % 2, "live"),
                        )
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut sub = store.subscribe_all(after).await.unwrap();

    // Every event after the checkpoint: the prefilled ones and everything the writers write.
    let prefilled_after = prefilled
        .iter()
        .filter(|r| after.is_none_or(|a| r.position > a))
        .count();
    let written: usize = (0..writers)
        .map(|_| (0..appends_each).map(|i| 1 + i % 2).sum::<usize>())
        .sum();
    let mut delivered: Vec<Record> = Vec::new();
    let mut caught_up = Vec::new();
    while delivered.len() < prefilled_after + written {
        let message = tokio::time::timeout(HANG, sub.next())
            .await
            .map_err(|_| TestCaseError::fail("subscription stalled: an event is missing"))?
            .unwrap();
        match message {
            SubscriptionMessage::Event(r) => delivered.push(r),
            SubscriptionMessage::CaughtUp { position } => {
                caught_up.push((delivered.len(), position));
            }
            SubscriptionMessage::Retrying(_) => {}
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Exactly the log after the checkpoint, in order: no gap, no duplicate.
    let all = read_everything(&store).await;
    check_log_invariants(&all)?;
    let expected: Vec<Record> = all
        .into_iter()
        .filter(|r| after.is_none_or(|a| r.position > a))
        .collect();
    prop_assert_eq!(&delivered, &expected);
    // Caught up at most once, and it says where: the last event delivered before it.
    prop_assert!(caught_up.len() <= 1, "caught up {} times", caught_up.len());
    if let Some((count, position)) = caught_up.first() {
        let last_before = if *count == 0 {
            after
        } else {
            Some(delivered[count - 1].position)
        };
        prop_assert_eq!(*position, last_before);
        // Everything recorded before the subscription started was delivered before CaughtUp.
        prop_assert!(*count >= prefilled_after);
    }

    // And the subscription is live: a new event arrives after the catch-up.
    if caught_up.is_empty() {
        let next = tokio::time::timeout(HANG, sub.next())
            .await
            .unwrap()
            .unwrap();
        let last = delivered.last().map(|r| r.position).or(after);
        prop_assert_eq!(
            next,
            SubscriptionMessage::CaughtUp { position: last },
            "after the last event the subscription is caught up"
        );
    }
    let late = events(1, "late");
    let late_id = late[0].event_id;
    let store2 = store.clone();
    let writer = tokio::spawn(async move {
        store2
            .append(&stream(0), ExpectedRevision::Any, late)
            .await
            .unwrap()
    });
    match tokio::time::timeout(HANG, sub.next())
        .await
        .unwrap()
        .unwrap()
    {
        SubscriptionMessage::Event(r) => prop_assert_eq!(r.event_id, late_id),
        other => {
            return Err(TestCaseError::fail(format!(
                "expected the live event, got {other:?}"
            )));
        }
    }
    writer.await.unwrap();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn appends_follow_the_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        run(sequential_model(ops))?;
    }

    #[test]
    fn a_stream_read_backwards_is_the_reverse_of_forwards(
        len in 1usize..30,
        from in prop::option::of(0u64..35),
        max in 1usize..40,
    ) {
        run(stream_reads(len, from, max))?;
    }

    #[test]
    fn of_concurrent_appenders_with_the_same_expectation_exactly_one_wins(
        appenders in 2usize..12,
        prefix in 0usize..3,
    ) {
        run(one_winner(appenders, prefix))?;
    }

    #[test]
    fn concurrent_writers_lose_nothing_and_duplicate_nothing(
        writers in 1usize..6,
        appends_each in 1usize..8,
        retry in any::<bool>(),
    ) {
        run(concurrent_writers(writers, appends_each, retry))?;
    }

    #[test]
    fn concurrent_identical_retries_write_once(copies in 2usize..10) {
        run(concurrent_identical_retries(copies))?;
    }

    #[test]
    fn append_many_is_all_or_nothing(
        sizes in prop::collection::vec(1usize..4, 1..5),
        bad in any::<usize>(),
        poison in prop_oneof![
            Just(Poison::WrongRevision),
            Just(Poison::Conflict),
            Just(Poison::TooLarge),
            Just(Poison::Empty),
            Just(Poison::DuplicateId),
        ],
    ) {
        run(append_many_atomic(sizes, bad, poison))?;
    }

    #[test]
    fn a_subscription_delivers_catch_up_then_live_without_gap_or_duplicate(
        prefill in 0usize..20,
        checkpoint in any::<usize>(),
        writers in 1usize..4,
        appends_each in 0usize..10,
    ) {
        run(subscription_catch_up_then_live(prefill, checkpoint, writers, appends_each))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Edges
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_store_has_no_head_and_no_streams() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.head_position().await.unwrap(), None);
    assert!(store.read_all(None, 10).await.unwrap().is_empty());
    assert!(matches!(
        store
            .read_stream("customer-nobody", Direction::Forwards, None, 10)
            .await,
        Err(ReadError::StreamNotFound(s)) if s == "customer-nobody"
    ));
    assert!(matches!(
        store
            .append("customer-x", ExpectedRevision::Any, vec![])
            .await,
        Err(AppendError::Empty)
    ));
    assert!(matches!(
        store
            .append("customer-x", ExpectedRevision::StreamExists, events(1, "e"))
            .await,
        Err(AppendError::WrongExpectedRevision {
            actual: CurrentRevision::NoStream,
            ..
        })
    ));
    assert_eq!(store.head_position().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_that_gives_recorded_at_must_give_the_original_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut e = new_event("migrated");
    e.recorded_at = Some(Utc.with_ymd_and_hms(2020, 5, 5, 5, 5, 5).unwrap());
    let first = store
        .append("customer-m", ExpectedRevision::NoStream, vec![e.clone()])
        .await
        .unwrap();
    let stored = store.find_events(&[e.event_id]).await.unwrap();
    assert_eq!(stored[0].recorded_at, e.recorded_at.unwrap());
    let retry = store
        .append("customer-m", ExpectedRevision::NoStream, vec![e.clone()])
        .await
        .unwrap();
    assert_eq!(
        retry,
        AppendResult {
            written: false,
            ..first
        }
    );
    let mut other = e.clone();
    other.recorded_at = Some(Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap());
    assert!(matches!(
        store
            .append("customer-m", ExpectedRevision::Any, vec![other])
            .await,
        Err(AppendError::IdempotencyConflict { .. })
    ));
    // The same event id in another stream is a conflict too.
    assert!(matches!(
        store
            .append("customer-n", ExpectedRevision::Any, vec![e.clone()])
            .await,
        Err(AppendError::IdempotencyConflict { .. })
    ));
    assert_eq!(read_everything(&store).await.len(), 1);
}

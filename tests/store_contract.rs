//! One contract suite for every event-store backend: the same checks of the store's semantics run
//! against the embedded SQLite store, against `KurrentStore` talking to the wire-level KurrentDB
//! double (tests/kurrent_double), and against a real KurrentDB server when `KURRENTDB_URL` is set
//! (for example `KURRENTDB_URL='kurrentdb://localhost:2113?tls=false'`; without it those tests
//! print a note and pass, since CI has no server).
//!
//! Where KurrentDB's semantics differ from the embedded store's, the check says so and asserts
//! each backend's own behaviour:
//! - `append_many` over several streams is atomic on SQLite, stream by stream on KurrentDB;
//! - a retry must carry the original expected revision on KurrentDB (its idempotency check looks
//!   at the position the expected revision names); SQLite recognises a retry by id alone;
//! - KurrentDB's ledger sees only `customer-` streams in `$all`; SQLite has nothing else;
//! - positions are dense on SQLite (1, 2, 3 …), byte offsets on KurrentDB (strictly increasing,
//!   with gaps).
//!
//! Real-server runs use fresh stream names and read `$all` after the head they find, so they can
//! run against a server that already holds data.

mod kurrent_double;

use chrono::{TimeZone, Utc};
use kurrent_double::{Double, Role, SubscriptionShape};
use pipeline_ledger::store::kurrent::KurrentStore;
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{
    AppendError, CurrentRevision, Direction, EventStore, ExpectedRevision, NewRecord, ReadError,
    Record, StorageError, StreamAppend, StreamFilter, Subscription, SubscriptionMessage,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Bound on any single wait, so that a broken backend fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Kurrent,
}

struct Fixture {
    store: Arc<dyn EventStore>,
    kind: Kind,
    double: Option<Double>,
    /// The real server's connection string, for what the store cannot do (deleting a stream).
    real_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("ledger.db")).expect("open SQLite store");
        Fixture {
            store: Arc::new(store),
            kind: Kind::Sqlite,
            double: None,
            real_url: None,
            _dir: Some(dir),
        }
    }

    async fn double() -> Fixture {
        let double = Double::start().await;
        let store =
            KurrentStore::connect(&double.url(), ledger_streams()).expect("connect to the double");
        Fixture {
            store: Arc::new(store),
            kind: Kind::Kurrent,
            double: Some(double),
            real_url: None,
            _dir: None,
        }
    }

    fn real() -> Option<Fixture> {
        let url = std::env::var("KURRENTDB_URL").ok()?;
        let store =
            KurrentStore::connect(&url, ledger_streams()).expect("connect to KURRENTDB_URL");
        Some(Fixture {
            store: Arc::new(store),
            kind: Kind::Kurrent,
            double: None,
            real_url: Some(url),
            _dir: None,
        })
    }

    /// Soft-deletes a stream, as an operator would: on the double, or through the client.
    async fn soft_delete(&self, stream: &str) {
        match &self.double {
            Some(double) => double.soft_delete(stream),
            None => {
                let client = kurrentdb::Client::new(self.kurrent_url().parse().unwrap()).unwrap();
                client
                    .delete_stream(stream, &kurrentdb::DeleteStreamOptions::default())
                    .await
                    .expect("soft delete");
            }
        }
    }

    /// A connection string to the KurrentDB server of this fixture, for another program's client.
    fn kurrent_url(&self) -> String {
        match (&self.double, &self.real_url) {
            (Some(double), _) => double.url(),
            (None, Some(url)) => url.clone(),
            (None, None) => panic!("the embedded store has no server"),
        }
    }

    /// Hard-deletes (tombstones) a stream, as an operator would: on the double, or through the
    /// client on a real server.
    async fn tombstone(&self, stream: &str) {
        match (&self.double, &self.real_url) {
            (Some(double), _) => double.tombstone(stream),
            (None, Some(url)) => {
                let client = kurrentdb::Client::new(url.parse().expect("a connection string"))
                    .expect("a client");
                client
                    .tombstone_stream(stream, &kurrentdb::TombstoneStreamOptions::default())
                    .await
                    .expect("tombstone");
            }
            (None, None) => panic!("the embedded store has no delete"),
        }
    }
}

/// The streams every store of the suite reads: the ledger's customer streams.
fn ledger_streams() -> StreamFilter {
    StreamFilter::prefix("customer-")
}

/// A fresh customer stream.
fn stream() -> String {
    format!("customer-{}", Uuid::new_v4().simple())
}

fn event(n: u32) -> NewRecord {
    NewRecord {
        event_id: Uuid::new_v4(),
        event_type: "NoteAdded".into(),
        schema_version: 1,
        // Keys out of order and spaces: every backend stores the JSON text as given.
        data: format!(r#"{{"n": {n}, "a": {{"z": true, "b": null}}}}"#),
        occurred_at: Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap()
            + chrono::Duration::microseconds(n as i64),
        recorded_at: None,
        recorded_by: "rep-1".into(),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
    }
}

fn events(n: u32) -> Vec<NewRecord> {
    (0..n).map(event).collect()
}

async fn next(sub: &mut Box<dyn Subscription>) -> SubscriptionMessage {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the subscription answers")
        .expect("the subscription does not fail")
}

/// Reads the subscription until `count` events have come, skipping a `CaughtUp`.
async fn take_events(sub: &mut Box<dyn Subscription>, count: usize) -> Vec<Record> {
    let mut got = Vec::new();
    while got.len() < count {
        if let SubscriptionMessage::Event(r) = next(sub).await {
            got.push(r);
        }
    }
    got
}

fn ids(records: &[Record]) -> Vec<Uuid> {
    records.iter().map(|r| r.event_id).collect()
}

fn new_ids(events: &[NewRecord]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

fn assert_strictly_increasing(records: &[Record]) {
    for pair in records.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

// ---- the contract ----

async fn expected_revisions(f: &Fixture) {
    let s = stream();
    let first = f
        .store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .expect("NoStream on a new stream");
    assert_eq!(first.next_expected_revision, 0);
    assert!(first.written);
    let wrong = |r: Result<_, AppendError>, actual: CurrentRevision| match r {
        Err(AppendError::WrongExpectedRevision {
            stream, actual: a, ..
        }) => {
            assert!(stream.starts_with("customer-"));
            assert_eq!(a, actual);
        }
        other => panic!("expected a wrong expected revision, got {other:?}"),
    };
    wrong(
        f.store
            .append(&s, ExpectedRevision::NoStream, events(1))
            .await,
        CurrentRevision::Current(0),
    );
    let second = f
        .store
        .append(&s, ExpectedRevision::Exact(0), events(1))
        .await
        .expect("exact revision");
    assert_eq!(second.next_expected_revision, 1);
    wrong(
        f.store
            .append(&s, ExpectedRevision::Exact(0), events(1))
            .await,
        CurrentRevision::Current(1),
    );
    let missing = stream();
    wrong(
        f.store
            .append(&missing, ExpectedRevision::StreamExists, events(1))
            .await,
        CurrentRevision::NoStream,
    );
    wrong(
        f.store
            .append(&missing, ExpectedRevision::Exact(3), events(1))
            .await,
        CurrentRevision::NoStream,
    );
    let any = f
        .store
        .append(&s, ExpectedRevision::Any, events(2))
        .await
        .expect("any");
    assert_eq!(any.next_expected_revision, 3);
    f.store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .expect("stream exists");
    let all = f
        .store
        .read_stream(&s, Direction::Forwards, None, 100)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
}

async fn multi_event_append_is_atomic(f: &Fixture) {
    let s = stream();
    let batch = events(3);
    let result = f
        .store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(result.next_expected_revision, 2);
    let read = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&batch));
    assert_eq!(read[0].position, result.first_position);
    assert_eq!(read[2].position, result.last_position);
    assert_strictly_increasing(&read);
    // What was written reads back as given; `recorded_at` was set by the store.
    for (r, e) in read.iter().zip(&batch) {
        assert!(r.is_same_event(&s, e), "{r:?} vs {e:?}");
        assert_eq!(r.stream, s);
    }
    // A refused append writes none of its events.
    let refused = f
        .store
        .append(&s, ExpectedRevision::Exact(0), events(4))
        .await;
    assert!(matches!(
        refused,
        Err(AppendError::WrongExpectedRevision { .. })
    ));
    let after = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 3);
}

async fn idempotent_retries_and_conflicts(f: &Fixture) {
    let s = stream();
    let batch = events(2);
    let original = f
        .store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(original.written);
    // The exact retry returns the original result and writes nothing.
    let retry = f
        .store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(
        retry,
        pipeline_ledger::store::AppendResult {
            written: false,
            ..original
        }
    );
    // Still a retry after the stream moved on.
    f.store
        .append(&s, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    let late = f
        .store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(!late.written);
    assert_eq!(late.last_position, original.last_position);
    // Same ids, other content: a conflict on every backend.
    let mut changed = batch.clone();
    changed[1].data = r#"{"n":99}"#.into();
    assert!(matches!(
        f.store
            .append(&s, ExpectedRevision::NoStream, changed)
            .await,
        Err(AppendError::IdempotencyConflict { .. })
    ));
    // A retry under another, stale expected revision: recognised by id on SQLite; on KurrentDB
    // the server checks the events at the position that revision names, and refuses.
    let stale = f
        .store
        .append(&s, ExpectedRevision::Exact(1), batch.clone())
        .await;
    match f.kind {
        Kind::Sqlite => assert!(!stale.unwrap().written),
        Kind::Kurrent => assert!(matches!(
            stale,
            Err(AppendError::WrongExpectedRevision { .. })
        )),
    }
    let read = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 3, "retries wrote nothing");
    // A "retry" whose expected revision is the stream's current one is a new append to
    // KurrentDB: event ids are not unique in a stream there. SQLite still recognises the ids.
    let current = f
        .store
        .append(&s, ExpectedRevision::Exact(2), batch.clone())
        .await
        .unwrap();
    match f.kind {
        Kind::Sqlite => assert!(!current.written),
        Kind::Kurrent => {
            assert!(current.written);
            assert_eq!(current.next_expected_revision, 4);
        }
    }
}

async fn read_forwards_and_backwards(f: &Fixture) {
    let s = stream();
    let batch = events(5);
    f.store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let revisions = |records: Vec<Record>| records.iter().map(|r| r.revision).collect::<Vec<_>>();
    let read = |dir, from, max| {
        let store = f.store.clone();
        let s = s.clone();
        async move { store.read_stream(&s, dir, from, max).await.unwrap() }
    };
    assert_eq!(
        revisions(read(Direction::Forwards, None, 10).await),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        revisions(read(Direction::Forwards, Some(2), 2).await),
        [2, 3]
    );
    assert_eq!(revisions(read(Direction::Backwards, None, 2).await), [4, 3]);
    assert_eq!(
        revisions(read(Direction::Backwards, Some(1), 10).await),
        [1, 0]
    );
    assert!(read(Direction::Forwards, Some(9), 10).await.is_empty());
    assert!(read(Direction::Forwards, None, 0).await.is_empty());
    for dir in [Direction::Forwards, Direction::Backwards] {
        match f.store.read_stream(&stream(), dir, None, 10).await {
            Err(ReadError::StreamNotFound(_)) => {}
            other => panic!("a missing stream must be StreamNotFound, got {other:?}"),
        }
    }
}

async fn read_everything_in_order(f: &Fixture) {
    let head = f.store.head_position().await.unwrap();
    let (a, b) = (stream(), stream());
    let mut expected = Vec::new();
    let mut revision = [None, None];
    for i in 0..6u32 {
        let (s, k) = if i % 3 == 1 { (&b, 1) } else { (&a, 0) };
        let batch = vec![event(i)];
        expected.extend(new_ids(&batch));
        let exp = revision[k].map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let r = f.store.append(s, exp, batch).await.unwrap();
        revision[k] = Some(r.next_expected_revision);
    }
    let all = f.store.read_all(head, 1000).await.unwrap();
    let ours: Vec<Record> = all
        .into_iter()
        .filter(|r| r.stream == a || r.stream == b)
        .collect();
    assert_eq!(ids(&ours), expected, "$all is in append order");
    assert_strictly_increasing(&ours);
    if f.kind == Kind::Sqlite && head.is_none() {
        // Dense on SQLite; KurrentDB's positions are byte offsets with gaps.
        assert_eq!(ours[0].position, 1);
        assert_eq!(ours[5].position, 6);
    }
    // Paging from a checkpoint: strictly after it.
    let page = f.store.read_all(Some(ours[1].position), 2).await.unwrap();
    assert_eq!(ids(&page), ids(&ours[2..4]));
    assert!(f.store.head_position().await.unwrap() >= Some(ours[5].position));
    // Streams other than the ledger's: KurrentDB's `$all` view is filtered to `customer-`.
    let other = format!("audit-{}", Uuid::new_v4().simple());
    f.store
        .append(&other, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let after = f
        .store
        .read_all(Some(ours[5].position), 1000)
        .await
        .unwrap();
    let sees_other = after.iter().any(|r| r.stream == other);
    match f.kind {
        Kind::Sqlite => assert!(sees_other),
        Kind::Kurrent => assert!(!sees_other, "KurrentDB reads only customer- streams"),
    }
}

async fn catch_up_then_live_without_gap_or_duplicate(f: &Fixture) {
    let head = f.store.head_position().await.unwrap();
    let s = stream();
    let before = events(3);
    f.store
        .append(&s, ExpectedRevision::NoStream, before.clone())
        .await
        .unwrap();
    let mut sub = f.store.subscribe_all(head).await.unwrap();
    let mut caught = Vec::new();
    let caught_up_at = loop {
        match next(&mut sub).await {
            SubscriptionMessage::Event(r) => caught.push(r),
            SubscriptionMessage::CaughtUp { position } => break position,
            SubscriptionMessage::Retrying(_) => {}
        }
    };
    let caught: Vec<Record> = caught.into_iter().filter(|r| r.stream == s).collect();
    assert_eq!(ids(&caught), new_ids(&before));
    assert!(caught_up_at >= Some(caught[2].position));
    // Live: appended while the subscriber waits.
    let store = f.store.clone();
    let live = events(4);
    let writer = {
        let live = live.clone();
        let s = s.clone();
        tokio::spawn(async move {
            for (i, e) in live.into_iter().enumerate() {
                store
                    .append(&s, ExpectedRevision::Exact(2 + i as u64), vec![e])
                    .await
                    .unwrap();
            }
        })
    };
    let got: Vec<Record> = take_events(&mut sub, 4)
        .await
        .into_iter()
        .filter(|r| r.stream == s)
        .collect();
    writer.await.unwrap();
    assert_eq!(ids(&got), new_ids(&live));
    let mut all = caught.clone();
    all.extend(got);
    assert_strictly_increasing(&all);
}

async fn resume_from_checkpoint(f: &Fixture) {
    let head = f.store.head_position().await.unwrap();
    let s = stream();
    let batch = events(5);
    f.store
        .append(&s, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let read = f.store.read_all(head, 100).await.unwrap();
    let ours: Vec<Record> = read.into_iter().filter(|r| r.stream == s).collect();
    let checkpoint = ours[1].position;
    let mut sub = f.store.subscribe_all(Some(checkpoint)).await.unwrap();
    let mut got = Vec::new();
    loop {
        match next(&mut sub).await {
            SubscriptionMessage::Event(r) => got.push(r),
            SubscriptionMessage::CaughtUp { position } => {
                assert_eq!(position, Some(ours[4].position).max(position));
                break;
            }
            SubscriptionMessage::Retrying(_) => {}
        }
    }
    let got: Vec<Record> = got.into_iter().filter(|r| r.stream == s).collect();
    assert_eq!(ids(&got), ids(&ours[2..]), "strictly after the checkpoint");
}

async fn append_many_across_streams(f: &Fixture) {
    let (a, b) = (stream(), stream());
    f.store
        .append(&b, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let ok = f
        .store
        .append_many(vec![
            StreamAppend {
                stream: a.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(2),
            },
            StreamAppend {
                stream: b.clone(),
                expected: ExpectedRevision::Exact(0),
                events: events(1),
            },
        ])
        .await
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert!(ok[0].last_position < ok[1].first_position);
    // The second stream's part is refused.
    let c = stream();
    let refused = f
        .store
        .append_many(vec![
            StreamAppend {
                stream: c.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(1),
            },
            StreamAppend {
                stream: b.clone(),
                expected: ExpectedRevision::Exact(0),
                events: events(1),
            },
        ])
        .await;
    assert!(matches!(
        refused,
        Err(AppendError::WrongExpectedRevision { .. })
    ));
    let first_part = f.store.read_stream(&c, Direction::Forwards, None, 10).await;
    match f.kind {
        // All or nothing.
        Kind::Sqlite => assert!(matches!(first_part, Err(ReadError::StreamNotFound(_)))),
        // Stream by stream: the part before the refused one stays written.
        Kind::Kurrent => assert_eq!(first_part.unwrap().len(), 1),
    }
}

/// Runs each named case against every backend: `contract!(a, b)` on SQLite, on the KurrentDB
/// double and on a real server (when `KURRENTDB_URL` is set); `contract!(kurrent only: a, b)`
/// on the double and a real server, for what only a KurrentDB cluster does.
macro_rules! contract {
    (@kurrent $double:ident, $real:ident: $($name:ident),*) => {
        mod $double {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Fixture::double().await).await;
                }
            )*
        }
        mod $real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match super::Fixture::real() {
                        Some(f) => super::$name(&f).await,
                        None => eprintln!(
                            "note: KURRENTDB_URL is not set; {} was not run against a real \
                             KurrentDB server",
                            stringify!($name)
                        ),
                    }
                }
            )*
        }
    };
    (kurrent only: $($name:ident),* $(,)?) => {
        contract!(@kurrent kurrent_only_via_double, kurrent_only_real_server: $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Fixture::sqlite()).await;
                }
            )*
        }
        contract!(@kurrent kurrent_via_double, kurrent_real_server: $($name),*);
    };
}

contract!(
    expected_revisions,
    multi_event_append_is_atomic,
    idempotent_retries_and_conflicts,
    read_forwards_and_backwards,
    read_everything_in_order,
    catch_up_then_live_without_gap_or_duplicate,
    resume_from_checkpoint,
    append_many_across_streams,
    the_hash_chain_holds_after_appends_and_retries,
    reads_from_a_position_that_is_no_records,
);

contract!(kurrent only:
    tombstone_during_a_running_subscription,
    a_foreign_event_in_a_customer_stream,
    soft_delete_then_record,
    soft_delete_during_a_running_subscription,
);

/// Issue 13: whatever the backend, the events it appends carry a chain that `verify` finds
/// whole: single appends at each kind of expected revision, a retry, an append over two streams.
/// (SQLite keeps one chain over the log, KurrentDB one per stream.)
async fn the_hash_chain_holds_after_appends_and_retries(f: &Fixture) {
    use pipeline_ledger::audit::verify::{VerifyOptions, verify};
    let (s, t) = (stream(), stream());
    let first = events(2);
    f.store
        .append(&s, ExpectedRevision::NoStream, first.clone())
        .await
        .unwrap();
    f.store
        .append(&s, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    f.store
        .append(&s, ExpectedRevision::Any, events(1))
        .await
        .unwrap();
    f.store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap();
    let retry = f
        .store
        .append(&s, ExpectedRevision::NoStream, first)
        .await
        .unwrap();
    assert!(!retry.written);
    f.store
        .append_many(vec![
            StreamAppend {
                stream: s.clone(),
                expected: ExpectedRevision::Exact(4),
                events: events(2),
            },
            StreamAppend {
                stream: t.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(3),
            },
        ])
        .await
        .unwrap();
    let report = verify(&*f.store, VerifyOptions::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.per_stream, f.kind == Kind::Kurrent);
    assert!(report.events >= 10);
    let head = report.head_hash.expect("a head hash");
    // Another append moves the head hash: it covers the newest event.
    f.store
        .append(&t, ExpectedRevision::Exact(2), events(1))
        .await
        .unwrap();
    let again = verify(&*f.store, VerifyOptions::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(again.first_break, None);
    assert_ne!(again.head_hash, Some(head));
}

// ---- KurrentDB only: what a real cluster does that the embedded store cannot ----

/// An operator hard-deletes one customer's stream while a subscription runs. Its tombstone
/// (`$streamDeleted`, in `$all` and through the `customer-` filter) is skipped and noted: the
/// subscription, `read_all` (paged across it) and the head go on with the other customers, and
/// the deleted stream refuses reads and appends with an error that says so. Its earlier events,
/// which stay in `$all` until the server scavenges them, are left out of later reads, as a read
/// of the stream leaves them out.
async fn tombstone_during_a_running_subscription(f: &Fixture) {
    let (a, b, c) = (stream(), stream(), stream());
    f.store
        .append(&a, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    f.store
        .append(&b, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let before = f.store.read_all(None, 1000).await.unwrap();
    let mut sub = f.store.subscribe_all(None).await.unwrap();
    let first = take_events(&mut sub, before.len()).await;
    assert_eq!(ids(&first), ids(&before));

    f.tombstone(&a).await;
    let later = events(1);
    f.store
        .append(&c, ExpectedRevision::NoStream, later.clone())
        .await
        .unwrap();
    // The subscription skips the tombstone and delivers what follows it.
    let next_events = take_events(&mut sub, 1).await;
    assert_eq!(ids(&next_events), new_ids(&later));
    // Reading the log: the other customers' events, none of the deleted stream's, no
    // tombstone, and a page that starts just before the tombstone reaches past it.
    let all = f.store.read_all(None, 100_000).await.unwrap();
    let expected: Vec<Uuid> = before
        .iter()
        .filter(|r| r.stream != a)
        .map(|r| r.event_id)
        .chain(new_ids(&later))
        .collect();
    let seen: Vec<Uuid> = all
        .iter()
        .filter(|r| r.stream == a || r.stream == b || r.stream == c)
        .map(|r| r.event_id)
        .collect();
    assert_eq!(seen, expected);
    assert!(all.iter().all(|r| r.event_type != "$streamDeleted"));
    let last_before = before.last().map(|r| r.position);
    let page = f.store.read_all(last_before, 1).await.unwrap();
    assert_eq!(ids(&page), new_ids(&later));
    assert_eq!(
        f.store.head_position().await.unwrap(),
        Some(next_events[0].position)
    );
    // A tombstone at the very end is not the head either.
    f.tombstone(&c).await;
    assert_eq!(
        f.store.head_position().await.unwrap(),
        Some(next_events[0].position)
    );
    let notices = f.store.notices().join("\n");
    assert!(notices.contains(&a), "{notices}");
    assert!(
        notices.contains("2 of its earlier events were left out"),
        "{notices}"
    );
    // The deleted stream refuses, and says why and that nothing was written.
    let err = f
        .store
        .append(&a, ExpectedRevision::Any, events(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hard-deleted") && err.contains("nothing was written"),
        "{err}"
    );
    let err = f
        .store
        .read_stream(&a, Direction::Forwards, None, 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("hard-deleted") && err.contains(&a), "{err}");
}

/// Another program writes an event of its own (its own metadata) into a customer stream.
/// Readers of `$all` skip it, say so, and go on; reading that customer's stream says what is
/// wrong and what to do.
async fn a_foreign_event_in_a_customer_stream(f: &Fixture) {
    let (s, t) = (stream(), stream());
    let ours = events(1);
    f.store
        .append(&s, ExpectedRevision::NoStream, ours.clone())
        .await
        .unwrap();
    let client = kurrentdb::Client::new(f.kurrent_url().parse().expect("a connection string"))
        .expect("a client");
    let foreign = kurrentdb::EventData::json("CrmNote", &serde_json::json!({"note": "hello"}))
        .unwrap()
        .metadata_as_json(&serde_json::json!({"source": "crm"}))
        .unwrap();
    client
        .append_to_stream(s.as_str(), &Default::default(), foreign)
        .await
        .expect("another program's append");
    let later = events(1);
    f.store
        .append(&t, ExpectedRevision::NoStream, later.clone())
        .await
        .unwrap();
    let mine = |records: Vec<Record>| -> Vec<Record> {
        records
            .into_iter()
            .filter(|r| r.stream == s || r.stream == t)
            .collect()
    };
    let all = mine(f.store.read_all(None, 100_000).await.unwrap());
    let expected: Vec<Uuid> = new_ids(&ours).into_iter().chain(new_ids(&later)).collect();
    assert_eq!(ids(&all), expected);
    let mut sub = f
        .store
        .subscribe_all(all[0].position.checked_sub(1))
        .await
        .unwrap();
    let mut followed = Vec::new();
    while followed.len() < 2 {
        if let SubscriptionMessage::Event(r) = next(&mut sub).await
            && (r.stream == s || r.stream == t)
        {
            followed.push(r);
        }
    }
    assert_eq!(ids(&followed), expected);
    let notices = f.store.notices().join("\n");
    assert!(
        notices.contains(&s) && notices.contains("not the ledger's"),
        "{notices}"
    );
    let err = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not this ledger's") && err.contains("cannot read this customer's history"),
        "{err}"
    );
}

/// An operator soft-deletes a customer stream, then the customer is recorded again. The stream
/// reads as new to the ledger (its rules start the customer afresh) and the next event lands at
/// the old last revision + 1. `$all` holds both histories until the server scavenges the old
/// one; readers of `$all` see the new one only, as a read of the stream does, so reports are
/// the same before and after a scavenge (README, "KurrentDB").
async fn soft_delete_then_record(f: &Fixture) {
    let s = stream();
    let old = events(2);
    f.store
        .append(&s, ExpectedRevision::NoStream, old.clone())
        .await
        .unwrap();
    f.soft_delete(&s).await;
    assert!(matches!(
        f.store.read_stream(&s, Direction::Forwards, None, 10).await,
        Err(ReadError::StreamNotFound(_))
    ));
    let again = events(1);
    let result = f
        .store
        .append(&s, ExpectedRevision::NoStream, again.clone())
        .await
        .expect("a soft-deleted stream takes a new first event");
    assert_eq!(result.next_expected_revision, 2);
    let read = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&again));
    let all: Vec<Record> = f
        .store
        .read_all(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.stream == s)
        .collect();
    assert_eq!(ids(&all), new_ids(&again), "the new history only");
    let notices = f.store.notices().join("\n");
    assert!(
        notices.contains(&s) && notices.contains("2 of its earlier events were left out"),
        "{notices}"
    );
    // The stream's chain starts again with its new history, and says so.
    let report = pipeline_ledger::audit::verify::verify(&*f.store, Default::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(report.first_break, None);
    assert!(
        report.restarted_streams.iter().any(|n| n.contains(&s)),
        "{:?}",
        report.restarted_streams
    );
}

/// An operator soft-deletes a customer stream while a subscription follows the log. The
/// subscription goes on: it tells that the read models may hold the deleted events (they were
/// delivered before the delete) and delivers the customer's new history when it is recorded
/// again; a later read of the log and a new subscription leave the old history out.
async fn soft_delete_during_a_running_subscription(f: &Fixture) {
    let (s, t) = (stream(), stream());
    let head = f.store.head_position().await.unwrap();
    let old = events(2);
    f.store
        .append(&s, ExpectedRevision::NoStream, old.clone())
        .await
        .unwrap();
    let mut sub = f.store.subscribe_all(head).await.unwrap();
    assert_eq!(ids(&take_events(&mut sub, 2).await), new_ids(&old));
    f.soft_delete(&s).await;
    let other = events(1);
    f.store
        .append(&t, ExpectedRevision::NoStream, other.clone())
        .await
        .unwrap();
    assert_eq!(ids(&take_events(&mut sub, 1).await), new_ids(&other));
    let again = events(1);
    f.store
        .append(&s, ExpectedRevision::NoStream, again.clone())
        .await
        .unwrap();
    assert_eq!(ids(&take_events(&mut sub, 1).await), new_ids(&again));
    let notices = f.store.notices().join("\n");
    assert!(
        notices.contains(&s) && notices.contains("keep them until `rebuild`"),
        "{notices}"
    );
    let expected: Vec<Uuid> = new_ids(&other).into_iter().chain(new_ids(&again)).collect();
    let mine = |records: Vec<Record>| -> Vec<Uuid> {
        records
            .into_iter()
            .filter(|r| r.stream == s || r.stream == t)
            .map(|r| r.event_id)
            .collect()
    };
    assert_eq!(
        mine(f.store.read_all(head, 100_000).await.unwrap()),
        expected
    );
    let mut fresh = f.store.subscribe_all(head).await.unwrap();
    assert_eq!(mine(take_events(&mut fresh, 2).await), expected);
}

/// Reads of the log from a position where no event is (KurrentDB's positions are byte
/// offsets: most numbers fall inside a record, and the server refuses to read from there):
/// `read_all` and subscriptions give what follows the position, and `record_at` finds nothing
/// there, whatever the backend.
async fn reads_from_a_position_that_is_no_records(f: &Fixture) {
    let s = stream();
    let head = f.store.head_position().await.unwrap();
    f.store
        .append(&s, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    let all: Vec<Record> = f
        .store
        .read_all(head, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.stream == s)
        .collect();
    assert_eq!(all.len(), 3);
    let (p2, p3) = (all[1].position, all[2].position);
    for position in [p2 - 1, p2, p2 + 1, p3 - 1] {
        let after: Vec<Uuid> = all
            .iter()
            .filter(|r| r.position > position)
            .map(|r| r.event_id)
            .collect();
        let read: Vec<Uuid> = f
            .store
            .read_all(Some(position), 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.stream == s)
            .map(|r| r.event_id)
            .collect();
        assert_eq!(read, after, "read_all after {position}");
        let mut sub = f.store.subscribe_all(Some(position)).await.unwrap();
        let followed: Vec<Uuid> = take_events(&mut sub, after.len())
            .await
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(followed, after, "subscription after {position}");
        let at = f.store.record_at(position).await.unwrap();
        assert_eq!(
            at.map(|r| r.event_id),
            all.iter()
                .find(|r| r.position == position)
                .map(|r| r.event_id),
            "record at {position}"
        );
    }
    if f.kind == Kind::Kurrent {
        // Positions inside a record: the server refused them, and the reads said so.
        assert!(
            f.store
                .notices()
                .iter()
                .any(|n| n.contains(&format!("position {} is no record's", p2 + 1))),
            "{:?}",
            f.store.notices()
        );
    }
}

/// A stream written before the chain existed (events without hashes in their metadata): the
/// next append computes the stream's chain from its start and goes on from it, and `verify`
/// counts the events it found without hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_via_double_a_stream_from_before_the_chain_gets_one() {
    let f = Fixture::double().await;
    let s = stream();
    let client = kurrentdb::Client::new(f.kurrent_url().parse().expect("a connection string"))
        .expect("a client");
    let old: Vec<kurrentdb::EventData> = (0..3)
        .map(|n| {
            kurrentdb::EventData::json("NoteAdded", &serde_json::json!({ "n": n }))
                .unwrap()
                .metadata_as_json(&serde_json::json!({
                    "schema_version": 1,
                    "occurred_at": "2025-03-01T09:00:00.000000Z",
                    "recorded_at": "2025-03-01T09:00:01.000000Z",
                    "recorded_by": "rep-1",
                    "append_id": Uuid::new_v4(),
                }))
                .unwrap()
                .id(Uuid::new_v4())
        })
        .collect();
    client
        .append_to_stream(s.as_str(), &Default::default(), old)
        .await
        .expect("an append by an older version");
    f.store
        .append(&s, ExpectedRevision::Exact(2), events(2))
        .await
        .unwrap();
    let report = pipeline_ledger::audit::verify::verify(&*f.store, Default::default(), Vec::new())
        .await
        .unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.unhashed_events, 3);
    assert!(report.events >= 5);
}

/// A KurrentDB store on a fresh double, kept with it.
async fn double_store() -> (Double, KurrentStore) {
    let double = Double::start().await;
    let store = KurrentStore::connect(&double.url(), ledger_streams()).expect("connect");
    (double, store)
}

/// Issue 16: a write that reaches a follower during a leader election is refused once with
/// "not leader"; the store sends it again, to the leader, and it is written once. A cluster that
/// keeps refusing fails the append with an error that says nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_not_leader_is_sent_again_to_the_leader() {
    let (double, store) = double_store().await;
    let s = stream();
    double.refuse_as_follower(1);
    let appended = events(2);
    let result = store
        .append(&s, ExpectedRevision::NoStream, appended.clone())
        .await
        .expect("written on the second attempt");
    assert!(result.written);
    assert_eq!(double.appends_served(), 2, "refused once, then written");
    let read = store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&appended));

    let other = stream();
    double.refuse_as_follower(100);
    let err = store
        .append(&other, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not the leader") && err.contains("nothing was written"),
        "{err}"
    );
    double.refuse_as_follower(0);
    assert!(matches!(
        store
            .read_stream(&other, Direction::Forwards, None, 1)
            .await,
        Err(ReadError::StreamNotFound(_))
    ));
}

/// Issue 16: a commit timeout (`Aborted`), or a reply lost with the connection, after the events
/// were written is an unknown outcome:
/// the error says so and how to retry; the retry with the same ids recognises what was written
/// and writes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_commit_timeout_is_an_unknown_outcome_that_a_retry_resolves() {
    let (double, store) = double_store().await;
    let s = stream();
    let appended = events(3);
    double.time_out_commits(1);
    let err = store
        .append(&s, ExpectedRevision::NoStream, appended.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Storage(StorageError::Unavailable(_))),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("may or may not have been written") && message.contains("same event ids"),
        "{message}"
    );
    let retry = store
        .append(&s, ExpectedRevision::NoStream, appended.clone())
        .await
        .expect("the retry is recognised");
    assert!(!retry.written, "nothing is written twice");
    let read = store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&appended));

    // The same when the reply is lost with the connection after the commit.
    let t = stream();
    double.drop_replies(1);
    let err = store
        .append(&t, ExpectedRevision::NoStream, appended.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("may or may not have been written"), "{err}");
    let retry = store
        .append(&t, ExpectedRevision::NoStream, appended.clone())
        .await
        .expect("the retry is recognised");
    assert!(!retry.written);
    let read = store
        .read_stream(&t, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&appended));
}

/// Issue 16: 2,000 events of one customer in one append, under the server's 1 MiB limit: sent
/// as consecutive appends on the stream's revision chain, read back whole and in order; a retry
/// of the whole writes nothing. A store that allows more than the server refuses clearly, and
/// nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_appends_over_the_size_limit_are_split() {
    let (double, store) = double_store().await;
    let limit = 1024 * 1024;
    double.limit_append_size(Some(limit as u64));
    let padding = "x".repeat(1000);
    let big: Vec<NewRecord> = (0..2000)
        .map(|n| NewRecord {
            data: format!(r#"{{"n": {n}, "padding": "{padding}"}}"#),
            ..event(n)
        })
        .collect();
    let s = stream();
    let before = double.appends_served();
    let result = store
        .append(&s, ExpectedRevision::NoStream, big.clone())
        .await
        .expect("split under the limit");
    assert!(result.written);
    assert_eq!(result.next_expected_revision, 1999);
    let parts = double.appends_served() - before;
    assert!(
        parts >= 3,
        "about 2.4 MB in appends of at most 1 MiB: {parts}"
    );
    let read = store
        .read_stream(&s, Direction::Forwards, None, 5000)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&big));
    assert!(read.iter().enumerate().all(|(i, r)| r.revision == i as u64));
    let retry = store
        .append(&s, ExpectedRevision::NoStream, big.clone())
        .await
        .expect("the retry is recognised, part by part");
    assert!(!retry.written);
    assert_eq!(
        store
            .read_stream(&s, Direction::Forwards, None, 5000)
            .await
            .unwrap()
            .len(),
        2000
    );

    let too_trusting = KurrentStore::connect(&double.url(), ledger_streams())
        .unwrap()
        .with_append_bytes_max(8 * limit);
    let other = stream();
    let err = too_trusting
        .append(&other, ExpectedRevision::NoStream, big.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("too large")
            && err.contains("PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX")
            && err.contains("nothing of it was written"),
        "{err}"
    );
    assert!(matches!(
        store
            .read_stream(&other, Direction::Forwards, None, 1)
            .await,
        Err(ReadError::StreamNotFound(_))
    ));
}

/// Issue 16: the `$all` subscription messages of KurrentDB 21.10 (no caught-up message),
/// 23.10–25.0 (an empty one), 25.1+ (a filled one), and a server that sends a checkpoint before
/// the first event and caught-up twice: every shape gives the caller the catch-up events, one
/// `CaughtUp`, then the live events, with no gap and no duplicate; an empty log too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_subscriptions_of_every_server_version_catch_up_once() {
    for shape in [
        SubscriptionShape::V25,
        SubscriptionShape::V23,
        SubscriptionShape::V21,
        SubscriptionShape::Restless,
    ] {
        let (double, store) = double_store().await;
        double.subscriptions_as(shape);
        // An empty log: caught up at once.
        let mut sub = store.subscribe_all(None).await.unwrap();
        assert!(
            matches!(
                next(&mut sub).await,
                SubscriptionMessage::CaughtUp { position: None }
            ),
            "{shape:?}"
        );
        let s = stream();
        let caught_up_on = events(3);
        store
            .append(&s, ExpectedRevision::NoStream, caught_up_on.clone())
            .await
            .unwrap();
        let mut sub = store.subscribe_all(None).await.unwrap();
        let mut before = Vec::new();
        loop {
            match next(&mut sub).await {
                SubscriptionMessage::Event(r) => before.push(r),
                SubscriptionMessage::CaughtUp { position } => {
                    assert_eq!(position, before.last().map(|r| r.position), "{shape:?}");
                    break;
                }
                other => panic!("{shape:?}: {other:?}"),
            }
        }
        assert_eq!(ids(&before), new_ids(&caught_up_on), "{shape:?}");
        let live = events(2);
        store
            .append(&s, ExpectedRevision::Exact(2), live.clone())
            .await
            .unwrap();
        let mut after = Vec::new();
        while after.len() < live.len() {
            match next(&mut sub).await {
                SubscriptionMessage::Event(r) => after.push(r),
                other => panic!("{shape:?}: after catching up, {other:?}"),
            }
        }
        assert_eq!(ids(&after), new_ids(&live), "{shape:?}");
    }
}

/// Issue 16: a cluster connection string (several hosts) goes through gossip: the client asks a
/// seed, connects to the leader it names, and the ledger writes, reads and follows there. When
/// the leader changes, the old one refuses the next write as a follower naming the new leader,
/// and the store sends the write again to the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_cluster_connection_strings_find_the_leader_through_gossip() {
    let (a, b) = (Double::start().await, Double::start().await);
    for node in [&a, &b] {
        node.gossip(&[(a.addr(), Role::Leader), (b.addr(), Role::Follower)]);
    }
    // A follower refuses writes from a client that requires the leader.
    b.refuse_as_follower(u32::MAX);
    let url = Double::cluster_url(&[b.addr(), a.addr()]);
    let store = KurrentStore::connect(&url, ledger_streams()).expect("a cluster string");
    let s = stream();
    let appended = events(3);
    store
        .append(&s, ExpectedRevision::NoStream, appended.clone())
        .await
        .expect("written on the leader");
    let on_leader = KurrentStore::connect(&a.url(), ledger_streams()).unwrap();
    let read = on_leader
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&appended));
    assert_eq!(b.appends_served(), 0, "the follower was never written to");
    assert_eq!(
        ids(&store.read_all(None, 100).await.unwrap()),
        new_ids(&appended)
    );
    let mut sub = store.subscribe_all(None).await.unwrap();
    assert_eq!(ids(&take_events(&mut sub, 3).await), new_ids(&appended));

    // B is elected: A refuses the next write, naming B, and the store writes it there.
    b.refuse_as_follower(0);
    for node in [&a, &b] {
        node.gossip(&[(b.addr(), Role::Leader), (a.addr(), Role::Follower)]);
    }
    a.refuse_as_follower(1);
    let t = stream();
    let after_election = events(1);
    store
        .append(&t, ExpectedRevision::NoStream, after_election.clone())
        .await
        .expect("sent again to the new leader");
    let on_new_leader = KurrentStore::connect(&b.url(), ledger_streams()).unwrap();
    let read = on_new_leader
        .read_stream(&t, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(&read), new_ids(&after_election));
    assert!(matches!(
        on_leader
            .read_stream(&t, Direction::Forwards, None, 1)
            .await,
        Err(ReadError::StreamNotFound(_))
    ));
}

/// Issue 16: a read's deadline covers its whole stream. A slow scan (the server skipping other
/// applications' events) that passes the deadline before the first event is tried again with a
/// longer one; one that passes it mid-page hands over what it read, and the next page goes on
/// from there. Every event is read, in order; the head is found. A server that never answers
/// fails the read, saying it did not answer in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_slow_reads_outlast_their_deadline_without_failing() {
    let (double, store) = double_store().await;
    let store = store.with_read_deadline(Duration::from_millis(200));
    let s = stream();
    let appended = events(20);
    store
        .append(&s, ExpectedRevision::NoStream, appended.clone())
        .await
        .unwrap();
    double.slow_reads(Duration::from_millis(300), Duration::from_millis(30));
    let mut read = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.read_all(after, 100).await.expect("slow, not failed");
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        pages += 1;
        read.extend(page);
    }
    assert_eq!(ids(&read), new_ids(&appended));
    assert!(pages > 1, "the deadline cut the read into pages: {pages}");
    assert_eq!(
        store.head_position().await.unwrap(),
        Some(read.last().unwrap().position)
    );

    double.slow_reads(Duration::from_secs(60), Duration::ZERO);
    let store = store.with_read_deadline(Duration::from_millis(20));
    let err = store.read_all(None, 10).await.unwrap_err().to_string();
    assert!(err.contains("did not answer in time"), "{err}");
}

// ---- faults (the double only: a real server cannot be unplugged from here) ----

/// Writes to an unreachable server fail with a clear error, never silently; once the server is
/// back the same store writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_writes_clearly() {
    let mut f = Fixture::double().await;
    let s = stream();
    f.store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    f.double.as_mut().unwrap().pull_plug().await;
    let lost = events(1);
    match f
        .store
        .append(&s, ExpectedRevision::Exact(0), lost.clone())
        .await
    {
        Err(AppendError::Storage(StorageError::Unavailable(msg))) => {
            assert!(msg.contains("KurrentDB"), "{msg}");
        }
        other => panic!("expected an unavailable error, got {other:?}"),
    }
    f.double.as_mut().unwrap().restore().await;
    // The retry of the failed append lands once.
    let mut landed = None;
    for _ in 0..50 {
        match f
            .store
            .append(&s, ExpectedRevision::Exact(0), lost.clone())
            .await
        {
            Ok(r) => {
                landed = Some(r);
                break;
            }
            Err(AppendError::Storage(StorageError::Unavailable(_))) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        landed.expect("the server is back").next_expected_revision,
        1
    );
    let read = f
        .store
        .read_stream(&s, Direction::Forwards, None, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
}

/// On a shared server, the store reads only the streams its filter names: another application's
/// stream is neither read nor counted in the head position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kurrent_reads_only_the_streams_of_its_filter() {
    let f = Fixture::double().await;
    let s = stream();
    f.store
        .append(&s, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    let other = format!("other-{}", Uuid::new_v4().simple());
    f.store
        .append(&other, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let all = f.store.read_all(None, 100).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|r| r.stream == s));
    assert_eq!(
        f.store.head_position().await.unwrap(),
        Some(all[1].position)
    );
}

/// A store opened while the server is down works once the server is up (the client's own
/// connection gives up for good after a failed first discovery; the store replaces it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_opened_while_server_down_recovers() {
    let mut double = Double::start().await;
    double.pull_plug().await;
    let store = KurrentStore::connect(&double.url(), ledger_streams()).unwrap();
    let s = stream();
    assert!(matches!(
        store
            .append(&s, ExpectedRevision::NoStream, events(1))
            .await,
        Err(AppendError::Storage(StorageError::Unavailable(_)))
    ));
    double.restore().await;
    let mut ok = false;
    for _ in 0..50 {
        if store
            .append(&s, ExpectedRevision::NoStream, events(1))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the store reconnects");
}

/// Pulling the plug mid-subscription and restoring it loses and duplicates nothing, including
/// events written while the subscriber was disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_plug_mid_subscription_loses_and_duplicates_nothing() {
    let mut f = Fixture::double().await;
    let s = stream();
    let mut written = Vec::new();
    let mut revision = None;
    let append = |store: Arc<dyn EventStore>, s: String, rev: Option<u64>, n: u32| async move {
        let batch = events(n);
        let exp = rev.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let r = store.append(&s, exp, batch.clone()).await.unwrap();
        (new_ids(&batch), Some(r.next_expected_revision))
    };
    let (ids1, r) = append(f.store.clone(), s.clone(), revision, 5).await;
    written.extend(ids1);
    revision = r;
    let mut sub = f.store.subscribe_all(None).await.unwrap();
    let mut got = take_events(&mut sub, 5).await;
    // Live events, then the plug.
    let (ids2, r) = append(f.store.clone(), s.clone(), revision, 3).await;
    written.extend(ids2);
    revision = r;
    got.extend(take_events(&mut sub, 2).await);
    let double = f.double.as_mut().unwrap();
    double.pull_plug().await;
    double.restore().await;
    // Written while the subscription is reconnecting.
    let mut pending = None;
    for _ in 0..50 {
        let batch = events(4);
        let exp = ExpectedRevision::Exact(revision.unwrap());
        match f.store.append(&s, exp, batch.clone()).await {
            Ok(r) => {
                pending = Some((new_ids(&batch), r.next_expected_revision));
                break;
            }
            Err(AppendError::Storage(StorageError::Unavailable(_))) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (ids3, r) = pending.expect("the server is back");
    written.extend(ids3);
    revision = Some(r);
    got.extend(take_events(&mut sub, 5).await);
    // And live again after the reconnection.
    let (ids4, _) = append(f.store.clone(), s.clone(), revision, 2).await;
    written.extend(ids4);
    got.extend(take_events(&mut sub, 2).await);
    assert_eq!(ids(&got), written, "every event once, in order");
    assert_strictly_increasing(&got);
}

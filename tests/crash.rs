//! Crash safety of the embedded store: a child process appends in a loop and is killed with
//! SIGKILL at a random moment. After reopening the file:
//!
//! - every append the child reported as acknowledged is present;
//! - no part of an append is visible without the rest (each append has k events, possibly split
//!   over two streams with `append_many`: all k or none);
//! - revisions are still gapless and positions strictly increasing;
//! - SQLite's `PRAGMA integrity_check` says `ok`, and the store accepts new appends.
//!
//! The child is this test binary itself, re-executed with an environment variable that makes the
//! hidden `crash_child` test run the append loop (it returns at once otherwise).

use chrono::Utc;
use pipeline_ledger::store::sqlite::SqliteStore;
use pipeline_ledger::store::{EventStore, ExpectedRevision, NewRecord, Record, StreamAppend};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use uuid::Uuid;

/// Set to the store path in the child.
const CHILD_ENV: &str = "PIPELINE_LEDGER_CRASH_CHILD_DB";
const ROUNDS: usize = 5;
/// Concurrent appenders in the child, so that group commits are in flight when it dies.
const CHILD_APPENDERS: u64 = 4;
/// Longest random wait before the kill, after the child's first acknowledgement.
const KILL_DELAY_MAX_MS: u64 = 400;
/// How long the parent waits for the child's first acknowledgement before calling it a hang.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// The child: appends forever and prints one `ACK` line per acknowledged append.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(&path).expect("child opens the store");
        let tasks: Vec<_> = (0..CHILD_APPENDERS)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for seq in 0u64.. {
                        let append = task * 1_000_000 + seq;
                        let k = 1 + (seq % 4) as usize;
                        let events: Vec<NewRecord> = (0..k).map(|j| event(append, k, j)).collect();
                        let ids: Vec<String> =
                            events.iter().map(|e| e.event_id.to_string()).collect();
                        let parts = if k > 1 && seq % 3 == 0 {
                            // Split over two streams in one atomic append_many.
                            let (a, b) = events.split_at(k / 2);
                            vec![part(task, a.to_vec()), part(task + 100, b.to_vec())]
                        } else {
                            vec![part(task, events)]
                        };
                        store.append_many(parts).await.expect("child append");
                        // Acknowledged: say so, in one write, only after append returned.
                        let line = format!("ACK {append} {k} {} END\n", ids.join(","));
                        let mut out = std::io::stdout().lock();
                        out.write_all(line.as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn part(stream: u64, events: Vec<NewRecord>) -> StreamAppend {
    StreamAppend {
        stream: format!("customer-crash{stream}"),
        expected: ExpectedRevision::Any,
        events,
    }
}

fn event(append: u64, k: usize, j: usize) -> NewRecord {
    NewRecord {
        event_id: Uuid::now_v7(),
        event_type: "CrashTested".into(),
        schema_version: 1,
        data: format!(
            r#"{{"run":{},"append":{append},"k":{k},"j":{j},"pad":"{}"}}"#,
            std::process::id(),
            "x".repeat(200)
        ),
        occurred_at: Utc::now(),
        recorded_at: None,
        recorded_by: "crash-child".into(),
        correlation_id: None,
        causation_id: None,
    }
}

/// A random number without a dependency: std's randomly keyed hasher.
fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(std::process::id()) % n
}

struct Ack {
    append: u64,
    k: usize,
    ids: Vec<Uuid>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.split(' ');
    if words.next()? != "ACK" {
        return None;
    }
    let append = words.next()?.parse().ok()?;
    let k = words.next()?.parse().ok()?;
    let ids = words
        .next()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<Uuid>>>()?;
    // A line cut short by the kill has no END: it was never fully reported.
    (words.next()? == "END" && ids.len() == k).then_some(Ack { append, k, ids })
}

/// Runs the child until a random moment after its first acknowledgement, kills it with SIGKILL,
/// and returns every acknowledgement it printed.
fn run_child_and_kill(db: &Path, delay_ms: u64) -> Vec<Ack> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line) {
                if acks.is_empty() {
                    let _ = tx.send(());
                }
                acks.push(ack);
            }
        }
        acks
    });
    if rx.recv_timeout(FIRST_ACK_TIMEOUT).is_err() {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "the child acknowledged nothing; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    if let Ok(Some(status)) = child.try_wait() {
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        panic!("the child stopped by itself ({status}) before the kill; stderr:\n{stderr}");
    }
    // `Child::kill` sends SIGKILL on Unix: no destructor, no flush, no clean close.
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child died of SIGKILL: {status}"
        );
    }
    reader.join().unwrap()
}

fn integrity_check(db: &Path) {
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
        vec!["ok".to_string()],
        "integrity_check after the crash"
    );
}

async fn read_everything(store: &SqliteStore) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map(|r: &Record| r.position);
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Checks the file after a crash against every acknowledgement so far; returns the number of
/// events stored (including the one appended after reopening).
async fn check_after_crash(db: &Path, acks: &[Ack], round: usize, delay_ms: u64) -> usize {
    let context = format!("round {round}, killed {delay_ms} ms after the first ack");
    integrity_check(db);
    let store = SqliteStore::open(db).expect("the store reopens after a crash");
    let all = read_everything(&store).await;

    // Positions strictly increase; each stream's revisions are gapless from 0; no duplicates.
    let mut next_revision: HashMap<&str, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for (i, r) in all.iter().enumerate() {
        if i > 0 {
            assert!(all[i - 1].position < r.position, "{context}: positions");
        }
        let next = next_revision.entry(&r.stream).or_insert(0);
        assert_eq!(r.revision, *next, "{context}: gap in {}", r.stream);
        *next += 1;
        assert!(
            seen.insert(r.event_id),
            "{context}: duplicate {}",
            r.event_id
        );
    }

    // Every append is whole: all k of its events or none.
    // Appends are numbered per child process (`run`), so each round's are told apart.
    let mut appends: BTreeMap<(u64, u64), (usize, Vec<usize>)> = BTreeMap::new();
    for r in &all {
        let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
        let append = (
            data["run"].as_u64().unwrap(),
            data["append"].as_u64().unwrap(),
        );
        let k = data["k"].as_u64().unwrap() as usize;
        let j = data["j"].as_u64().unwrap() as usize;
        let entry = appends.entry(append).or_insert((k, Vec::new()));
        entry.1.push(j);
    }
    for (append, (k, mut parts)) in appends {
        parts.sort_unstable();
        assert_eq!(
            parts,
            (0..k).collect::<Vec<_>>(),
            "{context}: append {append:?} is partly visible"
        );
    }

    // Every acknowledged append is there, with its ids.
    let stored: HashSet<Uuid> = all.iter().map(|r| r.event_id).collect();
    for ack in acks {
        assert_eq!(ack.ids.len(), ack.k);
        for id in &ack.ids {
            assert!(
                stored.contains(id),
                "{context}: acknowledged append {} lost event {id}",
                ack.append
            );
        }
    }

    // The store works: a new append lands after everything that survived.
    let head = store.head_position().await.unwrap();
    let result = store
        .append(
            "customer-after-crash",
            ExpectedRevision::Any,
            vec![event(u64::MAX - round as u64, 1, 0)],
        )
        .await
        .unwrap();
    assert!(head.is_none_or(|h| result.first_position > h), "{context}");
    all.len() + 1
}

#[test]
fn acknowledged_appends_survive_sigkill_and_no_append_is_partly_visible() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    // One file across rounds: each round also recovers on top of the previous crashes.
    let mut all_acks = Vec::new();
    let mut total_acks = 0;
    for round in 0..ROUNDS {
        let delay_ms = random_below(KILL_DELAY_MAX_MS + 1);
        let acks = run_child_and_kill(&db, delay_ms);
        assert!(
            !acks.is_empty(),
            "round {round}: acknowledgements were read"
        );
        total_acks += acks.len();
        all_acks.extend(acks);
        let stored = runtime.block_on(check_after_crash(&db, &all_acks, round, delay_ms));
        let acked_events: usize = all_acks.iter().map(|a| a.k).sum();
        assert!(
            stored > acked_events,
            "round {round}: at least the acknowledged events"
        );
    }
    assert!(total_acks >= ROUNDS);
}

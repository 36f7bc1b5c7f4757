//! The projection runner: feeds the fold from the store's subscription to all events, in
//! batches, and writes each batch's rows with the checkpoint it reaches in one atomic step
//! through the read-model port. Rebuilds into the staging tables and swaps them in. Keeps the
//! most asked funnels computed ([`kept`]). Reports progress and lag (head position minus
//! checkpoint) through a callback.

pub mod binding;
pub mod kept;

use crate::domain::CustomerId;
use crate::ledger::codec::{DecodeError, customer_of_stream, decode, stream_name};
use crate::projections::Policy;
use crate::projections::aggregates::Deltas;
use crate::projections::fold::{Projector, derive};
use crate::projections::meta::lag;
use crate::projections::model::CustomerRows;
use crate::read_models::{Checkpoint, ReadModelError, ReadModels, Tables};
use crate::store::{EventStore, ReadError, Record, RetryNotice, SubscriptionMessage};
use binding::{Staleness, expected_binding, staleness};
use kept::{KeepError, refresh_kept_funnels};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Most events applied and committed in one transaction.
pub const BATCH_EVENTS_MAX: usize = 2_000;
/// Most events the fold keeps in memory between batches before forgetting them (they are read
/// again from the store when their customer's next event arrives).
pub const CACHED_EVENTS_MAX: usize = 500_000;
/// Once caught up, the longest a live event waits for more events to share its batch's
/// commit: the projection lag's floor under load, traded against commits per second.
pub const FOLLOW_FLUSH_INTERVAL: Duration = Duration::from_millis(2);
/// While following, the longest the materialized funnels (`rm_reports`) go without a refresh
/// when events keep arriving. A refresh reads every deal and stage stay (seconds at 10M events),
/// so it runs beside the fold, on a blocking thread, and never delays a batch.
pub const FUNNEL_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Events read per page by a rebuild in stream order.
pub const REBUILD_PAGE_EVENTS: usize = 16_384;
/// Chunks of derived customers waiting for the rebuild's writer (bounds the memory).
pub const REBUILD_WRITES_QUEUED_MAX: usize = 2;
/// Customers whose rows a rebuild writes per transaction.
pub const REBUILD_CUSTOMERS_PER_WRITE: usize = 4_096;
/// How many times the runner starts over after another writer moved the checkpoint under it.
pub const CHECKPOINT_CONFLICTS_MAX: usize = 10;
/// Read models behind by more than this share of the log (in percent of the head position)
/// are caught up faster by a rebuild than by projecting ([`rebuild_is_faster`]). A rebuild
/// derives each customer once, in stream order; projecting re-derives a customer for every
/// batch its events fall in and reads back the histories of customers it evicted, so it is
/// about four times slower per event (95k events: 7.7 s against 29 s, issue 15). At half the
/// log behind, a rebuild of the whole log is still about twice as fast, and a margin remains
/// for logs whose customers are less interleaved.
pub const REBUILD_WHEN_BEHIND_PERCENT: u64 = 50;

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the event log failed: {0}")]
    Store(#[from] ReadError),
    #[error(
        "{0}; the projections stopped before this event (nothing was skipped): fix the event's type or upcaster, then run again"
    )]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    ReadModels(#[from] ReadModelError),
    #[error(
        "another process keeps moving the read models' checkpoint ({CHECKPOINT_CONFLICTS_MAX} conflicts); run one projection runner at a time"
    )]
    Contended,
    #[error("the rebuild's writer thread failed: {0}")]
    Writer(String),
    #[error("refreshing the kept funnels failed: {0}")]
    Keep(#[from] KeepError),
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// The read models' checkpoint: position of the last event applied.
    pub position: Option<u64>,
    /// The log's head when last looked at.
    pub head: Option<u64>,
    /// How far behind the log the read models are, in events (head − checkpoint).
    pub lag: u64,
    /// Events applied by this run.
    pub events_applied: u64,
    /// Whether the run has caught up with the log once.
    pub caught_up: bool,
    /// Set when the run found the read models stale (of another store, another point of its
    /// history, or other definitions) and rebuilt them first.
    pub rebuilt: Option<Staleness>,
    /// Where a rebuild moved read models it found damaged.
    pub set_aside: Option<std::path::PathBuf>,
    /// Set while the store cannot be reached and the run waits to try again: reported at once,
    /// so that nobody watches a silent follower.
    pub retrying: Option<RetryNotice>,
    /// Whether the figures are a rebuild's (into the staging tables), not the live fold's.
    pub rebuilding: bool,
}

/// Why catching up by a rebuild is faster than projecting ([`rebuild_is_faster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// The read models were never projected: the whole log, up to `head`, is to be folded.
    Empty { head: u64 },
    /// The read models are `lag` behind the log's `head`, more than
    /// [`REBUILD_WHEN_BEHIND_PERCENT`] of it.
    FarBehind { lag: u64, head: u64 },
}

impl std::fmt::Display for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatchUp::Empty { head } => {
                write!(
                    f,
                    "the read models are empty and the log holds {head} events"
                )
            }
            CatchUp::FarBehind { lag, head } => write!(
                f,
                "the read models are {lag} events behind a log of {head} \
                 (more than {REBUILD_WHEN_BEHIND_PERCENT}%)"
            ),
        }
    }
}

/// Whether read models are caught up faster by [`rebuild`] than by [`project`]: `Some` when
/// they are empty, or behind by more than [`REBUILD_WHEN_BEHIND_PERCENT`] of the log, and a
/// rebuild would give the same read models faster. `None` when they are stale (`project`
/// rebuilds those anyway, and says why), when the log is empty, and when the store cannot read
/// in stream order (a rebuild would then fold in log order, as `project` does: no faster).
/// Reads only.
pub async fn rebuild_is_faster(
    store: &dyn EventStore,
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
) -> Result<Option<CatchUp>, RunError> {
    let Some(head) = store.head_position().await? else {
        return Ok(None);
    };
    let checkpoint = read_models.checkpoint(Tables::Live)?;
    let catch_up = match checkpoint.position {
        None => CatchUp::Empty { head },
        Some(_) => {
            let lag = lag(Some(head), checkpoint.position);
            let far =
                u128::from(lag) * 100 > u128::from(head) * u128::from(REBUILD_WHEN_BEHIND_PERCENT);
            if !far {
                return Ok(None);
            }
            CatchUp::FarBehind { lag, head }
        }
    };
    let expected = expected_binding(store, policy).await?;
    let bound = read_models.binding(Tables::Live)?;
    if staleness(store, &checkpoint, bound.as_ref(), &expected)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    if store.read_by_stream(head, None, 1).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(catch_up))
}

/// Brings the live read models up to date with the log. With `follow`, keeps them up to date
/// until `stop` completes; without, returns once caught up.
pub async fn project(
    store: &dyn EventStore,
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
    follow: bool,
    progress: &mut (dyn FnMut(&Progress) + Send),
    stop: impl Future<Output = ()> + Send,
) -> Result<Progress, RunError> {
    // Read models of another store, another point of its history or other definitions are
    // rebuilt rather than added to; fresh ones are bound to this store and code.
    let checkpoint = read_models.checkpoint(Tables::Live)?;
    let expected = match expected_binding(store, policy).await {
        Ok(expected) => expected,
        // A follower waits for a store it cannot reach yet, saying so, as it would for events.
        Err(_) if follow => {
            wait_until_reachable(store, checkpoint.position, progress).await?;
            expected_binding(store, policy).await?
        }
        Err(e) => return Err(e.into()),
    };
    let bound = read_models.binding(Tables::Live)?;
    let rebuilt = match staleness(store, &checkpoint, bound.as_ref(), &expected).await? {
        Some(why) => {
            rebuild(store, read_models, policy, progress).await?;
            Some(why)
        }
        None => {
            if checkpoint.position.is_none() {
                read_models.bind(Tables::Live, &expected)?;
            }
            None
        }
    };
    let refresher = follow.then(|| refresh_funnels_periodically(read_models, policy));
    let ran = run(
        store,
        &**read_models,
        Tables::Live,
        policy,
        follow,
        progress,
        stop,
    )
    .await;
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    let mut done = ran?;
    refresh_funnels(read_models, policy).await?;
    done.rebuilt = rebuilt;
    Ok(done)
}

/// Waits until the store answers a subscription, reporting each retry through `progress`; the
/// subscription gives up (with its error) when the store stays out of reach.
async fn wait_until_reachable(
    store: &dyn EventStore,
    after: Option<u64>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(), RunError> {
    let mut subscription = store.subscribe_all(after).await?;
    loop {
        match subscription.next().await? {
            SubscriptionMessage::Retrying(notice) => progress(&Progress {
                retrying: Some(notice),
                ..Progress::default()
            }),
            _ => return Ok(()),
        }
    }
}

/// Brings the kept funnels to the read models' checkpoint, off the async threads.
async fn refresh_funnels(
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
) -> Result<(), RunError> {
    let (read_models, policy) = (read_models.clone(), policy.clone());
    tokio::task::spawn_blocking(move || refresh_kept_funnels(&*read_models, &policy))
        .await
        .map_err(|e| RunError::Keep(KeepError::Panicked(e.to_string())))??;
    Ok(())
}

/// Refreshes the kept funnels every [`FUNNEL_REFRESH_INTERVAL`] while a follower runs.
/// A failed refresh is tried again at the next tick: the fold goes on regardless.
fn refresh_funnels_periodically(
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
) -> tokio::task::JoinHandle<()> {
    let (read_models, policy) = (read_models.clone(), policy.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FUNNEL_REFRESH_INTERVAL);
        tick.tick().await; // the first tick is immediate; the catch-up has not happened yet
        loop {
            tick.tick().await;
            let _ = refresh_funnels(&read_models, &policy).await;
        }
    })
}

/// Rebuilds the read models from the start of the log into new tables, then swaps them in
/// atomically: readers see the old read models until the new ones are complete.
pub async fn rebuild(
    store: &dyn EventStore,
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Progress, RunError> {
    // A rebuild interrupted earlier left its staging tables; start those over. Damaged read
    // models are set aside (never deleted) and rebuilt afresh: rebuilding is the way out.
    let mut set_aside = None;
    if let Err(e) = read_models.start_staging() {
        if !e.is_damage() {
            return Err(e.into());
        }
        set_aside = read_models.set_aside()?;
        if set_aside.is_none() {
            return Err(e.into());
        }
        read_models.start_staging()?;
    }
    read_models.bind(Tables::Staging, &expected_binding(store, policy).await?)?;
    let done = match rebuild_by_customer(store, read_models, policy, progress).await? {
        Some(done) => done,
        None => {
            run(
                store,
                &**read_models,
                Tables::Staging,
                policy,
                false,
                progress,
                std::future::pending(),
            )
            .await?
        }
    };
    read_models.swap_in_staging()?;
    refresh_funnels(read_models, policy).await?;
    let mut done = done;
    done.set_aside = set_aside;
    Ok(done)
}

/// Rebuilds the staging tables one customer at a time, where the store can read the log in
/// stream order: each customer's rows are derived once, from its whole history, instead of once
/// per batch its events fall in, and memory holds one page of events. The log is read up to the
/// head at the start, which becomes the checkpoint; the live runner goes on from there.
/// `None` when the store cannot read in stream order (the caller folds in log order).
async fn rebuild_by_customer(
    store: &dyn EventStore,
    read_models: &Arc<dyn ReadModels>,
    policy: &Policy,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Option<Progress>, RunError> {
    let Some(upto) = store.head_position().await? else {
        return Ok(None);
    };
    // Writing the rows is most of a rebuild's work: it runs on a thread (and core) of its own
    // while this task reads and derives the next customers.
    let (to_writer, chunks) = tokio::sync::mpsc::channel(REBUILD_WRITES_QUEUED_MAX);
    let target = read_models.clone();
    let writer = std::thread::Builder::new()
        .name("rebuild-writer".into())
        .spawn(move || write_rebuilt_customers(&*target, chunks))
        .map_err(|e| RunError::Writer(e.to_string()))?;
    let derived = derive_in_stream_order(store, upto, policy, progress, &to_writer).await;
    drop(to_writer);
    let written = writer
        .join()
        .map_err(|_| RunError::Writer("it stopped unexpectedly".into()))?;
    // The writer's error explains a refused send; otherwise the reader's comes first.
    written?;
    derived
}

/// A chunk of derived customers for the rebuild's writer, with the checkpoint it reaches
/// (unset until the last chunk: a rebuild is only ever resumed by starting over).
type RebuiltChunk = (Vec<(CustomerId, CustomerRows)>, Checkpoint);

/// Reads the log in stream order up to `upto` and sends each customer's derived rows to the
/// writer, a chunk at a time. `None` when the store cannot read in stream order.
async fn derive_in_stream_order(
    store: &dyn EventStore,
    upto: u64,
    policy: &Policy,
    progress: &mut (dyn FnMut(&Progress) + Send),
    writer: &tokio::sync::mpsc::Sender<RebuiltChunk>,
) -> Result<Option<Progress>, RunError> {
    let mut report = Progress {
        head: Some(upto),
        rebuilding: true,
        ..Progress::default()
    };
    let mut after: Option<(String, u64)> = None;
    let mut gathering: Vec<Record> = Vec::new();
    let mut changes = Vec::new();
    let mut log_time = None;
    let unset = Checkpoint::default();
    // The checkpoint names the event at `upto`, wherever the stream order meets it.
    let mut event_at_upto = None;
    let writer_gone = || RunError::Writer("it stopped before the last chunk".into());
    loop {
        let Some(page) = store
            .read_by_stream(upto, after.clone(), REBUILD_PAGE_EVENTS)
            .await?
        else {
            return Ok(None);
        };
        let Some(last) = page.last() else { break };
        after = Some((last.stream.clone(), last.revision));
        for record in page {
            if record.position == upto {
                event_at_upto = Some(record.event_id);
            }
            if gathering
                .first()
                .is_some_and(|first| first.stream != record.stream)
            {
                let records = std::mem::take(&mut gathering);
                derive_customer(policy, &records, &mut changes, &mut log_time)?;
                report.events_applied += records.len() as u64;
            }
            gathering.push(record);
        }
        if changes.len() >= REBUILD_CUSTOMERS_PER_WRITE {
            let chunk = std::mem::take(&mut changes);
            writer
                .send((chunk, unset))
                .await
                .map_err(|_| writer_gone())?;
            progress(&report);
        }
    }
    report.events_applied += gathering.len() as u64;
    derive_customer(policy, &gathering, &mut changes, &mut log_time)?;
    let reached = Checkpoint {
        position: Some(upto),
        event_id: event_at_upto,
        log_time,
    };
    writer
        .send((changes, reached))
        .await
        .map_err(|_| writer_gone())?;
    report.position = Some(upto);
    report.lag = 0;
    report.caught_up = true;
    progress(&report);
    Ok(Some(report))
}

/// The rebuild's writer: writes each chunk into the staging tables, gathering the counters'
/// changes, and writes the counters once the chunks stop.
fn write_rebuilt_customers(
    read_models: &dyn ReadModels,
    mut chunks: tokio::sync::mpsc::Receiver<RebuiltChunk>,
) -> Result<(), RunError> {
    let mut counters = Deltas::default();
    let mut reached_end = false;
    while let Some((changes, reached)) = chunks.blocking_recv() {
        if !read_models.write_new_customers(None, &changes, reached, &mut counters)? {
            return Err(RunError::Contended);
        }
        reached_end = reached.position.is_some();
    }
    // Without the last chunk the reader failed: its error is the one reported.
    if reached_end {
        read_models.write_counters(&counters)?;
    }
    Ok(())
}

/// Derives one customer's rows from all its records (one stream, in revision order).
fn derive_customer(
    policy: &Policy,
    records: &[Record],
    changes: &mut Vec<(CustomerId, CustomerRows)>,
    log_time: &mut Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), RunError> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    if customer_of_stream(&first.stream).is_none() {
        return Ok(()); // another application's stream in a shared store
    }
    let events = records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let latest = events
        .iter()
        .filter(|e| !e.payload.is_administrative())
        .map(|e| e.occurred_at)
        .max();
    *log_time = (*log_time).max(latest);
    let customer = events[0].customer_id.clone();
    let rows = derive(policy, &customer, &events);
    changes.push((customer, rows));
    Ok(())
}

/// The batch being gathered.
struct Batch {
    records: Vec<Record>,
}

async fn run(
    store: &dyn EventStore,
    read_models: &dyn ReadModels,
    tables: Tables,
    policy: &Policy,
    follow: bool,
    progress: &mut (dyn FnMut(&Progress) + Send),
    stop: impl Future<Output = ()> + Send,
) -> Result<Progress, RunError> {
    let mut stop = std::pin::pin!(stop);
    let mut report = Progress {
        rebuilding: tables == Tables::Staging,
        ..Progress::default()
    };
    let mut conflicts = 0;
    'restart: loop {
        let cp = read_models.checkpoint(tables)?;
        let mut fold = Projector::resume(policy.clone(), cp.position, cp.event_id, cp.log_time);
        let mut expected = cp.position;
        let mut sub = store.subscribe_all(cp.position).await?;
        let mut batch = Batch {
            records: Vec::new(),
        };
        report.position = cp.position;
        let mut batch_deadline: Option<tokio::time::Instant> = None;
        loop {
            let message = if report.caught_up && !batch.records.is_empty() {
                // Live events wait at most FOLLOW_FLUSH_INTERVAL from the first one of the
                // batch, even under a steady stream that never pauses.
                let deadline = *batch_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + FOLLOW_FLUSH_INTERVAL);
                match tokio::time::timeout_at(deadline, sub.next()).await {
                    Ok(m) => Some(m?),
                    Err(_) => None,
                }
            } else if report.caught_up {
                tokio::select! {
                    m = sub.next() => Some(m?),
                    () = &mut stop => return Ok(report),
                }
            } else {
                Some(sub.next().await?)
            };
            let flush_now = match message {
                Some(SubscriptionMessage::Event(record)) => {
                    batch.records.push(record);
                    batch.records.len() >= BATCH_EVENTS_MAX
                }
                Some(SubscriptionMessage::CaughtUp { .. }) => {
                    report.caught_up = true;
                    true
                }
                Some(SubscriptionMessage::Retrying(notice)) => {
                    report.retrying = Some(notice);
                    progress(&report);
                    report.retrying = None;
                    false
                }
                None => true,
            };
            if !flush_now {
                continue;
            }
            batch_deadline = None;
            let records = std::mem::take(&mut batch.records);
            let applied = records.len() as u64;
            apply_batch(store, &mut fold, records).await?;
            if fold.position() != expected {
                let changes = fold.take_changes();
                let reached = Checkpoint {
                    position: fold.position(),
                    event_id: fold.event_id(),
                    log_time: fold.log_time(),
                };
                if !read_models.write_batch(tables, expected, &changes, reached)? {
                    conflicts += 1;
                    if conflicts >= CHECKPOINT_CONFLICTS_MAX {
                        return Err(RunError::Contended);
                    }
                    continue 'restart;
                }
                expected = fold.position();
                report.events_applied += applied;
                if fold.cached_events() > CACHED_EVENTS_MAX {
                    fold.evict();
                }
            }
            report.position = fold.position();
            report.head = store.head_position().await?;
            report.lag = lag(report.head, report.position);
            progress(&report);
            if report.caught_up && !follow {
                return Ok(report);
            }
        }
    }
}

/// Decodes a batch, loads the earlier history of customers not in memory, and applies it.
async fn apply_batch(
    store: &dyn EventStore,
    fold: &mut Projector,
    records: Vec<Record>,
) -> Result<(), RunError> {
    let before = fold.position();
    let mut events = Vec::with_capacity(records.len());
    for record in &records {
        if customer_of_stream(&record.stream).is_none() {
            // Another application's stream in a shared store: not ours, but it moves the log.
            events.push(None);
            continue;
        }
        events.push(Some(decode(record)?));
    }
    let missing: BTreeSet<CustomerId> = events
        .iter()
        .flatten()
        .map(|e| e.customer_id.clone())
        .filter(|c| !fold.is_loaded(c))
        .collect();
    // Histories of customers not in memory, read in one round trip for the whole batch: under
    // a live load most events are of customers the fold has not seen since it started.
    if let Some(upto) = before {
        let streams: Vec<String> = missing.iter().map(stream_name).collect();
        let mut read = store.read_streams(&streams).await?;
        for (customer, stream) in missing.into_iter().zip(&streams) {
            let mut history = Vec::new();
            for record in read.remove(stream).unwrap_or_default() {
                if record.position <= upto {
                    history.push(decode(&record)?);
                }
            }
            fold.seed(customer, history);
        }
    } else {
        for customer in missing {
            fold.seed(customer, Vec::new());
        }
    }
    for (record, event) in records.iter().zip(events) {
        match event {
            Some(e) => fold.apply(&e),
            None => fold.skip_to(record.position, record.event_id),
        }
    }
    Ok(())
}

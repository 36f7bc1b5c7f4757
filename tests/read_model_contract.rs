//! The read-model contract: one suite, run against every implementation of the port
//! (`read_models::ReadModels`): the SQLite read models and the in-memory model. A backend added
//! later (PostgreSQL) adds one line to `backends!` below and must pass the same suite unchanged.
//! A property test then checks the SQLite read models against the in-memory model, as redb
//! checks its B-tree against a `BTreeMap`.

mod projections_support;

use pipeline_ledger::domain::LedgerEvent;
use pipeline_ledger::projections::Policy;
use pipeline_ledger::projections::activity::{RepsParams, reps};
use pipeline_ledger::projections::aggregates::{Deltas, PERIODS, reps_report};
use pipeline_ledger::projections::conversion::{FunnelParams, GroupBy, funnel};
use pipeline_ledger::projections::fold::{Projector, derive, replay};
use pipeline_ledger::projections::meta::{ReportAt, ReportMeta};
use pipeline_ledger::projections::model::{ReadModel, StageStayRow};
use pipeline_ledger::projections::time::Period;
use pipeline_ledger::read_models::memory::MemoryReadModels;
use pipeline_ledger::read_models::sqlite::SqliteReadModels;
use pipeline_ledger::read_models::{Binding, Checkpoint, KeptReport, ReadModels, Tables};
use pipeline_ledger::runner::kept::fold_live_funnel;
use projections_support::{generate, rebuild_read_models};
use proptest::prelude::*;

/// One implementation under test, with whatever it needs kept alive (a temporary directory).
struct Backend {
    read_models: Box<dyn ReadModels>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let read_models = Box::new(SqliteReadModels::open(&dir.path().join("rm.db")));
    Backend {
        read_models,
        _dir: Some(dir),
    }
}

fn memory() -> Backend {
    Backend {
        read_models: Box::new(MemoryReadModels::new()),
        _dir: None,
    }
}

/// Applies `events` to a fold resumed at the read models' checkpoint and writes the changes as
/// one batch, as the runner does; returns whether the batch was written.
fn write_batch(rm: &dyn ReadModels, fold: &mut Projector, events: &[LedgerEvent]) -> bool {
    let expected = fold.position();
    for e in events {
        fold.apply(e);
    }
    let reached = Checkpoint {
        position: fold.position(),
        event_id: fold.event_id(),
        log_time: fold.log_time(),
    };
    rm.write_batch(Tables::Live, expected, &fold.take_changes(), reached)
        .unwrap()
}

/// Writes `events` as batches split at `cuts` (positions in the slice).
fn write_in_batches(rm: &dyn ReadModels, events: &[LedgerEvent], cuts: &[usize]) -> Projector {
    let mut fold = Projector::new(Policy::default());
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&events.len())) {
        let end = end.clamp(start, events.len());
        if end > start {
            assert!(write_batch(rm, &mut fold, &events[start..end]));
        }
        start = end;
    }
    fold
}

/// Rebuilds the read models one customer at a time, as the runner's rebuild does.
fn rebuild(rm: &dyn ReadModels, events: &[LedgerEvent], chunk_customers: usize) {
    rebuild_read_models(rm, &Policy::default(), events, chunk_customers);
}

fn live_meta(cp: &Checkpoint) -> ReportMeta {
    ReportMeta::live(cp.position, cp.position, cp.log_time, &ReportAt::default())
}

/// The live rep and funnel reports equal the same reports over the whole model.
fn assert_live_reports_equal_model_reports(rm: &dyn ReadModels, label: &str) {
    let policy = Policy::default();
    let model = rm.load_live().unwrap().expect("projected");
    let cp = rm.checkpoint(Tables::Live).unwrap();
    let meta = live_meta(&cp);
    let mut reps_seen = vec![None];
    reps_seen.extend(model.customers.first().map(|c| Some(c.owner_rep.clone())));
    for period in PERIODS {
        for rep in &reps_seen {
            let params = RepsParams {
                period,
                rep: rep.clone(),
            };
            let (at, inputs) = rm
                .reps_inputs_live(period, rep.as_deref(), &|cp| cp.log_time)
                .unwrap()
                .unwrap();
            assert_eq!(at, cp, "{label}");
            let live = reps_report(meta.clone(), params.clone(), inputs);
            assert_eq!(
                live,
                reps(&model, meta.clone(), params),
                "{label} {period:?} {rep:?}"
            );
        }
    }
    for by in [
        None,
        Some(GroupBy::Source),
        Some(GroupBy::Rep),
        Some(GroupBy::Cohort),
    ] {
        let params = FunnelParams {
            by,
            cohort: Period::Quarter,
            ..FunnelParams::default()
        };
        let (_, live) = fold_live_funnel(rm, &policy, params, true, live_meta)
            .unwrap()
            .unwrap();
        assert_eq!(
            live,
            funnel(&model, &policy, meta.clone(), params),
            "{label} {by:?}"
        );
    }
}

fn fresh_read_models_hold_nothing(rm: &dyn ReadModels) {
    assert_eq!(rm.checkpoint(Tables::Live).unwrap(), Checkpoint::default());
    assert!(rm.load_live().unwrap().is_none());
    assert!(rm.load_customer_live("c0").unwrap().is_none());
    assert!(
        rm.reps_inputs_live(Period::Month, None, &|_| None)
            .unwrap()
            .is_none()
    );
    let mut called = false;
    assert!(
        rm.fold_live_deals(&mut |_, _, _| called = true)
            .unwrap()
            .is_none()
    );
    assert!(!called);
    assert!(rm.read_report("funnel", "{}").unwrap().is_none());
}

fn batches_and_their_checkpoint_are_read_back_whole(rm: &dyn ReadModels) {
    let events = generate(21, 6, 160);
    let policy = Policy::default();
    let mut fold = Projector::new(policy.clone());
    for (n, chunk) in events.chunks(37).enumerate() {
        assert!(write_batch(rm, &mut fold, chunk));
        let seen = &events[..(n * 37 + chunk.len())];
        let live = rm.load_live().unwrap().unwrap();
        assert_eq!(live, replay(&policy, seen), "after batch {n}");
        let cp = rm.checkpoint(Tables::Live).unwrap();
        assert_eq!(cp.position, seen.last().map(|e| e.position));
        assert_eq!(cp.event_id, seen.last().map(|e| e.event_id));
        assert_eq!(cp.log_time, seen.iter().map(|e| e.occurred_at).max());
        assert_live_reports_equal_model_reports(rm, &format!("after batch {n}"));
    }
}

fn a_stale_writer_is_refused_and_changes_nothing(rm: &dyn ReadModels) {
    let events = generate(3, 3, 60);
    let (first, second) = events.split_at(30);
    let fold = write_in_batches(rm, first, &[]);
    let before = rm.load_live().unwrap();
    // A writer that believes the read models are empty, and one that believes they are ahead.
    let mut stale = Projector::new(Policy::default());
    assert!(!write_batch(rm, &mut stale, second));
    let mut ahead = fold.clone();
    ahead.apply(&second[0]);
    ahead.take_changes();
    assert!(!write_batch(rm, &mut ahead, &second[1..]));
    assert_eq!(rm.load_live().unwrap(), before);
    assert_eq!(
        rm.checkpoint(Tables::Live).unwrap().position,
        fold.position()
    );
}

fn one_customer_is_read_by_key(rm: &dyn ReadModels) {
    let events = generate(8, 5, 140);
    write_in_batches(rm, &events, &[40, 90]);
    let whole = rm.load_live().unwrap().unwrap();
    let by_customer = whole.clone().split_by_customer();
    assert!(!by_customer.is_empty());
    for (id, rows) in by_customer {
        let one = rm.load_customer_live(&id).unwrap().unwrap();
        let mut expected = ReadModel {
            position: whole.position,
            log_time: whole.log_time,
            ..ReadModel::default()
        };
        expected.extend(rows);
        expected.normalize();
        assert_eq!(one, expected, "{id}");
    }
    let unknown = rm.load_customer_live("nobody").unwrap().unwrap();
    assert!(unknown.customers.is_empty() && unknown.deals.is_empty());
    assert_eq!(unknown.position, whole.position);
}

fn deals_are_folded_in_key_order_with_their_stays(rm: &dyn ReadModels) {
    let events = generate(5, 6, 200);
    write_in_batches(rm, &events, &[100]);
    let model = rm.load_live().unwrap().unwrap();
    let mut seen = Vec::new();
    let cp = rm
        .fold_live_deals(&mut |_, deal, stays| seen.push((deal, stays)))
        .unwrap()
        .unwrap();
    assert_eq!(cp, rm.checkpoint(Tables::Live).unwrap());
    let expected: Vec<_> = model
        .deals
        .iter()
        .map(|d| {
            let stays: Vec<StageStayRow> = model
                .stays
                .iter()
                .filter(|s| s.customer_id == d.customer_id && s.deal_id == d.deal_id)
                .cloned()
                .collect();
            (d.clone(), stays)
        })
        .collect();
    assert_eq!(seen, expected);
}

fn a_rebuild_is_invisible_until_swapped_in(rm: &dyn ReadModels) {
    let events = generate(13, 7, 220);
    let (first, _) = events.split_at(120);
    write_in_batches(rm, first, &[60]);
    let before = rm.load_live().unwrap();
    rm.start_staging().unwrap();
    let policy = Policy::default();
    let mut pending = Deltas::default();
    let c0 = &events[0].customer_id;
    let rows = derive(
        &policy,
        c0,
        &events
            .iter()
            .filter(|e| &e.customer_id == c0)
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(
        rm.write_new_customers(
            None,
            &[(c0.clone(), rows)],
            Checkpoint::default(),
            &mut pending
        )
        .unwrap()
    );
    assert_eq!(rm.load_live().unwrap(), before, "staging rows are not live");
    // A rebuild started over (an earlier one was interrupted) replaces the whole model at once.
    rebuild(rm, &events, 3);
    let rebuilt = rm.load_live().unwrap().unwrap();
    assert_eq!(rebuilt, replay(&policy, &events));
    assert_live_reports_equal_model_reports(rm, "rebuilt");
}

fn a_rebuild_equals_the_incremental_read_models(rm: &dyn ReadModels) {
    let events = generate(17, 5, 180);
    write_in_batches(rm, &events, &[30, 31, 100]);
    let incremental = rm.load_live().unwrap();
    let mut inputs = Vec::new();
    for period in PERIODS {
        inputs.push(
            rm.reps_inputs_live(period, None, &|cp| cp.log_time)
                .unwrap(),
        );
    }
    rebuild(rm, &events, 2);
    assert_eq!(rm.load_live().unwrap(), incremental);
    for (period, before) in PERIODS.into_iter().zip(inputs) {
        let after = rm
            .reps_inputs_live(period, None, &|cp| cp.log_time)
            .unwrap();
        assert_eq!(sorted_inputs(after), sorted_inputs(before), "{period:?}");
    }
}

fn kept_reports_keep_the_latest_position_per_policy(rm: &dyn ReadModels) {
    let report = |name: &str, position, body: &str| KeptReport {
        name: name.into(),
        position,
        body: body.into(),
    };
    rm.write_reports(
        "p1",
        &[report("funnel", 5, "five"), report("funnel:rep", 5, "r5")],
    )
    .unwrap();
    assert_eq!(
        rm.read_report("funnel", "p1").unwrap(),
        Some((5, "five".into()))
    );
    assert_eq!(
        rm.read_report("funnel", "p2").unwrap(),
        None,
        "another policy"
    );
    rm.write_reports("p1", &[report("funnel", 3, "three")])
        .unwrap();
    assert_eq!(
        rm.read_report("funnel", "p1").unwrap(),
        Some((5, "five".into())),
        "older kept out"
    );
    rm.write_reports("p2", &[report("funnel", 9, "nine")])
        .unwrap();
    assert_eq!(
        rm.read_report("funnel", "p2").unwrap(),
        Some((9, "nine".into()))
    );
    assert_eq!(
        rm.read_report("funnel", "p1").unwrap(),
        None,
        "replaced under p2"
    );
    assert_eq!(
        rm.read_report("funnel:rep", "p1").unwrap(),
        Some((5, "r5".into()))
    );
}

fn a_binding_is_kept_per_table_set_and_swapped_in_with_a_rebuild(rm: &dyn ReadModels) {
    let bound = |store: &str| Binding {
        store_id: Some(store.to_string()),
        derivation: "projections 1, policy 0".to_string(),
    };
    assert_eq!(rm.binding(Tables::Live).unwrap(), None);
    rm.bind(Tables::Live, &bound("a")).unwrap();
    assert_eq!(rm.binding(Tables::Live).unwrap(), Some(bound("a")));
    let events = generate(2, 3, 50);
    write_in_batches(rm, &events, &[20]);
    assert_eq!(
        rm.binding(Tables::Live).unwrap(),
        Some(bound("a")),
        "batches keep it"
    );
    rm.start_staging().unwrap();
    assert_eq!(
        rm.binding(Tables::Staging).unwrap(),
        None,
        "staging starts unbound"
    );
    rm.bind(Tables::Staging, &bound("b")).unwrap();
    assert_eq!(
        rm.binding(Tables::Live).unwrap(),
        Some(bound("a")),
        "live unchanged"
    );
    rm.write_counters(&Deltas::default()).unwrap();
    rm.swap_in_staging().unwrap();
    assert_eq!(rm.binding(Tables::Live).unwrap(), Some(bound("b")));
    let unbound = Binding {
        store_id: None,
        derivation: "d".into(),
    };
    rm.bind(Tables::Live, &unbound).unwrap();
    assert_eq!(rm.binding(Tables::Live).unwrap(), Some(unbound));
}

/// The rep inputs in a canonical order (an implementation may return rows in any order).
type Inputs = Option<(
    Checkpoint,
    pipeline_ledger::projections::aggregates::RepsInputs,
)>;
fn sorted_inputs(inputs: Inputs) -> Option<(Checkpoint, String)> {
    inputs.map(|(cp, mut i)| {
        i.counters.sort();
        i.open_due.sort();
        i.close_spreads
            .sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        (cp, format!("{i:?}"))
    })
}

macro_rules! suite {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let backend = super::$backend();
                    super::$case(&*backend.read_models);
                }
            )+
        }
    };
}

macro_rules! backends {
    ($($backend:ident),+) => {$(
        suite!($backend:
            fresh_read_models_hold_nothing,
            batches_and_their_checkpoint_are_read_back_whole,
            a_stale_writer_is_refused_and_changes_nothing,
            one_customer_is_read_by_key,
            deals_are_folded_in_key_order_with_their_stays,
            a_rebuild_is_invisible_until_swapped_in,
            a_rebuild_equals_the_incremental_read_models,
            kept_reports_keep_the_latest_position_per_policy,
            a_binding_is_kept_per_table_set_and_swapped_in_with_a_rebuild,
        );
    )+};
}

backends!(sqlite, memory);

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The SQLite read models behave as the in-memory model: after the same batches (and a
    /// rebuild), every read gives the same answer.
    #[test]
    fn sqlite_read_models_match_the_in_memory_model(
        seed in any::<u64>(),
        customers in 1usize..6,
        steps in 1usize..120,
        cuts in proptest::collection::vec(0usize..120, 0..5),
        rebuild_chunk in 1usize..4,
    ) {
        let events = generate(seed, customers, steps);
        let mut cuts = cuts;
        cuts.sort_unstable();
        let (sqlite, memory) = (sqlite(), memory());
        let both = [&*sqlite.read_models, &*memory.read_models];
        for rm in both {
            write_in_batches(rm, &events, &cuts);
        }
        let compare = |stage: &str| {
            let [s, m] = both;
            prop_assert_eq!(s.checkpoint(Tables::Live).unwrap(), m.checkpoint(Tables::Live).unwrap(), "{}", stage);
            prop_assert_eq!(s.load_live().unwrap(), m.load_live().unwrap(), "{}", stage);
            for period in PERIODS {
                let clock = |cp: &Checkpoint| cp.log_time;
                prop_assert_eq!(
                    sorted_inputs(s.reps_inputs_live(period, None, &clock).unwrap()),
                    sorted_inputs(m.reps_inputs_live(period, None, &clock).unwrap()),
                    "{} {:?}", stage, period
                );
            }
            let mut deals = [Vec::new(), Vec::new()];
            for (rm, seen) in both.iter().zip(deals.iter_mut()) {
                rm.fold_live_deals(&mut |_, d, stays| seen.push((d, stays))).unwrap();
            }
            prop_assert_eq!(&deals[0], &deals[1], "{}", stage);
            Ok(())
        };
        compare("incremental")?;
        for rm in both {
            rebuild(rm, &events, rebuild_chunk);
        }
        compare("rebuilt")?;
    }
}

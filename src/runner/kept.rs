//! The funnels the runner keeps computed in the read models: over all deals, at the read
//! models' own clock, whole and by each grouping (cohorts by month). These are what sales ops
//! ask for most, and computing one reads every deal and stage stay (seconds at 10M events), so
//! the runner refreshes them when it catches up and the query layer reads them as they are.

use crate::projections::Policy;
use crate::projections::conversion::{
    FunnelFold, FunnelGroup, FunnelParams, FunnelReport, GroupBy,
};
use crate::projections::meta::{ReportAt, ReportMeta};
use crate::projections::model::StageStayRow;
use crate::projections::time::Period;
use crate::read_models::{Checkpoint, KeptReport, ReadModelError, ReadModels, Tables};

/// The funnels kept computed (see the module's documentation).
pub const KEPT_FUNNELS: [Option<GroupBy>; 4] = [
    None,
    Some(GroupBy::Source),
    Some(GroupBy::Rep),
    Some(GroupBy::Cohort),
];

/// The name a funnel is kept under, if its parameters are among [`KEPT_FUNNELS`].
pub fn kept_funnel_name(params: &FunnelParams) -> Option<&'static str> {
    let kept = params.from.is_none()
        && params.to.is_none()
        && params.cohort == Period::Month
        && KEPT_FUNNELS.contains(&params.by);
    kept.then_some(match params.by {
        None => "funnel",
        Some(GroupBy::Source) => "funnel:source",
        Some(GroupBy::Rep) => "funnel:rep",
        Some(GroupBy::Cohort) => "funnel:cohort",
    })
}

/// Why the kept reports could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error(transparent)]
    ReadModels(#[from] ReadModelError),
    #[error("a report could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the refresh stopped unexpectedly: {0}")]
    Panicked(String),
}

/// The policy as kept reports record it: a report computed under another policy is not used.
pub fn policy_key(policy: &Policy) -> Result<String, serde_json::Error> {
    serde_json::to_string(policy)
}

/// Computes the [`KEPT_FUNNELS`] from the live read models and stores them with the position
/// they reflect. Returns that position; `None` when the read models were never projected.
/// Blocking: run it off the async threads when other work waits.
pub fn refresh_kept_funnels(
    read_models: &dyn ReadModels,
    policy: &Policy,
) -> Result<Option<u64>, KeepError> {
    let policy_json = policy_key(policy)?;
    let checkpoint = read_models.checkpoint(Tables::Live)?.position;
    let stored = read_models
        .read_report("funnel", &policy_json)?
        .map(|(p, _)| p);
    if checkpoint.is_some() && stored == checkpoint {
        return Ok(checkpoint); // nothing new since the last refresh
    }
    // One pass over the deals per funnel, each in its own read transaction and stating its
    // own position: a pass holds its counters and durations, never the deals. The first pass
    // computes the total the others share, unless the checkpoint moved in between.
    let meta = |cp: &Checkpoint| {
        ReportMeta::live(cp.position, cp.position, cp.log_time, &ReportAt::default())
    };
    let mut reports = Vec::new();
    let mut reached = None;
    let mut total: Option<(Option<u64>, FunnelGroup)> = None;
    for by in KEPT_FUNNELS {
        let params = FunnelParams {
            by,
            ..FunnelParams::default()
        };
        let mut with_total = total.is_none();
        let mut pass = fold_live_funnel(read_models, policy, params, with_total, meta)?;
        let total_at = total.as_ref().map(|(at, _)| *at);
        if !with_total && pass.as_ref().map(|(cp, _)| cp.position) != total_at {
            with_total = true;
            pass = fold_live_funnel(read_models, policy, params, with_total, meta)?;
        }
        let Some((cp, mut report)) = pass else {
            return Ok(None);
        };
        let Some(position) = cp.position else {
            return Ok(None);
        };
        match &total {
            Some((_, shared)) if !with_total => report.total = shared.clone(),
            Some(_) => {}
            None => total = Some((cp.position, report.total.clone())),
        }
        let name = kept_funnel_name(&params).expect("every kept funnel has a name");
        reports.push(KeptReport {
            name: name.to_string(),
            position,
            body: serde_json::to_string(&report)?,
        });
        reached = Some(position);
    }
    read_models.write_reports(&policy_json, &reports)?;
    Ok(reached)
}

/// Folds the live deals into the funnel of `params` (its total too, with `with_total`), one
/// deal and its stays at a time (memory holds counters and durations, never the tables), with
/// the metadata `meta` gives for the checkpoint read. `None` if never projected.
pub fn fold_live_funnel(
    read_models: &dyn ReadModels,
    policy: &Policy,
    params: FunnelParams,
    with_total: bool,
    meta: impl Fn(&Checkpoint) -> ReportMeta,
) -> Result<Option<(Checkpoint, FunnelReport)>, ReadModelError> {
    let start = |cp: &Checkpoint| {
        let meta = meta(cp);
        let fold = FunnelFold::new(policy, params, meta.evaluated_at, with_total);
        (meta, fold)
    };
    let mut state = None;
    let checkpoint = read_models.fold_live_deals(&mut |cp, deal, stays| {
        let (_, fold) = state.get_or_insert_with(|| start(cp));
        let stays: Vec<&StageStayRow> = stays.iter().collect();
        fold.add(&deal, &stays);
    })?;
    Ok(checkpoint.map(|cp| {
        let (meta, fold) = state.unwrap_or_else(|| start(&cp));
        (cp, fold.finish(meta))
    }))
}

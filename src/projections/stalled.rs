//! Stalled deals and the `pipeline` query: counts per lifecycle state and per stage, deals
//! stalled for lack of activity or of progress (listed separately), and overdue follow-ups.
//! Everything here depends on the report's clock, so it is computed at query time from the
//! stored times and the policy's thresholds, never stored.

use super::activity::is_overdue;
use super::lifecycle::state_at;
use super::meta::ReportMeta;
use super::model::{DealStatus, ReadModel};
use super::policy::Policy;
use super::time::{days_between, round6};
use crate::domain::Stage;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Why a deal is listed as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// No interaction on the deal for longer than the stage's `no_activity_days`.
    NoActivity,
    /// No change of stage for longer than the stage's `no_progress_days`.
    NoProgress,
}

/// A stalled open deal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StalledDeal {
    pub customer_id: String,
    pub deal_id: String,
    pub stage: Stage,
    /// The customer's owner now.
    pub owner_rep: String,
    pub kind: StallKind,
    /// Since when nothing happened (last activity, or entry into the stage).
    pub since: DateTime<Utc>,
    pub days: f64,
    pub threshold_days: u32,
}

impl PipelineReport {
    /// Keeps only `owner`'s stalled deals and overdue follow-ups: a rep's worklist. The counts
    /// per state, stage and owner stay the ledger's.
    pub fn keep_worklist_of(&mut self, owner: &str) {
        self.stalled_no_activity.retain(|s| s.owner_rep == owner);
        self.stalled_no_progress.retain(|s| s.owner_rep == owner);
        self.overdue_followups.retain(|o| o.owner_rep == owner);
    }
}

/// A follow-up whose due date passed without a follow-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverdueFollowUp {
    pub customer_id: String,
    pub deal_id: String,
    pub due_on: NaiveDate,
    pub owner_rep: String,
    pub days_overdue: i64,
}

/// The `pipeline` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineReport {
    pub meta: ReportMeta,
    /// Customers per lifecycle state at the report's clock (dormancy applied).
    pub customers_by_state: BTreeMap<String, u64>,
    /// Open deals per stage, in pipeline order.
    pub open_deals_by_stage: Vec<(Stage, u64)>,
    /// Open deals per owner (the customer's owner at the report's position).
    pub open_deals_by_owner: BTreeMap<String, u64>,
    pub deals_by_status: BTreeMap<String, u64>,
    pub stalled_no_activity: Vec<StalledDeal>,
    pub stalled_no_progress: Vec<StalledDeal>,
    pub overdue_followups: Vec<OverdueFollowUp>,
}

/// The stalled open deals at `now`, of one kind.
pub fn stalled(
    model: &ReadModel,
    policy: &Policy,
    now: DateTime<Utc>,
    kind: StallKind,
) -> Vec<StalledDeal> {
    let owners: HashMap<&str, &str> = model
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), c.owner_rep.as_str()))
        .collect();
    let mut out: Vec<StalledDeal> = model
        .deals
        .iter()
        .filter(|d| d.status == DealStatus::Open)
        .filter_map(|d| {
            let t = policy.threshold(d.stage)?;
            let (since, threshold_days) = match kind {
                StallKind::NoActivity => (d.last_activity_at, t.no_activity_days),
                StallKind::NoProgress => (d.stage_since, t.no_progress_days),
            };
            let days = days_between(since, now);
            (days > f64::from(threshold_days)).then(|| StalledDeal {
                customer_id: d.customer_id.clone(),
                deal_id: d.deal_id.clone(),
                stage: d.stage,
                owner_rep: owners
                    .get(d.customer_id.as_str())
                    .map_or_else(String::new, |o| o.to_string()),
                kind,
                since,
                days: round6(days),
                threshold_days,
            })
        })
        .collect();
    // Longest-stalled first: what a manager should look at first.
    out.sort_by(|a, b| {
        b.days
            .total_cmp(&a.days)
            .then_with(|| (&a.customer_id, &a.deal_id).cmp(&(&b.customer_id, &b.deal_id)))
    });
    out
}

/// Computes the pipeline report.
pub fn pipeline(model: &ReadModel, policy: &Policy, meta: ReportMeta) -> PipelineReport {
    let now = meta.evaluated_at;
    let mut customers_by_state = BTreeMap::new();
    for c in &model.customers {
        *customers_by_state
            .entry(state_at(c, now).as_str().to_string())
            .or_insert(0) += 1;
    }
    let owners: HashMap<&str, &str> = model
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), c.owner_rep.as_str()))
        .collect();
    let mut deals_by_status = BTreeMap::new();
    let mut by_stage: BTreeMap<Stage, u64> = BTreeMap::new();
    let mut open_deals_by_owner: BTreeMap<String, u64> = BTreeMap::new();
    for d in &model.deals {
        *deals_by_status
            .entry(d.status.as_str().to_string())
            .or_insert(0) += 1;
        if d.status == DealStatus::Open {
            *by_stage.entry(d.stage).or_insert(0) += 1;
            let owner = owners.get(d.customer_id.as_str()).copied().unwrap_or("");
            *open_deals_by_owner.entry(owner.to_string()).or_insert(0) += 1;
        }
    }
    // Every open deal is counted once per view: by owner and by status agree.
    assert_eq!(
        open_deals_by_owner.values().sum::<u64>(),
        deals_by_status
            .get(DealStatus::Open.as_str())
            .copied()
            .unwrap_or(0),
        "open deals by owner must add up to the open deals"
    );
    let open_deals_by_stage = policy
        .open_stages()
        .map(|s| (s, by_stage.get(&s).copied().unwrap_or(0)))
        .collect();
    let (stalled_no_activity, stalled_no_progress, overdue_followups) = match now {
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(now) => {
            let mut overdue: Vec<OverdueFollowUp> = model
                .followups
                .iter()
                .filter(|f| f.fulfilled_at.is_none() && is_overdue(f, Some(now)))
                .map(|f| OverdueFollowUp {
                    customer_id: f.customer_id.clone(),
                    deal_id: f.deal_id.clone(),
                    due_on: f.due_on,
                    owner_rep: f.owner_rep.clone(),
                    days_overdue: (now.date_naive() - f.due_on).num_days(),
                })
                .collect();
            overdue.sort_by(|a, b| {
                b.days_overdue
                    .cmp(&a.days_overdue)
                    .then_with(|| a.customer_id.cmp(&b.customer_id))
            });
            (
                stalled(model, policy, now, StallKind::NoActivity),
                stalled(model, policy, now, StallKind::NoProgress),
                overdue,
            )
        }
    };
    PipelineReport {
        meta,
        customers_by_state,
        open_deals_by_stage,
        open_deals_by_owner,
        deals_by_status,
        stalled_no_activity,
        stalled_no_progress,
        overdue_followups,
    }
}

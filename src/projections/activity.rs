//! Rep activity projection: one row per effective event with the rep who performed it and the
//! rep who owned the customer at that moment (`rm_activity`), and the follow-up due dates
//! (`rm_followups`); and the `reps` query. Activity counts go to the performer; results (deals
//! won and lost, overdue follow-ups, value) to the owner at that moment, never today's owner.

use super::conversion::Ratio;
use super::meta::ReportMeta;
use super::model::{ActivityRow, FollowUpRow, ReadModel};
use super::time::{Period, SECONDS_PER_DAY, Spread, day_end};
use super::timeline::Walk;
use crate::domain::EventType;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Name of this projection's checkpoint.
pub const NAME: &str = "rep_activity";

/// The activity rows of one walked customer.
pub fn rows(w: &Walk) -> (Vec<ActivityRow>, Vec<FollowUpRow>) {
    let followups = w
        .obligations
        .iter()
        .map(|o| FollowUpRow {
            customer_id: w.customer_id.to_string(),
            event_id: o.event_id.clone(),
            deal_id: o.deal_id.to_string(),
            due_on: o.due_on,
            owner_rep: w
                .owner_at(day_end(o.due_on))
                .map_or_else(String::new, |r| r.to_string()),
            fulfilled_at: o.fulfilled_at,
        })
        .collect();
    (w.activities.clone(), followups)
}

/// What the rep report is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepsParams {
    pub period: Period,
    /// Only this rep.
    pub rep: Option<String>,
}

impl Default for RepsParams {
    fn default() -> Self {
        RepsParams {
            period: Period::Quarter,
            rep: None,
        }
    }
}

/// One rep in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RepPeriod {
    pub rep: String,
    pub period: String,
    /// Events performed by the rep, per event type.
    pub interactions: BTreeMap<String, u64>,
    pub interactions_total: u64,
    /// Distinct customers the rep performed an interaction with (reassignments excluded).
    pub customers_touched: u64,
    /// Leads the rep sourced.
    pub new_leads: u64,
    /// Contracts signed while the rep owned the customer.
    pub deals_won: u64,
    pub won_value_minor: BTreeMap<String, i64>,
    /// Deals lost while the rep owned the customer.
    pub deals_lost: u64,
    /// deals_won / (deals_won + deals_lost).
    pub win_rate: Ratio,
    /// Days from lead to contract of the deals won.
    pub days_to_close: Spread,
    /// Follow-ups due in the period that were done late or are still not done past their date.
    pub overdue_followups: u64,
    pub reassigned_in: u64,
    pub reassigned_out: u64,
}

/// The `reps` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepsReport {
    pub meta: ReportMeta,
    pub params: RepsParams,
    pub rows: Vec<RepPeriod>,
}

/// Whether a follow-up due date was missed, as seen at the report's clock.
pub fn is_overdue(f: &FollowUpRow, now: Option<chrono::DateTime<chrono::Utc>>) -> bool {
    match f.fulfilled_at {
        Some(done) => done.date_naive() > f.due_on,
        None => now.is_some_and(|n| n.date_naive() > f.due_on),
    }
}

/// The row of `rep` in `period`, added empty if missing.
pub(super) fn row<'t>(
    table: &'t mut BTreeMap<(String, String), RepPeriod>,
    rep: &str,
    period: &str,
) -> &'t mut RepPeriod {
    table
        .entry((rep.to_string(), period.to_string()))
        .or_insert_with(|| RepPeriod {
            rep: rep.to_string(),
            period: period.to_string(),
            ..RepPeriod::default()
        })
}

/// Computes the rep report.
pub fn reps(model: &ReadModel, meta: ReportMeta, params: RepsParams) -> RepsReport {
    let mut table: BTreeMap<(String, String), RepPeriod> = BTreeMap::new();
    let mut touched: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    let mut close_days: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let wanted = |rep: &str| params.rep.as_deref().is_none_or(|r| r == rep);
    for a in &model.activities {
        let period = params.period.label(a.occurred_at);
        let kind = EventType::parse(&a.event_type);
        if wanted(&a.performer_rep) {
            let r = row(&mut table, &a.performer_rep, &period);
            *r.interactions.entry(a.event_type.clone()).or_insert(0) += 1;
            r.interactions_total += 1;
            if kind == Some(EventType::LeadSourced) {
                r.new_leads += 1;
            }
            if kind != Some(EventType::CustomerReassigned) {
                touched
                    .entry((a.performer_rep.clone(), period.clone()))
                    .or_default()
                    .insert(&a.customer_id);
            }
        }
        if a.applied && wanted(&a.owner_rep) {
            match kind {
                Some(EventType::ContractSigned) => {
                    let r = row(&mut table, &a.owner_rep, &period);
                    r.deals_won += 1;
                    if let (Some(v), Some(c)) = (a.value_minor, &a.currency) {
                        let sum = r.won_value_minor.entry(c.clone()).or_insert(0);
                        *sum = sum.saturating_add(v);
                    }
                    if let Some(s) = a.close_seconds {
                        close_days
                            .entry((a.owner_rep.clone(), period.clone()))
                            .or_default()
                            .push(s as f64 / SECONDS_PER_DAY);
                    }
                }
                Some(EventType::DealLost) => row(&mut table, &a.owner_rep, &period).deals_lost += 1,
                _ => {}
            }
        }
        if kind == Some(EventType::CustomerReassigned) && a.applied {
            if let Some(to) = a.to_rep.as_deref().filter(|r| wanted(r)) {
                row(&mut table, to, &period).reassigned_in += 1;
            }
            if let Some(from) = a.from_rep.as_deref().filter(|r| wanted(r)) {
                row(&mut table, from, &period).reassigned_out += 1;
            }
        }
    }
    for f in &model.followups {
        if wanted(&f.owner_rep) && is_overdue(f, meta.evaluated_at) {
            let period = params.period.label_date(f.due_on);
            row(&mut table, &f.owner_rep, &period).overdue_followups += 1;
        }
    }
    for (key, r) in table.iter_mut() {
        r.customers_touched = touched.get(key).map_or(0, |s| s.len() as u64);
        r.win_rate = Ratio::new(r.deals_won, r.deals_won + r.deals_lost);
        r.days_to_close = Spread::of(close_days.remove(key).unwrap_or_default());
    }
    RepsReport {
        meta,
        params,
        rows: table.into_values().collect(),
    }
}

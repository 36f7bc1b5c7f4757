//! Customer lifecycle projection: per customer, its state, owner, current deal and stage, last
//! interaction, next follow-up due and contract value per currency (`rm_customers`,
//! `rm_customer_values`); and the `customer ID` query.

use super::meta::ReportMeta;
use super::model::{
    CustomerRow, CustomerValueRow, DealRow, DealStatus, FollowUpRow, LifecycleState, ReadModel,
    StageStayRow,
};
use super::policy::Policy;
use super::time::{days_between, round6};
use super::timeline::Walk;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Name of this projection's checkpoint.
pub const NAME: &str = "lifecycle";

/// The lifecycle rows of one walked customer; `None` for a customer with no effective lead.
pub fn rows(policy: &Policy, w: &Walk) -> (Option<CustomerRow>, Vec<CustomerValueRow>) {
    let values = w
        .values
        .iter()
        .map(|(currency, t)| CustomerValueRow {
            customer_id: w.customer_id.to_string(),
            currency: currency.clone(),
            contracts_minor: t.contracts_minor,
            contract_count: t.contract_count,
            repeat_orders_minor: t.repeat_orders_minor,
        })
        .collect();
    let (Some(current), Some(first_seen), Some(owner)) =
        (w.current_deal(), w.first_seen, w.owner.as_ref())
    else {
        return (None, values);
    };
    let count = |s: DealStatus| w.deals.iter().filter(|d| d.status == s).count() as u32;
    let state = if w.latest_win_at.is_some() {
        if w.reengaged_since_win {
            LifecycleState::ReEngaged
        } else if w.followup_since_win {
            LifecycleState::Retained
        } else {
            LifecycleState::Won
        }
    } else if current.status == DealStatus::Open {
        LifecycleState::for_open_stage(current.stage())
    } else {
        LifecycleState::Lost
    };
    let last_interaction = w.last_interaction.unwrap_or(first_seen);
    let customer = CustomerRow {
        customer_id: w.customer_id.to_string(),
        company: w.company.clone().unwrap_or_default(),
        state,
        owner_rep: owner.to_string(),
        current_deal_id: Some(current.id.to_string()),
        current_stage: Some(current.stage()),
        current_stage_since: current.stays.last().map(|s| s.entered_at),
        first_seen_at: first_seen,
        last_interaction_at: last_interaction,
        next_followup_due: w
            .obligations
            .iter()
            .filter(|o| o.fulfilled_at.is_none())
            .map(|o| o.due_on)
            .max(),
        dormant_after: w
            .latest_win_at
            .map(|_| last_interaction + policy.dormant_after()),
        open_deals: count(DealStatus::Open),
        won_deals: count(DealStatus::Won),
        lost_deals: count(DealStatus::Lost),
        reengagements: w.reengagements,
        event_count: w.effective_count,
        last_position: w.last_position,
    };
    (Some(customer), values)
}

/// The state of a customer at `now`: its stored state, or `dormant` once a won customer has
/// passed its `dormant_after` time.
pub fn state_at(row: &CustomerRow, now: Option<DateTime<Utc>>) -> LifecycleState {
    match (row.dormant_after, now) {
        (Some(after), Some(now)) if now > after => LifecycleState::Dormant,
        _ => row.state,
    }
}

/// A stage stay with its length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StayView {
    #[serde(flatten)]
    pub stay: StageStayRow,
    /// Days in the stage: to the exit, or to the report's clock while still in it.
    pub days: Option<f64>,
}

/// The `customer ID` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerReport {
    pub meta: ReportMeta,
    pub customer: CustomerRow,
    /// The state at the report's clock (dormancy applied).
    pub state_now: LifecycleState,
    /// Days in the current stage at the report's clock.
    pub days_in_current_stage: Option<f64>,
    pub deals: Vec<DealRow>,
    pub stage_history: Vec<StayView>,
    pub values: Vec<CustomerValueRow>,
    pub followups: Vec<FollowUpRow>,
}

/// Builds the report of one customer; `None` when the customer is not in the read model.
pub fn customer_report(model: &ReadModel, meta: ReportMeta, id: &str) -> Option<CustomerReport> {
    let customer = model
        .customers
        .iter()
        .find(|c| c.customer_id == id)?
        .clone();
    let now = meta.evaluated_at;
    let state_now = state_at(&customer, now);
    let days_in_current_stage = match (customer.current_stage_since, now) {
        (Some(since), Some(now)) => Some(round6(days_between(since, now))),
        _ => None,
    };
    let stage_history = model
        .stays
        .iter()
        .filter(|s| s.customer_id == id)
        .map(|s| StayView {
            days: s
                .exited_at
                .or(now)
                .map(|end| round6(days_between(s.entered_at, end))),
            stay: s.clone(),
        })
        .collect();
    Some(CustomerReport {
        meta,
        state_now,
        days_in_current_stage,
        deals: model
            .deals
            .iter()
            .filter(|d| d.customer_id == id)
            .cloned()
            .collect(),
        stage_history,
        values: model
            .values
            .iter()
            .filter(|v| v.customer_id == id)
            .cloned()
            .collect(),
        followups: model
            .followups
            .iter()
            .filter(|f| f.customer_id == id)
            .cloned()
            .collect(),
        customer,
    })
}

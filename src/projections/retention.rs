//! Retention: what keeping customers brings, per period and overall (DOMAIN.md: keeping a
//! customer is cheaper than winning one; repeat purchases and the share of old customers are
//! what sales ops watch). A pure computation over the read model's activity rows (contracts and
//! follow-ups with an order value) and customer rows (dormancy, re-engagement).
//!
//! The definitions are in `projections/README.md`, "Retention". In short:
//! - a customer is **new** until its first contract; that contract's value is new-customer
//!   revenue, and every later contract and repeat order of the customer is **existing-customer
//!   revenue** (order by `occurred_at`, then log position);
//! - a **repeat order** is a follow-up with an order value;
//! - money stays in its currency: the shares are per currency, never summed across currencies.
//!
//! Costs to keep and to win are sales ops' input in the policy (`costs`), per period; without
//! them the report says so rather than guess.

use super::conversion::Ratio;
use super::lifecycle::state_at;
use super::meta::ReportMeta;
use super::model::{LifecycleState, ReadModel};
use super::policy::CostsPolicy;
use super::time::{Period, Spread, days_between};
use crate::domain::EventType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// What the retention report is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionParams {
    /// The length of each period of the per-period rows.
    pub period: Period,
}

impl Default for RetentionParams {
    fn default() -> Self {
        RetentionParams {
            period: Period::Quarter,
        }
    }
}

/// Revenue of one currency in one period, split by whether the customer had won before.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RevenueSplit {
    /// First contracts of customers (minor units).
    pub new_customers_minor: i64,
    /// Later contracts and repeat orders (minor units).
    pub existing_customers_minor: i64,
    /// existing / (new + existing), in [0, 1]; `None` without revenue.
    pub existing_share: Option<f64>,
}

/// One period of the retention report.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RetentionPeriod {
    pub period: String,
    /// Contracts signed in the period.
    pub contracts: u64,
    /// Of them, customers' first contracts (new customers won).
    pub first_contracts: u64,
    /// Follow-ups with an order value in the period.
    pub repeat_orders: u64,
    /// Distinct customers with a repeat order in the period.
    pub repeat_customers: u64,
    /// Distinct customers with existing-customer revenue in the period (a repeat order, or a
    /// contract after their first): the customers kept.
    pub kept_customers: u64,
    /// Revenue per currency, new against existing customers.
    pub revenue: BTreeMap<String, RevenueSplit>,
    /// What winning and keeping customers cost in the period, when the policy records it.
    pub costs: Option<PeriodCostFigures>,
}

/// One period's costs from the policy, beside what they bought.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PeriodCostFigures {
    pub currency: String,
    pub to_win_minor: i64,
    pub to_keep_minor: i64,
    /// to_win / first contracts (new customers won), rounded half up; `None` without one.
    pub per_new_customer_minor: Option<i64>,
    /// to_keep / kept customers, rounded half up; `None` without one.
    pub per_kept_customer_minor: Option<i64>,
    /// per kept customer / per new customer: what keeping one costs against winning one.
    pub keep_to_win: Option<f64>,
}

/// The `retention` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionReport {
    pub meta: ReportMeta,
    pub params: RetentionParams,
    /// Customers who have won at least once.
    pub won_customers: u64,
    /// Of them, those with at least one repeat order.
    pub repeat_customers: Ratio,
    /// Of them, those dormant at the report clock.
    pub dormant: Ratio,
    /// Of the customers ever dormant (dormant now, or come back since), those who came back.
    pub reengaged: Ratio,
    /// Days from a customer's first contract to its first repeat order after it.
    pub days_to_first_repeat_order: Spread,
    /// Where the costs come from, or why none are shown.
    pub costs: String,
    pub periods: Vec<RetentionPeriod>,
}

/// Why the report shows revenue only.
pub const COSTS_NOT_RECORDED: &str = "costs to keep and to win a customer are not recorded in \
    the ledger or its policy yet, so only revenue is shown";

/// What the report says of its costs when the policy records them.
pub const COSTS_FROM_POLICY: &str = "costs are sales ops' figures from the policy (costs): per \
    period, the cost to win a new customer (to_win / first contracts) beside the cost to keep \
    one (to_keep / customers who bought again)";

/// Computes the retention report at the report's clock (`meta.evaluated_at`), with the costs
/// the policy records (`costs`: checked with the policy; a period whose amounts do not parse
/// shows none).
pub fn retention(
    model: &ReadModel,
    meta: ReportMeta,
    params: RetentionParams,
    costs: Option<&CostsPolicy>,
) -> RetentionReport {
    // Every revenue row in the order it happened: contracts and follow-ups with a value.
    let mut money: Vec<_> = model
        .activities
        .iter()
        .filter(|a| {
            a.value_minor.is_some()
                && (a.event_type == EventType::ContractSigned.as_str()
                    || a.event_type == EventType::FollowUpLogged.as_str())
        })
        .collect();
    money.sort_by_key(|a| (a.occurred_at, a.position));
    let mut first_contract: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut first_repeat: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut periods: BTreeMap<String, RetentionPeriod> = BTreeMap::new();
    let mut repeat_in_period: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut kept_in_period: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for a in money {
        let label = params.period.label(a.occurred_at);
        let row = periods
            .entry(label.clone())
            .or_insert_with(|| RetentionPeriod {
                period: label.clone(),
                ..RetentionPeriod::default()
            });
        let customer = a.customer_id.as_str();
        let existing = first_contract.contains_key(customer);
        let is_contract = a.event_type == EventType::ContractSigned.as_str();
        if is_contract {
            row.contracts += 1;
            if !existing {
                row.first_contracts += 1;
                first_contract.insert(customer, a.occurred_at);
            }
        } else {
            row.repeat_orders += 1;
            repeat_in_period.entry(label).or_default().insert(customer);
            if existing {
                first_repeat.entry(customer).or_insert(a.occurred_at);
            }
        }
        let split = row
            .revenue
            .entry(a.currency.clone().unwrap_or_default())
            .or_default();
        let value = a.value_minor.unwrap_or(0);
        // A repeat order before any contract (a follow-up on a deal the history does not show
        // as won) is still revenue of a customer the company serves: existing.
        if is_contract && !existing {
            split.new_customers_minor = split.new_customers_minor.saturating_add(value);
        } else {
            split.existing_customers_minor = split.existing_customers_minor.saturating_add(value);
            kept_in_period
                .entry(row.period.clone())
                .or_default()
                .insert(customer);
        }
    }
    for (label, customers) in kept_in_period {
        if let Some(row) = periods.get_mut(&label) {
            row.kept_customers = customers.len() as u64;
        }
    }
    if let Some(policy) = costs {
        for row in periods.values_mut() {
            if let Ok(Some((to_win, to_keep))) = policy.in_minor(&row.period) {
                row.costs = Some(cost_figures(
                    &policy.currency,
                    to_win,
                    to_keep,
                    row.first_contracts,
                    row.kept_customers,
                ));
            }
        }
    }
    for (label, customers) in repeat_in_period {
        if let Some(row) = periods.get_mut(&label) {
            row.repeat_customers = customers.len() as u64;
        }
    }
    for row in periods.values_mut() {
        for split in row.revenue.values_mut() {
            let total = split.new_customers_minor + split.existing_customers_minor;
            split.existing_share =
                (total > 0).then(|| split.existing_customers_minor as f64 / total as f64);
        }
    }
    let won_customers = first_contract.len() as u64;
    let days: Vec<f64> = first_repeat
        .iter()
        .filter_map(|(customer, repeat)| {
            let won = first_contract.get(customer)?;
            Some(days_between(*won, *repeat))
        })
        .collect();
    let now = meta.evaluated_at;
    let mut dormant = 0;
    let mut ever_dormant = 0;
    let mut came_back = 0;
    for c in &model.customers {
        if !first_contract.contains_key(c.customer_id.as_str()) {
            continue;
        }
        let is_dormant = state_at(c, now) == LifecycleState::Dormant;
        dormant += u64::from(is_dormant);
        if is_dormant || c.reengagements > 0 {
            ever_dormant += 1;
        }
        came_back += u64::from(c.reengagements > 0);
    }
    RetentionReport {
        meta,
        params,
        won_customers,
        repeat_customers: Ratio::new(first_repeat.len() as u64, won_customers),
        dormant: Ratio::new(dormant, won_customers),
        reengaged: Ratio::new(came_back, ever_dormant),
        days_to_first_repeat_order: Spread::of(days),
        costs: if costs.is_some() {
            COSTS_FROM_POLICY
        } else {
            COSTS_NOT_RECORDED
        }
        .to_string(),
        periods: periods.into_values().collect(),
    }
}

/// A period's costs per customer won and kept.
fn cost_figures(
    currency: &str,
    to_win: i64,
    to_keep: i64,
    won: u64,
    kept: u64,
) -> PeriodCostFigures {
    // Half up: amounts and counts are never negative.
    let per = |amount: i64, n: u64| {
        (n > 0).then(|| ((i128::from(amount) * 2 + i128::from(n)) / (2 * i128::from(n))) as i64)
    };
    let (per_new, per_kept) = (per(to_win, won), per(to_keep, kept));
    PeriodCostFigures {
        currency: currency.to_string(),
        to_win_minor: to_win,
        to_keep_minor: to_keep,
        per_new_customer_minor: per_new,
        per_kept_customer_minor: per_kept,
        keep_to_win: match (per_kept, per_new) {
            (Some(k), Some(n)) if n > 0 => Some(super::time::round6(k as f64 / n as f64)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::meta::ReportAt;
    use crate::projections::model::ActivityRow;
    use chrono::TimeZone;

    fn money(
        customer: &str,
        kind: EventType,
        day: (i32, u32, u32),
        minor: i64,
        position: u64,
    ) -> ActivityRow {
        ActivityRow {
            customer_id: customer.into(),
            event_id: format!("e{position}"),
            position,
            occurred_at: Utc.with_ymd_and_hms(day.0, day.1, day.2, 9, 0, 0).unwrap(),
            event_type: kind.as_str().into(),
            deal_id: Some("d1".into()),
            performer_rep: "rep-1".into(),
            owner_rep: "rep-1".into(),
            value_minor: Some(minor),
            currency: Some("EUR".into()),
            close_seconds: None,
            from_rep: None,
            to_rep: None,
            applied: true,
        }
    }

    /// Customer a: a contract of 100.00 on 10 January, a repeat order of 30.00 on 10 February
    /// and a second contract of 50.00 on 5 April; customer b: a contract of 200.00 on
    /// 1 February.
    fn two_customers() -> ReadModel {
        ReadModel {
            activities: vec![
                money("a", EventType::ContractSigned, (2026, 1, 10), 10_000, 1),
                money("a", EventType::FollowUpLogged, (2026, 2, 10), 3_000, 3),
                money("b", EventType::ContractSigned, (2026, 2, 1), 20_000, 2),
                money("a", EventType::ContractSigned, (2026, 4, 5), 5_000, 4),
            ],
            ..ReadModel::default()
        }
    }

    /// Given customer a: a contract of 100.00 on 10 January, a repeat order of 30.00 on
    /// 10 February and a second contract of 50.00 on 5 April; and customer b: a contract of
    /// 200.00 on 1 February. When retention is computed by quarter, then 2026-Q1 has two first
    /// contracts (300.00 new) and one repeat order (30.00 existing: a share of 30/330), 2026-Q2
    /// one contract of an existing customer (a share of 1), and a's first repeat order came 31
    /// days after its first contract.
    #[test]
    fn revenue_by_new_and_existing_customers_computed_by_hand() {
        let model = two_customers();
        let meta = ReportMeta::live(Some(4), Some(4), None, &ReportAt::default());
        let r = retention(&model, meta, RetentionParams::default(), None);
        assert_eq!(r.won_customers, 2);
        assert_eq!((r.repeat_customers.count, r.repeat_customers.of), (1, 2));
        let q1 = &r.periods[0];
        assert_eq!(q1.period, "2026-Q1");
        assert_eq!(
            (q1.contracts, q1.first_contracts, q1.repeat_orders),
            (2, 2, 1)
        );
        let eur = &q1.revenue["EUR"];
        assert_eq!(
            (eur.new_customers_minor, eur.existing_customers_minor),
            (30_000, 3_000)
        );
        assert_eq!(eur.existing_share, Some(3_000.0 / 33_000.0));
        let q2 = &r.periods[1];
        assert_eq!((q2.contracts, q2.first_contracts), (1, 0));
        assert_eq!(q2.revenue["EUR"].existing_share, Some(1.0));
        assert_eq!(r.days_to_first_repeat_order.median, Some(31.0));
        assert_eq!(r.costs, COSTS_NOT_RECORDED);
        assert_eq!((q1.kept_customers, q2.kept_customers), (1, 1));
        assert!(q1.costs.is_none());
    }

    /// Given the same history and costs of 900.00 to win and 50.00 to keep in 2026-Q1, when
    /// retention is computed, then winning a customer cost 450.00 (two first contracts),
    /// keeping one 50.00 (one customer bought again), a ratio of 1/9; 2026-Q2 has no costs.
    #[test]
    fn costs_per_customer_won_and_kept_computed_by_hand() {
        let model = two_customers();
        let costs = CostsPolicy {
            currency: "EUR".into(),
            periods: BTreeMap::from([(
                "2026-Q1".into(),
                crate::projections::policy::PeriodCosts {
                    to_win: "900.00".into(),
                    to_keep: "50".into(),
                },
            )]),
        };
        assert!(costs.check().is_ok());
        let meta = ReportMeta::live(Some(4), Some(4), None, &ReportAt::default());
        let r = retention(&model, meta, RetentionParams::default(), Some(&costs));
        assert_eq!(r.costs, COSTS_FROM_POLICY);
        let q1 = r.periods[0].costs.as_ref().unwrap();
        assert_eq!(
            (q1.per_new_customer_minor, q1.per_kept_customer_minor),
            (Some(45_000), Some(5_000))
        );
        assert_eq!(q1.keep_to_win, Some(0.111111));
        assert!(r.periods[1].costs.is_none());
        let mut bad = costs.clone();
        bad.periods.insert(
            "2026-q2".into(),
            crate::projections::policy::PeriodCosts {
                to_win: "1".into(),
                to_keep: "1".into(),
            },
        );
        assert!(bad.check().unwrap_err().to_string().contains("\"2026-q2\""));
        let mut bad = costs;
        bad.periods.get_mut("2026-Q1").unwrap().to_keep = "-5".into();
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("costs.periods.2026-Q1.to_keep")
        );
    }
}

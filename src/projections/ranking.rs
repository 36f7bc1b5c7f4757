//! Customer ranking: customers classed A+ / A / B / C by their revenue in a period (the 80/20
//! rule of DOMAIN.md: a few customers bring most of the revenue, and they deserve most of the
//! care). A pure computation over the read model's revenue rows, the ones retention counts:
//! contracts and follow-ups with an order value, each in the period of its `occurred_at`.
//!
//! The definitions are in `projections/README.md`, "Customer ranking". In short:
//! - with `fx` in the policy, every amount is converted into the home currency at the rate in
//!   force on its `occurred_at` date and one ranking is made; an amount without a rate is left
//!   out and counted as unconverted, per currency;
//! - without `fx`, money is never summed across currencies: each currency has its own ranking;
//! - customers are ordered by revenue (highest first, then by id), and only customers with
//!   revenue above zero in the period are ranked;
//! - the class comes from the policy (`ranking`): by the revenue share of the customers ranked
//!   above, or by bands.

use super::meta::ReportMeta;
use super::model::ReadModel;
use super::policy::{Policy, RANKING_CLASSES};
use super::time::{Period, round6};
use crate::domain::{Currency, EventType};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub use super::policy::{RankingPolicy, RankingPolicyError};

/// The customers listed for the chosen period unless asked otherwise.
pub const RANKING_LIMIT_DEFAULT: usize = 20;
/// The share of customers whose share of revenue the Pareto figure gives (the 20 of 80/20).
pub const PARETO_TOP_PERCENT: u64 = 20;
/// The class of a customer without revenue in a period, in the movement between periods.
pub const NO_CLASS: &str = "none";

/// What the ranking is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankingParams {
    /// The length of each period.
    pub period: Period,
    /// A time inside the period whose customers are listed; default the latest period with
    /// revenue.
    pub within: Option<DateTime<Utc>>,
    /// How many customers of that period are listed (0: all).
    pub limit: usize,
}

impl Default for RankingParams {
    fn default() -> Self {
        RankingParams {
            period: Period::Quarter,
            within: None,
            limit: RANKING_LIMIT_DEFAULT,
        }
    }
}

/// One class of one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassShare {
    pub class: &'static str,
    pub customers: u64,
    pub revenue_minor: i64,
    /// revenue / the period's revenue, in [0, 1]; `None` without revenue.
    pub share: Option<f64>,
}

/// Amounts a ranking could not convert into its currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unconverted {
    pub currency: String,
    pub amount_minor: i64,
    pub events: u64,
}

/// One period of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingPeriod {
    pub period: String,
    /// Customers with revenue in the period.
    pub customers: u64,
    pub revenue_minor: i64,
    /// How many customers the top [`PARETO_TOP_PERCENT`]% is (rounded up).
    pub top_customers: u64,
    /// The share of the period's revenue the top customers bring.
    pub top_share: Option<f64>,
    /// Every class, best first; their customers and revenue add up to the period's.
    pub classes: Vec<ClassShare>,
    /// Amounts left out for want of a rate (with `fx` only).
    pub unconverted: Vec<Unconverted>,
}

/// One customer of the listed period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedCustomer {
    pub rank: u64,
    pub customer_id: String,
    pub company: Option<String>,
    pub revenue_minor: i64,
    pub share: Option<f64>,
    /// The share of the customers ranked above it and its own.
    pub cumulative_share: Option<f64>,
    pub class: &'static str,
    /// Its class in the period before ([`NO_CLASS`] without revenue there).
    pub class_before: &'static str,
    /// Its open deals now (the potential beside the revenue).
    pub open_deals: u32,
}

/// How many customers moved from one class to another between the period before and the
/// listed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassMove {
    pub from: &'static str,
    pub to: &'static str,
    pub customers: u64,
}

/// The ranking of one currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrencyRanking {
    /// The currency the revenue is in.
    pub currency: String,
    /// Whether other currencies were converted into it (`fx`).
    pub converted: bool,
    /// Every period with revenue, in order.
    pub periods: Vec<RankingPeriod>,
    /// The listed period (`None` without revenue).
    pub listed_period: Option<String>,
    /// The period before it, which the movement compares with.
    pub period_before: Option<String>,
    /// Its customers, best first, up to the limit.
    pub customers: Vec<RankedCustomer>,
    /// Class changes from the period before to the listed one (pairs with customers only).
    pub movement: Vec<ClassMove>,
}

/// The `ranking` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingReport {
    pub meta: ReportMeta,
    pub params: RankingParams,
    /// The policy's classes, in words.
    pub classes_by: String,
    /// The rates' version, when amounts were converted.
    pub rates_version: Option<String>,
    /// Why there is one ranking per currency, when there is.
    pub per_currency: Option<&'static str>,
    /// One ranking in the home currency (with `fx`), or one per currency.
    pub rankings: Vec<CurrencyRanking>,
}

/// Why the rankings are per currency.
pub const PER_CURRENCY_WITHOUT_FX: &str = "the policy has no exchange rates (fx), so money is \
    never summed across currencies: each currency has its own ranking";

/// One ranking's revenue per period and customer, before classing.
#[derive(Default)]
struct Revenue<'a> {
    by_period: BTreeMap<String, HashMap<&'a str, i64>>,
    unconverted: BTreeMap<String, BTreeMap<String, (i64, u64)>>,
}

/// Computes the ranking under `policy` (its `fx` and `ranking`).
pub fn ranking(
    model: &ReadModel,
    policy: &Policy,
    meta: ReportMeta,
    params: RankingParams,
) -> RankingReport {
    // `Policy::check` refused rates that do not parse; an unchecked policy converts nothing.
    let converter = policy.fx.as_ref().and_then(|fx| fx.converter().ok());
    let mut by_currency: BTreeMap<String, Revenue> = BTreeMap::new();
    for a in &model.activities {
        let (Some(value), Some(code)) = (a.value_minor, a.currency.as_deref()) else {
            continue;
        };
        if a.event_type != EventType::ContractSigned.as_str()
            && a.event_type != EventType::FollowUpLogged.as_str()
        {
            continue;
        }
        let label = params.period.label(a.occurred_at);
        let (ranked_in, amount) = match &converter {
            None => (code.to_string(), Ok(value)),
            Some(c) => (
                c.home().as_str().to_string(),
                Currency::new(code).map_err(|_| ()).and_then(|from| {
                    c.convert(value, from, a.occurred_at.date_naive())
                        .map_err(|_| ())
                }),
            ),
        };
        let revenue = by_currency.entry(ranked_in).or_default();
        match amount {
            Ok(v) => {
                let sum = revenue
                    .by_period
                    .entry(label)
                    .or_default()
                    .entry(a.customer_id.as_str())
                    .or_insert(0);
                *sum = sum.saturating_add(v);
            }
            Err(()) => {
                let left = revenue
                    .unconverted
                    .entry(label)
                    .or_default()
                    .entry(code.to_string())
                    .or_insert((0, 0));
                left.0 = left.0.saturating_add(value);
                left.1 += 1;
            }
        }
    }
    let companies: HashMap<&str, (&str, u32)> = model
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), (c.company.as_str(), c.open_deals)))
        .collect();
    let rankings = by_currency
        .into_iter()
        .map(|(currency, revenue)| {
            rank_currency(
                &currency,
                converter.is_some(),
                revenue,
                policy,
                &params,
                &companies,
            )
        })
        .collect();
    RankingReport {
        meta,
        params,
        classes_by: classes_by(&policy.ranking),
        rates_version: converter.as_ref().map(|c| c.version().to_string()),
        per_currency: converter.is_none().then_some(PER_CURRENCY_WITHOUT_FX),
        rankings,
    }
}

/// The policy's classes in words.
fn classes_by(policy: &RankingPolicy) -> String {
    match policy {
        RankingPolicy::CumulativeShare {
            a_plus_percent,
            a_percent,
            b_percent,
        } => format!(
            "cumulative share of revenue of the customers ranked above: A+ below {a_plus_percent}%, A below {a_percent}%, B below {b_percent}%, else C"
        ),
        RankingPolicy::Bands {
            a_plus_from,
            a_from,
            b_from,
        } => format!(
            "revenue bands in the home currency: A+ from {a_plus_from}, A from {a_from}, B from {b_from}, else C"
        ),
    }
}

/// One period's customers, best first, each with its class.
struct Classed<'a> {
    total: i64,
    rows: Vec<(&'a str, i64, &'static str, i64)>, // customer, revenue, class, cumulative
}

fn class_period<'a>(
    customers: &HashMap<&'a str, i64>,
    policy: &RankingPolicy,
    currency: &str,
) -> Classed<'a> {
    let mut sorted: Vec<(&str, i64)> = customers
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(c, v)| (*c, *v))
        .collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total = sorted.iter().fold(0i64, |t, (_, v)| t.saturating_add(*v));
    let mut before = 0i64;
    let rows = sorted
        .into_iter()
        .map(|(customer, v)| {
            let class = policy.class_of(v, before, total, currency);
            before = before.saturating_add(v);
            (customer, v, class, before)
        })
        .collect();
    Classed { total, rows }
}

fn share(part: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| round6(part as f64 / total as f64))
}

fn rank_currency(
    currency: &str,
    converted: bool,
    revenue: Revenue,
    policy: &Policy,
    params: &RankingParams,
    companies: &HashMap<&str, (&str, u32)>,
) -> CurrencyRanking {
    let classed: BTreeMap<&String, Classed> = revenue
        .by_period
        .iter()
        .map(|(label, customers)| (label, class_period(customers, &policy.ranking, currency)))
        .collect();
    let mut labels: Vec<&String> = classed.keys().copied().collect();
    for label in revenue.unconverted.keys() {
        if !classed.contains_key(label) {
            labels.push(label);
        }
    }
    labels.sort();
    let empty = Classed {
        total: 0,
        rows: Vec::new(),
    };
    let periods = labels
        .iter()
        .map(|label| {
            let c = classed.get(label).unwrap_or(&empty);
            let n = c.rows.len() as u64;
            let top = n.div_ceil(100 / PARETO_TOP_PERCENT);
            let top_revenue = c
                .rows
                .iter()
                .take(top as usize)
                .fold(0i64, |t, r| t.saturating_add(r.1));
            let classes = RANKING_CLASSES
                .iter()
                .map(|class| {
                    let of: Vec<_> = c.rows.iter().filter(|r| r.2 == *class).collect();
                    let revenue_minor = of.iter().fold(0i64, |t, r| t.saturating_add(r.1));
                    ClassShare {
                        class,
                        customers: of.len() as u64,
                        revenue_minor,
                        share: share(revenue_minor, c.total),
                    }
                })
                .collect();
            let unconverted = revenue
                .unconverted
                .get(*label)
                .map(|by| {
                    by.iter()
                        .map(|(currency, (amount, events))| Unconverted {
                            currency: currency.clone(),
                            amount_minor: *amount,
                            events: *events,
                        })
                        .collect()
                })
                .unwrap_or_default();
            RankingPeriod {
                period: (*label).clone(),
                customers: n,
                revenue_minor: c.total,
                top_customers: top,
                top_share: share(top_revenue, c.total),
                classes,
                unconverted,
            }
        })
        .collect();
    let listed = match params.within {
        Some(t) => Some(params.period.label(t)),
        None => classed.keys().next_back().map(|l| (*l).clone()),
    };
    let before_label = listed.as_ref().map(|label| {
        // The period before: the one holding the instant before the listed one's start.
        let start = crate::projections::time::parse_time_start(label)
            .map(|t| params.period.bounds(t).0)
            .unwrap_or_default();
        params.period.label(start - Duration::microseconds(1))
    });
    let classes_in = |label: Option<&String>| -> HashMap<&str, &'static str> {
        label
            .and_then(|l| classed.get(l))
            .map(|c| c.rows.iter().map(|r| (r.0, r.2)).collect())
            .unwrap_or_default()
    };
    let now = classes_in(listed.as_ref());
    let before = classes_in(before_label.as_ref());
    let mut moves: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let index = |class: &str| {
        RANKING_CLASSES
            .iter()
            .position(|c| *c == class)
            .unwrap_or(RANKING_CLASSES.len())
    };
    for customer in now
        .keys()
        .chain(before.keys().filter(|c| !now.contains_key(*c)))
    {
        let from = before.get(customer).copied().unwrap_or(NO_CLASS);
        let to = now.get(customer).copied().unwrap_or(NO_CLASS);
        *moves.entry((index(from), index(to))).or_insert(0) += 1;
    }
    let name = |i: usize| RANKING_CLASSES.get(i).copied().unwrap_or(NO_CLASS);
    let movement = moves
        .into_iter()
        .map(|((from, to), customers)| ClassMove {
            from: name(from),
            to: name(to),
            customers,
        })
        .collect();
    let customers = listed
        .as_ref()
        .and_then(|l| classed.get(l))
        .map(|c| {
            let take = if params.limit == 0 {
                usize::MAX
            } else {
                params.limit
            };
            c.rows
                .iter()
                .take(take)
                .enumerate()
                .map(|(i, (customer, v, class, cumulative))| {
                    let (company, open_deals) = companies
                        .get(customer)
                        .map(|(name, open)| (Some(name.to_string()), *open))
                        .unwrap_or((None, 0));
                    RankedCustomer {
                        rank: i as u64 + 1,
                        customer_id: customer.to_string(),
                        company,
                        revenue_minor: *v,
                        share: share(*v, c.total),
                        cumulative_share: share(*cumulative, c.total),
                        class,
                        class_before: before.get(customer).copied().unwrap_or(NO_CLASS),
                        open_deals,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    CurrencyRanking {
        currency: currency.to_string(),
        converted,
        periods,
        listed_period: listed,
        period_before: before_label,
        customers,
        movement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::fx::{FxPolicy, FxRateEntry};
    use crate::projections::meta::ReportAt;
    use crate::projections::model::ActivityRow;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn revenue(customer: &str, day: (i32, u32, u32), minor: i64, currency: &str) -> ActivityRow {
        ActivityRow {
            customer_id: customer.into(),
            event_id: format!("{customer}-{day:?}-{minor}"),
            position: 0,
            occurred_at: Utc.with_ymd_and_hms(day.0, day.1, day.2, 9, 0, 0).unwrap(),
            event_type: EventType::ContractSigned.as_str().into(),
            deal_id: Some("d1".into()),
            performer_rep: "rep-1".into(),
            owner_rep: "rep-1".into(),
            value_minor: Some(minor),
            currency: Some(currency.into()),
            close_seconds: None,
            from_rep: None,
            to_rep: None,
            applied: true,
        }
    }

    fn report(model: &ReadModel, policy: &Policy, params: RankingParams) -> RankingReport {
        let meta = ReportMeta::live(Some(1), Some(1), None, &ReportAt::default());
        ranking(model, policy, meta, params)
    }

    /// Given five customers in 2026-Q2 with 500, 300, 100, 60 and 40 EUR (1,000 in all), when
    /// they are ranked under the default classes (A+ below 50%, A below 80%, B below 95%), then
    /// a (nothing above it) is A+, b (50% above it) A, c (80%) B, d (90%) B and e (96%) C; the
    /// top 20% is one customer with half the revenue; and against 2026-Q1, where only b bought
    /// (so was A+), b moved A+ → A and the others came from none.
    #[test]
    fn classes_and_the_pareto_share_computed_by_hand() {
        let model = ReadModel {
            activities: vec![
                revenue("b", (2026, 2, 1), 7_000, "EUR"),
                revenue("a", (2026, 4, 2), 50_000, "EUR"),
                revenue("b", (2026, 5, 2), 30_000, "EUR"),
                revenue("c", (2026, 5, 3), 10_000, "EUR"),
                revenue("d", (2026, 6, 3), 6_000, "EUR"),
                revenue("e", (2026, 6, 4), 4_000, "EUR"),
            ],
            ..ReadModel::default()
        };
        let r = report(&model, &Policy::default(), RankingParams::default());
        assert_eq!(r.per_currency, Some(PER_CURRENCY_WITHOUT_FX));
        let eur = &r.rankings[0];
        assert_eq!(eur.listed_period.as_deref(), Some("2026-Q2"));
        assert_eq!(eur.period_before.as_deref(), Some("2026-Q1"));
        let classes: Vec<_> = eur
            .customers
            .iter()
            .map(|c| (c.customer_id.as_str(), c.class, c.class_before))
            .collect();
        assert_eq!(
            classes,
            [
                ("a", "A+", "none"),
                ("b", "A", "A+"),
                ("c", "B", "none"),
                ("d", "B", "none"),
                ("e", "C", "none"),
            ]
        );
        let q2 = &eur.periods[1];
        assert_eq!((q2.customers, q2.revenue_minor), (5, 100_000));
        assert_eq!((q2.top_customers, q2.top_share), (1, Some(0.5)));
        let by_class: Vec<_> = q2
            .classes
            .iter()
            .map(|c| (c.class, c.customers, c.revenue_minor))
            .collect();
        assert_eq!(
            by_class,
            [
                ("A+", 1, 50_000),
                ("A", 1, 30_000),
                ("B", 2, 16_000),
                ("C", 1, 4_000)
            ]
        );
        assert_eq!(eur.customers[3].cumulative_share, Some(0.96));
        let moves: Vec<_> = eur
            .movement
            .iter()
            .map(|m| (m.from, m.to, m.customers))
            .collect();
        assert_eq!(
            moves,
            [
                ("A+", "A", 1),
                ("none", "A+", 1),
                ("none", "B", 2),
                ("none", "C", 1)
            ]
        );
    }

    /// Given 1,000,000 JPY at 0.0062 EUR and 5,000.00 EUR, when ranked with fx (home EUR),
    /// then the JPY customer has 6,200.00 EUR and ranks first; a USD amount with no rate is
    /// left out and counted; without fx each currency has its own ranking.
    #[test]
    fn amounts_convert_into_the_home_currency_or_rank_per_currency() {
        let model = ReadModel {
            activities: vec![
                revenue("jp", (2026, 3, 1), 1_000_000, "JPY"),
                revenue("eu", (2026, 3, 2), 500_000, "EUR"),
                revenue("us", (2026, 3, 3), 100, "USD"),
            ],
            ..ReadModel::default()
        };
        let policy = Policy {
            fx: Some(FxPolicy {
                home_currency: "EUR".into(),
                version: "test".into(),
                rates: BTreeMap::from([(
                    "JPY".into(),
                    vec![FxRateEntry {
                        from: "2026-01-01".parse().unwrap(),
                        home_per_unit: "0.0062".into(),
                    }],
                )]),
            }),
            ..Policy::default()
        };
        let r = report(&model, &policy, RankingParams::default());
        assert_eq!(r.rates_version.as_deref(), Some("test"));
        assert_eq!(r.rankings.len(), 1);
        let eur = &r.rankings[0];
        assert!(eur.converted);
        let top: Vec<_> = eur
            .customers
            .iter()
            .map(|c| (c.customer_id.as_str(), c.revenue_minor))
            .collect();
        assert_eq!(top, [("jp", 620_000), ("eu", 500_000)]);
        assert_eq!(
            eur.periods[0].unconverted,
            [Unconverted {
                currency: "USD".into(),
                amount_minor: 100,
                events: 1
            }]
        );
        let apart = report(&model, &Policy::default(), RankingParams::default());
        let currencies: Vec<_> = apart.rankings.iter().map(|r| r.currency.as_str()).collect();
        assert_eq!(currencies, ["EUR", "JPY", "USD"]);
    }

    /// Bands class by revenue alone: 100.00 and more is A+, 50.00 A, 10.00 B.
    #[test]
    fn bands_class_by_revenue() {
        let policy = Policy {
            fx: Some(FxPolicy {
                home_currency: "EUR".into(),
                version: "test".into(),
                rates: BTreeMap::new(),
            }),
            ranking: RankingPolicy::Bands {
                a_plus_from: "100.00".into(),
                a_from: "50.00".into(),
                b_from: "10.00".into(),
            },
            ..Policy::default()
        };
        assert!(policy.ranking.check(policy.fx.as_ref()).is_ok());
        let model = ReadModel {
            activities: vec![
                revenue("a", (2026, 3, 1), 10_000, "EUR"),
                revenue("b", (2026, 3, 1), 9_999, "EUR"),
                revenue("c", (2026, 3, 1), 1_000, "EUR"),
                revenue("d", (2026, 3, 1), 999, "EUR"),
            ],
            ..ReadModel::default()
        };
        let r = report(&model, &policy, RankingParams::default());
        let classes: Vec<_> = r.rankings[0].customers.iter().map(|c| c.class).collect();
        assert_eq!(classes, ["A+", "A", "B", "C"]);
        assert_eq!(
            RankingPolicy::Bands {
                a_plus_from: "1".into(),
                a_from: "2".into(),
                b_from: "1".into()
            }
            .check(policy.fx.as_ref()),
            Err(RankingPolicyError::BandOrder)
        );
        assert_eq!(
            policy.ranking.check(None),
            Err(RankingPolicyError::BandsWithoutFx)
        );
    }

    proptest! {
        /// For any revenues: the classes' customers and revenue add up to the period's, their
        /// shares to 1 (within rounding), classes never improve down the ranking, and the top
        /// 20% bring at least 20% of the revenue.
        #[test]
        fn class_shares_add_up_and_classes_fall_down_the_ranking(
            amounts in proptest::collection::vec((0usize..30, 1i64..1_000_000), 1..120),
        ) {
            let model = ReadModel {
                activities: amounts
                    .iter()
                    .enumerate()
                    .map(|(i, (c, v))| {
                        let mut row = revenue(&format!("c{c}"), (2026, 1, 1 + (i % 28) as u32), *v, "EUR");
                        row.event_id = format!("e{i}");
                        row
                    })
                    .collect(),
                ..ReadModel::default()
            };
            let params = RankingParams { limit: 0, ..RankingParams::default() };
            let r = report(&model, &Policy::default(), params);
            let eur = &r.rankings[0];
            let p = &eur.periods[0];
            let customers: u64 = p.classes.iter().map(|c| c.customers).sum();
            let revenue: i64 = p.classes.iter().map(|c| c.revenue_minor).sum();
            prop_assert_eq!(customers, p.customers);
            prop_assert_eq!(revenue, p.revenue_minor);
            let shares: f64 = p.classes.iter().filter_map(|c| c.share).sum();
            prop_assert!((shares - 1.0).abs() < 1e-5, "{}", shares);
            let rank = |class: &str| RANKING_CLASSES.iter().position(|c| *c == class).unwrap();
            for pair in eur.customers.windows(2) {
                prop_assert!(pair[0].revenue_minor >= pair[1].revenue_minor);
                prop_assert!(rank(pair[0].class) <= rank(pair[1].class));
            }
            prop_assert_eq!(eur.customers.len() as u64, p.customers);
            prop_assert_eq!(eur.customers[0].class, "A+");
            prop_assert!(p.top_share.unwrap() >= 0.2 - 1e-6);
        }
    }
}

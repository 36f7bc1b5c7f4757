//! The pipeline policy sales ops may change without recompiling: stage order, stalled thresholds
//! per stage and the dormant threshold. Shipped defaults are embedded; a file overrides them.

use super::fx::{FxPolicy, FxPolicyError};
use crate::domain::{Currency, Money, Stage};
use crate::limits::THRESHOLD_DAYS_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The shipped policy, embedded so that a binary without the `projections/` folder still works.
pub const DEFAULT_POLICY_JSON: &str = include_str!("../../projections/policy.json");
/// Environment variable naming a policy file to use instead of the defaults.
pub const POLICY_ENV: &str = "PIPELINE_LEDGER_POLICY";
/// Where the policy is looked for when neither a path nor the environment names one.
pub const POLICY_DEFAULT_PATH: &str = "projections/policy.json";

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {origin} is not valid JSON for a policy: {source}")]
    Parse {
        origin: String,
        source: serde_json::Error,
    },
    #[error(
        "policy {origin}: stage_order must list each of lead, first_visit, demo, negotiation, won exactly once, with won last; got {got:?}"
    )]
    StageOrder { origin: String, got: Vec<Stage> },
    #[error(
        "policy {origin}: stalled thresholds missing for stage {stage:?}; give no_activity_days and no_progress_days for every stage before won"
    )]
    MissingThreshold { origin: String, stage: Stage },
    #[error("policy {origin}: {what} is {percent}; use a percentage from 0 to 100")]
    BadPercent {
        origin: String,
        what: String,
        percent: u8,
    },
    #[error("policy {origin}: {source}")]
    Scorecard {
        origin: String,
        source: ScorecardPolicyError,
    },
    #[error("policy {origin}: {source}")]
    Fx {
        origin: String,
        source: FxPolicyError,
    },
    #[error("policy {origin}: {source}")]
    Ranking {
        origin: String,
        source: RankingPolicyError,
    },
    #[error("policy {origin}: {source}")]
    Costs {
        origin: String,
        source: CostsPolicyError,
    },
    #[error("policy {origin}: {what} is {days} days; use 1 to {THRESHOLD_DAYS_MAX}")]
    BadThreshold {
        origin: String,
        what: String,
        days: u32,
    },
}

/// Stalled thresholds of one stage, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalledThreshold {
    /// A deal with no interaction for longer than this is stalled ("no activity").
    pub no_activity_days: u32,
    /// A deal that has not changed stage for longer than this is stalled ("no progress").
    pub no_progress_days: u32,
}

/// The pipeline policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Stages in pipeline order; a move to a later stage advances, to an earlier one moves back.
    pub stage_order: Vec<Stage>,
    /// Stalled thresholds per open stage (every stage but won).
    pub stalled: BTreeMap<Stage, StalledThreshold>,
    /// A won customer with no interaction for longer than this is dormant.
    pub dormant_after_days: u32,
    /// A cohort (a group of the funnel's cohort view) with more than this percentage of its
    /// deals still open is flagged immature: its win rate and conversion will still change, so
    /// a low figure is no collapse yet. Optional in a policy file (default 50).
    #[serde(default = "default_cohort_immature_open_percent")]
    pub cohort_immature_open_percent: u8,
    /// The quarterly rep scorecard's weights, cap and targets (`projections/README.md`, "Rep
    /// scorecard"). Optional in a policy file (the shipped defaults).
    #[serde(default)]
    pub scorecard: ScorecardPolicy,
    /// Dated exchange rates into a home currency (`projections/README.md`, "Money in a home
    /// currency"). Optional: without them, money stays in its own currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx: Option<FxPolicy>,
    /// How customers are classed A+ / A / B / C by revenue (`projections/README.md`, "Customer
    /// ranking"). Optional in a policy file (the shipped default: cumulative shares 50/80/95).
    #[serde(default)]
    pub ranking: RankingPolicy,
    /// What winning and keeping customers cost per period (`projections/README.md`,
    /// "Retention"). Optional: without it, retention shows revenue only and says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<CostsPolicy>,
}

/// The share of open deals above which a cohort is immature, unless the policy says otherwise.
pub const COHORT_IMMATURE_OPEN_PERCENT_DEFAULT: u8 = 50;

fn default_cohort_immature_open_percent() -> u8 {
    COHORT_IMMATURE_OPEN_PERCENT_DEFAULT
}

impl Default for Policy {
    fn default() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a released build.
        Policy::from_json(DEFAULT_POLICY_JSON, "embedded default").expect("embedded policy valid")
    }
}

impl Policy {
    /// A fingerprint of the policy's content (FNV-1a over its canonical JSON: stable across
    /// builds and platforms), recorded by the read models derived under it.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        let mut hasher = fnv::FnvHasher::default();
        // Only what read models are folded under: the immature-cohort threshold and the
        // scorecard are read when a report is computed, so changing them must not make every
        // read model rebuild.
        let mut value = serde_json::to_value(self).expect("a policy serializes");
        if let Some(fields) = value.as_object_mut() {
            fields.remove("cohort_immature_open_percent");
            fields.remove("scorecard");
            fields.remove("fx");
            fields.remove("ranking");
            fields.remove("costs");
        }
        let json = value.to_string();
        hasher.write(json.as_bytes());
        hasher.finish()
    }

    /// Parses and checks a policy; `origin` names it in error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy: Policy = serde_json::from_str(text).map_err(|source| PolicyError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        policy.check(origin)?;
        Ok(policy)
    }

    /// Loads the policy from `path` if given, else from `$PIPELINE_LEDGER_POLICY`, else from
    /// `projections/policy.json` in the working directory if it exists, else the shipped defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyError> {
        let chosen: Option<PathBuf> = match path {
            Some(p) => Some(p.to_path_buf()),
            None => match std::env::var_os(POLICY_ENV) {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => {
                    let default = PathBuf::from(POLICY_DEFAULT_PATH);
                    default.is_file().then_some(default)
                }
            },
        };
        match chosen {
            None => Ok(Policy::default()),
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|source| PolicyError::Read {
                    path: p.clone(),
                    source,
                })?;
                Policy::from_json(&text, &p.display().to_string())
            }
        }
    }

    fn check(&self, origin: &str) -> Result<(), PolicyError> {
        let mut sorted = self.stage_order.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != Stage::ALL.len()
            || self.stage_order.len() != Stage::ALL.len()
            || self.stage_order.last() != Some(&Stage::Won)
        {
            return Err(PolicyError::StageOrder {
                origin: origin.to_string(),
                got: self.stage_order.clone(),
            });
        }
        let bad = |what: String, days: u32| PolicyError::BadThreshold {
            origin: origin.to_string(),
            what,
            days,
        };
        for stage in self.open_stages() {
            let Some(t) = self.stalled.get(&stage) else {
                return Err(PolicyError::MissingThreshold {
                    origin: origin.to_string(),
                    stage,
                });
            };
            for (what, days) in [
                ("no_activity_days", t.no_activity_days),
                ("no_progress_days", t.no_progress_days),
            ] {
                if days == 0 || days > THRESHOLD_DAYS_MAX {
                    return Err(bad(format!("stalled.{}.{what}", stage.as_str()), days));
                }
            }
        }
        if self.dormant_after_days == 0 || self.dormant_after_days > THRESHOLD_DAYS_MAX {
            return Err(bad("dormant_after_days".into(), self.dormant_after_days));
        }
        if self.cohort_immature_open_percent > 100 {
            return Err(PolicyError::BadPercent {
                origin: origin.to_string(),
                what: "cohort_immature_open_percent".into(),
                percent: self.cohort_immature_open_percent,
            });
        }
        self.scorecard
            .check()
            .map_err(|source| PolicyError::Scorecard {
                origin: origin.to_string(),
                source,
            })?;
        if let Some(fx) = &self.fx {
            fx.check().map_err(|source| PolicyError::Fx {
                origin: origin.to_string(),
                source,
            })?;
        }
        if let Some(costs) = &self.costs {
            costs.check().map_err(|source| PolicyError::Costs {
                origin: origin.to_string(),
                source,
            })?;
        }
        self.ranking
            .check(self.fx.as_ref())
            .map_err(|source| PolicyError::Ranking {
                origin: origin.to_string(),
                source,
            })?;
        Ok(())
    }

    /// The rank of a stage in the pipeline order (0 for the first).
    pub fn rank(&self, stage: Stage) -> usize {
        self.stage_order
            .iter()
            .position(|s| *s == stage)
            .unwrap_or(usize::MAX)
    }

    /// The stages a deal can sit in while open (all but won), in pipeline order.
    pub fn open_stages(&self) -> impl Iterator<Item = Stage> + '_ {
        self.stage_order
            .iter()
            .copied()
            .filter(|s| *s != Stage::Won)
    }

    /// The thresholds of a stage; `None` for won (a won deal is never stalled).
    pub fn threshold(&self, stage: Stage) -> Option<StalledThreshold> {
        self.stalled.get(&stage).copied()
    }

    /// The dormant threshold as a duration.
    pub fn dormant_after(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.dormant_after_days))
    }
}

// ---- The rep scorecard's part of the policy (`projections/README.md`, "Rep scorecard"). ----

/// The key of the targets that apply to every quarter without targets of its own.
pub const DEFAULT_TARGETS_KEY: &str = "default";

/// How the scorecard weighs and what it expects: sales ops set it in the policy file. Read when
/// the scorecard is computed, so changing it never rebuilds read models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardPolicy {
    pub weights: ScorecardWeights,
    /// An attainment above this percentage of the target counts as this much: one component
    /// cannot carry the score alone.
    pub attainment_cap_percent: u32,
    /// Targets per quarter (`2026-Q3`), and under `default` for the other quarters.
    pub targets: BTreeMap<String, ScorecardTargets>,
}

/// The weight of each component (whole numbers; only their proportions matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardWeights {
    pub activity: u32,
    pub results: u32,
    pub quality: u32,
}

/// What a rep is expected to achieve in one quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardTargets {
    /// Interactions performed (every event kind but reassignments).
    pub interactions: u64,
    /// Deals won while the rep owned the customer.
    pub deals_won: u64,
    /// Win rate of the deals closed (won or lost) while the rep owned the customer, in percent.
    pub win_rate_percent: u64,
}

impl Default for ScorecardPolicy {
    fn default() -> Self {
        ScorecardPolicy {
            weights: ScorecardWeights {
                activity: 30,
                results: 50,
                quality: 20,
            },
            attainment_cap_percent: 150,
            targets: BTreeMap::from([(
                DEFAULT_TARGETS_KEY.to_string(),
                ScorecardTargets {
                    interactions: 60,
                    deals_won: 3,
                    win_rate_percent: 40,
                },
            )]),
        }
    }
}

/// Why a scorecard policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScorecardPolicyError {
    #[error("scorecard.weights are all 0; give at least one component a weight")]
    NoWeight,
    #[error("scorecard.attainment_cap_percent is {0}; use 100 or more")]
    Cap(u32),
    #[error(
        "scorecard.targets has no {DEFAULT_TARGETS_KEY:?} entry; give the targets for quarters without their own"
    )]
    NoDefault,
    #[error("scorecard.targets key {0:?} is not a quarter like 2026-Q3 (or \"default\")")]
    BadQuarter(String),
    #[error("scorecard.targets.{key}.{what} is 0; a target must be above 0")]
    ZeroTarget { key: String, what: &'static str },
    #[error("scorecard.targets.{key}.win_rate_percent is {value}; use 1 to 100")]
    WinRate { key: String, value: u64 },
}

impl ScorecardPolicy {
    /// Checks the policy; each error names the field.
    pub fn check(&self) -> Result<(), ScorecardPolicyError> {
        let w = self.weights;
        if w.activity == 0 && w.results == 0 && w.quality == 0 {
            return Err(ScorecardPolicyError::NoWeight);
        }
        if self.attainment_cap_percent < 100 {
            return Err(ScorecardPolicyError::Cap(self.attainment_cap_percent));
        }
        if !self.targets.contains_key(DEFAULT_TARGETS_KEY) {
            return Err(ScorecardPolicyError::NoDefault);
        }
        for (key, t) in &self.targets {
            if key != DEFAULT_TARGETS_KEY && !is_quarter_label(key) {
                return Err(ScorecardPolicyError::BadQuarter(key.clone()));
            }
            for (what, value) in [
                ("interactions", t.interactions),
                ("deals_won", t.deals_won),
                ("win_rate_percent", t.win_rate_percent),
            ] {
                if value == 0 {
                    return Err(ScorecardPolicyError::ZeroTarget {
                        key: key.clone(),
                        what,
                    });
                }
            }
            if t.win_rate_percent > 100 {
                return Err(ScorecardPolicyError::WinRate {
                    key: key.clone(),
                    value: t.win_rate_percent,
                });
            }
        }
        Ok(())
    }

    /// The targets in force for `quarter`.
    pub fn targets_for(&self, quarter: &str) -> ScorecardTargets {
        self.targets
            .get(quarter)
            .or_else(|| self.targets.get(DEFAULT_TARGETS_KEY))
            .copied()
            // `check` makes sure a default exists; an unchecked policy scores against the
            // shipped defaults rather than fail.
            .unwrap_or_else(|| ScorecardPolicy::default().targets[DEFAULT_TARGETS_KEY])
    }
}

// ---- What winning and keeping customers cost (`projections/README.md`, "Retention"). ----

/// The spend to win new customers and to keep existing ones, per period, as sales ops record
/// it: costs are their input, not events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsPolicy {
    /// The currency of every amount (an active ISO 4217 code).
    pub currency: String,
    /// Per period, by its label as the reports write it (`2026-Q1`, `2026-03`, `2026`).
    pub periods: BTreeMap<String, PeriodCosts>,
}

/// One period's spend, in major units of the costs' currency (`"120000.00"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodCosts {
    /// Spent to win new customers (prospecting, first visits, demos of new accounts).
    pub to_win: String,
    /// Spent to keep existing customers (account care, follow-ups).
    pub to_keep: String,
}

/// Why a costs policy cannot be used; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostsPolicyError {
    #[error("costs.currency {0:?} is not an active ISO 4217 currency with a minor unit")]
    Currency(String),
    #[error(
        "costs.periods key {0:?} is not a period label as the reports write it (2026-Q1, 2026-03, 2026-W05, 2026-03-31 or 2026)"
    )]
    Period(String),
    #[error(
        "costs.periods.{period}.{field} {value:?} is not an amount of {currency} at or above 0 (such as \"120000.00\")"
    )]
    Amount {
        period: String,
        field: &'static str,
        value: String,
        currency: String,
    },
}

impl CostsPolicy {
    /// Checks the costs; each error names the field.
    pub fn check(&self) -> Result<(), CostsPolicyError> {
        for label in self.periods.keys() {
            if period_of_label(label).is_none() {
                return Err(CostsPolicyError::Period(label.clone()));
            }
            self.in_minor(label)?;
        }
        Ok(())
    }

    /// A period's costs in minor units, to win and to keep; `None` without an entry for it.
    pub fn in_minor(&self, label: &str) -> Result<Option<(i64, i64)>, CostsPolicyError> {
        let Some(costs) = self.periods.get(label) else {
            return Ok(None);
        };
        let currency = Currency::active(&self.currency)
            .map_err(|_| CostsPolicyError::Currency(self.currency.clone()))?;
        let amount = |field: &'static str, value: &String| {
            Money::from_decimal(value, currency)
                .ok()
                .filter(|m| m.amount_minor >= 0)
                .map(|m| m.amount_minor)
                .ok_or_else(|| CostsPolicyError::Amount {
                    period: label.to_string(),
                    field,
                    value: value.clone(),
                    currency: self.currency.clone(),
                })
        };
        Ok(Some((
            amount("to_win", &costs.to_win)?,
            amount("to_keep", &costs.to_keep)?,
        )))
    }
}

/// The granularity of a period label (`2026-Q1` → quarter), if it is one as the reports write
/// it: the label of its own first instant.
pub fn period_of_label(label: &str) -> Option<super::time::Period> {
    use super::time::Period;
    let start = super::time::parse_time_start(label).ok()?;
    [
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Quarter,
        Period::Year,
    ]
    .into_iter()
    .find(|p| p.label(start) == label)
}

// ---- The customer ranking's part of the policy (`projections/README.md`, "Customer ranking"). --

/// How customers are put in classes A+ / A / B / C by their revenue in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum RankingPolicy {
    /// By the share of the period's revenue that the customers ranked above a customer bring:
    /// below `a_plus_percent` it is A+, below `a_percent` A, below `b_percent` B, else C (the
    /// 80/20 rule: the few customers that bring most of the revenue).
    CumulativeShare {
        a_plus_percent: u8,
        a_percent: u8,
        b_percent: u8,
    },
    /// By revenue bands in the home currency's major units (`"100000.00"`): at least
    /// `a_plus_from` is A+, at least `a_from` A, at least `b_from` B, else C. Needs `fx`, whose
    /// home currency the bands are in.
    Bands {
        a_plus_from: String,
        a_from: String,
        b_from: String,
    },
}

impl Default for RankingPolicy {
    fn default() -> Self {
        RankingPolicy::CumulativeShare {
            a_plus_percent: 50,
            a_percent: 80,
            b_percent: 95,
        }
    }
}

/// Why a ranking policy cannot be used; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankingPolicyError {
    #[error(
        "ranking: the cumulative shares must rise within 1 to 100 (a_plus_percent ≤ a_percent ≤ b_percent); got {0}, {1}, {2}"
    )]
    Shares(u8, u8, u8),
    #[error(
        "ranking: method bands needs fx in the policy, since the bands are amounts in fx.home_currency"
    )]
    BandsWithoutFx,
    #[error(
        "ranking.{field} {value:?} is not an amount of {currency} above 0 (such as \"10000.00\")"
    )]
    Band {
        field: &'static str,
        value: String,
        currency: String,
    },
    #[error("ranking: the bands must fall, a_plus_from ≥ a_from ≥ b_from")]
    BandOrder,
}

/// The four classes, best first.
pub const RANKING_CLASSES: [&str; 4] = ["A+", "A", "B", "C"];

impl RankingPolicy {
    /// Checks the policy against the policy's rates; each error names the field.
    pub fn check(&self, fx: Option<&FxPolicy>) -> Result<(), RankingPolicyError> {
        match self {
            RankingPolicy::CumulativeShare {
                a_plus_percent,
                a_percent,
                b_percent,
            } => {
                let (p, a, b) = (*a_plus_percent, *a_percent, *b_percent);
                if p == 0 || p > a || a > b || b > 100 {
                    return Err(RankingPolicyError::Shares(p, a, b));
                }
                Ok(())
            }
            RankingPolicy::Bands { .. } => {
                let fx = fx.ok_or(RankingPolicyError::BandsWithoutFx)?;
                let [p, a, b] = self.band_minor(&fx.home_currency)?;
                if p < a || a < b {
                    return Err(RankingPolicyError::BandOrder);
                }
                Ok(())
            }
        }
    }

    /// The bands in minor units of `currency`: A+, A, B.
    fn band_minor(&self, currency: &str) -> Result<[i64; 3], RankingPolicyError> {
        let RankingPolicy::Bands {
            a_plus_from,
            a_from,
            b_from,
        } = self
        else {
            return Ok([0; 3]);
        };
        let parse = |field: &'static str, value: &String| {
            let bad = || RankingPolicyError::Band {
                field,
                value: value.clone(),
                currency: currency.to_string(),
            };
            let c = Currency::active(currency).map_err(|_| bad())?;
            match Money::from_decimal(value, c) {
                Ok(m) if m.amount_minor > 0 => Ok(m.amount_minor),
                _ => Err(bad()),
            }
        };
        Ok([
            parse("a_plus_from", a_plus_from)?,
            parse("a_from", a_from)?,
            parse("b_from", b_from)?,
        ])
    }

    /// The class of a customer with `revenue_minor` (in `currency`), when the customers ranked
    /// above it bring `before_minor` of the period's `total_minor` (compared in integers, so
    /// that a share exactly at a limit is never moved by a float's rounding).
    pub fn class_of(
        &self,
        revenue_minor: i64,
        before_minor: i64,
        total_minor: i64,
        currency: &str,
    ) -> &'static str {
        let index = match self {
            RankingPolicy::CumulativeShare {
                a_plus_percent,
                a_percent,
                b_percent,
            } => {
                let before = i128::from(before_minor) * 100;
                [*a_plus_percent, *a_percent, *b_percent]
                    .iter()
                    .position(|limit| before < i128::from(*limit) * i128::from(total_minor))
                    .unwrap_or(3)
            }
            RankingPolicy::Bands { .. } => {
                // Checked with the policy; a band that does not parse classes nobody above C.
                let bands = self.band_minor(currency).unwrap_or([i64::MAX; 3]);
                bands
                    .iter()
                    .position(|from| revenue_minor >= *from)
                    .unwrap_or(3)
            }
        };
        RANKING_CLASSES[index]
    }
}

/// Whether `s` is a quarter label as the reports write it (`2026-Q3`).
pub fn is_quarter_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && &b[4..6] == b"-Q"
        && (b'1'..=b'4').contains(&b[6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let p = Policy::default();
        assert_eq!(p.stage_order, Stage::ALL.to_vec());
        assert_eq!(p.open_stages().count(), 4);
        assert!(p.threshold(Stage::Won).is_none());
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        let bad_order = DEFAULT_POLICY_JSON.replace("\"won\"]", "\"lead\"]");
        assert!(matches!(
            Policy::from_json(&bad_order, "t"),
            Err(PolicyError::StageOrder { .. })
        ));
        let zero = DEFAULT_POLICY_JSON.replace("180", "0");
        let err = Policy::from_json(&zero, "t").unwrap_err();
        assert!(err.to_string().contains("dormant_after_days"), "{err}");
        assert!(matches!(
            Policy::from_json("{", "t"),
            Err(PolicyError::Parse { .. })
        ));
    }
}

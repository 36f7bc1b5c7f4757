//! The quarterly rep scorecard: activity, results and quality together, weighted and ranked,
//! never sales volume alone (DOMAIN.md: reps are evaluated per quarter on both counts). A pure
//! computation over the rep report's quarter rows, so its credit rules are the rep report's:
//! activity to the rep who performed it, results to the owner at that moment.
//!
//! The definitions are in `projections/README.md`, "Rep scorecard". In short, per rep and
//! quarter:
//! - each component's **attainment** is what the rep achieved over the quarter's target, capped
//!   at `attainment_cap_percent`, in basis points (10,000 = the target met), rounded down;
//! - the **score** is the weighted mean of the attainments that exist (quality has none without
//!   a closed deal), rounded down, in basis points;
//! - reps are **ranked** by score, then deals won, then rep id; the **movement** is last
//!   quarter's rank minus this one (up is positive), absent for a rep not ranked last quarter.
//!
//! Everything is whole numbers, so that a score recomputes exactly from its components.

pub use super::policy::{
    DEFAULT_TARGETS_KEY, ScorecardPolicy, ScorecardPolicyError, ScorecardTargets, ScorecardWeights,
    is_quarter_label,
};

use super::activity::{RepPeriod, RepsReport};
use super::meta::ReportMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Basis points in a whole: an attainment of 10,000 is the target met.
pub const BASIS_POINTS: u64 = 10_000;
/// The quarter before `quarter` (`2026-Q1` → `2025-Q4`); `None` for a label that is not one.
pub fn previous_quarter(quarter: &str) -> Option<String> {
    if !is_quarter_label(quarter) {
        return None;
    }
    let year: i32 = quarter[..4].parse().ok()?;
    let q = quarter.as_bytes()[6] - b'0';
    Some(if q == 1 {
        format!("{:04}-Q4", year - 1)
    } else {
        format!("{year:04}-Q{}", q - 1)
    })
}

/// One component of a rep's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreComponent {
    /// What the rep achieved: a count, or for quality the win rate in basis points.
    pub actual: u64,
    /// The quarter's target, in the same unit.
    pub target: u64,
    /// `min(actual / target, cap)` in basis points, rounded down; `None` when there is nothing
    /// to measure (quality of a rep who closed no deal).
    pub attainment_bp: Option<u64>,
    pub weight: u32,
}

/// One rep's scorecard in the quarter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScorecardRow {
    /// 1 for the best score.
    pub rank: u32,
    pub rep: String,
    /// The weighted mean of the attainments, in basis points (10,000 = every target met).
    pub score_bp: u64,
    /// Interactions performed against the target.
    pub activity: ScoreComponent,
    /// Deals won against the target.
    pub results: ScoreComponent,
    /// Win rate of the deals closed against the target.
    pub quality: ScoreComponent,
    pub deals_won: u64,
    pub deals_lost: u64,
    /// The rep's rank last quarter; `None` when the rep was not ranked then.
    pub previous_rank: Option<u32>,
    /// `previous_rank - rank`: positive when the rep moved up.
    pub movement: Option<i64>,
}

/// The `scorecard` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorecardReport {
    pub meta: ReportMeta,
    pub quarter: String,
    /// Whether the report's clock is inside the quarter: the quarter is not over, and its
    /// counts are still scored against the whole quarter's targets.
    pub in_progress: bool,
    pub previous_quarter: Option<String>,
    /// The targets the quarter is scored against.
    pub targets: ScorecardTargets,
    pub weights: ScorecardWeights,
    pub attainment_cap_percent: u32,
    /// Best first.
    pub rows: Vec<ScorecardRow>,
}

/// `min(actual / target, cap)` in basis points, rounded down.
fn attainment(actual: u64, target: u64, cap_percent: u32) -> u64 {
    debug_assert!(target > 0, "a checked policy has no zero target");
    let cap = u64::from(cap_percent) * (BASIS_POINTS / 100);
    let bp = u128::from(actual) * u128::from(BASIS_POINTS) / u128::from(target.max(1));
    u64::try_from(bp).unwrap_or(u64::MAX).min(cap)
}

/// The weighted mean of the components that have an attainment, in basis points, rounded down.
pub fn weighted_score(components: &[ScoreComponent]) -> u64 {
    let (sum, weights) = components
        .iter()
        .filter_map(|c| c.attainment_bp.map(|a| (a, c.weight)))
        .fold((0u128, 0u128), |(sum, weights), (a, w)| {
            (sum + u128::from(a) * u128::from(w), weights + u128::from(w))
        });
    if weights == 0 {
        return 0;
    }
    u64::try_from(sum / weights).unwrap_or(u64::MAX)
}

/// Scores one rep's quarter row.
fn score_row(row: &RepPeriod, policy: &ScorecardPolicy, targets: ScorecardTargets) -> ScorecardRow {
    let cap = policy.attainment_cap_percent;
    let closed = row.deals_won + row.deals_lost;
    let win_rate_bp = (closed > 0).then(|| row.deals_won * BASIS_POINTS / closed);
    let quality_target = targets.win_rate_percent * (BASIS_POINTS / 100);
    let activity = ScoreComponent {
        actual: row.interactions_total,
        target: targets.interactions,
        attainment_bp: Some(attainment(
            row.interactions_total,
            targets.interactions,
            cap,
        )),
        weight: policy.weights.activity,
    };
    let results = ScoreComponent {
        actual: row.deals_won,
        target: targets.deals_won,
        attainment_bp: Some(attainment(row.deals_won, targets.deals_won, cap)),
        weight: policy.weights.results,
    };
    let quality = ScoreComponent {
        actual: win_rate_bp.unwrap_or(0),
        target: quality_target,
        attainment_bp: win_rate_bp.map(|w| attainment(w, quality_target, cap)),
        weight: policy.weights.quality,
    };
    ScorecardRow {
        rank: 0,
        rep: row.rep.clone(),
        score_bp: weighted_score(&[activity, results, quality]),
        activity,
        results,
        quality,
        deals_won: row.deals_won,
        deals_lost: row.deals_lost,
        previous_rank: None,
        movement: None,
    }
}

/// The ranked scorecard of every rep with a row in `quarter` of `reps` (a quarterly report).
fn ranked(reps: &RepsReport, policy: &ScorecardPolicy, quarter: &str) -> Vec<ScorecardRow> {
    let targets = policy.targets_for(quarter);
    let mut rows: Vec<ScorecardRow> = reps
        .rows
        .iter()
        .filter(|r| r.period == quarter)
        .map(|r| score_row(r, policy, targets))
        .collect();
    rows.sort_by(|a, b| {
        b.score_bp
            .cmp(&a.score_bp)
            .then(b.deals_won.cmp(&a.deals_won))
            .then(a.rep.cmp(&b.rep))
    });
    for (i, row) in rows.iter_mut().enumerate() {
        row.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    rows
}

/// The scorecard of `quarter` (default: the latest quarter of the report) from a quarterly rep
/// report, with each rep's rank last quarter.
pub fn scorecard(
    reps: &RepsReport,
    policy: &ScorecardPolicy,
    quarter: Option<&str>,
) -> ScorecardReport {
    let quarter = quarter
        .map(str::to_string)
        .or_else(|| reps.rows.iter().map(|r| r.period.clone()).max())
        .unwrap_or_default();
    let previous_quarter = previous_quarter(&quarter);
    let before: BTreeMap<String, u32> = previous_quarter
        .as_deref()
        .map(|p| ranked(reps, policy, p))
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.rep, r.rank))
        .collect();
    let mut rows = ranked(reps, policy, &quarter);
    for row in &mut rows {
        row.previous_rank = before.get(&row.rep).copied();
        row.movement = row
            .previous_rank
            .map(|p| i64::from(p) - i64::from(row.rank));
    }
    let in_progress = match (
        reps.meta.evaluated_at,
        super::time::parse_time_end(&quarter),
    ) {
        (Some(clock), Ok(end)) => clock < end,
        _ => false,
    };
    ScorecardReport {
        meta: reps.meta.clone(),
        in_progress,
        targets: policy.targets_for(&quarter),
        quarter,
        previous_quarter,
        weights: policy.weights,
        attainment_cap_percent: policy.attainment_cap_percent,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::activity::RepsParams;
    use proptest::prelude::*;

    fn rep(rep: &str, quarter: &str, interactions: u64, won: u64, lost: u64) -> RepPeriod {
        RepPeriod {
            rep: rep.into(),
            period: quarter.into(),
            interactions_total: interactions,
            deals_won: won,
            deals_lost: lost,
            ..RepPeriod::default()
        }
    }

    fn report(rows: Vec<RepPeriod>) -> RepsReport {
        RepsReport {
            meta: ReportMeta::live(None, None, None, &Default::default()),
            params: RepsParams::default(),
            rows,
        }
    }

    /// Given the shipped weights (30/50/20), targets (60 interactions, 3 won, 40%) and cap
    /// (150%), when rep-a performs 45 interactions, wins 2 and loses 3 in 2026-Q2, then the
    /// attainments are 7,500, 6,666 and 10,000 basis points and the score is
    /// (30×7,500 + 50×6,666 + 20×10,000) / 100 = 7,583.
    #[test]
    fn a_score_computed_by_hand() {
        let policy = ScorecardPolicy::default();
        let r = scorecard(
            &report(vec![rep("rep-a", "2026-Q2", 45, 2, 3)]),
            &policy,
            None,
        );
        assert_eq!(r.quarter, "2026-Q2");
        let row = &r.rows[0];
        assert_eq!(row.activity.attainment_bp, Some(7_500));
        assert_eq!(row.results.attainment_bp, Some(6_666));
        assert_eq!(row.quality.actual, 4_000);
        assert_eq!(row.quality.attainment_bp, Some(10_000));
        assert_eq!(row.score_bp, 7_583);
    }

    /// Given a rep far over one target, when scored, then that component counts at the cap
    /// only; and a rep who closed nothing is scored on activity and results alone.
    #[test]
    fn the_cap_holds_and_quality_without_closed_deals_is_left_out() {
        let policy = ScorecardPolicy::default();
        let r = scorecard(
            &report(vec![
                rep("volume", "2026-Q2", 0, 30, 70),
                rep("fresh", "2026-Q2", 60, 0, 0),
            ]),
            &policy,
            Some("2026-Q2"),
        );
        let volume = r.rows.iter().find(|x| x.rep == "volume").unwrap();
        assert_eq!(volume.results.attainment_bp, Some(15_000));
        // Activity 0, results capped at 15,000, quality 3,000/4,000 = 7,500:
        // (0 + 50×15,000 + 20×7,500) / 100 = 9,000.
        assert_eq!(volume.score_bp, 9_000);
        let fresh = r.rows.iter().find(|x| x.rep == "fresh").unwrap();
        assert_eq!(fresh.quality.attainment_bp, None);
        // (30×10,000 + 50×0) / 80 = 3,750.
        assert_eq!(fresh.score_bp, 3_750);
    }

    /// Given two quarters, when the later one is scored, then each rep's movement is its rank
    /// last quarter minus its rank now, and a rep new this quarter has none.
    #[test]
    fn movement_from_the_last_quarter() {
        let policy = ScorecardPolicy::default();
        let r = scorecard(
            &report(vec![
                rep("a", "2026-Q1", 60, 3, 0),
                rep("b", "2026-Q1", 30, 1, 1),
                rep("a", "2026-Q2", 10, 0, 2),
                rep("b", "2026-Q2", 60, 3, 1),
                rep("c", "2026-Q2", 20, 1, 0),
            ]),
            &policy,
            None,
        );
        assert_eq!(r.previous_quarter.as_deref(), Some("2026-Q1"));
        let by = |name: &str| r.rows.iter().find(|x| x.rep == name).unwrap().clone();
        assert_eq!((by("b").rank, by("b").movement), (1, Some(1)));
        assert_eq!(by("a").previous_rank, Some(1));
        assert!(by("a").movement.unwrap() < 0);
        assert_eq!(by("c").movement, None);
    }

    #[test]
    fn quarters_and_policies() {
        assert_eq!(previous_quarter("2026-Q1").as_deref(), Some("2025-Q4"));
        assert_eq!(previous_quarter("2026-Q3").as_deref(), Some("2026-Q2"));
        assert_eq!(previous_quarter("2026-03"), None);
        let mut p = ScorecardPolicy::default();
        assert_eq!(p.check(), Ok(()));
        p.targets.insert("2026-Q5".into(), p.targets["default"]);
        assert_eq!(
            p.check(),
            Err(ScorecardPolicyError::BadQuarter("2026-Q5".into()))
        );
        let p = ScorecardPolicy {
            weights: ScorecardWeights {
                activity: 0,
                results: 0,
                quality: 0,
            },
            ..ScorecardPolicy::default()
        };
        assert_eq!(p.check(), Err(ScorecardPolicyError::NoWeight));
    }

    proptest! {
        /// The score recomputes exactly from the components the report shows, lies between the
        /// lowest and the highest attainment, and ranks are 1..n in score order.
        #[test]
        fn scores_recompute_from_their_components(
            rows in prop::collection::vec((0u64..200, 0u64..12, 0u64..12), 1..12),
            weights in (0u32..100, 0u32..100, 1u32..100),
        ) {
            let policy = ScorecardPolicy {
                weights: ScorecardWeights { activity: weights.0, results: weights.1, quality: weights.2 },
                ..ScorecardPolicy::default()
            };
            let reps = report(rows.iter().enumerate()
                .map(|(i, (n, w, l))| rep(&format!("rep-{i:02}"), "2026-Q2", *n, *w, *l))
                .collect());
            let r = scorecard(&reps, &policy, Some("2026-Q2"));
            prop_assert_eq!(r.rows.len(), rows.len());
            for (i, row) in r.rows.iter().enumerate() {
                prop_assert_eq!(row.rank as usize, i + 1);
                let parts = [row.activity, row.results, row.quality];
                prop_assert_eq!(weighted_score(&parts), row.score_bp);
                let present: Vec<u64> = parts.iter()
                    .filter(|c| c.weight > 0)
                    .filter_map(|c| c.attainment_bp).collect();
                if let (Some(lo), Some(hi)) = (present.iter().min(), present.iter().max()) {
                    prop_assert!(*lo <= row.score_bp && row.score_bp <= *hi);
                }
            }
            for pair in r.rows.windows(2) {
                prop_assert!(pair[0].score_bp >= pair[1].score_bp);
            }
        }
    }
}

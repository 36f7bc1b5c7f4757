//! Qualification: does the lead qualification worksheet (DOMAIN.md, 潜力客户工作表: seven yes/no
//! criteria, one point each) and the intent judged at the first visit predict which deals are
//! won? A pure computation over the read model's deal rows, which keep each lead's worksheet and
//! its deal's first-visit intent.
//!
//! The definitions are in `projections/README.md`, "Qualification". In short: a deal's outcome
//! is its status now (won, lost for good, or open); the win rate is won / (won + lost), over the
//! decided deals; conversion is won / all deals; a rate over fewer than
//! [`QUALIFICATION_SAMPLE_MIN`] decided deals is not shown (its counts are).

use super::conversion::Ratio;
use super::meta::ReportMeta;
use super::model::{DealRow, DealStatus, ReadModel};
use super::time::round6;
use crate::domain::Qualification;
use serde::Serialize;

/// Decided deals below which a win rate (and a lift built on it) is not shown: a rate over a
/// handful of deals says more about chance than about the worksheet.
pub const QUALIFICATION_SAMPLE_MIN: u64 = 10;

/// The score bands of the calibration: low, middle and high scores.
pub const SCORE_BANDS: [(u32, u32); 3] = [(0, 2), (3, 4), (5, 7)];

/// What became of a group of deals.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Outcomes {
    pub deals: u64,
    pub open: u64,
    pub won: u64,
    pub lost: u64,
    /// won / (won + lost); its rate is null below [`QUALIFICATION_SAMPLE_MIN`] decided deals.
    pub win_rate: Ratio,
    /// won / deals (open ones included).
    pub conversion: Ratio,
}

impl Outcomes {
    fn add(&mut self, deal: &DealRow) {
        self.deals += 1;
        match deal.status {
            DealStatus::Open => self.open += 1,
            DealStatus::Won => self.won += 1,
            DealStatus::Lost => self.lost += 1,
        }
    }

    fn finish(mut self) -> Self {
        let decided = self.won + self.lost;
        self.win_rate = sampled(self.won, decided);
        self.conversion = Ratio::new(self.won, self.deals);
        self
    }
}

/// `count / of`, with the rate left out below the minimum sample.
fn sampled(count: u64, of: u64) -> Ratio {
    let mut r = Ratio::new(count, of);
    if of < QUALIFICATION_SAMPLE_MIN {
        r.rate = None;
    }
    r
}

/// The deals of one worksheet score (`None`: no worksheet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    pub score: Option<u32>,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// One criterion: the deals whose worksheet met it against those whose worksheet did not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionRow {
    pub criterion: &'static str,
    pub met: Outcomes,
    pub not_met: Outcomes,
    /// met's win rate / not met's; null when either rate is not shown or not met's is 0.
    pub lift: Option<f64>,
}

/// One band of scores: the win rate observed against the score read as a chance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationRow {
    /// `0–2`, `3–4`, `5–7`.
    pub band: String,
    pub decided: u64,
    /// won / decided (null below the minimum sample).
    pub observed: Ratio,
    /// The decided deals' mean score / 7: what the score would predict if it were a chance.
    pub score_as_chance: Option<f64>,
    /// observed − score_as_chance.
    pub gap: Option<f64>,
}

/// The deals of one first-visit intent level (`None`: no first visit yet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentRow {
    pub intent: Option<u32>,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// The `qualification` report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualificationReport {
    pub meta: ReportMeta,
    pub deals: u64,
    /// Deals whose lead had no worksheet: they are in no score, criterion or band.
    pub without_worksheet: u64,
    pub sample_min: u64,
    /// Scores 0 to 7, then the deals without a worksheet.
    pub by_score: Vec<ScoreRow>,
    pub by_criterion: Vec<CriterionRow>,
    pub calibration: Vec<CalibrationRow>,
    /// Whether the observed win rate rises from band to band (null unless every band's rate is
    /// shown): the score predicts when it does.
    pub bands_rise: Option<bool>,
    /// Intent levels 1 to 5, then the deals without a first visit.
    pub by_intent: Vec<IntentRow>,
}

/// Computes the qualification report over the read model's deals.
pub fn qualification(model: &ReadModel, meta: ReportMeta) -> QualificationReport {
    let mut by_score: Vec<Outcomes> = vec![Outcomes::default(); 9];
    let mut met = vec![Outcomes::default(); 7];
    let mut not_met = vec![Outcomes::default(); 7];
    let mut bands = [(0u64, 0u64, 0u64); 3]; // decided, won, sum of scores
    let mut by_intent: Vec<Outcomes> = vec![Outcomes::default(); 6];
    for deal in &model.deals {
        match (deal.qualification_score, deal.qualification_criteria) {
            (Some(score), Some(bits)) => {
                by_score[score.min(7) as usize].add(deal);
                for i in 0..Qualification::CRITERIA.len() {
                    if bits & (1 << i) != 0 {
                        met[i].add(deal);
                    } else {
                        not_met[i].add(deal);
                    }
                }
                if deal.status != DealStatus::Open
                    && let Some(b) = SCORE_BANDS
                        .iter()
                        .position(|(lo, hi)| (*lo..=*hi).contains(&score))
                {
                    bands[b].0 += 1;
                    bands[b].1 += u64::from(deal.status == DealStatus::Won);
                    bands[b].2 += u64::from(score);
                }
            }
            _ => by_score[8].add(deal),
        }
        match deal.first_visit_intent {
            Some(level @ 1..=5) => by_intent[level as usize - 1].add(deal),
            _ => by_intent[5].add(deal),
        }
    }
    let by_score: Vec<ScoreRow> = by_score
        .into_iter()
        .enumerate()
        .map(|(i, o)| ScoreRow {
            score: (i < 8).then_some(i as u32),
            outcomes: o.finish(),
        })
        .collect();
    let by_criterion = Qualification::CRITERIA
        .iter()
        .zip(met.into_iter().zip(not_met))
        .map(|(name, (m, n))| {
            let (m, n) = (m.finish(), n.finish());
            let lift = match (m.win_rate.rate, n.win_rate.rate) {
                (Some(a), Some(b)) if b > 0.0 => Some(round6(a / b)),
                _ => None,
            };
            CriterionRow {
                criterion: name,
                met: m,
                not_met: n,
                lift,
            }
        })
        .collect();
    let calibration: Vec<CalibrationRow> = SCORE_BANDS
        .iter()
        .zip(bands)
        .map(|((lo, hi), (decided, won, scores))| {
            let observed = sampled(won, decided);
            let chance = (decided > 0).then(|| round6(scores as f64 / decided as f64 / 7.0));
            CalibrationRow {
                band: format!("{lo}–{hi}"),
                decided,
                gap: match (observed.rate, chance) {
                    (Some(o), Some(c)) => Some(round6(o - c)),
                    _ => None,
                },
                observed,
                score_as_chance: chance,
            }
        })
        .collect();
    let rates: Option<Vec<f64>> = calibration.iter().map(|c| c.observed.rate).collect();
    let bands_rise = rates.map(|r| r.windows(2).all(|w| w[1] > w[0]));
    let by_intent = by_intent
        .into_iter()
        .enumerate()
        .map(|(i, o)| IntentRow {
            intent: (i < 5).then_some(i as u32 + 1),
            outcomes: o.finish(),
        })
        .collect();
    QualificationReport {
        meta,
        deals: model.deals.len() as u64,
        without_worksheet: by_score[8].outcomes.deals,
        sample_min: QUALIFICATION_SAMPLE_MIN,
        by_score,
        by_criterion,
        calibration,
        bands_rise,
        by_intent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LeadSource, Stage};
    use crate::projections::meta::ReportAt;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn deal(n: usize, status: DealStatus, bits: Option<u32>, intent: Option<u32>) -> DealRow {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        DealRow {
            customer_id: format!("c{n}"),
            deal_id: "d1".into(),
            source: LeadSource::Web,
            opened_at: t,
            owner_at_open: "rep-1".into(),
            status,
            stage: Stage::Lead,
            stage_since: t,
            last_activity_at: t,
            won_at: None,
            won_value_minor: None,
            won_currency: None,
            won_owner: None,
            lost_at: None,
            lost_reason: None,
            reopen_count: 0,
            qualification_score: bits.map(u32::count_ones),
            qualification_criteria: bits,
            first_visit_intent: intent,
        }
    }

    fn report(deals: Vec<DealRow>) -> QualificationReport {
        let meta = ReportMeta::live(Some(1), Some(1), None, &ReportAt::default());
        qualification(
            &ReadModel {
                deals,
                ..ReadModel::default()
            },
            meta,
        )
    }

    /// Given 12 decided deals whose worksheet met every criterion (9 won, 3 lost), 12 that met
    /// only the first (3 won, 9 lost) and one open deal without a worksheet, when the report is
    /// computed, then score 7 wins 9/12 and score 1 3/12; the first criterion (met by all) has
    /// no "not met" rate, the second wins 9/12 met against 3/12 not met (a lift of 3); the bands
    /// 0–2 and 5–7 show 25% and 75% against a chance of 1/7 and 1; the middle band has too few
    /// deals, so whether the bands rise is not said.
    #[test]
    fn win_rates_lift_and_calibration_computed_by_hand() {
        let mut deals = Vec::new();
        for n in 0..12 {
            let won = if n < 9 {
                DealStatus::Won
            } else {
                DealStatus::Lost
            };
            deals.push(deal(n, won, Some(0b111_1111), Some(5)));
        }
        for n in 12..24 {
            let won = if n < 15 {
                DealStatus::Won
            } else {
                DealStatus::Lost
            };
            deals.push(deal(n, won, Some(0b000_0001), Some(2)));
        }
        deals.push(deal(24, DealStatus::Open, None, None));
        let r = report(deals);
        assert_eq!((r.deals, r.without_worksheet), (25, 1));
        let s7 = &r.by_score[7].outcomes;
        assert_eq!((s7.won, s7.lost, s7.win_rate.rate), (9, 3, Some(0.75)));
        let s1 = &r.by_score[1].outcomes;
        assert_eq!((s1.won, s1.lost, s1.win_rate.rate), (3, 9, Some(0.25)));
        assert_eq!(r.by_score[8].score, None);
        assert_eq!(r.by_score[8].outcomes.open, 1);
        let first = &r.by_criterion[0];
        assert_eq!((first.met.deals, first.not_met.deals), (24, 0));
        assert_eq!(first.lift, None);
        let second = &r.by_criterion[1];
        assert_eq!(second.criterion, "has_business_plan");
        assert_eq!(second.lift, Some(3.0));
        assert_eq!(r.calibration[0].observed.rate, Some(0.25));
        assert_eq!(r.calibration[0].score_as_chance, Some(round6(1.0 / 7.0)));
        assert_eq!(r.calibration[2].observed.rate, Some(0.75));
        assert_eq!(r.calibration[2].gap, Some(-0.25));
        assert_eq!(r.calibration[1].decided, 0);
        assert_eq!(r.bands_rise, None);
        assert_eq!(r.by_intent[4].outcomes.won, 9);
        assert_eq!(r.by_intent[1].outcomes.won, 3);
        assert_eq!(r.by_intent[5].outcomes.deals, 1);
    }

    /// Below the minimum sample a rate is not shown, but its counts are.
    #[test]
    fn a_rate_over_too_few_decided_deals_is_not_shown() {
        let deals = (0..9)
            .map(|n| deal(n, DealStatus::Won, Some(0b1), None))
            .collect();
        let r = report(deals);
        let s1 = &r.by_score[1].outcomes;
        assert_eq!((s1.won, s1.win_rate.of, s1.win_rate.rate), (9, 9, None));
        assert_eq!(s1.conversion.rate, Some(1.0));
    }

    proptest! {
        /// For any deals: the scores (and the no-worksheet row) partition the deals, each
        /// criterion's met and not met partition the deals with a worksheet, and the intent rows
        /// partition all deals.
        #[test]
        fn the_groups_partition_the_deals(
            deals in proptest::collection::vec((0u8..3, proptest::option::of(0u32..128), proptest::option::of(1u32..6)), 0..80),
        ) {
            let rows: Vec<DealRow> = deals
                .iter()
                .enumerate()
                .map(|(n, (s, bits, intent))| {
                    let status = [DealStatus::Open, DealStatus::Won, DealStatus::Lost][*s as usize];
                    deal(n, status, *bits, *intent)
                })
                .collect();
            let with_sheet = rows.iter().filter(|d| d.qualification_score.is_some()).count() as u64;
            let r = report(rows);
            let total: u64 = r.by_score.iter().map(|s| s.outcomes.deals).sum();
            prop_assert_eq!(total, r.deals);
            for c in &r.by_criterion {
                prop_assert_eq!(c.met.deals + c.not_met.deals, with_sheet);
                prop_assert_eq!(c.met.won + c.not_met.won + c.met.lost + c.not_met.lost + c.met.open + c.not_met.open, with_sheet);
            }
            let by_intent: u64 = r.by_intent.iter().map(|i| i.outcomes.deals).sum();
            prop_assert_eq!(by_intent, r.deals);
            let decided: u64 = r.calibration.iter().map(|c| c.decided).sum();
            let expected: u64 = r.by_score[..8].iter().map(|s| s.outcomes.won + s.outcomes.lost).sum();
            prop_assert_eq!(decided, expected);
        }
    }
}

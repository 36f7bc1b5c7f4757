//! Stage conversion projection: per deal, its stage stays and outcome (`rm_deals`,
//! `rm_stage_stays`); and the `funnel` query, computed from the stays (the transitions), never
//! from where deals sit today alone. Definitions: `projections/README.md`.

use super::meta::ReportMeta;
use super::model::{DealRow, DealStatus, EntryKind, ExitKind, ReadModel, StageStayRow};
use super::policy::Policy;
use super::time::{Period, Spread, days_between, round6};
use super::timeline::Walk;
use crate::domain::Stage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Name of this projection's checkpoint.
pub const NAME: &str = "conversion";
/// Label of the pseudo-stage a deal is in once lost, in the transition matrix.
pub const LOST: &str = "lost";
/// Label of the pseudo-stage before a deal's lead, in the transition matrix.
pub const START: &str = "start";

/// The conversion rows of one walked customer.
pub fn rows(w: &Walk) -> (Vec<DealRow>, Vec<StageStayRow>) {
    let mut deals = Vec::new();
    let mut stays = Vec::new();
    for d in &w.deals {
        let last = d.stays.last();
        deals.push(DealRow {
            customer_id: w.customer_id.to_string(),
            deal_id: d.id.to_string(),
            source: d.source,
            opened_at: d.opened_at,
            owner_at_open: d.owner_at_open.to_string(),
            status: d.status,
            stage: d.stage(),
            stage_since: last.map_or(d.opened_at, |s| s.entered_at),
            last_activity_at: d.last_activity,
            won_at: d.won_at,
            won_value_minor: d.won_value.map(|v| v.amount_minor),
            won_currency: d.won_value.map(|v| v.currency.as_str().to_string()),
            won_owner: d.won_owner.as_ref().map(|r| r.to_string()),
            lost_at: d.lost_at,
            lost_reason: d.lost_reason,
            reopen_count: d.reopen_count,
            qualification_score: d.qualification.map(|q| u32::from(q.score())),
            qualification_criteria: d.qualification.map(|q| q.bits()),
            first_visit_intent: d.first_visit_intent.map(u32::from),
        });
        for (seq, s) in d.stays.iter().enumerate() {
            stays.push(StageStayRow {
                customer_id: w.customer_id.to_string(),
                deal_id: d.id.to_string(),
                seq: seq as u32,
                stage: s.stage,
                entered_at: s.entered_at,
                entry: s.entry,
                from_stage: s.from,
                exited_at: s.exited_at,
                exit: s.exit,
                to_stage: s.to,
                lost_reason: s.lost_reason,
            });
        }
    }
    (deals, stays)
}

/// A rate with the counts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Ratio {
    pub count: u64,
    pub of: u64,
    /// `count / of`, in [0, 1]; `None` when `of` is 0.
    pub rate: Option<f64>,
}

impl Ratio {
    /// `count` out of `of`.
    pub fn new(count: u64, of: u64) -> Self {
        Ratio {
            count,
            of,
            rate: (of > 0).then(|| round6(count as f64 / of as f64)),
        }
    }
}

/// How funnel groups are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Source,
    Rep,
    Cohort,
}

/// What the funnel is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelParams {
    /// Window start (inclusive): cohort view keeps deals sourced from here, period view events.
    pub from: Option<DateTime<Utc>>,
    /// Window end (inclusive).
    pub to: Option<DateTime<Utc>>,
    pub by: Option<GroupBy>,
    /// Cohort granularity (month or quarter).
    pub cohort: Period,
}

impl Default for FunnelParams {
    fn default() -> Self {
        FunnelParams {
            from: None,
            to: None,
            by: None,
            cohort: Period::Month,
        }
    }
}

/// One stage of the cohort funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageFunnel {
    pub stage: Stage,
    /// Deals that entered the stage at least once.
    pub entered: u64,
    /// Of those, classified by their latest stay in the stage (these four sum to `entered`):
    pub advanced: u64,
    pub lost_here: u64,
    pub moved_back: u64,
    pub still_in: u64,
    /// Stays in the stage (a deal re-entering counts once per entry).
    pub entries: u64,
    /// Re-entries: entries after a move back or a reopen.
    pub re_entries: u64,
    /// Deals that went past the stage without entering it.
    pub skipped: u64,
    /// Next-step conversion: deals that moved from this stage directly into the next one (in
    /// the policy's stage order) at least once, of those that entered it. `None` for the last
    /// stage, which has no next one.
    pub next_step: Option<Ratio>,
    /// Deals that left the stage forward at least once, to any later stage (skips included), of
    /// those that entered it. `None` for the last stage. (Before derivation 2 this figure was
    /// called `next_step`.)
    pub moved_forward: Option<Ratio>,
    /// Deals that got at least as far as this stage, of all deals.
    pub cumulative: Ratio,
    /// Days from the first entry into the stage to the first move forward out of it.
    pub days_to_next: Spread,
    /// Days of each deal's latest stay (to the exit, or to the report clock while in it).
    pub latest_stay_days: Spread,
    /// Days each deal spent in the stage over all its stays.
    pub cumulative_days: Spread,
}

/// One cell of a transition matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: u64,
}

/// The cohort view of a set of deals: followed from their lead to their outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortFunnel {
    pub deals: u64,
    pub won: u64,
    pub lost: u64,
    pub open: u64,
    /// won / (won + lost).
    pub win_rate: Ratio,
    /// open / deals.
    pub open_share: Ratio,
    /// More than the policy's `cohort_immature_open_percent` of the deals are still open: the
    /// win rate and conversion will still change (absent in reports kept before it existed).
    #[serde(default)]
    pub immature: bool,
    pub stages: Vec<StageFunnel>,
    pub lost_by_stage: BTreeMap<String, u64>,
    pub lost_by_reason: BTreeMap<String, u64>,
    /// Every move of these deals, forward, backward, skipping, lost and reopened.
    pub transitions: Vec<Transition>,
}

/// The period view: what happened inside the window, whatever the deals' cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodFunnel {
    pub new_deals: u64,
    /// Stage entries inside the window, per stage.
    pub entries: BTreeMap<String, u64>,
    pub won: u64,
    /// Losses inside the window (a loss later reopened still happened).
    pub lost: u64,
    /// Deals whose final outcome (at the report's position) is a loss, lost inside the window:
    /// `lost` less the losses that were reopened later.
    pub lost_final: u64,
    pub reopened: u64,
    /// Final outcomes inside the window: won / (won + lost_final). A loss that was reopened is
    /// not an outcome.
    pub win_rate: Ratio,
    pub lost_by_reason: BTreeMap<String, u64>,
    pub transitions: Vec<Transition>,
}

/// One group of the funnel (or the whole, with key `all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelGroup {
    pub key: String,
    pub cohort: CohortFunnel,
    pub period: PeriodFunnel,
}

/// Whom `--by rep` credits a deal to: the rep who owned the customer when its lead was sourced
/// (`rm_deals.owner_at_open`). The rep report credits results to the owner when the contract
/// was signed or the deal lost, so the two can name different reps for one deal.
pub const REP_CREDIT_OWNER_AT_LEAD: &str = "owner_at_lead";

/// The `funnel` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelReport {
    pub meta: ReportMeta,
    pub params: FunnelParams,
    /// With `by: rep`, the credit rule of the groups: [`REP_CREDIT_OWNER_AT_LEAD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_credit: Option<String>,
    pub total: FunnelGroup,
    pub groups: Vec<FunnelGroup>,
}

fn in_window(t: DateTime<Utc>, p: &FunnelParams) -> bool {
    p.from.is_none_or(|f| t >= f) && p.to.is_none_or(|e| t <= e)
}

/// Computes the funnel over a read model.
pub fn funnel(
    model: &ReadModel,
    policy: &Policy,
    meta: ReportMeta,
    params: FunnelParams,
) -> FunnelReport {
    funnels(model, policy, meta, &[params])
        .pop()
        .expect("one report per parameter set")
}

/// A funnel's window: `from` and `to`.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Computes several funnels over one read model, in order: the deals are gathered once, funnels
/// with the same window share their total, and the funnels are computed on every core.
pub fn funnels(
    model: &ReadModel,
    policy: &Policy,
    meta: ReportMeta,
    params: &[FunnelParams],
) -> Vec<FunnelReport> {
    use rayon::prelude::*;
    let mut stays_by_deal: HashMap<(&str, &str), Vec<&StageStayRow>> = HashMap::new();
    for s in &model.stays {
        stays_by_deal
            .entry((s.customer_id.as_str(), s.deal_id.as_str()))
            .or_default()
            .push(s);
    }
    let deals: Vec<(&DealRow, Vec<&StageStayRow>)> = model
        .deals
        .iter()
        .map(|d| {
            let stays = stays_by_deal
                .remove(&(d.customer_id.as_str(), d.deal_id.as_str()))
                .unwrap_or_default();
            (d, stays)
        })
        .collect();
    let now = meta.evaluated_at;
    let mut windows: Vec<Window> = params.iter().map(|p| (p.from, p.to)).collect();
    windows.dedup();
    let totals: Vec<(Window, FunnelGroup)> = windows
        .par_iter()
        .map(|&(from, to)| {
            let p = FunnelParams {
                from,
                to,
                by: None,
                ..FunnelParams::default()
            };
            let mut fold = FunnelFold::new(policy, p, now, true);
            for (d, stays) in &deals {
                fold.add(d, stays);
            }
            ((from, to), fold.finish(meta.clone()).total)
        })
        .collect();
    params
        .par_iter()
        .map(|params| {
            let mut fold = FunnelFold::new(policy, *params, now, false);
            if params.by.is_some() {
                for (d, stays) in &deals {
                    fold.add(d, stays);
                }
            }
            let mut report = fold.finish(meta.clone());
            report.total = totals
                .iter()
                .find(|(w, _)| *w == (params.from, params.to))
                .map(|(_, t)| t.clone())
                .expect("every window has its total");
            report
        })
        .collect()
}

/// A funnel computed one deal at a time: deals (with their stays in order) are added in any
/// order, and [`finish`](Self::finish) gives the report. Memory holds the counters and the
/// durations the medians need, not the deals.
pub struct FunnelFold<'p> {
    policy: &'p Policy,
    params: FunnelParams,
    now: Option<DateTime<Utc>>,
    total: Option<GroupFold>,
    groups: BTreeMap<String, GroupFold>,
}

impl<'p> FunnelFold<'p> {
    /// A fold for `params` at clock `now`; without `with_total`, the report's total is left
    /// empty (for a caller that has it from another fold over the same deals and window).
    pub fn new(
        policy: &'p Policy,
        params: FunnelParams,
        now: Option<DateTime<Utc>>,
        with_total: bool,
    ) -> Self {
        FunnelFold {
            policy,
            params,
            now,
            total: with_total.then(|| GroupFold::new(policy)),
            groups: BTreeMap::new(),
        }
    }

    /// Adds one deal and its stays (in their order).
    pub fn add(&mut self, deal: &DealRow, stays: &[&StageStayRow]) {
        let (policy, params, now) = (self.policy, &self.params, self.now);
        if let Some(total) = &mut self.total {
            total.add(policy, params, now, deal, stays);
        }
        let key = match params.by {
            None => return,
            Some(GroupBy::Source) => deal.source.as_str().to_string(),
            Some(GroupBy::Rep) => deal.owner_at_open.clone(),
            Some(GroupBy::Cohort) => params.cohort.label(deal.opened_at),
        };
        self.groups
            .entry(key)
            .or_insert_with(|| GroupFold::new(policy))
            .add(policy, params, now, deal, stays);
    }

    /// The report.
    pub fn finish(self, meta: ReportMeta) -> FunnelReport {
        let policy = self.policy;
        let total = self.total.unwrap_or_else(|| GroupFold::new(policy));
        let mature_open_max = u64::from(policy.cohort_immature_open_percent);
        let flagged = |mut g: FunnelGroup| {
            let c = &mut g.cohort;
            // Whole numbers: open × 100 > percent × deals, no rounding at the threshold.
            c.immature = c.deals > 0 && c.open * 100 > mature_open_max * c.deals;
            g
        };
        FunnelReport {
            meta,
            params: self.params,
            rep_credit: (self.params.by == Some(GroupBy::Rep))
                .then(|| REP_CREDIT_OWNER_AT_LEAD.to_string()),
            total: flagged(total.finish("all".to_string())),
            groups: self
                .groups
                .into_iter()
                .map(|(key, g)| flagged(g.finish(key)))
                .collect(),
        }
    }
}

/// One group being folded: its cohort view (deals opened in the window) and its period view
/// (what happened in the window, whatever the deals' cohort).
struct GroupFold {
    cohort: CohortFold,
    period: PeriodFold,
}

impl GroupFold {
    fn new(policy: &Policy) -> Self {
        GroupFold {
            cohort: CohortFold::new(policy),
            period: PeriodFold::default(),
        }
    }

    fn add(
        &mut self,
        policy: &Policy,
        params: &FunnelParams,
        now: Option<DateTime<Utc>>,
        deal: &DealRow,
        stays: &[&StageStayRow],
    ) {
        if in_window(deal.opened_at, params) {
            self.cohort.add(policy, now, deal, stays);
        }
        self.period.add(policy, params, deal, stays);
    }

    fn finish(self, key: String) -> FunnelGroup {
        FunnelGroup {
            key,
            cohort: self.cohort.finish(),
            period: self.period.finish(),
        }
    }
}

/// A stage of the cohort view being folded.
struct StageFold {
    funnel: StageFunnel,
    /// The next stage in the policy's order (`None` for the last).
    next: Option<Stage>,
    /// Deals that left the stage forward at least once.
    converted: u64,
    /// Deals that moved from the stage directly into `next` at least once.
    to_next_stage: u64,
    passed: u64,
    to_next: Vec<f64>,
    latest_days: Vec<f64>,
    cum_days: Vec<f64>,
}

/// Transition matrix cells: (from rank, from, to rank, to) → moves.
type Cells = BTreeMap<(usize, &'static str, usize, &'static str), u64>;

struct CohortFold {
    deals: u64,
    won: u64,
    lost: u64,
    open: u64,
    stages: Vec<StageFold>,
    lost_by_stage: BTreeMap<String, u64>,
    lost_by_reason: BTreeMap<String, u64>,
    cells: Cells,
}

impl CohortFold {
    fn new(policy: &Policy) -> Self {
        let stages = policy
            .stage_order
            .iter()
            .enumerate()
            .map(|(i, &stage)| StageFold {
                next: policy.stage_order.get(i + 1).copied(),
                funnel: StageFunnel {
                    stage,
                    entered: 0,
                    advanced: 0,
                    lost_here: 0,
                    moved_back: 0,
                    still_in: 0,
                    entries: 0,
                    re_entries: 0,
                    skipped: 0,
                    next_step: None,
                    moved_forward: None,
                    cumulative: Ratio::new(0, 0),
                    days_to_next: Spread::default(),
                    latest_stay_days: Spread::default(),
                    cumulative_days: Spread::default(),
                },
                converted: 0,
                to_next_stage: 0,
                passed: 0,
                to_next: Vec::new(),
                latest_days: Vec::new(),
                cum_days: Vec::new(),
            })
            .collect();
        CohortFold {
            deals: 0,
            won: 0,
            lost: 0,
            open: 0,
            stages,
            lost_by_stage: BTreeMap::new(),
            lost_by_reason: BTreeMap::new(),
            cells: Cells::new(),
        }
    }

    fn add(
        &mut self,
        policy: &Policy,
        now: Option<DateTime<Utc>>,
        d: &DealRow,
        stays: &[&StageStayRow],
    ) {
        self.deals += 1;
        match d.status {
            DealStatus::Won => self.won += 1,
            DealStatus::Lost => self.lost += 1,
            DealStatus::Open => self.open += 1,
        }
        if d.status == DealStatus::Lost {
            *self
                .lost_by_stage
                .entry(d.stage.as_str().to_string())
                .or_insert(0) += 1;
            let reason = d.lost_reason.map_or("unknown", |r| r.as_str());
            *self.lost_by_reason.entry(reason.to_string()).or_insert(0) += 1;
        }
        let stays_end = |s: &StageStayRow| s.exited_at.or(now);
        let max_rank = stays
            .iter()
            .map(|s| policy.rank(s.stage))
            .max()
            .unwrap_or(0);
        for sf in &mut self.stages {
            let stage = sf.funnel.stage;
            let rank = policy.rank(stage);
            let f = &mut sf.funnel;
            if max_rank >= rank {
                sf.passed += 1;
            }
            let here: Vec<&&StageStayRow> = stays.iter().filter(|s| s.stage == stage).collect();
            let Some(latest) = here.last() else {
                if max_rank > rank {
                    f.skipped += 1;
                }
                continue;
            };
            f.entered += 1;
            f.entries += here.len() as u64;
            f.re_entries += here
                .iter()
                .filter(|s| matches!(s.entry, EntryKind::MovedBack | EntryKind::Reopened))
                .count() as u64;
            match latest.exit {
                Some(ExitKind::Advanced) => f.advanced += 1,
                Some(ExitKind::MovedBack) => f.moved_back += 1,
                Some(ExitKind::Lost) => f.lost_here += 1,
                None => f.still_in += 1,
            }
            if sf.next.is_some()
                && here
                    .iter()
                    .any(|s| s.exit == Some(ExitKind::Advanced) && s.to_stage == sf.next)
            {
                sf.to_next_stage += 1;
            }
            if let Some(first_forward) = here.iter().find(|s| s.exit == Some(ExitKind::Advanced)) {
                sf.converted += 1;
                if let Some(out) = first_forward.exited_at {
                    sf.to_next.push(days_between(here[0].entered_at, out));
                }
            }
            if stage != Stage::Won {
                if let Some(end) = stays_end(latest) {
                    sf.latest_days.push(days_between(latest.entered_at, end));
                }
                let total: f64 = here
                    .iter()
                    .filter_map(|s| stays_end(s).map(|e| days_between(s.entered_at, e)))
                    .sum();
                sf.cum_days.push(total);
            }
        }
        add_transitions(policy, stays.iter().copied(), |_| true, &mut self.cells);
    }

    fn finish(self) -> CohortFunnel {
        let n = self.deals;
        let stages = self
            .stages
            .into_iter()
            .map(|sf| {
                let mut f = sf.funnel;
                if sf.next.is_some() {
                    f.next_step = Some(Ratio::new(sf.to_next_stage, f.entered));
                    f.moved_forward = Some(Ratio::new(sf.converted, f.entered));
                }
                f.cumulative = Ratio::new(sf.passed, n);
                f.days_to_next = Spread::of(sf.to_next);
                f.latest_stay_days = Spread::of(sf.latest_days);
                f.cumulative_days = Spread::of(sf.cum_days);
                f
            })
            .collect();
        CohortFunnel {
            deals: n,
            won: self.won,
            lost: self.lost,
            open: self.open,
            win_rate: Ratio::new(self.won, self.won + self.lost),
            open_share: Ratio::new(self.open, n),
            immature: false,
            stages,
            lost_by_stage: self.lost_by_stage,
            lost_by_reason: self.lost_by_reason,
            transitions: transitions_of(self.cells),
        }
    }
}

/// Adds the moves of some stays to a transition matrix; `keep` filters by the time of the move.
fn add_transitions<'a>(
    policy: &Policy,
    stays: impl Iterator<Item = &'a StageStayRow>,
    keep: impl Fn(DateTime<Utc>) -> bool,
    cells: &mut Cells,
) {
    let label = |s: Stage| (policy.rank(s), s.as_str());
    let start = (0usize, START);
    let lost = (usize::MAX, LOST);
    for s in stays {
        if keep(s.entered_at) {
            let from = match (s.entry, s.from_stage) {
                (EntryKind::Opened, _) => Some(start),
                (EntryKind::Reopened, _) => Some(lost),
                (_, Some(f)) => Some(label(f)),
                (_, None) => None,
            };
            if let Some(from) = from {
                let to = label(s.stage);
                *cells.entry((from.0, from.1, to.0, to.1)).or_insert(0) += 1;
            }
        }
        if let (Some(ExitKind::Lost), Some(at)) = (s.exit, s.exited_at)
            && keep(at)
        {
            let from = label(s.stage);
            *cells.entry((from.0, from.1, lost.0, lost.1)).or_insert(0) += 1;
        }
    }
}

/// The transition matrix, in stage order.
fn transitions_of(cells: Cells) -> Vec<Transition> {
    cells
        .into_iter()
        .map(|((_, from, _, to), count)| Transition {
            from: from.to_string(),
            to: to.to_string(),
            count,
        })
        .collect()
}

#[derive(Default)]
struct PeriodFold {
    new_deals: u64,
    entries: BTreeMap<String, u64>,
    won: u64,
    lost: u64,
    lost_final: u64,
    reopened: u64,
    lost_by_reason: BTreeMap<String, u64>,
    cells: Cells,
}

impl PeriodFold {
    fn add(
        &mut self,
        policy: &Policy,
        params: &FunnelParams,
        d: &DealRow,
        stays: &[&StageStayRow],
    ) {
        let inside = |t: DateTime<Utc>| in_window(t, params);
        if inside(d.opened_at) {
            self.new_deals += 1;
        }
        if d.won_at.is_some_and(inside) {
            self.won += 1;
        }
        if d.status == DealStatus::Lost && d.lost_at.is_some_and(inside) {
            self.lost_final += 1;
        }
        for s in stays {
            if inside(s.entered_at) {
                *self
                    .entries
                    .entry(s.stage.as_str().to_string())
                    .or_insert(0) += 1;
                if s.entry == EntryKind::Reopened {
                    self.reopened += 1;
                }
            }
            if s.exit == Some(ExitKind::Lost) && s.exited_at.is_some_and(inside) {
                self.lost += 1;
                let reason = s.lost_reason.map_or("unknown", |r| r.as_str());
                *self.lost_by_reason.entry(reason.to_string()).or_insert(0) += 1;
            }
        }
        add_transitions(policy, stays.iter().copied(), inside, &mut self.cells);
    }

    fn finish(self) -> PeriodFunnel {
        PeriodFunnel {
            new_deals: self.new_deals,
            entries: self.entries,
            won: self.won,
            lost: self.lost,
            lost_final: self.lost_final,
            reopened: self.reopened,
            win_rate: Ratio::new(self.won, self.won + self.lost_final),
            lost_by_reason: self.lost_by_reason,
            transitions: transitions_of(self.cells),
        }
    }
}

//! The one-screen summary the demo ends with: the headline funnel as bars, the win rate with
//! its counts, the top reps, the scorecard's leader, the 80/20 share of the customer ranking,
//! how many deals are stalled and the biggest lost reason, then the
//! commands that show the rest. Every figure is one the full reports show too (the same
//! queries), so the summary never says what `funnel`, `reps` or `pipeline` would contradict.

use super::reports::ratio;
use pipeline_ledger::projections::activity::RepsReport;
use pipeline_ledger::projections::conversion::FunnelReport;
use pipeline_ledger::projections::ranking::RankingReport;
use pipeline_ledger::projections::scorecard::ScorecardReport;
use pipeline_ledger::projections::stalled::PipelineReport;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

/// Cells of the longest bar (the stage every deal entered).
const BAR_CELLS_MAX: usize = 30;
/// Reps named in the summary.
const TOP_REPS: usize = 3;

/// Writes the summary. `store_hint` is how the next commands find the demo's store (an
/// `export` line), empty when they find it without help.
pub fn write_summary(
    out: &mut dyn Write,
    funnel: &FunnelReport,
    reps: &RepsReport,
    scorecard: &ScorecardReport,
    ranking: &RankingReport,
    pipeline: &PipelineReport,
    store_hint: &str,
) -> io::Result<()> {
    let cohort = &funnel.total.cohort;
    writeln!(
        out,
        "The pipeline at log position {}: of {} deals sourced, how many reached each stage",
        funnel.meta.position.map_or("-".into(), |p| p.to_string()),
        cohort.deals
    )?;
    let widest = cohort
        .stages
        .iter()
        .map(|s| s.stage.as_str().len())
        .max()
        .unwrap_or(0);
    for s in &cohort.stages {
        writeln!(
            out,
            "  {:<widest$}  {:<bar$}  {:>6}  {:>6}",
            s.stage.as_str(),
            bar(s.cumulative.rate.unwrap_or(0.0)),
            s.cumulative.count,
            s.cumulative
                .rate
                .map_or("–".to_string(), |r| format!("{:.1}%", r * 100.0)),
            bar = BAR_CELLS_MAX,
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Win rate     {} of the deals decided (won, or lost for good); {} still open",
        ratio(&cohort.win_rate),
        cohort.open
    )?;
    writeln!(out, "Top reps     {}", top_reps(reps))?;
    if let Some(best) = scorecard.rows.first() {
        writeln!(
            out,
            "Scorecard    {}{}: {} leads at {}.{:02}% of target (activity, results, quality)",
            scorecard.quarter,
            if scorecard.in_progress { " so far" } else { "" },
            best.rep,
            best.score_bp / 100,
            best.score_bp % 100
        )?;
    }
    if let Some(line) = pareto_line(ranking) {
        writeln!(out, "Ranking      {line}")?;
    }
    let (stalled, busiest) = stalled(pipeline);
    writeln!(
        out,
        "Stalled      {stalled} open deals idle or stuck past the policy's limits{}",
        busiest.map_or(String::new(), |(owner, n)| format!(
            ", most with {owner} ({n})"
        ))
    )?;
    let lost: u64 = cohort.lost_by_reason.values().sum();
    if let Some((reason, n)) = cohort
        .lost_by_reason
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
    {
        writeln!(
            out,
            "Lost mostly  to {reason}: {n} of {lost} lost deals ({:.1}%)",
            *n as f64 * 100.0 / lost.max(1) as f64
        )?;
    }
    writeln!(out)?;
    writeln!(out, "The rest, one command away:")?;
    if !store_hint.is_empty() {
        writeln!(out, "  {store_hint}")?;
    }
    let example = pipeline
        .stalled_no_progress
        .iter()
        .chain(&pipeline.stalled_no_activity)
        .map(|s| s.customer_id.as_str())
        .min()
        .unwrap_or("CUSTOMER");
    let customer = format!("pipeline-ledger customer {example}");
    for (command, what) in [
        (
            "pipeline-ledger funnel --by source",
            "conversion, time in stage and lost reasons per lead source",
        ),
        (
            "pipeline-ledger reps",
            "each rep's activity and results per quarter",
        ),
        (
            "pipeline-ledger scorecard",
            "the quarter's reps ranked on activity, results, quality",
        ),
        (
            "pipeline-ledger ranking",
            "customers A+ / A / B / C by revenue, the 80/20 share",
        ),
        (
            "pipeline-ledger pipeline",
            "the stalled deals as a worklist, by owner",
        ),
        (customer.as_str(), "one customer's card and stage history"),
        (
            "pipeline-ledger funnel --explain",
            "what every figure means",
        ),
        (
            "pipeline-ledger serve",
            "the HTTP API and the dashboard in a browser",
        ),
        (
            "pipeline-ledger demo --full",
            "the demo with the full reports",
        ),
    ] {
        writeln!(out, "  {command:<36}  {what}")?;
    }
    Ok(())
}

/// The 80/20 line: in the ranking with the most customers in its listed period (the only one
/// with exchange rates), the share of revenue its top 20% of customers bring.
fn pareto_line(ranking: &RankingReport) -> Option<String> {
    let (r, p) = ranking
        .rankings
        .iter()
        .filter_map(|r| {
            let listed = r.listed_period.as_ref()?;
            Some((r, r.periods.iter().find(|p| &p.period == listed)?))
        })
        .max_by(|a, b| {
            a.1.customers
                .cmp(&b.1.customers)
                .then(b.0.currency.cmp(&a.0.currency))
        })?;
    let share = p.top_share?;
    let a_plus = p.classes.first().map_or(0, |c| c.customers);
    Some(format!(
        "{}: the top 20% of customers ({} of {}) bring {:.1}% of the revenue in {}; {} A+",
        p.period,
        p.top_customers,
        p.customers,
        share * 100.0,
        r.currency,
        a_plus
    ))
}

/// A bar of `share` (0–1) of [`BAR_CELLS_MAX`] cells, in eighths of a cell.
fn bar(share: f64) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (share.clamp(0.0, 1.0) * (BAR_CELLS_MAX * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[eighths % 8]);
    }
    s
}

/// The reps with the most deals won over every period of the report, with their win rate.
fn top_reps(reps: &RepsReport) -> String {
    let mut by_rep: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for row in &reps.rows {
        let e = by_rep.entry(row.rep.as_str()).or_default();
        e.0 += row.deals_won;
        e.1 += row.win_rate.count;
        e.2 += row.win_rate.of;
    }
    let mut ranked: Vec<_> = by_rep.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    if ranked.is_empty() {
        return "none yet".into();
    }
    ranked
        .iter()
        .take(TOP_REPS)
        .map(|(rep, (won, count, of))| {
            let rate = if *of > 0 {
                format!("{:.0}%", *count as f64 * 100.0 / *of as f64)
            } else {
                "–".into()
            };
            format!("{rep} {won} won ({rate})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deals stalled either way (each counted once), and the owner with the most of them.
fn stalled(pipeline: &PipelineReport) -> (usize, Option<(String, usize)>) {
    let deals: BTreeSet<(&str, &str, &str)> = pipeline
        .stalled_no_activity
        .iter()
        .chain(&pipeline.stalled_no_progress)
        .map(|s| {
            (
                s.owner_rep.as_str(),
                s.customer_id.as_str(),
                s.deal_id.as_str(),
            )
        })
        .collect();
    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (owner, _, _) in &deals {
        *per_owner.entry(owner).or_default() += 1;
    }
    let busiest = per_owner
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(o, n)| (o.to_string(), n));
    (deals.len(), busiest)
}

#[cfg(test)]
mod tests {
    use super::bar;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn bars_are_proportional_in_eighths_and_never_longer_than_the_maximum() {
        assert_eq!(bar(1.0).width(), super::BAR_CELLS_MAX);
        assert_eq!(bar(0.0), "");
        assert_eq!(bar(0.5).chars().count(), super::BAR_CELLS_MAX / 2);
        // 1/240 of the way is one eighth of a cell.
        assert_eq!(bar(1.0 / 240.0), "▏");
        assert_eq!(bar(7.0).width(), super::BAR_CELLS_MAX);
    }
}

//! Rendering of reports: aligned text tables for people, CSV and JSON for jobs. Every rendering
//! states the log position the report was computed at (CSV: a `position` column on every row).

use crate::present::table::write_wrapped;
pub use crate::present::table::{Layout, Table};
use pipeline_ledger::domain::{EventType, Money};
use pipeline_ledger::projections::activity::RepsReport;
use pipeline_ledger::projections::conversion::{FunnelGroup, FunnelReport, Ratio};
use pipeline_ledger::projections::lifecycle::CustomerReport;
use pipeline_ledger::projections::meta::ReportMeta;
use pipeline_ledger::projections::qualification::QualificationReport;
use pipeline_ledger::projections::ranking::RankingReport;
use pipeline_ledger::projections::retention::RetentionReport;
use pipeline_ledger::projections::scorecard::{BASIS_POINTS, ScoreComponent, ScorecardReport};
use pipeline_ledger::projections::stalled::{PipelineReport, StallKind, StalledDeal};
use pipeline_ledger::projections::time::Spread;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned tables for people, laid out to a width, with or without the figures' definitions.
    Table(Layout),
    /// One JSON document.
    Json,
    /// The report's main table as CSV, with the position on every row.
    Csv,
}

impl Default for Format {
    fn default() -> Self {
        Format::Table(Layout::default())
    }
}

/// A rate as `45.0% (9/20)`; `–` when there is nothing to divide by (a rate of no deals has no
/// meaning, and 0% would claim one).
pub fn ratio(r: &Ratio) -> String {
    match r.rate {
        Some(rate) => format!("{:.1}% ({}/{})", rate * 100.0, r.count, r.of),
        None => "–".to_string(),
    }
}

/// A rate that has no meaning where it is (`next_step` of the last stage): `–`.
fn ratio_or_dash(r: &Option<Ratio>) -> String {
    r.as_ref().map_or_else(|| "–".to_string(), ratio)
}

/// A rate's CSV cells (count, of, rate), empty when the rate has no meaning.
fn ratio_cells(r: &Option<Ratio>) -> [String; 3] {
    match r {
        Some(r) => [r.count.to_string(), r.of.to_string(), rate(r)],
        None => Default::default(),
    }
}

fn rate(r: &Ratio) -> String {
    r.rate.map_or_else(String::new, |x| format!("{x:.6}"))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"))
}

fn spread(s: &Spread) -> String {
    match (s.median, s.p90) {
        (Some(m), Some(p)) => format!("{m:.1} / {p:.1}"),
        _ => "-".to_string(),
    }
}

fn money_minor(amount: i64, currency: &str) -> String {
    match pipeline_ledger::domain::Currency::new(currency) {
        Ok(c) => Money {
            amount_minor: amount,
            currency: c,
        }
        .to_string(),
        Err(_) => format!("{amount} {currency}"),
    }
}

/// The first line of every text report.
pub fn meta_line(meta: &ReportMeta) -> String {
    let mut s = format!(
        "computed at log position {} (head {}, lag {}) from {}",
        meta.position.map_or("-".into(), |p| p.to_string()),
        meta.head_position.map_or("-".into(), |p| p.to_string()),
        meta.lag,
        meta.source
    );
    if let Some(t) = meta.as_of {
        s.push_str(&format!(", as of {}", t.to_rfc3339()));
    }
    if let Some(t) = meta.known_at {
        s.push_str(&format!(", as known at {}", t.to_rfc3339()));
    }
    if let Some(t) = meta.evaluated_at {
        s.push_str(&format!("; clock {}", t.to_rfc3339()));
    }
    s
}

fn write_out<T: Serialize>(
    out: &mut dyn Write,
    format: Format,
    meta: &ReportMeta,
    report: &T,
    tables: Vec<Table>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
            writeln!(out)
        }
        Format::Csv => match tables.first() {
            Some(t) => t.write_csv(meta.position, out),
            None => Ok(()),
        },
        Format::Table(layout) => {
            write_wrapped(out, &meta_line(meta), layout.width, "")?;
            writeln!(out)?;
            for t in &tables {
                t.write_text(out, layout)?;
            }
            Ok(())
        }
    }
}

fn funnel_stage_table(tables: &mut Table, g: &FunnelGroup) {
    for s in &g.cohort.stages {
        tables.row(vec![
            g.key.clone(),
            s.stage.as_str().to_string(),
            s.entered.to_string(),
            s.advanced.to_string(),
            s.lost_here.to_string(),
            s.moved_back.to_string(),
            s.still_in.to_string(),
            s.skipped.to_string(),
            s.re_entries.to_string(),
            ratio_or_dash(&s.next_step),
            ratio_or_dash(&s.moved_forward),
            ratio(&s.cumulative),
            spread(&s.days_to_next),
            spread(&s.latest_stay_days),
            spread(&s.cumulative_days),
        ]);
    }
}

/// Writes the funnel report.
pub fn write_funnel(out: &mut dyn Write, format: Format, r: &FunnelReport) -> io::Result<()> {
    let mut tables = Vec::new();
    if format == Format::Csv {
        let mut t = Table::new(
            "",
            &[
                "group",
                "stage",
                "entered",
                "advanced",
                "lost_here",
                "moved_back",
                "still_in",
                "skipped",
                "re_entries",
                "next_step_count",
                "next_step_of",
                "next_step_rate",
                "moved_forward_count",
                "moved_forward_of",
                "moved_forward_rate",
                "cumulative_count",
                "cumulative_of",
                "cumulative_rate",
                "days_to_next_median",
                "days_to_next_p90",
                "latest_stay_days_median",
                "cumulative_days_median",
            ],
        );
        for g in std::iter::once(&r.total).chain(&r.groups) {
            for s in &g.cohort.stages {
                let mut row = vec![
                    g.key.clone(),
                    s.stage.as_str().into(),
                    s.entered.to_string(),
                    s.advanced.to_string(),
                    s.lost_here.to_string(),
                    s.moved_back.to_string(),
                    s.still_in.to_string(),
                    s.skipped.to_string(),
                    s.re_entries.to_string(),
                ];
                row.extend(ratio_cells(&s.next_step));
                row.extend(ratio_cells(&s.moved_forward));
                row.extend([
                    s.cumulative.count.to_string(),
                    s.cumulative.of.to_string(),
                    rate(&s.cumulative),
                    s.days_to_next
                        .median
                        .map_or(String::new(), |v| v.to_string()),
                    s.days_to_next.p90.map_or(String::new(), |v| v.to_string()),
                    s.latest_stay_days
                        .median
                        .map_or(String::new(), |v| v.to_string()),
                    s.cumulative_days
                        .median
                        .map_or(String::new(), |v| v.to_string()),
                ]);
                t.row(row);
            }
        }
        tables.push(t);
        return write_out(out, format, &r.meta, r, tables);
    }
    let cohort_title = match r.rep_credit {
        Some(_) => {
            "Cohort view: deals sourced in the window, followed to their outcome; each deal in the group of the rep who owned the customer when its lead was sourced (`reps` credits results to the owner at the contract)"
        }
        None => "Cohort view: deals sourced in the window, followed to their outcome",
    };
    let mut summary = Table::new(
        cohort_title,
        &[
            "group",
            "deals",
            "won",
            "lost",
            "open",
            "win rate",
            "open share",
            "maturity",
        ],
    )
    .explained_by(&[
        "funnel.deals",
        "funnel.won",
        "funnel.lost",
        "funnel.open",
        "funnel.win_rate_cohort",
        "funnel.open_share",
        "funnel.immature",
    ]);
    let mut stages = Table::new(
        "Stages (next step: moved straight into the next stage; moved forward: left forward at least once, skips included; days: median / p90)",
        &[
            "group",
            "stage",
            "entered",
            "advanced",
            "lost",
            "moved back",
            "still in",
            "skipped",
            "re-entries",
            "next step",
            "moved forward",
            "cumulative",
            "days to next",
            "latest stay",
            "total in stage",
        ],
    )
    .keyed_by(2)
    .explained_by(&[
        "funnel.entered",
        "funnel.advanced",
        "funnel.lost_here",
        "funnel.moved_back",
        "funnel.still_in",
        "funnel.skipped",
        "funnel.re_entries",
        "funnel.next_step",
        "funnel.moved_forward",
        "funnel.cumulative",
        "funnel.days_to_next",
        "funnel.latest_stay_days",
        "funnel.cumulative_days",
    ]);
    let mut lost = Table::new("Lost deals", &["group", "by", "key", "deals"])
        .explained_by(&["funnel.lost_by_stage", "funnel.lost_reasons"]);
    let mut moves = Table::new(
        "Transitions (skips, moves back and reopenings included)",
        &["group", "from", "to", "count"],
    )
    .explained_by(&["funnel.transitions"]);
    let mut period = Table::new(
        "Period view: what happened inside the window (win rate: won / (won + lost for good), a loss reopened since is no outcome)",
        &[
            "group",
            "new deals",
            "entries",
            "won",
            "lost",
            "lost for good",
            "reopened",
            "win rate",
        ],
    )
    .explained_by(&[
        "funnel.new_deals",
        "funnel.period_entries",
        "funnel.period_won",
        "funnel.period_lost",
        "funnel.lost_final",
        "funnel.reopened",
        "funnel.win_rate_period",
    ]);
    let groups: Vec<&FunnelGroup> = if r.groups.is_empty() {
        vec![&r.total]
    } else {
        std::iter::once(&r.total).chain(&r.groups).collect()
    };
    for g in groups {
        let c = &g.cohort;
        summary.row(vec![
            g.key.clone(),
            c.deals.to_string(),
            c.won.to_string(),
            c.lost.to_string(),
            c.open.to_string(),
            ratio(&c.win_rate),
            ratio(&c.open_share),
            if c.immature { "immature" } else { "" }.into(),
        ]);
        funnel_stage_table(&mut stages, g);
        for (k, v) in &c.lost_by_stage {
            lost.row(vec![
                g.key.clone(),
                "stage".into(),
                k.clone(),
                v.to_string(),
            ]);
        }
        for (k, v) in &c.lost_by_reason {
            lost.row(vec![
                g.key.clone(),
                "reason".into(),
                k.clone(),
                v.to_string(),
            ]);
        }
        for t in &c.transitions {
            moves.row(vec![
                g.key.clone(),
                t.from.clone(),
                t.to.clone(),
                t.count.to_string(),
            ]);
        }
        let p = &g.period;
        let entries: Vec<String> = p.entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        period.row(vec![
            g.key.clone(),
            p.new_deals.to_string(),
            entries.join(" "),
            p.won.to_string(),
            p.lost.to_string(),
            p.lost_final.to_string(),
            p.reopened.to_string(),
            ratio(&p.win_rate),
        ]);
    }
    tables.extend([summary, stages, lost, moves, period]);
    write_out(out, format, &r.meta, r, tables)
}

/// Writes the rep report.
pub fn write_reps(out: &mut dyn Write, format: Format, r: &RepsReport) -> io::Result<()> {
    let mut headers = vec!["rep", "period", "interactions"];
    headers.extend(REP_INTERACTION_COLUMNS.iter().map(|(_, column)| *column));
    headers.extend([
        "other",
        "customers",
        "won",
        "won_value",
        "lost",
        "win_rate",
        "days_to_close_median",
        "days_to_close_p90",
        "overdue_follow_ups",
        "reassigned_in",
        "reassigned_out",
    ]);
    let mut t = Table::new(format!("Reps per {}", r.params.period.as_str()), &headers)
        .keyed_by(2)
        .explained_by(&[
            "reps.period",
            "reps.interactions_total",
            "reps.interactions",
            "reps.customers_touched",
            "reps.deals_won",
            "reps.won_value",
            "reps.deals_lost",
            "reps.win_rate",
            "reps.days_to_close",
            "reps.overdue_followups",
            "reps.reassigned_in",
            "reps.reassigned_out",
        ]);
    for row in &r.rows {
        let count = |k: &str| row.interactions.get(k).copied().unwrap_or(0);
        let named: u64 = REP_INTERACTION_COLUMNS
            .iter()
            .map(|(t, _)| count(t.as_str()))
            .sum();
        // The type columns and `other` add up to `interactions`, whatever types a later version
        // counts.
        let other = row.interactions_total.saturating_sub(named);
        debug_assert_eq!(named + other, row.interactions_total);
        let value: Vec<String> = row
            .won_value_minor
            .iter()
            .map(|(c, v)| money_minor(*v, c))
            .collect();
        let mut cells = vec![
            row.rep.clone(),
            row.period.clone(),
            row.interactions_total.to_string(),
        ];
        cells.extend(
            REP_INTERACTION_COLUMNS
                .iter()
                .map(|(t, _)| count(t.as_str()).to_string()),
        );
        cells.extend([
            other.to_string(),
            row.customers_touched.to_string(),
            row.deals_won.to_string(),
            value.join(" + "),
            row.deals_lost.to_string(),
            if format == Format::Csv {
                rate(&row.win_rate)
            } else {
                ratio(&row.win_rate)
            },
            num(row.days_to_close.median),
            num(row.days_to_close.p90),
            row.overdue_followups.to_string(),
            row.reassigned_in.to_string(),
            row.reassigned_out.to_string(),
        ]);
        t.row(cells);
    }
    write_out(out, format, &r.meta, r, vec![t])
}

/// Writes the quarterly rep scorecard: one row per rep, best first, each component as
/// actual / target and its attainment, then the weighted score.
pub fn write_scorecard(out: &mut dyn Write, format: Format, r: &ScorecardReport) -> io::Result<()> {
    let w = r.weights;
    let headers = [
        "rank",
        "rep",
        "score",
        "movement",
        "interactions",
        "activity",
        "won",
        "results",
        "win_rate",
        "quality",
    ];
    let title = format!(
        "Rep scorecard {}{} (weights: activity {}, results {}, quality {}; targets: {} \
         interactions, {} won, {}% win rate; attainment capped at {}%)",
        r.quarter,
        if r.in_progress {
            ", in progress: counted so far against the whole quarter's targets"
        } else {
            ""
        },
        w.activity,
        w.results,
        w.quality,
        r.targets.interactions,
        r.targets.deals_won,
        r.targets.win_rate_percent,
        r.attainment_cap_percent
    );
    let mut t = Table::new(title, &headers).keyed_by(2).explained_by(&[
        "scorecard.score",
        "scorecard.movement",
        "scorecard.activity",
        "scorecard.results",
        "scorecard.quality",
        "scorecard.attainment",
    ]);
    let csv = format == Format::Csv;
    // Basis points as a percentage with two decimals: exact, as the score is whole basis points.
    let percent = |bp: u64| format!("{}.{:02}", bp / 100, bp % 100);
    let attained = |c: &ScoreComponent| match c.attainment_bp {
        Some(bp) if csv => percent(bp),
        Some(bp) => format!("{}%", percent(bp)),
        None if csv => String::new(),
        None => "–".to_string(),
    };
    for row in &r.rows {
        let movement = match row.movement {
            Some(m) if csv => m.to_string(),
            Some(0) => "=".to_string(),
            Some(m) if m > 0 => format!("▲{m}"),
            Some(m) => format!("▼{}", -m),
            None if csv => String::new(),
            None => "new".to_string(),
        };
        let closed = row.deals_won + row.deals_lost;
        let win_rate = if closed == 0 {
            if csv {
                String::new()
            } else {
                "–".to_string()
            }
        } else if csv {
            percent(row.quality.actual)
        } else {
            format!(
                "{}% ({}/{closed})",
                percent(row.quality.actual),
                row.deals_won
            )
        };
        debug_assert!(row.quality.actual <= BASIS_POINTS);
        t.row(vec![
            row.rank.to_string(),
            row.rep.clone(),
            percent(row.score_bp),
            movement,
            if csv {
                row.activity.actual.to_string()
            } else {
                format!("{}/{}", row.activity.actual, row.activity.target)
            },
            attained(&row.activity),
            if csv {
                row.results.actual.to_string()
            } else {
                format!("{}/{}", row.results.actual, row.results.target)
            },
            attained(&row.results),
            win_rate,
            attained(&row.quality),
        ]);
    }
    write_out(out, format, &r.meta, r, vec![t])
}

/// Writes the retention report: the overall figures, the counts per period, and the revenue
/// per period and currency. The CSV is one row per period and currency with every column.
pub fn write_retention(out: &mut dyn Write, format: Format, r: &RetentionReport) -> io::Result<()> {
    let csv = format == Format::Csv;
    let show = |x: &pipeline_ledger::projections::conversion::Ratio| {
        if csv { rate(x) } else { ratio(x) }
    };
    let costed = r.periods.iter().any(|p| p.costs.is_some());
    let mut overall = Table::new(
        if costed {
            format!("Retention ({})", r.costs)
        } else {
            format!("Retention (revenue only: {})", r.costs)
        },
        &["figure", "value"],
    )
    .keyed_by(1)
    .explained_by(&[
        "retention.won_customers",
        "retention.repeat_customers",
        "retention.dormant",
        "retention.reengaged",
        "retention.days_to_first_repeat_order",
    ]);
    overall.row(vec!["won customers".into(), r.won_customers.to_string()]);
    overall.row(vec![
        "with a repeat order".into(),
        show(&r.repeat_customers),
    ]);
    overall.row(vec!["dormant now".into(), show(&r.dormant)]);
    overall.row(vec!["came back after dormancy".into(), show(&r.reengaged)]);
    overall.row(vec![
        "days to the first repeat order".into(),
        format!(
            "median {}, p90 {} ({})",
            num(r.days_to_first_repeat_order.median),
            num(r.days_to_first_repeat_order.p90),
            r.days_to_first_repeat_order.count
        ),
    ]);
    let label = r.params.period.as_str();
    let mut counts = Table::new(
        format!("Contracts and repeat orders per {label}"),
        &[
            "period",
            "contracts",
            "first_contracts",
            "repeat_orders",
            "repeat_customers",
            "kept_customers",
        ],
    )
    .keyed_by(1)
    .explained_by(&[
        "retention.first_contracts",
        "retention.repeat_orders",
        "retention.kept_customers",
    ]);
    let mut cost_table = Table::new(
        format!("Cost to win and to keep a customer per {label}"),
        &[
            "period",
            "to_win",
            "to_keep",
            "per_new_customer",
            "per_kept_customer",
            "keep_to_win",
        ],
    )
    .keyed_by(1)
    .explained_by(&["retention.cost_per_customer"]);
    let mut revenue = Table::new(
        format!("Revenue per {label} and currency"),
        &if csv {
            vec![
                "period",
                "currency",
                "contracts",
                "first_contracts",
                "repeat_orders",
                "repeat_customers",
                "new_customer_revenue_minor",
                "existing_customer_revenue_minor",
                "existing_share",
            ]
        } else {
            vec![
                "period",
                "currency",
                "new_customers",
                "existing_customers",
                "existing_share",
            ]
        },
    )
    .keyed_by(2)
    .explained_by(&["retention.existing_share"]);
    for p in &r.periods {
        counts.row(vec![
            p.period.clone(),
            p.contracts.to_string(),
            p.first_contracts.to_string(),
            p.repeat_orders.to_string(),
            p.repeat_customers.to_string(),
            p.kept_customers.to_string(),
        ]);
        if let Some(c) = &p.costs {
            let per = |v: Option<i64>| v.map_or("–".to_string(), |m| money_minor(m, &c.currency));
            cost_table.row(vec![
                p.period.clone(),
                money_minor(c.to_win_minor, &c.currency),
                money_minor(c.to_keep_minor, &c.currency),
                per(c.per_new_customer_minor),
                per(c.per_kept_customer_minor),
                c.keep_to_win.map_or("–".into(), |v| format!("{v:.2}")),
            ]);
        }
        for (currency, split) in &p.revenue {
            let share = match split.existing_share {
                Some(share) if csv => format!("{share:.6}"),
                Some(share) => format!("{:.1}%", share * 100.0),
                None if csv => String::new(),
                None => "–".into(),
            };
            let mut cells = vec![p.period.clone(), currency.clone()];
            if csv {
                cells.extend([
                    p.contracts.to_string(),
                    p.first_contracts.to_string(),
                    p.repeat_orders.to_string(),
                    p.repeat_customers.to_string(),
                    split.new_customers_minor.to_string(),
                    split.existing_customers_minor.to_string(),
                ]);
            } else {
                cells.extend([
                    money_minor(split.new_customers_minor, currency),
                    money_minor(split.existing_customers_minor, currency),
                ]);
            }
            cells.push(share);
            revenue.row(cells);
        }
    }
    let tables = if csv {
        vec![revenue]
    } else if costed {
        vec![overall, counts, revenue, cost_table]
    } else {
        vec![overall, counts, revenue]
    };
    write_out(out, format, &r.meta, r, tables)
}

/// Writes the customer ranking: per currency ranked, the classes and the Pareto share of every
/// period, the listed period's customers, and the movement between classes since the period
/// before. The CSV is one row per listed customer (of every ranking) with every column.
pub fn write_ranking(out: &mut dyn Write, format: Format, r: &RankingReport) -> io::Result<()> {
    let csv = format == Format::Csv;
    let share_cell = |share: Option<f64>| match share {
        Some(v) if csv => format!("{v:.6}"),
        Some(v) => format!("{:.1}%", v * 100.0),
        None if csv => String::new(),
        None => "–".into(),
    };
    let label = r.params.period.as_str();
    let mut listed = Table::new(
        "Customers of the listed period, best first".to_string(),
        &[
            "currency",
            "period",
            "rank",
            "customer",
            "company",
            "revenue",
            "share",
            "cumulative_share",
            "class",
            "class_before",
            "open_deals",
        ],
    )
    .keyed_by(4)
    .explained_by(&[
        "ranking.class",
        "ranking.class_before",
        "ranking.open_deals",
    ]);
    let mut tables = Vec::new();
    let mut header = Table::new("Customer ranking (80/20)".to_string(), &["figure", "value"])
        .keyed_by(1)
        .explained_by(&["ranking.classes_by", "ranking.rates_version"]);
    header.row(vec!["classes by".into(), r.classes_by.clone()]);
    header.row(vec![
        "money".into(),
        match (&r.rates_version, r.per_currency) {
            (Some(version), _) => format!("converted at the policy's rates, version {version}"),
            (None, Some(why)) => why.to_string(),
            (None, None) => "–".into(),
        },
    ]);
    tables.push(header);
    for ranking in &r.rankings {
        let currency = ranking.currency.as_str();
        let amount = |minor: i64| {
            if csv {
                minor.to_string()
            } else {
                money_minor(minor, currency)
            }
        };
        let mut periods = Table::new(
            format!("Revenue in {currency} per {label}: classes and the top 20%"),
            &[
                "period",
                "customers",
                "revenue",
                "top_20_percent",
                "A+",
                "A",
                "B",
                "C",
                "unconverted",
            ],
        )
        .keyed_by(1)
        .explained_by(&[
            "ranking.top_share",
            "ranking.class_share",
            "ranking.unconverted",
        ]);
        for p in &ranking.periods {
            let mut cells = vec![
                p.period.clone(),
                p.customers.to_string(),
                amount(p.revenue_minor),
                format!("{} ({})", share_cell(p.top_share), p.top_customers),
            ];
            for c in &p.classes {
                cells.push(format!("{} ({})", share_cell(c.share), c.customers));
            }
            let left: Vec<String> = p
                .unconverted
                .iter()
                .map(|u| {
                    format!(
                        "{} ({} events)",
                        money_minor(u.amount_minor, &u.currency),
                        u.events
                    )
                })
                .collect();
            cells.push(if left.is_empty() {
                "–".into()
            } else {
                left.join(", ")
            });
            periods.row(cells);
        }
        for c in &ranking.customers {
            listed.row(vec![
                currency.to_string(),
                ranking.listed_period.clone().unwrap_or_default(),
                c.rank.to_string(),
                c.customer_id.clone(),
                c.company.clone().unwrap_or_default(),
                amount(c.revenue_minor),
                share_cell(c.share),
                share_cell(c.cumulative_share),
                c.class.to_string(),
                c.class_before.to_string(),
                c.open_deals.to_string(),
            ]);
        }
        let mut movement = Table::new(
            format!(
                "Class movement in {currency}, {} → {}",
                ranking.period_before.as_deref().unwrap_or("–"),
                ranking.listed_period.as_deref().unwrap_or("–")
            ),
            &["from", "to", "customers"],
        )
        .keyed_by(2)
        .explained_by(&["ranking.movement"]);
        for m in &ranking.movement {
            movement.row(vec![m.from.into(), m.to.into(), m.customers.to_string()]);
        }
        tables.push(periods);
        tables.push(movement);
    }
    if csv {
        return write_out(out, format, &r.meta, r, vec![listed]);
    }
    tables.push(listed);
    write_out(out, format, &r.meta, r, tables)
}

/// Writes the qualification report: win rate and conversion per worksheet score, per criterion
/// (met against not met, and the lift), the calibration per score band, and per first-visit
/// intent. The CSV is the per-score table.
pub fn write_qualification(
    out: &mut dyn Write,
    format: Format,
    r: &QualificationReport,
) -> io::Result<()> {
    use pipeline_ledger::projections::qualification::Outcomes;
    let csv = format == Format::Csv;
    let show = |x: &Ratio| {
        if csv {
            rate(x)
        } else {
            match x.rate {
                Some(_) => ratio(x),
                None if x.of > 0 => format!("– ({}/{})", x.count, x.of),
                None => "–".into(),
            }
        }
    };
    let outcome_cells = |o: &Outcomes| {
        vec![
            o.deals.to_string(),
            o.open.to_string(),
            o.won.to_string(),
            o.lost.to_string(),
            show(&o.win_rate),
            show(&o.conversion),
        ]
    };
    let columns = ["deals", "open", "won", "lost", "win_rate", "conversion"];
    let mut by_score = Table::new(
        format!(
            "By worksheet score ({} of {} deals had no worksheet; rates need {} decided deals)",
            r.without_worksheet, r.deals, r.sample_min
        ),
        &[&["score"][..], &columns[..]].concat(),
    )
    .keyed_by(1)
    .explained_by(&["qualification.win_rate", "qualification.conversion"]);
    for row in &r.by_score {
        let mut cells = vec![row.score.map_or("none".into(), |s| s.to_string())];
        cells.extend(outcome_cells(&row.outcomes));
        by_score.row(cells);
    }
    let mut by_criterion = Table::new(
        "By criterion: met against not met".to_string(),
        &[
            "criterion",
            "met_deals",
            "met_win_rate",
            "not_met_deals",
            "not_met_win_rate",
            "lift",
        ],
    )
    .keyed_by(1)
    .explained_by(&["qualification.lift"]);
    for c in &r.by_criterion {
        by_criterion.row(vec![
            c.criterion.to_string(),
            c.met.deals.to_string(),
            show(&c.met.win_rate),
            c.not_met.deals.to_string(),
            show(&c.not_met.win_rate),
            c.lift.map_or("–".into(), |l| format!("{l:.2}")),
        ]);
    }
    let mut calibration = Table::new(
        format!(
            "Calibration per score band (the bands' win rates rise: {})",
            match r.bands_rise {
                Some(true) => "yes",
                Some(false) => "no",
                None => "– (a band has too few decided deals)",
            }
        ),
        &["band", "decided", "observed", "score_as_chance", "gap"],
    )
    .keyed_by(1)
    .explained_by(&["qualification.calibration"]);
    let pct_or_dash = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0));
    for c in &r.calibration {
        calibration.row(vec![
            c.band.clone(),
            c.decided.to_string(),
            show(&c.observed),
            pct_or_dash(c.score_as_chance),
            c.gap
                .map_or("–".into(), |g| format!("{:+.1} points", g * 100.0)),
        ]);
    }
    let mut by_intent = Table::new(
        "By the intent judged at the first visit (1 none … 5 ready to buy)".to_string(),
        &[&["intent"][..], &columns[..]].concat(),
    )
    .keyed_by(1)
    .explained_by(&["qualification.intent"]);
    for row in &r.by_intent {
        let mut cells = vec![row.intent.map_or("none".into(), |s| s.to_string())];
        cells.extend(outcome_cells(&row.outcomes));
        by_intent.row(cells);
    }
    let tables = if csv {
        vec![by_score]
    } else {
        vec![by_score, by_criterion, calibration, by_intent]
    };
    write_out(out, format, &r.meta, r, tables)
}

/// The interactions the rep table counts in a column of their own, by type. `lost_logged` and
/// `reopened` are events the rep performed (activity), apart from `lost`, the deals lost while
/// the rep owned them (results).
const REP_INTERACTION_COLUMNS: [(EventType, &str); 9] = [
    (EventType::LeadSourced, "leads"),
    (EventType::FirstVisitMade, "visits"),
    (EventType::DemoGiven, "demos"),
    (EventType::NegotiationHeld, "negotiations"),
    (EventType::ContractSigned, "contracts"),
    (EventType::FollowUpLogged, "follow_ups"),
    (EventType::DealLost, "lost_logged"),
    (EventType::DealReopened, "reopened"),
    (EventType::CustomerReassigned, "reassignments"),
];

/// Writes the customer report.
pub fn write_customer(out: &mut dyn Write, format: Format, r: &CustomerReport) -> io::Result<()> {
    let c = &r.customer;
    let mut history = Table::new(
        "Stage history",
        &[
            "deal", "stage", "entered", "entry", "exited", "exit", "to", "days",
        ],
    )
    .keyed_by(2)
    .explained_by(&["customer.stay", "customer.stay_days"]);
    for s in &r.stage_history {
        history.row(vec![
            s.stay.deal_id.clone(),
            s.stay.stage.as_str().into(),
            s.stay.entered_at.to_rfc3339(),
            s.stay.entry.as_str().into(),
            s.stay.exited_at.map_or(String::new(), |t| t.to_rfc3339()),
            s.stay.exit.map_or(String::new(), |x| x.as_str().into()),
            s.stay.to_stage.map_or(String::new(), |x| x.as_str().into()),
            num(s.days),
        ]);
    }
    if !matches!(format, Format::Table(_)) {
        return write_out(out, format, &r.meta, r, vec![history]);
    }
    let mut facts = Table::new(format!("Customer {}", c.customer_id), &["field", "value"])
        .left_aligned()
        .explained_by(&[
            "customer.state_now",
            "customer.owner_rep",
            "customer.current_deal",
            "customer.current_stage",
            "customer.days_in_current_stage",
            "customer.first_seen_at",
            "customer.last_interaction_at",
            "customer.next_followup_due",
            "customer.open_deals",
            "customer.contracts_minor",
        ]);
    let value: Vec<String> = r
        .values
        .iter()
        .map(|v| money_minor(v.contracts_minor, &v.currency))
        .collect();
    for (k, v) in [
        ("company", c.company.clone()),
        ("state", state_explained(r)),
        ("owner", c.owner_rep.clone()),
        (
            "current deal",
            c.current_deal_id.clone().unwrap_or_default(),
        ),
        (
            "current stage",
            c.current_stage.map_or(String::new(), |s| s.as_str().into()),
        ),
        ("days in stage", num(r.days_in_current_stage)),
        ("first seen", c.first_seen_at.to_rfc3339()),
        ("last interaction", c.last_interaction_at.to_rfc3339()),
        ("next follow-up due", followup_explained(r)),
        (
            "deals open / won / lost",
            format!("{} / {} / {}", c.open_deals, c.won_deals, c.lost_deals),
        ),
        ("contract value", value.join(" + ")),
    ] {
        facts.row(vec![k.to_string(), v]);
    }
    write_out(out, format, &r.meta, r, vec![facts, history])
}

/// The customer's state, with why when it could look like a contradiction: a dormant customer
/// (dormancy follows the last interaction after a win) that has an open deal too.
fn state_explained(r: &CustomerReport) -> String {
    let c = &r.customer;
    let state = r.state_now.as_str();
    if state != "dormant" {
        return state.to_string();
    }
    let mut why = format!(
        "dormant: won before, and no interaction since {}",
        c.last_interaction_at.date_naive()
    );
    if let Some(after) = c.dormant_after {
        why.push_str(&format!(" (dormant from {})", after.date_naive()));
    }
    if c.open_deals > 0
        && let (Some(deal), Some(stage)) = (&c.current_deal_id, c.current_stage)
    {
        why.push_str(&format!(
            "; its open deal {deal} at {} has not moved since, and the state follows the \
             customer's interactions, not that deal",
            stage.as_str()
        ));
    }
    why
}

/// The next follow-up's due date, flagged when the report's clock is past it.
fn followup_explained(r: &CustomerReport) -> String {
    let Some(due) = r.customer.next_followup_due else {
        return String::new();
    };
    match r
        .meta
        .evaluated_at
        .map(|now| (now.date_naive() - due).num_days())
    {
        Some(days) if days > 0 => format!("{due} (OVERDUE by {days} days)"),
        _ => due.to_string(),
    }
}

/// How many stalled deals a person asks to see (`pipeline --limit`; `--owner` filters the
/// report itself, so that JSON agrees).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Worklist {
    /// At most this many deals per owner, the longest stalled first.
    pub per_owner_max: Option<usize>,
}

/// One stalled deal with every reason it is stalled.
#[derive(Debug, Clone, PartialEq)]
struct WorkItem<'a> {
    deal: &'a StalledDeal,
    reasons: Vec<&'a StalledDeal>,
    /// The longest of its stalls, in days.
    days: f64,
}

/// The stalled deals as a worklist: one item per deal with both reasons, grouped by owner
/// (in name order), the longest stalled first within an owner; `worklist` filters and limits.
/// Returns the items kept and, per owner, how many were left out by the limit.
fn worklist<'a>(
    r: &'a PipelineReport,
    worklist: &Worklist,
) -> (Vec<WorkItem<'a>>, BTreeMap<&'a str, usize>) {
    let mut by_deal: BTreeMap<(&str, &str, &str), WorkItem<'a>> = BTreeMap::new();
    for s in r.stalled_no_activity.iter().chain(&r.stalled_no_progress) {
        let item = by_deal
            .entry((&s.owner_rep, &s.customer_id, &s.deal_id))
            .or_insert(WorkItem {
                deal: s,
                reasons: Vec::new(),
                days: 0.0,
            });
        item.reasons.push(s);
        item.days = item.days.max(s.days);
    }
    let mut items: Vec<WorkItem<'a>> = by_deal.into_values().collect();
    items.sort_by(|a, b| {
        a.deal
            .owner_rep
            .cmp(&b.deal.owner_rep)
            .then(b.days.total_cmp(&a.days))
            .then(a.deal.customer_id.cmp(&b.deal.customer_id))
            .then(a.deal.deal_id.cmp(&b.deal.deal_id))
    });
    let mut kept = Vec::with_capacity(items.len());
    let mut left_out: BTreeMap<&str, usize> = BTreeMap::new();
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    for item in items {
        let owner = item.deal.owner_rep.as_str();
        let n = shown.entry(owner).or_default();
        if worklist.per_owner_max.is_some_and(|max| *n >= max) {
            *left_out.entry(owner).or_default() += 1;
            continue;
        }
        *n += 1;
        kept.push(item);
    }
    (kept, left_out)
}

/// A stall in words: `no activity for 45 days (limit 14)`.
fn stall_words(s: &StalledDeal) -> String {
    let what = match s.kind {
        StallKind::NoActivity => "no activity",
        StallKind::NoProgress => "no progress",
    };
    format!(
        "{what} for {:.0} days (limit {})",
        s.days.floor(),
        s.threshold_days
    )
}

/// The wire name of a stall kind, as JSON says it.
fn stall_kind(kind: StallKind) -> &'static str {
    match kind {
        StallKind::NoActivity => "no_activity",
        StallKind::NoProgress => "no_progress",
    }
}

/// Writes the pipeline report; its stalled deals as the worklist `wanted` asks for.
pub fn write_pipeline(
    out: &mut dyn Write,
    format: Format,
    r: &PipelineReport,
    wanted: &Worklist,
) -> io::Result<()> {
    let (items, left_out) = worklist(r, wanted);
    if format == Format::Csv {
        // One row per stall (a deal stalled both ways has two), as jobs read it.
        let mut t = Table::new(
            "",
            &[
                "kind",
                "customer",
                "deal",
                "stage",
                "owner",
                "days",
                "threshold_days",
            ],
        );
        for item in &items {
            for s in &item.reasons {
                t.row(vec![
                    stall_kind(s.kind).into(),
                    s.customer_id.clone(),
                    s.deal_id.clone(),
                    s.stage.as_str().into(),
                    s.owner_rep.clone(),
                    format!("{:.1}", s.days),
                    s.threshold_days.to_string(),
                ]);
            }
        }
        return write_out(out, format, &r.meta, r, vec![t]);
    }
    let mut states = Table::new("Customers by state", &["state", "customers"])
        .explained_by(&["pipeline.customers_by_state"]);
    for (k, v) in &r.customers_by_state {
        states.row(vec![k.clone(), v.to_string()]);
    }
    let mut stages = Table::new("Open deals by stage", &["stage", "deals"])
        .explained_by(&["pipeline.open_deals_by_stage"]);
    for (s, v) in &r.open_deals_by_stage {
        stages.row(vec![s.as_str().into(), v.to_string()]);
    }
    let mut owners = Table::new("Open deals by owner", &["owner", "deals"])
        .explained_by(&["pipeline.open_deals_by_owner"]);
    for (owner, n) in &r.open_deals_by_owner {
        owners.row(vec![owner.clone(), n.to_string()]);
    }
    let deals_stalled = items.len() + left_out.values().sum::<usize>();
    let mut stalled = Table::new(
        format!(
            "Stalled deals: {deals_stalled} to look at, by owner, the longest stalled first{}",
            match wanted.per_owner_max {
                Some(max) if !left_out.is_empty() => format!(" ({max} per owner; --limit)"),
                _ => String::new(),
            }
        ),
        &["owner", "customer", "deal", "stage", "days", "why"],
    )
    .explained_by(&[
        "pipeline.stalled",
        "pipeline.stalled_no_activity",
        "pipeline.stalled_no_progress",
    ]);
    let mut last_owner: Option<&str> = None;
    for item in &items {
        let owner = item.deal.owner_rep.as_str();
        if let Some(previous) = last_owner
            && previous != owner
            && let Some(more) = left_out.get(previous)
        {
            stalled.row(vec![previous.into(), format!("… {more} more")]);
        }
        last_owner = Some(owner);
        stalled.row(vec![
            owner.into(),
            item.deal.customer_id.clone(),
            item.deal.deal_id.clone(),
            item.deal.stage.as_str().into(),
            format!("{:.0}", item.days.floor()),
            item.reasons
                .iter()
                .map(|s| stall_words(s))
                .collect::<Vec<_>>()
                .join("; "),
        ]);
    }
    if let Some(previous) = last_owner
        && let Some(more) = left_out.get(previous)
    {
        stalled.row(vec![previous.into(), format!("… {more} more")]);
    }
    let mut overdue = Table::new(
        "Overdue follow-ups",
        &["customer", "deal", "due_on", "owner", "days_overdue"],
    )
    .explained_by(&["pipeline.overdue_followups", "pipeline.days_overdue"]);
    for o in &r.overdue_followups {
        overdue.row(vec![
            o.customer_id.clone(),
            o.deal_id.clone(),
            o.due_on.to_string(),
            o.owner_rep.clone(),
            o.days_overdue.to_string(),
        ]);
    }
    write_out(
        out,
        format,
        &r.meta,
        r,
        vec![states, stages, owners, stalled, overdue],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_carries_the_position() {
        let mut t = Table::new("", &["a", "b"]);
        t.row(vec!["x,y".into(), "say \"hi\"".into()]);
        let mut out = Vec::new();
        t.write_csv(Some(7), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "position,a,b\n7,\"x,y\",\"say \"\"hi\"\"\"\n"
        );
    }

    #[test]
    fn text_tables_align_columns() {
        let mut t = Table::new("T", &["name", "n"]);
        t.row(vec!["alpha".into(), "5".into()]);
        t.row(vec!["b".into(), "12".into()]);
        let mut out = Vec::new();
        t.write_text(&mut out, Layout::default()).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("alpha   5\n"), "{s}");
        assert!(s.contains("b      12\n"), "{s}");
    }
}

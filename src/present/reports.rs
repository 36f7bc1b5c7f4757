//! Rendering of reports: aligned text tables for people, CSV and JSON for jobs. Every rendering
//! states the log position the report was computed at (CSV: a `position` column on every row).

use crate::present::for_terminal;
use pipeline_ledger::domain::{EventType, Money};
use pipeline_ledger::projections::activity::RepsReport;
use pipeline_ledger::projections::conversion::{FunnelGroup, FunnelReport, Ratio};
use pipeline_ledger::projections::lifecycle::CustomerReport;
use pipeline_ledger::projections::meta::ReportMeta;
use pipeline_ledger::projections::stalled::{PipelineReport, StalledDeal};
use pipeline_ledger::projections::time::Spread;
use serde::Serialize;
use std::io::{self, Write};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned tables for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// The report's main table as CSV, with the position on every row.
    Csv,
}

/// A titled table of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Table {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Writes the table with columns aligned (numbers to the right), for a terminal: control
    /// characters and terminal escapes in the text are shown escaped ([`for_terminal`]).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let escaped = |cells: &[String]| -> Vec<String> {
            cells.iter().map(|c| for_terminal(c).into_owned()).collect()
        };
        let table = Table {
            title: for_terminal(&self.title).into_owned(),
            headers: escaped(&self.headers),
            rows: self.rows.iter().map(|r| escaped(r)).collect(),
        };
        table.write_aligned(out)
    }

    fn write_aligned(&self, out: &mut dyn Write) -> io::Result<()> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        if !self.title.is_empty() {
            writeln!(out, "{}", self.title)?;
        }
        let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map_or("", String::as_str);
                let pad = w - c.chars().count().min(*w);
                let numeric = c
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_digit() || ch == '-')
                    && i > 0;
                if i > 0 {
                    s.push_str("  ");
                }
                if numeric {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        line(&self.headers, out)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, out)?;
        for r in &self.rows {
            line(r, out)?;
        }
        writeln!(out)
    }

    /// Writes the table as CSV (RFC 4180 quoting), with `position` as the first column.
    pub fn write_csv(&self, position: Option<u64>, out: &mut dyn Write) -> io::Result<()> {
        let pos = position.map_or_else(String::new, |p| p.to_string());
        let mut header = vec!["position".to_string()];
        header.extend(self.headers.iter().cloned());
        writeln!(out, "{}", csv_line(&header))?;
        for r in &self.rows {
            let mut cells = vec![pos.clone()];
            cells.extend(r.iter().cloned());
            writeln!(out, "{}", csv_line(&cells))?;
        }
        Ok(())
    }
}

/// One CSV line (RFC 4180 quoting).
pub fn csv_line(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A rate as `45.0% (9/20)`; `-` when there is nothing to divide by.
pub fn ratio(r: &Ratio) -> String {
    match r.rate {
        Some(rate) => format!("{:.1}% ({}/{})", rate * 100.0, r.count, r.of),
        None => format!("- (0/{})", r.of),
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
        Format::Table => {
            writeln!(out, "{}\n", meta_line(meta))?;
            for t in &tables {
                t.write_text(out)?;
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
        ],
    );
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
    );
    let mut lost = Table::new("Lost deals", &["group", "by", "key", "deals"]);
    let mut moves = Table::new(
        "Transitions (skips, moves back and reopenings included)",
        &["group", "from", "to", "count"],
    );
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
    );
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
    let mut t = Table::new(format!("Reps per {}", r.params.period.as_str()), &headers);
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
    );
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
    if format != Format::Table {
        return write_out(out, format, &r.meta, r, vec![history]);
    }
    let mut facts = Table::new(format!("Customer {}", c.customer_id), &["field", "value"]);
    let value: Vec<String> = r
        .values
        .iter()
        .map(|v| money_minor(v.contracts_minor, &v.currency))
        .collect();
    for (k, v) in [
        ("company", c.company.clone()),
        ("state", r.state_now.as_str().to_string()),
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
        (
            "next follow-up due",
            c.next_followup_due.map_or(String::new(), |d| d.to_string()),
        ),
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

fn stalled_rows(t: &mut Table, list: &[StalledDeal]) {
    for s in list {
        t.row(vec![
            format!("{:?}", s.kind).to_lowercase(),
            s.customer_id.clone(),
            s.deal_id.clone(),
            s.stage.as_str().into(),
            s.owner_rep.clone(),
            format!("{:.1}", s.days),
            s.threshold_days.to_string(),
        ]);
    }
}

/// Writes the pipeline report.
pub fn write_pipeline(out: &mut dyn Write, format: Format, r: &PipelineReport) -> io::Result<()> {
    let headers = [
        "kind",
        "customer",
        "deal",
        "stage",
        "owner",
        "days",
        "threshold_days",
    ];
    if format == Format::Csv {
        let mut t = Table::new("", &headers);
        stalled_rows(&mut t, &r.stalled_no_activity);
        stalled_rows(&mut t, &r.stalled_no_progress);
        return write_out(out, format, &r.meta, r, vec![t]);
    }
    let mut states = Table::new("Customers by state", &["state", "customers"]);
    for (k, v) in &r.customers_by_state {
        states.row(vec![k.clone(), v.to_string()]);
    }
    let mut stages = Table::new("Open deals by stage", &["stage", "deals"]);
    for (s, v) in &r.open_deals_by_stage {
        stages.row(vec![s.as_str().into(), v.to_string()]);
    }
    let mut owners = Table::new("Open deals by owner", &["owner", "deals"]);
    for (owner, n) in &r.open_deals_by_owner {
        owners.row(vec![owner.clone(), n.to_string()]);
    }
    let mut no_activity = Table::new("Stalled: no activity", &headers);
    stalled_rows(&mut no_activity, &r.stalled_no_activity);
    let mut no_progress = Table::new("Stalled: no progress", &headers);
    stalled_rows(&mut no_progress, &r.stalled_no_progress);
    let mut overdue = Table::new(
        "Overdue follow-ups",
        &["customer", "deal", "due_on", "owner", "days_overdue"],
    );
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
        vec![states, stages, owners, no_activity, no_progress, overdue],
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
        t.write_text(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("alpha   5\n"), "{s}");
        assert!(s.contains("b      12\n"), "{s}");
    }
}

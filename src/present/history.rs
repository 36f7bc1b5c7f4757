//! Rendering for people (aligned tables) and for programs (JSON).

use super::for_terminal;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use pipeline_ledger::domain::{Correction, EventPayload, LedgerEvent};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;

/// A new table in the house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().copied());
    t
}

/// One line saying what an event says.
pub fn summary(payload: &EventPayload) -> String {
    match payload {
        EventPayload::LeadSourced(e) => format!("lead from {} ({})", e.source.as_str(), e.company),
        EventPayload::FirstVisitMade(e) => format!(
            "visit: {} → {} (intent {})",
            e.visit.purpose, e.visit.actual_outcome, e.intent_level
        ),
        EventPayload::DemoGiven(e) => format!("demo of {}", e.products_shown.join(", ")),
        EventPayload::NegotiationHeld(e) => format!(
            "negotiation: {} objection(s), {} resolved",
            e.objections.len(),
            e.objections.iter().filter(|o| o.resolved).count()
        ),
        EventPayload::ContractSigned(e) => {
            format!("contract {} for {} months", e.value, e.term_months)
        }
        EventPayload::FollowUpLogged(e) => format!(
            "follow-up {:?}: {}{}",
            e.kind,
            e.outcome,
            e.next_due_on
                .map(|d| format!(", next due {d}"))
                .unwrap_or_default()
        ),
        EventPayload::DealLost(e) => {
            format!("lost at {} ({})", e.stage.as_str(), e.reason.as_str())
        }
        EventPayload::DealReopened(e) => format!("reopened: {}", e.reason),
        EventPayload::CustomerReassigned(e) => {
            format!(
                "reassigned {} → {}: {}",
                e.from_rep_id, e.to_rep_id, e.reason
            )
        }
        EventPayload::EventCorrected(e) => match &e.correction {
            Correction::Retract => format!("retracts {}: {}", e.corrected_event_id, e.reason),
            Correction::Amend { .. } => format!("amends {}: {}", e.corrected_event_id, e.reason),
        },
    }
}

/// A customer's history as an aligned table.
pub fn history_table(events: &[LedgerEvent], out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = table(&[
        "rev",
        "position",
        "occurred_at",
        "recorded_at",
        "type",
        "deal",
        "rep",
        "what",
        "by",
    ]);
    for e in events {
        let cells = [
            e.revision.to_string(),
            e.position.to_string(),
            e.occurred_at.format("%Y-%m-%d %H:%M").to_string(),
            e.recorded_at.format("%Y-%m-%d %H:%M").to_string(),
            e.event_type().to_string(),
            e.payload
                .deal_id()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            e.payload.rep_id().to_string(),
            summary(&e.payload),
            e.recorded_by.to_string(),
        ];
        // Free text reaches a terminal here: escape what a terminal would obey.
        t.add_row(cells.iter().map(|c| for_terminal(c).into_owned()));
    }
    writeln!(out, "{t}")
}

/// A customer's history as a JSON array (data at the current schema version).
pub fn history_json(events: &[LedgerEvent], out: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "event_id": e.event_id,
                "customer_id": e.customer_id,
                "revision": e.revision,
                "position": e.position,
                "type": e.event_type(),
                "schema_version": e.event_type().current_version(),
                "stored_schema_version": e.stored_version,
                "occurred_at": e.occurred_at,
                "recorded_at": e.recorded_at,
                "recorded_by": e.recorded_by,
                "correlation_id": e.correlation_id,
                "causation_id": e.causation_id,
                "data": e.payload.data_json(),
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)
}

/// Event counts per type.
pub fn counts_table(counts: &HashMap<String, u64>, out: &mut dyn Write) -> std::io::Result<()> {
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort();
    let mut t = table(&["event type", "events"]);
    for (event_type, n) in rows {
        t.add_row(vec![for_terminal(event_type).into_owned(), n.to_string()]);
    }
    t.add_row(vec![
        "total".to_string(),
        counts.values().sum::<u64>().to_string(),
    ]);
    writeln!(out, "{t}")
}

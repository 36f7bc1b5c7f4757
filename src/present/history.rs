//! Rendering for people (aligned tables) and for programs (JSON).

use super::table::{Layout, Table, csv_line};
use pipeline_ledger::domain::{Correction, EventPayload, LedgerEvent};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;

/// One line saying what an event says. `original` is the event an amendment corrects, when
/// known: the line then shows what changed, before and after.
pub fn summary(payload: &EventPayload, original: Option<&EventPayload>) -> String {
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
            "follow-up {}: {}{}",
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            e.outcome,
            e.next_due_on
                .map(|d| format!(", next due {d}"))
                .unwrap_or_default()
        ),
        EventPayload::DealLost(e) => {
            format!("lost at {} ({})", e.stage.as_str(), e.reason.as_str())
        }
        EventPayload::DealReopened(e) => format!("reopened: {}", e.reason),
        EventPayload::PersonalDataErased(e) => format!(
            "personal data erased ({} sealed field(s) made unreadable{}): {}",
            e.sealed_fields,
            if e.plaintext_fields > 0 {
                format!(
                    "; {} plaintext field(s) from before encryption remain",
                    e.plaintext_fields
                )
            } else {
                String::new()
            },
            e.reason
        ),
        EventPayload::CustomerReassigned(e) => {
            format!(
                "reassigned {} → {}: {}",
                e.from_rep_id, e.to_rep_id, e.reason
            )
        }
        EventPayload::EventCorrected(e) => match &e.correction {
            Correction::Retract => format!("retracts {}: {}", e.corrected_event_id, e.reason),
            Correction::Amend { replacement } => match original {
                Some(before) => format!(
                    "amends {} ({}): {}",
                    e.corrected_event_id,
                    changes(before, replacement),
                    e.reason
                ),
                None => format!("amends {}: {}", e.corrected_event_id, e.reason),
            },
        },
    }
}

/// What an amendment changed: each field of the data whose value differs (nested objects by
/// their path, `visit.actual_outcome`), `field: before → after`, values as compact JSON cut at
/// [`CHANGE_VALUE_CHARS_MAX`] characters.
fn changes(before: &EventPayload, after: &EventPayload) -> String {
    let mut changed = Vec::new();
    diff("", &before.data_json(), &after.data_json(), &mut changed);
    if changed.is_empty() {
        "no field changed".into()
    } else {
        changed.join("; ")
    }
}

/// Appends to `out` each leaf under `path` where `old` and `new` differ.
fn diff(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    let show = |v: Option<&Value>| {
        let text = v.map_or_else(|| "(none)".to_string(), |v| v.to_string());
        if text.chars().count() > CHANGE_VALUE_CHARS_MAX {
            format!(
                "{}…",
                text.chars()
                    .take(CHANGE_VALUE_CHARS_MAX)
                    .collect::<String>()
            )
        } else {
            text
        }
    };
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&child(key), x, y, out),
                    (x, y) => out.push(format!("{}: {} → {}", child(key), show(x), show(y))),
                }
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} → {}", show(Some(a)), show(Some(b)))),
        _ => {}
    }
}

/// Characters of a value shown in an amendment's before and after.
const CHANGE_VALUE_CHARS_MAX: usize = 40;

/// The rows of a customer's history: each event with what it says, an amendment with the event
/// it corrects (from the same history) before and after.
fn history_rows(events: &[LedgerEvent]) -> Vec<[String; 10]> {
    let by_id: HashMap<_, _> = events.iter().map(|e| (e.event_id, &e.payload)).collect();
    events
        .iter()
        .map(|e| {
            let original = match &e.payload {
                EventPayload::EventCorrected(c) => by_id.get(&c.corrected_event_id).copied(),
                _ => None,
            };
            [
                e.event_id.to_string(),
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
                summary(&e.payload, original),
                e.recorded_by.to_string(),
            ]
        })
        .collect()
}

const HISTORY_HEADER: [&str; 10] = [
    "event",
    "rev",
    "position",
    "occurred_at",
    "recorded_at",
    "type",
    "deal",
    "rep",
    "what",
    "by",
];

/// A customer's history as CSV, one row per event, with the table's columns and full times.
pub fn history_csv(events: &[LedgerEvent], out: &mut dyn Write) -> std::io::Result<()> {
    let header: Vec<String> = HISTORY_HEADER.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", csv_line(&header))?;
    for (e, mut row) in events.iter().zip(history_rows(events)) {
        // Full times in CSV: a job compares them exactly.
        row[3] = e.occurred_at.to_rfc3339();
        row[4] = e.recorded_at.to_rfc3339();
        writeln!(out, "{}", csv_line(&row))?;
    }
    Ok(())
}

/// A customer's history as an aligned table (free text escaped for a terminal by the table).
pub fn history_table(
    events: &[LedgerEvent],
    out: &mut dyn Write,
    layout: Layout,
) -> std::io::Result<()> {
    let mut t = Table::new("", &HISTORY_HEADER).explained_by(&[
        "history.revision",
        "history.position",
        "history.occurred_at",
        "history.recorded_at",
        "history.correction",
    ]);
    for cells in history_rows(events) {
        t.row(cells.to_vec());
    }
    t.write_text(out, layout)
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
pub fn counts_table(
    counts: &HashMap<String, u64>,
    out: &mut dyn Write,
    layout: Layout,
) -> std::io::Result<()> {
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort();
    let mut t = Table::new("", &["event type", "events"]);
    for (event_type, n) in rows {
        t.row(vec![event_type.clone(), n.to_string()]);
    }
    t.row(vec![
        "total".to_string(),
        counts.values().sum::<u64>().to_string(),
    ]);
    t.write_text(out, layout)
}

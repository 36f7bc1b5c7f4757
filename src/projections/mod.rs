//! Projections: read models folded from the ledger's events. Pure: events in, rows and reports
//! out; no I/O but reading the policy file. The runner (`crate::runner`) feeds them from the
//! store and writes their rows through the read-model port (`crate::read_models`); the query
//! layer (`crate::query`) answers reports from those rows or from a replay.
//!
//! - [`timeline`]: one customer's effective history walked once; every view derives from it.
//! - [`lifecycle`]: per customer, lifecycle state, owner, current deal and stage, contract value.
//! - [`conversion`]: per deal, its stage stays; the funnel (cohort and period views).
//! - [`activity`]: per event, who performed it and who owned the customer; the rep report.
//! - [`aggregates`]: the rep report's counters, kept incrementally, and the report over them.
//! - [`stalled`]: stalled deals, overdue follow-ups and the pipeline report.
//! - [`scorecard`]: the quarterly rep scorecard; [`retention`]: repeat orders and dormancy;
//!   [`ranking`]: customers classed A+ / A / B / C by revenue; [`fx`]: money in a home currency;
//!   [`qualification`]: win rates by the lead worksheet's score and criteria, and by intent.
//! - [`fold`]: the fold over the log ([`Projector`]) and [`replay`].
//! - [`model`]: the rows; [`meta`]: what every report says about itself; [`policy`], [`time`].
//!
//! Definitions and table schemas: `projections/README.md`.

pub mod activity;
pub mod aggregates;
pub mod conversion;
pub mod fold;
pub mod fx;
pub mod lifecycle;
pub mod meta;
pub mod model;
pub mod policy;
pub mod qualification;
pub mod ranking;
pub mod retention;
pub mod scorecard;
pub mod stalled;
pub mod time;
pub mod timeline;

pub use fold::{Projector, replay};
pub use meta::{ReportAt, ReportMeta};
pub use model::ReadModel;
pub use policy::Policy;

/// The version of the projections' code: what rows a history derives to. Bump it with any
/// change that alters a row (a definition, a new column's content), so that read models derived
/// by an older binary are rebuilt instead of read under new definitions. Version 3 added the
/// year to the periods the aggregates keep (`reps --period year`); version 4 the lead's
/// qualification and the first visit's intent to each deal's row (`qualification`).
pub const DERIVATION_VERSION: u32 = 4;

/// What read models derived under `policy` by this code record: the projections' version and
/// the policy's fingerprint. Read models derived otherwise are never reported from.
pub fn derivation(policy: &Policy) -> String {
    format!(
        "projections {DERIVATION_VERSION}, policy {:016x}",
        policy.fingerprint()
    )
}

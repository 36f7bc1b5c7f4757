//! Projections: read models folded from the ledger's events.
//!
//! - [`lifecycle`]: per customer, lifecycle state, owner, current deal and stage, contract value.
//! - [`conversion`]: per deal, its stage stays; the funnel (cohort and period views).
//! - [`activity`]: per event, who performed it and who owned the customer; the rep report.
//! - [`stalled`]: stalled deals, overdue follow-ups and the pipeline report.
//!
//! Each projection derives its rows from a customer's effective history ([`timeline`]) with no
//! I/O; [`fold::Projector`] is the fold over the log. [`runner`] feeds it from the store's
//! subscription and [`storage`] keeps the rows in `rm_` tables with checkpoints. [`report`]
//! chooses between the live tables and a replay (`--at-position`, `--as-of`, `--known-at`).
//! Definitions and table schemas: `projections/README.md`.

pub mod activity;
pub mod aggregates;
pub mod conversion;
pub mod fold;
pub mod lifecycle;
pub mod model;
pub mod policy;
pub mod render;
pub mod report;
pub mod runner;
pub mod stalled;
pub mod storage;
pub mod time;
pub mod timeline;

pub use fold::{Projector, replay};
pub use model::ReadModel;
pub use policy::Policy;
pub use report::{ReportAt, ReportMeta};

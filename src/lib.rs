//! pipeline-ledger: an event-sourced sales-pipeline ledger.
//!
//! Every customer interaction is appended as an immutable event; projections rebuild lifecycle
//! state, stage conversion and rep activity from them. See ARCHITECTURE.md for the map.

pub mod contract;
pub mod domain;
pub mod ledger;
pub mod store;

//! pipeline-ledger: an event-sourced sales-pipeline ledger.
//!
//! Every customer interaction is appended as an immutable event; projections rebuild lifecycle
//! state, stage conversion and rep activity from them. See ARCHITECTURE.md for the map and the
//! layer order these modules follow (each imports only modules of lower layers; rustfmt sorts
//! the declarations below, so their order here says nothing). `tests/architecture.rs` checks it.
//!
//! - Write side: [`domain`], [`contract`], [`store`], [`ledger`] (with [`limits`] under all).
//! - Read side: [`projections`] (pure), [`read_models`] (the port), [`runner`], [`query`].
//! - [`access`]: the tokens and roles of the HTTP server.
//! - [`demo`]: the seeded generator of realistic histories.

pub mod access;
pub mod audit;
pub mod contract;
pub mod demo;
pub mod domain;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod projections;
pub mod query;
pub mod read_models;
pub mod runner;
pub mod store;

// Lets modules refer to the library by its public name, as the binary and the tests do.
extern crate self as pipeline_ledger;

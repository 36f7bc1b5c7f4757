//! Audit: proof that the log is what was appended. The store keeps a hash chain over its events
//! (`store::chain`); this module checks it (`verify`), signs its head (`seal`), and exports
//! slices that a recipient can check alone (`manifest`); `migration` copies a log whose personal
//! data predates sealing into a new store, and signs the link between the two chains.

pub mod manifest;
pub mod migration;
pub mod seal;
pub mod verify;

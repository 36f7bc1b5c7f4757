//! Whether a set of read models belongs to the store and the code about to use them. The read
//! models record the store's identity, the derivation they were made under (projections'
//! version, policy fingerprint) and the id of the event at their checkpoint; a mismatch means
//! they describe another ledger, another point of this ledger's history, or other definitions,
//! and they are never reported from: `project` rebuilds them, reports refuse.

use crate::projections::{Policy, derivation};
use crate::read_models::{Binding, Checkpoint};
use crate::store::{EventStore, ReadError};

/// Why read models cannot be used with a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// They were written by a version that did not record what they were derived from.
    Unbound,
    /// They were folded from another store (another ledger, or this one re-created).
    OtherStore,
    /// They were derived under other definitions: another policy, or another version of the
    /// projections.
    OtherDerivation,
    /// Their checkpoint is beyond the store's head: the store was restored from an older copy.
    StoreBehind,
    /// The store holds another event at their checkpoint: its history was replaced.
    OtherHistory,
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Staleness::Unbound => {
                "the read models were written by an older version that did not record which store they came from"
            }
            Staleness::OtherStore => "the read models were derived from another store",
            Staleness::OtherDerivation => {
                "the read models were derived under other definitions (another policy, or another version of pipeline-ledger)"
            }
            Staleness::StoreBehind => {
                "the read models are ahead of the store (it was restored from an older copy)"
            }
            Staleness::OtherHistory => {
                "the store holds another event at the read models' checkpoint (its history was replaced)"
            }
        })
    }
}

/// The binding read models of `store` derived under `policy` by this code must have.
pub async fn expected_binding(
    store: &dyn EventStore,
    policy: &Policy,
) -> Result<Binding, ReadError> {
    Ok(Binding {
        store_id: store.identity().await?,
        derivation: derivation(policy),
    })
}

/// Why read models at `checkpoint`, bound by `bound`, cannot be used with `store` as
/// `expected` says; `None` when they can. Read models never projected are never stale.
pub async fn staleness(
    store: &dyn EventStore,
    checkpoint: &Checkpoint,
    bound: Option<&Binding>,
    expected: &Binding,
) -> Result<Option<Staleness>, ReadError> {
    let Some(position) = checkpoint.position else {
        return Ok(None);
    };
    let Some(bound) = bound else {
        return Ok(Some(Staleness::Unbound));
    };
    if bound.store_id != expected.store_id {
        return Ok(Some(Staleness::OtherStore));
    }
    if bound.derivation != expected.derivation {
        return Ok(Some(Staleness::OtherDerivation));
    }
    match store.record_at(position).await? {
        Some(record) => {
            if checkpoint.event_id.is_some_and(|id| id != record.event_id) {
                return Ok(Some(Staleness::OtherHistory));
            }
            Ok(None)
        }
        // No event at the checkpoint: the log ends before it (or, on a store whose positions
        // are not dense, it holds none there).
        _ => Ok(Some(Staleness::StoreBehind)),
    }
}

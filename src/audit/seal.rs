//! Seals: signed statements that the log held a given prefix. `seal` verifies the chain, then
//! signs (Ed25519) the store's identity, the position and chain hash of its head, the number of
//! events and the time. An auditor keeps seals off the ledger host (or publishes them); later,
//! `verify --seal` proves that the log still holds that prefix unchanged. Only a seal catches a
//! log whose whole chain was recomputed after a change, or whose tail was cut off.

use super::verify::{Break, VerifyError, VerifyOptions, VerifyReport, verify};
use crate::keys::{KeyError, PublicKey, SecretKey};
use crate::store::EventStore;
use crate::store::chain::{self, Digest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `kind` every seal carries, so that a seal is never mistaken for another JSON file.
pub const SEAL_KIND: &str = "pipeline-ledger seal";
/// The seal format's version.
pub const SEAL_VERSION: u32 = 1;

/// What a seal states. The signed bytes are this struct as compact JSON, its fields in the
/// order below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealStatement {
    pub kind: String,
    pub version: u32,
    pub store_identity: String,
    /// The last position the seal covers.
    pub position: u64,
    /// Events up to and including `position`.
    pub events: u64,
    /// The chain hash at `position`, hex.
    pub head_hash: String,
    pub sealed_at: DateTime<Utc>,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
}

/// A statement and its signature, as written to a seal file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    #[serde(flatten)]
    pub statement: SealStatement,
    /// Ed25519 signature of the statement's bytes, hex.
    pub signature: String,
}

/// Why a seal could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the store is empty: there is nothing to seal")]
    Empty,
    #[error(
        "the store has no identity (an older store opened read-only); open it for writing once"
    )]
    NoIdentity,
    #[error(
        "the log fails verification at position {}: {} ({}); a broken log is never sealed",
        .0.position, .0.kind, .0.detail
    )]
    Broken(Break),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the seal file is not a seal: {0}")]
    NotASeal(String),
}

impl SealStatement {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serializes")
    }
}

/// Verifies the whole chain, then seals its head with `key`.
pub async fn seal(store: &dyn EventStore, key: &SecretKey) -> Result<Seal, SealError> {
    let report = verify(store, VerifyOptions::default(), Vec::new()).await?;
    if let Some(b) = report.first_break {
        return Err(SealError::Broken(b));
    }
    let (Some(position), Some(head_hash)) = (report.last_position, report.head_hash) else {
        return Err(SealError::Empty);
    };
    let store_identity = report.store_identity.ok_or(SealError::NoIdentity)?;
    let statement = SealStatement {
        kind: SEAL_KIND.into(),
        version: SEAL_VERSION,
        store_identity,
        position,
        events: report.events,
        head_hash: chain::to_hex(&head_hash),
        sealed_at: DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default(),
        public_key: key.public().to_hex(),
    };
    let signature = hex::encode(key.sign(&statement.signed_bytes()));
    Ok(Seal {
        statement,
        signature,
    })
}

/// Whether the seal's signature holds for its statement under the key it names.
pub fn signature_holds(seal: &Seal) -> bool {
    PublicKey::from_hex(&seal.statement.public_key)
        .is_ok_and(|key| key.verifies_hex(&seal.statement.signed_bytes(), &seal.signature))
}

/// Parses a seal file's text.
pub fn parse(text: &str) -> Result<Seal, SealError> {
    let seal: Seal = serde_json::from_str(text).map_err(|e| SealError::NotASeal(e.to_string()))?;
    if seal.statement.kind != SEAL_KIND || seal.statement.version != SEAL_VERSION {
        return Err(SealError::NotASeal(format!(
            "kind {:?} version {}; expected {SEAL_KIND:?} version {SEAL_VERSION}",
            seal.statement.kind, seal.statement.version
        )));
    }
    Ok(seal)
}

/// What checking a seal against a store found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealCheck {
    pub position: u64,
    pub sealed_at: DateTime<Utc>,
    /// The signer's key, hex.
    pub public_key: String,
    /// Whether the signer's key is the one the auditor pinned (`None`: none was pinned).
    pub key_pinned: Option<bool>,
    /// `None`: the seal holds.
    pub problem: Option<String>,
}

/// Checks a seal against the store as verified in `report` (which carries the recomputed chain
/// hash at the seal's position): the signature, the store's identity, that the log still
/// reaches the sealed position, and that its chain there is the sealed one.
pub fn check(
    seal: &Seal,
    pinned: Option<&PublicKey>,
    report: &VerifyReport,
    head: Option<u64>,
) -> SealCheck {
    let s = &seal.statement;
    let mut result = SealCheck {
        position: s.position,
        sealed_at: s.sealed_at,
        public_key: s.public_key.clone(),
        key_pinned: pinned.map(|p| p.to_hex() == s.public_key),
        problem: None,
    };
    result.problem = problem(seal, pinned, report, head);
    result
}

fn problem(
    seal: &Seal,
    pinned: Option<&PublicKey>,
    report: &VerifyReport,
    head: Option<u64>,
) -> Option<String> {
    let s = &seal.statement;
    let key = match PublicKey::from_hex(&s.public_key) {
        Ok(k) => k,
        Err(e) => return Some(format!("the seal's public key is unreadable: {e}")),
    };
    if let Some(pinned) = pinned
        && *pinned != key
    {
        return Some(format!(
            "the seal was signed by key {}, not by the key given with --public-key ({})",
            s.public_key,
            pinned.to_hex()
        ));
    }
    if !key.verifies_hex(&s.signed_bytes(), &seal.signature) {
        return Some(
            "the signature does not match the statement: the seal was altered, or signed by \
             another key"
                .into(),
        );
    }
    match &report.store_identity {
        Some(id) if *id == s.store_identity => {}
        other => {
            return Some(format!(
                "the seal is of another store (identity {}); this store's identity is {}",
                s.store_identity,
                other.as_deref().unwrap_or("unknown")
            ));
        }
    }
    let head = head.unwrap_or(0);
    if head < s.position {
        return Some(format!(
            "the log ends at position {head}, but the seal covers it up to position {}: events \
             were removed from its tail",
            s.position
        ));
    }
    if let Some(b) = &report.first_break
        && b.position <= s.position
    {
        return Some(format!(
            "the sealed prefix is broken at position {}: {}",
            b.position, b.kind
        ));
    }
    let sealed: Option<Digest> = chain::from_hex(&s.head_hash);
    match report.hashes_at.get(&s.position) {
        Some(found) if Some(*found) == sealed => None,
        Some(found) => Some(format!(
            "the chain hash at position {} is {}, but the seal says {}: the sealed prefix was \
             changed and its chain recomputed",
            s.position,
            chain::to_hex(found),
            s.head_hash
        )),
        None => Some(format!(
            "position {} was not verified (verify from the first event, or from a position \
             before the seal's)",
            s.position
        )),
    }
}

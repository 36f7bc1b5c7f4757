//! Export slices that prove themselves: `export --from P --to Q --manifest FILE` writes, beside
//! the NDJSON and never inside it, a manifest with the slice's positions, its event count, the
//! chain hash just before it and at its last event, the store's identity and the SHA-256 of the
//! NDJSON file, optionally signed. A recipient recomputes the chain over the slice's lines from
//! the manifest's first hash and compares the last, with no access to the store.

use super::verify::{Break, BreakKind, ChainCheck, Checked};
use crate::contract::line::InterchangeLine;
use crate::keys::{KeyError, PublicKey, SecretKey};
use crate::ledger::codec;
use crate::store::chain::{self, ChainedRecord, GENESIS};
use crate::store::{EventStore, ReadError, Record};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead, Write};

/// The `kind` every manifest carries.
pub const MANIFEST_KIND: &str = "pipeline-ledger export manifest";
/// The manifest format's version.
pub const MANIFEST_VERSION: u32 = 1;

/// Events read per step of a slice export.
const EXPORT_PAGE_EVENTS: usize = 4096;

/// What a manifest states. When signed, the signed bytes are this struct as compact JSON, its
/// fields in the order below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestStatement {
    pub kind: String,
    pub version: u32,
    pub store_identity: String,
    /// The first and last positions in the slice (`None` for an empty slice).
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    pub events: u64,
    /// The chain hash just before the slice's first event (hex; zeros at the log's start).
    pub previous_hash: String,
    /// The chain hash at the slice's last event (hex).
    pub last_hash: String,
    /// SHA-256 of the NDJSON file's bytes (hex).
    pub file_sha256: String,
    pub exported_at: DateTime<Utc>,
}

/// A manifest as written: the statement, and a signature when the exporter gave a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub statement: ManifestStatement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Why a slice could not be exported or checked.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the store: {0}")]
    Read(#[from] ReadError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("event at position {position} cannot be exported: {reason}")]
    Undecodable { position: u64, reason: String },
    #[error(
        "the store fails verification at position {}: {} ({}); run `pipeline-ledger verify`",
        .0.position, .0.kind, .0.detail
    )]
    Broken(Break),
    #[error(
        "this store keeps no hash chain over its log (an older store opened read-only, or \
         KurrentDB): a manifest cannot be made"
    )]
    NoChain,
    #[error("the store has no chain hash at position {0} to start the slice from")]
    NoAnchor(u64),
    #[error(
        "the store has no identity (an older store opened read-only); open it for writing once"
    )]
    NoIdentity,
    #[error("the manifest is not a manifest: {0}")]
    NotAManifest(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl ManifestStatement {
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serializes")
    }
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    sha: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the events at positions `from..=to` (default: the whole log) as NDJSON into `out`,
/// checking their stored hashes on the way, and returns the manifest that proves the slice.
pub async fn export_slice(
    store: &dyn EventStore,
    from: Option<u64>,
    to: Option<u64>,
    key: Option<&SecretKey>,
    out: &mut dyn Write,
) -> Result<Manifest, ManifestError> {
    let info = store.chain_info().await?;
    if info.as_ref().is_none_or(|i| i.per_stream) {
        return Err(ManifestError::NoChain);
    }
    let store_identity = store.identity().await?.ok_or(ManifestError::NoIdentity)?;
    let after = from.and_then(|f| f.checked_sub(1)).filter(|&p| p > 0);
    let previous = match after {
        None => GENESIS,
        Some(p) => store
            .chain_link_at(p)
            .await?
            .ok_or(ManifestError::NoAnchor(p))?,
    };
    let mut check =
        ChainCheck::new(previous, after, after.is_none(), Vec::new()).requiring_hashes();
    let mut out = Hashing {
        inner: out,
        sha: Sha256::new(),
    };
    let mut cursor = after;
    'pages: loop {
        let page: Vec<ChainedRecord> = store.read_chained(cursor, EXPORT_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.record.position);
        for c in &page {
            if to.is_some_and(|to| c.record.position > to) {
                break 'pages;
            }
            check
                .step(Checked {
                    record: &c.record,
                    event_hash: chain::record_hash(&c.record),
                    stored_event_hash: c.event_hash,
                    stored_chain_hash: c.chain_hash,
                })
                .map_err(ManifestError::Broken)?;
            let line = codec::to_line(&c.record).map_err(|e| ManifestError::Undecodable {
                position: c.record.position,
                reason: e.to_string(),
            })?;
            serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    let statement = ManifestStatement {
        kind: MANIFEST_KIND.into(),
        version: MANIFEST_VERSION,
        store_identity,
        first_position: check.first_position,
        last_position: check.last_position().filter(|_| check.events > 0),
        events: check.events,
        previous_hash: chain::to_hex(&previous),
        last_hash: chain::to_hex(&check.head()),
        file_sha256: hex::encode(out.sha.finalize()),
        exported_at: DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default(),
    };
    let (public_key, signature) = match key {
        Some(key) => (
            Some(key.public().to_hex()),
            Some(hex::encode(key.sign(&statement.signed_bytes()))),
        ),
        None => (None, None),
    };
    Ok(Manifest {
        statement,
        public_key,
        signature,
    })
}

/// Parses a manifest file's text.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let m: Manifest =
        serde_json::from_str(text).map_err(|e| ManifestError::NotAManifest(e.to_string()))?;
    if m.statement.kind != MANIFEST_KIND || m.statement.version != MANIFEST_VERSION {
        return Err(ManifestError::NotAManifest(format!(
            "kind {:?} version {}; expected {MANIFEST_KIND:?} version {MANIFEST_VERSION}",
            m.statement.kind, m.statement.version
        )));
    }
    Ok(m)
}

/// What checking a slice against its manifest found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SliceCheck {
    pub events: u64,
    /// Whether the manifest is signed, and by the pinned key when one was given.
    pub signed: bool,
    pub key_pinned: Option<bool>,
    /// `None`: the slice is exactly what the manifest states.
    pub problem: Option<SliceProblem>,
}

/// Where a slice departs from its manifest: the line (from 1) when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SliceProblem {
    pub line: Option<u64>,
    pub kind: Option<BreakKind>,
    pub detail: String,
}

/// Checks an exported slice (its NDJSON, read from `input`) against `manifest`: the signature
/// if there is one (and the key if one is pinned), the file's SHA-256, then the chain recomputed
/// over its lines from the manifest's first hash to its last, the positions and revisions.
pub fn check_slice(
    input: &mut dyn BufRead,
    manifest: &Manifest,
    pinned: Option<&PublicKey>,
) -> Result<SliceCheck, std::io::Error> {
    let m = &manifest.statement;
    let mut result = SliceCheck {
        events: 0,
        signed: manifest.signature.is_some(),
        key_pinned: None,
        problem: None,
    };
    let whole = |detail: String| SliceProblem {
        line: None,
        kind: None,
        detail,
    };
    if let Some(problem) = signature_problem(manifest, pinned, &mut result) {
        result.problem = Some(whole(problem));
        return Ok(result);
    }
    let (Some(previous), Some(last_hash)) = (
        chain::from_hex(&m.previous_hash),
        chain::from_hex(&m.last_hash),
    ) else {
        result.problem = Some(whole("the manifest's hashes are not 64 hex digits".into()));
        return Ok(result);
    };
    let after = m.first_position.and_then(|p| p.checked_sub(1));
    let mut check = ChainCheck::new(previous, after, after == Some(0), Vec::new());
    let mut sha = Sha256::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        sha.update(&buf);
        line_no += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if result.problem.is_some() {
            continue; // keep hashing the file, for the message
        }
        let record = match record_of_line(text) {
            Ok(r) => r,
            Err(why) => {
                result.problem = Some(SliceProblem {
                    line: Some(line_no),
                    kind: Some(BreakKind::NotDecodable),
                    detail: why,
                });
                continue;
            }
        };
        let stepped = check.step(Checked {
            record: &record,
            event_hash: chain::record_hash(&record),
            stored_event_hash: None,
            stored_chain_hash: None,
        });
        if let Err(b) = stepped {
            result.problem = Some(SliceProblem {
                line: Some(line_no),
                kind: Some(b.kind),
                detail: format!("position {}: {}", b.position, b.detail),
            });
        }
    }
    result.events = check.events;
    let file_sha = hex::encode(sha.finalize());
    if result.problem.is_none() && file_sha != m.file_sha256 {
        result.problem = Some(whole(format!(
            "the file's SHA-256 is {file_sha}, but the manifest says {}: the file was changed",
            m.file_sha256
        )));
    }
    if result.problem.is_none() && check.events != m.events {
        result.problem = Some(whole(format!(
            "the file holds {} events, but the manifest says {}",
            check.events, m.events
        )));
    }
    if result.problem.is_none() && check.head() != last_hash {
        result.problem = Some(SliceProblem {
            line: None,
            kind: Some(BreakKind::ContentChanged),
            detail: format!(
                "the chain recomputed over the file ends at {}, but the manifest says {}: an \
                 event was changed, added, removed or moved",
                chain::to_hex(&check.head()),
                m.last_hash
            ),
        });
    }
    if result.problem.is_none() && check.last_position() != m.last_position.or(after) {
        result.problem = Some(whole(format!(
            "the file ends at position {:?}, but the manifest says {:?}",
            check.last_position(),
            m.last_position
        )));
    }
    Ok(result)
}

fn signature_problem(
    manifest: &Manifest,
    pinned: Option<&PublicKey>,
    result: &mut SliceCheck,
) -> Option<String> {
    let (Some(key_hex), Some(signature_hex)) = (&manifest.public_key, &manifest.signature) else {
        return pinned.map(|_| {
            "the manifest is not signed, but --public-key asks for a signed one".to_string()
        });
    };
    let key = match PublicKey::from_hex(key_hex) {
        Ok(k) => k,
        Err(e) => return Some(format!("the manifest's public key is unreadable: {e}")),
    };
    result.key_pinned = pinned.map(|p| *p == key);
    if result.key_pinned == Some(false) {
        return Some(format!(
            "the manifest was signed by key {key_hex}, not by the key given with --public-key"
        ));
    }
    if !key.verifies_hex(&manifest.statement.signed_bytes(), signature_hex) {
        return Some("the manifest's signature does not match it: it was altered".into());
    }
    None
}

/// The stored record an export line describes: its data as the store keeps it (canonical JSON
/// text), its revision and position as exported.
fn record_of_line(text: &[u8]) -> Result<Record, String> {
    let line: InterchangeLine =
        serde_json::from_slice(text).map_err(|e| format!("not an export line: {e}"))?;
    let missing = |field: &str| format!("field {field} is missing; a slice keeps it from export");
    let event_type = serde_json::to_value(line.event_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| missing("type"))?;
    Ok(Record {
        event_id: line.event_id,
        stream: codec::stream_name(&line.customer_id),
        revision: line.revision.ok_or_else(|| missing("revision"))?,
        position: line.position.ok_or_else(|| missing("position"))?,
        event_type,
        schema_version: line.schema_version,
        data: serde_json::to_string(&line.data).map_err(|e| e.to_string())?,
        occurred_at: line.occurred_at,
        recorded_at: line.recorded_at.ok_or_else(|| missing("recorded_at"))?,
        recorded_by: line.recorded_by.to_string(),
        correlation_id: line.correlation_id,
        causation_id: line.causation_id,
    })
}

//! `verify`: recomputes the hash chain of a store and checks the log's shape, and finds the
//! first position where either breaks.
//!
//! Event hashes are computed in parallel, a page at a time, while the next page is read; only
//! the 64-byte chain step and the shape checks run in log order.

use crate::contract::line::LineValidator;
use crate::ledger::codec;
use crate::store::chain::{self, ChainInfo, ChainedRecord, Digest, GENESIS};
use crate::store::{EventStore, ReadError};
use futures_util::StreamExt;
use std::collections::HashMap;

/// Events read and hashed per step.
const VERIFY_PAGE_EVENTS: usize = 8192;
/// Pages read, and pages hashed, at once: enough to keep both cores busy, with memory bounded
/// by a few pages.
const PAGES_IN_FLIGHT: usize = 3;

/// A page's event hashes, and each event's schema problem when the schemas are checked: on a
/// blocking thread, so that several pages are hashed at once.
async fn hash_page(
    page: Result<Vec<ChainedRecord>, ReadError>,
    validator: Option<std::sync::Arc<LineValidator>>,
) -> Result<(Vec<ChainedRecord>, Vec<(Digest, Option<String>)>), ReadError> {
    let page = page?;
    tokio::task::spawn_blocking(move || {
        let hashed = page
            .iter()
            .map(|c| {
                let problem = validator
                    .as_deref()
                    .and_then(|v| schema_problem(v, &c.record));
                (chain::record_hash(&c.record), problem)
            })
            .collect();
        (page, hashed)
    })
    .await
    .map_err(|e| {
        ReadError::Storage(crate::store::StorageError::Other(format!(
            "the hashing task failed: {e}"
        )))
    })
}

/// What a verification covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Start at this position, trusting the chain hash stored just before it (default: the
    /// first event, from the genesis hash).
    pub from: Option<u64>,
    /// Also check that every event validates against its published schema.
    pub schemas: bool,
}

/// What is wrong at the first position that breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The event no longer matches the hash recorded when it was appended.
    ContentChanged,
    /// An event is missing: a gap in positions or in a stream's revisions, or a chain that
    /// covers events the log no longer holds.
    EventMissing,
    /// Events are out of their order: a stream's revisions go backwards, or an event sits at
    /// another position than the one it was hashed at.
    OrderChanged,
    /// The stored hashes do not follow from each other: a hash was replaced (with or without
    /// its event).
    HashReplaced,
    /// The event does not validate against its published schema.
    NotDecodable,
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakKind::ContentChanged => "content changed",
            BreakKind::EventMissing => "event missing",
            BreakKind::OrderChanged => "order changed",
            BreakKind::HashReplaced => "hash replaced",
            BreakKind::NotDecodable => "not decodable",
        })
    }
}

/// The first place where the log fails verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    pub position: u64,
    pub kind: BreakKind,
    /// What was found, in words.
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// The store's identity.
    pub store_identity: Option<String>,
    /// Events checked.
    pub events: u64,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    /// The chain hash at the last event checked (recomputed, not read).
    #[serde(serialize_with = "hex_opt")]
    pub head_hash: Option<Digest>,
    /// Whether the schema check ran.
    pub schemas_checked: bool,
    /// `None`: everything checked holds.
    pub first_break: Option<Break>,
    /// Events whose chain was computed by an upgrade rather than when they were appended.
    pub upgraded_through: Option<u64>,
    /// One chain per stream (KurrentDB) rather than one over the log.
    pub per_stream: bool,
    /// Events that carry no hashes because they were written before their stream's chain
    /// existed (per-stream chains); their hashes are recomputed from the stream's start.
    pub unhashed_events: u64,
    /// Streams whose chain starts again (deleted on KurrentDB and written again).
    pub restarted_streams: Vec<String>,
    /// Recomputed chain hashes at the positions asked for (a seal's, a manifest's), so that a
    /// caller compares them after the run.
    #[serde(skip)]
    pub hashes_at: HashMap<u64, Digest>,
}

fn hex_opt<S: serde::Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&chain::to_hex(d)),
        None => s.serialize_none(),
    }
}

/// Why a verification could not run (a break is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "this store has no hash chain yet (it was created by an older version); open it for \
         writing once, for example with `pipeline-ledger init`, to compute its chain over the \
         events it holds, then verify"
    )]
    NoChain,
    #[error("this backend keeps no hash chain: there is nothing to verify")]
    Unsupported,
    #[error(
        "--from needs a chain over the whole log (the embedded store); KurrentDB keeps one chain \
         per stream, verified from each stream's start"
    )]
    FromPerStream,
    #[error("--from {from}: the store has no chain hash at position {before} to start from")]
    NoAnchor { from: u64, before: u64 },
    #[error("cannot read the store: {0}")]
    Read(#[from] ReadError),
}

/// Where a chain stands after an event: the hash recomputed up to it, and the hash stored at it
/// (what the next stored hash must follow).
#[derive(Debug, Clone, Copy)]
struct Link {
    computed: Digest,
    stored: Digest,
}

/// A stream's state: its last revision and position seen, and (per-stream chains) its link.
#[derive(Debug, Clone, Copy)]
struct StreamAt {
    revision: u64,
    position: u64,
    link: Link,
}

/// The running state of a check over the log, in position order. Shared by the store's
/// verification and an export slice's ([`super::manifest`]).
pub struct ChainCheck {
    /// One chain per stream (KurrentDB), or one over the log (SQLite).
    per_stream: bool,
    /// The log's chain (a chain over the log only).
    log: Link,
    /// Positions of a chain over the log are dense: each is the previous plus one. Per stream
    /// they only increase.
    last_position: Option<u64>,
    /// Each stream's state.
    streams: fnv::FnvHashMap<String, StreamAt>,
    /// Whether every event must have stored hashes (a store whose chain covers all it holds).
    require_hashes: bool,
    /// Events checked that had no stored hashes (written before a per-stream chain existed).
    pub unhashed: u64,
    /// Streams whose per-stream chain starts again (deleted and written again), in words.
    pub restarted: Vec<String>,
    /// Whether streams seen for the first time must start at revision 0 (a check from the
    /// first event; a slice starts anywhere).
    from_start: bool,
    pub events: u64,
    pub first_position: Option<u64>,
    /// Positions whose recomputed chain hash the caller wants.
    wanted: Vec<u64>,
    pub hashes_at: HashMap<u64, Digest>,
}

/// One event as the check sees it: the record, its recomputed event hash, what is stored.
pub struct Checked<'a> {
    pub record: &'a crate::store::Record,
    pub event_hash: Digest,
    pub stored_event_hash: Option<Digest>,
    pub stored_chain_hash: Option<Digest>,
}

impl ChainCheck {
    /// A check that starts after `previous` (the chain hash before the first event to see) and
    /// after position `after`.
    pub fn new(previous: Digest, after: Option<u64>, from_start: bool, wanted: Vec<u64>) -> Self {
        Self {
            per_stream: false,
            log: Link {
                computed: previous,
                stored: previous,
            },
            last_position: after,
            streams: fnv::FnvHashMap::default(),
            require_hashes: false,
            unhashed: 0,
            restarted: Vec::new(),
            from_start,
            events: 0,
            first_position: None,
            wanted,
            hashes_at: HashMap::new(),
        }
    }

    /// The same check, refusing an event without stored hashes.
    pub fn requiring_hashes(self) -> Self {
        Self {
            require_hashes: true,
            ..self
        }
    }

    /// A check of chains kept per stream, from the log's start.
    pub fn per_stream(wanted: Vec<u64>) -> Self {
        Self {
            per_stream: true,
            ..Self::new(GENESIS, None, true, wanted)
        }
    }

    /// The chain hash recomputed so far: over the log, the last event's chain hash; per stream,
    /// the hash of every stream's head ([`Self::heads_digest`]).
    pub fn head(&self) -> Digest {
        if self.per_stream {
            self.heads_digest()
        } else {
            self.log.computed
        }
    }

    /// One hash for the heads of per-stream chains: SHA-256 over each stream's name, last
    /// revision and recomputed chain hash, in name order. What a seal of such a store signs.
    pub fn heads_digest(&self) -> Digest {
        use sha2::Digest as _;
        let mut names: Vec<&String> = self.streams.keys().collect();
        names.sort();
        let mut h = sha2::Sha256::new();
        h.update(b"pipeline-ledger/heads/1\0");
        for name in names {
            let at = &self.streams[name];
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update(at.revision.to_be_bytes());
            h.update(at.link.computed);
        }
        h.finalize().into()
    }

    /// The last position seen.
    pub fn last_position(&self) -> Option<u64> {
        self.last_position
    }

    /// Checks the next event. `Err` names what breaks; a caller that can tell a moved event
    /// from a changed one refines [`BreakKind::ContentChanged`] afterwards.
    pub fn step(&mut self, e: Checked<'_>) -> Result<(), Break> {
        let r = e.record;
        let at = |kind, detail: String| Break {
            position: r.position,
            kind,
            detail,
        };
        let expected_position = self.last_position.map_or(1, |p| p + 1);
        if r.position < expected_position {
            return Err(at(
                BreakKind::OrderChanged,
                format!(
                    "position {} comes after position {}",
                    r.position,
                    expected_position - 1
                ),
            ));
        }
        // Positions of a chain over the log are dense; a per-stream store's have gaps
        // (KurrentDB's are byte offsets).
        if r.position > expected_position && !self.per_stream {
            let missing = if r.position == expected_position + 1 {
                format!("position {expected_position} is missing")
            } else {
                format!(
                    "positions {expected_position} to {} are missing",
                    r.position - 1
                )
            };
            return Err(Break {
                position: expected_position,
                kind: BreakKind::EventMissing,
                detail: format!("{missing}: the log jumps to position {}", r.position),
            });
        }
        let before = self.streams.get(&r.stream).copied();
        // A per-stream chain that starts afresh at this event: its stream was deleted on
        // KurrentDB (soft delete) and written again, and goes on at a later revision.
        let restarts = self.per_stream
            && e.stored_chain_hash == Some(chain::link(&GENESIS, &e.event_hash))
            && (r.revision > 0 || before.is_some());
        match before.map(|b| b.revision) {
            Some(last) if r.revision <= last => {
                return Err(at(
                    BreakKind::OrderChanged,
                    format!(
                        "stream {} has revision {} after revision {last}",
                        r.stream, r.revision
                    ),
                ));
            }
            Some(last) if r.revision > last + 1 => {
                return Err(at(
                    BreakKind::EventMissing,
                    format!(
                        "stream {} jumps from revision {last} to {}",
                        r.stream, r.revision
                    ),
                ));
            }
            None if self.from_start && r.revision != 0 && !restarts => {
                return Err(at(
                    BreakKind::EventMissing,
                    format!(
                        "stream {} starts at revision {} instead of 0",
                        r.stream, r.revision
                    ),
                ));
            }
            _ => {}
        }
        if let Some(stored) = e.stored_event_hash
            && stored != e.event_hash
        {
            return Err(at(
                BreakKind::ContentChanged,
                format!(
                    "the event {} (stream {}, revision {}) no longer matches the hash recorded \
                     when it was appended",
                    r.event_id, r.stream, r.revision
                ),
            ));
        }
        let genesis = Link {
            computed: GENESIS,
            stored: GENESIS,
        };
        let link = if restarts {
            self.restarted.push(format!(
                "stream {} starts again at revision {} (position {}): it was deleted and written \
                 again; its earlier events are not part of its chain",
                r.stream, r.revision, r.position
            ));
            genesis
        } else if self.per_stream {
            before.map_or(genesis, |b| b.link)
        } else {
            self.log
        };
        // The position of the event this one links to.
        let previous_position = if self.per_stream {
            before.map(|b| b.position)
        } else {
            expected_position.checked_sub(1).filter(|&p| p >= 1)
        };
        let computed = chain::link(&link.computed, &e.event_hash);
        let stored_now;
        if let Some(stored_chain) = e.stored_chain_hash {
            if e.stored_event_hash.is_none() {
                return Err(at(
                    BreakKind::HashReplaced,
                    "the event hash is missing beside its chain hash".into(),
                ));
            }
            if stored_chain != chain::link(&link.stored, &e.event_hash) {
                // The event matches its own hash, but the chain does not lead here from the
                // event before: that event's hashes were replaced (with it), or this one's.
                return Err(
                    if let Some(previous) = previous_position.filter(|_| self.events > 0) {
                        Break {
                            position: previous,
                            kind: BreakKind::HashReplaced,
                            detail: format!(
                                "the chain hash stored at position {} does not follow from the hashes \
                             stored at position {previous}: the event at {previous} was replaced \
                             together with its hashes, or the hash at {} was",
                                r.position, r.position
                            ),
                        }
                    } else {
                        at(
                            BreakKind::HashReplaced,
                            "the chain hash stored here does not follow from the one before it"
                                .into(),
                        )
                    },
                );
            }
            stored_now = stored_chain;
        } else if e.stored_event_hash.is_some() {
            return Err(at(
                BreakKind::HashReplaced,
                "the chain hash is missing beside its event hash".into(),
            ));
        } else if self.require_hashes {
            return Err(at(
                BreakKind::HashReplaced,
                "no hash is stored for this event: its hashes were removed".into(),
            ));
        } else {
            // No stored hashes (events written before the chain, or an export line): the
            // chain goes on from what was recomputed.
            self.unhashed += 1;
            stored_now = computed;
        }
        let link = Link {
            computed,
            stored: stored_now,
        };
        if !self.per_stream {
            self.log = link;
        }
        let now_at = StreamAt {
            revision: r.revision,
            position: r.position,
            link,
        };
        // The stream's name is copied once, when the stream is first seen.
        match self.streams.get_mut(r.stream.as_str()) {
            Some(state) => *state = now_at,
            None => {
                self.streams.insert(r.stream.clone(), now_at);
            }
        }
        self.last_position = Some(r.position);
        self.first_position.get_or_insert(r.position);
        self.events += 1;
        if self.wanted.contains(&r.position) {
            let head = self.head();
            self.hashes_at.insert(r.position, head);
        }
        Ok(())
    }
}

/// Verifies the store's chain and shape from `options.from` (default: the first event) to its
/// head. `wanted`: positions whose recomputed chain hash the report should carry.
pub async fn verify(
    store: &dyn EventStore,
    options: VerifyOptions,
    wanted: Vec<u64>,
) -> Result<VerifyReport, VerifyError> {
    let info: Option<ChainInfo> = store.chain_info().await?;
    let head = store.head_position().await?;
    let Some(info) = info else {
        return Err(if head.is_some() {
            VerifyError::NoChain
        } else {
            VerifyError::Unsupported
        });
    };
    if info.per_stream && options.from.is_some() {
        return Err(VerifyError::FromPerStream);
    }
    let after = options
        .from
        .and_then(|f| f.checked_sub(1))
        .filter(|&p| p > 0);
    let previous = match after {
        None => GENESIS,
        Some(before) => store
            .chain_link_at(before)
            .await?
            .ok_or(VerifyError::NoAnchor {
                from: before + 1,
                before,
            })?,
    };
    let mut check = if info.per_stream {
        ChainCheck::per_stream(wanted)
    } else {
        ChainCheck::new(previous, after, after.is_none(), wanted).requiring_hashes()
    };
    let validator = options
        .schemas
        .then(|| std::sync::Arc::new(LineValidator::new()));
    let mut first_break = None;
    // Pages are read and hashed a few at a time, on the blocking threads, and checked in order
    // as they come. A chain over the log has dense positions, so its pages are position ranges
    // read side by side; per-stream chains (positions with gaps) are read page after page.
    let pages: futures_util::stream::BoxStream<'_, Result<Vec<ChainedRecord>, ReadError>> = if info
        .per_stream
    {
        futures_util::stream::unfold(Some(after), move |cursor| async move {
            let cursor = cursor?;
            let page = store.read_chained(cursor, VERIFY_PAGE_EVENTS).await;
            let next = match &page {
                Ok(p) if p.len() == VERIFY_PAGE_EVENTS => Some(p.last().map(|c| c.record.position)),
                _ => None,
            };
            Some((page, next))
        })
        .boxed()
    } else {
        let end = head.unwrap_or(0);
        let starts = (after.unwrap_or(0)..end).step_by(VERIFY_PAGE_EVENTS);
        futures_util::stream::iter(starts)
            .map(move |lo| {
                store.read_chained_between(lo, (lo + VERIFY_PAGE_EVENTS as u64).min(end))
            })
            .buffered(PAGES_IN_FLIGHT)
            .boxed()
    };
    let mut hashed_pages = pages
        .map(|page| hash_page(page, validator.clone()))
        .buffered(PAGES_IN_FLIGHT);
    'pages: while let Some(hashed) = hashed_pages.next().await {
        let (page, hashed) = hashed?;
        for (c, (event_hash, problem)) in page.iter().zip(hashed) {
            let stepped = check.step(Checked {
                record: &c.record,
                event_hash,
                stored_event_hash: c.event_hash,
                stored_chain_hash: c.chain_hash,
            });
            let broke = match stepped {
                Err(b) => Some(b),
                Ok(()) => problem.map(|why| Break {
                    position: c.record.position,
                    kind: BreakKind::NotDecodable,
                    detail: why,
                }),
            };
            if let Some(mut b) = broke {
                if b.kind == BreakKind::ContentChanged
                    && let Some(elsewhere) = store.find_event_hash(event_hash).await?
                    && elsewhere != c.record.position
                {
                    b.kind = BreakKind::OrderChanged;
                    b.detail = format!(
                        "the event {} was hashed at position {elsewhere} but sits at {}",
                        c.record.event_id, c.record.position
                    );
                }
                first_break = Some(b);
                break 'pages;
            }
        }
    }
    drop(hashed_pages);
    if first_break.is_none()
        && let (Some(chain_end), Some(log_end)) = (info.last_position, head)
        && chain_end > log_end
    {
        first_break = Some(Break {
            position: log_end + 1,
            kind: BreakKind::EventMissing,
            detail: format!(
                "the hash chain covers positions up to {chain_end}, but the log ends at \
                 {log_end}: events were removed from its tail"
            ),
        });
    }
    if first_break.is_none() && !info.per_stream && head.is_some() && info.last_position.is_none() {
        first_break = Some(Break {
            position: check.first_position.unwrap_or(1),
            kind: BreakKind::HashReplaced,
            detail: "the store holds events but no hash chain: its chain was removed".into(),
        });
    }
    Ok(VerifyReport {
        store_identity: store.identity().await?,
        events: check.events,
        first_position: check.first_position,
        last_position: check.last_position().filter(|_| check.events > 0),
        head_hash: (check.events > 0).then(|| check.head()),
        schemas_checked: options.schemas,
        first_break,
        upgraded_through: info.upgrades.iter().map(|u| u.through_position).max(),
        per_stream: info.per_stream,
        unhashed_events: check.unhashed,
        restarted_streams: std::mem::take(&mut check.restarted),
        hashes_at: check.hashes_at,
    })
}

/// Why a stored event does not validate against its published schema, if it does not.
fn schema_problem(validator: &LineValidator, record: &crate::store::Record) -> Option<String> {
    let line = match codec::to_line(record) {
        Ok(line) => line,
        Err(e) => return Some(e.to_string()),
    };
    let value = match serde_json::to_value(&line) {
        Ok(v) => v,
        Err(e) => return Some(e.to_string()),
    };
    validator.check_value(&value).err().map(|e| e.to_string())
}

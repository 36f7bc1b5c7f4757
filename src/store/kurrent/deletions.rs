//! What an operator's deletions hide of `$all` on KurrentDB.
//!
//! A hard delete (a tombstone, `$streamDeleted`, written into the stream) and a soft delete (a
//! truncate-before, `$tb`, in the stream's metadata stream `$$<stream>`) both leave the stream's
//! earlier events in `$all` until the server scavenges them. Reading the stream itself no
//! longer returns them, so the ledger's rules already treat the customer as gone (hard delete)
//! or as new (soft delete). Readers of `$all` skip the same events here, so that reports, exports
//! and rebuilds agree with the streams, and give the same figures before and after a scavenge.
//!
//! A deletion only ever hides events written before it: a tombstone hides every earlier event of
//! its stream; a `$tb` of `long.MaxValue` (what a soft delete writes, KurrentDB
//! `StreamMetadata`/`SystemMetadata.TruncateBefore`, `EventNumber.DeletedStream`) hides every
//! event written before the metadata record; a `$tb` of N (what the server writes when a
//! soft-deleted stream is written again, or an operator's truncation) hides revisions below N.
//! The latest metadata record of a stream is the one in force.
//!
//! This module is the pure part: the rules found so far and what they hide. The backend finds
//! the deletion records (see `KurrentStore::refresh_deletions`) and feeds them in log order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A `$tb` that truncates everything the stream holds when the metadata is written: a soft
/// delete (`long.MaxValue`).
pub const TRUNCATE_ALL: u64 = i64::MAX as u64;

/// What one deletion hides of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hide {
    /// Every event written before this position (a tombstone, or a soft delete's `$tb`).
    Before(u64),
    /// Every event with a revision below this one (`$tb` = N).
    BelowRevision(u64),
}

/// The rule in force for one stream, with the position of the record that set it.
#[derive(Debug, Clone, Copy)]
struct Rule {
    hide: Option<Hide>,
    set_at: u64,
    hard: bool,
}

/// The deletions found in `$all` so far, and what readers skipped because of them.
#[derive(Debug, Default)]
pub struct Deletions {
    rules: HashMap<String, Rule>,
    /// The range of `$all` searched for deletion records: after `.0` (`None`: from the start)
    /// through `.1`.
    scanned: Option<(Option<u64>, u64)>,
    /// When the search last ran.
    refreshed_at: Option<std::time::Instant>,
    /// Per stream, events skipped by readers because a deletion hides them.
    skipped: BTreeMap<String, u64>,
    /// Streams whose deletion a subscription met after it may have delivered their events.
    late: BTreeSet<String>,
}

/// A deletion record of `$all`, as the backend found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionRecord {
    /// A tombstone of `stream`.
    Tombstone { stream: String, position: u64 },
    /// A metadata record of `stream` (written to `$$<stream>`): its `$tb`, if it has one.
    Metadata {
        stream: String,
        truncate_before: Option<u64>,
        position: u64,
    },
}

impl DeletionRecord {
    /// The record of `$all` at `position` in stream `record_stream`, of type `event_type`, with
    /// `data`, as a deletion of one of the streams starting with `prefix`; `None` for any other.
    pub fn parse(
        prefix: &str,
        record_stream: &str,
        event_type: &str,
        data: &[u8],
        position: u64,
    ) -> Option<Self> {
        if event_type == super::TOMBSTONE_EVENT_TYPE && record_stream.starts_with(prefix) {
            return Some(Self::Tombstone {
                stream: record_stream.to_string(),
                position,
            });
        }
        let stream = record_stream.strip_prefix("$$")?;
        if event_type != "$metadata" || !stream.starts_with(prefix) {
            return None;
        }
        // Metadata another tool wrote may hold anything; only a whole-number `$tb` truncates.
        let truncate_before = serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|v| v.get("$tb").and_then(serde_json::Value::as_u64));
        Some(Self::Metadata {
            stream: stream.to_string(),
            truncate_before,
            position,
        })
    }

    fn position(&self) -> u64 {
        match self {
            Self::Tombstone { position, .. } | Self::Metadata { position, .. } => *position,
        }
    }
}

impl Deletions {
    /// Whether a deletion hides the event of `stream` at `revision` and `position`.
    pub fn hides(&self, stream: &str, revision: u64, position: u64) -> bool {
        match self.rules.get(stream).and_then(|r| r.hide) {
            Some(Hide::Before(at)) => position < at,
            Some(Hide::BelowRevision(tb)) => revision < tb,
            None => false,
        }
    }

    /// Applies a deletion record; records must come in log order. Returns whether it was new
    /// (not applied before).
    pub fn apply(&mut self, record: &DeletionRecord) -> bool {
        let (stream, hide, hard) = match record {
            DeletionRecord::Tombstone { stream, position } => {
                (stream, Some(Hide::Before(*position)), true)
            }
            DeletionRecord::Metadata {
                stream,
                truncate_before,
                position,
            } => (
                stream,
                truncate_before.map(|tb| {
                    if tb >= TRUNCATE_ALL {
                        Hide::Before(*position)
                    } else {
                        Hide::BelowRevision(tb)
                    }
                }),
                false,
            ),
        };
        let at = record.position();
        match self.rules.get(stream) {
            Some(rule) if rule.set_at >= at => return false,
            // Nothing is written to a stream after its tombstone: metadata cannot undo it.
            Some(rule) if rule.hard => return false,
            _ => {}
        }
        self.rules.insert(
            stream.clone(),
            Rule {
                hide,
                set_at: at,
                hard,
            },
        );
        true
    }

    /// Notes an event skipped because a deletion hides it.
    pub fn note_skipped(&mut self, stream: &str) {
        *self.skipped.entry(stream.to_string()).or_default() += 1;
    }

    /// Notes a deletion a subscription met live: the events it hides may have been delivered.
    pub fn note_late(&mut self, stream: &str) {
        self.late.insert(stream.to_string());
    }

    /// Where the next search for deletion records must start so that every deletion after
    /// `after` is known, or `None` when the last search covers it and is younger than
    /// `fresh_for`. `Some(None)`: from the start of the log.
    pub fn search_from(
        &self,
        after: Option<u64>,
        fresh_for: std::time::Duration,
    ) -> Option<Option<u64>> {
        let Some((from, through)) = self.scanned else {
            return Some(after);
        };
        if after < from {
            // Earlier than any search went: search from there again.
            return Some(after);
        }
        match self.refreshed_at {
            Some(at) if at.elapsed() < fresh_for => None,
            _ => Some(Some(through)),
        }
    }

    /// Records a finished search of `$all` after `from` through `through`.
    pub fn searched(&mut self, from: Option<u64>, through: u64) {
        let from = match self.scanned {
            Some((earlier, _)) if earlier < from => earlier,
            _ => from,
        };
        let through = self.scanned.map_or(through, |(_, t)| t.max(through));
        self.scanned = Some((from, through));
        self.refreshed_at = Some(std::time::Instant::now());
    }

    /// What readers skipped, for `EventStore::notices`: one line per stream.
    pub fn notices(&self, display: &str) -> Vec<String> {
        let skipped = self.skipped.iter().map(|(stream, n)| {
            let how = match self.rules.get(stream) {
                Some(r) if r.hard => "hard-deleted (tombstoned)",
                _ => "soft-deleted or truncated",
            };
            format!(
                "stream {stream} was {how} in KurrentDB at {display}: {n} of its earlier \
                 events were left out of what was read, as reading the stream leaves them out"
            )
        });
        let late = self.late.iter().map(|stream| {
            format!(
                "stream {stream} was deleted in KurrentDB at {display} while it was followed: \
                 read models that projected its earlier events keep them until `rebuild`"
            )
        });
        skipped.chain(late).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(stream: &str, tb: Option<u64>, position: u64) -> DeletionRecord {
        DeletionRecord::Metadata {
            stream: stream.into(),
            truncate_before: tb,
            position,
        }
    }

    #[test]
    fn a_soft_delete_hides_what_was_written_before_it_and_nothing_after() {
        let mut d = Deletions::default();
        assert!(d.apply(&metadata("customer-a", Some(TRUNCATE_ALL), 500)));
        assert!(d.hides("customer-a", 0, 100));
        assert!(d.hides("customer-a", 1, 499));
        assert!(
            !d.hides("customer-a", 2, 600),
            "written again after the delete"
        );
        assert!(!d.hides("customer-b", 0, 100), "another stream");
    }

    #[test]
    fn the_latest_metadata_is_in_force_and_a_tombstone_is_final() {
        let mut d = Deletions::default();
        d.apply(&metadata("customer-a", Some(TRUNCATE_ALL), 500));
        // The server writes `$tb` = 2 when the stream is written again.
        d.apply(&metadata("customer-a", Some(2), 700));
        assert!(d.hides("customer-a", 1, 100));
        assert!(!d.hides("customer-a", 2, 600));
        // Applying an older record again changes nothing.
        assert!(!d.apply(&metadata("customer-a", None, 500)));
        assert!(d.hides("customer-a", 1, 100));
        // Metadata without `$tb` lifts the truncation.
        d.apply(&metadata("customer-a", None, 800));
        assert!(!d.hides("customer-a", 1, 100));
        d.apply(&DeletionRecord::Tombstone {
            stream: "customer-a".into(),
            position: 900,
        });
        assert!(d.hides("customer-a", 5, 850));
        assert!(!d.apply(&metadata("customer-a", None, 950)));
        assert!(d.hides("customer-a", 5, 850));
    }

    #[test]
    fn parse_keeps_the_callers_streams_only() {
        let p = |stream: &str, ty: &str, data: &str| {
            DeletionRecord::parse("customer-", stream, ty, data.as_bytes(), 10)
        };
        assert_eq!(
            p("$$customer-a", "$metadata", r#"{"$tb":3}"#),
            Some(metadata("customer-a", Some(3), 10))
        );
        assert_eq!(
            p("$$customer-a", "$metadata", "not json"),
            Some(metadata("customer-a", None, 10))
        );
        assert_eq!(p("$$other-a", "$metadata", r#"{"$tb":3}"#), None);
        assert_eq!(p("other-a", "$streamDeleted", ""), None);
        assert_eq!(
            p("customer-a", "$streamDeleted", ""),
            Some(DeletionRecord::Tombstone {
                stream: "customer-a".into(),
                position: 10
            })
        );
        assert_eq!(p("customer-a", "LeadSourced", "{}"), None);
    }

    #[test]
    fn a_search_is_needed_for_earlier_reads_and_after_the_interval() {
        let mut d = Deletions::default();
        let fresh = std::time::Duration::from_secs(3600);
        assert_eq!(d.search_from(Some(50), fresh), Some(Some(50)));
        d.searched(Some(50), 900);
        assert_eq!(d.search_from(Some(60), fresh), None);
        assert_eq!(d.search_from(Some(10), fresh), Some(Some(10)));
        assert_eq!(d.search_from(None, fresh), Some(None));
        assert_eq!(
            d.search_from(Some(60), std::time::Duration::ZERO),
            Some(Some(900))
        );
        d.searched(None, 1000);
        assert_eq!(d.search_from(None, fresh), None);
    }
}

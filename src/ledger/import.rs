//! Batch recording: NDJSON import and the demo generator both go through here.
//!
//! The whole batch is validated first (schema, then the domain rules against each customer's
//! history, including the batch's own earlier events), and only a batch without a single bad event
//! is appended, in one atomic append across all its streams. Events already recorded with the
//! same content are skipped, so importing the same file twice adds nothing.

use super::codec::{decode, stream_name, to_new_record};
use super::{Ledger, RecordError};
use crate::contract::line::ValidLine;
use crate::domain::{CustomerHistory, CustomerId};
use crate::store::{AppendError, ExpectedRevision, NewRecord, ReadError, Record, StreamAppend};
use chrono::Utc;
use std::collections::HashMap;
use std::io::BufRead;
use uuid::Uuid;

/// Streams read per round trip when loading the histories of a batch's customers.
const READ_STREAMS_CHUNK: usize = 10_000;
/// Most bad lines kept for the report; the rest are counted.
pub const BAD_LINES_REPORTED_MAX: usize = 1000;

/// A refused line of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number (or index in the batch).
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a batch was not written. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{total} bad line(s); nothing was written")]
    BadLines { bad: Vec<BadLine>, total: usize },
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("reading the store failed: {0}")]
    Read(#[from] ReadError),
    #[error("appending the batch failed, nothing was written: {0}")]
    Append(#[from] AppendError),
    #[error(transparent)]
    Decode(#[from] super::codec::DecodeError),
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Events in the batch.
    pub events: u64,
    /// Events newly written.
    pub written: u64,
    /// Events skipped because they were already recorded with the same content.
    pub already_present: u64,
    /// Position of the last event written, if any.
    pub last_position: Option<u64>,
}

/// Progress of a batch, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes read and validated so far.
    Validating { bytes: u64 },
    /// Events checked against the domain rules so far, of the total.
    Deciding { done: u64, total: u64 },
    /// The atomic append is being committed.
    Writing { events: u64 },
}

struct Bad {
    kept: Vec<BadLine>,
    total: usize,
}

impl Bad {
    fn push(&mut self, line: u64, reason: String) {
        self.total += 1;
        if self.kept.len() < BAD_LINES_REPORTED_MAX {
            self.kept.push(BadLine { line, reason });
        }
    }
}

impl Ledger {
    /// Imports NDJSON from `input`: every line validated, then written atomically, or nothing.
    pub async fn import(
        &self,
        input: &mut dyn BufRead,
        progress: &dyn Fn(Progress),
    ) -> Result<ImportReport, ImportError> {
        let mut bad = Bad {
            kept: Vec::new(),
            total: 0,
        };
        let mut valid = Vec::new();
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let mut bytes = 0u64;
        loop {
            buf.clear();
            let n = input.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            bytes += n as u64;
            let mut line = buf.as_slice();
            if line.ends_with(b"\n") {
                line = &line[..line.len() - 1];
            }
            if line.ends_with(b"\r") {
                line = &line[..line.len() - 1];
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.validator().parse(line) {
                Ok(v) => valid.push((line_no, v)),
                Err(e) => bad.push(line_no, e.to_string()),
            }
            if line_no.is_multiple_of(4096) {
                progress(Progress::Validating { bytes });
            }
        }
        progress(Progress::Validating { bytes });
        self.record_batch_checked(valid, bad, progress).await
    }

    /// Records a batch of validated events atomically (the demo generator's entry point).
    /// `lines` carries each event's line number for error reports.
    pub async fn record_batch(
        &self,
        lines: Vec<(u64, ValidLine)>,
        progress: &dyn Fn(Progress),
    ) -> Result<ImportReport, ImportError> {
        let bad = Bad {
            kept: Vec::new(),
            total: 0,
        };
        self.record_batch_checked(lines, bad, progress).await
    }

    async fn record_batch_checked(
        &self,
        lines: Vec<(u64, ValidLine)>,
        mut bad: Bad,
        progress: &dyn Fn(Progress),
    ) -> Result<ImportReport, ImportError> {
        let mut report = ImportReport {
            events: (lines.len() + bad.total) as u64,
            ..ImportReport::default()
        };
        // Duplicate ids inside the batch.
        let mut first_line: HashMap<Uuid, u64> = HashMap::with_capacity(lines.len());
        for (line, v) in &lines {
            if let Some(first) = first_line.insert(v.proposed.event_id, *line) {
                first_line.insert(v.proposed.event_id, first);
                bad.push(
                    *line,
                    format!(
                        "field event_id: {} is already used on line {first}",
                        v.proposed.event_id
                    ),
                );
            }
        }
        let mut histories: HashMap<CustomerId, (CustomerHistory, Option<u64>)> = HashMap::new();
        let mut existing: HashMap<Uuid, Record> = HashMap::new();
        // Every customer's history, read in batches of streams (one round trip per batch).
        let mut customers: Vec<CustomerId> = Vec::new();
        {
            let mut seen = std::collections::HashSet::new();
            for (_, v) in &lines {
                if seen.insert(&v.proposed.customer_id) {
                    customers.push(v.proposed.customer_id.clone());
                }
            }
        }
        for chunk in customers.chunks(READ_STREAMS_CHUNK) {
            let streams: Vec<String> = chunk.iter().map(stream_name).collect();
            let mut read = self.store().read_streams(&streams).await?;
            for (customer, stream) in chunk.iter().zip(&streams) {
                let records = read.remove(stream).unwrap_or_default();
                let events = records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                let history = CustomerHistory::from_events(customer.clone(), &events);
                let base = history.revision();
                for record in records {
                    existing.insert(record.event_id, record);
                }
                histories.insert(customer.clone(), (history, base));
            }
        }
        let total = lines.len() as u64;
        let mut pending: Vec<(CustomerId, NewRecord)> = Vec::new();
        let now = Utc::now();
        for (done, (line, v)) in lines.into_iter().enumerate() {
            if first_line.get(&v.proposed.event_id) != Some(&line) {
                continue; // a duplicate, reported above
            }
            let customer = v.proposed.customer_id.clone();
            let record = to_new_record(&v.proposed, v.schema_version, v.data);
            // An event already in the customer's stream: a retry is skipped, another use of the
            // id is refused. (An id used in another customer's stream is refused by the store.)
            if let Some(stored) = existing.get(&v.proposed.event_id) {
                if stored.is_same_event(&stream_name(&customer), &record) {
                    report.already_present += 1;
                } else {
                    bad.push(
                        line,
                        format!(
                            "field event_id: {} was already recorded with different content",
                            record.event_id
                        ),
                    );
                }
                continue;
            }
            let (history, _) = histories.get_mut(&customer).expect("loaded above");
            // A given recorded_at (migrated history) decides, but never later than our clock.
            let decided_at = v.proposed.recorded_at.map_or(now, |r| r.min(now));
            match history.decide(&v.proposed, decided_at) {
                Ok(()) => {
                    history.record(v.proposed.event_id, v.proposed.payload);
                    pending.push((customer, record));
                }
                Err(e) => bad.push(line, RecordError::Refused(e).to_string()),
            }
            if done % 4096 == 0 {
                progress(Progress::Deciding {
                    done: done as u64,
                    total,
                });
            }
        }
        if bad.total > 0 {
            bad.kept.sort_by_key(|b| b.line);
            return Err(ImportError::BadLines {
                bad: bad.kept,
                total: bad.total,
            });
        }
        if pending.is_empty() {
            return Ok(report);
        }
        progress(Progress::Writing {
            events: pending.len() as u64,
        });
        // Runs of consecutive events of one customer keep the batch's order in the log.
        let mut appends: Vec<StreamAppend> = Vec::new();
        let mut last_revision: HashMap<CustomerId, Option<u64>> = histories
            .iter()
            .map(|(c, (_, base))| (c.clone(), *base))
            .collect();
        let mut current: Option<(CustomerId, StreamAppend)> = None;
        for (customer, record) in pending {
            match &mut current {
                Some((c, run)) if *c == customer => run.events.push(record),
                _ => {
                    if let Some((c, run)) = current.take() {
                        close_run(&mut last_revision, &c, &run);
                        appends.push(run);
                    }
                    let expected = match last_revision[&customer] {
                        None => ExpectedRevision::NoStream,
                        Some(r) => ExpectedRevision::Exact(r),
                    };
                    current = Some((
                        customer.clone(),
                        StreamAppend {
                            stream: stream_name(&customer),
                            expected,
                            events: vec![record],
                        },
                    ));
                }
            }
        }
        if let Some((_, run)) = current {
            appends.push(run);
        }
        let results = self.store().append_many(appends).await?;
        for result in &results {
            if result.written {
                report.written += result.last_position - result.first_position + 1;
            }
        }
        report.last_position = results.iter().map(|r| r.last_position).max();
        Ok(report)
    }
}

fn close_run(
    last_revision: &mut HashMap<CustomerId, Option<u64>>,
    customer: &CustomerId,
    run: &StreamAppend,
) {
    let entry = last_revision
        .get_mut(customer)
        .expect("every customer has a base");
    let k = run.events.len() as u64;
    *entry = Some(entry.map_or(k - 1, |r| r + k));
}

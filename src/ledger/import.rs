//! Batch recording: NDJSON import and the demo generator both go through here.
//!
//! A batch is all or nothing. Lines are read in chunks; each chunk is validated against the
//! schema (on every core), then decided against each customer's history (including the batch's
//! own earlier events), and handed to the store's bulk append, which writes it inside one open
//! transaction while the next chunk is validated. The transaction commits only after the last
//! line passed; a single bad line anywhere abandons it, and every bad line is still reported.
//! Events already recorded with the same content are skipped, so importing twice adds nothing.

use super::Ledger;
use super::codec::{customer_of_stream, decode, stream_name, to_new_record};
use super::personal;
use crate::contract::line::{LineError, LineValidator, ValidLine};
use crate::domain::{CustomerHistory, CustomerId, EventPayload, ProposedEvent};
use crate::keys::vault::Erasure;
use crate::limits::{
    BAD_LINES_REPORTED_MAX, IMPORT_CHUNK_BYTES_MAX, IMPORT_SPOOL_BYTES_MAX, LINE_BYTES_MAX,
};
use crate::store::{
    AppendError, BulkMessage, BulkResult, ExpectedRevision, ReadError, Record, StreamAppend,
};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Lines validated and decided per chunk: large enough to keep every core busy, small enough to
/// bound memory to a few chunks in flight.
pub const IMPORT_CHUNK_LINES: usize = 8_192;
/// Bytes reserved for a chunk's lines up front: room for typical lines of about 500 bytes, so
/// that the buffer seldom grows while a chunk is read.
const CHUNK_BYTES_RESERVED: usize = IMPORT_CHUNK_LINES * 640;
/// Most bytes of one line kept in memory: the line limit and a CR LF ending. A longer line is
/// skipped to its newline, counted but not kept, and refused as too long.
const LINE_BYTES_KEPT_MAX: usize = LINE_BYTES_MAX + 2;
/// Chunks handed to the store and not yet written.
const BULK_CHUNKS_IN_FLIGHT: usize = 4;

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
    #[error("sealing personal data failed, nothing was written: {0}")]
    Personal(#[from] personal::SealError),
}

/// Why standard input could not be copied to the import's temporary file. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "cannot create a temporary file in {dir} to hold standard input: {source}; nothing was \
         written"
    )]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "standard input is larger than {IMPORT_SPOOL_BYTES_MAX} bytes, the most an import from \
         standard input holds; nothing was written. Write it to a file and import the file"
    )]
    TooLarge,
    #[error("reading standard input failed: {0}; nothing was written")]
    Read(std::io::Error),
    #[error(
        "writing the temporary copy of standard input in {dir} failed: {source}; nothing was \
         written"
    )]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Copies `input` (standard input) to a temporary file in `dir`, at most
/// [`IMPORT_SPOOL_BYTES_MAX`] bytes, and returns the file rewound. The import then reads the
/// file: the store's write lock is taken only once the producer has finished, so a slow producer
/// never blocks other writers. The file has no name (it is unlinked at once, or created
/// unnamed), is readable by its owner only, and disappears with the process however it ends,
/// Ctrl-C and kill -9 included.
pub fn spool(input: &mut dyn Read, dir: &Path) -> Result<std::fs::File, SpoolError> {
    let mut file = tempfile::tempfile_in(dir).map_err(|source| SpoolError::Create {
        dir: dir.to_path_buf(),
        source,
    })?;
    let write_error = |source| SpoolError::Write {
        dir: dir.to_path_buf(),
        source,
    };
    let mut buf = vec![0u8; SPOOL_BUFFER_BYTES];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SpoolError::Read(e)),
        };
        total += n as u64;
        if total > IMPORT_SPOOL_BYTES_MAX {
            return Err(SpoolError::TooLarge);
        }
        file.write_all(&buf[..n]).map_err(write_error)?;
    }
    file.rewind().map_err(write_error)?;
    Ok(file)
}

/// Bytes read from standard input at a time while spooling.
const SPOOL_BUFFER_BYTES: usize = 1 << 20;

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
    /// Lines (and bytes of input) validated and decided so far.
    Checked { lines: u64, bytes: u64 },
    /// Every line passed; the transaction is being committed.
    Committing { events: u64 },
}

/// One batch in progress: the decision state of every customer it touched, and the store's
/// bulk append it feeds.
struct Session<'l> {
    ledger: &'l Ledger,
    chunks: Option<mpsc::Sender<BulkMessage>>,
    writer: tokio::task::JoinHandle<Result<BulkResult, AppendError>>,
    histories: HashMap<CustomerId, CustomerHistory>,
    /// Events of the touched customers that were in the store before the batch.
    existing: HashMap<Uuid, Record>,
    /// The line each event id of the batch was first seen on.
    first_line: HashMap<Uuid, u64>,
    bad: Vec<BadLine>,
    bad_total: usize,
    report: ImportReport,
    now: DateTime<Utc>,
    /// Erasures in the input (an export of a ledger that ran `forget`), carried out on this
    /// ledger's key store once every line has passed and before the batch commits: the key goes
    /// before the log says it has, as `forget` does it.
    erasures: Vec<Erasure>,
}

impl<'l> Session<'l> {
    fn start(ledger: &'l Ledger) -> Self {
        let (tx, rx) = mpsc::channel(BULK_CHUNKS_IN_FLIGHT);
        let store = ledger.store().clone();
        let writer = tokio::spawn(async move { store.append_bulk(rx).await });
        Self {
            ledger,
            chunks: Some(tx),
            writer,
            histories: HashMap::new(),
            existing: HashMap::new(),
            first_line: HashMap::new(),
            bad: Vec::new(),
            bad_total: 0,
            report: ImportReport::default(),
            now: Utc::now(),
            erasures: Vec::new(),
        }
    }

    fn refuse(&mut self, line: u64, reason: String) {
        self.bad_total += 1;
        if self.bad.len() < BAD_LINES_REPORTED_MAX {
            self.bad.push(BadLine { line, reason });
        }
    }

    /// Seals the personal fields of the chunk's lines (the keys of new customers made in one
    /// transaction first); a line that cannot be sealed is refused.
    fn seal(&mut self, lines: Vec<(u64, ValidLine)>) -> Result<Vec<(u64, ValidLine)>, ImportError> {
        let Some(vault) = self.ledger.personal.clone() else {
            return Ok(lines);
        };
        // Keys for writing (made where missing) for the customers with plaintext to seal; the
        // key's state alone for those whose fields all came sealed. (The key store keeps the
        // keys it opened, so a customer's key is unwrapped once per batch, not once per chunk.)
        let mut lines = lines;
        let mut writing = Vec::new();
        let mut reading = Vec::new();
        for (_, v) in lines.iter_mut() {
            if !personal::has_personal_fields(&v.proposed.payload) {
                continue;
            }
            let customer = v.proposed.customer_id.as_str().to_string();
            if personal::has_plaintext(&mut v.proposed.payload) {
                writing.push(customer);
            } else {
                reading.push(customer);
            }
        }
        if writing.is_empty() && reading.is_empty() {
            return Ok(lines);
        }
        let mut keys = vault
            .keys_for_writing(writing.iter().map(String::as_str))
            .map_err(personal::SealError::from)?;
        for customer in reading {
            if let Entry::Vacant(slot) = keys.entry(customer) {
                let state = vault.key(slot.key()).map_err(personal::SealError::from)?;
                slot.insert(state);
            }
        }
        // The cipher work of a chunk is spread over every core, as its validation was.
        let keys = &keys;
        let sealed: Vec<(u64, ValidLine, Option<String>)> = lines
            .into_par_iter()
            .map(|(no, mut v)| {
                let refused = keys
                    .get(v.proposed.customer_id.as_str())
                    .and_then(|key| personal::seal_line(&mut v, key).err())
                    .map(|e| e.to_string());
                (no, v, refused)
            })
            .collect();
        let mut kept = Vec::with_capacity(sealed.len());
        for (no, v, refused) in sealed {
            match refused {
                Some(reason) => self.refuse(no, reason),
                None => kept.push((no, v)),
            }
        }
        Ok(kept)
    }

    /// Loads the histories of the chunk's customers not seen before, in one round trip.
    async fn load_customers(&mut self, lines: &[(u64, ValidLine)]) -> Result<(), ImportError> {
        let mut new: Vec<CustomerId> = Vec::new();
        let mut seen = HashSet::new();
        for (_, v) in lines {
            let c = &v.proposed.customer_id;
            if !self.histories.contains_key(c) && seen.insert(c) {
                new.push(c.clone());
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let streams: Vec<String> = new.iter().map(stream_name).collect();
        let mut read = self.ledger.store().read_streams(&streams).await?;
        for (customer, stream) in new.into_iter().zip(&streams) {
            let records = read.remove(stream).unwrap_or_default();
            let events = records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            let history = CustomerHistory::from_events(customer.clone(), &events);
            for record in records {
                self.existing.insert(record.event_id, record);
            }
            self.histories.insert(customer, history);
        }
        Ok(())
    }

    /// Counts and records the refused lines of a validated chunk, then decides the rest.
    async fn feed_parsed(&mut self, parsed: Vec<ParsedLine>) -> Result<(), ImportError> {
        let mut valid = Vec::with_capacity(parsed.len());
        for (no, result) in parsed {
            match result {
                Ok(v) => valid.push((no, v)),
                Err(e) => {
                    self.report.events += 1;
                    self.refuse(no, e.to_string());
                }
            }
        }
        self.feed(valid).await
    }

    /// Decides a chunk of validated lines and, while the batch is still clean, hands the
    /// accepted events to the store.
    async fn feed(&mut self, lines: Vec<(u64, ValidLine)>) -> Result<(), ImportError> {
        self.report.events += lines.len() as u64;
        let lines = self.seal(lines)?;
        self.load_customers(&lines).await?;
        // Runs of consecutive events of one customer keep the batch's order in the log.
        let mut appends: Vec<StreamAppend> = Vec::new();
        for (line, v) in lines {
            let event_id = v.proposed.event_id;
            match self.first_line.entry(event_id) {
                Entry::Occupied(first) => {
                    let reason = format!(
                        "field event_id: {event_id} is already used on line {}",
                        first.get()
                    );
                    self.refuse(line, reason);
                    continue;
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
            }
            let record = to_new_record(&v.proposed, v.schema_version, v.data);
            // An event already in the customer's stream: a retry is skipped, another use of the
            // id is refused. (An id used in another customer's stream is refused by the store.)
            if let Some(stored) = self.existing.get(&event_id) {
                if stored.is_same_event(&stream_name(&v.proposed.customer_id), &record) {
                    self.report.already_present += 1;
                } else {
                    let reason = format!(
                        "field event_id: {event_id} was already recorded with different content"
                    );
                    self.refuse(line, reason);
                }
                continue;
            }
            let history = self
                .histories
                .get_mut(&v.proposed.customer_id)
                .expect("loaded above");
            // A given recorded_at (migrated history) decides, but never later than our clock:
            // otherwise a future recorded_at would let occurred_at into the future too.
            let decided_at = v.proposed.recorded_at.map_or(self.now, |r| r.min(self.now));
            if let Err(e) = history.decide(&v.proposed, decided_at) {
                self.refuse(line, format!("refused: {e}"));
                continue;
            }
            let expected = match history.revision() {
                None => ExpectedRevision::NoStream,
                Some(r) => ExpectedRevision::Exact(r),
            };
            let ProposedEvent {
                customer_id: customer,
                payload,
                occurred_at,
                recorded_by,
                ..
            } = v.proposed;
            if let EventPayload::PersonalDataErased(erased) = &payload {
                self.erasures.push(Erasure {
                    customer_id: customer.to_string(),
                    erased_at: occurred_at,
                    erased_by: recorded_by.to_string(),
                    reason: erased.reason.clone(),
                });
            }
            history.record(event_id, payload);
            // The stream name is built once per run, not once per event.
            match appends.last_mut() {
                Some(run) if customer_of_stream(&run.stream) == Some(customer.as_str()) => {
                    run.events.push(record)
                }
                _ => appends.push(StreamAppend {
                    stream: stream_name(&customer),
                    expected,
                    events: vec![record],
                }),
            }
        }
        if self.bad_total > 0 || appends.is_empty() {
            return Ok(());
        }
        let Some(sender) = &self.chunks else {
            return Ok(());
        };
        if sender.send(BulkMessage::Chunk(appends)).await.is_err() {
            // The store refused a chunk and stopped listening; `finish` reports why.
            self.chunks = None;
        }
        Ok(())
    }

    /// Commits the batch if every line passed, or abandons it and reports every bad line.
    async fn finish(
        mut self,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ImportReport, ImportError> {
        let sender = self.chunks.take();
        if self.bad_total > 0 {
            drop(sender); // abandons the bulk append: nothing is written
            let _ = self.writer.await;
            self.bad.sort_by_key(|b| b.line);
            return Err(ImportError::BadLines {
                bad: self.bad,
                total: self.bad_total,
            });
        }
        progress(Progress::Committing {
            events: self.report.events,
        });
        // The decision state is not needed any more: free it while the store commits.
        drop(std::mem::take(&mut self.histories));
        drop(std::mem::take(&mut self.existing));
        drop(std::mem::take(&mut self.first_line));
        if let Some(vault) = &self.ledger.personal {
            for erasure in &self.erasures {
                if vault.erasure(&erasure.customer_id).is_none() {
                    vault.forget(erasure).map_err(personal::SealError::from)?;
                }
            }
        }
        if let Some(sender) = sender {
            let _ = sender.send(BulkMessage::Commit).await;
        }
        let written = self.writer.await.map_err(|e| {
            AppendError::Storage(crate::store::StorageError::Other(e.to_string()))
        })??;
        self.report.written = written.written;
        self.report.already_present += written.already_present;
        self.report.last_position = written.last_position;
        Ok(self.report)
    }
}

/// A line number and its validation.
type ParsedLine = (u64, Result<ValidLine, LineError>);

/// Up to [`IMPORT_CHUNK_LINES`] lines, and about [`IMPORT_CHUNK_BYTES_MAX`] bytes, read into one
/// buffer: one allocation per chunk, not one per line, and memory bounded by the limits, not by
/// the input.
struct RawChunk {
    buf: Vec<u8>,
    /// Line number, start and end (newline included) of each line in `buf`.
    lines: Vec<(u64, usize, usize)>,
    /// Lines longer than [`LINE_BYTES_MAX`]: line number and length without the line ending.
    /// Their bytes were read past, not kept.
    overlong: Vec<(u64, usize)>,
    /// Bytes of input read, overlong lines included.
    bytes_read: u64,
    /// Whether the input ended.
    eof: bool,
}

/// What [`read_line_bounded`] found.
enum LineRead {
    Eof,
    Kept,
    /// Longer than it may be; `bytes` without the line ending.
    TooLong {
        bytes: usize,
    },
}

/// Reads one line (newline included) onto `buf`, or past it without keeping it when it is
/// longer than [`LINE_BYTES_KEPT_MAX`]: memory never follows a line's length.
fn read_line_bounded(
    input: &mut (dyn BufRead + Send),
    buf: &mut Vec<u8>,
    read: &mut u64,
) -> std::io::Result<LineRead> {
    let start = buf.len();
    let mut total = 0usize;
    let mut keeping = true;
    let mut ending = 0usize;
    let mut last = 0u8;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if keeping && total + used > LINE_BYTES_KEPT_MAX {
            keeping = false;
            buf.truncate(start);
        }
        if keeping {
            buf.extend_from_slice(&available[..used]);
        }
        if done {
            let before_newline = if used >= 2 { available[used - 2] } else { last };
            ending = if total + used >= 2 && before_newline == b'\r' {
                2
            } else {
                1
            };
        }
        last = available[used - 1];
        total += used;
        input.consume(used);
        if done {
            break;
        }
    }
    *read += total as u64;
    Ok(match (total, keeping) {
        (0, _) => LineRead::Eof,
        (_, true) => LineRead::Kept,
        (_, false) => LineRead::TooLong {
            bytes: total - ending,
        },
    })
}

impl RawChunk {
    /// Reads the next chunk; `eof` says whether the input ended.
    fn read(input: &mut (dyn BufRead + Send), line_no: &mut u64) -> std::io::Result<Self> {
        let mut chunk = RawChunk {
            buf: Vec::with_capacity(CHUNK_BYTES_RESERVED),
            lines: Vec::with_capacity(IMPORT_CHUNK_LINES),
            overlong: Vec::new(),
            bytes_read: 0,
            eof: false,
        };
        while chunk.lines.len() + chunk.overlong.len() < IMPORT_CHUNK_LINES
            && chunk.buf.len() < IMPORT_CHUNK_BYTES_MAX
        {
            let start = chunk.buf.len();
            match read_line_bounded(input, &mut chunk.buf, &mut chunk.bytes_read)? {
                LineRead::Eof => {
                    chunk.eof = true;
                    break;
                }
                LineRead::Kept => {
                    *line_no += 1;
                    chunk.lines.push((*line_no, start, chunk.buf.len()));
                }
                LineRead::TooLong { bytes } => {
                    *line_no += 1;
                    chunk.overlong.push((*line_no, bytes));
                }
            }
        }
        Ok(chunk)
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.overlong.is_empty()
    }

    /// Validates the chunk's lines on the rayon pool (all cores; they are independent) and
    /// answers when done, so that the caller can decide the previous chunk meanwhile.
    fn validate(self, validator: Arc<LineValidator>) -> oneshot::Receiver<Vec<ParsedLine>> {
        let (tx, rx) = oneshot::channel();
        rayon::spawn(move || {
            let buf = &self.buf;
            let mut parsed: Vec<ParsedLine> = self
                .lines
                .into_par_iter()
                .filter_map(|(no, start, end)| {
                    trim_line(&buf[start..end]).map(|line| (no, validator.parse(line)))
                })
                .collect();
            parsed.extend(
                self.overlong
                    .into_iter()
                    .map(|(no, bytes)| (no, Err(LineError::TooLong { bytes }))),
            );
            // The importer may have stopped listening (an I/O or store error): nothing to do.
            let _ = tx.send(parsed);
        });
        rx
    }
}

/// Strips the line ending; `None` for a blank line.
fn trim_line(mut line: &[u8]) -> Option<&[u8]> {
    if line.ends_with(b"\n") {
        line = &line[..line.len() - 1];
    }
    if line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    (!line.iter().all(u8::is_ascii_whitespace)).then_some(line)
}

impl Ledger {
    /// Imports NDJSON from `input`: every line validated and decided, then all written
    /// atomically, or nothing.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ImportReport, ImportError> {
        let mut session = Session::start(self);
        let mut line_no = 0u64;
        let mut bytes = 0u64;
        // Three stages overlap: while this task decides chunk n (and the store writes the chunk
        // before it), the rayon pool validates chunk n + 1.
        // Each chunk in validation travels with the progress it completes.
        let mut validating: Option<(oneshot::Receiver<Vec<ParsedLine>>, Progress)> = None;
        loop {
            let chunk = RawChunk::read(input, &mut line_no)?;
            bytes += chunk.bytes_read;
            let eof = chunk.eof;
            let next = (!chunk.is_empty()).then(|| {
                let done = Progress::Checked {
                    lines: line_no,
                    bytes,
                };
                (chunk.validate(self.validator.clone()), done)
            });
            if let Some((parsed, done)) = std::mem::replace(&mut validating, next) {
                session
                    .feed_parsed(parsed.await.expect("validation finishes"))
                    .await?;
                progress(done);
            }
            if eof {
                break;
            }
        }
        if let Some((parsed, done)) = validating {
            session
                .feed_parsed(parsed.await.expect("validation finishes"))
                .await?;
            progress(done);
        }
        session.finish(progress).await
    }

    /// Records a batch of validated events atomically (the demo generator's entry point).
    /// `lines` carries each event's line number for error reports.
    pub async fn record_batch(
        &self,
        lines: Vec<(u64, ValidLine)>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ImportReport, ImportError> {
        let mut session = Session::start(self);
        let mut lines = lines.into_iter().peekable();
        let mut done = 0u64;
        while lines.peek().is_some() {
            let chunk: Vec<_> = lines.by_ref().take(IMPORT_CHUNK_LINES).collect();
            done += chunk.len() as u64;
            session.feed(chunk).await?;
            progress(Progress::Checked {
                lines: done,
                bytes: 0,
            });
        }
        session.finish(progress).await
    }
}

//! Every named limit of the ledger, with its unit (last in the name) and why it has its value.
//!
//! The limits here are the ones users meet (in an error message, a report or a policy file) or
//! that more than one layer needs: the contract refuses a line the store would refuse, the
//! domain and the schemas agree on an identifier's length. Limits that only tune one module
//! (page sizes, deadlines, retries, caches) stay in that module.
//!
//! This module imports nothing from the crate, so that every layer may depend on it.

// ---- Events and interchange lines ----

/// Largest event data accepted, in bytes of JSON. A recorded interaction is a few hundred bytes
/// (imported lines are about 500 on average); 64 KiB leaves room for long notes and lists while
/// bounding what one event costs every read page, import chunk and projection.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// Most events in one append to one stream. A customer's history is tens of events; the limit
/// bounds the size of a transaction and the memory an append holds, and only a runaway producer
/// meets it.
pub const APPEND_EVENTS_MAX: usize = 10_000;

/// Longest interchange line accepted, in bytes: the data limit plus 4 KiB for the envelope (ids,
/// times, type and actor take a few hundred bytes), so that a line is refused for its size only
/// when its data would be.
pub const LINE_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + 4096;

/// Most schema violations reported for one line: the first few say what to fix, and a line of
/// another format altogether would otherwise fill the report with one error per field.
pub const LINE_ERRORS_MAX: usize = 5;

/// Most bad lines kept for an import's report; the rest are counted. Bounds the report's memory
/// when a whole file is of the wrong format and every line is bad.
pub const BAD_LINES_REPORTED_MAX: usize = 1000;

/// Largest amount of money one event may carry, in minor units (10^16: 100 trillion in a currency
/// of two decimals, 10 quadrillion yen). Far above any real contract, even in currencies of low
/// value, and low enough that no sum the reports keep in an `i64` (a rep's contracts in one
/// period and currency, a customer's contracts) can overflow short of 922 contracts each at this
/// limit. Refused on new input only: stored events of any amount still decode, and their sums
/// saturate rather than wrap (see `projections/README.md`).
pub const AMOUNT_MINOR_MAX: i64 = 10_000_000_000_000_000;

// ---- Identifiers and time ----

/// Longest identifier (customer, rep, deal, actor) accepted, in bytes. Identifiers are CRM keys
/// and employee numbers, and become part of a stream name (`customer-<id>`) in every backend:
/// 64 is ample for such keys and keeps stream names short. The pattern published in the schemas
/// (`domain::ids::IDENT_PATTERN`, `{0,63}` after the first character) spells the same limit.
pub const IDENT_BYTES_MAX: usize = 64;

/// How far in the future an event's `occurred_at` may be, in seconds. Five minutes tolerates
/// clocks that run a little fast (the usual tolerance of clock-synchronised protocols, such as
/// Kerberos') while still refusing an interaction dated tomorrow by mistake.
pub const CLOCK_SKEW_TOLERANCE_SECONDS: i64 = 300;

// ---- The embedded store's writer ----

/// Appends waiting for the SQLite writer thread; a full queue makes appenders wait
/// (back-pressure). Four full group commits: under load the writer always finds a full group
/// waiting, and the queue's memory stays bounded however many writers there are.
pub const WRITE_QUEUE_DEPTH_MAX: usize = 4096;

/// Most appends committed in one SQLite transaction (one fsync). Many concurrent writers (64 in
/// the benchmark) share each fsync, which is what makes group commit pay; the bound keeps one
/// commit, and so the latency of the appends waiting in it, short.
pub const GROUP_COMMIT_APPENDS_MAX: usize = 1024;

// ---- Policy ----

/// Largest threshold of the pipeline policy (the stalled and dormant thresholds), in days: about
/// 100 years, so larger values are typos.
pub const THRESHOLD_DAYS_MAX: u32 = 36_500;

// ---- Recording under contention ----

/// Most times `record` decides and appends one event when other writers keep moving the
/// customer's stream (and the caller named no expected revision). Each try re-reads the history
/// and decides again, after a random backoff; 20 tries let 16 writers on one customer all get
/// through (the measurement) while a runaway loop still ends.
pub const RECORD_CONFLICT_ATTEMPTS_MAX: u32 = 20;

/// Longest `record` keeps trying under contention, in milliseconds, however few tries it made:
/// a person or a job waiting on one event should get an answer within seconds.
pub const RECORD_CONFLICT_RETRY_MILLIS_MAX: u64 = 10_000;

// ---- Import ----

/// Most bytes of lines an import reads into one chunk (a chunk is also at most 8,192 lines).
/// Typical lines of about 500 bytes fill a chunk's lines long before its bytes; lines near the
/// line limit would otherwise make a chunk half a gigabyte. With the few chunks in flight, an
/// import's memory stays within tens of MiB whatever its input.
pub const IMPORT_CHUNK_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most bytes `import -` copies from standard input to its temporary file beside the store
/// before it takes the store's write lock (so that a slow producer never blocks other writers).
/// 16 GiB holds about 30 million events of typical size; the bound keeps a runaway producer
/// from filling the disk the store itself needs. Larger inputs: write a file and import it.
pub const IMPORT_SPOOL_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;

/// Bytes one append to KurrentDB may carry, counted as the server counts them (each event's
/// data, custom metadata and twice its type): KurrentDB refuses larger appends, by default over
/// 1 MiB up to v25.0 (`MaxAppendSize`; 256 MiB from v25.1). The KurrentDB backend splits a
/// larger append into consecutive appends on the stream's expected-revision chain. Override it
/// with `PIPELINE_LEDGER_KURRENT_APPEND_BYTES_MAX` to match a server configured otherwise.
pub const KURRENT_APPEND_BYTES_MAX: usize = 1024 * 1024;

/// Times an append refused by a follower ("not leader") is sent again: the client reconnects
/// to the leader it was told of, but does not retry the call. Bounded, so that a cluster that
/// keeps electing fails the append with a clear error instead of hanging it.
pub const KURRENT_NOT_LEADER_RETRIES_MAX: u32 = 3;

// ---- The HTTP server (`serve`) ----
// Each is answered with a problem document naming the limit, and the server stays up.

/// Bytes of the body of one event appended over HTTP: one interchange line's limit.
pub const HTTP_EVENT_BODY_BYTES_MAX: usize = LINE_BYTES_MAX;

/// Bytes of an NDJSON batch body. A batch is held in memory while it is validated and written
/// atomically, so this bounds a writer's memory; larger loads go through `import`.
pub const HTTP_BATCH_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Events in one NDJSON batch.
pub const HTTP_BATCH_EVENTS_MAX: usize = 10_000;

/// Seconds a request may take from its first byte to its response, body reading included: a
/// slow client that never finishes its body is answered 408 and its connection closed. (The
/// live feed is exempt: it is meant to stay open.)
pub const HTTP_REQUEST_SECONDS_MAX: u64 = 30;

/// Seconds a connection may take to send a request's headers, and may stay idle between
/// requests: a client that opens a connection and never finishes its headers is cut off.
pub const HTTP_HEADER_SECONDS_MAX: u64 = 10;

/// Seconds a TLS handshake may take.
pub const HTTP_TLS_HANDSHAKE_SECONDS_MAX: u64 = 10;

/// Connections open at once. One more is answered 503 and closed at once, so that the sockets
/// and memory of the server are bounded whatever the clients do.
pub const HTTP_CONNECTIONS_MAX: usize = 512;

/// Expensive queries (past-date replays, fresh funnels) running at once on one server. One
/// more is answered 503 with Retry-After: a reader token cannot take every core.
pub const HTTP_EXPENSIVE_QUERIES_MAX: usize = 2;

/// Seconds an expensive query may run; then its work stops (the replay checks the deadline
/// between pages and while folding), not only the response.
pub const HTTP_EXPENSIVE_QUERY_SECONDS_MAX: u64 = 20;

/// Events on one page of `GET /v1/log`.
pub const HTTP_LOG_PAGE_EVENTS_MAX: usize = 10_000;

/// Live-feed subscribers at once (each holds a catch-up subscription to the log).
pub const HTTP_FEED_SUBSCRIBERS_MAX: usize = 64;

/// Seconds between the server's reads of the tokens' log: a token revoked on one server is
/// refused by every server of the cluster within this bound (plus one read of the log).
pub const ACCESS_REFRESH_SECONDS: u64 = 2;

/// Seconds `serve` waits, after SIGTERM, for requests in flight (appends first of all) to
/// finish before it stops anyway.
pub const HTTP_SHUTDOWN_GRACE_SECONDS: u64 = 20;

//! A wire-level KurrentDB test double: an in-process gRPC server that speaks the subset of the
//! KurrentDB protocol the official client uses for the ledger (server features, append, reads of
//! a stream and of `$all`, `$all` subscriptions), following the server's documented semantics:
//!
//! - `ServerFeatures/GetSupportedMethods` answers a valid semver (the client's first call);
//! - `Streams.Append` is client-streaming: options first, then the events, each with `type` and
//!   `content-type` metadata; anything else is `InvalidArgument`;
//! - a wrong expected version is a *successful* reply carrying both current and expected
//!   revision;
//! - re-appending events by id where the expected revision says they would go (or, for `Any` and
//!   `StreamExists`, wherever the first id is in the stream) returns the original result and
//!   writes nothing; ids that match only partly are a wrong expected version. The real server
//!   keeps ids for `Any` in a bounded cache; the double remembers them all;
//! - reading a missing stream answers a `StreamNotFound` message, never an empty reply;
//! - `$all` is in append order with strictly increasing, non-dense positions (byte-offset-like,
//!   as a real log), commit position = prepare position; reading `$all` forwards from a position
//!   includes the event at it, backwards excludes it;
//! - a subscription sends a confirmation, the catch-up events, a checkpoint, caught-up, then live
//!   events; it never sends `StreamNotFound`, and it starts after the position it is given.
//!
//! The double can be stopped and restarted on the same port ([`Double::pull_plug`],
//! [`Double::restore`]): its data survive, its open subscriptions fail with `Unavailable` and its
//! connections close, as when a server restarts.
#![allow(dead_code)]

pub mod proto {
    pub mod event_store {
        pub mod client {
            include!(concat!(env!("OUT_DIR"), "/event_store.client.rs"));
            pub mod streams {
                include!(concat!(env!("OUT_DIR"), "/event_store.client.streams.rs"));
            }
            pub mod server_features {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/event_store.client.server_features.rs"
                ));
            }
        }
    }
}

use proto::event_store::client::server_features::server_features_server::{
    ServerFeatures, ServerFeaturesServer,
};
use proto::event_store::client::server_features::{SupportedMethod, SupportedMethods};
use proto::event_store::client::streams::streams_server::{Streams, StreamsServer};
use proto::event_store::client::streams::{
    AppendReq, AppendResp, ReadReq, ReadResp, append_req, append_resp, read_req, read_resp,
};
use proto::event_store::client::{Empty, StreamIdentifier, Uuid as ProtoUuid, uuid as proto_uuid};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

/// Where the first event lands in the double's log (a real log starts past its header).
const FIRST_POSITION: u64 = 1024;
/// Bytes a log record takes besides its data and metadata, for the positions.
const RECORD_OVERHEAD: u64 = 96;

#[derive(Clone)]
struct StoredEvent {
    id: Uuid,
    stream: Vec<u8>,
    revision: u64,
    position: u64,
    metadata: HashMap<String, String>,
    custom_metadata: Vec<u8>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Log {
    events: Vec<StoredEvent>,
    /// Indexes into `events`, per stream, in revision order.
    streams: HashMap<Vec<u8>, Vec<usize>>,
    next_position: u64,
}

struct Shared {
    log: Mutex<Log>,
    /// The number of events in the log, for live subscriptions.
    appended: watch::Sender<usize>,
    /// Bumped when the plug is pulled: open subscriptions end with `Unavailable`.
    plug: watch::Sender<u64>,
    /// Appends served, for tests that count what reached the server.
    appends: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
}

/// A running (or unplugged) double.
pub struct Double {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<Running>,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Double {
    /// Starts a double on a free loopback port.
    pub async fn start() -> Double {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (appended, _) = watch::channel(0);
        let (plug, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            log: Mutex::new(Log {
                next_position: FIRST_POSITION,
                ..Log::default()
            }),
            appended,
            plug,
            appends: Default::default(),
        });
        let mut double = Double {
            shared,
            addr,
            running: None,
        };
        double.serve(listener);
        double
    }

    /// The connection string of the double, for the client: one host, no TLS, and no discovery
    /// pause (with a single host the client otherwise waits 500 ms before its first call).
    pub fn url(&self) -> String {
        format!(
            "kurrentdb://{}?tls=false&discoveryInterval=0&maxDiscoverAttempts=3",
            self.addr
        )
    }

    /// How many appends the double has served.
    pub fn appends_served(&self) -> u64 {
        self.shared
            .appends
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let service = Service {
            shared: self.shared.clone(),
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(StreamsServer::new(service.clone()))
                .add_service(ServerFeaturesServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await;
        });
        self.running = Some(Running { shutdown, task });
    }

    /// Stops the server as a crash or restart would: open subscriptions fail, connections close,
    /// the port is free. The data stay.
    pub async fn pull_plug(&mut self) {
        self.shared.plug.send_modify(|g| *g += 1);
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let mut task = running.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Starts the server again on the same port, with the same data.
    pub async fn restore(&mut self) {
        assert!(self.running.is_none(), "the double is running");
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.shared.plug.send_modify(|g| *g += 1);
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            running.task.abort();
        }
    }
}

fn uuid_of(id: Option<ProtoUuid>) -> Result<Uuid, Status> {
    match id.and_then(|u| u.value) {
        Some(proto_uuid::Value::String(s)) => s
            .parse()
            .map_err(|_| Status::invalid_argument(format!("bad event id {s:?}"))),
        Some(proto_uuid::Value::Structured(s)) => {
            let hi = (s.most_significant_bits as u64 as u128) << 64;
            let lo = s.least_significant_bits as u64 as u128;
            Ok(Uuid::from_u128(hi | lo))
        }
        None => Err(Status::invalid_argument("an event needs an id")),
    }
}

fn uuid_to_proto(id: Uuid, as_string: bool) -> ProtoUuid {
    let value = if as_string {
        proto_uuid::Value::String(id.to_string())
    } else {
        let n = id.as_u128();
        proto_uuid::Value::Structured(proto_uuid::Structured {
            most_significant_bits: (n >> 64) as u64 as i64,
            least_significant_bits: n as u64 as i64,
        })
    };
    ProtoUuid { value: Some(value) }
}

fn now_timestamp() -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: now.as_secs() as i64,
        nanos: now.subsec_nanos() as i32,
    }
}

/// .NET ticks (100 ns) since the Unix epoch, as the server's `created` metadata.
fn now_ticks() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_nanos() / 100).to_string()
}

fn event_message(e: &StoredEvent, uuid_as_string: bool) -> ReadResp {
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: Some(read_resp::read_event::RecordedEvent {
                id: Some(uuid_to_proto(e.id, uuid_as_string)),
                stream_identifier: Some(StreamIdentifier {
                    stream_name: e.stream.clone(),
                }),
                stream_revision: e.revision,
                prepare_position: e.position,
                commit_position: e.position,
                metadata: e.metadata.clone(),
                custom_metadata: e.custom_metadata.clone(),
                data: e.data.clone(),
            }),
            link: None,
            position: Some(read_resp::read_event::Position::CommitPosition(e.position)),
        })),
    }
}

/// Which events a read or subscription lets through.
#[derive(Clone)]
enum Filter {
    None,
    StreamPrefixes(Vec<String>),
    TypePrefixes(Vec<String>),
}

impl Filter {
    fn from_options(option: Option<read_req::options::FilterOption>) -> Result<Filter, Status> {
        use read_req::options::FilterOption;
        use read_req::options::filter_options::Filter as F;
        match option {
            None | Some(FilterOption::NoFilter(_)) => Ok(Filter::None),
            Some(FilterOption::Filter(f)) => {
                let (expr, on_stream) = match f.filter {
                    Some(F::StreamIdentifier(e)) => (e, true),
                    Some(F::EventType(e)) => (e, false),
                    None => return Err(Status::invalid_argument("a filter needs an expression")),
                };
                if !expr.regex.is_empty() {
                    return Err(Status::unimplemented(
                        "the test double supports prefix filters only",
                    ));
                }
                Ok(if on_stream {
                    Filter::StreamPrefixes(expr.prefix)
                } else {
                    Filter::TypePrefixes(expr.prefix)
                })
            }
        }
    }

    fn allows(&self, e: &StoredEvent) -> bool {
        match self {
            Filter::None => true,
            Filter::StreamPrefixes(p) => p.iter().any(|p| e.stream.starts_with(p.as_bytes())),
            Filter::TypePrefixes(p) => {
                let t = e.metadata.get("type").map(String::as_str).unwrap_or("");
                p.iter().any(|p| t.starts_with(p.as_str()))
            }
        }
    }
}

type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

#[tonic::async_trait]
impl ServerFeatures for Service {
    async fn get_supported_methods(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<SupportedMethods>, Status> {
        let method = |name: &str| SupportedMethod {
            method_name: name.into(),
            service_name: "event_store.client.streams.streams".into(),
            features: vec![],
        };
        Ok(Response::new(SupportedMethods {
            methods: vec![method("read"), method("append")],
            event_store_server_version: "24.10.0".into(),
        }))
    }
}

enum Expected {
    Any,
    NoStream,
    StreamExists,
    Revision(u64),
}

#[tonic::async_trait]
impl Streams for Service {
    type ReadStream = ReadStream;

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an append starts with its options"))?;
        let Some(append_req::Content::Options(options)) = first.content else {
            return Err(Status::invalid_argument(
                "the first message of an append must be its options",
            ));
        };
        let stream = options
            .stream_identifier
            .ok_or_else(|| Status::invalid_argument("an append needs a stream"))?
            .stream_name;
        use append_req::options::ExpectedStreamRevision as R;
        let expected = match options.expected_stream_revision {
            Some(R::Revision(r)) => Expected::Revision(r),
            Some(R::NoStream(_)) => Expected::NoStream,
            Some(R::Any(_)) => Expected::Any,
            Some(R::StreamExists(_)) => Expected::StreamExists,
            None => {
                return Err(Status::invalid_argument(
                    "an append needs an expected revision",
                ));
            }
        };
        let mut proposed = Vec::new();
        while let Some(message) = input.message().await? {
            let Some(append_req::Content::ProposedMessage(m)) = message.content else {
                return Err(Status::invalid_argument(
                    "after the options, an append carries only events",
                ));
            };
            for key in ["type", "content-type"] {
                if !m.metadata.contains_key(key) {
                    return Err(Status::invalid_argument(format!(
                        "an event needs `{key}` metadata"
                    )));
                }
            }
            let id = uuid_of(m.id)?;
            proposed.push((id, m.metadata, m.custom_metadata, m.data));
        }
        self.shared
            .appends
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut log = self.shared.log.lock().expect("log lock");
        let indexes = log.streams.get(&stream).cloned().unwrap_or_default();
        let current = indexes.len().checked_sub(1).map(|r| r as u64);
        let wrong = |current: Option<u64>| {
            use append_resp::wrong_expected_version::{
                CurrentRevisionOption as C, ExpectedRevisionOption as X,
            };
            Response::new(AppendResp {
                result: Some(append_resp::Result::WrongExpectedVersion(
                    append_resp::WrongExpectedVersion {
                        current_revision_option: Some(match current {
                            Some(r) => C::CurrentRevision(r),
                            None => C::CurrentNoStream(Empty {}),
                        }),
                        expected_revision_option: Some(match expected {
                            Expected::Any => X::ExpectedAny(Empty {}),
                            Expected::NoStream => X::ExpectedNoStream(Empty {}),
                            Expected::StreamExists => X::ExpectedStreamExists(Empty {}),
                            Expected::Revision(r) => X::ExpectedRevision(r),
                        }),
                        ..Default::default()
                    },
                )),
            })
        };
        let success = |revision: Option<u64>, position: Option<u64>| {
            use append_resp::success::{CurrentRevisionOption as C, PositionOption as P};
            Response::new(AppendResp {
                result: Some(append_resp::Result::Success(append_resp::Success {
                    current_revision_option: Some(match revision {
                        Some(r) => C::CurrentRevision(r),
                        None => C::NoStream(Empty {}),
                    }),
                    position_option: Some(match position {
                        Some(p) => P::Position(append_resp::Position {
                            commit_position: p,
                            prepare_position: p,
                        }),
                        None => P::NoPosition(Empty {}),
                    }),
                })),
            })
        };
        if proposed.is_empty() {
            // An empty append checks the expected revision and writes nothing.
            return Ok(if expected_met(&expected, current) {
                success(current, None)
            } else {
                wrong(current)
            });
        }
        // Idempotency: where would the original of a retry be?
        let retry_at = match expected {
            Expected::Revision(r) => Some(r + 1),
            Expected::NoStream => Some(0),
            Expected::Any | Expected::StreamExists => indexes
                .iter()
                .position(|&i| log.events[i].id == proposed[0].0)
                .map(|r| r as u64),
        };
        if let Some(at) = retry_at
            && let Some(&first) = indexes.get(at as usize)
            && log.events[first].id == proposed[0].0
        {
            let all_match = proposed.iter().enumerate().all(|(k, (id, ..))| {
                indexes
                    .get(at as usize + k)
                    .is_some_and(|&i| log.events[i].id == *id)
            });
            if all_match {
                let last = &log.events[indexes[at as usize + proposed.len() - 1]];
                return Ok(success(Some(last.revision), Some(last.position)));
            }
            return Ok(wrong(current));
        }
        if !expected_met(&expected, current) {
            return Ok(wrong(current));
        }
        let mut revision = current.map_or(0, |r| r + 1);
        let mut last_position = 0;
        for (id, mut metadata, custom_metadata, data) in proposed {
            metadata.insert("created".into(), now_ticks());
            let position = log.next_position;
            log.next_position += RECORD_OVERHEAD + data.len() as u64 + custom_metadata.len() as u64;
            let index = log.events.len();
            log.events.push(StoredEvent {
                id,
                stream: stream.clone(),
                revision,
                position,
                metadata,
                custom_metadata,
                data,
            });
            log.streams.entry(stream.clone()).or_default().push(index);
            last_position = position;
            revision += 1;
        }
        let len = log.events.len();
        drop(log);
        self.shared.appended.send_replace(len);
        Ok(success(Some(revision - 1), Some(last_position)))
    }

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<ReadStream>, Status> {
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("a read needs options"))?;
        let uuid_as_string = matches!(
            options
                .uuid_option
                .as_ref()
                .and_then(|u| u.content.as_ref()),
            Some(read_req::options::uuid_option::Content::String(_))
        );
        let backwards = options.read_direction == 1;
        let filter = Filter::from_options(options.filter_option)?;
        use read_req::options::{CountOption, StreamOption};
        let count = match options.count_option {
            Some(CountOption::Count(n)) => Some(n),
            Some(CountOption::Subscription(_)) => None,
            None => {
                return Err(Status::invalid_argument(
                    "a read needs a count or subscription",
                ));
            }
        };
        let log = self.shared.log.lock().expect("log lock");
        let messages: Vec<ReadResp> = match (options.stream_option, count) {
            (Some(StreamOption::Stream(so)), Some(count)) => {
                let name = so
                    .stream_identifier
                    .ok_or_else(|| Status::invalid_argument("a read needs a stream"))?
                    .stream_name;
                match log.streams.get(&name) {
                    None => vec![ReadResp {
                        content: Some(read_resp::Content::StreamNotFound(
                            read_resp::StreamNotFound {
                                stream_identifier: Some(StreamIdentifier { stream_name: name }),
                            },
                        )),
                    }],
                    Some(indexes) => {
                        use read_req::options::stream_options::RevisionOption as RO;
                        let events = indexes.iter().map(|&i| &log.events[i]);
                        let selected: Vec<&StoredEvent> = match (so.revision_option, backwards) {
                            (Some(RO::Revision(r)), false) => {
                                events.filter(|e| e.revision >= r).collect()
                            }
                            (Some(RO::Revision(r)), true) => {
                                events.rev().filter(|e| e.revision <= r).collect()
                            }
                            (Some(RO::Start(_)), false) | (None, false) => events.collect(),
                            (Some(RO::End(_)), true) | (None, true) => events.rev().collect(),
                            (Some(RO::Start(_)), true) | (Some(RO::End(_)), false) => vec![],
                        };
                        selected
                            .into_iter()
                            .take(count as usize)
                            .map(|e| event_message(e, uuid_as_string))
                            .collect()
                    }
                }
            }
            (Some(StreamOption::All(ao)), Some(count)) => {
                use read_req::options::all_options::AllOption as AO;
                let events = log.events.iter().filter(|e| filter.allows(e));
                let selected: Vec<&StoredEvent> = match (ao.all_option, backwards) {
                    (Some(AO::Position(p)), false) => {
                        events.filter(|e| e.position >= p.commit_position).collect()
                    }
                    (Some(AO::Position(p)), true) => events
                        .rev()
                        .filter(|e| e.position < p.commit_position)
                        .collect(),
                    (Some(AO::Start(_)), false) | (None, false) => events.collect(),
                    (Some(AO::End(_)), true) | (None, true) => events.rev().collect(),
                    (Some(AO::Start(_)), true) | (Some(AO::End(_)), false) => vec![],
                };
                selected
                    .into_iter()
                    .take(count as usize)
                    .map(|e| event_message(e, uuid_as_string))
                    .collect()
            }
            (Some(StreamOption::All(ao)), None) => {
                use read_req::options::all_options::AllOption as AO;
                // Index of the first event after the start.
                let cursor = match ao.all_option {
                    Some(AO::Position(p)) => log
                        .events
                        .iter()
                        .position(|e| e.position > p.commit_position)
                        .unwrap_or(log.events.len()),
                    Some(AO::End(_)) => log.events.len(),
                    Some(AO::Start(_)) | None => 0,
                };
                drop(log);
                return Ok(Response::new(self.subscribe(
                    cursor,
                    filter,
                    uuid_as_string,
                )));
            }
            (Some(StreamOption::Stream(_)), None) => {
                return Err(Status::unimplemented(
                    "the test double has no stream subscriptions",
                ));
            }
            (None, _) => return Err(Status::invalid_argument("a read needs a stream or $all")),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

fn expected_met(expected: &Expected, current: Option<u64>) -> bool {
    match expected {
        Expected::Any => true,
        Expected::NoStream => current.is_none(),
        Expected::StreamExists => current.is_some(),
        Expected::Revision(r) => current == Some(*r),
    }
}

impl Service {
    /// A `$all` subscription from the event at index `cursor`: confirmation, catch-up,
    /// checkpoint, caught-up, live.
    fn subscribe(&self, mut cursor: usize, filter: Filter, uuid_as_string: bool) -> ReadStream {
        let (tx, rx) = mpsc::channel::<Result<ReadResp, Status>>(64);
        let shared = self.shared.clone();
        let mut appended = shared.appended.subscribe();
        let mut plug = shared.plug.subscribe();
        plug.borrow_and_update();
        tokio::spawn(async move {
            let confirmation = ReadResp {
                content: Some(read_resp::Content::Confirmation(
                    read_resp::SubscriptionConfirmation {
                        subscription_id: Uuid::new_v4().to_string(),
                    },
                )),
            };
            if tx.send(Ok(confirmation)).await.is_err() {
                return;
            }
            let mut caught_up = false;
            loop {
                appended.borrow_and_update();
                let (batch, last_position): (Vec<ReadResp>, Option<u64>) = {
                    let log = shared.log.lock().expect("log lock");
                    let batch = log.events[cursor..]
                        .iter()
                        .filter(|e| filter.allows(e))
                        .map(|e| event_message(e, uuid_as_string))
                        .collect();
                    cursor = log.events.len();
                    (batch, log.events.last().map(|e| e.position))
                };
                for message in batch {
                    if plug.has_changed().unwrap_or(true) {
                        let _ = tx
                            .send(Err(Status::unavailable("server is shutting down")))
                            .await;
                        return;
                    }
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                if !caught_up {
                    caught_up = true;
                    let position = last_position.map(|p| read_resp::Position {
                        commit_position: p,
                        prepare_position: p,
                    });
                    let checkpoint = ReadResp {
                        content: Some(read_resp::Content::Checkpoint(read_resp::Checkpoint {
                            commit_position: last_position.unwrap_or(0),
                            prepare_position: last_position.unwrap_or(0),
                            timestamp: Some(now_timestamp()),
                        })),
                    };
                    let caught = ReadResp {
                        content: Some(read_resp::Content::CaughtUp(read_resp::CaughtUp {
                            timestamp: Some(now_timestamp()),
                            stream_revision: None,
                            position,
                        })),
                    };
                    for message in [checkpoint, caught] {
                        if tx.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = appended.changed() => if changed.is_err() { return },
                    _ = plug.changed() => {
                        let _ = tx.send(Err(Status::unavailable("server is shutting down"))).await;
                        return;
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

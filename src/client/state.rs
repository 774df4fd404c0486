//! State shared by the client app and the handles of one [`Agent`](super::Agent): requests
//! ("exchanges"), connections, DNS jobs.
//!
//! Everything is single-threaded (`Rc`/`RefCell`), and **no borrow of [`Inner`] is held while
//! user code runs**: the app does its bookkeeping under the borrow, collects what user code must
//! be told as [`Delivery`] values, releases the borrow, then delivers. Handles (body writer,
//! response body) borrow only to change their exchange and mark work pending; a handle dropped
//! while the state is borrowed (inside the app) leaves a note in [`Shared::deferred`] instead.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::runtime::IdMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{Request, Response};
use net::{ConnId, DnsError, QueryId, RecordType};

use super::body::{BodyEnd, BodyError, BodyWriter, ResponseBody};
use super::conn::Conn;
use super::remote::Job;
use super::{Error, Family};
use crate::ctx::{Completer, Connect};
use crate::http;
use crate::http::client::RequestId;
use crate::tls;

/// A request's error handler: `(peer if known, error)`.
pub(crate) type ErrorHandler = Box<dyn FnOnce(Option<SocketAddr>, Error)>;
/// A request's response handler: `(peer, head, body)`.
pub(crate) type ResponseHandler = Box<dyn FnOnce(SocketAddr, Response<()>, ResponseBody)>;
/// A body chunk consumer ([`ResponseBody::schedule`]).
pub(crate) type OnceReader = Box<dyn super::body::BodyReader>;
/// A whole-body consumer.
pub(crate) type OnBody = Box<dyn FnOnce(Result<Vec<u8>, BodyError>)>;
/// A raw connection's handler ([`connect`](super::connect)): `(peer, connection)`.
pub(crate) type ConnectHandler = Box<dyn FnOnce(SocketAddr, crate::tunnel::Upgraded)>;
/// Waits for room in a request body.
pub(crate) type OnWritable = Box<dyn FnOnce(BodyWriter)>;

/// Settings of a client [`Agent`](super::Agent): connection pool, timeouts, buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Longest wait for a TCP connection to be established.
    pub connect_timeout: Duration,
    /// Connections open at once per endpoint (address, TLS name and config, HTTP config);
    /// further requests wait for one to be free. An HTTP/2 connection carries requests up to
    /// the server's concurrent-stream limit before another is opened. Connections that
    /// switched protocols (tunnels) do not count.
    pub max_per_endpoint: usize,
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// Idle keep-alive connections kept in all: past it, the one idle the longest is closed.
    /// It bounds endpoints that are many and short-lived, such as one per client connection
    /// when each sends its own [`preamble`](super::preamble) (a PROXY protocol header).
    pub max_idle: usize,
    /// An idle connection is closed after this long.
    pub idle_timeout: Duration,
    /// Request body bytes buffered per request before [`BodyWriter::write`] takes no more.
    pub body_buffer: usize,
    /// Request body bytes kept to resend a request: an idempotent one whose pooled connection
    /// turned out to be stale, or any one an HTTP/2 server did not process. A longer body is
    /// not retried.
    pub replay_limit: usize,
    /// Most response body bytes handed to a chunk reader at once.
    pub read_chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(10),
            max_per_endpoint: 8,
            max_idle_per_endpoint: 4,
            max_idle: 256,
            idle_timeout: Duration::from_secs(30),
            body_buffer: 64 * 1024,
            replay_limit: 64 * 1024,
            read_chunk: 16 * 1024,
        }
    }
}

/// Counters of a client agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests accepted by [`request`](super::request).
    pub requests: u64,
    /// TCP connections started.
    pub connections: u64,
    /// Connections that settled on HTTP/2 (ALPN `h2`, or prior knowledge).
    pub h2_connections: u64,
    /// Requests sent on a connection that had served an earlier one or (HTTP/2) was carrying
    /// another at the time.
    pub reused: u64,
    /// Requests sent again after their pooled connection turned out to be stale, or an
    /// HTTP/2 server did not process them.
    pub retries: u64,
    /// Requests that ended with an error.
    pub errors: u64,
    /// DNS queries sent.
    pub dns_queries: u64,
}

/// What identifies interchangeable connections.
#[derive(Clone, Debug)]
pub(crate) struct PoolKey {
    pub addr: SocketAddr,
    /// Server name and TLS config, for TLS.
    pub tls: Option<(Option<String>, tls::ClientConfig)>,
    pub config: Arc<http::client::Config>,
    /// Bytes written first on the connection (a PROXY protocol header): only requests with
    /// the same preamble share a connection.
    pub preamble: Option<Arc<[u8]>>,
}

impl PoolKey {
    /// Whether connections of this key may speak HTTP/2: TLS offering `h2` by ALPN, or plain
    /// text with prior knowledge.
    pub(crate) fn may_be_h2(&self) -> bool {
        match &self.tls {
            Some((_, config)) => config
                .rustls()
                .alpn_protocols
                .iter()
                .any(|p| p == tls::ALPN_H2),
            None => self.config.http2_prior_knowledge,
        }
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        let tls = match (&self.tls, &other.tls) {
            (None, None) => true,
            (Some((a, ca)), Some((b, cb))) => a == b && Arc::ptr_eq(ca.rustls(), cb.rustls()),
            _ => false,
        };
        // The same `Arc` (the usual case: one config per upstream) spares the field-by-field
        // comparison, which every pool lookup makes once per connection.
        self.addr == other.addr
            && tls
            && (Arc::ptr_eq(&self.config, &other.config) || *self.config == *other.config)
            && self.preamble == other.preamble
    }
}

/// How the request body is given.
#[derive(Clone, Debug)]
pub(crate) enum BodyKind {
    Empty,
    /// All of it, up front (the friendly client).
    Bytes(Rc<[u8]>),
    /// Exactly this many bytes through the writer.
    Length(u64),
    /// Through the writer, chunked.
    Chunked,
}

/// Where a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The ctx is being resolved (maybe waiting for DNS).
    Resolving,
    /// The endpoint is known; waiting for a connection.
    Waiting,
    /// A connection is being made for it.
    Connecting(ConnId),
    /// Sent on a connection.
    Sent(ConnId, RequestId),
    /// Over (answered in full, failed, or cancelled); removed once its handles are quiet.
    Done,
}

/// A pending response body read.
pub(crate) enum Reader {
    Once(OnceReader),
    ToEnd {
        limit: usize,
        buf: Vec<u8>,
        done: OnBody,
    },
    /// The response body handle was dropped: read and drop the rest.
    Discard,
}

/// One request, from `request` to the end of its response.
pub(crate) struct Exchange {
    pub phase: Phase,
    pub connect: Option<Connect<super::Agent, tls::ClientConfig>>,
    /// The endpoint chosen by the last `Connect::poll`.
    pub key: Option<PoolKey>,
    pub head: Request<()>,
    /// `Host` to add when the request has neither one nor an authority.
    pub host_hint: Option<String>,
    pub body: BodyKind,
    pub config: Arc<http::client::Config>,
    /// The ctx's [`preamble`](super::preamble), for the pool key.
    pub preamble: Option<Arc<[u8]>>,
    /// Body bytes written by the user, not yet taken by the codec.
    pub out: Vec<u8>,
    /// Body bytes accepted from the user so far.
    pub written: u64,
    /// The user closed the body.
    pub closed: bool,
    /// `finish_body` was called on the codec.
    pub finished: bool,
    /// Every body byte so far, while an idempotent request may still be retried.
    pub replay: Option<Vec<u8>>,
    pub on_writable: Option<OnWritable>,
    /// The last write was short: call `on_writable` when room frees up.
    pub blocked: bool,
    pub error_handler: Option<ErrorHandler>,
    pub response_handler: Option<ResponseHandler>,
    pub reader: Option<Reader>,
    /// A `BodyReadable` arrived (or a reader was installed) since the last read.
    pub try_read: bool,
    pub peer: Option<SocketAddr>,
    /// The response head arrived.
    pub answered: bool,
    pub retried: bool,
    /// Times an HTTP/2 server said it did not process the request (GOAWAY, REFUSED_STREAM);
    /// each was retried, up to [`MAX_REFUSED`].
    pub refused: u8,
    /// Must go on a new connection (a retry).
    pub fresh_only: bool,
    /// The error the request will report if no endpoint works: DNS, or the last attempt's.
    pub cause: Option<Error>,
    /// A raw connection ([`connect`](super::connect)), not a request: its handler, until the
    /// connection is established.
    pub on_connect: Option<ConnectHandler>,
    /// The ctx's [`address_filter`](super::address_filter).
    pub filter: Option<super::AddressFilter>,
    /// The ctx's [`connect_timeout`](super::connect_timeout).
    pub connect_timeout: Option<Duration>,
}

impl Exchange {
    /// Whether this is a raw connection ([`connect`](super::connect)) waiting to be made.
    pub(crate) fn is_raw(&self) -> bool {
        self.on_connect.is_some()
    }

    pub(crate) fn is_idempotent(&self) -> bool {
        use ::http::Method;
        matches!(
            *self.head.method(),
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        )
    }
}

/// Retries of a request that HTTP/2 servers keep refusing: a server that sends GOAWAY every
/// few requests refuses some of the requests in flight each time, so a request may be refused
/// more than once; one that refuses everything is not retried forever.
pub(crate) const MAX_REFUSED: u8 = 8;

/// What user code must be told, collected under the borrow and delivered after it.
pub(crate) enum Delivery {
    Response {
        handler: ResponseHandler,
        peer: SocketAddr,
        head: Response<()>,
        body: ResponseBody,
    },
    Data {
        reader: OnceReader,
        data: Vec<u8>,
    },
    Eof {
        reader: OnceReader,
        end: BodyEnd,
    },
    Body {
        done: OnBody,
        result: Result<Vec<u8>, BodyError>,
    },
    Error {
        handler: ErrorHandler,
        peer: Option<SocketAddr>,
        error: Error,
    },
    Writable {
        f: OnWritable,
        id: u64,
    },
    /// A raw connection is established.
    Connected {
        handler: ConnectHandler,
        peer: SocketAddr,
        conn: crate::tunnel::Upgraded,
    },
    /// Something to drop outside the borrow (it may hold handles).
    Drop(Box<dyn std::any::Any>),
}

/// A name to resolve for the resolver fold.
pub(crate) struct DnsJob {
    pub name: String,
    pub family: Family,
    pub completer: Option<Completer<std::net::IpAddr>>,
    /// The request whose ctx asked, to report the DNS error as its cause.
    pub owner: Option<u64>,
    pub started: bool,
    pub running: Vec<QueryId>,
    pub results: Vec<(RecordType, Result<Vec<std::net::IpAddr>, DnsError>)>,
}

/// Handle drops that found the state borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deferred {
    /// A body writer was dropped unclosed.
    Writer(u64),
    /// The last response body handle was dropped.
    Body(u64),
    /// A body was closed short of its declared length.
    Short(u64),
    /// The response was abandoned ([`ResponseBody::cancel`]).
    Cancel(u64),
    /// A tunnel's other side moved bytes: pump this connection.
    Pump(ConnId),
}

/// The exchanges that may be in a state the app looks for, so that it looks at those alone
/// rather than at every exchange. An id is added where its exchange enters the state
/// (`exchange::choose`, `retry`, `attempt_failed`, a new request, a pending ctx); the pass
/// that looks takes the list (an id may be there twice, or be stale: it checks) and adds back
/// what it left in the state.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    /// Exchanges that may be [`Phase::Resolving`] with their ctx to poll.
    pub resolving: Vec<u64>,
    /// Exchanges that may be [`Phase::Waiting`] for a connection.
    pub waiting: Vec<u64>,
    /// Some exchange not on a connection may hold an `on_writable` not delivered yet.
    pub writable: bool,
}

/// The mutable state.
#[derive(Default)]
pub(crate) struct Inner {
    /// Boxed: an exchange is large, and the map moves its values when it grows. Keyed by the
    /// id counter (`next`): looked up several times per request, by one multiply; passes that
    /// must go in id order sort the ids.
    pub exchanges: IdMap<u64, Box<Exchange>>,
    pub next: u64,
    /// Boxed: a pump takes its connection out of the map and puts it back, and a `Conn` is
    /// large enough that the two moves showed up (memcpy) in a proxied request's profile.
    pub conns: IdMap<ConnId, Box<Conn>>,
    /// Connections with something to do in the next pump.
    pub dirty: Vec<ConnId>,
    /// Connections whose only news is a reader scheduled on one of their exchanges: pumped for
    /// that read alone, unless they are dirty too (see `ClientApp::read_only`).
    pub reads: Vec<ConnId>,
    pub dns: BTreeMap<u64, DnsJob>,
    pub next_job: u64,
    pub queries: IdMap<QueryId, (u64, RecordType)>,
    pub stats: Stats,
    pub hints: Hints,
    /// The app is gone: nothing will make progress.
    pub stopped: bool,
}

impl Inner {
    /// The connection exchange `id` was sent on, if it is on one.
    fn conn_of(&self, id: u64) -> Option<ConnId> {
        match self.exchanges.get(&id)?.phase {
            Phase::Sent(c, _) => Some(c),
            _ => None,
        }
    }

    /// Marks the connection of exchange `id` (if it is on one) for the next pump.
    pub(crate) fn touch(&mut self, id: u64) {
        self.dirty.extend(self.conn_of(id));
    }

    /// Marks the connection of exchange `id` (if it is on one) for a pump that only hands the
    /// exchange's new reader what the codec holds.
    pub(crate) fn touch_read(&mut self, id: u64) {
        self.reads.extend(self.conn_of(id));
    }
}

/// A "work waiting" flag that wakes the client app when set (once the app is on its loop).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    flag: Cell<bool>,
    waker: std::cell::OnceCell<crate::runtime::LocalWaker>,
}

impl Pending {
    pub(crate) fn get(&self) -> bool {
        self.flag.get()
    }

    /// Sets the flag; `true` also wakes the app.
    pub(crate) fn set(&self, pending: bool) {
        self.flag.set(pending);
        if pending {
            if let Some(w) = self.waker.get() {
                w.wake();
            }
        }
    }

    /// The app's waker, given once when the app is added to its loop.
    pub(crate) fn attach(&self, waker: crate::runtime::LocalWaker) {
        let _ = self.waker.set(waker);
    }

    /// The app's waker, when attached.
    pub(crate) fn waker(&self) -> Option<&crate::runtime::LocalWaker> {
        self.waker.get()
    }
}

/// Chunk buffers kept for reuse: a chunk is copied out of the codec to be delivered after the
/// state's borrow ends, and most passes deliver a few.
pub(crate) const SPARE_CHUNKS: usize = 4;

impl Shared {
    /// A buffer holding `data`, reused when one was handed back.
    pub(crate) fn chunk(&self, data: &[u8]) -> Vec<u8> {
        match self.spare_chunks.borrow_mut().pop() {
            Some(mut v) => {
                v.extend_from_slice(data);
                v
            }
            None => data.to_vec(),
        }
    }

    /// Keeps a delivered chunk's buffer for [`chunk`](Self::chunk).
    pub(crate) fn hand_back(&self, mut v: Vec<u8>) {
        let mut spare = self.spare_chunks.borrow_mut();
        if spare.len() < SPARE_CHUNKS {
            v.clear();
            spare.push(v);
        }
    }
}

/// Everything behind a [`Agent`](super::Agent) handle.
pub(crate) struct Shared {
    pub inner: RefCell<Inner>,
    /// Work was queued (from outside the app's callbacks too): the app runs without sleeping.
    pub pending: Pending,
    /// The exchange whose ctx is being polled (DNS jobs are tagged with it).
    pub polling: Cell<Option<u64>>,
    pub deferred: RefCell<Vec<Deferred>>,
    /// Buffers of body chunks already delivered, for the next ones (at most [`SPARE_CHUNKS`]).
    pub spare_chunks: RefCell<Vec<Vec<u8>>>,
    pub options: Options,
    /// Wakes the loop (for [`Remote`](super::Remote) jobs).
    pub waker: crate::runtime::LoopWaker,
    /// Jobs from other threads, once a [`Remote`](super::Remote) was made.
    pub jobs: RefCell<Option<(Sender<Job>, Receiver<Job>)>>,
    /// The app's next deadline (the earliest of its connections'), once computed; `None`
    /// once anything may have moved it: the app's work, or a handle that ended an exchange
    /// on its own (`ResponseBody::take_complete`). The loop asks for it several times a pass,
    /// and computing it walks every connection.
    pub deadline: Cell<Option<Option<Instant>>>,
}

//! [`Agent`]: the client on a runtime's network stack (the seed's `Agent.t` as the client sees
//! it), and [`request`], the seed's `request ~ctx`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use ::http::{Method, Request, Response};

use super::app::ClientApp;
use super::body::{BodyWriter, ResponseBody};
use super::exchange;
use super::remote::Remote;
use super::state::{BodyKind, DnsJob, Exchange, Inner, Options, Pending, Phase, Shared, Stats};
use super::{keys, Error, Family};
use crate::ctx::{Completer, Connect, Ctx, Next, Resolution};
use crate::http;
use crate::http::client::UsageError;
use crate::runtime::Runtime;

/// The client side of a runtime: a handle on the client app that owns its connections, pool and
/// DNS queries. Cheap to clone; single-threaded (it lives on the loop's thread). Put it in a ctx
/// under [`agent`](super::agent) (or start from [`ctx`](super::ctx)).
#[derive(Clone)]
pub struct Agent(pub(crate) Rc<Shared>);

impl PartialEq for Agent {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Agent {}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.inner.try_borrow() {
            Ok(inner) => f
                .debug_struct("Agent")
                .field("requests", &inner.exchanges.len())
                .field("connections", &inner.conns.len())
                .finish(),
            Err(_) => f.write_str("Agent(..)"),
        }
    }
}

impl Agent {
    /// Adds the client app to `rt`, with `options`.
    pub fn attach(rt: &mut Runtime, options: Options) -> Agent {
        let stack = Agent(Rc::new(Shared {
            inner: RefCell::new(Inner::default()),
            pending: Pending::default(),
            polling: Cell::new(None),
            deferred: RefCell::new(Vec::new()),
            spare_chunks: RefCell::new(Vec::new()),
            options,
            waker: rt.waker(),
            jobs: RefCell::new(None),
            deadline: Cell::new(None),
        }));
        let app = ClientApp::new(stack.clone());
        rt.add(app, |app, cx| {
            app.attach(cx.local_waker());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|e| match e {});
        stack
    }

    /// A handle for other threads: blocking requests run on this stack's loop (which must keep
    /// turning).
    pub fn remote(&self) -> Remote {
        let mut jobs = self.0.jobs.borrow_mut();
        let (tx, _) = jobs.get_or_insert_with(std::sync::mpsc::channel);
        Remote::new(tx.clone(), self.0.waker.clone())
    }

    /// Runs the jobs other threads sent (on the loop's thread, state not borrowed).
    pub(crate) fn run_jobs(&self) {
        let jobs: Vec<_> = match &*self.0.jobs.borrow() {
            Some((_, rx)) => rx.try_iter().collect(),
            None => return,
        };
        for job in jobs {
            job(self);
        }
    }

    /// The options the stack was attached with.
    pub fn options(&self) -> &Options {
        &self.0.options
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.0.inner.borrow().stats
    }

    /// Connections open now (busy, idle or being made).
    pub fn connections(&self) -> usize {
        self.0.inner.borrow().conns.len()
    }

    /// Idle keep-alive connections in the pool now.
    pub fn idle_connections(&self) -> usize {
        let inner = self.0.inner.borrow();
        inner
            .conns
            .values()
            .filter(|c| c.idle_since.is_some())
            .count()
    }

    /// Requests not yet over.
    pub fn in_flight(&self) -> usize {
        let inner = self.0.inner.borrow();
        inner
            .exchanges
            .values()
            .filter(|x| x.phase != Phase::Done)
            .count()
    }

    /// Queues a DNS lookup for the resolver fold; `completer` gets the address.
    pub(crate) fn resolve(
        &self,
        name: &str,
        family: Family,
        completer: Completer<std::net::IpAddr>,
    ) {
        let mut inner = self.0.inner.borrow_mut();
        let job = inner.next_job;
        inner.next_job += 1;
        inner.dns.insert(
            job,
            DnsJob {
                name: name.to_owned(),
                family,
                completer: Some(completer),
                owner: self.0.polling.get(),
                started: false,
                running: Vec::new(),
                results: Vec::new(),
            },
        );
        self.0.pending.set(true);
    }

    /// Polls the ctx of exchange `id` (without holding the state borrowed: folds may call back
    /// into the stack) and records what it yields. Returns the error when it failed.
    pub(crate) fn poll_connect(&self, id: u64) -> Option<Error> {
        let taken = {
            let mut inner = self.0.inner.borrow_mut();
            let x = inner.exchanges.get_mut(&id)?;
            if x.phase != Phase::Resolving {
                return None;
            }
            x.connect.take()
        };
        let mut connect = taken?;
        let filter = self.0.inner.borrow().exchanges.get(&id)?.filter.clone();
        self.0.polling.set(Some(id));
        let mut refused = None;
        let next = loop {
            let next = crate::ctx::polling_with(self.0.pending.waker(), || connect.poll());
            match next {
                // Not dialled: the next endpoint, or this refusal as the request's cause.
                Next::Connect(edn) if filter.as_ref().is_some_and(|f| !f.allows(edn.addr())) => {
                    let peer = edn.addr();
                    log::debug!("client: request {id}: {peer} refused by the address filter");
                    connect.attempt_failed(format!("{peer} refused by the address filter"));
                    refused = Some(Error::NotAllowed { peer });
                }
                next => break next,
            }
        };
        self.0.polling.set(None);
        let mut guard = self.0.inner.borrow_mut();
        let inner = &mut *guard;
        let x = inner.exchanges.get_mut(&id)?;
        x.connect = Some(connect);
        if refused.is_some() {
            x.cause = refused;
        }
        match next {
            Next::Pending => {
                // Still resolving: the app polls it again.
                inner.hints.resolving.push(id);
                None
            }
            Next::Connect(edn) => {
                if edn_stack(&edn) != self {
                    return Some(Error::NoAgent);
                }
                exchange::choose(x, id, &mut inner.hints, edn);
                None
            }
            Next::Failed(report) => Some(x.cause.take().unwrap_or(Error::Ctx(report))),
        }
    }
}

fn edn_stack(edn: &crate::ctx::Endpoint<Agent, crate::tls::ClientConfig>) -> &Agent {
    match edn {
        crate::ctx::Endpoint::Tls(e) => &e.stack,
        crate::ctx::Endpoint::Tcp(e) => &e.stack,
    }
}

/// Sends `req` to the server `ctx` describes (the seed's `request ?config ~ctx ~error_handler
/// ~response_handler req`) and returns the request body.
///
/// The ctx is resolved lazily on the client's loop: [`tls_edn`](super::tls_edn) before
/// [`tcp_edn`](super::tcp_edn), a DNS query only if an endpoint needs the address; then a TCP
/// connection (reused from the pool when one to the same endpoint is idle), then TLS with SNI and
/// certificate verification against the endpoint's domain name. The body framing comes from the
/// head: `Content-Length: n` (write exactly `n` bytes), `Transfer-Encoding: chunked`, or neither
/// (no body). Close the writer to end the request.
///
/// `config` is an [`http::client::Config`] or an `Arc` of one: connections are pooled per
/// endpoint and configuration, and requests that share one `Arc` are matched by pointer.
///
/// `response_handler` gets the peer, the head and the body as it streams in; `error_handler`
/// gets any failure after this call returned, once, with the peer when known. Both run on the
/// loop. A request that fails on a pooled connection before any response byte arrived is sent
/// once more on a new connection when it is idempotent and its body is small enough to replay
/// ([`Options::replay_limit`]); one an HTTP/2 server did not process (GOAWAY below its stream,
/// `REFUSED_STREAM`) is resent whatever its method, up to 8 times, under the same bound.
///
/// # Errors
/// Failures known at once, reported here and not to `error_handler`: [`Error::Usage`] for a
/// request that cannot be sent (CONNECT, conflicting framing headers), [`Error::NoAgent`] when
/// the ctx names no client agent, [`Error::Ctx`] when it describes no endpoint at all.
pub fn request<E, R>(
    ctx: &Ctx,
    config: impl Into<Arc<http::client::Config>>,
    error_handler: E,
    response_handler: R,
    req: Request<()>,
) -> Result<BodyWriter, Error>
where
    E: FnOnce(Option<SocketAddr>, Error) + 'static,
    R: FnOnce(SocketAddr, Response<()>, ResponseBody) + 'static,
{
    let (req, body) = framing(req)?;
    start(
        ctx,
        config.into(),
        req,
        body,
        Box::new(error_handler),
        Box::new(response_handler),
    )
}

/// Opens a raw connection to the server `ctx` describes, [`request`] without HTTP: the ctx is
/// resolved the same way (DNS through the stack, [`address_filter`](super::address_filter)
/// applied), a new TCP connection made (and TLS when the ctx yields a TLS endpoint, whose
/// plaintext the connection then carries), and once it is established `on_connected` gets
/// the peer and the connection as a [`tunnel::Upgraded`](crate::tunnel::Upgraded), for
/// [`tunnel::join`](crate::tunnel::join) (dropping it closes the connection). Bytes the
/// server sends before the join wait in the connection's socket and pipe.
///
/// The connection is never pooled, never reused, and does not count against
/// [`Options::max_per_endpoint`]; it is bounded in time by [`Options::connect_timeout`] (and,
/// for TLS, the TLS configuration's handshake timeout). `error_handler` gets any failure
/// after this call returned, once: [`Error::Dns`], [`Error::Connect`] (refused, timed out),
/// [`Error::NotAllowed`], [`Error::Tls`], [`Error::Stopped`].
///
/// # Errors
/// Failures known at once: [`Error::NoAgent`], [`Error::Ctx`] (no endpoint at all),
/// [`Error::Stopped`].
pub fn connect<E, C>(ctx: &Ctx, error_handler: E, on_connected: C) -> Result<(), Error>
where
    E: FnOnce(Option<SocketAddr>, Error) + 'static,
    C: FnOnce(SocketAddr, crate::tunnel::Upgraded) + 'static,
{
    let started = start_with(
        ctx,
        Arc::new(http::client::Config::default()),
        Request::new(()),
        BodyKind::Empty,
        Box::new(error_handler),
        Handler::Connect(Box::new(on_connected)),
    );
    started.map(|mut w| w.done = true)
}

/// What an exchange ends in: a response, or (raw) an established connection.
enum Handler {
    Response(super::state::ResponseHandler),
    Connect(super::state::ConnectHandler),
}

/// The body framing the head asks for, with the framing headers removed (the codec writes them).
pub(crate) fn framing(mut req: Request<()>) -> Result<(Request<()>, BodyKind), Error> {
    if req.method() == Method::CONNECT {
        return Err(Error::Usage(UsageError::UnsupportedMethod));
    }
    let headers = req.headers_mut();
    let (mut coded, mut chunked) = (false, false);
    for v in crate::http::head::all(headers, &TRANSFER_ENCODING) {
        coded = true;
        chunked |= v.as_bytes().eq_ignore_ascii_case(b"chunked");
    }
    let length = crate::http::head::first(headers, &CONTENT_LENGTH).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    });
    if coded && !chunked {
        return Err(Error::Framing(
            "only the chunked transfer coding is supported",
        ));
    }
    // (Removed only when there: a removal hashes the name even for nothing.)
    if coded {
        headers.remove(TRANSFER_ENCODING);
    }
    if length.is_some() {
        headers.remove(CONTENT_LENGTH);
    }
    let body = match (length, chunked) {
        (Some(_), true) => {
            return Err(Error::Framing("both Content-Length and Transfer-Encoding"));
        }
        (Some(None), false) => return Err(Error::Framing("Content-Length is not a number")),
        (Some(Some(0)), false) | (None, false) => BodyKind::Empty,
        (Some(Some(n)), false) => BodyKind::Length(n),
        (None, true) => BodyKind::Chunked,
    };
    Ok((req, body))
}

/// Registers an exchange and polls its ctx once.
pub(crate) fn start(
    ctx: &Ctx,
    config: Arc<http::client::Config>,
    head: Request<()>,
    body: BodyKind,
    error_handler: super::state::ErrorHandler,
    response_handler: super::state::ResponseHandler,
) -> Result<BodyWriter, Error> {
    let handler = Handler::Response(response_handler);
    start_with(ctx, config, head, body, error_handler, handler)
}

/// [`start`] for a request or a raw connection.
fn start_with(
    ctx: &Ctx,
    config: Arc<http::client::Config>,
    head: Request<()>,
    body: BodyKind,
    error_handler: super::state::ErrorHandler,
    handler: Handler,
) -> Result<BodyWriter, Error> {
    let stack = find_stack(ctx)?;
    let (response_handler, on_connect) = match handler {
        Handler::Response(r) => (Some(r), None),
        Handler::Connect(c) => (None, Some(c)),
    };
    let host_hint =
        if crate::http::head::has(head.headers(), &HOST) || head.uri().authority().is_some() {
            None
        } else {
            ctx.get(&keys::domain_name())
        };
    let connect = Connect::new(ctx, &keys::tls_edn(), &keys::tcp_edn());
    let preamble = ctx.get(&keys::preamble()).filter(|p| !p.is_empty());
    let id = {
        let mut inner = stack.0.inner.borrow_mut();
        if inner.stopped {
            return Err(Error::Stopped);
        }
        let id = inner.next;
        inner.next += 1;
        if on_connect.is_none() {
            inner.stats.requests += 1;
        }
        let mut x = Exchange {
            phase: Phase::Resolving,
            connect: Some(connect),
            key: None,
            replay: None,
            head,
            host_hint,
            body,
            config,
            preamble,
            out: Vec::new(),
            written: 0,
            closed: false,
            finished: false,
            on_writable: None,
            blocked: false,
            error_handler: Some(error_handler),
            response_handler,
            reader: None,
            try_read: false,
            peer: None,
            answered: false,
            retried: false,
            refused: 0,
            fresh_only: false,
            cause: None,
            on_connect,
            filter: ctx.get(&keys::address_filter()),
            connect_timeout: ctx.get(&keys::connect_timeout()),
        };
        // Kept for any method: an HTTP/2 server may refuse a POST too (GOAWAY, REFUSED_STREAM),
        // and resending it then is safe.
        x.replay = Some(Vec::new());
        if matches!(x.body, BodyKind::Empty | BodyKind::Bytes(_)) {
            x.closed = true;
        }
        inner.exchanges.insert(id, Box::new(x));
        inner.hints.resolving.push(id);
        id
    };
    stack.0.pending.set(true);
    let writer = BodyWriter {
        stack: stack.clone(),
        id,
        done: false,
    };
    if let Some(e) = stack.poll_connect(id) {
        let x = stack.0.inner.borrow_mut().exchanges.remove(&id);
        let mut writer = writer;
        writer.done = true;
        drop(x);
        return Err(e);
    }
    Ok(writer)
}

/// The agent a request goes through: the ctx's `agent`, else that of an endpoint it yields at
/// once.
fn find_stack(ctx: &Ctx) -> Result<Agent, Error> {
    // A value (what `client::ctx` adds) needs no resolution.
    if let Some(s) = ctx.get(&keys::agent()) {
        return Ok(s);
    }
    if let Resolution::Ready(s) = ctx.resolve(&keys::agent()).poll() {
        return Ok(s);
    }
    let mut connect = Connect::new(ctx, &keys::tls_edn(), &keys::tcp_edn());
    match connect.poll() {
        Next::Connect(edn) => Ok(edn_stack(&edn).clone()),
        Next::Failed(report) => Err(Error::Ctx(report)),
        // The endpoint needs asynchronous steps: the agent is the one client agent the ctx
        // holds, whatever the key (the seed's examples make their own `stack` key).
        Next::Pending => {
            let mut stacks: Vec<Agent> = Vec::new();
            for s in ctx.values_of::<Agent>() {
                if !stacks.contains(&s) {
                    stacks.push(s);
                }
            }
            match stacks.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(Error::NoAgent),
            }
        }
    }
}

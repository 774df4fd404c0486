//! The HTTP service layer: the Rust counterpart of the seed's `Paf_mirage` service API.
//!
//! ```text
//! let* service = init ~port:80 stack in                      let service = service::init(&mut rt, 80)?;
//! let stop = Lwt_switch.create () in                         let stop = Switch::new();
//! let `Initialized server =                                  let Initialized(server) =
//!   http ~stop ~error_handler request_handler service          service::http(service, config, Some(stop.clone()),
//!                                                                            error_handler, request_handler);
//! Lwt.both (sleep 10. >>= fun () -> turn_off stop) server    /* a thread: sleep 10 s, stop.turn_off() */
//!                                                            rt.run_until(|_| server.is_finished())?;
//! ```
//!
//! Contract:
//! - [`init`] opens the listener (IPv4 and IPv6: one smoltcp listener covers both; the kernel
//!   twin binds `::`), so a busy port fails there. The loop cannot run before [`http()`] since the
//!   [`Service`] borrows the runtime; when `http` returns, connections are being accepted.
//! - [`http()`] returns [`Initialized`] holding a [`Handle`] that completes when the service loop
//!   ends: after its [`Switch`] is turned off and every connection drained, or with a
//!   [`ServiceError`] when the loop goes away. Without a switch the service runs until the
//!   runtime is dropped.
//! - Draining needs the peers: in-flight exchanges finish, then each connection closes once its
//!   peer has acknowledged the last byte, or is reset at `drain_timeout` (plus a second). A peer
//!   whose loop no longer turns (a client runtime on the same thread that the caller stopped
//!   driving, on the in-memory wire) acknowledges nothing, so the handle completes only at that
//!   deadline: keep the peer's loop turning while stopping (`paf::testing::Pair::drive` turns
//!   both), or give the service a short `drain_timeout`.
//! - The request handler gets `(peer, Reqd)` for each request head, in order per connection, and
//!   answers through the [`Reqd`] at once or later; the error handler gets each peer fault with
//!   an [`ErrorResponse`] (dropping it sends the codec's suggested status).
//! - [`take_over`] hands a running service's listening socket to a new service (a reload): the
//!   socket is never closed, so no connection is refused; new connections go to the new
//!   service, and the old one serves the connections it has, on its own handlers and config,
//!   and completes its handle when the last one has closed (or drains when its switch turns
//!   off). The new service's counters ([`Stats`]) go on from the old one's, and it shares the
//!   old one's per-client table ([`ClientTable`]: connection counts and rate buckets).
//! - A panic in a handler or a body/writable callback fails that exchange only (500 if nothing
//!   was sent, else the connection is cut after what was sent); everyone else is served on.
//! - [`Reqd::upgrade`] answers `101 Switching Protocols` to a request that asked to switch
//!   (HTTP/1.1 only): once the 101 is written the connection is no longer HTTP; it carries
//!   one end of a [`tunnel`](crate::tunnel) until the tunnel ends. While the service stops,
//!   tunnels run on like any exchange in flight and are reset at `drain_timeout`.
//! - One access-log line per exchange, and one per answer to a peer fault: buffered to the
//!   sink of the [`AccessLog`] given with [`Service::access_log`] (see [`access_log`]), or,
//!   without one, at `info` through the `log` crate, target `paf::access`:
//!   `peer "METHOD target VERSION" status body-bytes duration`.
//!
//! Layout: `app` (the loop side: accept, timers, stop), `conn` (a connection's codec, its pipe
//! (`crate::pipe`) and the dispatch of codec events to handlers), `core` (state shared with
//! `Reqd`s), [`reqd`], `error_response`, `tls_stats` (TLS accounting), [`switch`], [`handle`],
//! `timers`; [`builtin`] is the small site `paf run` serves, and `testing` (feature `testing`,
//! re-exported as `paf::testing`) a raw-bytes client app for tests.

#![warn(missing_docs)]

pub mod access_log;
mod app;
pub mod builtin;
mod codec;
mod conn;
mod core;
mod error_response;
pub mod handle;
mod limits;
pub mod reqd;
pub mod switch;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod timers;
mod tls_stats;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ::http::Request;
use net::{ListenError, ListenerId};

use crate::http::{Config, Error};
use crate::runtime::Runtime;

pub use access_log::AccessLog;
pub use conn::READ_CHUNK;
pub use error_response::ErrorResponse;
pub use handle::{Handle, ServiceError, Stats};
pub use limits::ClientTable;
pub use reqd::{BodyEnd, BodyError, BodyWriter, Reqd, ReqdError};
pub use switch::Switch;

/// Half-open connections (handshake under way) [`init`]'s listener holds at once; SYNs beyond
/// are dropped unanswered and retried by the client, as with a full kernel SYN queue. 4,096 is
/// the kernel's default `somaxconn`. See [`net::Transport::listen`].
pub const DEFAULT_BACKLOG: usize = 4096;

/// Why [`init`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The port cannot be listened on.
    Listen {
        /// The port asked for.
        port: u16,
        /// What the stack said.
        error: ListenError,
    },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Listen { port, error } => write!(f, "cannot listen on port {port}: {error}"),
        }
    }
}

impl std::error::Error for InitError {}

/// A service bound on a port of a runtime's stack, waiting for [`http()`] or [`https()`] (the
/// seed's `service`). It borrows the runtime until then, so the loop cannot run with a listener
/// that has no handler; bind the next port after `http` returned. Dropping it unused closes the
/// listener.
pub struct Service<'a> {
    rt: &'a mut Runtime,
    listener: Option<ListenerId>,
    port: u16,
    access: AccessSetting,
    /// The service this one takes over from ([`take_over`]): it gets the listener back if this
    /// one is dropped unused, and its counters go on in this one.
    from: Option<Handle>,
    /// The per-client table given with [`Service::client_table`].
    clients: Option<ClientTable>,
}

/// The access log a [`Service`] was given.
enum AccessSetting {
    Log,
    Off,
    Buffered(AccessLog),
}

impl fmt::Debug for Service<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service").field("port", &self.port).finish()
    }
}

impl Service<'_> {
    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Writes the access log to `log`'s sink, buffered (see [`access_log`]). Without this, each
    /// line goes through the `log` crate (`info`, target `paf::access`).
    #[must_use]
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access = AccessSetting::Buffered(log);
        self
    }

    /// Keeps no access log at all.
    #[must_use]
    pub fn no_access_log(mut self) -> Self {
        self.access = AccessSetting::Off;
        self
    }

    /// Keeps the per-client limits (`max_connections_per_ip`, `rate`) in `table`, shared with
    /// the other services given it: services of the same listener on other loops (worker
    /// threads, each with its own stack) then count a client once, wherever its connections
    /// land. Without it a service has its own table, or, when it [takes over](take_over),
    /// the one of the service it takes over from.
    #[must_use]
    pub fn client_table(mut self, table: ClientTable) -> Self {
        self.clients = Some(table);
        self
    }

    /// Makes this service (on a listener taken from `from`'s service) its successor: see
    /// [`take_over`].
    #[must_use]
    pub(crate) fn succeeding(mut self, from: &Handle) -> Self {
        self.from = Some(from.clone());
        self
    }
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let Some(id) = self.listener.take() else {
            return;
        };
        match &self.from {
            // Not started: the old service keeps its socket.
            Some(from) => from.set_listening(handle::Listening {
                id,
                port: self.port,
            }),
            None => self.rt.net().unlisten(id),
        }
    }
}

/// The service loop is accepting; the handle completes when it ends (the seed's
/// `` `Initialized of unit Lwt.t ``).
#[derive(Clone, Debug)]
pub struct Initialized(pub Handle);

/// A service on `port` of `rt`'s stack, listening already, with [`DEFAULT_BACKLOG`].
///
/// # Errors
/// [`InitError::Listen`] when the port is 0 or already listened on (or the OS refuses, on the
/// kernel twin).
pub fn init(rt: &mut Runtime, port: u16) -> Result<Service<'_>, InitError> {
    init_with_backlog(rt, port, DEFAULT_BACKLOG)
}

/// [`init`] with a listener holding at most `backlog` half-open connections.
///
/// # Errors
/// As [`init`].
pub fn init_with_backlog(
    rt: &mut Runtime,
    port: u16,
    backlog: usize,
) -> Result<Service<'_>, InitError> {
    let listener = rt
        .net()
        .listen(port, backlog)
        .map_err(|error| InitError::Listen { port, error })?;
    Ok(on_listener(rt, listener, port))
}

/// A service on a listener already open on `rt`'s stack (`rt.net().listen(..)`), which it owns
/// from now on (an appliance reload opens every new port before it starts anything).
pub(crate) fn on_listener(rt: &mut Runtime, listener: ListenerId, port: u16) -> Service<'_> {
    Service {
        rt,
        listener: Some(listener),
        port,
        access: AccessSetting::Log,
        from: None,
        clients: None,
    }
}

/// Why [`take_over`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeOverError {
    /// The service has no listening socket any more: it is stopping or stopped, or was taken
    /// over already.
    NotListening,
}

impl fmt::Display for TakeOverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeOverError::NotListening => f.write_str("the service is not listening"),
        }
    }
}

impl std::error::Error for TakeOverError {}

/// A service on the listening socket of `from`'s running service on `rt`, to start with
/// [`http()`] or [`https()`] (new handlers, config, TLS, access log: a reload). The socket stays
/// open throughout, so no connection is refused: the connections accepted from then on go to the
/// new service, while `from`'s keeps serving those it has, on its own handlers and config, and
/// completes `from` once the last one has closed (or drains them when its switch turns off).
/// The new service's [`Handle::stats`] go on from `from`'s (they share the counters), and so do
/// its per-client limits (they share the [`ClientTable`], unless the new service is given
/// another with [`Service::client_table`]). Dropping the returned service unused gives the
/// socket back to `from`'s.
///
/// # Errors
/// [`TakeOverError::NotListening`] when `from`'s service has stopped or is stopping, or was
/// taken over already.
pub fn take_over<'a>(rt: &'a mut Runtime, from: &Handle) -> Result<Service<'a>, TakeOverError> {
    let l = from.take_listening().ok_or(TakeOverError::NotListening)?;
    // The old service learns it has no socket any more at its next callback, and finishes
    // there if it has no connection left.
    rt.waker().wake();
    Ok(on_listener(rt, l.id, l.port).succeeding(from))
}

/// Serves HTTP/1.1 on `service` (the seed's `http ?config ?stop ~error_handler
/// request_handler service`), and HTTP/2 to clients that open with its preface (h2c with
/// prior knowledge) unless [`Config::h2c`](crate::http::Config::h2c) is off. See the
/// [module docs](self) for the contract.
pub fn http<E, R>(
    service: Service<'_>,
    config: Config,
    stop: Option<Switch>,
    error_handler: E,
    request_handler: R,
) -> Initialized
where
    E: FnMut(SocketAddr, &Error, Option<&Request<()>>, ErrorResponse) + 'static,
    R: FnMut(SocketAddr, Reqd) + 'static,
{
    start(None, service, config, stop, error_handler, request_handler)
}

/// Serves HTTPS on `service` (the seed's `https ~tls ...`): the same service loop with a TLS
/// session between the socket and the HTTP codec. The arguments are [`http()`]'s with the TLS
/// configuration after the service. The protocol is the one the handshake's ALPN settles on:
/// HTTP/2 when the client picks `h2` (offered by default, see
/// [`ServerConfigBuilder::alpn_protocols`](crate::tls::ServerConfigBuilder::alpn_protocols)),
/// else HTTP/1.1; the same handlers serve both. A connection whose handshake fails or times
/// out gets its alert and is closed; the handlers never see it.
pub fn https<E, R>(
    service: Service<'_>,
    tls: crate::tls::ServerConfig,
    config: Config,
    stop: Option<Switch>,
    error_handler: E,
    request_handler: R,
) -> Initialized
where
    E: FnMut(SocketAddr, &Error, Option<&Request<()>>, ErrorResponse) + 'static,
    R: FnMut(SocketAddr, Reqd) + 'static,
{
    start(
        Some(tls),
        service,
        config,
        stop,
        error_handler,
        request_handler,
    )
}

fn start<E, R>(
    tls: Option<crate::tls::ServerConfig>,
    mut service: Service<'_>,
    config: Config,
    stop: Option<Switch>,
    error_handler: E,
    request_handler: R,
) -> Initialized
where
    E: FnMut(SocketAddr, &Error, Option<&Request<()>>, ErrorResponse) + 'static,
    R: FnMut(SocketAddr, Reqd) + 'static,
{
    let clients = service.clients.take();
    let handle = match service.from.take() {
        Some(from) => from.successor(clients),
        None => Handle::with_clients(clients.unwrap_or_default()),
    };
    if let Some(s) = &stop {
        s.attach(service.rt.waker());
    }
    if let Some(tls) = &tls {
        tls.seed_random();
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let access = match std::mem::replace(&mut service.access, AccessSetting::Off) {
        AccessSetting::Log => core::Access::Log,
        AccessSetting::Off => core::Access::Off,
        AccessSetting::Buffered(log) => {
            let dropped = handle.0.counters.access_dropped.clone();
            core::Access::Buffered(std::cell::RefCell::new(access_log::Recorder::new(
                log, dropped,
            )))
        }
    };
    let start = app::Start {
        config: Arc::new(config),
        tls,
        stop,
        request: Box::new(request_handler),
        error: Box::new(error_handler),
        handle: handle.clone(),
        access,
    };
    let port = service.port;
    let listener = service.listener.take().expect("a service is started once");
    let added = service.rt.add_with(|cx| {
        Ok::<_, std::convert::Infallible>(app::ServiceApp::new(port, listener, start, cx))
    });
    let Ok(_) = added;
    log::info!("{scheme} service listening on port {port}");
    Initialized(handle)
}

/// An error handler that sends the default response (the codec's suggested status, plain text)
/// for every peer error.
pub fn default_error_handler(
    _peer: SocketAddr,
    _error: &Error,
    _request: Option<&Request<()>>,
    respond: ErrorResponse,
) {
    drop(respond);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{parse_response, ClientHandle, Pair, RawClient};
    use std::time::Duration;

    /// A service on port 80 answering every request with `body`.
    fn serve(service: Service<'_>, stop: &Switch, body: &'static str) -> Handle {
        let on_request = move |_, reqd: Reqd| {
            let head = ::http::Response::builder().body(()).unwrap();
            let _ = reqd.respond_with_bytes(head, body);
        };
        let Initialized(h) = http(
            service.no_access_log(),
            Config::default(),
            Some(stop.clone()),
            default_error_handler,
            on_request,
        );
        h
    }

    fn ask(pair: &mut Pair, c: &ClientHandle) -> String {
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut buf = Vec::new();
        let mut body = None;
        pair.drive_until(Duration::from_secs(60), "a response", |_| {
            buf.extend_from_slice(&c.take_input());
            body = parse_response(&buf, false).map(|(r, _)| r.body);
            body.is_some() || c.is_done()
        });
        String::from_utf8(body.expect("a response")).unwrap()
    }

    #[test]
    fn a_service_taken_over_serves_its_connections_on_and_new_ones_go_to_the_new_one() {
        let mut pair = Pair::new();
        let to = SocketAddr::from((net::testing::B_V4, 80));
        let stop = Switch::new();
        let old = serve(init(&mut pair.server, 80).unwrap(), &stop, "old");
        let kept = RawClient::connect(&mut pair.client, to).unwrap();
        assert_eq!(ask(&mut pair, &kept), "old");

        // Dropped unused, a service taken over gives the socket back.
        drop(take_over(&mut pair.server, &old).unwrap());
        let new = serve(take_over(&mut pair.server, &old).unwrap(), &stop, "new");
        assert_eq!(
            take_over(&mut pair.server, &old).unwrap_err(),
            TakeOverError::NotListening
        );
        let fresh = RawClient::connect(&mut pair.client, to).unwrap();
        assert_eq!(ask(&mut pair, &fresh), "new");
        assert_eq!(ask(&mut pair, &kept), "old");
        assert_eq!(new.stats().accepted, 2, "counters go on");
        assert!(!old.is_finished());
        kept.close();
        pair.drive_until(Duration::from_secs(60), "the old service to end", |_| {
            old.is_finished()
        });
        assert_eq!(old.result(), Some(Ok(())));
        assert_eq!(ask(&mut pair, &fresh), "new");
        stop.turn_off();
        pair.drive_until(Duration::from_secs(60), "the new service to stop", |_| {
            new.is_finished()
        });
        // Its socket is closed now: a new connection is refused.
        let late = RawClient::connect(&mut pair.client, to).unwrap();
        pair.drive_until(Duration::from_secs(60), "refused", |_| late.is_done());
        assert!(late.is_reset());
    }
}

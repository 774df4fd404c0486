//! The completion side of a service: [`Handle`] (the seed's inner `unit Lwt.t`), its error, and
//! the counters a service publishes while it runs ([`Stats`], with TLS failures by
//! [`TlsFailure`] reason).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use net::ListenerId;

use crate::http::h2::Flood;

/// Why a service loop ended other than by its stop switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The runtime dropped the service before it finished (the loop itself went away).
    Dropped,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Dropped => f.write_str("the service's loop was dropped"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// Counters of one service, readable from any thread through [`Handle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections currently open.
    pub active: usize,
    /// Request heads handed to the request handler.
    pub requests: u64,
    /// Peer errors handed to the error handler.
    pub errors: u64,
    /// Handler or callback panics caught.
    pub panics: u64,
    /// Largest amount of unconsumed input ever held by one connection (capped by
    /// [`Config::read_buffer_size`](crate::http::Config::read_buffer_size)).
    pub max_input_buffered: usize,
    /// Largest amount of response bytes ever waiting in one connection's codec for the socket
    /// (about [`Config::response_buffer_size`](crate::http::Config::response_buffer_size) plus one
    /// response head at most, for streamed bodies).
    pub max_output_pending: usize,
    /// Largest body chunk handed to a body reader (at most `body_buffer_size` on HTTP/1.1,
    /// [`READ_CHUNK`](super::READ_CHUNK) on HTTP/2).
    pub max_body_chunk: usize,
    /// Request body bytes handed to body readers where they lay, in the socket's receive
    /// buffer, without the copy into the codec's body buffer (HTTP/1.1 `Content-Length`
    /// bodies on plain connections, while the reader waits).
    pub body_bytes_in_place: u64,
    /// The service speaks TLS (`https`).
    pub https: bool,
    /// TLS handshakes completed (https services).
    pub tls_handshakes: u64,
    /// TLS connections that failed before their handshake completed (bad records, wrong
    /// protocols, handshake timeouts, a peer that closed mid-handshake).
    pub tls_failures: u64,
    /// TLS connections ended by a TLS failure, before or after the handshake, by reason (index:
    /// [`TlsFailure::index`]; read with [`Stats::tls_failures_of`]).
    pub tls_failure_reasons: [u64; TlsFailure::COUNT],
    /// Renegotiation requests (a ClientHello on an established TLS 1.2 session), all refused.
    pub tls_renegotiations_refused: u64,
    /// Request heads not complete within `head_timeout` (answered 408).
    pub head_timeouts: u64,
    /// Request bodies that stalled for `body_timeout` (answered 408).
    pub body_timeouts: u64,
    /// Connections reset because the peer took no output for `write_timeout` (a response, or
    /// a TLS alert or `close_notify`, it would not read).
    pub write_timeouts: u64,
    /// Connections served as HTTP/2 (ALPN `h2`, or h2c with prior knowledge).
    pub h2_connections: u64,
    /// HTTP/2 streams accepted (each one a request handed to the handler).
    pub h2_streams: u64,
    /// HTTP/2 streams the peer reset (RST_STREAM) before their response finished.
    pub h2_resets_received: u64,
    /// HTTP/2 GOAWAY frames sent: graceful stops, idle closes, protocol errors, rapid reset.
    pub h2_goaways_sent: u64,
    /// Times an HTTP/2 connection was not read for a while (250 ms) because its client opened
    /// a stream past `max_concurrent_streams`.
    pub h2_streams_held: u64,
    /// HTTP/2 connections that ended in a protocol error (either side's) or a flood.
    pub h2_protocol_errors: u64,
    /// HTTP/2 floods cut off, by kind, indexed by [`Flood::index`] (rapid reset, PING,
    /// SETTINGS, PRIORITY, empty frames, CONTINUATION, HPACK).
    pub h2_floods: [u64; Flood::ALL.len()],
    /// Connections reset at accept: their client had `max_connections_per_ip` open.
    pub limited_connections: u64,
    /// Requests answered 429: their client was over its `rate`.
    pub limited_requests: u64,
    /// Connections held back unread at accept (up to `abuse_delay`): their client was cut off
    /// for abuse (an HTTP/2 flood) lately.
    pub abuse_held: u64,
    /// Connections reset for the PROXY protocol: from an untrusted source, with a missing,
    /// late or malformed header.
    pub proxy_protocol_refused: u64,
    /// Access-log lines dropped: the buffer was full because the sink could not keep up, or
    /// the sink failed to write them.
    pub access_log_dropped: u64,
}

impl Stats {
    /// TLS failures counted for `reason`.
    pub fn tls_failures_of(&self, reason: TlsFailure) -> u64 {
        self.tls_failure_reasons[reason.index()]
    }
}

/// Why a TLS connection failed, as counted in [`Stats::tls_failure_reasons`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The handshake did not complete within `handshake_timeout` (a truncated ClientHello, a
    /// partial record, a silent client).
    HandshakeTimeout,
    /// The peer closed or reset the connection mid-handshake, after sending at least one byte
    /// (a ClientHello, then close). A connection closed before sending anything is not counted.
    HandshakeEof,
    /// The peer broke the protocol: bytes that are not TLS records, malformed or unexpected
    /// messages, records that fail to decrypt.
    Protocol,
    /// The peer sent a fatal alert.
    Alert,
    /// Nothing in common: protocol versions, cipher suites, key exchange groups, ALPN.
    Incompatible,
    /// The peer asked to renegotiate again after its first request was refused.
    Renegotiation,
}

impl TlsFailure {
    /// Number of reasons.
    pub const COUNT: usize = 6;
    /// Every reason, in [`TlsFailure::index`] order.
    pub const ALL: [TlsFailure; TlsFailure::COUNT] = [
        TlsFailure::HandshakeTimeout,
        TlsFailure::HandshakeEof,
        TlsFailure::Protocol,
        TlsFailure::Alert,
        TlsFailure::Incompatible,
        TlsFailure::Renegotiation,
    ];

    /// Position in [`TlsFailure::ALL`] and [`Stats::tls_failure_reasons`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `reason` label of `paf_tls_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::HandshakeTimeout => "handshake_timeout",
            TlsFailure::HandshakeEof => "handshake_eof",
            TlsFailure::Protocol => "protocol",
            TlsFailure::Alert => "alert",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::Renegotiation => "renegotiation",
        }
    }

    /// The reason of a session error.
    pub fn of(error: &crate::tls::Error) -> TlsFailure {
        use rustls::{Error as R, PeerMisbehaved};
        match error {
            crate::tls::Error::HandshakeTimeout => TlsFailure::HandshakeTimeout,
            crate::tls::Error::Peer(R::AlertReceived(_)) => TlsFailure::Alert,
            crate::tls::Error::Peer(
                R::PeerIncompatible(_) | R::NoApplicationProtocol | R::UnsupportedNameType,
            ) => TlsFailure::Incompatible,
            crate::tls::Error::Peer(R::PeerMisbehaved(
                PeerMisbehaved::TooManyRenegotiationRequests,
            )) => TlsFailure::Renegotiation,
            // Config errors cannot come from a running session; anything else is a peer fault.
            crate::tls::Error::Peer(_) | crate::tls::Error::Config(_) => TlsFailure::Protocol,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub active: AtomicUsize,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
    pub max_input: AtomicUsize,
    pub max_output: AtomicUsize,
    pub max_chunk: AtomicUsize,
    pub body_in_place: AtomicU64,
    pub https: AtomicBool,
    pub tls_ok: AtomicU64,
    pub tls_failed: AtomicU64,
    pub tls_reasons: [AtomicU64; TlsFailure::COUNT],
    pub tls_renegotiations: AtomicU64,
    pub head_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub h2_connections: AtomicU64,
    pub h2_streams: AtomicU64,
    pub h2_resets: AtomicU64,
    pub h2_goaways: AtomicU64,
    pub h2_held: AtomicU64,
    pub h2_protocol_errors: AtomicU64,
    pub h2_floods: [AtomicU64; Flood::ALL.len()],
    pub limited_connections: AtomicU64,
    pub limited_requests: AtomicU64,
    pub abuse_held: AtomicU64,
    pub proxy_refused: AtomicU64,
    /// Shared with the access log's buffer and its sink's writer.
    pub access_dropped: Arc<AtomicU64>,
}

impl Counters {
    /// Adds one connection's HTTP/2 counters.
    pub(crate) fn add_h2(&self, c: crate::http::h2::Counts) {
        let r = Ordering::Relaxed;
        for (counter, n) in [
            (&self.h2_streams, c.streams),
            (&self.h2_resets, c.resets_received),
            (&self.h2_goaways, c.goaways_sent),
            (&self.h2_held, c.held),
            (&self.h2_protocol_errors, c.protocol_errors),
        ]
        .into_iter()
        .chain(self.h2_floods.iter().zip(c.floods))
        {
            if n > 0 {
                counter.fetch_add(n, r);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let r = Ordering::Relaxed;
        Stats {
            accepted: self.accepted.load(r),
            active: self.active.load(r),
            requests: self.requests.load(r),
            errors: self.errors.load(r),
            panics: self.panics.load(r),
            max_input_buffered: self.max_input.load(r),
            max_output_pending: self.max_output.load(r),
            max_body_chunk: self.max_chunk.load(r),
            body_bytes_in_place: self.body_in_place.load(r),
            https: self.https.load(r),
            tls_handshakes: self.tls_ok.load(r),
            tls_failures: self.tls_failed.load(r),
            tls_failure_reasons: std::array::from_fn(|i| self.tls_reasons[i].load(r)),
            tls_renegotiations_refused: self.tls_renegotiations.load(r),
            head_timeouts: self.head_timeouts.load(r),
            body_timeouts: self.body_timeouts.load(r),
            write_timeouts: self.write_timeouts.load(r),
            h2_connections: self.h2_connections.load(r),
            h2_streams: self.h2_streams.load(r),
            h2_resets_received: self.h2_resets.load(r),
            h2_goaways_sent: self.h2_goaways.load(r),
            h2_streams_held: self.h2_held.load(r),
            h2_protocol_errors: self.h2_protocol_errors.load(r),
            h2_floods: std::array::from_fn(|i| self.h2_floods[i].load(r)),
            limited_connections: self.limited_connections.load(r),
            limited_requests: self.limited_requests.load(r),
            abuse_held: self.abuse_held.load(r),
            proxy_protocol_refused: self.proxy_refused.load(r),
            access_log_dropped: self.access_dropped.load(r),
        }
    }
}

/// The listening socket a running service accepts on, until it stops or another service takes
/// it over ([`crate::service::take_over`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Listening {
    pub id: ListenerId,
    pub port: u16,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    result: Mutex<Option<Result<(), ServiceError>>>,
    done: Condvar,
    /// Shared with the services that took over from this one, so that counters go on across a
    /// reload.
    pub(crate) counters: Arc<Counters>,
    /// The service's listening socket; `None` once it stopped or was taken over.
    listening: Mutex<Option<Listening>>,
    /// Per-client connection counts and request rates: shared with the services that took
    /// over from this one, unless they were given another.
    pub(crate) clients: super::ClientTable,
}

/// Completes when the service loop has ended: on its stop switch (after draining) or on a fatal
/// error. Clone it and send it anywhere. Completing wakes every loop of the process, so
/// `rt.run_until(|_| handle.is_finished())` returns as soon as it is, whether `rt` runs the
/// service or another loop (a client's) does; another thread can block on [`Handle::wait`].
#[derive(Clone, Debug, Default)]
pub struct Handle(pub(crate) Arc<Inner>);

impl Handle {
    /// Whether the service loop has ended.
    pub fn is_finished(&self) -> bool {
        self.result().is_some()
    }

    /// How the service loop ended, once it has: `Ok(())` after a stop.
    pub fn result(&self) -> Option<Result<(), ServiceError>> {
        *self.0.result.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the service loop has ended (call it from another thread than the loop's).
    ///
    /// # Errors
    /// The [`ServiceError`] that ended the loop.
    pub fn wait(&self) -> Result<(), ServiceError> {
        let mut r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = *r {
                return r;
            }
            r = self.0.done.wait(r).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`Handle::wait`], giving up after `timeout` (`None` then).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), ServiceError>> {
        let r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        let (r, _) = self
            .0
            .done
            .wait_timeout_while(r, timeout, |r| r.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *r
    }

    /// The service's counters now.
    pub fn stats(&self) -> Stats {
        self.0.counters.snapshot()
    }

    /// A handle for a service that takes over from this one: its own completion, the same
    /// counters, and the same client table unless `clients` is given.
    pub(crate) fn successor(&self, clients: Option<super::ClientTable>) -> Handle {
        Handle(Arc::new(Inner {
            result: Mutex::default(),
            done: Condvar::new(),
            counters: self.0.counters.clone(),
            listening: Mutex::default(),
            clients: clients.unwrap_or_else(|| self.0.clients.clone()),
        }))
    }

    /// A handle for a new service keeping its per-client state in `clients`.
    pub(crate) fn with_clients(clients: super::ClientTable) -> Handle {
        Handle(Arc::new(Inner {
            result: Mutex::default(),
            done: Condvar::new(),
            counters: Arc::default(),
            listening: Mutex::default(),
            clients,
        }))
    }

    /// Notes the listening socket the service accepts on.
    pub(crate) fn set_listening(&self, l: Listening) {
        *self
            .0
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(l);
    }

    /// Takes the service's listening socket away from it (to close it, or to hand it over).
    pub(crate) fn take_listening(&self) -> Option<Listening> {
        self.0
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the service still has its listening socket.
    pub(crate) fn is_listening(&self) -> bool {
        self.0
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Records the end of the loop (the first result wins) and wakes waiters.
    pub(crate) fn complete(&self, result: Result<(), ServiceError>) {
        let mut r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        if r.is_none() {
            *r = Some(result);
            self.0.done.notify_all();
            drop(r);
            crate::runtime::wake_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_result_wins_and_waiters_see_it() {
        let h = Handle::default();
        assert!(!h.is_finished());
        assert_eq!(h.wait_timeout(Duration::from_millis(10)), None);
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.wait());
        h.complete(Ok(()));
        h.complete(Err(ServiceError::Dropped));
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(h.result(), Some(Ok(())));
        assert_eq!(h.wait_timeout(Duration::ZERO), Some(Ok(())));
    }

    #[test]
    fn tls_errors_map_to_reasons_with_distinct_labels() {
        use crate::tls::Error as E;
        use rustls::PeerMisbehaved;
        use rustls::{AlertDescription, Error as R, InvalidMessage, PeerIncompatible};
        let cases = [
            (E::HandshakeTimeout, TlsFailure::HandshakeTimeout),
            (
                E::Peer(R::AlertReceived(AlertDescription::HandshakeFailure)),
                TlsFailure::Alert,
            ),
            (E::Peer(R::NoApplicationProtocol), TlsFailure::Incompatible),
            (
                E::Peer(R::PeerIncompatible(
                    PeerIncompatible::Tls12NotOfferedOrEnabled,
                )),
                TlsFailure::Incompatible,
            ),
            (
                E::Peer(R::PeerMisbehaved(
                    PeerMisbehaved::TooManyRenegotiationRequests,
                )),
                TlsFailure::Renegotiation,
            ),
            (
                E::Peer(R::InvalidMessage(InvalidMessage::InvalidContentType)),
                TlsFailure::Protocol,
            ),
            (E::Peer(R::DecryptError), TlsFailure::Protocol),
            (
                E::Peer(R::PeerMisbehaved(
                    PeerMisbehaved::TooManyWarningAlertsReceived,
                )),
                TlsFailure::Protocol,
            ),
            (E::Peer(R::General("x".into())), TlsFailure::Protocol),
        ];
        for (error, want) in cases {
            assert_eq!(TlsFailure::of(&error), want, "{error}");
        }
        let mut labels: Vec<&str> = TlsFailure::ALL.iter().map(|r| r.label()).collect();
        for (i, r) in TlsFailure::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), TlsFailure::COUNT);
    }
}

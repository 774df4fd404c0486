//! [`ClientCodec`]: the protocol of one client connection, HTTP/1.1 or HTTP/2, behind the one
//! surface the connection, its exchanges and the pipe use.
//!
//! Which one is decided once, before any request goes out: on TLS by the ALPN protocol the
//! handshake settled on (`h2` when the endpoint's TLS configuration offered it and the server
//! picked it, else HTTP/1.1); on plain text by
//! [`Config::http2_prior_knowledge`](crate::http::client::Config::http2_prior_knowledge)
//! (h2c, the preface sent as the first bytes). HTTP/1.1 carries one request at a time here;
//! HTTP/2 carries as many as the server's concurrent-stream limit allows.

use std::sync::Arc;
use std::time::Instant;

use crate::http::client::{ClientConn, ClientEvent, Config, RequestBody, RequestId, UsageError};
use crate::http::h2;
use crate::http::BodyRead;
use crate::pipe::Codec;
use crate::tls::ALPN_H2;

// HTTP/1.1 stays inline; HTTP/2's state is boxed (it is the larger).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Proto {
    H1(ClientConn),
    H2(Box<h2::ClientConn>),
}

/// One client connection's protocol; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ClientCodec {
    proto: Proto,
    config: Arc<Config>,
    tls: bool,
    /// The last instant a call brought (ALPN is told without one).
    now: Instant,
}

macro_rules! each {
    ($self:expr, $c:ident => $e:expr) => {
        match &mut $self.proto {
            Proto::H1($c) => $e,
            Proto::H2($c) => $e,
        }
    };
}

macro_rules! each_ref {
    ($self:expr, $c:ident => $e:expr) => {
        match &$self.proto {
            Proto::H1($c) => $e,
            Proto::H2($c) => $e,
        }
    };
}

impl ClientCodec {
    /// The codec of a connection started at `now`; HTTP/1.1 until told otherwise.
    pub(crate) fn new(config: Arc<Config>, now: Instant, tls: bool) -> Self {
        ClientCodec {
            proto: Proto::H1(ClientConn::new(config.clone(), now)),
            config,
            tls,
            now,
        }
    }

    /// The connection is established (TCP, and TLS if any) at `now`: plain text with prior
    /// knowledge starts HTTP/2 here.
    pub(crate) fn handle_open(&mut self, now: Instant) {
        self.now = now;
        if !self.tls && self.config.http2_prior_knowledge && !self.is_h2() {
            self.start_h2();
        }
    }

    fn start_h2(&mut self) {
        self.proto = Proto::H2(Box::new(h2::ClientConn::new(
            self.config.clone(),
            self.now,
            self.tls,
        )));
    }

    /// Whether the connection speaks HTTP/2 (and may carry several requests at once).
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.proto, Proto::H2(_))
    }

    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        head: &::http::Request<()>,
        body: RequestBody<'_>,
    ) -> Result<RequestId, UsageError> {
        self.now = now;
        match &mut self.proto {
            // HTTP/1.1 writes the head out; h2 takes one of its own.
            Proto::H1(c) => c.send_request(now, head, body),
            Proto::H2(c) => c.send_request(now, head.clone(), body),
        }
    }

    pub(crate) fn write_body(
        &mut self,
        now: Instant,
        id: RequestId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        self.now = now;
        each!(self, c => c.write_body(now, id, data))
    }

    pub(crate) fn finish_body(&mut self, now: Instant, id: RequestId) -> Result<(), UsageError> {
        self.now = now;
        each!(self, c => c.finish_body(now, id))
    }

    pub(crate) fn read_body(&mut self, now: Instant, id: RequestId, buf: &mut [u8]) -> BodyRead {
        self.now = now;
        each!(self, c => c.read_body(now, id, buf))
    }

    /// HTTP/1.1's [`take_complete_body`](crate::http::client::ClientConn::take_complete_body), at the
    /// codec's last `now`; HTTP/2 bodies are read chunk by chunk (`false`).
    pub(crate) fn take_complete_body(&mut self, id: RequestId, into: &mut Vec<u8>) -> bool {
        match &mut self.proto {
            Proto::H1(c) => c.take_complete_body(self.now, id, into),
            Proto::H2(_) => false,
        }
    }

    /// The `now` of the codec's last call.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Abandons request `id`. Returns whether the protocol could end that request alone
    /// (HTTP/2 resets its stream); if not, the connection must be closed.
    pub(crate) fn cancel(&mut self, now: Instant, id: RequestId) -> bool {
        self.now = now;
        match &mut self.proto {
            Proto::H2(c) => {
                c.cancel(now, id);
                true
            }
            Proto::H1(_) => false,
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<ClientEvent> {
        each!(self, c => c.poll_event())
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        each_ref!(self, c => c.poll_timeout())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        each!(self, c => c.handle_timeout(now))
    }

    /// The connection is being closed: HTTP/2 queues its GOAWAY (sent before the FIN).
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.now = now;
        if let Proto::H2(c) = &mut self.proto {
            c.shutdown(now);
        }
    }

    /// Whether a `101` switched the connection to another protocol (HTTP/1.1 only).
    pub(crate) fn is_switched(&self) -> bool {
        matches!(&self.proto, Proto::H1(c) if c.is_switched())
    }

    /// Whether a new request may be sent now.
    pub(crate) fn can_send_request(&self) -> bool {
        each_ref!(self, c => c.can_send_request())
    }

    pub(crate) fn is_reusable(&self) -> bool {
        each_ref!(self, c => c.is_reusable())
    }

    pub(crate) fn is_closed(&self) -> bool {
        each_ref!(self, c => c.is_closed())
    }
}

impl Codec for ClientCodec {
    fn wants_read(&self) -> bool {
        each_ref!(self, c => c.wants_read())
    }

    fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        self.now = now;
        each!(self, c => c.handle_input(now, bytes))
    }

    fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        each!(self, c => c.handle_eof(now))
    }

    fn poll_transmit(&self) -> &[u8] {
        each_ref!(self, c => c.poll_transmit())
    }

    fn handle_transmitted(&mut self, now: Instant, n: usize) {
        self.now = now;
        each!(self, c => c.handle_transmitted(now, n))
    }

    fn handle_alpn(&mut self, protocol: Option<&[u8]>) {
        if protocol == Some(ALPN_H2) && !self.is_h2() {
            self.start_h2();
        }
    }
}

//! [`ServerCodec`]: the protocol of one server connection, HTTP/1.1 or HTTP/2, behind the one
//! surface the service, its `Reqd` and the pipe use.
//!
//! Which one is decided once, before the first request: on TLS by the ALPN protocol the
//! handshake negotiated (`h2`, else HTTP/1.1); on plain text, when h2c is enabled, by whether
//! the first bytes are the HTTP/2 connection preface (RFC 9113 §3.3, prior knowledge). Until
//! then the connection is an HTTP/1.1 codec that has seen nothing, so its head timeout and its
//! shutdown apply while waiting.

use std::sync::Arc;
use std::time::Instant;

use crate::http::h2::{self, Counts, PREFACE};
use crate::http::{
    BodyRead, Config, Event, ExchangeId, HttpDate, ResponseBody, ServerConn, UsageError,
};
use crate::pipe::Codec;
use crate::tls::ALPN_H2;

/// One connection's protocol; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ServerCodec {
    proto: Proto,
    config: Arc<Config>,
    decide: Decide,
}

// HTTP/1.1, the common case, stays inline; HTTP/2's state is boxed (it is the larger).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Proto {
    H1(ServerConn),
    H2(Box<h2::ServerConn>),
}

/// What decides the protocol, while it is not decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decide {
    Done,
    /// Plain text with h2c on: the first bytes.
    Preface,
    /// TLS offering h2: the handshake's ALPN.
    Alpn,
    /// ALPN said h2: the codec starts with the first input (its `now`).
    AlpnH2,
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

impl ServerCodec {
    /// The codec of a connection accepted at `now`; `tls`: a TLS service, `tls_h2`: one that
    /// offers `h2` by ALPN.
    pub(crate) fn new(config: Arc<Config>, now: Instant, tls: bool, tls_h2: bool) -> Self {
        let decide = match (tls, tls_h2, config.h2c) {
            (true, true, _) => Decide::Alpn,
            (false, _, true) => Decide::Preface,
            _ => Decide::Done,
        };
        ServerCodec {
            proto: Proto::H1(ServerConn::new(config.clone(), now)),
            config,
            decide,
        }
    }

    /// Whether the connection speaks HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.proto, Proto::H2(_))
    }

    /// Whether a `101` (or a CONNECT's `2xx`) switched the connection to another protocol
    /// (HTTP/1.1 only).
    pub(crate) fn is_switched(&self) -> bool {
        matches!(&self.proto, Proto::H1(c) if c.is_switched())
    }

    /// HTTP/2 counters since the last call (zero for HTTP/1.1).
    pub(crate) fn take_counts(&mut self) -> Counts {
        match &mut self.proto {
            Proto::H2(c) => c.take_counts(),
            Proto::H1(_) => Counts::default(),
        }
    }

    fn start_h2(&mut self, now: Instant) {
        self.proto = Proto::H2(Box::new(h2::ServerConn::new(self.config.clone(), now)));
        self.decide = Decide::Done;
    }

    pub(crate) fn set_date(&mut self, date: HttpDate) {
        each!(self, c => c.set_date(date))
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        each_ref!(self, c => c.poll_timeout())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        each!(self, c => c.handle_timeout(now))
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        each!(self, c => c.poll_event())
    }

    /// Whether `poll_event` has an event to give (HTTP/2: always said yes).
    pub(crate) fn has_events(&self) -> bool {
        match &self.proto {
            Proto::H1(c) => c.has_events(),
            Proto::H2(_) => true,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        each_ref!(self, c => c.is_closed())
    }

    pub(crate) fn read_body(&mut self, now: Instant, id: ExchangeId, buf: &mut [u8]) -> BodyRead {
        each!(self, c => c.read_body(now, id, buf))
    }

    /// HTTP/1.1's [`take_body`](crate::http::server::ServerConn::take_body): the buffered body
    /// by a swap of buffers, no copy; `None` on HTTP/2, whose bodies are read with
    /// [`read_body`](Self::read_body).
    pub(crate) fn take_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        into: &mut Vec<u8>,
    ) -> Option<BodyRead> {
        match &mut self.proto {
            Proto::H1(c) => Some(c.take_body(now, id, into)),
            Proto::H2(_) => None,
        }
    }

    /// HTTP/1.1's [`body_in_place`](crate::http::ServerConn::body_in_place): the
    /// exchange whose body the caller may hand its reader where the bytes lie, and at most how
    /// many; `None` on HTTP/2 (its bodies come in DATA frames).
    pub(crate) fn body_in_place(&self) -> Option<(ExchangeId, usize)> {
        match &self.proto {
            Proto::H1(c) => c.body_in_place(),
            Proto::H2(_) => None,
        }
    }

    /// HTTP/1.1's
    /// [`consume_body_in_place`](crate::http::ServerConn::consume_body_in_place): the
    /// caller hands these body bytes of `id` to its reader itself; returns how many are
    /// consumed (0 on HTTP/2).
    pub(crate) fn consume_body_in_place(
        &mut self,
        now: Instant,
        id: ExchangeId,
        bytes: &[u8],
    ) -> usize {
        match &mut self.proto {
            Proto::H1(c) => c.consume_body_in_place(now, id, bytes),
            Proto::H2(_) => 0,
        }
    }

    pub(crate) fn respond(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: ::http::Response<()>,
        body: ResponseBody<'_>,
    ) -> Result<(), UsageError> {
        each!(self, c => c.respond(now, id, head, body))
    }

    /// A whole body sent from `body` itself on HTTP/1.1 (HTTP/2 frames copy it).
    pub(crate) fn respond_shared(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: ::http::Response<()>,
        body: &bytes::Bytes,
    ) -> Result<(), UsageError> {
        match &mut self.proto {
            Proto::H1(c) => c.respond_shared(now, id, head, body),
            Proto::H2(c) => c.respond(now, id, head, ResponseBody::Complete(body)),
        }
    }

    pub(crate) fn write_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        each!(self, c => c.write_body(now, id, data))
    }

    pub(crate) fn finish_body(&mut self, now: Instant, id: ExchangeId) -> Result<(), UsageError> {
        each!(self, c => c.finish_body(now, id))
    }

    pub(crate) fn finish_body_with_trailers(
        &mut self,
        now: Instant,
        id: ExchangeId,
        trailers: &::http::HeaderMap,
    ) -> Result<(), UsageError> {
        each!(self, c => c.finish_body_with_trailers(now, id, trailers))
    }

    pub(crate) fn request_trailers(&self, id: ExchangeId) -> Option<&::http::HeaderMap> {
        each_ref!(self, c => c.request_trailers(id))
    }

    /// Answers the [`Event::Error`] of `id` (HTTP/1.1 has one per connection and ignores `id`;
    /// HTTP/2 has one per failed stream).
    pub(crate) fn respond_error(
        &mut self,
        now: Instant,
        id: Option<ExchangeId>,
        head: ::http::Response<()>,
        body: &[u8],
    ) {
        match &mut self.proto {
            Proto::H1(c) => c.respond_error(now, head, body),
            Proto::H2(c) => {
                if let Some(id) = id {
                    c.respond_error(now, id, head, body);
                }
            }
        }
    }

    /// Abandons the response of `id` mid-body. Returns whether the protocol could end that
    /// exchange alone (HTTP/2 resets the stream); if not, the connection must close.
    pub(crate) fn abort(&mut self, now: Instant, id: ExchangeId) -> bool {
        match &mut self.proto {
            Proto::H2(c) => {
                c.abort(now, id);
                true
            }
            Proto::H1(_) => false,
        }
    }

    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.decide = Decide::Done;
        each!(self, c => c.shutdown(now))
    }
}

impl Codec for ServerCodec {
    fn wants_read(&self) -> bool {
        self.decide != Decide::Done || each_ref!(self, c => c.wants_read())
    }

    fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        match self.decide {
            Decide::Done => {}
            Decide::Preface => {
                let n = bytes.len().min(PREFACE.len());
                if bytes[..n] != PREFACE[..n] {
                    self.decide = Decide::Done;
                } else if n < PREFACE.len() {
                    return 0; // maybe the preface: wait for the rest
                } else {
                    self.start_h2(now);
                }
            }
            Decide::AlpnH2 => self.start_h2(now),
            // Input before the ALPN was told cannot happen on TLS; be HTTP/1.1 if it does.
            Decide::Alpn => self.decide = Decide::Done,
        }
        each!(self, c => c.handle_input(now, bytes))
    }

    fn handle_eof(&mut self, now: Instant) {
        self.decide = Decide::Done;
        each!(self, c => c.handle_eof(now))
    }

    fn poll_transmit(&self) -> &[u8] {
        each_ref!(self, c => c.poll_transmit())
    }

    fn handle_transmitted(&mut self, now: Instant, n: usize) {
        each!(self, c => c.handle_transmitted(now, n))
    }

    fn handle_alpn(&mut self, protocol: Option<&[u8]>) {
        if self.decide == Decide::Alpn {
            self.decide = if protocol == Some(ALPN_H2) {
                Decide::AlpnH2
            } else {
                Decide::Done
            };
        }
    }
}

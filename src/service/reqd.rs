//! [`Reqd`]: one request/response exchange as the request handler sees it (httpaf's `Reqd.t`),
//! and [`BodyWriter`], the streaming half of a response.
//!
//! A `Reqd` is a cheap, clonable, single-threaded handle. It stays valid across loop passes, so
//! a handler may keep it (in a map, in a callback of another app) and answer later. Every method
//! acts on the connection's codec at once and marks the connection for flushing in the same
//! loop pass. Once the connection is gone, methods return [`ReqdError::Closed`] and body readers
//! end with [`BodyEnd::Aborted`].
//!
//! Rules the loop enforces so that a connection can never hang:
//! - dropping every clone of a `Reqd` without responding sends `500 Internal Server Error`;
//! - dropping a [`BodyWriter`] without [`BodyWriter::close`] aborts the response: what was
//!   written is flushed, then the connection closes (the client sees a truncated body);
//! - a panicking handler or callback gets the same treatment (see the module docs of
//!   [`crate::service`]).

use std::cell::Cell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use ::http::{HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;

use super::access_log::{Entry, Note};
use super::core::{CoreRef, Reader, Shared};
use crate::http::{BodyRead, ExchangeId, ResponseBody, UsageError, UsageErrorKind};
use crate::tunnel::{Hook, Upgraded};

/// Why a `Reqd` or `BodyWriter` operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqdError {
    /// The connection is closed, or the exchange was dropped by a peer error or a timeout.
    Closed,
    /// The call does not fit the exchange's state (respond twice, write after close, more bytes
    /// than the declared length...): a bug in the caller.
    Usage(UsageError),
}

impl fmt::Display for ReqdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqdError::Closed => f.write_str("the exchange's connection is gone"),
            ReqdError::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReqdError {}

fn usage(e: UsageError) -> ReqdError {
    match e.kind() {
        UsageErrorKind::UnknownExchange => ReqdError::Closed,
        _ => ReqdError::Usage(e),
    }
}

/// How a request body ended, for [`Reqd::schedule_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body was received (also for requests without a body).
    Complete,
    /// The body will never complete: the connection failed or closed, the peer sent a malformed
    /// body, or the response finished before the body was read.
    Aborted,
}

/// Why [`Reqd::read_to_end`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is longer than the limit given (answer with 413).
    TooLarge,
    /// See [`BodyEnd::Aborted`].
    Aborted,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::TooLarge => "request body larger than the limit",
            BodyError::Aborted => "request body aborted",
        })
    }
}

impl std::error::Error for BodyError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    None,
    Streaming,
    Done,
}

/// The shared state behind every clone of one `Reqd`.
pub(crate) struct Exchange {
    pub(crate) core: CoreRef,
    pub(crate) shared: Rc<Shared>,
    pub(crate) id: ExchangeId,
    pub(crate) request: Request<()>,
    pub(crate) peer: SocketAddr,
    /// paf's own address of the connection, when known.
    pub(crate) local: Option<SocketAddr>,
    pub(crate) started: Instant,
    phase: Cell<Phase>,
    status: Cell<u16>,
    bytes: Cell<u64>,
}

impl Exchange {
    pub(crate) fn new(
        core: CoreRef,
        shared: Rc<Shared>,
        id: ExchangeId,
        request: Request<()>,
        (peer, local): (SocketAddr, Option<SocketAddr>),
        started: Instant,
    ) -> Exchange {
        Exchange {
            core,
            shared,
            id,
            request,
            peer,
            local,
            started,
            phase: Cell::new(Phase::None),
            status: Cell::new(0),
            bytes: Cell::new(0),
        }
    }

    /// Starts the response; `body` picks the framing.
    fn respond(&self, head: Response<()>, body: ResponseBody<'_>) -> Result<(), ReqdError> {
        self.respond_with(head, body, None)
    }

    /// [`respond`](Self::respond); `shared`, the bytes of a `Complete` body, is sent from its
    /// own buffer where the codec can.
    fn respond_with(
        &self,
        head: Response<()>,
        body: ResponseBody<'_>,
        shared: Option<&Bytes>,
    ) -> Result<(), ReqdError> {
        let now = self.shared.now();
        let status = head.status().as_u16();
        let mut core = self.core.borrow_mut();
        if core.closed {
            return Err(ReqdError::Closed);
        }
        self.shared.set_date(&mut core, now);
        match shared {
            Some(b) => core.codec.respond_shared(now, self.id, head, b),
            None => core.codec.respond(now, self.id, head, body),
        }
        .map_err(usage)?;
        self.status.set(status);
        let done = matches!(body, ResponseBody::Empty | ResponseBody::Complete(_));
        if let ResponseBody::Complete(b) = body {
            self.count(b.len());
        }
        self.phase
            .set(if done { Phase::Done } else { Phase::Streaming });
        if done {
            if let Some(slot) = core.slot_mut(self.id) {
                slot.finished = true;
            }
        }
        self.shared.mark(&mut core);
        drop(core);
        if done {
            self.log_access(Note::None);
        }
        Ok(())
    }

    fn count(&self, n: usize) {
        if self.request.method() != Method::HEAD {
            self.bytes.set(self.bytes.get() + n as u64);
        }
    }

    /// Records the exchange in the access log.
    fn log_access(&self, note: Note) {
        self.shared.log_access(&Entry {
            peer: self.peer,
            request: Some(&self.request),
            status: self.status.get(),
            body_bytes: self.bytes.get(),
            duration: Some(self.shared.now().saturating_duration_since(self.started)),
            note,
            error: None,
        });
    }

    /// After a panic in user code: 500 if nothing was sent, else cut the response short.
    /// Returns whether a 500 went out.
    pub(crate) fn fail(&self) -> bool {
        match self.phase.get() {
            Phase::None => {
                let head = plain_head(StatusCode::INTERNAL_SERVER_ERROR);
                let body = ResponseBody::Complete(b"500 Internal Server Error\n");
                self.respond(head, body).is_ok()
            }
            Phase::Streaming => {
                self.kill();
                false
            }
            Phase::Done => false,
        }
    }

    /// Abandons a streamed response: HTTP/2 resets its stream; HTTP/1.1 flushes what is
    /// there, then closes the connection.
    fn kill(&self) {
        self.phase.set(Phase::Done);
        let now = self.shared.now();
        let mut core = self.core.borrow_mut();
        if !core.closed {
            if !core.codec.abort(now, self.id) {
                core.kill = true;
            }
            if let Some(slot) = core.slot_mut(self.id) {
                slot.finished = true;
            }
            self.shared.mark(&mut core);
        }
        drop(core);
        self.log_access(Note::Aborted);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.phase.get() != Phase::None {
            return;
        }
        // No `Core` is borrowed while user code runs (see `core.rs`), and the loop drops no
        // `Reqd` while it holds one: the borrow is free.
        let closed = self.core.borrow().closed;
        if !closed && self.fail() {
            log::warn!(
                "{} {} {}: handler dropped the request without responding; sent 500",
                self.peer,
                self.request.method(),
                self.request.uri()
            );
        }
    }
}

/// A plain-text response head with `status`.
pub(crate) fn plain_head(status: StatusCode) -> Response<()> {
    let mut head = Response::new(());
    *head.status_mut() = status;
    head.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    head
}

/// One request/response exchange; see the [module docs](self).
#[derive(Clone)]
pub struct Reqd(pub(crate) Rc<Exchange>);

impl fmt::Debug for Reqd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reqd")
            .field("peer", &self.0.peer)
            .field("method", self.0.request.method())
            .field("uri", self.0.request.uri())
            .field("exchange", &self.0.id)
            .finish()
    }
}

impl Reqd {
    /// The request head (method, target as sent, version, headers).
    pub fn request(&self) -> &Request<()> {
        &self.0.request
    }

    /// The peer, `(IpAddr, port)` as in the seed.
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// paf's own address and port of the connection: the address the client (or the
    /// balancer in front of it) reached. `None` when the stack cannot say.
    pub fn local(&self) -> Option<SocketAddr> {
        self.0.local
    }

    /// The request's trailer fields, once its body was read to the end ([`BodyEnd::Complete`],
    /// or `read_to_end`'s callback) and until the response finishes: HTTP/2 trailers, or an
    /// HTTP/1.1 chunked body's trailer section. Fields that may not be trailers (framing,
    /// routing, authentication, cookies...: RFC 9110 §6.5.1) are dropped. `None` when there
    /// are none or the exchange is over.
    pub fn trailers(&self) -> Option<HeaderMap> {
        let core = self.0.core.borrow();
        if core.closed {
            return None;
        }
        core.codec.request_trailers(self.0.id).cloned()
    }

    /// Whether a response was started.
    pub fn is_responded(&self) -> bool {
        self.0.phase.get() != Phase::None
    }

    /// Responds with a whole body (`Content-Length` framing). `Content-Length`,
    /// `Transfer-Encoding` and `Connection` are the codec's; `Date` and `Server` are added unless
    /// set. For HEAD requests only the length of `body` is sent.
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone; [`ReqdError::Usage`] when a response
    /// was already started or the status is 1xx.
    pub fn respond_with_bytes(
        &self,
        head: Response<()>,
        body: impl AsRef<[u8]>,
    ) -> Result<(), ReqdError> {
        self.0.respond(head, ResponseBody::Complete(body.as_ref()))
    }

    /// [`respond_with_bytes`](Self::respond_with_bytes) for a body the caller already holds as
    /// [`Bytes`] (a static page, a file kept in memory, a body taken whole from an upstream):
    /// on HTTP/1.1 a body of 16 KiB or more is sent from `body` itself instead of being copied
    /// into the connection's output buffer first. HTTP/2 copies it into its frames.
    ///
    /// # Errors
    /// As [`respond_with_bytes`](Self::respond_with_bytes).
    pub fn respond_with_shared(&self, head: Response<()>, body: Bytes) -> Result<(), ReqdError> {
        self.0
            .respond_with(head, ResponseBody::Complete(&body), Some(&body))
    }

    /// Answers `101 Switching Protocols` and hands the connection over: once the 101 is
    /// written, its bytes are no longer HTTP, and the returned [`Upgraded`] is for
    /// [`tunnel::join`](crate::tunnel::join) (dropping it closes the connection). `head`'s
    /// fields go out as given (`Upgrade`, `Sec-WebSocket-Accept`...); its status is set to 101;
    /// `Connection: upgrade` is the codec's. Bytes the client sent after its request (a first
    /// WebSocket frame) are kept for the tunnel.
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone; [`ReqdError::Usage`]
    /// ([`UsageErrorKind::NotUpgradable`]) when the request did not ask to switch (`Upgrade`
    /// with the `upgrade` connection option, HTTP/1.1), its body was not read, the service is
    /// stopping, or the connection speaks HTTP/2 (RFC 9113 §8.6: no `101` there); a response
    /// was already started.
    pub fn upgrade(&self, mut head: Response<()>) -> Result<Upgraded, ReqdError> {
        *head.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        self.switch(head)
    }

    /// Answers a CONNECT request with `head` (its status: `200` unless it is another `2xx`)
    /// and hands the connection over as [`Reqd::upgrade`] does: once the head is written the
    /// connection is a tunnel end, for [`tunnel::join`](crate::tunnel::join). The head goes out
    /// with no `Content-Length`, `Transfer-Encoding` or `Connection` (RFC 9110 §9.3.6: a 2xx
    /// CONNECT response has no content). Bytes the client sent after its CONNECT head (a TLS
    /// ClientHello sent without waiting) are kept for the tunnel.
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone; [`ReqdError::Usage`]
    /// ([`UsageErrorKind::NotUpgradable`]) when the request is not a CONNECT, its body was not
    /// read, the service is stopping, or the connection speaks HTTP/2 (CONNECT over HTTP/2,
    /// RFC 9113 §8.5, is not offered); a response was already started.
    pub fn tunnel(&self, mut head: Response<()>) -> Result<Upgraded, ReqdError> {
        if self.0.request.method() != ::http::Method::CONNECT {
            return Err(ReqdError::Usage(UsageError::new(
                UsageErrorKind::NotUpgradable,
            )));
        }
        if !head.status().is_success() {
            *head.status_mut() = StatusCode::OK;
        }
        self.switch(head)
    }

    /// The switch of [`Reqd::upgrade`] and [`Reqd::tunnel`]: `head` is a 101, or a 2xx to a
    /// CONNECT.
    fn switch(&self, head: Response<()>) -> Result<Upgraded, ReqdError> {
        let ex = &self.0;
        let now = ex.shared.now();
        let status = head.status();
        let mut core = ex.core.borrow_mut();
        if core.closed {
            return Err(ReqdError::Closed);
        }
        if core.codec.is_h2() {
            return Err(ReqdError::Usage(UsageError::new(
                UsageErrorKind::NotUpgradable,
            )));
        }
        ex.shared.set_date(&mut core, now);
        core.codec
            .respond(now, ex.id, head, ResponseBody::Empty)
            .map_err(usage)?;
        let shared = Rc::downgrade(&ex.shared);
        let conn = core.conn;
        let (hook, upgraded) = Hook::new(Rc::new(move || {
            if let Some(s) = shared.upgrade() {
                s.kick(conn);
            }
        }));
        core.upgrade = Some(hook);
        ex.status.set(status.as_u16());
        ex.phase.set(Phase::Done);
        if let Some(slot) = core.slot_mut(ex.id) {
            slot.finished = true;
        }
        ex.shared.mark(&mut core);
        drop(core);
        ex.log_access(Note::None);
        Ok(upgraded)
    }

    /// Starts a streamed response: exactly `length` bytes when `Some` (`Content-Length`), else
    /// chunked (close-delimited for HTTP/1.0 clients). Write with the returned [`BodyWriter`]
    /// and [`BodyWriter::close`] it.
    ///
    /// # Errors
    /// As [`Reqd::respond_with_bytes`].
    pub fn respond_with_streaming(
        &self,
        head: Response<()>,
        length: Option<u64>,
    ) -> Result<BodyWriter, ReqdError> {
        let body = length.map_or(ResponseBody::Chunked, ResponseBody::Length);
        self.0.respond(head, body)?;
        Ok(BodyWriter {
            ex: self.0.clone(),
            closed: false,
        })
    }

    /// Pulls request body bytes into `buf`: [`BodyRead::Pending`] means none now (use
    /// [`Reqd::schedule_read`] to be called when some arrive). The first read of a request with
    /// `Expect: 100-continue` sends `100 Continue`.
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone.
    pub fn read_body(&self, buf: &mut [u8]) -> Result<BodyRead, ReqdError> {
        let now = self.0.shared.now();
        let mut core = self.0.core.borrow_mut();
        if core.closed {
            return Err(ReqdError::Closed);
        }
        let r = core.codec.read_body(now, self.0.id, buf);
        // Reading frees body buffer space (and may queue 100 Continue): let the loop go on.
        self.0.shared.mark(&mut core);
        Ok(r)
    }

    /// Calls `on_data` once with the next chunk of the request body as soon as there is one, or
    /// `on_eof` when the body has ended; schedule again from `on_data` for more (that is the
    /// backpressure: nothing more is read from the socket than the codec's body buffer holds
    /// until then). Replaces a reader scheduled before. When the exchange is already over,
    /// `on_eof(BodyEnd::Aborted)` is called at once.
    pub fn schedule_read(
        &self,
        on_data: impl FnOnce(&[u8]) + 'static,
        on_eof: impl FnOnce(BodyEnd) + 'static,
    ) {
        let reader = Reader::Once {
            on_data: Box::new(on_data),
            on_eof: Box::new(on_eof),
        };
        if let Some(Reader::Once { on_eof, .. }) = self.install(reader) {
            on_eof(BodyEnd::Aborted);
        }
    }

    /// Collects the whole request body, then calls `done` with it; a body longer than `limit`
    /// bytes ends with [`BodyError::TooLarge`] as soon as the limit is crossed.
    pub fn read_to_end(
        &self,
        limit: usize,
        done: impl FnOnce(Result<Vec<u8>, BodyError>) + 'static,
    ) {
        let reader = Reader::ToEnd {
            limit,
            buf: Vec::new(),
            done: Box::new(done),
        };
        if let Some(Reader::ToEnd { done, .. }) = self.install(reader) {
            done(Err(BodyError::Aborted));
        }
    }

    /// Puts `reader` in the exchange's slot; gives it back when there is no slot any more.
    fn install(&self, reader: Reader) -> Option<Reader> {
        let mut core = self.0.core.borrow_mut();
        if core.closed {
            return Some(reader);
        }
        let old = match core.slot_mut(self.0.id) {
            Some(slot) if !slot.finished => {
                slot.try_read = true;
                slot.reader.replace(reader)
            }
            _ => return Some(reader),
        };
        self.0.shared.mark(&mut core);
        drop(core);
        drop(old);
        None
    }
}

/// The body of a streamed response; see [`Reqd::respond_with_streaming`].
pub struct BodyWriter {
    ex: Rc<Exchange>,
    closed: bool,
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("exchange", &self.ex.id)
            .field("closed", &self.closed)
            .finish()
    }
}

impl BodyWriter {
    /// Queues body bytes; returns how many were taken. Fewer than offered (maybe 0) when the
    /// connection's output is full or an earlier pipelined response is still being sent: call
    /// [`BodyWriter::on_writable`] and write the rest then.
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone; [`ReqdError::Usage`] after `close` or
    /// for more bytes than a declared length leaves.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, ReqdError> {
        let ex = &self.ex;
        let mut core = ex.core.borrow_mut();
        if core.closed {
            return Err(ReqdError::Closed);
        }
        let n = core
            .codec
            .write_body(ex.shared.now(), ex.id, data)
            .map_err(usage)?;
        if n < data.len() {
            if let Some(slot) = core.slot_mut(ex.id) {
                slot.blocked = true;
            }
        }
        if n > 0 {
            ex.count(n);
            ex.shared.mark(&mut core);
        }
        Ok(n)
    }

    /// Hands the writer to `f` once [`BodyWriter::write`] can take more: at the next flush if
    /// the last write was not short, else when output space frees up. `f` is called exactly once:
    /// if the connection is gone (now or later) it is called anyway, and its writes fail with
    /// [`ReqdError::Closed`].
    pub fn on_writable(self, f: impl FnOnce(BodyWriter) + 'static) {
        let ex = self.ex.clone();
        let mut core = ex.core.borrow_mut();
        let slot = match core.slot_mut(ex.id) {
            Some(slot) if !slot.finished && !self.closed => slot,
            _ => {
                drop(core);
                f(self);
                return;
            }
        };
        slot.writable_now |= !slot.blocked;
        let old = slot.on_writable.replace(Box::new(move || f(self)));
        ex.shared.mark(&mut core);
        drop(core);
        drop(old);
    }

    /// Ends the body (the final chunk for chunked framing).
    ///
    /// # Errors
    /// [`ReqdError::Closed`] when the connection is gone; [`ReqdError::Usage`] when a declared
    /// length was not reached (the response is cut short and the connection closes).
    pub fn close(self) -> Result<(), ReqdError> {
        self.close_with(None)
    }

    /// Ends the body with trailer fields (gRPC's `grpc-status`, a checksum...): an HTTP/2
    /// HEADERS frame, or HTTP/1.1 chunked framing's trailer section. HTTP/1.1 responses with a
    /// declared length (or to HTTP/1.0 clients) cannot carry them and drop them (RFC 9110
    /// §6.5); fields that may not be trailers are left out.
    ///
    /// # Errors
    /// As [`BodyWriter::close`].
    pub fn close_with_trailers(self, trailers: &HeaderMap) -> Result<(), ReqdError> {
        self.close_with(Some(trailers))
    }

    fn close_with(mut self, trailers: Option<&HeaderMap>) -> Result<(), ReqdError> {
        self.closed = true;
        let ex = &self.ex;
        let mut core = ex.core.borrow_mut();
        if core.closed {
            return Err(ReqdError::Closed);
        }
        let now = ex.shared.now();
        let r = match trailers {
            Some(t) => core.codec.finish_body_with_trailers(now, ex.id, t),
            None => core.codec.finish_body(now, ex.id),
        }
        .map_err(usage);
        ex.phase.set(Phase::Done);
        if let Some(slot) = core.slot_mut(ex.id) {
            slot.finished = true;
        }
        ex.shared.mark(&mut core);
        drop(core);
        ex.log_access(if r.is_ok() {
            Note::None
        } else {
            Note::Truncated
        });
        r
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if !self.closed && self.ex.phase.get() == Phase::Streaming {
            log::warn!(
                "{} {} {}: response body dropped without close; closing the connection",
                self.ex.peer,
                self.ex.request.method(),
                self.ex.request.uri()
            );
            self.ex.kill();
        }
    }
}

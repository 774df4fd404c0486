//! Sans-IO HTTP/1.1 client codec: the mirror of [`ServerConn`](super::ServerConn).
//!
//! [`ClientConn`] is one client-side connection as a deterministic state machine: requests in
//! ([`ClientConn::send_request`], [`ClientConn::write_body`], [`ClientConn::finish_body`]), bytes
//! out ([`ClientConn::poll_transmit`]), bytes in ([`ClientConn::handle_input`]), events out
//! ([`ClientConn::poll_event`]). It never does IO and never reads the clock; every method that
//! needs time takes `now`, and [`ClientConn::poll_timeout`] says when to call
//! [`ClientConn::handle_timeout`]. It knows nothing of sockets, TLS, DNS or pools.
//!
//! The owner's loop, per connection:
//!
//! 1. `send_request` (plus `write_body`/`finish_body` for streamed bodies; a `write_body` that
//!    accepts less than offered is followed by [`ClientEvent::Writable`]). Requests may be
//!    pipelined once the previous request's body is complete; responses are matched in order.
//! 2. Send `poll_transmit`, report with `handle_transmitted`.
//! 3. Offer received bytes to `handle_input`, keep what it did not consume and offer it again
//!    later (`wants_read` says when that can make progress); on the peer's FIN call `handle_eof`.
//! 4. Drain `poll_event`: on [`ClientEvent::Response`] and [`ClientEvent::BodyReadable`] call
//!    `read_body` until it returns `Pending` or `End`; on [`ClientEvent::Closed`] close the socket.
//! 5. Sleep until `poll_timeout`, then `handle_timeout`.
//!
//! With `Expect: 100-continue` the caller waits for [`ClientEvent::Continue`] (or a final
//! response) before writing the body, and decides how long to wait (RFC 9110 §10.1.1: send the
//! body anyway after a short while); the response timer starts once the whole request is out.
//!
//! Between requests a pool asks [`ClientConn::is_reusable`]: HTTP/1.1 without
//! `Connection: close` (or HTTP/1.0 with `keep-alive`), not close-delimited, every response fully
//! read, nothing in flight.
//!
//! Peer faults and timeouts are one [`ClientError`] per connection (then the connection is
//! closed, and later pipelined requests are [`ClientEvent::Aborted`]); local misuse is a
//! [`UsageError`]. The response framing rules are listed in the `head` module docs.
//!
//! Upgrades: a request with `Upgrade` and the `upgrade` connection option may be answered
//! `101 Switching Protocols`: the codec reports it as [`ClientEvent::Response`] (status 101,
//! its fields kept, no body), reads nothing more and accepts no more requests
//! ([`ClientConn::is_switched`]); the bytes after the 101's head are the new protocol's and
//! stay unconsumed for the owner. A 101 to any other request is a [`ClientError::Malformed`].
//! CONNECT is refused ([`UsageError::UnsupportedMethod`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

mod config;
mod error;
mod head;
mod read;
#[cfg(test)]
mod tests;

pub use super::BodyRead;
pub use config::Config;
pub use error::{ClientError, UsageError};

use super::body::{self, Decoder};
use head::{ReqFraming, RequestInfo};

/// Identifies one request of a connection; increasing in send order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The id with sequence number `n` (for the HTTP/2 codec, which numbers its own).
    pub(crate) fn from_u64(n: u64) -> Self {
        RequestId(n)
    }

    /// The sequence number: 0 for the first request of the connection, then 1, 2, …
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// The body of a request, chosen by the caller of [`ClientConn::send_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody<'a> {
    /// No body: `Content-Length: 0` for POST, PUT and PATCH, no framing header otherwise.
    Empty,
    /// The whole body, now: `Content-Length` framing, no further calls needed.
    Complete(&'a [u8]),
    /// Exactly this many bytes follow through `write_body`, then `finish_body`.
    Length(u64),
    /// An unknown amount follows through `write_body`, then `finish_body`: chunked.
    Chunked,
}

/// What happened on the connection; drained with [`ClientConn::poll_event`].
#[derive(Debug)]
pub enum ClientEvent {
    /// `100 Continue` arrived for a request sent with `Expect: 100-continue`: send its body.
    /// (Other interim responses are skipped.)
    Continue {
        /// The request that may send its body.
        id: RequestId,
    },
    /// The final response head of `id` (in request order). Read its body with `read_body`; a
    /// response without a body (HEAD, 204, 304, `Content-Length: 0`) reads `End` at once and
    /// gets no `BodyReadable`.
    Response {
        /// The request answered.
        id: RequestId,
        /// The response head (the reason phrase is dropped).
        head: http::Response<()>,
    },
    /// Body bytes became available for `id` (the buffer went from empty to non-empty) or the
    /// body ended: call `read_body` until it returns `Pending`.
    BodyReadable {
        /// The request whose response body can be read.
        id: RequestId,
    },
    /// Output space became available for the streamed body of `id`, after `write_body` accepted
    /// less than offered.
    Writable {
        /// The request that may write again.
        id: RequestId,
    },
    /// `id` will get no response on this connection: an earlier response closed it, the
    /// connection failed, or its own body was cut short. Nothing of its response was received,
    /// so an idempotent request may be retried on a new connection.
    Aborted {
        /// The request that got no response.
        id: RequestId,
    },
    /// The server violated the protocol, closed too early, or a timeout fired. At most one per
    /// connection, followed by `Aborted` for later requests and `Closed`. `id` is the request
    /// whose response failed; `None` for bytes that arrived with no request in flight.
    Error {
        /// The request whose response failed, if any.
        id: Option<RequestId>,
        /// What went wrong.
        error: ClientError,
    },
    /// Nothing more will be read or written: close the socket. Response bodies received in full
    /// stay readable with `read_body`.
    Closed,
}

/// Writing state of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyOut {
    /// Bytes left of a declared length.
    Length(u64),
    Chunked,
    /// The connection is ending: bytes are accepted and dropped.
    Discard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Response {
    /// No final response head yet.
    Waiting,
    /// Head received, body being read.
    Body,
    /// Head and body received (the body may still be buffered).
    Done,
}

#[derive(Debug)]
struct Exchange {
    id: RequestId,
    info: RequestInfo,
    /// `Some` while the request body is streamed.
    streaming: Option<BodyOut>,
    /// Where the request ends, counted in bytes ever queued; `None` while streaming.
    req_end: Option<u64>,
    response: Response,
    /// A response byte (interim included) arrived.
    answered: bool,
    continued: bool,
    /// No response is read after this exchange's.
    close_after: bool,
    body: Vec<u8>,
    body_pos: usize,
    want_writable: bool,
}

impl Exchange {
    fn buffered(&self) -> usize {
        self.body.len() - self.body_pos
    }
}

#[derive(Debug)]
enum BodyIn {
    Framed(Decoder),
    /// Until EOF.
    Eof,
}

#[derive(Debug)]
enum Reader {
    /// Expecting a (final or interim) response head for the first waiting exchange.
    Head,
    Body {
        id: RequestId,
        decoder: BodyIn,
        /// Payload bytes so far, for `max_body_size` on close-delimited bodies.
        received: u64,
    },
    Stopped,
    /// A 101 switched the connection to another protocol: nothing more is HTTP.
    Switched,
}

/// One client-side HTTP/1.1 connection; see the [module docs](self).
#[derive(Debug)]
pub struct ClientConn {
    config: Arc<Config>,
    next_id: u64,
    /// Requests below this id were answered in full and retired.
    retired: u64,
    exchanges: VecDeque<Exchange>,
    reader: Reader,
    head_buf: Vec<u8>,
    scanned: usize,
    /// Bytes of the next response head were received.
    head_bytes: bool,
    interim: usize,
    wait_since: Option<Instant>,
    read_progress: Instant,
    write_progress: Instant,
    out: Vec<u8>,
    out_pos: usize,
    transmitted: u64,
    events: VecDeque<ClientEvent>,
    /// New requests may be sent (no `Connection: close` either way yet).
    accepting: bool,
    failed: bool,
    closed: bool,
}

impl ClientConn {
    /// A connection established at `now`.
    pub fn new(config: Arc<Config>, now: Instant) -> Self {
        ClientConn {
            config,
            next_id: 0,
            retired: 0,
            exchanges: VecDeque::new(),
            reader: Reader::Head,
            head_buf: Vec::new(),
            scanned: 0,
            head_bytes: false,
            interim: 0,
            wait_since: None,
            read_progress: now,
            write_progress: now,
            out: Vec::new(),
            out_pos: 0,
            transmitted: 0,
            events: VecDeque::new(),
            accepting: true,
            failed: false,
            closed: false,
        }
    }

    /// Queues a request: serializes `head` (always as HTTP/1.1, origin-form target, `Host`
    /// from the URI authority unless set) with the framing `body` implies; `Content-Length` and
    /// `Transfer-Encoding` are the codec's. A `Connection: close` request is the last one.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotAccepting`] when the connection is closed or closing,
    /// [`UsageError::RequestInProgress`] while an earlier body streams,
    /// [`UsageError::MissingHost`] or [`UsageError::UnsupportedMethod`] for a request that
    /// cannot be sent. Nothing is queued then.
    pub fn send_request(
        &mut self,
        now: Instant,
        head: &http::Request<()>,
        body: RequestBody<'_>,
    ) -> Result<RequestId, UsageError> {
        if !self.can_send_request() {
            let streaming = self.exchanges.back().is_some_and(|x| x.streaming.is_some());
            return Err(if streaming && self.accepting && !self.closed {
                UsageError::RequestInProgress
            } else {
                UsageError::NotAccepting
            });
        }
        let framing = match body {
            RequestBody::Empty if head::wants_zero_length(head.method()) => ReqFraming::Length(0),
            RequestBody::Empty => ReqFraming::None,
            RequestBody::Complete(b) => ReqFraming::Length(b.len() as u64),
            RequestBody::Length(n) => ReqFraming::Length(n),
            RequestBody::Chunked => ReqFraming::Chunked,
        };
        let was_idle = self.pending() == 0;
        compact(&mut self.out, &mut self.out_pos);
        let start = self.out.len();
        let info = head::write_request(&mut self.out, head, framing).inspect_err(|_| {
            self.out.truncate(start);
        })?;
        if let RequestBody::Complete(b) = body {
            self.out.extend_from_slice(b);
        }
        if was_idle {
            self.write_progress = now;
        }
        let streaming = match body {
            RequestBody::Length(n) if n > 0 => Some(BodyOut::Length(n)),
            RequestBody::Chunked => Some(BodyOut::Chunked),
            _ => None,
        };
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.accepting &= !info.close;
        self.exchanges.push_back(Exchange {
            id,
            info,
            streaming,
            req_end: streaming.is_none().then(|| self.queued()),
            response: Response::Waiting,
            answered: false,
            continued: false,
            close_after: info.close,
            body: Vec::new(),
            body_pos: 0,
            want_writable: false,
        });
        self.pump(now);
        Ok(id)
    }

    /// Writes streamed body bytes of `id`; returns how many were accepted (chunk framing is
    /// added by the codec). Accepts fewer than offered (maybe 0) when `request_buffer_size` bytes
    /// are pending; [`ClientEvent::Writable`] follows. Once the connection is ending (an early
    /// response closed it, or it failed) bytes are accepted and dropped.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotStreaming`] when `id`'s body is not being streamed,
    /// [`UsageError::BodyTooLong`] for more bytes than a declared length leaves.
    pub fn write_body(
        &mut self,
        now: Instant,
        id: RequestId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        let pending = self.pending();
        let x = self
            .exchanges
            .back_mut()
            .filter(|x| x.id == id)
            .ok_or(UsageError::NotStreaming)?;
        let mode = x.streaming.ok_or(UsageError::NotStreaming)?;
        match mode {
            BodyOut::Discard => return Ok(data.len()),
            BodyOut::Length(left) if data.len() as u64 > left => {
                return Err(UsageError::BodyTooLong)
            }
            _ => {}
        }
        let n = data
            .len()
            .min(self.config.request_buffer_size.saturating_sub(pending));
        if n < data.len() {
            x.want_writable = true;
        }
        if n == 0 {
            return Ok(0);
        }
        if pending == 0 {
            self.write_progress = now;
        }
        compact(&mut self.out, &mut self.out_pos);
        if let BodyOut::Length(left) = mode {
            x.streaming = Some(BodyOut::Length(left - n as u64));
            self.out.extend_from_slice(&data[..n]);
        } else {
            head::write_chunk(&mut self.out, &data[..n]);
        }
        Ok(n)
    }

    /// Ends the streamed body of `id` (the last chunk for chunked bodies).
    ///
    /// # Errors
    ///
    /// [`UsageError::NotStreaming`] when `id`'s body is not being streamed;
    /// [`UsageError::BodyTooShort`] before a declared length was reached: the request's framing
    /// is broken, so the connection is closed at once (`id` and every request still waiting for
    /// a response get [`ClientEvent::Aborted`], then [`ClientEvent::Closed`]).
    pub fn finish_body(&mut self, now: Instant, id: RequestId) -> Result<(), UsageError> {
        let queued = self.queued();
        let x = self
            .exchanges
            .back_mut()
            .filter(|x| x.id == id)
            .ok_or(UsageError::NotStreaming)?;
        let mode = x.streaming.take().ok_or(UsageError::NotStreaming)?;
        let mut end = queued;
        match mode {
            BodyOut::Length(left) if left > 0 => {
                self.abort_waiting(None);
                self.shut();
                return Err(UsageError::BodyTooShort);
            }
            BodyOut::Chunked => {
                end += body::CHUNKED_END.len() as u64;
                if self.out_pos == self.out.len() {
                    self.write_progress = now;
                }
                self.out.extend_from_slice(body::CHUNKED_END);
            }
            BodyOut::Length(_) | BodyOut::Discard => {}
        }
        x.req_end = Some(end);
        self.pump(now);
        Ok(())
    }

    /// Copies response body bytes of `id` into `buf`. `End` once the whole body was read (also
    /// for requests answered and retired earlier); `Pending` while more is expected, and for
    /// unknown or aborted requests (so a truncated body never looks complete). Freeing buffer
    /// space may make `wants_read` true again.
    pub fn read_body(&mut self, now: Instant, id: RequestId, buf: &mut [u8]) -> BodyRead {
        if id.0 < self.retired {
            return BodyRead::End;
        }
        let Some(i) = self.index(id) else {
            return BodyRead::Pending;
        };
        let cap = self.config.body_buffer_size;
        let x = &mut self.exchanges[i];
        let buffered = x.buffered();
        let n = buffered.min(buf.len());
        let result = if n > 0 {
            buf[..n].copy_from_slice(&x.body[x.body_pos..x.body_pos + n]);
            x.body_pos += n;
            if x.body_pos == x.body.len() {
                x.body.clear();
                x.body_pos = 0;
            }
            if buffered >= cap {
                self.read_progress = now; // the read timer was paused while full
            }
            BodyRead::Data(n)
        } else if x.response == Response::Done {
            BodyRead::End
        } else {
            BodyRead::Pending
        };
        self.pump(now);
        result
    }

    /// The whole response body of `id` at once, when all of it has arrived: its bytes are
    /// appended to `into` and `true` is returned; the request is then answered in full (a
    /// later [`read_body`](Self::read_body) says `End`). `false`, taking nothing, while more
    /// is expected, and for unknown or retired requests. Lets a caller skip the chunk-by-chunk
    /// reads when a small body came with its head.
    pub fn take_complete_body(&mut self, now: Instant, id: RequestId, into: &mut Vec<u8>) -> bool {
        let Some(i) = self.index(id) else {
            return false;
        };
        let x = &mut self.exchanges[i];
        if x.response != Response::Done {
            return false;
        }
        into.extend_from_slice(&x.body[x.body_pos..]);
        x.body.clear();
        x.body_pos = 0;
        self.pump(now);
        true
    }

    /// The next event, if any. Call after every `handle_*`, `send_request`, `read_body` and
    /// `finish_body`.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes ready to send (a prefix of the pending output); report with `handle_transmitted`.
    pub fn poll_transmit(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were sent.
    pub fn handle_transmitted(&mut self, now: Instant, n: usize) {
        let n = n.min(self.pending());
        if n > 0 {
            self.out_pos += n;
            self.transmitted += n as u64;
            self.write_progress = now;
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
        }
        self.pump(now);
    }

    /// The earliest deadline, if any; call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let c = &self.config;
        let response = self.wait_since.map(|t| t + c.response_timeout);
        let read = self
            .read_timer_running()
            .then(|| self.read_progress + c.read_timeout);
        let write = (self.pending() > 0).then(|| self.write_progress + c.write_timeout);
        [response, read, write].into_iter().flatten().min()
    }

    /// Fires the deadlines at or before `now`: stalled output, a late response or a stalled
    /// response each end the connection with one [`ClientEvent::Error`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let c = Arc::clone(&self.config);
        let waiting = self.waiting().map(|i| self.exchanges[i].id);
        if self.pending() > 0 && self.write_progress + c.write_timeout <= now {
            let writing = self
                .exchanges
                .iter()
                .find(|x| x.req_end.is_none_or(|end| end > self.transmitted))
                .map(|x| x.id);
            self.fail(writing.or(waiting), ClientError::WriteTimeout);
        } else if self
            .wait_since
            .is_some_and(|t| t + c.response_timeout <= now)
        {
            self.fail(waiting, ClientError::ResponseTimeout);
        } else if self.read_timer_running() && self.read_progress + c.read_timeout <= now {
            let reading = match self.reader {
                Reader::Body { id, .. } => Some(id),
                _ => waiting,
            };
            self.fail(reading, ClientError::ReadTimeout);
        }
        self.pump(now);
    }

    /// Whether [`send_request`](Self::send_request) would accept a request now.
    pub fn can_send_request(&self) -> bool {
        !self.closed
            && self.accepting
            && !matches!(self.reader, Reader::Stopped | Reader::Switched)
            && self.exchanges.back().is_none_or(|x| x.streaming.is_none())
    }

    /// Requests sent whose final response has not been received in full.
    pub fn in_flight(&self) -> usize {
        self.exchanges
            .iter()
            .filter(|x| x.response != Response::Done)
            .count()
    }

    /// Nothing in flight, every response read, nothing left to transmit (the connection may
    /// still be closing).
    pub fn is_idle(&self) -> bool {
        !self.closed && self.exchanges.is_empty() && self.pending() == 0
    }

    /// Whether a pool may send the next request on this connection: idle, keep-alive (no
    /// `Connection: close` either way, not close-delimited), not closed or failed.
    pub fn is_reusable(&self) -> bool {
        self.is_idle() && self.accepting && matches!(self.reader, Reader::Head) && !self.head_bytes
    }

    /// [`ClientEvent::Closed`] was emitted.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether offering input to `handle_input` can make progress now.
    pub fn wants_read(&self) -> bool {
        match &self.reader {
            _ if self.closed => false,
            Reader::Head => true,
            Reader::Body { id, .. } => self
                .index(*id)
                .is_some_and(|i| self.exchanges[i].buffered() < self.config.body_buffer_size),
            Reader::Stopped | Reader::Switched => false,
        }
    }

    /// Whether a `101 Switching Protocols` ended HTTP on this connection (see the
    /// [module docs](self)).
    pub fn is_switched(&self) -> bool {
        matches!(self.reader, Reader::Switched)
    }

    // ---- bookkeeping ----

    /// Retires answered exchanges, emits `Writable`, runs the response timer, and closes once
    /// the reader has stopped.
    fn pump(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        while let Some(x) = self.exchanges.front() {
            if x.response != Response::Done || x.buffered() > 0 || x.streaming.is_some() {
                break;
            }
            self.retired = x.id.0 + 1;
            self.exchanges.pop_front();
        }
        let low_water = self.config.request_buffer_size / 2;
        let pending = self.pending();
        if let Some(x) = self.exchanges.back_mut() {
            if x.want_writable && pending <= low_water {
                x.want_writable = false;
                self.events.push_back(ClientEvent::Writable { id: x.id });
            }
        }
        let sent = |x: &Exchange| x.req_end.is_some_and(|end| end <= self.transmitted);
        if matches!(self.reader, Reader::Head) && !self.head_bytes {
            match self.waiting().map(|i| &self.exchanges[i]) {
                Some(x) if sent(x) => {
                    self.wait_since.get_or_insert(now);
                }
                _ => self.wait_since = None,
            }
        } else {
            self.wait_since = None;
        }
        if matches!(self.reader, Reader::Stopped) {
            self.shut();
        }
    }

    /// Reports one peer fault, aborts what waits for a response, and closes.
    fn fail(&mut self, id: Option<RequestId>, error: ClientError) {
        if self.failed || self.closed {
            return;
        }
        self.failed = true;
        log::debug!("http client: {error} (request {id:?})");
        self.events.push_back(ClientEvent::Error { id, error });
        self.abort_waiting(id);
        self.shut();
    }

    /// Drops every exchange still waiting for (the rest of) its response, with `Aborted` for
    /// each except `reported` (which got an `Error`).
    fn abort_waiting(&mut self, reported: Option<RequestId>) {
        let events = &mut self.events;
        self.exchanges.retain(|x| {
            if x.response == Response::Done {
                return true;
            }
            if Some(x.id) != reported {
                events.push_back(ClientEvent::Aborted { id: x.id });
            }
            false
        });
    }

    /// Stops everything: no more reading or writing, streamed bodies are dropped from now on.
    fn shut(&mut self) {
        if self.closed {
            return;
        }
        self.reader = Reader::Stopped;
        self.head_buf = Vec::new();
        self.head_bytes = false;
        self.wait_since = None;
        self.out = Vec::new();
        self.out_pos = 0;
        self.accepting = false;
        for x in &mut self.exchanges {
            if x.streaming.is_some() {
                x.streaming = Some(BodyOut::Discard);
            }
        }
        self.closed = true;
        self.events.push_back(ClientEvent::Closed);
    }

    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Bytes ever queued for output.
    fn queued(&self) -> u64 {
        self.transmitted + self.pending() as u64
    }

    fn index(&self, id: RequestId) -> Option<usize> {
        self.exchanges.binary_search_by_key(&id, |x| x.id).ok()
    }

    /// The first exchange without a final response head.
    fn waiting(&self) -> Option<usize> {
        self.exchanges
            .iter()
            .position(|x| x.response == Response::Waiting)
    }

    fn read_timer_running(&self) -> bool {
        match &self.reader {
            Reader::Head => self.head_bytes,
            Reader::Body { id, .. } => self
                .index(*id)
                .is_some_and(|i| self.exchanges[i].buffered() < self.config.body_buffer_size),
            Reader::Stopped | Reader::Switched => false,
        }
    }
}

/// Drops transmitted bytes once they are at least half the buffer, so appends stay amortized.
fn compact(out: &mut Vec<u8>, pos: &mut usize) {
    if *pos > 0 && *pos * 2 >= out.len() {
        out.drain(..*pos);
        *pos = 0;
    }
}

//! The server connection state machine.
//!
//! One direction each: the reader ([`Reader`]: head, body, stopped) consumes input in order and
//! creates exchanges; the writer serializes responses in exchange order into one output buffer.
//! An exchange lives in the queue from its head until its response is completely in the output
//! buffer; the reader decides, after each body, whether another head may follow (persistence),
//! and the connection is closed once the reader has stopped, no exchange is left and every output
//! byte has been transmitted.
//!
//! Timers are plain `Option<Instant>` bases, turned into deadlines on demand; extra wake-ups are
//! harmless.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;

mod in_place;
mod read;

use super::body::{self, Decoder};
use super::error::UsageErrorKind;
pub use super::event::{BodyRead, Event, ExchangeId, ResponseBody};
use super::head::HeadScan;
use super::write::{self, Framing, HttpDate, Persist};
use super::{Config, Error, UsageError};

/// Buffers kept for reuse by later exchanges of the same connection.
const POOL: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No `100-continue` expected, or no longer possible.
    None,
    /// The client waits for `100 Continue` before sending the body.
    Pending,
    /// The handler read the body: send `100 Continue` when this exchange reaches the front.
    Wanted,
    /// `100 Continue` is in the output.
    Sent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyOut {
    Length(u64),
    Chunked,
    /// Close-delimited (HTTP/1.0 streaming).
    Raw,
    /// Bodiless response: bytes are dropped.
    Discard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Response {
    None,
    Streaming(BodyOut),
    Finished,
}

#[derive(Debug)]
struct Exchange {
    id: ExchangeId,
    is_head: bool,
    http10: bool,
    /// The request permits another exchange after this one.
    keep_alive: bool,
    expect: Expect,
    body: Vec<u8>,
    body_pos: usize,
    /// The request body was fully received, or it is no longer this exchange's business.
    body_done: bool,
    /// The request's trailer fields (chunked bodies), once the body is complete.
    trailers: Option<http::HeaderMap>,
    response: Response,
    /// Output prepared while an earlier exchange still writes.
    side: Vec<u8>,
    /// The response head is in the output buffer.
    started: bool,
    want_writable: bool,
    close_after: bool,
    /// The request asked to switch protocols (see [`Reader::Upgrade`]).
    upgrade: bool,
    /// A CONNECT request: a 2xx answer makes the connection a tunnel (RFC 9110 §9.3.6).
    connect: bool,
}

#[derive(Debug)]
enum Reader {
    Head,
    /// The request `id` asked to switch protocols (`Upgrade`): what follows it may not be
    /// HTTP, so nothing is read until its response. A `101` switches (the rest is the new
    /// protocol's, left unconsumed for the owner); any other status resumes reading heads.
    Upgrade {
        id: ExchangeId,
    },
    Body {
        id: ExchangeId,
        decoder: Decoder,
        /// Bytes still allowed to be dropped, once the exchange's response finished unread.
        discard: Option<u64>,
    },
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorState {
    None,
    /// `Event::Error` emitted; waiting for `respond_error`. `send` is false when the failed
    /// exchange's own response is already under way.
    Awaiting {
        send: bool,
    },
    Answered,
}

/// One server-side HTTP/1.1 connection; see the [module docs](super).
#[derive(Debug)]
pub struct ServerConn {
    config: Arc<Config>,
    date: Option<HttpDate>,
    next_id: u64,
    exchanges: VecDeque<Exchange>,
    reader: Reader,
    /// Exchange after which no head is read.
    stop_after: Option<ExchangeId>,
    head_buf: Vec<u8>,
    scan: HeadScan,
    /// A CR of an empty line before a request was consumed; LF must follow.
    skip_lf: bool,
    /// Non-empty-line bytes of the next head were received.
    head_bytes: bool,
    head_start: Option<Instant>,
    idle_since: Option<Instant>,
    body_progress: Instant,
    write_progress: Instant,
    drain_deadline: Option<Instant>,
    shutting_down: bool,
    error: ErrorState,
    error_out: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    events: VecDeque<Event>,
    closed: bool,
    /// A `101` was queued for this exchange: the connection switches once it is transmitted.
    switch_at: Option<ExchangeId>,
    /// [`Event::Switched`] was emitted.
    switched: bool,
    pool: Vec<Vec<u8>>,
}

impl ServerConn {
    /// A connection accepted at `now`. The first head must be complete within `head_timeout`.
    pub fn new(config: Arc<Config>, now: Instant) -> Self {
        ServerConn {
            config,
            date: None,
            next_id: 0,
            exchanges: VecDeque::new(),
            reader: Reader::Head,
            stop_after: None,
            head_buf: Vec::new(),
            scan: HeadScan::default(),
            skip_lf: false,
            head_bytes: false,
            head_start: Some(now),
            idle_since: None,
            body_progress: now,
            write_progress: now,
            drain_deadline: None,
            shutting_down: false,
            error: ErrorState::None,
            error_out: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            events: VecDeque::new(),
            closed: false,
            switch_at: None,
            switched: false,
            pool: Vec::new(),
        }
    }

    /// Sets the `Date` value for responses serialized from now on. Until it is called no `Date`
    /// header is added; call it at least once a second (one [`super::DateCache`] per loop).
    pub fn set_date(&mut self, date: HttpDate) {
        self.date = Some(date);
    }

    /// Feeds bytes from the peer; returns how many were consumed.
    ///
    /// Consumes less than offered when a body buffer is full, `max_pipelined` requests wait for
    /// answers, the connection stops reading (error, `Connection: close`, shutdown), or is
    /// closed. Keep the rest and offer it again, with more appended, once `wants_read` is true.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let mut consumed = 0;
        while !self.closed {
            let rest = &bytes[consumed..];
            let n = match self.reader {
                Reader::Stopped | Reader::Upgrade { .. } => break,
                Reader::Head if self.exchanges.len() > self.config.max_pipelined => break,
                Reader::Head if rest.is_empty() => break,
                Reader::Head => self.read_head(now, rest),
                Reader::Body { .. } => match self.read_body_bytes(now, rest) {
                    Some(n) => n,
                    None => break,
                },
            };
            consumed += n;
        }
        self.pump(now);
        consumed
    }

    /// The peer closed its sending side (FIN). In-flight exchanges are still answered; a partial
    /// head or body is an [`Error::UnexpectedEof`].
    pub fn handle_eof(&mut self, now: Instant) {
        match &self.reader {
            Reader::Head if self.head_bytes => self.fail(None, Error::UnexpectedEof),
            Reader::Body {
                id, discard: None, ..
            } => {
                let id = *id;
                self.fail(Some(id), Error::UnexpectedEof);
            }
            _ => self.stop_reading(),
        }
        self.pump(now);
    }

    /// The earliest deadline, if any; call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let c = &self.config;
        let head = match self.reader {
            Reader::Head => self.head_start.map(|t| t + c.head_timeout),
            _ => None,
        };
        let idle = match self.reader {
            Reader::Head => self.idle_since.map(|t| t + c.idle_timeout),
            _ => None,
        };
        let body = self
            .body_timer_running()
            .then(|| self.body_progress + c.body_timeout);
        let write = (self.pending() > 0).then(|| self.write_progress + c.write_timeout);
        [head, idle, body, write, self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires every deadline at or before `now`: a stalled head or body gets an
    /// [`Event::Error`] (408), an idle connection closes silently, stalled output or an expired
    /// drain closes at once (pending output is dropped).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let c = Arc::clone(&self.config);
        let due = |t: Option<Instant>, d| t.is_some_and(|t| t + d <= now);
        if self.drain_deadline.is_some_and(|t| t <= now)
            || (self.pending() > 0 && self.write_progress + c.write_timeout <= now)
        {
            self.force_close();
            return;
        }
        match self.reader {
            Reader::Head if due(self.head_start, c.head_timeout) => {
                if self.head_bytes {
                    self.fail(None, Error::HeaderTimeout);
                } else {
                    self.stop_reading();
                }
            }
            Reader::Head if due(self.idle_since, c.idle_timeout) => self.stop_reading(),
            Reader::Body { id, discard, .. }
                if self.body_timer_running() && self.body_progress + c.body_timeout <= now =>
            {
                if discard.is_some() {
                    self.stop_reading();
                } else {
                    self.fail(Some(id), Error::BodyTimeout);
                }
            }
            _ => {}
        }
        self.pump(now);
    }

    /// The next event, if any. Call after every `handle_*` and after answering events.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`poll_event`](Self::poll_event) has an event to give.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Copies request body bytes of `id` into `buf`.
    ///
    /// The first call on a request with `Expect: 100-continue` queues `100 Continue` (unless a
    /// final response was already given). Freeing buffer space may make `wants_read` true again.
    pub fn read_body(&mut self, now: Instant, id: ExchangeId, buf: &mut [u8]) -> BodyRead {
        self.hand_body(now, id, |body, pos| {
            let n = (body.len() - *pos).min(buf.len());
            buf[..n].copy_from_slice(&body[*pos..*pos + n]);
            *pos += n;
            if *pos == body.len() {
                body.clear();
                *pos = 0;
            }
            n
        })
    }

    /// [`read_body`](Self::read_body) handing over every buffered byte at once, by swapping
    /// buffers instead of copying: `into` is cleared and comes back holding the bytes (its
    /// old allocation stays with the codec for what comes next). The bytes are the body's in
    /// order; [`BodyRead::Data`] gives their number (`into.len()`).
    pub fn take_body(&mut self, now: Instant, id: ExchangeId, into: &mut Vec<u8>) -> BodyRead {
        into.clear();
        self.hand_body(now, id, |body, pos| {
            if *pos == 0 {
                std::mem::swap(body, into);
            } else {
                into.extend_from_slice(&body[*pos..]);
                body.clear();
                *pos = 0;
            }
            into.len()
        })
    }

    /// What [`read_body`](Self::read_body) and [`take_body`](Self::take_body) share: `100
    /// Continue` on the first read, and the body timer; `out` moves bytes out of the buffered
    /// body (the buffer and its read position) when there are some, and says how many.
    fn hand_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        out: impl FnOnce(&mut Vec<u8>, &mut usize) -> usize,
    ) -> BodyRead {
        let Some(i) = self.index(id) else {
            return BodyRead::Pending;
        };
        let cap = self.config.body_buffer_size;
        let x = &mut self.exchanges[i];
        if x.expect == Expect::Pending && x.response == Response::None && !x.body_done {
            x.expect = Expect::Wanted;
            self.body_progress = now;
        }
        let buffered = x.body.len() - x.body_pos;
        let result = if buffered > 0 {
            let n = out(&mut x.body, &mut x.body_pos);
            if buffered >= cap {
                self.body_progress = now; // the body timer was paused while full
            }
            BodyRead::Data(n)
        } else if x.body_done {
            BodyRead::End
        } else {
            BodyRead::Pending
        };
        self.pump(now);
        result
    }

    /// Starts the response of `id`: serializes `head` with the framing `body` implies. Adds
    /// `Date` and `Server` unless set; `Content-Length`, `Transfer-Encoding` and `Connection` are
    /// the codec's (a handler `Connection: close` closes the connection after this response).
    ///
    /// A `101 Switching Protocols` answers a request that asked to switch (`Upgrade` with the
    /// `upgrade` connection option, HTTP/1.1, its body read): the head goes out with
    /// `Connection: upgrade` and no body (`body` is ignored); once it is transmitted the codec
    /// reports [`Event::Switched`] and the connection's bytes are the new protocol's. Any other
    /// answer to such a request resumes HTTP.
    ///
    /// A `2xx` to a CONNECT request (its body, if any, read) switches the same way: the head
    /// goes out with no `Content-Length`, `Transfer-Encoding` or `Connection` (RFC 9110
    /// §9.3.6: a 2xx CONNECT response has no content), then [`Event::Switched`]; what the
    /// client sent after its CONNECT head is left unconsumed for the tunnel. Any other answer to
    /// a CONNECT closes the connection after it (nothing after a CONNECT is read as HTTP).
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, a second response, a 1xx status other than a `101`
    /// to a request that can switch, a 2xx to a CONNECT that cannot switch (its body unread,
    /// the connection stopping).
    pub fn respond(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: ResponseBody<'_>,
    ) -> Result<(), UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let status = head.status();
        let x = &mut self.exchanges[i];
        if x.response != Response::None {
            return Err(usage(UsageErrorKind::AlreadyResponded));
        }
        if status == StatusCode::SWITCHING_PROTOCOLS || (x.connect && status.is_success()) {
            return self.switch(now, i, &head);
        }
        if status.is_informational() {
            return Err(usage(UsageErrorKind::InformationalStatus));
        }
        if std::mem::take(&mut x.upgrade)
            && matches!(self.reader, Reader::Upgrade { id: u } if u == id)
        {
            // Not switching: HTTP goes on after this request.
            self.after_body(id);
        }
        let x = &mut self.exchanges[i];
        let handler_close = super::head::all(head.headers(), &http::header::CONNECTION)
            .any(|v| has_token(v.as_bytes(), b"close"));
        // A final response without 100 Continue: the client may or may not send the body.
        let unsent_continue = matches!(x.expect, Expect::Pending | Expect::Wanted) && !x.body_done;
        if matches!(x.expect, Expect::Pending | Expect::Wanted) {
            x.expect = Expect::None;
        }
        let bodiless =
            x.is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let (framing, out_mode) = if bodiless {
            let framing = match body {
                _ if status == StatusCode::NO_CONTENT => Framing::None,
                _ if status == StatusCode::NOT_MODIFIED => Framing::Handler,
                ResponseBody::Empty => Framing::Handler,
                ResponseBody::Complete(b) => Framing::Length(b.len() as u64),
                ResponseBody::Length(n) => Framing::Length(n),
                ResponseBody::Chunked if x.http10 => Framing::Handler,
                ResponseBody::Chunked => Framing::Chunked,
            };
            (framing, BodyOut::Discard)
        } else {
            match body {
                ResponseBody::Empty => (Framing::Length(0), BodyOut::Discard),
                ResponseBody::Complete(b) => (Framing::Length(b.len() as u64), BodyOut::Discard),
                ResponseBody::Length(n) => (Framing::Length(n), BodyOut::Length(n)),
                ResponseBody::Chunked if x.http10 => (Framing::Close, BodyOut::Raw),
                ResponseBody::Chunked => (Framing::Chunked, BodyOut::Chunked),
            }
        };
        let close = x.close_after
            || !x.keep_alive
            || handler_close
            || unsent_continue
            || out_mode == BodyOut::Raw;
        x.close_after = close;
        let persist = match (close, x.http10) {
            (true, _) => Persist::Close,
            (false, true) => Persist::KeepAlive,
            (false, false) => Persist::Default,
        };
        let complete = matches!(body, ResponseBody::Empty | ResponseBody::Complete(_));
        x.response = if complete {
            Response::Finished
        } else {
            Response::Streaming(out_mode)
        };
        let server = self.config.server_name.as_deref();
        let date = self.date.as_ref();
        let dst = if i == 0 {
            x.started = true;
            if self.out_pos == self.out.len() {
                self.write_progress = now;
            }
            compact(&mut self.out, &mut self.out_pos);
            &mut self.out
        } else {
            &mut x.side
        };
        write::write_head(dst, &head, framing, persist, date, server);
        if let (ResponseBody::Complete(b), false) = (body, bodiless) {
            dst.extend_from_slice(b);
        }
        if close {
            self.stop_reading_after(id);
        }
        if complete {
            self.on_finished(id);
        }
        self.pump(now);
        Ok(())
    }

    /// The `101` of exchange `i`, or the `2xx` of its CONNECT; see [`ServerConn::respond`].
    fn switch(
        &mut self,
        now: Instant,
        i: usize,
        head: &http::Response<()>,
    ) -> Result<(), UsageError> {
        let x = &mut self.exchanges[i];
        let id = x.id;
        // An upgrade waits for its answer; a CONNECT stopped reading at its end.
        let can = if x.connect {
            head.status().is_success() && matches!(self.reader, Reader::Stopped)
        } else {
            x.upgrade && matches!(self.reader, Reader::Upgrade { id: u } if u == id)
        };
        if !can || !x.body_done || self.shutting_down {
            return Err(usage(UsageErrorKind::NotUpgradable));
        }
        let persist = if x.connect {
            Persist::None
        } else {
            Persist::Upgrade
        };
        x.response = Response::Finished;
        x.expect = Expect::None;
        let (date, server) = (self.date.as_ref(), self.config.server_name.as_deref());
        let dst = if i == 0 {
            x.started = true;
            if self.out_pos == self.out.len() {
                self.write_progress = now;
            }
            compact(&mut self.out, &mut self.out_pos);
            &mut self.out
        } else {
            &mut x.side
        };
        write::write_head(dst, head, Framing::None, persist, date, server);
        self.switch_at = Some(id);
        self.on_finished(id);
        self.pump(now);
        Ok(())
    }

    /// Whether the connection switched protocols, after a `101` or a CONNECT's `2xx`
    /// ([`Event::Switched`] was emitted).
    pub fn is_switched(&self) -> bool {
        self.switched
    }

    /// Writes streamed body bytes of `id`; returns how many were accepted (chunked framing is
    /// added by the codec). Accepts fewer than offered (maybe 0) when output is full or an earlier
    /// response is still being written; [`Event::Writable`] follows.
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, no response yet, a response that is not streamed, or
    /// more bytes than a declared length leaves.
    pub fn write_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let pending = self.pending();
        let x = &mut self.exchanges[i];
        let mode = match x.response {
            Response::None => return Err(usage(UsageErrorKind::NotResponded)),
            Response::Finished => return Err(usage(UsageErrorKind::NotStreaming)),
            Response::Streaming(mode) => mode,
        };
        match mode {
            BodyOut::Discard => return Ok(data.len()),
            BodyOut::Length(left) if data.len() as u64 > left => {
                return Err(usage(UsageErrorKind::BodyTooLong))
            }
            _ => {}
        }
        if data.is_empty() {
            return Ok(0);
        }
        let space = self.config.response_buffer_size.saturating_sub(pending);
        let n = if i == 0 { data.len().min(space) } else { 0 };
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
        match mode {
            BodyOut::Chunked => {
                body::write_chunk_size(&mut self.out, n);
                self.out.extend_from_slice(&data[..n]);
                self.out.extend_from_slice(b"\r\n");
            }
            BodyOut::Length(left) => {
                x.response = Response::Streaming(BodyOut::Length(left - n as u64));
                self.out.extend_from_slice(&data[..n]);
            }
            BodyOut::Raw | BodyOut::Discard => self.out.extend_from_slice(&data[..n]),
        }
        Ok(n)
    }

    /// Ends the streamed body of `id`. Bytes of the request body still unread are then discarded
    /// (up to `discard_body_limit`, else the connection closes after this response).
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, no response, a response not streamed, or a declared
    /// length not reached (the response is then cut short and the connection closes).
    pub fn finish_body(&mut self, now: Instant, id: ExchangeId) -> Result<(), UsageError> {
        self.finish_body_with(now, id, None)
    }

    /// The trailer fields of request `id`, once its body is complete ([`BodyRead::End`]):
    /// only a chunked body has them; fields that may not be trailers (framing, routing,
    /// authentication, cookies...: RFC 9110 §6.5.1) are dropped. `None` when there are none.
    pub fn request_trailers(&self, id: ExchangeId) -> Option<&http::HeaderMap> {
        let x = &self.exchanges[self.index(id)?];
        x.trailers.as_ref()
    }

    /// As [`ServerConn::finish_body`], sending `trailers` after the body. HTTP/1.1 carries
    /// trailers only in chunked framing: with a declared length (or an HTTP/1.0 client) they
    /// are dropped, as RFC 9110 §6.5 allows. Fields that may not be trailers are left out.
    ///
    /// # Errors
    ///
    /// As [`ServerConn::finish_body`].
    pub fn finish_body_with_trailers(
        &mut self,
        now: Instant,
        id: ExchangeId,
        trailers: &http::HeaderMap,
    ) -> Result<(), UsageError> {
        self.finish_body_with(now, id, Some(trailers))
    }

    fn finish_body_with(
        &mut self,
        now: Instant,
        id: ExchangeId,
        trailers: Option<&http::HeaderMap>,
    ) -> Result<(), UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let x = &mut self.exchanges[i];
        let mode = match x.response {
            Response::None => return Err(usage(UsageErrorKind::NotResponded)),
            Response::Finished => return Err(usage(UsageErrorKind::NotStreaming)),
            Response::Streaming(mode) => mode,
        };
        x.response = Response::Finished;
        let mut result = Ok(());
        match mode {
            BodyOut::Chunked => {
                if i == 0 {
                    if self.out_pos == self.out.len() {
                        self.write_progress = now;
                    }
                    body::write_chunked_end(&mut self.out, trailers);
                } else {
                    body::write_chunked_end(&mut x.side, trailers);
                }
            }
            BodyOut::Length(left) if left > 0 => {
                x.close_after = true;
                result = Err(usage(UsageErrorKind::BodyTooShort));
            }
            _ => {}
        }
        if x.close_after {
            self.stop_reading_after(id);
        }
        self.on_finished(id);
        self.pump(now);
        result
    }

    /// Answers the [`Event::Error`]: `head` and `body` go out after the responses of earlier
    /// exchanges, with `Connection: close` and `Content-Length`; after they are transmitted the
    /// connection reports [`Event::Closed`]. Ignored when no error is pending, or when the failed
    /// exchange's own response was already under way (that response is cut short instead).
    pub fn respond_error(&mut self, now: Instant, head: http::Response<()>, body: &[u8]) {
        let ErrorState::Awaiting { send } = self.error else {
            return;
        };
        self.error = ErrorState::Answered;
        if send {
            let framing = Framing::Length(body.len() as u64);
            let (date, server) = (self.date.as_ref(), self.config.server_name.as_deref());
            write::write_head(
                &mut self.error_out,
                &head,
                framing,
                Persist::Close,
                date,
                server,
            );
            self.error_out.extend_from_slice(body);
        }
        self.pump(now);
    }

    /// Stops the connection gracefully: no new request is read, in-flight exchanges finish (the
    /// last response says `Connection: close`), an idle connection closes at once. After
    /// `drain_timeout` the connection closes regardless.
    pub fn shutdown(&mut self, now: Instant) {
        if self.closed || self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.drain_deadline = Some(now + self.config.drain_timeout);
        if let Some(last) = self.exchanges.back_mut() {
            last.close_after |= last.response == Response::None;
        }
        match self.reader {
            Reader::Body {
                id, discard: None, ..
            } => self.stop_after = Some(self.stop_after.map_or(id, |s| s.min(id))),
            _ => self.stop_reading(),
        }
        self.pump(now);
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
            self.write_progress = now;
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
        }
        self.pump(now);
    }

    /// [`Event::Closed`] was emitted (all output was transmitted, or dropped by a timeout).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether offering input to `handle_input` can make progress now.
    pub fn wants_read(&self) -> bool {
        if self.closed {
            return false;
        }
        match &self.reader {
            Reader::Head => self.exchanges.len() <= self.config.max_pipelined,
            Reader::Body {
                discard: Some(_), ..
            } => true,
            Reader::Body { id, .. } => self
                .index(*id)
                .is_some_and(|i| self.exchanges[i].buffered() < self.config.body_buffer_size),
            Reader::Stopped | Reader::Upgrade { .. } => false,
        }
    }

    // ---- writing ----

    /// Moves finished and prepared output into the output buffer in exchange order, emits
    /// `Writable`, retires exchanges, and closes when everything is done.
    fn pump(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let low_water = self.config.response_buffer_size / 2;
        while let Some(x) = self.exchanges.front_mut() {
            if x.expect == Expect::Wanted {
                x.expect = Expect::Sent;
                if self.out_pos == self.out.len() {
                    self.write_progress = now;
                }
                self.out.extend_from_slice(write::CONTINUE);
            }
            if x.response != Response::None && !x.started {
                x.started = true;
                if self.out_pos == self.out.len() {
                    self.write_progress = now;
                }
                compact(&mut self.out, &mut self.out_pos);
                self.out.extend_from_slice(&x.side);
                x.side.clear();
            }
            if x.want_writable && self.out.len() - self.out_pos <= low_water {
                x.want_writable = false;
                self.events.push_back(Event::Writable { id: x.id });
            }
            if x.response != Response::Finished {
                break;
            }
            let x = self.exchanges.pop_front().expect("front exists");
            if x.close_after {
                self.stop_reading_after(x.id);
                self.stop_reading();
            }
            self.recycle(x);
        }
        if self.exchanges.is_empty() {
            if !self.error_out.is_empty() {
                if self.out_pos == self.out.len() {
                    self.write_progress = now;
                }
                self.out.extend_from_slice(&self.error_out);
                self.error_out.clear();
            }
            if matches!(self.reader, Reader::Head)
                && !self.head_bytes
                && self.head_start.is_none()
                && self.idle_since.is_none()
            {
                self.idle_since = Some(now);
            }
        }
        if self.switch_at.is_some() && self.exchanges.is_empty() && self.pending() == 0 {
            // The 101 is out: the rest belongs to the new protocol.
            self.reader = Reader::Stopped;
            self.closed = true;
            self.switched = true;
            self.events.push_back(Event::Switched);
        } else if matches!(self.reader, Reader::Stopped)
            && self.exchanges.is_empty()
            && !matches!(self.error, ErrorState::Awaiting { .. })
            && self.pending() == 0
        {
            self.closed = true;
            self.events.push_back(Event::Closed);
        }
    }

    fn recycle(&mut self, x: Exchange) {
        for mut buf in [x.body, x.side] {
            if buf.capacity() > 0 && self.pool.len() < POOL {
                buf.clear();
                self.pool.push(buf);
            }
        }
    }

    // ---- helpers ----

    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn index(&self, id: ExchangeId) -> Option<usize> {
        self.exchanges.binary_search_by_key(&id, |x| x.id).ok()
    }

    fn exchange_mut(&mut self, id: ExchangeId) -> Option<&mut Exchange> {
        let i = self.index(id)?;
        self.exchanges.get_mut(i)
    }

    fn body_timer_running(&self) -> bool {
        match &self.reader {
            Reader::Body {
                discard: Some(_), ..
            } => true,
            Reader::Body { id, .. } => self.index(*id).is_some_and(|i| {
                let x = &self.exchanges[i];
                x.expect != Expect::Pending && x.buffered() < self.config.body_buffer_size
            }),
            _ => false,
        }
    }
}

impl Exchange {
    fn buffered(&self) -> usize {
        self.body.len() - self.body_pos
    }
}

fn usage(kind: UsageErrorKind) -> UsageError {
    UsageError::new(kind)
}

/// Drops transmitted bytes once they are at least half the buffer, so appends stay amortized.
fn compact(out: &mut Vec<u8>, pos: &mut usize) {
    if *pos > 0 && *pos * 2 >= out.len() {
        out.drain(..*pos);
        *pos = 0;
    }
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

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

mod in_place;
mod output;
mod read;
mod respond;

use super::body::Decoder;
pub use super::event::{BodyRead, Event, ExchangeId, ResponseBody};
use super::head::HeadScan;
use super::write::HttpDate;
use super::{Config, Error};
pub(crate) use output::SHARE_FROM;

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
    out: output::Output,
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
            out: output::Output::default(),
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

    /// Whether the connection switched protocols, after a `101` or a CONNECT's `2xx`
    /// ([`Event::Switched`] was emitted).
    pub fn is_switched(&self) -> bool {
        self.switched
    }

    /// The trailer fields of request `id`, once its body is complete ([`BodyRead::End`]):
    /// only a chunked body has them; fields that may not be trailers (framing, routing,
    /// authentication, cookies...: RFC 9110 §6.5.1) are dropped. `None` when there are none.
    pub fn request_trailers(&self, id: ExchangeId) -> Option<&http::HeaderMap> {
        let x = &self.exchanges[self.index(id)?];
        x.trailers.as_ref()
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
        self.out.chunk()
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were sent.
    pub fn handle_transmitted(&mut self, now: Instant, n: usize) {
        if self.out.consume(n) {
            self.write_progress = now;
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

    // ---- helpers ----

    fn pending(&self) -> usize {
        self.out.pending()
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

//! The HTTP/2 server connection (RFC 9113): hyperium's `h2` crate driven as a sans-IO codec
//! with the same surface as the HTTP/1.1 [`ServerConn`](super::ServerConn), so the service,
//! its `Reqd` and every handler run unchanged on h2 streams.
//!
//! h2 owns the framing, HPACK, flow control, stream states and the protocol's errors. It is
//! written for async runtimes but needs only `AsyncRead`/`AsyncWrite` and a `Waker`: here its
//! IO is two in-memory buffers (`io::Wire`) that `handle_input` fills and `poll_transmit`
//! drains, and it is polled (never awaited) at the end of every call that can give it work,
//! until nothing it polled woke again. Every wake-up h2 can produce comes from one of those
//! calls (input, output taken, a stream written, read or dropped), so no waker has to reach
//! the loop: the owner flushes the connection after each call, as for HTTP/1.1.
//!
//! Mapping to the HTTP/1.1 codec's contract:
//! - each accepted stream is an exchange ([`Event::Request`], ids increasing in accept order);
//! - request body bytes are pulled with `read_body`; the stream's window is released only as
//!   they are read, so a handler that does not read stops the peer (flow control is the
//!   backpressure; windows are `body_buffer_size` per stream, 16 times that per connection);
//! - `write_body` takes only what the stream's send capacity allows (peer windows, capped
//!   per stream by `response_buffer_size`); [`Event::Writable`] follows when more is granted;
//! - a stream the peer resets ends its exchange with [`Event::Reset`];
//! - [`Event::Error`] is per stream: a request body that stalls for `body_timeout` (408) or
//!   exceeds `max_body_size` (413, also when its declared length does), before the response
//!   started, is answered on its stream by `respond_error` (after it, the stream is reset);
//!   the connection goes on. Protocol errors are h2's (GOAWAY or RST_STREAM, counted in
//!   [`Counts`]); oversized header lists get 431 from h2 itself.
//!
//! Limits: `max_concurrent_streams`, the header list size (`max_head_size`, which bounds
//! CONTINUATION floods and HPACK bombs, both decoded against it), h2's own bounds on resets
//! it must send, on reset streams waiting to be accepted and on small DATA frames, a budget
//! of peer resets (rapid reset, CVE-2023-44487: each stream the peer resets before its
//! response finished costs one, each finished response earns one back; at zero the
//! connection gets GOAWAY `ENHANCE_YOUR_CALM`), and a budget of control frames (PING,
//! SETTINGS, PRIORITY, empty frames; see [`frames`](self::frames)). Every flood cut, by paf
//! or by h2, is counted by kind ([`Flood`]). Timers: idle (no stream, no output: GOAWAY and
//! close), write (output or a stream blocked by the peer's windows without progress), body
//! (per stream), drain (after `shutdown`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::{header, Method};

mod client;
mod exchange;
mod frames;
mod head;
mod io;
mod send;

pub use frames::Flood;

use super::body::trailer_fields;
use super::error::UsageErrorKind;
use super::{Config, Error, Event, ExchangeId, HttpDate, UsageError};
use frames::FrameWatch;
use io::{Io, Wire};

pub(crate) use client::ClientConn;

/// The client connection preface (RFC 9113 §3.4), which starts h2c with prior knowledge.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peer bytes taken ahead of h2 (it parses them at once; this only bounds one call).
const INPUT_CAP: usize = 64 * 1024;

/// Frames waiting for the pipe before h2 is told to wait.
const OUTPUT_CAP: usize = 64 * 1024;

/// Streams h2 may reset for the peer's faults on one connection before it sends GOAWAY.
const LOCAL_RESETS: usize = 128;

/// How long a connection is not read, at most, after its peer opened a stream past
/// `max_concurrent_streams`: the stream waits, and everything the peer sent after it.
/// - For the first `max_concurrent_streams` streams past the limit on a connection (what a
///   client may send before it reads the SETTINGS), reading resumes as soon as streams end,
///   so they are served rather than refused.
/// - After that, the hold lasts this long; then what was read goes to h2, which refuses the
///   streams past the limit if none ended meanwhile. A client that keeps opening streams past
///   the limit so costs the server a hold's worth of streams at a time, instead of a refusal
///   (and a HEADERS frame decoded) for every frame it can send, until h2's bound on refusals
///   ([`LOCAL_RESETS`]) ends the connection.
const STREAM_HOLD: Duration = Duration::from_millis(250);

/// The connection window is this many stream windows.
const CONN_WINDOWS: u32 = 16;

/// Response body bytes all the streams of a connection may have queued in h2 (handed to it, not
/// yet written out): a client that opens its windows but reads nothing (a zero-window stall
/// at the TCP level) holds at most this much per connection, whatever its stream count.
const CONN_SEND_BUDGET: u64 = 1024 * 1024;

/// Rounds of polling h2 in one drive: h2 makes progress every round it wakes itself, so this
/// only bounds a pathological loop.
const MAX_ROUNDS: usize = 256;

/// HTTP/2 counters of one connection, taken with [`ServerConn::take_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Streams accepted (requests handed out).
    pub streams: u64,
    /// Streams the peer reset (RST_STREAM) before their response finished.
    pub resets_received: u64,
    /// GOAWAY frames this side sent: graceful stop, idle close, errors, rapid reset.
    pub goaways_sent: u64,
    /// Connections that ended in a protocol error (either side's), or a flood.
    pub protocol_errors: u64,
    /// Times the connection was not read for a while because the peer opened a stream past
    /// `max_concurrent_streams` ([`STREAM_HOLD`]).
    pub held: u64,
    /// Floods cut off (GOAWAY `ENHANCE_YOUR_CALM` or h2's own abuse limits), by kind: indexed
    /// by [`Flood::index`].
    pub floods: [u64; Flood::ALL.len()],
}

enum State {
    /// Waiting for the preface and SETTINGS exchange.
    Handshaking(Handshake<Wire, Bytes>),
    Open(Connection<Wire, Bytes>),
    /// h2 is done (closed cleanly or by an error); what it wrote is still being flushed.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    None,
    /// Streaming; `left`: bytes a declared length still needs; `discard`: bodiless response.
    Streaming {
        left: Option<u64>,
        discard: bool,
    },
}

struct Stream {
    id: ExchangeId,
    is_head: bool,
    /// `Expect: 100-continue` not yet answered.
    expect: bool,
    recv: RecvStream,
    /// Body bytes polled from h2, not yet read (their window is not released yet).
    chunk: Bytes,
    body_end: bool,
    /// The request's trailer fields, once its body ended.
    trailers: Option<http::HeaderMap>,
    /// Body bytes received so far (against `max_body_size`).
    body_len: u64,
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    out: Out,
    /// The last `write_body` was short: `Writable` when capacity comes, or a reset when the
    /// peer keeps its window shut past `write_timeout` from this instant.
    blocked_since: Option<Instant>,
    /// When body bytes last arrived (or the stream opened): with no unread bytes and the body
    /// not ended, the body timeout counts from here.
    body_progress: Instant,
    /// [`Event::Error`] was emitted for the stream: only `respond_error` answers it now.
    failed: bool,
}

impl Stream {
    /// When the request body times out: it is still coming, none is waiting to be read.
    fn body_deadline(&self, c: &Config) -> Option<Instant> {
        (!self.failed && !self.body_end && self.chunk.is_empty())
            .then(|| self.body_progress + c.body_timeout)
    }
}

/// One server-side HTTP/2 connection; see the [module docs](self).
pub struct ServerConn {
    config: Arc<Config>,
    /// The buffers between the pipe and h2, and the waker h2 is polled with.
    io: Io,
    state: State,
    /// In id order (ids increase in accept order).
    streams: VecDeque<Stream>,
    next_id: u64,
    events: VecDeque<Event>,
    date: Option<HttpDate>,
    idle_since: Option<Instant>,
    write_progress: Instant,
    drain_deadline: Option<Instant>,
    shutting_down: bool,
    closed: bool,
    reset_budget: u32,
    reset_budget_max: u32,
    watch: FrameWatch,
    /// Body bytes handed to h2 and frame bytes taken out of it, since the start: their
    /// difference bounds what h2 holds ([`CONN_SEND_BUDGET`]).
    body_given: u64,
    frames_taken: u64,
    /// A flood was met (it is counted once).
    flooded: bool,
    /// A stream opened past `max_concurrent_streams` is held: nothing is read until then.
    hold_until: Option<Instant>,
    /// The hold ran out: the next input goes to h2 whatever the stream count.
    release: bool,
    /// Streams let through as soon as others ended, within holds (see [`ServerConn::lenient`]).
    let_off: usize,
    counts: Counts,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h2::ServerConn")
            .field("streams", &self.streams.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl ServerConn {
    /// A connection accepted at `now` whose next input is the client preface (after TLS with
    /// ALPN `h2`, or h2c with prior knowledge). The SETTINGS frame is queued at once.
    pub fn new(config: Arc<Config>, now: Instant) -> Self {
        let io = Io::new(OUTPUT_CAP);
        let window = u32::try_from(config.body_buffer_size)
            .unwrap_or(u32::MAX)
            .clamp(65_535, 1 << 30);
        let header_list = u32::try_from(config.max_head_size).unwrap_or(u32::MAX);
        let handshake = h2::server::Builder::new()
            .max_concurrent_streams(config.max_concurrent_streams)
            // Streams h2 resets for the peer's faults (refused past the limit, malformed):
            // past this many on a connection, GOAWAY ENHANCE_YOUR_CALM. h2's default of 1,024
            // let a client opening streams past the limit cost paf 0.49x of a normal client's
            // rate (make bench --rows attack, `streams`); a client that honours
            // SETTINGS_MAX_CONCURRENT_STREAMS is refused only before it has read them.
            .max_local_error_reset_streams(Some(LOCAL_RESETS))
            .max_header_list_size(header_list)
            .initial_window_size(window)
            .initial_connection_window_size(window.saturating_mul(CONN_WINDOWS).min(1 << 30))
            .max_send_buffer_size(config.response_buffer_size.min(u32::MAX as usize))
            .handshake(io.wire());
        let budget = config.max_concurrent_streams.saturating_mul(2).max(100);
        let mut conn = ServerConn {
            config,
            io,
            state: State::Handshaking(handshake),
            streams: VecDeque::new(),
            next_id: 0,
            events: VecDeque::new(),
            date: None,
            idle_since: Some(now),
            write_progress: now,
            drain_deadline: None,
            shutting_down: false,
            closed: false,
            reset_budget: budget,
            reset_budget_max: budget,
            watch: FrameWatch::new(now, PREFACE.len()),
            body_given: 0,
            frames_taken: 0,
            flooded: false,
            hold_until: None,
            release: false,
            let_off: 0,
            counts: Counts::default(),
        };
        conn.drive(now);
        conn
    }

    /// Sets the `Date` value for responses from now on (see the HTTP/1.1 codec's).
    pub fn set_date(&mut self, date: HttpDate) {
        self.date = Some(date);
    }

    /// Feeds bytes from the peer; returns how many were taken.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        if !self.wants_read() {
            return 0;
        }
        let cap = INPUT_CAP
            .saturating_sub(self.io.pending_in())
            .min(bytes.len());
        let room = if std::mem::take(&mut self.release) {
            usize::MAX
        } else {
            self.room()
        };
        let io = &self.io;
        let scan = self
            .watch
            .scan(now, &bytes[..cap], room, &mut |b| io.push(b));
        if self.hold_until.is_some() {
            // Resumed for room within a hold: streams the connection is let off.
            self.let_off = self.let_off.saturating_add(scan.opened);
        }
        if !scan.held {
            self.hold_until = None;
        } else if self.hold_until.is_none() {
            // A stream past the limit (RFC 9113 §5.1.2): rather than refuse it at once, and
            // every one behind it, stop reading the connection for a while.
            self.counts.held += 1;
            self.hold_until = Some(now + STREAM_HOLD);
        }
        let flood = scan.flood;
        let n = scan.taken;
        self.drive(now);
        if let Some(kind) = flood {
            // h2 has read this input (at most `INPUT_CAP`); the GOAWAY names the last stream
            // it processed.
            self.flood(kind);
            self.drive(now);
        }
        n
    }

    /// The peer closed its sending side: h2 ends the connection (streams still open fail).
    pub fn handle_eof(&mut self, now: Instant) {
        let io = &self.io;
        self.watch.flush(&mut |b| io.push(b));
        self.hold_until = None;
        self.io.set_eof();
        self.drive(now);
    }

    /// Whether offering input can make progress now.
    pub fn wants_read(&self) -> bool {
        !self.closed
            && !matches!(self.state, State::Done)
            && (self.hold_until.is_none() || self.lenient() && self.room() > 0)
            && self.io.pending_in() < INPUT_CAP
    }

    /// Streams the peer may still open: h2 accepted every one it could at the last drive,
    /// and it counts those paf holds (and some more, whose output it is still sending: then
    /// h2 refuses what this let through).
    fn room(&self) -> usize {
        usize::try_from(self.config.max_concurrent_streams)
            .map_or(usize::MAX, |max| max.saturating_sub(self.streams.len()))
    }

    /// Whether a held connection still goes on as soon as streams end, rather than when its
    /// hold runs out: for its first `max_concurrent_streams` streams past the limit (what a
    /// client may send before it reads the SETTINGS).
    fn lenient(&self) -> bool {
        self.let_off < usize::try_from(self.config.max_concurrent_streams).unwrap_or(usize::MAX)
    }

    /// Bytes ready to send; report with `handle_transmitted`.
    pub fn poll_transmit(&self) -> &[u8] {
        self.io.transmit()
    }

    /// `n` bytes of [`ServerConn::poll_transmit`] were sent.
    pub fn handle_transmitted(&mut self, now: Instant, n: usize) {
        if self.io.transmitted(n) > 0 {
            self.write_progress = now;
        }
        self.drive(now);
    }

    /// Output not yet transmitted, here and still in h2's half of the buffers.
    fn pending_out(&self) -> usize {
        self.io.pending_out()
    }

    /// Takes what h2 wrote once everything before it was transmitted (a swap, no copy).
    fn take_output(&mut self, now: Instant) {
        if self.io.take_output() {
            self.frames_taken += self.io.transmit().len() as u64;
            // Output starts waiting now: the write timeout counts from here.
            self.write_progress = now;
        }
    }

    /// [`Event::Closed`] was emitted.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The counters since the last call.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// The earliest deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let c = &self.config;
        let idle = self.idle_since.map(|t| t + c.idle_timeout);
        let write = (self.pending_out() > 0).then(|| self.write_progress + c.write_timeout);
        let stalled = self
            .streams
            .iter()
            .filter_map(|s| s.blocked_since)
            .min()
            .map(|t| t + c.write_timeout);
        let body = self.streams.iter().filter_map(|s| s.body_deadline(c)).min();
        [
            idle,
            write,
            stalled,
            body,
            self.drain_deadline,
            self.hold_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires due deadlines: the drain deadline or stalled output close at once (output
    /// dropped); an idle connection gets GOAWAY and closes; a stream the peer's window kept
    /// blocked for `write_timeout` is reset; a stream whose request body stalled for
    /// `body_timeout` gets [`Event::Error`] ([`Error::BodyTimeout`], answer with
    /// `respond_error`) or, when its response has started, a reset.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.hold_until.is_some_and(|t| t <= now) {
            // What was held goes to h2 now, which refuses the streams past the limit if it is
            // still reached (their client has had the SETTINGS for a while).
            self.hold_until = None;
            self.release = true;
        }
        let c = Arc::clone(&self.config);
        let pending = self.pending_out() > 0;
        if self.drain_deadline.is_some_and(|t| t <= now)
            || (pending && self.write_progress + c.write_timeout <= now)
        {
            self.force_close();
            return;
        }
        if self.idle_since.is_some_and(|t| t + c.idle_timeout <= now) {
            self.idle_since = None;
            self.go_away(Reason::NO_ERROR);
        }
        let stalled: Vec<ExchangeId> = self
            .streams
            .iter()
            .filter(|s| s.blocked_since.is_some_and(|t| t + c.write_timeout <= now))
            .map(|s| s.id)
            .collect();
        for id in stalled {
            if let Some(i) = self.index(id) {
                self.reset_stream(i, Reason::CANCEL);
            }
        }
        let slow: Vec<ExchangeId> = self
            .streams
            .iter()
            .filter(|s| s.body_deadline(&c).is_some_and(|t| t <= now))
            .map(|s| s.id)
            .collect();
        for id in slow {
            if let Some(i) = self.index(id) {
                self.stream_error(i, Error::BodyTimeout);
            }
        }
        self.drive(now);
    }

    /// A peer fault on stream `i` (its body stalled or grew too large): [`Event::Error`] for
    /// the service to answer with `respond_error` if its response has not started, else a
    /// reset (the response is cut short, as on HTTP/1.1).
    fn stream_error(&mut self, i: usize, error: Error) {
        let s = &mut self.streams[i];
        if s.out == Out::None {
            s.failed = true;
            self.events.push_back(Event::Error {
                id: Some(s.id),
                error,
            });
        } else {
            self.reset_stream(i, Reason::CANCEL);
        }
    }

    /// Resets stream `i` and ends its exchange ([`Event::Reset`]).
    fn reset_stream(&mut self, i: usize, reason: Reason) {
        let mut s = self.streams.remove(i).expect("index is valid");
        match s.send.as_mut() {
            Some(send) => send.send_reset(reason),
            None => s.respond.send_reset(reason),
        }
        self.events.push_back(Event::Reset { id: s.id });
    }

    /// Starts a graceful stop: GOAWAY (h2 sends the last stream id once the peer answered
    /// its PING), in-flight streams finish, then the connection closes; after
    /// `drain_timeout` it closes regardless.
    pub fn shutdown(&mut self, now: Instant) {
        if self.closed || self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.drain_deadline = Some(now + self.config.drain_timeout);
        match &mut self.state {
            State::Open(conn) => {
                conn.graceful_shutdown();
                self.counts.goaways_sent += 1;
            }
            // Not even the preface yet: nothing to drain.
            State::Handshaking(_) => self.state = State::Done,
            State::Done => {}
        }
        self.drive(now);
    }

    // ---- driving h2 ----

    /// Polls h2 until nothing it polled woke again: handshake, frames in and out, new
    /// streams, then each stream's body, resets and send capacity.
    fn drive(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let waker = self.io.waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..MAX_ROUNDS {
            self.io.woke();
            self.take_output(now);
            self.poll_conn(&mut cx, now);
            self.poll_streams(&mut cx, now);
            self.take_output(now);
            if !self.io.woke() {
                break;
            }
        }
        if self.streams.is_empty() && self.idle_since.is_none() && !self.shutting_down {
            self.idle_since = Some(now);
        }
        if matches!(self.state, State::Done) && self.pending_out() == 0 {
            self.close();
        }
    }

    fn poll_conn(&mut self, cx: &mut Context<'_>, now: Instant) {
        if let State::Handshaking(hs) = &mut self.state {
            match Pin::new(hs).poll(cx) {
                Poll::Ready(Ok(conn)) => self.state = State::Open(conn),
                Poll::Ready(Err(e)) => return self.failed(&e),
                Poll::Pending => return,
            }
        }
        loop {
            let State::Open(conn) = &mut self.state else {
                return;
            };
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => self.accept(req, respond, now),
                Poll::Ready(Some(Err(e))) => return self.failed(&e),
                Poll::Ready(None) => {
                    self.state = State::Done;
                    for s in self.streams.drain(..) {
                        self.events.push_back(Event::Reset { id: s.id });
                    }
                    return;
                }
                Poll::Pending => return,
            }
        }
    }

    fn accept(
        &mut self,
        req: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        now: Instant,
    ) {
        let (parts, recv) = req.into_parts();
        let head = head::request(http::Request::from_parts(parts, ()));
        let id = ExchangeId(self.next_id);
        self.next_id += 1;
        self.counts.streams += 1;
        self.idle_since = None;
        let expect = head
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let declared = head
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let mut s = Stream {
            id,
            is_head: head.method() == Method::HEAD,
            expect,
            body_end: recv.is_end_stream(),
            trailers: None,
            recv,
            chunk: Bytes::new(),
            body_len: 0,
            respond,
            send: None,
            out: Out::None,
            blocked_since: None,
            body_progress: now,
            failed: false,
        };
        if let (Some(n), Some(max)) = (declared, self.config.max_body_size) {
            if n > max {
                // As the HTTP/1.1 codec: refused before the handler sees it (the error
                // handler gets no request), answered 413 by `respond_error`.
                s.failed = true;
                self.streams.push_back(s);
                self.events.push_back(Event::Error {
                    id: Some(id),
                    error: Error::PayloadTooLarge,
                });
                return;
            }
        }
        self.streams.push_back(s);
        self.events.push_back(Event::Request { id, head });
    }

    fn poll_streams(&mut self, cx: &mut Context<'_>, now: Instant) {
        let max_body = self.config.max_body_size;
        let room = self.send_room();
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            let id = s.id;
            // The peer reset the stream (or the connection failed under it).
            let reset = match s.send.as_mut() {
                Some(send) => send.poll_reset(cx),
                None => s.respond.poll_reset(cx),
            };
            if let Poll::Ready(r) = reset {
                self.streams.remove(i);
                self.events.push_back(Event::Reset { id });
                if r.is_ok() {
                    self.peer_reset();
                }
                continue;
            }
            if !s.failed && s.chunk.is_empty() && !s.body_end && poll_body(s, cx) {
                s.body_progress = now;
                if max_body.is_some_and(|m| s.body_len > m) {
                    // Its bytes are not for the handler: 413 if it can still be answered.
                    s.chunk = Bytes::new();
                    let out = s.out;
                    self.stream_error(i, Error::PayloadTooLarge);
                    if out != Out::None {
                        continue; // reset: the stream is gone
                    }
                    i += 1;
                    continue;
                }
                self.events.push_back(Event::BodyReadable { id });
            }
            if s.blocked_since.is_some() && room > 0 {
                let send = s.send.as_mut().expect("blocked means streaming");
                let ready = send.capacity() > 0
                    || matches!(send.poll_capacity(cx), Poll::Ready(Some(Ok(n))) if n > 0);
                if ready {
                    s.blocked_since = None;
                    self.write_progress = now;
                    self.events.push_back(Event::Writable { id });
                }
            }
            i += 1;
        }
    }

    /// Body bytes h2 may still take on this connection ([`CONN_SEND_BUDGET`] less what it
    /// holds; frame headers count as sent body, so this errs on the generous side by 9 bytes a
    /// frame).
    fn send_room(&self) -> usize {
        let held = self.body_given.saturating_sub(self.frames_taken);
        usize::try_from(CONN_SEND_BUDGET.saturating_sub(held)).unwrap_or(usize::MAX)
    }

    /// A peer reset of an unfinished stream: spends the rapid-reset budget.
    fn peer_reset(&mut self) {
        self.counts.resets_received += 1;
        self.reset_budget = self.reset_budget.saturating_sub(1);
        if self.reset_budget == 0 {
            self.flood(Flood::RapidReset);
        }
    }

    /// The peer floods the connection: GOAWAY `ENHANCE_YOUR_CALM`, counted by kind (once per
    /// connection).
    fn flood(&mut self, kind: Flood) {
        if matches!(self.state, State::Done) || self.flooded {
            return;
        }
        self.flooded = true;
        log::info!(
            "h2: {} flood; GOAWAY ENHANCE_YOUR_CALM",
            kind.name().replace('_', " ")
        );
        self.counts.protocol_errors += 1;
        self.counts.floods[kind.index()] += 1;
        self.go_away(Reason::ENHANCE_YOUR_CALM);
    }

    /// Sends GOAWAY with `reason` and the last stream processed; the connection then ends.
    fn go_away(&mut self, reason: Reason) {
        match &mut self.state {
            State::Open(conn) => {
                conn.abrupt_shutdown(reason);
                self.counts.goaways_sent += 1;
            }
            State::Handshaking(_) => self.state = State::Done,
            State::Done => {}
        }
    }

    /// h2 ended the connection with an error (what it had to send is in the output).
    fn failed(&mut self, e: &h2::Error) {
        if !e.is_io() && e.reason() != Some(Reason::NO_ERROR) && !self.flooded {
            self.counts.protocol_errors += 1;
            if !e.is_remote() {
                self.counts.goaways_sent += 1;
                let tail = self.io.last_written(64);
                if let Some(kind) = h2_abuse(e, &tail, &self.watch) {
                    log::info!("h2: {} flood cut by h2: {e}", kind.name().replace('_', " "));
                    self.counts.floods[kind.index()] += 1;
                }
            }
        }
        log::debug!("h2: connection ended: {e}");
        self.state = State::Done;
        // Streams of a dead connection: their exchanges end now.
        for s in self.streams.drain(..) {
            self.events.push_back(Event::Reset { id: s.id });
        }
    }

    /// The response of stream `i` is complete: the stream leaves (h2 sends what it buffered).
    fn finished(&mut self, i: usize) {
        self.streams.remove(i);
        self.reset_budget = (self.reset_budget + 1).min(self.reset_budget_max);
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(Event::Closed);
        }
    }

    /// Gives up at once: pending output is dropped.
    fn force_close(&mut self) {
        self.state = State::Done;
        for s in self.streams.drain(..) {
            self.events.push_back(Event::Reset { id: s.id });
        }
        self.io.drop_output();
        self.close();
    }

    fn index(&self, id: ExchangeId) -> Option<usize> {
        self.streams.binary_search_by_key(&id, |s| s.id).ok()
    }
}

/// The flood behind an error h2 raised itself, if it was one of its abuse limits. h2 names
/// them in the debug data of the GOAWAY it sent last (the end of `sent`, its last output):
/// too many CONTINUATION frames, a header list way over the limit (HPACK bomb), too many
/// streams reset by the peer before they were accepted or reset by h2 for the peer's errors
/// (rapid reset, and the MadeYouReset variant), too many small DATA frames. Without a name,
/// an `ENHANCE_YOUR_CALM` is judged from the frames seen, and a `COMPRESSION_ERROR` is one
/// only after endless CONTINUATIONs.
fn h2_abuse(e: &h2::Error, sent: &[u8], watch: &FrameWatch) -> Option<Flood> {
    let named: [(&[u8], Flood); 5] = [
        (b"too_many_continuations", Flood::Continuation),
        (b"header_list_way_too_large", Flood::Hpack),
        (b"too_many_resets", Flood::RapidReset),
        (b"too_many_internal_resets", Flood::RapidReset),
        (b"too_many_data_frames", Flood::EmptyFrames),
    ];
    let reason = e.reason();
    if reason == Some(Reason::ENHANCE_YOUR_CALM) {
        if let Some((_, kind)) = named.iter().find(|(n, _)| sent.ends_with(n)) {
            return Some(*kind);
        }
    }
    match reason {
        Some(Reason::ENHANCE_YOUR_CALM) => Some(watch.abuse()),
        Some(Reason::COMPRESSION_ERROR) if watch.abuse() == Flood::Continuation => {
            Some(Flood::Continuation)
        }
        _ => None,
    }
}

/// Polls one chunk of `s`'s body into `s.chunk` (or its end); returns whether something came.
fn poll_body(s: &mut Stream, cx: &mut Context<'_>) -> bool {
    loop {
        match s.recv.poll_data(cx) {
            Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
            Poll::Ready(Some(Ok(b))) => {
                s.body_len += b.len() as u64;
                s.chunk = b;
                return true;
            }
            // The end, or a reset: `poll_reset` reports the reset.
            Poll::Ready(None) => {
                s.body_end = true;
                // Trailers came before the end, so they are ready now if there are any.
                if let Poll::Ready(Ok(Some(t))) = s.recv.poll_trailers(cx) {
                    let t = trailer_fields(&t);
                    s.trailers = (!t.is_empty()).then_some(t);
                }
                return true;
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => return false,
        }
    }
}

fn usage(kind: UsageErrorKind) -> UsageError {
    UsageError::new(kind)
}

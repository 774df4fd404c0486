//! One connection of a service: the codec, its [`Pipe`] to the socket (and TLS), and the
//! dispatch of codec events to the handlers.
//!
//! [`Running::pump`] runs rounds until nothing moves: socket → waiting body reader where the
//! bytes lie (HTTP/1.1 `Content-Length` bodies, [`in_place`]), socket → codec ([`Pipe::read`],
//! only while the codec wants input and the buffer has room), codec events → handlers, waiting
//! callbacks (body readers, `on_writable`) → handlers, codec output → socket ([`Pipe::write`]).
//! Once the codec is done, [`Pipe::shutdown`] flushes TLS's last records and, while stopping,
//! lingers until the peer has every byte.
//!
//! After a `101` ([`Reqd::upgrade`](super::Reqd::upgrade)) the codec is done and the same pipe
//! carries a tunnel instead ([`Tunnel`]): the connection waits for its end
//! ([`crate::tunnel::join`]), then moves bytes between its socket and the end until the end
//! says the tunnel is over; its FIN to the peer is the pipe's half-close.
//!
//! A peer that stops reading is reset, never closed gracefully: when the codec gives up on its
//! output (write timeout) the connection is aborted at once, and a TLS alert or `close_notify`
//! that makes no progress for `write_timeout` ends the same way. A graceful close would leave
//! the stack retransmitting into a zero window until its linger ran out (30 s), or, for TLS,
//! keep the connection forever.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ::http::Request;
use net::ConnId;

use super::core::{CoreRef, Reader, Shared, Slot};
use super::error_response::ErrorResponse;
use super::limits::ClientTable;
use super::reqd::{BodyEnd, BodyError, Exchange, Reqd};
use super::switch::Switch;
use super::tls_stats::TlsStats;
use crate::http::{proxy_protocol, BodyRead, Error, Event, ExchangeId};
use crate::pipe::{self, Codec, EofPolicy, Phase, Pipe, Pool, Shutdown};
use crate::runtime::Cx;
use crate::tls::ServerSession;
use crate::tunnel::{End, Hook, Taken};
use readers::{abort_reader, guarded, hand};

mod in_place;
mod readers;

/// Most body bytes handed to a body reader per call on HTTP/2. On HTTP/1.1 a reader gets
/// every byte the codec has buffered at once, at most its `body_buffer_size`, without a copy;
/// or, waiting for a `Content-Length` body with nothing buffered, up to that many where they
/// lie in the socket's buffer (see `conn/in_place.rs`).
pub const READ_CHUNK: usize = 16 * 1024;

/// The request handler: `(peer, reqd)`.
pub(crate) type RequestHandler = Box<dyn FnMut(SocketAddr, Reqd)>;
/// The error handler: `(peer, error, request if known, respond)`.
pub(crate) type ErrorHandler =
    Box<dyn FnMut(SocketAddr, &Error, Option<&Request<()>>, ErrorResponse)>;

/// Work one connection gets per pump (per loop pass): at most this many requests handed to the
/// handler, and at most [`ROUNDS_PER_PUMP`] rounds of moving bytes (read up to
/// `read_buffer_size`, parse, write). With work left it yields: the app pumps it again in the
/// next pass, after every other connection ready in this one had its turn and the stack has
/// sent what this pass produced. A normal exchange stays far below both; a client pipelining
/// thousands of requests, or a bulk upload, gets a bounded share of each pass instead of its
/// whole socket buffer, so it cannot starve the others (round-robin per pass).
pub(crate) const REQUESTS_PER_PUMP: usize = 16;

/// See [`REQUESTS_PER_PUMP`]: 8 rounds of 16 KiB reads let a bulk upload move 128 KiB a pass.
pub(crate) const ROUNDS_PER_PUMP: usize = 8;

/// A connection that switched protocols: its tunnel end, awaited or running.
pub(crate) enum Tunnel {
    /// The 101 is out; the end arrives when the `Upgraded` is joined.
    Waiting(Rc<Hook>),
    /// Moving bytes.
    Open(End),
    /// Over (or abandoned): closing.
    Closing,
}

/// The loop's private state of one connection (the shared part is its [`CoreRef`]).
pub(crate) struct Conn {
    pub id: ConnId,
    pub peer: SocketAddr,
    /// paf's own address of the connection (what the client reached), when the stack says.
    pub local: Option<SocketAddr>,
    pub core: CoreRef,
    pub pipe: Pipe<ServerSession, TlsStats>,
    /// The codec gave up on output the peer did not take (write timeout, or the drain
    /// deadline): reset rather than close.
    cut: bool,
    /// The deadline this connection has in the timer heap.
    pub timer: Option<Instant>,
    /// Counted in `h2_connections` (once the codec speaks HTTP/2).
    h2_counted: bool,
    /// The PROXY protocol header still to read, and until when.
    pub preamble: Option<(proxy_protocol::Reader, Instant)>,
    /// Counted in the per-client connection caps (closed at teardown).
    pub counted: bool,
    /// Set once the connection switched protocols.
    pub tunnel: Option<Tunnel>,
    /// Not read before this: its client was cut off for abuse lately
    /// ([`ClientTable::held`](super::limits::ClientTable::held)).
    pub held: Option<Instant>,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        peer: SocketAddr,
        core: CoreRef,
        tls: Option<(ServerSession, TlsStats)>,
    ) -> Conn {
        Conn {
            id,
            peer,
            local: None,
            core,
            pipe: Pipe::new(id, tls),
            cut: false,
            timer: None,
            h2_counted: false,
            preamble: None,
            counted: true,
            tunnel: None,
            held: None,
        }
    }

    /// When the loop must look at this connection again without IO (`now`: the pass's time).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if let Some((_, until)) = &self.preamble {
            return Some(*until);
        }
        if let Some(until) = self.held {
            return Some(until);
        }
        let codec = match (self.pipe.phase(), &self.tunnel) {
            (Phase::Lingering { .. }, _) => None,
            (_, Some(Tunnel::Open(end))) => end.poll_timeout(),
            (_, Some(_)) => None,
            _ => self.core.borrow().codec.poll_timeout(),
        };
        [codec, self.pipe.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires the connection's timers due at `now`; returns whether any was (and the connection
    /// must be pumped).
    ///
    /// The timer heap keeps a connection's earliest deadline and lets it fire early when a later
    /// one replaced it (the handshake deadline once the handshake is done, the head deadline
    /// once the request is in). Such a wake-up must not pump: there is no new input, and the
    /// pump would hand the socket the few bytes of room freed since the last writable event
    /// (below its low-water mark), which the codec counts as output progress: a peer that
    /// stopped reading would get up to that early deadline added to its write timeout.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        if let Some((_, until)) = &self.preamble {
            return *until <= now; // the pump resets it
        }
        if let Some(until) = self.held {
            return until <= now; // the pump lets it go
        }
        // (A lingering connection polls its socket's queue: always due.)
        let lingering = matches!(self.pipe.phase(), Phase::Lingering { .. });
        if !lingering && self.deadline().is_none_or(|d| d > now) {
            return false;
        }
        if let Some(t) = &mut self.tunnel {
            if let Tunnel::Open(end) = t {
                end.handle_timeout(now);
            }
            self.pipe.handle_timeout(now);
            return true;
        }
        let mut core = self.core.borrow_mut();
        // The codec closes with output pending only when it gives up on it: the write timeout,
        // or the drain deadline. It dropped that output; the socket holds more the peer will
        // not take either.
        let pending = !core.codec.is_closed() && !core.codec.poll_transmit().is_empty();
        core.codec.handle_timeout(now);
        if pending && core.codec.is_closed() {
            self.cut = true;
        }
        drop(core);
        self.pipe.handle_timeout(now);
        true
    }
}

/// What to do with a connection after a pump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Keep,
    /// Keep it, and pump it again next pass: it used up its share with work left.
    Yield,
    Close,
    Abort,
}

/// The handlers and per-service resources the pump works with.
pub(crate) struct Running {
    pub shared: Rc<Shared>,
    /// TLS settings of an `https` service.
    pub tls: Option<crate::tls::ServerConfig>,
    pub request: RequestHandler,
    pub error: ErrorHandler,
    pub stop: Option<Switch>,
    /// Set once the switch is off: when every connection must be gone.
    pub stopping: Option<Instant>,
    /// Where HTTP/2 request bodies are read to, a chunk at a time.
    scratch: Box<[u8]>,
    /// What HTTP/1.1 request bodies are swapped into (see `ServerConn::take_body`): every
    /// buffered byte goes to the reader without a copy.
    body: Vec<u8>,
    pool: Pool,
    max_in: usize,
    max_out: usize,
    max_chunk: usize,
    /// Requests handed to the handler in the current pump.
    pump_requests: usize,
    /// Per-client connection counts and request rates (the handle's table, shared with the
    /// listener's other services).
    pub clients: ClientTable,
}

impl Running {
    pub(crate) fn new(
        shared: Rc<Shared>,
        tls: Option<crate::tls::ServerConfig>,
        request: RequestHandler,
        error: ErrorHandler,
        stop: Option<Switch>,
    ) -> Running {
        let counters = &shared.handle.0.counters;
        counters.https.store(tls.is_some(), Ordering::Relaxed);
        let pool = Pool::new(shared.config.read_buffer_size);
        let clients = shared.handle.0.clients.clone();
        Running {
            shared,
            tls,
            request,
            error,
            stop,
            stopping: None,
            scratch: vec![0; READ_CHUNK].into(),
            body: Vec::new(),
            pool,
            max_in: 0,
            max_out: 0,
            max_chunk: 0,
            pump_requests: 0,
            clients,
        }
    }

    /// Moves bytes and events until nothing moves; says whether the connection stays.
    pub(crate) fn pump(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Next {
        c.core.borrow_mut().queued = true;
        c.pipe.begin();
        self.pump_requests = 0;
        let next = self.rounds(cx, c);
        if next == Next::Abort && c.cut && self.stopping.is_none() {
            let counters = &self.shared.handle.0.counters;
            counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
            log::debug!("{}: {}: write timeout, reset", c.peer, c.id);
        }
        c.pipe.end(&mut self.pool);
        let mut core = c.core.borrow_mut();
        core.queued = false;
        if core.codec.is_h2() {
            let counters = &self.shared.handle.0.counters;
            if !c.h2_counted {
                c.h2_counted = true;
                counters.h2_connections.fetch_add(1, Ordering::Relaxed);
            }
            let counts = core.codec.take_counts();
            if counts.floods.iter().any(|&n| n > 0) {
                // Cut off for a flood: the client's next connections wait.
                let max = self.shared.config.per_client.abuse_delay;
                self.clients.abused(c.peer.ip(), cx.now, max);
            }
            counters.add_h2(counts);
        }
        drop(core);
        next
    }

    fn rounds(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Next {
        if c.preamble.is_some() {
            match self.preamble(cx, c) {
                Some(true) => {}
                Some(false) => return Next::Keep,
                None => return Next::Abort,
            }
        }
        if let Some(until) = c.held {
            // A stop lets it go at once: its codec is shutting down.
            if cx.now < until && self.stopping.is_none() {
                return Next::Keep;
            }
            c.held = None;
        }
        if matches!(c.pipe.phase(), Phase::Lingering { .. }) {
            return self.finish(cx, c, true);
        }
        if c.tunnel.is_some() {
            return self.tunnel(cx, c);
        }
        let mut rounds = 0;
        loop {
            // A waiting body reader takes its bytes where they lie first; the codec reads what
            // is left (and buffers body bytes only for a reader that is not waiting), unless
            // the reader would have taken more in place but for its share of the round.
            let (mut moved, more) = match self.in_place(cx, c) {
                Some(r) => r,
                None => return Next::Abort,
            };
            if !more {
                match self.input(cx, c) {
                    Some(m) => moved |= m,
                    None => return Next::Abort,
                }
            }
            let closed = self.events(cx.now, c, &mut moved);
            moved |= self.callbacks(cx.now, c);
            match self.output(cx, c) {
                Some(m) => moved |= m,
                None => return Next::Abort,
            }
            let mut core = c.core.borrow_mut();
            if core.codec.is_switched() {
                // The 101 is out: the pipe carries the tunnel from here on.
                let hook = core.upgrade.take();
                drop(core);
                c.tunnel = Some(hook.map_or(Tunnel::Closing, Tunnel::Waiting));
                return self.tunnel(cx, c);
            }
            let killed = core.kill && core.codec.poll_transmit().is_empty();
            // `Closed` comes once; a close still flushing TLS bytes is back here on later pumps.
            let closed = closed || core.codec.is_closed();
            drop(core);
            if closed || killed || c.pipe.tls_failed() {
                // No close_notify after a cut-short response.
                return self.finish(cx, c, !killed);
            }
            if !moved {
                return Next::Keep;
            }
            if self.pump_requests >= REQUESTS_PER_PUMP {
                return Next::Yield;
            }
            if !Self::again(c) {
                return Next::Keep;
            }
            rounds += 1;
            if rounds == ROUNDS_PER_PUMP {
                return Next::Yield;
            }
        }
    }

    /// Whether a round that moved may have left work for another: events or callbacks the
    /// round's own steps raised after they ran, or input the codec refused then and wants now.
    /// The socket was read until empty (or until the codec would take no more) and written
    /// until full, and nothing arrives on it during a pump. HTTP/2 always goes round.
    fn again(c: &Conn) -> bool {
        let core = c.core.borrow();
        core.codec.is_h2()
            || core.codec.has_events()
            || core.slots.iter().any(Slot::needs_work)
            || (core.codec.wants_read() && c.pipe.may_have_input())
    }

    /// Moves bytes between the socket and the tunnel's end (once joined) until nothing moves;
    /// closes the connection once the end says the tunnel is over.
    fn tunnel(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Next {
        if let Some(Tunnel::Waiting(hook)) = &c.tunnel {
            c.tunnel = Some(match hook.take() {
                Taken::Waiting => return Next::Keep,
                Taken::Abandoned => Tunnel::Closing,
                Taken::End(mut end) => {
                    end.start(cx.now);
                    if c.pipe.is_input_told() {
                        // The peer's FIN came before the switch.
                        end.handle_eof(cx.now);
                    }
                    Tunnel::Open(end)
                }
            });
        }
        let Some(Tunnel::Open(end)) = c.tunnel.as_mut() else {
            return self.finish(cx, c, true);
        };
        let mut rounds = 0;
        loop {
            end.refill();
            let Ok(mut moved) = c.pipe.read(cx, end, &mut self.pool, EofPolicy::Feed) else {
                return Next::Abort;
            };
            match c.pipe.write(cx, end) {
                Ok(m) => moved |= m,
                Err(_) => return Next::Abort,
            }
            if end.wants_shutdown_write() {
                match c.pipe.shutdown_write(cx) {
                    Ok(true) => {
                        end.handle_shutdown_write();
                        moved = true;
                    }
                    Ok(false) => {}
                    Err(_) => return Next::Abort,
                }
            }
            if c.pipe.tls_failed() {
                c.tunnel = Some(Tunnel::Closing);
                return self.finish(cx, c, false);
            }
            if end.is_done() {
                log::debug!("{}: {}: tunnel over", c.peer, c.id);
                c.tunnel = Some(Tunnel::Closing);
                return self.finish(cx, c, true);
            }
            if !moved {
                return Next::Keep;
            }
            rounds += 1;
            if rounds == ROUNDS_PER_PUMP {
                return Next::Yield;
            }
        }
    }

    /// The codec is done: reset a cut connection, else let the pipe flush and close.
    fn finish(&mut self, cx: &mut Cx<'_>, c: &mut Conn, notify: bool) -> Next {
        if c.cut {
            return Next::Abort;
        }
        let how = Shutdown {
            notify,
            write_timeout: self.shared.config.write_timeout,
            linger: self.stopping,
        };
        match c.pipe.shutdown(cx, how) {
            pipe::Next::Keep => Next::Keep,
            pipe::Next::Close => Next::Close,
            pipe::Next::Abort => Next::Abort,
            pipe::Next::Expired => {
                c.cut = true;
                Next::Abort
            }
        }
    }

    /// Socket → codec. `None`: the connection failed.
    fn input(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Option<bool> {
        let mut core = c.core.borrow_mut();
        if core.kill {
            return Some(false);
        }
        let r = c
            .pipe
            .read(cx, &mut core.codec, &mut self.pool, EofPolicy::Feed);
        drop(core);
        let peak = c.pipe.take_peak_input();
        if peak > self.max_in {
            self.max_in = peak;
            let counters = &self.shared.handle.0.counters;
            counters.max_input.fetch_max(peak, Ordering::Relaxed);
        }
        r.ok()
    }

    /// Codec → socket. `None`: the connection failed.
    fn output(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Option<bool> {
        let mut core = c.core.borrow_mut();
        let pending = core.codec.poll_transmit().len();
        if pending > self.max_out {
            self.max_out = pending;
            let counters = &self.shared.handle.0.counters;
            counters.max_output.fetch_max(pending, Ordering::Relaxed);
        }
        c.pipe.write(cx, &mut core.codec).ok()
    }

    /// Codec events → handlers. Returns whether the codec closed.
    fn events(&mut self, now: Instant, c: &mut Conn, moved: &mut bool) -> bool {
        let mut closed = false;
        loop {
            if self.pump_requests >= REQUESTS_PER_PUMP {
                // The rest stay queued in the codec for the next pump.
                return closed;
            }
            let ev = {
                let mut core = c.core.borrow_mut();
                self.shared.set_date(&mut core, now);
                core.codec.poll_event()
            };
            let Some(ev) = ev else { return closed };
            *moved = true;
            match ev {
                Event::Request { id, head } => {
                    self.pump_requests += 1;
                    let counters = &self.shared.handle.0.counters;
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    let ex = Rc::new(Exchange::new(
                        c.core.clone(),
                        self.shared.clone(),
                        id,
                        head,
                        (c.peer, c.local),
                        now,
                    ));
                    let slot = Slot::new(id, Rc::downgrade(&ex));
                    c.core.borrow_mut().slots.push_back(slot);
                    let limits = &self.shared.config.per_client;
                    if let Err(wait) = self.clients.request(limits, c.peer.ip(), now) {
                        counters.limited_requests.fetch_add(1, Ordering::Relaxed);
                        too_many(Reqd(ex), wait);
                        continue;
                    }
                    let keep = ex.clone();
                    let handler = &mut self.request;
                    let peer = c.peer;
                    if catch_unwind(AssertUnwindSafe(|| handler(peer, Reqd(ex)))).is_err() {
                        self.panicked(&keep, "request handler");
                    }
                }
                Event::BodyReadable { id } => {
                    if let Some(slot) = c.core.borrow_mut().slot_mut(id) {
                        slot.try_read = true;
                    }
                }
                Event::Writable { id } => {
                    if let Some(slot) = c.core.borrow_mut().slot_mut(id) {
                        slot.blocked = false;
                        slot.writable_now = true;
                    }
                }
                Event::Error { id, error } => self.error_event(c, id, error),
                Event::Reset { id } => {
                    log::debug!("{}: {}: exchange {id:?} reset", c.peer, c.id);
                    if let Some(slot) = c.core.borrow_mut().slot_mut(id) {
                        // Its body will never complete, its response goes nowhere.
                        slot.finished = true;
                    }
                }
                Event::Closed | Event::Switched => closed = true,
            }
        }
    }

    fn error_event(&mut self, c: &mut Conn, id: Option<crate::http::ExchangeId>, error: Error) {
        let counters = &self.shared.handle.0.counters;
        counters.errors.fetch_add(1, Ordering::Relaxed);
        match error {
            Error::HeaderTimeout => counters.head_timeouts.fetch_add(1, Ordering::Relaxed),
            Error::BodyTimeout => counters.body_timeouts.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        log::debug!("{}: {} ({error})", c.peer, c.id);
        let ex = {
            let mut core = c.core.borrow_mut();
            id.and_then(|id| core.slot_mut(id)).and_then(|slot| {
                // Its body will never complete: the reader learns at the next callback step.
                slot.finished = true;
                slot.exchange.upgrade()
            })
        };
        let respond = ErrorResponse::new(
            c.core.clone(),
            self.shared.clone(),
            c.peer,
            error,
            id,
            ex.clone(),
        );
        let req = ex.as_ref().map(|ex| &ex.request);
        let handler = &mut self.error;
        let peer = c.peer;
        if catch_unwind(AssertUnwindSafe(|| handler(peer, &error, req, respond))).is_err() {
            // The ErrorResponse was dropped while unwinding: the default response is out.
            counters.panics.fetch_add(1, Ordering::Relaxed);
            log::error!("{peer}: error handler panicked");
        }
    }

    /// The connection is gone: fail every waiting reader and writer, return the buffers.
    pub(crate) fn teardown(&mut self, mut c: Conn) {
        if c.counted {
            self.clients
                .close(&self.shared.config.per_client, c.peer.ip());
        }
        let slots = {
            let mut core = c.core.borrow_mut();
            core.closed = true;
            std::mem::take(&mut core.slots)
        };
        c.pipe.discard(&mut self.pool); // unread input is dropped with the connection
        for slot in slots {
            if let Some(reader) = slot.reader {
                self.guarded(&slot.exchange, "body reader", || abort_reader(reader));
            }
            if let Some(f) = slot.on_writable {
                self.guarded(&slot.exchange, "on_writable", f);
            }
        }
    }
}

impl Running {
    /// Until when a new connection from `ip` waits unread (its client was cut off for abuse
    /// lately), counted in `abuse_held`.
    pub(crate) fn hold(&self, ip: std::net::IpAddr, now: Instant) -> Option<Instant> {
        let until = self.clients.held(ip, now)?;
        let counters = &self.shared.handle.0.counters;
        counters.abuse_held.fetch_add(1, Ordering::Relaxed);
        log::debug!("{ip}: cut off for abuse lately; held until then");
        Some(until)
    }

    /// Reads the PROXY protocol header, exactly (what follows stays in the socket for the
    /// pipe): `Some(true)` once it is read and the client known, `Some(false)` while it is
    /// still coming, `None` to reset the connection (a malformed or missing header, its
    /// deadline passed, the client over its connection cap).
    fn preamble(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Option<bool> {
        let counters = &self.shared.handle.0.counters;
        let mut buf = [0u8; 256];
        loop {
            let (reader, until) = c.preamble.as_mut()?;
            if *until <= cx.now {
                log::info!("{}: no PROXY protocol header in time; reset", c.peer);
                counters.proxy_refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let want = reader.want().min(buf.len());
            let n = match cx.recv(c.id, &mut buf[..want]) {
                Ok(0) => return Some(false),
                Ok(n) => n,
                Err(_) => return None, // gone before its header
            };
            match reader.feed(&buf[..n]) {
                Ok(None) => {}
                Ok(Some(h)) => {
                    if let Some(client) = h.source {
                        log::debug!("{}: PROXY protocol: client {client}", c.peer);
                        c.peer = client;
                    }
                    c.preamble = None;
                    if !self
                        .clients
                        .open(&self.shared.config.per_client, c.peer.ip())
                    {
                        log::debug!("{}: over max_connections_per_ip; reset", c.peer);
                        counters.limited_connections.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    c.counted = true;
                    c.held = self.hold(c.peer.ip(), cx.now);
                    return Some(true);
                }
                Err(e) => {
                    log::info!("{}: {e}; reset", c.peer);
                    counters.proxy_refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }
}

/// `429 Too Many Requests` with `Retry-After` in whole seconds (at least 1), instead of the
/// handler; the connection goes on.
fn too_many(reqd: Reqd, wait: Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let head = ::http::Response::builder()
        .status(::http::StatusCode::TOO_MANY_REQUESTS)
        .header(::http::header::RETRY_AFTER, secs.max(1))
        .header(::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(())
        .expect("static header");
    let _ = reqd.respond_with_bytes(head, "429 Too Many Requests\n");
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::http::Config;
    use crate::runtime::Runtime;
    use crate::service::testing::{ClientHandle, RawClient};
    use crate::service::{self, BodyWriter, Handle, Initialized};

    /// A server runtime (stack B, port 80, `http` or `https`) and a client runtime (stack A)
    /// over the in-memory wire on a virtual clock ([`crate::testing::Pair`]). The handler
    /// streams an endless body to every request.
    pub(crate) struct Pair {
        pub pair: crate::testing::Pair,
        pub handle: Handle,
    }

    impl Pair {
        pub(crate) fn new(config: Config, tls: Option<crate::tls::ServerConfig>) -> Pair {
            let mut pair = crate::testing::Pair::new();
            let svc = service::init(&mut pair.server, 80).expect("listen");
            let errors = service::default_error_handler;
            let Initialized(handle) = match tls {
                Some(tls) => service::https(svc, tls, config, None, errors, endless),
                None => service::http(svc, config, None, errors, endless),
            };
            Pair { pair, handle }
        }

        /// The client's runtime.
        pub(crate) fn client(&mut self) -> &mut Runtime {
            &mut self.pair.client
        }

        /// Steps both loops until `done` holds or `limit` of virtual time passes; returns the
        /// virtual time it took.
        pub(crate) fn drive(
            &mut self,
            limit: Duration,
            mut done: impl FnMut() -> bool,
        ) -> Duration {
            self.pair.drive(limit, |_| done())
        }
    }

    fn endless(_peer: SocketAddr, reqd: Reqd) {
        fn more(mut w: BodyWriter) {
            let chunk = [b'x'; 16 * 1024];
            loop {
                match w.write(&chunk) {
                    Ok(0) => return w.on_writable(more),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }
        let head = ::http::Response::new(());
        more(reqd.respond_with_streaming(head, None).expect("respond"));
    }

    /// Sends a GET on `c`, then reads nothing past the first byte of the answer.
    pub(crate) fn stop_reading(c: &ClientHandle) {
        c.set_max_input(Some(1));
        c.send(b"GET / HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    }

    #[test]
    fn a_peer_that_stops_reading_is_reset_at_the_write_timeout() {
        let write_timeout = Duration::from_millis(400);
        let config = Config {
            write_timeout,
            ..Config::default()
        };
        let mut pair = Pair::new(config, None);
        let addr = SocketAddr::from((net::testing::B_V4, 80));
        let c = RawClient::connect(pair.client(), addr).expect("connect");
        stop_reading(&c);
        // The answer starts, then the windows fill: the last progress is about now.
        pair.drive(Duration::from_secs(10), || c.received() > 0);
        let handle = pair.handle.clone();
        let took = pair.drive(Duration::from_secs(10), || handle.stats().active == 0);
        let stats = pair.handle.stats();
        assert_eq!((stats.write_timeouts, stats.active), (1, 0), "{stats:?}");
        // The windows fill within a few round trips of the first byte (the wire has no
        // latency: microseconds), then nothing moves for exactly `write_timeout`.
        assert!(
            took >= write_timeout && took < write_timeout + Duration::from_millis(5),
            "closed after {took:?}"
        );
        // Reading again, the client finds a reset behind the data, not a FIN.
        let _ = c.take_input(); // (wakes the client up)
        c.set_max_input(None);
        pair.drive(Duration::from_secs(10), || c.is_done());
        assert!(
            c.is_reset() && !c.is_eof(),
            "a reset, not a FIN behind unread data"
        );
    }
}

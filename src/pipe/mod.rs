//! The one byte pipe between a stack connection, an optional TLS session and a codec: the server's
//! HTTP connections, the client's, and the test client all move their bytes here.
//!
//! A [`Pipe`] owns the connection's id, its TLS session (if any) and the buffers between the
//! stages; the codec stays with its owner and is passed in to each call, as anything with the
//! [`Codec`] shape (`wants_read / handle_input / handle_eof / poll_transmit /
//! handle_transmitted`). The owner pumps:
//!
//! 1. [`Pipe::read`]: socket → (TLS →) input buffer → codec, only while the codec wants input
//!    and the buffer has room (backpressure is a full buffer, never growth; rustls holds at most
//!    a record, so ciphertext stops being read too). Input the codec did not take stays and is
//!    offered again. The end of the stream is told to the codec once everything before it was
//!    taken (or held back with [`EofPolicy::Hold`] and told later by [`Pipe::feed_eof`]).
//! 2. the owner handles the codec's events;
//! 3. [`Pipe::write`]: codec → (TLS →) socket, until the socket takes no more;
//! 4. once the codec is done, [`Pipe::shutdown`]: TLS `close_notify` (or the alert after a TLS
//!    failure) flushed with a deadline, then, when asked to linger, the socket's queue drained
//!    before the close; it says whether to keep, close or abort.
//!
//! Where it is, is an enum ([`Phase`]): open, closing TLS (records waiting for a socket that has
//! no room), lingering (waiting for the peer to take the last bytes while stopping). Input has
//! its own ([`Input`]): open, ended (not yet told), told. Buffers come from a pool the owner
//! keeps per app and go back to it whenever they are empty, so idle connections hold none.
//!
//! TLS failures are sticky: after one, the codec never sees the connection's bytes again, its
//! output is dropped, and only the alert goes out. Server-side accounting (handshakes, failures
//! by reason, renegotiation requests) hooks in through [`TlsWatch`]; the pipe itself counts
//! nothing.
//!
//! Nothing here reads the clock: `now` comes from the loop's pass.

use std::time::{Duration, Instant};

use net::ConnId;

use crate::runtime::Cx;
use crate::tls::{self, ClientSession, PlainRead, ServerSession};

mod buf;
mod read;
#[cfg(test)]
mod tests;

pub(crate) use buf::{InBuf, Pool};

/// How often a lingering connection re-checks that the peer took its last bytes.
const LINGER_POLL: Duration = Duration::from_millis(20);

/// The byte side of a codec: what the pipe needs to feed it and drain it.
pub(crate) trait Codec {
    /// Whether offering input can make progress now.
    fn wants_read(&self) -> bool;
    /// Takes bytes; returns how many.
    fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize;
    /// The peer's stream ended.
    fn handle_eof(&mut self, now: Instant);
    /// Bytes waiting to be sent.
    fn poll_transmit(&self) -> &[u8];
    /// `n` bytes of [`Codec::poll_transmit`] were sent.
    fn handle_transmitted(&mut self, now: Instant, n: usize);
    /// The TLS handshake completed with this ALPN protocol; told once, before any input.
    fn handle_alpn(&mut self, _protocol: Option<&[u8]>) {}
}

macro_rules! codec {
    ($t:ty) => {
        impl Codec for $t {
            fn wants_read(&self) -> bool {
                <$t>::wants_read(self)
            }
            fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
                <$t>::handle_input(self, now, bytes)
            }
            fn handle_eof(&mut self, now: Instant) {
                <$t>::handle_eof(self, now)
            }
            fn poll_transmit(&self) -> &[u8] {
                <$t>::poll_transmit(self)
            }
            fn handle_transmitted(&mut self, now: Instant, n: usize) {
                <$t>::handle_transmitted(self, now, n)
            }
        }
    };
}

codec!(crate::http::ServerConn);
codec!(crate::http::client::ClientConn);

/// The TLS session operations the pipe uses (both sides of `tls::Session`).
pub(crate) trait Session {
    fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, tls::Error>;
    fn handle_eof(&mut self);
    fn read_plaintext(&mut self, buf: &mut [u8]) -> PlainRead;
    fn write_plaintext(&mut self, data: &[u8]) -> usize;
    fn wants_write(&self) -> bool;
    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize;
    fn close(&mut self);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant) -> Result<(), tls::Error>;
    fn is_handshaking(&self) -> bool;
    fn alpn_protocol(&self) -> Option<&[u8]>;
}

macro_rules! session {
    ($t:ty) => {
        impl Session for $t {
            fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, tls::Error> {
                <$t>::handle_input(self, now, bytes)
            }
            fn handle_eof(&mut self) {
                <$t>::handle_eof(self)
            }
            fn read_plaintext(&mut self, buf: &mut [u8]) -> PlainRead {
                <$t>::read_plaintext(self, buf)
            }
            fn write_plaintext(&mut self, data: &[u8]) -> usize {
                <$t>::write_plaintext(self, data)
            }
            fn wants_write(&self) -> bool {
                <$t>::wants_write(self)
            }
            fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
                <$t>::poll_transmit(self, out)
            }
            fn close(&mut self) {
                <$t>::close(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) -> Result<(), tls::Error> {
                <$t>::handle_timeout(self, now)
            }
            fn is_handshaking(&self) -> bool {
                <$t>::is_handshaking(self)
            }
            fn alpn_protocol(&self) -> Option<&[u8]> {
                <$t>::alpn_protocol(self)
            }
        }
    };
}

session!(ServerSession);
session!(ClientSession);

/// Hooks for whoever counts TLS outcomes (the server's statistics); `()` counts nothing.
pub(crate) trait TlsWatch {
    /// The session consumed these ciphertext bytes; `established`: after its handshake.
    fn consumed(&mut self, _bytes: &[u8], _established: bool) {}
    /// The handshake completed.
    fn handshake_done(&mut self) {}
    /// The session failed (the alert is queued).
    fn failed(&mut self, _conn: ConnId, _error: &tls::Error) {}
    /// The stream ended (FIN or reset) while the handshake was under way, after the peer had
    /// sent something.
    fn ended_mid_handshake(&mut self) {}
}

impl TlsWatch for () {}

/// What [`Pipe::read_direct`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// `take` was offered bytes and used this many (0: it declined them; they stay).
    Took(usize),
    /// Nothing to offer now: the socket is empty for this pump, or the stream ended (the next
    /// [`Pipe::read`] tells the codec).
    Empty,
    /// This pipe cannot lend its bytes (TLS, or a stack that cannot lend its buffer): read
    /// them through the codec with [`Pipe::read`].
    Unsupported,
}

/// The input side of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// The peer may send more.
    Open,
    /// The stream ended (FIN, `close_notify`, or a truncated TLS stream); the codec has not
    /// been told yet.
    Ended,
    /// ... and the codec was told.
    Told,
}

/// Where a pipe is on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Moving bytes both ways.
    Open,
    /// The codec is done; TLS records (`close_notify`, an alert) wait for room in the socket,
    /// until `until` (reset by progress).
    ClosingTls { until: Instant },
    /// Everything was handed to the socket; waiting until the peer acknowledged it (or
    /// `until`) before the close, looking again at `next`. Used while stopping.
    Lingering { until: Instant, next: Instant },
}

/// What the owner should do with the connection after [`Pipe::shutdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep it: bytes are still on their way out.
    Keep,
    /// Close it gracefully (FIN after queued data).
    Close,
    /// Reset it: the socket failed.
    Abort,
    /// Reset it: TLS records waited `write_timeout` for a peer that took nothing.
    Expired,
}

/// How a pipe failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The socket was reset or failed.
    Socket,
}

/// Whether [`Pipe::read`] tells the codec about the end of the stream as soon as it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EofPolicy {
    /// Tell it once everything before the end was taken.
    Feed,
    /// Leave it to [`Pipe::feed_eof`] (the owner still has events of earlier input to handle).
    Hold,
}

/// How [`Pipe::shutdown`] ends the connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shutdown {
    /// Queue TLS `close_notify` (not after a response was cut short, nor after a failure).
    pub notify: bool,
    /// How long TLS records may wait for room in the socket without progress.
    pub write_timeout: Duration,
    /// Wait until the socket's queue is empty (the peer has every byte), at most until then.
    pub linger: Option<Instant>,
}

/// A TLS session and its ciphertext buffers.
#[derive(Debug)]
struct TlsPart<S, W> {
    session: S,
    watch: W,
    cipher_in: InBuf,
    cipher_out: Vec<u8>,
    out_pos: usize,
    /// `recv` said "nothing now" during this pump.
    drained: bool,
    /// The TCP stream ended.
    eof: bool,
    /// The session failed: only its alert goes out.
    failed: bool,
    close_queued: bool,
    /// The peer sent at least one byte.
    heard: bool,
    handshake_seen: bool,
    /// The codec was told the negotiated ALPN protocol.
    alpn_told: bool,
}

/// One connection's byte pipe; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Pipe<S, W = ()> {
    id: ConnId,
    tls: Option<Box<TlsPart<S, W>>>,
    input: InBuf,
    state: Input,
    phase: Phase,
    /// `recv` said "nothing now" during this pump (plain connections).
    drained: bool,
    /// Most input held at once since [`Pipe::take_peak_input`].
    peak_input: usize,
}

impl<S: Session, W: TlsWatch> Pipe<S, W> {
    /// A pipe for connection `id`, with a TLS session (and its watcher) or none.
    pub(crate) fn new(id: ConnId, tls: Option<(S, W)>) -> Pipe<S, W> {
        Pipe {
            id,
            tls: tls.map(|(session, watch)| {
                Box::new(TlsPart {
                    session,
                    watch,
                    cipher_in: InBuf::default(),
                    cipher_out: Vec::new(),
                    out_pos: 0,
                    drained: false,
                    eof: false,
                    failed: false,
                    close_queued: false,
                    heard: false,
                    handshake_seen: false,
                    alpn_told: false,
                })
            }),
            input: InBuf::default(),
            state: Input::Open,
            phase: Phase::Open,
            drained: false,
            peak_input: 0,
        }
    }

    /// The connection.
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    /// Where the pipe is on its way out.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The most plaintext held at once since the last call.
    pub(crate) fn take_peak_input(&mut self) -> usize {
        std::mem::take(&mut self.peak_input)
    }

    /// The TLS session, if any.
    pub(crate) fn session(&self) -> Option<&S> {
        self.tls.as_ref().map(|t| &t.session)
    }

    /// The TLS session failed (its alert is queued or sent).
    pub(crate) fn tls_failed(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.failed)
    }

    /// The TLS handshake is under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.session.is_handshaking())
    }

    /// Starts a pump: `recv` may be asked again.
    pub(crate) fn begin(&mut self) {
        self.drained = false;
        if let Some(t) = self.tls.as_mut() {
            t.drained = false;
        }
    }

    /// Ends a pump: empty buffers go back to the pool.
    pub(crate) fn end(&mut self, pool: &mut Pool) {
        self.input.release(pool);
        if let Some(t) = self.tls.as_mut() {
            t.cipher_in.release(pool);
        }
    }

    /// The connection is gone: whatever is buffered is dropped, buffers go back to the pool.
    pub(crate) fn discard(&mut self, pool: &mut Pool) {
        self.input.clear(pool);
        if let Some(t) = self.tls.as_mut() {
            t.cipher_in.clear(pool);
        }
    }

    /// When the pipe has timed work: the TLS handshake deadline, a closing or lingering
    /// deadline (and, lingering, the next check of the socket's queue).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let tls = self
            .tls
            .as_ref()
            .filter(|t| !t.failed)
            .and_then(|t| t.session.poll_timeout());
        let phase = match self.phase {
            Phase::Open => None,
            Phase::ClosingTls { until } => Some(until),
            Phase::Lingering { until, next } => Some(until.min(next)),
        };
        [tls, phase].into_iter().flatten().min()
    }

    /// Runs the TLS session's timers (the handshake deadline).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Some(t) = self.tls.as_mut() {
            if let Err(e) = t.session.handle_timeout(now) {
                t.fail(self.id, &e);
            }
        }
    }

    /// Codec → (TLS →) socket until the socket takes no more. Returns whether anything moved.
    /// Before the TLS handshake is done the codec's output waits; after a TLS failure it is
    /// dropped.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn write(
        &mut self,
        cx: &mut Cx<'_>,
        codec: &mut dyn Codec,
    ) -> Result<bool, Failure> {
        let mut moved = false;
        loop {
            let out = codec.poll_transmit();
            let n = if out.is_empty() {
                0
            } else {
                match self.tls.as_mut() {
                    Some(t) if t.failed => out.len(),
                    Some(t) if t.session.is_handshaking() => 0,
                    Some(t) => t.session.write_plaintext(out),
                    None => cx.send(self.id, out).map_err(|_| Failure::Socket)?,
                }
            };
            if n > 0 {
                codec.handle_transmitted(cx.now, n);
                moved = true;
            }
            let flushed = match self.tls.as_mut() {
                Some(t) => t.flush(cx, self.id)?,
                None => false,
            };
            moved |= flushed;
            if n == 0 && !flushed {
                return Ok(moved);
            }
        }
    }

    /// Sends TLS records waiting (handshake replies, alerts) without taking codec output.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn flush(&mut self, cx: &mut Cx<'_>) -> Result<bool, Failure> {
        match self.tls.as_mut() {
            Some(t) => t.flush(cx, self.id),
            None => Ok(false),
        }
    }

    /// Half-closes the connection, for a tunnel whose other side ended: TLS `close_notify`
    /// (once), then, once every TLS record was handed to the socket, FIN; reading goes on.
    /// Returns whether the FIN was queued (else call again when the socket has room).
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn shutdown_write(&mut self, cx: &mut Cx<'_>) -> Result<bool, Failure> {
        self.close_tls();
        if let Some(t) = self.tls.as_mut() {
            t.flush(cx, self.id)?;
            if !t.is_flushed() {
                return Ok(false);
            }
        }
        cx.shutdown_write(self.id);
        Ok(true)
    }

    /// Whether the pipe runs TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether a read in this pump may still give the codec something: bytes buffered here,
    /// a socket not seen empty since the pump began, or an end of stream not told yet. A
    /// plain connection only; TLS always may (its session holds bytes of its own).
    pub(crate) fn may_have_input(&self) -> bool {
        self.tls.is_some()
            || self.input.len() > 0
            || self.state == Input::Ended
            || (self.state == Input::Open && !self.drained)
    }

    /// Whether the peer's stream ended and the codec was not told yet (held back by
    /// [`EofPolicy::Hold`] until [`Pipe::feed_eof`]).
    pub(crate) fn is_eof_held(&self) -> bool {
        self.state == Input::Ended
    }

    /// Whether the peer's stream ended and the codec was told.
    pub(crate) fn is_input_told(&self) -> bool {
        self.state == Input::Told
    }

    /// Queues TLS `close_notify` (once; not after a failure).
    pub(crate) fn close_tls(&mut self) {
        if let Some(t) = self.tls.as_mut() {
            if !t.close_queued && !t.failed {
                t.close_queued = true;
                t.session.close();
            }
        }
    }

    /// The codec is done with the connection: flush TLS's last records (`close_notify` when
    /// `how.notify`), linger when asked, and say when to close. Call again on every pump until
    /// it says other than [`Next::Keep`].
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>, how: Shutdown) -> Next {
        if let Phase::Lingering { until, .. } = self.phase {
            let r = cx.readiness(self.id);
            let done = cx.send_queue(self.id) == 0 || r.closed || cx.now >= until;
            if done {
                return Next::Close;
            }
            self.phase = Phase::Lingering {
                until,
                next: cx.now + LINGER_POLL,
            };
            return Next::Keep;
        }
        if how.notify {
            self.close_tls();
        }
        if let Some(t) = self.tls.as_mut() {
            let Ok(progress) = t.flush(cx, self.id) else {
                return Next::Abort;
            };
            if !t.is_flushed() {
                let until = match self.phase {
                    Phase::ClosingTls { until } if !progress => until,
                    _ => cx.now + how.write_timeout,
                };
                if cx.now >= until {
                    return Next::Expired;
                }
                self.phase = Phase::ClosingTls { until };
                return Next::Keep;
            }
        }
        if let Some(until) = how.linger {
            if cx.send_queue(self.id) > 0 {
                self.phase = Phase::Lingering {
                    until,
                    next: cx.now + LINGER_POLL,
                };
                return Next::Keep;
            }
        }
        Next::Close
    }
}

impl<S: Session, W: TlsWatch> TlsPart<S, W> {
    fn fail(&mut self, id: ConnId, e: &tls::Error) {
        log::debug!("{id}: {e}");
        self.failed = true;
        self.watch.failed(id, e);
    }

    /// The TCP stream ended (FIN or reset).
    fn ended(&mut self) {
        if self.heard && self.session.is_handshaking() {
            self.watch.ended_mid_handshake();
        }
    }

    /// Sends ciphertext until the socket is full; returns whether any went.
    fn flush(&mut self, cx: &mut Cx<'_>, id: ConnId) -> Result<bool, Failure> {
        let mut moved = false;
        loop {
            if self.out_pos == self.cipher_out.len() {
                self.cipher_out.clear();
                self.out_pos = 0;
                if self.session.poll_transmit(&mut self.cipher_out) == 0 {
                    return Ok(moved);
                }
            }
            match cx.send(id, &self.cipher_out[self.out_pos..]) {
                Ok(0) => return Ok(moved),
                Ok(n) => {
                    self.out_pos += n;
                    moved = true;
                }
                Err(_) => return Err(Failure::Socket),
            }
        }
    }

    /// Every ciphertext byte (alerts, `close_notify` included) was handed to the socket.
    fn is_flushed(&self) -> bool {
        self.out_pos == self.cipher_out.len() && !self.session.wants_write()
    }
}

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

use net::{ConnId, RecvError};

use crate::runtime::Cx;
use crate::tls::{self, ClientSession, PlainRead, ServerSession};

/// How often a lingering connection re-checks that the peer took its last bytes.
const LINGER_POLL: Duration = Duration::from_millis(20);
/// Input buffers kept for reuse by later connections, per pool.
const POOL: usize = 256;

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

/// Buffers kept for reuse, all of one size.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<Box<[u8]>>,
    size: usize,
}

impl Pool {
    /// A pool of `size`-byte buffers.
    pub(crate) fn new(size: usize) -> Pool {
        Pool {
            free: Vec::new(),
            size: size.max(1),
        }
    }

    /// The buffers' size: the most a pipe buffers per stage.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    fn take(&mut self) -> Box<[u8]> {
        self.free.pop().unwrap_or_else(|| vec![0; self.size].into())
    }

    fn give(&mut self, buf: Box<[u8]>) {
        if self.free.len() < POOL && buf.len() == self.size {
            self.free.push(buf);
        }
    }
}

/// Bytes not yet consumed by the next stage, in a pooled buffer while non-empty.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    buf: Option<Box<[u8]>>,
    lo: usize,
    hi: usize,
}

impl InBuf {
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], |b| &b[self.lo..self.hi])
    }

    pub(crate) fn len(&self) -> usize {
        self.hi - self.lo
    }

    /// `n` bytes were written into the slice [`InBuf::spare`] returned.
    pub(crate) fn filled(&mut self, n: usize) {
        self.hi += n;
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.lo += n;
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        }
    }

    /// Free space after the data, compacting first if the data does not start at 0.
    pub(crate) fn spare(&mut self, pool: &mut Pool) -> &mut [u8] {
        let buf = self.buf.get_or_insert_with(|| pool.take());
        if self.hi == buf.len() && self.lo > 0 {
            buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        &mut buf[self.hi..]
    }

    /// Returns the buffer to the pool if it holds nothing.
    pub(crate) fn release(&mut self, pool: &mut Pool) {
        if self.hi == self.lo {
            if let Some(b) = self.buf.take() {
                pool.give(b);
            }
        }
    }

    /// Drops what is held and returns the buffer.
    fn clear(&mut self, pool: &mut Pool) {
        self.lo = 0;
        self.hi = 0;
        self.release(pool);
    }
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
}

/// What filling the input buffer produced.
enum Fill {
    Data(usize),
    /// Nothing now; a new readiness event comes when there is.
    Blocked,
    /// The peer's stream ended.
    Eof,
    Failed,
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

    /// Socket → (TLS →) buffer → codec, while the codec wants input (or the TLS handshake is
    /// under way) and the buffer (at most `pool.size()` bytes) has room. Returns whether
    /// anything moved.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) fn read(
        &mut self,
        cx: &mut Cx<'_>,
        codec: &mut dyn Codec,
        pool: &mut Pool,
        eof: EofPolicy,
    ) -> Result<bool, Failure> {
        let cap = pool.size();
        let mut moved = false;
        loop {
            if self.tls_failed() {
                return Ok(moved);
            }
            if codec.wants_read() && self.input.len() > 0 {
                let n = codec.handle_input(cx.now, self.input.data());
                self.input.consume(n);
                moved |= n > 0;
            }
            if eof == EofPolicy::Feed {
                moved |= self.feed_eof(cx.now, codec);
            }
            // The handshake goes on whatever the codec wants: it never sees its bytes.
            let wanted = codec.wants_read() || self.is_handshaking();
            if self.state != Input::Open || self.drained || !wanted || self.input.len() >= cap {
                return Ok(moved);
            }
            let spare = self.input.spare(pool);
            let fill = match self.tls.as_mut() {
                Some(t) => t.fill(cx, self.id, pool, spare),
                None => match cx.recv(self.id, spare) {
                    Ok(0) => Fill::Blocked,
                    Ok(n) => Fill::Data(n),
                    Err(RecvError::Finished) => Fill::Eof,
                    Err(_) => Fill::Failed,
                },
            };
            match fill {
                Fill::Blocked => {
                    // Plain: the socket is empty for this pump. TLS keeps its own flag, since
                    // it may also wait for room the codec frees later in this pump.
                    self.drained = self.tls.is_none();
                    return Ok(moved);
                }
                Fill::Data(n) => {
                    self.input.filled(n);
                    self.peak_input = self.peak_input.max(self.input.len());
                    moved = true;
                }
                Fill::Eof => {
                    self.state = Input::Ended;
                    moved = true;
                }
                Fill::Failed => return Err(Failure::Socket),
            }
        }
    }

    /// Tells the codec the stream ended, once everything before the end was taken. Returns
    /// whether it did now.
    pub(crate) fn feed_eof(&mut self, now: Instant, codec: &mut dyn Codec) -> bool {
        if self.state == Input::Ended && self.input.len() == 0 {
            self.state = Input::Told;
            codec.handle_eof(now);
            return true;
        }
        false
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

    /// Decrypts into `out`, reading and feeding ciphertext as needed; ciphertext is held up to
    /// the pool's buffer size.
    fn fill(&mut self, cx: &mut Cx<'_>, id: ConnId, pool: &mut Pool, out: &mut [u8]) -> Fill {
        loop {
            match self.session.read_plaintext(out) {
                PlainRead::Data(n) => return Fill::Data(n),
                PlainRead::Closed | PlainRead::Truncated => return Fill::Eof,
                PlainRead::Pending => {}
            }
            if self.failed {
                return Fill::Blocked;
            }
            if self.cipher_in.len() > 0 {
                let established = !self.session.is_handshaking();
                match self.session.handle_input(cx.now, self.cipher_in.data()) {
                    Ok(n) => {
                        self.watch
                            .consumed(&self.cipher_in.data()[..n], established);
                        self.cipher_in.consume(n);
                        if !self.handshake_seen && !self.session.is_handshaking() {
                            self.handshake_seen = true;
                            self.watch.handshake_done();
                        }
                        if n > 0 {
                            continue;
                        }
                    }
                    Err(e) => {
                        self.fail(id, &e);
                        return Fill::Blocked;
                    }
                }
            }
            // Handshake replies must leave before rustls takes more input.
            if self.session.wants_write() && self.flush(cx, id).is_err() {
                return Fill::Failed;
            }
            if self.eof || self.drained || self.cipher_in.len() >= pool.size() {
                self.cipher_in.release(pool);
                return Fill::Blocked;
            }
            let spare = self.cipher_in.spare(pool);
            match cx.recv(id, spare) {
                Ok(0) => self.drained = true,
                Ok(n) => {
                    self.heard = true;
                    self.cipher_in.filled(n);
                }
                Err(RecvError::Finished) => {
                    self.eof = true;
                    self.session.handle_eof();
                    self.ended();
                }
                Err(_) => {
                    self.ended();
                    return Fill::Failed;
                }
            }
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::net::SocketAddr;
    use std::rc::Rc;

    use net::ListenerId;

    use super::*;
    use crate::runtime::{App, Cx};
    use crate::testing::{Pair, RawClient, B};

    #[test]
    fn input_buffer_compacts_caps_and_returns_to_the_pool() {
        let mut pool = Pool::new(8);
        let mut b = InBuf::default();
        assert!(b.data().is_empty());
        let spare = b.spare(&mut pool);
        assert_eq!(spare.len(), 8);
        spare[..6].copy_from_slice(b"abcdef");
        b.filled(6);
        b.consume(4);
        assert_eq!(b.data(), b"ef");
        // Room at the end: no move yet.
        assert_eq!(b.spare(&mut pool).len(), 2);
        b.spare(&mut pool).copy_from_slice(b"gh");
        b.filled(2);
        // Full at the end with consumed bytes in front: compacted.
        assert_eq!(b.spare(&mut pool).len(), 4);
        assert_eq!(b.data(), b"efgh");
        // Not released while holding data; released (to the pool) once empty.
        b.release(&mut pool);
        assert!(pool.free.is_empty());
        b.consume(4);
        b.release(&mut pool);
        assert_eq!((pool.free.len(), b.len()), (1, 0));
        // The pooled buffer is reused.
        assert_eq!(b.spare(&mut pool).len(), 8);
        assert!(pool.free.is_empty());
    }

    /// A codec that takes input only when told to, counts the ends it is told, and has `out`
    /// to send.
    #[derive(Default)]
    struct Sink {
        wants: bool,
        got: Vec<u8>,
        eofs: u32,
        out: Vec<u8>,
        sent: usize,
    }

    impl Codec for Sink {
        fn wants_read(&self) -> bool {
            self.wants
        }
        fn handle_input(&mut self, _: Instant, bytes: &[u8]) -> usize {
            self.got.extend_from_slice(bytes);
            bytes.len()
        }
        fn handle_eof(&mut self, _: Instant) {
            self.eofs += 1;
        }
        fn poll_transmit(&self) -> &[u8] {
            &self.out[self.sent..]
        }
        fn handle_transmitted(&mut self, _: Instant, n: usize) {
            self.sent += n;
        }
    }

    /// What the test app knows: its sink, the pipe of the one connection it accepts, and how
    /// the pipe said to end it.
    struct State {
        sink: Sink,
        pipe: Option<Pipe<ServerSession>>,
        pool: Pool,
        /// Shut down, lingering this long, once everything was sent.
        linger: Option<Duration>,
        ended: Option<Next>,
        /// The most plaintext the pipe held at once.
        peak: usize,
        waker: Option<crate::runtime::LocalWaker>,
    }

    #[derive(Clone)]
    struct Server(Rc<RefCell<State>>);

    impl Server {
        fn pump(&self, cx: &mut Cx<'_>) {
            let mut guard = self.0.borrow_mut();
            let st = &mut *guard;
            let Some(pipe) = st.pipe.as_mut() else { return };
            pipe.begin();
            loop {
                let r = pipe.read(cx, &mut st.sink, &mut st.pool, EofPolicy::Feed);
                let w = pipe.write(cx, &mut st.sink);
                st.peak = st.peak.max(pipe.take_peak_input());
                if !(r.expect("socket") | w.expect("socket")) {
                    break;
                }
            }
            pipe.end(&mut st.pool);
            let Some(linger) = st.linger else { return };
            if st.sink.sent < st.sink.out.len() {
                return;
            }
            let how = Shutdown {
                notify: false,
                write_timeout: Duration::from_secs(3600),
                linger: Some(cx.now + linger),
            };
            let id = pipe.id();
            match pipe.shutdown(cx, how) {
                Next::Keep => {}
                end => {
                    st.ended = Some(end);
                    st.pipe = None;
                    match end {
                        Next::Close => cx.close(id),
                        _ => cx.abort(id),
                    }
                }
            }
        }
    }

    impl App for Server {
        fn handle_accept(&mut self, cx: &mut Cx<'_>, _: ListenerId, c: ConnId, _: SocketAddr) {
            let mut st = self.0.borrow_mut();
            st.pipe = Some(Pipe::new(c, None));
            st.waker = Some(cx.local_waker());
            drop(st);
            self.pump(cx);
        }
        fn handle_ready(&mut self, cx: &mut Cx<'_>, _: ConnId) {
            self.pump(cx);
        }
        fn handle_wake(&mut self, cx: &mut Cx<'_>) {
            self.pump(cx);
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.0.borrow().pipe.as_ref()?.poll_timeout()
        }
        fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
            self.pump(cx);
        }
    }

    /// A pair whose server runs the test app on port 7 with `sink`, buffers of `buffer` bytes.
    fn setup(sink: Sink, buffer: usize, linger: Option<Duration>) -> (Pair, Server) {
        let mut pair = Pair::new();
        let server = Server(Rc::new(RefCell::new(State {
            sink,
            pipe: None,
            pool: Pool::new(buffer),
            linger,
            ended: None,
            peak: 0,
            waker: None,
        })));
        pair.server
            .add(server.clone(), |_, cx| cx.listen(7, 16).map(|_| ()))
            .expect("listen");
        (pair, server)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_codec_that_wants_nothing_gets_nothing_then_every_byte_in_order_and_one_end() {
        let (mut pair, server) = setup(Sink::default(), 4096, None);
        let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
        let data = pattern(1 << 20);
        c.send(&data);
        c.close();
        pair.drive(Duration::from_secs(10), |_| false);
        {
            let st = server.0.borrow();
            assert!(st.sink.got.is_empty() && st.sink.eofs == 0);
            // Nothing read, so nothing buffered either: backpressure is the socket's window.
            assert_eq!(st.peak, 0);
        }
        server.0.borrow_mut().sink.wants = true;
        // (The test stands in for the owner: something changed, pump.)
        let waker = server.0.borrow().waker.clone().expect("accepted");
        waker.wake();
        pair.drive(Duration::from_secs(30), |_| server.0.borrow().sink.eofs > 0);
        let st = server.0.borrow();
        assert_eq!(st.sink.got.len(), data.len());
        assert!(st.sink.got == data, "bytes differ");
        assert_eq!(st.sink.eofs, 1, "the end is told once");
        assert!(st.peak <= 4096, "held {} bytes at once", st.peak);
    }

    #[test]
    fn lingering_closes_only_once_the_peer_has_every_byte() {
        // More than the client's socket takes while it reads nothing (256 KiB), less than that
        // plus the server's send buffer (256 KiB more): all of it reaches the server's socket,
        // not all of it the client.
        let out = pattern(384 * 1024);
        let sink = Sink {
            wants: true,
            out: out.clone(),
            ..Sink::default()
        };
        let (mut pair, server) = setup(sink, 4096, Some(Duration::from_secs(60)));
        let c = RawClient::connect(&mut pair.client, B.with_port(7)).unwrap();
        c.set_max_input(Some(1));
        // The client reads (almost) nothing: everything is handed to the socket, the pipe
        // lingers and keeps the connection.
        pair.drive(Duration::from_secs(10), |_| false);
        assert_eq!(server.0.borrow().sink.sent, out.len());
        assert!(server.0.borrow().ended.is_none());
        assert!(matches!(
            server.0.borrow().pipe.as_ref().map(Pipe::phase),
            Some(Phase::Lingering { .. })
        ));
        // Reading again, the client gets every byte, then the FIN of a graceful close.
        c.set_max_input(None);
        let mut got = Vec::new();
        pair.drive(Duration::from_secs(30), |_| {
            got.extend_from_slice(&c.take_input());
            c.is_eof()
        });
        got.extend_from_slice(&c.take_input());
        assert!(got == out, "got {} of {} bytes", got.len(), out.len());
        assert_eq!(server.0.borrow().ended, Some(Next::Close));
        assert!(!c.is_reset());
    }
}

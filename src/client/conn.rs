//! One client connection: the byte pipe socket ↔ TLS ↔ HTTP codec, mirroring the service's
//! `conn.rs`.
//!
//! [`Conn::pump`] is the only place bytes move. Each round: socket → input buffer; for TLS,
//! input → session → plaintext buffer; plaintext (or input) → codec, only while the codec wants
//! it (a full body buffer is backpressure, never growth); codec output → session → socket (or
//! straight to the socket). Rounds repeat until nothing moves. Input the next stage did not take
//! stays in its buffer and is offered again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use net::{ConnId, RecvError};

use super::state::PoolKey;
use super::{ConnectFailure, Error};
use crate::http::client::ClientConn;
use crate::runtime::Cx;
use crate::tls::{self, ClientSession, PlainRead, ServerName};

/// Bytes buffered per stage (socket input, TLS plaintext, TLS output).
const CAP: usize = 64 * 1024;

/// Bytes not yet taken by the next stage, in a fixed buffer allocated on first use.
#[derive(Default)]
struct Buf {
    data: Box<[u8]>,
    lo: usize,
    hi: usize,
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        &self.data[self.lo..self.hi]
    }

    fn len(&self) -> usize {
        self.hi - self.lo
    }

    fn consume(&mut self, n: usize) {
        self.lo += n;
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        }
    }

    /// Free space after the data (compacting first when the data does not start at 0);
    /// commit what was written with `commit`.
    fn spare(&mut self) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = vec![0; CAP].into();
        }
        if self.lo > 0 {
            self.data.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        &mut self.data[self.hi..]
    }

    fn commit(&mut self, n: usize) {
        self.hi += n;
    }
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// TCP handshake under way, until the deadline.
    Connecting(Instant),
    /// TLS handshake under way.
    Handshaking,
    /// Ready for requests.
    Open,
}

/// Why a connection failed.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    Connect(ConnectFailure),
    Tls(tls::Error),
    Reset,
}

impl Failure {
    /// The request-level error, with the peer.
    pub(crate) fn error(&self, peer: SocketAddr) -> Error {
        match self {
            Failure::Connect(failure) => Error::Connect {
                peer,
                failure: *failure,
            },
            Failure::Tls(error) => Error::Tls {
                peer,
                error: error.clone(),
            },
            Failure::Reset => Error::Reset { peer },
        }
    }
}

/// One connection of the client; see the [module docs](self).
pub(crate) struct Conn {
    pub id: ConnId,
    pub key: PoolKey,
    pub peer: SocketAddr,
    pub state: ConnState,
    pub codec: ClientConn,
    tls: Option<ClientSession>,
    input: Buf,
    plain: Buf,
    cipher: Buf,
    sock_eof: bool,
    plain_eof: bool,
    eof_fed: bool,
    /// The exchange using the connection.
    pub exchange: Option<u64>,
    /// Requests answered on it.
    pub served: u32,
    pub idle_since: Option<Instant>,
    /// The codec closed: no more requests; the socket closes once the exchange is done.
    pub closing: bool,
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        key: PoolKey,
        now: Instant,
        connect_timeout: std::time::Duration,
    ) -> Conn {
        Conn {
            id,
            peer: key.addr,
            codec: ClientConn::new(Arc::clone(&key.config), now),
            key,
            state: ConnState::Connecting(now + connect_timeout),
            tls: None,
            input: Buf::default(),
            plain: Buf::default(),
            cipher: Buf::default(),
            sock_eof: false,
            plain_eof: false,
            eof_fed: false,
            exchange: None,
            served: 0,
            idle_since: None,
            closing: false,
        }
    }

    /// The earliest instant this connection has timed work.
    pub(crate) fn deadline(&self, idle_timeout: std::time::Duration) -> Option<Instant> {
        let connect = match self.state {
            ConnState::Connecting(at) => Some(at),
            _ => None,
        };
        let tls = self.tls.as_ref().and_then(ClientSession::poll_timeout);
        let idle = self.idle_since.map(|t| t + idle_timeout);
        [connect, tls, self.codec.poll_timeout(), idle]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether an idle connection still looks usable (the peer has not closed it).
    pub(crate) fn is_live(&self, cx: &mut Cx<'_>) -> bool {
        let r = cx.net().readiness(self.id);
        !self.closing
            && self.state == ConnState::Open
            && self.codec.is_reusable()
            && !(r.peer_closed || r.reset || r.closed || r.readable)
    }

    /// Runs the timers due at `now`: connect and TLS handshake deadlines, the codec's.
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) fn tick(&mut self, now: Instant) -> Result<(), Failure> {
        if let ConnState::Connecting(at) = self.state {
            if now >= at {
                return Err(Failure::Connect(ConnectFailure::Timeout));
            }
        }
        if let Some(tls) = &mut self.tls {
            tls.handle_timeout(now).map_err(Failure::Tls)?;
        }
        self.codec.handle_timeout(now);
        Ok(())
    }

    /// While connecting: moves on once TCP is established (starting TLS when the key says so).
    /// Returns whether the state changed.
    ///
    /// # Errors
    /// The connection was refused or reset, or the TLS session cannot be made.
    fn establish(&mut self, cx: &mut Cx<'_>) -> Result<bool, Failure> {
        if !matches!(self.state, ConnState::Connecting(_)) {
            return Ok(false);
        }
        let r = cx.net().readiness(self.id);
        if !r.established {
            return if r.reset || r.closed {
                Err(Failure::Connect(ConnectFailure::Refused))
            } else {
                Ok(false)
            };
        }
        let Some((name, config)) = &self.key.tls else {
            self.state = ConnState::Open;
            return Ok(true);
        };
        let server = match name {
            Some(n) => ServerName::try_from(n.trim_start_matches('[').trim_end_matches(']'))
                .map(|s| s.to_owned())
                .map_err(|e| Failure::Tls(tls::Error::Config(format!("server name {n:?}: {e}"))))?,
            None => ServerName::IpAddress(self.peer.ip().into()),
        };
        let session = ClientSession::new(config, server, cx.now).map_err(Failure::Tls)?;
        self.tls = Some(session);
        self.state = ConnState::Handshaking;
        Ok(true)
    }

    /// Moves bytes until nothing moves; returns whether anything did. With `hold_eof` the end of
    /// the stream is not told to the codec yet: response body bytes it buffered are still unread,
    /// and the codec drops them when the stream ends early.
    ///
    /// # Errors
    /// The connection failed (refused, reset, TLS); a TLS alert owed to the peer has been sent.
    pub(crate) fn pump(&mut self, cx: &mut Cx<'_>, hold_eof: bool) -> Result<bool, Failure> {
        let mut any = self.establish(cx)?;
        if matches!(self.state, ConnState::Connecting(_)) {
            return Ok(any);
        }
        // The end of the stream only at the start of a pump, once the owner has seen the events
        // of the input before it (and read the body bytes `hold_eof` is about).
        if self.state == ConnState::Open && !hold_eof {
            self.feed_eof(cx.now, &mut any);
        }
        loop {
            let mut moved = self.read_socket(cx)?;
            if let Err(e) = self.decrypt(cx.now, &mut moved) {
                // Flush the alert rustls queued, best effort.
                let _ = self.write_out(cx);
                return Err(e);
            }
            if self.state == ConnState::Open {
                self.feed_codec(cx.now, &mut moved);
            }
            moved |= self.write_out(cx)?;
            if !moved {
                return Ok(any);
            }
            any = true;
        }
    }

    fn read_socket(&mut self, cx: &mut Cx<'_>) -> Result<bool, Failure> {
        let mut moved = false;
        while !self.sock_eof && self.input.len() < CAP {
            let spare = self.input.spare();
            match cx.net().recv(self.id, spare) {
                Ok(0) => break,
                Ok(n) => {
                    self.input.commit(n);
                    moved = true;
                }
                Err(RecvError::Finished) => {
                    self.sock_eof = true;
                    moved = true;
                }
                Err(_) => return Err(Failure::Reset),
            }
        }
        Ok(moved)
    }

    /// Ciphertext → session → plaintext; notices the end of the handshake.
    fn decrypt(&mut self, now: Instant, moved: &mut bool) -> Result<(), Failure> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        if self.input.len() > 0 {
            let n = tls
                .handle_input(now, self.input.bytes())
                .map_err(Failure::Tls)?;
            self.input.consume(n);
            *moved |= n > 0;
        }
        if self.sock_eof && self.input.len() == 0 && !tls.peer_closed() {
            tls.handle_eof();
            *moved = true;
        }
        while !self.plain_eof && self.plain.len() < CAP {
            match tls.read_plaintext(self.plain.spare()) {
                PlainRead::Data(n) => {
                    self.plain.commit(n);
                    *moved = true;
                }
                PlainRead::Pending => break,
                PlainRead::Closed | PlainRead::Truncated => {
                    self.plain_eof = true;
                    *moved = true;
                }
            }
        }
        if let Some(e) = tls.error() {
            return Err(Failure::Tls(e.clone()));
        }
        if self.state == ConnState::Handshaking && !tls.is_handshaking() {
            self.state = ConnState::Open;
            *moved = true;
        }
        Ok(())
    }

    /// Plaintext → codec.
    fn feed_codec(&mut self, now: Instant, moved: &mut bool) {
        let src = match self.tls {
            Some(_) => &mut self.plain,
            None => &mut self.input,
        };
        if src.len() > 0 && self.codec.wants_read() {
            let n = self.codec.handle_input(now, src.bytes());
            src.consume(n);
            *moved |= n > 0;
        }
    }

    /// Tells the codec the stream ended, once everything before the end was taken.
    fn feed_eof(&mut self, now: Instant, moved: &mut bool) {
        let (left, eof) = match self.tls {
            Some(_) => (self.plain.len(), self.plain_eof),
            None => (self.input.len(), self.sock_eof),
        };
        if eof && left == 0 && !self.eof_fed {
            self.eof_fed = true;
            self.codec.handle_eof(now);
            *moved = true;
        }
    }

    /// Codec → session → socket.
    fn write_out(&mut self, cx: &mut Cx<'_>) -> Result<bool, Failure> {
        let mut moved = false;
        loop {
            let mut step = false;
            match &mut self.tls {
                None => {
                    let out = self.codec.poll_transmit();
                    if !out.is_empty() {
                        let n = cx.net().send(self.id, out).map_err(|_| Failure::Reset)?;
                        self.codec.handle_transmitted(cx.now, n);
                        step = n > 0;
                    }
                }
                Some(tls) => {
                    let out = self.codec.poll_transmit();
                    if !out.is_empty() && self.state == ConnState::Open {
                        let n = tls.write_plaintext(out);
                        self.codec.handle_transmitted(cx.now, n);
                        step = n > 0;
                    }
                    if tls.wants_write() && self.cipher.len() < CAP {
                        let n = tls.poll_transmit_into(self.cipher.spare());
                        self.cipher.commit(n);
                        step |= n > 0;
                    }
                    if self.cipher.len() > 0 {
                        let n = cx
                            .net()
                            .send(self.id, self.cipher.bytes())
                            .map_err(|_| Failure::Reset)?;
                        self.cipher.consume(n);
                        step |= n > 0;
                    }
                }
            }
            if !step {
                return Ok(moved);
            }
            moved = true;
        }
    }

    /// Sends `close_notify` (TLS) and what is queued; the socket may be closed after this.
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>) {
        if let Some(tls) = &mut self.tls {
            if tls.error().is_none() {
                tls.close();
            }
        }
        let _ = self.write_out(cx);
    }
}

//! One client connection: its codec (HTTP/1.1, or HTTP/2 when ALPN or prior knowledge says
//! so) and its [`Pipe`] to the socket (and TLS), the same pipe the service's connections use.
//!
//! [`Conn::pump`] moves bytes until nothing moves: socket → (TLS →) codec, only while the codec
//! wants input (a full body buffer is backpressure, never growth); codec → (TLS →) socket. The
//! end of the stream is told to the codec only at the start of a pump, once the owner has seen
//! the events of the input before it. A key with a preamble (a PROXY header) has it written
//! as soon as TCP is established, before TLS or any request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use net::ConnId;

use super::codec::ClientCodec;
use super::state::PoolKey;
use super::{ConnectFailure, Error};
use crate::pipe::{Codec, EofPolicy, Pipe, Pool};
use crate::runtime::Cx;
use crate::tls::{self, ClientSession, ServerName};
use crate::tunnel::{End, Hook, Taken};
use std::rc::Rc;

/// A connection that switched protocols: its tunnel end, awaited or running.
pub(crate) enum Tunnel {
    /// The 101 arrived; the end comes when the `Upgraded` is joined.
    Waiting(Rc<Hook>),
    /// Moving bytes.
    Open(End),
}

/// What to do with a tunnel's connection after [`Conn::pump_tunnel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TunnelNext {
    Keep,
    /// The tunnel is over (or was abandoned): close gracefully.
    Close,
    /// The socket failed.
    Abort,
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
    pub codec: ClientCodec,
    pipe: Pipe<ClientSession>,
    /// The exchanges using the connection, in the order they came: at most one on HTTP/1.1,
    /// up to the server's concurrent-stream limit on HTTP/2.
    pub exchanges: Vec<u64>,
    /// Requests answered on it.
    pub served: u32,
    pub idle_since: Option<Instant>,
    /// The codec closed: no more requests; the socket closes once the exchange is done.
    pub closing: bool,
    /// Bytes of the key's preamble (a PROXY header) already written to the socket.
    preamble_sent: usize,
    /// Set once the connection switched protocols (a 101), or once a raw one is established.
    pub tunnel: Option<Tunnel>,
    /// A raw connection ([`connect`](super::connect)): no HTTP; the pump stops once it is
    /// established (TLS included), before reading anything for the codec.
    pub raw: bool,
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
            codec: ClientCodec::new(Arc::clone(&key.config), now, key.tls.is_some()),
            key,
            state: ConnState::Connecting(now + connect_timeout),
            pipe: Pipe::new(id, None),
            exchanges: Vec::new(),
            served: 0,
            idle_since: None,
            closing: false,
            preamble_sent: 0,
            tunnel: None,
            raw: false,
        }
    }

    /// The earliest instant this connection has timed work.
    pub(crate) fn deadline(&self, idle_timeout: std::time::Duration) -> Option<Instant> {
        let connect = match self.state {
            ConnState::Connecting(at) => Some(at),
            _ => None,
        };
        let idle = self.idle_since.map(|t| t + idle_timeout);
        let tunnel = match &self.tunnel {
            Some(Tunnel::Open(end)) => end.poll_timeout(),
            _ => None,
        };
        [
            tunnel,
            connect,
            self.pipe.poll_timeout(),
            self.codec.poll_timeout(),
            idle,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    /// Whether an idle connection still looks usable (the peer has not closed it).
    pub(crate) fn is_live(&self, cx: &mut Cx<'_>) -> bool {
        let r = cx.readiness(self.id);
        // HTTP/2 servers may send frames (PING, SETTINGS) to an idle connection: readable
        // data is not a sign of a stale one there.
        let readable = r.readable && !self.codec.is_h2();
        !self.closing
            && self.state == ConnState::Open
            && self.codec.is_reusable()
            && !(r.peer_closed || r.reset || r.closed || readable)
    }

    /// Whether one more request may go on this HTTP/2 connection now, busy or idle: room under
    /// the server's concurrent-stream limit, no GOAWAY, not closing. (HTTP/2 knows a dead
    /// connection by its own means: a GOAWAY, or the end of the stream the pump told it.)
    pub(crate) fn has_room(&self) -> bool {
        !self.closing
            && self.state == ConnState::Open
            && self.codec.is_h2()
            && self.codec.can_send_request()
    }

    /// Whether a scheduled read may be served from what the codec holds alone: an open plain
    /// HTTP/1.1 connection (TLS may hold decrypted bytes, HTTP/2 answers reads with window
    /// updates, a raw or switched one has no HTTP reads).
    pub(crate) fn reads_alone(&self) -> bool {
        self.state == ConnState::Open
            && !self.raw
            && self.tunnel.is_none()
            && !self.codec.is_h2()
            && !self.pipe.is_tls()
    }

    /// Whether the peer ended its stream and the codec has not been told (a reader had body
    /// bytes to take first).
    pub(crate) fn is_eof_held(&self) -> bool {
        self.pipe.is_eof_held()
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
        self.pipe.handle_timeout(now);
        if let Some(e) = self.tls_error() {
            return Err(Failure::Tls(e));
        }
        self.codec.handle_timeout(now);
        Ok(())
    }

    fn tls_error(&self) -> Option<tls::Error> {
        self.pipe.session().and_then(|s| s.error().cloned())
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
        let r = cx.readiness(self.id);
        if !r.established {
            return if r.reset || r.closed {
                Err(Failure::Connect(ConnectFailure::Refused))
            } else {
                Ok(false)
            };
        }
        // The preamble goes first, before the TLS ClientHello (as HAProxy's `send-proxy`
        // does); the connection is not open until the socket took all of it.
        if let Some(preamble) = &self.key.preamble {
            while self.preamble_sent < preamble.len() {
                match cx.send(self.id, &preamble[self.preamble_sent..]) {
                    Ok(0) => return Ok(false),
                    Ok(n) => self.preamble_sent += n,
                    Err(_) => return Err(Failure::Reset),
                }
            }
        }
        let Some((name, config)) = &self.key.tls else {
            self.state = ConnState::Open;
            self.codec.handle_open(cx.now);
            return Ok(true);
        };
        let server = match name {
            Some(n) => ServerName::try_from(n.trim_start_matches('[').trim_end_matches(']'))
                .map(|s| s.to_owned())
                .map_err(|e| Failure::Tls(tls::Error::Config(format!("server name {n:?}: {e}"))))?,
            None => ServerName::IpAddress(self.peer.ip().into()),
        };
        let session = ClientSession::new(config, server, cx.now).map_err(Failure::Tls)?;
        self.pipe = Pipe::new(self.id, Some((session, ())));
        self.state = ConnState::Handshaking;
        Ok(true)
    }

    /// Moves bytes until nothing moves; returns whether anything did. With `hold_eof` the end of
    /// the stream is not told to the codec yet: response body bytes it buffered are still unread,
    /// and the codec drops them when the stream ends early.
    ///
    /// # Errors
    /// The connection failed (refused, reset, TLS); a TLS alert owed to the peer has been sent.
    pub(crate) fn pump(
        &mut self,
        cx: &mut Cx<'_>,
        pool: &mut Pool,
        hold_eof: bool,
    ) -> Result<bool, Failure> {
        let r = self.pump_inner(cx, pool, hold_eof);
        self.pipe.end(pool);
        r
    }

    fn pump_inner(
        &mut self,
        cx: &mut Cx<'_>,
        pool: &mut Pool,
        hold_eof: bool,
    ) -> Result<bool, Failure> {
        let mut any = self.establish(cx)?;
        if matches!(self.state, ConnState::Connecting(_)) || (self.raw && self.is_open()) {
            return Ok(any);
        }
        self.pipe.begin();
        // The end of the stream only at the start of a pump, once the owner has seen the events
        // of the input before it (and read the body bytes `hold_eof` is about).
        if self.state == ConnState::Open && !hold_eof {
            any |= self.pipe.feed_eof(cx.now, &mut self.codec);
        }
        loop {
            // (While the TLS handshake is under way the pipe reads for the session alone.)
            let mut moved = self
                .pipe
                .read(cx, &mut self.codec, pool, EofPolicy::Hold)
                .map_err(|_| Failure::Reset)?;
            if let Some(e) = self.tls_error() {
                // Flush the alert rustls queued, best effort.
                let _ = self.pipe.flush(cx);
                return Err(Failure::Tls(e));
            }
            if self.state == ConnState::Handshaking && !self.pipe.is_handshaking() {
                self.state = ConnState::Open;
                self.codec.handle_open(cx.now);
                if self.raw {
                    // What TLS decrypted after the handshake is the tunnel's, not HTTP; the
                    // handshake's last flight still goes out now.
                    self.pipe.flush(cx).map_err(|_| Failure::Reset)?;
                    return Ok(true);
                }
                moved = true;
            }
            moved |= self
                .pipe
                .write(cx, &mut self.codec)
                .map_err(|_| Failure::Reset)?;
            if !moved {
                return Ok(any);
            }
            any = true;
        }
    }

    /// Moves bytes between the socket and the tunnel's end (once joined) until nothing moves,
    /// and says whether the connection stays. Runs the tunnel's idle timer.
    pub(crate) fn pump_tunnel(&mut self, cx: &mut Cx<'_>, pool: &mut Pool) -> TunnelNext {
        let next = self.tunnel_rounds(cx, pool);
        self.pipe.end(pool);
        next
    }

    fn tunnel_rounds(&mut self, cx: &mut Cx<'_>, pool: &mut Pool) -> TunnelNext {
        if let Some(Tunnel::Waiting(hook)) = &self.tunnel {
            match hook.take() {
                Taken::Waiting => return TunnelNext::Keep,
                Taken::Abandoned => return TunnelNext::Close,
                Taken::End(mut end) => {
                    end.start(cx.now);
                    if self.pipe.is_input_told() {
                        end.handle_eof(cx.now);
                    }
                    self.tunnel = Some(Tunnel::Open(end));
                }
            }
        }
        let Some(Tunnel::Open(end)) = self.tunnel.as_mut() else {
            return TunnelNext::Close;
        };
        end.handle_timeout(cx.now);
        self.pipe.begin();
        loop {
            end.refill();
            let Ok(mut moved) = self.pipe.read(cx, end, pool, EofPolicy::Feed) else {
                return TunnelNext::Abort;
            };
            match self.pipe.write(cx, end) {
                Ok(m) => moved |= m,
                Err(_) => return TunnelNext::Abort,
            }
            if end.wants_shutdown_write() {
                match self.pipe.shutdown_write(cx) {
                    Ok(true) => {
                        end.handle_shutdown_write();
                        moved = true;
                    }
                    Ok(false) => {}
                    Err(_) => return TunnelNext::Abort,
                }
            }
            if self.pipe.tls_failed() || end.is_done() {
                return TunnelNext::Close;
            }
            if !moved {
                return TunnelNext::Keep;
            }
        }
    }

    /// Sends HTTP/2's GOAWAY (on an open HTTP/2 connection), `close_notify` (TLS) and what is
    /// queued; the socket may be closed after this.
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>) {
        if self.state == ConnState::Open {
            self.codec.shutdown(cx.now);
        }
        let _ = self.pipe.write(cx, &mut self.codec);
        self.pipe.close_tls();
        let _ = self.pipe.flush(cx);
    }
}

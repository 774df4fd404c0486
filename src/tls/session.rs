//! One TLS connection as a byte pipe: [`Session`], seen as [`ServerSession`] or
//! [`ClientSession`].
//!
//! Both sides share every method; only construction and the server's
//! [`ServerSession::sni`] differ. See the module contract in [`super`] for the
//! order of calls. All methods are cheap to call spuriously: a loop that calls
//! `handle_input`, `read_plaintext`, `poll_transmit` and `handle_timeout` more
//! often than needed is correct, only wasteful.

use std::io::{self, Read, Write};
use std::ops::DerefMut;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, ConnectionCommon, ProtocolVersion, ServerConnection};

use super::{ClientConfig, Error, ServerConfig};

/// Outcome of [`Session::read_plaintext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainRead {
    /// This many bytes were copied into the buffer (never zero).
    Data(usize),
    /// Nothing decrypted yet; more input is needed (or the buffer was empty).
    Pending,
    /// The peer sent `close_notify` and everything before it has been read: a
    /// clean end of stream.
    Closed,
    /// The peer's TCP stream ended ([`Session::handle_eof`]) without
    /// `close_notify` and everything before it has been read. Whether that is
    /// an attack or a sloppy peer is the application protocol's call: HTTP
    /// message framing usually knows whether the message was complete.
    Truncated,
}

/// A TLS server connection as a byte pipe.
pub type ServerSession = Session<ServerConnection>;
/// A TLS client connection as a byte pipe.
pub type ClientSession = Session<ClientConnection>;

/// A TLS connection (`C` is `rustls::ServerConnection` or
/// `rustls::ClientConnection`) driven by bytes and an external clock.
#[derive(Debug)]
pub struct Session<C> {
    conn: C,
    deadline: Instant,
    error: Option<Error>,
    /// `close_notify` received (from the last `process_new_packets`).
    peer_close_notify: bool,
    /// TCP FIN seen.
    peer_eof: bool,
    /// We queued `close_notify`.
    close_queued: bool,
}

impl Session<ServerConnection> {
    /// A fresh server connection whose handshake must finish before
    /// `now + config.handshake_timeout()`.
    ///
    /// # Errors
    /// [`Error::Config`] if rustls refuses the configuration.
    pub fn new(config: &ServerConfig, now: Instant) -> Result<Self, Error> {
        let conn = ServerConnection::new(config.inner.clone())
            .map_err(|e| Error::Config(format!("server session: {e}")))?;
        Ok(Self::wrap(
            conn,
            now + config.handshake_timeout,
            config.buffer_limit,
        ))
    }

    /// The server name the client asked for by SNI, lower-cased by rustls;
    /// `None` before the ClientHello or when the client sent none (IP-address
    /// connections never do).
    #[must_use]
    pub fn sni(&self) -> Option<&str> {
        self.conn.server_name()
    }
}

impl Session<ClientConnection> {
    /// A fresh client connection to `server_name` (a DNS name, sent as SNI and
    /// checked against the certificate, or an IP address, checked only).
    ///
    /// # Errors
    /// [`Error::Config`] if rustls refuses the configuration.
    pub fn new(
        config: &ClientConfig,
        server_name: ServerName<'static>,
        now: Instant,
    ) -> Result<Self, Error> {
        let conn = ClientConnection::new(config.inner.clone(), server_name)
            .map_err(|e| Error::Config(format!("client session: {e}")))?;
        Ok(Self::wrap(
            conn,
            now + config.handshake_timeout,
            config.buffer_limit,
        ))
    }
}

impl<C, D> Session<C>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: 'static,
{
    fn wrap(mut conn: C, deadline: Instant, limit: Option<usize>) -> Self {
        conn.set_buffer_limit(limit);
        Self {
            conn,
            deadline,
            error: None,
            peer_close_notify: false,
            peer_eof: false,
            close_queued: false,
        }
    }

    /// Feeds ciphertext received from the peer and returns how many bytes were
    /// consumed.
    ///
    /// Consumption stops early, returning less than `bytes.len()`, while
    /// decrypted plaintext waits to be read (at most about one record is buffered:
    /// this is the receive backpressure), while handshake bytes wait to be
    /// flushed, or after `close_notify`. Keep the rest; call again after
    /// [`read_plaintext`](Self::read_plaintext) and
    /// [`poll_transmit`](Self::poll_transmit). Also fails the handshake if `now`
    /// is past its deadline.
    ///
    /// # Errors
    /// [`Error::Peer`] on a protocol fault (the alert is queued for
    /// `poll_transmit`), [`Error::HandshakeTimeout`]; both are sticky: every later
    /// call returns the same error.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<usize, Error> {
        self.check(now)?;
        let mut used = 0;
        // Never hand read_tls an empty reader: Ok(0) from it means EOF.
        while used < bytes.len() && self.conn.wants_read() {
            match self.conn.read_tls(&mut &bytes[used..]) {
                Ok(0) => break,
                Ok(n) => used += n,
                // Under wants_read this is only rustls' "message buffer full": a
                // handshake message larger than rustls accepts.
                Err(e) => return Err(self.fail(Error::Peer(rustls::Error::General(e.to_string())))),
            }
            match self.conn.process_new_packets() {
                Ok(state) => self.peer_close_notify = state.peer_has_closed(),
                Err(e) => return Err(self.fail(Error::Peer(e))),
            }
        }
        Ok(used)
    }

    /// Records the end of the peer's byte stream (TCP FIN). Call it once all
    /// received bytes have been consumed by [`handle_input`](Self::handle_input).
    /// After the buffered plaintext, [`read_plaintext`](Self::read_plaintext)
    /// then reports [`PlainRead::Closed`] if `close_notify` came first,
    /// [`PlainRead::Truncated`] otherwise.
    pub fn handle_eof(&mut self) {
        self.peer_eof = true;
    }

    /// Copies decrypted bytes into `buf`. Call until it stops returning
    /// [`PlainRead::Data`], after every [`handle_input`](Self::handle_input).
    /// After an error nothing more is decrypted.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> PlainRead {
        if buf.is_empty() {
            return PlainRead::Pending;
        }
        match self.conn.reader().read(buf) {
            Ok(0) => PlainRead::Closed,
            Ok(n) => PlainRead::Data(n),
            Err(_) if self.peer_close_notify => PlainRead::Closed,
            Err(_) if self.peer_eof => PlainRead::Truncated,
            Err(_) => PlainRead::Pending,
        }
    }

    /// Queues plaintext for sending and returns how much was accepted: at most
    /// the room left under the buffer limit, so `0` means "flush with
    /// [`poll_transmit`](Self::poll_transmit), then retry". Before the handshake
    /// completes the plaintext waits in rustls; it is encrypted as soon as
    /// possible. Accepts nothing after an error or [`close`](Self::close).
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        if self.error.is_some() || self.close_queued {
            return 0;
        }
        self.conn.writer().write(data).unwrap_or(0)
    }

    /// Caps the plaintext waiting for the handshake and the ciphertext waiting
    /// for [`poll_transmit`](Self::poll_transmit) (each), bounding memory per
    /// connection. `None` removes the cap.
    pub fn set_buffer_limit(&mut self, limit: Option<usize>) {
        self.conn.set_buffer_limit(limit);
    }

    /// Whether ciphertext (handshake, data, alerts) is waiting for
    /// [`poll_transmit`](Self::poll_transmit).
    #[must_use]
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Appends every byte waiting to go on the wire to `out`; returns how many.
    /// Call whenever [`wants_write`](Self::wants_write), including after an
    /// error (the alert is in there).
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(k) if k > 0 => n += k,
                _ => break,
            }
        }
        n
    }

    /// Like [`poll_transmit`](Self::poll_transmit), but fills `buf` (for
    /// instance a socket's free send window) and returns how many bytes it
    /// wrote; the rest stays queued for the next call.
    pub fn poll_transmit_into(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && self.conn.wants_write() {
            match self.conn.write_tls(&mut &mut buf[n..]) {
                Ok(k) if k > 0 => n += k,
                _ => break,
            }
        }
        n
    }

    /// Writes pending ciphertext to any `io::Write` (for instance a kernel
    /// socket in non-blocking mode) until it is flushed or the writer stops.
    ///
    /// # Errors
    /// The writer's error; `WouldBlock` only if nothing at all was written.
    /// What was not written stays queued.
    pub fn poll_transmit_to(&mut self, wr: &mut dyn Write) -> io::Result<usize> {
        let mut n = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(wr) {
                Ok(0) => break,
                Ok(k) => n += k,
                // Report progress first; the writer will say WouldBlock again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Queues `close_notify`: we will send nothing more. Plaintext accepted
    /// before stays ahead of it. Flush with [`poll_transmit`](Self::poll_transmit);
    /// [`is_closed`](Self::is_closed) tells when it has left.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        self.close_queued = true;
    }

    /// The handshake deadline while handshaking and healthy, else `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.error.is_none() && self.conn.is_handshaking()).then_some(self.deadline)
    }

    /// Advances the clock. Harmless before the deadline.
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`] if `now` is at or past the deadline of a
    /// handshake still in progress; any earlier sticky error. The owner then
    /// closes the socket (nothing is queued to send).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.check(now)
    }

    /// Whether the handshake is still under way.
    #[must_use]
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The negotiated ALPN protocol, if any.
    #[must_use]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated protocol version, once known.
    #[must_use]
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite, once known.
    #[must_use]
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.conn.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// The certificate chain the peer presented (for a client: the server's).
    #[must_use]
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Whether the peer will send nothing more: `close_notify` received or
    /// [`handle_eof`](Self::handle_eof) called. Plaintext may still be buffered.
    #[must_use]
    pub fn peer_closed(&self) -> bool {
        self.peer_close_notify || self.peer_eof
    }

    /// Whether we are done sending: `close_notify` queued, or an error occurred,
    /// and every byte (alert included) has been taken by `poll_transmit`. The
    /// owner may then shut the socket's write side.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        (self.close_queued || self.error.is_some()) && !self.conn.wants_write()
    }

    /// The sticky error, if any.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The wrapped rustls connection, for anything not covered here.
    #[must_use]
    pub fn connection(&self) -> &C {
        &self.conn
    }

    fn check(&mut self, now: Instant) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.conn.is_handshaking() && now >= self.deadline {
            return Err(self.fail(Error::HandshakeTimeout));
        }
        Ok(())
    }

    fn fail(&mut self, error: Error) -> Error {
        log::debug!("tls: {error}");
        self.error = Some(error.clone());
        error
    }
}

//! The TLS layer of a connection's byte pipe (for `https`): ciphertext from the socket into a
//! [`ServerSession`], plaintext from it to the HTTP codec's input; the codec's output into the
//! session, its records to the socket.
//!
//! Backpressure carries through: the caller asks for plaintext only while the codec's input
//! buffer has room; rustls then holds at most one decrypted record, consumes no more ciphertext,
//! the ciphertext buffer fills (capped) and the socket is no longer read. Going out, the session
//! takes plaintext only up to its buffer limit, so the codec keeps the rest.
//!
//! After a TLS error (bad handshake, handshake timeout, a corrupt record) the alert is flushed
//! and the connection closes; the codec never sees the connection's bytes again. When the codec
//! is done, `close_notify` is queued and flushed before the socket is closed.

use std::net::SocketAddr;
use std::time::Instant;

use net::{ConnId, RecvError};

use super::conn::InBuf;
use crate::runtime::Cx;
use crate::tls::{PlainRead, ServerConfig, ServerSession};

/// What filling the plaintext input produced.
pub(crate) enum Fill {
    /// This many plaintext bytes.
    Data(usize),
    /// Nothing now; a new `Ready` will come when there is.
    Blocked,
    /// The peer's stream ended (FIN, or `close_notify`).
    Eof,
    /// The socket failed.
    Failed,
}

pub(crate) struct TlsPipe {
    session: ServerSession,
    cipher_in: InBuf,
    cipher_out: Vec<u8>,
    out_pos: usize,
    /// `recv` said "nothing now" during this pump.
    pub drained: bool,
    eof: bool,
    /// A TLS error: flush the alert, then close.
    pub failed: bool,
    close_queued: bool,
    /// Where handshake outcomes are counted; `None` once counted.
    counters: Option<super::handle::Handle>,
    /// The peer, for logging failures; learnt from the stack at the first `fill`.
    peer: Option<SocketAddr>,
}

impl TlsPipe {
    /// A session for a connection accepted at `now`.
    ///
    /// # Errors
    /// rustls refuses the configuration.
    pub(crate) fn new(
        config: &ServerConfig,
        now: Instant,
        counters: super::handle::Handle,
    ) -> Result<TlsPipe, crate::tls::Error> {
        Ok(TlsPipe {
            session: ServerSession::new(config, now)?,
            cipher_in: InBuf::default(),
            cipher_out: Vec::new(),
            out_pos: 0,
            drained: false,
            eof: false,
            failed: false,
            close_queued: false,
            counters: Some(counters),
            peer: None,
        })
    }

    fn fail(&mut self, id: ConnId, e: &crate::tls::Error) {
        match self.peer {
            Some(peer) => log::debug!("{peer}: {id}: {e}"),
            None => log::debug!("{id}: {e}"),
        }
        self.failed = true;
        self.count_handshake(false);
    }

    /// Count this connection's handshake once: `ok` when it completed, else failed.
    fn count_handshake(&mut self, ok: bool) {
        if let Some(h) = self.counters.take() {
            let c = &h.0.counters;
            let n = if ok { &c.tls_ok } else { &c.tls_failed };
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Decrypts into `out` (the free part of the codec's input buffer), reading and feeding
    /// ciphertext as needed.
    /// Ciphertext is held up to `cap` bytes (the pool's buffer size).
    pub(crate) fn fill(
        &mut self,
        cx: &mut Cx<'_>,
        id: ConnId,
        pool: &mut Vec<Box<[u8]>>,
        cap: usize,
        out: &mut [u8],
    ) -> Fill {
        if self.peer.is_none() {
            self.peer = cx.net().endpoints(id).map(|(remote, _)| remote);
        }
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
                match self.session.handle_input(cx.now, self.cipher_in.data()) {
                    Ok(n) => {
                        self.cipher_in.consume(n);
                        if self.counters.is_some() && !self.session.is_handshaking() {
                            self.count_handshake(true);
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
            if self.session.wants_write() && self.flush(cx, id).is_none() {
                return Fill::Failed;
            }
            if self.eof || self.drained || self.cipher_in.len() >= cap {
                self.cipher_in.release(pool);
                return Fill::Blocked;
            }
            let spare = self.cipher_in.spare(pool, cap);
            match cx.net().recv(id, spare) {
                Ok(0) => self.drained = true,
                Ok(n) => self.cipher_in.filled(n),
                Err(RecvError::Finished) => {
                    self.eof = true;
                    self.session.handle_eof();
                }
                Err(_) => return Fill::Failed,
            }
        }
    }

    /// Takes plaintext for sending; returns how much was taken.
    pub(crate) fn write(&mut self, plain: &[u8]) -> usize {
        if self.failed {
            // Nothing is sent after a TLS error but the alert: drop the codec's output.
            return plain.len();
        }
        self.session.write_plaintext(plain)
    }

    /// Sends ciphertext until the socket is full; `None` when the socket failed.
    pub(crate) fn flush(&mut self, cx: &mut Cx<'_>, id: ConnId) -> Option<bool> {
        let mut moved = false;
        loop {
            if self.out_pos == self.cipher_out.len() {
                self.cipher_out.clear();
                self.out_pos = 0;
                if self.session.poll_transmit(&mut self.cipher_out) == 0 {
                    return Some(moved);
                }
            }
            match cx.net().send(id, &self.cipher_out[self.out_pos..]) {
                Ok(0) => return Some(moved),
                Ok(n) => {
                    self.out_pos += n;
                    moved = true;
                }
                Err(_) => return None,
            }
        }
    }

    /// Queues `close_notify` (once).
    pub(crate) fn close(&mut self) {
        if !self.close_queued && !self.failed {
            self.close_queued = true;
            self.session.close();
        }
    }

    /// Every ciphertext byte (alerts, `close_notify` included) was handed to the socket.
    pub(crate) fn is_flushed(&self) -> bool {
        self.out_pos == self.cipher_out.len() && !self.session.wants_write()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            None
        } else {
            self.session.poll_timeout()
        }
    }

    pub(crate) fn handle_timeout(&mut self, id: ConnId, now: Instant) {
        if let Err(e) = self.session.handle_timeout(now) {
            self.fail(id, &e);
        }
    }

    /// Returns the ciphertext buffer to the pool.
    pub(crate) fn release(&mut self, pool: &mut Vec<Box<[u8]>>) {
        self.cipher_in.release(pool);
    }
}

//! The TLS accounting of an `https` service's connections: a [`TlsWatch`] on each connection's
//! pipe (`crate::pipe` moves the bytes).
//!
//! After a TLS error (bad handshake, handshake timeout, a corrupt record) the pipe flushes the
//! alert and the connection closes; the codec never sees the connection's bytes again. When the
//! codec is done, `close_notify` is queued and flushed before the socket is closed. Either flush
//! is bounded by the write timeout: a peer that reads nothing is reset.
//!
//! Counting: each connection's handshake is counted once, ok or failed, and each TLS failure
//! once by [`TlsFailure`] reason, before or after the handshake. A peer that closes or resets
//! mid-handshake after sending something is a failure too (`HandshakeEof`); one that sends
//! nothing at all (a port probe) is not counted.
//!
//! Renegotiation (RFC 5246 §7.4.1.2, RFC 5746 §4.4): rustls never renegotiates. On an
//! established TLS 1.2 session it answers the first ClientHello with a `no_renegotiation`
//! warning alert and carries on with the session, which is what RFC 5746 §4.4 allows a server
//! that does not renegotiate to do; the client then either continues on the old session or
//! gives up with a fatal alert (OpenSSL does: counted as `Alert`). A second request is fatal
//! (`Renegotiation`). rustls does not report the refusal, so the watcher finds requests itself:
//! TLS 1.2 record headers are in the clear, and a handshake record (type 22) after the
//! handshake can only be a ClientHello. TLS 1.3 has no renegotiation.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use net::ConnId;

use super::handle::{Handle, TlsFailure};
use crate::pipe::TlsWatch;

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Length of a TLS record header: type, version (2), length (2).
const HEADER: usize = 5;

/// Counts one connection's TLS outcomes into its service's [`Handle`].
#[derive(Debug)]
pub(crate) struct TlsStats {
    handle: Handle,
    peer: SocketAddr,
    /// The handshake's outcome was counted.
    handshake_counted: bool,
    /// A failure reason was counted.
    failure_counted: bool,
    /// Record boundaries in the ciphertext consumed so far.
    records: Records,
}

impl TlsStats {
    pub(crate) fn new(handle: Handle, peer: SocketAddr) -> TlsStats {
        TlsStats {
            handle,
            peer,
            handshake_counted: false,
            failure_counted: false,
            records: Records::default(),
        }
    }

    /// Counts a failure once per connection, and a failed handshake if it was still under way.
    fn count_failure(&mut self, reason: TlsFailure) {
        if !self.failure_counted {
            self.failure_counted = true;
            let c = &self.handle.0.counters;
            c.tls_reasons[reason.index()].fetch_add(1, Ordering::Relaxed);
        }
        self.count_handshake(false);
    }

    /// Count this connection's handshake once: `ok` when it completed, else failed.
    fn count_handshake(&mut self, ok: bool) {
        if !self.handshake_counted {
            self.handshake_counted = true;
            let c = &self.handle.0.counters;
            let n = if ok { &c.tls_ok } else { &c.tls_failed };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl TlsWatch for TlsStats {
    fn consumed(&mut self, bytes: &[u8], established: bool) {
        let requests = self.records.feed(bytes);
        if established && requests > 0 {
            // Each one was refused with a `no_renegotiation` warning (or, past the first, ended
            // the session: counted by `failed`).
            let c = &self.handle.0.counters;
            c.tls_renegotiations
                .fetch_add(requests as u64, Ordering::Relaxed);
        }
    }

    fn handshake_done(&mut self) {
        self.count_handshake(true);
    }

    fn failed(&mut self, conn: ConnId, error: &crate::tls::Error) {
        log::debug!("{}: {conn}: {error}", self.peer);
        self.count_failure(TlsFailure::of(error));
    }

    fn ended_mid_handshake(&mut self) {
        log::debug!("{}: closed during the TLS handshake", self.peer);
        self.count_failure(TlsFailure::HandshakeEof);
    }
}

/// Walks the record headers of a TLS byte stream, fed in pieces of any size.
#[derive(Debug, Default)]
pub(crate) struct Records {
    header: [u8; HEADER],
    have: usize,
    body_left: usize,
}

impl Records {
    /// Feeds the next bytes of the stream; returns how many handshake records start in them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> usize {
        let mut handshakes = 0;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == HEADER {
                self.have = 0;
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                handshakes += usize::from(self.header[0] == HANDSHAKE);
            }
        }
        handshakes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::http::Config;
    use crate::service::conn::tests::{stop_reading, Pair};
    use crate::service::testing::RawClient;
    use crate::tls::certs::TestCa;
    use crate::tls::{ClientConfig, ClientTrust, ServerConfig};

    #[test]
    fn records_are_followed_across_pieces_of_any_size() {
        // A handshake record (22) of 3 bytes, application data (23) of 2, handshake of 0.
        let stream = [
            22, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 0, 2, 9, 9, 22, 3, 3, 0, 0,
        ];
        for piece in 1..=stream.len() {
            let mut r = Records::default();
            let found: usize = stream.chunks(piece).map(|p| r.feed(p)).sum();
            assert_eq!(found, 2, "pieces of {piece}");
            assert_eq!((r.have, r.body_left), (0, 0), "pieces of {piece}");
        }
        // A body of type 22 bytes is not mistaken for a header.
        let mut r = Records::default();
        assert_eq!(r.feed(&[23, 3, 3, 0, 5, 22, 22, 22, 22, 22]), 0);
    }

    fn pki(handshake_timeout: Duration) -> (ServerConfig, ClientConfig) {
        let ca = TestCa::new("paf test CA").unwrap();
        let cert = ca.issue(&["paf.test"]).unwrap();
        let server = ServerConfig::builder(cert.identity())
            .handshake_timeout(handshake_timeout)
            .build()
            .unwrap();
        let client = ClientConfig::builder(ClientTrust::CaCerts(vec![ca.cert().clone()]))
            .build()
            .unwrap();
        (server, client)
    }

    fn addr() -> SocketAddr {
        SocketAddr::from((net::testing::B_V4, 80))
    }

    #[test]
    fn a_tls_peer_that_stops_reading_is_reset_at_the_write_timeout() {
        // The handshake deadline, stale once the handshake is done, comes before the write
        // deadline. (On the wire the socket has no room left below its low-water mark, so the
        // early wake-up cannot count as progress here; tests/netns/tls_hostile.rs covers that.)
        let write_timeout = Duration::from_millis(1000);
        let config = Config {
            write_timeout,
            ..Config::default()
        };
        let (server, client) = pki(write_timeout);
        let mut pair = Pair::new(config, Some(server));
        let name = crate::tls::ServerName::try_from("paf.test").unwrap();
        let c = RawClient::connect_tls(pair.client(), addr(), &client, name).unwrap();
        stop_reading(&c);
        pair.drive(Duration::from_secs(10), || c.received() > 0);
        let handle = pair.handle.clone();
        // Before the fix, the close_notify queued behind the unread response kept the
        // connection forever.
        let took = pair.drive(Duration::from_secs(10), || handle.stats().active == 0);
        let stats = pair.handle.stats();
        assert_eq!((stats.write_timeouts, stats.active), (1, 0), "{stats:?}");
        assert!(took < write_timeout * 3 / 2, "closed after {took:?}");
        assert_eq!(
            (stats.tls_handshakes, stats.tls_failures),
            (1, 0),
            "{stats:?}"
        );
    }

    #[test]
    fn a_peer_closing_mid_handshake_is_counted_unless_it_sent_nothing() {
        let (server, _) = pki(Duration::from_secs(10));
        let mut pair = Pair::new(Config::default(), Some(server));
        let handle = pair.handle.clone();
        // A port probe: connect, close.
        let probe = RawClient::connect(pair.client(), addr()).unwrap();
        pair.drive(Duration::from_secs(10), || probe.is_connected());
        probe.close();
        pair.drive(Duration::from_secs(10), || {
            handle.stats().accepted == 1 && handle.stats().active == 0
        });
        // Half a ClientHello record, then close.
        let cut = RawClient::connect(pair.client(), addr()).unwrap();
        cut.send(&[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]);
        cut.close();
        pair.drive(Duration::from_secs(10), || {
            handle.stats().accepted == 2 && handle.stats().active == 0
        });
        let stats = handle.stats();
        assert_eq!((stats.accepted, stats.active), (2, 0), "{stats:?}");
        assert_eq!(stats.tls_failures, 1, "{stats:?}");
        for reason in TlsFailure::ALL {
            let want = u64::from(reason == TlsFailure::HandshakeEof);
            assert_eq!(stats.tls_failures_of(reason), want, "{reason:?}: {stats:?}");
        }
    }

    #[test]
    fn garbage_and_a_silent_client_are_counted_by_reason() {
        let (server, _) = pki(Duration::from_millis(300));
        let mut pair = Pair::new(Config::default(), Some(server));
        let garbage = RawClient::connect(pair.client(), addr()).unwrap();
        garbage.send(b"GET / HTTP/1.1\r\nHost: paf.test\r\n\r\n");
        let silent = RawClient::connect(pair.client(), addr()).unwrap();
        let handle = pair.handle.clone();
        let took = pair.drive(Duration::from_secs(10), || {
            handle.stats().accepted == 2 && handle.stats().active == 0
        });
        // The silent one goes at its handshake timeout, counted from its accept.
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(305),
            "{took:?}"
        );
        let stats = handle.stats();
        assert_eq!(stats.tls_failures, 2, "{stats:?}");
        assert_eq!(stats.tls_failures_of(TlsFailure::Protocol), 1, "{stats:?}");
        assert_eq!(
            stats.tls_failures_of(TlsFailure::HandshakeTimeout),
            1,
            "{stats:?}"
        );
        assert!(garbage.is_done() && silent.is_done());
    }
}

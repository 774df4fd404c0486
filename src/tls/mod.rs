//! Sans-IO TLS: ciphertext from the network in, plaintext out; plaintext in,
//! ciphertext for the network out.
//!
//! This module wraps rustls 0.23 behind the same shape as every other codec in
//! paf: it owns no socket and reads no clock. The service loop drives a session
//! with four kinds of calls, in any order, until it is [`is_closed`]:
//!
//! * **input** — [`handle_input`] with bytes read from the socket. It returns how
//!   many it consumed; fewer than offered means rustls holds a full record of
//!   plaintext (or, mid-handshake, unsent handshake bytes). Keep the rest, drain
//!   [`read_plaintext`] and [`poll_transmit`], then offer the rest again.
//!   [`handle_eof`] when the peer sends FIN.
//! * **plaintext** — [`read_plaintext`] until [`PlainRead::Pending`];
//!   [`write_plaintext`] accepts at most the room left under the buffer limit
//!   ([`set_buffer_limit`]), so memory stays bounded and backpressure reaches
//!   the HTTP layer as a short count, never as growth.
//! * **output** — whenever [`wants_write`], [`poll_transmit`] (append to a
//!   `Vec`) or [`poll_transmit_into`] (fill a caller slice, e.g. a socket's send
//!   window) moves ciphertext out.
//! * **time** — [`poll_timeout`] gives the handshake deadline; call
//!   [`handle_timeout`] once it has passed. A session that never finishes its
//!   handshake fails with [`Error::HandshakeTimeout`] and hands nothing to HTTP.
//!
//! Errors are sticky: after [`Error::Peer`] every input call returns the same
//! error, the fatal alert rustls queued is still flushed by [`poll_transmit`],
//! and [`is_closed`] turns true once it has left. Then the owner closes the
//! socket.
//!
//! Layout: [`config`] (shared, immutable settings; PEM loading), `sni`
//! (certificate choice by server name), [`store`] (certificates installed while running: ACME's),
//! [`session`] (the per-connection byte
//! pipe) and `certs` (a throw-away test PKI made with rcgen; feature `certs`, on by default).
//!
//! [`is_closed`]: ServerSession::is_closed
//! [`handle_input`]: ServerSession::handle_input
//! [`handle_eof`]: ServerSession::handle_eof
//! [`read_plaintext`]: ServerSession::read_plaintext
//! [`write_plaintext`]: ServerSession::write_plaintext
//! [`set_buffer_limit`]: ServerSession::set_buffer_limit
//! [`wants_write`]: ServerSession::wants_write
//! [`poll_transmit`]: ServerSession::poll_transmit
//! [`poll_transmit_into`]: ServerSession::poll_transmit_into
//! [`poll_timeout`]: ServerSession::poll_timeout
//! [`handle_timeout`]: ServerSession::handle_timeout

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "certs")]
pub mod certs;
pub mod config;
pub mod session;
mod sni;
pub mod store;

#[cfg(test)]
mod tests;

pub use config::{
    ClientConfig, ClientConfigBuilder, ClientTrust, Identity, ServerConfig, ServerConfigBuilder,
    SessionCache,
};
pub use session::{ClientSession, PlainRead, ServerSession, Session};
pub use store::{CertStore, ALPN_ACME_TLS};

/// Re-exported so callers name certificates, keys, server names and versions
/// without depending on rustls themselves.
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub use rustls::{ProtocolVersion, SupportedProtocolVersion};

/// ALPN identifier of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// ALPN identifier of HTTP/2 over TLS (RFC 9113 §3.2); a service serves it when its
/// [`ServerConfig`] offers it.
pub const ALPN_H2: &[u8] = b"h2";

/// Everything that can go wrong in this module.
///
/// Peer faults, the handshake clock and local configuration are kept apart so the
/// loop can log them differently: a `Peer` error is the other side's problem
/// (its alert is already queued), a `Config` error is ours.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The peer broke the TLS protocol, sent a fatal alert, offered nothing we
    /// accept (versions, ciphers, ALPN) or presented a certificate we do not
    /// trust. Any alert we owe it is queued; flush it with `poll_transmit`.
    Peer(rustls::Error),
    /// The handshake did not complete before its deadline.
    HandshakeTimeout,
    /// Local configuration is unusable: unreadable or malformed certificate or
    /// key file (the message names the path), keys that do not match their
    /// certificate, an invalid SNI name.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(e) => write!(f, "TLS peer error: {e}"),
            Self::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            Self::Config(msg) => write!(f, "TLS configuration error: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Peer(e) => Some(e),
            Self::HandshakeTimeout | Self::Config(_) => None,
        }
    }
}

/// The crypto provider paf uses unless a builder is given another: the process
/// default if the binary installed one with `CryptoProvider::install_default`,
/// else aws-lc-rs (rustls' default; faster handshakes than ring and hybrid
/// post-quantum key exchange, X25519MLKEM768, which ring lacks).
#[must_use]
pub fn default_provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

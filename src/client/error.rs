//! What can go wrong with a request, as its error handler (or [`request`](super::request)) sees
//! it: one variant per stage — resolving the ctx, DNS, TCP, TLS, HTTP — each naming the peer when
//! it is known, so a message says what failed and where.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use net::{ConnectError, DnsError};

use crate::ctx::ResolveError;
use crate::http::client::{ClientError, UsageError};

/// Why a TCP connection could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The server answered with a reset: nothing listens there.
    Refused,
    /// No answer within the connect timeout.
    Timeout,
    /// The stack has no address of that family, or no route to it.
    NoRoute,
    /// No local port is free.
    NoPorts,
    /// The address is unspecified, or the port 0.
    BadAddress,
    /// The operating system refused (kernel twin).
    Os(io::ErrorKind),
}

impl From<ConnectError> for ConnectFailure {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::BadAddress => ConnectFailure::BadAddress,
            ConnectError::NoRoute => ConnectFailure::NoRoute,
            ConnectError::NoPorts => ConnectFailure::NoPorts,
            ConnectError::Os(io::ErrorKind::ConnectionRefused) => ConnectFailure::Refused,
            ConnectError::Os(k) => ConnectFailure::Os(k),
        }
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Refused => f.write_str("connection refused"),
            ConnectFailure::Timeout => f.write_str("connection timed out"),
            ConnectFailure::NoRoute => f.write_str("no route to host"),
            ConnectFailure::NoPorts => f.write_str("no free local port"),
            ConnectFailure::BadAddress => f.write_str("bad address"),
            ConnectFailure::Os(k) => write!(f, "{k}"),
        }
    }
}

/// A failed request. Reported once, to the request's error handler (or returned by
/// [`request`](super::request) when the request cannot even start).
#[derive(Clone, Debug)]
pub enum Error {
    /// The ctx has no [`agent`](super::agent), and its endpoints are not known at once (they
    /// wait for an asynchronous step), or name another stack: nothing can carry the request.
    NoAgent,
    /// The ctx describes no usable endpoint (missing keys, failed folds); the report lists every
    /// candidate and what happened to it.
    Ctx(ResolveError),
    /// The server's name could not be resolved.
    Dns {
        /// The name asked for.
        name: String,
        /// What DNS said.
        error: DnsError,
    },
    /// The TCP connection could not be made.
    Connect {
        /// Where it went.
        peer: SocketAddr,
        /// Why it failed.
        failure: ConnectFailure,
    },
    /// The TLS handshake or a TLS record failed (untrusted certificate, wrong name, protocol
    /// error, handshake timeout).
    Tls {
        /// The server.
        peer: SocketAddr,
        /// What the TLS layer said.
        error: crate::tls::Error,
    },
    /// The server broke HTTP, closed too early, or was too slow.
    Http {
        /// The server.
        peer: SocketAddr,
        /// What the codec said.
        error: ClientError,
    },
    /// The connection was reset during the exchange.
    Reset {
        /// The server.
        peer: SocketAddr,
    },
    /// The request cannot be sent as given (CONNECT, no Host, more or fewer body bytes than
    /// declared).
    Usage(UsageError),
    /// The request's framing headers cannot be honoured (both `Content-Length` and
    /// `Transfer-Encoding`, an unparsable length, a transfer coding other than `chunked`).
    Framing(&'static str),
    /// The URL cannot be used (friendly client): not `http`/`https`, no host, unparsable.
    Url(String),
    /// A client setting cannot be used (e.g. the TLS roots cannot be loaded).
    Config(String),
    /// The response body is longer than the friendly client's limit.
    BodyTooLarge {
        /// The server.
        peer: SocketAddr,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body writer was dropped without [`close`](super::BodyWriter::close): the request was
    /// abandoned (its connection is closed).
    Cancelled,
    /// The client's loop is gone (its runtime was dropped) before the request completed.
    Stopped,
    /// The ctx's [`address_filter`](super::address_filter) refused every address the ctx
    /// gave: nothing was dialled. The last one refused.
    NotAllowed {
        /// The address refused.
        peer: SocketAddr,
    },
}

impl Error {
    /// The server, when the failure happened with or after choosing one.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            Error::Connect { peer, .. }
            | Error::Tls { peer, .. }
            | Error::Http { peer, .. }
            | Error::Reset { peer }
            | Error::NotAllowed { peer }
            | Error::BodyTooLarge { peer, .. } => Some(*peer),
            _ => None,
        }
    }

    /// Whether the failure is a timeout (DNS, connect, TLS handshake, or HTTP).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Dns { error, .. } => *error == DnsError::Timeout,
            Error::Connect { failure, .. } => *failure == ConnectFailure::Timeout,
            Error::Tls { error, .. } => *error == crate::tls::Error::HandshakeTimeout,
            Error::Http { error, .. } => error.is_timeout(),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAgent => f.write_str("the ctx names no client agent to connect through"),
            Error::Ctx(e) => write!(f, "{e}"),
            Error::Dns { name, error } => write!(f, "cannot resolve {name}: {error}"),
            Error::Connect { peer, failure } => write!(f, "cannot connect to {peer}: {failure}"),
            Error::Tls { peer, error } => write!(f, "TLS with {peer} failed: {error}"),
            Error::Http { peer, error } => write!(f, "HTTP from {peer}: {error}"),
            Error::Reset { peer } => write!(f, "connection to {peer} reset"),
            Error::Usage(e) => write!(f, "invalid request: {e}"),
            Error::Framing(why) => write!(f, "invalid request framing: {why}"),
            Error::Url(why) => write!(f, "bad URL: {why}"),
            Error::Config(why) => write!(f, "client configuration: {why}"),
            Error::BodyTooLarge { peer, limit } => {
                write!(f, "response body from {peer} larger than {limit} bytes")
            }
            Error::Cancelled => f.write_str("request cancelled (body writer dropped)"),
            Error::Stopped => f.write_str("the client loop stopped"),
            Error::NotAllowed { peer } => write!(f, "{peer} is not an allowed address"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Ctx(e) => Some(e),
            Error::Dns { error, .. } => Some(error),
            Error::Tls { error, .. } => Some(error),
            Error::Http { error, .. } => Some(error),
            Error::Usage(e) => Some(e),
            _ => None,
        }
    }
}

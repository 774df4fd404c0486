//! Errors of the HTTP/1.1 server codec.
//!
//! Peer faults ([`Error`]) and local misuse ([`UsageError`]) are kept apart: the first ends the
//! connection with an error response, the second is a bug in the caller and changes nothing on the
//! wire (except where documented, e.g. a streamed body shorter than its declared length).

use std::fmt;

use http::StatusCode;

/// A protocol violation by the peer, or a timeout it caused.
///
/// Surfaced once per connection as [`Event::Error`](super::Event::Error); the codec has already
/// stopped reading. [`Error::status`] is the status the error response should carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Malformed or smuggling-prone request; the text says why (400).
    BadRequest(&'static str),
    /// The request head was not complete within `head_timeout` (408).
    HeaderTimeout,
    /// The request body stalled for `body_timeout` (408).
    BodyTimeout,
    /// The request body is larger than `max_body_size` (413).
    PayloadTooLarge,
    /// The request line is longer than `max_request_line` (414).
    UriTooLong,
    /// The head is larger than `max_head_size`, has more than `max_headers` fields, or the
    /// trailer section is larger than `max_trailer_size` (431).
    HeadersTooLarge,
    /// The request uses a transfer coding this server does not know (501).
    NotImplemented(&'static str),
    /// The request's HTTP version is not 1.0 or 1.1 (505), including the HTTP/2 preface.
    VersionNotSupported,
    /// The peer closed its side in the middle of a request head or body (400).
    UnexpectedEof,
}

impl Error {
    /// The status code an error response for this error should carry.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::UnexpectedEof => StatusCode::BAD_REQUEST,
            Error::HeaderTimeout | Error::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }

    /// Whether the error is a timeout (the peer was too slow rather than wrong).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::HeaderTimeout | Error::BodyTimeout)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest(why) => write!(f, "bad request: {why}"),
            Error::HeaderTimeout => f.write_str("request head timed out"),
            Error::BodyTimeout => f.write_str("request body timed out"),
            Error::PayloadTooLarge => f.write_str("request body too large"),
            Error::UriTooLong => f.write_str("request line too long"),
            Error::HeadersTooLarge => f.write_str("request header fields too large"),
            Error::NotImplemented(what) => write!(f, "not implemented: {what}"),
            Error::VersionNotSupported => f.write_str("HTTP version not supported"),
            Error::UnexpectedEof => f.write_str("connection closed mid-request"),
        }
    }
}

impl std::error::Error for Error {}

/// What the caller did wrong; see [`UsageError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageErrorKind {
    /// No live exchange has this id (never existed, already finished, or dropped because the
    /// connection is closing).
    UnknownExchange,
    /// `respond` was already called for this exchange.
    AlreadyResponded,
    /// `write_body`/`finish_body` before `respond`.
    NotResponded,
    /// `write_body`/`finish_body` on a response whose body was given whole (or is finished).
    NotStreaming,
    /// `write_body` offered more bytes than the declared `Content-Length` leaves.
    BodyTooLong,
    /// `finish_body` before the declared `Content-Length` was written; the connection closes
    /// after the truncated response, since its framing is broken.
    BodyTooShort,
    /// `respond` with a 1xx status: interim responses are the codec's business (100-continue).
    InformationalStatus,
    /// `101 Switching Protocols` (or a `2xx` to CONNECT) for an exchange that cannot switch:
    /// its request did not ask (`Upgrade` with the `upgrade` connection option, HTTP/1.1;
    /// or CONNECT), its body is not read yet, the connection is stopping, or it speaks HTTP/2
    /// (RFC 9113 §8.6 forbids it).
    NotUpgradable,
}

/// Local misuse of [`ServerConn`](super::ServerConn): respond twice, write after finish, unknown
/// id. Never caused by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageError {
    kind: UsageErrorKind,
}

impl UsageError {
    pub(crate) fn new(kind: UsageErrorKind) -> Self {
        UsageError { kind }
    }

    /// What was wrong.
    pub fn kind(&self) -> UsageErrorKind {
        self.kind
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            UsageErrorKind::UnknownExchange => "unknown or finished exchange",
            UsageErrorKind::AlreadyResponded => "exchange already has a response",
            UsageErrorKind::NotResponded => "exchange has no response yet",
            UsageErrorKind::NotStreaming => "response body is not being streamed",
            UsageErrorKind::BodyTooLong => "body longer than the declared Content-Length",
            UsageErrorKind::BodyTooShort => "body shorter than the declared Content-Length",
            UsageErrorKind::InformationalStatus => "1xx responses are sent by the codec",
            UsageErrorKind::NotUpgradable => "101 for an exchange that cannot switch protocols",
        })
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let table: &[(Error, u16)] = &[
            (Error::BadRequest("x"), 400),
            (Error::UnexpectedEof, 400),
            (Error::HeaderTimeout, 408),
            (Error::BodyTimeout, 408),
            (Error::PayloadTooLarge, 413),
            (Error::UriTooLong, 414),
            (Error::HeadersTooLarge, 431),
            (Error::NotImplemented("x"), 501),
            (Error::VersionNotSupported, 505),
        ];
        for (e, code) in table {
            assert_eq!(e.status().as_u16(), *code, "{e}");
        }
    }
}

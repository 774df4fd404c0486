//! Errors of the HTTP/1.1 client codec.
//!
//! Peer faults and timeouts ([`ClientError`]) are kept apart from local misuse ([`UsageError`]):
//! the first ends the connection and is reported once as
//! [`ClientEvent::Error`](super::ClientEvent::Error); the second is a bug in the caller, returned
//! by the method that was misused, and leaves the wire untouched unless its doc says otherwise.

use std::fmt;

use crate::http::Error as ServerError;

/// A protocol violation by the server, the server closing too early, or a timeout.
///
/// Reported once per connection; the connection is closed by then (no more bytes are read or
/// written) and every later in-flight request is reported as
/// [`ClientEvent::Aborted`](super::ClientEvent::Aborted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Malformed or desync-prone response framing; the text says why.
    Malformed(&'static str),
    /// The response head is larger than `max_head_size`, has more than `max_headers` fields, or
    /// the chunked trailer section is larger than `max_trailer_size`.
    HeadTooLarge,
    /// The response body is larger than `max_body_size`.
    BodyTooLarge,
    /// The server closed the connection before sending any byte of the response. The request
    /// may not have been processed: an idempotent request may be retried on a new connection
    /// (this is what a stale pooled connection looks like).
    ClosedBeforeResponse,
    /// The server closed the connection in the middle of a response head or of a
    /// length-delimited or chunked body.
    UnexpectedEof,
    /// No response byte arrived within `response_timeout` after the request was transmitted.
    ResponseTimeout,
    /// A response head or body stalled for `read_timeout`.
    ReadTimeout,
    /// Pending request bytes made no transmit progress for `write_timeout`.
    WriteTimeout,
    /// HTTP/2: the server reset the request's stream (RST_STREAM) with this error code
    /// (RFC 9113 §7); the connection and its other requests go on.
    Reset(u32),
    /// HTTP/2: the server did not process the request: its GOAWAY named a last stream id
    /// below the request's stream, or it reset the stream with `REFUSED_STREAM`. Nothing was
    /// done with it, so it may be retried on another connection whatever its method
    /// (RFC 9113 §8.7); see [`ClientError::is_retryable`].
    NotProcessed,
    /// HTTP/2: the connection ended in a protocol error with this error code, detected by
    /// either side (a GOAWAY sent or received); every request still on it fails.
    Protocol(u32),
}

impl ClientError {
    /// Whether the error is a timeout (the server was too slow rather than wrong).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ClientError::ResponseTimeout | ClientError::ReadTimeout | ClientError::WriteTimeout
        )
    }

    /// Whether the server certainly did not process the request, so that sending it again
    /// (on another connection) is safe even when it is not idempotent.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::NotProcessed)
    }

    /// Maps a body-decoder error (shared with the server codec) to the client's terms.
    pub(super) fn from_decoder(e: ServerError) -> Self {
        match e {
            ServerError::BadRequest(why) => ClientError::Malformed(why),
            ServerError::PayloadTooLarge => ClientError::BodyTooLarge,
            ServerError::HeadersTooLarge => ClientError::HeadTooLarge,
            _ => ClientError::Malformed("invalid body framing"),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Malformed(why) => write!(f, "malformed response: {why}"),
            ClientError::HeadTooLarge => f.write_str("response head too large"),
            ClientError::BodyTooLarge => f.write_str("response body too large"),
            ClientError::ClosedBeforeResponse => {
                f.write_str("connection closed before the response")
            }
            ClientError::UnexpectedEof => f.write_str("connection closed mid-response"),
            ClientError::ResponseTimeout => f.write_str("response timed out"),
            ClientError::ReadTimeout => f.write_str("response stalled"),
            ClientError::WriteTimeout => f.write_str("request transmission stalled"),
            ClientError::Reset(code) => {
                write!(f, "stream reset by the server: {:?}", h2::Reason::from(*code))
            }
            ClientError::NotProcessed => f.write_str(
                "request not processed by the server (HTTP/2 GOAWAY or REFUSED_STREAM); safe to retry",
            ),
            ClientError::Protocol(code) => {
                write!(f, "HTTP/2 connection error: {:?}", h2::Reason::from(*code))
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Local misuse of [`ClientConn`](super::ClientConn). Never caused by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// The connection takes no new request: it is closed, failed, or a request or response
    /// said `Connection: close`.
    NotAccepting,
    /// An earlier request's body is still being streamed; finish it first (requests are
    /// pipelined only once their bodies are complete).
    RequestInProgress,
    /// The request has no `Host` header and its URI no authority.
    MissingHost,
    /// `CONNECT` (tunnels) is not supported by this codec.
    UnsupportedMethod,
    /// No live request has this id, or its body is not being streamed (given whole, already
    /// finished, or aborted).
    NotStreaming,
    /// `write_body` offered more bytes than the declared length leaves.
    BodyTooLong,
    /// `finish_body` before the declared length was written: the request is aborted and the
    /// connection closed, since its framing is broken.
    BodyTooShort,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsageError::NotAccepting => "connection takes no new request",
            UsageError::RequestInProgress => "an earlier request body is still streaming",
            UsageError::MissingHost => "request has neither Host nor an authority",
            UsageError::UnsupportedMethod => "CONNECT is not supported",
            UsageError::NotStreaming => "request body is not being streamed",
            UsageError::BodyTooLong => "body longer than the declared Content-Length",
            UsageError::BodyTooShort => "body shorter than the declared Content-Length",
        })
    }
}

impl std::error::Error for UsageError {}

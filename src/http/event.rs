//! The events and values exchanged between a [`ServerConn`](super::ServerConn) and its owner.

use super::Error;

/// Identifies one request/response exchange of a connection; increasing in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub(crate) u64);

impl ExchangeId {
    /// The sequence number: 0 for the first request of the connection, then 1, 2, …
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// What happened on the connection; drained with
/// [`ServerConn::poll_event`](super::ServerConn::poll_event).
#[derive(Debug)]
pub enum Event {
    /// A request head was parsed (in order). Its body, if any, is read with
    /// [`ServerConn::read_body`](super::ServerConn::read_body); answer with
    /// [`ServerConn::respond`](super::ServerConn::respond).
    Request {
        /// The exchange this request starts.
        id: ExchangeId,
        /// The request head; the target is as sent (origin-, absolute-, authority- or
        /// asterisk-form).
        head: http::Request<()>,
    },
    /// Body bytes became available for `id` (emitted when its buffer goes from empty to
    /// non-empty) or the body ended: call `read_body` until it returns `Pending`.
    BodyReadable {
        /// The exchange whose body can be read.
        id: ExchangeId,
    },
    /// The peer violated the protocol, or a timeout fired. HTTP/1.1: at most one per
    /// connection; the codec has stopped reading; answer with
    /// [`ServerConn::respond_error`](super::ServerConn::respond_error) (status
    /// [`Error::status`]); `id` is the exchange whose body failed, `None` for a failed head.
    /// HTTP/2: one per failed stream (its body stalled for `body_timeout` or exceeded
    /// `max_body_size`, before its response started), answered on that stream (the HTTP/2
    /// codec's `respond_error` takes the id); the connection goes on. HTTP/2 protocol errors are h2's own (GOAWAY, RST_STREAM) and make no event.
    Error {
        /// The exchange whose request body failed, if any.
        id: Option<ExchangeId>,
        /// What went wrong.
        error: Error,
    },
    /// Output space became available for the streamed body of `id`, after `write_body`
    /// accepted less than offered.
    Writable {
        /// The exchange that may write again.
        id: ExchangeId,
    },
    /// The exchange `id` is over before its response finished: the peer reset its HTTP/2
    /// stream, the stream's body broke a limit, or the connection failed under it. Its body
    /// will never complete and its response goes nowhere. (HTTP/2 only.)
    Reset {
        /// The exchange that ended.
        id: ExchangeId,
    },
    /// Nothing more will be read or written and all output was transmitted: close the socket.
    Closed,
    /// A `101 Switching Protocols` (or a `2xx` to CONNECT) was transmitted: HTTP is over on
    /// this connection, which now carries the protocol the response named (or the tunnel). Input the codec did not consume is that
    /// protocol's first bytes; the owner hands the connection to whatever speaks it (see
    /// [`crate::tunnel`]). HTTP/1.1 only.
    Switched,
}

/// Result of [`ServerConn::read_body`](super::ServerConn::read_body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyRead {
    /// This many bytes were copied into the buffer.
    Data(usize),
    /// The body is complete and fully read (also for requests without a body).
    End,
    /// No bytes now; wait for [`Event::BodyReadable`]. Also returned for unknown or aborted
    /// exchanges (never `End`, so a truncated body is never mistaken for a complete one).
    Pending,
}

/// The body of a response, chosen by the caller of
/// [`ServerConn::respond`](super::ServerConn::respond).
///
/// HEAD requests and 204/304 responses get no body bytes whatever is chosen (bytes written are
/// dropped); HEAD keeps the length the body would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody<'a> {
    /// No body: `Content-Length: 0` (for HEAD and 304 the handler's `Content-Length` is kept).
    Empty,
    /// The whole body, now: `Content-Length` framing, no further calls needed.
    Complete(&'a [u8]),
    /// Exactly this many bytes follow through `write_body`, then `finish_body`.
    Length(u64),
    /// An unknown amount follows through `write_body`, then `finish_body`: chunked for
    /// HTTP/1.1 clients, close-delimited for HTTP/1.0 clients.
    Chunked,
}

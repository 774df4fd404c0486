//! Sans-IO HTTP/1.1 server codec (RFC 9112, RFC 9110).
//!
//! [`ServerConn`] is one server-side connection as a deterministic state machine, in the httpaf
//! style: bytes in ([`ServerConn::handle_input`]), events out ([`ServerConn::poll_event`]), bytes
//! out ([`ServerConn::poll_transmit`]). It never does IO and never reads the clock; every method
//! that needs time takes `now`, and [`ServerConn::poll_timeout`] says when to call
//! [`ServerConn::handle_timeout`]. It knows nothing of sockets or TLS, so the same codec runs over
//! smoltcp, kernel sockets, TLS and unit tests.
//!
//! The owner's loop, per connection:
//!
//! 1. Offer received bytes to `handle_input`, keep what it did not consume and offer it again
//!    (appended to) later; `wants_read` says whether offering input can make progress now.
//! 2. Drain `poll_event`: answer each [`Event::Request`] with `respond` (plus `write_body` /
//!    `finish_body` for streamed bodies), read bodies with `read_body` on
//!    [`Event::BodyReadable`], answer [`Event::Error`] with `respond_error`.
//! 3. Send `poll_transmit`, report with `handle_transmitted`; on [`Event::Closed`] close the
//!    socket (FIN). Sleep until `poll_timeout`, then `handle_timeout`.
//! 4. Call `set_date` with the current [`HttpDate`] (see [`DateCache`]) at least once a second.
//!
//! Responses go out in request order (pipelining); a later exchange's complete response is
//! buffered until the earlier ones are done, while streaming bodies of later exchanges are held
//! back (`write_body` accepts 0 bytes, [`Event::Writable`] follows).
//!
//! [`client::ClientConn`] is the client-side mirror (requests out, responses in), sharing the
//! body decoder and framing rules.
//!
//! Peer faults are [`Error`] (one per connection, with the status to send); local misuse is
//! [`UsageError`]. Request-smuggling rules and their statuses are listed in the `head` and `body`
//! module docs: the parser is strict wherever two readers could disagree about framing.
//!
//! The message types handlers and clients use are the `http` crate's, re-exported here
//! ([`Request`], [`Response`], [`StatusCode`], [`header`]...), so `paf::http::Response::new(())`
//! needs no other dependency.

pub(crate) mod body;
pub mod client;
mod config;
mod error;
mod event;
pub(crate) mod h2;
pub use h2::Flood;
pub(crate) mod head;
pub mod proxy_protocol;
mod server;
mod write;

#[cfg(test)]
mod tests;

pub use ::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
pub use config::{Cidr, Config, PerClient, Rate, DEFAULT_ABUSE_DELAY};
pub use error::{Error, UsageError, UsageErrorKind};
pub(crate) use server::SHARE_FROM;
pub use server::{BodyRead, Event, ExchangeId, ResponseBody, ServerConn};
pub use write::{DateCache, HttpDate};

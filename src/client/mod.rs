//! The client side: the seed's `request ~ctx` on the one loop, with DNS over the userspace
//! stack, a keep-alive pool, and a friendly client on top.
//!
//! ```text
//! (* the seed *)                                   // paf
//! let ctx = Mimic.add Paf.tcp_edn                  let agent = client::Agent::attach(&mut rt, Options::default());
//!   (stack, ipaddr, 80) Mimic.empty                let ctx = client::ctx(&agent)
//!                                                      .add(&client::domain_name(), "upstream.test".into());
//! Paf.request ~ctx ~error_handler                  let body = client::request(&ctx, http::client::Config::default(),
//!   ~response_handler req                                               error_handler, response_handler, req)?;
//!                                                  body.close()?;
//!                                                  rt.run_until(|_| done.get())?;
//! ```
//!
//! Contract:
//! - [`Agent::attach`] adds the client app to a [`Runtime`](crate::Runtime); the [`Agent`]
//!   handle is what the ctx's `agent`, `tcp_edn` and `tls_edn` carry. Everything runs on the
//!   loop's thread: handlers are called from the loop, never concurrently.
//! - [`request`] resolves the ctx lazily ([`tls_edn`] before [`tcp_edn`]; the built-in resolver
//!   of [`ctx`] asks DNS through the stack only when an endpoint needs the address; a literal
//!   address is never looked up), connects (TCP, then TLS with SNI and verification against the
//!   domain name), writes the head, and returns the [`BodyWriter`]. The response handler gets
//!   `(peer, head, body)`, the body as a [`ResponseBody`] read at the handler's pace; any later
//!   failure goes to the error handler, once.
//! - Connections are pooled per endpoint (address, TLS name and configuration, HTTP config,
//!   and the [`preamble`] written before anything else, when the ctx has one), at most [`Options::max_per_endpoint`] at once, idle ones closed after
//!   [`Options::idle_timeout`]. HTTP/1.1 carries one request at a time per connection (no
//!   pipelining). A request whose pooled connection turns out to be stale (closed before any
//!   response byte) is sent once more on a new connection when it is idempotent and its body
//!   can be replayed.
//! - HTTP/2 is used when asked: over TLS when the endpoint's [`tls::ClientConfig`](crate::tls::ClientConfig)
//!   offers `h2` by ALPN ([`tls::ClientConfigBuilder::alpn_protocols`](crate::tls::ClientConfigBuilder::alpn_protocols))
//!   and the server picks it; over plain TCP with
//!   [`http::client::Config::http2_prior_knowledge`](crate::http::client::Config::http2_prior_knowledge)
//!   (h2c). Otherwise HTTP/1.1, the default. An HTTP/2 connection carries every request to its
//!   endpoint up to the server's concurrent-stream limit; a request the server did not process
//!   (GOAWAY, `REFUSED_STREAM`) is resent on another connection whatever its method, when its
//!   body can be replayed.
//! - [`connect`] is [`request`] without HTTP: the same ctx resolution (DNS included) and TCP
//!   connection (and TLS when the ctx yields a TLS endpoint), handed over as a
//!   [`tunnel::Upgraded`](crate::tunnel::Upgraded) once established, for
//!   [`tunnel::join`](crate::tunnel::join): what the proxy's CONNECT routes dial. The
//!   connection is never pooled and does not count against [`Options::max_per_endpoint`].
//! - [`address_filter`] in the ctx restricts which addresses any of them may dial.
//! - [`Client`] is the friendly layer: `get`/`post`/`request` by URL, the scheme choosing TLS,
//!   default ports 80/443, `Host` from the URL, optional bounded redirects; [`fetch_blocking`]
//!   drives a runtime until one response is in, and [`Remote`] (from [`Agent::remote`]) sends
//!   blocking requests from threads that do not own the loop.
//!
//! Layout: `keys` (ctx keys and the base ctx), `agent` ([`Agent`] and [`request`]), `state` (the
//! shared state), `app` (the loop side), `exchange` (one request on its connection), `conn` (one
//! connection's byte pipe), `codec` (HTTP/1.1 or HTTP/2 on it), `dns` (the resolver fold's queries), `body` (the handles), `error`,
//! `friendly` ([`Client`]).

#![warn(missing_docs)]

mod agent;
mod app;
mod body;
mod codec;
mod conn;
mod dns;
mod error;
mod exchange;
mod friendly;
mod keys;
mod remote;
mod state;
#[cfg(test)]
mod tests;

pub use agent::{connect, request, Agent};
pub use body::{BodyEnd, BodyError, BodyReader, BodyWriter, ResponseBody, WriteError};
pub use error::{ConnectFailure, Error};
pub use friendly::{fetch_blocking, Client, Response};
pub use keys::{
    address_filter, agent, connect_timeout, ctx, domain_name, family, ipaddr, port, preamble,
    server_name, tcp_edn, tls_config, tls_edn, AddressFilter, Family, TcpEdn, TlsEdn,
};
pub use remote::Remote;
pub use state::{Options, Stats};

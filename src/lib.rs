//! paf: an HTTP/HTTPS server and client library, and an appliance, on its own userspace TCP/IP
//! stack — the Rust counterpart of OCaml's paf (`Paf_mirage`).
//!
//! One thread runs one [`Runtime`]: a mio loop around one network stack ([`net`]: smoltcp over a
//! TAP device or the in-memory wire, or kernel sockets) and the apps on it. The HTTP/1.1 and TLS
//! layers are sans-IO codecs ([`http`], [`tls`]); the loop moves bytes between them and the
//! stack, and passes `now` in: nothing above the loop reads the clock. No async runtime.
//!
//! | you want | use |
//! |---|---|
//! | serve HTTP or HTTPS (the seed's `init`, `http`, `https`, `Lwt_switch`) | [`service`]: [`service::init`], [`service::http`], [`service::https`], [`service::Switch`], [`service::Reqd`] |
//! | send requests (the seed's `request ~ctx`, `tcp_edn`, `tls_edn`) | [`client`]: [`client::Agent::attach`], [`client::ctx`], [`client::request`], the friendly [`client::Client`] |
//! | describe how to reach a server (Mimic) | [`ctx`]: keys, folds with [`ctx::req`]/[`ctx::dft`], async steps |
//! | request and response types | [`http`] re-exports the `http` crate's ([`http::Request`], [`http::Response`], [`http::StatusCode`]…) |
//! | the appliance `paf run` is (static, files, proxy, TLS termination) | [`config`], [`appliance`] |
//! | relay a WebSocket (or any `Upgrade`) between a server and a client connection | [`tunnel`]: [`service::Reqd::upgrade`], [`client::ResponseBody::upgrade`], [`tunnel::join`] |
//! | deterministic tests of your services (virtual clock, in-memory wire) | `paf::testing` (feature `testing`) |
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use std::time::Duration;
//! use paf::http::{Request, Response};
//! use paf::service::{self, Initialized};
//! use paf::{client, testing};
//!
//! // Two loops joined by the in-memory wire, on one virtual clock.
//! let mut pair = testing::Pair::new();
//!
//! // The server: the seed's `init ~port:80 stack` then `http ~request_handler service`.
//! let svc = service::init(&mut pair.server, 80).unwrap();
//! let Initialized(_handle) = service::http(
//!     svc,
//!     paf::http::Config::default(),
//!     None,
//!     service::default_error_handler,
//!     |_peer, reqd| {
//!         let _ = reqd.respond_with_bytes(Response::new(()), "hello\n");
//!     },
//! );
//!
//! // The client: the seed's `request ~ctx`, the ctx naming the server by address.
//! let agent = client::Agent::attach(&mut pair.client, client::Options::default());
//! let ctx = client::ctx(&agent).add(&client::domain_name(), "198.18.0.2".to_owned());
//! let body = std::rc::Rc::new(std::cell::RefCell::new(None));
//! let b = body.clone();
//! client::request(
//!     &ctx,
//!     paf::http::client::Config::default(),
//!     |_peer, e| panic!("{e}"),
//!     move |_peer, _head, response| {
//!         response.read_to_end(1024, move |r| *b.borrow_mut() = r.ok());
//!     },
//!     Request::get("/").body(()).unwrap(),
//! )
//! .unwrap()
//! .close()
//! .unwrap();
//! pair.drive(Duration::from_secs(5), |_| body.borrow().is_some());
//! assert_eq!(body.borrow().as_deref(), Some(&b"hello\n"[..]));
//! # }
//! ```
//!
//! Layers (each knows only those below it): [`net`] (its own crate: devices, smoltcp, listener
//! pools, the kernel-socket twin, behind [`net::Transport`]); [`http`] and [`tls`] (codecs);
//! [`runtime`] (the loop, its [`Clock`](runtime::Clock), and the byte pipe every connection
//! uses between the stack, TLS and a codec); [`service`] and [`client`] (the seed's API);
//! [`acme`] (the sans-IO ACME protocol: JWS, orders); [`config`] and [`appliance`] (what `paf run`
//! serves, ACME certificates included); [`echo`] (the smallest app).

pub mod acme;
pub mod appliance;
pub mod client;
pub mod config;
pub mod ctx;
pub mod echo;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod pipe;
pub mod runtime;
pub mod service;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod tunnel;

/// The `bytes` crate paf uses: a body for [`Reqd::respond_with_shared`](service::Reqd::respond_with_shared) is a [`bytes::Bytes`].
pub use bytes;
pub use net;
pub use runtime::{App, AppId, Cx, LoopWaker, Runtime};

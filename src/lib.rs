//! paf: an HTTP/HTTPS appliance and library on its own userspace TCP/IP stack.
//!
//! Layers (each knows only those below it):
//!
//! - [`net`] (its own crate): devices (TAP, in-memory wire), the smoltcp stack, listener pools,
//!   the kernel-socket twin, behind the [`net::Transport`] contract;
//! - [`http`]: the sans-IO HTTP/1.1 server codec; [`tls`]: the sans-IO TLS layer over rustls.
//!   Neither does IO nor reads the clock;
//! - [`runtime`]: the one event loop that drives a stack and the apps on it;
//! - [`echo`]: a TCP echo app, the smallest thing the loop can run.
//!
//! `fuzzing` (hidden) holds the bodies of the fuzz targets in `fuzz/`, for those targets and
//! their regression tests only.

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

pub use net;
pub use runtime::{App, AppId, Cx, LoopWaker, Runtime};

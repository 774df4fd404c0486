//! The end-to-end suites, one test binary: each needs root, network namespaces and a TAP (see
//! `common`). Without them a test prints `SKIP <test>: <reason>` and passes; with
//! `PAF_REQUIRE_NETNS=1` (CI, `.ci/run`) it fails instead.
//!
//! One suite per module, tests named `suite::test`: `cargo test --test netns https::` runs one
//! suite, `cargo test --test netns -- --exact stack::jumbo_mtu_carries_large_segments` one test.
//!
//! Each suite used to be its own binary, so tests of different suites never ran at the same
//! time; here libtest runs them on as many threads as there are cores. What a test measures in
//! its own namespace (its paf's RSS and descriptors, `/metrics`, the namespace's kernel counters)
//! is its own either way. What two suites share is the CPU: the tests that hold [`heavy`] are
//! the ones that load the machine for seconds, or whose assertions a neighbour's load could
//! break; they run one at a time, and the light tests run beside them.

mod common;

mod access_log;
mod acme;
mod appliance;
mod bench_smoke;
mod client;
mod connect;
mod h2;
mod h2_attack;
mod harness;
mod http;
mod https;
mod leak;
mod malformed;
mod proxy_h2;
mod reload;
mod scale;
mod slow;
mod stack;
mod tls_hostile;
mod tls_resume;
mod websocket;
mod workers;
mod workers_dhcp;
mod workers_kernel;

use std::sync::{Mutex, MutexGuard, PoisonError};

static HEAVY: Mutex<()> = Mutex::new(());

/// Held for its whole run by each test that either
///
/// - puts sustained load on the cores: `bench_smoke` (wrk, pinned servers), `scale`'s 50,000
///   connections, `slow`'s 1,200 attackers and wrk, `leak`'s rounds of mixed clients, the wrk
///   runs of `http` and `https`, `appliance`'s 4 × 100 MB through the proxy, the curl loops (a
///   process and a TLS handshake per request) of `tls_hostile` and of `https`' garbage test; or
/// - asserts something a neighbour's load could break: a rate relative to a rate measured
///   moments before (`slow`: wrk ≥ 0.8×; `https`' garbage test: curl loop ≥ 0.5×), a number of
///   requests served in a fixed time (`http`'s slow client), no SYN retransmitted (a SYN-ACK
///   later than 1 s: `stack`'s 200 connections, `scale`'s TIME-WAIT reuse), or closes within
///   50 ms before to 1.5 s after a timeout (`tls_hostile`).
///
/// A failed test poisons the lock; the next one takes it all the same.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The suites that need no root, one test binary: paf's services and client over the in-memory
//! wire (two userspace stacks in this process), the config-driven appliance, and the fuzz
//! regression inputs.
//!
//! One suite per module, tests named `suite::test`: `cargo test --test wire http::` runs one
//! suite, `cargo test --test wire -- --exact http::get_over_ipv4_and_ipv6` one test.
//!
//! Each suite used to be its own binary, so tests of different suites never ran at the same
//! time; here libtest runs them on as many threads as there are cores. Two tests need more than
//! their own stacks: see [`heavy`] and [`alone`].

mod access_log;
mod appliance;
mod client;
mod connect;
mod fairness;
mod fault_soak;
mod fuzz_regressions;
mod h2;
mod http;
mod leak;
mod proxy_compress;
mod proxy_h2;
mod send_proxy_protocol;
mod tunnel;
mod tunnel_support;

use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

static HEAVY: Mutex<()> = Mutex::new(());

/// Held for its whole run by each test that takes seconds of CPU, pushing tens of megabytes or
/// more through two userspace stacks: `client`'s and `http`'s 64 MB streams, `http`'s TLS
/// pipelines and streams, `fault_soak` (1 GiB over a faulty wire), and `leak` (through
/// [`alone`]). They run one at a time; the other, short tests run beside them, as they ran
/// beside each other within their suites.
///
/// It bounds the load, nothing more: these tests all run on the virtual clock of
/// `paf::testing::Pair`, so a busy core delays them but changes nothing they check. (Before
/// `leak` moved to the pair, its probes were cut by 300 to 400 ms real-clock timeouts, and in a
/// run where it overlapped `http`'s 64 MB response stream its 431 probe got a 408: that was the
/// lock's first reason.)
///
/// A failed test poisons the lock; the next one takes it all the same.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set in a child process started by [`alone`]: the name of the test it runs.
const ALONE_VAR: &str = "PAF_WIRE_ALONE";

/// For a test whose measures are the whole process's (`leak`: the live heap through a counting
/// global allocator, the open file descriptors): tests of other suites on other threads of this
/// binary would move them. Call it first, with the test's path (`module_path!()` and its name):
///
/// - in the test binary as run by `cargo test`, it runs this binary again with only that test
///   (`--exact`, one thread) while holding [`heavy`], prints the child's output, fails if the
///   child failed or ran no test, and returns true: the caller returns;
/// - in that child, it returns false: the caller runs the test's body, alone in its process, as
///   it did when the suite was its own binary.
///
/// # Panics
///
/// When the child cannot be started, fails, or did not run exactly that test.
pub fn alone(module: &str, test: &str) -> bool {
    // `wire::leak` → `leak::mixed_…`: libtest's name, without the crate.
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::{test}");
    if std::env::var_os(ALONE_VAR).is_some_and(|v| v == name.as_str()) {
        return false;
    }
    let _heavy = heavy();
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(&exe)
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE_VAR, &name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Through libtest's capture: shown when the test fails or with --nocapture.
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, run alone in a child process: {}\n{stdout}",
        out.status
    );
    true
}

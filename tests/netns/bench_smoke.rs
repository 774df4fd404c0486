//! `scripts/bench --smoke` completes and every request it makes succeeds: nginx, paf on kernel
//! sockets and paf on the userspace stack, one short round of every workload (1 s wrk runs,
//! 1,000 idle connections, 10 MB transfers). Speed is never asserted; the numbers are printed.
//!
//! Needs root (namespaces, TAP, veth) and nginx, wrk, curl, openssl, python3: without them it
//! prints `SKIP` and returns; in CI (`PAF_REQUIRE_NETNS=1`) it must run. It uses this test
//! build's `paf` binary (debug is fine: only errors are checked).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{require_netns, require_tools, run_timeout};

#[test]
fn bench_smoke_completes_without_request_errors() {
    let test = "bench_smoke_completes_without_request_errors";
    if !require_netns(test)
        || !require_tools(
            test,
            &[
                "nginx", "wrk", "curl", "openssl", "python3", "taskset", "timeout",
            ],
        )
    {
        return;
    }
    // wrk and the servers, pinned, on both cores for about a minute. See crate::heavy.
    let _heavy = crate::heavy();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `timeout` sends SIGTERM first so the script's trap removes its namespaces; the harness's
    // own deadline (a SIGKILL) is only a backstop.
    let out = run_timeout(
        Command::new("timeout")
            .args(["--kill-after=15", "150"])
            .arg(root.join("scripts/bench"))
            .arg("--smoke")
            .env("PAF_BIN", env!("CARGO_BIN_EXE_paf")),
        Duration::from_secs(180),
    );
    eprintln!("{}", out.stdout);
    assert!(out.success(), "scripts/bench --smoke failed:\n{out}");
    assert!(
        out.stdout.contains("smoke check passed"),
        "no verdict from scripts/bench --smoke:\n{out}"
    );
    // The script marks paf's rows n/a when `paf run` is missing; here it must be there.
    assert!(
        !out.stdout.contains("paf run not implemented"),
        "scripts/bench did not find `paf run`:\n{out}"
    );
}

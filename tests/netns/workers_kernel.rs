//! The kernel twin (`stack = "kernel"`, `--stack kernel`) with 2 workers, each with its own
//! `KernelStack` whose listening sockets are opened with `SO_REUSEPORT`, bound to a veth's
//! address inside the namespace: 200 simultaneous connects all answered, `/metrics` showing
//! both workers' responses adding up to what was sent, reloads that move the listener to another
//! port and back (every worker re-binds, with `SO_REUSEPORT`), a stop that drains both; and the
//! built-in site (`--test-routes`) on it, both workers accepting.
//!
//! Needs root (netns): prints `SKIP` without it; must run in CI (`PAF_REQUIRE_NETNS=1`).

use crate::common;
use crate::workers::{all_ok, metric, worker_totals, BURST};

use std::path::Path;
use std::time::Duration;

use common::{require_netns, require_tools, ChildGuard, Netns, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");

/// Waits until `paf`'s stderr contains `needle` `times` times.
fn wait_stderr(paf: &mut ChildGuard, needle: &str, times: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while paf.stderr().matches(needle).count() < times {
        assert!(paf.is_running(), "paf exited:\n{}", paf.stderr());
        assert!(
            std::time::Instant::now() < deadline,
            "no {times} × {needle:?} in:\n{}",
            paf.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kernel twin's address: a veth made inside the namespace (the TAP's kernel side is
/// paf's peer in the other tests; this one has nothing to do with it).
const TWIN: &str = "198.18.2.2";

fn veth(ns: &Netns) {
    for args in [
        &[
            "link", "add", "twin0", "type", "veth", "peer", "name", "twin1",
        ][..],
        &["addr", "add", "198.18.2.2/24", "dev", "twin0"],
        &["addr", "add", "198.18.2.1/24", "dev", "twin1"],
        &["link", "set", "twin0", "up"],
        &["link", "set", "twin1", "up"],
    ] {
        let out = ns.run("ip", args, Duration::from_secs(10));
        assert!(out.success(), "{out}");
    }
}

fn kernel_config(port: u16) -> String {
    format!(
        r#"[interface]
stack = "kernel"
bind = "{TWIN}"
workers = 2

[[listener]]
name = "web"
port = {port}
access_log = false

[[listener.route]]
path = "/health"
exact = true
action = "health"

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"
"#
    )
}

/// `/metrics` of the twin on `port`.
fn twin_metrics(ns: &Netns, port: u16) -> String {
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", &format!("http://{TWIN}:{port}/metrics")],
        Duration::from_secs(15),
    );
    assert!(out.success(), "{out}");
    out.stdout
}

fn per_worker(text: &str) -> [u64; 2] {
    [0, 1].map(|k| metric(text, &format!("paf_worker_responses{{worker=\"{k}\"}}")))
}

/// 200 simultaneous connects to the twin on `port`, all answered `200`.
fn twin_burst(ns: &Netns, port: u16) {
    let out = ns.run(
        "python3",
        ["-c", BURST, TWIN, "200", "/health", &port.to_string()],
        Duration::from_secs(60),
    );
    assert_eq!(out.stdout.trim(), "200", "port {port}: {out}");
}

#[test]
fn kernel_twin_on_two_reuse_port_workers_accepts_a_burst_counts_and_rebinds_on_reload() {
    let test = "kernel_twin_on_two_reuse_port_workers_accepts_a_burst_counts_and_rebinds_on_reload";
    if !require_netns(test) || !require_tools("twin2", &["curl", "python3", "ip"]) {
        return;
    }
    let ns = Netns::new("twin2");
    veth(&ns);
    let scratch = Scratch::new("twin2");
    let file = scratch.write("twin.toml", kernel_config(80));
    let pid = scratch.s("paf.pid");
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        ["--config", &file, "--pid-file", &pid],
    );
    wait_stderr(
        &mut paf,
        "paf run: 2 worker(s) on kernel sockets on 198.18.2.2",
        1,
    );
    twin_burst(&ns, 80);
    all_ok(&ns, "http://198.18.2.2/health", 20);
    let text = twin_metrics(&ns, 80);
    let first = per_worker(&text);
    assert!(
        first.iter().all(|&r| r > 0),
        "a worker served nothing:\n{text}"
    );
    assert_eq!(first.iter().sum::<u64>(), 220, "{text}");
    assert_eq!(
        metric(
            &text,
            r#"paf_requests_total{listener="web",route="0",class="2xx"}"#
        ),
        220,
        "{text}"
    );
    // A reload moves the listener to 8080 (each worker binds it, with SO_REUSEPORT, and closes
    // 80), and another brings it back to 80: each worker binds 80 again.
    std::fs::write(&file, kernel_config(8080)).unwrap();
    paf.signal("HUP");
    wait_stderr(&mut paf, "reload: configuration generation 2 applied", 2);
    twin_burst(&ns, 8080);
    let out = ns.run(
        "curl",
        ["-sS", "-m", "5", "http://198.18.2.2/health"],
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(7), "port 80 still open: {out}");
    let before = per_worker(&twin_metrics(&ns, 8080));
    std::fs::write(&file, kernel_config(80)).unwrap();
    paf.signal("HUP");
    wait_stderr(&mut paf, "reload: configuration generation 3 applied", 2);
    twin_burst(&ns, 80);
    let text = twin_metrics(&ns, 80);
    let after = per_worker(&text);
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "both workers serve port 80 again: {before:?} then {after:?}\n{text}"
    );
    // 220 + the first /metrics, 200 on 8080, the second /metrics, 200 on 80.
    assert_eq!(after.iter().sum::<u64>(), 220 + 1 + 200 + 1 + 200, "{text}");
    assert_eq!(
        metric(&text, r#"paf_reloads_total{result="ok"}"#),
        2,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"paf_reloads_total{result="failed"}"#),
        0,
        "{text}"
    );
    assert_eq!(metric(&text, "paf_config_generation"), 3, "{text}");
    let status = paf.stop(Duration::from_secs(15));
    let stderr = paf.stderr();
    assert!(status.success(), "paf: {status}\n{stderr}");
    // The first reload stopped each worker's port-80 service; the stop ends the new ones.
    let (_, after_reloads) = stderr
        .rsplit_once("reload: configuration generation 3 applied")
        .unwrap();
    assert_eq!(
        after_reloads.matches("service on port 80: stopped").count(),
        2,
        "every worker drains and stops:\n{stderr}"
    );
}

#[test]
fn the_built_in_site_on_the_kernel_twin_runs_two_reuse_port_workers() {
    let test = "the_built_in_site_on_the_kernel_twin_runs_two_reuse_port_workers";
    if !require_netns(test) || !require_tools("twinsite2", &["python3", "ip"]) {
        return;
    }
    let ns = Netns::new("twinsite2");
    veth(&ns);
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        [
            "--test-routes",
            "--stack",
            "kernel",
            "--bind",
            TWIN,
            "--port",
            "8080",
            "--workers",
            "2",
            "--access-log",
            "off",
        ],
    );
    wait_stderr(
        &mut paf,
        "paf run: 2 worker(s) on kernel sockets on 198.18.2.2",
        1,
    );
    let out = ns.run(
        "python3",
        ["-c", BURST, TWIN, "200", "/bench", "8080"],
        Duration::from_secs(60),
    );
    assert_eq!(out.stdout.trim(), "200", "{out}");
    let status = paf.stop(Duration::from_secs(15));
    let stderr = paf.stderr();
    assert!(status.success(), "paf: {status}\n{stderr}");
    let totals = worker_totals(&stderr);
    assert_eq!(
        totals.iter().map(|t| t.0).collect::<Vec<_>>(),
        [0, 1],
        "{stderr}"
    );
    assert!(
        totals.iter().all(|t| t.1 > 0),
        "a worker accepted nothing:\n{stderr}"
    );
    assert_eq!(totals.iter().map(|t| t.2).sum::<u64>(), 200, "{stderr}");
}

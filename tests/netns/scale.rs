//! Connection churn through a real TAP: 50,000 sequential short connections from the kernel side
//! to the appliance, with zero resets and zero failed connects seen by the kernel, and the
//! stack's socket count back to its baseline afterwards (read from `/metrics`).
//!
//! Needs root (netns + TAP): prints `SKIP` without it; must run in CI (`PAF_REQUIRE_NETNS=1`).

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{require_netns, require_tools, tool, ChildGuard, Netns};

const PAF: &str = env!("CARGO_BIN_EXE_paf");

/// `paf_stack_sockets` from `/metrics`, read after the once-a-second sampler has run with no
/// other connection open (the previous read's connection, if paf closed it first, has left
/// TIME-WAIT by then).
fn stack_sockets(ns: &Netns) -> u64 {
    std::thread::sleep(Duration::from_millis(1500));
    let out = ns.run(
        "curl",
        ["-sS", "--max-time", "5", "http://198.18.0.2/metrics"],
        Duration::from_secs(10),
    );
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("paf_stack_sockets "))
        .unwrap_or_else(|| panic!("no paf_stack_sockets in {}", out.stdout))
        .trim()
        .parse()
        .unwrap()
}

fn nstat(ns: &Netns, counter: &str) -> u64 {
    let out = ns.run("nstat", ["-az", counter], Duration::from_secs(5));
    out.stdout
        .lines()
        .find(|l| l.starts_with(counter))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0, |v| v.parse().unwrap())
}

/// `paf run` (the default config: port 80) in `ns`, once it accepts connections.
fn start_paf(ns: &Netns) -> ChildGuard {
    let mut paf = ns.paf(Path::new(PAF), "run", ["--log", "warn"]);
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(ns.appliance_v4().into(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    paf
}

#[test]
fn fifty_thousand_sequential_connections_without_a_reset() {
    if !require_netns("fifty_thousand_sequential_connections_without_a_reset")
        || !require_tools("churn", &["curl", "python3", "nstat"])
    {
        return;
    }
    // 50,000 connections back to back. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("churn");
    let mut paf = start_paf(&ns);
    let baseline = stack_sockets(&ns);
    let resets_before = nstat(&ns, "TcpEstabResets") + nstat(&ns, "TcpAttemptFails");
    let out = ns.run(
        "python3",
        [
            &tool("conn_churn.py"),
            "198.18.0.2",
            "80",
            "50000",
            "/health",
            "240",
        ],
        Duration::from_secs(300),
    );
    assert!(out.success() && out.stdout.starts_with("ok 50000"), "{out}");
    eprintln!("churn: {}", out.stdout.trim());
    let resets = nstat(&ns, "TcpEstabResets") + nstat(&ns, "TcpAttemptFails") - resets_before;
    assert_eq!(resets, 0, "the kernel saw resets or failed connects");
    // The connections closed last sit in TIME-WAIT for 1 s, and the gauge is sampled once a
    // second: read it until it is back, within a bound far above those two seconds.
    let mut sockets = stack_sockets(&ns);
    for _ in 0..6 {
        if sockets == baseline {
            break;
        }
        sockets = stack_sockets(&ns);
    }
    assert_eq!(sockets, baseline, "sockets back to baseline");
    assert!(paf.is_running(), "{}", paf.stderr());
    assert!(paf.stop(Duration::from_secs(10)).success());
}

/// A client that reuses its port at once: paf closed first, so each new SYN meets paf's previous
/// connection of the same four-tuple in TIME-WAIT (1 s). That connection gives way to the SYN,
/// as on Linux (RFC 6191), so no SYN has to be sent twice.
#[test]
fn a_syn_reusing_a_four_tuple_in_time_wait_is_accepted() {
    if !require_netns("a_syn_reusing_a_four_tuple_in_time_wait_is_accepted")
        || !require_tools("time-wait", &["python3", "nstat"])
    {
        return;
    }
    // No SYN may be sent twice: a SYN-ACK later than 1 s would be. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("timewait");
    let mut paf = start_paf(&ns);
    let retrans_before = nstat(&ns, "TcpExtTCPSynRetrans");
    let out = ns.run(
        "python3",
        [
            &tool("conn_churn.py"),
            "198.18.0.2",
            "80",
            "100",
            "/health",
            "60",
            "40123",
        ],
        Duration::from_secs(90),
    );
    assert!(out.success() && out.stdout.starts_with("ok 100"), "{out}");
    let retrans = nstat(&ns, "TcpExtTCPSynRetrans") - retrans_before;
    assert_eq!(retrans, 0, "SYNs sent twice: {}", out.stdout.trim());
    assert!(paf.stop(Duration::from_secs(10)).success());
}

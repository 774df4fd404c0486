//! The userspace stack on a real TAP in a network namespace, against the kernel as its peer:
//! ping (IPv4 and IPv6), bursts of connections accepted and echoed, DHCP from dnsmasq, pcap
//! capture readable by tcpdump, garbage frames survived, jumbo MTU, and the kernel-socket twin.
//!
//! These need root (netns + TAP): without it they print `SKIP` and return; in CI
//! (`PAF_REQUIRE_NETNS=1`) they must run.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, tool, ChildGuard, Netns};

const PAF: &str = env!("CARGO_BIN_EXE_paf");

fn start_echo(ns: &Netns, args: &[&str]) -> ChildGuard {
    let mut paf = ns.paf(Path::new(PAF), "echo", args);
    let port: u16 = args
        .windows(2)
        .find(|w| w[0] == "--port")
        .map_or(7, |w| w[1].parse().unwrap());
    let addr = SocketAddr::new(ns.appliance_v4().into(), port);
    ns.wait_tcp_from(&mut paf, addr, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("echo server not reachable: {e}"));
    paf
}

fn burst(ns: &Netns, host: &str, port: u16, n: usize, size: usize) {
    let out = ns.run(
        "python3",
        [
            tool("tcp_burst.py").as_str(),
            host,
            &port.to_string(),
            &n.to_string(),
            &size.to_string(),
            "30",
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.success() && out.stdout.contains(&format!("ok {n}")),
        "burst of {n} to {host}:{port}: {out}"
    );
}

fn ping(ns: &Netns, args: &[&str]) {
    let out = ns.run("ping", args, Duration::from_secs(15));
    assert!(out.success(), "ping {args:?}: {out}");
    assert!(
        out.stdout.contains(" 0% packet loss"),
        "ping {args:?}: {out}"
    );
}

#[test]
fn ping_and_200_simultaneous_connections_are_accepted_and_echoed() {
    if !require_netns("ping_and_200_simultaneous_connections_are_accepted_and_echoed")
        || !require_tools("ping_and_200", &["ping", "python3"])
    {
        return;
    }
    // No SYN may be sent twice: a SYN-ACK later than 1 s would be. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("stack");
    // The default backlog (4,096 half-open): 200 SYNs at once are all answered at once, each by
    // a listening socket made for it as it arrives.
    let mut paf = start_echo(&ns, &["--port", "7"]);
    assert!(paf.stderr().contains("offloads on"), "{}", paf.stderr());
    ping(&ns, &["-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"]);
    ping(
        &ns,
        &["-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:198:18::2"],
    );
    burst(&ns, "198.18.0.2", 7, 200, 1024);
    burst(&ns, "fd00:198:18::2", 7, 200, 1024);
    assert_kernel_counters(&ns, &[("TcpEstabResets", 0), ("TcpAttemptFails", 0)]);
    assert_kernel_counters(&ns, &[("TcpExtTCPSynRetrans", 0)]);
    assert!(
        paf.stop(Duration::from_secs(5)).success(),
        "{}",
        paf.stderr()
    );
}

/// A burst larger than the backlog: the SYNs beyond it are dropped unanswered (never reset), the
/// kernel retries them, and every connection succeeds.
#[test]
fn syns_beyond_the_backlog_are_retried_not_reset() {
    if !require_netns("syns_beyond_the_backlog_are_retried_not_reset")
        || !require_tools("syn_backlog", &["python3", "nstat"])
    {
        return;
    }
    let ns = Netns::new("backlog");
    let mut paf = start_echo(&ns, &["--port", "7", "--backlog", "16"]);
    // paf is paused while the 40 SYNs go out, so they all wait in the TAP's queue: a running paf
    // may accept the first connections before the script has sent the last SYN, and then never
    // hold 16 half-open ones. Each SYN-ACK's ACK queues behind the SYNs still unread.
    paf.signal("STOP");
    let opens = kernel_counter(&ns, "TcpActiveOpens");
    let mut client = ns.spawn(
        "python3",
        [
            tool("tcp_burst.py").as_str(),
            "198.18.0.2",
            "7",
            "40",
            "1024",
            "30",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while kernel_counter(&ns, "TcpActiveOpens") < opens + 40 {
        assert!(
            Instant::now() < deadline,
            "the burst sent no 40 SYNs in 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    paf.signal("CONT");
    let status = client.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()) && client.stdout().contains("ok 40"),
        "burst of 40: {status:?} {}{}",
        client.stdout(),
        client.stderr()
    );
    assert_kernel_counters(&ns, &[("TcpEstabResets", 0), ("TcpAttemptFails", 0)]);
    let retries = kernel_counter(&ns, "TcpExtTCPSynRetrans");
    assert!(
        retries > 0,
        "40 SYNs at once against a backlog of 16: no retry?"
    );
    assert!(
        paf.stop(Duration::from_secs(5)).success(),
        "{}",
        paf.stderr()
    );
}

/// A counter of the namespace's kernel stack (`nstat -az NAME`).
fn kernel_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.run("nstat", ["-az", name], Duration::from_secs(5));
    out.stdout
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("nstat has no {name}: {out}"))
}

fn assert_kernel_counters(ns: &Netns, want: &[(&str, u64)]) {
    for &(name, value) in want {
        assert_eq!(kernel_counter(ns, name), value, "kernel counter {name}");
    }
}

#[test]
fn dhcp_from_dnsmasq_configures_address_and_gateway() {
    if !require_netns("dhcp_from_dnsmasq_configures_address_and_gateway") {
        return;
    }
    let ns = Netns::builder("dhcp").with_dnsmasq().up();
    let mut paf = ns.paf(Path::new(PAF), "echo", ["--port", "7", "--dhcp"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        if let Some(l) = paf.stderr().lines().find(|l| l.contains("dhcp: address")) {
            break l.to_string();
        }
        assert!(paf.is_running(), "paf exited: {}", paf.stderr());
        assert!(Instant::now() < deadline, "no DHCP lease: {}", paf.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    // "dhcp: address 198.18.0.N/24, router Some(198.18.0.1), dns [...]"
    let addr = line
        .split("address ")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    assert!(addr.starts_with("198.18.0."), "{line}");
    assert!(line.contains("router Some(198.18.0.1)"), "{line}");
    assert!(line.contains("198.18.0.1"), "dns server from DHCP: {line}");
    let leases = std::fs::read_to_string(ns.dhcp_leases().unwrap()).unwrap();
    assert!(leases.contains(&addr), "lease file {leases:?} lacks {addr}");
    // The kernel learned the appliance's MAC from DHCP and never ARPs, so smoltcp resolves the
    // gateway only when it first replies and drops that first reply (it does not queue packets
    // awaiting ARP): warm up once, then require no loss.
    let _ = ns.run(
        "ping",
        ["-c", "1", "-W", "1", &addr],
        Duration::from_secs(5),
    );
    ping(&ns, &["-c", "3", "-i", "0.2", "-W", "2", &addr]);
    burst(&ns, &addr, 7, 20, 4096);
    assert!(paf.stop(Duration::from_secs(5)).success());
}

#[test]
fn pcap_capture_parses_with_tcpdump() {
    if !require_netns("pcap_capture_parses_with_tcpdump")
        || !require_tools("pcap", &["tcpdump", "python3"])
    {
        return;
    }
    let ns = Netns::new("pcap");
    let pcap = ns.log_dir().join("capture.pcap");
    let mut paf = start_echo(&ns, &["--port", "7", "--pcap", pcap.to_str().unwrap()]);
    ping(&ns, &["-c", "2", "-W", "2", "198.18.0.2"]);
    // Echoes long enough to be sent from the sockets' buffers (`GATHER_FROM`): the capture
    // must still hold each frame whole.
    burst(&ns, "198.18.0.2", 7, 3, 200_000);
    assert!(paf.stop(Duration::from_secs(5)).success());
    let check = ns.run(
        "python3",
        [
            tool("pcap_echo_check.py").as_str(),
            pcap.to_str().unwrap(),
            "198.18.0.2",
            "7",
            "200000",
        ],
        Duration::from_secs(30),
    );
    assert!(check.success() && check.stdout.contains("ok 3"), "{check}");
    let out = ns.run(
        "tcpdump",
        ["-nn", "-r", pcap.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(out.success(), "tcpdump -r: {out}");
    let text = out.stdout;
    assert!(text.contains("ICMP echo request"), "{text}");
    assert!(text.contains("ICMP echo reply"), "{text}");
    assert!(
        text.contains("198.18.0.2.7: Flags [S]"),
        "SYN to the appliance: {text}"
    );
    assert!(
        text.contains("198.18.0.2.7 > 198.18.0.1"),
        "replies from the appliance: {text}"
    );
}

#[test]
fn garbage_frames_do_not_stop_the_stack() {
    if !require_netns("garbage_frames_do_not_stop_the_stack") {
        return;
    }
    let ns = Netns::new("garbage");
    let mut paf = start_echo(&ns, &["--port", "7"]);
    let out = ns.run(
        "python3",
        [
            tool("garbage_frames.py").as_str(),
            "paf0",
            "02:00:c6:12:00:02",
            "2000",
        ],
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    let sent: u32 = out
        .stdout
        .trim()
        .trim_start_matches("sent ")
        .parse()
        .unwrap();
    assert!(sent >= 2000, "{out}");
    assert!(paf.is_running(), "paf died on garbage: {}", paf.stderr());
    assert!(!paf.stderr().contains("panicked"), "{}", paf.stderr());
    ping(&ns, &["-c", "2", "-W", "2", "198.18.0.2"]);
    burst(&ns, "198.18.0.2", 7, 20, 2048);
    assert!(paf.stop(Duration::from_secs(5)).success());
}

#[test]
fn jumbo_mtu_carries_large_segments() {
    if !require_netns("jumbo_mtu_carries_large_segments") {
        return;
    }
    let ns = Netns::builder("jumbo").with_mtu(9000).up();
    let mut paf = start_echo(&ns, &["--port", "7", "--tcp-buffer", "262144"]);
    ping(
        &ns,
        &["-c", "2", "-W", "2", "-s", "8900", "-M", "do", "198.18.0.2"],
    );
    burst(&ns, "198.18.0.2", 7, 4, 4 << 20);
    assert!(paf.stop(Duration::from_secs(5)).success());
}

#[test]
fn kernel_twin_echoes_the_same_way() {
    if !require_netns("kernel_twin_echoes_the_same_way") {
        return;
    }
    let ns = Netns::new("kernel");
    let mut paf = ns.paf(
        Path::new(PAF),
        "echo",
        ["--stack", "kernel", "--bind", "::", "--port", "7007"],
    );
    let addr = SocketAddr::new(ns.kernel_v4().into(), 7007);
    ns.wait_tcp_from(&mut paf, addr, Duration::from_secs(15))
        .unwrap();
    burst(&ns, "198.18.0.1", 7007, 200, 1024);
    burst(&ns, "fd00:198:18::1", 7007, 50, 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
}

/// Every TCP segment in `pcap`, both ways, carried data of at most one MTU (and some did).
fn assert_mtu_sized_both_ways(ns: &Netns, pcap: &Path) {
    let (to_paf, from_paf) = largest_segments(ns, pcap, "198.18.0.2");
    assert!(to_paf <= 1460 && to_paf > 0, "largest segment in: {to_paf}");
    assert!(
        from_paf <= 1460 && from_paf > 0,
        "largest segment out: {from_paf}"
    );
}

#[test]
fn plain_frames_without_offloads_work_the_same() {
    if !require_netns("plain_frames_without_offloads_work_the_same") {
        return;
    }
    let ns = Netns::new("nooffload");
    let pcap = ns.log_dir().join("plain.pcap");
    let mut paf = start_echo(
        &ns,
        &[
            "--port",
            "7",
            "--no-offload",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    assert!(paf.stderr().contains("offloads off"), "{}", paf.stderr());
    ping(&ns, &["-c", "2", "-W", "2", "198.18.0.2"]);
    // Large transfers: without offloads every segment is one MTU-sized frame, both ways.
    burst(&ns, "198.18.0.2", 7, 20, 256 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
    assert_mtu_sized_both_ways(&ns, &pcap);
}

/// `--no-tso`: the virtio-net header carries checksum work only. Every segment is one MTU-sized
/// frame both ways (what the lossy benchmark rows need, like `ethtool -K tso off gso off gro
/// off` on a veth), while neither side computes TCP checksums in software: the kernel completes
/// paf's (no checksum errors counted) and hands over partial ones that paf completes (the echo
/// is byte-exact). It follows a run with full offloads on the same persistent TAP, whose
/// segmentation offloads it must turn off.
#[test]
fn checksum_offload_only_keeps_frames_mtu_sized_both_ways() {
    if !require_netns("checksum_offload_only_keeps_frames_mtu_sized_both_ways")
        || !require_tools("no-tso", &["python3", "nstat"])
    {
        return;
    }
    let ns = Netns::new("notso");
    let mut paf = start_echo(&ns, &["--port", "7"]);
    assert!(paf.stderr().contains("offloads on"), "{}", paf.stderr());
    burst(&ns, "198.18.0.2", 7, 2, 1024 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
    let pcap = ns.log_dir().join("notso.pcap");
    let mut paf = start_echo(
        &ns,
        &["--port", "7", "--no-tso", "--pcap", pcap.to_str().unwrap()],
    );
    assert!(
        paf.stderr().contains("offloads checksums only"),
        "{}",
        paf.stderr()
    );
    burst(&ns, "198.18.0.2", 7, 20, 256 * 1024);
    burst(&ns, "fd00:198:18::2", 7, 5, 256 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
    assert_kernel_counters(&ns, &[("TcpInCsumErrors", 0), ("TcpEstabResets", 0)]);
    assert_mtu_sized_both_ways(&ns, &pcap);
}

/// A persistent TAP keeps the offloads an earlier run asked for; a `--no-offload` run on the
/// same TAP must turn them off, or the kernel goes on handing it super-segments and partial
/// checksums it cannot read, and nothing is ever answered.
#[test]
fn no_offload_after_an_offloading_run_on_the_same_tap() {
    if !require_netns("no_offload_after_an_offloading_run_on_the_same_tap") {
        return;
    }
    let ns = Netns::new("reoffload");
    let mut paf = start_echo(&ns, &["--port", "7"]);
    assert!(paf.stderr().contains("offloads on"), "{}", paf.stderr());
    burst(&ns, "198.18.0.2", 7, 2, 1024 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
    let mut paf = start_echo(&ns, &["--port", "7", "--no-offload"]);
    assert!(paf.stderr().contains("offloads off"), "{}", paf.stderr());
    burst(&ns, "198.18.0.2", 7, 2, 1024 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
}

/// With offloads on (the default) the kernel hands uploads over as TCP super-segments, larger
/// than the MTU, with partial checksums that the device completes before smoltcp verifies them;
/// and paf sends super-segments the kernel cuts up. The echo must still be byte-exact.
#[test]
fn offloads_carry_super_segments_both_ways() {
    if !require_netns("offloads_carry_super_segments_both_ways")
        || !require_tools("offloads", &["tcpdump", "python3"])
    {
        return;
    }
    let ns = Netns::new("offload");
    let pcap = ns.log_dir().join("offload.pcap");
    let mut paf = start_echo(&ns, &["--port", "7", "--pcap", pcap.to_str().unwrap()]);
    assert!(paf.stderr().contains("offloads on"), "{}", paf.stderr());
    // paf raised the kernel's queue towards it from 1,000 frames (a drop there costs a client
    // a retransmission timeout).
    let link = ns.run("ip", ["-o", "link", "show", "paf0"], Duration::from_secs(5));
    assert!(link.stdout.contains("qlen 10000"), "{link}");
    burst(&ns, "198.18.0.2", 7, 4, 4 * 1024 * 1024);
    // IPv6 too: smoltcp dropped every IPv6 segment it built larger than the MTU (patch 23),
    // so an echo of 4 MiB over IPv6 crawled through retransmissions of MTU-sized segments.
    burst(&ns, "fd00:198:18::2", 7, 2, 4 * 1024 * 1024);
    assert!(paf.stop(Duration::from_secs(5)).success());
    for addr in ["198.18.0.2", "fd00:198:18::2"] {
        let (to_paf, from_paf) = largest_segments(&ns, &pcap, addr);
        assert!(
            to_paf > 1460,
            "{addr}: no super-segment received: largest {to_paf}"
        );
        assert!(
            from_paf > 1460,
            "{addr}: no super-segment sent: largest {from_paf}"
        );
    }
}

/// The largest TCP payload in the capture towards the appliance at `addr` and from it.
fn largest_segments(ns: &Netns, pcap: &Path, addr: &str) -> (usize, usize) {
    let out = ns.run(
        "tcpdump",
        ["-nn", "-r", pcap.to_str().unwrap(), "tcp"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "tcpdump -r: {out}");
    let (mut to_paf, mut from_paf) = (0, 0);
    for line in out.stdout.lines() {
        let Some(len) = line
            .rsplit_once(", length ")
            .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        else {
            continue;
        };
        if line.contains(&format!(" > {addr}.")) {
            to_paf = to_paf.max(len);
        } else if line.contains(&format!(" {addr}.")) {
            from_paf = from_paf.max(len);
        }
    }
    (to_paf, from_paf)
}

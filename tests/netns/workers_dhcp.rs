//! `paf run` with several workers (2 and 4) and `dhcp = true` on a multi-queue TAP, against
//! dnsmasq: one lease for the interface (worker 0's client; DHCP replies that land on another
//! worker's queue are handed to it), applied to every worker's stack. On the leased address:
//! 200 simultaneous connections answered, ping answered, a proxy route whose upstream is named
//! `upstream.test` (resolved with the DNS server the lease gave, by every worker) served
//! before and after its pooled connections sat idle past the tun driver's 3 s flow record,
//! and `/metrics` shows the hand-overs between the workers' stacks once, consistent with what
//! was sent. Then a proxy route to a port the kernel side rejects with ICMP port unreachable
//! (nft): those errors land on one queue (their flow hash has no ports), and the ones quoting
//! another worker's connection attempt are handed to it.
//!
//! Needs root (netns + TAP) and dnsmasq: prints `SKIP` without them; must run in CI
//! (`PAF_REQUIRE_NETNS=1`).

use crate::common;
use crate::workers::{all_ok, metric};

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, ChildGuard, Netns, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");

/// The appliance's MAC (the default `[interface] mac`), as dnsmasq writes it.
const MAC: &str = "02:00:c6:12:00:02";

/// Connections opened at once, then each sends a request and reads the answer; prints the
/// number answered `200`.
const BURST: &str = r#"
import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET)
    s.setblocking(False)
    s.connect_ex((host, 80))
    socks.append(s)
ok = 0
for s in socks:
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
    s.close()
print(ok)
"#;

fn config(workers: usize) -> String {
    format!(
        r#"[interface]
dhcp = true
ipv6 = "fd00:198:18::2/64"
gateway6 = "fd00:198:18::1"
workers = {workers}

[[listener]]
name = "web"
port = 80
access_log = false

[[listener.route]]
path = "/health"
exact = true
action = "health"

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/up/"
action = "proxy"
upstream = "named"

[[listener.route]]
path = "/rejected/"
action = "proxy"
upstream = "rejected"

[[upstream]]
name = "named"
urls = ["http://upstream.test:8089"]
pool_size = 16

[[upstream]]
name = "rejected"
urls = ["http://198.18.0.1:8099"]
connect_timeout = "1s"
"#
    )
}

/// Waits for worker 0's "dhcp: address A/P, ..." line; returns A.
fn leased_address(paf: &mut ChildGuard) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = paf.stderr().lines().find(|l| l.contains("dhcp: address")) {
            let addr = l
                .split("address ")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            assert!(addr.starts_with("198.18.0."), "{l}");
            assert!(l.contains("router Some(198.18.0.1)"), "{l}");
            return addr.to_string();
        }
        assert!(paf.is_running(), "paf exited: {}", paf.stderr());
        assert!(Instant::now() < deadline, "no DHCP lease: {}", paf.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dhcp_workers(n: usize) {
    let ns = Netns::builder(&format!("wdhcp{n}")).with_dnsmasq().up();
    let scratch = Scratch::new(&format!("wdhcp{n}"));
    std::fs::create_dir_all(scratch.path("up")).unwrap();
    scratch.write("up/index.html", "upstream\n");
    let _upstream = ns.spawn(
        "python3",
        [
            "-m",
            "http.server",
            "8089",
            "--bind",
            "198.18.0.1",
            "--directory",
            &scratch.s(""),
        ],
    );
    ns.wait_tcp(
        SocketAddr::new(ns.kernel_v4().into(), 8089),
        Duration::from_secs(10),
    )
    .unwrap();
    let file = scratch.write(&format!("w{n}.toml"), config(n));
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", &file]);
    let addr = leased_address(&mut paf);
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(addr.parse().unwrap(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    let stderr = paf.stderr();
    assert_eq!(
        stderr.matches("dhcp: address").count(),
        1,
        "worker 0 alone takes the lease:\n{stderr}"
    );

    // One lease for the interface, one client: one line in the lease file, one DHCPACK.
    let leases = std::fs::read_to_string(ns.dhcp_leases().unwrap()).unwrap();
    let lines: Vec<&str> = leases.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "lease file: {leases:?}");
    assert!(
        lines[0].contains(MAC) && lines[0].contains(&addr),
        "lease file: {leases:?}"
    );
    let log = std::fs::read_to_string(ns.dnsmasq_log().unwrap()).unwrap();
    let acks: Vec<&str> = log.lines().filter(|l| l.contains("DHCPACK(")).collect();
    assert_eq!(acks.len(), 1, "one DHCPACK: {acks:?}");
    assert!(acks[0].contains(&addr) && acks[0].contains(MAC), "{acks:?}");

    // The kernel learned our MAC from the DHCP exchange; each worker learns the gateway's when
    // it first answers (smoltcp drops that first reply): warm up, then require no loss.
    let _ = ns.run(
        "ping",
        ["-c", "4", "-i", "0.2", "-W", "1", &addr],
        Duration::from_secs(10),
    );
    let out = ns.run(
        "python3",
        ["-c", BURST, &addr, "200"],
        Duration::from_secs(60),
    );
    assert_eq!(out.stdout.trim(), "200", "burst on {addr}: {out}");
    let stderr = paf.stderr();
    assert!(
        stderr.contains(&format!("paf run: {n} worker(s)")),
        "{stderr}"
    );
    let out = ns.run(
        "ping",
        ["-c", "5", "-i", "0.2", "-W", "2", &addr],
        Duration::from_secs(15),
    );
    assert!(out.success(), "ping {addr}: {out}");
    assert!(out.stdout.contains(" 0% packet loss"), "ping {addr}: {out}");
    // Idle pooled upstream connections past 3 s: their segments follow the hash, and the mesh
    // hands them to the worker whose port they are for.
    all_ok(&ns, &format!("http://{addr}/up/"), 40);
    std::thread::sleep(Duration::from_secs(4));
    all_ok(&ns, &format!("http://{addr}/up/"), 40);

    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", &format!("http://{addr}/metrics")],
        Duration::from_secs(15),
    );
    assert!(out.success(), "{out}");
    let text = &out.stdout;
    let health = metric(
        text,
        r#"paf_requests_total{listener="web",route="0",class="2xx"}"#,
    );
    let proxied = metric(
        text,
        r#"paf_requests_total{listener="web",route="2",class="2xx"}"#,
    );
    assert_eq!((health, proxied), (200, 80), "{text}");
    let per_worker: Vec<u64> = (0..n)
        .map(|k| metric(text, &format!("paf_worker_responses{{worker=\"{k}\"}}")))
        .collect();
    assert_eq!(per_worker.iter().sum::<u64>(), 200 + 80, "{text}");
    assert!(
        per_worker.iter().all(|&r| r > 0),
        "every worker served on the leased address: {per_worker:?}"
    );
    assert!(
        !text.contains(r#"kind="dns"}"#),
        "every worker resolved upstream.test with the DNS server of the lease:\n{text}"
    );

    // Hand-overs: one set of families for the process, each series once.
    for family in [
        "paf_worker_handovers_total",
        "paf_worker_handover_drops_total",
        "paf_worker_handover_malformed_total",
    ] {
        let head = format!("# TYPE {family} counter");
        assert_eq!(text.matches(&head).count(), 1, "{family}:\n{text}");
    }
    let handed = |kind: &str| {
        metric(
            text,
            &format!("paf_worker_handovers_total{{kind=\"{kind}\"}}"),
        )
    };
    let (neighbour, tcp, icmp, dhcp) = (
        handed("neighbour"),
        handed("tcp"),
        handed("icmp"),
        handed("dhcp"),
    );
    eprintln!(
        "workers {n}: handed over neighbour {neighbour}, tcp {tcp}, icmp {icmp}, dhcp {dhcp}"
    );
    for kind in ["neighbour", "tcp", "icmp", "dhcp"] {
        let series = format!("paf_worker_handovers_total{{kind=\"{kind}\"}} ");
        assert_eq!(text.matches(&series).count(), 1, "{series}:\n{text}");
    }
    assert_eq!(metric(text, "paf_worker_handover_drops_total"), 0, "{text}");
    assert_eq!(
        metric(text, "paf_worker_handover_malformed_total"),
        0,
        "{text}"
    );
    // Every neighbour frame goes to each of the n - 1 others (the ARP exchanges with the
    // gateway made some); at most 2 DHCP replies (offer, ack) with a one-hour lease; no error
    // was sent to us.
    assert!(neighbour > 0, "{text}");
    assert_eq!(neighbour % (n as u64 - 1), 0, "{text}");
    assert!(dhcp <= 2, "{text}");
    assert_eq!(icmp, 0, "{text}");

    // Connection attempts to a rejected port: each worker that takes a request sends SYNs
    // from its share of the ports, the kernel answers each with an ICMP error, which lands on
    // one queue. (smoltcp ignores the error: the attempt ends at connect_timeout, 502.)
    for cmd in [
        "add table ip paf_reject",
        "add chain ip paf_reject in { type filter hook input priority 0 ; }",
        "add rule ip paf_reject in tcp dport 8099 reject with icmp type port-unreachable",
    ] {
        let out = ns.run("nft", cmd.split(' '), Duration::from_secs(10));
        assert!(out.success(), "nft {cmd}: {out}");
    }
    let url = format!("http://{addr}/rejected/");
    for i in 0..12 {
        let out = ns.run(
            "curl",
            [
                "-sS",
                "-m",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
            Duration::from_secs(15),
        );
        assert_eq!(out.stdout.trim(), "502", "rejected request {i}: {out}");
    }
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", &format!("http://{addr}/metrics")],
        Duration::from_secs(15),
    );
    let text = &out.stdout;
    let icmp = metric(text, r#"paf_worker_handovers_total{kind="icmp"}"#);
    eprintln!("workers {n}: ICMP errors handed over {icmp}");
    assert!(icmp > 0, "no ICMP error handed over:\n{text}");
    assert_eq!(
        metric(text, "paf_worker_handover_malformed_total"),
        0,
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            r#"paf_requests_total{listener="web",route="3",class="5xx"}"#
        ),
        12,
        "{text}"
    );

    assert!(paf.is_running(), "{}", paf.stderr());
    assert!(
        paf.stop(Duration::from_secs(15)).success(),
        "{}",
        paf.stderr()
    );
    let stderr = paf.stderr();
    assert_eq!(
        stderr.matches("service on port 80: stopped").count(),
        n,
        "every worker drains and stops:\n{stderr}"
    );
}

#[test]
fn two_workers_share_one_dhcp_lease() {
    if !require_netns("two_workers_share_one_dhcp_lease")
        || !require_tools("wdhcp2", &["curl", "python3", "ping", "dnsmasq", "nft"])
    {
        return;
    }
    dhcp_workers(2);
}

#[test]
fn four_workers_share_one_dhcp_lease() {
    if !require_netns("four_workers_share_one_dhcp_lease")
        || !require_tools("wdhcp4", &["curl", "python3", "ping", "dnsmasq", "nft"])
    {
        return;
    }
    dhcp_workers(4);
}

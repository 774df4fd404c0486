//! `paf run` with several workers on a multi-queue TAP (2 and 4, more than this machine's
//! cores included): 200 simultaneous connects all answered, proxied requests whose upstream
//! connections are opened by every worker (again after their pooled connections sat idle past
//! the tun driver's 3 s flow record, so that their segments may land on another worker's
//! queue and must be handed over), ping over IPv4 and IPv6, `/metrics` adding up to what was
//! sent, and a stop that drains every worker. A single-queue TAP takes one worker and refuses
//! more with the fix in the message. The built-in site (`--test-routes`) on 2 workers: a burst,
//! wrk, an access log that both workers append to, per-thread CPU showing both at work, and
//! downloads in flight at the stop completed by the drain. Per-client limits with 2 workers
//! count a client once: 40 connections at once from as many source ports get exactly
//! `max_connections_per_ip` served (again while those are held through a reload of every
//! worker: none), and 20 requests on 20 connections get exactly `rate`'s count.
//!
//! Needs root (netns + TAP): prints `SKIP` without it; must run in CI (`PAF_REQUIRE_NETNS=1`).

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{require_netns, require_tools, tool, ChildGuard, Netns, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");

/// 200 connections opened at once, then each sends a request and reads the answer; prints the
/// number answered `200`. Arguments: host, connections, and optionally the path (`/health`) and
/// the port (80). `workers_kernel.rs` uses it too.
pub(crate) const BURST: &str = r#"
import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/health"
port = int(sys.argv[4]) if len(sys.argv) > 4 else 80
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.setblocking(False)
    s.connect_ex((host, port))
    socks.append(s)
ok = 0
for s in socks:
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n")
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
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
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
upstream = "kernel"

[[upstream]]
name = "kernel"
urls = ["http://198.18.0.1:8089"]
pool_size = 16
"#
    )
}

fn start(ns: &Netns, scratch: &Scratch, workers: usize) -> ChildGuard {
    let file = scratch.write(&format!("w{workers}.toml"), config(workers));
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", &file]);
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(ns.appliance_v4().into(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    paf
}

pub(crate) fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// `count` GETs of `url`, one curl each, all `200`.
pub(crate) fn all_ok(ns: &Netns, url: &str, count: usize) {
    for i in 0..count {
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
                url,
            ],
            Duration::from_secs(15),
        );
        assert_eq!(out.stdout.trim(), "200", "request {i} of {url}: {out}");
    }
}

fn serve_workers(n: usize) {
    let ns = Netns::new(&format!("workers{n}"));
    let scratch = Scratch::new(&format!("workers{n}"));
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
    let mut paf = start(&ns, &scratch, n);
    for host in ["198.18.0.2", "fd00:198:18::2"] {
        let out = ns.run(
            "python3",
            ["-c", BURST, host, "200"],
            Duration::from_secs(60),
        );
        assert_eq!(out.stdout.trim(), "200", "{host}: {out}");
        let ping = if host.contains(':') { "-6" } else { "-4" };
        let out = ns.run(
            "ping",
            [ping, "-c", "3", "-i", "0.2", "-W", "2", host],
            Duration::from_secs(10),
        );
        assert!(out.success(), "ping {host}: {out}");
    }
    // The pool keeps upstream connections; after 4 s idle the tun driver has forgotten which
    // queue sent them, and the upstream's segments follow the hash: the mesh hands them over.
    all_ok(&ns, "http://198.18.0.2/up/", 40);
    std::thread::sleep(Duration::from_secs(4));
    all_ok(&ns, "http://198.18.0.2/up/", 40);
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", "http://198.18.0.2/metrics"],
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
    assert_eq!((health, proxied), (400, 80), "{text}");
    let per_worker: u64 = (0..n)
        .map(|k| metric(text, &format!("paf_worker_responses{{worker=\"{k}\"}}")))
        .sum();
    assert_eq!(per_worker, 400 + 80, "{text}");
    for k in 0..n {
        let own = metric(text, &format!("paf_worker_responses{{worker=\"{k}\"}}"));
        assert!(own > 0, "worker {k} served nothing:\n{text}");
    }
    assert_eq!(metric(text, "paf_config_generation"), 1, "{text}");
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
fn two_workers_serve_proxy_ping_count_and_drain() {
    if !require_netns("two_workers_serve_proxy_ping_count_and_drain")
        || !require_tools("workers2", &["curl", "python3", "ping"])
    {
        return;
    }
    serve_workers(2);
}

#[test]
fn four_workers_serve_proxy_ping_count_and_drain() {
    if !require_netns("four_workers_serve_proxy_ping_count_and_drain")
        || !require_tools("workers4", &["curl", "python3", "ping"])
    {
        return;
    }
    serve_workers(4);
}

#[test]
fn a_single_queue_tap_takes_one_worker_and_refuses_more_naming_the_fix() {
    if !require_netns("a_single_queue_tap_takes_one_worker_and_refuses_more_naming_the_fix")
        || !require_tools("single-queue", &["curl"])
    {
        return;
    }
    let ns = Netns::builder("singleq").single_queue().up();
    for site in [&[][..], &["--test-routes"][..]] {
        let mut paf = ns.paf(Path::new(PAF), "run", ["--workers", "2"].iter().chain(site));
        let status = paf.wait_timeout(Duration::from_secs(20)).expect("exits");
        assert_eq!(status.code(), Some(1), "{site:?}: {}", paf.stderr());
        let stderr = paf.stderr();
        assert!(
            stderr.contains("single-queue") && stderr.contains("multi_queue"),
            "{site:?}: {stderr}"
        );
    }
    let mut paf = ns.paf(Path::new(PAF), "run", ["--workers", "1"]);
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(ns.appliance_v4().into(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", "http://198.18.0.2/health"],
        Duration::from_secs(15),
    );
    assert!(out.success(), "{out}");
    assert!(paf.stop(Duration::from_secs(10)).success());
}

fn nstat(ns: &Netns, counter: &str) -> u64 {
    let out = ns.run("nstat", ["-az", counter], Duration::from_secs(5));
    out.stdout
        .lines()
        .find(|l| l.starts_with(counter))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn four_workers_take_fifty_thousand_sequential_connections_without_a_reset() {
    if !require_netns("four_workers_take_fifty_thousand_sequential_connections_without_a_reset")
        || !require_tools("churn4", &["python3", "nstat"])
    {
        return;
    }
    // 50,000 connections back to back. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("churn4");
    let scratch = Scratch::new("churn4");
    let mut paf = start(&ns, &scratch, 4);
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
    let resets = nstat(&ns, "TcpEstabResets") + nstat(&ns, "TcpAttemptFails") - resets_before;
    assert_eq!(resets, 0, "the kernel saw resets or failed connects");
    assert!(paf.is_running(), "{}", paf.stderr());
    assert!(paf.stop(Duration::from_secs(10)).success());
}

/// CPU time (user + system, clock ticks) of each thread of `pid` named `paf-worker-K`, by K.
fn worker_cpu_ticks(pid: u32) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid … utime stime: fields 14 and 15, 12 and 13 after the ")".
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Some(k) = stat[open + 1..close].strip_prefix("paf-worker-") else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        out.push((k.parse().unwrap(), ticks));
    }
    out.sort_unstable();
    out
}

/// `worker K: stopped after A connections, R requests` lines of `paf run`'s stderr, by K.
pub(crate) fn worker_totals(stderr: &str) -> Vec<(usize, u64, u64)> {
    let mut out: Vec<(usize, u64, u64)> = stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("worker ")? + "worker ".len()..];
            let (k, rest) = rest.split_once(": stopped after ")?;
            let (a, rest) = rest.split_once(" connections, ")?;
            let r = rest.strip_suffix(" requests")?;
            Some((k.parse().ok()?, a.parse().ok()?, r.parse().ok()?))
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn test_routes_on_two_workers_serve_a_burst_and_wrk_then_drain_both() {
    let test = "test_routes_on_two_workers_serve_a_burst_and_wrk_then_drain_both";
    if !require_netns(test) || !require_tools("site2", &["curl", "python3", "wrk"]) {
        return;
    }
    // wrk on both cores for 2 s. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("site2");
    let scratch = Scratch::new("site2");
    let log = scratch.s("access.log");
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        [
            "--test-routes",
            "--workers",
            "2",
            "--access-log",
            &log,
            "--max-body",
            "100000000",
        ],
    );
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(ns.appliance_v4().into(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(
        paf.stderr().contains("paf run: 2 worker(s) on TAP paf0"),
        "{}",
        paf.stderr()
    );
    let mut sent = 0;
    for host in ["198.18.0.2", "fd00:198:18::2"] {
        let out = ns.run(
            "python3",
            ["-c", BURST, host, "200", "/bench"],
            Duration::from_secs(60),
        );
        assert_eq!(out.stdout.trim(), "200", "{host}: {out}");
        sent += 200;
    }
    let out = ns.run(
        "wrk",
        ["-t", "2", "-c", "32", "-d", "2s", "http://198.18.0.2/bench"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    assert!(!out.stdout.contains("Socket errors"), "{out}");
    assert!(!out.stdout.contains("Non-2xx"), "{out}");
    let wrk_requests: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.split_once(" requests in ")?.0.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count from wrk: {out}"));
    assert!(wrk_requests > 100, "{out}");
    let cpu = worker_cpu_ticks(paf.id());
    eprintln!("CPU ticks by worker: {cpu:?}");
    assert_eq!(
        cpu.iter().map(|c| c.0).collect::<Vec<_>>(),
        [0, 1],
        "{cpu:?}"
    );
    assert!(cpu.iter().all(|c| c.1 > 0), "a worker used no CPU: {cpu:?}");
    // Downloads in flight at the stop: the drain completes every one, whichever worker has it.
    let downloads: Vec<ChildGuard> = (0..4)
        .map(|_| {
            ns.spawn(
                "curl",
                [
                    "-sS",
                    "--limit-rate",
                    "4M",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download}",
                    "http://198.18.0.2/blob?size=20000000",
                ],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let status = paf.stop(Duration::from_secs(40));
    for mut d in downloads {
        assert!(
            d.wait_timeout(Duration::from_secs(30))
                .is_some_and(|s| s.success()),
            "{}",
            d.stderr()
        );
        assert_eq!(d.stdout().trim(), "200 20000000", "{}", d.stderr());
    }
    let stderr = paf.stderr();
    assert!(status.success(), "paf: {status}\n{stderr}");
    assert_eq!(
        stderr.matches("service on port 80: stopped").count(),
        2,
        "every worker drains and stops:\n{stderr}"
    );
    let totals = worker_totals(&stderr);
    eprintln!("(worker, connections, requests): {totals:?}; wrk: {wrk_requests}");
    assert_eq!(
        totals.iter().map(|t| t.0).collect::<Vec<_>>(),
        [0, 1],
        "{stderr}"
    );
    for (k, accepted, requests) in &totals {
        assert!(
            *accepted > 0 && *requests > 0,
            "worker {k} served nothing:\n{stderr}"
        );
    }
    // 400 burst connections, wrk's 32 and the 4 downloads; wrk's count misses requests it
    // sent but had no answer to when its time was up.
    let accepted: u64 = totals.iter().map(|t| t.1).sum();
    let requests: u64 = totals.iter().map(|t| t.2).sum();
    assert!(
        accepted >= sent + 32 + 4,
        "{accepted} connections:\n{stderr}"
    );
    assert!(
        requests >= sent + wrk_requests + 4,
        "{requests} requests:\n{stderr}"
    );
    // Both workers append to the one access log: a line per request.
    let lines = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert_eq!(lines, requests, "access log lines");
}

/// Two listeners with per-client limits: a connection cap on port 80, a rate on port 81.
fn limits_config() -> String {
    r#"[interface]
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
ipv6 = "fd00:198:18::2/64"
gateway6 = "fd00:198:18::1"
workers = 2

[defaults]
access_log = false

[[listener]]
name = "capped"
port = 80
limits = { max_connections_per_ip = 4 }

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/hello"
action = "static"
body = "hello\n"

[[listener]]
name = "rated"
port = 81
limits = { rate = "5/h" }

[[listener.route]]
path = "/hello"
action = "static"
body = "hello\n"
"#
    .to_owned()
}

/// Each worker's `gauge`.
fn worker_gauge(ns: &Netns, gauge: &str, n: usize) -> Vec<u64> {
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", "http://198.18.0.2/metrics"],
        Duration::from_secs(15),
    );
    assert!(out.success(), "{out}");
    (0..n)
        .map(|k| metric(&out.stdout, &format!("{gauge}{{worker=\"{k}\"}}")))
        .collect()
}

/// `conn_cap.py`'s `key=value` field.
fn field(out: &str, key: &str) -> u64 {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
}

#[test]
fn two_workers_count_per_client_limits_once_across_a_reload() {
    if !require_netns("two_workers_count_per_client_limits_once_across_a_reload")
        || !require_tools("workerlimits", &["curl", "python3"])
    {
        return;
    }
    let ns = Netns::new("wlimits");
    let scratch = Scratch::new("wlimits");
    let file = scratch.write("limits.toml", limits_config());
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", &file]);
    ns.wait_tcp_from(
        &mut paf,
        SocketAddr::new(ns.appliance_v4().into(), 80),
        Duration::from_secs(20),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    while !paf.stderr().contains("2 worker(s)") {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", paf.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !paf.stderr().contains("times its limits"),
        "{}",
        paf.stderr()
    );
    let cap = tool("conn_cap.py");
    // 40 connections at once from many source ports, over both workers' queues: exactly 4
    // served, the rest reset at accept; again for the /64 of IPv6 (another client).
    for host in ["198.18.0.2", "fd00:198:18::2"] {
        for round in 0..2 {
            let out = ns.run(
                "python3",
                [cap.as_str(), host, "80", "40"],
                Duration::from_secs(60),
            );
            assert!(out.success(), "{out}");
            assert_eq!(field(&out.stdout, "held"), 4, "{host} round {round}: {out}");
        }
    }
    // Four held through a reload of every worker: the table stays, so 40 more get none.
    let go = scratch.path("go");
    let mut holder = ns.spawn(
        "python3",
        [cap.as_str(), "198.18.0.2", "80", "40", go.to_str().unwrap()],
    );
    let t0 = std::time::Instant::now();
    while !holder.stdout().contains("held=") {
        assert!(holder.is_running(), "{}", holder.stderr());
        assert!(t0.elapsed() < Duration::from_secs(60), "no held= line");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(field(&holder.stdout(), "held"), 4, "{}", holder.stdout());
    paf.signal("HUP");
    while paf
        .stderr()
        .matches("configuration generation 2 applied")
        .count()
        < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "{}", paf.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&go, "").unwrap();
    let status = holder.wait_timeout(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{}", holder.stderr());
    assert_eq!(field(&holder.stdout(), "more"), 0, "{}", holder.stdout());
    // The rate: 5 an hour, 20 connections at once with a request each: 5 served, not 10.
    // Held open until both workers are seen to have some of them.
    let go = scratch.path("go-rate");
    let mut rated = ns.spawn(
        "python3",
        [
            cap.as_str(),
            "198.18.0.2",
            "81",
            "20",
            go.to_str().unwrap(),
            "0",
        ],
    );
    let t0 = std::time::Instant::now();
    while !rated.stdout().contains("held=") {
        assert!(rated.is_running(), "{}", rated.stderr());
        assert!(t0.elapsed() < Duration::from_secs(60), "no held= line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = rated.stdout();
    assert_eq!(
        (field(&line, "held"), field(&line, "limited")),
        (5, 15),
        "{line}"
    );
    let open = worker_gauge(&ns, "paf_worker_connections_open", 2);
    // (The /metrics connection is open on one of them.)
    assert!(
        open.iter().all(|&n| n >= 2),
        "a worker has none of the 20: {open:?}"
    );
    std::fs::write(&go, "").unwrap();
    let status = rated.wait_timeout(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{}", rated.stderr());
    let out = ns.run(
        "curl",
        ["-sS", "-m", "10", "http://198.18.0.2/metrics"],
        Duration::from_secs(15),
    );
    let text = &out.stdout;
    assert_eq!(
        metric(
            text,
            r#"paf_limited_total{listener="capped",kind="connections"}"#
        ),
        36 * 4 + 40 + 36,
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            r#"paf_limited_total{listener="rated",kind="requests"}"#
        ),
        15,
        "{text}"
    );
    assert!(paf.is_running(), "{}", paf.stderr());
    assert!(
        paf.stop(Duration::from_secs(15)).success(),
        "{}",
        paf.stderr()
    );
}

//! Tests of the end-to-end harness itself (`tests/netns/common`, `scripts/netns`). They need no
//! paf binary: only root, `/dev/net/tun`, iproute2, and dig/python3 for a few of them. Without
//! those they print SKIP (or fail under `PAF_REQUIRE_NETNS=1`, as in CI).

use crate::common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{Netns, APPLIANCE_V4, APPLIANCE_V6, KERNEL_V4, KERNEL_V6, TAP};

const T: Duration = Duration::from_secs(10);

fn netns_list() -> Vec<String> {
    let out = common::run_timeout(Command::new("ip").args(["netns", "list"]), T);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn process_alive(pid: u32) -> bool {
    // A zombie is as good as dead: it holds no sockets and no namespace.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn namespace_has_tap_with_kernel_addresses() {
    if !common::require_netns("namespace_has_tap_with_kernel_addresses") {
        return;
    }
    let ns = Netns::new("addr");
    assert!(netns_list().contains(&ns.name().to_owned()));

    let out = ns.run("ip", ["-br", "addr", "show", "dev", TAP], T);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(&format!("{KERNEL_V4}/24")), "{out}");
    assert!(out.stdout.contains(&format!("{KERNEL_V6}/64")), "{out}");

    // Nothing holds the TAP open yet, so it has no carrier; the addresses must still be
    // usable, i.e. not stuck in DAD.
    let out = ns.run("ip", ["-6", "addr", "show", "dev", TAP], T);
    assert!(!out.stdout.contains("tentative"), "{out}");
    let out = ns.run("ip", ["-d", "link", "show", "dev", TAP], T);
    assert!(out.stdout.contains("tun type tap"), "{out}");
    let out = ns.run("sysctl", ["-n", "net.ipv6.conf.paf0.accept_dad"], T);
    assert_eq!(out.stdout.trim(), "0", "{out}");
    let out = ns.run("ip", ["-br", "link", "show", "dev", "lo"], T);
    assert!(out.stdout.contains("LOWER_UP"), "{out}");

    // The kernel side answers itself over both families (local table, no carrier needed).
    for addr in [KERNEL_V4.to_string(), KERNEL_V6.to_string()] {
        let out = ns.run("ping", ["-c", "1", "-W", "2", &addr], T);
        assert!(out.success(), "{out}");
    }
    // Nothing from the host namespace is visible inside: only lo and the TAP.
    let out = ns.run("ip", ["-br", "link"], T);
    let links: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(links, ["lo", TAP], "{out}");
    ns.down().unwrap();
}

#[test]
fn parallel_namespaces_get_distinct_names() {
    if !common::require_netns("parallel_namespaces_get_distinct_names") {
        return;
    }
    let all: Vec<Netns> = thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| Netns::new("par"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let names: HashSet<&str> = all.iter().map(Netns::name).collect();
    assert_eq!(names.len(), all.len(), "names collide: {names:?}");
    let listed = netns_list();
    for ns in &all {
        assert!(ns.name().starts_with("paf-par-"), "{}", ns.name());
        assert!(
            listed.contains(&ns.name().to_owned()),
            "{} not in {listed:?}",
            ns.name()
        );
    }
    // Each namespace has its own TAP (distinct MAC addresses).
    let macs: HashSet<String> = all
        .iter()
        .map(|ns| {
            ns.run("cat", [format!("/sys/class/net/{TAP}/address")], T)
                .stdout
        })
        .collect();
    assert_eq!(macs.len(), all.len(), "{macs:?}");
}

#[test]
fn dnsmasq_answers_for_test_names_and_nothing_else() {
    let test = "dnsmasq_answers_for_test_names_and_nothing_else";
    if !common::require_netns(test) || !common::require_tools(test, &["dig", "ss"]) {
        return;
    }
    let ns = Netns::builder("dns").with_dnsmasq().up();
    let pid = ns.dnsmasq_pid().expect("dnsmasq pid file");
    assert!(
        ns.pids().contains(&pid),
        "dnsmasq {pid} not in the namespace: {:?}",
        ns.pids()
    );

    let dig = |server: &str, name: &str, rtype: &str| {
        let at = format!("@{server}");
        let out = ns.run("dig", [at.as_str(), "+time=2", "+tries=1", name, rtype], T);
        assert!(out.success(), "{out}");
        out.stdout
    };
    let answer = |server: &str, name: &str, rtype: &str| -> Vec<String> {
        let at = format!("@{server}");
        let out = ns.run(
            "dig",
            [at.as_str(), "+short", "+time=2", "+tries=1", name, rtype],
            T,
        );
        assert!(out.success(), "{out}");
        out.stdout.lines().map(str::to_owned).collect()
    };
    // Over IPv4 and IPv6 transport, to dnsmasq's addresses on the TAP.
    for server in [KERNEL_V4.to_string(), KERNEL_V6.to_string()] {
        assert_eq!(answer(&server, "paf.test", "A"), [APPLIANCE_V4.to_string()]);
        assert_eq!(
            answer(&server, "paf.test", "AAAA"),
            [APPLIANCE_V6.to_string()]
        );
        assert_eq!(
            answer(&server, "upstream.test", "A"),
            [KERNEL_V4.to_string()]
        );
        assert_eq!(
            answer(&server, "upstream.test", "AAAA"),
            [KERNEL_V6.to_string()]
        );
        assert!(dig(&server, "nope.test", "A").contains("status: NXDOMAIN"));
        // No upstream: names outside .test are refused, never forwarded anywhere.
        assert!(dig(&server, "example.com", "A").contains("status: REFUSED"));
    }
    let log = std::fs::read_to_string(ns.dnsmasq_log().unwrap()).unwrap();
    assert!(log.contains("query[A] paf.test"), "{log}");

    // DHCPv4 server socket bound to the TAP, ready for `paf run --dhcp`.
    let out = ns.run("ss", ["-lun"], T);
    assert!(out.stdout.contains("%paf0:67"), "{out}");
    assert!(ns.dhcp_leases().unwrap().exists());
}

#[test]
fn drop_kills_processes_and_removes_namespace() {
    if !common::require_netns("drop_kills_processes_and_removes_namespace") {
        return;
    }
    let ns = Netns::builder("drop").with_dnsmasq().up();
    let name = ns.name().to_owned();
    let dnsmasq = ns.dnsmasq_pid().unwrap();
    let log_dir = ns.log_dir().to_owned();
    let state_dir = ns.state_dir().to_owned();
    // A child left running on purpose (forgotten guard) must still die with the namespace.
    let mut child = ns.spawn("sleep", ["600"]);
    let sleeper = child.id();
    assert!(child.is_running());
    std::mem::forget(child);
    // `ip netns exec` enters the namespace just after the fork: poll until it has.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns.pids().contains(&sleeper) {
        assert!(
            Instant::now() < deadline,
            "sleep {sleeper} never entered {name}"
        );
        thread::sleep(Duration::from_millis(20));
    }

    drop(ns);
    assert!(!netns_list().contains(&name), "{name} still listed");
    assert!(!process_alive(sleeper), "sleep {sleeper} survived");
    assert!(!process_alive(dnsmasq), "dnsmasq {dnsmasq} survived");
    assert!(!state_dir.exists());
    assert!(!log_dir.exists());
    // Removing again is a no-op for the script.
    let out = common::run_timeout(
        Command::new("bash").args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns"),
            "down",
            &name,
        ]),
        T,
    );
    assert!(
        out.success() && out.stdout.contains("does not exist"),
        "{out}"
    );
}

#[test]
fn panicking_test_still_cleans_up() {
    if !common::require_netns("panicking_test_still_cleans_up") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let result = thread::spawn(move || {
        let ns = Netns::new("panic");
        let child = ns.spawn("bash", ["-c", "echo from-child >&2; sleep 600"]);
        tx.send((ns.name().to_owned(), child.id(), ns.log_dir().to_owned()))
            .unwrap();
        thread::sleep(Duration::from_millis(200));
        panic!("deliberate panic to test cleanup");
    })
    .join();
    assert!(result.is_err());
    let (name, pid, log_dir) = rx.recv().unwrap();
    assert!(!netns_list().contains(&name), "{name} survived the panic");
    assert!(!process_alive(pid));
    // Logs are kept for diagnosis when the test panicked.
    let stderr = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(stderr.contains("from-child"), "{stderr:?}");
    std::fs::remove_dir_all(log_dir).unwrap();
}

#[test]
fn wait_tcp_sees_listeners_and_gives_up_in_time() {
    let test = "wait_tcp_sees_listeners_and_gives_up_in_time";
    if !common::require_netns(test) || !common::require_tools(test, &["python3"]) {
        return;
    }
    let ns = Netns::new("tcp");
    // A listener on each kernel-side address, started a little late so wait_tcp has to poll.
    let server = "import socket, time\n\
        time.sleep(0.5)\n\
        a = socket.create_server(('198.18.0.1', 8080))\n\
        b = socket.create_server(('fd00:198:18::1', 8080), family=socket.AF_INET6)\n\
        time.sleep(60)\n";
    let mut listener = ns.spawn("python3", ["-c", server]);
    for ip in [IpAddr::V4(KERNEL_V4), IpAddr::V6(KERNEL_V6)] {
        let took = ns
            .wait_tcp_from(
                &mut listener,
                SocketAddr::new(ip, 8080),
                Duration::from_secs(10),
            )
            .unwrap();
        assert!(took < Duration::from_secs(10));
    }

    // Refused port: keeps retrying, gives up at the deadline with the reason.
    let start = Instant::now();
    let err = ns
        .wait_tcp(
            SocketAddr::new(IpAddr::V4(KERNEL_V4), 8081),
            Duration::from_millis(400),
        )
        .unwrap_err();
    assert!(err.contains("refused"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // Nobody on the TAP: connects to the appliance hang; the per-attempt bound still holds.
    let start = Instant::now();
    let err = ns
        .wait_tcp(common::appliance_v4(80), Duration::from_millis(1500))
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?} {err}",
        start.elapsed()
    );

    // A server that dies makes wait_tcp_from fail fast, with its stderr.
    let mut dead = ns.spawn("bash", ["-c", "echo cannot-bind >&2; exit 3"]);
    let start = Instant::now();
    let err = ns
        .wait_tcp_from(&mut dead, common::appliance_v4(80), Duration::from_secs(20))
        .unwrap_err();
    assert!(err.contains("cannot-bind"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn run_timeout_reports_status_output_and_deadline() {
    // Needs no namespace.
    let out = common::run_timeout(
        Command::new("bash").args(["-c", "echo out; echo err >&2; exit 3"]),
        T,
    );
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    assert!(!out.success() && !out.timed_out());

    // A grandchild holding stdout open must not keep us past the deadline.
    let start = Instant::now();
    let out = common::run_timeout(
        Command::new("bash").args(["-c", "sleep 30 & echo started; wait"]),
        Duration::from_millis(300),
    );
    assert!(out.timed_out(), "{out}");
    assert_eq!(out.stdout, "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn child_guard_stops_gently_then_firmly() {
    if !common::require_netns("child_guard_stops_gently_then_firmly") {
        return;
    }
    let ns = Netns::new("child");
    let mut polite = ns.spawn(
        "bash",
        [
            "-c",
            "trap 'echo bye >&2; exit 0' TERM; echo hello >&2; while :; do sleep 0.05; done",
        ],
    );
    let mut stubborn = ns.spawn("bash", ["-c", "trap '' TERM; sleep 600"]);
    thread::sleep(Duration::from_millis(300));
    let status = polite.stop(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    // The group gets the TERM, so bash may also report its `sleep` as "Terminated".
    let stderr = polite.stderr();
    assert!(
        stderr.starts_with("hello\n") && stderr.ends_with("bye\n"),
        "{stderr:?}"
    );

    let start = Instant::now();
    let status = stubborn.stop(Duration::from_millis(300));
    assert!(!status.success());
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(ns.pids().is_empty(), "left behind: {:?}", ns.pids());
}

#[test]
fn mtu_option_sets_tap_mtu() {
    if !common::require_netns("mtu_option_sets_tap_mtu") {
        return;
    }
    let ns = Netns::builder("mtu").with_mtu(1400).up();
    let out = ns.run("cat", [format!("/sys/class/net/{TAP}/mtu")], T);
    assert_eq!(out.stdout.trim(), "1400", "{out}");
    assert_eq!(ns.mtu(), Some(1400));
    // IPv6 survives (MTU >= 1280).
    let out = ns.run("ip", ["-br", "addr", "show", "dev", TAP], T);
    assert!(out.stdout.contains(&format!("{KERNEL_V6}/64")), "{out}");
}

#[test]
fn netns_script_up_recreates_cleanly() {
    if !common::require_netns("netns_script_up_recreates_cleanly") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns");
    let ns = Netns::new("idem");
    let leftover = ns.spawn("sleep", ["600"]).id();
    // `up` on an existing name: processes inside are stopped, the namespace rebuilt.
    let out = common::run_timeout(Command::new("bash").args([script, "up", ns.name()]), T);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("re-creating"), "{out}");
    assert!(!process_alive(leftover));
    let out = ns.run("ip", ["-br", "addr", "show", "dev", TAP], T);
    assert!(out.stdout.contains(&format!("{KERNEL_V4}/24")), "{out}");
    // Names outside our prefix are refused, so the script never touches foreign namespaces.
    let out = common::run_timeout(
        Command::new("bash").args([script, "down", "docker-thing"]),
        T,
    );
    assert_eq!(out.code(), Some(1), "{out}");
    ns.down().unwrap();
}

#[test]
fn stale_namespaces_of_dead_runs_are_swept() {
    if !common::require_netns("stale_namespaces_of_dead_runs_are_swept") {
        return;
    }
    // A pid that existed and is gone now.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let stale = format!("paf-stale-{pid}-0");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns");
    let out = common::run_timeout(Command::new("bash").args([script, "up", &stale]), T);
    assert!(out.success(), "{out}");
    // A namespace of this (live) process must survive the sweep.
    let live = Netns::new("live");
    common::sweep_stale();
    let listed = netns_list();
    assert!(!listed.contains(&stale), "{stale} not swept");
    assert!(listed.contains(&live.name().to_owned()));
}

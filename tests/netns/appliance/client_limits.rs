//! Per-client limits as an operator sees them: a client over its request rate gets 429 with
//! `Retry-After` while another is served, and the PROXY protocol from a trusted balancer names
//! the client that `max_connections_per_ip` counts.

use super::*;

const RATE_CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[defaults]
rate = "20/s"

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/hello"
action = "static"
body = "hello\n"
"#;

/// Runs `tests/tools/rate_client.py` from `src`; its `key=value` fields.
fn rate_client(ns: &Netns, src: &str, n: u32, pace: f64) -> BTreeMap<String, String> {
    let out = ns.run(
        "python3",
        [
            common::tool("rate_client.py"),
            "198.18.0.2".into(),
            src.into(),
            n.to_string(),
            pace.to_string(),
        ],
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    out.stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_client_over_its_rate_gets_429_while_another_is_served() {
    if skip("a_client_over_its_rate_gets_429_while_another_is_served")
        || !common::require_tools("rate_limit", &["wrk"])
    {
        return;
    }
    let ns = Netns::new("applrate");
    let dir = Scratch::new("rate");
    let config = dir.write("rate.toml", RATE_CONFIG);
    let mut paf = start(&ns, &config);
    let add = ns.run(
        "ip",
        ["addr", "add", "198.18.0.3/24", "dev", "paf0"],
        Duration::from_secs(10),
    );
    assert!(add.success(), "{add}");
    // Client B alone, 10 a second (half its rate): every request served.
    let alone = rate_client(&ns, "198.18.0.3", 30, 0.1);
    assert_eq!(
        (&*alone["ok"], &*alone["limited"]),
        ("30", "0"),
        "{alone:?}"
    );
    // Client A floods from 198.18.0.1 while B runs again.
    let mut wrk = ns.spawn(
        "wrk",
        [
            "-t1",
            "-c4",
            "-d4s",
            "--timeout",
            "2s",
            "http://198.18.0.2/hello",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let during = rate_client(&ns, "198.18.0.3", 30, 0.1);
    assert_eq!(
        (&*during["ok"], &*during["limited"]),
        ("30", "0"),
        "{during:?}"
    );
    let status = wrk.wait_timeout(Duration::from_secs(30));
    let flood = wrk.stdout();
    assert!(status.is_some_and(|s| s.success()), "{flood}");
    let non2xx: u64 = flood
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(non2xx > 0, "the flood was never limited: {flood}");
    // A's next burst: 20 served, then 429 with Retry-After.
    std::thread::sleep(Duration::from_millis(1500));
    let a = rate_client(&ns, "198.18.0.1", 40, 0.0);
    let served: u32 = a["ok"].parse().unwrap();
    assert!((20..40).contains(&served), "{a:?}");
    assert_eq!(a["limited"], (40 - served).to_string(), "{a:?}");
    assert_eq!(a["retry"], "1", "{a:?}");
    // From client B: client A has just spent its burst again.
    let (code, text) = get(
        &ns,
        "http://198.18.0.2/metrics",
        &["--interface", "198.18.0.3"],
    );
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    let limited = m
        .get("paf_limited_total{listener=\"web\",kind=\"requests\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(limited as u64 >= non2xx, "{limited} < {non2xx}");
    println!(
        "rate_limit: client B mean latency {} ms alone, {} ms during A's flood \
         ({non2xx} of A's requests answered 429)",
        alone["mean_ms"], during["mean_ms"]
    );
    assert!(paf.stop(Duration::from_secs(20)).success());
}

const PROXY_CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[defaults]
max_connections_per_ip = 1

[[listener]]
name = "web"
port = 80
proxy_protocol = true
proxy_protocol_trusted = ["198.18.0.1/32"]

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/hello"
action = "static"
body = "hello\n"
"#;

#[test]
fn proxy_protocol_from_a_trusted_balancer_names_the_client() {
    if skip("proxy_protocol_from_a_trusted_balancer_names_the_client") {
        return;
    }
    let ns = Netns::new("applpp");
    let dir = Scratch::new("pp");
    let config = dir.write("pp.toml", PROXY_CONFIG);
    let check = run_timeout(Command::new(PAF).args(["check", "--config", &config]), T);
    assert!(check.success(), "{check}");
    // `start` waits with a bare TCP connect, which this listener resets: wait on the log.
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", &config]);
    let t0 = Instant::now();
    while !paf.stderr().contains("listening on port 80") {
        assert!(t0.elapsed() < Duration::from_secs(15), "{}", paf.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let add = ns.run("ip", ["addr", "add", "198.18.0.3/24", "dev", "paf0"], T);
    assert!(add.success(), "{add}");
    let probe = |args: &[&str]| {
        let mut all = vec![common::tool("proxy_probe.py")];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = ns.run("python3", all, Duration::from_secs(30));
        assert!(out.success(), "{out}");
        out.stdout.trim().to_owned()
    };
    // curl as its own balancer (the header names curl's own address): served.
    let (code, body) = get(&ns, "http://198.18.0.2/hello", &["--haproxy-protocol"]);
    assert_eq!((code, body.as_str()), (200, "hello\n"));
    // Without the header, or from an address not trusted: reset, nothing served.
    for args in [
        &["http://198.18.0.2/hello"][..],
        &[
            "--haproxy-protocol",
            "--interface",
            "198.18.0.3",
            "http://198.18.0.2/hello",
        ],
    ] {
        let out = curl(&ns, args);
        assert!(!out.success(), "{args:?}: {out}");
        assert!(!out.stdout.contains("hello"), "{args:?}: {out}");
    }
    // The header's client is the one the cap counts: 198.18.9.1 holds its one connection...
    let mut hold = ns.spawn(
        "python3",
        [
            &common::tool("proxy_probe.py"),
            "hold",
            "198.18.0.2",
            "198.18.9.1",
            "4",
        ],
    );
    let t0 = Instant::now();
    while !hold.stdout().contains("200") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", hold.stdout());
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...so a second one for it is reset, while 198.18.9.2, same balancer, is served.
    assert_eq!(probe(&["get", "198.18.0.2", "198.18.9.1"]), "reset");
    assert_eq!(probe(&["get", "198.18.0.2", "198.18.9.2"]), "200");
    assert!(hold.wait_timeout(Duration::from_secs(20)).is_some());
    let (code, text) = get(&ns, "http://198.18.0.2/metrics", &["--haproxy-protocol"]);
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    let refused = m["paf_proxy_protocol_refused_total{listener=\"web\"}"];
    let limited = m["paf_limited_total{listener=\"web\",kind=\"connections\"}"];
    assert_eq!((refused, limited), (2.0, 1.0), "{text}");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

//! WebSocket through the proxy, end to end: `paf run --config` on a TAP in a namespace, a
//! WebSocket echo server on the kernel side (`tests/tools/ws_echo.py`, Python's `websockets`,
//! plain on 9001 and TLS on 9443), and the `websockets` client (`tests/tools/ws_client.py`)
//! talking to paf over http (port 80) and https (port 443, TLS terminated by paf), to a plain
//! and to a TLS upstream:
//!
//! - text and binary messages echoed, then 10 MB each way at once, byte-exact (SHA-256);
//! - a close from the client (closing handshake through the tunnel, code 1000 back) and from
//!   the upstream (code 4000 and its reason reach the client);
//! - `tunnel_idle_timeout = "2s"`: a quiet connection is closed by paf between 2 and 4 s;
//! - `/metrics`: tunnels counted, none open at the end, bytes both ways, the idle close.
//!
//! Needs root and Debian's `python3-websockets` for `/usr/bin/python3`: without them it prints
//! `SKIP` (a failure under `PAF_REQUIRE_NETNS=1`).

use std::process::Command;
use std::time::Duration;

use crate::appliance::support::{metrics, start, Fixtures, Scratch};
use crate::common::{require_netns, require_tools, tool, ChildGuard, Netns, KERNEL_V4};

const T: Duration = Duration::from_secs(120);
const PYTHON: &str = "/usr/bin/python3";

const CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/metrics"
action = "metrics"

[[listener.route]]
path = "/idle/"
action = "proxy"
upstream = "ws"
tunnel_idle_timeout = "2s"

[[listener.route]]
path = "/tls/"
action = "proxy"
upstream = "wss"

[[listener.route]]
path = "/"
action = "proxy"
upstream = "ws"

[[listener]]
name = "secure"
port = 443
protocol = "https"
certificate = "pki/paf/cert.pem"
key = "pki/paf/key.pem"

[[listener.route]]
path = "/tls/"
action = "proxy"
upstream = "wss"

[[listener.route]]
path = "/"
action = "proxy"
upstream = "ws"

[[upstream]]
name = "ws"
urls = ["http://198.18.0.1:9001"]

[[upstream]]
name = "wss"
urls = ["https://198.18.0.1:9443"]
ca = "pki/upstream/ca.pem"
sni = "upstream.test"
"#;

/// The echo servers: plain on 9001, TLS (`upstream.test`) on 9443.
fn echo_servers(ns: &Netns, dir: &Scratch) -> [ChildGuard; 2] {
    let echo = tool("ws_echo.py");
    let host = KERNEL_V4.to_string();
    let mut plain = ns.spawn(PYTHON, [echo.as_str(), host.as_str(), "9001"]);
    let (cert, key) = (
        dir.s("pki/upstream/cert.pem"),
        dir.s("pki/upstream/key.pem"),
    );
    let mut tls = ns.spawn(
        PYTHON,
        [
            echo.as_str(),
            host.as_str(),
            "9443",
            cert.as_str(),
            key.as_str(),
        ],
    );
    for (g, port) in [(&mut plain, 9001), (&mut tls, 9443)] {
        ns.wait_tcp_from(g, (KERNEL_V4, port).into(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("ws_echo.py not listening on {port}: {e}"));
    }
    [plain, tls]
}

/// `ws_client.py MODE URL ARGS…`; panics unless it succeeded; returns its stdout.
fn client(ns: &Netns, mode: &str, url: &str, args: &[&str]) -> String {
    let script = tool("ws_client.py");
    let mut all = vec![script.as_str(), mode, url];
    all.extend_from_slice(args);
    let out = ns.run(PYTHON, &all, T);
    assert!(out.success(), "{out}");
    out.stdout.trim().to_owned()
}

#[test]
fn websocket_clients_and_servers_talk_through_the_proxy_over_http_and_https() {
    let test = "websocket_clients_and_servers_talk_through_the_proxy_over_http_and_https";
    if !require_netns(test) {
        return;
    }
    let has_websockets = Command::new(PYTHON)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_websockets
        && !require_tools(
            test,
            &["python3-websockets (/usr/bin/python3 -c 'import websockets')"],
        )
    {
        return;
    }
    // 80 MB through the proxy and TLS both ways: both cores busy for seconds.
    let _heavy = crate::heavy();
    let ns = Netns::new("ws");
    let dir = Scratch::new("ws");
    dir.cert("upstream", &["upstream.test"]);
    dir.cert("paf", &["paf.test"]);
    let servers = echo_servers(&ns, &dir);
    let config = dir.write("ws.toml", CONFIG);
    let mut paf = start(&ns, &config);
    let ca = dir.s("pki/paf/ca.pem");

    // Messages and 10 MB each way: http to a plain upstream, https to a plain one, http to a
    // TLS one, https to a TLS one.
    let cases = [
        ("ws://198.18.0.2/echo", None),
        ("wss://198.18.0.2/echo", Some(ca.as_str())),
        ("ws://198.18.0.2/tls/echo", None),
        ("wss://198.18.0.2/tls/echo", Some(ca.as_str())),
    ];
    for (url, ca) in cases {
        let args: Vec<&str> = ca.into_iter().collect();
        let out = client(&ns, "echo", url, &args);
        assert!(
            out.starts_with("ok 10485760 bytes each way"),
            "{url}: {out}"
        );
        eprintln!("{url}: {out}");
    }

    // Closes from either end, over http and https.
    for (url, ca) in [
        ("ws://198.18.0.2/bye", None),
        ("wss://198.18.0.2/bye", Some(ca.as_str())),
    ] {
        let args: Vec<&str> = ca.into_iter().collect();
        assert_eq!(
            client(&ns, "client-close", url, &args),
            "closed 1000",
            "{url}"
        );
        let url = format!("{url}/close");
        assert_eq!(
            client(&ns, "server-close", &url, &args),
            "closed 4000 bye",
            "{url}"
        );
    }

    // The idle timeout: 2 s without a byte, then paf closes both sides (no closing handshake:
    // the client sees 1006).
    let out = client(&ns, "idle", "ws://198.18.0.2/idle/x", &["2"]);
    let secs: f64 = out
        .strip_prefix("closed after ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((1.9..4.0).contains(&secs), "{out}");
    assert!(out.ends_with("code 1006"), "{out}");

    // Every tunnel is gone once its connections closed; the counters say what went through.
    let mut open = f64::NAN;
    for _ in 0..50 {
        let m = metrics(&ns);
        open = m["paf_tunnels_open{listener=\"web\"}"] + m["paf_tunnels_open{listener=\"secure\"}"];
        if open == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = metrics(&ns);
    assert_eq!(open, 0.0, "{m:?}");
    let total = |l: &str| m[&format!("paf_tunnels_total{{listener=\"{l}\"}}")];
    assert_eq!((total("web"), total("secure")), (5.0, 4.0), "{m:?}");
    assert_eq!(m["paf_tunnel_idle_timeouts_total{listener=\"web\"}"], 1.0);
    for l in ["web", "secure"] {
        for dir in ["client_to_upstream", "upstream_to_client"] {
            let key = format!("paf_tunnel_bytes_total{{listener=\"{l}\",direction=\"{dir}\"}}");
            assert!(m[&key] >= 2.0 * 10_485_760.0, "{key}: {m:?}");
        }
    }
    assert!(paf.is_running(), "{}", paf.stderr());
    // The plain echo server saw each closing handshake: the client's 1000 and its own 4000.
    let log = servers[0].stdout();
    assert_eq!(log.matches("closed /bye 1000").count(), 2, "{log}");
    assert_eq!(log.matches("closed /bye/close 4000").count(), 2, "{log}");
    assert!(log.contains("closed /idle/x 1006"), "{log}");
}

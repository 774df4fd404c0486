//! `send_proxy_protocol` end to end: `paf run --config` proxies to
//! `tests/tools/recording_upstream.py` (which keeps every byte each connection brought, PROXY
//! header included) with `"v1"` and with `"v2"`, and to nginx over TLS with
//! `listen … ssl proxy_protocol` (the header before the ClientHello), which logs
//! `$proxy_protocol_addr` and its connection number.
//!
//! Clients: curl from 198.18.0.1 and from 198.18.0.3 (a second address on the kernel side),
//! curl over IPv6, and a pretend balancer on a listener that trusts it, whose header names
//! 203.0.113.7. Each upstream connection must start with a header naming exactly the client
//! connection (address and port, as curl reports its own) and paf's address it reached, carry
//! only that client's requests, and be reused for that client's next request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::support::*;
use crate::common::{tool, ChildGuard, Netns, KERNEL_V4};
use paf::http::proxy_protocol::{self, Reader};

const UPSTREAM_PORT: u16 = 8090;
const NGINX_PORT: u16 = 8444;

const CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
ipv6 = "fd00:198:18::2/64"
gateway6 = "fd00:198:18::1"

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/v1/"
action = "proxy"
upstream = "rec-v1"

[[listener.route]]
path = "/v2/"
action = "proxy"
upstream = "rec-v2"

[[listener.route]]
path = "/tls/"
action = "proxy"
upstream = "nginx-tls"

# Behind a balancer: the client paf names upstream is the one the balancer's header named.
[[listener]]
name = "balanced"
port = 81
proxy_protocol = true
proxy_protocol_trusted = ["198.18.0.1/32"]

[[listener.route]]
action = "proxy"
upstream = "rec-v2"

[[upstream]]
name = "rec-v1"
urls = ["http://198.18.0.1:8090"]
send_proxy_protocol = "v1"

[[upstream]]
name = "rec-v2"
urls = ["http://198.18.0.1:8090"]
send_proxy_protocol = "v2"

[[upstream]]
name = "nginx-tls"
urls = ["https://198.18.0.1:8444"]
ca = "pki/upstream/ca.pem"
sni = "upstream.test"
send_proxy_protocol = "v2"
"#;

/// A client behind a balancer: the balancer's PROXY v1 header names 203.0.113.7:41234.
const BALANCED: &str = r#"
import socket
s = socket.create_connection(("198.18.0.2", 81), timeout=10)
s.sendall(b"PROXY TCP4 203.0.113.7 198.18.0.2 41234 81\r\n"
          b"GET /v2/balanced HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b" ")[1].decode())
"#;

/// nginx on 8444, TLS after a PROXY header; each request logged as `$proxy_protocol_addr
/// $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port $connection
/// $connection_requests $request_uri`.
fn nginx_pp(ns: &Netns, dir: &Scratch) -> ChildGuard {
    let d = dir.0.to_str().unwrap();
    std::fs::create_dir_all(dir.path("tmp")).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  log_format pp '$proxy_protocol_addr $proxy_protocol_port \
         $proxy_protocol_server_addr $proxy_protocol_server_port $connection \
         $connection_requests $request_uri';\n  access_log {d}/pp.log pp;\n\
         client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n  server {{\n\
         listen 198.18.0.1:{NGINX_PORT} ssl proxy_protocol;\n\
         ssl_certificate {d}/pki/upstream/cert.pem;\n\
         ssl_certificate_key {d}/pki/upstream/key.pem;\n\
         location / {{ default_type text/plain; return 200 \"nginx $proxy_protocol_addr\\n\"; }}\n\
         }}\n}}\n"
    );
    let conf = dir.write("nginx.conf", conf);
    let mut g = ns.spawn("nginx", ["-c", conf.as_str(), "-p", d]);
    ns.wait_tcp_from(
        &mut g,
        (KERNEL_V4, NGINX_PORT).into(),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("nginx not listening on {NGINX_PORT}: {e}"));
    g
}

/// curl fetching `urls` on one connection (when it can): per URL, its status, then curl's own
/// address and port.
fn fetch(ns: &Netns, extra: &[&str], urls: &[&str]) -> Vec<(u16, SocketAddr)> {
    let mut args = vec![
        "-sS",
        "--max-time",
        "30",
        "-w",
        "%{http_code} %{local_ip} %{local_port}\\n",
    ];
    args.extend_from_slice(extra);
    for u in urls {
        args.extend_from_slice(&["-o", "/dev/null", u]);
    }
    let out = ns.run("curl", &args, Duration::from_secs(40));
    assert!(out.success(), "{out}");
    let got: Vec<(u16, SocketAddr)> = out
        .stdout
        .lines()
        .map(|l| {
            let mut f = l.split(' ');
            let code = f.next().unwrap().parse().unwrap();
            let ip: std::net::IpAddr = f.next().unwrap().parse().unwrap();
            (
                code,
                SocketAddr::new(ip, f.next().unwrap().parse().unwrap()),
            )
        })
        .collect();
    assert_eq!(got.len(), urls.len(), "{out}");
    assert!(got.iter().all(|(c, _)| *c == 200), "{out}");
    got
}

/// One recorded upstream connection: its header (as read by paf's own parser), the header's
/// bytes, and the request targets that followed.
#[derive(Debug)]
struct Recorded {
    header: proxy_protocol::Header,
    raw: Vec<u8>,
    targets: Vec<String>,
}

/// Every connection the recording upstream kept that carried anything (the readiness probes
/// carried nothing).
fn recorded(dir: &Path) -> Vec<Recorded> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        if bytes.is_empty() {
            continue;
        }
        let mut r = Reader::new();
        let mut at = 0;
        // The reader takes exactly the header's bytes, never more.
        let header = loop {
            let n = r.want().min(bytes.len() - at);
            assert!(n > 0, "{f:?}: the header ends early: {bytes:?}");
            let fed = r.feed(&bytes[at..at + n]);
            at += n;
            match fed {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => panic!("{f:?}: {e}: {:?}", String::from_utf8_lossy(&bytes)),
            }
        };
        let len = at;
        let rest = String::from_utf8_lossy(&bytes[len..]).into_owned();
        let targets = rest
            .split("\r\n")
            .filter(|l| l.starts_with("GET "))
            .map(|l| l.split(' ').nth(1).unwrap().to_owned())
            .collect();
        out.push(Recorded {
            header,
            raw: bytes[..len].to_vec(),
            targets,
        });
    }
    out
}

#[test]
fn upstreams_see_the_real_client_and_no_connection_carries_two_clients() {
    if skip("upstreams_see_the_real_client_and_no_connection_carries_two_clients") {
        return;
    }
    let ns = Netns::new("applsendpp");
    let dir = Scratch::new("sendpp");
    dir.cert("upstream", &["upstream.test"]);
    let rec = dir.s("rec");
    let mut upstream = ns.spawn(
        "python3",
        [
            tool("recording_upstream.py"),
            KERNEL_V4.to_string(),
            UPSTREAM_PORT.to_string(),
            rec.clone(),
            "up\n".to_owned(),
            "proxy".to_owned(),
        ],
    );
    ns.wait_tcp_from(
        &mut upstream,
        (KERNEL_V4, UPSTREAM_PORT).into(),
        Duration::from_secs(15),
    )
    .expect("recording upstream");
    let _nginx = nginx_pp(&ns, &dir);
    let config = dir.write("paf.toml", CONFIG);
    let mut paf = start(&ns, &config);
    let add = ns.run("ip", ["addr", "add", "198.18.0.3/24", "dev", "paf0"], T);
    assert!(add.success(), "{add}");

    // Two requests each, one client after the other: were the pool not keyed by client, B's
    // would go on A's idle connection.
    let a = fetch(
        &ns,
        &[],
        &["http://198.18.0.2/v1/a1", "http://198.18.0.2/v1/a2"],
    );
    let b = fetch(
        &ns,
        &["--interface", "198.18.0.3"],
        &["http://198.18.0.2/v1/b1", "http://198.18.0.2/v1/b2"],
    );
    let c = fetch(
        &ns,
        &[],
        &[
            "http://[fd00:198:18::2]/v2/c1",
            "http://[fd00:198:18::2]/v2/c2",
        ],
    );
    for got in [&a, &b, &c] {
        assert_eq!(got[0].1, got[1].1, "curl kept its connection: {got:?}");
    }
    let out = ns.run("python3", ["-c", BALANCED], Duration::from_secs(30));
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "200", "{out}");

    let conns = recorded(Path::new(&rec));
    let local = |port| SocketAddr::new("198.18.0.2".parse().unwrap(), port);
    let local6: SocketAddr = "[fd00:198:18::2]:80".parse().unwrap();
    let balanced: SocketAddr = "203.0.113.7:41234".parse().unwrap();
    // (client, paf's address it reached, version 1?, the targets its one connection carried)
    let want: [(SocketAddr, SocketAddr, bool, [&str; 2]); 3] = [
        (a[0].1, local(80), true, ["/v1/a1", "/v1/a2"]),
        (b[0].1, local(80), true, ["/v1/b1", "/v1/b2"]),
        (c[0].1, local6, false, ["/v2/c1", "/v2/c2"]),
    ];
    let mut by_client: BTreeMap<SocketAddr, Vec<&Recorded>> = BTreeMap::new();
    for r in &conns {
        by_client
            .entry(r.header.source.expect("a client"))
            .or_default()
            .push(r);
    }
    assert_eq!(by_client.len(), 4, "four clients: {conns:#?}");
    for (client, dst, v1, targets) in want {
        let got = &by_client[&client];
        assert_eq!(got.len(), 1, "{client}: one upstream connection: {got:#?}");
        assert_eq!(got[0].header.destination, Some(dst), "{client}");
        assert_eq!(
            got[0].targets, targets,
            "{client}: its requests and no other's"
        );
        if v1 {
            let line = format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                client.ip(),
                dst.ip(),
                client.port(),
                dst.port()
            );
            assert_eq!(got[0].raw, line.as_bytes(), "{client}");
        } else {
            assert!(got[0].raw.starts_with(&proxy_protocol::V2_SIGNATURE));
        }
    }
    let got = &by_client[&balanced];
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].header.destination, Some(local(81)));
    assert_eq!(got[0].targets, ["/v2/balanced"]);

    // TLS after the header: nginx reads it, then the ClientHello, and logs the client.
    let a = fetch(
        &ns,
        &[],
        &["http://198.18.0.2/tls/a1", "http://198.18.0.2/tls/a2"],
    );
    let b = fetch(
        &ns,
        &["--interface", "198.18.0.3"],
        &["http://198.18.0.2/tls/b1"],
    );
    let log = std::fs::read_to_string(dir.path("pp.log")).unwrap();
    let lines: BTreeMap<String, Vec<String>> = log
        .lines()
        .map(|l| {
            let f: Vec<String> = l.split(' ').map(str::to_owned).collect();
            (f[6].clone(), f)
        })
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    for (uri, client) in [
        ("/tls/a1", a[0].1),
        ("/tls/a2", a[1].1),
        ("/tls/b1", b[0].1),
    ] {
        let f = &lines[uri];
        assert_eq!(f[0], client.ip().to_string(), "{uri}: {log}");
        assert_eq!(f[1], client.port().to_string(), "{uri}: {log}");
        assert_eq!(
            (f[2].as_str(), f[3].as_str()),
            ("198.18.0.2", "80"),
            "{log}"
        );
    }
    // A's two requests on one nginx connection (its 1st and 2nd request), B's on another.
    let (a1, a2, b1) = (&lines["/tls/a1"], &lines["/tls/a2"], &lines["/tls/b1"]);
    assert_eq!(a1[4], a2[4], "{log}");
    assert_eq!((a1[5].as_str(), a2[5].as_str()), ("1", "2"), "{log}");
    assert_ne!(a1[4], b1[4], "{log}");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

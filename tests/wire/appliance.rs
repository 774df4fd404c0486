//! The appliance (config-driven routes) over the in-memory wire: static, health, metrics,
//! redirect, files (index, ranges, conditionals, traversal refusals, HEAD), 404/405, and the
//! counters behind /metrics matching the requests made. The appliance and the client run on
//! the virtual pair (`paf::testing::Pair`). No root needed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use net::testing::B_V4;
use paf::appliance::{self, Appliance, Metrics};
use paf::service::Switch;
use paf::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};

const LONG: Duration = Duration::from_secs(60);

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn site() -> Dir {
    let d = std::env::temp_dir().join(format!("paf-appliance-wire-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("www/docs")).unwrap();
    std::fs::write(d.join("www/index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(d.join("www/docs/index.html"), "docs").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("www/big.bin"), &big).unwrap();
    std::fs::write(d.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(d.join("secret.txt"), d.join("www/escape")).unwrap();
    Dir(d)
}

const CONFIG: &str = r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/health"
exact = true
action = "health"
[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"
[[listener.route]]
host = "old.test"
action = "redirect"
to = "https://new.test{path}"
status = 308
[[listener.route]]
path = "/hello"
exact = true
action = "static"
status = 201
content_type = "text/plain"
body = "hi there"
[[listener.route]]
path = "/static"
action = "files"
root = "www"
"#;

struct Server {
    stop: Switch,
    metrics: Arc<Metrics>,
    app: Appliance,
}

impl Server {
    /// Turn the switch off and keep both loops running until the appliance drained.
    fn stop(self, pair: &mut Pair) {
        self.stop.turn_off();
        let app = self.app;
        drive(pair, "the appliance to stop", || app.is_finished());
    }
}

fn start(dir: &Path) -> (Server, Pair) {
    let cfg = paf::config::parse(CONFIG, "test", dir).expect("valid config");
    let mut pair = Pair::builder()
        .mtu(9000)
        .seed(11)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build();
    let stop = Switch::new();
    let app = appliance::start(&mut pair.server, &cfg, stop.clone()).expect("start");
    let metrics = app.metrics.clone();
    (Server { stop, metrics, app }, pair)
}

/// Steps both loops until `cond` holds; panics after a minute of virtual time.
fn drive(pair: &mut Pair, what: &str, mut cond: impl FnMut() -> bool) {
    pair.drive_until(LONG, what, |_| cond());
}

/// One request on its own connection; returns the parsed response.
fn get(rt: &mut Pair, raw: &str, head: bool) -> ParsedResponse {
    let to = SocketAddr::new(IpAddr::from(B_V4), 80);
    let c: ClientHandle = RawClient::connect(&mut rt.client, to).unwrap();
    c.send(raw.as_bytes());
    let mut buf = Vec::new();
    let mut out = None;
    drive(rt, raw, || {
        buf.extend_from_slice(&c.take_input());
        if let Some((r, _)) = parse_response(&buf, head) {
            out = Some(r);
            return true;
        }
        c.is_done()
    });
    c.close();
    out.unwrap_or_else(|| panic!("no response to {raw:?}"))
}

fn req(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: paf.test\r\n{extra}\r\n")
}

#[test]
fn routes_answer_as_configured() {
    let dir = site();
    let (server, mut rt) = start(&dir.0);

    let r = get(&mut rt, &req("GET", "/health", ""), false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));

    let r = get(&mut rt, &req("GET", "/hello", ""), false);
    assert_eq!((r.status, r.body.as_slice()), (201, &b"hi there"[..]));
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = get(
        &mut rt,
        &req("POST", "/hello", "Content-Length: 0\r\n"),
        false,
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    let r = get(&mut rt, &req("GET", "/nowhere", ""), false);
    assert_eq!(r.status, 404);

    let r = get(
        &mut rt,
        "GET /a/b?c=d HTTP/1.1\r\nHost: old.test:80\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://new.test/a/b?c=d"));

    // Files: index, content type, validators, HEAD, ranges, conditionals, refusals.
    let r = get(&mut rt, &req("GET", "/static/", ""), false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<h1>home</h1>"[..]));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let etag = r.header("etag").unwrap().to_string();
    let r = get(
        &mut rt,
        &req("GET", "/static/", &format!("If-None-Match: {etag}\r\n")),
        false,
    );
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = get(&mut rt, &req("GET", "/static/docs", ""), false);
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/static/docs/"))
    );

    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = get(&mut rt, &req("GET", "/static/big.bin", ""), false);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "300 kB file byte-exact");
    let r = get(&mut rt, &req("HEAD", "/static/big.bin", ""), true);
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("300000"))
    );
    let r = get(
        &mut rt,
        &req("GET", "/static/big.bin", "Range: bytes=1000-1999\r\n"),
        false,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    assert!(r.body == big[1000..2000]);
    let r = get(
        &mut rt,
        &req("GET", "/static/big.bin", "Range: bytes=400000-\r\n"),
        false,
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */300000"))
    );

    for bad in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/escape",
    ] {
        let r = get(&mut rt, &req("GET", bad, ""), false);
        assert!(r.status == 403 || r.status == 404, "{bad}: {}", r.status);
        assert!(
            !r.body.windows(6).any(|w| w == b"secret"),
            "{bad} leaked the file"
        );
    }

    // The counters match what was asked: 2xx so far are health, hello, /static/, big x2 (+HEAD),
    // 206 = 1; the metrics page itself is counted after it renders.
    let m = get(&mut rt, &req("GET", "/metrics", ""), false);
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("# TYPE paf_requests_total counter"), "{text}");
    let two_xx: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("paf_requests_total{listener=\"web\"") && l.contains("class=\"2xx\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(two_xx, 6, "{text}");
    assert!(
        text.contains("paf_connections_accepted_total{listener=\"web\"}"),
        "{text}"
    );
    assert_eq!(
        server.metrics.requests_of("web", "2xx"),
        7,
        "the metrics request counted too"
    );
    assert_eq!(server.metrics.requests_of("web", "3xx"), 3);
    server.stop(&mut rt);
}

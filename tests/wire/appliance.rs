//! The appliance (config-driven routes) over the in-memory wire: static, health, metrics,
//! redirect, files (index, ranges, conditionals, traversal refusals, HEAD), 404/405, the
//! counters behind /metrics matching the requests made, and compression (negotiation, static
//! variants, files compressed as they stream, fresh and stale pre-compressed siblings, ETags
//! per coding, Range and HEAD, per-route lists). The appliance and the client run on
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

/// A site in a directory of its own (`tag`: the test's, since tests run in parallel).
fn site(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("paf-appliance-wire-{tag}-{}", std::process::id()));
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
    let dir = site("routes");
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

const COMPRESS_CONFIG: &str = r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/page"
exact = true
action = "static"
content_type = "text/html"
body = "<p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p><p>hello, compressed world</p>"
[[listener.route]]
path = "/gz-only"
action = "files"
root = "www"
compress = ["gzip"]
[[listener.route]]
path = "/plain"
action = "files"
root = "www"
compress = []
[[listener.route]]
path = "/"
action = "files"
root = "www"
"#;

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

#[test]
fn compression_negotiates_streams_and_prefers_fresh_precompressed_siblings() {
    let dir = site("compress");
    let www = dir.0.join("www");
    let text: String = (0..20_000)
        .map(|i| format!("line {i} of the log\n"))
        .collect();
    std::fs::write(www.join("log.txt"), &text).unwrap();
    std::fs::write(www.join("tiny.txt"), "tiny").unwrap();
    // A pre-compressed sibling, marked by its content so the test knows which was served.
    std::fs::write(www.join("app.js"), "let x = 1;\n".repeat(100)).unwrap();
    let marked = paf_brotli(b"from the sibling");
    std::fs::write(www.join("app.js.br"), &marked).unwrap();
    let cfg = paf::config::parse(COMPRESS_CONFIG, "test", &dir.0).expect("valid config");
    let mut pair = Pair::builder()
        .mtu(9000)
        .seed(12)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build();
    let stop = Switch::new();
    let app = appliance::start(&mut pair.server, &cfg, stop.clone()).expect("start");
    let rt = &mut pair;
    let br = "Accept-Encoding: gzip, br\r\n";

    // Static: compressed once at start, with a length.
    let r = get(rt, &req("GET", "/page", br), false);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert!(String::from_utf8(unbrotli(&r.body))
        .unwrap()
        .starts_with("<p>hello"));
    let r = get(rt, &req("GET", "/page", ""), false);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body.starts_with(b"<p>hello"));

    // A file compressed as it streams: chunked, a distinct ETag per coding.
    let r = get(rt, &req("GET", "/log.txt", br), false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body.len() < text.len() / 4, "{}", r.body.len());
    assert_eq!(unbrotli(&r.body), text.as_bytes());
    let br_tag = r.header("etag").unwrap().to_owned();
    assert!(br_tag.ends_with("-br\""), "{br_tag}");
    let r = get(
        rt,
        &req("GET", "/log.txt", "Accept-Encoding: gzip\r\n"),
        false,
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), text.as_bytes());
    let gz_tag = r.header("etag").unwrap().to_owned();
    let r = get(rt, &req("GET", "/log.txt", ""), false);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert_eq!(r.body, text.as_bytes());
    let id_tag = r.header("etag").unwrap().to_owned();
    assert!(
        br_tag != gz_tag && gz_tag != id_tag,
        "{br_tag} {gz_tag} {id_tag}"
    );
    // Conditionals use the variant's tag.
    let cond = format!("{br}If-None-Match: {br_tag}\r\n");
    assert_eq!(get(rt, &req("GET", "/log.txt", &cond), false).status, 304);
    let cond = format!("Accept-Encoding: gzip\r\nIf-None-Match: {br_tag}\r\n");
    assert_eq!(get(rt, &req("GET", "/log.txt", &cond), false).status, 200);
    // A Range request gets a range of the identity.
    let r = get(
        rt,
        &req("GET", "/log.txt", &format!("{br}Range: bytes=0-9\r\n")),
        false,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, &text.as_bytes()[..10]);
    // HEAD: the headers of the compressed answer, no body.
    let r = get(rt, &req("HEAD", "/log.txt", br), true);
    assert_eq!(r.header("content-encoding"), Some("br"));
    // Small bodies, and types that are compressed already, go as they are.
    let r = get(rt, &req("GET", "/tiny.txt", br), false);
    assert_eq!(
        (r.header("content-encoding"), &r.body[..]),
        (None, &b"tiny"[..])
    );
    let r = get(rt, &req("GET", "/big.bin", br), false);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body.len(), 300_000);

    // A fresh sibling is preferred; a stale one is not served.
    let r = get(rt, &req("GET", "/app.js", br), false);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-length"),
        Some(marked.len().to_string().as_str())
    );
    assert_eq!(unbrotli(&r.body), b"from the sibling");
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    let f = std::fs::File::options()
        .write(true)
        .open(www.join("app.js"))
        .unwrap();
    f.set_modified(later).unwrap();
    let r = get(rt, &req("GET", "/app.js", br), false);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&r.body), "let x = 1;\n".repeat(100).as_bytes());

    // Per-route lists: gzip only, and off.
    let r = get(rt, &req("GET", "/gz-only/log.txt", br), false);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(rt, &req("GET", "/plain/log.txt", br), false);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);

    stop.turn_off();
    drive(rt, "the appliance to stop", || app.is_finished());
}

fn paf_brotli(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    w.write_all(b).unwrap();
    w.into_inner()
}

//! `compress` on proxy routes, on the virtual pair: the appliance on the server's stack
//! (port 80), a paf service as the upstream on the client's stack (port 8080).
//!
//! `/z/…` is a proxy route with `compress = ["br", "gzip"]`, `/plain/…` one without (the
//! default: off). Text relayed with a length and streamed without one comes back compressed as
//! asked, byte-exact once decoded, with `Vary`, a weak ETag and no `Content-Length` or
//! `Accept-Ranges`, except a body that reached the proxy whole with its head (compressed whole,
//! sent with its length); a range, a body the upstream encoded itself, a HEAD, a small body and
//! an image come back as the upstream sent them. A client that stops reading a compressed 16 MB
//! stream stops the upstream too: the proxy holds a bounded amount, not the body.

use std::cell::Cell;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use ::http::Response;
use net::testing::B_V4;
use paf::service::{self, Reqd, Switch};
use paf::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};

const LONG: Duration = Duration::from_secs(60);
const STREAM: usize = 16 * 1024 * 1024;

fn text() -> Vec<u8> {
    (0..20_000)
        .flat_map(|i| format!("line {i} of a text worth compressing\n").into_bytes())
        .collect()
}

/// The 64 KiB of the streamed text from byte `from` (a multiple of 64 KiB): numbers that
/// compress a few times, not a hundred.
fn stream_chunk(from: usize, buf: &mut Vec<u8>) {
    let mut i = from / 16;
    buf.clear();
    while buf.len() < 64 * 1024 {
        let line = format!("{:07} {:07}\n", i, (i * 2_654_435_761) % 9_999_991);
        buf.extend_from_slice(line.as_bytes());
        i += 1;
    }
}

fn stream_text() -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM + 64 * 1024);
    let mut buf = Vec::new();
    while out.len() < STREAM {
        stream_chunk(out.len(), &mut buf);
        out.extend_from_slice(&buf);
    }
    out.truncate(STREAM);
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

/// The 3 kB text `/short` answers: one segment, so it reaches the proxy whole with its head.
fn short_text() -> Vec<u8> {
    text()[..3000].to_vec()
}

/// The upstream: `/text` (a length, an ETag, ranges), `/stream` (16 MB streamed without a
/// length; bytes written counted in `written`), `/encoded` (gzip already), `/short`, `/tiny`,
/// `/png`.
fn upstream(written: Rc<Cell<usize>>) -> impl FnMut(SocketAddr, Reqd) + 'static {
    move |_peer, reqd: Reqd| {
        let path = reqd.request().uri().path().to_owned();
        let name = path.rsplit('/').next().unwrap_or("").to_owned();
        let range = reqd.request().headers().contains_key("range");
        let head = |ct: &str| Response::builder().header("content-type", ct);
        match name.as_str() {
            "text" if range => {
                let h = head("text/plain")
                    .status(206)
                    .header("content-range", format!("bytes 0-9/{}", text().len()))
                    .body(())
                    .unwrap();
                reqd.respond_with_bytes(h, &text()[..10]).unwrap();
            }
            "text" => {
                let h = head("text/plain; charset=utf-8")
                    .header("etag", "\"t1\"")
                    .header("accept-ranges", "bytes")
                    .body(())
                    .unwrap();
                reqd.respond_with_bytes(h, text()).unwrap();
            }
            "stream" => {
                fn more(
                    mut w: service::BodyWriter,
                    at: usize,
                    mut buf: Vec<u8>,
                    off: usize,
                    written: Rc<Cell<usize>>,
                ) {
                    let (mut at, mut off) = (at, off);
                    loop {
                        if off == buf.len() {
                            if at >= STREAM {
                                let _ = w.close();
                                return;
                            }
                            stream_chunk(at, &mut buf);
                            buf.truncate(STREAM - at);
                            off = 0;
                        }
                        match w.write(&buf[off..]) {
                            Ok(0) => return w.on_writable(move |w| more(w, at, buf, off, written)),
                            Ok(k) => {
                                off += k;
                                at += k;
                                written.set(at);
                            }
                            Err(_) => return,
                        }
                    }
                }
                let w = reqd
                    .respond_with_streaming(head("text/html").body(()).unwrap(), None)
                    .unwrap();
                more(w, 0, Vec::new(), 0, written.clone());
            }
            "encoded" => {
                let h = head("text/plain")
                    .header("content-encoding", "gzip")
                    .body(())
                    .unwrap();
                reqd.respond_with_bytes(h, gzip(&text())).unwrap();
            }
            "short" => {
                let h = head("text/plain").body(()).unwrap();
                reqd.respond_with_bytes(h, short_text()).unwrap();
            }
            "tiny" => {
                let h = head("text/plain").body(()).unwrap();
                reqd.respond_with_bytes(h, "tiny").unwrap();
            }
            _ => {
                let h = head("image/png").body(()).unwrap();
                reqd.respond_with_bytes(h, text()).unwrap();
            }
        }
    }
}

struct Net {
    pair: Pair,
    written: Rc<Cell<usize>>,
    _app: paf::appliance::Appliance,
}

fn start() -> Net {
    let config = r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/z/"
action = "proxy"
upstream = "up"
compress = ["br", "gzip"]
[[listener.route]]
path = "/plain/"
action = "proxy"
upstream = "up"
[[upstream]]
name = "up"
urls = ["http://198.18.0.1:8080"]
"#;
    let cfg = paf::config::parse(config, "test", &std::env::temp_dir()).expect("valid config");
    let mut pair = Pair::builder().mtu(9000).seed(13).build();
    let written = Rc::new(Cell::new(0));
    let svc = service::init(&mut pair.client, 8080).expect("upstream 8080");
    let _ = service::http(
        svc,
        paf::http::Config::default(),
        None,
        service::default_error_handler,
        upstream(written.clone()),
    );
    let app = paf::appliance::start(&mut pair.server, &cfg, Switch::new()).expect("start");
    Net {
        pair,
        written,
        _app: app,
    }
}

fn connect(net: &mut Net) -> ClientHandle {
    RawClient::connect(
        &mut net.pair.client,
        SocketAddr::new(IpAddr::from(B_V4), 80),
    )
    .unwrap()
}

/// One request on `c`; its response.
fn ask(net: &mut Net, c: &ClientHandle, method: &str, path: &str, extra: &str) -> ParsedResponse {
    c.send(format!("{method} {path} HTTP/1.1\r\nHost: paf.test\r\n{extra}\r\n").as_bytes());
    let mut buf = Vec::new();
    let mut got = None;
    net.pair.drive_until(LONG, path, |_| {
        buf.extend_from_slice(&c.take_input());
        got = parse_response(&buf, method == "HEAD").map(|(r, _)| r);
        got.is_some()
    });
    got.unwrap()
}

#[test]
fn compressible_proxied_responses_are_compressed_as_asked_and_only_then() {
    let mut net = start();
    let c = connect(&mut net);
    let text = text();
    for (enc, decode) in [
        ("gzip", gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", unbrotli as fn(&[u8]) -> Vec<u8>),
    ] {
        let accept = format!("Accept-Encoding: {enc}\r\n");
        let r = ask(&mut net, &c, "GET", "/z/text", &accept);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(enc));
        assert_eq!(r.header("vary"), Some("accept-encoding"));
        assert_eq!(r.header("etag"), Some("W/\"t1\""));
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.header("accept-ranges"), None);
        assert!(r.body.len() < text.len() / 5, "{enc}: {}", r.body.len());
        assert!(decode(&r.body) == text, "{enc}: decoded body differs");
        // Streamed without a length: compressed as it comes, 16 MB byte-exact.
        let r = ask(&mut net, &c, "GET", "/z/stream", &accept);
        assert_eq!(r.header("content-encoding"), Some(enc));
        assert!(r.body.len() < STREAM / 2, "{enc}: {}", r.body.len());
        assert!(decode(&r.body) == stream_text(), "{enc}: stream differs");
    }
    // Not asked: as it is, with Vary (it could have been compressed).
    let r = ask(&mut net, &c, "GET", "/z/text", "");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert_eq!(r.header("etag"), Some("\"t1\""));
    assert_eq!(r.header("content-length"), Some(&*text.len().to_string()));
    assert!(r.body == text);
    let both = "Accept-Encoding: gzip, br\r\n";
    // A range: the upstream's 206, as it is.
    let r = ask(
        &mut net,
        &c,
        "GET",
        "/z/text",
        &format!("{both}Range: bytes=0-9\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, &text[..10]);
    // Encoded by the upstream already: its bytes, untouched.
    let r = ask(&mut net, &c, "GET", "/z/encoded", both);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), None);
    assert!(gunzip(&r.body) == text);
    // HEAD: the upstream's head.
    let r = ask(&mut net, &c, "HEAD", "/z/text", both);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-length"), Some(&*text.len().to_string()));
    // A body that reaches the proxy whole with its head is compressed whole: sent with its
    // length (not chunked), decoded byte-exact; as it is when not asked.
    let short = short_text();
    let r = ask(&mut net, &c, "GET", "/z/short", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    assert!(r.body.len() < short.len() / 2, "{}", r.body.len());
    assert!(gunzip(&r.body) == short);
    let r = ask(&mut net, &c, "GET", "/z/short", "");
    assert_eq!(r.header("content-length"), Some(&*short.len().to_string()));
    assert!(r.body == short);
    // Too small, or not text: as they are.
    let r = ask(&mut net, &c, "GET", "/z/tiny", both);
    assert_eq!(
        (r.header("content-encoding"), r.body.as_slice()),
        (None, &b"tiny"[..])
    );
    let r = ask(&mut net, &c, "GET", "/z/png", both);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == text);
    // A proxy route without `compress`: off.
    for path in ["/plain/text", "/plain/stream"] {
        let r = ask(&mut net, &c, "GET", path, both);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
    c.close();
}

#[test]
fn a_client_that_stops_reading_a_compressed_stream_stops_the_upstream() {
    let mut net = start();
    let c = connect(&mut net);
    c.set_max_input(Some(16 * 1024));
    c.send(b"GET /z/stream HTTP/1.1\r\nHost: paf.test\r\nAccept-Encoding: gzip\r\n\r\n");
    // Ten seconds of a client that reads nothing more: the upstream is held back.
    net.pair.drive(Duration::from_secs(10), |_| false);
    let held = net.written.get();
    assert!(
        held > 0 && held < STREAM / 4,
        "the upstream wrote {held} of {STREAM} bytes to a client that stopped reading"
    );
    // It reads again: all of it, byte-exact.
    c.set_max_input(None);
    let mut buf = Vec::new();
    let mut got = None;
    net.pair.drive_until(LONG, "the rest of the stream", |_| {
        buf.extend_from_slice(&c.take_input());
        got = parse_response(&buf, false).map(|(r, _)| r);
        got.is_some()
    });
    let r = got.unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(gunzip(&r.body) == stream_text(), "stream differs");
    println!("proxy_compress: the upstream had written {held} bytes when the client stopped");
    c.close();
}

//! HTTP/2 on the in-memory wire and the virtual clock: the `h2` crate's client, over a raw
//! test connection, against paf's service serving HTTP/1.1-style handlers (`Reqd`) on h2c
//! (prior knowledge) and on TLS with ALPN `h2`.
//!
//! The client is polled from inside `Pair::drive`'s condition, so both loops and the client
//! move together: no thread, no runtime, timeouts at their exact virtual instant.
//!
//! Covered: GET and HEAD (heads as RFC 9113 wants them: no connection-specific fields), a
//! POST larger than the stream window echoed back (windows released as the handler reads), a
//! streamed 8 MB response byte for byte (send capacity), 300 requests on one connection with
//! at most `max_concurrent_streams` open, a handler that never reads stopping the client at
//! the window, GOAWAY on stop with the in-flight stream finished, the idle timeout, rapid
//! reset (GOAWAY `ENHANCE_YOUR_CALM`), an oversized header list (431), h2c turned off (505),
//! a client that never opens its window (cut at `write_timeout`), control floods (PING,
//! SETTINGS, PRIORITY, empty DATA: GOAWAY `ENHANCE_YOUR_CALM`, counted by kind; a PING flood
//! that reads nothing is cut at once, its output bounded) while a client pinging at a sane
//! rate is never cut, a CONTINUATION flood and an HPACK bomb (cut and counted), a stalled
//! request body (408 on its stream, the error handler told, the connection goes on), bodies
//! over `max_body_size` (413 on their stream), TLS with ALPN, and every appliance route (the
//! proxy to an HTTP/1.1 upstream included) with the `/metrics` counters.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::http::{Method, Request, Response, StatusCode};
use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use net::testing::B_V4;
use paf::http::Config;
use paf::service::builtin::blob_byte;
use paf::service::{self, BodyWriter, Handle, Initialized, Reqd, Switch};
use paf::testing::{ClientHandle, Pair, RawClient};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bound of virtual time for anything to happen.
const LONG: Duration = Duration::from_secs(60);

mod abuse;
mod appliance;
mod bodies;
mod floods;
mod limits;
mod raw;

use raw::*;

/// The raw client's bytes as the h2 client's IO.
struct Io {
    c: ClientHandle,
    pending: Vec<u8>,
    at: usize,
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at == self.pending.len() {
            self.pending = self.c.take_input();
            self.at = 0;
        }
        if self.at == self.pending.len() {
            return if self.c.is_eof() || self.c.is_done() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = (self.pending.len() - self.at).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.pending[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.c.send(data);
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A service on the pair's server and an h2 client connected to it.
struct Net {
    pair: Pair,
    handle: Handle,
    stop: Switch,
}

/// One h2 client connection: its `Connection` (polled alongside everything the test waits
/// for) and its request handle.
struct H2 {
    conn: Pin<Box<Connection<Io, Bytes>>>,
    /// How the connection future ended, once it has.
    ended: Option<Result<(), h2::Error>>,
    send: SendRequest<Bytes>,
}

fn waker() -> &'static Waker {
    Waker::noop()
}

impl Net {
    fn new(config: Config, tls: Option<paf::tls::ServerConfig>) -> Net {
        let mut pair = Pair::new();
        let svc = service::init(&mut pair.server, 80).expect("listen");
        let stop = Switch::new();
        let errors = record_errors;
        let Initialized(handle) = match tls {
            Some(tls) => service::https(svc, tls, config, Some(stop.clone()), errors, handler),
            None => service::http(svc, config, Some(stop.clone()), errors, handler),
        };
        Net { pair, handle, stop }
    }

    /// The appliance from `config` (relative paths from `dir`) on the server side, and an
    /// HTTP/1.1 upstream on the client's stack (port 8080) answering with what it received.
    fn appliance(config: &str, dir: &std::path::Path) -> Net {
        let cfg = paf::config::parse(config, "test", dir).expect("valid config");
        let mut pair = Pair::new();
        let up = service::init(&mut pair.client, 8080).expect("upstream listens");
        let _ = service::http(
            up,
            Config::default(),
            None,
            service::default_error_handler,
            |_peer, reqd: Reqd| {
                let r = reqd.request();
                let text = format!(
                    "{:?} {} host={} via={}",
                    r.version(),
                    r.uri(),
                    r.headers().get("host").map_or("-", |v| v.to_str().unwrap()),
                    r.headers().get("via").map_or("-", |v| v.to_str().unwrap()),
                );
                let head = Response::builder()
                    .header("connection", "keep-alive")
                    .header("transfer-encoding", "chunked")
                    .body(())
                    .unwrap();
                let mut w = reqd.respond_with_streaming(head, None).unwrap();
                w.write(text.as_bytes()).unwrap();
                w.close().unwrap();
            },
        );
        let stop = Switch::new();
        let app = paf::appliance::start(&mut pair.server, &cfg, stop.clone()).expect("start");
        let handle = app.handles[0].clone();
        Net { pair, handle, stop }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from((B_V4, 80))
    }

    /// Connects with h2c prior knowledge.
    fn connect(&mut self) -> H2 {
        let raw = RawClient::connect(&mut self.pair.client, Net::addr()).expect("connect");
        self.handshake(raw)
    }

    fn handshake(&mut self, raw: ClientHandle) -> H2 {
        self.handshake_with(raw, &h2::client::Builder::new())
    }

    fn handshake_with(&mut self, raw: ClientHandle, builder: &h2::client::Builder) -> H2 {
        let io = Io {
            c: raw.clone(),
            pending: Vec::new(),
            at: 0,
        };
        let mut hs = Box::pin(builder.handshake::<_, Bytes>(io));
        let mut got = None;
        self.pair.drive_until(LONG, "the h2 handshake", |_| {
            if let Poll::Ready(r) = hs.as_mut().poll(&mut Context::from_waker(waker())) {
                got = Some(r.expect("handshake"));
            }
            got.is_some()
        });
        let (send, conn) = got.expect("checked");
        H2 {
            conn: Box::pin(conn),
            ended: None,
            send,
        }
    }

    /// Drives until `f` is ready, polling the client's connection on the way.
    fn run<T>(&mut self, h: &mut H2, what: &str, mut f: impl FnMut(&mut H2) -> Poll<T>) -> T {
        let mut out = None;
        self.pair.drive_until(LONG, what, |_| {
            for _ in 0..4 {
                h.poll_conn();
                if let Poll::Ready(v) = f(h) {
                    out = Some(v);
                    return true;
                }
            }
            false
        });
        out.expect("checked")
    }

    /// Sends `req` with `body` and collects the response.
    fn fetch(&mut self, h: &mut H2, req: Request<()>, body: &[u8]) -> (Response<()>, Vec<u8>) {
        let fut = h.start(req, body);
        self.finish(h, fut)
    }

    fn finish(&mut self, h: &mut H2, fut: ResponseFuture) -> (Response<()>, Vec<u8>) {
        let mut fut = Box::pin(fut);
        let resp = self.run(h, "the response head", |_| {
            fut.as_mut()
                .poll(&mut Context::from_waker(waker()))
                .map(|r| r.expect("response"))
        });
        let (parts, mut body) = resp.into_parts();
        let mut data = Vec::new();
        self.run(h, "the response body", |_| loop {
            match body.poll_data(&mut Context::from_waker(waker())) {
                Poll::Ready(Some(Ok(b))) => {
                    data.extend_from_slice(&b);
                    let _ = body.flow_control().release_capacity(b.len());
                }
                Poll::Ready(Some(Err(e))) => panic!("body: {e}"),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        });
        (Response::from_parts(parts, ()), data)
    }

    fn stop(&mut self) {
        self.stop.turn_off();
        let handle = self.handle.clone();
        self.pair
            .drive_until(LONG, "the service to stop", |_| handle.is_finished());
    }
}

impl H2 {
    fn poll_conn(&mut self) {
        if self.ended.is_none() {
            if let Poll::Ready(r) = self.conn.as_mut().poll(&mut Context::from_waker(waker())) {
                self.ended = Some(r);
            }
        }
    }

    /// Starts a request; the body (if any) is sent whole (h2 buffers what the window holds
    /// back).
    fn start(&mut self, req: Request<()>, body: &[u8]) -> ResponseFuture {
        let (fut, mut stream) = self
            .send
            .send_request(req, body.is_empty())
            .expect("send_request");
        if !body.is_empty() {
            stream
                .send_data(Bytes::copy_from_slice(body), true)
                .expect("send_data");
        }
        fut
    }
}

fn get(path: &str) -> Request<()> {
    Request::builder()
        .uri(format!("http://paf.test{path}"))
        .body(())
        .unwrap()
}

/// An error handler's call: the error, and the failed request's version and path.
type Seen = (paf::http::Error, Option<(::http::Version, String)>);

thread_local! {
    /// Requests a handler keeps without answering (each test runs on its own thread).
    static KEPT: std::cell::RefCell<Vec<Reqd>> = const { std::cell::RefCell::new(Vec::new()) };
    /// What the error handler was given: the error and the failed request's version and path.
    static ERRORS: std::cell::RefCell<Vec<Seen>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The error handler: records its arguments, then sends the default response.
fn record_errors(
    _peer: SocketAddr,
    error: &paf::http::Error,
    request: Option<&Request<()>>,
    respond: service::ErrorResponse,
) {
    let req = request.map(|r| (r.version(), r.uri().path().to_owned()));
    ERRORS.with(|e| e.borrow_mut().push((*error, req)));
    drop(respond);
}

fn errors_seen() -> Vec<Seen> {
    ERRORS.with(|e| e.borrow().clone())
}

/// `/hello`: 5 bytes with a hop-by-hop field set by the handler; `/echo`: the body back;
/// `/blob/N`: N bytes streamed in 16 KiB writes; `/never-read`: never answered nor read.
fn handler(_peer: SocketAddr, reqd: Reqd) {
    let path = reqd.request().uri().path().to_owned();
    match path.as_str() {
        "/hello" => {
            let head = Response::builder()
                .header("connection", "keep-alive")
                .header("keep-alive", "timeout=5")
                .header("x-version", format!("{:?}", reqd.request().version()))
                .header(
                    "x-host",
                    reqd.request()
                        .headers()
                        .get("host")
                        .map_or("-", |v| v.to_str().unwrap()),
                )
                .body(())
                .unwrap();
            reqd.respond_with_bytes(head, "hello").unwrap();
        }
        "/echo" => {
            let r = reqd.clone();
            reqd.read_to_end(16 << 20, move |body| {
                r.respond_with_bytes(Response::new(()), body.unwrap())
                    .unwrap();
            });
        }
        // Kept unanswered (a dropped `Reqd` would answer 500).
        "/never-read" => KEPT.with(|k| k.borrow_mut().push(reqd)),
        // The body back, then trailers saying what the request's were.
        "/trailers" => {
            let r = reqd.clone();
            reqd.read_to_end(1 << 20, move |body| {
                let t = r.trailers().unwrap_or_default();
                let body = format!("body={}", String::from_utf8(body.unwrap()).unwrap());
                let mut w = r.respond_with_streaming(Response::new(()), None).unwrap();
                w.write(body.as_bytes()).unwrap();
                let mut out = ::http::HeaderMap::new();
                let got = t.get("x-sum").map_or("-", |v| v.to_str().unwrap());
                out.insert("x-got", got.parse().unwrap());
                let cookie = if t.contains_key("cookie") {
                    "kept"
                } else {
                    "dropped"
                };
                out.insert("x-cookie", cookie.parse().unwrap());
                out.insert("grpc-status", "0".parse().unwrap());
                out.insert("content-length", "1".parse().unwrap());
                w.close_with_trailers(&out).unwrap();
            });
        }
        p if p.starts_with("/blob/") => {
            let n: u64 = p["/blob/".len()..].parse().unwrap();
            let w = reqd
                .respond_with_streaming(Response::new(()), Some(n))
                .unwrap();
            blob(w, 0, n);
        }
        _ => reqd
            .respond_with_bytes(
                Response::builder().status(404).body(()).unwrap(),
                "not found",
            )
            .unwrap(),
    }
}

thread_local! {
    /// Body bytes the blob writers got taken (each test runs on its own thread).
    static TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Writes bytes `at..n` of the blob, then closes.
fn blob(mut w: BodyWriter, mut at: u64, n: u64) {
    let mut chunk = [0u8; 16 * 1024];
    while at < n {
        let len = (n - at).min(chunk.len() as u64) as usize;
        for (i, b) in chunk[..len].iter_mut().enumerate() {
            *b = blob_byte(at + i as u64);
        }
        match w.write(&chunk[..len]) {
            Ok(0) => return w.on_writable(move |w| blob(w, at, n)),
            Ok(k) => {
                TAKEN.with(|t| t.set(t.get() + k as u64));
                at += k as u64
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    w.close().unwrap();
}

#[test]
fn get_and_head_over_h2c() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let (resp, body) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, b"hello");
    let hd = resp.headers();
    assert_eq!(hd["content-length"], "5");
    assert_eq!(hd["server"], "paf");
    assert!(hd.contains_key("date"));
    // The handler sees an HTTP/1.1-shaped request: version 2, Host from :authority.
    assert_eq!(hd["x-version"], "HTTP/2.0");
    assert_eq!(hd["x-host"], "paf.test");
    // RFC 9113 §8.2.2: no connection-specific fields.
    assert!(!hd.contains_key("connection") && !hd.contains_key("keep-alive"));

    let head = Request::builder()
        .method(Method::HEAD)
        .uri("http://paf.test/hello")
        .body(())
        .unwrap();
    let (resp, body) = net.fetch(&mut h, head, b"");
    assert_eq!((resp.status(), body.len()), (StatusCode::OK, 0));
    assert_eq!(resp.headers()["content-length"], "5");
    let (resp, _) = net.fetch(&mut h, get("/nope"), b"");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let s = net.handle.stats();
    assert_eq!((s.h2_connections, s.h2_streams, s.accepted), (1, 3, 1));
    net.stop();
}

#[test]
fn many_streams_share_one_connection() {
    let config = Config {
        max_concurrent_streams: 16,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    // One exchange first, so that the client knows the server's SETTINGS before the burst
    // (streams opened beyond the limit before that are refused, as RFC 9113 §5.1.2 says).
    let _ = net.fetch(&mut h, get("/hello"), b"");
    let mut done = 0;
    let mut futs: Vec<Pin<Box<ResponseFuture>>> = Vec::new();
    let mut bodies = Vec::new();
    let total = 300;
    let mut started = 0;
    net.run(&mut h, "300 responses", |h| {
        // Start as many as the peer's SETTINGS allow.
        while started < total {
            match h.send.poll_ready(&mut Context::from_waker(waker())) {
                Poll::Ready(Ok(())) => {
                    let fut = h.start(get(&format!("/blob/{}", 1000 + started)), b"");
                    futs.push(Box::pin(fut));
                    started += 1;
                }
                Poll::Ready(Err(e)) => panic!("poll_ready: {e}"),
                Poll::Pending => break,
            }
        }
        futs.retain_mut(
            |f| match f.as_mut().poll(&mut Context::from_waker(waker())) {
                Poll::Ready(r) => {
                    let r = r.expect("response");
                    assert_eq!(r.status(), StatusCode::OK);
                    bodies.push(r.into_body());
                    false
                }
                Poll::Pending => true,
            },
        );
        bodies.retain_mut(|b| loop {
            match b.poll_data(&mut Context::from_waker(waker())) {
                Poll::Ready(Some(Ok(d))) => {
                    let _ = b.flow_control().release_capacity(d.len());
                }
                Poll::Ready(Some(Err(e))) => panic!("body: {e}"),
                Poll::Ready(None) => {
                    done += 1;
                    return false;
                }
                Poll::Pending => return true,
            }
        });
        if done == total {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let s = net.handle.stats();
    assert_eq!((s.h2_connections, s.h2_streams), (1, total as u64 + 1));
    net.stop();
}

#[test]
fn stop_sends_goaway_and_lets_the_stream_in_flight_finish() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let n = 4 << 20;
    let fut = h.start(get(&format!("/blob/{n}")), b"");
    let mut fut = Box::pin(fut);
    let resp = net.run(&mut h, "the response head", |_| {
        fut.as_mut()
            .poll(&mut Context::from_waker(waker()))
            .map(|r| r.unwrap())
    });
    net.stop.turn_off();
    let mut body = resp.into_body();
    let mut got = 0;
    net.run(&mut h, "the body after GOAWAY", |_| loop {
        match body.poll_data(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(d))) => {
                got += d.len();
                let _ = body.flow_control().release_capacity(d.len());
            }
            Poll::Ready(Some(Err(e))) => panic!("body: {e}"),
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    });
    assert_eq!(got, n);
    let handle = net.handle.clone();
    net.run(&mut h, "the connection to end", |h| {
        if h.ended.is_some() && handle.is_finished() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    assert!(matches!(h.ended, Some(Ok(()))), "{:?}", h.ended);
    let s = net.handle.stats();
    assert!(s.h2_goaways_sent >= 1, "{s:?}");
    assert_eq!(s.h2_protocol_errors, 0);
}

#[test]
fn an_idle_connection_closes_at_the_idle_timeout() {
    let idle = Duration::from_secs(5);
    let config = Config {
        idle_timeout: idle,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let _ = net.fetch(&mut h, get("/hello"), b"");
    let start = net.pair.now();
    net.run(&mut h, "the idle close", |h| {
        if h.ended.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let took = net.pair.now() - start;
    assert!(
        took >= idle && took < idle + Duration::from_millis(50),
        "{took:?}"
    );
    assert!(matches!(h.ended, Some(Ok(()))), "{:?}", h.ended);
}

#[test]
fn rapid_reset_gets_goaway_enhance_your_calm() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let mut sent = 0;
    net.run(&mut h, "the GOAWAY", |h| {
        if h.ended.is_some() {
            return Poll::Ready(());
        }
        for _ in 0..10 {
            if let Poll::Ready(Ok(())) = h.send.poll_ready(&mut Context::from_waker(waker())) {
                // A request whose body never comes, cancelled at once.
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("http://paf.test/never-read")
                    .body(())
                    .unwrap();
                if let Ok((_f, mut s)) = h.send.send_request(req, false) {
                    s.send_reset(h2::Reason::CANCEL);
                    sent += 1;
                }
            }
        }
        Poll::Pending
    });
    let e = h
        .ended
        .as_ref()
        .unwrap()
        .as_ref()
        .expect_err("a GOAWAY error");
    assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e}");
    let s = net.handle.stats();
    assert!(s.h2_protocol_errors >= 1 && s.h2_goaways_sent >= 1, "{s:?}");
    assert_eq!(
        s.h2_floods[paf::http::Flood::RapidReset.index()],
        1,
        "{s:?}"
    );
    assert!(sent < 2000, "cut off after {sent} resets");
}

#[test]
fn an_oversized_header_list_gets_431() {
    let config = Config {
        max_head_size: 4096,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let req = Request::builder()
        .uri("http://paf.test/hello")
        .header("x-big", "a".repeat(8000))
        .body(())
        .unwrap();
    let fut = h.start(req, b"");
    let mut fut = Box::pin(fut);
    let r = net.run(&mut h, "the answer", |_| {
        fut.as_mut().poll(&mut Context::from_waker(waker()))
    });
    assert_eq!(
        r.expect("a response").status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // The connection goes on.
    let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn with_h2c_off_the_preface_is_http1_and_gets_505() {
    let config = Config {
        h2c: false,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the 505", |_| {
        got.extend(c.take_input());
        c.is_eof()
    });
    assert!(
        got.starts_with(b"HTTP/1.1 505 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn https_offering_h2_serves_it_by_alpn_and_http1_to_the_others() {
    use paf::tls::{certs::TestCa, ClientConfig, ClientTrust, ServerConfig};
    let ca = TestCa::new("paf test CA").unwrap();
    let cert = ca.issue(&["paf.test"]).unwrap();
    let server = ServerConfig::builder(cert.identity())
        .alpn_protocols(&[b"h2", b"http/1.1"])
        .build()
        .unwrap();
    let trust = || ClientTrust::CaCerts(vec![ca.cert().clone()]);
    let h2_client = ClientConfig::builder(trust())
        .alpn_protocols(&[b"h2"])
        .build()
        .unwrap();
    let h1_client = ClientConfig::builder(trust()).build().unwrap();
    let name = paf::tls::ServerName::try_from("paf.test").unwrap();
    let mut net = Net::new(Config::default(), Some(server));

    let raw = RawClient::connect_tls(&mut net.pair.client, Net::addr(), &h2_client, name.clone())
        .unwrap();
    let mut h = net.handshake(raw);
    let (resp, body) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(
        (resp.status(), body.as_slice()),
        (StatusCode::OK, &b"hello"[..])
    );
    assert_eq!(resp.headers()["x-version"], "HTTP/2.0");

    let c = RawClient::connect_tls(&mut net.pair.client, Net::addr(), &h1_client, name).unwrap();
    c.send(b"GET /hello HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the HTTP/1.1 answer", |_| {
        got.extend(c.take_input());
        got.ends_with(b"hello")
    });
    assert!(got.starts_with(b"HTTP/1.1 200 "));
    let s = net.handle.stats();
    assert_eq!((s.h2_connections, s.accepted), (1, 2));
    drop(h);
    net.stop();
}

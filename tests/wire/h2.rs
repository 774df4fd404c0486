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
fn a_post_larger_than_the_window_is_echoed() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    // Four times the stream window (body_buffer_size, 64 KiB): the handler's reads must
    // release it for the upload to finish.
    let body: Vec<u8> = (0..256 * 1024u64).map(blob_byte).collect();
    let post = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/echo")
        .body(())
        .unwrap();
    let (resp, got) = net.fetch(&mut h, post, &body);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(got == body, "echo differs ({} bytes)", got.len());
    net.stop();
}

#[test]
fn a_streamed_response_arrives_byte_for_byte() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let n = 8 << 20;
    let (resp, got) = net.fetch(&mut h, get(&format!("/blob/{n}")), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
    assert_eq!(got.len() as u64, n);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &b)| b == blob_byte(i as u64)));
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
fn a_handler_that_never_reads_stops_the_upload_at_the_window() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let _ = net.fetch(&mut h, get("/hello"), b""); // (the server's SETTINGS are in)
    let post = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/never-read")
        .body(())
        .unwrap();
    let (_fut, mut stream) = h.send.send_request(post, false).unwrap();
    stream.reserve_capacity(1 << 20);
    let window = net.run(&mut h, "send capacity", |_| {
        match stream.poll_capacity(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(n))) => Poll::Ready(n),
            Poll::Ready(other) => panic!("capacity: {other:?}"),
            Poll::Pending => Poll::Pending,
        }
    });
    // The stream window (body_buffer_size) is all the client may send.
    assert_eq!(window, 64 * 1024);
    stream
        .send_data(Bytes::from(vec![0u8; window]), false)
        .unwrap();
    let until = net.pair.now() + Duration::from_secs(5);
    net.pair.drive(LONG, |p| {
        h.poll_conn();
        p.now() >= until
    });
    // Nothing was released: the handler read nothing.
    assert_eq!(
        stream.capacity(),
        0,
        "no window beyond what the handler read"
    );
    assert!(stream
        .poll_capacity(&mut Context::from_waker(waker()))
        .is_pending());
    // The unanswered request holds the connection open; stopping ends it at drain_timeout.
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

#[test]
fn appliance_routes_over_h2c() {
    let dir = std::env::temp_dir().join(format!("paf-h2-appliance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("www/big.bin"), &big).unwrap();
    let config = r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/health"
action = "health"
[[listener.route]]
path = "/metrics"
action = "metrics"
[[listener.route]]
host = "old.test"
action = "redirect"
to = "https://new.test{path}"
status = 308
[[listener.route]]
path = "/hello"
action = "static"
status = 201
body = "hi there"
[[listener.route]]
path = "/static"
action = "files"
root = "www"
[[listener.route]]
path = "/up"
action = "proxy"
upstream = "up"
[[upstream]]
name = "up"
urls = ["http://198.18.0.1:8080"]
"#;
    let mut net = Net::appliance(config, &dir);
    let mut h = net.connect();
    let at = |authority: &str, path: &str| {
        Request::builder()
            .uri(format!("http://{authority}{path}"))
            .body(())
            .unwrap()
    };

    let (r, body) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(
        (r.status().as_u16(), body.as_slice()),
        (201, &b"hi there"[..])
    );
    let (r, body) = net.fetch(&mut h, get("/health"), b"");
    assert_eq!((r.status().as_u16(), body.as_slice()), (200, &b"ok\n"[..]));
    let (r, _) = net.fetch(&mut h, at("old.test", "/a?b"), b"");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(r.headers()["location"], "https://new.test/a?b");

    // Files: whole, a range, and a conditional.
    let (r, body) = net.fetch(&mut h, get("/static/big.bin"), b"");
    assert_eq!(r.status().as_u16(), 200);
    assert!(body == big, "{} bytes", body.len());
    let etag = r.headers()["etag"].clone();
    let mut range = get("/static/big.bin");
    range
        .headers_mut()
        .insert("range", "bytes=10-19".parse().unwrap());
    let (r, body) = net.fetch(&mut h, range, b"");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(body, &big[10..20]);
    let mut cond = get("/static/big.bin");
    cond.headers_mut().insert("if-none-match", etag);
    let (r, body) = net.fetch(&mut h, cond, b"");
    assert_eq!((r.status().as_u16(), body.len()), (304, 0));

    // The proxy: HTTP/1.1 to the upstream (Host from :authority, Via "2 paf"); its chunked,
    // keep-alive answer comes back without connection-specific fields.
    let (r, body) = net.fetch(&mut h, at("paf.test", "/up/x?y=1"), b"");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "HTTP/1.1 /up/x?y=1 host=paf.test via=2 paf"
    );
    for hop in ["connection", "transfer-encoding", "keep-alive"] {
        assert!(!r.headers().contains_key(hop), "{hop} in {:?}", r.headers());
    }

    let (r, body) = net.fetch(&mut h, get("/metrics"), b"");
    assert_eq!(r.status().as_u16(), 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("paf_h2_connections_total{listener=\"web\"} 1\n"),
        "{text}"
    );
    // The seven before it (a connection's counters are added after each of its pumps).
    assert!(
        text.contains("paf_h2_streams_total{listener=\"web\"} 7\n"),
        "{text}"
    );
    net.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_never_opens_its_window_has_the_stream_reset_at_the_write_timeout() {
    let write_timeout = Duration::from_secs(2);
    let config = Config {
        write_timeout,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let fut = h.start(get("/blob/10000000"), b"");
    let mut fut = Box::pin(fut);
    let resp = net.run(&mut h, "the response head", |_| {
        fut.as_mut()
            .poll(&mut Context::from_waker(waker()))
            .map(|r| r.unwrap())
    });
    let start = net.pair.now();
    let mut body = resp.into_body();
    let mut got = 0;
    // Read what comes but never release it: the window stays shut after 64 KiB.
    let reason = net.run(&mut h, "the reset", |_| loop {
        match body.poll_data(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(d))) => got += d.len(),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(e.reason()),
            Poll::Ready(None) => panic!("the body ended after {got} bytes"),
            Poll::Pending => return Poll::Pending,
        }
    });
    let took = net.pair.now() - start;
    assert_eq!(reason, Some(h2::Reason::CANCEL));
    assert!(got <= 65_535, "{got} bytes past the window");
    assert!(
        took >= write_timeout && took < write_timeout + Duration::from_millis(50),
        "reset after {took:?}"
    );
    // The connection is still usable (once the client gives back the connection window the
    // unread body held).
    let _ = body.flow_control().release_capacity(got);
    drop(body);
    let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn a_ping_flood_that_reads_nothing_is_cut_at_once_with_its_output_bounded() {
    let mut net = Net::new(Config::default(), None);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    c.set_max_input(Some(1)); // reads (almost) nothing: every PING ACK stays with paf
    let mut sent = 0u64;
    let mut first = true;
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0");
        }
        // PING frames, 17 bytes each, up to 200,000 of them (3.4 MB).
        for _ in 0..1000 {
            out.extend_from_slice(b"\0\0\x08\x06\0\0\0\0\0");
            out.extend_from_slice(&sent.to_be_bytes());
            sent += 1;
        }
        sent < 200_000
    });
    let handle = net.handle.clone();
    let took = net.pair.drive_until(LONG, "the connection to be cut", |_| {
        handle.stats().active == 0 && handle.stats().accepted == 1
    });
    // The control budget runs out within the first 64 kB read: cut at once (the GOAWAY fits
    // in the socket's buffer), not at the write timeout.
    assert!(took < Duration::from_millis(100), "cut after {took:?}");
    let s = net.handle.stats();
    assert_eq!(s.h2_floods[paf::http::Flood::Ping.index()], 1, "{s:?}");
    // What paf held for the flood stayed bounded: its output cap plus the socket's buffers.
    assert!(s.max_output_pending <= 128 * 1024, "{s:?}");
}

/// A raw h2c connection that sends the preface, an empty SETTINGS, then what `more` adds each
/// time it is asked (until it returns false), and reads everything paf sends. Returns the
/// error code of the GOAWAY paf sent, if any, once paf closed.
fn raw_flood(net: &mut Net, mut more: impl FnMut(&mut Vec<u8>) -> bool + 'static) -> Option<u32> {
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut first = true;
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            out.extend_from_slice(&frame(0x4, 0, 0, &[]));
        }
        more(out)
    });
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "paf to close the flood", |_| {
        got.extend(c.take_input());
        c.is_eof()
    });
    goaway_code(&got)
}

/// One frame: type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The error code of the first GOAWAY among `frames` (paf's output, read frame by frame).
fn goaway_code(frames: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= frames.len() {
        let n = usize::from(frames[at]) << 16
            | usize::from(frames[at + 1]) << 8
            | usize::from(frames[at + 2]);
        if frames[at + 3] == 0x7 && at + 9 + 8 <= frames.len() {
            let p = &frames[at + 9..];
            return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + n;
    }
    None
}

/// A POST to `/never-read` on `stream`, its body still to come: HPACK with static-table
/// indexes (:method POST, :scheme http, :path as a literal, :authority as a literal).
fn post_headers(stream: u32, end_headers: bool) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x04, 11];
    block.extend_from_slice(b"/never-read");
    block.extend_from_slice(&[0x01, 8]);
    block.extend_from_slice(b"paf.test");
    frame(0x1, if end_headers { 0x4 } else { 0 }, stream, &block)
}

const ENHANCE_YOUR_CALM: u32 = 0xb;

#[test]
fn control_floods_that_read_their_answers_get_goaway_enhance_your_calm_and_are_counted() {
    let floods: [(&str, Vec<u8>, paf::http::Flood); 4] = [
        ("ping", frame(0x6, 0, 0, &[7; 8]), paf::http::Flood::Ping),
        (
            "settings",
            frame(0x4, 0, 0, &[]),
            paf::http::Flood::Settings,
        ),
        (
            "priority",
            frame(0x2, 0, 3, &[0, 0, 0, 1, 16]),
            paf::http::Flood::Priority,
        ),
        (
            "empty data",
            frame(0x0, 0, 1, &[]),
            paf::http::Flood::EmptyFrames,
        ),
    ];
    for (name, unit, kind) in floods {
        let mut net = Net::new(Config::default(), None);
        let mut sent = 0u32;
        let opening = post_headers(1, true);
        let code = raw_flood(&mut net, move |out| {
            if sent == 0 {
                out.extend_from_slice(&opening);
            }
            for _ in 0..100 {
                out.extend_from_slice(&unit);
            }
            sent += 100;
            sent < 20_000
        });
        let s = net.handle.stats();
        assert_eq!(code, Some(ENHANCE_YOUR_CALM), "{name}: {s:?}");
        assert_eq!(s.h2_floods[kind.index()], 1, "{name}: {s:?}");
        assert_eq!(s.h2_floods.iter().sum::<u64>(), 1, "{name}: {s:?}");
        KEPT.with(|k| k.borrow_mut().clear());
    }
}

#[test]
fn a_client_pinging_at_a_sane_rate_is_never_cut() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let mut ping = h.conn.as_mut().ping_pong().expect("ping_pong");
    // 50 pings a second for a minute: half the refill rate, three times the burst in all.
    for _ in 0..3000 {
        let mut fut = Box::pin(ping.ping(h2::Ping::opaque()));
        net.run(&mut h, "the pong", |_| {
            fut.as_mut().poll(&mut Context::from_waker(waker()))
        })
        .expect("pong");
        net.pair.advance(Duration::from_millis(20));
        let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let s = net.handle.stats();
    assert_eq!(s.h2_floods, [0; 7], "{s:?}");
    assert_eq!(s.h2_protocol_errors, 0, "{s:?}");
}

#[test]
fn a_continuation_flood_is_cut_and_counted() {
    let mut net = Net::new(Config::default(), None);
    let mut sent = 0u32;
    let code = raw_flood(&mut net, move |out| {
        if sent == 0 {
            out.extend_from_slice(&post_headers(1, false));
        }
        // Each CONTINUATION adds a literal field `x: y` and never ends the block.
        for _ in 0..100 {
            out.extend_from_slice(&frame(0x9, 0, 1, &[0x40, 1, b'x', 1, b'y']));
        }
        sent += 100;
        sent < 100_000
    });
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    let s = net.handle.stats();
    assert_eq!(
        s.h2_floods[paf::http::Flood::Continuation.index()],
        1,
        "{s:?}"
    );
    assert_eq!(s.h2_streams, 0, "{s:?}");
}

#[test]
fn an_hpack_bomb_is_cut_and_counted() {
    let mut net = Net::new(Config::default(), None);
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 8];
    block.extend_from_slice(b"paf.test");
    // A 4,000-byte field into the dynamic table (literal with incremental indexing), then
    // 1,000 one-byte references to it: 4 MB decoded from 5 kB.
    block.extend_from_slice(&[0x40, 1, b'x', 0x7f]);
    let mut len = 4000 - 127;
    while len >= 128 {
        block.push(0x80 | (len & 0x7f) as u8);
        len >>= 7;
    }
    block.push(len as u8);
    block.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(std::iter::repeat_n(0xbe, 1000));
    let bomb = frame(0x1, 0x5, 1, &block);
    let mut once = Some(bomb);
    let code = raw_flood(&mut net, move |out| {
        out.extend(once.take().unwrap_or_default());
        false
    });
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    let s = net.handle.stats();
    assert_eq!(s.h2_floods[paf::http::Flood::Hpack.index()], 1, "{s:?}");
}

#[test]
fn a_stalled_request_body_gets_408_on_its_stream_and_the_connection_goes_on() {
    let body_timeout = Duration::from_secs(4);
    let config = Config {
        body_timeout,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/echo")
        .body(())
        .unwrap();
    let (fut, mut stream) = h.send.send_request(req, false).expect("send_request");
    stream
        .send_data(Bytes::from_static(b"part of a body"), false)
        .expect("send_data");
    let start = net.pair.now();
    let (resp, body) = net.finish(&mut h, fut);
    let took = net.pair.now() - start;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body, b"408 Request Timeout\n");
    assert!(
        took >= body_timeout && took < body_timeout + Duration::from_millis(50),
        "{took:?}"
    );
    // The error handler was told, with the request (HTTP/2).
    assert_eq!(
        errors_seen(),
        vec![(
            paf::http::Error::BodyTimeout,
            Some((::http::Version::HTTP_2, "/echo".to_owned()))
        )]
    );
    // The rest of the body is refused, and the connection serves the next request.
    let _ = stream.send_data(Bytes::from_static(b"late"), true);
    let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    let s = net.handle.stats();
    assert_eq!(s.body_timeouts, 1, "{s:?}");
    assert_eq!(s.h2_protocol_errors, 0, "{s:?}");
}

#[test]
fn bodies_over_max_body_size_get_413_on_their_stream_declared_or_not() {
    let config = Config {
        max_body_size: Some(1000),
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    // No declared length: cut when the bytes exceed it.
    let post = |len: Option<usize>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("http://paf.test/echo");
        if let Some(n) = len {
            r = r.header("content-length", n);
        }
        r.body(()).unwrap()
    };
    let (resp, _) = net.fetch(&mut h, post(None), &[b'x'; 5000]);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Declared: refused before the handler sees it.
    let (resp, _) = net.fetch(&mut h, post(Some(5000)), &[b'x'; 5000]);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the limit, on the same connection.
    let (resp, body) = net.fetch(&mut h, post(Some(1000)), &[b'y'; 1000]);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, vec![b'y'; 1000]);
    let e = errors_seen();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].0, paf::http::Error::PayloadTooLarge);
    assert_eq!(e[0].1.as_ref().map(|r| r.0), Some(::http::Version::HTTP_2));
    // The declared one never reached the handler: the error handler gets no request.
    assert_eq!(e[1], (paf::http::Error::PayloadTooLarge, None));
}

#[test]
fn trailers_go_both_ways_on_h2_streams() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/trailers")
        .body(())
        .unwrap();
    let (fut, mut stream) = h.send.send_request(req, false).expect("send_request");
    stream
        .send_data(Bytes::from_static(b"abc"), false)
        .expect("send_data");
    let mut t = ::http::HeaderMap::new();
    t.insert("x-sum", "12".parse().unwrap());
    t.insert("cookie", "a=b".parse().unwrap());
    stream.send_trailers(t).expect("send_trailers");
    let mut fut = Box::pin(fut);
    let resp = net.run(&mut h, "the response head", |_| {
        fut.as_mut()
            .poll(&mut Context::from_waker(waker()))
            .map(|r| r.expect("response"))
    });
    let (parts, mut body) = resp.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    let mut data = Vec::new();
    net.run(&mut h, "the body", |_| loop {
        match body.poll_data(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(b))) => data.extend_from_slice(&b),
            Poll::Ready(Some(Err(e))) => panic!("body: {e}"),
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    });
    assert_eq!(data, b"body=abc");
    let trailers = net.run(&mut h, "the trailers", |_| {
        body.poll_trailers(&mut Context::from_waker(waker()))
            .map(|r| r.expect("trailers").expect("some trailers"))
    });
    assert_eq!(trailers["x-got"], "12");
    assert_eq!(trailers["x-cookie"], "dropped");
    assert_eq!(trailers["grpc-status"], "0");
    assert!(!trailers.contains_key("content-length"), "{trailers:?}");
}

#[test]
fn a_flood_that_goes_on_after_the_goaway_is_reset_and_its_socket_freed() {
    let mut net = Net::new(Config::default(), None);
    let base = net.pair.server.net().socket_count();
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut first = true;
    let mut sent = 0u32;
    // PINGs until long after the GOAWAY: the client reads everything, so only the data it
    // keeps sending after paf's close can hold paf's socket.
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            out.extend_from_slice(&frame(0x4, 0, 0, &[]));
        }
        for _ in 0..100 {
            out.extend_from_slice(&frame(0x6, 0, 0, &[1; 8]));
        }
        sent += 100;
        sent < 200_000
    });
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the reset", |_| {
        got.extend(c.take_input());
        c.is_reset()
    });
    assert_eq!(goaway_code(&got), Some(ENHANCE_YOUR_CALM));
    let s = net.pair.server.net().stats().expect("a userspace stack");
    assert!(s.data_after_close_resets >= 1, "{s:?}");
    // The socket is gone at once, not after the 30 s linger.
    net.pair
        .drive_until(Duration::from_secs(2), "the socket to be freed", |p| {
            p.server.net().socket_count() <= base
        });
}

#[test]
fn a_client_with_open_windows_that_reads_nothing_holds_a_bounded_amount_per_connection() {
    let mut net = Net::new(Config::default(), None);
    let raw = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    // Windows of 1 GiB per stream and for the connection: flow control holds nothing back.
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1 << 30)
        .initial_connection_window_size(1 << 30);
    let mut h = net.handshake_with(raw.clone(), &builder);
    // The client's TCP stops reading; the requests still go out (a few polls write them).
    raw.set_max_input(Some(1));
    let mut futs = Vec::new();
    for _ in 0..100 {
        futs.push(h.start(get("/blob/10000000"), b""));
    }
    let mut polls = 0;
    net.pair.drive(Duration::from_secs(5), |_| {
        if polls < 20 {
            polls += 1;
            h.poll_conn();
        }
        false
    });
    let (taken, received) = (TAKEN.with(|t| t.get()), raw.received());
    let held = taken.saturating_sub(received);
    // The client's socket buffer filled, then its window closed.
    assert!(
        received < 1_000_000,
        "{received}: the client read the responses"
    );
    // 100 streams of 10 MB: without a per-connection budget each queues up to its send
    // buffer (256 KiB: 26.9 MB held in all, measured). With it: 1 MiB in h2, plus paf's
    // 64 KiB output buffer and the socket's send buffer (1.6 MB measured).
    assert!(held > 100_000, "{held}: the test did not fill anything");
    assert!(
        held <= 2_000_000,
        "{held} bytes held for a connection that reads nothing"
    );
    drop(futs);
}

/// The frames in `bytes` (paf's output): type, flags, stream id.
fn frames_in(bytes: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let n = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        let id = u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]]);
        out.push((bytes[at + 3], bytes[at + 4], id & 0x7fff_ffff));
        at += 9 + n;
    }
    out
}

/// A GET of `/hello` on `stream`, ended: HPACK as [`post_headers`].
fn get_hello_headers(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend_from_slice(b"/hello");
    block.extend_from_slice(&[0x01, 8]);
    block.extend_from_slice(b"paf.test");
    frame(0x1, 0x4 | 0x1, stream, &block)
}

/// A service with `max_concurrent_streams` 4 and a raw h2c client that sent the preface, an
/// empty SETTINGS and `n` HEADERS frames from `headers` (streams 1, 3, 5, ...) at once.
fn four_streams_at_most(headers: impl Fn(u32) -> Vec<u8>, n: u32) -> (Net, ClientHandle) {
    let config = Config {
        max_concurrent_streams: 4,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for id in (0..n).map(|i| 2 * i + 1) {
        out.extend(headers(id));
    }
    c.send(&out);
    (net, c)
}

const RST_STREAM: u8 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

#[test]
fn streams_past_the_limit_are_held_then_refused() {
    // Four streams whose bodies never come (the handler keeps them), then four more at once.
    let (mut net, c) = four_streams_at_most(|id| post_headers(id, true), 8);
    let mut got = Vec::new();
    let handle = net.handle.clone();
    net.pair
        .drive_until(LONG, "four streams", |_| handle.stats().h2_streams == 4);
    let start = net.pair.now();
    net.pair.advance(Duration::from_millis(200));
    got.extend(c.take_input());
    // Nothing refused yet: the fifth stream is held, and everything behind it.
    assert!(
        !frames_in(&got).iter().any(|f| f.0 == RST_STREAM),
        "{:?}",
        frames_in(&got)
    );
    assert_eq!(net.handle.stats().h2_streams_held, 1);
    // At the end of the hold they go to h2, which refuses them (none of the four ended).
    net.pair.drive_until(LONG, "the refusals", |_| {
        got.extend(c.take_input());
        frames_in(&got).iter().filter(|f| f.0 == RST_STREAM).count() == 4
    });
    let took = net.pair.now() - start;
    let hold = Duration::from_millis(250);
    assert!(
        took >= hold && took < hold + Duration::from_millis(50),
        "{took:?}"
    );
    let mut refused = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let n =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        if got[at + 3] == RST_STREAM {
            let id = u32::from_be_bytes([got[at + 5], got[at + 6], got[at + 7], got[at + 8]]);
            let p = &got[at + 9..at + 13];
            refused.push((id, u32::from_be_bytes([p[0], p[1], p[2], p[3]])));
        }
        at += 9 + n;
    }
    assert_eq!(
        refused,
        [9, 11, 13, 15].map(|id| (id, REFUSED_STREAM)),
        "{:?}",
        frames_in(&got)
    );
    // The connection goes on: a stream past the limit again is held again.
    c.send(&post_headers(17, true));
    net.pair.advance(Duration::from_millis(100));
    let s = net.handle.stats();
    assert_eq!(
        (s.h2_streams, s.h2_streams_held, s.h2_goaways_sent, s.active),
        (4, 2, 0, 1),
        "{s:?}"
    );
    KEPT.with(|k| k.borrow_mut().clear());
}

#[test]
fn a_first_flight_past_the_limit_is_served_whole_as_streams_end() {
    // Eight GETs at once, as a client that has not read the SETTINGS yet may send them.
    let (mut net, c) = four_streams_at_most(get_hello_headers, 8);
    let mut got = Vec::new();
    let start = net.pair.now();
    let answered = |got: &[u8]| {
        frames_in(got)
            .iter()
            .filter(|f| f.0 == 0x0 && f.1 & 0x1 != 0)
            .count()
    };
    net.pair.drive_until(LONG, "eight answers", |_| {
        got.extend(c.take_input());
        answered(&got) == 8
    });
    let took = net.pair.now() - start;
    assert!(
        !frames_in(&got).iter().any(|f| f.0 == RST_STREAM),
        "{:?}",
        frames_in(&got)
    );
    // The first four at once, the others as the streams before them end (as many as the
    // limit are let off so): none refused, no hold waited out.
    assert!(took < Duration::from_millis(50), "{took:?}");
    let s = net.handle.stats();
    assert_eq!((s.h2_streams, s.h2_streams_held), (8, 1), "{s:?}");
}

#[test]
fn a_client_that_keeps_opening_streams_past_the_limit_waits_out_the_hold() {
    let (mut net, c) = four_streams_at_most(get_hello_headers, 20);
    let mut got = Vec::new();
    let start = net.pair.now();
    let count = |got: &[u8], kind: u8| frames_in(got).iter().filter(|f| f.0 == kind).count();
    // Four, then four more let off as they end (as many as the limit), then a hold.
    net.pair.drive_until(LONG, "eight answers", |_| {
        got.extend(c.take_input());
        count(&got, 0x0) == 8
    });
    net.pair.advance(Duration::from_millis(200));
    got.extend(c.take_input());
    assert_eq!((count(&got, 0x0), count(&got, RST_STREAM)), (8, 0));
    // Out of the hold: h2 takes four more and refuses the rest at once.
    net.pair.drive_until(LONG, "the rest", |_| {
        got.extend(c.take_input());
        count(&got, 0x0) + count(&got, RST_STREAM) == 20
    });
    let took = net.pair.now() - start;
    let hold = Duration::from_millis(250);
    assert!(
        took >= hold && took < hold + Duration::from_millis(50),
        "{took:?}"
    );
    let refused: Vec<u32> = frames_in(&got)
        .iter()
        .filter(|f| f.0 == RST_STREAM)
        .map(|f| f.2)
        .collect();
    assert_eq!(refused, (25..=39).step_by(2).collect::<Vec<u32>>());
    let s = net.handle.stats();
    assert_eq!((s.h2_streams, s.h2_streams_held), (12, 1), "{s:?}");
}

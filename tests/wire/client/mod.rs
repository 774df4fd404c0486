//! paf's client against paf's server over the in-memory wire, on the virtual clock: a server
//! runtime (smoltcp stack B, `paf::service` on port 80, small test apps on other ports) and the
//! client runtime (stack A), stepped together on the test thread by `paf::testing::Pair` (time
//! jumps to the next thing either has to do). No root needed, and no timing window: a timeout
//! fires at its virtual instant. One test runs on real threads and the real clock: blocking
//! requests through a `Remote` (see `support::real_clock`).
//!
//! Covered: 1,000 sequential requests over one pooled connection; 64 MB streamed uploads and
//! downloads, byte-exact, with `Content-Length` and chunked framing both ways; the server
//! closing mid-response (reported once); a stale pooled connection retried once for an
//! idempotent request and not for a POST; HTTPS against `paf::service::https` with a test CA
//! (pooled, the name verified, untrusted CA, no plaintext fallback); the friendly client with
//! redirects; a refused port; blocking requests from other threads through a `Remote`; the
//! pool bound and idle expiry; a response timeout; a body dropped unread (drained, connection
//! reused); stopping an HTTP + HTTPS server drains both (`stop.rs`); a body that came whole taken
//! at once (`whole.rs`).

mod h2;
mod pool;
mod stop;
mod support;
mod whole;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use ::http::{HeaderValue, Method, Request, Response, StatusCode};
use net::testing::{B_V4, B_V6};
use paf::client::{self, BodyEnd, BodyWriter, Client, Error, Options, ResponseBody};
use paf::ctx::Ctx;
use paf::http::client::{self as codec, ClientError};
use paf::service::{BodyWriter as ServerWriter, Reqd};
use paf::tls;
use support::{drive, idle_for, serve, serve_with, Net, LONG};

/// Byte `i` of the bodies the tests stream.
fn blob_byte(i: u64) -> u8 {
    (i % 251) as u8
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Feeds `data` into an FNV-1a state.
fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A base ctx for the server at `ip` (a literal: no DNS), port 80 unless given.
fn ctx_for(stack: &client::Agent, ip: impl Into<IpAddr>) -> Ctx {
    client::ctx(stack).add(&client::domain_name(), ip.into().to_string())
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

/// What a request ended with, collected by its handlers.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    peer: Option<SocketAddr>,
    body: Vec<u8>,
    end: Option<BodyEnd>,
    errors: Vec<Error>,
}

type Shared = Rc<RefCell<Outcome>>;

/// Reads a body chunk by chunk into `o` (the backpressured path).
fn read_all(body: ResponseBody, o: Shared) {
    let (b, o2) = (body.clone(), o.clone());
    body.schedule_read(
        move |data| {
            o.borrow_mut().body.extend_from_slice(data);
            read_all(b, o);
        },
        move |end| o2.borrow_mut().end = Some(end),
    );
}

/// Starts `req` on `ctx`; the outcome fills in as the loop runs.
fn start(ctx: &Ctx, req: Request<()>) -> (Shared, Result<BodyWriter, Error>) {
    start_with(ctx, codec::Config::default(), req)
}

/// [`start`] with an HTTP config (part of the endpoint a pooled connection is for).
fn start_with(
    ctx: &Ctx,
    config: codec::Config,
    req: Request<()>,
) -> (Shared, Result<BodyWriter, Error>) {
    let o: Shared = Rc::default();
    let (o1, o2) = (o.clone(), o.clone());
    let w = client::request(
        ctx,
        config,
        move |_peer, e| o1.borrow_mut().errors.push(e),
        move |peer, head, body| {
            {
                let mut o = o2.borrow_mut();
                o.status = Some(head.status());
                o.peer = Some(peer);
            }
            read_all(body, o2);
        },
        req,
    );
    (o, w)
}

/// A friendly-client request, both loops stepped until its outcome (what
/// `client::fetch_blocking` does on a thread whose server runs elsewhere: here the server's loop
/// shares the thread, so `fetch_blocking`, turning only the client's, would never see an answer).
fn fetch(net: &mut Net, c: &Client, method: Method, url: &str, body: Vec<u8>) -> FetchResult {
    let slot: Rc<RefCell<Option<FetchResult>>> = Rc::default();
    let s = slot.clone();
    c.request(method, url, Default::default(), body, move |r| {
        *s.borrow_mut() = Some(r);
    });
    drive(net, LONG, url, || slot.borrow().is_some());
    slot.take().unwrap()
}

type FetchResult = Result<client::Response, Error>;

fn hello() -> support::MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let body = format!("hello {}", reqd.request().uri().path());
            reqd.respond_with_bytes(Response::new(()), body).unwrap();
        })
    })
}

#[test]
fn a_thousand_requests_share_one_pooled_connection() {
    let (server, mut rt) = serve(hello());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    let done = Rc::new(Cell::new(0usize));
    let failures = Rc::new(RefCell::new(Vec::<String>::new()));
    fn next(ctx: Ctx, i: usize, done: Rc<Cell<usize>>, failures: Rc<RefCell<Vec<String>>>) {
        if i == 1000 {
            return;
        }
        let f = failures.clone();
        let (c2, d2, f2) = (ctx.clone(), done.clone(), failures.clone());
        let w = client::request(
            &ctx,
            codec::Config::default(),
            move |_, e| f.borrow_mut().push(format!("{i}: {e}")),
            move |_peer, head, body| {
                assert_eq!(head.status(), StatusCode::OK);
                body.read_to_end(1 << 20, move |r| {
                    assert_eq!(r.unwrap(), format!("hello /{i}").as_bytes(), "request {i}");
                    d2.set(d2.get() + 1);
                    // The next request starts from this callback: it gets the same connection.
                    next(c2, i + 1, d2, f2);
                });
            },
            get(&format!("/{i}")),
        )
        .unwrap();
        w.close().unwrap();
    }
    next(ctx, 0, done.clone(), failures.clone());
    drive(&mut rt, LONG, "1000 responses", || {
        done.get() == 1000 || !failures.borrow().is_empty()
    });
    assert!(failures.borrow().is_empty(), "{:?}", failures.borrow());
    let stats = stack.stats();
    assert_eq!(stats.connections, 1, "{stats:?}");
    assert_eq!(stats.reused, 999, "{stats:?}");
    assert_eq!((stats.errors, stats.retries), (0, 0), "{stats:?}");
    assert_eq!(stack.idle_connections(), 1);
    assert_eq!(server.handle.stats().accepted, 1);
    assert_eq!(server.handle.stats().requests, 1000);
    server.stop(&mut rt);
}

#[test]
fn requests_over_ipv6_and_the_friendly_client() {
    let (server, mut rt) = serve(hello());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let (o, w) = start(&ctx_for(&stack, B_V6), get("/six"));
    w.unwrap().close().unwrap();
    drive(&mut rt, LONG, "the response", || o.borrow().end.is_some());
    let o = o.borrow();
    assert_eq!(o.body, b"hello /six");
    assert_eq!(o.peer, Some(SocketAddr::new(B_V6.into(), 80)));
    let c = Client::new(&stack);
    let r = fetch(
        &mut rt,
        &c,
        Method::GET,
        "http://[fd00:198:18::2]/friendly",
        Vec::new(),
    )
    .unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::OK, &b"hello /friendly"[..])
    );
    assert_eq!(r.headers.get("content-length").unwrap(), "15");
    server.stop(&mut rt);
}

/// The server side of the streaming tests: `POST /upload` hashes the body as it arrives and
/// answers `"<bytes> <fnv>"`; `GET /stream?<n>[&len]` sends `n` pattern bytes, chunked or (with
/// `len`) with a `Content-Length`, in writes of up to 20,000 bytes.
fn streaming() -> support::MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| match reqd.request().uri().path() {
            "/upload" => {
                fn pump(reqd: Reqd, n: u64, h: u64) {
                    let (r1, r2) = (reqd.clone(), reqd.clone());
                    reqd.schedule_read(
                        move |data| pump(r1, n + data.len() as u64, fnv1a(h, data)),
                        move |end| {
                            assert_eq!(end, paf::service::BodyEnd::Complete);
                            let body = format!("{n} {h:016x}");
                            r2.respond_with_bytes(Response::new(()), body).unwrap();
                        },
                    );
                }
                pump(reqd, 0, FNV_OFFSET);
            }
            _ => {
                let q = reqd.request().uri().query().unwrap_or("0").to_owned();
                let (n, len) = q.split_once('&').unwrap_or((&q, ""));
                let total: u64 = n.parse().unwrap();
                fn more(mut w: ServerWriter, mut at: u64, total: u64) {
                    let mut buf = vec![0u8; 20_000];
                    while at < total {
                        let n = (total - at).min(buf.len() as u64) as usize;
                        for (k, b) in buf[..n].iter_mut().enumerate() {
                            *b = blob_byte(at + k as u64);
                        }
                        match w.write(&buf[..n]).unwrap() {
                            0 => return w.on_writable(move |w| more(w, at, total)),
                            k => at += k as u64,
                        }
                    }
                    w.close().unwrap();
                }
                let length = (len == "len").then_some(total);
                let w = reqd
                    .respond_with_streaming(Response::new(()), length)
                    .unwrap();
                more(w, 0, total);
            }
        })
    })
}

/// Writes `total` pattern bytes through `w` as fast as it takes them; `hash` gets their FNV.
fn upload(mut w: BodyWriter, mut at: u64, total: u64, hash: Rc<Cell<u64>>) {
    let mut buf = vec![0u8; 50_000];
    while at < total {
        let n = (total - at).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = blob_byte(at + k as u64);
        }
        match w.write(&buf[..n]).unwrap() {
            0 => return w.on_writable(move |w| upload(w, at, total, hash)),
            k => {
                hash.set(fnv1a(hash.get(), &buf[..k]));
                at += k as u64;
            }
        }
    }
    w.close().unwrap();
}

/// Checks a streamed download against the pattern as it arrives, chunk by chunk (a
/// [`client::BodyReader`] of its own, where [`read_all`] uses two closures).
fn check_download(
    body: ResponseBody,
    got: Rc<Cell<u64>>,
    biggest: Rc<Cell<usize>>,
    end: Rc<Cell<Option<BodyEnd>>>,
) {
    struct Check {
        body: ResponseBody,
        got: Rc<Cell<u64>>,
        biggest: Rc<Cell<usize>>,
        end: Rc<Cell<Option<BodyEnd>>>,
    }
    impl client::BodyReader for Check {
        fn data(self: Box<Self>, data: &[u8]) {
            let at = self.got.get();
            for (k, x) in data.iter().enumerate() {
                assert_eq!(*x, blob_byte(at + k as u64), "byte {}", at + k as u64);
            }
            self.got.set(at + data.len() as u64);
            self.biggest.set(self.biggest.get().max(data.len()));
            check_download(self.body, self.got, self.biggest, self.end);
        }

        fn end(self: Box<Self>, end: BodyEnd) {
            self.end.set(Some(end));
        }
    }
    body.clone().schedule(Check {
        body,
        got,
        biggest,
        end,
    });
}

/// The CPU time of this thread (both loops run on it), from Linux's schedstat; `None`
/// elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Prints the CPU seconds `what` took since `since` (wall time means nothing on the virtual
/// clock; neither is asserted).
fn report_cpu(what: &str, since: Option<Duration>) {
    if let (Some(a), Some(b)) = (since, thread_cpu()) {
        eprintln!("{what}: {:.2} CPU s", (b - a).as_secs_f64());
    }
}

#[test]
fn streamed_64_mb_bodies_are_byte_exact_both_ways_with_both_framings() {
    // 4 × 64 MB through two stacks, for seconds of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    const TOTAL: u64 = 64 << 20;
    let cfg = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let (server, mut rt) = serve_with(cfg, streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    for chunked in [true, false] {
        // Upload.
        let cpu = thread_cpu();
        let mut req = Request::post("/upload").body(()).unwrap();
        let framing = if chunked {
            ("transfer-encoding", "chunked".to_owned())
        } else {
            ("content-length", TOTAL.to_string())
        };
        req.headers_mut()
            .insert(framing.0, HeaderValue::from_str(&framing.1).unwrap());
        let (o, w) = start(&ctx, req);
        let hash = Rc::new(Cell::new(FNV_OFFSET));
        upload(w.unwrap(), 0, TOTAL, hash.clone());
        drive(&mut rt, LONG, "the upload's response", || {
            o.borrow().end.is_some() || !o.borrow().errors.is_empty()
        });
        let o = o.borrow();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(
            std::str::from_utf8(&o.body).unwrap(),
            format!("{TOTAL} {:016x}", hash.get()),
            "chunked upload: {chunked}"
        );
        report_cpu(&format!("upload of 64 MB (chunked: {chunked})"), cpu);
        // Download.
        let cpu = thread_cpu();
        let path = if chunked {
            format!("/stream?{TOTAL}")
        } else {
            format!("/stream?{TOTAL}&len")
        };
        let (got, biggest, end) = (
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(None)),
        );
        let (g, m, e) = (got.clone(), biggest.clone(), end.clone());
        let errors = Rc::new(RefCell::new(Vec::new()));
        let errs = errors.clone();
        client::request(
            &ctx,
            codec::Config::default(),
            move |_, e| errs.borrow_mut().push(e),
            move |_peer, head, body| {
                let framed = head.headers().get("transfer-encoding").is_some();
                assert_eq!(framed, chunked, "{head:?}");
                check_download(body, g, m, e);
            },
            get(&path),
        )
        .unwrap()
        .close()
        .unwrap();
        drive(&mut rt, LONG, "the download", || {
            end.get().is_some() || !errors.borrow().is_empty()
        });
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
        assert_eq!((got.get(), end.get()), (TOTAL, Some(BodyEnd::Complete)));
        // Backpressure: chunks are at most the read chunk, nothing piles up.
        assert!(
            biggest.get() <= Options::default().read_chunk,
            "{}",
            biggest.get()
        );
        report_cpu(&format!("download of 64 MB (chunked: {chunked})"), cpu);
    }
    // All four exchanges on one connection.
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut rt);
}

#[test]
fn a_server_closing_mid_response_is_reported_exactly_once() {
    let (server, mut rt) = serve(Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let mut w = reqd
                .respond_with_streaming(Response::new(()), Some(100_000))
                .unwrap();
            assert_eq!(w.write(&[7u8; 1000]).unwrap(), 1000);
            drop(w); // abandoned: flushed, then the connection closes
        })
    }));
    let stack = client::Agent::attach(&mut rt, Options::default());
    let (o, w) = start(&ctx_for(&stack, B_V4), get("/cut"));
    w.unwrap().close().unwrap();
    drive(&mut rt, LONG, "the failure", || {
        !o.borrow().errors.is_empty()
    });
    // Nothing more comes, however long the loops run (a minute of virtual time: free).
    idle_for(&mut rt, Duration::from_secs(60));
    let o = o.borrow();
    assert_eq!(o.status, Some(StatusCode::OK));
    assert_eq!(
        o.body,
        vec![7u8; 1000],
        "the bytes before the cut were delivered"
    );
    assert_eq!(o.end, Some(BodyEnd::Aborted));
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert!(
        matches!(
            o.errors[0],
            Error::Http {
                error: ClientError::UnexpectedEof,
                peer
            } if peer == SocketAddr::new(B_V4.into(), 80)
        ),
        "{:?}",
        o.errors[0]
    );
    assert_eq!(stack.stats().errors, 1);
    assert_eq!(stack.connections(), 0);
    server.stop(&mut rt);
}

/// A raw server on port 81: answers the first request of each connection with `ok`, and
/// closes the connection without answering when a second one arrives on it — what a keep-alive
/// connection the server dropped just as the client reused it looks like.
struct OneShot {
    conns: std::collections::HashMap<net::ConnId, (Vec<u8>, usize)>,
}

impl paf::App for OneShot {
    fn handle_accept(
        &mut self,
        cx: &mut paf::Cx<'_>,
        _l: net::ListenerId,
        c: net::ConnId,
        _p: SocketAddr,
    ) {
        self.conns.insert(c, (Vec::new(), 0));
        self.handle_ready(cx, c);
    }

    fn handle_ready(&mut self, cx: &mut paf::Cx<'_>, c: net::ConnId) {
        let Some((buf, answered)) = self.conns.get_mut(&c) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let mut eof = false;
        loop {
            match cx.recv(c, &mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let heads = buf.windows(4).filter(|w| w == b"\r\n\r\n").count();
        if heads > 1 || eof {
            self.conns.remove(&c);
            cx.close(c);
        } else if heads == 1 && *answered == 0 {
            *answered = 1;
            let _ = cx.send(c, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
}

#[test]
fn a_stale_pooled_connection_is_retried_once_for_idempotent_requests_only() {
    let (server, mut rt) = serve(hello());
    let app = OneShot {
        conns: Default::default(),
    };
    rt.pair
        .server
        .add(app, |_, cx| cx.listen(81, 16).map(|_| ()))
        .unwrap();
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4).add(&client::port(), 81);
    let run = |rt: &mut Net, req: Request<()>| {
        let (o, w) = start(&ctx, req);
        w.unwrap().close().unwrap();
        drive(rt, LONG, "an outcome", || {
            o.borrow().end.is_some() || !o.borrow().errors.is_empty()
        });
        o
    };
    let a = run(&mut rt, get("/a"));
    assert_eq!(a.borrow().body, b"ok");
    // The pooled connection takes the GET and closes: sent again on a new one.
    let b = run(&mut rt, get("/b"));
    assert!(b.borrow().errors.is_empty(), "{:?}", b.borrow().errors);
    assert_eq!(b.borrow().body, b"ok");
    let s = stack.stats();
    assert_eq!((s.connections, s.reused, s.retries), (2, 1, 1), "{s:?}");
    // A POST is not idempotent: the same failure is reported, once.
    let mut post = Request::post("/c").body(()).unwrap();
    post.headers_mut()
        .insert("content-length", HeaderValue::from_static("0"));
    let c = run(&mut rt, post);
    let c = c.borrow();
    assert_eq!(c.errors.len(), 1);
    assert!(
        matches!(
            c.errors[0],
            Error::Http {
                error: ClientError::ClosedBeforeResponse,
                ..
            }
        ),
        "{:?}",
        c.errors[0]
    );
    assert_eq!(stack.stats().retries, 1);
    server.stop(&mut rt);
}

#[test]
fn a_refused_port_is_a_connect_error_naming_the_peer() {
    let (server, mut rt) = serve(hello());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let (o, w) = start(&ctx_for(&stack, B_V4).add(&client::port(), 9), get("/"));
    w.unwrap().close().unwrap();
    drive(&mut rt, LONG, "the error", || !o.borrow().errors.is_empty());
    let e = &o.borrow().errors[0];
    assert!(
        matches!(
            e,
            Error::Connect {
                failure: client::ConnectFailure::Refused,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "cannot connect to 198.18.0.2:9: connection refused"
    );
    assert_eq!(o.borrow().errors.len(), 1);
    server.stop(&mut rt);
}

#[test]
fn the_friendly_client_follows_redirects_when_asked() {
    let (server, mut rt) = serve(Box::new(|| {
        Box::new(|_peer, reqd: Reqd| match reqd.request().uri().path() {
            "/old" => {
                let mut head = Response::new(());
                *head.status_mut() = StatusCode::FOUND;
                head.headers_mut()
                    .insert("location", HeaderValue::from_static("/new"));
                reqd.respond_with_bytes(head, "moved").unwrap();
            }
            path => {
                let body = format!("{} {path}", reqd.request().method());
                reqd.respond_with_bytes(Response::new(()), body).unwrap();
            }
        })
    }));
    let stack = client::Agent::attach(&mut rt, Options::default());
    let plain = Client::new(&stack);
    let old = |rt: &mut Net, c: &Client, m: Method| {
        fetch(rt, c, m, "http://198.18.0.2/old", b"x".to_vec()).unwrap()
    };
    let r = old(&mut rt, &plain, Method::GET);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::FOUND, &b"moved"[..])
    );
    let follow = plain.clone().follow_redirects(2);
    let r = old(&mut rt, &follow, Method::POST);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::OK, &b"GET /new"[..])
    );
    assert_eq!(r.url, "http://198.18.0.2/new");
    // Every request went over the one pooled connection.
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut rt);
}

#[test]
fn https_with_a_test_ca_verifies_the_name_pools_and_never_falls_back_to_plain_tcp() {
    let ca = tls::certs::TestCa::new("client_wire CA").unwrap();
    let identity = ca.issue(&["paf.test"]).unwrap().identity();
    let server_config = tls::ServerConfig::builder(identity).build().unwrap();
    let tls_hello: support::MakeHandler = Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let body = format!("tls {}", reqd.request().uri().path());
            reqd.respond_with_bytes(Response::new(()), body).unwrap();
        })
    });
    let (server, mut rt) = support::serve_full(
        paf::http::Config::default(),
        hello(),
        Some((server_config, tls_hello)),
    );
    let stack = client::Agent::attach(&mut rt, Options::default());
    let trust = tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .build()
        .unwrap();
    // The name for SNI and verification, the address given (no DNS on the wire).
    let ctx = |name: &str, tls: &tls::ClientConfig| {
        client::ctx(&stack)
            .add(&client::domain_name(), name.to_owned())
            .add(&client::ipaddr(), IpAddr::from(B_V4))
            .add(&client::tls_config(), tls.clone())
    };
    let run = |rt: &mut Net, ctx: &Ctx, path: &str| {
        let (o, w) = start(ctx, get(path));
        w.unwrap().close().unwrap();
        drive(rt, LONG, "an outcome", || {
            o.borrow().end.is_some() || !o.borrow().errors.is_empty()
        });
        o
    };
    for path in ["/one", "/two"] {
        let o = run(&mut rt, &ctx("paf.test", &trust), path);
        let o = o.borrow();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(o.body, format!("tls {path}").as_bytes());
        assert_eq!(o.peer, Some(SocketAddr::new(B_V4.into(), 443)));
    }
    assert_eq!(
        stack.stats().connections,
        1,
        "both requests on one TLS connection"
    );
    // A certificate for another name; a CA the client does not trust.
    let webpki = tls::ClientConfig::webpki_roots().unwrap();
    let cases = [
        (ctx("wrong.test", &trust), "NotValidForName"),
        (ctx("paf.test", &webpki), "UnknownIssuer"),
    ];
    for (ctx, want) in cases {
        let o = run(&mut rt, &ctx, "/x");
        let o = o.borrow();
        assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
        let Error::Tls { peer, error } = &o.errors[0] else {
            panic!("{:?}", o.errors[0]);
        };
        assert_eq!(*peer, SocketAddr::new(B_V4.into(), 443));
        assert!(format!("{error:?}").contains(want), "{error:?}");
    }
    // No plaintext fallback: the HTTP service on port 80 never saw a connection; the HTTPS one
    // saw three (the pooled one, and one per failed handshake).
    assert_eq!(server.handle.stats().accepted, 0);
    assert_eq!(server.handles[1].stats().accepted, 3);
    server.stop(&mut rt);
}

/// The one test on real threads and the real clock (see `support::real_clock` for why): the
/// server's loop on a thread, the client's on another, four more threads sending through a
/// `Remote`.
#[test]
fn remote_handles_send_blocking_requests_from_other_threads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    let (server, end) = support::real_clock::serve(paf::http::Config::default(), hello());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let s = stop.clone();
    let loop_thread = std::thread::spawn(move || {
        let mut rt = end.runtime();
        let stack = client::Agent::attach(&mut rt, Options::default());
        tx.send((stack.remote(), rt.waker())).unwrap();
        rt.run_until(|_| s.load(Ordering::SeqCst)).unwrap();
        stack.stats()
    });
    let (remote, waker) = rx.recv().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = remote.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let resp = r.get(&format!("http://198.18.0.2/{t}/{i}")).unwrap();
                    assert_eq!(resp.body, format!("hello /{t}/{i}").as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let e = remote
        .fetch(
            Method::GET,
            "http://198.18.0.2:9/",
            Default::default(),
            Vec::new(),
            None,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    server.stop();
    stop.store(true, Ordering::SeqCst);
    waker.wake();
    let stats = loop_thread.join().unwrap();
    assert_eq!(stats.requests, 101);
    assert!(stats.connections <= 5, "{stats:?}");
    // The loop is gone: a blocking call says so instead of hanging.
    assert!(matches!(
        remote.get("http://198.18.0.2/"),
        Err(Error::Stopped)
    ));
}

#[test]
fn the_pool_is_bounded_per_endpoint_and_idle_connections_expire() {
    let (server, mut rt) = serve(hello());
    let options = Options {
        max_per_endpoint: 2,
        idle_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut rt, options);
    let ctx = ctx_for(&stack, B_V4);
    let outcomes: Vec<_> = (0..6)
        .map(|i| {
            let (o, w) = start(&ctx, get(&format!("/{i}")));
            w.unwrap().close().unwrap();
            o
        })
        .collect();
    drive(&mut rt, LONG, "six responses", || {
        outcomes.iter().all(|o| o.borrow().end.is_some())
    });
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.borrow().body, format!("hello /{i}").as_bytes());
    }
    let s = stack.stats();
    assert_eq!((s.connections, s.reused), (2, 4), "{s:?}");
    assert_eq!(stack.idle_connections(), 2);
    // Idle for idle_timeout: both are closed, at that very virtual instant (was: at some point
    // within two minutes of wall time).
    let took = drive(&mut rt, LONG, "the idle expiry", || {
        stack.connections() == 0
    });
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(301),
        "closed after {took:?} idle"
    );
    assert_eq!(server.handle.stats().accepted, 2);
    server.stop(&mut rt);
}

/// A ctx whose address comes later, as a DNS answer would: its `ipaddr` fold returns a pending
/// step, and the completers are kept for the test to complete.
fn ctx_answered_later(
    stack: &client::Agent,
) -> (Ctx, Rc<RefCell<Vec<paf::ctx::Completer<IpAddr>>>>) {
    let pending: Rc<RefCell<Vec<paf::ctx::Completer<IpAddr>>>> = Rc::default();
    let p = pending.clone();
    let ctx = client::ctx(stack)
        .add(&client::domain_name(), "later.test".to_owned())
        .fold_first(
            &client::ipaddr(),
            paf::ctx::req(&client::domain_name()),
            move |_name: String| {
                let (promise, completer) = paf::ctx::promise();
                p.borrow_mut().push(completer);
                paf::ctx::Step::Pending(promise)
            },
        );
    (ctx, pending)
}

/// Requests whose ctx waits go once it completes, and past the endpoint's limit they wait for
/// its one connection. (The client looks for resolving and waiting requests only when
/// something may have changed for them: none may be forgotten.)
#[test]
fn requests_wait_for_their_ctx_then_for_a_free_connection() {
    let (server, mut rt) = serve(hello());
    let options = Options {
        max_per_endpoint: 1,
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut rt, options);
    let (ctx, pending) = ctx_answered_later(&stack);
    let outcomes: Vec<_> = (0..3)
        .map(|i| {
            let (o, w) = start(&ctx, get(&format!("/{i}")));
            w.unwrap().close().unwrap();
            o
        })
        .collect();
    idle_for(&mut rt, Duration::from_millis(50));
    assert!(outcomes.iter().all(|o| o.borrow().status.is_none()));
    assert_eq!(pending.borrow().len(), 3, "one pending step per request");
    assert_eq!(stack.connections(), 0);
    // Answered together: two of them wait for the one connection.
    let completers: Vec<_> = pending.borrow_mut().drain(..).collect();
    for c in completers {
        c.complete(IpAddr::from(B_V4));
    }
    drive(&mut rt, LONG, "three responses", || {
        outcomes.iter().all(|o| o.borrow().end.is_some())
    });
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.borrow().body, format!("hello /{i}").as_bytes());
    }
    let s = stack.stats();
    assert_eq!((s.connections, s.reused), (1, 2), "{s:?}");
    server.stop(&mut rt);
}

/// `on_writable` is called for a request that is not on a connection yet (its ctx waits), and
/// the body written then goes once it is (the streaming server hashes what it got).
#[test]
fn on_writable_is_called_before_the_request_has_a_connection() {
    let (server, mut rt) = serve(streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let (ctx, pending) = ctx_answered_later(&stack);
    let req = Request::post("/upload")
        .header("content-length", "5")
        .body(())
        .unwrap();
    let (o, w) = start(&ctx, req);
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    w.unwrap().on_writable(move |mut w| {
        c.set(true);
        assert_eq!(w.write(b"hello"), Ok(5));
        w.close().unwrap();
    });
    idle_for(&mut rt, Duration::from_millis(10));
    assert!(called.get(), "on_writable waited for a connection");
    assert_eq!(stack.connections(), 0);
    let completer = pending.borrow_mut().pop().expect("a pending step");
    completer.complete(IpAddr::from(B_V4));
    drive(&mut rt, LONG, "the upload's answer", || {
        o.borrow().end.is_some()
    });
    let expected = format!("5 {:016x}", fnv1a(FNV_OFFSET, b"hello"));
    assert_eq!(o.borrow().body, expected.as_bytes());
    server.stop(&mut rt);
}

#[test]
fn idle_connections_past_max_idle_close_the_one_idle_longest() {
    let (server, mut rt) = serve(hello());
    let options = Options {
        max_idle: 2,
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut rt, options);
    let ctx = ctx_for(&stack, B_V4);
    // Three endpoints (the HTTP config is part of one), one after the other.
    let config = |i: u64| codec::Config {
        response_timeout: Duration::from_secs(10 + i),
        ..codec::Config::default()
    };
    let fetch_on = |rt: &mut Net, i: u64| {
        let (o, w) = start_with(&ctx, config(i), get(&format!("/{i}")));
        w.unwrap().close().unwrap();
        drive(rt, LONG, "a response", || o.borrow().end.is_some());
        assert_eq!(o.borrow().body, format!("hello /{i}").as_bytes());
    };
    for i in 0..3 {
        fetch_on(&mut rt, i);
        support::idle_for(&mut rt, Duration::from_millis(10));
    }
    assert_eq!(stack.idle_connections(), 2);
    // The first endpoint's connection was the one closed; the third's is reused.
    fetch_on(&mut rt, 2);
    let s = stack.stats();
    assert_eq!((s.connections, s.reused), (3, 1), "{s:?}");
    fetch_on(&mut rt, 0);
    let s = stack.stats();
    assert_eq!((s.connections, s.reused), (4, 1), "{s:?}");
    assert_eq!(stack.idle_connections(), 2);
    server.stop(&mut rt);
}

#[test]
fn a_server_that_never_answers_is_a_timeout_reported_once() {
    // The parked request may hold the server's stop for its drain timeout: short (on virtual
    // time it costs no wall time either way).
    let cfg = paf::http::Config {
        drain_timeout: Duration::from_millis(100),
        ..paf::http::Config::default()
    };
    let parker: support::MakeHandler = Box::new(|| {
        let parked: Rc<RefCell<Vec<Reqd>>> = Rc::default();
        Box::new(move |_peer, reqd: Reqd| parked.borrow_mut().push(reqd))
    });
    let (server, mut rt) = serve_with(cfg, parker);
    let stack = client::Agent::attach(&mut rt, Options::default());
    let o: Shared = Rc::default();
    let o1 = o.clone();
    let config = codec::Config {
        response_timeout: Duration::from_millis(200),
        ..codec::Config::default()
    };
    client::request(
        &ctx_for(&stack, B_V4),
        config,
        move |_peer, e| o1.borrow_mut().errors.push(e),
        |_, _, _| panic!("no response expected"),
        get("/never"),
    )
    .unwrap()
    .close()
    .unwrap();
    let took = drive(&mut rt, LONG, "the timeout", || {
        !o.borrow().errors.is_empty()
    });
    // Nothing more is reported, however long the loops run (a minute of virtual time: free).
    idle_for(&mut rt, Duration::from_secs(60));
    let o = o.borrow();
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert!(o.errors[0].is_timeout(), "{:?}", o.errors[0]);
    assert_eq!(
        o.errors[0].to_string(),
        "HTTP from 198.18.0.2:80: response timed out"
    );
    // At the timeout's virtual instant, within a millisecond (was: no earlier than 200 ms of
    // wall time): the timeout counts from the request's transmission, after the handshake,
    // which takes no virtual time on this wire (no latency), so 200 ms after the request was
    // started; the millisecond allows for a wire with microseconds of latency.
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(201),
        "timed out after {took:?}"
    );
    // A GET that timed out is not retried: the server may be working on it.
    assert_eq!(stack.stats().retries, 0);
    server.stop(&mut rt);
}

#[test]
fn a_body_dropped_unread_is_drained_and_the_connection_reused() {
    let (server, mut rt) = serve(streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    let seen = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let s = seen.clone();
        client::request(
            &ctx,
            codec::Config::default(),
            |_, e| panic!("{e}"),
            move |_, head, body| {
                assert_eq!(head.status(), StatusCode::OK);
                s.set(s.get() + 1);
                drop(body); // 300 kB nobody reads
            },
            get("/stream?300000"),
        )
        .unwrap()
        .close()
        .unwrap();
        let n = seen.get();
        drive(&mut rt, LONG, "the response and the drain", || {
            seen.get() > n && stack.in_flight() == 0
        });
    }
    assert_eq!(stack.stats().connections, 1);
    assert_eq!(stack.idle_connections(), 1);
    server.stop(&mut rt);
}

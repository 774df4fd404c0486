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
//! at once (`whole.rs`). The streamed bodies and the body dropped unread are in `bodies.rs`, the
//! failures (mid-response close, stale connection, refused port, response timeout) in
//! `failures.rs`, the pool's bound, idle expiry and requests waiting for their ctx in `limits.rs`.

mod bodies;
mod failures;
mod h2;
mod limits;
mod pool;
mod stop;
mod support;
mod whole;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use ::http::{HeaderValue, Method, Request, Response, StatusCode};
use net::testing::{B_V4, B_V6};
use paf::client::{self, BodyEnd, BodyWriter, Client, Error, Options, ResponseBody};
use paf::ctx::Ctx;
use paf::http::client as codec;
use paf::service::{BodyWriter as ServerWriter, Reqd};
use paf::tls;
use support::{drive, serve, Net, LONG};

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

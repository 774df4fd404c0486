//! paf's client speaking HTTP/2 to paf's server on the virtual pair: h2c with prior knowledge
//! on port 80 and TLS with ALPN `h2` on port 443. Requests to one endpoint share one
//! connection (they run concurrently: the server parks them until all arrived), bodies stream
//! byte-exact both ways under the peers' windows, a stream the server resets fails alone, a
//! response timeout fails its request and leaves the connection to the others, a server that
//! does not read stops the upload at the windows (and a client that does not read stops the
//! server's download), HTTP/1.1 stays the default, and requests a
//! (hand-written) server's GOAWAY left unprocessed, a POST among them, are resent on a new
//! connection.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::http::{Method, Request, Response};
use net::testing::B_V4;
use paf::client::{self, BodyEnd, Error, Options};
use paf::ctx::Ctx;
use paf::http::client::{self as codec, ClientError};
use paf::service::Reqd;
use paf::tls;

mod goaway;

use super::support::{self, drive, idle_for, Net, LONG};
use super::{check_download, read_all, upload, Shared, FNV_OFFSET};

fn h2c() -> codec::Config {
    codec::Config {
        http2_prior_knowledge: true,
        ..codec::Config::default()
    }
}

/// Starts `req` with `config`; the outcome fills in as the loop runs.
fn start_with(
    ctx: &Ctx,
    config: codec::Config,
    req: Request<()>,
) -> (Shared, Result<client::BodyWriter, Error>) {
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

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

fn done(o: &Shared) -> bool {
    o.borrow().end.is_some() || !o.borrow().errors.is_empty()
}

/// Parks requests until `n` are in, then answers each with `"<version> <path>"`; the most
/// parked at once is kept in `peak`. Paths starting `/reset` get a streamed response whose
/// writer is dropped unclosed (the server resets the stream); `/never` is never answered.
fn parking(n: usize, peak: Peak) -> support::MakeHandler {
    Box::new(move || {
        let parked: Rc<RefCell<Vec<Reqd>>> = Rc::default();
        let never: Rc<RefCell<Vec<Reqd>>> = Rc::default();
        Box::new(move |_peer, reqd: Reqd| {
            let path = reqd.request().uri().path().to_owned();
            if path.starts_with("/reset") {
                let w = reqd
                    .respond_with_streaming(Response::new(()), None)
                    .unwrap();
                drop(w);
                return;
            }
            if path == "/never" {
                never.borrow_mut().push(reqd);
                return;
            }
            let mut p = parked.borrow_mut();
            p.push(reqd);
            peak.fetch_max(p.len(), Ordering::Relaxed);
            if p.len() >= n {
                for r in p.drain(..) {
                    let body = format!("{:?} {}", r.request().version(), r.request().uri().path());
                    r.respond_with_bytes(Response::new(()), body).unwrap();
                }
            }
        })
    })
}

/// The most requests parked at once (`MakeHandler` is `Send`).
type Peak = Arc<AtomicUsize>;

fn ctx_for(stack: &client::Agent) -> Ctx {
    client::ctx(stack).add(&client::domain_name(), IpAddr::from(B_V4).to_string())
}

/// Sends `n` GETs at once with `config` on `ctx`; returns their outcomes once all are over.
fn burst(net: &mut Net, ctx: &Ctx, config: &codec::Config, n: usize) -> Vec<Shared> {
    let all: Vec<Shared> = (0..n)
        .map(|i| {
            let (o, w) = start_with(ctx, config.clone(), get(&format!("/r{i}")));
            w.unwrap().close().unwrap();
            o
        })
        .collect();
    drive(net, LONG, "every response", || all.iter().all(done));
    all
}

fn assert_bodies(all: &[Shared], version: &str) {
    for (i, o) in all.iter().enumerate() {
        let o = o.borrow();
        assert!(o.errors.is_empty(), "request {i}: {:?}", o.errors);
        assert_eq!(o.end, Some(BodyEnd::Complete));
        assert_eq!(
            String::from_utf8_lossy(&o.body),
            format!("{version} /r{i}"),
            "request {i}"
        );
    }
}

#[test]
fn h2c_prior_knowledge_carries_fifty_concurrent_requests_on_one_connection() {
    let peak = Peak::default();
    let (server, mut net) = support::serve(parking(50, peak.clone()));
    let stack = client::Agent::attach(&mut net, Options::default());
    let all = burst(&mut net, &ctx_for(&stack), &h2c(), 50);
    assert_bodies(&all, "HTTP/2.0");
    // All 50 were in the server's hands at once (one at a time, none would be answered).
    assert_eq!(peak.load(Ordering::Relaxed), 50);
    assert_eq!(stack.stats().connections, 1, "{:?}", stack.stats());
    assert_eq!(stack.stats().h2_connections, 1);
    assert_eq!(server.handle.stats().accepted, 1);
    // The connection stays pooled and carries the next burst too.
    peak.store(0, Ordering::Relaxed);
    let all = burst(&mut net, &ctx_for(&stack), &h2c(), 50);
    assert_bodies(&all, "HTTP/2.0");
    assert_eq!(stack.stats().connections, 1);
    // Idle past `idle_timeout`: the pool closes it (GOAWAY, FIN), and both ends let go.
    assert_eq!(stack.idle_connections(), 1);
    idle_for(
        &mut net,
        Options::default().idle_timeout + Duration::from_secs(2),
    );
    assert_eq!(stack.connections(), 0);
    assert_eq!(server.handle.stats().active, 0);
    server.stop(&mut net);
}

#[test]
fn tls_uses_h2_when_alpn_picks_it_and_http11_stays_the_default() {
    let ca = tls::certs::TestCa::new("client h2 CA").unwrap();
    let identity = ca.issue(&["paf.test"]).unwrap().identity();
    let server_tls = tls::ServerConfig::builder(identity)
        .alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11])
        .build()
        .unwrap();
    let peak = Peak::default();
    let (server, mut net) = support::serve_full(
        paf::http::Config::default(),
        parking(1, Peak::default()),
        Some((server_tls, parking(20, peak.clone()))),
    );
    let stack = client::Agent::attach(&mut net, Options::default());
    let trust = |alpn: &[&[u8]]| {
        tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
            .alpn_protocols(alpn)
            .build()
            .unwrap()
    };
    let ctx = |t: tls::ClientConfig| {
        client::ctx(&stack)
            .add(&client::domain_name(), "paf.test".to_owned())
            .add(&client::ipaddr(), IpAddr::from(B_V4))
            .add(&client::tls_config(), t)
    };
    let h2 = ctx(trust(&[tls::ALPN_H2, tls::ALPN_HTTP11]));
    let all = burst(&mut net, &h2, &codec::Config::default(), 20);
    assert_bodies(&all, "HTTP/2.0");
    assert_eq!(peak.load(Ordering::Relaxed), 20);
    assert_eq!(stack.stats().connections, 1, "{:?}", stack.stats());
    // The default TLS configuration offers only http/1.1: one request per connection, and
    // `parking(20)` would never answer them all at once over at most 8 connections, so one.
    let (o, w) = start_with(
        &ctx(trust(&[tls::ALPN_HTTP11])),
        codec::Config::default(),
        get("/r0"),
    );
    w.unwrap().close().unwrap();
    // Parked (1 of 20), then released by 19 more over HTTP/2 on the shared connection.
    let more: Vec<Shared> = (1..20)
        .map(|i| {
            let (o, w) = start_with(&h2, codec::Config::default(), get(&format!("/r{i}")));
            w.unwrap().close().unwrap();
            o
        })
        .collect();
    drive(&mut net, LONG, "every response", || {
        done(&o) && more.iter().all(done)
    });
    assert_eq!(String::from_utf8_lossy(&o.borrow().body), "HTTP/1.1 /r0");
    for (i, m) in more.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&m.borrow().body),
            format!("HTTP/2.0 /r{}", i + 1)
        );
    }
    assert_eq!(stack.stats().connections, 2, "{:?}", stack.stats());
    assert_eq!(stack.stats().h2_connections, 1, "{:?}", stack.stats());
    server.stop(&mut net);
}

#[test]
fn streamed_bodies_are_byte_exact_both_ways_over_h2() {
    let cfg = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let (server, mut net) = support::serve_with(cfg, super::streaming());
    let stack = client::Agent::attach(&mut net, Options::default());
    let ctx = ctx_for(&stack);
    const UP: u64 = 16 * 1024 * 1024 + 5;
    const DOWN: u64 = 24 * 1024 * 1024 + 7;
    // Upload: Content-Length framing; the server hashes what it gets.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .header("content-length", UP)
        .body(())
        .unwrap();
    let (o, w) = start_with(&ctx, h2c(), req);
    let hash = Rc::new(Cell::new(FNV_OFFSET));
    upload(w.unwrap(), 0, UP, hash.clone());
    // A chunked upload at the same time, on the same connection.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .header("transfer-encoding", "chunked")
        .body(())
        .unwrap();
    let (o2, w2) = start_with(&ctx, h2c(), req);
    let hash2 = Rc::new(Cell::new(FNV_OFFSET));
    upload(w2.unwrap(), 0, UP / 2, hash2.clone());
    // And a download.
    let got = Rc::new(Cell::new(0));
    let end = Rc::new(Cell::new(None));
    let (g, e) = (got.clone(), end.clone());
    client::request(
        &ctx,
        h2c(),
        |_, e| panic!("download: {e}"),
        move |_, head, body| {
            assert_eq!(head.version(), ::http::Version::HTTP_2);
            check_download(body, g, Rc::default(), e);
        },
        get(&format!("/stream?{DOWN}")),
    )
    .unwrap()
    .close()
    .unwrap();
    drive(&mut net, LONG, "the transfers", || {
        done(&o) && done(&o2) && end.get().is_some()
    });
    assert_eq!(
        String::from_utf8_lossy(&o.borrow().body),
        format!("{UP} {:016x}", hash.get())
    );
    assert_eq!(
        String::from_utf8_lossy(&o2.borrow().body),
        format!("{} {:016x}", UP / 2, hash2.get())
    );
    assert_eq!(end.get(), Some(BodyEnd::Complete));
    assert_eq!(got.get(), DOWN);
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut net);
}

#[test]
fn a_stream_the_server_resets_fails_alone_and_the_connection_goes_on() {
    let peak = Peak::default();
    let (server, mut net) = support::serve(parking(3, peak));
    let stack = client::Agent::attach(&mut net, Options::default());
    let ctx = ctx_for(&stack);
    let (bad, w) = start_with(&ctx, h2c(), get("/reset"));
    w.unwrap().close().unwrap();
    let all = burst(&mut net, &ctx, &h2c(), 3);
    assert_bodies(&all, "HTTP/2.0");
    drive(&mut net, LONG, "the reset", || done(&bad));
    let b = bad.borrow();
    assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
    // The server reset with INTERNAL_ERROR (2) after the head: the body ends aborted.
    match &b.errors[0] {
        Error::Http { error, .. } => assert_eq!(*error, ClientError::Reset(2), "{error}"),
        e => panic!("{e:?}"),
    }
    assert!(
        b.errors[0].to_string().contains("INTERNAL_ERROR"),
        "{}",
        b.errors[0]
    );
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut net);
}

#[test]
fn a_response_timeout_fails_its_request_and_leaves_the_connection_to_the_others() {
    let cfg = paf::http::Config {
        drain_timeout: Duration::from_millis(100),
        ..paf::http::Config::default()
    };
    let peak = Peak::default();
    let (server, mut net) = support::serve_with(cfg, parking(1, peak));
    let stack = client::Agent::attach(&mut net, Options::default());
    let ctx = ctx_for(&stack);
    let config = codec::Config {
        response_timeout: Duration::from_millis(300),
        ..h2c()
    };
    let (slow, w) = start_with(&ctx, config.clone(), get("/never"));
    w.unwrap().close().unwrap();
    let took = drive(&mut net, LONG, "the timeout", || done(&slow));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(301),
        "timed out after {took:?}"
    );
    {
        let s = slow.borrow();
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert!(s.errors[0].is_timeout(), "{:?}", s.errors[0]);
    }
    let all = burst(&mut net, &ctx, &config, 1);
    assert_bodies(&all, "HTTP/2.0");
    assert_eq!(
        stack.stats().connections,
        1,
        "the timeout closed the connection"
    );
    assert_eq!(stack.stats().retries, 0);
    server.stop(&mut net);
}

#[test]
fn a_server_that_does_not_read_stops_the_upload_at_its_windows() {
    let cfg = paf::http::Config {
        drain_timeout: Duration::from_millis(100),
        // The 64 MiB declared below is taken (and never read), not refused with 413.
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let peak = Peak::default();
    let (server, mut net) = support::serve_with(cfg, parking(2, peak));
    let stack = client::Agent::attach(&mut net, Options::default());
    let req = Request::builder()
        .method(Method::POST)
        .uri("/never")
        .header("content-length", 64 * 1024 * 1024)
        .body(())
        .unwrap();
    let (o, w) = start_with(&ctx_for(&stack), h2c(), req);
    let written = Rc::new(Cell::new(0u64));
    let stalled = Rc::new(Cell::new(false));
    fn push(mut w: client::BodyWriter, written: Rc<Cell<u64>>, stalled: Rc<Cell<bool>>) {
        let buf = vec![7u8; 32 * 1024];
        loop {
            // `Closed` once the request is over (the server stops at the end).
            let Ok(r) = w.write(&buf) else { return };
            match r {
                0 => {
                    stalled.set(true);
                    let (a, b) = (written.clone(), stalled.clone());
                    return w.on_writable(move |w| {
                        b.set(false);
                        push(w, a, b)
                    });
                }
                n => written.set(written.get() + n as u64),
            }
        }
    }
    push(w.unwrap(), written.clone(), stalled.clone());
    idle_for(&mut net, Duration::from_secs(5));
    assert!(
        stalled.get(),
        "the writer never stalled: {:?}",
        o.borrow().errors
    );
    let at = written.get();
    // The stream window (64 KiB) plus what the client buffers (its writer's and the codec's
    // send buffer): far below the 64 MiB offered.
    assert!(
        at < 1024 * 1024,
        "{at} bytes taken by a server that reads nothing"
    );
    idle_for(&mut net, Duration::from_secs(5));
    assert_eq!(
        written.get(),
        at,
        "more was taken while the server read nothing"
    );
    // The connection still carries other requests.
    let all = burst(&mut net, &ctx_for(&stack), &h2c(), 2);
    assert_bodies(&all, "HTTP/2.0");
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut net);
}

#[test]
fn a_response_body_nobody_reads_stops_the_server_at_the_client_windows() {
    const TOTAL: u64 = 16 * 1024 * 1024;
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    let make: support::MakeHandler = Box::new(move || {
        Box::new(move |_peer, reqd: Reqd| {
            fn more(mut w: paf::service::BodyWriter, mut at: u64, taken: Arc<AtomicUsize>) {
                let mut buf = vec![0u8; 16 * 1024];
                while at < TOTAL {
                    let n = (TOTAL - at).min(buf.len() as u64) as usize;
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = super::blob_byte(at + k as u64);
                    }
                    match w.write(&buf[..n]).unwrap() {
                        0 => {
                            let t = taken.clone();
                            return w.on_writable(move |w| more(w, at, t));
                        }
                        k => {
                            at += k as u64;
                            taken.store(at as usize, Ordering::Relaxed);
                        }
                    }
                }
                w.close().unwrap();
            }
            let w = reqd
                .respond_with_streaming(Response::new(()), Some(TOTAL))
                .unwrap();
            more(w, 0, t.clone());
        })
    });
    let (server, mut net) = support::serve(make);
    let stack = client::Agent::attach(&mut net, Options::default());
    let held: Rc<RefCell<Option<client::ResponseBody>>> = Rc::default();
    let h = held.clone();
    client::request(
        &ctx_for(&stack),
        h2c(),
        |_, e| panic!("{e}"),
        move |_, _, body| *h.borrow_mut() = Some(body),
        get("/big"),
    )
    .unwrap()
    .close()
    .unwrap();
    drive(&mut net, LONG, "the response head", || {
        held.borrow().is_some()
    });
    idle_for(&mut net, Duration::from_secs(10));
    let at = taken.load(Ordering::Relaxed);
    // The client's stream window (64 KiB; 64 KiB taken in this run) plus at most the server
    // codec's send buffer: far below the 16 MiB it has to send.
    assert!(at <= 256 * 1024, "the server wrote {at} bytes nobody read");
    idle_for(&mut net, Duration::from_secs(10));
    assert_eq!(
        taken.load(Ordering::Relaxed),
        at,
        "more was taken while nobody read"
    );
    // Reading releases the windows: the rest comes, byte for byte.
    let got = Rc::new(Cell::new(0));
    let end = Rc::new(Cell::new(None));
    let body = held.borrow_mut().take().unwrap();
    check_download(body, got.clone(), Rc::default(), end.clone());
    drive(&mut net, LONG, "the whole body", || end.get().is_some());
    assert_eq!(end.get(), Some(BodyEnd::Complete));
    assert_eq!(got.get(), TOTAL);
    server.stop(&mut net);
}

#[test]
fn a_cancelled_response_resets_its_stream_and_the_connection_goes_on() {
    let cfg = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let (server, mut net) = support::serve_with(cfg, super::streaming());
    let stack = client::Agent::attach(&mut net, Options::default());
    let ctx = ctx_for(&stack);
    let held: Rc<RefCell<Option<client::ResponseBody>>> = Rc::default();
    let h = held.clone();
    let errors: Rc<RefCell<Vec<Error>>> = Rc::default();
    let e2 = errors.clone();
    client::request(
        &ctx,
        h2c(),
        move |_, e| e2.borrow_mut().push(e),
        move |_, _, body| *h.borrow_mut() = Some(body),
        get(&format!("/stream?{}", 64 * 1024 * 1024)),
    )
    .unwrap()
    .close()
    .unwrap();
    drive(&mut net, LONG, "the response head", || {
        held.borrow().is_some()
    });
    held.borrow_mut().take().unwrap().cancel();
    idle_for(&mut net, Duration::from_secs(1));
    assert!(
        matches!(errors.borrow().as_slice(), [Error::Cancelled]),
        "{:?}",
        errors.borrow()
    );
    // The server saw RST_STREAM before its response ended; the connection carries the next.
    assert_eq!(server.handle.stats().h2_resets_received, 1);
    let (o, w) = start_with(&ctx, h2c(), get("/stream?10"));
    w.unwrap().close().unwrap();
    drive(&mut net, LONG, "the next response", || done(&o));
    assert_eq!(o.borrow().body.len(), 10);
    assert_eq!(stack.stats().connections, 1);
    assert_eq!(server.handle.stats().accepted, 1);
    server.stop(&mut net);
}

#[test]
fn offering_h2_to_a_server_that_picks_http11_still_opens_a_connection_per_request() {
    let ca = tls::certs::TestCa::new("client h1 CA").unwrap();
    let identity = ca.issue(&["paf.test"]).unwrap().identity();
    // The server offers http/1.1 only.
    let server_tls = tls::ServerConfig::builder(identity)
        .alpn_protocols(&[tls::ALPN_HTTP11])
        .build()
        .unwrap();
    let peak = Peak::default();
    let (server, mut net) = support::serve_full(
        paf::http::Config::default(),
        parking(1, Peak::default()),
        Some((server_tls, parking(6, peak.clone()))),
    );
    let stack = client::Agent::attach(&mut net, Options::default());
    let offer_both = tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11])
        .build()
        .unwrap();
    let ctx = client::ctx(&stack)
        .add(&client::domain_name(), "paf.test".to_owned())
        .add(&client::ipaddr(), IpAddr::from(B_V4))
        .add(&client::tls_config(), offer_both);
    // Six parked at once: only six HTTP/1.1 connections can hold them. The requests that
    // waited for the first connection (it might have been HTTP/2) open their own once it
    // turned out HTTP/1.1.
    let all = burst(&mut net, &ctx, &codec::Config::default(), 6);
    assert_bodies(&all, "HTTP/1.1");
    assert_eq!(peak.load(Ordering::Relaxed), 6);
    let s = stack.stats();
    assert_eq!((s.connections, s.h2_connections), (6, 0), "{s:?}");
    server.stop(&mut net);
}

#[test]
fn prior_knowledge_to_a_server_without_h2c_fails_clearly() {
    // The server answers the preface as HTTP/1.1 would (505), which is no HTTP/2 frame.
    let cfg = paf::http::Config {
        h2c: false,
        ..paf::http::Config::default()
    };
    let (server, mut net) = support::serve_with(cfg, parking(1, Peak::default()));
    let stack = client::Agent::attach(&mut net, Options::default());
    let (o, w) = start_with(&ctx_for(&stack), h2c(), get("/x"));
    w.unwrap().close().unwrap();
    drive(&mut net, LONG, "the failure", || done(&o));
    let o = o.borrow();
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    match &o.errors[0] {
        Error::Http {
            error: ClientError::Protocol(_) | ClientError::Malformed(_),
            ..
        } => {}
        e => panic!("{e:?}"),
    }
    assert!(
        o.errors[0].to_string().contains("198.18.0.2:80"),
        "{}",
        o.errors[0]
    );
    assert_eq!(stack.stats().retries, 0);
    server.stop(&mut net);
}

#[test]
fn a_server_limit_of_four_streams_spreads_twelve_requests_over_three_connections() {
    let cfg = paf::http::Config {
        max_concurrent_streams: 4,
        ..paf::http::Config::default()
    };
    let peak = Peak::default();
    let (server, mut net) = support::serve_with(cfg, parking(12, peak.clone()));
    let stack = client::Agent::attach(&mut net, Options::default());
    // Twelve parked at once: four streams on each of three connections. Requests sent before
    // the server's SETTINGS arrived (h2 then assumes 100) are refused (REFUSED_STREAM) and
    // resent.
    let all = burst(&mut net, &ctx_for(&stack), &h2c(), 12);
    assert_bodies(&all, "HTTP/2.0");
    assert_eq!(peak.load(Ordering::Relaxed), 12);
    let s = stack.stats();
    assert_eq!((s.connections, s.h2_connections), (3, 3), "{s:?}");
    assert_eq!(s.errors, 0, "{s:?}");
    // On the virtual clock, exactly: the 8 past the limit on the first connection are held
    // by the server, then refused; 4 of them again on the second (the third had the server's
    // SETTINGS before they came).
    assert_eq!(s.retries, 12, "{s:?}");
    server.stop(&mut net);
}

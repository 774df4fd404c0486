//! Failures: the server closing mid-response (reported once, the bytes before the cut
//! delivered), a stale pooled connection (retried once for an idempotent request, reported for
//! a POST), a refused port (a connect error naming the peer), a server that never answers (a
//! response timeout, reported once at its virtual instant, not retried).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ::http::{HeaderValue, Request, Response, StatusCode};
use net::testing::B_V4;
use paf::client::{self, BodyEnd, Error, Options};
use paf::http::client::{self as codec, ClientError};
use paf::service::Reqd;

use super::support::{self, drive, idle_for, serve, serve_with, Net, LONG};
use super::{ctx_for, get, hello, start, Shared};

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

//! The pool's limits and the requests that wait on them: at most `max_per_endpoint`
//! connections per endpoint (the other requests wait for a free one), idle connections expiring
//! after `idle_timeout`, at most `max_idle` idle in all (the one idle longest closed), and
//! requests whose ctx completes later (they go once it does; `on_writable` is called before).

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use ::http::Request;
use net::testing::B_V4;
use paf::client::{self, Options};
use paf::ctx::Ctx;
use paf::http::client as codec;

use super::support::{self, drive, idle_for, serve, Net, LONG};
use super::{ctx_for, fnv1a, get, hello, start, start_with, streaming, FNV_OFFSET};

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

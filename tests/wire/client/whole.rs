//! `ResponseBody::take_complete`: a body that came whole with its head is taken at once (the
//! connection is free for the next request from the response handler itself, and idle from
//! the last take); a body still arriving is not touched, and a reader then gets all of it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ::http::StatusCode;
use paf::client::{self, BodyEnd, Options};
use paf::ctx::Ctx;
use paf::http::client as codec;

use super::{blob_byte, ctx_for, get, hello, read_all, streaming, support, Outcome};
use net::testing::B_V4;
use support::{drive, serve, LONG};

/// Requests `/0` … `/49` one after the other, each started from the previous one's response
/// handler once its body was taken whole; `got` collects the bodies, `late` what a reader
/// scheduled after the take was told.
fn chain(
    ctx: Ctx,
    i: usize,
    got: Rc<RefCell<Vec<Option<Vec<u8>>>>>,
    late: Rc<RefCell<Vec<BodyEnd>>>,
) {
    if i == 50 {
        return;
    }
    let c2 = ctx.clone();
    client::request(
        &ctx,
        codec::Config::default(),
        |_, e| panic!("{e}"),
        move |_, head, body| {
            assert_eq!(head.status(), StatusCode::OK);
            got.borrow_mut().push(body.take_complete());
            // Taken: the request is over, a second take finds nothing.
            assert_eq!(body.take_complete(), None);
            let l = late.clone();
            body.schedule_read(
                |data| panic!("a reader after the take got {} bytes", data.len()),
                move |end| l.borrow_mut().push(end),
            );
            chain(c2, i + 1, got, late);
        },
        get(&format!("/{i}")),
    )
    .unwrap()
    .close()
    .unwrap();
}

#[test]
fn a_body_that_came_whole_is_taken_at_once_and_the_connection_serves_the_next() {
    let (server, mut rt) = serve(hello());
    let options = Options {
        idle_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut rt, options);
    let ctx = ctx_for(&stack, B_V4);
    let got = Rc::new(RefCell::new(Vec::new()));
    let late = Rc::new(RefCell::new(Vec::new()));
    chain(ctx, 0, got.clone(), late.clone());
    drive(&mut rt, LONG, "50 responses", || {
        got.borrow().len() == 50 && stack.in_flight() == 0
    });
    for (i, body) in got.borrow().iter().enumerate() {
        assert_eq!(
            body.as_deref(),
            Some(format!("hello /{i}").as_bytes()),
            "request {i}"
        );
    }
    assert_eq!(*late.borrow(), vec![BodyEnd::Aborted; 50]);
    let stats = stack.stats();
    assert_eq!((stats.connections, stats.reused), (1, 49), "{stats:?}");
    assert_eq!((stats.errors, stats.retries), (0, 0), "{stats:?}");
    assert_eq!(stack.idle_connections(), 1);
    assert_eq!(server.handle.stats().requests, 50);
    // Idle since the last take: the pool's timer runs from there.
    let took = drive(&mut rt, LONG, "the idle expiry", || {
        stack.connections() == 0
    });
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(301),
        "closed after {took:?} idle"
    );
    server.stop(&mut rt);
}

#[test]
fn a_body_still_arriving_is_left_to_a_reader() {
    let (server, mut rt) = serve(streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    let o: Rc<RefCell<Outcome>> = Rc::default();
    let taken = Rc::new(Cell::new(None::<bool>));
    let (o2, t2) = (o.clone(), taken.clone());
    client::request(
        &ctx,
        codec::Config::default(),
        |_, e| panic!("{e}"),
        move |_, head, body| {
            o2.borrow_mut().status = Some(head.status());
            t2.set(Some(body.take_complete().is_some()));
            read_all(body, o2);
        },
        get("/stream?300000&len"),
    )
    .unwrap()
    .close()
    .unwrap();
    drive(&mut rt, LONG, "the body", || o.borrow().end.is_some());
    assert_eq!(
        taken.get(),
        Some(false),
        "300 kB cannot have come with the head"
    );
    let o = o.borrow();
    assert_eq!(o.end, Some(BodyEnd::Complete));
    assert_eq!(o.body.len(), 300_000);
    assert!(o
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == blob_byte(i as u64)));
    assert_eq!(stack.idle_connections(), 1);
    server.stop(&mut rt);
}

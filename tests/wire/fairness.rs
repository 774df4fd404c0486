//! Fairness between connections of one service: a client pipelining thousands of requests must
//! not hold the loop while another connection's single request waits (see
//! `service::conn::REQUESTS_PER_PUMP`). Server and client runtimes are turned by hand on the
//! test thread, one pass at a time, over the in-memory wire, so the order of events is fixed.
//! No root needed.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ::http::Response;
use net::device::{wire, Device, Faults, Link};
use net::testing::{config, B_V4};
use paf::http::Config;
use paf::service::testing::{parse_response, ClientHandle, RawClient};
use paf::service::{self, Initialized, Reqd};
use paf::Runtime;

const PIPELINED: usize = 5_000;

fn stack(a: bool, end: wire::WireEnd) -> net::Stack {
    let mut c = config(a, 11);
    c.tcp.rx_buffer = 256 * 1024;
    c.tcp.tx_buffer = 256 * 1024;
    net::Stack::new(c, Device::new(Link::Wire(end)), Instant::now()).expect("stack")
}

/// One pass of each loop, client first, as many times as `passes`.
fn passes(client: &mut Runtime, server: &mut Runtime, passes: usize) {
    for _ in 0..passes {
        client.turn(Some(Duration::ZERO)).expect("client turn");
        server.turn(Some(Duration::ZERO)).expect("server turn");
    }
}

/// Turns both loops until `cond` holds; panics after 10,000 passes.
fn until(client: &mut Runtime, server: &mut Runtime, what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        passes(client, server, 1);
    }
    panic!("never happened: {what}");
}

fn count_responses(c: &ClientHandle, buf: &mut Vec<u8>, seen: &mut usize) {
    buf.extend_from_slice(&c.take_input());
    while let Some((r, used)) = parse_response(buf, false) {
        assert_eq!(r.status, 200);
        buf.drain(..used);
        *seen += 1;
    }
}

#[test]
fn a_single_request_is_not_starved_by_a_pipelining_connection() {
    let (ea, eb) = wire::pair(9000, Faults::default(), Faults::default(), 11);
    let mut server = Runtime::new(Box::new(stack(false, eb))).expect("server runtime");
    let mut client = Runtime::new(Box::new(stack(true, ea))).expect("client runtime");
    // The handler logs which client each request came from, in the order it runs.
    let order: Rc<RefCell<Vec<char>>> = Rc::default();
    let log = order.clone();
    let svc = service::init(&mut server, 80).expect("init");
    let Initialized(handle) = service::http(
        svc,
        Config::default(),
        None,
        Box::new(service::default_error_handler),
        Box::new(move |_peer, reqd: Reqd| {
            let path = reqd.request().uri().path().to_string();
            log.borrow_mut()
                .push(if path.starts_with("/a/") { 'a' } else { 'b' });
            reqd.respond_with_bytes(Response::new(()), path).unwrap();
        }),
    );
    let to = SocketAddr::new(B_V4.into(), 80);
    let a = RawClient::connect(&mut client, to).unwrap();
    let b = RawClient::connect(&mut client, to).unwrap();
    until(&mut client, &mut server, "connected", || {
        a.is_connected() && b.is_connected()
    });

    let mut all = Vec::new();
    for i in 0..PIPELINED {
        all.extend_from_slice(format!("GET /a/{i} HTTP/1.1\r\nHost: b\r\n\r\n").as_bytes());
    }
    a.send(&all);
    until(
        &mut client,
        &mut server,
        "a's first request handled",
        || !order.borrow().is_empty(),
    );
    let a_first_pass = order.borrow().len();
    b.send(b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n");
    until(&mut client, &mut server, "b's request handled", || {
        order.borrow().contains(&'b')
    });
    let before_b = order.borrow().iter().position(|&c| c == 'b').unwrap();
    // Many of a's requests had arrived (its first flight is ~90 KB, ~2,900 requests) but a gets
    // 16 per pass: b's request, arriving a pass or two later, runs after a few dozen of a's,
    // not after all that were buffered.
    assert!(
        a_first_pass <= 16,
        "a's first pump ran {a_first_pass} requests"
    );
    assert!(
        before_b <= 64,
        "b's request ran after {before_b} of a's pipelined requests"
    );

    // Everyone is still answered in full, in order.
    let (mut abuf, mut bbuf, mut aseen, mut bseen) = (Vec::new(), Vec::new(), 0, 0);
    until(&mut client, &mut server, "every response", || {
        count_responses(&a, &mut abuf, &mut aseen);
        count_responses(&b, &mut bbuf, &mut bseen);
        aseen == PIPELINED && bseen == 1
    });
    assert_eq!(handle.stats().requests, PIPELINED as u64 + 1);
    let log = order.borrow();
    assert_eq!(log.iter().filter(|&&c| c == 'a').count(), PIPELINED);
}

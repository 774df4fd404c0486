//! Fairness between connections of one service: a client pipelining thousands of requests must
//! not hold the loop while another connection's single request waits (see
//! `service::conn::REQUESTS_PER_PUMP`). Server and client runtimes are stepped together on the
//! test thread, one pass each at a time, over the in-memory wire on the virtual clock
//! (`paf::testing::Pair`), so the order of events is fixed. No root needed.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ::http::Response;
use net::testing::B_V4;
use paf::http::Config;
use paf::service::{self, Initialized, Reqd};
use paf::testing::{parse_response, ClientHandle, Pair, RawClient};

const PIPELINED: usize = 5_000;

/// Steps both loops (one pass each) until `cond` holds; panics after a minute of virtual time.
fn until(pair: &mut Pair, what: &str, mut cond: impl FnMut() -> bool) {
    pair.drive_until(Duration::from_secs(60), what, |_| cond());
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
    let mut pair = Pair::builder()
        .mtu(9000)
        .seed(11)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build();
    // The handler logs which client each request came from, in the order it runs.
    let order: Rc<RefCell<Vec<char>>> = Rc::default();
    let log = order.clone();
    let svc = service::init(&mut pair.server, 80).expect("init");
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
    let a = RawClient::connect(&mut pair.client, to).unwrap();
    let b = RawClient::connect(&mut pair.client, to).unwrap();
    until(&mut pair, "connected", || {
        a.is_connected() && b.is_connected()
    });

    let mut all = Vec::new();
    for i in 0..PIPELINED {
        all.extend_from_slice(format!("GET /a/{i} HTTP/1.1\r\nHost: b\r\n\r\n").as_bytes());
    }
    a.send(&all);
    until(&mut pair, "a's first request handled", || {
        !order.borrow().is_empty()
    });
    let a_first_pass = order.borrow().len();
    b.send(b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n");
    until(&mut pair, "b's request handled", || {
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
    until(&mut pair, "every response", || {
        count_responses(&a, &mut abuf, &mut aseen);
        count_responses(&b, &mut bbuf, &mut bseen);
        aseen == PIPELINED && bseen == 1
    });
    assert_eq!(handle.stats().requests, PIPELINED as u64 + 1);
    let log = order.borrow();
    assert_eq!(log.iter().filter(|&&c| c == 'a').count(), PIPELINED);
}

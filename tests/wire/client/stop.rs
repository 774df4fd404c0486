//! Stopping a server that runs two services (HTTP on 80, HTTPS on 443) against a client on the
//! same pair: [`support::Server::stop`] must keep the client's loop turning until *every*
//! service has drained, not only the first. The HTTP service has nothing to drain and finishes at
//! once; the HTTPS one waits for its peer to take the rest of a response, its close_notify and
//! its FIN. A client loop that stops turning then leaves the server retransmitting to nobody
//! until its drain deadline (30 s + 1 s by default): the intermittent "stall" of
//! `https_with_a_test_ca_…` when the server had a thread of its own, made deterministic here by
//! a response still in flight. On the virtual pair both loops always step together; what is
//! left to check is that the stop waits for every service (and each ends well), and that the
//! drain takes less virtual time than the drain timeout, i.e. it ended by the client taking the
//! response and not by the deadline.

use paf::http;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use net::testing::B_V4;
use paf::client::{self, BodyEnd, Options};
use paf::tls;

use super::{check_download, get, hello, streaming, support};
use support::{drive, LONG};

#[test]
fn stop_keeps_the_client_turning_until_every_service_has_drained() {
    const TOTAL: u64 = 8 << 20;
    let drain = Duration::from_secs(10);
    let ca = tls::certs::TestCa::new("client_wire stop CA").unwrap();
    let identity = ca.issue(&["paf.test"]).unwrap().identity();
    let server_config = tls::ServerConfig::builder(identity).build().unwrap();
    let cfg = paf::http::Config {
        drain_timeout: drain,
        ..paf::http::Config::default()
    };
    let (server, mut rt) = support::serve_full(cfg, hello(), Some((server_config, streaming())));
    let stack = client::Agent::attach(&mut rt, Options::default());
    let trust = tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .build()
        .unwrap();
    let ctx = client::ctx(&stack)
        .add(&client::domain_name(), "paf.test".to_owned())
        .add(&client::ipaddr(), IpAddr::from(B_V4))
        .add(&client::tls_config(), trust);
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
        http::client::Config::default(),
        move |_, e| errs.borrow_mut().push(e),
        move |_peer, _head, body| check_download(body, g, m, e),
        get(&format!("/stream?{TOTAL}&len")),
    )
    .unwrap()
    .close()
    .unwrap();
    drive(&mut rt, LONG, "the first MB over TLS", || {
        got.get() >= 1 << 20 || !errors.borrow().is_empty()
    });
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    // The HTTPS response is in flight: the stop must wait for it, driving the client. On
    // virtual time (was: wall time under `drain`), a stop that waited out the drain timeout
    // takes exactly `drain`.
    let handles = server.handles.clone();
    let took = server.stop(&mut rt);
    assert!(handles.iter().all(paf::service::Handle::is_finished));
    assert!(
        took < drain,
        "the stop took {took:?} of virtual time: the HTTPS service waited out its drain timeout \
         instead of the client taking the response"
    );
    // Exactly: the wire has no latency, no rate limit and no loss, so the rest of the response,
    // the close_notify and the FINs all go at the virtual instant the stop begins. Any virtual
    // time at all would mean the drain waited on a timer (a retransmission, a delayed ACK, a
    // window probe, the drain deadline).
    assert_eq!(took, Duration::ZERO, "the stop waited on a timer");
    // Every byte was acknowledged by the client's stack; some may still be in its buffers.
    drive(
        &mut rt,
        Duration::from_secs(5),
        "the end of the body",
        || end.get().is_some() || !errors.borrow().is_empty(),
    );
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    assert_eq!((got.get(), end.get()), (TOTAL, Some(BodyEnd::Complete)));
}

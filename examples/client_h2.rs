//! HTTP/2 from `paf::client`: a TLS endpoint whose configuration offers `h2` by ALPN, a server
//! that picks it, and twenty requests at once sharing one connection.
//!
//! HTTP/1.1 stays the default: `tls::ClientConfig` offers `http/1.1` alone unless told
//! otherwise, so asking for HTTP/2 is one line, `.alpn_protocols(&[tls::ALPN_H2,
//! tls::ALPN_HTTP11])`; the server chooses. (For plain `http`, `http::client::Config::
//! http2_prior_knowledge` speaks h2c from the first byte instead.)
//!
//! Both sides run on a [`Pair`] (two runtimes over the in-memory wire, one virtual clock); the
//! server is paf's own, offering `h2` and `http/1.1`, with a certificate from a test CA. The
//! example checks what it prints: it panics (exit code 101) when something differs.
//!
//! `cargo run --example client_h2`

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use paf::client;
use paf::http::{Config, Response};
use paf::service::{self, Initialized, Switch};
use paf::testing::{Pair, B};
use paf::tls;

fn main() {
    let mut pair = Pair::new();
    let ca = tls::certs::TestCa::new("example CA").expect("a test CA");
    let identity = ca.issue(&["paf.test"]).expect("a certificate").identity();
    let server_tls = tls::ServerConfig::builder(identity)
        .alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11])
        .build()
        .expect("server TLS");
    let service = service::init(&mut pair.server, 443).expect("listen on port 443");
    let stop = Switch::new();
    let Initialized(server) = service::https(
        service,
        server_tls,
        Config::default(),
        Some(stop.clone()),
        service::default_error_handler,
        |_peer, reqd| {
            let req = reqd.request();
            let body = format!("{:?} {}", req.version(), req.uri());
            let _ = reqd.respond_with_bytes(Response::new(()), body);
        },
    );

    // The client offers h2, then http/1.1; it trusts the test CA.
    let client_tls = tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11])
        .build()
        .expect("client TLS");
    let agent = client::Agent::attach(&mut pair.client, client::Options::default());
    let ctx = client::ctx(&agent)
        .add(&client::domain_name(), "paf.test".to_owned())
        .add(&client::ipaddr(), IpAddr::V4(B.v4))
        .add(&client::tls_config(), client_tls);

    let answers: Rc<RefCell<Vec<String>>> = Rc::default();
    for i in 0..20 {
        let got = answers.clone();
        let req = paf::http::Request::get(format!("/item/{i}"))
            .body(())
            .expect("a request");
        client::request(
            &ctx,
            paf::http::client::Config::default(),
            |peer, e| panic!("request to {peer:?} failed: {e}"),
            move |_peer, _head, body| {
                body.read_to_end(1024, move |r| {
                    let text = String::from_utf8(r.expect("a body")).expect("text");
                    got.borrow_mut().push(text);
                });
            },
            req,
        )
        .expect("a request on its way")
        .close()
        .expect("no body to send");
    }
    pair.drive(Duration::from_secs(30), |_| answers.borrow().len() == 20);
    let answers = answers.borrow();
    assert_eq!(answers.len(), 20, "answers: {answers:?}");
    for a in answers.iter() {
        assert!(a.starts_with("HTTP/2.0 /item/"), "{a}");
    }
    let stats = agent.stats();
    println!(
        "client: 20 answers over HTTP/2 on {} connection ({} HTTP/2)",
        stats.connections, stats.h2_connections
    );
    assert_eq!((stats.connections, stats.h2_connections), (1, 1));

    stop.turn_off();
    pair.drive(Duration::from_secs(30), |_| server.is_finished());
    assert!(server.is_finished(), "the server did not stop");
}

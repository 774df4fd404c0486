//! The seed's second example: a client/server pair where the client turns the service's switch
//! off once its response is in.
//!
//! ```text
//! let* service = init ~port:80 stack in
//! let `Initialized server = http ~stop ... service in
//! Lwt.both server (client >|= signal_stop)
//! (* client = Paf.request ~ctx ~error_handler ~response_handler req *)
//! ```
//!
//! `http` returning means the service is accepting, so the client may start at once. Both run
//! on a [`Pair`]: two runtimes joined by the in-memory wire, on one virtual clock, stepped on
//! this thread; [`Pair::drive`] turns both loops until the server's handle has completed and
//! the client's response is in (`Lwt.both`). The example checks what it prints: it panics (exit
//! code 101) when something differs.
//!
//! `cargo run --example client_server_pair`

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use paf::client;
use paf::http::{self, Config, Request, Response, StatusCode};
use paf::service::{self, Initialized, Switch};
use paf::testing::{Pair, B};

/// What the client got: the status and the body, or the error.
type Outcome = Result<(StatusCode, String), String>;

fn main() {
    let mut pair = Pair::new();

    // let* service = init ~port:80 stack in
    let service = service::init(&mut pair.server, 80).expect("listen on port 80");
    let stop = Switch::new();
    // let `Initialized server = http ~stop ... service in
    let Initialized(server) = service::http(
        service,
        Config::default(),
        Some(stop.clone()),
        service::default_error_handler,
        |peer, reqd| {
            let req = reqd.request();
            let host = req.headers().get("host").and_then(|h| h.to_str().ok());
            let body = format!("you asked {} for {}\n", host.unwrap_or("?"), req.uri());
            println!("server: {peer}: {} {}", req.method(), req.uri());
            let _ = reqd.respond_with_bytes(Response::new(()), body);
        },
    );
    println!("server: accepting on {}", B.with_port(80));

    // The client: the stack's base ctx (DNS, port 80 by default), told the server's name and
    // address (an address given skips DNS; the name becomes `Host`).
    let agent = client::Agent::attach(&mut pair.client, client::Options::default());
    let ctx = client::ctx(&agent)
        .add(&client::domain_name(), "paf.test".to_owned())
        .add(&client::ipaddr(), IpAddr::V4(B.v4));

    // client >|= signal_stop: whatever the outcome, the client turns the switch off.
    let outcome: Rc<RefCell<Option<Outcome>>> = Rc::default();
    let (on_error, on_body) = (outcome.clone(), outcome.clone());
    let (stop1, stop2) = (stop.clone(), stop.clone());
    let error_handler = move |peer, e: client::Error| {
        println!("client: request to {peer:?} failed: {e}");
        *on_error.borrow_mut() = Some(Err(e.to_string()));
        stop1.turn_off();
    };
    let response_handler = move |peer, head: Response<()>, body: client::ResponseBody| {
        let status = head.status();
        println!("client: {peer} answered {status}");
        body.read_to_end(64 * 1024, move |r| {
            let r = r.map(|b| (status, String::from_utf8_lossy(&b).into_owned()));
            *on_body.borrow_mut() = Some(r.map_err(|e| e.to_string()));
            println!("client: response in, turning the switch off");
            stop2.turn_off();
        });
    };
    // Paf.request ~ctx ~error_handler ~response_handler req
    let req = Request::get("/pair").body(()).expect("a valid request");
    let body = client::request(
        &ctx,
        http::client::Config::default(),
        error_handler,
        response_handler,
        req,
    )
    .expect("the ctx describes an endpoint");
    body.close().expect("a GET has no body to write");

    // Lwt.both server (client >|= signal_stop)
    let took = pair.drive(Duration::from_secs(30), |_| {
        outcome.borrow().is_some() && server.is_finished()
    });
    println!(
        "both done after {took:?} of virtual time; server: {:?}",
        server.result()
    );

    let outcome = outcome.borrow_mut().take().expect("the client finished");
    assert_eq!(
        outcome,
        Ok((StatusCode::OK, "you asked paf.test for /pair\n".to_owned()))
    );
    assert!(stop.is_off());
    assert_eq!(server.result(), Some(Ok(())));
    assert_eq!(server.stats().requests, 1);
}

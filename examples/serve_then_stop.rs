//! The seed's first example: a service that stops after 10 seconds.
//!
//! ```text
//! let* service = init ~port:80 stack in
//! let stop = Lwt_switch.create () in
//! let `Initialized server = http ~stop ... service in
//! Lwt.both (Lwt_unix.sleep 10. >>= fun () -> Lwt_switch.turn_off stop) server
//! ```
//!
//! The server and a client run on a [`Pair`]: two runtimes joined by the in-memory wire, on
//! one virtual clock, stepped on this thread (no root, no sleeping), with 10 ms of one-way delay
//! on the wire. The client asks once a
//! (virtual) second and is served; at 10 s the switch is turned off, the service drains and its
//! handle completes; a request after that is refused. It all takes milliseconds of wall time.
//! The example checks what it prints: it panics (exit code 101) when something differs.
//!
//! `cargo run --example serve_then_stop [-- SECONDS]` (virtual seconds before the stop, default
//! 10).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use paf::client::{self, Client};
use paf::http::{Config, Response, StatusCode};
use paf::service::{self, Initialized, Switch};
use paf::testing::{Pair, WireFaults, B};

/// `GET url` with `client`, driving both loops until the answer is in.
fn get(pair: &mut Pair, client: &Client, url: &str) -> Result<client::Response, client::Error> {
    let slot: Rc<RefCell<Option<Result<client::Response, client::Error>>>> = Rc::default();
    let s = slot.clone();
    client.get(url, move |r| *s.borrow_mut() = Some(r));
    pair.drive(Duration::from_secs(30), |_| slot.borrow().is_some());
    let r = slot.borrow_mut().take();
    r.expect("an answer within 30 s")
}

fn main() {
    let secs: u64 = std::env::args().nth(1).map_or(10, |s| {
        s.parse().expect("SECONDS: a whole number of seconds")
    });
    let stop_at = Duration::from_secs(secs);
    // A wire with 10 ms of one-way delay, so that time shows.
    let latency = Duration::from_millis(10);
    let mut pair = Pair::builder()
        .faults(WireFaults {
            latency,
            ..WireFaults::default()
        })
        .build();
    let t0 = pair.now();
    let at = |pair: &Pair| (pair.now() - t0).as_secs_f64();

    // let* service = init ~port:80 stack in
    let service = service::init(&mut pair.server, 80).expect("listen on port 80");
    // let stop = Lwt_switch.create () in
    let stop = Switch::new();
    // let `Initialized server = http ~stop ... service in
    let Initialized(server) = service::http(
        service,
        Config::default(),
        Some(stop.clone()),
        service::default_error_handler,
        |peer, reqd| {
            let _ = reqd.respond_with_bytes(Response::new(()), format!("hello {peer}\n"));
        },
    );
    println!("server: accepting on {}", B.with_port(80));

    let agent = client::Agent::attach(&mut pair.client, client::Options::default());
    let client = Client::new(&agent);
    let url = format!("http://{}/", B.v4);

    // Lwt_unix.sleep 10. — meanwhile a client asks once a second.
    for second in 0..secs {
        pair.advance((t0 + Duration::from_secs(second)).saturating_duration_since(pair.now()));
        let r = get(&mut pair, &client, &url).expect("served before the stop");
        let body = String::from_utf8_lossy(&r.body);
        print!("{:6.3}s  client: {} {body}", at(&pair), r.status);
        assert_eq!(r.status, StatusCode::OK);
        assert!(body.starts_with("hello 198.18.0.1:"), "{body}");
    }
    assert!(!server.is_finished(), "the service runs until the switch");

    // >>= fun () -> Lwt_switch.turn_off stop
    pair.advance((t0 + stop_at).saturating_duration_since(pair.now()));
    println!("{:6.3}s  turning the switch off", at(&pair));
    stop.turn_off();

    // Lwt.both ... server: the handle completes once the service has drained. Its one
    // connection is an idle keep-alive one whose last response the client acknowledged long
    // ago, so that is at once (drive turns the client's loop too, as draining needs the peer).
    let took = pair.drive(Duration::from_secs(60), |_| server.is_finished());
    println!(
        "{:6.3}s  server: service loop ended after draining for {took:?}: {:?}",
        at(&pair),
        server.result()
    );
    assert_eq!(server.result(), Some(Ok(())));
    let stats = server.stats();
    println!(
        "          server: {} connection(s) accepted, {} request(s), {} open",
        stats.accepted, stats.requests, stats.active
    );
    assert_eq!((stats.requests, stats.active), (secs, 0));

    // The stack lives on (it could carry other services); port 80 is closed now.
    pair.advance(Duration::from_secs(1));
    match get(&mut pair, &client, &url) {
        Ok(r) => panic!("served after the stop: {} {:?}", r.status, r.body),
        Err(e) => {
            println!("{:6.3}s  client: {e}", at(&pair));
            assert!(matches!(e, client::Error::Connect { .. }), "{e:?}");
        }
    }
    println!("client: {:?}", agent.stats());
}

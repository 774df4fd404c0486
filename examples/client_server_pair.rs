//! The seed's second example: a client/server pair where the client turns the switch off once
//! its response has arrived.
//!
//! ```text
//! let* service = init ~port:80 stack in
//! let `Initialized server = http ~stop ... service in
//! Lwt.both server (client >|= signal_stop)
//! ```
//!
//! `http` returning means the service is accepting, so the client may start right away. The
//! server runs on one userspace stack, the client on another, joined by the in-memory wire (no
//! root needed); the client turns the switch off from its own thread, and the server's handle
//! completes once the service has drained.
//!
//! `cargo run --example client_server_pair`

mod support;

use std::time::Duration;

use ::http::Response;
use paf::http::Config;
use paf::service::{self, Initialized, Switch};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (client_end, server_end) = support::wire();
    let stop = Switch::new();
    let (tx, rx) = std::sync::mpsc::channel();

    let server_stop = stop.clone();
    let server = std::thread::spawn(move || {
        let mut rt = support::runtime(false, server_end);
        let service = service::init(&mut rt, 80).expect("listen on port 80");
        let Initialized(server) = service::http(
            service,
            Config::default(),
            Some(server_stop),
            service::default_error_handler,
            |_peer, reqd| {
                let body = format!("you asked for {}\n", reqd.request().uri());
                let _ = reqd.respond_with_bytes(Response::new(()), body);
            },
        );
        // The service is accepting now: hand its handle to the client side.
        tx.send(server.clone()).expect("main thread waits");
        rt.run_until(|_| server.is_finished()).expect("event loop");
    });

    let server_done = rx.recv().expect("server initialized");
    let mut rt = support::runtime(true, client_end);
    // client >|= signal_stop
    let response = support::get(&mut rt, support::SERVER, "/pair", Duration::from_secs(10));
    match &response {
        Ok(r) => print!("client: {} {}", r.status, String::from_utf8_lossy(&r.body)),
        Err(e) => println!("client: {e}"),
    }
    println!("client: turning the switch off");
    stop.turn_off();
    // Lwt.both: wait for the server too (keep our stack running so the drain can finish).
    while !server_done.is_finished() {
        rt.turn(Some(Duration::from_millis(50)))
            .expect("client loop");
    }
    server.join().expect("server thread");
    println!("server: {:?}", server_done.result());
    assert!(response.is_ok(), "the client got no response");
}

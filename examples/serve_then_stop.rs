//! The seed's first example: serve for 10 seconds, then stop.
//!
//! ```text
//! let* service = init ~port:80 stack in
//! let stop = Lwt_switch.create () in
//! let `Initialized server = http ~stop ... service in
//! Lwt.both (Lwt_unix.sleep 10. >>= fun () -> Lwt_switch.turn_off stop) server
//! ```
//!
//! The server runs on one userspace stack, a client asking once a second on another, the two
//! joined by the in-memory wire (no root needed). A timer thread turns the switch off after the
//! duration; the service stops accepting, drains, and its handle completes; the client's next
//! attempt is refused.
//!
//! `cargo run --example serve_then_stop [SECONDS]` (default 10).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::Response;
use paf::http::Config;
use paf::service::{self, Initialized, Switch};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(10.0, |s| s.parse().expect("SECONDS must be a number"));
    let (client_end, server_end) = support::wire();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The stack outlives the service (it could carry other services): it keeps running, refusing
    // connections to port 80, until the client is done.
    let client_done = Arc::new(AtomicBool::new(false));
    let done = client_done.clone();

    let server = std::thread::spawn(move || {
        let mut rt = support::runtime(false, server_end);
        let service = service::init(&mut rt, 80).expect("listen on port 80");
        let stop = Switch::new();
        let started = Instant::now();
        let Initialized(server) = service::http(
            service,
            Config::default(),
            Some(stop.clone()),
            service::default_error_handler,
            move |peer, reqd| {
                let body = format!("hello {peer}, up for {:.1?}\n", started.elapsed());
                let _ = reqd.respond_with_bytes(Response::new(()), body);
            },
        );
        // Lwt_unix.sleep secs >>= fun () -> Lwt_switch.turn_off stop
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            println!("timer: turning the switch off");
            stop.turn_off();
        });
        ready_tx.send(()).expect("main thread waits");
        rt.run_until(|_| server.is_finished()).expect("event loop");
        println!("server: service loop ended: {:?}", server.result());
        while !done.load(Ordering::SeqCst) {
            rt.turn(Some(Duration::from_millis(100)))
                .expect("event loop");
        }
    });

    ready_rx.recv().expect("server started");
    let mut rt = support::runtime(true, client_end);
    let start = Instant::now();
    loop {
        match support::get(&mut rt, support::SERVER, "/", Duration::from_secs(5)) {
            Ok(r) => print!(
                "{:5.1}s  {} {}",
                start.elapsed().as_secs_f64(),
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => {
                println!(
                    "{:5.1}s  {e}: the service has stopped",
                    start.elapsed().as_secs_f64()
                );
                break;
            }
        }
        let next = Instant::now() + Duration::from_secs(1);
        while Instant::now() < next {
            rt.turn(Some(next - Instant::now())).expect("client loop");
        }
    }
    client_done.store(true, Ordering::SeqCst);
    server.join().expect("server thread");
}

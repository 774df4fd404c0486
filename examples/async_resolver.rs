//! A resolver that answers later, as the seed's does: its `resolver` returns an Lwt promise
//! (`Lwt.return_some ipaddr` after a lookup), and mimic goes on when it is determined.
//!
//! ```text
//! let resolver domain_name = (* ... *) Lwt.return_some ipaddr   (* a promise *)
//! let ctx =
//!   let open Mimic in
//!   fold ipaddr Fun.[ req domain_name ] ~k:resolver Mimic.empty
//!   |> fold Paf.tcp_edn Fun.[ req stack; req ipaddr; dft port 80 ]
//! ```
//!
//! In paf the fold returns `Step::Pending(promise)` and hands the promise's [`Completer`] to
//! whatever produces the answer. Here that is the driving code, playing a DNS server that
//! answers 250 ms (of virtual time) after the question: until then nothing happens (no
//! connection, no request on the wire); completing the promise wakes the client's loop, and the
//! request proceeds by itself — nothing else is called but the loops' usual turning. A failed
//! lookup (`Completer::fail`) reaches the request's error handler with its reason.
//!
//! Server and client run on a [`Pair`] (two runtimes joined by the in-memory wire, on one
//! virtual clock, stepped on this thread) with 10 ms of one-way delay on the wire. The example
//! checks what it prints: it panics (exit code 101) when something differs.
//!
//! `cargo run --example async_resolver`

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use paf::client::{self, Client};
use paf::ctx::{self, dft, req, Completer, Ctx, Step, TcpEndpoint};
use paf::http::{self, Config, Request, Response, StatusCode};
use paf::service::{self, Initialized, Reqd};
use paf::testing::{Pair, WireFaults, B};

/// What a request got: the status and the body, or the error.
type Outcome = Result<(StatusCode, String), String>;

/// Questions the resolver asked, waiting for their answers (what a DNS client keeps while its
/// queries are on the network).
type Questions = Rc<RefCell<Vec<(String, Completer<IpAddr>)>>>;

/// How long the (pretend) DNS server takes to answer.
const DNS_DELAY: Duration = Duration::from_millis(250);

/// The server's request handler: says what it was asked, and under which `Host`.
fn what_you_asked(_peer: SocketAddr, reqd: Reqd) {
    let req = reqd.request();
    let host = req.headers().get("host").and_then(|h| h.to_str().ok());
    let body = format!(
        "{} {} (Host: {})\n",
        req.method(),
        req.uri(),
        host.unwrap_or("-")
    );
    let _ = reqd.respond_with_bytes(Response::new(()), body);
}

/// The asynchronous resolver fold: asks the question, answers later.
fn resolver(questions: &Questions) -> impl Fn(String) -> Step<IpAddr> + 'static {
    let questions = questions.clone();
    move |domain_name: String| {
        println!("  resolver: who is {domain_name}? (answer pending)");
        let (promise, completer) = ctx::promise();
        questions.borrow_mut().push((domain_name, completer));
        Step::Pending(promise)
    }
}

/// The DNS answers arrive: every pending question is answered from a hosts table.
fn answer(questions: &Questions) {
    for (name, completer) in questions.take() {
        if name == "paf.test" {
            println!("  resolver: {name} is {}", B.v4);
            completer.complete(IpAddr::V4(B.v4));
        } else {
            println!("  resolver: {name}: NXDOMAIN");
            completer.fail(format!("{name}: NXDOMAIN"));
        }
    }
}

/// `Paf.request ~ctx ... (GET path)`; the outcome lands in the returned slot.
fn start_get(ctx: &Ctx, path: &str) -> Rc<RefCell<Option<Outcome>>> {
    let outcome: Rc<RefCell<Option<Outcome>>> = Rc::default();
    let (on_error, on_body) = (outcome.clone(), outcome.clone());
    let req = Request::get(path).body(()).expect("a valid request");
    let body = client::request(
        ctx,
        http::client::Config::default(),
        move |_peer, e| *on_error.borrow_mut() = Some(Err(e.to_string())),
        move |_peer, head, body| {
            let status = head.status();
            body.read_to_end(64 * 1024, move |r| {
                let r = r.map(|b| (status, String::from_utf8_lossy(&b).into_owned()));
                *on_body.borrow_mut() = Some(r.map_err(|e| e.to_string()));
            });
        },
        req,
    )
    .expect("the ctx names the client agent");
    body.close().expect("a GET has no body to write");
    outcome
}

fn show(what: &str, r: &Outcome) {
    match r {
        Ok((status, body)) => print!("{what}: {status} {body}"),
        Err(e) => println!("{what}: error: {e}"),
    }
}

fn main() {
    let mut pair = Pair::builder()
        .faults(WireFaults {
            latency: Duration::from_millis(10),
            ..WireFaults::default()
        })
        .build();
    let t0 = pair.now();
    let ms = |t: Instant| (t - t0).as_millis();

    let service = service::init(&mut pair.server, 80).expect("listen on port 80");
    let Initialized(server) = service::http(
        service,
        Config::default(),
        None,
        service::default_error_handler,
        what_you_asked,
    );
    println!("server: accepting on {}", B.with_port(80));

    let agent = client::Agent::attach(&mut pair.client, client::Options::default());
    let questions: Questions = Rc::default();
    // fold ipaddr [req domain_name] ~k:resolver |> fold tcp_edn [req stack; req ipaddr; dft port 80]
    let base = Ctx::empty()
        .fold(
            &client::ipaddr(),
            req(&client::domain_name()),
            resolver(&questions),
        )
        .fold(
            &client::tcp_edn(),
            (
                req(&client::agent()),
                req(&client::ipaddr()),
                dft(&client::port(), 80),
            ),
            |(stack, addr, port)| Step::Ready(TcpEndpoint { stack, addr, port }),
        )
        .add(&client::agent(), agent.clone());

    // Two requests; each asks the resolver when it starts.
    println!(
        "{:4} ms  client: GET http://paf.test/ and http://nowhere.test/",
        ms(pair.now())
    );
    let name = |n: &str| base.clone().add(&client::domain_name(), n.to_owned());
    let found = start_get(&name("paf.test"), "/");
    let not_found = start_get(&name("nowhere.test"), "/");
    assert_eq!(questions.borrow().len(), 2);

    // The questions are on their way: nothing moves meanwhile.
    pair.advance(DNS_DELAY);
    println!(
        "{:4} ms  client: {} connection(s), server: {} accepted; client loop's next work: {:?}",
        ms(pair.now()),
        agent.connections(),
        server.stats().accepted,
        pair.client.next_deadline().map(ms)
    );
    assert!(found.borrow().is_none() && not_found.borrow().is_none());
    assert_eq!((agent.connections(), server.stats().accepted), (0, 0));

    // The answers arrive. Completing the promises is all it takes: the client's loop has work
    // now, and the requests go on at its next turn.
    let answered = pair.now();
    answer(&questions);
    let next = pair.client.next_deadline();
    println!(
        "{:4} ms  client loop's next work: {:?}",
        ms(pair.now()),
        next.map(ms)
    );
    assert_eq!(
        next,
        Some(pair.now()),
        "completing the promise woke the loop"
    );

    let took = pair.drive(Duration::from_secs(5), |_| {
        found.borrow().is_some() && not_found.borrow().is_some()
    });
    println!(
        "{:4} ms  both requests over, {took:?} after the answers",
        ms(pair.now())
    );
    let found = found.take().expect("over");
    let not_found = not_found.take().expect("over");
    show("  paf.test", &found);
    show("  nowhere.test", &not_found);
    assert_eq!(
        found,
        Ok((StatusCode::OK, "GET / (Host: paf.test)\n".into()))
    );
    let e = not_found.expect_err("no address for nowhere.test");
    assert!(e.contains("nowhere.test: NXDOMAIN"), "{e}");
    // A TCP handshake and one exchange over a 10 ms wire (plus ARP), nothing more.
    assert!(took < Duration::from_millis(100), "{took:?}");

    // The friendly client, on the same resolver ahead of the stack's own DNS.
    let friendly = Client::new(&agent).with_ctx(client::ctx(&agent).fold_first(
        &client::ipaddr(),
        req(&client::domain_name()),
        resolver(&questions),
    ));
    let got: Rc<RefCell<Option<Outcome>>> = Rc::default();
    let g = got.clone();
    println!(
        "{:4} ms  client: Client::get http://paf.test/friendly",
        ms(pair.now())
    );
    friendly.get("http://paf.test/friendly", move |r| {
        let r = r.map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()));
        *g.borrow_mut() = Some(r.map_err(|e| e.to_string()));
    });
    pair.advance(DNS_DELAY);
    assert!(got.borrow().is_none());
    answer(&questions);
    let took = pair.drive(Duration::from_secs(5), |_| got.borrow().is_some());
    let got = got.take().expect("over");
    println!(
        "{:4} ms  response, {took:?} after the answer",
        ms(pair.now())
    );
    show("  paf.test", &got);
    assert_eq!(
        got,
        Ok((StatusCode::OK, "GET /friendly (Host: paf.test)\n".into()))
    );
    assert!(answered < pair.now());
    println!("client: {:?}", agent.stats());
    assert_eq!(agent.stats().dns_queries, 0, "our resolver answered");
}

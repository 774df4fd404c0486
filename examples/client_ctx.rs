//! The seed's client example, in paf: `request ~ctx` with a ctx built the two ways the seed
//! shows — a `tcp_edn` added directly (`Mimic.add Paf.tcp_edn (stack, ipaddr, 80)`), and one
//! folded from `domain_name` through the resolver with the port defaulting to 80 — then the
//! friendly client on top.
//!
//! It runs without root: paf's HTTP service on one userspace stack, the client on another, the
//! two joined by the in-memory wire. `cargo run --example client_ctx`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use net::device::{wire, Device, Faults, Link};
use net::testing::{config, B_V4};
use paf::client::{self, Client, Options, TcpEdn};
use paf::ctx::{Ctx, TcpEndpoint};
use paf::http::client::ClientConfig;
use paf::service::{self, Initialized, Reqd, Switch};
use paf::Runtime;

fn stack(a: bool, end: wire::WireEnd) -> Box<net::Stack> {
    let stack = net::Stack::new(config(a, 3), Device::new(Link::Wire(end)), Instant::now());
    Box::new(stack.expect("valid config"))
}

/// Sends `GET path` on `ctx` and turns `rt` until the body is in.
fn get(rt: &mut Runtime, ctx: &Ctx, path: &str) -> String {
    let out: Rc<RefCell<Option<String>>> = Rc::default();
    let (o1, o2) = (out.clone(), out.clone());
    let body = client::request(
        ctx,
        ClientConfig::default(),
        move |peer, e| *o1.borrow_mut() = Some(format!("error from {peer:?}: {e}")),
        move |peer, head, body| {
            println!("{peer} answered {}", head.status());
            body.read_to_end(1 << 20, move |r| {
                *o2.borrow_mut() = Some(String::from_utf8_lossy(&r.unwrap_or_default()).into());
            });
        },
        Request::get(path).body(()).expect("valid request"),
    )
    .expect("the ctx describes an endpoint");
    body.close().expect("no body to write");
    while out.borrow().is_none() {
        rt.turn(Some(Duration::from_millis(50))).expect("loop");
    }
    out.take().unwrap_or_default()
}

fn main() {
    let (a, b) = wire::pair(1500, Faults::default(), Faults::default(), 3);
    let stop = Switch::new();
    let s = stop.clone();
    let server = std::thread::spawn(move || {
        let mut rt = Runtime::new(stack(false, b)).expect("server runtime");
        let svc = service::init(&mut rt, 80).expect("port 80");
        let hello = |_peer, reqd: Reqd| {
            let body = format!("hello {}\n", reqd.request().uri().path());
            let _ = reqd.respond_with_bytes(Response::new(()), body);
        };
        let Initialized(h) = service::http(
            svc,
            Default::default(),
            Some(s),
            service::default_error_handler,
            hello,
        );
        rt.run_until(|_| h.is_finished()).expect("server loop");
    });

    let mut rt = Runtime::new(stack(true, a)).expect("client runtime");
    let stack = client::Stack::attach(&mut rt, Options::default());

    // let ctx = Mimic.add Paf.tcp_edn (stack, ipaddr, 80) Mimic.empty
    let edn: TcpEdn = TcpEndpoint {
        stack: stack.clone(),
        addr: IpAddr::from(B_V4),
        port: 80,
    };
    let ctx = Ctx::empty().add(&client::tcp_edn(), edn);
    print!("{}", get(&mut rt, &ctx, "/added"));

    // fold ipaddr [req domain_name] ~k:resolver; fold tcp_edn [req stack; req ipaddr; dft port 80]
    // (client::ctx has both folds; a literal address skips DNS, a name asks the stack's DNS).
    let ctx = client::ctx(&stack).add(&client::domain_name(), B_V4.to_string());
    print!("{}", get(&mut rt, &ctx, "/folded"));

    // The friendly client (the seed's pointer to paf.cohttp): URL in, response out.
    let client = Client::new(&stack);
    let url = format!("http://{B_V4}/friendly");
    let r = client::fetch_blocking(
        &mut rt,
        &client,
        Method::GET,
        &url,
        Default::default(),
        vec![],
    )
    .expect("response");
    print!("{} {}", r.status, String::from_utf8_lossy(&r.body));
    println!("{:?}", stack.stats());

    stop.turn_off();
    let until = Instant::now() + Duration::from_secs(5);
    while !server.is_finished() && Instant::now() < until {
        rt.turn(Some(Duration::from_millis(20))).expect("loop");
    }
    let _ = server.join();
}

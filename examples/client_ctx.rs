//! The seed's client: `request ~ctx` with a ctx built the two ways the seed shows, then the
//! friendly client on top.
//!
//! ```text
//! (* 1. the endpoint given *)
//! let ctx = Mimic.add Paf.tcp_edn (stack, ipaddr, 80) Mimic.empty
//!
//! (* 2. the endpoint folded: ipaddr from domain_name through a resolver, port 80 by default *)
//! let ctx =
//!   let open Mimic in
//!   fold ipaddr Fun.[ req domain_name ] ~k:resolver Mimic.empty
//!   |> fold Paf.tcp_edn Fun.[ req stack; req ipaddr; dft port 80 ]
//!
//! Paf.request ~ctx ~error_handler ~response_handler req
//! ```
//!
//! The seed's resolver calls `gethostbyname`; this one looks names up in a hosts table (the
//! client runs on its own userspace stack, not the host's). The keys are paf's
//! (`client::domain_name()`, `ipaddr`, `stack`, `port`, `tcp_edn`), so the friendly
//! [`Client`] can start from the same kind of ctx (`with_ctx`).
//!
//! Server and client run on a [`Pair`]: two runtimes joined by the in-memory wire, on one
//! virtual clock, stepped on this thread. The server listens on ports 80 and 8080 and answers
//! with what it was asked. The example checks what it prints: it panics (exit code 101) when
//! something differs.
//!
//! `cargo run --example client_ctx`

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use paf::client::{self, Client};
use paf::ctx::{dft, req, Ctx, Step, TcpEndpoint};
use paf::http::{self, Config, Request, Response, StatusCode};
use paf::service::{self, Initialized, Reqd};
use paf::testing::{Pair, B};

/// What a request got: the status and the body, or the error.
type Outcome = Result<(StatusCode, String), String>;

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

/// The resolver of the seed's example (`gethostbyname` there): a hosts table.
fn resolver(domain_name: String) -> Step<IpAddr> {
    let found = match domain_name.as_str() {
        "paf.test" | "www.paf.test" => Some(IpAddr::V4(B.v4)),
        _ => None,
    };
    println!("  resolver: {domain_name} → {found:?}");
    // The seed's `Lwt.return_none`; `Step::from(found)` would do, with "no value" as the reason.
    match found {
        Some(addr) => Step::Ready(addr),
        None => Step::Failed(format!("{domain_name} is not in the hosts table")),
    }
}

/// `Paf.request ~ctx ~error_handler ~response_handler (GET path)`, driving both loops until
/// the body or the error is in.
fn get(pair: &mut Pair, ctx: &Ctx, path: &str) -> Outcome {
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
    );
    // Failures known at once (no endpoint at all, say) are returned here.
    match body {
        Ok(body) => body.close().expect("a GET has no body to write"),
        Err(e) => return Err(e.to_string()),
    }
    pair.drive(Duration::from_secs(30), |_| outcome.borrow().is_some());
    let r = outcome.borrow_mut().take();
    r.expect("an answer within 30 s")
}

fn show(what: &str, r: &Outcome) {
    match r {
        Ok((status, body)) => print!("{what}: {status} {body}"),
        Err(e) => println!("{what}: error: {e}"),
    }
}

fn main() {
    let mut pair = Pair::new();
    let mut servers = Vec::new();
    for port in [80, 8080] {
        let service = service::init(&mut pair.server, port).expect("a free port");
        let Initialized(handle) = service::http(
            service,
            Config::default(),
            None,
            service::default_error_handler,
            what_you_asked,
        );
        servers.push(handle);
    }
    println!("server: accepting on {} and :8080", B.with_port(80));
    let agent = client::Agent::attach(&mut pair.client, client::Options::default());

    // 1. let ctx = Mimic.add Paf.tcp_edn (stack, ipaddr, 80) Mimic.empty
    let edn: client::TcpEdn = TcpEndpoint {
        stack: agent.clone(),
        addr: IpAddr::V4(B.v4),
        port: 80,
    };
    let ctx = Ctx::empty().add(&client::tcp_edn(), edn);
    let r = get(&mut pair, &ctx, "/added");
    show("1. tcp_edn added", &r);
    // No name anywhere: `Host` is the address.
    assert_eq!(
        r,
        Ok((StatusCode::OK, "GET /added (Host: 198.18.0.2)\n".into()))
    );

    // 2. fold ipaddr [req domain_name] ~k:resolver |> fold tcp_edn [req stack; req ipaddr;
    //    dft port 80], then the stack and a name added (order does not matter: resolution is
    //    lazy, when the request asks for an endpoint).
    let folded = Ctx::empty()
        .fold(&client::ipaddr(), req(&client::domain_name()), resolver)
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
    let ctx = folded
        .clone()
        .add(&client::domain_name(), "paf.test".to_owned());
    let r = get(&mut pair, &ctx, "/folded");
    show("2. tcp_edn folded, port by default", &r);
    assert_eq!(
        r,
        Ok((StatusCode::OK, "GET /folded (Host: paf.test)\n".into()))
    );

    // The default gives way to a port in the ctx.
    let r = get(&mut pair, &ctx.add(&client::port(), 8080), "/port");
    show("2. tcp_edn folded, port 8080 given", &r);
    assert_eq!(
        r,
        Ok((StatusCode::OK, "GET /port (Host: paf.test:8080)\n".into()))
    );

    // A name the resolver does not know: no endpoint, and the report says why.
    let ctx = folded.add(&client::domain_name(), "nowhere.test".to_owned());
    let r = get(&mut pair, &ctx, "/nowhere");
    show("2. tcp_edn folded, unknown name", &r);
    let e = r.expect_err("no endpoint for an unknown name");
    assert!(e.contains("nowhere.test is not in the hosts table"), "{e}");

    // 3. The friendly client (the seed's pointer to paf.cohttp): URLs in, responses out. It
    //    starts from the stack's base ctx (DNS over the stack) with our resolver tried first.
    let base =
        client::ctx(&agent).fold_first(&client::ipaddr(), req(&client::domain_name()), resolver);
    let friendly = Client::new(&agent).with_ctx(base);
    let got: Rc<RefCell<Vec<Outcome>>> = Rc::default();
    for url in ["http://www.paf.test/friendly", "http://paf.test:8080/x?y=1"] {
        let g = got.clone();
        friendly.get(url, move |r| {
            let r = r
                .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                .map_err(|e| e.to_string());
            g.borrow_mut().push(r);
        });
    }
    pair.drive(Duration::from_secs(30), |_| got.borrow().len() == 2);
    let got = got.take();
    for r in &got {
        show("3. Client::get", r);
    }
    assert_eq!(
        got,
        [
            Ok((
                StatusCode::OK,
                "GET /friendly (Host: www.paf.test)\n".into()
            )),
            Ok((StatusCode::OK, "GET /x?y=1 (Host: paf.test:8080)\n".into())),
        ]
    );

    let stats = agent.stats();
    println!("client: {stats:?}");
    assert_eq!(stats.dns_queries, 0, "our resolver answered every name");
    for s in &servers {
        assert_eq!(s.stats().errors, 0);
    }
}

//! Unit tests of the client's synchronous parts: body framing from the head, what `request`
//! refuses at once, the writer's limits, pool keys, and the ctx's endpoint folds.

use crate::http;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use ::http::Request;

use super::agent::framing;
use super::state::{BodyKind, PoolKey};
use super::*;
use crate::ctx::{Next, Resolution};
use crate::runtime::Runtime;

/// A runtime on a stack whose wire leads nowhere (nothing is ever sent in these tests).
fn runtime() -> Runtime {
    crate::testing::Pair::new().client
}

fn head(method: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri("/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

#[test]
fn the_head_decides_the_body_framing() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<&'a str, &'a str>);
    let cases: [Case<'_>; 8] = [
        ("GET", &[], Ok("empty")),
        ("POST", &[("content-length", "0")], Ok("empty")),
        ("PUT", &[("content-length", "12")], Ok("length 12")),
        ("POST", &[("transfer-encoding", "chunked")], Ok("chunked")),
        ("POST", &[("content-length", "x")], Err("Content-Length")),
        ("POST", &[("transfer-encoding", "gzip")], Err("chunked")),
        (
            "POST",
            &[("content-length", "3"), ("transfer-encoding", "chunked")],
            Err("both"),
        ),
        ("CONNECT", &[], Err("CONNECT")),
    ];
    for (method, headers, want) in cases {
        let got = framing(head(method, headers));
        match (got, want) {
            (Ok((req, kind)), Ok(w)) => {
                let k = match kind {
                    BodyKind::Empty => "empty".to_owned(),
                    BodyKind::Length(n) => format!("length {n}"),
                    BodyKind::Chunked => "chunked".to_owned(),
                    BodyKind::Bytes(_) => "bytes".to_owned(),
                };
                assert_eq!(k, w, "{method} {headers:?}");
                // The codec writes the framing headers itself.
                assert!(req.headers().get("content-length").is_none());
                assert!(req.headers().get("transfer-encoding").is_none());
            }
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e} vs {w}"),
            (got, want) => panic!("{method} {headers:?}: {:?} vs {want:?}", got.map(|_| ())),
        }
    }
}

#[test]
fn request_refuses_at_once_what_cannot_start() {
    let mut rt = runtime();
    let stack = Agent::attach(&mut rt, Options::default());
    let nothing = |_: Option<SocketAddr>, e: Error| panic!("error handler called: {e}");
    let no_response = |_: SocketAddr, _: ::http::Response<()>, _: ResponseBody| panic!("response");
    // Nothing in the ctx: neither endpoint can be built.
    let e = request(
        &crate::ctx::Ctx::empty(),
        http::client::Config::default(),
        nothing,
        no_response,
        head("GET", &[]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no usable endpoint: cannot resolve tls_edn: missing tls_edn; cannot resolve tcp_edn: \
         missing tcp_edn"
    );
    // A stack but no server: the report names the missing key.
    let e = request(
        &ctx(&stack),
        http::client::Config::default(),
        nothing,
        no_response,
        head("GET", &[]),
    )
    .unwrap_err();
    let Error::Ctx(report) = &e else {
        panic!("{e}")
    };
    assert!(report.missing().any(|m| m.key() == "domain_name"), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(stack.in_flight(), 0);
}

#[test]
fn the_body_writer_enforces_the_declared_framing() {
    let mut rt = runtime();
    let stack = Agent::attach(&mut rt, Options::default());
    let ctx = ctx(&stack).add(&domain_name(), "198.18.0.2".to_owned());
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let start = |req: Request<()>| {
        let e = errors.clone();
        request(
            &ctx,
            http::client::Config::default(),
            move |_, err| e.borrow_mut().push(err.to_string()),
            |_, _, _| {},
            req,
        )
        .unwrap()
    };
    // A GET has no body to write; closing it is fine.
    let mut w = start(head("GET", &[]));
    assert_eq!(w.write(b"x"), Err(WriteError::NotStreaming));
    assert_eq!(w.close(), Ok(()));
    // A declared length cannot be exceeded, nor fall short.
    let mut w = start(head("PUT", &[("content-length", "4")]));
    assert_eq!(w.write(b"hello"), Err(WriteError::TooLong));
    assert_eq!(w.write(b"hel"), Ok(3));
    assert_eq!(w.close(), Err(WriteError::TooShort));
    // The buffer is bounded: a big write is taken in part.
    let mut w = start(head("POST", &[("transfer-encoding", "chunked")]));
    let cap = Options::default().body_buffer;
    assert_eq!(w.write(&vec![0; cap + 10]), Ok(cap));
    assert_eq!(w.write(b"more"), Ok(0));
    drop(w); // unclosed: the request is cancelled
    rt.turn(Some(std::time::Duration::ZERO)).unwrap();
    let errors = errors.borrow();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("shorter than the declared"),
        "{errors:?}"
    );
    assert!(errors[1].contains("cancelled"), "{errors:?}");
    assert_eq!(
        stack.in_flight(),
        1,
        "only the GET is left (waiting for its connection)"
    );
}

#[test]
fn pool_keys_compare_address_tls_name_and_configs() {
    let addr: SocketAddr = "198.18.0.2:443".parse().unwrap();
    let tls_a = crate::tls::ClientConfig::dangerous_insecure().unwrap();
    let tls_b = crate::tls::ClientConfig::dangerous_insecure().unwrap();
    let key =
        |tls: Option<(&str, &crate::tls::ClientConfig)>, config: http::client::Config| PoolKey {
            addr,
            tls: tls.map(|(n, c)| (Some(n.to_owned()), c.clone())),
            config: Arc::new(config),
            preamble: None,
        };
    let base = key(Some(("a.test", &tls_a)), http::client::Config::default());
    assert_eq!(
        base,
        key(Some(("a.test", &tls_a)), http::client::Config::default())
    );
    assert_ne!(
        base,
        key(Some(("b.test", &tls_a)), http::client::Config::default())
    );
    assert_ne!(
        base,
        key(Some(("a.test", &tls_b)), http::client::Config::default())
    );
    assert_ne!(base, key(None, http::client::Config::default()));
    let other = http::client::Config {
        max_headers: 7,
        ..http::client::Config::default()
    };
    assert_ne!(base, key(Some(("a.test", &tls_a)), other));
    // A preamble (a PROXY header) is part of the key: equal bytes share, others do not.
    let with = |p: &[u8]| PoolKey {
        preamble: Some(Arc::from(p)),
        ..base.clone()
    };
    assert_ne!(base, with(b"PROXY TCP4 a"));
    assert_eq!(with(b"PROXY TCP4 a"), with(b"PROXY TCP4 a"));
    assert_ne!(with(b"PROXY TCP4 a"), with(b"PROXY TCP4 b"));
}

#[test]
fn the_base_ctx_defaults_ports_and_prefers_tls_without_dns_for_literals() {
    let mut rt = runtime();
    let stack = Agent::attach(&mut rt, Options::default());
    let tls = crate::tls::ClientConfig::dangerous_insecure().unwrap();
    let base = ctx(&stack).add(&domain_name(), "198.18.0.2".to_owned());
    let ip: IpAddr = "198.18.0.2".parse().unwrap();
    match base.resolve(&tcp_edn()).poll() {
        Resolution::Ready(e) => assert_eq!((e.addr, e.port), (ip, 80)),
        other => panic!("{other:?}"),
    }
    let with_tls = base.clone().add(&tls_config(), tls);
    let mut c = crate::ctx::Connect::new(&with_tls, &tls_edn(), &tcp_edn());
    match c.poll() {
        Next::Connect(e) => {
            assert!(e.is_tls());
            assert_eq!(e.addr(), SocketAddr::new(ip, 443));
        }
        other => panic!("{other:?}"),
    }
    // A TLS failure is not followed by plain TCP.
    c.attempt_failed("handshake failed");
    assert!(matches!(c.poll(), Next::Failed(_)));
    assert_eq!(stack.stats().dns_queries, 0, "a literal is never looked up");
}

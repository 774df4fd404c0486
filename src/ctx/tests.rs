//! Ctx tests: values, folds, laziness, cycles, asynchronous steps, endpoint priority and the
//! error report; the seed's `domain_name → ipaddr → tcp_edn` example.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

use super::*;

/// A stand-in for the runtime's stack handle.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stack(&'static str);

/// A stand-in for the runtime's TLS client config.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TlsConf(&'static str);

type Tcp = TcpEndpoint<Stack>;
type Tls = TlsEndpoint<Stack, TlsConf>;

/// DNS queries a fold started: the name and the completer of its answer.
type Queries = Rc<RefCell<Vec<(String, Completer<IpAddr>)>>>;

const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

/// The seed's keys, plus a TLS config and the endpoint keys.
struct Keys {
    domain_name: Value<String>,
    ipaddr: Value<IpAddr>,
    stack: Value<Stack>,
    port: Value<u16>,
    tls_config: Value<TlsConf>,
    tcp_edn: Value<Tcp>,
    tls_edn: Value<Tls>,
}

fn keys() -> Keys {
    Keys {
        domain_name: make("domain_name"),
        ipaddr: make("ipaddr"),
        stack: make("stack"),
        port: make("port"),
        tls_config: make("tls_config"),
        tcp_edn: make("tcp_edn"),
        tls_edn: make("tls_edn"),
    }
}

/// The seed's ctx: `ipaddr` from `domain_name` through a resolver that counts its calls,
/// `tcp_edn` from `req stack; req ipaddr; dft port 80`, and a `tls_edn` fold (port 443).
fn seed_ctx(k: &Keys, calls: &Rc<Cell<u32>>) -> Ctx {
    let calls = Rc::clone(calls);
    Ctx::empty()
        .fold(&k.ipaddr, req(&k.domain_name), move |name: String| {
            calls.set(calls.get() + 1);
            Step::from((name == "paf.test").then_some(ADDR))
        })
        .fold(
            &k.tcp_edn,
            (req(&k.stack), req(&k.ipaddr), dft(&k.port, 80)),
            |(stack, addr, port)| Step::Ready(TcpEndpoint { stack, addr, port }),
        )
        .fold(
            &k.tls_edn,
            (
                opt(&k.domain_name),
                req(&k.tls_config),
                req(&k.stack),
                req(&k.ipaddr),
                dft(&k.port, 443),
            ),
            |(domain_name, tls, stack, addr, port)| {
                Step::Ready(TlsEndpoint {
                    domain_name,
                    tls,
                    stack,
                    addr,
                    port,
                })
            },
        )
}

fn connect(ctx: &Ctx, k: &Keys) -> Connect<Stack, TlsConf> {
    Connect::new(ctx, &k.tls_edn, &k.tcp_edn)
}

fn tcp(port: u16) -> Endpoint<Stack, TlsConf> {
    Endpoint::Tcp(TcpEndpoint {
        stack: Stack("tap0"),
        addr: ADDR,
        port,
    })
}

#[test]
fn values() {
    let a = make::<u32>("a");
    let b = make::<u32>("a");
    assert_ne!(a, b, "same name, different keys");
    let ctx = Ctx::empty().add(&a, 1);
    let ctx2 = ctx.clone().add(&a, 2).add(&b, 3);
    assert_eq!(
        (ctx.get(&a), ctx.get(&b)),
        (Some(1), None),
        "builders do not share"
    );
    assert_eq!((ctx2.get(&a), ctx2.get(&b)), (Some(2), Some(3)));
    assert!(ctx.contains(&a) && !ctx.contains(&b));
    assert!(matches!(ctx2.resolve(&b).poll(), Resolution::Ready(3)));
    assert_eq!(a.name(), "a");
}

#[test]
fn folds_with_req_opt_dft() {
    let (x, y, z, out) = (
        make::<u32>("x"),
        make::<u32>("y"),
        make::<String>("z"),
        make::<String>("out"),
    );
    let ctx = Ctx::empty().fold(
        &out,
        (req(&x), opt(&y), dft(&z, "dz".to_owned())),
        |(x, y, z)| Step::Ready(format!("{x} {y:?} {z}")),
    );
    let get = |ctx: &Ctx| match ctx.resolve(&out).poll() {
        Resolution::Ready(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&ctx.clone().add(&x, 1)), "1 None dz");
    assert_eq!(
        get(&ctx.clone().add(&x, 1).add(&y, 2).add(&z, "z".into())),
        "1 Some(2) z"
    );
    // A fold may feed another; an empty argument list is fine.
    let ctx = ctx.fold(&x, (), |()| Step::Ready(7));
    assert_eq!(get(&ctx), "7 None dz");
}

#[test]
fn value_wins_and_folds_are_tried_in_order() {
    let (a, out) = (make::<u32>("a"), make::<u32>("out"));
    let ctx = Ctx::empty()
        .fold(&out, req(&a), |_| Step::Failed("first refuses".into()))
        .fold(&out, (), |()| Step::Ready(2))
        .fold(&out, (), |()| Step::Ready(3))
        .add(&a, 1);
    assert!(matches!(ctx.resolve(&out).poll(), Resolution::Ready(2)));
    let ctx = ctx.add(&out, 9);
    assert!(matches!(ctx.resolve(&out).poll(), Resolution::Ready(9)));
}

#[test]
fn missing_required_key_is_reported_with_its_chain() {
    let k = keys();
    let calls = Rc::new(Cell::new(0));
    let ctx = seed_ctx(&k, &calls).add(&k.stack, Stack("tap0"));
    let Resolution::Failed(e) = ctx.resolve(&k.tcp_edn).poll() else {
        panic!("must fail");
    };
    assert_eq!(e.key(), "tcp_edn");
    let missing: Vec<&str> = e.missing().iter().map(Missing::key).collect();
    assert_eq!(missing, ["domain_name"]);
    assert!(e.is_missing_only());
    assert_eq!(
        e.to_string(),
        "cannot resolve tcp_edn: missing tcp_edn → ipaddr → domain_name"
    );
    assert_eq!(calls.get(), 0);
}

#[test]
fn failures_and_cycles_are_reported() {
    let (a, b, c) = (make::<u32>("a"), make::<u32>("b"), make::<u32>("c"));
    // a ← b ← a, and c's fold fails.
    let ctx = Ctx::empty()
        .fold(&a, req(&b), Step::Ready)
        .fold(&b, req(&a), Step::Ready)
        .fold(&a, req(&c), Step::Ready)
        .fold(&c, (), |()| Step::Failed("no c today".into()));
    let Resolution::Failed(e) = ctx.resolve(&a).poll() else {
        panic!("must fail");
    };
    assert!(!e.is_missing_only());
    assert_eq!(
        e.failures(),
        [
            Failure {
                chain: vec!["a", "b", "a"],
                reason: Reason::Cycle(vec!["a", "b", "a"]),
            },
            Failure {
                chain: vec!["a", "c"],
                reason: Reason::Step("no c today".into()),
            },
        ]
    );
    assert_eq!(
        e.to_string(),
        "cannot resolve a: cycle a → b → a; a → c failed: no c today"
    );
    // A cycle with a way out resolves.
    let ctx = ctx.fold(&b, (), |()| Step::Ready(5));
    assert!(matches!(ctx.resolve(&a).poll(), Resolution::Ready(5)));
    // A self-cycle.
    let ctx = Ctx::empty().fold(&a, req(&a), |x: u32| Step::Ready(x + 1));
    let Resolution::Failed(e) = ctx.resolve(&a).poll() else {
        panic!("must fail");
    };
    assert_eq!(e.to_string(), "cannot resolve a: cycle a → a");
}

#[test]
fn seed_example() {
    let k = keys();
    let calls = Rc::new(Cell::new(0));
    let base = seed_ctx(&k, &calls).add(&k.stack, Stack("tap0"));

    // domain_name given, port missing: ipaddr through the resolver, port 80.
    let ctx = base.clone().add(&k.domain_name, "paf.test".into());
    let mut c = connect(&ctx, &k);
    assert_eq!(c.poll().endpoint(), Some(tcp(80)));
    assert_eq!(calls.get(), 1);

    // ipaddr given: the resolver fold is not evaluated.
    let ctx = base.clone().add(&k.ipaddr, ADDR).add(&k.port, 8080);
    assert_eq!(connect(&ctx, &k).poll().endpoint(), Some(tcp(8080)));
    assert_eq!(calls.get(), 1);

    // Neither domain_name nor ipaddr: the error names the missing keys.
    let Next::Failed(e) = connect(&base, &k).poll() else {
        panic!("must fail");
    };
    let mut missing: Vec<&str> = e.missing().map(Missing::key).collect();
    missing.sort_unstable();
    missing.dedup();
    assert_eq!(missing, ["domain_name", "tls_config"]);
    assert_eq!(
        e.to_string(),
        "no usable endpoint: cannot resolve tls_edn: missing tls_edn → tls_config; \
         missing tls_edn → ipaddr → domain_name; \
         cannot resolve tcp_edn: missing tcp_edn → ipaddr → domain_name"
    );
    assert_eq!(calls.get(), 1, "nothing to resolve with");

    // An unknown name: the resolver's failure is in the report.
    let ctx = base.add(&k.domain_name, "nowhere.test".into());
    let Next::Failed(e) = connect(&ctx, &k).poll() else {
        panic!("must fail");
    };
    assert!(
        e.to_string().contains("tcp_edn → ipaddr failed: no value"),
        "{e}"
    );
}

#[test]
fn tls_before_tcp_and_no_silent_fallback() {
    let k = keys();
    let calls = Rc::new(Cell::new(0));
    let ctx = seed_ctx(&k, &calls)
        .add(&k.stack, Stack("tap0"))
        .add(&k.domain_name, "paf.test".into())
        .add(&k.tls_config, TlsConf("webpki"));
    let mut c = connect(&ctx, &k);
    let tls = Endpoint::Tls(TlsEndpoint {
        domain_name: Some("paf.test".into()),
        tls: TlsConf("webpki"),
        stack: Stack("tap0"),
        addr: ADDR,
        port: 443,
    });
    assert_eq!(c.poll().endpoint(), Some(tls.clone()));
    assert!(matches!(c.poll(), Next::Pending), "attempt under way");
    c.attempt_failed("certificate for another name");
    let Next::Failed(e) = c.poll() else {
        panic!("no fallback");
    };
    assert_eq!(
        e.to_string(),
        "no usable endpoint: tls_edn to 10.0.0.2:443 failed: certificate for another name; \
         tcp_edn not tried (no plaintext fallback after TLS)"
    );

    // The ctx may allow it: the DNS result is shared by both candidates.
    let ctx = ctx.add(&allow_plain_fallback(), true);
    let mut c = connect(&ctx, &k);
    assert_eq!(c.poll().endpoint(), Some(tls));
    c.attempt_failed("handshake failed");
    assert_eq!(c.poll().endpoint(), Some(tcp(80)));
    c.attempt_failed("refused");
    let Next::Failed(e) = c.poll() else {
        panic!("nothing left");
    };
    assert_eq!(e.candidates().len(), 2);
    assert!(
        e.to_string()
            .ends_with("tcp_edn to 10.0.0.2:80 failed: refused"),
        "{e}"
    );
    assert_eq!(calls.get(), 2, "one DNS resolution per Connect");

    // A TLS config that fails to build is a failure, not an absence: no fallback either.
    let ctx = seed_ctx(&k, &calls)
        .add(&k.stack, Stack("tap0"))
        .add(&k.ipaddr, ADDR)
        .fold(&k.tls_config, (), |()| Step::Failed("bad CA file".into()));
    let Next::Failed(e) = connect(&ctx, &k).poll() else {
        panic!("no fallback");
    };
    assert_eq!(e.candidates()[1].outcome, CandidateOutcome::NoFallback);
    assert!(
        e.to_string()
            .contains("tls_edn → tls_config failed: bad CA file"),
        "{e}"
    );
}

#[test]
fn a_tls_endpoint_missing_its_keys_is_reported_only_when_nothing_else_works() {
    let k = keys();
    let calls = Rc::new(Cell::new(0));
    // No TLS configuration: TCP, with one DNS resolution.
    let ctx = seed_ctx(&k, &calls)
        .add(&k.stack, Stack("tap0"))
        .add(&k.domain_name, "paf.test".into());
    assert_eq!(connect(&ctx, &k).poll().endpoint(), Some(tcp(80)));
    assert_eq!(calls.get(), 1);

    // Neither endpoint can be built: the TLS one's report is the one its own resolution
    // gives (which runs no fold), first, then TCP's.
    let cases = [
        // Nothing to resolve the address from.
        seed_ctx(&k, &calls).add(&k.stack, Stack("tap0")),
        // The resolver fails (after the TLS endpoint was passed over): not in TLS's report.
        seed_ctx(&k, &calls)
            .add(&k.stack, Stack("tap0"))
            .add(&k.domain_name, "other.test".into()),
    ];
    for ctx in cases {
        let Resolution::Failed(tls) = ctx.resolve(&k.tls_edn).poll() else {
            panic!("the TLS endpoint cannot resolve");
        };
        assert!(tls.is_missing_only(), "{tls}");
        let before = calls.get();
        let mut c = connect(&ctx, &k);
        let Next::Failed(e) = c.poll() else {
            panic!("no endpoint");
        };
        assert_eq!(e.candidates().len(), 2, "{e}");
        assert_eq!(e.candidates()[0].key, "tls_edn");
        assert_eq!(
            e.candidates()[0].outcome,
            CandidateOutcome::Unresolved(tls.clone())
        );
        assert_eq!(e.candidates()[1].key, "tcp_edn");
        assert!(
            e.to_string().starts_with(&format!(
                "no usable endpoint: {tls}; cannot resolve tcp_edn"
            )),
            "{e}"
        );
        // Asked again, the same report (made once).
        let Next::Failed(again) = c.poll() else {
            panic!("still no endpoint");
        };
        assert_eq!(again, e);
        assert!(calls.get() - before <= 1, "at most the one DNS resolution");
    }
}

#[test]
fn the_kept_missing_verdict_follows_the_ctx() {
    let k = keys();
    let calls = Rc::new(Cell::new(0));
    // A plain ctx: the TLS endpoint is missing its configuration, TCP is used (twice, the
    // second time from the verdict the first left in the ctx).
    let plain = seed_ctx(&k, &calls)
        .add(&k.stack, Stack("tap0"))
        .add(&k.ipaddr, ADDR);
    for _ in 0..2 {
        assert_eq!(connect(&plain, &k).poll().endpoint(), Some(tcp(80)));
        assert_eq!(connect(&plain.clone(), &k).poll().endpoint(), Some(tcp(80)));
    }
    // The same ctx given a TLS configuration (after the verdict was kept): TLS now, and the
    // ctx it came from is unchanged.
    let tls = plain.clone().add(&k.tls_config, TlsConf("webpki"));
    let Some(Endpoint::Tls(e)) = connect(&tls, &k).poll().endpoint() else {
        panic!("TLS first once it has its configuration");
    };
    assert_eq!((e.addr, e.port), (ADDR, 443));
    assert_eq!(connect(&plain, &k).poll().endpoint(), Some(tcp(80)));
    // A fold that cannot run (its argument is missing) is a missing endpoint too, and one
    // that can is not.
    let folded = plain
        .clone()
        .fold(&k.tls_config, req(&k.domain_name), |_: String| {
            Step::Ready(TlsConf("folded"))
        });
    assert_eq!(connect(&folded, &k).poll().endpoint(), Some(tcp(80)));
    let named = folded.add(&k.domain_name, "paf.test".into());
    let Some(Endpoint::Tls(e)) = connect(&named, &k).poll().endpoint() else {
        panic!("the fold gives the TLS configuration");
    };
    assert_eq!(e.tls, TlsConf("folded"));
    assert_eq!(calls.get(), 0, "the address was a value");
}

#[test]
fn asynchronous_steps_complete_later() {
    let k = keys();
    let queries: Queries = Rc::default();
    let q = Rc::clone(&queries);
    let ctx = Ctx::empty()
        .fold(&k.ipaddr, req(&k.domain_name), move |name: String| {
            let (promise, completer) = promise();
            q.borrow_mut().push((name, completer));
            Step::Pending(promise)
        })
        .fold(
            &k.tcp_edn,
            (req(&k.stack), req(&k.ipaddr), dft(&k.port, 80)),
            |(stack, addr, port)| Step::Ready(TcpEndpoint { stack, addr, port }),
        )
        .add(&k.stack, Stack("tap0"))
        .add(&k.domain_name, "paf.test".into());

    let mut c = connect(&ctx, &k);
    assert!(matches!(c.poll(), Next::Pending));
    assert!(matches!(c.poll(), Next::Pending));
    assert_eq!(queries.borrow().len(), 1, "one query, started once");
    let (name, completer) = queries.borrow_mut().pop().unwrap();
    assert_eq!(name, "paf.test");
    assert!(completer.is_wanted());
    completer.complete(ADDR);
    assert_eq!(c.poll().endpoint(), Some(tcp(80)));

    // A failed or abandoned step fails the key with its reason.
    let mut r = ctx.resolve(&k.ipaddr);
    assert!(matches!(r.poll(), Resolution::Pending));
    queries.borrow_mut().pop().unwrap().1.fail("NXDOMAIN");
    let Resolution::Failed(e) = r.poll() else {
        panic!("must fail");
    };
    assert_eq!(
        e.to_string(),
        "cannot resolve ipaddr: ipaddr failed: NXDOMAIN"
    );
    let mut r = ctx.resolve(&k.ipaddr);
    assert!(matches!(r.poll(), Resolution::Pending));
    drop(queries.borrow_mut().pop());
    assert!(matches!(r.poll(), Resolution::Failed(e) if e.to_string().ends_with("abandoned")));

    // Nobody waits any more once the resolution is dropped.
    let mut r = ctx.resolve(&k.ipaddr);
    assert!(matches!(r.poll(), Resolution::Pending));
    drop(r);
    assert!(!queries.borrow()[0].1.is_wanted());
}

#[test]
fn laziness() {
    // A fold whose required keys cannot exist is skipped without evaluating anything else.
    let (name, addr, conf, out) = (
        make::<String>("name"),
        make::<IpAddr>("addr"),
        make::<u8>("conf"),
        make::<u8>("out"),
    );
    let calls = Rc::new(Cell::new(0));
    let n = Rc::clone(&calls);
    let ctx = Ctx::empty()
        .fold(&addr, req(&name), move |_: String| {
            n.set(n.get() + 1);
            Step::Ready(IpAddr::V6(Ipv6Addr::LOCALHOST))
        })
        .fold(&out, (req(&addr), req(&conf)), |(_, c)| Step::Ready(c))
        .add(&name, "x".into());
    let Resolution::Failed(e) = ctx.resolve(&out).poll() else {
        panic!("conf is missing");
    };
    assert_eq!(e.to_string(), "cannot resolve out: missing out → conf");
    assert_eq!(calls.get(), 0, "addr not resolved for nothing");
    // Memoized within one resolution, fresh for the next.
    let ctx = ctx.add(&conf, 1);
    let mut r = ctx.resolve(&out);
    assert!(matches!(r.poll(), Resolution::Ready(1)));
    assert!(matches!(r.poll(), Resolution::Ready(1)));
    assert_eq!(calls.get(), 1);
    assert!(matches!(ctx.resolve(&out).poll(), Resolution::Ready(1)));
    assert_eq!(calls.get(), 2);
}

impl<S, C> Next<S, C> {
    fn endpoint(self) -> Option<Endpoint<S, C>> {
        match self {
            Next::Connect(e) => Some(e),
            _ => None,
        }
    }
}

//! CONNECT tunnels through the appliance's `connect` routes, on the virtual pair: the
//! appliance on the server's stack (a connect route on port 80, none on 81, the same over TLS
//! on 443), a raw echo app on the client's stack (port 7000; nothing listens on 7001), and raw
//! clients.
//!
//! Checked: `200` with no framing fields, then bytes both ways byte-exact, including bytes sent
//! right behind the CONNECT head; half-closes from either side; the idle timeout at its instant;
//! `403` for a target the allow list refuses (before anything is dialled), `502` for a refused
//! port, `400` for a malformed target, `501` without a connect route, CONNECT never taken by
//! another route and a connect route taking nothing else; `/metrics`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use net::{ConnId, ListenerId, RecvError};
use paf::runtime::{App, Cx, LocalWaker};
use paf::service::Switch;
use paf::testing::{parse_response, ClientHandle, Pair, RawClient, B};
use paf::{appliance, tls};

use crate::tunnel_support::{echo_pattern, metric, metrics, read, Dir, LONG};

const BUF: usize = 64 * 1024;

#[derive(Default)]
struct EchoConn {
    out: Vec<u8>,
    eof: bool,
    shut: bool,
}

#[derive(Default)]
struct EchoState {
    conns: HashMap<ConnId, EchoConn>,
    /// Connections accepted.
    accepted: usize,
    /// Half-close every connection once its output is sent.
    fin: bool,
    /// Connections closed (both ways done).
    closed: usize,
    waker: Option<LocalWaker>,
}

/// A raw TCP echo server on port 7000: echoes everything, half-closes after the peer's FIN
/// (or when told), closes when both ways are done.
#[derive(Clone, Default)]
struct Echo(Rc<RefCell<EchoState>>);

impl Echo {
    fn start(rt: &mut paf::Runtime) -> Echo {
        let echo = Echo::default();
        rt.add(echo.clone(), |app, cx| {
            app.0.borrow_mut().waker = Some(cx.local_waker());
            cx.listen(7000, 64).map(drop)
        })
        .expect("listen 7000");
        echo
    }

    fn set(&self, f: impl FnOnce(&mut EchoState)) {
        let mut st = self.0.borrow_mut();
        f(&mut st);
        if let Some(w) = &st.waker {
            w.wake();
        }
    }

    fn pump(&self, cx: &mut Cx<'_>, id: ConnId) {
        let mut guard = self.0.borrow_mut();
        let st = &mut *guard;
        let Some(c) = st.conns.get_mut(&id) else {
            return;
        };
        loop {
            let mut moved = false;
            if !c.eof && c.out.len() < BUF {
                let mut buf = vec![0u8; BUF - c.out.len()];
                match cx.recv(id, &mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        c.out.extend_from_slice(&buf[..n]);
                        moved = true;
                    }
                    Err(RecvError::Finished) => {
                        c.eof = true;
                        moved = true;
                    }
                    Err(_) => {
                        st.conns.remove(&id);
                        cx.abort(id);
                        return;
                    }
                }
            }
            if !c.out.is_empty() {
                let n = cx.send(id, &c.out).unwrap_or(0);
                c.out.drain(..n);
                moved |= n > 0;
            }
            if c.out.is_empty() && !c.shut && (c.eof || st.fin) {
                cx.shutdown_write(id);
                c.shut = true;
                moved = true;
            }
            if c.shut && c.eof {
                st.conns.remove(&id);
                cx.close(id);
                st.closed += 1;
                return;
            }
            if !moved {
                return;
            }
        }
    }
}

impl App for Echo {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, id: ConnId, _p: SocketAddr) {
        let mut st = self.0.borrow_mut();
        st.accepted += 1;
        st.conns.insert(id, EchoConn::default());
        drop(st);
        self.pump(cx, id);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        self.pump(cx, id);
    }

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        let ids: Vec<ConnId> = self.0.borrow().conns.keys().copied().collect();
        for id in ids {
            self.pump(cx, id);
        }
    }
}

struct Net {
    pair: Pair,
    app: appliance::Appliance,
    echo: Echo,
    ca: PathBuf,
    _dir: Dir,
}

fn start(name: &str) -> Net {
    let dir = std::env::temp_dir().join(format!("paf-connect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = tls::certs::write_test_pki(&dir, &["paf.test"]).unwrap();
    let config = format!(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
host = "*.other.test"
action = "connect"
allow = ["*:*"]
[[listener.route]]
action = "connect"
allow = ["198.18.0.1:7000", "198.18.0.1:7001", "allowed.test:443"]
tunnel_idle_timeout = "5s"
[[listener.route]]
path = "/metrics"
action = "metrics"
[[listener.route]]
action = "static"
body = "static"
[[listener]]
name = "plain"
port = 81
[[listener.route]]
action = "static"
body = "static"
[[listener]]
name = "secure"
port = 443
protocol = "https"
protocols = ["http/1.1"]
certificate = {cert:?}
key = {key:?}
[[listener.route]]
action = "connect"
allow = ["198.18.0.0/24:7000"]
"#,
        cert = pki.cert,
        key = pki.key,
    );
    let cfg = paf::config::parse(&config, "test", &dir).expect("valid config");
    let mut pair = Pair::builder().seed(11).build();
    let echo = Echo::start(&mut pair.client);
    let app = appliance::start(&mut pair.server, &cfg, Switch::new()).expect("start");
    Net {
        pair,
        app,
        echo,
        ca: pki.ca_cert,
        _dir: Dir(dir),
    }
}

fn connect_request(target: &str) -> Vec<u8> {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: test\r\n\r\n").into_bytes()
}

/// Sends a CONNECT for `target` (with `early` right behind it) on `c`; returns the response
/// head and what came after it.
fn open(net: &mut Net, c: &ClientHandle, target: &str, early: &[u8]) -> (String, Vec<u8>) {
    let mut req = connect_request(target);
    req.extend_from_slice(early);
    c.send(&req);
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the response head", |_| {
        got.extend_from_slice(&c.take_input());
        got.windows(4).any(|w| w == b"\r\n\r\n")
    });
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let rest = got.split_off(end);
    (String::from_utf8(got).unwrap(), rest)
}

/// A refused CONNECT: its response (whole, body included), and the connection closed after it.
fn refused(net: &mut Net, port: u16, target: &str) -> paf::testing::ParsedResponse {
    let c = RawClient::connect(&mut net.pair.client, B.with_port(port)).unwrap();
    // Bytes meant for the tunnel: never read as HTTP.
    let mut req = connect_request(target);
    req.extend_from_slice(b"GET /static HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    c.send(&req);
    let mut got = Vec::new();
    net.pair
        .drive_until(LONG, "the refusal and the close", |_| {
            got.extend_from_slice(&c.take_input());
            c.is_done()
        });
    let (r, n) = parse_response(&got, false).unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(n, got.len(), "nothing after the refusal");
    assert!(c.is_eof() && !c.is_reset());
    r
}

#[test]
fn a_connect_to_an_allowed_target_tunnels_bytes_both_ways() {
    let mut net = start("bytes");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (head, rest) = open(&mut net, &c, "198.18.0.1:7000", b"early bytes");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    for never in ["content-length", "transfer-encoding", "connection"] {
        assert!(!lower.contains(never), "{never} in {head}");
    }
    // The bytes the client sent right behind its CONNECT, echoed.
    assert_eq!(read(&mut net.pair, &c, rest, 11), b"early bytes");
    echo_pattern(&mut net.pair, &c, 3 << 20);
    let m = metrics(&mut net.pair);
    assert_eq!(metric(&m, "paf_tunnels_open{listener=\"web\"}"), 1);
    assert_eq!(metric(&m, "paf_tunnels_total{listener=\"web\"}"), 1);
    let up = metric(
        &m,
        "paf_tunnel_bytes_total{listener=\"web\",direction=\"client_to_upstream\"}",
    );
    let down = metric(
        &m,
        "paf_tunnel_bytes_total{listener=\"web\",direction=\"upstream_to_client\"}",
    );
    assert_eq!((up, down), (11 + (3 << 20), 11 + (3 << 20)));
    assert_eq!(
        metric(
            &m,
            "paf_requests_total{listener=\"web\",route=\"1\",class=\"2xx\"}"
        ),
        1
    );
}

#[test]
fn a_fin_from_the_client_is_passed_on_and_both_connections_close() {
    let mut net = start("client-fin");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "198.18.0.1:7000", b"");
    assert!(rest.is_empty());
    c.send(b"last words");
    c.shutdown_write();
    assert_eq!(read(&mut net.pair, &c, Vec::new(), 10), b"last words");
    net.pair
        .drive_until(LONG, "the client's connection over", |_| c.is_done());
    assert!(c.is_eof() && !c.is_reset());
    let echo = net.echo.clone();
    net.pair
        .drive_until(LONG, "the target's connection closed", |_| {
            echo.0.borrow().closed == 1
        });
    let handle = net.app.handles[0].clone();
    net.pair
        .drive_until(LONG, "the server's connection freed", |_| {
            handle.stats().active == 0
        });
    assert_eq!(net.app.metrics.tunnels("web").stats().open, 0);
}

#[test]
fn a_fin_from_the_target_is_passed_on_and_the_client_still_sends() {
    let mut net = start("target-fin");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, _) = open(&mut net, &c, "198.18.0.1:7000", b"x");
    read(&mut net.pair, &c, Vec::new(), 1);
    net.echo.set(|s| s.fin = true);
    net.pair
        .drive_until(LONG, "the client's EOF", |_| c.is_eof());
    let echo = net.echo.clone();
    net.pair.drive_until(LONG, "both closed", |_| {
        echo.0.borrow().closed == 1 && c.is_done()
    });
    assert!(!c.is_reset());
    let s = net.app.metrics.tunnels("web").stats();
    assert_eq!((s.opened, s.open), (1, 0));
}

#[test]
fn an_idle_tunnel_is_closed_at_its_timeout() {
    let mut net = start("idle");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "198.18.0.1:7000", b"x");
    read(&mut net.pair, &c, rest, 1);
    let quiet = net.pair.now();
    net.pair
        .drive_until(LONG, "the idle close", |_| c.is_done());
    let idle = net.pair.now() - quiet;
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_millis(5100),
        "closed after {idle:?}"
    );
    assert!(c.is_eof() && !c.is_reset(), "a FIN, not a reset");
    let echo = net.echo.clone();
    net.pair
        .drive_until(LONG, "the target closed", |_| echo.0.borrow().closed == 1);
    let m = metrics(&mut net.pair);
    assert_eq!(
        metric(&m, "paf_tunnel_idle_timeouts_total{listener=\"web\"}"),
        1
    );
}

#[test]
fn refusals_and_failures_are_answered_and_close_the_connection() {
    let mut net = start("refusals");
    // Not in the allow list (by address, by port, by name): nothing is dialled.
    for target in ["198.18.0.1:7002", "198.18.0.3:7000", "denied.test:443"] {
        let r = refused(&mut net, 80, target);
        assert_eq!(r.status, 403, "{target}");
    }
    assert_eq!(net.echo.0.borrow().accepted, 0);
    // Allowed, but nothing listens: the target resets the SYN.
    let r = refused(&mut net, 80, "198.18.0.1:7001");
    assert_eq!(r.status, 502);
    assert_eq!(r.body, b"502 Bad Gateway: cannot connect to target\n");
    // Malformed targets: the codec's 400 for what is not authority-form, ours for the rest.
    for target in ["198.18.0.1", "a..b:443", "[fd00::1:443"] {
        let r = refused(&mut net, 80, target);
        assert_eq!(r.status, 400, "{target}");
    }
    // No connect route on the listener: 501, as before connect routes.
    let r = refused(&mut net, 81, "198.18.0.1:7000");
    assert_eq!(r.status, 501);
    // The host filter of the first connect route picks its own allow list.
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    c.send(&connect_request("x.other.test:7000"));
    // (`*:*` allows the name; the pair has no DNS server, so it cannot be resolved.)
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the answer", |_| {
        got.extend_from_slice(&c.take_input());
        parse_response(&got, false).is_some()
    });
    assert_eq!(parse_response(&got, false).unwrap().0.status, 502);
    let m = metrics(&mut net.pair);
    let failures = |kind: &str| {
        metric(
            &m,
            &format!("paf_connect_failures_total{{listener=\"web\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(failures("forbidden"), 3);
    assert_eq!((failures("connect"), failures("dns")), (1, 1));
    // `a..b:443` only: the codec's 400s (no authority-form) are peer errors, not a route's.
    assert_eq!(failures("bad_target"), 1);
    assert_eq!(net.app.metrics.tunnels("web").stats().opened, 0);
}

#[test]
fn connect_routes_take_connect_only_and_connect_goes_nowhere_else() {
    let mut net = start("only");
    // A GET on the listener goes past the connect routes to the static one.
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: x.other.test\r\n\r\n");
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the response", |_| {
        got.extend_from_slice(&c.take_input());
        parse_response(&got, false).is_some()
    });
    let (r, _) = parse_response(&got, false).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"static"[..]));
    // CONNECT on a listener whose only route would take any path: not taken.
    assert_eq!(refused(&mut net, 81, "198.18.0.1:7000").status, 501);
}

#[test]
fn the_same_over_tls() {
    let mut net = start("tls");
    let trust = tls::ClientTrust::CaPemFile(net.ca.clone());
    let config = tls::ClientConfig::builder(trust).build().unwrap();
    let name = tls::ServerName::try_from("paf.test").unwrap();
    let c = RawClient::connect_tls(&mut net.pair.client, B.with_port(443), &config, name).unwrap();
    let (head, rest) = open(&mut net, &c, "198.18.0.1:7000", b"early");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(read(&mut net.pair, &c, rest, 5), b"early");
    echo_pattern(&mut net.pair, &c, 1 << 20);
    c.set_sink(|_| {});
    c.shutdown_write();
    let echo = net.echo.clone();
    net.pair.drive_until(LONG, "both closed", |_| {
        echo.0.borrow().closed == 1 && c.is_done()
    });
    assert!(c.is_eof() && !c.is_reset());
    let s = net.app.metrics.tunnels("secure").stats();
    assert_eq!((s.opened, s.open), (1, 0));
}

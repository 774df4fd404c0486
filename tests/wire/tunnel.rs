//! WebSocket-style upgrades through the appliance's proxy, on the virtual pair: the appliance
//! on the server's stack (http on 80, https on 443), a raw upstream app on the client's stack
//! (port 8080) that answers `101` and then echoes, and raw clients.
//!
//! Checked: the upgrade headers reach the upstream and the 101 the client; bytes both ways
//! byte-exact, including a frame sent right behind the request and one right behind the 101;
//! a client that stops reading stops the upstream (bounded bytes in flight); half-closes from
//! either side passed on as FINs, then both connections freed; the idle timeout at its exact
//! instant; a non-101 answer relayed as an ordinary response, HTTP going on after it;
//! `upgrade = false` stripping the headers as before; the same over TLS; `/metrics`.

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

use crate::tunnel_support::{byte, echo_pattern, metric, metrics, read, Dir, LONG};

/// Most the raw upstream holds unsent per connection.
const UP_BUF: usize = 64 * 1024;

/// One connection of the raw upstream.
#[derive(Default)]
struct UpConn {
    head: Vec<u8>,
    /// Answered 101: echo from now on.
    switched: bool,
    /// Answered 101 on `/flood`: send the pattern forever.
    flood: bool,
    out: Vec<u8>,
    sent: usize,
    eof: bool,
    shut: bool,
}

#[derive(Default)]
struct UpState {
    conns: HashMap<ConnId, UpConn>,
    /// Every request head received.
    heads: Vec<String>,
    /// Stop reading (and flooding) while set.
    pause: bool,
    /// Half-close every switched connection once its output is sent.
    fin: bool,
    /// Pattern bytes made by flooding connections (at most [`UP_BUF`] of them not yet handed
    /// to the socket).
    flooded: u64,
    /// Connections closed (both ways done).
    closed: usize,
    waker: Option<LocalWaker>,
}

/// A raw upstream: `/refuse` gets 403, `/flood` a 101 then an endless pattern, any other
/// request with `Upgrade` a 101 then `hi!` then an echo of everything, the rest 200 `plain`.
#[derive(Clone, Default)]
struct Upstream(Rc<RefCell<UpState>>);

impl Upstream {
    fn start(rt: &mut paf::Runtime) -> Upstream {
        let up = Upstream::default();
        rt.add(up.clone(), |app, cx| {
            app.0.borrow_mut().waker = Some(cx.local_waker());
            cx.listen(8080, 64).map(drop)
        })
        .expect("listen 8080");
        up
    }

    fn set(&self, f: impl FnOnce(&mut UpState)) {
        let mut st = self.0.borrow_mut();
        f(&mut st);
        if let Some(w) = &st.waker {
            w.wake();
        }
    }

    fn pump_all(&self, cx: &mut Cx<'_>) {
        let ids: Vec<ConnId> = self.0.borrow().conns.keys().copied().collect();
        for id in ids {
            self.pump(cx, id);
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
            if !st.pause && !c.eof && c.out.len() < UP_BUF {
                let mut buf = vec![0u8; UP_BUF - c.out.len()];
                match cx.recv(id, &mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        moved = true;
                        if c.switched {
                            c.out.extend_from_slice(&buf[..n]);
                        } else {
                            c.head.extend_from_slice(&buf[..n]);
                            answer(c, &mut st.heads);
                        }
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
            if c.flood && !st.pause && !c.shut {
                while c.out.len() < UP_BUF {
                    c.out.push(byte(st.flooded));
                    st.flooded += 1;
                }
            }
            if c.sent < c.out.len() {
                let n = cx.send(id, &c.out[c.sent..]).unwrap_or(0);
                c.sent += n;
                moved |= n > 0;
                if c.sent == c.out.len() {
                    c.out.clear();
                    c.sent = 0;
                }
            }
            let drained = c.out.is_empty();
            if c.switched && drained && !c.shut && (c.eof || st.fin) {
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

/// Answers a complete request head in `c.head`, if there is one.
fn answer(c: &mut UpConn, heads: &mut Vec<String>) {
    let Some(end) = c.head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let rest = c.head.split_off(end + 4);
    let head = String::from_utf8_lossy(&c.head).into_owned();
    c.head.clear();
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let upgrade = head.to_ascii_lowercase().contains("\r\nupgrade: websocket");
    heads.push(head);
    if path == "/refuse" {
        c.out
            .extend_from_slice(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
    } else if upgrade {
        c.out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        c.switched = true;
        c.flood = path == "/flood";
        if !c.flood {
            // The new protocol's first bytes, in the same segment as the 101.
            c.out.extend_from_slice(b"hi!");
            c.out.extend_from_slice(&rest);
        }
        return;
    } else {
        c.out
            .extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
    }
    c.head = rest;
    answer(c, heads);
}

impl App for Upstream {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, id: ConnId, _p: SocketAddr) {
        self.0.borrow_mut().conns.insert(id, UpConn::default());
        self.pump(cx, id);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        self.pump(cx, id);
    }

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        self.pump_all(cx);
    }
}

struct Net {
    pair: Pair,
    app: appliance::Appliance,
    up: Upstream,
    ca: PathBuf,
    _dir: Dir,
}

fn start(name: &str) -> Net {
    let dir = std::env::temp_dir().join(format!("paf-tunnel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = tls::certs::write_test_pki(&dir, &["paf.test"]).unwrap();
    let config = format!(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/noup"
action = "proxy"
upstream = "ws"
upgrade = false
[[listener.route]]
path = "/static"
action = "static"
body = "static"
[[listener.route]]
path = "/metrics"
action = "metrics"
[[listener.route]]
path = "/"
action = "proxy"
upstream = "ws"
tunnel_idle_timeout = "5s"
[[listener]]
name = "secure"
port = 443
protocol = "https"
certificate = {cert:?}
key = {key:?}
[[listener.route]]
action = "proxy"
upstream = "ws"
[[upstream]]
name = "ws"
urls = ["http://198.18.0.1:8080"]
"#,
        cert = pki.cert,
        key = pki.key,
    );
    let cfg = paf::config::parse(&config, "test", &dir).expect("valid config");
    let mut pair = Pair::builder().seed(7).build();
    let up = Upstream::start(&mut pair.client);
    let app = appliance::start(&mut pair.server, &cfg, Switch::new()).expect("start");
    Net {
        pair,
        app,
        up,
        ca: pki.ca_cert,
        _dir: Dir(dir),
    }
}

fn upgrade_request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: paf.test\r\nConnection: keep-alive, Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Sends an upgrade request for `path` (with `early` right behind it) on `c`; returns the
/// response head and what came after it.
fn open(net: &mut Net, c: &ClientHandle, path: &str, early: &[u8]) -> (String, Vec<u8>) {
    let mut req = upgrade_request(path);
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

#[test]
fn an_upgrade_becomes_a_tunnel_with_bytes_both_ways() {
    let mut net = start("bytes");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (head, rest) = open(&mut net, &c, "/chat", b"early frame");
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    for want in [
        "\r\nupgrade: websocket\r\n",
        "\r\nconnection: upgrade\r\n",
        "\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n",
        "\r\nvia: 1.1 paf\r\n",
    ] {
        assert!(lower.contains(want), "{want:?} in {head}");
    }
    // What the upstream sent right behind its 101, then the echo of the client's early frame.
    let got = read(&mut net.pair, &c, rest, 14);
    assert_eq!(got, b"hi!early frame");
    let seen = net.up.0.borrow().heads[0].to_ascii_lowercase();
    for want in [
        "get /chat http/1.1\r\n",
        "\r\nconnection: upgrade\r\n",
        "\r\nupgrade: websocket\r\n",
        "\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n",
        "\r\nsec-websocket-version: 13\r\n",
        "\r\nx-forwarded-for: 198.18.0.1\r\n",
    ] {
        assert!(seen.contains(want), "{want:?} in {seen}");
    }
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
    assert_eq!((up, down), (11 + (3 << 20), 3 + 11 + (3 << 20)));
    assert!(m.contains("paf_requests_total{listener=\"web\",route=\"3\",class=\"1xx\"} 1"));
}

#[test]
fn a_fin_from_the_client_is_passed_on_and_both_connections_close() {
    let mut net = start("client-fin");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "/chat", b"");
    read(&mut net.pair, &c, rest, 3);
    // The client sends its last bytes and half-closes; the echo comes back, then the
    // upstream's FIN (it closes when it has seen the client's).
    c.send(b"last words");
    c.shutdown_write();
    let got = read(&mut net.pair, &c, Vec::new(), 10);
    assert_eq!(got, b"last words");
    net.pair
        .drive_until(LONG, "the client's connection over", |_| c.is_done());
    assert!(c.is_eof() && !c.is_reset());
    let up = net.up.clone();
    net.pair
        .drive_until(LONG, "the upstream's connection closed", |_| {
            up.0.borrow().closed == 1
        });
    let handle = net.app.handles[0].clone();
    net.pair
        .drive_until(LONG, "the server's connection freed", |_| {
            handle.stats().active == 0
        });
    assert_eq!(net.app.metrics.tunnels("web").stats().open, 0);
}

#[test]
fn a_fin_from_the_upstream_is_passed_on_and_the_client_still_sends() {
    let mut net = start("upstream-fin");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "/chat", b"");
    read(&mut net.pair, &c, rest, 3);
    // The upstream half-closes: the client sees EOF and (RawClient's habit) closes after
    // sending what it queued, which the upstream still receives.
    net.up.set(|s| s.fin = true);
    net.pair
        .drive_until(LONG, "the client's EOF", |_| c.is_eof());
    let up = net.up.clone();
    net.pair.drive_until(LONG, "both closed", |_| {
        up.0.borrow().closed == 1 && c.is_done()
    });
    assert!(!c.is_reset());
    let handle = net.app.handles[0].clone();
    net.pair
        .drive_until(LONG, "the server's connection freed", |_| {
            handle.stats().active == 0
        });
    let s = net.app.metrics.tunnels("web").stats();
    assert_eq!((s.opened, s.open), (1, 0));
}

#[test]
fn a_client_that_does_not_read_stops_the_upstream() {
    let _heavy = crate::heavy();
    let mut net = start("backpressure");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "/flood", b"");
    assert!(rest.is_empty() || rest[0] == byte(0));
    let mut have = rest;
    have.extend_from_slice(&c.take_input());
    c.set_max_input(Some(1));
    // Seconds of an endless upstream against a client that reads nothing: what the upstream
    // could send is bounded by the buffers on the way (the sockets', the pipe's, the
    // tunnel's), not by time. (Less than `tunnel_idle_timeout`: a tunnel where nothing moves
    // for that long is closed.)
    net.pair.drive(Duration::from_secs(3), |_| false);
    let stuck = net.up.0.borrow().flooded;
    net.pair.drive(Duration::from_secs(1), |_| false);
    let later = net.up.0.borrow().flooded;
    assert_eq!(
        stuck, later,
        "nothing more sent while the client does not read"
    );
    eprintln!("backpressure: {stuck} bytes made by the upstream while the client read nothing");
    assert!(stuck < 2 << 20, "{stuck} bytes in flight");
    // Reading again: every byte arrives, in order.
    c.set_max_input(None);
    let want = stuck + (1 << 20);
    let got = read(&mut net.pair, &c, have, want as usize);
    let bad = got.iter().enumerate().find(|(i, &b)| b != byte(*i as u64));
    assert!(bad.is_none(), "byte {bad:?} differs");
    // The server's memory did not follow the upstream: its connections held little input.
    let stats = net.app.handles[0].stats();
    assert!(stats.max_input_buffered <= 64 * 1024, "{stats:?}");
}

#[test]
fn an_idle_tunnel_is_closed_at_its_timeout() {
    let mut net = start("idle");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let (_, rest) = open(&mut net, &c, "/chat", b"x");
    read(&mut net.pair, &c, rest, 4);
    let quiet = net.pair.now();
    let took = net
        .pair
        .drive_until(LONG, "the idle close", |_| c.is_done());
    // `tunnel_idle_timeout = "5s"` from the last byte (the echo of "x", just read).
    let idle = net.pair.now() - quiet;
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_millis(5100),
        "closed after {idle:?} ({took:?})"
    );
    assert!(c.is_eof() && !c.is_reset(), "a FIN, not a reset");
    let up = net.up.clone();
    net.pair
        .drive_until(LONG, "the upstream closed", |_| up.0.borrow().closed == 1);
    let m = metrics(&mut net.pair);
    assert_eq!(
        metric(&m, "paf_tunnel_idle_timeouts_total{listener=\"web\"}"),
        1
    );
    assert_eq!(metric(&m, "paf_tunnels_open{listener=\"web\"}"), 0);
}

#[test]
fn a_refused_upgrade_is_an_ordinary_response_and_http_goes_on() {
    let mut net = start("refused");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    let mut req = upgrade_request("/refuse");
    req.extend_from_slice(b"GET /static HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    c.send(&req);
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "two responses", |_| {
        got.extend_from_slice(&c.take_input());
        parse_response(&got, false).is_some_and(|(_, n)| parse_response(&got[n..], false).is_some())
    });
    let (first, n) = parse_response(&got, false).unwrap();
    let (second, _) = parse_response(&got[n..], false).unwrap();
    assert_eq!((first.status, &first.body[..]), (403, &b"no"[..]));
    assert!(first.header("upgrade").is_none());
    assert_eq!((second.status, &second.body[..]), (200, &b"static"[..]));
    assert_eq!(net.app.metrics.tunnels("web").stats().opened, 0);
}

#[test]
fn upgrade_false_strips_the_upgrade_as_before() {
    let mut net = start("noup");
    let c = RawClient::connect(&mut net.pair.client, B.with_port(80)).unwrap();
    c.send(&upgrade_request("/noup"));
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the response", |_| {
        got.extend_from_slice(&c.take_input());
        parse_response(&got, false).is_some()
    });
    let (r, _) = parse_response(&got, false).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"plain"[..]));
    let seen = net.up.0.borrow().heads[0].to_ascii_lowercase();
    assert!(!seen.contains("\r\nupgrade:"), "{seen}");
    assert!(!seen.contains("\r\nconnection:"), "{seen}");
    assert!(
        seen.contains("\r\nsec-websocket-key:"),
        "end-to-end fields pass: {seen}"
    );
}

#[test]
fn the_same_over_tls() {
    let mut net = start("tls");
    let trust = tls::ClientTrust::CaPemFile(net.ca.clone());
    let config = tls::ClientConfig::builder(trust).build().unwrap();
    let name = tls::ServerName::try_from("paf.test").unwrap();
    let c = RawClient::connect_tls(&mut net.pair.client, B.with_port(443), &config, name).unwrap();
    let (head, rest) = open(&mut net, &c, "/chat", b"early");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(read(&mut net.pair, &c, rest, 8), b"hi!early");
    echo_pattern(&mut net.pair, &c, 1 << 20);
    // A half-close over TLS: close_notify then FIN, passed on as a FIN.
    c.set_sink(|_| {});
    c.shutdown_write();
    let up = net.up.clone();
    net.pair.drive_until(LONG, "both closed", |_| {
        up.0.borrow().closed == 1 && c.is_done()
    });
    assert!(c.is_eof() && !c.is_reset());
    let s = net.app.metrics.tunnels("secure").stats();
    assert_eq!((s.opened, s.open), (1, 0));
    assert!(
        net.up.0.borrow().heads[0].contains("X-Forwarded-Proto: https")
            || net.up.0.borrow().heads[0]
                .to_ascii_lowercase()
                .contains("x-forwarded-proto: https")
    );
}

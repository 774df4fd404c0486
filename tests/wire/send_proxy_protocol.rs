//! `send_proxy_protocol` on the virtual pair: the appliance on the server's stack
//! (198.18.0.2, port 80, HTTP/1.1 clients), upstreams on the client's stack (198.18.0.1): paf
//! services that read a PROXY header from 198.18.0.2 (`proxy_protocol` trusted), so the peer
//! their handler sees is the client the header names. TLS on 8443 offers `h2` and `http/1.1`
//! (the header comes before the ClientHello); 8080 is plain HTTP/1.1.
//!
//! Each upstream answers with the peer it saw. Without the header that would be paf
//! (198.18.0.2); with it, the client's address and port on the client stack (198.18.0.1). Twenty
//! client connections at once get twenty upstream connections, HTTP/2 ones included (a header
//! names one client connection, so no connection is shared between two), and requests of one
//! client connection reuse its upstream connection.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ::http::Response;
use net::testing::B_V4;
use paf::service::{self, Reqd, Switch};
use paf::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};
use paf::{appliance, tls};

const LONG: Duration = Duration::from_secs(60);

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Requests are parked until `want` of them are in (so that they are all in flight at once),
/// then each is answered `"<version> <peer>"`.
fn upstream_handler(want: Rc<Cell<usize>>) -> impl FnMut(SocketAddr, Reqd) + 'static {
    let parked: Rc<RefCell<Vec<Reqd>>> = Default::default();
    move |peer, reqd: Reqd| {
        assert_eq!(peer, reqd.peer());
        let mut p = parked.borrow_mut();
        p.push(reqd);
        if p.len() >= want.get() {
            for r in p.drain(..) {
                let text = format!("{:?} {}", r.request().version(), r.peer());
                r.respond_with_bytes(Response::new(()), text).unwrap();
            }
        }
    }
}

struct Net {
    pair: Pair,
    tls_up: service::Handle,
    plain_up: service::Handle,
    /// How many requests the upstreams park before answering.
    want: Rc<Cell<usize>>,
    _app: appliance::Appliance,
    _dir: Dir,
}

fn start(name: &str) -> Net {
    let dir = std::env::temp_dir().join(format!("paf-send-pp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = tls::certs::write_test_pki(&dir, &["upstream.test"]).unwrap();
    let config = format!(
        r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/h2"
action = "proxy"
upstream = "h2"
[[listener.route]]
path = "/h1"
action = "proxy"
upstream = "h1"
[[upstream]]
name = "h2"
urls = ["https://198.18.0.1:8443"]
ca = {ca:?}
sni = "upstream.test"
protocols = ["h2", "http/1.1"]
send_proxy_protocol = "v2"
[[upstream]]
name = "h1"
urls = ["http://198.18.0.1:8080"]
send_proxy_protocol = "v1"
"#,
        ca = pki.ca_cert
    );
    let cfg = paf::config::parse(&config, "test", &dir).expect("valid config");
    let mut pair = Pair::builder().mtu(9000).seed(12).build();
    let server_tls = tls::ServerConfig::from_pem_files((&pki.cert, &pki.key), &[])
        .unwrap()
        .with_alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11]);
    let http = paf::http::Config {
        proxy_protocol: Some(vec![paf::http::Cidr::parse("198.18.0.2/32").unwrap()].into()),
        ..paf::http::Config::default()
    };
    let want = Rc::new(Cell::new(1));
    let svc = service::init(&mut pair.client, 8443).expect("upstream 8443");
    let service::Initialized(tls_up) = service::https(
        svc,
        server_tls,
        http.clone(),
        None,
        service::default_error_handler,
        upstream_handler(want.clone()),
    );
    let svc = service::init(&mut pair.client, 8080).expect("upstream 8080");
    let service::Initialized(plain_up) = service::http(
        svc,
        http,
        None,
        service::default_error_handler,
        upstream_handler(want.clone()),
    );
    let app = appliance::start(&mut pair.server, &cfg, Switch::new()).expect("start");
    Net {
        pair,
        tls_up,
        plain_up,
        want,
        _app: app,
        _dir: Dir(dir),
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: paf.test\r\n\r\n").into_bytes()
}

/// Sends `raws[i]` on `conns[i]`, all at once; returns the responses in order.
fn exchange(net: &mut Net, conns: &[ClientHandle], raws: &[Vec<u8>]) -> Vec<ParsedResponse> {
    for (c, raw) in conns.iter().zip(raws) {
        c.send(raw);
    }
    let mut bufs = vec![Vec::new(); raws.len()];
    let mut out: Vec<Option<ParsedResponse>> = vec![None; raws.len()];
    net.pair.drive_until(LONG, "every response", |_| {
        for (i, c) in conns.iter().enumerate() {
            bufs[i].extend_from_slice(&c.take_input());
            if out[i].is_none() {
                out[i] = parse_response(&bufs[i], false).map(|(r, _)| r);
            }
        }
        out.iter().all(Option::is_some)
    });
    out.into_iter().map(Option::unwrap).collect()
}

/// The `(version, peer)` an upstream answered with.
fn seen(r: &ParsedResponse) -> (String, SocketAddr) {
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8(r.body.clone()).unwrap();
    let (version, peer) = text.split_once(' ').unwrap();
    (version.to_owned(), peer.parse().unwrap())
}

#[test]
fn each_client_connection_gets_its_own_upstream_connection_named_by_its_header() {
    for (path, version) in [("/h2", "HTTP/2.0"), ("/h1", "HTTP/1.1")] {
        let mut net = start(&path[1..]);
        let to = SocketAddr::new(IpAddr::from(B_V4), 80);
        let conns: Vec<ClientHandle> = (0..20)
            .map(|_| RawClient::connect(&mut net.pair.client, to).unwrap())
            .collect();
        // Twenty at once, all parked upstream until the last is in.
        net.want.set(20);
        let raws: Vec<Vec<u8>> = (0..20).map(|i| get(&format!("{path}/{i}"))).collect();
        let first: Vec<(String, SocketAddr)> =
            exchange(&mut net, &conns, &raws).iter().map(seen).collect();
        let client_ip: IpAddr = "198.18.0.1".parse().unwrap();
        let ports: BTreeSet<u16> = first.iter().map(|(_, p)| p.port()).collect();
        for (v, peer) in &first {
            assert_eq!(v, version, "{path}");
            assert_eq!(peer.ip(), client_ip, "{path}: the header's client, not paf");
        }
        assert_eq!(ports.len(), 20, "{path}: one client each: {first:?}");
        let up = if path == "/h2" {
            net.tls_up.clone()
        } else {
            net.plain_up.clone()
        };
        assert_eq!(up.stats().accepted, 20, "{path}: one connection per client");
        if path == "/h2" {
            assert_eq!(up.stats().h2_connections, 20, "HTTP/2, one per client");
        }
        // Again on the same client connections, one at a time: each reuses its own upstream
        // connection, whose header still names it.
        net.want.set(1);
        for (i, c) in conns.iter().enumerate().step_by(5) {
            let again = exchange(&mut net, std::slice::from_ref(c), &[get(path)]);
            assert_eq!(seen(&again[0]), first[i], "{path}: connection {i}");
        }
        assert_eq!(
            up.stats().accepted,
            20,
            "{path}: no new upstream connection"
        );
        for c in conns {
            c.close();
        }
    }
}

//! The appliance's proxy speaking HTTP/2 to its upstreams, on the virtual pair: the appliance
//! on the server's stack (port 80, HTTP/1.1 clients), upstreams on the client's stack (paf
//! services): TLS on 8443 offering `h2` and `http/1.1` by ALPN, h2c on 8080.
//!
//! `[[upstream]] protocols = ["h2", "http/1.1"]` makes the proxied requests share one HTTP/2
//! connection (twenty at once, parked by the upstream until all arrived); the default
//! (`["http/1.1"]`) stays HTTP/1.1 to the same server; `["h2"]` on an http URL is h2c with
//! prior knowledge. A 512 KiB POST body and an 8 MB response cross the proxy byte-exact over h2.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ::http::Response;
use net::testing::B_V4;
use paf::service::{self, Reqd, Switch};
use paf::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};
use paf::{appliance, tls};

const LONG: Duration = Duration::from_secs(60);
const DOWN: usize = 8 * 1024 * 1024 + 3;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// An upstream's handler: requests are parked until `n` are in, then each is answered with
/// `"<version> <path> host=<host>"`; paths ending `/big` get an 8 MB pattern body (streamed)
/// and those ending `/echo` their request body back, at once.
fn upstream_handler(n: usize) -> impl FnMut(SocketAddr, Reqd) + 'static {
    let parked: std::rc::Rc<std::cell::RefCell<Vec<Reqd>>> = Default::default();
    move |_peer, reqd: Reqd| {
        let r = reqd.request();
        let path = r.uri().path().to_owned();
        if path.ends_with("/big") {
            // Streamed as the windows allow, so the stream stays open until the last byte.
            fn more(mut w: service::BodyWriter, mut at: usize) {
                let mut buf = vec![0u8; 16 * 1024];
                while at < DOWN {
                    let n = (DOWN - at).min(buf.len());
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = byte(at + k);
                    }
                    match w.write(&buf[..n]) {
                        Ok(0) => return w.on_writable(move |w| more(w, at)),
                        Ok(k) => at += k,
                        Err(_) => return,
                    }
                }
                let _ = w.close();
            }
            let w = reqd
                .respond_with_streaming(Response::new(()), Some(DOWN as u64))
                .unwrap();
            more(w, 0);
            return;
        }
        if path.ends_with("/echo") {
            let r2 = reqd.clone();
            reqd.read_to_end(16 * 1024 * 1024, move |body| {
                r2.respond_with_bytes(Response::new(()), body.unwrap())
                    .unwrap();
            });
            return;
        }
        let mut p = parked.borrow_mut();
        p.push(reqd);
        if p.len() >= n {
            for r in p.drain(..) {
                let q = r.request();
                let text = format!(
                    "{:?} {} host={}",
                    q.version(),
                    q.uri().path(),
                    q.headers().get("host").map_or("-", |v| v.to_str().unwrap()),
                );
                r.respond_with_bytes(Response::new(()), text).unwrap();
            }
        }
    }
}

struct Net {
    app: appliance::Appliance,
    pair: Pair,
    tls_up: service::Handle,
    plain_up: service::Handle,
    _dir: Dir,
}

fn start(name: &str, n: usize) -> Net {
    let dir = std::env::temp_dir().join(format!("paf-proxy-h2-{name}-{}", std::process::id()));
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
[[listener.route]]
path = "/h2c"
action = "proxy"
upstream = "h2c"
[[upstream]]
name = "h2"
urls = ["https://198.18.0.1:8443"]
ca = {ca:?}
sni = "upstream.test"
protocols = ["h2", "http/1.1"]
[[upstream]]
name = "h1"
urls = ["https://198.18.0.1:8443"]
ca = {ca:?}
sni = "upstream.test"
[[upstream]]
name = "h2c"
urls = ["http://198.18.0.1:8080"]
protocols = ["h2"]
"#,
        ca = pki.ca_cert
    );
    let cfg = paf::config::parse(&config, "test", &dir).expect("valid config");
    let mut pair = Pair::builder()
        .mtu(9000)
        .seed(11)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build();
    let server_tls = tls::ServerConfig::from_pem_files((&pki.cert, &pki.key), &[])
        .unwrap()
        .with_alpn_protocols(&[tls::ALPN_H2, tls::ALPN_HTTP11]);
    let http = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let svc = service::init(&mut pair.client, 8443).expect("upstream 8443");
    let service::Initialized(tls_up) = service::https(
        svc,
        server_tls,
        http.clone(),
        None,
        service::default_error_handler,
        upstream_handler(n),
    );
    let svc = service::init(&mut pair.client, 8080).expect("upstream 8080");
    let service::Initialized(plain_up) = service::http(
        svc,
        http,
        None,
        service::default_error_handler,
        upstream_handler(n),
    );
    let app = appliance::start(&mut pair.server, &cfg, Switch::new()).expect("start");
    Net {
        app,
        pair,
        tls_up,
        plain_up,
        _dir: Dir(dir),
    }
}

/// Sends each raw request on its own connection at once; returns the responses in order.
fn send_all(net: &mut Net, raws: &[Vec<u8>]) -> Vec<ParsedResponse> {
    let to = SocketAddr::new(IpAddr::from(B_V4), 80);
    let conns: Vec<ClientHandle> = raws
        .iter()
        .map(|raw| {
            let c = RawClient::connect(&mut net.pair.client, to).unwrap();
            c.send(raw);
            c
        })
        .collect();
    let mut bufs = vec![Vec::new(); raws.len()];
    let mut out: Vec<Option<ParsedResponse>> = vec![None; raws.len()];
    net.pair.drive_until(LONG, "every response", |_| {
        for (i, c) in conns.iter().enumerate() {
            bufs[i].extend_from_slice(&c.take_input());
            if out[i].is_none() {
                let head_only = raws[i].starts_with(b"HEAD ");
                out[i] = parse_response(&bufs[i], head_only).map(|(r, _)| r);
            }
        }
        out.iter().all(Option::is_some)
    });
    for c in conns {
        c.close();
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: paf.test\r\n\r\n").into_bytes()
}

#[test]
fn proxied_requests_share_one_h2_connection_to_an_upstream_that_picks_h2() {
    let mut net = start("share", 20);
    let raws: Vec<Vec<u8>> = (0..20).map(|i| get(&format!("/h2/{i}"))).collect();
    let rs = send_all(&mut net, &raws);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, 200, "{i}: {:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("HTTP/2.0 /h2/{i} host=paf.test")
        );
    }
    assert_eq!(
        net.tls_up.stats().accepted,
        1,
        "twenty requests, one connection"
    );
    // The default protocols: HTTP/1.1 to the same server, one connection per request in
    // flight (twenty parked at once: twenty connections).
    let raws: Vec<Vec<u8>> = (0..20).map(|i| get(&format!("/h1/{i}"))).collect();
    let rs = send_all(&mut net, &raws);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("HTTP/1.1 /h1/{i} host=paf.test")
        );
    }
    assert_eq!(net.tls_up.stats().accepted, 21);
    // /metrics says which protocol carried the upstream responses.
    let text = net.app.metrics.render();
    for line in [
        "paf_upstream_responses_total{upstream=\"h2\",protocol=\"h2\"} 20\n",
        "paf_upstream_responses_total{upstream=\"h1\",protocol=\"http/1.1\"} 20\n",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}");
    }
}

#[test]
fn h2c_prior_knowledge_to_an_http_upstream_and_bodies_byte_exact() {
    let mut net = start("h2c", 10);
    let raws: Vec<Vec<u8>> = (0..10).map(|i| get(&format!("/h2c/{i}"))).collect();
    let rs = send_all(&mut net, &raws);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("HTTP/2.0 /h2c/{i} host=paf.test")
        );
    }
    assert_eq!(net.plain_up.stats().accepted, 1);
    assert_eq!(net.plain_up.stats().h2_connections, 1);
    // An 8 MB download and a 512 KiB upload echoed, both through the h2 (TLS) upstream.
    let up: Vec<u8> = (0..512 * 1024 + 1).map(|i| byte(i * 3)).collect();
    let mut post = format!(
        "POST /h2/echo HTTP/1.1\r\nHost: paf.test\r\nContent-Length: {}\r\n\r\n",
        up.len()
    )
    .into_bytes();
    post.extend_from_slice(&up);
    let rs = send_all(&mut net, &[get("/h2/big"), post]);
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[0].body.len(), DOWN);
    assert!(
        rs[0].body.iter().enumerate().all(|(i, b)| *b == byte(i)),
        "download differs"
    );
    assert_eq!(rs[1].status, 200);
    assert!(
        rs[1].body == up,
        "echo differs ({} bytes)",
        rs[1].body.len()
    );
    assert_eq!(net.tls_up.stats().h2_connections, 1);
    // HEAD over h2: the length, no body, and the connection goes on.
    let head = b"HEAD /h2/big HTTP/1.1\r\nHost: paf.test\r\n\r\n".to_vec();
    let rs = send_all(&mut net, &[head, get("/h2/echo")]);
    assert_eq!(rs[0].status, 200);
    assert_eq!(
        rs[0].header("content-length"),
        Some(DOWN.to_string().as_str())
    );
    assert!(rs[0].body.is_empty());
    assert_eq!(rs[1].status, 200);
    assert_eq!(net.tls_up.stats().accepted, 1);
}

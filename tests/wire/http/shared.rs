//! Whole bodies given as `Bytes` (`Reqd::respond_with_shared`): from 16 KiB on, sent from the
//! caller's buffer rather than copied into the connection's output buffer. The bytes a client
//! gets must be those `respond_with_bytes` would send, pipelined, after HEAD, over TLS.

use super::*;

/// `GET /N` (or HEAD): N pattern bytes from `respond_with_shared`.
fn shared_bodies() -> MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let n: u64 = reqd.request().uri().path()[1..].parse().unwrap();
            let body: Vec<u8> = (0..n).map(byte).collect();
            reqd.respond_with_shared(Response::new(()), body.into())
                .unwrap();
        })
    })
}

const SIZES: [u64; 6] = [0, 100, 16_383, 16_384, 65_536, 300_000];

/// Pipelines a GET of every size, a HEAD among them, and checks every response.
fn pipelined(rt: &mut Net, c: &ClientHandle) {
    let mut all = Vec::new();
    for n in SIZES {
        all.extend_from_slice(format!("GET /{n} HTTP/1.1\r\nHost: paf.test\r\n\r\n").as_bytes());
        if n == 65_536 {
            all.extend_from_slice(b"HEAD /40000 HTTP/1.1\r\nHost: paf.test\r\n\r\n");
        }
    }
    c.send(&all);
    // The fifth response answers the HEAD: a head only, whatever its length says.
    let head_only = |i: usize| i == 5;
    let mut buf = Vec::new();
    let mut r = Vec::new();
    drive(rt, LONG, "responses", || {
        buf.extend_from_slice(&c.take_input());
        while let Some((got, used)) = parse_response(&buf, head_only(r.len())) {
            buf.drain(..used);
            r.push(got);
        }
        r.len() > SIZES.len() || c.is_done()
    });
    assert_eq!(r.len(), SIZES.len() + 1, "responses received");
    assert!(
        buf.is_empty(),
        "{} bytes after the last response",
        buf.len()
    );
    let mut r = r.iter();
    for n in SIZES {
        let got = r.next().unwrap();
        let want: Vec<u8> = (0..n).map(byte).collect();
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-length"), Some(n.to_string().as_str()));
        assert!(
            got.body == want,
            "GET /{n}: {} bytes differ",
            got.body.len()
        );
        if n == 65_536 {
            let head = r.next().unwrap();
            assert_eq!(head.header("content-length"), Some("40000"));
            assert!(head.body.is_empty());
        }
    }
}

#[test]
fn shared_bodies_arrive_byte_exact_pipelined_and_after_head() {
    let (server, mut rt) = serve(Config::default(), shared_bodies());
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    pipelined(&mut rt, &c);
    // And once more on the same connection, the output buffers reused.
    pipelined(&mut rt, &c);
    assert_eq!(server.handle.stats().requests, 2 * (SIZES.len() as u64 + 1));
    server.stop(&mut rt);
}

#[test]
fn shared_bodies_arrive_byte_exact_over_tls() {
    let (tls, client_cfg) = pki(Duration::from_secs(10));
    let default_errors: MakeErrorHandler = Box::new(|| Box::new(service::default_error_handler));
    let (server, mut rt) = serve_on(
        Some(tls),
        Config::default(),
        shared_bodies(),
        default_errors,
    );
    let c = RawClient::connect_tls(&mut rt, addr(B_V4), &client_cfg, paf_test()).unwrap();
    pipelined(&mut rt, &c);
    server.stop(&mut rt);
}

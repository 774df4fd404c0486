//! Who the client is: per-client limits (429 with `Retry-After`, connections over the cap
//! reset) and the client address a PROXY protocol header names, from trusted sources only.

use super::*;

#[test]
fn per_client_limits_answer_429_with_retry_after_and_reset_connections_over_the_cap() {
    let cfg = Config {
        per_client: paf::http::PerClient {
            max_connections_per_ip: Some(2),
            rate: Some(paf::http::Rate {
                requests: 5,
                per: Duration::from_secs(1),
                burst: 5,
            }),
            ..Default::default()
        },
        ..Config::default()
    };
    let (server, mut rt) = serve(cfg, hello());
    // Client one (the client's IPv4 address): 8 pipelined requests, 5 within the burst.
    let a = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    a.send(&b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n".repeat(8));
    let r = responses(&mut rt, &a, 8);
    let codes: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    // 5 a second: the next token comes in 200 ms, so "retry after 1 second".
    assert_eq!(r[5].header("retry-after"), Some("1"));
    assert_eq!(r[5].body, b"429 Too Many Requests\n");
    // Client two (its IPv6 address) is not slowed by client one.
    let b = RawClient::connect(&mut rt, addr(B_V6)).unwrap();
    b.send(&b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n".repeat(5));
    let r = responses(&mut rt, &b, 5);
    assert!(r.iter().all(|r| r.status == 200), "{r:?}");
    // A second later client one has its burst back, on the same connection.
    idle_for(&mut rt, Duration::from_secs(1));
    a.send(&b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n".repeat(5));
    let r = responses(&mut rt, &a, 5);
    assert!(r.iter().all(|r| r.status == 200), "{r:?}");
    // Connections: client one has one open; a second is fine, a third is reset at once.
    let a2 = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    idle_for(&mut rt, Duration::from_millis(100));
    let a3 = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    a3.send(b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n");
    drive(&mut rt, LONG, "the third connection to be reset", || {
        a3.is_done()
    });
    assert!(a3.is_reset(), "reset, not closed");
    assert!(a3.take_input().is_empty());
    assert!(a2.is_connected() && !a2.is_done());
    // Once one closes, client one may connect again.
    a2.close();
    drive(&mut rt, LONG, "close", || a2.is_done());
    idle_for(&mut rt, Duration::from_secs(2));
    let a4 = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    a4.send(b"GET /a HTTP/1.1\r\nHost: b\r\n\r\n");
    assert_eq!(responses(&mut rt, &a4, 1)[0].status, 200);
    let s = server.handle.stats();
    assert_eq!((s.limited_requests, s.limited_connections), (3, 1), "{s:?}");
    for c in [a, b, a4] {
        c.close();
        drive(&mut rt, LONG, "close", || c.is_done());
    }
    server.stop(&mut rt);
}

/// Answers with the peer the service sees (`Reqd::peer`).
fn peer_echo() -> MakeHandler {
    Box::new(|| {
        Box::new(|peer, reqd: Reqd| {
            assert_eq!(peer, reqd.peer());
            reqd.respond_with_bytes(Response::new(()), peer.to_string())
                .unwrap();
        })
    })
}

#[test]
fn proxy_protocol_names_the_client_from_trusted_sources_only() {
    let cfg = Config {
        proxy_protocol: Some(vec![paf::http::Cidr::parse("198.18.0.1/32").unwrap()].into()),
        per_client: paf::http::PerClient {
            max_connections_per_ip: Some(1),
            rate: None,
            ..Default::default()
        },
        head_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let (server, mut rt) = serve(cfg, peer_echo());
    let get = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n";
    // Version 1, in the same write as the request.
    let a = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let mut v1 = b"PROXY TCP4 198.18.5.5 198.18.0.2 4444 80\r\n".to_vec();
    v1.extend_from_slice(get);
    a.send(&v1);
    assert_eq!(responses(&mut rt, &a, 1)[0].body, b"198.18.5.5:4444");
    // Version 2, split across writes, for another client (one connection each is allowed).
    let b = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let v2 = paf::http::proxy_protocol::encode_v2(
        "[fd00:198:18::77]:5555".parse().unwrap(),
        "[fd00:198:18::2]:80".parse().unwrap(),
    );
    b.send(&v2[..7]);
    idle_for(&mut rt, Duration::from_millis(50));
    b.send(&v2[7..]);
    b.send(get);
    assert_eq!(responses(&mut rt, &b, 1)[0].body, b"[fd00:198:18::77]:5555");
    // The cap counts the PROXY client: a second connection for 198.18.5.5 is reset.
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(&v1);
    drive(&mut rt, LONG, "the second 198.18.5.5 to be reset", || {
        c.is_done()
    });
    assert!(c.is_reset() && c.take_input().is_empty());
    // A trusted source without a header, and one whose header never comes: reset.
    let d = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    d.send(get);
    drive(&mut rt, LONG, "no header: reset", || d.is_done());
    assert!(d.is_reset() && d.take_input().is_empty());
    let e = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    e.send(b"PROXY TCP4 198.18.5.6");
    let took = drive(&mut rt, LONG, "a late header: reset", || e.is_done());
    assert!(e.is_reset());
    assert!(
        took >= Duration::from_secs(4) && took <= Duration::from_secs(6),
        "{took:?}"
    );
    // An untrusted source (the client's IPv6 address) is reset at accept, header or not.
    let f = RawClient::connect(&mut rt, addr(B_V6)).unwrap();
    f.send(&v1);
    drive(&mut rt, LONG, "untrusted: reset", || f.is_done());
    assert!(f.is_reset() && f.take_input().is_empty());
    let s = server.handle.stats();
    assert_eq!(s.proxy_protocol_refused, 3, "{s:?}");
    assert_eq!(s.limited_connections, 1, "{s:?}");
    for c in [a, b] {
        c.close();
        drive(&mut rt, LONG, "close", || c.is_done());
    }
    server.stop(&mut rt);
}

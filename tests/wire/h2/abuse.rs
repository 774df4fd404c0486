//! A client cut off for a flood is held back: its next connections wait unread (10 ms after
//! the first cut, doubled at each cut, up to the listener's `abuse_delay`), while its other
//! address family (another client to the limits) and everyone else are served at once.

use std::net::SocketAddr;
use std::time::Duration;

use net::testing::B_V6;
use paf::testing::RawClient;

use super::*;

/// A PING flood from the client's IPv4 address, cut off with GOAWAY `ENHANCE_YOUR_CALM`.
fn ping_flood(net: &mut Net) {
    let ping = frame(0x6, 0, 0, &[7; 8]);
    let mut sent = 0u32;
    let code = raw_flood(net, move |out| {
        for _ in 0..100 {
            out.extend_from_slice(&ping);
        }
        sent += 100;
        sent < 20_000
    });
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
}

/// A PING flood of `units` frames sent whole, then waits until paf ends the connection
/// (closed or, when more than its lingering close drains arrived after it, reset).
fn ping_flood_until_cut(net: &mut Net, units: usize) {
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    c.send(&frame(0x4, 0, 0, &[]));
    c.send(&frame(0x6, 0, 0, &[7; 8]).repeat(units));
    net.pair
        .drive_until(LONG, "paf to end the flood", |_| c.is_done());
}

/// Opens an h2c connection to `to` (preface and SETTINGS sent) and returns it with the virtual
/// time paf took to answer with its own SETTINGS.
fn first_answer(net: &mut Net, to: SocketAddr) -> (ClientHandle, Duration) {
    let c = RawClient::connect(&mut net.pair.client, to).unwrap();
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    c.send(&frame(0x4, 0, 0, &[]));
    let mut got = Vec::new();
    let took = net.pair.drive_until(LONG, "paf's SETTINGS", |_| {
        got.extend(c.take_input());
        frames_in(&got)
            .iter()
            .any(|&(kind, flags, _)| kind == 0x4 && flags == 0)
    });
    (c, took)
}

#[test]
fn a_client_cut_off_for_a_flood_waits_before_its_next_connection_is_read() {
    let mut net = Net::new(Config::default(), None);
    let v6 = SocketAddr::from((B_V6, 80));
    // Not held before any abuse: a connection's first answer takes a few virtual ms at most
    // (the first of each address family may wait for neighbour discovery: warmed up here).
    for to in [Net::addr(), v6] {
        first_answer(&mut net, to).0.close();
    }
    for to in [Net::addr(), v6] {
        let (c, before) = first_answer(&mut net, to);
        assert!(before < Duration::from_millis(5), "{to}: {before:?}");
        c.close();
    }

    // Each cut holds the next connection twice as long: 10, 20, 40 ms.
    for want in [10, 20, 40] {
        ping_flood(&mut net);
        let (c, took) = first_answer(&mut net, Net::addr());
        let want = Duration::from_millis(want);
        assert!(
            took >= want && took < want + Duration::from_millis(5),
            "held {took:?}, want {want:?}"
        );
        c.close();
    }
    let s = net.handle.stats();
    assert_eq!(s.abuse_held, 3, "{s:?}");
    assert_eq!(s.h2_floods[paf::http::Flood::Ping.index()], 3, "{s:?}");

    // Right after a fourth cut, the IPv6 address (another client) is answered at once, and a
    // GET over it completes while the IPv4 client is still held (80 ms).
    ping_flood(&mut net);
    let (_c6, took6) = first_answer(&mut net, v6);
    assert!(took6 < Duration::from_millis(5), "{took6:?}");
    let raw = RawClient::connect(&mut net.pair.client, v6).unwrap();
    let mut h = net.handshake(raw);
    let start = net.pair.now();
    let (resp, body) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!body.is_empty());
    assert!(net.pair.now() - start < Duration::from_millis(80));
    assert_eq!(
        net.handle.stats().abuse_held,
        3,
        "the v6 client was not held"
    );
}

#[test]
fn with_abuse_delay_zero_nobody_is_held() {
    let mut cfg = Config::default();
    cfg.per_client.abuse_delay = Duration::ZERO;
    let mut net = Net::new(cfg, None);
    for _ in 0..3 {
        ping_flood(&mut net);
        let (c, took) = first_answer(&mut net, Net::addr());
        assert!(took < Duration::from_millis(5), "{took:?}");
        c.close();
    }
    assert_eq!(net.handle.stats().abuse_held, 0);
}

#[test]
fn a_stop_lets_a_held_connection_go_at_once() {
    let mut cfg = Config::default();
    cfg.per_client.abuse_delay = Duration::from_secs(60);
    let mut net = Net::new(cfg, None);
    // Eight cuts in a row (each flood but the first held, then cut): the next connection is
    // held 1.28 s.
    for _ in 0..8 {
        ping_flood_until_cut(&mut net, 3_000);
    }
    assert_eq!(net.handle.stats().abuse_held, 7);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    c.send(&frame(0x4, 0, 0, &[]));
    net.pair.advance(Duration::from_millis(100));
    assert!(c.take_input().is_empty(), "held: not answered yet");
    assert_eq!(net.handle.stats().abuse_held, 8);
    // The stop shuts the held connection's codec down and lets it go: the service ends well
    // before the hold would have.
    net.stop.turn_off();
    let handle = net.handle.clone();
    let took = net
        .pair
        .drive_until(LONG, "the service to stop", |_| handle.is_finished());
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(c.is_eof() || c.is_reset(), "the held connection is closed");
}

//! `max_concurrent_streams`: streams past the limit are held, then refused
//! (`REFUSED_STREAM`) if the client keeps opening them.

use super::*;

/// A service with `max_concurrent_streams` 4 and a raw h2c client that sent the preface, an
/// empty SETTINGS and `n` HEADERS frames from `headers` (streams 1, 3, 5, ...) at once.
fn four_streams_at_most(headers: impl Fn(u32) -> Vec<u8>, n: u32) -> (Net, ClientHandle) {
    let config = Config {
        max_concurrent_streams: 4,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for id in (0..n).map(|i| 2 * i + 1) {
        out.extend(headers(id));
    }
    c.send(&out);
    (net, c)
}

#[test]
fn streams_past_the_limit_are_held_then_refused() {
    // Four streams whose bodies never come (the handler keeps them), then four more at once.
    let (mut net, c) = four_streams_at_most(|id| post_headers(id, true), 8);
    let mut got = Vec::new();
    let handle = net.handle.clone();
    net.pair
        .drive_until(LONG, "four streams", |_| handle.stats().h2_streams == 4);
    let start = net.pair.now();
    net.pair.advance(Duration::from_millis(200));
    got.extend(c.take_input());
    // Nothing refused yet: the fifth stream is held, and everything behind it.
    assert!(
        !frames_in(&got).iter().any(|f| f.0 == RST_STREAM),
        "{:?}",
        frames_in(&got)
    );
    assert_eq!(net.handle.stats().h2_streams_held, 1);
    // At the end of the hold they go to h2, which refuses them (none of the four ended).
    net.pair.drive_until(LONG, "the refusals", |_| {
        got.extend(c.take_input());
        frames_in(&got).iter().filter(|f| f.0 == RST_STREAM).count() == 4
    });
    let took = net.pair.now() - start;
    let hold = Duration::from_millis(250);
    assert!(
        took >= hold && took < hold + Duration::from_millis(50),
        "{took:?}"
    );
    let mut refused = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let n =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        if got[at + 3] == RST_STREAM {
            let id = u32::from_be_bytes([got[at + 5], got[at + 6], got[at + 7], got[at + 8]]);
            let p = &got[at + 9..at + 13];
            refused.push((id, u32::from_be_bytes([p[0], p[1], p[2], p[3]])));
        }
        at += 9 + n;
    }
    assert_eq!(
        refused,
        [9, 11, 13, 15].map(|id| (id, REFUSED_STREAM)),
        "{:?}",
        frames_in(&got)
    );
    // The connection goes on: a stream past the limit again is held again.
    c.send(&post_headers(17, true));
    net.pair.advance(Duration::from_millis(100));
    let s = net.handle.stats();
    assert_eq!(
        (s.h2_streams, s.h2_streams_held, s.h2_goaways_sent, s.active),
        (4, 2, 0, 1),
        "{s:?}"
    );
    KEPT.with(|k| k.borrow_mut().clear());
}

#[test]
fn a_first_flight_past_the_limit_is_served_whole_as_streams_end() {
    // Eight GETs at once, as a client that has not read the SETTINGS yet may send them.
    let (mut net, c) = four_streams_at_most(get_hello_headers, 8);
    let mut got = Vec::new();
    let start = net.pair.now();
    let answered = |got: &[u8]| {
        frames_in(got)
            .iter()
            .filter(|f| f.0 == 0x0 && f.1 & 0x1 != 0)
            .count()
    };
    net.pair.drive_until(LONG, "eight answers", |_| {
        got.extend(c.take_input());
        answered(&got) == 8
    });
    let took = net.pair.now() - start;
    assert!(
        !frames_in(&got).iter().any(|f| f.0 == RST_STREAM),
        "{:?}",
        frames_in(&got)
    );
    // The first four at once, the others as the streams before them end (as many as the
    // limit are let off so): none refused, no hold waited out.
    assert!(took < Duration::from_millis(50), "{took:?}");
    let s = net.handle.stats();
    assert_eq!((s.h2_streams, s.h2_streams_held), (8, 1), "{s:?}");
}

#[test]
fn a_client_that_keeps_opening_streams_past_the_limit_waits_out_the_hold() {
    let (mut net, c) = four_streams_at_most(get_hello_headers, 20);
    let mut got = Vec::new();
    let start = net.pair.now();
    let count = |got: &[u8], kind: u8| frames_in(got).iter().filter(|f| f.0 == kind).count();
    // Four, then four more let off as they end (as many as the limit), then a hold.
    net.pair.drive_until(LONG, "eight answers", |_| {
        got.extend(c.take_input());
        count(&got, 0x0) == 8
    });
    net.pair.advance(Duration::from_millis(200));
    got.extend(c.take_input());
    assert_eq!((count(&got, 0x0), count(&got, RST_STREAM)), (8, 0));
    // Out of the hold: h2 takes four more and refuses the rest at once.
    net.pair.drive_until(LONG, "the rest", |_| {
        got.extend(c.take_input());
        count(&got, 0x0) + count(&got, RST_STREAM) == 20
    });
    let took = net.pair.now() - start;
    let hold = Duration::from_millis(250);
    assert!(
        took >= hold && took < hold + Duration::from_millis(50),
        "{took:?}"
    );
    let refused: Vec<u32> = frames_in(&got)
        .iter()
        .filter(|f| f.0 == RST_STREAM)
        .map(|f| f.2)
        .collect();
    assert_eq!(refused, (25..=39).step_by(2).collect::<Vec<u32>>());
    let s = net.handle.stats();
    assert_eq!((s.h2_streams, s.h2_streams_held), (12, 1), "{s:?}");
}

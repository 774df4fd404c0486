//! Floods of control frames, CONTINUATION frames and HPACK, and clients that read nothing:
//! each is cut (GOAWAY `ENHANCE_YOUR_CALM`, counted by kind) with what paf holds for it bounded,
//! while a client pinging at a sane rate is never cut.

use super::*;

#[test]
fn a_ping_flood_that_reads_nothing_is_cut_at_once_with_its_output_bounded() {
    let mut net = Net::new(Config::default(), None);
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    c.set_max_input(Some(1)); // reads (almost) nothing: every PING ACK stays with paf
    let mut sent = 0u64;
    let mut first = true;
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0");
        }
        // PING frames, 17 bytes each, up to 200,000 of them (3.4 MB).
        for _ in 0..1000 {
            out.extend_from_slice(b"\0\0\x08\x06\0\0\0\0\0");
            out.extend_from_slice(&sent.to_be_bytes());
            sent += 1;
        }
        sent < 200_000
    });
    let handle = net.handle.clone();
    let took = net.pair.drive_until(LONG, "the connection to be cut", |_| {
        handle.stats().active == 0 && handle.stats().accepted == 1
    });
    // The control budget runs out within the first 64 kB read: cut at once (the GOAWAY fits
    // in the socket's buffer), not at the write timeout.
    assert!(took < Duration::from_millis(100), "cut after {took:?}");
    let s = net.handle.stats();
    assert_eq!(s.h2_floods[paf::http::Flood::Ping.index()], 1, "{s:?}");
    // What paf held for the flood stayed bounded: its output cap plus the socket's buffers.
    assert!(s.max_output_pending <= 128 * 1024, "{s:?}");
}

#[test]
fn control_floods_that_read_their_answers_get_goaway_enhance_your_calm_and_are_counted() {
    let floods: [(&str, Vec<u8>, paf::http::Flood); 4] = [
        ("ping", frame(0x6, 0, 0, &[7; 8]), paf::http::Flood::Ping),
        (
            "settings",
            frame(0x4, 0, 0, &[]),
            paf::http::Flood::Settings,
        ),
        (
            "priority",
            frame(0x2, 0, 3, &[0, 0, 0, 1, 16]),
            paf::http::Flood::Priority,
        ),
        (
            "empty data",
            frame(0x0, 0, 1, &[]),
            paf::http::Flood::EmptyFrames,
        ),
    ];
    for (name, unit, kind) in floods {
        let mut net = Net::new(Config::default(), None);
        let mut sent = 0u32;
        let opening = post_headers(1, true);
        let code = raw_flood(&mut net, move |out| {
            if sent == 0 {
                out.extend_from_slice(&opening);
            }
            for _ in 0..100 {
                out.extend_from_slice(&unit);
            }
            sent += 100;
            sent < 20_000
        });
        let s = net.handle.stats();
        assert_eq!(code, Some(ENHANCE_YOUR_CALM), "{name}: {s:?}");
        assert_eq!(s.h2_floods[kind.index()], 1, "{name}: {s:?}");
        assert_eq!(s.h2_floods.iter().sum::<u64>(), 1, "{name}: {s:?}");
        KEPT.with(|k| k.borrow_mut().clear());
    }
}

#[test]
fn a_client_pinging_at_a_sane_rate_is_never_cut() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let mut ping = h.conn.as_mut().ping_pong().expect("ping_pong");
    // 50 pings a second for a minute: half the refill rate, three times the burst in all.
    for _ in 0..3000 {
        let mut fut = Box::pin(ping.ping(h2::Ping::opaque()));
        net.run(&mut h, "the pong", |_| {
            fut.as_mut().poll(&mut Context::from_waker(waker()))
        })
        .expect("pong");
        net.pair.advance(Duration::from_millis(20));
        let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let s = net.handle.stats();
    assert_eq!(s.h2_floods, [0; 7], "{s:?}");
    assert_eq!(s.h2_protocol_errors, 0, "{s:?}");
}

#[test]
fn a_continuation_flood_is_cut_and_counted() {
    let mut net = Net::new(Config::default(), None);
    let mut sent = 0u32;
    let code = raw_flood(&mut net, move |out| {
        if sent == 0 {
            out.extend_from_slice(&post_headers(1, false));
        }
        // Each CONTINUATION adds a literal field `x: y` and never ends the block.
        for _ in 0..100 {
            out.extend_from_slice(&frame(0x9, 0, 1, &[0x40, 1, b'x', 1, b'y']));
        }
        sent += 100;
        sent < 100_000
    });
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    let s = net.handle.stats();
    assert_eq!(
        s.h2_floods[paf::http::Flood::Continuation.index()],
        1,
        "{s:?}"
    );
    assert_eq!(s.h2_streams, 0, "{s:?}");
}

#[test]
fn an_hpack_bomb_is_cut_and_counted() {
    let mut net = Net::new(Config::default(), None);
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 8];
    block.extend_from_slice(b"paf.test");
    // A 4,000-byte field into the dynamic table (literal with incremental indexing), then
    // 1,000 one-byte references to it: 4 MB decoded from 5 kB.
    block.extend_from_slice(&[0x40, 1, b'x', 0x7f]);
    let mut len = 4000 - 127;
    while len >= 128 {
        block.push(0x80 | (len & 0x7f) as u8);
        len >>= 7;
    }
    block.push(len as u8);
    block.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(std::iter::repeat_n(0xbe, 1000));
    let bomb = frame(0x1, 0x5, 1, &block);
    let mut once = Some(bomb);
    let code = raw_flood(&mut net, move |out| {
        out.extend(once.take().unwrap_or_default());
        false
    });
    assert_eq!(code, Some(ENHANCE_YOUR_CALM));
    let s = net.handle.stats();
    assert_eq!(s.h2_floods[paf::http::Flood::Hpack.index()], 1, "{s:?}");
}

#[test]
fn a_flood_that_goes_on_after_the_goaway_is_reset_and_its_socket_freed() {
    let mut net = Net::new(Config::default(), None);
    let base = net.pair.server.net().socket_count();
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut first = true;
    let mut sent = 0u32;
    // PINGs until long after the GOAWAY: the client reads everything, so only the data it
    // keeps sending after paf's close can hold paf's socket.
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            out.extend_from_slice(&frame(0x4, 0, 0, &[]));
        }
        for _ in 0..100 {
            out.extend_from_slice(&frame(0x6, 0, 0, &[1; 8]));
        }
        sent += 100;
        sent < 200_000
    });
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "the reset", |_| {
        got.extend(c.take_input());
        c.is_reset()
    });
    assert_eq!(goaway_code(&got), Some(ENHANCE_YOUR_CALM));
    let s = net.pair.server.net().stats().expect("a userspace stack");
    assert!(s.data_after_close_resets >= 1, "{s:?}");
    // The socket is gone at once, not after the 30 s linger.
    net.pair
        .drive_until(Duration::from_secs(2), "the socket to be freed", |p| {
            p.server.net().socket_count() <= base
        });
}

#[test]
fn a_client_with_open_windows_that_reads_nothing_holds_a_bounded_amount_per_connection() {
    let mut net = Net::new(Config::default(), None);
    let raw = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    // Windows of 1 GiB per stream and for the connection: flow control holds nothing back.
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1 << 30)
        .initial_connection_window_size(1 << 30);
    let mut h = net.handshake_with(raw.clone(), &builder);
    // The client's TCP stops reading; the requests still go out (a few polls write them).
    raw.set_max_input(Some(1));
    let mut futs = Vec::new();
    for _ in 0..100 {
        futs.push(h.start(get("/blob/10000000"), b""));
    }
    let mut polls = 0;
    net.pair.drive(Duration::from_secs(5), |_| {
        if polls < 20 {
            polls += 1;
            h.poll_conn();
        }
        false
    });
    let (taken, received) = (TAKEN.with(|t| t.get()), raw.received());
    let held = taken.saturating_sub(received);
    // The client's socket buffer filled, then its window closed.
    assert!(
        received < 1_000_000,
        "{received}: the client read the responses"
    );
    // 100 streams of 10 MB: without a per-connection budget each queues up to its send
    // buffer (256 KiB: 26.9 MB held in all, measured). With it: 1 MiB in h2, plus paf's
    // 64 KiB output buffer and the socket's send buffer (1.6 MB measured).
    assert!(held > 100_000, "{held}: the test did not fill anything");
    assert!(
        held <= 2_000_000,
        "{held} bytes held for a connection that reads nothing"
    );
    drop(futs);
}

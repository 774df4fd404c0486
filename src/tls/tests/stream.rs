//! Data transfer, backpressure and closing.

use super::*;

/// Byte `i` of a long, non-repeating-at-record-size test stream.
fn pattern(i: usize) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16) ^ (i >> 24)) as u8
}

#[test]
fn thousand_request_response_exchanges() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    for i in 0..1000usize {
        let request: Vec<u8> = (0..100 + i % 300).map(|j| pattern(i * 7 + j)).collect();
        let response: Vec<u8> = (0..500 + (i * 37) % 20_000)
            .map(|j| pattern(i * 13 + j))
            .collect();
        assert_eq!(p.client.write_plaintext(&request), request.len());
        p.drive();
        assert_eq!(p.server_rx, request, "request {i}");
        p.server_rx.clear();
        assert_eq!(p.server.write_plaintext(&response), response.len());
        p.drive();
        assert_eq!(p.client_rx, response, "response {i}");
        p.client_rx.clear();
    }
    assert_eq!((&p.client_err, &p.server_err), (&None, &None));
}

#[test]
fn sixty_four_megabytes_with_small_buffers() {
    const TOTAL: usize = 64 << 20;
    const LIMIT: usize = 16 * 1024;
    let pki = Pki::new();
    let server = ServerConfig::builder(pki.default.identity())
        .buffer_limit(Some(LIMIT))
        .build()
        .unwrap();
    let client = pki
        .client_builder()
        .buffer_limit(Some(LIMIT))
        .build()
        .unwrap();
    let mut p = Pair::new(&server, &client, "localhost");
    p.connect();

    let (mut sent, mut received, mut short_writes) = (0, 0, 0);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut max_wire = 0;
    while received < TOTAL {
        // Like a socket with a free send window: write and flush until the
        // window is full or the server refuses more plaintext.
        while sent < TOTAL && p.s2c.len() < WINDOW {
            let len = chunk.len().min(TOTAL - sent);
            for (k, b) in chunk[..len].iter_mut().enumerate() {
                *b = pattern(sent + k);
            }
            let n = p.server.write_plaintext(&chunk[..len]);
            assert!(n <= LIMIT, "accepted {n} over the {LIMIT} limit");
            short_writes += usize::from(n < len);
            sent += n;
            p.flush_server();
            if n == 0 {
                break;
            }
        }
        max_wire = max_wire.max(p.s2c.len());
        let moved = p.step();
        for (k, &b) in p.client_rx.iter().enumerate() {
            assert_eq!(b, pattern(received + k), "byte {}", received + k);
        }
        received += p.client_rx.len();
        p.client_rx.clear();
        assert!(moved || sent < TOTAL, "stalled at {received}");
    }
    assert_eq!((sent, received), (TOTAL, TOTAL));
    assert_eq!((&p.client_err, &p.server_err), (&None, &None));
    // Backpressure both ways: the writer was told to wait, the reader's
    // handle_input left bytes on the wire while plaintext was pending.
    assert!(short_writes > 1000, "short writes: {short_writes}");
    assert!(p.short_inputs > 1000, "short inputs: {}", p.short_inputs);
    // Memory stays bounded: the wire by the window, each read burst by about
    // one record per handle_input round.
    assert!(max_wire <= WINDOW);
    assert!(
        p.max_rx_step <= WINDOW + LIMIT,
        "read {} in one step",
        p.max_rx_step
    );
}

#[test]
fn close_notify_seen_on_both_sides() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    assert_eq!(p.client.write_plaintext(b"last words"), 10);
    p.client.close();
    assert_eq!(p.client.write_plaintext(b"more"), 0, "nothing after close");
    assert!(!p.client.is_closed(), "close_notify not flushed yet");
    p.drive();
    assert!(p.client.is_closed());
    assert_eq!(p.server_rx, b"last words");
    assert!(p.server.peer_closed());
    assert_eq!(p.server.read_plaintext(&mut [0; 16]), PlainRead::Closed);
    assert!(!p.client.peer_closed());

    // Half-close: the server may still answer before closing its side.
    assert_eq!(p.server.write_plaintext(b"goodbye"), 7);
    p.server.close();
    p.drive();
    assert!(p.server.is_closed());
    assert_eq!(p.client_rx, b"goodbye");
    assert_eq!(p.client.read_plaintext(&mut [0; 16]), PlainRead::Closed);

    // The TCP FIN after close_notify changes nothing.
    p.client.handle_eof();
    p.server.handle_eof();
    assert_eq!(p.client.read_plaintext(&mut [0; 16]), PlainRead::Closed);
    assert_eq!(p.server.read_plaintext(&mut [0; 16]), PlainRead::Closed);
    assert_eq!((&p.client_err, &p.server_err), (&None, &None));
}

#[test]
fn eof_without_close_notify_is_truncation() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    assert_eq!(p.client.write_plaintext(b"partial"), 7);
    p.client.poll_transmit(&mut p.c2s);
    assert_eq!(p.server.handle_input(p.now, &p.c2s), Ok(p.c2s.len()));
    assert_eq!(p.server.read_plaintext(&mut [0; 0]), PlainRead::Pending);
    p.server.handle_eof();
    assert!(p.server.peer_closed());
    let mut buf = [0u8; 64];
    assert_eq!(p.server.read_plaintext(&mut buf), PlainRead::Data(7));
    assert_eq!(&buf[..7], b"partial");
    assert_eq!(p.server.read_plaintext(&mut buf), PlainRead::Truncated);
}

#[test]
fn bytes_after_close_notify_are_ignored() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    p.client.close();
    p.client.poll_transmit(&mut p.c2s);
    let junk = [0x17, 0x03, 0x03, 0x00, 0x01, 0xff];
    p.c2s.extend_from_slice(&junk);
    // rustls takes what arrived with the alert into its buffer, never decrypts it...
    assert_eq!(p.server.handle_input(p.now, &p.c2s), Ok(p.c2s.len()));
    assert_eq!(p.server.read_plaintext(&mut [0; 8]), PlainRead::Closed);
    // ...and takes nothing once close_notify was processed.
    assert_eq!(p.server.handle_input(p.now, &junk), Ok(0));
    assert_eq!(p.server.error(), None);
}

#[test]
fn poll_transmit_into_respects_small_buffers() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    let message = vec![7u8; 10_000];
    assert_eq!(p.server.write_plaintext(&message), message.len());
    // Drain through a 100-byte "socket window".
    let mut wire = Vec::new();
    let mut small = [0u8; 100];
    while p.server.wants_write() {
        let n = p.server.poll_transmit_into(&mut small);
        assert!(n > 0 && n <= 100);
        wire.extend_from_slice(&small[..n]);
    }
    assert_eq!(p.server.poll_transmit_into(&mut small), 0);
    let mut sink = Vec::new();
    p.server.poll_transmit_to(&mut sink).unwrap();
    assert!(sink.is_empty());
    p.s2c = wire;
    p.drive();
    assert_eq!(p.client_rx, message);
}

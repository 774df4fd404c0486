//! Hostile or broken peers: stalls, garbage, deadlines.

use std::time::Duration;

use super::*;

/// Deterministic xorshift64 bytes; no RNG dependency needed for garbage.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn record_header_then_silence_times_out() {
    let pki = Pki::new();
    let now = Instant::now();
    let mut s = ServerSession::new(&pki.server(), now).unwrap();
    // A handshake record header announcing 16 KiB that never arrive.
    assert_eq!(s.handle_input(now, &[0x16, 0x03, 0x03, 0x40, 0x00]), Ok(5));
    assert!(s.is_handshaking() && !s.wants_write());
    let deadline = now + config::DEFAULT_HANDSHAKE_TIMEOUT;
    assert_eq!(s.poll_timeout(), Some(deadline));
    assert_eq!(
        s.handle_timeout(deadline - Duration::from_millis(1)),
        Ok(())
    );
    assert_eq!(s.handle_timeout(deadline), Err(Error::HandshakeTimeout));

    // Sticky, nothing to send, nothing for HTTP, closed.
    assert_eq!(
        s.handle_input(deadline, &[0; 10]),
        Err(Error::HandshakeTimeout)
    );
    assert_eq!(s.handle_timeout(deadline), Err(Error::HandshakeTimeout));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_transmit(&mut Vec::new()), 0);
    assert_eq!(s.read_plaintext(&mut [0; 16]), PlainRead::Pending);
    assert_eq!(s.write_plaintext(b"x"), 0);
    assert!(s.is_closed());
}

#[test]
fn record_header_over_rustls_limit_is_rejected_at_once() {
    // 16 03 03 48 00 announces 18432 bytes. RFC 8446 allows 2^14 + 256 and
    // TLS 1.2 2^14 + 2048; rustls rejects lengths >= 2^14 + 2048 on sight,
    // so this header is a peer error with a record_overflow-class alert,
    // not a stall.
    let pki = Pki::new();
    let now = Instant::now();
    let mut s = ServerSession::new(&pki.server(), now).unwrap();
    let err = s
        .handle_input(now, &[0x16, 0x03, 0x03, 0x48, 0x00])
        .unwrap_err();
    assert_eq!(
        err,
        Error::Peer(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::MessageTooLarge
        ))
    );
    let mut wire = Vec::new();
    s.poll_transmit(&mut wire);
    assert_fatal_alert(&wire);
    assert!(s.is_closed());
}

#[test]
fn eof_during_handshake_is_truncation() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.client.poll_transmit(&mut p.c2s);
    assert_eq!(p.server.handle_input(p.now, &p.c2s), Ok(p.c2s.len()));
    p.server.handle_eof();
    assert!(p.server.is_handshaking() && p.server.peer_closed());
    assert_eq!(p.server.read_plaintext(&mut [0; 16]), PlainRead::Truncated);
}

#[test]
fn input_after_deadline_fails_without_handle_timeout() {
    let pki = Pki::new();
    let server = ServerConfig::builder(pki.default.identity())
        .handshake_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let now = Instant::now();
    let mut s = ServerSession::new(&server, now).unwrap();
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(2)));
    // A slow client dribbling bytes past the deadline is cut at its next byte.
    assert_eq!(s.handle_input(now + Duration::from_secs(1), &[0x16]), Ok(1));
    assert_eq!(
        s.handle_input(now + Duration::from_secs(2), &[0x03]),
        Err(Error::HandshakeTimeout)
    );
}

#[test]
fn timeout_does_not_apply_after_handshake() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    p.connect();
    let later = p.now + Duration::from_secs(3600);
    assert_eq!(p.server.handle_timeout(later), Ok(()));
    assert_eq!(p.client.handle_timeout(later), Ok(()));
    assert_eq!(p.client.write_plaintext(b"still here"), 10);
    p.now = later;
    p.drive();
    assert_eq!(p.server_rx, b"still here");
}

#[test]
fn client_times_out_on_silent_server() {
    let pki = Pki::new();
    let now = Instant::now();
    let mut c = ClientSession::new(&pki.client(), name("localhost"), now).unwrap();
    let mut hello = Vec::new();
    assert!(c.poll_transmit(&mut hello) > 0);
    assert_eq!(hello[0], 0x16, "ClientHello is a handshake record");
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(c.handle_timeout(deadline), Err(Error::HandshakeTimeout));
    assert!(c.is_closed());
}

/// Asserts `wire` is exactly one plaintext fatal alert record.
fn assert_fatal_alert(wire: &[u8]) {
    assert_eq!(wire.len(), 7, "one alert record: {wire:02x?}");
    assert_eq!(wire[0], 0x15, "content type alert");
    assert_eq!(wire[5], 2, "level fatal");
}

#[test]
fn random_bytes_are_a_peer_error_with_alert() {
    let pki = Pki::new();
    let config = pki.server();
    for seed in 1..=64 {
        let now = Instant::now();
        let mut s = ServerSession::new(&config, now).unwrap();
        let garbage = noise(seed, 512);
        let err = s.handle_input(now, &garbage).unwrap_err();
        assert!(matches!(err, Error::Peer(_)), "seed {seed}: {err}");
        assert_eq!(s.handle_input(now, &garbage), Err(err.clone()), "sticky");
        assert_eq!(s.error(), Some(&err));
        assert!(!s.is_closed(), "alert not yet flushed");
        let mut wire = Vec::new();
        s.poll_transmit(&mut wire);
        assert_fatal_alert(&wire);
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
    }
}

#[test]
fn nonsense_client_hello_is_decode_error() {
    let pki = Pki::new();
    let now = Instant::now();
    let mut s = ServerSession::new(&pki.server(), now).unwrap();
    // A well-framed ClientHello of 60 random bytes.
    let mut record = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    record.extend(noise(7, 0x3c));
    assert!(matches!(
        s.handle_input(now, &record),
        Err(Error::Peer(rustls::Error::InvalidMessage(_)))
    ));
    let mut wire = Vec::new();
    s.poll_transmit(&mut wire);
    assert_fatal_alert(&wire);
    assert_eq!(wire[6], 50, "decode_error");
}

#[test]
fn oversized_handshake_message_fails_without_alert() {
    // rustls 0.23.46 queues no alert when a handshake message announces more
    // than 64 KiB: the error is still sticky and the session closed at once.
    let pki = Pki::new();
    let now = Instant::now();
    let mut s = ServerSession::new(&pki.server(), now).unwrap();
    let record = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00];
    let err = Error::Peer(rustls::Error::InvalidMessage(
        rustls::InvalidMessage::HandshakePayloadTooLarge,
    ));
    assert_eq!(s.handle_input(now, &record), Err(err.clone()));
    assert!(!s.wants_write() && s.is_closed());
    assert_eq!(s.handle_timeout(now), Err(err));
}

#[test]
fn client_rejects_garbage_from_server() {
    let pki = Pki::new();
    let now = Instant::now();
    let mut c = ClientSession::new(&pki.client(), name("localhost"), now).unwrap();
    c.poll_transmit(&mut Vec::new());
    let err = c.handle_input(now, &noise(99, 300)).unwrap_err();
    assert!(matches!(err, Error::Peer(_)), "{err}");
    let mut wire = Vec::new();
    c.poll_transmit(&mut wire);
    assert_fatal_alert(&wire);
    assert!(c.is_closed());
}

#[test]
fn errors_display_and_source() {
    use std::error::Error as _;
    let peer = Error::Peer(rustls::Error::NoApplicationProtocol);
    assert!(peer.to_string().starts_with("TLS peer error"));
    assert!(peer.source().is_some());
    assert_eq!(
        Error::HandshakeTimeout.to_string(),
        "TLS handshake timed out"
    );
    assert!(Error::Config("x.pem: bad".into())
        .to_string()
        .contains("x.pem"));
}

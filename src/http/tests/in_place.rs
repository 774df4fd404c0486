//! Request bodies read in place (`body_in_place`, `consume_body_in_place`): the caller hands
//! the bytes to its reader where they lie, the codec only counts them.

use super::*;

/// Plays the service: while the codec allows it, hands body bytes of `id` from the peer's
/// pending input to `got` in place, at most `slice` at a time (a receive buffer's wrap), and
/// never more than allowed. Returns how many it handed over.
fn read_in_place(p: &mut Peer, id: ExchangeId, got: &mut Vec<u8>, slice: usize) -> usize {
    let mut total = 0;
    while let Some((reading, max)) = p.conn.body_in_place() {
        assert_eq!(reading, id);
        let offer = &p.pending[..p.pending.len().min(slice)];
        if offer.is_empty() {
            break;
        }
        let n = p.conn.consume_body_in_place(p.now, id, offer);
        assert!(n > 0 && n <= max && n <= offer.len(), "{n} of {max}");
        got.extend_from_slice(&offer[..n]);
        p.pending.drain(..n);
        total += n;
    }
    total
}

/// Appends input without offering it to the codec (it waits in the "socket").
fn arrive(p: &mut Peer, bytes: &[u8]) {
    p.pending.extend_from_slice(bytes);
}

fn post(len: usize, expect: bool) -> String {
    let expect = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!("POST /p HTTP/1.1\r\nHost: a\r\n{expect}Content-Length: {len}\r\n\r\n")
}

#[test]
fn a_length_body_read_in_place_ends_and_the_next_request_follows() {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    for slice in [1, 7, 64, 1000] {
        let config = Config {
            body_buffer_size: 100,
            ..Config::default()
        };
        let mut p = Peer::new(config);
        p.auto = false;
        // The first bytes come with the head: buffered (copied), as before.
        let mut first = post(body.len(), false).into_bytes();
        first.extend_from_slice(&body[..10]);
        p.feed(&first);
        assert_eq!(p.conn.body_in_place(), None, "bytes are buffered");
        let mut got = Vec::new();
        assert_eq!(p.conn.take_body(p.now, id(0), &mut got), BodyRead::Data(10));
        assert_eq!(
            p.conn.body_in_place(),
            Some((id(0), 100)),
            "the buffer's worth"
        );
        // The rest, and a pipelined request behind it.
        arrive(&mut p, &body[10..]);
        arrive(&mut p, b"GET /q HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut rest = Vec::new();
        assert_eq!(read_in_place(&mut p, id(0), &mut rest, slice), 990);
        got.extend_from_slice(&rest);
        assert_eq!(got, body, "slice {slice}");
        assert_eq!(p.conn.body_in_place(), None, "the body is complete");
        // The reader learns the end, as from a buffered read.
        assert!(matches!(
            p.conn.poll_event(),
            Some(Event::BodyReadable { id: i }) if i == id(0)
        ));
        assert_eq!(p.conn.take_body(p.now, id(0), &mut got), BodyRead::End);
        assert_eq!(p.pending, b"GET /q HTTP/1.1\r\nHost: a\r\n\r\n");
        p.conn
            .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
            .unwrap();
        // Keep-alive: the next head is read, and answered on the same connection.
        p.step();
        assert_eq!(
            p.log,
            ["request 0 POST /p HTTP/1.1", "request 1 GET /q HTTP/1.1"]
        );
        p.conn
            .respond(p.now, id(1), http::Response::new(()), ResponseBody::Empty)
            .unwrap();
        p.step();
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\n");
        assert_eq!(p.wire(), ok.repeat(2));
        assert!(!p.conn.is_closed());
    }
}

#[test]
fn reading_in_place_sends_100_continue_as_a_read_does() {
    // The handler reads first (nothing there: 100 Continue), then the body comes in place.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(post(4, true).as_bytes());
    assert_eq!(p.conn.body_in_place(), Some((id(0), 4)));
    assert_eq!(p.wire(), "", "the client waits");
    assert_eq!(
        p.conn.take_body(p.now, id(0), &mut Vec::new()),
        BodyRead::Pending
    );
    p.step();
    assert_eq!(p.wire(), "HTTP/1.1 100 Continue\r\n\r\n");
    arrive(&mut p, b"data");
    let mut got = Vec::new();
    assert_eq!(read_in_place(&mut p, id(0), &mut got, 64), 4);
    assert_eq!(got, b"data");
    p.step();
    assert_eq!(p.wire(), "HTTP/1.1 100 Continue\r\n\r\n", "once");

    // A client that sends without waiting: the in-place read is the first read.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(post(4, true).as_bytes());
    arrive(&mut p, b"da");
    let mut got = Vec::new();
    assert_eq!(read_in_place(&mut p, id(0), &mut got, 64), 2);
    p.step();
    assert_eq!(p.wire(), "HTTP/1.1 100 Continue\r\n\r\n");
    arrive(&mut p, b"ta");
    assert_eq!(read_in_place(&mut p, id(0), &mut got, 64), 2);
    assert_eq!(got, b"data");
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\n")
    );
}

#[test]
fn reading_in_place_restarts_the_body_timer() {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(post(4, false).as_bytes());
    p.advance(Duration::from_secs(59));
    arrive(&mut p, b"ab");
    read_in_place(&mut p, id(0), &mut Vec::new(), 64);
    assert_eq!(p.conn.poll_timeout(), Some(p.now + Duration::from_secs(60)));
}

#[test]
fn chunked_buffered_discarded_or_ended_bodies_are_not_read_in_place() {
    // Chunked framing: the wire's bytes are not the body's.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(p.conn.body_in_place(), None);
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"3\r\nabc"), 0);

    // Bytes buffered for the exchange come first.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(&[post(4, false).as_bytes(), b"a"].concat());
    assert_eq!(p.conn.body_in_place(), None);
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"bcd"), 0);
    assert_eq!(
        p.conn.read_body(p.now, id(0), &mut [0; 1]),
        BodyRead::Data(1)
    );
    assert_eq!(p.conn.body_in_place(), Some((id(0), 3)));
    // Another exchange than the one being read.
    assert_eq!(p.conn.consume_body_in_place(p.now, id(1), b"bcd"), 0);

    // Answered without reading: the rest is dropped, not anyone's to read.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(post(4, false).as_bytes());
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    assert_eq!(p.conn.body_in_place(), None);
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"abcd"), 0);

    // No body, or an ended one; and no exchange at all.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    assert_eq!(p.conn.body_in_place(), None);
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(p.conn.body_in_place(), None);
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"x"), 0);
}

#[test]
fn in_place_reads_stop_at_the_body_end_and_at_the_buffer_size() {
    let config = Config {
        body_buffer_size: 3,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    p.feed(post(5, false).as_bytes());
    assert_eq!(p.conn.body_in_place(), Some((id(0), 3)));
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"abcdefg"), 3);
    assert_eq!(p.conn.body_in_place(), Some((id(0), 2)));
    // Only the body's bytes: what follows is the next head's.
    assert_eq!(p.conn.consume_body_in_place(p.now, id(0), b"deGET"), 2);
    assert_eq!(p.conn.body_in_place(), None);
    assert_eq!(p.conn.read_body(p.now, id(0), &mut [0; 4]), BodyRead::End);
}

#[test]
fn a_body_read_in_place_keeps_the_request_s_persistence() {
    // `Connection: close`: after its body nothing more is read, and the connection closes once
    // the response is out.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 3\r\n\r\n");
    arrive(&mut p, b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut got = Vec::new();
    assert_eq!(read_in_place(&mut p, id(0), &mut got, 64), 3);
    assert_eq!(got, b"abc");
    assert!(!p.conn.wants_read(), "no head after this one");
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(p.log, ["request 0 POST / HTTP/1.1", "closed"]);
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n")
    );
}

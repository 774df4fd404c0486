//! Time and lifecycle: timeouts on a fake clock, shutdown, output stalls.

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn error_408() -> String {
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: 3\r\nconnection: close\r\n{DATE}\r\nbad"
    )
}

#[test]
fn head_timeout_counts_from_connection_start_then_from_first_byte() {
    // A fresh connection that never sends closes silently at head_timeout.
    let mut p = Peer::new(Config::default());
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(60)));
    p.advance(secs(59));
    assert!(p.log.is_empty());
    p.advance(secs(1));
    assert_eq!(p.log, ["closed"]);
    assert_eq!(p.wire(), "");

    // Slowloris on a fresh connection: the clock started at accept, not at the first byte.
    let mut p = Peer::new(Config::default());
    p.advance(secs(30));
    p.feed(b"GET / HTTP/1.1\r\n");
    p.advance(secs(29));
    p.feed(b"X: 1\r\n");
    assert!(p.log.is_empty());
    p.advance(secs(1));
    assert_eq!(p.log, ["error None 408", "closed"]);
    assert_eq!(p.wire(), error_408());

    // After a keep-alive exchange: idle_timeout until a byte arrives, then head_timeout.
    let mut p = Peer::new(Config::default());
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let answered = p.wire();
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(75)));
    p.advance(secs(70));
    p.feed(b"G");
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(60)));
    p.advance(secs(60));
    assert_eq!(p.wire(), answered + &error_408());
}

#[test]
fn idle_keep_alive_closes_silently() {
    let mut p = Peer::new(Config::default());
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let answered = p.wire();
    p.advance(secs(74));
    assert!(!p.conn.is_closed());
    p.advance(secs(1));
    assert!(p.conn.is_closed());
    assert_eq!(p.wire(), answered);
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));
}

#[test]
fn no_timer_while_the_handler_works() {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(p.conn.poll_timeout(), None);
}

#[test]
fn body_stall_is_408_unless_the_codec_is_the_one_waiting() {
    let mut p = Peer::new(Config::default());
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    p.advance(secs(59));
    p.feed(b"c"); // progress restarts the clock
    p.advance(secs(59));
    assert!(!p.conn.is_closed());
    p.advance(secs(1));
    assert_eq!(
        p.log,
        ["request 0 POST / HTTP/1.1", "error Some(0) 408", "closed"]
    );
    assert_eq!(p.wire(), error_408());

    // Body buffer full because the handler does not read: no timeout.
    let config = Config {
        body_buffer_size: 2,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc");
    assert_eq!(p.conn.poll_timeout(), None);
    // Reading frees space: the peer's clock restarts now, not at its last byte.
    p.advance(secs(100));
    assert_eq!(
        p.conn.read_body(p.now, id(0), &mut [0; 1]),
        BodyRead::Data(1)
    );
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(60)));
    // Expect: 100-continue not yet read: the client waits for us, no timeout either.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(p.conn.poll_timeout(), None);
    assert_eq!(
        p.conn.read_body(p.now, id(0), &mut [0; 4]),
        BodyRead::Pending
    );
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(60)));
}

#[test]
fn write_stall_closes() {
    let mut p = Peer::new(Config::default());
    p.send_window = 0;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(60)));
    p.conn.handle_transmitted(p.now + secs(30), 5); // progress
    p.advance(secs(89));
    assert!(!p.conn.is_closed());
    p.advance(secs(1));
    assert!(p.conn.is_closed());
    assert!(p.conn.poll_transmit().is_empty());
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));
}

#[test]
fn shutdown_drains_in_flight_exchanges() {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HT");
    p.conn.shutdown(p.now);
    p.feed(b"TP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        p.log,
        ["request 0 GET /0 HTTP/1.1", "request 1 GET /1 HTTP/1.1"]
    );
    p.conn
        .respond(
            p.now,
            id(0),
            http::Response::new(()),
            ResponseBody::Complete(b"0"),
        )
        .unwrap();
    p.step();
    assert!(!p.conn.is_closed());
    p.conn
        .respond(
            p.now,
            id(1),
            http::Response::new(()),
            ResponseBody::Complete(b"1"),
        )
        .unwrap();
    p.step();
    let want = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{DATE}\r\n0\
         HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n{DATE}\r\n1"
    );
    assert_eq!(p.wire(), want);
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));

    // A request body in flight is still read to its end.
    let mut p = Peer::new(Config::default());
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab");
    p.conn.shutdown(p.now);
    p.feed(b"cdGET / HTTP/1.1\r\n");
    assert_eq!(
        p.wire(),
        echoed("POST", "/", "abcd", "connection: close\r\n")
    );
    assert!(p.conn.is_closed());

    // Idle: closed at once.
    let mut p = Peer::new(Config::default());
    p.conn.shutdown(p.now);
    p.step();
    assert_eq!(p.log, ["closed"]);

    // A handler that never answers is cut off at drain_timeout.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    p.conn.shutdown(p.now);
    assert_eq!(p.conn.poll_timeout(), Some(p.now + secs(30)));
    p.advance(secs(30));
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));
    assert_eq!(p.wire(), "");
}

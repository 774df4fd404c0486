//! Peer faults: every rejection with its status, and the close that follows.

use super::*;

/// The error response the scripted peer sends for `status`.
fn error_response(status: &str) -> String {
    format!("HTTP/1.1 {status}\r\ncontent-length: 3\r\nconnection: close\r\n{DATE}\r\nbad")
}

#[test]
fn rejections() {
    let cases: &[(&str, &str)] = &[
        // smuggling-prone framing
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "400 Bad Request"),
        // RFC 9112 §6.3 ¶4: chunked not final is 400 (MUST), even when a coding is also unknown.
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown\r\n\r\n", "400 Bad Request"),
        // RFC 9112 §6.1: framed correctly, but a coding the server does not know.
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n", "501 Not Implemented"),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 3\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", "400 Bad Request"),
        // head syntax
        ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.1\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request"),
        ("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request"),
        ("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request"),
        ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported"),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505 HTTP Version Not Supported"),
        // body framing
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "400 Bad Request"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n bad\r\n\r\n", "400 Bad Request"),
        // limits
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", "413 Payload Too Large"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n6\r\n", "413 Payload Too Large"),
        ("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", "414 URI Too Long"),
        ("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "431 Request Header Fields Too Large"),
        ("GET / HTTP/1.1\r\nHost: a\r\nLong: 01234567890123456789012345678901234567890123456789\r\n\r\n", "431 Request Header Fields Too Large"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 0123456789\r\n\r\n", "431 Request Header Fields Too Large"),
    ];
    let config = Config {
        max_body_size: Some(10),
        max_request_line: 40,
        max_head_size: 80,
        max_headers: 3,
        max_trailer_size: 10,
        ..Config::default()
    };
    for (input, status) in cases {
        let (log, out) = split_runs(&config, echo, input.as_bytes());
        let code = &status[..3];
        assert!(
            log.iter()
                .any(|l| l.starts_with("error") && l.ends_with(code)),
            "{input:?}: {log:?}"
        );
        assert_eq!(log.last().map(String::as_str), Some("closed"), "{input:?}");
        assert_eq!(out, error_response(status), "{input:?}");
    }
}

#[test]
fn error_after_earlier_requests_waits_for_their_responses() {
    let input = b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/9.9\r\n\r\n";
    let (log, out) = split_runs(&Config::default(), echo, input);
    assert_eq!(
        log,
        [
            "request 0 GET /0 HTTP/1.1",
            "body 0 []",
            "error None 505",
            "closed"
        ]
    );
    assert_eq!(
        out,
        echoed("GET", "/0", "", "") + &error_response("505 HTTP Version Not Supported")
    );

    // The earlier request is still being handled when the error arrives.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(input);
    assert_eq!(p.log, ["request 0 GET /0 HTTP/1.1", "error None 505"]);
    let head = http::Response::builder().status(505).body(()).unwrap();
    p.conn.respond_error(p.now, head, b"v");
    p.step();
    assert_eq!(p.wire(), "");
    p.conn
        .respond(
            p.now,
            id(0),
            http::Response::new(()),
            ResponseBody::Complete(b"0"),
        )
        .unwrap();
    p.step();
    let want = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{DATE}\r\n0\
         HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-length: 1\r\nconnection: close\r\n{DATE}\r\nv"
    );
    assert_eq!(p.wire(), want);
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));
}

#[test]
fn body_error_after_request_event() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nxyz";
    let (log, out) = split_runs(&Config::default(), echo, input);
    assert_eq!(
        log,
        ["request 0 POST / HTTP/1.1", "error Some(0) 400", "closed"]
    );
    assert_eq!(out, error_response("400 Bad Request"));
    // The failed exchange is gone: its body never reports End.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(input);
    assert_eq!(
        p.conn.read_body(p.now, id(0), &mut [0; 8]),
        BodyRead::Pending
    );
}

#[test]
fn closed_only_after_error_response_is_transmitted() {
    let mut p = Peer::new(Config::default());
    p.send_window = 10;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n");
    // Sent 10 bytes at a time, the response still completes before Closed.
    assert_eq!(p.wire(), error_response("400 Bad Request"));
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));

    let mut p = Peer::new(Config::default());
    p.send_window = 0;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n");
    assert_eq!(p.log, ["error None 400"]);
    let total = p.conn.poll_transmit().len();
    assert_eq!(total, error_response("400 Bad Request").len());
    p.conn.handle_transmitted(p.now, total - 1);
    assert!(p.conn.poll_event().is_none());
    assert!(!p.conn.is_closed());
    p.conn.handle_transmitted(p.now, 1);
    assert!(matches!(p.conn.poll_event(), Some(Event::Closed)));
    assert!(p.conn.is_closed());
    assert_eq!(p.conn.handle_input(p.now, b"GET / HTTP/1.1\r\n"), 0);
}

#[test]
fn eof() {
    // Mid-head: 400. Idle: closed. Mid-body: 400. Half-closed after a request: still answered.
    let (log, out) = run(&Config::default(), echo, &[b"GET / HT"]);
    assert_eq!(
        (log, out),
        (
            vec!["error None 400".to_owned(), "closed".to_owned()],
            error_response("400 Bad Request")
        )
    );
    let (log, out) = run(&Config::default(), echo, &[b"\r\n"]);
    assert_eq!((log, out), (vec!["closed".to_owned()], String::new()));
    let (log, out) = run(
        &Config::default(),
        echo,
        &[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"],
    );
    assert_eq!(
        log,
        ["request 0 POST / HTTP/1.1", "error Some(0) 400", "closed"]
    );
    assert_eq!(out, error_response("400 Bad Request"));

    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    p.eof();
    assert!(!p.conn.is_closed());
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\n")
    );
    assert!(p.conn.is_closed());
}

#[test]
fn usage_errors() {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let now = p.now;
    let kind = |r: Result<(), UsageError>| r.map_err(|e| e.kind());
    let resp = || http::Response::new(());
    assert_eq!(
        kind(p.conn.respond(now, id(9), resp(), ResponseBody::Empty)),
        Err(UsageErrorKind::UnknownExchange)
    );
    let cont = http::Response::builder().status(100).body(()).unwrap();
    assert_eq!(
        kind(p.conn.respond(now, id(0), cont, ResponseBody::Empty)),
        Err(UsageErrorKind::InformationalStatus)
    );
    assert_eq!(
        p.conn.write_body(now, id(0), b"x").map_err(|e| e.kind()),
        Err(UsageErrorKind::NotResponded)
    );
    assert_eq!(
        kind(p.conn.finish_body(now, id(0))),
        Err(UsageErrorKind::NotResponded)
    );
    p.conn
        .respond(now, id(1), resp(), ResponseBody::Complete(b"x"))
        .unwrap();
    assert_eq!(
        kind(p.conn.respond(now, id(1), resp(), ResponseBody::Empty)),
        Err(UsageErrorKind::AlreadyResponded)
    );
    assert_eq!(
        p.conn.write_body(now, id(1), b"x").map_err(|e| e.kind()),
        Err(UsageErrorKind::NotStreaming)
    );
    p.conn
        .respond(now, id(0), resp(), ResponseBody::Length(2))
        .unwrap();
    assert_eq!(
        p.conn.write_body(now, id(0), b"xyz").map_err(|e| e.kind()),
        Err(UsageErrorKind::BodyTooLong)
    );
    assert_eq!(p.conn.write_body(now, id(0), b"x"), Ok(1));
    // Too short: the response is cut, the connection closes after it (the later one is dropped).
    assert_eq!(
        kind(p.conn.finish_body(now, id(0))),
        Err(UsageErrorKind::BodyTooShort)
    );
    assert_eq!(
        kind(p.conn.finish_body(now, id(0))),
        Err(UsageErrorKind::UnknownExchange)
    );
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{DATE}\r\nx")
    );
    assert!(p.conn.is_closed());
    assert!(!format!("{}", UsageError::new(UsageErrorKind::BodyTooShort)).is_empty());
}

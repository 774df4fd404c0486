//! Requests on the wire, body streaming, 100-continue, reuse decisions, misuse, and timeouts on
//! a fake clock.

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn request_heads() {
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        RequestBody<'static>,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            "GET",
            "http://a/",
            &[],
            RequestBody::Empty,
            "GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        (
            "GET",
            "http://a",
            &[],
            RequestBody::Empty,
            "GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        (
            "GET",
            "http://u:p@a:8080/x?q=1#f",
            &[],
            RequestBody::Empty,
            "GET /x?q=1 HTTP/1.1\r\nhost: a:8080\r\n\r\n",
        ),
        (
            "GET",
            "https://[::1]:8443/",
            &[],
            RequestBody::Empty,
            "GET / HTTP/1.1\r\nhost: [::1]:8443\r\n\r\n",
        ),
        (
            "GET",
            "/p",
            &[("Host", "b")],
            RequestBody::Empty,
            "GET /p HTTP/1.1\r\nhost: b\r\n\r\n",
        ),
        (
            "GET",
            "http://a/p",
            &[("host", "b"), ("x-a", "1")],
            RequestBody::Empty,
            "GET /p HTTP/1.1\r\nhost: b\r\nx-a: 1\r\n\r\n",
        ),
        (
            "OPTIONS",
            "*",
            &[("Host", "a")],
            RequestBody::Empty,
            "OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        (
            "POST",
            "http://a/",
            &[],
            RequestBody::Empty,
            "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n",
        ),
        (
            "DELETE",
            "http://a/",
            &[],
            RequestBody::Empty,
            "DELETE / HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        (
            "PUT",
            "http://a/",
            &[("Content-Length", "9"), ("Transfer-Encoding", "gzip")],
            RequestBody::Complete(b"abc"),
            "PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc",
        ),
        (
            "POST",
            "http://a/",
            &[],
            RequestBody::Length(7),
            "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 7\r\n\r\n",
        ),
        (
            "POST",
            "http://a/",
            &[],
            RequestBody::Chunked,
            "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
    ];
    for (method, uri, headers, body, want) in cases {
        let mut c = Client::new(Config::default());
        c.send(method, uri, headers, *body).expect("send");
        assert_eq!(c.wire(), *want, "{method} {uri}");
    }
}

#[test]
fn misuse() {
    let mut c = Client::new(Config::default());
    let s = |c: &mut Client, m, u| c.send(m, u, &[], RequestBody::Empty);
    assert_eq!(s(&mut c, "GET", "/x"), Err(UsageError::MissingHost));
    assert_eq!(
        s(&mut c, "CONNECT", "a:443"),
        Err(UsageError::UnsupportedMethod)
    );
    assert_eq!(c.wire(), "", "nothing queued for refused requests");
    let up = c
        .send("PUT", "http://a/", &[], RequestBody::Length(3))
        .unwrap();
    assert_eq!(
        s(&mut c, "GET", "http://a/"),
        Err(UsageError::RequestInProgress)
    );
    assert_eq!(
        c.conn.write_body(c.now, id(9), b"x"),
        Err(UsageError::NotStreaming)
    );
    assert_eq!(
        c.conn.write_body(c.now, up, b"abcd"),
        Err(UsageError::BodyTooLong)
    );
    assert_eq!(c.conn.write_body(c.now, up, b"ab"), Ok(2));
    assert_eq!(c.conn.finish_body(c.now, up), Err(UsageError::BodyTooShort));
    c.step();
    assert_eq!(c.log, ["aborted 0", "closed"]);
    assert!(c.conn.is_closed());
    assert_eq!(s(&mut c, "GET", "http://a/"), Err(UsageError::NotAccepting));

    // A request that says close is the last one.
    let mut c = Client::new(Config::default());
    c.send(
        "GET",
        "http://a/",
        &[("Connection", "close")],
        RequestBody::Empty,
    )
    .unwrap();
    assert!(!c.conn.can_send_request());
    assert_eq!(s(&mut c, "GET", "http://a/"), Err(UsageError::NotAccepting));
    c.feed(OK);
    assert_eq!(c.log, ["response 0 200 HTTP/1.1", "body 0 [ok]", "closed"]);
}

#[test]
fn streamed_bodies_and_write_backpressure() {
    let mut c = Client::new(Config {
        request_buffer_size: 8,
        ..Config::default()
    });
    c.send_window = 0;
    let up = c
        .send("POST", "http://a/", &[], RequestBody::Chunked)
        .unwrap();
    assert_eq!(
        c.conn.write_body(c.now, up, b"hello"),
        Ok(0),
        "the head fills the buffer"
    );
    c.send_window = usize::MAX;
    c.step();
    assert_eq!(c.log, ["writable 0"]);
    c.send_window = 0;
    assert_eq!(c.conn.write_body(c.now, up, b"0123456789"), Ok(8));
    assert_eq!(c.conn.write_body(c.now, up, b"89"), Ok(0));
    c.send_window = usize::MAX;
    c.step();
    assert_eq!(c.log, ["writable 0", "writable 0"]);
    assert_eq!(c.conn.write_body(c.now, up, b"89"), Ok(2));
    c.conn.finish_body(c.now, up).unwrap();
    c.step();
    let wire = c.wire();
    assert!(
        wire.ends_with("\r\n\r\n8\r\n01234567\r\n2\r\n89\r\n0\r\n\r\n"),
        "{wire:?}"
    );
    c.feed(OK);
    assert!(c.conn.is_reusable());
    assert_eq!(c.conn.read_body(c.now, up, &mut [0; 4]), BodyRead::End);
    assert_eq!(
        c.conn.read_body(c.now, id(5), &mut [0; 4]),
        BodyRead::Pending
    );
}

#[test]
fn expect_continue() {
    let expect = [("Expect", "100-continue")];
    // The server says go on: the body follows, the connection stays reusable.
    let mut c = Client::new(Config::default());
    let up = c
        .send("PUT", "http://a/", &expect, RequestBody::Length(3))
        .unwrap();
    c.feed(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(c.log, ["continue 0"]);
    c.conn.write_body(c.now, up, b"abc").unwrap();
    c.conn.finish_body(c.now, up).unwrap();
    c.feed(OK);
    assert!(c.wire().ends_with("\r\n\r\nabc"));
    assert_eq!(
        c.log,
        ["continue 0", "response 0 200 HTTP/1.1", "body 0 [ok]"]
    );
    assert!(c.conn.is_reusable());

    // A final answer first: the body we still owe makes the connection unusable after it.
    let mut c = Client::new(Config::default());
    let up = c
        .send("PUT", "http://a/", &expect, RequestBody::Length(3))
        .unwrap();
    c.feed(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.log, ["response 0 417 HTTP/1.1", "body 0 []", "closed"]);
    assert_eq!(c.conn.write_body(c.now, up, b"abc"), Ok(3), "dropped");
    assert_eq!(c.conn.finish_body(c.now, up), Ok(()));
    assert!(!c.conn.is_reusable());

    // Without Expect, a stray 100 is skipped silently.
    let mut c = Client::new(Config::default());
    c.get();
    c.feed(b"HTTP/1.1 100 Continue\r\n\r\n");
    c.feed(OK);
    assert_eq!(c.log, ["response 0 200 HTTP/1.1", "body 0 [ok]"]);
}

#[test]
fn early_response_while_uploading_keeps_streaming() {
    // A streaming server may answer before the body is complete; framing stays intact.
    let mut c = Client::new(Config::default());
    let up = c
        .send("POST", "http://a/", &[], RequestBody::Chunked)
        .unwrap();
    c.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n");
    assert!(!c.conn.is_reusable());
    assert_eq!(c.conn.write_body(c.now, up, b"more"), Ok(4));
    c.conn.finish_body(c.now, up).unwrap();
    c.step();
    assert!(!c.conn.is_reusable(), "response not complete");
    c.feed(b"0\r\n\r\n");
    assert!(c.conn.is_reusable());
    assert_eq!(c.log, ["response 0 200 HTTP/1.1", "body 0 [hi]"]);
}

#[test]
fn keep_alive_decisions() {
    type Case = (&'static [(&'static str, &'static str)], &'static str, bool);
    let table: &[Case] = &[
        (&[], "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
        (
            &[],
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        (
            &[],
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            true,
        ),
        (&[], "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        (
            &[],
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
            true,
        ),
        (
            &[("Connection", "close")],
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        (
            &[("Connection", "keep-alive")],
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            true,
        ),
    ];
    for (req, resp, reusable) in table {
        let mut c = Client::new(Config::default());
        c.send("GET", "http://a/", req, RequestBody::Empty).unwrap();
        assert!(!c.conn.is_reusable() && !c.conn.is_idle());
        c.feed(resp.as_bytes());
        assert_eq!(c.conn.is_reusable(), *reusable, "{req:?} {resp:?}");
        assert_eq!(c.conn.is_closed(), !*reusable, "{req:?} {resp:?}");
    }

    // Reuse needs the body read by the caller.
    let mut c = Client::new(Config::default());
    c.auto_read = false;
    let r = c.get();
    c.feed(OK);
    assert!(!c.conn.is_reusable() && c.conn.in_flight() == 0);
    assert!(c.read_all(r));
    assert!(c.conn.is_reusable() && c.conn.is_idle());

    // An idle connection closed by the server closes quietly.
    c.eof();
    assert_eq!(c.log, ["response 0 200 HTTP/1.1", "body 0 [ok]", "closed"]);
    assert!(c.conn.is_closed() && !c.conn.is_reusable());
}

#[test]
fn read_backpressure() {
    let mut c = Client::new(Config {
        body_buffer_size: 4,
        ..Config::default()
    });
    c.auto_read = false;
    let r = c.get();
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    let n = c.conn.handle_input(c.now, input);
    assert_eq!(n, input.len() - 6, "stops when the body buffer is full");
    assert!(!c.conn.wants_read());
    let mut buf = [0u8; 16];
    assert_eq!(c.conn.read_body(c.now, r, &mut buf), BodyRead::Data(4));
    assert!(c.conn.wants_read());
    assert_eq!(c.conn.handle_input(c.now, &input[n..]), 4);
    assert_eq!(c.conn.read_body(c.now, r, &mut buf), BodyRead::Data(4));
    assert_eq!(c.conn.handle_input(c.now, &input[n + 4..]), 2);
    assert_eq!(c.conn.read_body(c.now, r, &mut buf), BodyRead::Data(2));
    assert_eq!(c.conn.read_body(c.now, r, &mut buf), BodyRead::End);
    assert!(c.conn.is_reusable());
}

#[test]
fn errors_are_reported_once() {
    let mut c = Client::new(Config::default());
    let r = c.get();
    c.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel");
    c.eof();
    c.eof();
    c.feed(b"lo");
    c.advance(secs(3600));
    assert_eq!(
        c.log,
        [
            "response 0 200 HTTP/1.1",
            "error Some(0) connection closed mid-response",
            "closed"
        ]
    );
    assert_eq!(
        c.conn.read_body(c.now, r, &mut [0; 8]),
        BodyRead::Pending,
        "never End"
    );
    assert_eq!(c.conn.poll_timeout(), None);
    assert!(c.conn.is_closed() && !c.conn.is_reusable());
}

#[test]
fn response_timeout_counts_from_transmission() {
    let mut c = Client::new(Config::default());
    c.send_window = 0;
    c.get();
    assert_eq!(
        c.conn.poll_timeout(),
        Some(c.now + secs(60)),
        "write timer only"
    );
    c.advance(secs(30));
    c.send_window = usize::MAX;
    c.step();
    assert_eq!(c.conn.poll_timeout(), Some(c.now + secs(60)));
    c.advance(secs(59));
    assert!(c.log.is_empty());
    // An interim response restarts the wait for the final one.
    c.feed(b"HTTP/1.1 103 Early Hints\r\n\r\n");
    c.advance(secs(59));
    assert!(c.log.is_empty());
    c.advance(secs(1));
    assert_eq!(c.log, ["error Some(0) response timed out", "closed"]);
}

#[test]
fn read_timeout_mid_head_and_mid_body() {
    let mut c = Client::new(Config::default());
    c.get();
    c.feed(b"HTTP/1.1 200 OK\r\n");
    c.advance(secs(59));
    c.feed(b"Content-Length: 4\r\n\r\nab");
    c.advance(secs(59));
    assert_eq!(c.log, ["response 0 200 HTTP/1.1"]);
    c.advance(secs(1));
    assert_eq!(
        c.log,
        [
            "response 0 200 HTTP/1.1",
            "error Some(0) response stalled",
            "closed"
        ]
    );

    // The timer pauses while the caller leaves the body buffer full.
    let mut c = Client::new(Config {
        body_buffer_size: 2,
        ..Config::default()
    });
    c.auto_read = false;
    let r = c.get();
    c.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd");
    assert_eq!(c.conn.poll_timeout(), None);
    c.advance(secs(600));
    assert!(!c.read_all(r));
    c.step();
    assert!(c.read_all(r));
    assert!(c.conn.is_reusable());
}

#[test]
fn write_timeout() {
    let mut c = Client::new(Config::default());
    c.send_window = 0;
    c.send("POST", "http://a/", &[], RequestBody::Chunked)
        .unwrap();
    c.advance(secs(30));
    c.conn.handle_transmitted(c.now, 3);
    c.advance(secs(59));
    assert!(c.log.is_empty());
    c.advance(secs(1));
    assert_eq!(
        c.log,
        ["error Some(0) request transmission stalled", "closed"]
    );
    assert_eq!(c.conn.poll_transmit(), b"");
}

#[test]
fn take_complete_body_takes_a_whole_body_and_nothing_before() {
    let mut c = Client::new(Config::default());
    c.auto_read = false;
    let first = c.get();
    // Half the body: nothing taken, nothing lost.
    c.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
    let mut into = b"kept".to_vec();
    assert!(!c.conn.take_complete_body(c.now, first, &mut into));
    assert_eq!(into, b"kept");
    assert!(!c.conn.is_reusable());
    // A partial read first, then the rest arrives: the take appends what is left.
    let mut buf = [0; 2];
    assert_eq!(c.conn.read_body(c.now, first, &mut buf), BodyRead::Data(2));
    c.feed(b"56789");
    assert!(c.conn.take_complete_body(c.now, first, &mut into));
    assert_eq!(into, b"kept23456789");
    // Answered in full: reads end, the connection serves the next request.
    assert_eq!(c.conn.read_body(c.now, first, &mut buf), BodyRead::End);
    assert!(!c.conn.take_complete_body(c.now, first, &mut into));
    assert!(c.conn.is_reusable());
    // A chunked body that came whole with its head: its payload alone.
    let second = c.get();
    c.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let mut into = Vec::new();
    assert!(c.conn.take_complete_body(c.now, second, &mut into));
    assert_eq!(into, b"abc");
    assert!(c.conn.is_reusable());
}

//! Well-formed requests: framing, persistence, pipelining, bodiless responses.

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn table_of_exchanges() {
    // (input, events, output); every case also runs split at every byte and byte by byte.
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            s(&["request 0 GET / HTTP/1.1", "body 0 []", "closed"]),
            echoed("GET", "/", "", ""),
        ),
        (
            // Empty lines before a request are ignored; bare LF ends head lines.
            "\r\n\nGET /x?y HTTP/1.1\nHost: a\n\n",
            s(&["request 0 GET /x?y HTTP/1.1", "body 0 []", "closed"]),
            echoed("GET", "/x?y", "", ""),
        ),
        (
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /q HTTP/1.1\r\nHost: a\r\n\r\n",
            s(&["request 0 POST /p HTTP/1.1", "body 0 [hello]", "request 1 GET /q HTTP/1.1", "body 1 []", "closed"]),
            echoed("POST", "/p", "hello", "") + &echoed("GET", "/q", "", ""),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val;x\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\nMore: 1\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
            s(&["request 0 POST / HTTP/1.1", "body 0 [hello world]", "request 1 GET /next HTTP/1.1", "body 1 []", "closed"]),
            echoed("POST", "/", "hello world", "") + &echoed("GET", "/next", "", ""),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            s(&["request 0 POST / HTTP/1.1", "body 0 [abc]", "closed"]),
            echoed("POST", "/", "abc", ""),
        ),
        (
            // HTTP/1.0 keep-alive: both answered, each says keep-alive.
            "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            s(&["request 0 GET /1 HTTP/1.0", "body 0 []", "request 1 GET /2 HTTP/1.0", "body 1 []", "closed"]),
            echoed("GET", "/1", "", "connection: keep-alive\r\n") + &echoed("GET", "/2", "", "connection: keep-alive\r\n"),
        ),
        (
            // HTTP/1.0 without keep-alive: answered with close, the next request is never read.
            "GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
            s(&["request 0 GET /1 HTTP/1.0", "body 0 []", "closed"]),
            echoed("GET", "/1", "", "connection: close\r\n"),
        ),
        (
            // Client Connection: close ends the connection after its response.
            "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            s(&["request 0 GET /1 HTTP/1.1", "body 0 []", "closed"]),
            echoed("GET", "/1", "", "connection: close\r\n"),
        ),
        (
            "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
            s(&["request 0 GET http://a.example/x HTTP/1.1", "body 0 []", "closed"]),
            echoed("GET", "http://a.example/x", "", ""),
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            s(&["request 0 OPTIONS * HTTP/1.1", "body 0 []", "closed"]),
            echoed("OPTIONS", "*", "", ""),
        ),
        (
            // CONNECT: a 2xx switches (the connection is the owner's tunnel from here on; no
            // content, no framing); see `upgrade.rs` for the other answers.
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            s(&["request 0 CONNECT a:443 HTTP/1.1", "body 0 []", "switched"]),
            format!("HTTP/1.1 200 OK\r\n{DATE}\r\n"),
        ),
    ];
    let config = Config::default();
    for (input, events, output) in cases {
        let (got_events, got_output) = split_runs(&config, echo, input.as_bytes());
        assert_eq!(got_events, events, "{input:?}");
        assert_eq!(got_output, output, "{input:?}");
    }
}

#[test]
fn hundred_pipelined_requests_answered_in_order() {
    let input: String = (0..100)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n"))
        .collect();
    let want: String = (0..100)
        .map(|i| echoed("GET", &format!("/{i}"), "", ""))
        .collect();
    let mut p = Peer::new(Config::default());
    p.feed(input.as_bytes());
    assert!(p.pending.is_empty());
    assert_eq!(p.wire(), want);
    assert_eq!(p.log.len(), 200);
    // And the same when split anywhere (25 requests keep the quadratic run short).
    let input: String = (0..25)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n"))
        .collect();
    let want: String = (0..25)
        .map(|i| echoed("GET", &format!("/{i}"), "", ""))
        .collect();
    let (_, out) = split_runs(&Config::default(), echo, input.as_bytes());
    assert_eq!(out, want);
}

#[test]
fn later_responses_wait_for_earlier_ones() {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    let now = p.now;
    let ok = |t: &str| (http::Response::new(()), t.to_owned());
    // Answer 2, then stream 1 (held back: write_body accepts nothing yet), then answer 0.
    let (h, b) = ok("two");
    p.conn
        .respond(now, id(2), h, ResponseBody::Complete(b.as_bytes()))
        .unwrap();
    p.conn
        .respond(now, id(1), http::Response::new(()), ResponseBody::Chunked)
        .unwrap();
    assert_eq!(p.conn.write_body(now, id(1), b"one"), Ok(0));
    p.step();
    assert_eq!(p.wire(), "");
    let (h, b) = ok("zero");
    p.conn
        .respond(now, id(0), h, ResponseBody::Complete(b.as_bytes()))
        .unwrap();
    p.step();
    assert_eq!(p.log.last().map(String::as_str), Some("writable 1"));
    assert_eq!(p.conn.write_body(now, id(1), b"one"), Ok(3));
    p.conn.finish_body(now, id(1)).unwrap();
    p.step();
    let want = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n{DATE}\r\nzero\
         HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{DATE}\r\n3\r\none\r\n0\r\n\r\n\
         HTTP/1.1 200 OK\r\ncontent-length: 3\r\n{DATE}\r\ntwo"
    );
    assert_eq!(p.wire(), want);
}

fn bodiless(req: &http::Request<()>, _: &[u8]) -> (http::Response<()>, Vec<u8>) {
    let status: u16 = req.uri().path()[1..].parse().unwrap();
    let mut head = http::Response::builder().status(status);
    if status == 304 {
        head = head.header("content-length", "42").header("etag", "\"x\"");
    }
    (head.body(()).unwrap(), b"body bytes".to_vec())
}

#[test]
fn head_204_304_carry_no_body() {
    let cases = [
        (
            "HEAD /200 HTTP/1.1\r\nHost: a\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n",
        ),
        (
            "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n",
        ),
        (
            "GET /304 HTTP/1.1\r\nHost: a\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\netag: \"x\"\r\n",
        ),
    ];
    for (req, head) in cases {
        // Followed by a GET to show the connection stays usable and framing is intact.
        let input = format!("{req}GET /200 HTTP/1.1\r\nHost: a\r\n\r\n");
        let (_, out) = split_runs(&Config::default(), bodiless, input.as_bytes());
        let next = format!("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n{DATE}\r\nbody bytes");
        assert_eq!(out, format!("{head}{DATE}\r\n{next}"), "{req:?}");
    }
    // HEAD with Empty keeps the handler's Content-Length; streamed bytes are dropped.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = http::Response::builder()
        .header("content-length", "7")
        .body(())
        .unwrap();
    p.conn
        .respond(p.now, id(0), head, ResponseBody::Chunked)
        .unwrap();
    assert_eq!(p.conn.write_body(p.now, id(0), b"dropped"), Ok(7));
    p.conn.finish_body(p.now, id(0)).unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{DATE}\r\n")
    );
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = http::Response::builder()
        .header("content-length", "7")
        .body(())
        .unwrap();
    p.conn
        .respond(p.now, id(0), head, ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n{DATE}\r\n")
    );
}

#[test]
fn streaming_bodies() {
    // Chunked to 1.1, close-delimited to 1.0, fixed length to both.
    let cases = [
        (
            "HTTP/1.1",
            ResponseBody::Chunked,
            "transfer-encoding: chunked\r\n",
            "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
            false,
        ),
        (
            "HTTP/1.0",
            ResponseBody::Chunked,
            "connection: close\r\n",
            "abcde",
            true,
        ),
        (
            "HTTP/1.1",
            ResponseBody::Length(5),
            "content-length: 5\r\n",
            "abcde",
            false,
        ),
        (
            "HTTP/1.0",
            ResponseBody::Length(5),
            "content-length: 5\r\nconnection: close\r\n",
            "abcde",
            true,
        ),
    ];
    for (version, body, headers, bytes, closes) in cases {
        let mut p = Peer::new(Config::default());
        p.auto = false;
        p.feed(format!("GET / {version}\r\nHost: a\r\n\r\n").as_bytes());
        let now = p.now;
        p.conn
            .respond(now, id(0), http::Response::new(()), body)
            .unwrap();
        assert_eq!(p.conn.write_body(now, id(0), b"ab"), Ok(2));
        assert_eq!(p.conn.write_body(now, id(0), b"cde"), Ok(3));
        p.conn.finish_body(now, id(0)).unwrap();
        p.step();
        assert_eq!(
            p.wire(),
            format!("HTTP/1.1 200 OK\r\n{headers}{DATE}\r\n{bytes}"),
            "{version} {body:?}"
        );
        assert_eq!(p.conn.is_closed(), closes, "{version} {body:?}");
    }
}

#[test]
fn response_backpressure() {
    let config = Config {
        response_buffer_size: 10,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    p.send_window = 0;
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let now = p.now;
    p.conn
        .respond(
            now,
            id(0),
            http::Response::new(()),
            ResponseBody::Length(30),
        )
        .unwrap();
    // The head alone exceeds the cap: nothing accepted until output drains.
    assert_eq!(p.conn.write_body(now, id(0), &[b'x'; 30]), Ok(0));
    let head_len = p.conn.poll_transmit().len();
    p.conn.handle_transmitted(now, head_len);
    assert!(matches!(p.conn.poll_event(), Some(Event::Writable { .. })));
    assert_eq!(p.conn.write_body(now, id(0), &[b'x'; 30]), Ok(10));
    assert_eq!(p.conn.write_body(now, id(0), &[b'x'; 20]), Ok(0));
    p.conn.handle_transmitted(now, 4);
    assert!(p.conn.poll_event().is_none(), "above the low-water mark");
    p.conn.handle_transmitted(now, 1);
    assert!(matches!(p.conn.poll_event(), Some(Event::Writable { .. })));
    assert_eq!(p.conn.write_body(now, id(0), &[b'x'; 20]), Ok(5));
}

fn closing(_: &http::Request<()>, _: &[u8]) -> (http::Response<()>, Vec<u8>) {
    let head = http::Response::builder()
        .header("connection", "close")
        .body(())
        .unwrap();
    (head, b"bye".to_vec())
}

#[test]
fn handler_close_drops_pipelined_requests() {
    let input = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut p = Peer::with(Config::default(), closing);
    p.auto = false;
    p.feed(input);
    assert_eq!(
        p.log,
        ["request 0 GET /1 HTTP/1.1", "request 1 GET /2 HTTP/1.1"]
    );
    p.read_and_answer(id(0));
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n{DATE}\r\nbye")
    );
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));
    let err = p
        .conn
        .respond(p.now, id(1), http::Response::new(()), ResponseBody::Empty);
    assert_eq!(
        err.map_err(|e| e.kind()),
        Err(UsageErrorKind::UnknownExchange)
    );
}

#[test]
fn unread_bodies_are_discarded_or_close() {
    fn early(_: &http::Request<()>, _: &[u8]) -> (http::Response<()>, Vec<u8>) {
        (http::Response::new(()), b"early".to_vec())
    }
    let early_resp = format!("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n{DATE}\r\nearly");
    let config = Config {
        discard_body_limit: 8,
        ..Config::default()
    };
    // (body framing + body, keeps the connection)
    let cases = [
        ("Content-Length: 8\r\n\r\n12345678", true),
        ("Content-Length: 9\r\n\r\n123456789", false),
        (
            "Transfer-Encoding: chunked\r\n\r\n4\r\n1234\r\n4\r\n5678\r\n0\r\n\r\n",
            true,
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\n4\r\n1234\r\n5\r\n56789\r\n0\r\n\r\n",
            false,
        ),
    ];
    for (body, keeps) in cases {
        let mut p = Peer::with(config.clone(), early);
        p.auto = false;
        p.feed(b"POST / HTTP/1.1\r\nHost: a\r\n");
        p.feed(body.split("\r\n\r\n").next().unwrap().as_bytes());
        p.feed(b"\r\n\r\n");
        // Respond before reading anything, then the body and a second request arrive.
        let (h, b) = early(&http::Request::new(()), b"");
        p.conn
            .respond(p.now, id(0), h, ResponseBody::Complete(&b))
            .unwrap();
        let rest = &body[body.find("\r\n\r\n").unwrap() + 4..];
        p.auto = true;
        p.feed(rest.as_bytes());
        p.feed(b"GET /n HTTP/1.1\r\nHost: a\r\n\r\n");
        if keeps {
            assert_eq!(p.wire(), early_resp.clone() + &early_resp, "{body:?}");
            assert!(p.pending.is_empty());
        } else {
            assert_eq!(p.wire(), early_resp, "{body:?}");
            assert!(p.conn.is_closed(), "{body:?}");
        }
    }
}

#[test]
fn expect_continue() {
    // The handler reads: 100 Continue goes out before the body is sent.
    let mut p = Peer::new(Config::default());
    p.feed(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_eq!(p.wire(), "HTTP/1.1 100 Continue\r\n\r\n");
    p.feed(b"data");
    assert_eq!(
        p.wire(),
        format!(
            "HTTP/1.1 100 Continue\r\n\r\n{}",
            echoed("PUT", "/", "data", "")
        )
    );
    assert!(!p.conn.is_closed());

    // The handler answers without reading: no 100, and the connection closes after.
    fn reject(_: &http::Request<()>, _: &[u8]) -> (http::Response<()>, Vec<u8>) {
        (
            http::Response::builder().status(413).body(()).unwrap(),
            Vec::new(),
        )
    }
    let mut p = Peer::with(Config::default(), reject);
    p.auto = false;
    p.feed(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let (h, _) = reject(&http::Request::new(()), b"");
    p.conn
        .respond(p.now, id(0), h, ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n")
    );
    assert_eq!(p.log.last().map(String::as_str), Some("closed"));

    // Behind an unanswered request, the 100 waits for the earlier response.
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p.feed(b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nPUT /1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(
        p.conn.read_body(p.now, id(1), &mut [0; 4]),
        BodyRead::Pending
    );
    p.step();
    assert_eq!(p.wire(), "");
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\nHTTP/1.1 100 Continue\r\n\r\n")
    );
}

#[test]
fn request_body_backpressure() {
    let config = Config {
        body_buffer_size: 4,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
    // Head plus 4 body bytes consumed; the rest waits in the caller's buffer.
    assert_eq!(p.pending, b"456789");
    assert!(!p.conn.wants_read());
    let mut buf = [0u8; 3];
    assert_eq!(p.conn.read_body(p.now, id(0), &mut buf), BodyRead::Data(3));
    assert_eq!(&buf, b"012");
    assert!(p.conn.wants_read());
    p.step();
    assert_eq!(
        p.pending, b"789",
        "refilled up to the cap of 4 buffered bytes"
    );
    let mut buf = [0u8; 16];
    assert_eq!(p.conn.read_body(p.now, id(0), &mut buf), BodyRead::Data(4));
    assert_eq!(&buf[..4], b"3456");
    p.step();
    assert_eq!(p.conn.read_body(p.now, id(0), &mut buf), BodyRead::Data(3));
    assert_eq!(&buf[..3], b"789");
    assert_eq!(p.conn.read_body(p.now, id(0), &mut buf), BodyRead::End);
}

#[test]
fn take_body_hands_over_what_is_buffered_by_a_swap_and_keeps_backpressure() {
    let config = Config {
        body_buffer_size: 4,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
    assert!(!p.conn.wants_read());
    // Whatever `into` held is dropped; every buffered byte comes back in it at once.
    let mut into = b"stale".to_vec();
    assert_eq!(p.conn.take_body(p.now, id(0), &mut into), BodyRead::Data(4));
    assert_eq!(into, b"0123");
    assert!(p.conn.wants_read(), "room again once the buffer was taken");
    p.step();
    assert_eq!(
        p.pending, b"89",
        "refilled up to the cap of 4 buffered bytes"
    );
    // After a partial read_body, take_body gives the rest of the buffer (copied this once).
    let mut one = [0u8; 1];
    assert_eq!(p.conn.read_body(p.now, id(0), &mut one), BodyRead::Data(1));
    assert_eq!(&one, b"4");
    assert_eq!(p.conn.take_body(p.now, id(0), &mut into), BodyRead::Data(3));
    assert_eq!(into, b"567");
    p.step();
    assert_eq!(p.conn.take_body(p.now, id(0), &mut into), BodyRead::Data(2));
    assert_eq!(into, b"89");
    assert_eq!(p.conn.take_body(p.now, id(0), &mut into), BodyRead::End);
    assert!(into.is_empty());
    // An exchange the codec does not know reads nothing.
    assert_eq!(p.conn.take_body(p.now, id(7), &mut into), BodyRead::Pending);
}

#[test]
fn pipelining_is_bounded() {
    let config = Config {
        max_pipelined: 2,
        ..Config::default()
    };
    let mut p = Peer::new(config);
    p.auto = false;
    let one = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    p.feed(one.repeat(5).as_bytes());
    assert_eq!(p.log.len(), 3);
    assert_eq!(p.pending.len(), 2 * one.len());
    assert!(!p.conn.wants_read());
    p.conn
        .respond(p.now, id(0), http::Response::new(()), ResponseBody::Empty)
        .unwrap();
    assert!(p.conn.wants_read());
    p.step();
    assert_eq!(p.log.len(), 4);
}

#[test]
fn bodies_sent_from_their_own_buffer_go_out_as_copied_ones_do() {
    // The same pipelined exchanges answered with bodies copied (`respond`) and with bodies
    // sent from their `Bytes` (`respond_shared`): the same bytes on the wire, whatever the
    // socket takes at a time, with responses written while a shared body waits (a HEAD, one
    // held back behind earlier exchanges, a streamed one) in their place after it.
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let run = |shared: bool, window: usize| {
        let mut p = Peer::new(Config::default());
        p.auto = false;
        p.send_window = window;
        p.feed(
            b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /1 HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /4 HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        let now = p.now;
        let answer = |p: &mut Peer, i: u64, body: &[u8]| {
            let head = http::Response::new(());
            if shared {
                let body = bytes::Bytes::copy_from_slice(body);
                p.conn.respond_shared(now, id(i), head, &body).unwrap();
            } else {
                let body = ResponseBody::Complete(body);
                p.conn.respond(now, id(i), head, body).unwrap();
            }
        };
        answer(&mut p, 2, &big[..20_000]);
        answer(&mut p, 0, &big);
        answer(&mut p, 1, &big);
        let chunked = ResponseBody::Chunked;
        p.conn
            .respond(now, id(3), http::Response::new(()), chunked)
            .unwrap();
        assert_eq!(p.conn.write_body(now, id(3), b"three"), Ok(5));
        p.conn.finish_body(now, id(3)).unwrap();
        answer(&mut p, 4, &big[..17_000]);
        p.step();
        p.wire.clone()
    };
    let head = |n: usize| format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n{DATE}\r\n");
    let mut want = head(40_000).into_bytes();
    want.extend_from_slice(&big);
    want.extend_from_slice(head(40_000).as_bytes());
    want.extend_from_slice(head(20_000).as_bytes());
    want.extend_from_slice(&big[..20_000]);
    let three = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{DATE}\r\n5\r\nthree\r\n0\r\n\r\n"
    );
    want.extend_from_slice(three.as_bytes());
    want.extend_from_slice(head(17_000).as_bytes());
    want.extend_from_slice(&big[..17_000]);
    for window in [usize::MAX, 1000, 7] {
        assert_eq!(run(false, window), want, "copied, window {window}");
        assert_eq!(run(true, window), want, "shared, window {window}");
    }
}

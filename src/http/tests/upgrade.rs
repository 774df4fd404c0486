//! Upgrades (RFC 9110 §7.8): a request with `Upgrade` and the `upgrade` connection option
//! pauses reading until its response; a `101` switches, anything else resumes HTTP.

use super::*;

const WS: &str = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\
                  Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn switching() -> http::Response<()> {
    http::Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "whatever")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .body(())
        .unwrap()
}

fn manual() -> Peer {
    let mut p = Peer::new(Config::default());
    p.auto = false;
    p
}

#[test]
fn a_101_switches_and_leaves_the_bytes_after_the_head_unread() {
    let mut p = manual();
    // The first frame of the new protocol right behind the request: never parsed as HTTP.
    let mut input = WS.as_bytes().to_vec();
    input.extend_from_slice(b"\x81\x05hello GET / HTTP/1.1\r\n");
    p.feed(&input);
    assert_eq!(p.log, ["request 0 GET /chat HTTP/1.1"]);
    assert!(!p.conn.wants_read());
    assert_eq!(p.pending, b"\x81\x05hello GET / HTTP/1.1\r\n");
    assert_eq!(
        p.conn.poll_timeout(),
        None,
        "no head timer while the answer is awaited"
    );
    p.conn
        .respond(
            p.now,
            id(0),
            switching(),
            ResponseBody::Complete(b"ignored"),
        )
        .unwrap();
    p.step();
    assert_eq!(
        p.wire(),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
             sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nconnection: upgrade\r\n{DATE}\r\n"
        )
    );
    assert_eq!(p.log.last().map(String::as_str), Some("switched"));
    assert!(p.conn.is_switched() && p.conn.is_closed());
    assert_eq!(p.pending, b"\x81\x05hello GET / HTTP/1.1\r\n");
}

#[test]
fn the_switch_waits_for_the_101_to_be_transmitted() {
    let mut p = manual();
    p.send_window = 10;
    p.feed(WS.as_bytes());
    p.conn
        .respond(p.now, id(0), switching(), ResponseBody::Empty)
        .unwrap();
    assert!(!p.conn.is_switched());
    p.send_window = usize::MAX;
    p.step();
    assert!(p.conn.is_switched());
    assert!(p.wire().starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
}

#[test]
fn any_other_answer_resumes_http() {
    let mut p = manual();
    p.feed(format!("{WS}GET /next HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    assert_eq!(p.log, ["request 0 GET /chat HTTP/1.1"]);
    let head = http::Response::builder().status(426).body(()).unwrap();
    p.conn
        .respond(p.now, id(0), head, ResponseBody::Complete(b"no"))
        .unwrap();
    p.step();
    assert_eq!(
        p.log,
        [
            "request 0 GET /chat HTTP/1.1",
            "request 1 GET /next HTTP/1.1"
        ]
    );
    assert!(p.wire().starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(!p.conn.is_switched());
}

#[test]
fn a_101_needs_a_request_that_asked_for_it() {
    let cases = [
        // No upgrade connection option, HTTP/1.0, CONNECT-less but no Upgrade field.
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
    ];
    for req in cases {
        let mut p = manual();
        p.feed(req.as_bytes());
        let err = p
            .conn
            .respond(p.now, id(0), switching(), ResponseBody::Empty)
            .unwrap_err();
        assert_eq!(err.kind(), UsageErrorKind::NotUpgradable, "{req:?}");
        // 1xx other than 101 stay the codec's.
        let head = http::Response::builder().status(103).body(()).unwrap();
        let err = p
            .conn
            .respond(p.now, id(0), head, ResponseBody::Empty)
            .unwrap_err();
        assert_eq!(err.kind(), UsageErrorKind::InformationalStatus);
    }
    // Stopping: no switch.
    let mut p = manual();
    p.feed(WS.as_bytes());
    p.conn.shutdown(p.now);
    let err = p
        .conn
        .respond(p.now, id(0), switching(), ResponseBody::Empty)
        .unwrap_err();
    assert_eq!(err.kind(), UsageErrorKind::NotUpgradable);
}

// CONNECT (RFC 9110 §9.3.6): a 2xx makes the connection a tunnel.

const CONNECT: &str = "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n";

fn status(code: u16) -> http::Response<()> {
    http::Response::builder()
        .status(code)
        .header("content-length", "99")
        .header("connection", "keep-alive")
        .body(())
        .unwrap()
}

#[test]
fn a_2xx_to_connect_switches_without_framing_and_keeps_the_bytes_after_the_head() {
    let mut p = manual();
    let mut input = CONNECT.as_bytes().to_vec();
    input.extend_from_slice(b"\x16\x03\x01 a ClientHello");
    p.feed(&input);
    assert_eq!(p.log, ["request 0 CONNECT a.test:443 HTTP/1.1"]);
    assert!(!p.conn.wants_read());
    p.conn
        .respond(
            p.now,
            id(0),
            status(200),
            ResponseBody::Complete(b"ignored"),
        )
        .unwrap();
    p.step();
    // No Content-Length, Transfer-Encoding or Connection (the handler's are dropped).
    assert_eq!(p.wire(), format!("HTTP/1.1 200 OK\r\n{DATE}\r\n"));
    assert_eq!(p.log.last().map(String::as_str), Some("switched"));
    assert!(p.conn.is_switched() && p.conn.is_closed());
    assert_eq!(p.pending, b"\x16\x03\x01 a ClientHello");
}

#[test]
fn any_other_answer_to_connect_closes_the_connection() {
    for code in [403, 502, 400] {
        let mut p = manual();
        p.feed(format!("{CONNECT}GET / HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        p.conn
            .respond(p.now, id(0), status(code), ResponseBody::Complete(b"no"))
            .unwrap();
        p.step();
        let wire = p.wire();
        assert!(wire.contains("\r\ncontent-length: 2\r\n"), "{wire}");
        assert!(wire.contains("\r\nconnection: close\r\n"), "{wire}");
        assert_eq!(p.log.last().map(String::as_str), Some("closed"), "{code}");
        assert!(!p.conn.is_switched());
        assert_eq!(p.log.len(), 2, "nothing after a CONNECT is read as HTTP");
    }
}

#[test]
fn a_connect_cannot_switch_with_a_101_nor_while_stopping() {
    let mut p = manual();
    p.feed(CONNECT.as_bytes());
    let err = p
        .conn
        .respond(p.now, id(0), switching(), ResponseBody::Empty)
        .unwrap_err();
    assert_eq!(err.kind(), UsageErrorKind::NotUpgradable);
    let mut p = manual();
    p.feed(CONNECT.as_bytes());
    p.conn.shutdown(p.now);
    let err = p
        .conn
        .respond(p.now, id(0), status(200), ResponseBody::Empty)
        .unwrap_err();
    assert_eq!(err.kind(), UsageErrorKind::NotUpgradable);
    // A 2xx to any other method is an ordinary response.
    let mut p = manual();
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    p.conn
        .respond(p.now, id(0), status(200), ResponseBody::Complete(b"ok"))
        .unwrap();
    p.step();
    assert!(!p.conn.is_switched());
}

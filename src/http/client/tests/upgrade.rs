//! A `101 Switching Protocols` to an upgrade request ends HTTP; to any other request it is a
//! protocol error.

use super::*;

const WS: &[(&str, &str)] = &[("connection", "Upgrade"), ("upgrade", "websocket")];

#[test]
fn a_101_to_an_upgrade_request_switches_and_leaves_the_rest_unread() {
    let mut c = Client::new(Config::default());
    let id = c
        .send("GET", "http://a/ws", WS, RequestBody::Empty)
        .unwrap();
    assert!(String::from_utf8_lossy(&c.wire).contains("connection: Upgrade\r\n"));
    c.feed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: abc\r\n\r\n\x81\x02hi",
    );
    // No body: it reads as ended at once.
    assert_eq!(
        c.log,
        [
            format!("response {} 101 HTTP/1.1", id.0),
            format!("body {} []", id.0)
        ]
    );
    assert!(c.conn.is_switched() && !c.conn.is_closed());
    assert!(!c.conn.wants_read() && !c.conn.can_send_request() && !c.conn.is_reusable());
    assert_eq!(
        c.pending, b"\x81\x02hi",
        "the new protocol's bytes are left"
    );
    assert_eq!(c.conn.poll_timeout(), None);
    let mut buf = [0u8; 8];
    assert_eq!(c.conn.read_body(c.now, id, &mut buf), BodyRead::End);
    c.eof();
    assert!(!c.log.iter().any(|l| l.starts_with("error")), "{:?}", c.log);
}

#[test]
fn a_101_to_a_plain_request_is_malformed() {
    let mut c = Client::new(Config::default());
    c.get();
    c.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert!(
        c.log.iter().any(|l| l.contains("unexpected 101 response")),
        "{:?}",
        c.log
    );
    assert!(c.conn.is_closed() && !c.conn.is_switched());
}

#[test]
fn any_other_answer_to_an_upgrade_request_is_a_response() {
    let mut c = Client::new(Config::default());
    let id = c
        .send("GET", "http://a/ws", WS, RequestBody::Empty)
        .unwrap();
    c.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
    assert_eq!(c.log[0], format!("response {} 403 HTTP/1.1", id.0));
    assert!(!c.conn.is_switched() && c.conn.is_reusable());
}

//! The HTTP/2 client codec against paf's own HTTP/2 server codec (both sans-IO, stepped by
//! hand on one instant), and against frames written by hand for what a well-behaved server
//! never sends (GOAWAY with a low last stream id, garbage, frames on the wrong stream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::http::h2::ServerConn;
use crate::http::{self as h, Event, ExchangeId, ResponseBody};

fn server_config(streams: u32) -> Arc<h::Config> {
    Arc::new(h::Config {
        max_concurrent_streams: streams,
        max_body_size: None,
        ..h::Config::default()
    })
}

struct Duo {
    c: ClientConn,
    s: ServerConn,
    now: Instant,
    cev: Vec<ClientEvent>,
    sev: Vec<Event>,
}

impl Duo {
    fn new(streams: u32) -> Duo {
        let now = Instant::now();
        let mut d = Duo {
            c: ClientConn::new(Arc::new(Config::default()), now, true),
            s: ServerConn::new(server_config(streams), now),
            now,
            cev: Vec::new(),
            sev: Vec::new(),
        };
        d.step();
        d
    }

    /// Moves bytes both ways until nothing moves; collects events.
    fn step(&mut self) {
        loop {
            let mut moved = false;
            let out = self.c.poll_transmit().to_vec();
            if !out.is_empty() {
                let n = self.s.handle_input(self.now, &out);
                self.c.handle_transmitted(self.now, n);
                moved |= n > 0;
            }
            let out = self.s.poll_transmit().to_vec();
            if !out.is_empty() {
                let n = self.c.handle_input(self.now, &out);
                self.s.handle_transmitted(self.now, n);
                moved |= n > 0;
            }
            while let Some(e) = self.c.poll_event() {
                self.cev.push(e);
                moved = true;
            }
            while let Some(e) = self.s.poll_event() {
                self.sev.push(e);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn requests(&mut self) -> Vec<(ExchangeId, http::Request<()>)> {
        let mut out = Vec::new();
        self.sev.retain(|e| match e {
            Event::Request { id, head } => {
                out.push((*id, head.clone()));
                false
            }
            _ => true,
        });
        out
    }

    fn responses(&mut self) -> Vec<(RequestId, http::Response<()>)> {
        let mut out = Vec::new();
        self.cev.retain(|e| match e {
            ClientEvent::Response { id, head } => {
                out.push((*id, head.clone()));
                false
            }
            _ => true,
        });
        out
    }

    /// Reads the response body of `id` to its end (stepping as windows open).
    fn read_all(&mut self, id: RequestId) -> Vec<u8> {
        let mut body = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        for _ in 0..100_000 {
            match self.c.read_body(self.now, id, &mut buf) {
                BodyRead::Data(n) => body.extend_from_slice(&buf[..n]),
                BodyRead::End => return body,
                BodyRead::Pending => self.step(),
            }
        }
        panic!("body of {id:?} never ended ({} bytes)", body.len());
    }
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(path)
        .header("host", "example.test")
        .body(())
        .unwrap()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn get_with_authority_from_host_and_connection_fields_stripped() {
    let mut d = Duo::new(100);
    let mut req = get("/a?b=1");
    for (k, v) in [
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "websocket"),
        ("te", "gzip"),
        ("x-end", "kept"),
    ] {
        req.headers_mut().append(k, v.parse().unwrap());
    }
    let id = d.c.send_request(d.now, req, RequestBody::Empty).unwrap();
    d.step();
    let reqs = d.requests();
    assert_eq!(reqs.len(), 1);
    let (sid, head) = &reqs[0];
    assert_eq!(head.uri(), "/a?b=1");
    assert_eq!(head.version(), Version::HTTP_2);
    assert_eq!(head.headers()["host"], "example.test");
    assert_eq!(head.headers()["x-end"], "kept");
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
    ] {
        assert!(!head.headers().contains_key(gone), "{gone} was sent");
    }
    d.s.respond(
        d.now,
        *sid,
        http::Response::new(()),
        ResponseBody::Complete(b"hello"),
    )
    .unwrap();
    d.step();
    let resps = d.responses();
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].0, id);
    assert_eq!(resps[0].1.status(), 200);
    assert_eq!(resps[0].1.version(), Version::HTTP_2);
    assert_eq!(d.read_all(id), b"hello");
    assert!(d.c.is_reusable());
}

#[test]
fn missing_host_and_connect_are_refused_locally() {
    let mut d = Duo::new(100);
    let no_host = http::Request::get("/").body(()).unwrap();
    assert_eq!(
        d.c.send_request(d.now, no_host, RequestBody::Empty),
        Err(UsageError::MissingHost)
    );
    let connect = http::Request::connect("example.test:443").body(()).unwrap();
    assert_eq!(
        d.c.send_request(d.now, connect, RequestBody::Empty),
        Err(UsageError::UnsupportedMethod)
    );
    assert!(d.c.can_send_request());
}

#[test]
fn post_large_bodies_byte_exact_with_backpressure_both_ways() {
    let mut d = Duo::new(100);
    let up = pattern(3 * 1024 * 1024 + 17);
    let down = pattern(5 * 1024 * 1024 + 3);
    let req = http::Request::post("/up")
        .header("host", "example.test")
        .body(())
        .unwrap();
    let id =
        d.c.send_request(d.now, req, RequestBody::Length(up.len() as u64))
            .unwrap();
    d.step();
    let (sid, head) = d.requests().pop().unwrap();
    assert_eq!(
        head.headers()["content-length"],
        up.len().to_string().as_str()
    );
    // The server does not read: the client's writes stop at the peer's windows.
    let mut sent = 0;
    for _ in 0..1000 {
        let n = d.c.write_body(d.now, id, &up[sent..]).unwrap();
        sent += n;
        d.step();
        if n == 0 {
            break;
        }
    }
    assert!(sent < up.len(), "flow control did not stop the upload");
    assert!(sent <= 2 * 1024 * 1024, "{sent} bytes past the windows");
    // The server reads everything while the client writes the rest.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..100_000 {
        while let BodyRead::Data(n) = d.s.read_body(d.now, sid, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if sent < up.len() {
            sent += d.c.write_body(d.now, id, &up[sent..]).unwrap();
            if sent == up.len() {
                d.c.finish_body(d.now, id).unwrap();
            }
        }
        d.step();
        if got.len() == up.len() && sent == up.len() {
            break;
        }
    }
    assert!(
        got == up,
        "upload differs ({} of {} bytes)",
        got.len(),
        up.len()
    );
    assert!(d
        .cev
        .iter()
        .any(|e| matches!(e, ClientEvent::Writable { .. })));
    // The download: the server's writes stop while the client does not read.
    d.s.respond(
        d.now,
        sid,
        http::Response::new(()),
        ResponseBody::Length(down.len() as u64),
    )
    .unwrap();
    let mut off = 0;
    for _ in 0..1000 {
        let n = d.s.write_body(d.now, sid, &down[off..]).unwrap();
        off += n;
        d.step();
        if n == 0 {
            break;
        }
    }
    assert!(
        off < down.len(),
        "the client's windows did not stop the server"
    );
    let mut body = Vec::new();
    let mut ended = false;
    for _ in 0..100_000 {
        loop {
            match d.c.read_body(d.now, id, &mut buf) {
                BodyRead::Data(n) => body.extend_from_slice(&buf[..n]),
                BodyRead::End => {
                    ended = true;
                    break;
                }
                BodyRead::Pending => break,
            }
        }
        if off < down.len() {
            off += d.s.write_body(d.now, sid, &down[off..]).unwrap();
            if off == down.len() {
                d.s.finish_body(d.now, sid).unwrap();
            }
        }
        d.step();
        if ended {
            break;
        }
    }
    assert!(body == down, "download differs ({} bytes)", body.len());
    assert!(ended, "the body never ended");
    // Forgotten once ended: never `End` twice, never data.
    assert_eq!(d.c.read_body(d.now, id, &mut buf), BodyRead::Pending);
    assert_eq!(d.responses().len(), 1);
}

#[test]
fn many_concurrent_requests_respect_max_concurrent_streams() {
    let mut d = Duo::new(4);
    let mut ids = Vec::new();
    // The server's SETTINGS arrived with the first step: the limit is 4, and the codec takes
    // no fifth request (h2 would queue it behind the four).
    while d.c.can_send_request() && ids.len() < 50 {
        let id =
            d.c.send_request(d.now, get("/x"), RequestBody::Empty)
                .unwrap();
        ids.push(id);
        d.step();
    }
    assert_eq!(ids.len(), 4, "requests opened against a limit of 4");
    let mut done = 0;
    let mut total = ids.len();
    for _ in 0..1000 {
        for (sid, head) in d.requests() {
            let body = head.uri().to_string();
            d.s.respond(
                d.now,
                sid,
                http::Response::new(()),
                ResponseBody::Complete(body.as_bytes()),
            )
            .unwrap();
        }
        d.step();
        for (id, _) in d.responses() {
            assert_eq!(d.read_all(id), b"/x");
            done += 1;
        }
        while total < 40 && d.c.can_send_request() {
            d.c.send_request(d.now, get("/x"), RequestBody::Empty)
                .unwrap();
            total += 1;
        }
        d.step();
        if done == 40 {
            break;
        }
    }
    assert_eq!(done, 40);
    assert!(d.c.is_reusable());
}

#[test]
fn a_stream_the_server_resets_fails_alone() {
    let mut d = Duo::new(100);
    let a =
        d.c.send_request(d.now, get("/a"), RequestBody::Empty)
            .unwrap();
    let b =
        d.c.send_request(d.now, get("/b"), RequestBody::Empty)
            .unwrap();
    d.step();
    let reqs = d.requests();
    assert_eq!(reqs.len(), 2);
    d.s.abort(d.now, reqs[0].0);
    d.s.respond(
        d.now,
        reqs[1].0,
        http::Response::new(()),
        ResponseBody::Complete(b"b"),
    )
    .unwrap();
    d.step();
    assert!(d.cev.iter().any(|e| matches!(
        e,
        ClientEvent::Error { id: Some(i), error: ClientError::Reset(2) } if *i == a
    )));
    assert_eq!(d.read_all(b), b"b");
    assert!(d.c.can_send_request());
}

#[test]
fn response_timeout_fails_the_request_not_the_connection() {
    let mut d = Duo::new(100);
    let id =
        d.c.send_request(d.now, get("/slow"), RequestBody::Empty)
            .unwrap();
    d.step();
    let at = d.c.poll_timeout().expect("a response timer");
    assert_eq!(at, d.now + Config::default().response_timeout);
    d.now = at;
    d.c.handle_timeout(d.now);
    d.step();
    assert!(d.cev.iter().any(|e| matches!(
        e,
        ClientEvent::Error { id: Some(i), error: ClientError::ResponseTimeout } if *i == id
    )));
    // The server saw the stream cancelled; the connection still carries requests.
    assert!(d.sev.iter().any(|e| matches!(e, Event::Reset { .. })));
    assert!(d.c.can_send_request());
    assert!(!d.c.is_closed());
}

#[test]
fn output_never_taken_fails_the_connection_at_write_timeout() {
    let now = Instant::now();
    let mut c = ClientConn::new(Arc::new(Config::default()), now, true);
    let id = c.send_request(now, get("/"), RequestBody::Empty).unwrap();
    assert!(!c.poll_transmit().is_empty());
    let at = c.poll_timeout().unwrap();
    assert_eq!(at, now + Config::default().write_timeout);
    c.handle_timeout(at);
    let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        matches!(
            events[..],
            [ClientEvent::Error { id: Some(i), error: ClientError::WriteTimeout }, ClientEvent::Closed] if i == id
        ),
        "{events:?}"
    );
    assert!(c.poll_transmit().is_empty());
}

// ---- a hand-written server ----

const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const HEADERS: u8 = 1;
const DATA: u8 = 0;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A client whose preface was taken, and the server's (empty) SETTINGS plus an ACK fed.
fn raw_client(now: Instant) -> ClientConn {
    let mut c = ClientConn::new(Arc::new(Config::default()), now, false);
    let n = c.poll_transmit().len();
    assert!(c
        .poll_transmit()
        .starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    c.handle_transmitted(now, n);
    let mut input = frame(SETTINGS, 0, 0, &[]);
    input.extend(frame(SETTINGS, 1, 0, &[]));
    assert_eq!(c.handle_input(now, &input), input.len());
    c
}

fn drain(c: &mut ClientConn, now: Instant) -> Vec<ClientEvent> {
    let n = c.poll_transmit().len();
    c.handle_transmitted(now, n);
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn goaway_makes_requests_beyond_its_last_stream_retryable() {
    let now = Instant::now();
    let mut c = raw_client(now);
    let ids: Vec<RequestId> = (0..3)
        .map(|_| c.send_request(now, get("/"), RequestBody::Empty).unwrap())
        .collect();
    drain(&mut c, now);
    // Streams 1, 3 and 5 are open; the server will process stream 1 only.
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    c.handle_input(now, &frame(GOAWAY, 0, 0, &goaway));
    let events = drain(&mut c, now);
    for id in &ids[1..] {
        let e = events
            .iter()
            .find_map(|e| match e {
                ClientEvent::Error { id: Some(i), error } if i == id => Some(*error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no error for {id:?}: {events:?}"));
        assert_eq!(e, ClientError::NotProcessed);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("safe to retry"), "{e}");
    }
    assert!(
        !c.can_send_request(),
        "a GOAWAY connection took a new request"
    );
    assert_eq!(
        c.send_request(now, get("/"), RequestBody::Empty),
        Err(UsageError::NotAccepting)
    );
    // Stream 1 is still answered: `:status: 200` is HPACK static index 8 (0x88).
    c.handle_input(now, &frame(HEADERS, END_HEADERS, 1, &[0x88]));
    let events1 = drain(&mut c, now);
    c.handle_input(now, &frame(DATA, END_STREAM, 1, b"ok"));
    let mut events = drain(&mut c, now);
    events.extend(events1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Response { id, .. } if *id == ids[0])),
        "{events:?}"
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        c.read_body(now, ids[0], &mut buf),
        BodyRead::Data(2),
        "{events:?}"
    );
    assert_eq!(&buf[..2], b"ok");
    assert_eq!(c.read_body(now, ids[0], &mut buf), BodyRead::End);
    // Nothing is left and nothing new may come: the connection closes by itself.
    let events = drain(&mut c, now);
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Closed)) || c.is_closed(),
        "{events:?}"
    );
}

/// Feeds `input` after the handshake with two requests in flight; returns the events.
fn malformed(input: &[u8]) -> (ClientConn, Vec<ClientEvent>, Vec<RequestId>) {
    let now = Instant::now();
    let mut c = raw_client(now);
    let ids = vec![
        c.send_request(now, get("/"), RequestBody::Empty).unwrap(),
        c.send_request(now, get("/"), RequestBody::Empty).unwrap(),
    ];
    drain(&mut c, now);
    c.handle_input(now, input);
    let mut events = drain(&mut c, now);
    c.handle_eof(now);
    events.extend(drain(&mut c, now));
    (c, events, ids)
}

#[test]
fn malformed_server_frames_fail_every_request_clearly() {
    let mut big = frame(DATA, 0, 1, &vec![0u8; 20_000]);
    big[0] = 0; // the length field says 20,000; max frame size is 16,384
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ("DATA on stream 0", frame(DATA, 0, 0, b"x")),
        ("oversized frame", big),
        (
            "HEADERS with a bad block",
            frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]),
        ),
        (
            "SETTINGS with a bad length",
            frame(SETTINGS, 0, 0, &[0, 1, 0]),
        ),
    ];
    for (what, input) in cases {
        let (c, events, ids) = malformed(&input);
        for id in &ids {
            let error = events.iter().find_map(|e| match e {
                ClientEvent::Error { id: Some(i), error } if i == id => Some(*error),
                _ => None,
            });
            match error {
                Some(ClientError::Protocol(_) | ClientError::Malformed(_)) => {}
                other => panic!("{what}: request {id:?} got {other:?}: {events:?}"),
            }
        }
        assert!(c.is_closed(), "{what}: connection not closed: {events:?}");
        assert!(
            matches!(events.last(), Some(ClientEvent::Closed)),
            "{what}: {events:?}"
        );
    }
}

#[test]
fn server_eof_before_a_response_is_closed_before_response() {
    let (c, events, ids) = malformed(&[]);
    for id in &ids {
        assert!(
            events.iter().any(|e| matches!(
                e,
                ClientEvent::Error { id: Some(i), error: ClientError::ClosedBeforeResponse } if i == id
            )),
            "{events:?}"
        );
    }
    assert!(c.is_closed());
}

#[test]
fn response_body_over_max_body_size_resets_the_stream() {
    let now = Instant::now();
    let config = Config {
        max_body_size: Some(4),
        ..Config::default()
    };
    let mut d = Duo::new(100);
    d.c = ClientConn::new(Arc::new(config), now, true);
    d.s = ServerConn::new(server_config(100), now);
    d.step();
    let id =
        d.c.send_request(d.now, get("/"), RequestBody::Empty)
            .unwrap();
    d.step();
    let (sid, _) = d.requests().pop().unwrap();
    d.s.respond(d.now, sid, http::Response::new(()), ResponseBody::Chunked)
        .unwrap();
    d.s.write_body(d.now, sid, b"0123456789").unwrap();
    d.step();
    assert!(
        d.cev.iter().any(|e| matches!(
            e,
            ClientEvent::Error { id: Some(i), error: ClientError::BodyTooLarge } if *i == id
        )),
        "{:?}",
        d.cev
    );
    assert!(d.c.can_send_request());
    let _ = Duration::ZERO;
}

#[test]
fn shutdown_of_an_idle_connection_sends_goaway_and_closes() {
    let now = Instant::now();
    let mut c = raw_client(now);
    let id = c.send_request(now, get("/"), RequestBody::Empty).unwrap();
    drain(&mut c, now);
    c.shutdown(now);
    assert!(!c.can_send_request());
    // The request in flight still gets its answer; then GOAWAY and Closed.
    c.handle_input(now, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]));
    let events = drain(&mut c, now);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Response { id: i, .. } if *i == id)),
        "{events:?}"
    );
    let mut buf = [0u8; 8];
    assert_eq!(c.read_body(now, id, &mut buf), BodyRead::End);
    let out = c.poll_transmit().to_vec();
    let goaway = out
        .windows(5)
        .any(|w| w[3] == GOAWAY && w[..3] == [0, 0, 8]);
    assert!(goaway, "no GOAWAY in {out:?}");
    let n = out.len();
    c.handle_transmitted(now, n);
    let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        c.is_closed() || events.iter().any(|e| matches!(e, ClientEvent::Closed)),
        "{events:?}"
    );
}

#[test]
fn a_stalled_body_and_a_shut_window_fail_their_request_alone() {
    let now = Instant::now();
    let mut c = raw_client(now);
    // Request 1: the head comes, then nothing (read timeout).
    let slow = c
        .send_request(now, get("/slow"), RequestBody::Empty)
        .unwrap();
    // Request 2: a body the server's window never lets out past 65,535 bytes (write timeout).
    let req = http::Request::post("/up")
        .header("host", "example.test")
        .body(())
        .unwrap();
    let up = c
        .send_request(now, req, RequestBody::Length(1 << 20))
        .unwrap();
    drain(&mut c, now);
    c.handle_input(now, &frame(HEADERS, END_HEADERS, 1, &[0x88]));
    let events = drain(&mut c, now);
    assert!(events
        .iter()
        .any(|e| matches!(e, ClientEvent::Response { id, .. } if *id == slow)));
    let chunk = vec![0u8; 16 * 1024];
    let mut sent = 0;
    loop {
        let n = c.write_body(now, up, &chunk).unwrap();
        drain(&mut c, now);
        if n == 0 {
            break;
        }
        sent += n;
    }
    assert_eq!(sent, 65_535, "the initial stream window");
    let config = Config::default();
    let first = config.read_timeout.min(config.write_timeout);
    assert_eq!(c.poll_timeout(), Some(now + first));
    let at = now + config.read_timeout.max(config.write_timeout);
    c.handle_timeout(at);
    let out = c.poll_transmit().to_vec();
    for stream in [1u32, 3] {
        let rst = frame(3, 0, stream, &8u32.to_be_bytes());
        assert!(
            out.windows(rst.len()).any(|w| w == rst),
            "no RST_STREAM CANCEL on stream {stream}: {out:?}"
        );
    }
    let events = drain(&mut c, at);
    for (id, want) in [
        (slow, ClientError::ReadTimeout),
        (up, ClientError::WriteTimeout),
    ] {
        assert!(
            events.iter().any(
                |e| matches!(e, ClientEvent::Error { id: Some(i), error } if *i == id && *error == want)
            ),
            "{id:?}: {events:?}"
        );
    }
    // The connection stays.
    assert!(!c.is_closed());
    assert!(c.can_send_request());
    assert_eq!(c.poll_timeout(), None);
}

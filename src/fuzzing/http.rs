//! Harnesses of the HTTP/1.1 codecs: the request head parser, the chunked decoder, the server
//! codec on a whole stream, the client codec on a response stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::body::{BodyKind, Decoder};
use crate::http::client::{ClientConn, RequestBody};
use crate::http::h2::{ServerConn as H2Conn, PREFACE};
use crate::http::head::{self, HeadScan};
use crate::http::{BodyRead, Config, Error, Event, ResponseBody, ServerConn};

/// Steps of an input split, from one seed byte: 1 to 23 bytes, varying.
pub(super) struct Steps(usize);

impl Steps {
    pub(super) fn new(seed: u8) -> Steps {
        Steps(usize::from(seed % 17) + 1)
    }

    pub(super) fn next(&mut self) -> usize {
        let s = self.0;
        self.0 = self.0 * 7 % 23 + 1;
        s
    }
}

/// How a head scan ended: the head's length, more input wanted, or the status of the error.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Head(usize),
    Partial,
    Failed(u16),
}

fn scan_whole(input: &[u8], config: &Config) -> Scan {
    match HeadScan::default().scan(input, config) {
        Ok(Some(n)) => Scan::Head(n),
        Ok(None) => Scan::Partial,
        Err(e) => Scan::Failed(e.status().as_u16()),
    }
}

fn scan_split(input: &[u8], config: &Config, steps: &mut Steps) -> Scan {
    let mut scan = HeadScan::default();
    let mut len = 0;
    while len < input.len() {
        len = (len + steps.next()).min(input.len());
        match scan.scan(&input[..len], config) {
            Ok(Some(n)) => return Scan::Head(n),
            Ok(None) => {}
            Err(e) => return Scan::Failed(e.status().as_u16()),
        }
    }
    Scan::Partial
}

/// The request head scanner and parser, on their own. The first byte picks the split steps and
/// the header-slot limit (below, at and above the parser's stack slots); the rest is the input.
///
/// Checks: the scan's outcome does not depend on how the input arrived; a head that parses
/// keeps the parser's promises (see `http::head`) and parses to the same request when
/// serialized again; errors carry one of the statuses the codec documents.
pub fn request_head(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let config = Config {
        max_head_size: 4096,
        max_request_line: 1024,
        max_headers: [100, 3, 130, 128][usize::from(seed >> 6)],
        max_body_size: Some(1 << 20),
        ..Config::default()
    };
    let whole = scan_whole(input, &config);
    let split = scan_split(input, &config, &mut Steps::new(seed));
    assert_eq!(whole, split, "the head scan depends on the input split");
    let Scan::Head(n) = whole else {
        if let Scan::Failed(status) = whole {
            assert!(
                [400, 414, 431, 505].contains(&status),
                "scan status {status}"
            );
        }
        return;
    };
    assert!(n <= config.max_head_size && n <= input.len());
    let parsed = match head::parse(&input[..n], &config) {
        Ok(h) => h,
        Err(e) => {
            let status = e.status().as_u16();
            assert!(
                [400, 413, 431, 501].contains(&status),
                "{e}: status {status}"
            );
            return;
        }
    };
    let req = &parsed.request;
    let v11 = req.version() == ::http::Version::HTTP_11;
    assert!(v11 || req.version() == ::http::Version::HTTP_10);
    assert!(!v11 || req.headers().get_all(::http::header::HOST).iter().count() == 1);
    assert!(req.headers().get_all(::http::header::HOST).iter().count() <= 1);
    assert!(!parsed.expect_continue || v11);
    match parsed.body {
        BodyKind::Empty => {}
        BodyKind::Length(len) => assert!(len > 0 && len <= 1 << 20),
        BodyKind::Chunked => {
            assert!(v11 && !req.headers().contains_key(::http::header::CONTENT_LENGTH));
        }
    }
    if req
        .headers()
        .contains_key(::http::header::TRANSFER_ENCODING)
    {
        assert_eq!(
            parsed.body,
            BodyKind::Chunked,
            "Transfer-Encoding without chunked framing"
        );
    }

    // The head as a strict peer would forward it parses to the same request.
    let mut again = format!("{} {} {:?}\r\n", req.method(), req.uri(), req.version()).into_bytes();
    for (name, value) in req.headers() {
        again.extend_from_slice(name.as_str().as_bytes());
        again.extend_from_slice(b": ");
        again.extend_from_slice(value.as_bytes());
        again.extend_from_slice(b"\r\n");
    }
    again.extend_from_slice(b"\r\n");
    let config = Config {
        max_head_size: again.len().max(config.max_head_size),
        max_request_line: again.len().max(config.max_request_line),
        ..config
    };
    let re = head::parse(&again, &config).unwrap_or_else(|e| {
        panic!(
            "{e} on the serialized head {:?}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(re.request.method(), req.method());
    assert_eq!(re.request.uri(), req.uri());
    assert_eq!(re.request.version(), req.version());
    assert_eq!(re.request.headers(), req.headers());
    assert_eq!(re.body, parsed.body);
    assert_eq!(re.keep_alive, parsed.keep_alive);
    assert_eq!(re.expect_continue, parsed.expect_continue);
}

/// How a chunked decode ended.
#[derive(Debug, PartialEq, Eq)]
enum Decode {
    /// The body ended after this many input bytes.
    Done(usize),
    /// Every input byte was consumed and the body wants more.
    Partial,
    /// A framing error with this status.
    Failed(u16),
}

/// Decodes `input` as a chunked body, `steps` deciding both the input pieces and the payload
/// budget of each call (`None`: all at once, unlimited).
fn decode_chunked(input: &[u8], mut steps: Option<&mut Steps>) -> (Vec<u8>, Decode) {
    let mut decoder = Decoder::new(BodyKind::Chunked, Some(64 * 1024), 512).expect("a decoder");
    let mut payload = Vec::new();
    let mut at = 0;
    let mut avail = 0;
    // Each pass consumes input, reaches the end of the input, or gets a payload budget of 7+.
    for _ in 0..4 * input.len() + 8 {
        let (max_out, more) = match steps.as_mut() {
            Some(s) => (s.next() % 9, s.next()),
            None => (usize::MAX, input.len()),
        };
        avail = (avail + more).min(input.len());
        let before = payload.len();
        let mut sink = |b: &[u8]| payload.extend_from_slice(b);
        match decoder.decode(&input[at..avail], max_out, &mut sink) {
            Ok(d) => {
                assert!(d.consumed <= avail - at);
                assert!(payload.len() - before <= max_out);
                at += d.consumed;
                if d.done {
                    return (payload, Decode::Done(at));
                }
                if at == input.len() {
                    return (payload, Decode::Partial);
                }
            }
            Err(e) => return (payload, Decode::Failed(e.status().as_u16())),
        }
    }
    unreachable!("the chunked decoder stopped making progress at byte {at}");
}

/// A chunked request body from arbitrary bytes. First the decoder alone: the input decoded in
/// one call and in pieces with small payload budgets gives the same payload and the same end
/// (the decoder is resumable at any byte). Then the server codec reads the same bytes behind a
/// valid head, in small reads, and hands out at most that payload.
pub fn chunked_body(data: &[u8]) {
    let (seed, input) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let (whole, end) = decode_chunked(input, None);
    let (split, split_end) = decode_chunked(input, Some(&mut Steps::new(seed)));
    assert_eq!(
        end, split_end,
        "the chunked decoder's outcome depends on the split"
    );
    assert!(whole == split, "the decoded payload depends on the split");
    assert!(whole.len() <= input.len());
    if let Decode::Failed(status) = end {
        assert!([400, 413, 431].contains(&status), "chunked status {status}");
    }

    let now = Instant::now();
    let config = Arc::new(Config {
        max_body_size: Some(1 << 20),
        body_buffer_size: 256,
        ..Config::default()
    });
    let mut conn = ServerConn::new(config, now);
    let head = b"POST /u HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(conn.handle_input(now, head), head.len());
    let Some(Event::Request { id, .. }) = conn.poll_event() else {
        panic!("head not parsed")
    };
    let mut rest = input;
    let mut buf = [0u8; 7];
    let mut total = 0usize;
    for _ in 0..2 * input.len() + 4 {
        let n = conn.handle_input(now, rest);
        rest = &rest[n..];
        let mut progressed = n > 0;
        while let BodyRead::Data(k) = conn.read_body(now, id, &mut buf) {
            total += k;
            progressed = true;
        }
        while conn.poll_event().is_some() {}
        if !progressed || rest.is_empty() {
            break;
        }
    }
    assert!(total <= whole.len().max(input.len()));
}

/// The whole server codec fed an arbitrary byte stream, split at arbitrary points (the first
/// byte seeds the split sizes), answering every request and every error, then EOF and the
/// timers. Checks that input is never over-consumed and that the loop ends.
pub fn server_stream(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let config = Arc::new(Config {
        max_head_size: 2048,
        max_request_line: 1024,
        body_buffer_size: 1024,
        max_body_size: Some(4096),
        ..Config::default()
    });
    let mut now = Instant::now();
    let mut conn = ServerConn::new(config, now);
    let mut rest = input;
    let mut steps = Steps::new(seed);
    let mut buf = [0u8; 512];
    let mut pending = Vec::new();
    for _ in 0..100_000 {
        if !rest.is_empty() && conn.wants_read() {
            let take = steps.next().min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        if !pending.is_empty() {
            let n = conn.handle_input(now, &pending);
            assert!(n <= pending.len());
            pending.drain(..n);
        }
        while let Some(ev) = conn.poll_event() {
            answer(&mut conn, now, ev, &mut buf);
        }
        let out = conn.poll_transmit().len();
        if out > 0 {
            conn.handle_transmitted(now, out);
        }
        if conn.is_closed() {
            return;
        }
        if rest.is_empty() && pending.is_empty() {
            conn.handle_eof(now);
            now += Duration::from_secs(120);
            conn.handle_timeout(now);
            while conn.poll_event().is_some() {}
            let out = conn.poll_transmit().len();
            conn.handle_transmitted(now, out);
            return;
        }
        if !conn.wants_read() && out == 0 && pending.is_empty() {
            // Stuck behind backpressure with nothing to do: time moves on.
            now += Duration::from_secs(61);
            conn.handle_timeout(now);
        }
    }
    panic!(
        "the server codec did not finish a {}-byte stream",
        input.len()
    );
}

/// The HTTP/2 server codec (the `h2` crate behind paf's codec surface) fed the client preface
/// and then an arbitrary byte stream, split at arbitrary points (the first byte seeds the
/// split sizes), answering every stream, then EOF and the timers. Checks that input is never
/// over-consumed and that the loop ends.
pub fn h2_server(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let config = Arc::new(Config {
        max_head_size: 2048,
        body_buffer_size: 1024,
        max_body_size: Some(4096),
        max_concurrent_streams: 8,
        ..Config::default()
    });
    let mut now = Instant::now();
    let mut conn = H2Conn::new(config, now);
    let mut whole = PREFACE.to_vec();
    whole.extend_from_slice(input);
    let mut rest = &whole[..];
    let mut steps = Steps::new(seed);
    let mut buf = [0u8; 512];
    let mut pending = Vec::new();
    for _ in 0..100_000 {
        if !rest.is_empty() && conn.wants_read() {
            let take = steps.next().min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        if !pending.is_empty() {
            let n = conn.handle_input(now, &pending);
            assert!(n <= pending.len());
            pending.drain(..n);
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Request { id, head } => {
                    while let BodyRead::Data(_) = conn.read_body(now, id, &mut buf) {}
                    let status = if head.method() == ::http::Method::POST {
                        201
                    } else {
                        200
                    };
                    let resp = ::http::Response::builder()
                        .status(status)
                        .header("connection", "close")
                        .body(())
                        .expect("a response");
                    let _ = conn.respond(now, id, resp, ResponseBody::Complete(b"ok"));
                }
                Event::BodyReadable { id } => {
                    while let BodyRead::Data(_) = conn.read_body(now, id, &mut buf) {}
                }
                _ => {}
            }
        }
        let out = conn.poll_transmit().len();
        if out > 0 {
            conn.handle_transmitted(now, out);
        }
        if conn.is_closed() {
            return;
        }
        if rest.is_empty() && pending.is_empty() {
            conn.handle_eof(now);
            now += Duration::from_secs(120);
            conn.handle_timeout(now);
            while conn.poll_event().is_some() {}
            let out = conn.poll_transmit().len();
            conn.handle_transmitted(now, out);
            return;
        }
        if !conn.wants_read() && out == 0 && pending.is_empty() {
            now += Duration::from_secs(61);
            conn.handle_timeout(now);
        }
    }
    panic!(
        "the HTTP/2 codec did not finish a {}-byte stream",
        input.len()
    );
}

/// Answers one server event the way a simple service does: read the whole body, then `ok`.
fn answer(conn: &mut ServerConn, now: Instant, ev: Event, buf: &mut [u8]) {
    match ev {
        Event::Request { id, head } => {
            while let BodyRead::Data(_) = conn.read_body(now, id, buf) {}
            let status = if head.method() == ::http::Method::HEAD {
                204
            } else {
                200
            };
            let resp = ::http::Response::builder()
                .status(status)
                .body(())
                .expect("a response");
            let _ = conn.respond(now, id, resp, ResponseBody::Complete(b"ok"));
        }
        Event::BodyReadable { id } => while let BodyRead::Data(_) = conn.read_body(now, id, buf) {},
        Event::Error { error, .. } => {
            assert_status(&error);
            let resp = ::http::Response::builder()
                .status(error.status())
                .body(())
                .expect("a response");
            conn.respond_error(now, resp, b"error");
        }
        Event::Writable { .. } | Event::Closed | Event::Switched => {}
        Event::Reset { .. } => unreachable!("the HTTP/1.1 codec resets no exchange"),
    }
}

fn assert_status(e: &Error) {
    let status = e.status().as_u16();
    assert!(
        [400, 408, 413, 414, 431, 501, 505].contains(&status),
        "{e}: {status}"
    );
}

/// The client codec reading an arbitrary response stream to a GET then a HEAD on one connection,
/// then EOF and an expired timer. Checks that it ends and never over-consumes.
pub fn client_response(data: &[u8]) {
    let mut now = Instant::now();
    let mut conn = ClientConn::new(Arc::new(crate::http::client::Config::default()), now);
    let mut ids = Vec::new();
    for method in ["GET", "HEAD"] {
        let req = ::http::Request::builder()
            .method(method)
            .uri("http://fuzz.test/x")
            .body(())
            .expect("a request");
        if let Ok(id) = conn.send_request(now, &req, RequestBody::Empty) {
            ids.push(id);
        }
    }
    let out = conn.poll_transmit().len();
    conn.handle_transmitted(now, out);
    let mut rest = data;
    let mut buf = [0u8; 64];
    for _ in 0..2 * data.len() + 4 {
        let n = conn.handle_input(now, rest);
        assert!(n <= rest.len());
        rest = &rest[n..];
        while conn.poll_event().is_some() {}
        let mut read = false;
        for &id in &ids {
            while let BodyRead::Data(_) = conn.read_body(now, id, &mut buf) {
                read = true;
            }
        }
        if n == 0 && !read {
            break;
        }
    }
    conn.handle_eof(now);
    now += Duration::from_secs(3600);
    conn.handle_timeout(now);
    while conn.poll_event().is_some() {}
}

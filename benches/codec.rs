//! Speed of the HTTP/1.1 server codec alone (`paf::http::ServerConn`): no sockets, no loop, no
//! TLS, so a change in codec cost shows here without the noise of the network.
//!
//! ```text
//! cargo bench --bench codec            # all of them
//! cargo bench --bench codec -- parse   # a subset, by name
//! ```
//!
//! What each benchmark times (setup, such as a fresh connection, is outside the timing):
//! - `parse_head::*`: one request head in, the `Request` event out, on a fresh connection;
//!   `browser` is a typical Chrome navigation head (~600 bytes), `wrk` a minimal one.
//! - `serialize_head`: `respond` with a 12-byte body on a connection holding one parsed request,
//!   plus taking the output (`poll_transmit`).
//! - `keep_alive_exchange`: the whole per-request cycle on one long-lived connection: input,
//!   event, respond, transmit, `handle_transmitted` (what one wrk request costs the codec).
//! - `chunked_decode_1mib::*`: a 1 MiB chunked request body, in 8 KiB or 64-byte chunks, decoded
//!   and read out with `read_body`.
//! - `pipelined_100`: 100 minimal GETs in one buffer, each answered, output drained.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use paf::http::{BodyRead, Config, Event, HttpDate, ResponseBody, ServerConn};

fn main() {
    divan::main();
}

const BROWSER_HEAD: &[u8] = b"GET /assets/app.js?v=3 HTTP/1.1\r\n\
Host: paf.test\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Accept: */*\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Dest: script\r\n\
Referer: https://paf.test/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\n\
Cookie: session=4f1c2a9e8b7d6c5e; theme=dark\r\n\
If-None-Match: \"5e1f-63a7c2d1\"\r\n\r\n";

/// What wrk sends by default (no User-Agent, no Accept).
const WRK_HEAD: &[u8] = b"GET /bench HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n";

const BODY_12: &[u8] = b"Hello, paf!\n";

fn config() -> Arc<Config> {
    Arc::new(Config::default())
}

fn conn(config: &Arc<Config>, now: Instant) -> ServerConn {
    let mut c = ServerConn::new(Arc::clone(config), now);
    c.set_date(HttpDate::from_unix_secs(1_700_000_000));
    c
}

fn ok() -> http::Response<()> {
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(())
        .expect("static response head")
}

/// Answers every request event with a 12-byte body; returns how many were answered.
fn answer_all(c: &mut ServerConn, now: Instant) -> usize {
    let mut n = 0;
    while let Some(ev) = c.poll_event() {
        if let Event::Request { id, head } = ev {
            drop(head);
            c.respond(now, id, ok(), ResponseBody::Complete(BODY_12))
                .expect("respond to a fresh exchange");
            n += 1;
        }
    }
    n
}

/// Takes all pending output, as a socket with room for everything would.
fn drain(c: &mut ServerConn, now: Instant) -> usize {
    let n = c.poll_transmit().len();
    c.handle_transmitted(now, n);
    n
}

#[divan::bench_group]
mod parse_head {
    use super::*;

    fn parse(bencher: Bencher, head: &'static [u8]) {
        let config = config();
        let now = Instant::now();
        bencher
            .counter(BytesCount::of_slice(head))
            .with_inputs(|| conn(&config, now))
            .bench_local_values(|mut c| {
                let used = c.handle_input(now, black_box(head));
                assert_eq!(used, head.len());
                let ev = c.poll_event();
                assert!(matches!(ev, Some(Event::Request { .. })));
                // The connection and event are dropped outside the timing.
                (c, ev)
            });
    }

    #[divan::bench]
    fn browser(bencher: Bencher) {
        parse(bencher, BROWSER_HEAD);
    }

    #[divan::bench]
    fn wrk(bencher: Bencher) {
        parse(bencher, WRK_HEAD);
    }
}

#[divan::bench]
fn serialize_head(bencher: Bencher) {
    let config = config();
    let now = Instant::now();
    bencher
        .with_inputs(|| {
            let mut c = conn(&config, now);
            c.handle_input(now, WRK_HEAD);
            let Some(Event::Request { id, .. }) = c.poll_event() else {
                panic!("no request event");
            };
            (c, id)
        })
        .bench_local_values(|(mut c, id)| {
            c.respond(now, id, ok(), ResponseBody::Complete(black_box(BODY_12)))
                .expect("respond");
            let n = c.poll_transmit().len();
            assert!(n > BODY_12.len());
            c
        });
}

#[divan::bench]
fn keep_alive_exchange(bencher: Bencher) {
    let config = config();
    let now = Instant::now();
    let mut c = conn(&config, now);
    bencher.bench_local(|| {
        let used = c.handle_input(now, black_box(WRK_HEAD));
        debug_assert_eq!(used, WRK_HEAD.len());
        let answered = answer_all(&mut c, now);
        debug_assert_eq!(answered, 1);
        drain(&mut c, now)
    });
    assert!(!c.is_closed());
}

/// Head plus a 1 MiB chunked body cut in `chunk`-byte chunks.
fn chunked_request(chunk: usize) -> Vec<u8> {
    const TOTAL: usize = 1 << 20;
    let mut v =
        b"POST /upload HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let data = vec![b'x'; chunk];
    let mut left = TOTAL;
    while left > 0 {
        let n = left.min(chunk);
        v.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        v.extend_from_slice(&data[..n]);
        v.extend_from_slice(b"\r\n");
        left -= n;
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

#[divan::bench(args = [8192, 64])]
fn chunked_decode_1mib(bencher: Bencher, chunk: usize) {
    let config = Arc::new(Config {
        max_body_size: None,
        ..Config::default()
    });
    let input = chunked_request(chunk);
    let now = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    bencher
        .counter(BytesCount::new(1usize << 20))
        .with_inputs(|| conn(&config, now))
        .bench_local_values(|mut c| {
            let mut fed = 0;
            let mut body = 0;
            let mut id = None;
            // Bounded: every pass either consumes input or reads body bytes, else it breaks.
            loop {
                let n = c.handle_input(now, &input[fed..]);
                fed += n;
                while let Some(ev) = c.poll_event() {
                    if let Event::Request { id: i, .. } = ev {
                        id = Some(i);
                    }
                }
                let Some(i) = id else { break };
                let mut read = 0;
                let end = loop {
                    match c.read_body(now, i, &mut buf) {
                        BodyRead::Data(k) => read += k,
                        BodyRead::End => break true,
                        BodyRead::Pending => break false,
                    }
                };
                body += read;
                if end || (n == 0 && read == 0) {
                    break;
                }
            }
            assert_eq!(body, 1 << 20);
            c
        });
}

#[divan::bench]
fn pipelined_100(bencher: Bencher) {
    let config = config();
    let input = WRK_HEAD.repeat(100);
    let now = Instant::now();
    bencher
        .counter(ItemsCount::new(100usize))
        .with_inputs(|| conn(&config, now))
        .bench_local_values(|mut c| {
            let mut fed = 0;
            let mut answered = 0;
            let mut out = 0;
            // Bounded: max_pipelined caps each pass; every pass answers at least one request.
            while answered < 100 {
                fed += c.handle_input(now, &input[fed..]);
                let n = answer_all(&mut c, now);
                out += drain(&mut c, now);
                assert!(n > 0, "no progress at {answered} answered");
                answered += n;
            }
            assert_eq!(fed, input.len());
            black_box(out);
            c
        });
}

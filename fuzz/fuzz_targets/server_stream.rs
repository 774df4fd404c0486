//! The whole HTTP/1.1 server codec fed an arbitrary byte stream, split at arbitrary points (the
//! first byte seeds the split sizes), answering every request, until EOF and timeouts.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use paf::http::{BodyRead, Config, Event, ResponseBody, ServerConn};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else { return };
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
    let mut step = usize::from(seed % 17) + 1;
    let mut buf = [0u8; 512];
    let mut pending = Vec::new();
    for _ in 0..100_000 {
        if !rest.is_empty() && conn.wants_read() {
            let take = step.min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            step = step * 7 % 23 + 1;
        }
        if !pending.is_empty() {
            let n = conn.handle_input(now, &pending);
            assert!(n <= pending.len());
            pending.drain(..n);
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Request { id, head } => {
                    loop {
                        match conn.read_body(now, id, &mut buf) {
                            BodyRead::Data(_) => continue,
                            _ => break,
                        }
                    }
                    let status = if head.method() == http::Method::HEAD { 204 } else { 200 };
                    let resp = http::Response::builder().status(status).body(()).unwrap();
                    let _ = conn.respond(now, id, resp, ResponseBody::Complete(b"ok"));
                }
                Event::BodyReadable { id } => while let BodyRead::Data(_) = conn.read_body(now, id, &mut buf) {},
                Event::Error { error, .. } => {
                    let resp = http::Response::builder().status(error.status()).body(()).unwrap();
                    conn.respond_error(now, resp, b"error");
                }
                Event::Writable { .. } | Event::Closed => {}
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
            // Stuck behind backpressure with nothing to do: time moves on.
            now += Duration::from_secs(61);
            conn.handle_timeout(now);
        }
    }
});

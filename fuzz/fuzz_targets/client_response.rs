//! The client codec reading an arbitrary response stream to a GET (then a HEAD) on one
//! connection.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use paf::http::client::{ClientConfig, ClientConn, RequestBody};
use paf::http::BodyRead;

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut conn = ClientConn::new(Arc::new(ClientConfig::default()), now);
    let mut ids = Vec::new();
    for method in ["GET", "HEAD"] {
        let req = http::Request::builder()
            .method(method)
            .uri("http://fuzz.test/x")
            .body(())
            .unwrap();
        if let Ok(id) = conn.send_request(now, req, RequestBody::Empty) {
            ids.push(id);
        }
    }
    let out = conn.poll_transmit().len();
    conn.handle_transmitted(now, out);
    let mut rest = data;
    let mut buf = [0u8; 64];
    for _ in 0..100_000 {
        let n = conn.handle_input(now, rest);
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
});

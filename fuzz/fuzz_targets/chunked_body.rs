//! A chunked request body (sizes, extensions, trailers, framing) from arbitrary bytes behind a
//! valid head, read in small pieces.
#![no_main]
use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use paf::http::{BodyRead, Config, Event, ServerConn};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = Arc::new(Config {
        max_body_size: Some(1 << 20),
        body_buffer_size: 256,
        ..Config::default()
    });
    let mut conn = ServerConn::new(config, now);
    let head = b"POST /u HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(conn.handle_input(now, head), head.len());
    let Some(Event::Request { id, .. }) = conn.poll_event() else { panic!("head not parsed") };
    let mut rest = data;
    let mut buf = [0u8; 7];
    let mut total = 0usize;
    for _ in 0..1_000_000 {
        let n = conn.handle_input(now, rest);
        rest = &rest[n..];
        let mut progressed = n > 0;
        loop {
            match conn.read_body(now, id, &mut buf) {
                BodyRead::Data(k) => {
                    total += k;
                    progressed = true;
                }
                BodyRead::End | BodyRead::Pending => break,
            }
        }
        while conn.poll_event().is_some() {}
        if !progressed || rest.is_empty() {
            break;
        }
    }
    assert!(total <= data.len());
});

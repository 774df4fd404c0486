//! Harness of the HTTP/2 client codec: three requests in flight (a GET, a POST given whole, a
//! POST streamed as the server's windows allow) while an arbitrary server byte stream arrives,
//! split at arbitrary points; then the end of the stream and every timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::Steps;
use crate::http::client::{ClientEvent, Config, RequestBody, RequestId};
use crate::http::h2::ClientConn;
use crate::http::BodyRead;

/// The streamed request body's length.
const STREAMED: u64 = 3000;

/// The HTTP/2 client codec on an arbitrary server stream. It must not panic, must never hand out
/// more body bytes than `max_body_size`, must report each request's outcome at most once, and
/// must be closed once the stream ended and the timers fired.
pub fn h2_client(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let config = Arc::new(Config {
        max_head_size: 2048,
        body_buffer_size: 1024,
        max_body_size: Some(4096),
        request_buffer_size: 1024,
        ..Config::default()
    });
    let mut now = Instant::now();
    let mut conn = ClientConn::new(config, now, seed & 1 == 1);
    let get = ::http::Request::get("/a")
        .header("host", "fuzz.test")
        .body(())
        .expect("a request");
    let post = ::http::Request::post("/b")
        .header("host", "fuzz.test")
        .header("connection", "keep-alive, x-hop")
        .body(())
        .expect("a request");
    let mut ids: Vec<RequestId> = Vec::new();
    ids.push(
        conn.send_request(now, get, RequestBody::Empty)
            .expect("sent"),
    );
    ids.push(
        conn.send_request(now, post.clone(), RequestBody::Complete(b"hello"))
            .expect("sent"),
    );
    let streamed = conn
        .send_request(now, post, RequestBody::Length(STREAMED))
        .expect("sent");
    ids.push(streamed);
    let mut written = 0u64;
    let mut outcomes = [0u32; 3];
    let mut got = [0u64; 3];
    let mut rest = input;
    let mut steps = Steps::new(seed);
    let mut pending = Vec::new();
    let mut buf = [0u8; 700];
    let body = [b'x'; 512];
    for _ in 0..100_000 {
        let out = conn.poll_transmit().len();
        if out > 0 {
            conn.handle_transmitted(now, out);
        }
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
        if written < STREAMED {
            let n = (STREAMED - written).min(body.len() as u64) as usize;
            if let Ok(k) = conn.write_body(now, streamed, &body[..n]) {
                assert!(k <= n);
                written += k as u64;
                if written == STREAMED {
                    let _ = conn.finish_body(now, streamed);
                }
            }
        }
        while let Some(ev) = conn.poll_event() {
            let which = |id: RequestId| ids.iter().position(|x| *x == id).expect("a known id");
            match ev {
                ClientEvent::Response { id, .. } | ClientEvent::BodyReadable { id } => {
                    let i = which(id);
                    loop {
                        match conn.read_body(now, id, &mut buf) {
                            BodyRead::Data(n) => {
                                got[i] += n as u64;
                                assert!(got[i] <= 4096, "more body than max_body_size");
                            }
                            BodyRead::End => {
                                outcomes[i] += 1;
                                break;
                            }
                            BodyRead::Pending => break,
                        }
                    }
                }
                ClientEvent::Error { id: Some(id), .. } | ClientEvent::Aborted { id } => {
                    outcomes[which(id)] += 1;
                }
                ClientEvent::Error { id: None, .. }
                | ClientEvent::Continue { .. }
                | ClientEvent::Writable { .. }
                | ClientEvent::Closed => {}
            }
        }
        assert!(
            outcomes.iter().all(|n| *n <= 1),
            "an outcome twice: {outcomes:?}"
        );
        if conn.is_closed() {
            return;
        }
        if rest.is_empty() && pending.is_empty() {
            conn.handle_eof(now);
            now += Duration::from_secs(120);
            conn.handle_timeout(now);
            let out = conn.poll_transmit().len();
            conn.handle_transmitted(now, out);
            while let Some(ev) = conn.poll_event() {
                if let ClientEvent::Error { id: Some(id), .. } | ClientEvent::Aborted { id } = ev {
                    let i = ids.iter().position(|x| *x == id).expect("a known id");
                    outcomes[i] += 1;
                }
            }
            assert!(
                outcomes.iter().all(|n| *n <= 1),
                "an outcome twice: {outcomes:?}"
            );
            assert!(conn.is_closed(), "not closed after the end of the stream");
            return;
        }
        if !conn.wants_read() && pending.is_empty() {
            now += Duration::from_secs(61);
            conn.handle_timeout(now);
        }
    }
    panic!(
        "the HTTP/2 client codec did not finish a {}-byte stream",
        input.len()
    );
}

//! The small built-in site `paf run` serves until the appliance is config-driven.
//!
//! Routes: `GET`/`HEAD /` → an HTML page; other paths → 404; other methods on `/` → 405 with
//! `Allow: GET, HEAD`. With [`Options::test_routes`] (the hidden `paf run --test-routes`, used
//! by the end-to-end tests and benchmarks) also:
//! - `GET /bench` → the fixed 12-byte body `hello world\n`;
//! - `POST|PUT /echo` → the request body back (up to [`ECHO_LIMIT`], else 413);
//! - `POST|PUT /count` → the body streamed and counted: `bytes=N fnv64=HEX\n`;
//! - `GET /blob?size=N` → N bytes of the pattern `i % 251` with `Content-Length`, streamed.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use ::http::header::{ALLOW, CONTENT_TYPE};
use ::http::{HeaderValue, Method, Response, StatusCode};

use super::reqd::{plain_head, BodyEnd, BodyWriter, Reqd};

/// The page served on `/`.
pub const PAGE: &str =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>paf</title></head>\n\
<body><h1>paf</h1><p>HTTP served by paf on its own userspace TCP/IP stack.</p></body></html>\n";

/// The body of `GET /bench`.
pub const BENCH_BODY: &[u8] = b"hello world\n";

/// Largest body `/echo` sends back.
pub const ECHO_LIMIT: usize = 16 * 1024 * 1024;

/// What the built-in site serves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also serve the test routes (see the module docs).
    pub test_routes: bool,
}

/// The request handler of the built-in site.
pub fn handler(options: Options) -> impl FnMut(SocketAddr, Reqd) + 'static {
    move |_peer, reqd| route(options, reqd)
}

fn route(options: Options, reqd: Reqd) {
    let req = reqd.request();
    let path = req.uri().path();
    let method = req.method().clone();
    let r = match (path, options.test_routes) {
        ("/", _) if method == Method::GET || method == Method::HEAD => {
            let mut head = Response::new(());
            head.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            reqd.respond_with_bytes(head, PAGE)
        }
        ("/", _) => {
            let mut head = plain_head(StatusCode::METHOD_NOT_ALLOWED);
            head.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            reqd.respond_with_bytes(head, "405 Method Not Allowed\n")
        }
        ("/bench", true) if method == Method::GET => {
            reqd.respond_with_bytes(plain_head(StatusCode::OK), BENCH_BODY)
        }
        ("/echo", true) if method == Method::POST || method == Method::PUT => {
            echo(reqd);
            Ok(())
        }
        ("/count", true) if method == Method::POST || method == Method::PUT => {
            count(reqd, Rc::new(Cell::new((0, FNV_OFFSET))));
            Ok(())
        }
        ("/blob", true) if method == Method::GET || method == Method::HEAD => blob(&reqd),
        _ => reqd.respond_with_bytes(plain_head(StatusCode::NOT_FOUND), "404 Not Found\n"),
    };
    if let Err(e) = r {
        log::debug!("builtin: cannot respond: {e}");
    }
}

fn echo(reqd: Reqd) {
    let r = reqd.clone();
    reqd.read_to_end(ECHO_LIMIT, move |body| {
        let res = match body {
            Ok(body) => r.respond_with_bytes(plain_head(StatusCode::OK), body),
            Err(super::BodyError::TooLarge) => r.respond_with_bytes(
                plain_head(StatusCode::PAYLOAD_TOO_LARGE),
                "413 Payload Too Large\n",
            ),
            Err(super::BodyError::Aborted) => Ok(()),
        };
        if let Err(e) = res {
            log::debug!("builtin echo: {e}");
        }
    });
}

/// FNV-1a, 64 bit: a simple stream hash the tests can recompute.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Feeds `data` into an FNV-1a state.
pub fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn count(reqd: Reqd, st: Rc<Cell<(u64, u64)>>) {
    let (r1, r2, st2) = (reqd.clone(), reqd.clone(), st.clone());
    reqd.schedule_read(
        move |data| {
            let (n, h) = st.get();
            st.set((n + data.len() as u64, fnv1a(h, data)));
            count(r1, st);
        },
        move |end| {
            if end == BodyEnd::Complete {
                let (n, h) = st2.get();
                let body = format!("bytes={n} fnv64={h:016x}\n");
                let _ = r2.respond_with_bytes(plain_head(StatusCode::OK), body);
            }
        },
    );
}

/// The byte at offset `i` of `/blob`.
pub fn blob_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn blob(reqd: &Reqd) -> Result<(), super::ReqdError> {
    let size = reqd
        .request()
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("size=")))
        .and_then(|v| v.parse::<u64>().ok());
    let Some(size) = size else {
        return reqd.respond_with_bytes(
            plain_head(StatusCode::BAD_REQUEST),
            "400 Bad Request: /blob?size=N\n",
        );
    };
    let mut head = Response::new(());
    head.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let w = reqd.respond_with_streaming(head, Some(size))?;
    stream_blob(w, 0, size);
    Ok(())
}

/// Writes pattern bytes from `at` until `size` or until the writer is full, then waits.
fn stream_blob(mut w: BodyWriter, mut at: u64, size: u64) {
    let mut buf = [0u8; 16 * 1024];
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = blob_byte(at + k as u64);
        }
        match w.write(&buf[..n]) {
            Ok(0) => break,
            Ok(k) => at += k as u64,
            Err(_) => return,
        }
    }
    if at == size {
        let _ = w.close();
        return;
    }
    w.on_writable(move |w| stream_blob(w, at, size));
}

//! The small built-in site `paf run` serves until the appliance is config-driven.
//!
//! Routes: `GET`/`HEAD /` → an HTML page; other paths → 404; other methods on `/` → 405 with
//! `Allow: GET, HEAD`. With [`Options::test_routes`] (the hidden `paf run --test-routes`, used
//! by the end-to-end tests and benchmarks) also:
//! - `GET /bench` → the fixed 12-byte body `hello world\n`;
//! - `POST|PUT /echo` → the request body back (up to [`ECHO_LIMIT`], else 413);
//! - `POST|PUT /count` → the body streamed, counted and hashed: `bytes=N hash=HEX\n` (hash:
//!   [`StreamHash`]);
//! - `POST|PUT /drop` → the body read and dropped, only counted: `bytes=N\n` (what the
//!   benchmarks' uploads go to, as nginx's `/drop` reads and drops);
//! - `GET /blob?size=N` → N bytes of the pattern `i % 251` ([`blob_byte`]) with
//!   `Content-Length`, written from a precomputed pattern (whole when small, streamed else).

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

#[doc(hidden)] // shared by the `paf` binary and paf's tests; not part of the API
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
            count(reqd, Rc::new(Cell::new(StreamHash::new())));
            Ok(())
        }
        ("/drop", true) if method == Method::POST || method == Method::PUT => {
            drop_body(reqd, Rc::new(Cell::new(0)));
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

#[doc(hidden)] // shared by the `paf` binary and paf's tests; not part of the API
/// A fast, non-cryptographic 64-bit hash of a byte stream, independent of how the stream is
/// split into chunks (what `/count` answers, and what tests recompute).
///
/// Four independent lanes take the four 8-byte words of each 32-byte block, so the multiplies
/// overlap instead of waiting on each other (one lane cost an upload about a quarter of paf's
/// CPU); the lanes are folded together, with the length, at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHash {
    lanes: [u64; 4],
    tail: [u8; 32],
    pending: usize,
    len: u64,
}

impl Default for StreamHash {
    fn default() -> StreamHash {
        StreamHash::new()
    }
}

/// The lanes' odd multiplier (the golden ratio's, as in Fibonacci hashing).
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(MUL).rotate_left(29)
}

impl StreamHash {
    /// The hash of nothing yet.
    pub fn new() -> StreamHash {
        StreamHash {
            // Distinct seeds, so that the same word in two lanes counts differently.
            lanes: [1, 2, 3, 4].map(|i: u64| i.wrapping_mul(0x632b_e59b_d9b4_e019)),
            tail: [0; 32],
            pending: 0,
            len: 0,
        }
    }

    fn block(&mut self, b: &[u8]) {
        for (lane, w) in self.lanes.iter_mut().zip(b.chunks_exact(8)) {
            *lane = mix(*lane, u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.pending > 0 {
            let k = (32 - self.pending).min(data.len());
            self.tail[self.pending..self.pending + k].copy_from_slice(&data[..k]);
            self.pending += k;
            data = &data[k..];
            if self.pending < 32 {
                return;
            }
            let tail = self.tail;
            self.block(&tail);
            self.pending = 0;
        }
        let mut blocks = data.chunks_exact(32);
        for b in &mut blocks {
            self.block(b);
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
    }

    /// The hash of the bytes fed so far.
    pub fn finish(&self) -> u64 {
        let mut s = *self;
        // The last partial block: its words (the last one zero-padded) into their lanes.
        s.tail[s.pending..].fill(0);
        let words = s.pending.div_ceil(8);
        for (i, w) in s.tail.chunks_exact(8).take(words).enumerate() {
            s.lanes[i] = mix(
                s.lanes[i],
                u64::from_le_bytes(w.try_into().expect("8 bytes")),
            );
        }
        let h = s.lanes.iter().fold(s.len, |h, &lane| mix(h, lane));
        // splitmix64's finalizer, so that every input bit reaches every output bit.
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn count(reqd: Reqd, st: Rc<Cell<StreamHash>>) {
    let (r1, r2, st2) = (reqd.clone(), reqd.clone(), st.clone());
    reqd.schedule_read(
        move |data| {
            let mut h = st.get();
            h.update(data);
            st.set(h);
            count(r1, st);
        },
        move |end| {
            if end == BodyEnd::Complete {
                let h = st2.get();
                let body = format!("bytes={} hash={:016x}\n", h.len, h.finish());
                let _ = r2.respond_with_bytes(plain_head(StatusCode::OK), body);
            }
        },
    );
}

/// `/drop`: reads the body, keeps only its length.
fn drop_body(reqd: Reqd, len: Rc<Cell<u64>>) {
    let (r1, r2, len2) = (reqd.clone(), reqd.clone(), len.clone());
    reqd.schedule_read(
        move |data| {
            len.set(len.get() + data.len() as u64);
            drop_body(r1, len);
        },
        move |end| {
            if end == BodyEnd::Complete {
                let body = format!("bytes={}\n", len2.get());
                let _ = r2.respond_with_bytes(plain_head(StatusCode::OK), body);
            }
        },
    );
}

#[doc(hidden)] // shared by the `paf` binary and paf's tests; not part of the API
/// The byte at offset `i` of `/blob`.
pub fn blob_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// Pattern bytes written per call; `/blob` bodies up to this size are sent whole.
const BLOB_CHUNK: usize = 64 * 1024;

/// The `/blob` pattern from offset 0, long enough to slice `BLOB_CHUNK` bytes at any phase.
fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| (0..(BLOB_CHUNK + 251) as u64).map(blob_byte).collect())
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
    if size <= BLOB_CHUNK as u64 {
        let body = bytes::Bytes::from_static(&pattern()[..size as usize]);
        return reqd.respond_with_shared(head, body);
    }
    let w = reqd.respond_with_streaming(head, Some(size))?;
    stream_blob(w, 0, size);
    Ok(())
}

/// Writes pattern bytes from `at` until `size` or until the writer is full, then waits.
fn stream_blob(mut w: BodyWriter, mut at: u64, size: u64) {
    let pattern = pattern();
    while at < size {
        let n = (size - at).min(BLOB_CHUNK as u64) as usize;
        let phase = (at % 251) as usize;
        match w.write(&pattern[phase..phase + n]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hash_does_not_depend_on_the_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut whole = StreamHash::new();
        whole.update(&data);
        for split in [
            vec![1, 2, 3],
            vec![7, 8, 9, 500],
            vec![999],
            vec![0, 0, 13],
            vec![31, 1, 32, 33, 64],
        ] {
            let mut h = StreamHash::new();
            let mut rest = &data[..];
            for s in split {
                let (a, b) = rest.split_at(s.min(rest.len()));
                h.update(a);
                rest = b;
            }
            h.update(rest);
            assert_eq!(h.finish(), whole.finish());
        }
        // Length and content both count.
        let mut a = StreamHash::new();
        a.update(&[0]);
        assert_ne!(a.finish(), StreamHash::new().finish());
        let mut b = StreamHash::new();
        b.update(&[1]);
        assert_ne!(a.finish(), b.finish());
        // Two words swapped between lanes, or moved across a block, change the hash.
        let words = |order: [u8; 5]| {
            let mut h = StreamHash::new();
            for w in order {
                h.update(&[w; 8]);
            }
            h.finish()
        };
        assert_ne!(words([1, 2, 3, 4, 5]), words([2, 1, 3, 4, 5]));
        assert_ne!(words([1, 2, 3, 4, 5]), words([5, 2, 3, 4, 1]));
        // A zero byte more is a different stream.
        let mut z1 = StreamHash::new();
        z1.update(&[0; 40]);
        let mut z2 = StreamHash::new();
        z2.update(&[0; 41]);
        assert_ne!(z1.finish(), z2.finish());
        assert!(pattern()
            .iter()
            .enumerate()
            .all(|(i, b)| *b == blob_byte(i as u64)));
    }
}

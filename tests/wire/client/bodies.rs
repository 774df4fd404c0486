//! Streamed bodies: 64 MB uploads and downloads, byte-exact, with `Content-Length` and chunked
//! framing both ways over one connection (backpressured: chunks never larger than the read
//! chunk); a body dropped unread is drained and its connection reused.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ::http::{HeaderValue, Request, StatusCode};
use net::testing::B_V4;
use paf::client::{self, BodyEnd, Options};
use paf::http::client as codec;

use super::support::{drive, serve, serve_with, LONG};
use super::{check_download, ctx_for, get, start, streaming, upload, FNV_OFFSET};

/// The CPU time of this thread (both loops run on it), from Linux's schedstat; `None`
/// elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Prints the CPU seconds `what` took since `since` (wall time means nothing on the virtual
/// clock; neither is asserted).
fn report_cpu(what: &str, since: Option<Duration>) {
    if let (Some(a), Some(b)) = (since, thread_cpu()) {
        eprintln!("{what}: {:.2} CPU s", (b - a).as_secs_f64());
    }
}

#[test]
fn streamed_64_mb_bodies_are_byte_exact_both_ways_with_both_framings() {
    // 4 × 64 MB through two stacks, for seconds of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    const TOTAL: u64 = 64 << 20;
    let cfg = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let (server, mut rt) = serve_with(cfg, streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    for chunked in [true, false] {
        // Upload.
        let cpu = thread_cpu();
        let mut req = Request::post("/upload").body(()).unwrap();
        let framing = if chunked {
            ("transfer-encoding", "chunked".to_owned())
        } else {
            ("content-length", TOTAL.to_string())
        };
        req.headers_mut()
            .insert(framing.0, HeaderValue::from_str(&framing.1).unwrap());
        let (o, w) = start(&ctx, req);
        let hash = Rc::new(Cell::new(FNV_OFFSET));
        upload(w.unwrap(), 0, TOTAL, hash.clone());
        drive(&mut rt, LONG, "the upload's response", || {
            o.borrow().end.is_some() || !o.borrow().errors.is_empty()
        });
        let o = o.borrow();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(
            std::str::from_utf8(&o.body).unwrap(),
            format!("{TOTAL} {:016x}", hash.get()),
            "chunked upload: {chunked}"
        );
        report_cpu(&format!("upload of 64 MB (chunked: {chunked})"), cpu);
        // Download.
        let cpu = thread_cpu();
        let path = if chunked {
            format!("/stream?{TOTAL}")
        } else {
            format!("/stream?{TOTAL}&len")
        };
        let (got, biggest, end) = (
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(None)),
        );
        let (g, m, e) = (got.clone(), biggest.clone(), end.clone());
        let errors = Rc::new(RefCell::new(Vec::new()));
        let errs = errors.clone();
        client::request(
            &ctx,
            codec::Config::default(),
            move |_, e| errs.borrow_mut().push(e),
            move |_peer, head, body| {
                let framed = head.headers().get("transfer-encoding").is_some();
                assert_eq!(framed, chunked, "{head:?}");
                check_download(body, g, m, e);
            },
            get(&path),
        )
        .unwrap()
        .close()
        .unwrap();
        drive(&mut rt, LONG, "the download", || {
            end.get().is_some() || !errors.borrow().is_empty()
        });
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
        assert_eq!((got.get(), end.get()), (TOTAL, Some(BodyEnd::Complete)));
        // Backpressure: chunks are at most the read chunk, nothing piles up.
        assert!(
            biggest.get() <= Options::default().read_chunk,
            "{}",
            biggest.get()
        );
        report_cpu(&format!("download of 64 MB (chunked: {chunked})"), cpu);
    }
    // All four exchanges on one connection.
    assert_eq!(stack.stats().connections, 1);
    server.stop(&mut rt);
}

#[test]
fn a_body_dropped_unread_is_drained_and_the_connection_reused() {
    let (server, mut rt) = serve(streaming());
    let stack = client::Agent::attach(&mut rt, Options::default());
    let ctx = ctx_for(&stack, B_V4);
    let seen = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let s = seen.clone();
        client::request(
            &ctx,
            codec::Config::default(),
            |_, e| panic!("{e}"),
            move |_, head, body| {
                assert_eq!(head.status(), StatusCode::OK);
                s.set(s.get() + 1);
                drop(body); // 300 kB nobody reads
            },
            get("/stream?300000"),
        )
        .unwrap()
        .close()
        .unwrap();
        let n = seen.get();
        drive(&mut rt, LONG, "the response and the drain", || {
            seen.get() > n && stack.in_flight() == 0
        });
    }
    assert_eq!(stack.stats().connections, 1);
    assert_eq!(stack.idle_connections(), 1);
    server.stop(&mut rt);
}

//! `Content-Length` uploads read in place: a waiting body reader gets the bytes where they lie
//! in the server stack's receive buffer, without the copy into the codec's body buffer
//! (`Stats::body_bytes_in_place` counts them); a reader that is not waiting gets what the codec
//! buffered meanwhile first, then the rest in place.

use super::*;

/// Pattern bytes `from..to`, for the body of an upload.
fn pattern(from: u64, to: u64) -> Vec<u8> {
    (from..to).map(byte).collect()
}

/// A `Content-Length` body of `total` pattern bytes, sent as the socket takes it.
fn length_source(total: u64) -> impl FnMut(&mut Vec<u8>) -> bool {
    let mut at = 0u64;
    move |out| {
        if at == total {
            return false;
        }
        let end = total.min(at + 100_000);
        out.extend_from_slice(&pattern(at, end));
        at = end;
        true
    }
}

fn hash_of(body: &[u8]) -> String {
    let mut h = StreamHash::new();
    h.update(body);
    format!("{:016x}", h.finish())
}

/// Re-schedules of readers the handler left for the test to make (see `/lazy`).
type Parked = Rc<RefCell<Vec<Box<dyn FnOnce()>>>>;

/// What `hash_body` has read so far.
#[derive(Clone, Default)]
struct Hashing {
    n: u64,
    h: StreamHash,
    biggest: usize,
    chunks: u32,
    /// Every third chunk's re-schedule is left to the test (the reader is not waiting
    /// meanwhile).
    park: Option<Parked>,
}

/// Reads the body with `schedule_read`, hashing it; answers `bytes hash biggest-chunk`.
fn hash_body(reqd: Reqd, mut st: Hashing) {
    let (r1, r2) = (reqd.clone(), reqd.clone());
    let end = st.clone();
    reqd.schedule_read(
        move |data| {
            st.biggest = st.biggest.max(data.len());
            st.h.update(data);
            st.n += data.len() as u64;
            st.chunks += 1;
            match st.park.clone() {
                Some(p) if st.chunks.is_multiple_of(3) => {
                    p.borrow_mut().push(Box::new(move || hash_body(r1, st)));
                }
                _ => hash_body(r1, st),
            }
        },
        move |e| {
            assert_eq!(e, BodyEnd::Complete);
            let body = format!("{} {:016x} {}", end.n, end.h.finish(), end.biggest);
            r2.respond_with_bytes(Response::new(()), body).unwrap();
        },
    );
}

/// `/hash`: `hash_body`; `/lazy`: `hash_body` that parks re-schedules in `parked`; `/all`:
/// `read_to_end` up to 1 MB, answering `bytes hash` (413 over the limit).
fn uploads(parked: Parked) -> MakeHandler {
    Box::new(move || {
        Box::new(move |_peer, reqd: Reqd| match reqd.request().uri().path() {
            "/hash" => hash_body(reqd, Hashing::default()),
            "/lazy" => {
                let park = Some(parked.clone());
                hash_body(
                    reqd,
                    Hashing {
                        park,
                        ..Hashing::default()
                    },
                );
            }
            _ => {
                let r = reqd.clone();
                reqd.read_to_end(1 << 20, move |body| match body {
                    Ok(body) => {
                        let text = format!("{} {}", body.len(), hash_of(&body));
                        r.respond_with_bytes(Response::new(()), text).unwrap();
                    }
                    Err(_) => {
                        let head = Response::builder().status(413).body(()).unwrap();
                        r.respond_with_bytes(head, "too large").unwrap();
                    }
                });
            }
        })
    })
}

fn upload_config() -> Config {
    Config {
        max_body_size: None,
        ..Config::default()
    }
}

#[test]
fn a_length_upload_reaches_a_waiting_reader_in_place_and_the_connection_goes_on() {
    // 16 MB through two stacks, for a second of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    const TOTAL: u64 = 16 << 20;
    let cfg = upload_config();
    let (server, mut rt) = serve(cfg.clone(), uploads(Parked::default()));
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    // As curl sends a large body: it waits for 100 Continue (sent once the handler reads).
    c.send(
        format!(
            "PUT /hash HTTP/1.1\r\nHost: b\r\nExpect: 100-continue\r\nContent-Length: {TOTAL}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut got = Vec::new();
    drive(&mut rt, LONG, "100 Continue", || {
        got.extend_from_slice(&c.take_input());
        got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n")
    });
    assert_eq!(got, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.set_source(length_source(TOTAL));
    let r = responses(&mut rt, &c, 1);
    assert_eq!(r[0].status, 200);
    let text = String::from_utf8(r[0].body.clone()).unwrap();
    let fields: Vec<&str> = text.split(' ').collect();
    assert_eq!(fields[0], TOTAL.to_string());
    assert_eq!(fields[1], hash_of(&pattern(0, TOTAL)), "the bytes differ");
    let biggest: usize = fields[2].parse().unwrap();
    assert!(
        biggest <= cfg.body_buffer_size,
        "a chunk of {biggest} bytes"
    );
    let stats = server.handle.stats();
    // Nearly all of it in place: the reader always waits, and the body comes after 100
    // Continue, so no byte arrives with the head (those would be buffered).
    assert!(
        stats.body_bytes_in_place >= TOTAL * 9 / 10,
        "{} of {TOTAL} bytes in place: {stats:?}",
        stats.body_bytes_in_place
    );
    assert!(stats.max_body_chunk <= cfg.body_buffer_size, "{stats:?}");
    assert!(
        stats.max_input_buffered <= cfg.read_buffer_size,
        "{stats:?}"
    );
    // Keep-alive: the next request on the connection, its body read in place or not.
    c.send(b"POST /all HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello");
    let r = responses(&mut rt, &c, 1);
    assert_eq!(r[0].body, format!("5 {}", hash_of(b"hello")).as_bytes());
    server.stop(&mut rt);
}

#[test]
fn a_reader_that_comes_back_later_gets_what_was_buffered_first_then_the_rest_in_place() {
    const TOTAL: u64 = 3 << 20;
    let parked = Parked::default();
    let (server, mut rt) = serve(upload_config(), uploads(parked.clone()));
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(format!("PUT /lazy HTTP/1.1\r\nHost: b\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes());
    c.set_source(length_source(TOTAL));
    let mut buf = Vec::new();
    let mut woken = 0;
    drive(&mut rt, LONG, "the response", || {
        // The reader comes back a step later: meanwhile the codec buffers (copies).
        let waiting: Vec<_> = parked.borrow_mut().drain(..).collect();
        woken += waiting.len();
        for again in waiting {
            again();
        }
        buf.extend_from_slice(&c.take_input());
        parse_response(&buf, false).is_some()
    });
    let (r, _) = parse_response(&buf, false).unwrap();
    let text = String::from_utf8(r.body).unwrap();
    let want = format!("{TOTAL} {}", hash_of(&pattern(0, TOTAL)));
    assert!(text.starts_with(&want), "{text} (want {want})");
    let stats = server.handle.stats();
    assert!(woken > 10, "the reader was parked {woken} times");
    assert!(
        stats.body_bytes_in_place > 0 && stats.body_bytes_in_place < TOTAL,
        "{stats:?}"
    );
    server.stop(&mut rt);
}

#[test]
fn read_to_end_collects_a_length_body_in_place_up_to_its_limit() {
    let (server, mut rt) = serve(upload_config(), uploads(Parked::default()));
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let total = 1 << 20; // the limit, exactly
    c.send(format!("PUT /all HTTP/1.1\r\nHost: b\r\nContent-Length: {total}\r\n\r\n").as_bytes());
    c.set_source(length_source(total));
    let r = responses(&mut rt, &c, 1);
    let want = format!("{total} {}", hash_of(&pattern(0, total)));
    assert_eq!(String::from_utf8_lossy(&r[0].body), want);
    assert!(server.handle.stats().body_bytes_in_place > 0);
    // One byte over: 413 as soon as the limit is crossed.
    let d = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let total = total + 1;
    d.send(format!("PUT /all HTTP/1.1\r\nHost: b\r\nContent-Length: {total}\r\n\r\n").as_bytes());
    d.set_source(length_source(total));
    let r = responses(&mut rt, &d, 1);
    assert_eq!(r[0].status, 413);
    server.stop(&mut rt);
}

#[test]
fn a_length_upload_over_tls_keeps_the_copying_path_and_its_bytes() {
    // TLS decrypts into the pipe's buffer: the codec reads from there as before. (Plaintext
    // the pipe holds while the reader waits may go to it directly; none needs to.)
    const TOTAL: u64 = 2 << 20;
    let (tls, client_cfg) = pki(Duration::from_secs(10));
    let default_errors: MakeErrorHandler = Box::new(|| Box::new(service::default_error_handler));
    let (server, mut rt) = serve_on(
        Some(tls),
        upload_config(),
        uploads(Parked::default()),
        default_errors,
    );
    let c = RawClient::connect_tls(&mut rt, addr(B_V4), &client_cfg, paf_test()).unwrap();
    c.send(format!("PUT /hash HTTP/1.1\r\nHost: b\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes());
    c.set_source(length_source(TOTAL));
    let r = responses(&mut rt, &c, 1);
    let text = String::from_utf8(r[0].body.clone()).unwrap();
    let want = format!("{TOTAL} {}", hash_of(&pattern(0, TOTAL)));
    assert!(text.starts_with(&want), "{text} (want {want})");
    let stats = server.handle.stats();
    assert!(stats.body_bytes_in_place < TOTAL / 2, "{stats:?}");
    server.stop(&mut rt);
}

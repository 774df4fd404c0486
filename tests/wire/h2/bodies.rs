//! Bodies and windows: a POST larger than the stream window echoed back, a streamed response,
//! a handler that never reads (the upload stops at the window), a client that never opens its
//! window (the stream reset at `write_timeout`), a stalled request body (408), bodies over
//! `max_body_size` (413) and trailers both ways.

use super::*;

#[test]
fn a_post_larger_than_the_window_is_echoed() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    // Four times the stream window (body_buffer_size, 64 KiB): the handler's reads must
    // release it for the upload to finish.
    let body: Vec<u8> = (0..256 * 1024u64).map(blob_byte).collect();
    let post = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/echo")
        .body(())
        .unwrap();
    let (resp, got) = net.fetch(&mut h, post, &body);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(got == body, "echo differs ({} bytes)", got.len());
    net.stop();
}

#[test]
fn a_streamed_response_arrives_byte_for_byte() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let n = 8 << 20;
    let (resp, got) = net.fetch(&mut h, get(&format!("/blob/{n}")), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
    assert_eq!(got.len() as u64, n);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &b)| b == blob_byte(i as u64)));
    net.stop();
}

#[test]
fn a_handler_that_never_reads_stops_the_upload_at_the_window() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let _ = net.fetch(&mut h, get("/hello"), b""); // (the server's SETTINGS are in)
    let post = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/never-read")
        .body(())
        .unwrap();
    let (_fut, mut stream) = h.send.send_request(post, false).unwrap();
    stream.reserve_capacity(1 << 20);
    let window = net.run(&mut h, "send capacity", |_| {
        match stream.poll_capacity(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(n))) => Poll::Ready(n),
            Poll::Ready(other) => panic!("capacity: {other:?}"),
            Poll::Pending => Poll::Pending,
        }
    });
    // The stream window (body_buffer_size) is all the client may send.
    assert_eq!(window, 64 * 1024);
    stream
        .send_data(Bytes::from(vec![0u8; window]), false)
        .unwrap();
    let until = net.pair.now() + Duration::from_secs(5);
    net.pair.drive(LONG, |p| {
        h.poll_conn();
        p.now() >= until
    });
    // Nothing was released: the handler read nothing.
    assert_eq!(
        stream.capacity(),
        0,
        "no window beyond what the handler read"
    );
    assert!(stream
        .poll_capacity(&mut Context::from_waker(waker()))
        .is_pending());
    // The unanswered request holds the connection open; stopping ends it at drain_timeout.
}

#[test]
fn a_client_that_never_opens_its_window_has_the_stream_reset_at_the_write_timeout() {
    let write_timeout = Duration::from_secs(2);
    let config = Config {
        write_timeout,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let fut = h.start(get("/blob/10000000"), b"");
    let mut fut = Box::pin(fut);
    let resp = net.run(&mut h, "the response head", |_| {
        fut.as_mut()
            .poll(&mut Context::from_waker(waker()))
            .map(|r| r.unwrap())
    });
    let start = net.pair.now();
    let mut body = resp.into_body();
    let mut got = 0;
    // Read what comes but never release it: the window stays shut after 64 KiB.
    let reason = net.run(&mut h, "the reset", |_| loop {
        match body.poll_data(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(d))) => got += d.len(),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(e.reason()),
            Poll::Ready(None) => panic!("the body ended after {got} bytes"),
            Poll::Pending => return Poll::Pending,
        }
    });
    let took = net.pair.now() - start;
    assert_eq!(reason, Some(h2::Reason::CANCEL));
    assert!(got <= 65_535, "{got} bytes past the window");
    assert!(
        took >= write_timeout && took < write_timeout + Duration::from_millis(50),
        "reset after {took:?}"
    );
    // The connection is still usable (once the client gives back the connection window the
    // unread body held).
    let _ = body.flow_control().release_capacity(got);
    drop(body);
    let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn a_stalled_request_body_gets_408_on_its_stream_and_the_connection_goes_on() {
    let body_timeout = Duration::from_secs(4);
    let config = Config {
        body_timeout,
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/echo")
        .body(())
        .unwrap();
    let (fut, mut stream) = h.send.send_request(req, false).expect("send_request");
    stream
        .send_data(Bytes::from_static(b"part of a body"), false)
        .expect("send_data");
    let start = net.pair.now();
    let (resp, body) = net.finish(&mut h, fut);
    let took = net.pair.now() - start;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body, b"408 Request Timeout\n");
    assert!(
        took >= body_timeout && took < body_timeout + Duration::from_millis(50),
        "{took:?}"
    );
    // The error handler was told, with the request (HTTP/2).
    assert_eq!(
        errors_seen(),
        vec![(
            paf::http::Error::BodyTimeout,
            Some((::http::Version::HTTP_2, "/echo".to_owned()))
        )]
    );
    // The rest of the body is refused, and the connection serves the next request.
    let _ = stream.send_data(Bytes::from_static(b"late"), true);
    let (resp, _) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(resp.status(), StatusCode::OK);
    let s = net.handle.stats();
    assert_eq!(s.body_timeouts, 1, "{s:?}");
    assert_eq!(s.h2_protocol_errors, 0, "{s:?}");
}

#[test]
fn bodies_over_max_body_size_get_413_on_their_stream_declared_or_not() {
    let config = Config {
        max_body_size: Some(1000),
        ..Config::default()
    };
    let mut net = Net::new(config, None);
    let mut h = net.connect();
    // No declared length: cut when the bytes exceed it.
    let post = |len: Option<usize>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("http://paf.test/echo");
        if let Some(n) = len {
            r = r.header("content-length", n);
        }
        r.body(()).unwrap()
    };
    let (resp, _) = net.fetch(&mut h, post(None), &[b'x'; 5000]);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Declared: refused before the handler sees it.
    let (resp, _) = net.fetch(&mut h, post(Some(5000)), &[b'x'; 5000]);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the limit, on the same connection.
    let (resp, body) = net.fetch(&mut h, post(Some(1000)), &[b'y'; 1000]);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, vec![b'y'; 1000]);
    let e = errors_seen();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].0, paf::http::Error::PayloadTooLarge);
    assert_eq!(e[0].1.as_ref().map(|r| r.0), Some(::http::Version::HTTP_2));
    // The declared one never reached the handler: the error handler gets no request.
    assert_eq!(e[1], (paf::http::Error::PayloadTooLarge, None));
}

#[test]
fn trailers_go_both_ways_on_h2_streams() {
    let mut net = Net::new(Config::default(), None);
    let mut h = net.connect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://paf.test/trailers")
        .body(())
        .unwrap();
    let (fut, mut stream) = h.send.send_request(req, false).expect("send_request");
    stream
        .send_data(Bytes::from_static(b"abc"), false)
        .expect("send_data");
    let mut t = ::http::HeaderMap::new();
    t.insert("x-sum", "12".parse().unwrap());
    t.insert("cookie", "a=b".parse().unwrap());
    stream.send_trailers(t).expect("send_trailers");
    let mut fut = Box::pin(fut);
    let resp = net.run(&mut h, "the response head", |_| {
        fut.as_mut()
            .poll(&mut Context::from_waker(waker()))
            .map(|r| r.expect("response"))
    });
    let (parts, mut body) = resp.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    let mut data = Vec::new();
    net.run(&mut h, "the body", |_| loop {
        match body.poll_data(&mut Context::from_waker(waker())) {
            Poll::Ready(Some(Ok(b))) => data.extend_from_slice(&b),
            Poll::Ready(Some(Err(e))) => panic!("body: {e}"),
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    });
    assert_eq!(data, b"body=abc");
    let trailers = net.run(&mut h, "the trailers", |_| {
        body.poll_trailers(&mut Context::from_waker(waker()))
            .map(|r| r.expect("trailers").expect("some trailers"))
    });
    assert_eq!(trailers["x-got"], "12");
    assert_eq!(trailers["x-cookie"], "dropped");
    assert_eq!(trailers["grpc-status"], "0");
    assert!(!trailers.contains_key("content-length"), "{trailers:?}");
}

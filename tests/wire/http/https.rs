//! HTTPS through the service: pipelining, streamed responses and uploads over TLS, and
//! handshakes that fail or time out before the handler sees anything.

use super::*;

/// GETs go to `streamer`, POSTs are hashed: `bytes hash`.
fn stream_or_hash() -> MakeHandler {
    Box::new(|| {
        let mut stream = streamer()();
        Box::new(move |peer, reqd: Reqd| {
            if reqd.request().method() == ::http::Method::GET {
                return stream(peer, reqd);
            }
            let r = reqd.clone();
            reqd.read_to_end(64 << 20, move |body| {
                let body = body.unwrap();
                let mut h = StreamHash::new();
                h.update(&body);
                let text = format!("{} {:016x}", body.len(), h.finish());
                r.respond_with_bytes(Response::new(()), text).unwrap();
            });
        })
    })
}

#[test]
fn https_pipelines_streams_and_uploads_through_tls() {
    // 20 MB through TLS and two stacks, for seconds of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    let (tls, client_cfg) = pki(Duration::from_secs(10));
    let cfg = Config {
        max_body_size: None,
        ..Config::default()
    };
    let default_errors: MakeErrorHandler = Box::new(|| Box::new(service::default_error_handler));
    let (server, mut rt) = serve_on(Some(tls), cfg, stream_or_hash(), default_errors);
    // 100 pipelined requests in one write.
    let c = RawClient::connect_tls(&mut rt, addr(B_V4), &client_cfg, paf_test()).unwrap();
    let mut all = Vec::new();
    for i in 0..100 {
        all.extend_from_slice(format!("GET /s?{i} HTTP/1.1\r\nHost: paf.test\r\n\r\n").as_bytes());
    }
    c.send(&all);
    let r = responses(&mut rt, &c, 100);
    for (i, r) in r.iter().enumerate() {
        let want: Vec<u8> = (0..i as u64).map(byte).collect();
        assert_eq!(r.body, want, "response {i}");
    }
    // A 4 MB chunked upload, hashed.
    let sent_hash = Rc::new(Cell::new(StreamHash::new()));
    c.send(b"POST /up HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.set_source(chunked_source(4 << 20, 10_000, sent_hash.clone()));
    let r = responses(&mut rt, &c, 1);
    let want = format!("{} {:016x}", 4 << 20, sent_hash.get().finish());
    assert_eq!(r[0].body, want.as_bytes());
    // A 16 MB streamed response on a second connection, byte for byte.
    let d = RawClient::connect_tls(&mut rt, addr(B_V6), &client_cfg, paf_test()).unwrap();
    let got = get_stream(&d, 16 << 20);
    drive(&mut rt, LONG, "16 MB over TLS", || got.get() == 16 << 20);
    server.stop(&mut rt);
}

#[test]
fn https_handshake_failures_and_timeouts_close_without_reaching_the_handler() {
    let (tls, client_cfg) = pki(Duration::from_millis(300));
    let default_errors: MakeErrorHandler = Box::new(|| Box::new(service::default_error_handler));
    let (server, mut rt) = serve_on(Some(tls), Config::default(), hello(), default_errors);
    // Plain HTTP to the TLS port: an alert, then the close.
    let plain = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    plain.send(b"GET / HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    drive(&mut rt, LONG, "the close after a bad handshake", || {
        plain.is_done()
    });
    let alert = plain.take_input();
    assert_eq!(alert.first(), Some(&0x15), "a TLS alert record: {alert:?}");
    // A client that never speaks: closed at the handshake deadline.
    let mute = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let took = drive(&mut rt, LONG, "the handshake timeout", || mute.is_done());
    // The deadline counts from the accept, one round trip (microseconds) after the connect.
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(301),
        "{took:?}"
    );
    // A client that does not trust the server's certificate gets no answer either.
    let untrusting = paf::tls::ClientConfig::builder(paf::tls::ClientTrust::CaCerts(vec![
        paf::tls::certs::TestCa::new("another CA")
            .unwrap()
            .cert()
            .clone(),
    ]))
    .build()
    .unwrap();
    let wary = RawClient::connect_tls(&mut rt, addr(B_V4), &untrusting, paf_test()).unwrap();
    wary.send(b"GET / HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    drive(&mut rt, LONG, "the failed handshake", || wary.is_done());
    assert_eq!(wary.received(), 0);
    // And a proper client is served meanwhile.
    let ok = RawClient::connect_tls(&mut rt, addr(B_V4), &client_cfg, paf_test()).unwrap();
    ok.send(b"GET /tls HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    assert_eq!(responses(&mut rt, &ok, 1)[0].body, b"hello /tls");
    assert_eq!(server.handle.stats().requests, 1);
    server.stop(&mut rt);
}

/// How often [`CountingRandom`] was drawn from.
static DRAWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// aws-lc-rs's random generator, counting the draws.
#[derive(Debug)]
struct CountingRandom;

impl rustls::crypto::SecureRandom for CountingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        DRAWS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(buf)
    }
}

static COUNTING: CountingRandom = CountingRandom;

#[test]
fn an_https_service_seeds_its_random_generator_when_it_starts() {
    use paf::tls::{certs::TestCa, ServerConfig};
    let ca = TestCa::new("paf test CA").unwrap();
    let cert = ca.issue(&["paf.test"]).unwrap();
    let provider = rustls::crypto::CryptoProvider {
        secure_random: &COUNTING,
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let tls = ServerConfig::builder(cert.identity())
        .provider(std::sync::Arc::new(provider))
        .build()
        .unwrap();
    let before = DRAWS.load(std::sync::atomic::Ordering::SeqCst);
    let default_errors: MakeErrorHandler = Box::new(|| Box::new(service::default_error_handler));
    // No connection yet: the draw is the service's own, on its loop's thread, so the first
    // handshake does not pay for seeding the generator (aws-lc-rs: about 20 ms of CPU).
    let (server, mut rt) = serve_on(Some(tls), Config::default(), hello(), default_errors);
    assert!(
        DRAWS.load(std::sync::atomic::Ordering::SeqCst) > before,
        "the service started without drawing from its provider's generator"
    );
    server.stop(&mut rt);
}

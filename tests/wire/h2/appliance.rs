//! Every appliance route over h2c, the proxy to an HTTP/1.1 upstream included, with the
//! `/metrics` counters.

use super::*;

#[test]
fn appliance_routes_over_h2c() {
    let dir = std::env::temp_dir().join(format!("paf-h2-appliance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("www/big.bin"), &big).unwrap();
    let config = r#"
[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/health"
action = "health"
[[listener.route]]
path = "/metrics"
action = "metrics"
[[listener.route]]
host = "old.test"
action = "redirect"
to = "https://new.test{path}"
status = 308
[[listener.route]]
path = "/hello"
action = "static"
status = 201
body = "hi there"
[[listener.route]]
path = "/static"
action = "files"
root = "www"
[[listener.route]]
path = "/up"
action = "proxy"
upstream = "up"
[[upstream]]
name = "up"
urls = ["http://198.18.0.1:8080"]
"#;
    let mut net = Net::appliance(config, &dir);
    let mut h = net.connect();
    let at = |authority: &str, path: &str| {
        Request::builder()
            .uri(format!("http://{authority}{path}"))
            .body(())
            .unwrap()
    };

    let (r, body) = net.fetch(&mut h, get("/hello"), b"");
    assert_eq!(
        (r.status().as_u16(), body.as_slice()),
        (201, &b"hi there"[..])
    );
    let (r, body) = net.fetch(&mut h, get("/health"), b"");
    assert_eq!((r.status().as_u16(), body.as_slice()), (200, &b"ok\n"[..]));
    let (r, _) = net.fetch(&mut h, at("old.test", "/a?b"), b"");
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(r.headers()["location"], "https://new.test/a?b");

    // Files: whole, a range, and a conditional.
    let (r, body) = net.fetch(&mut h, get("/static/big.bin"), b"");
    assert_eq!(r.status().as_u16(), 200);
    assert!(body == big, "{} bytes", body.len());
    let etag = r.headers()["etag"].clone();
    let mut range = get("/static/big.bin");
    range
        .headers_mut()
        .insert("range", "bytes=10-19".parse().unwrap());
    let (r, body) = net.fetch(&mut h, range, b"");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(body, &big[10..20]);
    let mut cond = get("/static/big.bin");
    cond.headers_mut().insert("if-none-match", etag);
    let (r, body) = net.fetch(&mut h, cond, b"");
    assert_eq!((r.status().as_u16(), body.len()), (304, 0));

    // The proxy: HTTP/1.1 to the upstream (Host from :authority, Via "2 paf"); its chunked,
    // keep-alive answer comes back without connection-specific fields.
    let (r, body) = net.fetch(&mut h, at("paf.test", "/up/x?y=1"), b"");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "HTTP/1.1 /up/x?y=1 host=paf.test via=2 paf"
    );
    for hop in ["connection", "transfer-encoding", "keep-alive"] {
        assert!(!r.headers().contains_key(hop), "{hop} in {:?}", r.headers());
    }

    let (r, body) = net.fetch(&mut h, get("/metrics"), b"");
    assert_eq!(r.status().as_u16(), 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("paf_h2_connections_total{listener=\"web\"} 1\n"),
        "{text}"
    );
    // The seven before it (a connection's counters are added after each of its pumps).
    assert!(
        text.contains("paf_h2_streams_total{listener=\"web\"} 7\n"),
        "{text}"
    );
    net.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

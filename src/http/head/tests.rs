//! Tests of the request head's scan, parse and checks.

use super::*;

#[test]
fn a_field_name_matched_whole_is_what_from_bytes_makes() {
    for raw in [
        "Host",
        "host",
        "User-Agent",
        "user-agent",
        "Accept",
        "accept",
        "Accept-Encoding",
        "accept-encoding",
        "Accept-Language",
        "accept-language",
        "Connection",
        "connection",
        "Content-Length",
        "content-length",
        "Content-Type",
        "content-type",
        "Date",
        "date",
        "Server",
        "server",
        "Cookie",
        "cookie",
        "Referer",
        "referer",
        "Cache-Control",
        "cache-control",
        "Transfer-Encoding",
        "transfer-encoding",
        "HOST",
        "X-Custom",
        "content-LENGTH",
        "Via",
    ] {
        assert_eq!(
            field_name(raw.as_bytes()).unwrap(),
            HeaderName::from_bytes(raw.as_bytes()).unwrap(),
            "{raw}"
        );
    }
    for bad in ["", "Ho st", "Host:", "a\u{7f}"] {
        assert!(field_name(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

#[test]
fn a_plain_host_is_one_the_full_check_accepts_and_others_get_its_verdict() {
    let hosts: &[&[u8]] = &[
        b"a",
        b"a:80",
        b"example.com",
        b"198.18.0.2",
        b"198.18.0.2:8080",
        b"x-y.z:65535",
        b"a:65536",
        b"a:123456",
        b"a:",
        b":80",
        b"",
        b"[::1]",
        b"[fd00::2]:443",
        b"a b",
        b"a@b",
        b"u@a:80",
        b"a:8x",
        b"a:-1",
        b"a_b",
        b"a~b",
        b"a%41",
        b"\xc3\xa9",
        b"a:0",
        b"a::80",
        b"a:80:90",
        b"a/b",
        b"a?b",
        b"a#b",
    ];
    let plain = hosts.iter().filter(|h| is_plain_host(h)).count();
    assert_eq!(plain, 7, "the shortcut takes the seven plain ones");
    let targets = [
        "/",
        "*",
        "http://a/x",
        "http://a:80/",
        "https://example.com/",
    ];
    for &h in hosts {
        if is_plain_host(h) {
            let origin = Uri::from_static("/");
            assert!(check_host_in_full(Version::HTTP_11, Some(h), &origin).is_ok());
        }
        for t in targets {
            let uri: Uri = t.parse().unwrap();
            for v in [Version::HTTP_10, Version::HTTP_11] {
                assert_eq!(
                    check_host(v, Some(h), &uri).is_ok(),
                    check_host_in_full(v, Some(h), &uri).is_ok(),
                    "{:?} with {t}",
                    String::from_utf8_lossy(h)
                );
            }
        }
    }
}

fn parse_str(s: &str) -> Result<RequestHead, Error> {
    parse_with(s, &Config::default())
}

fn parse_with(s: &str, config: &Config) -> Result<RequestHead, Error> {
    let mut scan = HeadScan::default();
    let end = scan.scan(s.as_bytes(), config)?.expect("complete head");
    assert_eq!(end, s.len(), "head must end exactly at the input end");
    parse(s.as_bytes(), config)
}

const BAD: fn(&'static str) -> Result<BodyKind, Error> = |s| Err(Error::BadRequest(s));

#[test]
fn field_values_outlive_the_buffer_they_were_parsed_from() {
    let mut buf =
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-One: 1\r\nX-Two: two words\r\nX-One: again\r\n\r\n"
            .to_vec();
    let head = parse(&buf, &Config::default()).unwrap();
    buf.fill(b'#');
    drop(buf);
    let h = head.request.headers();
    assert_eq!(h["host"], "a.test");
    assert_eq!(h["x-two"], "two words");
    let ones: Vec<_> = h.get_all("x-one").iter().collect();
    assert_eq!(ones, ["1", "again"]);
    // A copy shares the bytes and stays equal after the original is gone.
    let copy = h.clone();
    drop(head);
    assert_eq!(copy["x-two"], "two words");
}

#[test]
fn a_value_not_from_the_head_is_copied() {
    let head = b"X: y\r\n";
    let values = FieldValues::new(head);
    assert_eq!(values.value(&head[3..4]).unwrap(), "y");
    assert_eq!(values.value(b"elsewhere").unwrap(), "elsewhere");
    assert!(values.value(b"bad\x7f").is_err());
}

#[test]
fn framing_table() {
    let cases: &[(&str, Result<BodyKind, Error>)] = &[
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(BodyKind::Empty)),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Ok(BodyKind::Empty)),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", Ok(BodyKind::Length(12))),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Ok(BodyKind::Length(5))),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Ok(BodyKind::Length(5))),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", BAD("conflicting Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", BAD("conflicting Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", BAD("empty Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", BAD("invalid Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", Err(Error::PayloadTooLarge)),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n", Ok(BodyKind::Length(1 << 20))),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(BodyKind::Chunked)),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n", Ok(BodyKind::Chunked)),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Ok(BodyKind::Chunked)),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(BodyKind::Chunked)),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", BAD("Transfer-Encoding with Content-Length")),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", BAD("Transfer-Encoding with Content-Length")),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BAD("Transfer-Encoding in HTTP/1.0 request")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", BAD("final transfer coding is not chunked")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BAD("final transfer coding is not chunked")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", BAD("chunked applied more than once")),
        // RFC 9112 §6.3 ¶4 (final coding not chunked: 400, a MUST) before §6.1 (unknown: 501).
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown\r\n\r\n", BAD("final transfer coding is not chunked")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", BAD("final transfer coding is not chunked")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", BAD("final transfer coding is not chunked")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", Err(Error::NotImplemented("unknown transfer coding"))),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown, chunked, chunked\r\n\r\n", BAD("chunked applied more than once")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n", Err(Error::NotImplemented("unknown transfer coding"))),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", BAD("empty Transfer-Encoding")),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chu\"nked\r\n\r\n", BAD("invalid Transfer-Encoding")),
    ];
    for (input, want) in cases {
        let got = parse_str(input).map(|h| h.body);
        assert_eq!(&got, want, "{input:?}");
    }
}

#[test]
fn syntax_table() {
    let cases: &[(&str, Result<(), Error>)] = &[
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
        ("GET / HTTP/1.1\nHost: a\n\n", Ok(())),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
            BAD("invalid header name").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
            BAD("invalid header name").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            BAD("invalid header value").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            BAD("invalid header value").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: a\r\n\r\n",
            BAD("invalid header name").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
            BAD("invalid header name").map(drop),
        ),
        (
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request line").map(drop),
        ),
        (
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request method").map(drop),
        ),
        ("GET / HTTP/1.1\r\n\r\n", BAD("missing Host").map(drop)),
        ("GET / HTTP/1.0\r\n\r\n", Ok(())),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            BAD("multiple Host fields").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Ok(())),
        // RFC 3986 §3.2.3: port = *DIGIT (empty allowed); the http crate alone accepts 80x.
        ("GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n", Ok(())),
        ("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", Ok(())),
        ("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", Ok(())),
        ("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", Ok(())),
        (
            "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a:+80\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        (
            "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
            BAD("invalid Host").map(drop),
        ),
        (
            "GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request target").map(drop),
        ),
        ("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
        ("GET http://A:80/x HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
        ("GET https://a/x HTTP/1.1\r\nHost: a:443\r\n\r\n", Ok(())),
        (
            "GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n",
            BAD("Host does not match the request target").map(drop),
        ),
        (
            "GET http://a:8080/x HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("Host does not match the request target").map(drop),
        ),
        ("GET http://a/x HTTP/1.0\r\n\r\n", Ok(())),
        (
            "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request target").map(drop),
        ),
        (
            "GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request target").map(drop),
        ),
        (
            "GET a/x HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request target").map(drop),
        ),
        (
            "GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request line").map(drop),
        ),
        ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
        (
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("asterisk-form only for OPTIONS").map(drop),
        ),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Ok(())),
        (
            "CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("CONNECT needs authority-form").map(drop),
        ),
        (
            "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("CONNECT needs authority-form").map(drop),
        ),
        (
            "GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            BAD("invalid request target").map(drop),
        ),
        (
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            Err(Error::VersionNotSupported),
        ),
        (
            "GET / HTTP/2\r\nHost: a\r\n\r\n",
            Err(Error::VersionNotSupported),
        ),
        (
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            Err(Error::VersionNotSupported),
        ),
        (
            "GET / HTTP/1.1.1\r\nHost: a\r\n\r\n",
            BAD("malformed HTTP version").map(drop),
        ),
        (
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            BAD("malformed HTTP version").map(drop),
        ),
        (
            "GET\r\nHost: a\r\n\r\n",
            BAD("malformed request line").map(drop),
        ),
    ];
    for (input, want) in cases {
        let got = parse_str(input).map(drop);
        assert_eq!(&got, want, "{input:?}");
    }
}

#[test]
fn request_fields() {
    let h = parse_str(
        "POST http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nx-a: 2\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
    )
    .unwrap();
    assert_eq!(h.request.method(), Method::POST);
    assert_eq!(h.request.uri().path_and_query().unwrap().as_str(), "/p?q=1");
    assert_eq!(h.request.version(), Version::HTTP_11);
    let xs: Vec<_> = h.request.headers().get_all("x-a").iter().collect();
    assert_eq!(xs, ["1", "2"]);
    assert!(h.keep_alive && h.expect_continue);

    let connection = |v: &str, req: &str| {
        let s = format!("GET / {v}\r\nHost: a\r\n{req}\r\n");
        let h = parse_str(&s).unwrap();
        (h.keep_alive, h.expect_continue)
    };
    assert_eq!(connection("HTTP/1.1", ""), (true, false));
    assert_eq!(
        connection("HTTP/1.1", "Connection: close\r\n"),
        (false, false)
    );
    assert_eq!(
        connection("HTTP/1.1", "Connection: foo, Close\r\n"),
        (false, false)
    );
    assert_eq!(connection("HTTP/1.0", ""), (false, false));
    assert_eq!(
        connection("HTTP/1.0", "Connection: Keep-Alive\r\n"),
        (true, false)
    );
    assert_eq!(
        connection("HTTP/1.0", "Expect: 100-continue\r\n"),
        (false, false)
    );
}

#[test]
fn limits() {
    let config = Config {
        max_request_line: 20,
        max_head_size: 60,
        max_headers: 2,
        ..Config::default()
    };
    // Request line of exactly 20 bytes passes; 21 is 414, even before the line ends.
    let ok = "GET /aaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(parse_with(ok, &config).is_ok());
    let long = "GET /aaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse_with(long, &config).map(drop), Err(Error::UriTooLong));
    let mut scan = HeadScan::default();
    assert_eq!(
        scan.scan(&long.as_bytes()[..22], &config),
        Err(Error::UriTooLong)
    );
    // Head of 60 bytes passes, 61 is 431, detected without the end of the head.
    let head = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(n));
    assert!(parse_with(&head(28), &config).is_ok());
    assert_eq!(
        parse_with(&head(29), &config).map(drop),
        Err(Error::HeadersTooLarge)
    );
    let mut scan = HeadScan::default();
    let long = head(40);
    assert_eq!(
        scan.scan(&long.as_bytes()[..60], &config),
        Err(Error::HeadersTooLarge)
    );
    let three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        parse_with(three, &config).map(drop),
        Err(Error::HeadersTooLarge)
    );
    // More header slots than fit on the stack.
    let config = Config {
        max_headers: 200,
        ..Config::default()
    };
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let h = parse_with(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"), &config).unwrap();
    assert_eq!(h.request.headers().len(), 151);
}

#[test]
fn garbage_first_bytes_fail_at_once() {
    let config = Config::default();
    let bad = Err(Error::BadRequest("invalid request method"));
    type Verdict = Result<Option<usize>, Error>;
    let cases: &[(&[u8], Verdict)] = &[
        // A TLS ClientHello's record and handshake headers on a plain-text port.
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", bad),
        (b"\x16\x03\x01", bad),
        (b"\x16", bad),
        (b"\0", bad),
        (b"GET\0/ HTTP/1.1", bad),
        (b" GET / HTTP/1.1", bad),
        (b"GET\t/ HTTP/1.1", bad),
        (b"G\xc3\xa9T / HTTP/1.1", bad),
        (b"{\"json\": 1}", bad),
        (b"GET\r\n", Err(Error::BadRequest("malformed request line"))),
        // Could still be a request: wait for more.
        (b"G", Ok(None)),
        (b"GET", Ok(None)),
        (b"get / HT", Ok(None)),
        (b"M-SEARCH * HTTP/1.1\r\n", Ok(None)),
        (b"PRI * HTTP/2.0\r\n", Err(Error::VersionNotSupported)),
        // Past the method, the rest waits for the line as before.
        (b"GET \x16\x03", Ok(None)),
    ];
    for (input, want) in cases {
        let got = HeadScan::default().scan(input, &config);
        assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(input));
        // Byte by byte: the same verdict, at the byte that decides it.
        let mut scan = HeadScan::default();
        let split = (1..=input.len())
            .map(|n| scan.scan(&input[..n], &config))
            .find(Result::is_err)
            .unwrap_or(Ok(None));
        assert_eq!(
            &split,
            want,
            "{:?} byte by byte",
            String::from_utf8_lossy(input)
        );
    }
    // A method longer than a request line may be is 414 however it arrives.
    let small = Config {
        max_request_line: 8,
        ..Config::default()
    };
    let long = b"ABCDEFGHIJKL\x16";
    assert_eq!(
        HeadScan::default().scan(long, &small),
        Err(Error::UriTooLong)
    );
    let mut scan = HeadScan::default();
    let split = (1..=long.len())
        .map(|n| scan.scan(&long[..n], &small))
        .find(Result::is_err);
    assert_eq!(split, Some(Err(Error::UriTooLong)));
}

#[test]
fn scan_is_incremental() {
    let config = Config::default();
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    let mut scan = HeadScan::default();
    for end in 0..input.len() {
        let got = scan.scan(&input[..end], &config).unwrap();
        assert_eq!(got, if end >= 27 { Some(27) } else { None }, "{end}");
        if got.is_some() {
            break;
        }
    }
}

#[test]
fn field_lookups_by_walk_answer_as_the_map_does() {
    use http::header::{self, HeaderMap, HeaderName, HeaderValue};
    // Small maps (walked) and large ones (hashed), names present once, several times, absent.
    for extra in [0usize, 3, 11, 40] {
        let mut h = HeaderMap::new();
        h.append(header::HOST, HeaderValue::from_static("a"));
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("upgrade"));
        for i in 0..extra {
            let name = HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap();
            h.append(name, HeaderValue::from_static("v"));
        }
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        let names = [
            header::HOST,
            header::CONNECTION,
            header::UPGRADE,
            HeaderName::from_static("x-f2"),
            HeaderName::from_static("x-nope"),
        ];
        for name in &names {
            assert_eq!(has(&h, name), h.contains_key(name), "{extra}: {name}");
            assert_eq!(first(&h, name), h.get(name), "{extra}: {name}");
            let walked: Vec<_> = all(&h, name).collect();
            let looked: Vec<_> = h.get_all(name).iter().collect();
            assert_eq!(walked, looked, "{extra}: {name}");
        }
    }
}

#[test]
fn hop_by_hop_names_are_the_listed_ones() {
    for name in [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
    }
    for name in [
        "host",
        "content-length",
        "content-type",
        "date",
        "server",
        "via",
        "x-forwarded-for",
        "tee",
        "upgrade-insecure-requests",
        "proxy",
        "keep-alives",
    ] {
        assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
    }
}

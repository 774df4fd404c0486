//! Response framing (RFC 9112 §6.3), head syntax and limits: every case split at every byte.

use super::*;

const OK5: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

fn resp(status_and_headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status_and_headers}\r\n\r\n{body}")
}

/// Expected transcript of one GET answered by a 200 with `body`, reusable or not.
fn ok(body: &str, reusable: bool) -> Vec<String> {
    let mut v = vec![
        "response 0 200 HTTP/1.1".to_owned(),
        format!("body 0 [{body}]"),
    ];
    if reusable {
        v.push("reusable".to_owned());
    }
    v.push("closed".to_owned());
    v
}

fn err(id: Option<u64>, what: &str) -> Vec<String> {
    vec![format!("error {id:?} {what}"), "closed".to_owned()]
}

fn err_after_head(what: &str) -> Vec<String> {
    let mut v = vec!["response 0 200 HTTP/1.1".to_owned()];
    v.extend(err(Some(0), what));
    v
}

#[test]
fn framing_table() {
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("GET", OK5.to_owned(), ok("hello", true)),
        ("GET", resp("200 OK\r\nContent-Length: 0", ""), ok("", true)),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 5\r\nContent-Length: 5", "hello"),
            ok("hello", true),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 5, 5", "hello"),
            ok("hello", true),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            ),
            ok("hello world", true),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: CHUNKED",
                "5;x=1\r\nhello\r\n0\r\n\r\n",
            ),
            ok("hello", true),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: chunked",
                "3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
            ),
            ok("abc", true),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: gzip, chunked",
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            ok("abc", true),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            ok("abc", true),
        ),
        // Chunked not final, or no framing at all: read until the server closes.
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: gzip", "abc"),
            ok("abc", false),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked, gzip", "abc"),
            ok("abc", false),
        ),
        ("GET", resp("200 OK", "until eof"), ok("until eof", false)),
        (
            "GET",
            resp("200 OK\r\nConnection: close", "until eof"),
            ok("until eof", false),
        ),
        // Bodiless whatever the headers say.
        ("HEAD", OK5.replace("hello", ""), ok("", true)),
        (
            "HEAD",
            resp("200 OK\r\nTransfer-Encoding: chunked", ""),
            ok("", true),
        ),
        ("HEAD", resp("200 OK", ""), ok("", true)),
        (
            "GET",
            resp("204 No Content\r\nContent-Length: 5", ""),
            vec![
                "response 0 204 HTTP/1.1".into(),
                "body 0 []".into(),
                "reusable".into(),
                "closed".into(),
            ],
        ),
        (
            "GET",
            resp("304 Not Modified\r\nTransfer-Encoding: chunked", ""),
            vec![
                "response 0 304 HTTP/1.1".into(),
                "body 0 []".into(),
                "reusable".into(),
                "closed".into(),
            ],
        ),
        // Interim responses: skipped (100 without Expect too).
        (
            "GET",
            format!(
                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n{OK5}"
            ),
            ok("hello", true),
        ),
        (
            "GET",
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n{OK5}"),
            err(Some(0), "malformed response: unexpected 101 response"),
        ),
        // Desync-prone framing.
        (
            "GET",
            resp("200 OK\r\nContent-Length: 5\r\nContent-Length: 6", "hello"),
            err(Some(0), "malformed response: conflicting Content-Length"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 1, 2", "x"),
            err(Some(0), "malformed response: conflicting Content-Length"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: +5", "hello"),
            err(Some(0), "malformed response: invalid Content-Length"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 0x5", "hello"),
            err(Some(0), "malformed response: invalid Content-Length"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 18446744073709551616", ""),
            err(Some(0), "malformed response: invalid Content-Length"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: ", ""),
            err(Some(0), "malformed response: empty Content-Length"),
        ),
        (
            "GET",
            resp(
                "200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
                "0\r\n\r\n",
            ),
            err(
                Some(0),
                "malformed response: Transfer-Encoding with Content-Length",
            ),
        ),
        (
            "HEAD",
            resp(
                "200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
                "",
            ),
            err(
                Some(0),
                "malformed response: Transfer-Encoding with Content-Length",
            ),
        ),
        (
            "GET",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_owned(),
            err(
                Some(0),
                "malformed response: Transfer-Encoding in HTTP/1.0 response",
            ),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked, chunked", ""),
            err(
                Some(0),
                "malformed response: chunked applied more than once",
            ),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: ", ""),
            err(Some(0), "malformed response: empty Transfer-Encoding"),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chu\"nked", ""),
            err(Some(0), "malformed response: invalid Transfer-Encoding"),
        ),
        // Chunk framing errors (the shared decoder).
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked", "5\r\nhelloX"),
            err_after_head("malformed response: chunk data not followed by CRLF"),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked", "x\r\n"),
            err_after_head("malformed response: invalid chunk size"),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked", "0\r\nX : 1\r\n\r\n"),
            err_after_head("malformed response: invalid trailer field"),
        ),
        // Head syntax.
        (
            "GET",
            "HTTP/1.1 2000 OK\r\n\r\n".to_owned(),
            err(Some(0), "malformed response: invalid status code"),
        ),
        (
            "GET",
            "HTTP/1.1 099 OK\r\n\r\n".to_owned(),
            err(Some(0), "malformed response: invalid status code"),
        ),
        (
            "GET",
            "HTTP/2 200 OK\r\n\r\n".to_owned(),
            err(Some(0), "malformed response: malformed HTTP version"),
        ),
        (
            "GET",
            "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n".to_owned(),
            err(Some(0), "malformed response: invalid header name"),
        ),
        (
            "GET",
            "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n".to_owned(),
            err(Some(0), "malformed response: invalid header value"),
        ),
        (
            "GET",
            "\r\nHTTP/1.1 200 OK\r\n\r\n".to_owned(),
            err(
                Some(0),
                "malformed response: empty line before the status line",
            ),
        ),
        // HTTP/1.0: persistent only with keep-alive.
        (
            "GET",
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned(),
            vec![
                "response 0 200 HTTP/1.0".into(),
                "body 0 [ok]".into(),
                "closed".into(),
            ],
        ),
        (
            "GET",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok".to_owned(),
            vec![
                "response 0 200 HTTP/1.0".into(),
                "body 0 [ok]".into(),
                "reusable".into(),
                "closed".into(),
            ],
        ),
        (
            "GET",
            resp(
                "200 OK\r\nConnection: foo, Close\r\nContent-Length: 2",
                "ok",
            ),
            ok("ok", false),
        ),
        // Early EOF: reported once, with the right kind.
        (
            "GET",
            "".to_owned(),
            err(Some(0), "connection closed before the response"),
        ),
        (
            "GET",
            "HTTP/1.1 200 OK\r\nContent-".to_owned(),
            err(Some(0), "connection closed mid-response"),
        ),
        (
            "GET",
            "HTTP/1.1 100 Continue\r\n\r\n".to_owned(),
            err(Some(0), "connection closed mid-response"),
        ),
        (
            "GET",
            resp("200 OK\r\nContent-Length: 10", "hello"),
            err_after_head("connection closed mid-response"),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked", "5\r\nhello\r\n"),
            err_after_head("connection closed mid-response"),
        ),
        (
            "GET",
            resp("200 OK\r\nTransfer-Encoding: chunked", "0\r\n"),
            err_after_head("connection closed mid-response"),
        ),
        // Bytes nobody asked for.
        (
            "GET",
            format!("{OK5}{OK5}"),
            vec![
                "response 0 200 HTTP/1.1".into(),
                "body 0 [hello]".into(),
                "error None malformed response: response without a request".into(),
                "closed".into(),
            ],
        ),
    ];
    let config = Config::default();
    for (method, input, want) in &cases {
        let got = split_runs(&config, &[method], input.as_bytes());
        assert_eq!(&got, want, "{method} {input:?}");
    }
}

#[test]
fn limits() {
    let config = Config {
        max_head_size: 64,
        max_headers: 2,
        max_body_size: Some(5),
        max_trailer_size: 8,
        ..Config::default()
    };
    let big = |n: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\nContent-Length: 0\r\n\r\n",
            "v".repeat(n)
        )
    };
    assert_eq!(big(21).len(), 64);
    let too_large = err(Some(0), "response head too large");
    let body_too_large = err(Some(0), "response body too large");
    let cases: Vec<(String, Vec<String>)> = vec![
        (big(21), ok("", true)),
        (big(22), too_large.clone()),
        (big(100), too_large.clone()),
        (
            resp("200 OK\r\nA: 1\r\nB: 2\r\nC: 3", ""),
            too_large.clone(),
        ),
        (
            resp("200 OK\r\nContent-Length: 5", "hello"),
            ok("hello", true),
        ),
        (
            resp("200 OK\r\nContent-Length: 6", "hello!"),
            body_too_large,
        ),
        (
            resp(
                "200 OK\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            ok("hello", true),
        ),
        (
            resp(
                "200 OK\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n",
            ),
            err_after_head("response body too large"),
        ),
        (
            resp(
                "200 OK\r\nTransfer-Encoding: chunked",
                "0\r\nX: 1234567\r\n\r\n",
            ),
            err_after_head("response head too large"),
        ),
        (resp("200 OK", "hello"), ok("hello", false)),
        (
            resp("200 OK", "hello!"),
            err_after_head("response body too large"),
        ),
    ];
    for (input, want) in &cases {
        let got = split_runs(&config, &["GET"], input.as_bytes());
        assert_eq!(&got, want, "{input:?}");
    }
}

#[test]
fn pipelined_responses_match_requests_in_order() {
    let input = [
        resp("200 OK\r\nContent-Length: 3", "one"),
        resp(
            "200 OK\r\nTransfer-Encoding: chunked",
            "3\r\ntwo\r\n0\r\n\r\n",
        ),
        resp("404 Not Found\r\nContent-Length: 0", ""),
        resp("200 OK\r\nContent-Length: 2", ""),
        resp("201 Created\r\nContent-Length: 4", "four"),
    ]
    .concat();
    let got = split_runs(
        &Config::default(),
        &["GET", "GET", "GET", "HEAD", "POST"],
        input.as_bytes(),
    );
    let want = [
        "response 0 200 HTTP/1.1",
        "body 0 [one]",
        "response 1 200 HTTP/1.1",
        "body 1 [two]",
        "response 2 404 HTTP/1.1",
        "body 2 []",
        "response 3 200 HTTP/1.1",
        "body 3 []",
        "response 4 201 HTTP/1.1",
        "body 4 [four]",
        "reusable",
        "closed",
    ];
    assert_eq!(got, want);
}

#[test]
fn closing_response_aborts_later_pipelined_requests() {
    let input = format!(
        "{}{}",
        resp("200 OK\r\nContent-Length: 1", "a"),
        resp("200 OK\r\nConnection: close\r\nContent-Length: 1", "b"),
    );
    let got = split_runs(&Config::default(), &["GET"; 4], input.as_bytes());
    let want = [
        "response 0 200 HTTP/1.1",
        "body 0 [a]",
        "response 1 200 HTTP/1.1",
        "body 1 [b]",
        "aborted 2",
        "aborted 3",
        "closed",
    ];
    assert_eq!(got, want);

    // Close-delimited: the EOF ends the body, later requests were never answered.
    let input = resp("200 OK", "rest");
    let got = split_runs(&Config::default(), &["GET"; 2], input.as_bytes());
    assert_eq!(
        got,
        [
            "response 0 200 HTTP/1.1",
            "body 0 [rest]",
            "aborted 1",
            "closed"
        ]
    );
}

#[test]
fn error_mid_pipeline_reports_once_and_aborts_the_rest() {
    let input = format!(
        "{}HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel",
        resp("200 OK\r\nContent-Length: 1", "a")
    );
    let got = split_runs(&Config::default(), &["GET"; 3], input.as_bytes());
    let want = [
        "response 0 200 HTTP/1.1",
        "body 0 [a]",
        "response 1 200 HTTP/1.1",
        "error Some(1) connection closed mid-response",
        "aborted 2",
        "closed",
    ];
    assert_eq!(got, want);
}

#[test]
fn a_proxy_codec_leaves_hop_by_hop_fields_out_but_reads_them() {
    use super::head::{parse_response, Parsed, RespFraming};
    // (`X-Early`, named by `Connection`, comes before it.)
    let head = "HTTP/1.1 200 OK\r\nX-Early: 0\r\nConnection: keep-alive, X-Hop, x-early\r\n\
                Keep-Alive: timeout=5\r\n\
                X-Hop: 1\r\nProxy-Authenticate: Basic\r\nTrailer: x-sum\r\nTE: trailers\r\n\
                Upgrade: websocket\r\nTransfer-Encoding: chunked\r\nX-End: 2\r\nVia: 1.1 a\r\n\r\n";
    let fields = |strip: bool| {
        let config = Config {
            strip_hop_by_hop: strip,
            ..Config::default()
        };
        let Ok(Parsed::Final(h)) = parse_response(head.as_bytes(), &config, false) else {
            panic!("not a final response");
        };
        // Read for the framing and the persistence either way.
        assert_eq!(h.framing, RespFraming::Chunked);
        assert!(h.keep_alive);
        let mut names: Vec<_> = h.response.headers().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(fields(true), ["via", "x-end"]);
    assert_eq!(fields(false).len(), 11);
    // A 101 keeps what says what the connection became.
    let config = Config {
        strip_hop_by_hop: true,
        ..Config::default()
    };
    let switching =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let Ok(Parsed::Switching(r)) = parse_response(switching, &config, false) else {
        panic!("not a 101");
    };
    assert_eq!(r.headers()["upgrade"], "websocket");
    assert_eq!(r.headers()["connection"], "upgrade");
}

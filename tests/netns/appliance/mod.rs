//! The appliance as an operator runs it: the real `paf run --config` on a TAP in a network
//! namespace, with the example configs of `config/`, reached by curl and openssl from the kernel
//! side, and proxying to nginx and a Python server that also live on the kernel side.
//!
//! - `config/reverse-proxy.toml`: every route type; the proxy to nginx (HTTP and HTTPS with a
//!   test CA and an SNI override) and to Python; 100 MB down and up, byte-exact, time-bounded;
//!   forwarding fields in, hop-by-hop fields out; `/metrics` parsed and matched to the requests.
//! - Upstream failures: refused and unreachable URLs → 502 within the connect timeout, a slow
//!   upstream → 504, a failing URL of two skipped.
//! - `config/static-files.toml`: traversal refused, ranges and conditionals per RFC 9110, and a
//!   SIGTERM during a large download (it completes, then paf exits 0).
//! - `config/https-sni.toml`: `openssl s_client -servername` gets the right certificate.
//! - Compression: `curl --compressed` gets br and gzip, byte-exact, never for a range.
//! - Per-client limits (`client_limits.rs`): a client flooding with wrk gets 429 with
//!   `Retry-After`, another client (a second address on the kernel side) keeps getting 200s
//!   meanwhile; `curl --haproxy-protocol` from a trusted source is served, without the header
//!   or from an untrusted address it is reset, and the client a header names is the one
//!   `max_connections_per_ip` counts.
//! - `send_proxy_protocol` (`send_proxy_protocol.rs`): the upstream sees each client in a v1 or
//!   v2 header and no upstream connection carries two clients; `compress` on a proxy route
//!   (`proxy_compress.rs`): `curl --compressed` through it, byte-exact, never for a range.
//! - Five broken configs (`broken_configs.rs`): `paf check` names each bad key and exits 2;
//!   `paf run` exits 2 before opening the TAP (it keeps NO-CARRIER).
//!
//! Each example config is copied into a scratch directory next to the `pki/` and `www/` its
//! relative paths name (made here with `paf cert` and files), so the file tested is the file
//! shipped. Needs root, nginx, python3, curl, openssl: without them the tests print `SKIP`.

use crate::common;
mod broken_configs;
mod client_limits;
mod proxy_compress;
mod send_proxy_protocol;
pub(crate) mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_timeout, Netns};
use support::*;

#[test]
fn reverse_proxy_example_reaches_nginx_and_python_over_http_and_https() {
    if skip("reverse_proxy_example_reaches_nginx_and_python_over_http_and_https") {
        return;
    }
    // 400 MB through the proxy keep both cores busy. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("applproxy");
    let dir = Scratch::new("proxy");
    dir.cert("upstream", &["upstream.test"]);
    let blob = dir.big_file("www/blob", BIG, 0);
    let upload = dir.big_file("upload.bin", BIG, 0x5a);
    let upload_sum = sha256(&upload);
    let _nginx = nginx(&ns, &dir);
    let _python = python(&ns, &dir, 8081);
    let config = dir.example("reverse-proxy.toml");
    let mut paf = start(&ns, &config);
    // Requests per (route index, class) and body bytes sent up, to match /metrics at the end.
    let mut want: BTreeMap<(usize, &str), u64> = BTreeMap::new();
    let mut count =
        |route: usize, class: &'static str| *want.entry((route, class)).or_default() += 1;

    // The simple routes.
    assert_eq!(
        get(&ns, "http://198.18.0.2/health", &[]),
        (200, "ok\n".into())
    );
    count(0, "2xx");
    let (code, body) = get(&ns, "http://198.18.0.2/about", &[]);
    assert_eq!((code, body.as_str()), (200, "paf reverse proxy\n"));
    count(3, "2xx");
    let out = curl(
        &ns,
        &["-i", "-H", "Host: old.test", "http://198.18.0.2/a/b?c=d"],
    );
    let (code, head) = answer(&out);
    assert_eq!(code, 308, "{out}");
    assert!(head.contains("location: http://paf.test/a/b?c=d"), "{out}");
    count(2, "3xx");

    // Plain HTTP to nginx: the body and a Via on the response.
    let out = curl(&ns, &["-i", "http://198.18.0.2/"]);
    let (code, text) = answer(&out);
    assert_eq!(code, 200, "{out}");
    assert!(text.ends_with("nginx hello\n"), "{out}");
    assert!(text.to_ascii_lowercase().contains("via: 1.1 paf"), "{out}");
    count(6, "2xx");

    // Python sees the forwarding fields and none of the hop-by-hop ones; its Host is its own.
    let (code, seen) = get(
        &ns,
        "http://198.18.0.2/headers",
        &[
            "-H",
            "Host: py.test",
            "-H",
            "Connection: keep-alive, X-Hop",
            "-H",
            "X-Hop: secret",
            "-H",
            "Keep-Alive: timeout=5",
            "-H",
            "Proxy-Authorization: Basic eDp5",
            "-H",
            "TE: trailers",
            "-H",
            "Upgrade: h2c",
            "-H",
            "X-Forwarded-For: 203.0.113.9",
            "-H",
            "X-End-To-End: kept",
        ],
    );
    assert_eq!(code, 200, "{seen}");
    count(4, "2xx");
    for line in [
        "host: 198.18.0.1:8081",
        "x-forwarded-for: 203.0.113.9, 198.18.0.1",
        "x-forwarded-proto: http",
        "via: 1.1 paf",
        "x-end-to-end: kept",
    ] {
        assert!(seen.lines().any(|l| l == line), "{line:?} not in\n{seen}");
    }
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            !seen.lines().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone} reached the upstream:\n{seen}"
        );
    }

    // nginx over TLS for secure.test, with the SNI of the config (verified with the test CA).
    for (host, want) in [
        ("paf.test", "http \n"),
        ("secure.test", "https upstream.test\n"),
    ] {
        let (code, body) = get(
            &ns,
            "http://198.18.0.2/scheme",
            &["-H", &format!("Host: {host}")],
        );
        assert_eq!((code, body.as_str()), (200, want), "{host}");
        count(if host == "paf.test" { 6 } else { 5 }, "2xx");
    }

    // 100 MB down from nginx over HTTP and over HTTPS.
    for (host, tag) in [("paf.test", "http"), ("secure.test", "https")] {
        let dest = dir.s(&format!("down-{tag}.bin"));
        let t0 = Instant::now();
        let (code, _) = get(
            &ns,
            "http://198.18.0.2/blob",
            &["-H", &format!("Host: {host}"), "-o", &dest],
        );
        let took = t0.elapsed();
        assert_eq!(code, 200, "{tag}");
        assert!(took < BIG_TIME, "{tag}: 100 MB down took {took:?}");
        assert_eq!(sha256(&dest), sha256(&blob), "{tag}: body differs");
        fs::remove_file(&dest).unwrap();
        eprintln!("100 MB down through the proxy ({tag} upstream): {took:?}");
        count(if tag == "http" { 6 } else { 5 }, "2xx");
    }
    // 100 MB up to Python (Content-Length) and to nginx over HTTPS (PUT, stored to disk).
    let t0 = Instant::now();
    let (code, sum) = get(
        &ns,
        "http://198.18.0.2/sum",
        &[
            "-H",
            "Host: py.test",
            "--data-binary",
            &format!("@{upload}"),
        ],
    );
    let took = t0.elapsed();
    assert_eq!(code, 200);
    assert_eq!(sum.trim(), format!("{BIG} {upload_sum}"));
    assert!(took < BIG_TIME, "100 MB up took {took:?}");
    eprintln!("100 MB up through the proxy (python upstream): {took:?}");
    count(4, "2xx");
    let t0 = Instant::now();
    let (code, _) = get(
        &ns,
        "http://198.18.0.2/dav/up.bin",
        &["-H", "Host: secure.test", "-T", &upload],
    );
    let took = t0.elapsed();
    assert!(code == 201 || code == 204, "PUT: {code}");
    assert!(took < BIG_TIME, "100 MB PUT took {took:?}");
    assert_eq!(sha256(&dir.s("dav/dav/up.bin")), upload_sum);
    eprintln!("100 MB up through the proxy (nginx https upstream): {took:?}");
    count(5, "2xx");
    // A chunked upload: the proxy sends it chunked, Python decodes it.
    let small = dir.big_file("small.bin", 3_000_000, 7);
    let (code, sum) = get(
        &ns,
        "http://198.18.0.2/sum",
        &[
            "-H",
            "Host: py.test",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{small}"),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(sum.trim(), format!("3000000 {}", sha256(&small)));
    count(4, "2xx");

    // Bodies streamed, not held: paf's peak memory stays far below one 100 MB body.
    let status = fs::read_to_string(format!("/proc/{}/status", paf.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    eprintln!("paf peak RSS after 4 x 100 MB: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 48 * 1024, "peak RSS {peak_kib} KiB");

    // /metrics: Prometheus text whose counters are the requests above.
    let m = metrics(&ns);
    for ((route, class), n) in &want {
        let key =
            format!("paf_requests_total{{listener=\"web\",route=\"{route}\",class=\"{class}\"}}");
        assert_eq!(m.get(&key).copied(), Some(*n as f64), "{key}: {m:#?}");
    }
    let total: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("paf_requests_total{") && !k.contains("route=\"1\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, want.values().sum::<u64>() as f64, "{m:#?}");
    let up = (2 * BIG + 3_000_000) as f64;
    assert_eq!(
        m.get("paf_request_body_bytes_total{listener=\"web\"}")
            .copied(),
        Some(up),
        "{m:#?}"
    );
    assert!(
        !m.keys()
            .any(|k| k.starts_with("paf_upstream_errors_total{")),
        "{m:#?}"
    );
    assert!(paf.is_running());
    assert!(paf.stop(Duration::from_secs(20)).success());
}

/// Upstream failures, with a config of their own (not an example).
// One worker: each worker keeps its own record of failed upstream URLs, and the test counts
// the connect errors of one.
const FAILING: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
workers = 1

[[listener]]
name = "web"
port = 80
[[listener.route]]
path = "/metrics"
action = "metrics"
[[listener.route]]
path = "/refused"
action = "proxy"
upstream = "refused"
[[listener.route]]
path = "/unreachable"
action = "proxy"
upstream = "unreachable"
[[listener.route]]
path = "/slow"
action = "proxy"
upstream = "slow"
[[listener.route]]
path = "/"
action = "proxy"
upstream = "balanced"

[[upstream]]
name = "refused"
urls = ["http://198.18.0.1:8099"]
connect_timeout = "1s"
[[upstream]]
name = "unreachable"
urls = ["http://198.18.0.77:8080"]
connect_timeout = "1s"
[[upstream]]
name = "slow"
urls = ["http://198.18.0.1:8081"]
response_timeout = "1s"
[[upstream]]
name = "balanced"
urls = ["http://198.18.0.1:8099", "http://198.18.0.1:8081"]
connect_timeout = "1s"
retry_after = "1m"
"#;

#[test]
fn upstream_down_is_502_within_the_connect_timeout_and_slow_is_504() {
    if skip("upstream_down_is_502_within_the_connect_timeout_and_slow_is_504") {
        return;
    }
    let ns = Netns::new("applfail");
    let dir = Scratch::new("fail");
    dir.write("www/hello", "hello from python\n");
    let _python = python(&ns, &dir, 8081);
    let config = dir.write("failing.toml", FAILING);
    let _paf = start(&ns, &config);
    for (path, bound) in [("refused", 1.0), ("unreachable", 2.5)] {
        let t0 = Instant::now();
        let (code, body) = get(&ns, &format!("http://198.18.0.2/{path}"), &[]);
        let took = t0.elapsed().as_secs_f64();
        assert_eq!(code, 502, "{path}: {body}");
        assert!(
            took < bound,
            "{path}: 502 after {took:.2}s (connect timeout 1s)"
        );
        eprintln!("{path}: 502 after {took:.2}s");
    }
    let t0 = Instant::now();
    let (code, body) = get(&ns, "http://198.18.0.2/slow", &[]);
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(code, 504, "{body}");
    assert!(
        (0.9..3.0).contains(&took),
        "504 after {took:.2}s (response timeout 1s)"
    );
    // Two URLs, the first refuses: every GET is answered by the second; the failing one is
    // tried once, then skipped for retry_after.
    for _ in 0..4 {
        let (code, body) = get(&ns, "http://198.18.0.2/hello", &[]);
        assert_eq!((code, body.as_str()), (200, "hello from python\n"));
    }
    // A client that leaves mid-download: the proxy stops reading the upstream and closes its
    // connection, rather than draining the other 98 MB. The client's receive buffer is capped
    // at 4 MiB (this kernel lets it grow to 32 MiB, which alone would hold what the bound
    // below allows), so what the upstream sends measures paf's buffering, not the client's.
    let out = ns.run(
        "sysctl",
        ["-w", "net.ipv4.tcp_rmem=4096 131072 4194304"],
        Duration::from_secs(5),
    );
    assert!(out.success(), "{out}");
    let out = curl(
        &ns,
        &[
            "--max-time",
            "1",
            "--limit-rate",
            "1M",
            "-o",
            "/dev/null",
            "http://198.18.0.2/stream",
        ],
    );
    assert_eq!(out.code(), Some(28), "curl should time out: {out}");
    let log = dir.s("stream.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&log).exists() {
        assert!(Instant::now() < deadline, "the upstream is still sending");
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = fs::read_to_string(&log).unwrap();
    let sent: u64 = outcome.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(outcome.starts_with("aborted"), "{outcome}");
    assert!(sent < 20_000_000, "{outcome}");
    eprintln!("client gone: upstream stopped after {sent} bytes");

    let m = metrics(&ns);
    let errors = |u: &str, k: &str| {
        m.get(&format!(
            "paf_upstream_errors_total{{upstream=\"{u}\",kind=\"{k}\"}}"
        ))
        .copied()
    };
    assert_eq!(errors("refused", "connect"), Some(1.0), "{m:#?}");
    assert_eq!(errors("unreachable", "connect"), Some(1.0), "{m:#?}");
    assert_eq!(errors("slow", "timeout"), Some(1.0), "{m:#?}");
    assert_eq!(errors("balanced", "connect"), Some(1.0), "{m:#?}");
    let key = |r: usize, c: &str| {
        format!("paf_requests_total{{listener=\"web\",route=\"{r}\",class=\"{c}\"}}")
    };
    assert_eq!(m.get(&key(1, "5xx")).copied(), Some(1.0), "{m:#?}");
    assert_eq!(m.get(&key(3, "5xx")).copied(), Some(1.0), "{m:#?}");
    assert_eq!(m.get(&key(4, "2xx")).copied(), Some(5.0), "{m:#?}");
}

#[test]
fn static_files_example_refuses_traversal_and_honours_ranges_and_conditionals() {
    if skip("static_files_example_refuses_traversal_and_honours_ranges_and_conditionals") {
        return;
    }
    let ns = Netns::new("applfiles");
    let dir = Scratch::new("files");
    site(&dir);
    let config = dir.example("static-files.toml");
    let mut paf = start(&ns, &config);
    let base = "http://198.18.0.2";
    let url = |p: &str| format!("{base}{p}");
    assert_eq!(get(&ns, &url("/health"), &[]), (200, "ok\n".into()));
    let (code, body) = get(&ns, &url("/"), &[]);
    assert_eq!(code, 200);
    assert!(body.contains("href=\"/site/\""), "{body}");
    assert_eq!(get(&ns, &url("/site/"), &[]), (200, "home\n".into()));
    assert_eq!(
        get(&ns, &url("/site/inside"), &[]),
        (200, "hello world\n".into())
    );
    let (code, head) = get(&ns, &url("/site/sub"), &["-i"]);
    assert_eq!(code, 301);
    assert_eq!(
        field(&head, "location").as_deref(),
        Some("/site/sub/"),
        "{head}"
    );
    assert_eq!(get(&ns, &url("/site/sub/"), &[]), (200, "sub\n".into()));
    let (code, head) = get(&ns, &url("/docs/x?y=1"), &["-i"]);
    assert_eq!(code, 301);
    assert_eq!(
        field(&head, "location").as_deref(),
        Some("/site/docs/x?y=1"),
        "{head}"
    );

    // Traversal: never the secret, always 403 or 404.
    for path in [
        "/site/../secret.txt",
        "/site/%2e%2e/secret.txt",
        "/site/%2E%2E/secret.txt",
        "/site/%2e%2e%2fsecret.txt",
        "/site/..%5csecret.txt",
        "/site/escape",
        "/site/./a.txt",
        "/site/a.txt%00",
    ] {
        let (code, body) = get(&ns, &url(path), &["--path-as-is"]);
        assert!(code == 403 || code == 404, "{path}: {code} {body}");
        assert!(!body.contains("secret"), "{path}: {body}");
    }

    // Validators and conditionals (RFC 9110 §13).
    let (code, head) = get(&ns, &url("/site/a.txt"), &["-i"]);
    assert_eq!(code, 200);
    let etag = field(&head, "etag").expect("ETag");
    let modified = field(&head, "last-modified").expect("Last-Modified");
    assert_eq!(field(&head, "accept-ranges").as_deref(), Some("bytes"));
    let cases: &[(&[&str], u16, &str)] = &[
        (&["-H", &format!("If-None-Match: {etag}")], 304, ""),
        (&["-H", "If-None-Match: \"other\""], 200, "hello world\n"),
        (&["-H", "If-None-Match: *"], 304, ""),
        (&["-H", &format!("If-Modified-Since: {modified}")], 304, ""),
        (
            // If-None-Match wins over If-Modified-Since (§13.2.2).
            &[
                "-H",
                "If-None-Match: \"other\"",
                "-H",
                &format!("If-Modified-Since: {modified}"),
            ],
            200,
            "hello world\n",
        ),
        (&["-H", "If-Match: \"other\""], 412, "precondition failed\n"),
        (&["-H", &format!("If-Match: {etag}")], 200, "hello world\n"),
        (
            &["-H", "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT"],
            412,
            "precondition failed\n",
        ),
        // Ranges (§14): first, suffix, open-ended, unsatisfiable.
        (&["-H", "Range: bytes=0-4"], 206, "hello"),
        (&["-H", "Range: bytes=-6"], 206, "world\n"),
        (&["-H", "Range: bytes=6-"], 206, "world\n"),
        (&["-H", "Range: bytes=100-"], 416, ""),
        // A range on a 304 is no range: the conditional decides first.
        (
            &[
                "-H",
                &format!("If-None-Match: {etag}"),
                "-H",
                "Range: bytes=0-1",
            ],
            304,
            "",
        ),
    ];
    for (args, want_code, want_body) in cases {
        let (code, body) = get(&ns, &url("/site/a.txt"), args);
        assert_eq!((code, body.as_str()), (*want_code, *want_body), "{args:?}");
    }
    let (code, head) = get(&ns, &url("/site/a.txt"), &["-i", "-H", "Range: bytes=0-4"]);
    assert_eq!(code, 206);
    assert_eq!(
        field(&head, "content-range").as_deref(),
        Some("bytes 0-4/12")
    );
    assert_eq!(field(&head, "content-length").as_deref(), Some("5"));
    let (code, head) = get(&ns, &url("/site/a.txt"), &["-i", "-H", "Range: bytes=100-"]);
    assert_eq!(code, 416);
    assert_eq!(field(&head, "content-range").as_deref(), Some("bytes */12"));
    // HEAD: the length, no body.
    let (code, head) = get(&ns, &url("/site/a.txt"), &["-I"]);
    assert_eq!(code, 200);
    assert_eq!(field(&head, "content-length").as_deref(), Some("12"));
    let m = metrics(&ns);
    assert!(m.contains_key("paf_stack_sockets"), "{m:#?}");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

#[test]
fn curl_compressed_gets_br_and_gzip_byte_exact_and_never_for_ranges() {
    if skip("curl_compressed_gets_br_and_gzip_byte_exact_and_never_for_ranges") {
        return;
    }
    let ns = Netns::new("applzip");
    let dir = Scratch::new("zip");
    site(&dir);
    let text: String = (0..50_000)
        .map(|i| format!("{i}: a line of text worth compressing\n"))
        .collect();
    let original = dir.write("www/big.txt", &text);
    let config = dir.example("static-files.toml");
    let mut paf = start(&ns, &config);
    let url = "http://198.18.0.2/site/big.txt";
    for enc in ["br", "gzip"] {
        let got = dir.s(&format!("got.{enc}"));
        let accept = format!("Accept-Encoding: {enc}");
        let (code, head) = get(
            &ns,
            url,
            &["--compressed", "-H", &accept, "-D", "-", "-o", &got],
        );
        assert_eq!(code, 200, "{head}");
        assert_eq!(
            field(&head, "content-encoding").as_deref(),
            Some(enc),
            "{head}"
        );
        assert_eq!(field(&head, "vary").as_deref(), Some("accept-encoding"));
        assert_eq!(
            sha256(&got),
            sha256(&original),
            "{enc}: decoded body differs"
        );
        // What went over the wire was the compressed stream.
        let raw = dir.s(&format!("raw.{enc}"));
        let (code, _) = get(&ns, url, &["-H", &accept, "-o", &raw]);
        assert_eq!(code, 200);
        let wire = std::fs::metadata(&raw).unwrap().len();
        assert!(
            wire < text.len() as u64 / 4,
            "{enc}: {wire} bytes on the wire"
        );
    }
    // A range is of the identity, compressed or not asked.
    let (code, body) = get(
        &ns,
        url,
        &[
            "--compressed",
            "-H",
            "Range: bytes=0-24",
            "-D",
            "/dev/stderr",
        ],
    );
    assert_eq!((code, body.as_str()), (206, &text[..25]));
    let (code, head) = get(
        &ns,
        url,
        &[
            "--compressed",
            "-H",
            "Range: bytes=0-24",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ],
    );
    assert_eq!(code, 206);
    assert_eq!(field(&head, "content-encoding"), None, "{head}");
    // Not asked: as it is.
    let (code, body) = get(&ns, url, &[]);
    assert_eq!(code, 200);
    assert!(body == text, "identity body differs");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

#[test]
fn sigterm_during_a_large_download_lets_it_complete_then_exits_0() {
    if skip("sigterm_during_a_large_download_lets_it_complete_then_exits_0") {
        return;
    }
    let ns = Netns::new("applterm");
    let dir = Scratch::new("term");
    site(&dir);
    let big = dir.big_file("www/big.bin", BIG, 3);
    let config = dir.example("static-files.toml");
    let mut paf = start(&ns, &config);
    let dest = dir.s("got.bin");
    // About 4 s at 25 MB/s: long enough to be in flight when the signal comes.
    let mut download = ns.spawn(
        "curl",
        [
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "--limit-rate",
            "25M",
            "-o",
            &dest,
            "http://198.18.0.2/site/big.bin",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::metadata(&dest).map_or(0, |m| m.len()) < 5_000_000 {
        assert!(Instant::now() < deadline, "download did not start");
        assert!(
            download.is_running(),
            "curl ended early: {}",
            download.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    paf.signal("TERM");
    let signalled = Instant::now();
    // New connections are refused while the download drains.
    std::thread::sleep(Duration::from_millis(300));
    let out = ns.run(
        "curl",
        ["-sS", "--max-time", "3", "http://198.18.0.2/health"],
        Duration::from_secs(10),
    );
    assert!(!out.success(), "served after SIGTERM: {out}");
    let status = download
        .wait_timeout(Duration::from_secs(60))
        .expect("curl ends");
    assert!(status.success(), "curl: {status}: {}", download.stderr());
    assert_eq!(fs::metadata(&dest).unwrap().len(), BIG as u64);
    assert_eq!(sha256(&dest), sha256(&big), "body differs");
    let exit = paf
        .wait_timeout(Duration::from_secs(30))
        .expect("paf exits");
    assert!(exit.success(), "paf: {exit}\n{}", paf.stderr());
    eprintln!(
        "download finished and paf exited 0 {:?} after SIGTERM",
        signalled.elapsed()
    );
}

#[test]
fn https_sni_example_picks_the_certificate_by_name() {
    if skip("https_sni_example_picks_the_certificate_by_name") {
        return;
    }
    let ns = Netns::new("applsni");
    let dir = Scratch::new("sni");
    dir.cert("default", &["paf.test", "198.18.0.2"]);
    dir.cert("a", &["a.test"]);
    dir.cert("b", &["b.test"]);
    let config = dir.example("https-sni.toml");
    let mut paf = start(&ns, &config);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), Duration::from_secs(15))
        .expect("443");
    // openssl s_client: the certificate served for each SNI name, and without SNI.
    for (sni, want) in [
        ("-servername a.test", "DNS:a.test"),
        ("-servername b.test", "DNS:b.test"),
        ("-servername other.test", "DNS:paf.test"),
        ("-noservername", "DNS:paf.test"),
    ] {
        let script = format!(
            "openssl s_client -connect 198.18.0.2:443 {sni} </dev/null 2>/dev/null \
             | openssl x509 -noout -ext subjectAltName"
        );
        let out = ns.run("bash", ["-c", &script], T);
        assert!(out.success(), "{out}");
        assert!(out.stdout.contains(want), "{sni}: want {want}\n{out}");
        assert_eq!(
            out.stdout.matches("DNS:").count(),
            1,
            "{sni}: one name only\n{out}"
        );
    }
    // curl verifies each against its own CA and gets that host's route.
    for (host, ca, body) in [
        ("a.test", "a", "site a\n"),
        ("b.test", "b", "site b\n"),
        ("paf.test", "default", "default site\n"),
    ] {
        let ca = dir.s(&format!("pki/{ca}/ca.pem"));
        let got = get(
            &ns,
            &format!("https://{host}/"),
            &[
                "--cacert",
                &ca,
                "--resolve",
                &format!("{host}:443:198.18.0.2"),
            ],
        );
        assert_eq!(got, (200, body.to_owned()), "{host}");
    }
    // Plain HTTP redirects to HTTPS, keeping host and path.
    let (code, head) = get(&ns, "http://198.18.0.2/x?y", &["-i", "-H", "Host: a.test"]);
    assert_eq!(code, 301);
    assert_eq!(
        field(&head, "location").as_deref(),
        Some("https://a.test/x?y")
    );
    let ca = dir.s("pki/default/ca.pem");
    let (code, text) = get(
        &ns,
        "https://paf.test/metrics",
        &["--cacert", &ca, "--resolve", "paf.test:443:198.18.0.2"],
    );
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    let ok = m
        .get("paf_tls_handshakes_total{listener=\"https\",result=\"ok\"}")
        .copied();
    assert_eq!(ok, Some(8.0), "4 s_client + 3 curl + this one: {m:#?}");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

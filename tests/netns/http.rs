//! `paf run` on a real TAP in a network namespace, against real clients: curl (GET, HEAD, POST
//! chunked and whole, `Expect: 100-continue`, HTTP/1.0, keep-alive reuse, IPv6), a slowloris
//! client cut off with 408 while others are served, wrk with 200 connections, SIGTERM during a
//! response, and the kernel-socket twin.
//!
//! These need root (netns + TAP): without it they print `SKIP` and return; in CI
//! (`PAF_REQUIRE_NETNS=1`) they must run. The test routes (`--test-routes`) are documented in
//! `paf::service::builtin`.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, ChildGuard, Netns, Output};
use paf::service::builtin::{blob_byte, StreamHash, BENCH_BODY, PAGE};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);

/// Starts `paf run --test-routes` (plus `extra`) and waits until port 80 answers.
fn start(ns: &Netns, extra: &[&str]) -> ChildGuard {
    let mut args = vec!["--test-routes", "--max-body", "100000000"];
    args.extend_from_slice(extra);
    let mut paf = ns.paf(Path::new(PAF), "run", &args);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(80), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("paf run not reachable: {e}"));
    paf
}

fn curl(ns: &Netns, args: &[&str]) -> Output {
    let out = ns.run("curl", args, T);
    assert!(out.success(), "{out}");
    out
}

/// Writes a deterministic test file of `n` bytes and returns its path and [`StreamHash`].
fn test_file(name: &str, n: usize) -> (std::path::PathBuf, u64) {
    let path = std::env::temp_dir().join(format!("paf-{}-{name}", std::process::id()));
    let data: Vec<u8> = (0..n as u64).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&path, &data).expect("write test file");
    let mut h = StreamHash::new();
    h.update(&data);
    (path, h.finish())
}

#[test]
fn curl_get_head_post_expect_and_http10() {
    if !require_netns("curl_get_head_post_expect_and_http10") || !require_tools("curl", &["curl"]) {
        return;
    }
    let ns = Netns::new("curl");
    let paf = start(&ns, &[]);
    let url = "http://198.18.0.2/";

    let out = curl(&ns, &["-sS", "-i", url]);
    assert!(out.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.stdout.contains("content-type: text/html"), "{out}");
    assert!(out.stdout.ends_with(PAGE), "{out}");

    let out = curl(&ns, &["-sS", "-I", url]);
    assert!(out.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("content-length: {}\r\n", PAGE.len())),
        "{out}"
    );

    let out = curl(&ns, &["-sS", "-i", "-X", "DELETE", url]);
    assert!(out.stdout.starts_with("HTTP/1.1 405 "), "{out}");
    assert!(out.stdout.contains("allow: GET, HEAD\r\n"), "{out}");
    let out = curl(&ns, &["-sS", "-i", "http://198.18.0.2/nothing-here"]);
    assert!(out.stdout.starts_with("HTTP/1.1 404 "), "{out}");

    // A chunked upload (-T with Transfer-Encoding: chunked), counted and hashed as it streams.
    let (file, hash) = test_file("upload", 3_000_000);
    let f = file.to_str().unwrap();
    let want = format!("bytes=3000000 hash={hash:016x}\n");
    let out = curl(
        &ns,
        &[
            "-sS",
            "-T",
            f,
            "-H",
            "Transfer-Encoding: chunked",
            "http://198.18.0.2/count",
        ],
    );
    assert_eq!(out.stdout, want, "{out}");
    // The same with Content-Length and Expect: 100-continue.
    let out = curl(
        &ns,
        &[
            "-sS",
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{f}"),
            "http://198.18.0.2/count",
        ],
    );
    assert_eq!(out.stdout, want, "{out}");
    assert!(out.stderr.contains("< HTTP/1.1 100 Continue"), "{out}");
    // /drop (the benchmarks' upload target) reads the body and says only how long it was.
    let out = curl(
        &ns,
        &[
            "-sS",
            "-T",
            f,
            "-H",
            "Transfer-Encoding: chunked",
            "http://198.18.0.2/drop",
        ],
    );
    assert_eq!(out.stdout, "bytes=3000000\n", "{out}");
    // --data-binary to /echo comes back byte for byte.
    let echoed = file.with_extension("echoed");
    curl(
        &ns,
        &[
            "-sS",
            "--data-binary",
            &format!("@{f}"),
            "-o",
            echoed.to_str().unwrap(),
            "http://198.18.0.2/echo",
        ],
    );
    assert!(std::fs::read(&echoed).unwrap() == std::fs::read(&file).unwrap());
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&echoed);

    // HTTP/1.0: answered, and closed after the response.
    let out = curl(&ns, &["-sS", "-v", "--http1.0", url]);
    assert!(out.stderr.contains("> GET / HTTP/1.0"), "{out}");
    assert!(out.stderr.contains("< connection: close"), "{out}");
    assert_eq!(out.stdout, PAGE);
    drop(paf);
}

#[test]
fn keep_alive_reuse_and_ipv6() {
    if !require_netns("keep_alive_reuse_and_ipv6") || !require_tools("keep_alive", &["curl"]) {
        return;
    }
    let ns = Netns::new("keepalive");
    let _paf = start(&ns, &[]);
    let urls = [
        "http://198.18.0.2/",
        "http://198.18.0.2/bench",
        "http://198.18.0.2/",
    ];
    let out = curl(&ns, &["-sS", "-v", urls[0], urls[1], urls[2]]);
    assert_eq!(
        out.stderr.matches("Re-using existing connection").count(),
        2,
        "{out}"
    );
    assert_eq!(out.stderr.matches("Connected to").count(), 1, "{out}");
    let body = format!("{PAGE}{}{PAGE}", String::from_utf8_lossy(BENCH_BODY));
    assert_eq!(out.stdout, body);

    let out = curl(&ns, &["-sS", "-i", "-g", "http://[fd00:198:18::2]/bench"]);
    assert!(out.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.stdout.ends_with("hello world\n"), "{out}");
    let out = curl(
        &ns,
        &[
            "-sS",
            "-g",
            "http://[fd00:198:18::2]/",
            "http://[fd00:198:18::2]/",
            "-v",
        ],
    );
    assert!(out.stderr.contains("Re-using existing connection"), "{out}");
}

#[test]
fn slow_client_gets_408_while_a_normal_client_is_served() {
    if !require_netns("slow_client_gets_408") || !require_tools("slow_client", &["curl"]) {
        return;
    }
    // It counts the requests served in 5 s. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("slowloris");
    let paf = start(&ns, &["--head-timeout", "3s"]);
    // One byte of the head per second, 12 bytes in all: the head timeout must cut it off first.
    let script = r#"trap '' PIPE
exec 3<>/dev/tcp/198.18.0.2/80
start=$(date +%s%N)
(timeout 20 cat <&3; echo "elapsed_ms $((($(date +%s%N) - start) / 1000000))") &
for c in G E T ' ' / ' ' H T T P / 1; do printf %s "$c" >&3 2>/dev/null || break; sleep 1; done
wait"#;
    let mut slow = ns.spawn("bash", ["-c", script]);
    let start = Instant::now();
    let mut served = 0;
    while start.elapsed() < Duration::from_secs(5) {
        let out = curl(&ns, &["-sS", "http://198.18.0.2/bench"]);
        assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
        served += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(served >= 10, "only {served} requests served meanwhile");
    slow.wait_timeout(Duration::from_secs(30))
        .expect("slow client finished");
    let out = slow.stdout();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(out.contains("connection: close\r\n"), "{out}");
    let elapsed_ms: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ms "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        (2500..9000).contains(&elapsed_ms),
        "408 after {elapsed_ms} ms: {out}"
    );
    drop(paf);
}

#[test]
fn wrk_with_200_connections_sees_no_errors() {
    if !require_netns("wrk_200") || !require_tools("wrk_200", &["wrk"]) {
        return;
    }
    // wrk with 200 connections. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("wrk");
    let mut paf = start(&ns, &[]);
    let out = ns.run(
        "wrk",
        [
            "-t",
            "2",
            "-c",
            "200",
            "-d",
            "3s",
            "--latency",
            "http://198.18.0.2/bench",
        ],
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    assert!(!out.stdout.contains("Socket errors"), "{out}");
    assert!(!out.stdout.contains("Non-2xx"), "{out}");
    let rps: f64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(rps > 100.0, "{out}");
    eprintln!("wrk -c 200 on the TAP: {rps} req/s");
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "paf did not exit 0"
    );
}

#[test]
fn sigterm_during_a_response_completes_it_and_exits_0() {
    if !require_netns("sigterm_drain") || !require_tools("sigterm_drain", &["curl"]) {
        return;
    }
    let ns = Netns::new("sigterm");
    let mut paf = start(&ns, &[]);
    const SIZE: u64 = 12_000_000;
    let file = std::env::temp_dir().join(format!("paf-{}-blob", std::process::id()));
    // About 4 s at 3 MB/s: SIGTERM arrives in the middle.
    let mut download = ns.spawn(
        "curl",
        [
            "-sS",
            "--limit-rate",
            "3M",
            "-o",
            file.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &format!("http://198.18.0.2/blob?size={SIZE}"),
        ],
    );
    std::thread::sleep(Duration::from_millis(1200));
    paf.signal("TERM");
    // No longer accepting: new connections are refused once the loop has handled the signal
    // (give a loaded machine up to 5 s to get there; the answer must then be a refusal).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let refused = loop {
        std::thread::sleep(Duration::from_millis(300));
        let r = ns.run("curl", ["-sS", "--max-time", "1", "http://198.18.0.2/"], T);
        if r.code() == Some(7) || std::time::Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(
        refused.code(),
        Some(7),
        "expected connection refused: {refused}"
    );
    assert!(
        download.wait_timeout(T).is_some_and(|s| s.success()),
        "download failed"
    );
    assert_eq!(download.stdout(), "200");
    let body = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(body.len() as u64, SIZE);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == blob_byte(i as u64)));
    let status = paf.wait_timeout(T).expect("paf exits after draining");
    assert!(
        status.success(),
        "paf exit status {status}\n{}",
        paf.stderr()
    );
    assert!(paf.stderr().contains("stopped"), "{}", paf.stderr());
}

#[test]
fn kernel_stack_serves_the_same_routes() {
    if !require_netns("kernel_stack_http") || !require_tools("kernel_stack_http", &["curl"]) {
        return;
    }
    let ns = Netns::new("kernelhttp");
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        ["--stack", "kernel", "--port", "8080", "--test-routes"],
    );
    let addr = "127.0.0.1:8080".parse().unwrap();
    ns.wait_tcp_from(&mut paf, addr, Duration::from_secs(15))
        .unwrap();
    for url in [
        "http://127.0.0.1:8080/bench",
        "http://[::1]:8080/bench",
        "http://198.18.0.1:8080/bench",
    ] {
        let out = curl(&ns, &["-sS", "-g", url]);
        assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
    }
    let out = curl(&ns, &["-sS", "-I", "http://127.0.0.1:8080/"]);
    assert!(out.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(paf.stop(Duration::from_secs(20)).success());
}

#[test]
fn a_second_signal_exits_at_once() {
    if !require_netns("second_signal") || !require_tools("second_signal", &["curl"]) {
        return;
    }
    let ns = Netns::new("sigtwice");
    let mut paf = start(&ns, &[]);
    // A download far longer than the test keeps the drain busy. (10 MB was not enough: with
    // 256 KiB socket buffers and TAP offloads most of it lands in the client's kernel buffers
    // within a second, whatever curl's --limit-rate, and the drain rightly finished.)
    let mut download = ns.spawn(
        "curl",
        [
            "-sS",
            "--limit-rate",
            "1M",
            "-o",
            "/dev/null",
            "http://198.18.0.2/blob?size=200000000",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    paf.signal("TERM");
    // Twice in a row is one request (Ctrl-C plus scripts/run forwarding it): still draining.
    paf.signal("INT");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(paf.is_running(), "exited on a doubled first signal");
    let start = Instant::now();
    paf.signal("TERM");
    let status = paf.wait_timeout(Duration::from_secs(5)).expect("exited");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(128 + 15), "{status}");
    // Nobody answers for the stack any more: the download cannot have completed.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!download.try_wait().is_some_and(|s| s.success()));
}

#[test]
fn https_with_curl_on_the_tap() {
    if !require_netns("https_curl") || !require_tools("https_curl", &["curl"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("paf-{}-pki", std::process::id()));
    let pki = paf::tls::certs::write_test_pki(&dir, &["paf.test"]).unwrap();
    let ns = Netns::new("https");
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let mut paf = start(&ns, &["--cert", cert, "--key", key]);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), Duration::from_secs(15))
        .unwrap();
    let ca = pki.ca_cert.to_str().unwrap();
    let base = [
        "-sS",
        "--cacert",
        ca,
        "--resolve",
        "paf.test:443:198.18.0.2",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["-v", "https://paf.test/bench", "https://paf.test/"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = curl(&ns, &args);
    assert!(out.stderr.contains("SSL connection using TLS"), "{out}");
    assert!(out.stderr.contains("Re-using existing connection"), "{out}");
    assert_eq!(out.stdout, format!("hello world\n{PAGE}"));
    // A chunked upload over TLS, counted and hashed.
    let (file, hash) = test_file("tls-upload", 2_000_000);
    let f = file.to_str().unwrap();
    let args = with(&[
        "-T",
        f,
        "-H",
        "Transfer-Encoding: chunked",
        "https://paf.test/count",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = curl(&ns, &args);
    assert_eq!(
        out.stdout,
        format!("bytes=2000000 hash={hash:016x}\n"),
        "{out}"
    );
    let _ = std::fs::remove_file(&file);
    // IPv6, and plain HTTP still on port 80.
    let out = curl(&ns, &["-sS", "-k", "-g", "https://[fd00:198:18::2]/bench"]);
    assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
    let out = curl(&ns, &["-sS", "http://198.18.0.2/bench"]);
    assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
    assert!(paf.stop(Duration::from_secs(20)).success());
    let _ = std::fs::remove_dir_all(&dir);
}

//! HTTP/2 on a real TAP in a network namespace, against real clients: `paf run --test-routes
//! --cert --key` (HTTP on 80 with h2c, HTTPS on 443 offering `h2` then `http/1.1`) and
//!
//! - curl `--http2` over TLS and `--http2-prior-knowledge` on port 80: GET, HEAD, a POST whose
//!   body is hashed as it streams, an echo, a 100 MB download checked byte for byte, and 50
//!   transfers multiplexed on one TLS connection (`--parallel`);
//! - `nghttp` fetching many streams at once;
//! - `h2load -n 100000 -c 50 -m 10` over TLS and over h2c, with zero errors;
//! - protocol probes (`tests/tools/h2_probes.py`, frames written by hand, h2spec-style): frames
//!   on stream 0 or on the wrong stream, bad lengths, bad HPACK, oversized frames, flow-control
//!   violations, RST_STREAM of idle and closed streams, a bad preface, each answered as RFC 9113
//!   says (or as h2 answers instead, where it differs: see the test).
//!
//! These need root (netns + TAP): without it they print `SKIP` and return; in CI
//! (`PAF_REQUIRE_NETNS=1`) they must run.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{require_netns, require_tools, run_timeout, tool, ChildGuard, Netns, Output, Scratch};
use paf::service::builtin::{blob_byte, StreamHash, BENCH_BODY, PAGE};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(60);

/// The tests of this file run one at a time: h2load loads both cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test CA and a server certificate for `paf.test` and the appliance's address.
fn pki(dir: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let out_dir = dir.path("pki");
    let mut cmd = Command::new(PAF);
    cmd.args(["cert", "--out"]).arg(&out_dir);
    cmd.args(["--name", "paf.test", "--name", "198.18.0.2"]);
    let out = run_timeout(&mut cmd, T);
    assert!(out.success(), "{out}");
    (
        out_dir.join("ca.pem"),
        out_dir.join("cert.pem"),
        out_dir.join("key.pem"),
    )
}

/// `paf run --test-routes --cert --key`; waits until 80 and 443 answer.
fn start(ns: &Netns, cert: &Path, key: &Path) -> ChildGuard {
    let args = [
        "--test-routes",
        "--max-body",
        "100000000",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let mut paf = ns.paf(Path::new(PAF), "run", args);
    for port in [80, 443] {
        ns.wait_tcp_from(
            &mut paf,
            common::appliance_v4(port),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("paf run not reachable on {port}: {e}"));
    }
    paf
}

/// How curl reaches paf: over TLS with ALPN `h2`, or h2c with prior knowledge.
#[derive(Clone, Copy, Debug)]
enum Via {
    Tls,
    H2c,
}

impl Via {
    fn base(self) -> &'static str {
        match self {
            Via::Tls => "https://paf.test",
            Via::H2c => "http://paf.test",
        }
    }
}

/// `curl -sS` with the flags of `via` and `extra`; asserts it succeeded.
fn curl(ns: &Netns, ca: &Path, via: Via, extra: &[&str]) -> Output {
    let ca = ca.to_str().unwrap();
    let mut args = vec![
        "-sS",
        "--max-time",
        "50",
        "--resolve",
        "paf.test:443:198.18.0.2",
        "--resolve",
        "paf.test:80:198.18.0.2",
    ];
    match via {
        Via::Tls => args.extend_from_slice(&["--http2", "--cacert", ca]),
        Via::H2c => args.push("--http2-prior-knowledge"),
    }
    args.extend_from_slice(extra);
    let out = ns.run("curl", &args, T);
    assert!(out.success(), "{out}");
    out
}

#[test]
fn curl_over_h2_and_h2c_get_head_post_and_100mb() {
    if !require_netns("h2_curl") || !require_tools("h2_curl", &["curl"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("h2curl");
    let (ca, cert, key) = pki(&dir);
    let ns = Netns::new("h2curl");
    let mut paf = start(&ns, &cert, &key);
    let upload: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7 % 253) as u8).collect();
    let upload_file = dir.write("upload.bin", &upload);
    let mut h = StreamHash::new();
    h.update(&upload);
    let want_count = format!("bytes=3000000 hash={:016x}\n", h.finish());

    for via in [Via::Tls, Via::H2c] {
        let base = via.base();
        let out = curl(&ns, &ca, via, &["-v", &format!("{base}/bench")]);
        assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
        assert!(out.stderr.contains("< HTTP/2 200"), "{via:?}: {out}");
        if let Via::Tls = via {
            assert!(out.stderr.contains("ALPN: server accepted h2"), "{out}");
        }

        let out = curl(&ns, &ca, via, &["-I", &format!("{base}/")]);
        assert!(out.stdout.starts_with("HTTP/2 200"), "{out}");
        let length = format!("content-length: {}", PAGE.len());
        assert!(out.stdout.contains(&length), "{out}");

        let out = curl(&ns, &ca, via, &["-i", &format!("{base}/missing")]);
        assert!(out.stdout.starts_with("HTTP/2 404"), "{out}");

        // A 3 MB POST, hashed as it streams (the stream window is released as it is read).
        let data = format!("@{upload_file}");
        let out = curl(
            &ns,
            &ca,
            via,
            &["--data-binary", &data, &format!("{base}/count")],
        );
        assert_eq!(out.stdout, want_count, "{via:?}: {out}");
        let echoed = dir.path(&format!("echo-{via:?}"));
        curl(
            &ns,
            &ca,
            via,
            &[
                "--data-binary",
                &data,
                "-o",
                echoed.to_str().unwrap(),
                &format!("{base}/echo"),
            ],
        );
        assert!(std::fs::read(&echoed).unwrap() == upload, "{via:?}: echo");

        // 100 MB on one stream, byte for byte.
        const SIZE: u64 = 100_000_000;
        let file = dir.path(&format!("blob-{via:?}"));
        let out = curl(
            &ns,
            &ca,
            via,
            &[
                "-o",
                file.to_str().unwrap(),
                "-w",
                "%{http_code} %{http_version} %{speed_download}",
                &format!("{base}/blob?size={SIZE}"),
            ],
        );
        eprintln!("{via:?} 100 MB: {} (code, version, bytes/s)", out.stdout);
        assert!(out.stdout.starts_with("200 2 "), "{out}");
        let body = std::fs::read(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(body.len() as u64, SIZE);
        assert!(body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == blob_byte(i as u64)));
    }
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn parallel_streams_share_one_connection() {
    if !require_netns("h2_parallel") || !require_tools("h2_parallel", &["curl", "nghttp"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("h2par");
    let (ca, cert, key) = pki(&dir);
    let ns = Netns::new("h2par");
    let mut paf = start(&ns, &cert, &key);

    // curl 7.88.1 (Debian 12) cannot reuse an h2c prior-knowledge connection at all ("Error in
    // the HTTP2 framing layer" before sending the second request, against nginx too), so its
    // --parallel runs over TLS only; nghttp covers h2c below.
    for via in [Via::Tls] {
        // 50 transfers, at most 50 at once, multiplexed: one connection for all.
        let urls: Vec<String> = (0..50)
            .map(|i| format!("{}/blob?size={}", via.base(), 10_000 + i))
            .collect();
        let mut args = vec![
            "--parallel",
            "--parallel-max",
            "50",
            "-w",
            "%{http_code} %{http_version} %{num_connects}\\n",
        ];
        for u in &urls {
            args.extend_from_slice(&["-o", "/dev/null", u]);
        }
        let out = curl(&ns, &ca, via, &args);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 50, "{out}");
        assert!(lines.iter().all(|l| l.starts_with("200 2 ")), "{out}");
        let connects: u32 = lines
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
            .sum();
        assert_eq!(connects, 1, "{via:?}: all on one connection\n{out}");
    }

    // nghttp: 100 streams at once on one h2c connection and one TLS one, no error.
    for url in ["http://198.18.0.2/bench", "https://198.18.0.2/bench"] {
        let out = ns.run("nghttp", ["-n", "-s", "-m", "100", url], T);
        assert!(out.success(), "{out}");
        let responses = out.stdout.lines().filter(|l| l.contains("/bench")).count();
        assert!(responses >= 100, "{url}: {out}");
    }
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

/// The value after `label` in an h2load summary line (`requests: 100000 total, … 0 failed,
/// 0 errored`).
fn h2load_field(out: &str, field: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with("requests:"))?;
    line.split(',')
        .find(|p| p.trim().ends_with(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn h2load_100000_requests_over_tls_and_h2c_without_errors() {
    if !require_netns("h2_h2load") || !require_tools("h2_h2load", &["h2load"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("h2load");
    let (_ca, cert, key) = pki(&dir);
    let ns = Netns::new("h2load");
    let mut paf = start(&ns, &cert, &key);
    for url in ["https://198.18.0.2/bench", "http://198.18.0.2/bench"] {
        let out = ns.run(
            "h2load",
            ["-n", "100000", "-c", "50", "-m", "10", url],
            Duration::from_secs(300),
        );
        assert!(out.success(), "{out}");
        let summary: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("finished in") || l.starts_with("requests:"))
            .collect();
        eprintln!("h2load {url}: {summary:?}");
        let s = &out.stdout;
        assert_eq!(h2load_field(s, "succeeded"), Some(100_000), "{out}");
        for bad in ["failed", "errored", "timeout"] {
            assert_eq!(h2load_field(s, bad), Some(0), "{bad}: {out}");
        }
    }
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

/// The probes' expected answers. Two differ from RFC 9113, and are h2 0.4.21's: a PING of the
/// wrong length gets PROTOCOL_ERROR (§6.7 says FRAME_SIZE_ERROR) and an undecodable header block
/// gets PROTOCOL_ERROR (§4.3 says COMPRESSION_ERROR). Both still end the connection with a
/// GOAWAY, which is what matters against a broken or hostile peer.
const PROBES: &[(&str, &str)] = &[
    ("ping", "ok"),
    ("get", "ok"),
    ("data_on_stream_0", "goaway PROTOCOL_ERROR"),
    ("settings_on_stream_1", "goaway PROTOCOL_ERROR"),
    ("ping_on_stream_1", "goaway PROTOCOL_ERROR"),
    ("ping_bad_length", "goaway PROTOCOL_ERROR"),
    ("headers_on_even_stream", "goaway PROTOCOL_ERROR"),
    ("hpack_index_0", "goaway PROTOCOL_ERROR"),
    ("hpack_index_beyond_table", "goaway PROTOCOL_ERROR"),
    ("hpack_truncated", "goaway PROTOCOL_ERROR"),
    ("oversized_frame", "goaway FRAME_SIZE_ERROR"),
    ("rst_idle_stream", "goaway PROTOCOL_ERROR"),
    ("window_overflow", "goaway FLOW_CONTROL_ERROR"),
    ("window_update_zero", "goaway PROTOCOL_ERROR"),
    ("data_beyond_stream_window", "rst FLOW_CONTROL_ERROR"),
    ("rst_closed_stream", "ok"),
];

#[test]
fn protocol_probes_get_the_answers_rfc_9113_asks_for() {
    if !require_netns("h2_probes") || !require_tools("h2_probes", &["curl"]) {
        return;
    }
    // Debian's python3-h2 (for its hpack), whatever python3 comes first in PATH.
    let python = "/usr/bin/python3";
    let has_hpack = Command::new(python)
        .args(["-c", "import hpack"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_hpack
        && !require_tools(
            "h2_probes",
            &["python3-h2 (/usr/bin/python3 -c 'import hpack')"],
        )
    {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("h2probe");
    let (ca, cert, key) = pki(&dir);
    let ns = Netns::new("h2probe");
    let mut paf = start(&ns, &cert, &key);
    let ca_s = ca.to_str().unwrap().to_owned();
    for (port, tls) in [("80", false), ("443", true)] {
        let mut args = vec![tool("h2_probes.py"), "198.18.0.2".into(), port.into()];
        if tls {
            args.push(ca_s.clone());
        }
        let out = ns.run(python, &args, T);
        assert!(out.success(), "{out}");
        let mut want: Vec<String> = PROBES.iter().map(|(n, r)| format!("{n} {r}")).collect();
        if tls {
            // A bad preface: closed, GOAWAY optional (RFC 9113 §3.4).
            want.push("bad_preface closed".into());
        }
        let got: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(got, want, "port {port}: {out}");
    }
    // paf still serves, on both ports.
    for via in [Via::Tls, Via::H2c] {
        let out = curl(&ns, &ca, via, &[&format!("{}/bench", via.base())]);
        assert_eq!(out.stdout.as_bytes(), BENCH_BODY, "{out}");
    }
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

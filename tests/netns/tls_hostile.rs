//! Hostile TLS clients against `paf run --config` with an https listener on a real TAP, while a
//! normal curl loop is served in parallel:
//!
//! - before the handshake: garbage records (`tests/tools/tls_garbage.py`), a record header then
//!   silence, half a real ClientHello then silence, a whole ClientHello then close
//!   (`tests/tools/tls_hostile.py`);
//! - after it: a TLS 1.2 client that asks to renegotiate (`openssl s_client -tls1_2`, `R`), and
//!   one that asks for an 8 MB file and never reads.
//!
//! Each must be closed cleanly within its timeout (seen from the client) and counted in
//! `/metrics` by reason (`paf_tls_failures_total`, `paf_tls_renegotiations_refused_total`,
//! `paf_timeouts_total{kind="write"}`), and every curl of the loop must succeed.
//!
//! Needs root (netns + TAP), curl, openssl and python3; without them it prints `SKIP`.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, run_timeout, tool, ChildGuard, Netns};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);
const HANDSHAKE_TIMEOUT_MS: u64 = 2000;
const WRITE_TIMEOUT_MS: u64 = 2000;
/// How late a close may be seen after its timeout (a loaded loop on two shared cores).
const LATE_MS: u64 = 1500;
/// How long the curl loop runs: longer than every hostile client here.
const LOOP_S: u64 = 20;

/// A scratch directory with a `paf cert` PKI, an 8 MB file and the config; removed on drop.
struct Site(PathBuf);

impl Site {
    fn new(tag: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("paf-hostile-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("www")).unwrap();
        let mut cmd = Command::new(PAF);
        cmd.args(["cert", "--name", "paf.test", "--out"])
            .arg(dir.join("pki"));
        let out = run_timeout(&mut cmd, T);
        assert!(out.success(), "{out}");
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        fs::write(dir.join("www/big.bin"), big).unwrap();
        let config = format!(
            r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[defaults]
handshake_timeout = "{HANDSHAKE_TIMEOUT_MS}ms"
write_timeout = "{WRITE_TIMEOUT_MS}ms"

[[listener]]
name = "tls"
port = 443
protocol = "https"
certificate = "pki/cert.pem"
key = "pki/key.pem"

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/big"
action = "files"
root = "www"

[[listener.route]]
action = "static"
body = "hello over tls\n"
"#
        );
        fs::write(dir.join("hostile.toml"), config).unwrap();
        Site(dir)
    }

    fn s(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }

    fn start(&self, ns: &Netns) -> ChildGuard {
        let config = self.s("hostile.toml");
        let mut paf = ns.paf(Path::new(PAF), "run", ["--config", config.as_str()]);
        ns.wait_tcp_from(&mut paf, common::appliance_v4(443), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("paf run not reachable on 443: {e}"));
        paf
    }

    /// A bounded curl loop (keep-alive off: a handshake each) for [`LOOP_S`]; it prints
    /// `ok=N fail=M` when done.
    fn curl_loop(&self, ns: &Netns) -> ChildGuard {
        let script = format!(
            "end=$((SECONDS+{LOOP_S})); ok=0; fail=0; \
             while [ $SECONDS -lt $end ]; do \
               if [ \"$(curl -sS --max-time 5 --cacert {ca} --resolve paf.test:443:198.18.0.2 \
                      https://paf.test/)\" = 'hello over tls' ]; \
               then ok=$((ok+1)); else fail=$((fail+1)); fi; sleep 0.1; \
             done; echo ok=$ok fail=$fail",
            ca = self.s("pki/ca.pem")
        );
        ns.spawn("bash", ["-c", &script])
    }

    fn metrics(&self, ns: &Netns) -> BTreeMap<String, u64> {
        let ca = self.s("pki/ca.pem");
        let args = [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &ca,
            "--resolve",
            "paf.test:443:198.18.0.2",
            "https://paf.test/metrics",
        ];
        let out = ns.run("curl", args, T);
        assert!(out.success(), "{out}");
        out.stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `key=value` of a tool's output line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn ms(line: &str, key: &str) -> u64 {
    field(line, key).parse().unwrap()
}

fn failures(m: &BTreeMap<String, u64>, reason: &str) -> u64 {
    m[&format!(r#"paf_tls_failures_total{{listener="tls",reason="{reason}"}}"#)]
}

/// Waits for the curl loop and checks that every request was served.
fn served(mut curl: ChildGuard) {
    let status = curl.wait_timeout(Duration::from_secs(LOOP_S + 30));
    let out = curl.stdout();
    assert!(status.is_some_and(|s| s.success()), "curl loop: {out}");
    let ok: u64 = field(out.trim(), "ok").parse().unwrap();
    assert!(
        ok >= 10 && field(out.trim(), "fail") == "0",
        "curl loop: {out}"
    );
    eprintln!("curl loop in parallel: {}", out.trim());
}

/// Waits until only the metrics request's own connection is open.
fn settle(site: &Site, ns: &Netns) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = site.metrics(ns);
        if m[r#"paf_connections_open{listener="tls"}"#] == 1 {
            return m;
        }
        assert!(Instant::now() < deadline, "connections left open: {m:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn clients_failing_the_handshake_are_closed_at_once_or_at_the_timeout_and_counted() {
    let test = "tls_hostile_handshake";
    if !require_netns(test) || !require_tools(test, &["curl", "python3"]) {
        return;
    }
    // A 20 s curl loop, and closes timed within a window. See crate::heavy.
    let _heavy = crate::heavy();
    let site = Site::new("hs");
    let ns = Netns::new("tlshs");
    let mut paf = site.start(&ns);
    let before = site.metrics(&ns);
    let curl = site.curl_loop(&ns);
    let py = |script: &str, args: &[&str]| {
        let mut all = vec![tool(script)];
        all.extend(args.iter().map(|a| a.to_string()));
        ns.spawn("python3", all)
    };
    let limit = (HANDSHAKE_TIMEOUT_MS / 1000 + 10).to_string();
    // Garbage records (rejected at once) and a record header then silence (handshake timeout).
    let mut garbage = py(
        "tls_garbage.py",
        &["198.18.0.2", "443", "0", "rand64,rand700,hdr40", &limit],
    );
    let mut cut = py(
        "tls_hostile.py",
        &["cut-hello", "198.18.0.2", "443", &limit],
    );
    let mut hello = py(
        "tls_hostile.py",
        &["hello-close", "198.18.0.2", "443", &limit],
    );
    let mut outs = Vec::new();
    for g in [&mut garbage, &mut cut, &mut hello] {
        let status = g.wait_timeout(T);
        assert!(
            status.is_some_and(|s| s.success()),
            "{}\n{}",
            g.stdout(),
            g.stderr()
        );
        outs.push(g.stdout());
    }
    let text = outs.concat();
    eprintln!("{}", text.trim_end());
    for line in text.lines() {
        match line.split_whitespace().next().unwrap() {
            "rand64" | "rand700" => {
                // An alert record (0x15) or nothing, then the close, at once.
                assert!(["eof", "reset"].contains(&field(line, "how")), "{line}");
                assert!(
                    field(line, "got").is_empty() || line.contains("got=15"),
                    "{line}"
                );
                assert!(ms(line, "close_ms") < 1000, "{line}");
            }
            "hdr40" | "cut-hello" => {
                assert!(["eof", "reset"].contains(&field(line, "how")), "{line}");
                let t = ms(line, "close_ms");
                let window = HANDSHAKE_TIMEOUT_MS - 50..HANDSHAKE_TIMEOUT_MS + LATE_MS;
                assert!(window.contains(&t), "{line}");
            }
            "hello-close" => {}
            other => panic!("unexpected line {other:?}: {line}"),
        }
    }
    served(curl);
    let after = settle(&site, &ns);
    let delta = |reason: &str| failures(&after, reason) - failures(&before, reason);
    let counted: Vec<(&str, u64)> = ["protocol", "handshake_timeout", "handshake_eof"]
        .into_iter()
        .map(|r| (r, delta(r)))
        .collect();
    eprintln!("paf_tls_failures_total increments: {counted:?}");
    assert_eq!(
        counted,
        [
            ("protocol", 2),
            ("handshake_timeout", 2),
            ("handshake_eof", 1)
        ]
    );
    for reason in ["alert", "incompatible", "renegotiation"] {
        assert_eq!(delta(reason), 0, "{reason}: {after:#?}");
    }
    let failed = r#"paf_tls_handshakes_total{listener="tls",result="failed"}"#;
    assert_eq!(after[failed] - before[failed], 5, "{after:#?}");
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn renegotiation_is_refused_and_a_reader_that_never_reads_is_reset() {
    let test = "tls_hostile_established";
    if !require_netns(test) || !require_tools(test, &["curl", "openssl", "python3"]) {
        return;
    }
    // A 20 s curl loop, and closes timed within a window. See crate::heavy.
    let _heavy = crate::heavy();
    let site = Site::new("est");
    let ns = Netns::new("tlsest");
    let mut paf = site.start(&ns);
    let before = site.metrics(&ns);
    let curl = site.curl_loop(&ns);

    // TLS 1.2, a request, then `R`: s_client sends a ClientHello on the established session.
    // rustls refuses with a no_renegotiation warning alert and keeps the session (RFC 5746
    // §4.4 lets a server that does not renegotiate do so); OpenSSL treats the refusal as fatal
    // and answers with a handshake_failure alert, on which paf closes. Nothing hangs.
    let ca = site.s("pki/ca.pem");
    // Its input lasts 6 s; the connection must end long before (ms: start to s_client's exit).
    let script = format!(
        "start=$(date +%s%N); \
         (sleep 1; printf 'GET / HTTP/1.1\\r\\nHost: paf.test\\r\\n\\r\\n'; sleep 1; echo R; \
          sleep 4) | {{ openssl s_client -connect 198.18.0.2:443 -servername paf.test -tls1_2 \
         -CAfile {ca} 2>&1; echo \"exit=$? ms=$((($(date +%s%N) - start) / 1000000))\"; }}"
    );
    let out = ns.run("bash", ["-c", &script], T);
    let end = out.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(out.stdout.contains("Protocol  : TLSv1.2"), "{out}");
    assert!(
        out.stdout.contains("hello over tls"),
        "the request before `R`: {out}"
    );
    assert!(out.stdout.contains("RENEGOTIATING"), "{out}");
    // The client ends on the refusal (paf's warning), not on a fatal alert from paf and not
    // at the end of its input.
    assert!(out.stdout.contains("no renegotiation"), "{out}");
    let took = ms(&end, "ms");
    eprintln!("s_client -tls1_2 with R: ended after {took} ms ({end})");
    assert!((2000..4500).contains(&took), "{out}");

    // A client that completes the handshake, asks for 8 MB and never reads: reset once no
    // output has moved for write_timeout. (Before the fix it was held forever; then, the
    // stale handshake deadline's wake-up counted as progress and the reset came at twice the
    // write timeout here.)
    let limit = (WRITE_TIMEOUT_MS / 1000 + 20).to_string();
    let args = [
        tool("tls_hostile.py"),
        "slow-read".into(),
        "198.18.0.2".into(),
        "443".into(),
        limit,
        ca,
        "/big/big.bin".into(),
    ];
    let out = ns.run("python3", args, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    let line = out.stdout.trim();
    eprintln!("{line}");
    assert_eq!(field(line, "how"), "reset", "{line}");
    // Between the connect and the last byte received is paf's last output progress.
    let since_connect = ms(line, "stall_ms") + ms(line, "close_ms");
    assert!(since_connect >= WRITE_TIMEOUT_MS - 50, "{line}");
    assert!(ms(line, "close_ms") < WRITE_TIMEOUT_MS + LATE_MS, "{line}");

    served(curl);
    let after = settle(&site, &ns);
    let delta = |k: &str| after[k] - before[k];
    let refused = delta(r#"paf_tls_renegotiations_refused_total{listener="tls"}"#);
    let writes = delta(r#"paf_timeouts_total{listener="tls",kind="write"}"#);
    let alerts = failures(&after, "alert") - failures(&before, "alert");
    eprintln!("renegotiations refused +{refused}, alerts +{alerts}, write timeouts +{writes}");
    assert_eq!((refused, alerts, writes), (1, 1, 1), "{after:#?}");
    let failed = r#"paf_tls_handshakes_total{listener="tls",result="failed"}"#;
    assert_eq!(
        delta(failed),
        0,
        "both completed their handshake: {after:#?}"
    );
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

//! HTTPS on a real TAP in a network namespace, against real TLS clients: curl over TLS 1.3 and
//! TLS 1.2, `openssl s_client` choosing certificates by SNI (and the default one without SNI),
//! garbage-record clients that neither slow a parallel curl loop nor outlive the handshake
//! timeout, ALPN (`h2` first, then `http/1.1`; a client with neither refused), wrk over https
//! with 100 connections, the `paf_tls_handshakes_total` metric, and TLS failures logged with
//! the peer's address.
//!
//! Certificates come from `paf cert` (one test CA per run, so each certificate has its own CA and
//! a wrong pick cannot verify). Two ways of running paf: `paf run --test-routes --cert --key`
//! (the built-in test site, `/bench` = `hello world\n`) and `paf run --config` with an https
//! listener (SNI certificates, `handshake_timeout`, a metrics route).
//!
//! These need root (netns + TAP): without it they print `SKIP` and return; in CI
//! (`PAF_REQUIRE_NETNS=1`) they must run.

use crate::common;

mod garbage;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{require_netns, require_tools, run_timeout, tool, ChildGuard, Netns, Output, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);
/// The https listener's handshake timeout in the config-driven tests.
const HANDSHAKE_TIMEOUT_MS: u64 = 2000;
/// Body of the static route in the config-driven tests.
const STATIC_BODY: &str = "hello over tls\n";

/// Held by every test here for its whole run: the tests of this file run one at a time, so that
/// the rates measured (curl loops with and without garbage clients, wrk) are not disturbed by
/// another of them on the same cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test CA and a server certificate written by `paf cert`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }
}

/// Runs `paf cert --out DIR/sub --name …` (outside the namespace: it only writes files).
fn paf_cert(dir: &Scratch, sub: &str, names: &[&str]) -> Pki {
    let out_dir = dir.path(sub);
    let mut cmd = Command::new(PAF);
    cmd.args(["cert", "--out"]).arg(&out_dir);
    for n in names {
        cmd.args(["--name", n]);
    }
    let out = run_timeout(&mut cmd, T);
    assert!(out.success(), "{out}");
    let pki = Pki {
        ca: out_dir.join("ca.pem"),
        cert: out_dir.join("cert.pem"),
        key: out_dir.join("key.pem"),
    };
    for f in [&pki.ca, &pki.cert, &pki.key] {
        assert!(f.is_file(), "paf cert did not write {f:?}\n{out}");
    }
    pki
}

/// `paf run --test-routes --cert --key` (https on 443, http on 80); waits until 443 answers.
fn start_test_routes(ns: &Netns, pki: &Pki) -> ChildGuard {
    let args = [
        "--test-routes",
        "--cert",
        pki.cert.to_str().unwrap(),
        "--key",
        pki.key.to_str().unwrap(),
    ];
    let mut paf = ns.paf(Path::new(PAF), "run", args);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("paf run not reachable on 443: {e}"));
    paf
}

/// A config with one https listener `tls` on 443 (default certificate `default`, SNI
/// certificates `sni`, handshake timeout [`HANDSHAKE_TIMEOUT_MS`]) serving `/metrics` and a
/// static [`STATIC_BODY`] on every other path.
fn tls_config(default: &Pki, sni: &[(&str, &Pki)]) -> String {
    let entries: Vec<String> = sni
        .iter()
        .map(|(name, p)| {
            format!(
                "{{ name = {name:?}, certificate = {:?}, key = {:?} }}",
                p.cert, p.key
            )
        })
        .collect();
    format!(
        r#"[interface]
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
ipv6 = "fd00:198:18::2/64"
gateway6 = "fd00:198:18::1"

[[listener]]
name = "tls"
port = 443
protocol = "https"
certificate = {cert:?}
key = {key:?}
sni = [{sni}]
limits = {{ handshake_timeout = "{HANDSHAKE_TIMEOUT_MS}ms" }}

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/"
action = "static"
body = {STATIC_BODY:?}
"#,
        cert = default.cert,
        key = default.key,
        sni = entries.join(", "),
    )
}

/// Writes `config` into `dir`, checks it with `paf check`, starts `paf run --config` and waits
/// until 443 answers.
fn start_config(ns: &Netns, dir: &Scratch, config: &str) -> ChildGuard {
    start_config_logging(ns, dir, config, None)
}

/// [`start_config`] with `RUST_LOG` set to `log` (else the harness's default, `info`).
fn start_config_logging(ns: &Netns, dir: &Scratch, config: &str, log: Option<&str>) -> ChildGuard {
    let file = dir.path("paf.toml");
    fs::write(&file, config).unwrap();
    let check = run_timeout(Command::new(PAF).arg("check").arg("--config").arg(&file), T);
    assert!(check.success(), "config refused:\n{config}\n{check}");
    let file = file.to_str().unwrap();
    let mut paf = match log {
        None => ns.paf(Path::new(PAF), "run", ["--config", file]),
        Some(level) => ns.spawn(
            "env",
            [
                &format!("RUST_LOG={level}"),
                PAF,
                "run",
                "--tap",
                common::TAP,
                "--config",
                file,
            ],
        ),
    };
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("paf run --config not reachable on 443: {e}"));
    paf
}

/// `curl -sS --cacert CA --resolve paf.test:443:198.18.0.2 extra…`; asserts it succeeded.
fn curl_tls(ns: &Netns, ca: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        ca,
        "--resolve",
        "paf.test:443:198.18.0.2",
    ];
    args.extend_from_slice(extra);
    let out = ns.run("curl", &args, T);
    assert!(out.success(), "{out}");
    out
}

/// `n` sequential HTTPS GETs, each its own curl process (a new connection and a full handshake
/// each), in one shell inside the namespace. Asserts all answered 200 with [`STATIC_BODY`]'s
/// length; returns the wall time.
fn curl_loop(ns: &Netns, ca: &str, n: usize) -> Duration {
    let script = format!(
        "for i in $(seq {n}); do curl -sS --max-time 10 --cacert {ca} \
         --resolve paf.test:443:198.18.0.2 -o /dev/null -w '%{{http_code}} %{{size_download}}\\n' \
         https://paf.test/loop || exit 1; done"
    );
    let out = ns.run("bash", ["-c", &script], Duration::from_secs(120));
    assert!(out.success(), "{out}");
    let want = format!("200 {}", STATIC_BODY.len());
    let good = out.stdout.lines().filter(|l| *l == want).count();
    assert_eq!(good, n, "{out}");
    out.elapsed
}

/// The value of the metric line that starts with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------

#[test]
fn curl_over_tls13_and_tls12() {
    if !require_netns("https_curl_versions") || !require_tools("https_curl_versions", &["curl"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("versions");
    let pki = paf_cert(&dir, "pki", &["paf.test", "198.18.0.2"]);
    let ns = Netns::new("tlsver");
    let mut paf = start_test_routes(&ns, &pki);

    let cases: [(&[&str], &str); 2] = [
        (&["--tlsv1.3"], "TLSv1.3"),
        (&["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"),
    ];
    for (flags, version) in cases {
        let mut args = vec!["-v"];
        args.extend_from_slice(flags);
        args.push("https://paf.test/bench");
        let out = curl_tls(&ns, pki.ca(), &args);
        assert_eq!(out.stdout, "hello world\n", "{out}");
        assert!(
            out.stderr
                .contains(&format!("SSL connection using {version} / ")),
            "expected {version}: {out}"
        );
        // curl offers h2 then http/1.1 by default, and paf prefers h2.
        assert!(out.stderr.contains("ALPN: server accepted h2"), "{out}");
        assert!(out.stderr.contains("SSL certificate verify ok"), "{out}");
        assert!(out.stderr.contains("< HTTP/2 200"), "{out}");
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("SSL connection using"))
            .unwrap_or_default();
        eprintln!("curl {flags:?}: {line}");
    }

    // IPv6, TLS 1.3, the name checked against the certificate.
    let out = ns.run(
        "curl",
        [
            "-sS",
            "-v",
            "--max-time",
            "10",
            "--cacert",
            pki.ca(),
            "--resolve",
            "paf.test:443:[fd00:198:18::2]",
            "https://paf.test/bench",
        ],
        T,
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "hello world\n", "{out}");
    assert!(out.stderr.contains("SSL connection using TLSv1.3"), "{out}");

    // The certificate really is checked: another CA fails verification (curl exit 60), and so
    // does a name the certificate does not carry.
    let other = paf_cert(&dir, "other", &["paf.test"]);
    let out = ns.run(
        "curl",
        [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            other.ca(),
            "--resolve",
            "paf.test:443:198.18.0.2",
            "https://paf.test/bench",
        ],
        T,
    );
    assert_eq!(out.code(), Some(60), "{out}");
    let out = ns.run(
        "curl",
        [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            pki.ca(),
            "--resolve",
            "nope.test:443:198.18.0.2",
            "https://nope.test/bench",
        ],
        T,
    );
    assert_eq!(out.code(), Some(60), "{out}");
    // After both refusals the server still serves.
    let out = curl_tls(&ns, pki.ca(), &["https://paf.test/bench"]);
    assert_eq!(out.stdout, "hello world\n", "{out}");
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

/// `openssl s_client` with `flags`, verifying against `ca`; returns its output (stdout and
/// stderr together) after asserting the handshake verified. The leaf certificate's subject and
/// SAN, as `openssl x509` prints them, are returned too.
fn s_client(ns: &Netns, flags: &str, ca: &str) -> (Output, String) {
    let script = format!(
        "openssl s_client -connect {flags} -CAfile {ca} -verify_return_error -brief \
         </dev/null 2>&1; echo exit=$?; \
         openssl s_client -connect {flags} -CAfile {ca} </dev/null 2>/dev/null \
         | openssl x509 -noout -subject -ext subjectAltName"
    );
    let out = ns.run("bash", ["-c", &script], T);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("exit=0"), "s_client {flags}: {out}");
    assert!(
        out.stdout.contains("Verification: OK") || out.stdout.contains("Verify return code: 0"),
        "s_client {flags}: {out}"
    );
    let cert = out
        .stdout
        .split_once("exit=0")
        .map(|(_, rest)| rest.trim().to_owned())
        .unwrap_or_default();
    (out, cert)
}

#[test]
fn sni_picks_the_certificate_and_the_default_serves_the_rest() {
    if !require_netns("https_sni") || !require_tools("https_sni", &["openssl", "curl"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("sni");
    let default = paf_cert(&dir, "default", &["paf.test", "198.18.0.2"]);
    let a = paf_cert(&dir, "a", &["a.test"]);
    let b = paf_cert(&dir, "b", &["b.test", "www.b.test"]);
    let ns = Netns::new("tlssni");
    let mut paf = start_config(
        &ns,
        &dir,
        &tls_config(&default, &[("a.test", &a), ("b.test", &b)]),
    );

    // (s_client flags, CA that must verify it, subject, SAN)
    let ip = "198.18.0.2:443";
    let cases = [
        (
            format!("{ip} -servername a.test"),
            a.ca(),
            "subject=CN = a.test",
            "DNS:a.test",
        ),
        (
            format!("{ip} -servername b.test"),
            b.ca(),
            "subject=CN = b.test",
            "DNS:b.test, DNS:www.b.test",
        ),
        // SNI matching ignores case.
        (
            format!("{ip} -servername A.Test"),
            a.ca(),
            "subject=CN = a.test",
            "DNS:a.test",
        ),
        // No SNI at all.
        (
            format!("{ip} -noservername"),
            default.ca(),
            "subject=CN = paf.test",
            "DNS:paf.test, IP Address:198.18.0.2",
        ),
        // An IP address to connect to: s_client sends no SNI.
        (
            ip.to_owned(),
            default.ca(),
            "subject=CN = paf.test",
            "DNS:paf.test, IP Address:198.18.0.2",
        ),
        // A name no SNI entry has.
        (
            format!("{ip} -servername c.test"),
            default.ca(),
            "subject=CN = paf.test",
            "DNS:paf.test, IP Address:198.18.0.2",
        ),
        (
            "[fd00:198:18::2]:443 -servername b.test".to_owned(),
            b.ca(),
            "subject=CN = b.test",
            "DNS:b.test, DNS:www.b.test",
        ),
    ];
    for (flags, ca, subject, san) in &cases {
        let (out, cert) = s_client(&ns, flags, ca);
        assert!(
            cert.lines().any(|l| l.trim() == *subject),
            "s_client {flags}: want {subject}; got\n{cert}\n{out}"
        );
        assert!(
            cert.lines().any(|l| l.trim() == *san),
            "s_client {flags}: want SAN {san}; got\n{cert}\n{out}"
        );
        eprintln!("s_client -connect {flags}: {}", cert.replace('\n', " | "));
    }

    // A wrong CA does not verify: each name really gets its own certificate.
    let script = format!(
        "openssl s_client -connect {ip} -servername a.test -CAfile {} -verify_return_error \
         </dev/null 2>&1; echo exit=$?",
        b.ca()
    );
    let out = ns.run("bash", ["-c", &script], T);
    assert!(!out.stdout.contains("exit=0"), "{out}");

    // curl with the name checked too, for each SNI certificate.
    for (name, pki) in [("a.test", &a), ("b.test", &b), ("paf.test", &default)] {
        let out = ns.run(
            "curl",
            [
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                pki.ca(),
                "--resolve",
                &format!("{name}:443:198.18.0.2"),
                &format!("https://{name}/"),
            ],
            T,
        );
        assert!(out.success(), "{out}");
        assert_eq!(out.stdout, STATIC_BODY, "{out}");
    }
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

/// One finished cycle of `tests/tools/tls_garbage.py`.
#[derive(Debug)]
struct Garbage {
    kind: String,
    close_ms: u64,
    how: String,
    got: String,
    /// The client's local port (the peer port in paf's logs).
    port: u16,
}

fn parse_garbage(stdout: &str) -> Vec<Garbage> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let kind = it.next()?.to_owned();
            let mut g = Garbage {
                kind,
                close_ms: 0,
                how: String::new(),
                got: String::new(),
                port: 0,
            };
            for field in it {
                match field.split_once('=')? {
                    ("close_ms", v) => g.close_ms = v.parse().ok()?,
                    ("how", v) => g.how = v.to_owned(),
                    ("got", v) => g.got = v.to_owned(),
                    ("port", v) => g.port = v.parse().ok()?,
                    _ => return None,
                }
            }
            Some(g)
        })
        .collect()
}

#[test]
fn alpn_picks_h2_first_and_refuses_a_client_with_nothing_in_common() {
    if !require_netns("https_alpn") || !require_tools("https_alpn", &["openssl", "curl"]) {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("alpn");
    let pki = paf_cert(&dir, "pki", &["paf.test", "198.18.0.2"]);
    let ns = Netns::new("tlsalpn");
    let mut paf = start_test_routes(&ns, &pki);
    let ca = pki.ca();

    for version in ["-tls1_3", "-tls1_2"] {
        // Only a protocol paf does not speak: a clear no_application_protocol alert.
        let script = format!(
            "openssl s_client -connect 198.18.0.2:443 -servername paf.test {version} \
             -alpn spdy/3 -CAfile {ca} </dev/null 2>&1; echo exit=$?"
        );
        let out = ns.run("bash", ["-c", &script], T);
        assert!(out.success(), "{out}");
        assert!(!out.stdout.contains("exit=0"), "handshake succeeded: {out}");
        assert!(
            out.stdout.contains("no application protocol"),
            "expected a no_application_protocol alert: {out}"
        );
        // h2 alone, and h2 or http/1.1: h2, paf's first choice.
        for offer in ["h2", "http/1.1,h2", "h2,http/1.1"] {
            let script = format!(
                "openssl s_client -connect 198.18.0.2:443 -servername paf.test {version} \
                 -alpn {offer} -CAfile {ca} </dev/null 2>&1; echo exit=$?"
            );
            let out = ns.run("bash", ["-c", &script], T);
            assert!(out.stdout.contains("exit=0"), "{out}");
            assert!(out.stdout.contains("ALPN protocol: h2"), "{offer}: {out}");
        }
    }

    // curl offering h2 and http/1.1 gets HTTP/2; --http1.1 and a client without ALPN get
    // HTTP/1.1.
    let out = curl_tls(&ns, ca, &["-v", "--http2", "https://paf.test/bench"]);
    assert_eq!(out.stdout, "hello world\n", "{out}");
    assert!(out.stderr.contains("ALPN: server accepted h2"), "{out}");
    let out = curl_tls(&ns, ca, &["-v", "--http1.1", "https://paf.test/bench"]);
    assert!(
        out.stderr.contains("ALPN: server accepted http/1.1"),
        "{out}"
    );
    let out = curl_tls(
        &ns,
        ca,
        &[
            "--no-alpn",
            "https://paf.test/bench",
            "https://paf.test/bench",
        ],
    );
    assert_eq!(out.stdout, "hello world\nhello world\n", "{out}");
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn wrk_over_https_with_100_connections_sees_no_errors() {
    if !require_netns("https_wrk") || !require_tools("https_wrk", &["wrk", "curl"]) {
        return;
    }
    let _serial = serial();
    // wrk with 100 TLS connections. See crate::heavy.
    let _heavy = crate::heavy();
    let dir = Scratch::new("wrk");
    let pki = paf_cert(&dir, "pki", &["paf.test", "198.18.0.2"]);
    let ns = Netns::new("tlswrk");
    let mut paf = start_test_routes(&ns, &pki);
    let out = ns.run(
        "wrk",
        [
            "-t1",
            "-c100",
            "-d3s",
            "--latency",
            "https://198.18.0.2/bench",
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
    let requests = out
        .stdout
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("wrk -t1 -c100 over https on the TAP: {rps} req/s ({requests})");
    assert!(rps > 100.0, "{out}");
    // Still serving afterwards.
    let out = curl_tls(&ns, pki.ca(), &["https://paf.test/bench"]);
    assert_eq!(out.stdout, "hello world\n");
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn metrics_count_handshakes_ok_and_failed() {
    if !require_netns("https_metrics")
        || !require_tools("https_metrics", &["curl", "openssl", "python3"])
    {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("metrics");
    let pki = paf_cert(&dir, "pki", &["paf.test"]);
    let ns = Netns::new("tlsmetric");
    let mut paf = start_config(&ns, &dir, &tls_config(&pki, &[]));
    let ca = pki.ca();

    // 5 handshakes of their own, then one connection with 3 requests: 6 handshakes.
    curl_loop(&ns, ca, 5);
    let out = curl_tls(
        &ns,
        ca,
        &[
            "-v",
            "https://paf.test/a",
            "https://paf.test/b",
            "https://paf.test/c",
        ],
    );
    assert_eq!(
        out.stderr.matches("Re-using existing connection").count(),
        2
    );
    let ok_made = 6;

    // 4 garbage clients, one cycle each, and a client offering only an unknown protocol by
    // ALPN: 5 failures.
    let garbage = ns.run(
        "python3",
        [
            tool("tls_garbage.py"),
            "198.18.0.2".into(),
            "443".into(),
            "0".into(),
            "rand64,rand700,hdr40,hello1".into(),
            "10".into(),
        ],
        T,
    );
    assert!(garbage.success(), "{garbage}");
    let cycles = parse_garbage(&garbage.stdout);
    assert_eq!(cycles.len(), 4, "{garbage}");
    assert!(
        cycles.iter().all(|c| c.how == "eof" || c.how == "reset"),
        "{garbage}"
    );
    let script = "openssl s_client -connect 198.18.0.2:443 -servername paf.test -alpn spdy/3 \
                  </dev/null 2>&1; echo exit=$?";
    let out = ns.run("bash", ["-c", script], T);
    assert!(out.stdout.contains("no application protocol"), "{out}");
    let failed_made = 5;

    // The metrics request is one more successful handshake.
    let out = curl_tls(&ns, ca, &["https://paf.test/metrics"]);
    let text = &out.stdout;
    let ok = metric(
        text,
        "paf_tls_handshakes_total{listener=\"tls\",result=\"ok\"}",
    );
    let failed = metric(
        text,
        "paf_tls_handshakes_total{listener=\"tls\",result=\"failed\"}",
    );
    eprintln!("paf_tls_handshakes_total: ok={ok:?} failed={failed:?}");
    assert!(ok.is_some_and(|v| v > ok_made), "{text}");
    assert!(failed.is_some_and(|v| v >= failed_made), "{text}");
    // Every failed connection was closed: only the metrics request is open.
    assert_eq!(
        metric(text, "paf_connections_open{listener=\"tls\"}"),
        Some(1),
        "{text}"
    );
    assert!(paf.is_running());
    assert!(
        paf.stop(Duration::from_secs(20)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn tls_failures_are_logged_with_the_peer() {
    if !require_netns("https_failure_log")
        || !require_tools("https_failure_log", &["openssl", "python3"])
    {
        return;
    }
    let _serial = serial();
    let dir = Scratch::new("faillog");
    let pki = paf_cert(&dir, "pki", &["paf.test"]);
    let ns = Netns::new("tlslog");
    let config = tls_config(&pki, &[]);
    let mut paf = start_config_logging(&ns, &dir, &config, Some("paf=debug"));

    // A corrupt record (rejected at once) and a silent partial record (handshake timeout).
    let garbage = ns.run(
        "python3",
        [
            tool("tls_garbage.py"),
            "198.18.0.2".into(),
            "443".into(),
            "0".into(),
            "rand64,hdr40,none".into(),
            "10".into(),
        ],
        T,
    );
    assert!(garbage.success(), "{garbage}");
    let cycles = parse_garbage(&garbage.stdout);
    assert_eq!(cycles.len(), 3, "{garbage}");
    // And a client that offers only a protocol paf lacks, from a port we choose.
    let script = "openssl s_client -connect 198.18.0.2:443 -servername paf.test -alpn spdy/3 \
                  -bind 198.18.0.1:40443 </dev/null 2>&1; echo exit=$?";
    let out = ns.run("bash", ["-c", script], T);
    assert!(out.stdout.contains("no application protocol"), "{out}");
    std::thread::sleep(Duration::from_millis(300));

    let log = paf.stderr();
    let ports = [
        ("corrupt record", cycles[0].port),
        ("handshake timeout", cycles[1].port),
        ("silent client's handshake timeout", cycles[2].port),
        ("no common ALPN protocol", 40443),
    ];
    for (what, port) in ports {
        let peer = format!("198.18.0.1:{port}");
        let failure = log
            .lines()
            .filter(|l| l.contains(&peer))
            .any(|l| l.contains("TLS"));
        assert!(
            failure,
            "the {what} failure is not logged with its peer {peer}; paf's log:\n{log}"
        );
    }
    assert!(paf.is_running());
    assert!(paf.stop(Duration::from_secs(20)).success(), "{log}");
}

//! ACME (issue 17) against pebble, Let's Encrypt's test server, in the namespace: `paf run
//! --config` orders its certificate over its own stack (DNS by dnsmasq: `acme.test` is pebble
//! on the kernel side, `a.paf.test` and `b.paf.test` are paf), answers HTTP-01 on port 80 and
//! TLS-ALPN-01 on port 443 (pebble validates on those ports: `httpPort`, `tlsPort`), and curl
//! then verifies the certificate against pebble's issuing root from its management API.
//!
//! With one worker and with two: worker 0 runs the order, the validation's connection is
//! answered by whichever worker accepts it, and both serve the certificate (16 requests on
//! new connections, every worker answering some). The failure and renewal cases run two.
//!
//! pebble 2.4 (Debian's) has no `PEBBLE_VA_ALWAYS_INVALID`; a failing validation is made by
//! pointing pebble's `httpPort` at a port where paf does not listen (81): every HTTP-01
//! validation then fails with a connection error.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    require_netns, require_tools, ChildGuard, Netns, Scratch, APPLIANCE_V4, KERNEL_V4,
};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);
/// An order on a debug build on 2 shared cores takes a few seconds; this bounds it.
const ORDER: Duration = Duration::from_secs(120);

fn skip(test: &str) -> bool {
    !require_netns(test) || !require_tools(test, &["pebble", "curl", "dnsmasq"])
}

/// `paf cert` for pebble's own HTTPS (`acme.test`) and writes its config; returns
/// (config path, the CA paf trusts for the directory).
fn pebble_files(dir: &Scratch, http_port: u16) -> (String, String) {
    pebble_files_valid_for(dir, http_port, None)
}

/// [`pebble_files`], the certificates pebble issues valid for `validity` seconds when given.
fn pebble_files_valid_for(
    dir: &Scratch,
    http_port: u16,
    validity: Option<u64>,
) -> (String, String) {
    let pki = dir.path("pebble-pki");
    let out = crate::common::run_timeout(
        std::process::Command::new(PAF).args([
            "cert",
            "--out",
            pki.to_str().unwrap(),
            "--name",
            "acme.test",
            "--name",
            "198.18.0.1",
        ]),
        T,
    );
    assert!(out.success(), "{out}");
    let config = format!(
        r#"{{"pebble": {{
  "listenAddress": "198.18.0.1:14000",
  "managementListenAddress": "198.18.0.1:15000",
  "certificate": "{}",
  "privateKey": "{}",
  "httpPort": {http_port},
  "tlsPort": 443,
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false{}
}}}}"#,
        pki.join("cert.pem").display(),
        pki.join("key.pem").display(),
        validity.map_or_else(String::new, |v| format!(
            ",\n  \"certificateValidityPeriod\": {v}"
        ))
    );
    (
        dir.write("pebble.json", config),
        pki.join("ca.pem").to_str().unwrap().to_owned(),
    )
}

/// Starts pebble in the namespace, validating names through dnsmasq, without its random
/// validation delays.
fn pebble(ns: &Netns, config: &str) -> ChildGuard {
    let mut p = ns.spawn(
        "env",
        [
            "PEBBLE_VA_NOSLEEP=1",
            "pebble",
            "-config",
            config,
            "-dnsserver",
            "198.18.0.1:53",
        ],
    );
    ns.wait_tcp_from(&mut p, (KERNEL_V4, 14000).into(), T)
        .expect("pebble listens");
    p
}

/// A paf config with `workers`: port 80 (metrics, a body), port 443 with `acme` (and `extra`
/// keys).
fn paf_config(dir: &Scratch, name: &str, workers: usize, acme: &str, extra: &str) -> String {
    let text = format!(
        r#"[interface]
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
dns = ["198.18.0.1"]
workers = {workers}

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
action = "static"
body = "web\n"

[[listener]]
name = "tls"
port = 443
protocol = "https"
{extra}
acme = {{ {acme} }}

[[listener.route]]
action = "static"
body = "tls\n"
"#
    );
    dir.write(name, text)
}

fn start_paf(ns: &Netns, config: &str) -> ChildGuard {
    let check = crate::common::run_timeout(
        std::process::Command::new(PAF).args(["check", "--config", config]),
        T,
    );
    assert!(check.success(), "paf check: {check}");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", config]);
    ns.wait_tcp_from(&mut paf, (APPLIANCE_V4, 443).into(), T)
        .expect("paf listens on 443");
    paf
}

/// Waits (bounded) until paf's stderr has `needle` `count` times.
fn wait_log(paf: &mut ChildGuard, needle: &str, count: usize, timeout: Duration) {
    let start = Instant::now();
    loop {
        let log = paf.stderr();
        if log.matches(needle).count() >= count {
            return;
        }
        assert!(
            paf.is_running(),
            "paf exited waiting for {needle:?}:\n{log}"
        );
        assert!(
            start.elapsed() < timeout,
            "{needle:?} not seen {count} times in {timeout:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `curl https://NAME/` through paf's address, verified against `ca`: the body.
fn https_get(ns: &Netns, name: &str, ca: &str) -> String {
    let out = ns.run(
        "curl",
        [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            ca,
            "--resolve",
            &format!("{name}:443:198.18.0.2"),
            &format!("https://{name}/"),
        ],
        T,
    );
    assert!(out.success(), "curl https://{name}/ with {ca}: {out}");
    out.stdout
}

fn metrics(ns: &Netns) -> String {
    let out = ns.run(
        "curl",
        ["-sS", "--max-time", "10", "http://198.18.0.2/metrics"],
        T,
    );
    assert!(out.success(), "{out}");
    out.stdout
}

/// pebble's issuing root, from its management API.
fn pebble_root(ns: &Netns, dir: &Scratch) -> String {
    let out = ns.run(
        "curl",
        [
            "-sS",
            "-k",
            "--max-time",
            "10",
            "https://198.18.0.1:15000/roots/0",
        ],
        T,
    );
    assert!(
        out.success() && out.stdout.contains("BEGIN CERTIFICATE"),
        "{out}"
    );
    dir.write("pebble-root.pem", out.stdout)
}

/// HTTP-01 then TLS-ALPN-01 orders with `workers` workers, and a restart in between.
fn orders_and_a_restart(workers: usize) {
    let ns = Netns::builder(&format!("acme{workers}"))
        .with_dnsmasq()
        .up();
    let dir = Scratch::new(&format!("acme{workers}"));
    let (pebble_config, pebble_ca) = pebble_files(&dir, 80);
    let _pebble = pebble(&ns, &pebble_config);
    let acme = |challenge: &str, state: &str| {
        format!(
            r#"directory = "https://acme.test:14000/dir", contact = ["mailto:ops@paf.test"], domains = ["a.paf.test", "b.paf.test"], challenge = "{challenge}", ca = "{pebble_ca}", state_dir = "{}""#,
            dir.s(state)
        )
    };

    // HTTP-01: ordered, installed without a restart, served for both names by SNI.
    let config = paf_config(
        &dir,
        "http01.toml",
        workers,
        &acme("http-01", "state-http"),
        "",
    );
    let mut paf = start_paf(&ns, &config);
    wait_log(
        &mut paf,
        "certificate for a.paf.test, b.paf.test installed",
        1,
        ORDER,
    );
    assert!(paf.stderr().contains("answering the http-01 challenge"));
    let root = pebble_root(&ns, &dir);
    every_worker_serves(&ns, &root, &["a.paf.test", "b.paf.test"], workers);
    let m = metrics(&ns);
    for want in [
        "paf_acme_certificate_expiry_seconds{domain=\"a.paf.test\"}",
        "paf_acme_certificate_expiry_seconds{domain=\"b.paf.test\"}",
        "paf_acme_orders_total{listener=\"tls\",result=\"ok\"} 1",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    for f in [
        "account.key",
        "certificate.pem",
        "certificate.key",
        "certificate.names",
    ] {
        assert!(dir.path("state-http").join(f).is_file(), "{f}");
    }
    paf.stop(Duration::from_secs(10));

    // A restart serves the stored certificate at once, with no new order.
    let mut paf = start_paf(&ns, &config);
    wait_log(&mut paf, "serving the stored certificate", 1, T);
    assert_eq!(https_get(&ns, "a.paf.test", &root), "tls\n");
    std::thread::sleep(Duration::from_secs(2));
    let log = paf.stderr();
    assert!(!log.contains("ordering a certificate"), "{log}");
    assert!(!metrics(&ns).contains("paf_acme_orders_total"));
    paf.stop(Duration::from_secs(10));

    // TLS-ALPN-01, its own state: a new account and order, answered on 443 itself.
    let config = paf_config(
        &dir,
        "alpn.toml",
        workers,
        &acme("tls-alpn-01", "state-alpn"),
        "",
    );
    let mut paf = start_paf(&ns, &config);
    wait_log(
        &mut paf,
        "certificate for a.paf.test, b.paf.test installed",
        1,
        ORDER,
    );
    assert!(!paf.stderr().contains("answering the http-01 challenge"));
    every_worker_serves(&ns, &root, &["a.paf.test", "b.paf.test"], workers);
    paf.stop(Duration::from_secs(10));
}

/// Each worker's `paf_worker_responses` (empty with one worker).
fn worker_responses(ns: &Netns, workers: usize) -> Vec<u64> {
    if workers < 2 {
        return Vec::new();
    }
    let m = metrics(ns);
    (0..workers)
        .map(|k| {
            let series = format!("paf_worker_responses{{worker=\"{k}\"}} ");
            m.lines()
                .find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{m}"))
        })
        .collect()
}

/// `names` served by SNI with the ACME certificate (verified against `root`), on a new
/// connection each time: with several workers, 16 requests, and every worker served some.
fn every_worker_serves(ns: &Netns, root: &str, names: &[&str], workers: usize) {
    let before = worker_responses(ns, workers);
    let rounds = if workers > 1 { 16 } else { names.len() };
    for i in 0..rounds {
        assert_eq!(https_get(ns, names[i % names.len()], root), "tls\n");
    }
    let after = worker_responses(ns, workers);
    for k in 0..before.len() {
        // Each delta holds at most one /metrics request.
        assert!(
            after[k] - before[k] >= 2,
            "worker {k} served none of the https requests: {before:?} then {after:?}"
        );
    }
}

#[test]
fn http01_and_tls_alpn01_orders_succeed_and_a_restart_reuses_the_certificate() {
    if skip("http01_and_tls_alpn01_orders_succeed_and_a_restart_reuses_the_certificate") {
        return;
    }
    orders_and_a_restart(1);
}

/// The same with two workers: worker 0 orders, the validation's connection is answered by
/// whichever worker it lands on, and the certificate is served by both.
#[test]
fn http01_and_tls_alpn01_orders_succeed_with_two_workers() {
    if skip("http01_and_tls_alpn01_orders_succeed_with_two_workers") {
        return;
    }
    orders_and_a_restart(2);
}

#[test]
fn failed_validations_and_an_unreachable_directory_are_retried_while_the_fallback_serves() {
    if skip("failed_validations_and_an_unreachable_directory_are_retried_while_the_fallback_serves")
    {
        return;
    }
    let ns = Netns::builder("acmefail").with_dnsmasq().up();
    let dir = Scratch::new("acmefail");
    // pebble validates HTTP-01 on port 81, where nothing listens: every validation fails.
    let (pebble_config, pebble_ca) = pebble_files(&dir, 81);
    let _pebble = pebble(&ns, &pebble_config);
    let fallback = dir.path("fallback");
    let out = crate::common::run_timeout(
        std::process::Command::new(PAF).args([
            "cert",
            "--out",
            fallback.to_str().unwrap(),
            "--name",
            "a.paf.test",
        ]),
        T,
    );
    assert!(out.success(), "{out}");
    let extra = format!(
        "certificate = \"{}\"\nkey = \"{}\"",
        fallback.join("cert.pem").display(),
        fallback.join("key.pem").display()
    );
    let fallback_ca = fallback.join("ca.pem").to_str().unwrap().to_owned();
    let acme = |directory: &str, state: &str| {
        format!(
            r#"directory = "{directory}", domains = ["a.paf.test"], ca = "{pebble_ca}", state_dir = "{}""#,
            dir.s(state)
        )
    };

    let config = paf_config(
        &dir,
        "invalid.toml",
        2,
        &acme("https://acme.test:14000/dir", "state-invalid"),
        &extra,
    );
    let mut paf = start_paf(&ns, &config);
    // The first order at once, the retry 7.5-12.5 s later: two failures, each reported with
    // its step and pebble's problem document, the fallback served meanwhile.
    wait_log(&mut paf, "order failed at step validation", 1, ORDER);
    assert_eq!(https_get(&ns, "a.paf.test", &fallback_ca), "tls\n");
    wait_log(&mut paf, "order failed at step validation", 2, ORDER);
    let log = paf.stderr();
    assert!(log.contains("urn:ietf:params:acme:error:"), "{log}");
    assert!(log.contains("retry 2 in"), "{log}");
    assert_eq!(https_get(&ns, "a.paf.test", &fallback_ca), "tls\n");
    let m = metrics(&ns);
    assert!(
        m.contains("paf_acme_orders_total{listener=\"tls\",result=\"failed\"}"),
        "{m}"
    );
    assert!(
        !m.contains("paf_acme_orders_total{listener=\"tls\",result=\"ok\"}"),
        "{m}"
    );
    paf.stop(Duration::from_secs(10));

    // Nothing listens at the directory's port: reported at the directory step, retried.
    let config = paf_config(
        &dir,
        "unreachable.toml",
        2,
        &acme("https://acme.test:14999/dir", "state-unreachable"),
        &extra,
    );
    let mut paf = start_paf(&ns, &config);
    wait_log(&mut paf, "order failed at step directory", 2, ORDER);
    assert_eq!(https_get(&ns, "a.paf.test", &fallback_ca), "tls\n");
    paf.stop(Duration::from_secs(10));
}

#[test]
fn a_short_lived_certificate_is_renewed_in_place_while_wrk_sees_no_errors() {
    if skip("a_short_lived_certificate_is_renewed_in_place_while_wrk_sees_no_errors")
        || !require_tools("acme_renewal", &["wrk"])
    {
        return;
    }
    // wrk making a TLS handshake per request. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::builder("acmerenew").with_dnsmasq().up();
    let dir = Scratch::new("acmerenew");
    // Certificates valid for 30 s: renewed 20 s after their notBefore.
    let (pebble_config, pebble_ca) = pebble_files_valid_for(&dir, 80, Some(30));
    let _pebble = pebble(&ns, &pebble_config);
    let acme = format!(
        r#"directory = "https://acme.test:14000/dir", domains = ["a.paf.test"], ca = "{pebble_ca}", state_dir = "{}""#,
        dir.s("state")
    );
    // Two workers: the renewal, made on worker 0, must reach both.
    let config = paf_config(&dir, "renew.toml", 2, &acme, "");
    let mut paf = start_paf(&ns, &config);
    wait_log(&mut paf, "certificate for a.paf.test installed", 1, ORDER);
    let root = pebble_root(&ns, &dir);
    assert_eq!(https_get(&ns, "a.paf.test", &root), "tls\n");
    let expiry = |m: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix("paf_acme_certificate_expiry_seconds{domain=\"a.paf.test\"} ")
            })
            .map(str::to_owned)
    };
    let first = expiry(&metrics(&ns)).expect("expiry metric");
    // wrk through the renewal: a new connection, so a new handshake, for each request.
    let mut wrk = ns.spawn(
        "wrk",
        [
            "-t1",
            "-c8",
            "-d35s",
            "-H",
            "Connection: close",
            "https://198.18.0.2/",
        ],
    );
    wait_log(&mut paf, "certificate for a.paf.test installed", 2, ORDER);
    assert!(
        wrk.wait_timeout(Duration::from_secs(90))
            .is_some_and(|s| s.success()),
        "wrk: {}",
        wrk.stderr()
    );
    let out = wrk.stdout();
    assert!(out.contains("requests in"), "{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
    // The renewed certificate: a later expiry, verified by curl, no restart.
    let m = metrics(&ns);
    let second = expiry(&m).expect("expiry metric");
    assert!(second > first, "{first} then {second}");
    assert!(
        m.contains("paf_acme_orders_total{listener=\"tls\",result=\"ok\"}"),
        "{m}"
    );
    // The first certificate has expired by now: both workers serve the renewed one.
    every_worker_serves(&ns, &root, &["a.paf.test"], 2);
    assert!(paf.is_running());
    paf.stop(Duration::from_secs(10));
}

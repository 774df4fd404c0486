//! `paf request` on a real TAP in a network namespace, against real servers on the kernel side:
//! nginx (HTTP and HTTPS with a test CA, IPv4 and IPv6) and Python's `http.server`; names served
//! by dnsmasq in the namespace resolved over the userspace stack (A and AAAA, servers given with
//! `--dns` or learned by DHCP) and by the kernel twin; and the failures, each with its message
//! and exit code: an unknown name, a DNS server that does not answer, a refused port, a
//! certificate for another name, an untrusted CA.
//!
//! These need root (netns + TAP) and nginx and python3: without them they print `SKIP` and
//! return; in CI (`PAF_REQUIRE_NETNS=1`) they must run.

use crate::common;

use std::fs;
use std::time::Duration;

use common::{require_netns, require_tools, ChildGuard, Netns, Output, Scratch, KERNEL_V4};
use paf::tls::certs::TestCa;

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(60);
/// dnsmasq's address in every namespace (the kernel side of the TAP).
const DNS: &str = "198.18.0.1";

/// 1 MB of a pattern, served as a file by both servers.
fn blob() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

/// Test PKI: a CA, a certificate for `upstream.test` (port 8443) and one for `wrong.test` (port
/// 8444), and the files nginx and `paf request --cacert` read.
fn pki(dir: &Scratch) {
    let ca = TestCa::new("client_netns CA").unwrap();
    dir.write("ca.pem", ca.cert_pem());
    for (name, file) in [("upstream.test", "good"), ("wrong.test", "wrong")] {
        let c = ca.issue(&[name]).unwrap();
        dir.write(&format!("{file}.pem"), &c.cert_pem);
        dir.write(&format!("{file}.key"), &c.key_pem);
    }
}

/// nginx on the kernel side: 8080 (IPv4 and IPv6), 8443 TLS for upstream.test, 8444 TLS for
/// wrong.test. `/` says hello, `/echo` answers any method, `/blob` is the 1 MB file.
fn nginx(ns: &Netns, dir: &Scratch) -> ChildGuard {
    let d = dir.0.to_str().unwrap();
    fs::create_dir_all(dir.path("www")).unwrap();
    fs::create_dir_all(dir.path("tmp")).unwrap();
    dir.write("www/blob", blob());
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n\
         proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fcgi;\n\
         uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
         server {{\n    listen 198.18.0.1:8080;\n    listen [fd00:198:18::1]:8080;\n\
         listen 198.18.0.1:8443 ssl;\n    ssl_certificate {d}/good.pem;\n\
         ssl_certificate_key {d}/good.key;\n    root {d}/www;\n\
         location = / {{ default_type text/plain; return 200 \"nginx hello\\n\"; }}\n\
         location = /echo {{ default_type text/plain; return 200 \"nginx $request_method\\n\"; }}\n\
         }}\n  server {{\n    listen 198.18.0.1:8444 ssl;\n    ssl_certificate {d}/wrong.pem;\n\
         ssl_certificate_key {d}/wrong.key;\n    location / {{ return 200 \"wrong\\n\"; }}\n  }}\n}}\n"
    );
    let conf_path = dir.write("nginx.conf", conf);
    let mut g = ns.spawn("nginx", ["-c", conf_path.as_str(), "-p", d]);
    for port in [8080, 8443, 8444] {
        ns.wait_tcp_from(&mut g, (KERNEL_V4, port).into(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("nginx not listening on {port}: {e}"));
    }
    g
}

/// Runs `paf request --tap paf0 ARGS…` in the namespace.
fn request(ns: &Netns, args: &[&str]) -> Output {
    let mut all = vec!["request", "--tap", common::TAP];
    all.extend_from_slice(args);
    ns.run(PAF, all, T)
}

fn ok(out: &Output) -> &str {
    assert!(out.success(), "{out}");
    &out.stdout
}

fn skip(test: &str) -> bool {
    !require_netns(test) || !require_tools(test, &["nginx", "python3"])
}

#[test]
fn paf_request_reaches_nginx_and_python_over_both_families_and_both_stacks() {
    if skip("paf_request_reaches_nginx_and_python_over_both_families_and_both_stacks") {
        return;
    }
    let ns = Netns::builder("client").with_dnsmasq().up();
    let dir = Scratch::new("ok");
    pki(&dir);
    let _nginx = nginx(&ns, &dir);
    let www = dir.path("www");
    let mut python = ns.spawn(
        "python3",
        [
            "-m",
            "http.server",
            "8081",
            "--bind",
            "198.18.0.1",
            "--directory",
            www.to_str().unwrap(),
        ],
    );
    ns.wait_tcp_from(
        &mut python,
        (KERNEL_V4, 8081).into(),
        Duration::from_secs(15),
    )
    .expect("python http.server");
    let ca = dir.path("ca.pem");
    let ca = ca.to_str().unwrap();

    // Plain HTTP to an address: no DNS.
    assert_eq!(
        ok(&request(&ns, &["http://198.18.0.1:8080/"])),
        "nginx hello\n"
    );
    // A POST with -d, the method and body sent.
    let out = request(&ns, &["-d", "a=b", "http://198.18.0.1:8080/echo"]);
    assert_eq!(ok(&out), "nginx POST\n");
    // A name over the userspace stack, A then AAAA, checked by the address that answered.
    for (flag, peer) in [("-4", "198.18.0.1:8080"), ("-6", "[fd00:198:18::1]:8080")] {
        let out = request(
            &ns,
            &["-v", flag, "--dns", DNS, "http://upstream.test:8080/"],
        );
        assert_eq!(ok(&out), "nginx hello\n");
        assert!(out.stderr.contains(&format!("answered by {peer}")), "{out}");
        assert!(out.stderr.contains("< HTTP/1.1 200 OK"), "{out}");
    }
    // HTTPS, the certificate checked against the name and the test CA.
    let out = request(
        &ns,
        &["--cacert", ca, "--dns", DNS, "https://upstream.test:8443/"],
    );
    assert_eq!(ok(&out), "nginx hello\n");
    // 1 MB to a file, over TLS and from Python (HTTP/1.0, close-delimited).
    for (url, file) in [
        ("https://upstream.test:8443/blob", "tls.out"),
        ("http://upstream.test:8081/blob", "python.out"),
    ] {
        let dest = dir.path(file);
        let out = request(
            &ns,
            &[
                "--cacert",
                ca,
                "--dns",
                DNS,
                "-o",
                dest.to_str().unwrap(),
                url,
            ],
        );
        ok(&out);
        assert!(fs::read(&dest).unwrap() == blob(), "{url}: body differs");
    }
    // DNS servers from DHCP (dnsmasq's lease), no --dns.
    let out = request(&ns, &["--dhcp", "-4", "http://upstream.test:8080/"]);
    assert_eq!(ok(&out), "nginx hello\n");
    // The kernel twin resolves the same names with the same servers.
    let dest = dir.path("kernel.out");
    let out = request(
        &ns,
        &[
            "--stack",
            "kernel",
            "--dns",
            DNS,
            "-o",
            dest.to_str().unwrap(),
            "http://upstream.test:8081/blob",
        ],
    );
    ok(&out);
    assert!(
        fs::read(&dest).unwrap() == blob(),
        "kernel twin: body differs"
    );
    python.stop(Duration::from_secs(3));
}

/// Runs a failing request and checks its exit code and message.
fn fails(ns: &Netns, args: &[&str], code: i32, message: &str) {
    let out = request(ns, args);
    assert_eq!(out.code(), Some(code), "{args:?}: {out}");
    assert!(
        out.stderr.contains(message),
        "{args:?}: want {message:?}: {out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn paf_request_names_each_failure_with_its_exit_code() {
    if skip("paf_request_names_each_failure_with_its_exit_code") {
        return;
    }
    let ns = Netns::builder("clientfail").with_dnsmasq().up();
    let dir = Scratch::new("fail");
    pki(&dir);
    let _nginx = nginx(&ns, &dir);
    let ca = dir.path("ca.pem");
    let ca = ca.to_str().unwrap();
    fails(
        &ns,
        &["--dns", DNS, "http://nosuch.test:8080/"],
        6,
        "paf request: cannot resolve nosuch.test: name not found",
    );
    fails(
        &ns,
        &["--dns", "198.18.0.77", "http://upstream.test:8080/"],
        28,
        "cannot resolve upstream.test: no answer from the DNS servers",
    );
    fails(
        &ns,
        &["http://198.18.0.1:8099/"],
        7,
        "paf request: cannot connect to 198.18.0.1:8099: connection refused",
    );
    fails(
        &ns,
        &["--cacert", ca, "--dns", DNS, "https://upstream.test:8444/"],
        60,
        "certificate not valid for name \"upstream.test\"",
    );
    fails(
        &ns,
        &["--dns", DNS, "https://upstream.test:8443/"],
        60,
        "invalid peer certificate: UnknownIssuer",
    );
    fails(&ns, &["ftp://upstream.test/"], 3, "unsupported scheme ftp");
    // -k accepts the wrong certificate.
    let out = request(&ns, &["-k", "--dns", DNS, "https://upstream.test:8444/"]);
    assert_eq!(ok(&out), "wrong\n");
}

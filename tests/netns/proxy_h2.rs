//! The proxy speaking HTTP/2 to nginx: `paf run --config` on a TAP in a namespace, nginx on the
//! kernel side with `http2` on its TLS port (8443), on an h2c port (8082), and on a TLS port
//! whose connections end after 20 requests (8444, `keepalive_requests 20`: nginx sends GOAWAY).
//! curl talks HTTP/1.1 to paf; nginx echoes `$server_protocol` and `$connection`, so each
//! answer says which protocol and which upstream connection carried it.
//!
//! - 200 requests at once (`curl --parallel`, 50 connections to paf) through `protocols =
//!   ["h2", "http/1.1"]`: every one answered over HTTP/2, all on one nginx connection;
//! - the same through h2c with prior knowledge (`protocols = ["h2"]`);
//! - 200 through the upstream that says GOAWAY every 20 requests: all answered, over at least
//!   ten connections, no upstream error counted;
//! - `h2load -n 5000 -c 10 -m 10` over h2c to paf, proxied over h2: all 5000 succeed;
//! - a 100 MB download and a 100 MB upload (`PUT`, stored by nginx) through the h2 upstream,
//!   byte-exact, time-bounded;
//! - `paf request --http2` (TLS, ALPN) and `--http2-prior-knowledge` (h2c) answered over
//!   HTTP/2, and over HTTP/1.1 without either.
//!
//! Needs root, nginx (with `http_v2`), curl, h2load: without them it prints `SKIP` (a failure under
//! `PAF_REQUIRE_NETNS=1`).

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use crate::appliance::support::{
    get, metrics, sha256, start, Fixtures, Scratch, BIG, BIG_TIME, PAF,
};
use crate::common::{require_netns, require_tools, ChildGuard, Netns, KERNEL_V4};

// One worker: the test counts the upstream connections of one client pool (each worker has
// its own; tests/netns/workers.rs proxies with several).
const CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
workers = 1

[defaults]
max_body_size = "1GiB"

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/metrics"
action = "metrics"

[[listener.route]]
path = "/c/"
action = "proxy"
upstream = "h2c"

[[listener.route]]
path = "/g/"
action = "proxy"
upstream = "goaway"

[[listener.route]]
path = "/"
action = "proxy"
upstream = "h2"

[[upstream]]
name = "h2"
urls = ["https://198.18.0.1:8443"]
ca = "pki/upstream/ca.pem"
sni = "upstream.test"
protocols = ["h2", "http/1.1"]

[[upstream]]
name = "h2c"
urls = ["http://198.18.0.1:8082"]
protocols = ["h2"]

[[upstream]]
name = "goaway"
urls = ["https://198.18.0.1:8444"]
ca = "pki/upstream/ca.pem"
sni = "upstream.test"
protocols = ["h2", "http/1.1"]
"#;

/// nginx 1.22 (`listen … http2`; 1.25's `http2 on` is the same): `/e/…` and `/c/e/…` and
/// `/g/e/…` answer `"<protocol> <uri> <connection serial>"`, files from www/, PUT to /dav/.
fn nginx(ns: &Netns, dir: &Scratch) -> ChildGuard {
    let d = dir.0.to_str().unwrap();
    for sub in ["tmp", "dav/dav", "www"] {
        fs::create_dir_all(dir.path(sub)).unwrap();
    }
    let echo =
        "default_type text/plain; return 200 \"$server_protocol $request_uri $connection\\n\";";
    let server = |listen: &str, extra: &str| {
        format!(
            "  server {{\n    {listen}\n    {extra}\n    ssl_certificate {d}/pki/upstream/cert.pem;\n\
             ssl_certificate_key {d}/pki/upstream/key.pem;\n    root {d}/www;\n\
             location ~ /e/ {{ {echo} }}\n\
             location /dav/ {{ root {d}/dav; dav_methods PUT; }}\n  }}\n"
        )
    };
    let conf =
        format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_max_body_size 0;\n\
         client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n{}{}{}}}\n",
        server("listen 198.18.0.1:8443 ssl http2;", ""),
        server("listen 198.18.0.1:8082 http2;", ""),
        server("listen 198.18.0.1:8444 ssl http2;", "keepalive_requests 20;"),
    );
    let conf = dir.write("nginx.conf", conf);
    let mut g = ns.spawn("nginx", ["-c", conf.as_str(), "-p", d]);
    for port in [8443, 8082, 8444] {
        ns.wait_tcp_from(&mut g, (KERNEL_V4, port).into(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("nginx not listening on {port}: {e}"));
    }
    g
}

/// `n` GETs of `prefix<i>` at once through paf (`curl --parallel`, 50 at a time); returns the
/// nginx connection serials that carried them, after checking each answer.
fn parallel(ns: &Netns, prefix: &str, n: usize) -> BTreeSet<u64> {
    let url = format!("http://198.18.0.2{prefix}[1-{n}]");
    let args = [
        "-sS",
        "--max-time",
        "150",
        "--parallel",
        "--parallel-max",
        "50",
        &url,
    ];
    let out = ns.run("curl", args, Duration::from_secs(160));
    assert!(out.success(), "{out}");
    let mut seen = BTreeSet::new();
    let mut conns = BTreeSet::new();
    for line in out.stdout.lines().filter(|l| l.starts_with("HTTP/")) {
        let mut parts = line.split(' ');
        let (proto, uri, conn) = (parts.next(), parts.next(), parts.next());
        assert_eq!(proto, Some("HTTP/2.0"), "{line}");
        let i: usize = uri
            .and_then(|u| u.strip_prefix(prefix))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(seen.insert(i), "{i} answered twice");
        conns.insert(conn.unwrap().parse::<u64>().unwrap());
    }
    let other: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("HTTP/"))
        .collect();
    assert_eq!(
        seen.len(),
        n,
        "{} of {n} answered; besides: {other:?}",
        seen.len()
    );
    conns
}

#[test]
fn proxy_multiplexes_on_h2_to_nginx_survives_goaway_and_moves_100_mb_both_ways() {
    let test = "proxy_multiplexes_on_h2_to_nginx_survives_goaway_and_moves_100_mb_both_ways";
    if !require_netns(test) || !require_tools(test, &["nginx", "curl", "h2load"]) {
        return;
    }
    // 200 MB through the proxy keep both cores busy. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("proxyh2");
    let dir = Scratch::new("proxyh2");
    dir.cert("upstream", &["upstream.test"]);
    let blob = dir.big_file("www/blob", BIG, 0);
    let upload = dir.big_file("upload.bin", BIG, 0x5a);
    let _nginx = nginx(&ns, &dir);
    let config = dir.write("proxy-h2.toml", CONFIG);
    let paf = start(&ns, &config);

    // TLS with ALPN h2: 200 requests, one upstream connection.
    let conns = parallel(&ns, "/e/", 200);
    assert_eq!(conns.len(), 1, "nginx connections: {conns:?}");
    // h2c with prior knowledge.
    let conns = parallel(&ns, "/c/e/", 200);
    assert_eq!(conns.len(), 1, "nginx h2c connections: {conns:?}");
    // GOAWAY every 20 requests: the requests it did not take go on the next connection.
    let conns = parallel(&ns, "/g/e/", 200);
    assert!(conns.len() >= 10, "nginx connections: {conns:?}");
    // HTTP/2 on both sides: h2load speaks h2c to paf, paf h2 to nginx (10 connections with 10
    // streams each in front, all of them on paf's one upstream connection).
    let out = ns.run(
        "h2load",
        [
            "-n",
            "5000",
            "-c",
            "10",
            "-m",
            "10",
            "http://198.18.0.2/e/load",
        ],
        Duration::from_secs(120),
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains("5000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );

    // 100 MB down and up through the h2 upstream.
    let dest = dir.s("down.bin");
    let t0 = Instant::now();
    let (code, _) = get(&ns, "http://198.18.0.2/blob", &["-o", &dest]);
    let took = t0.elapsed();
    assert_eq!(code, 200);
    assert!(took < BIG_TIME, "100 MB down took {took:?}");
    assert_eq!(sha256(&dest), sha256(&blob), "the download differs");
    fs::remove_file(&dest).unwrap();
    eprintln!("100 MB down through the proxy over h2: {took:?}");
    let t0 = Instant::now();
    let (code, _) = get(&ns, "http://198.18.0.2/dav/up.bin", &["-T", &upload]);
    let took = t0.elapsed();
    assert!(code == 201 || code == 204, "PUT: {code}");
    assert!(took < BIG_TIME, "100 MB up took {took:?}");
    assert_eq!(
        sha256(&dir.s("dav/dav/up.bin")),
        sha256(&upload),
        "the upload differs"
    );
    eprintln!("100 MB up through the proxy over h2: {took:?}");

    // No upstream failure was counted along the way.
    let m = metrics(&ns);
    let errors: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("paf_upstream_errors_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, 0.0, "{m:?}");
    // Every upstream response came over HTTP/2: 200 per upstream, plus h2load's 5000 and the
    // two 100 MB transfers on `h2`.
    for (upstream, want) in [("h2", 5202.0), ("h2c", 200.0), ("goaway", 200.0)] {
        let key =
            format!("paf_upstream_responses_total{{upstream=\"{upstream}\",protocol=\"h2\"}}");
        assert_eq!(m.get(&key), Some(&want), "{key}: {m:?}");
    }
    assert!(
        !m.keys().any(|k| k.contains("protocol=\"http/1.1\"")),
        "{m:?}"
    );

    // `paf request` on the same TAP once `paf run` is gone: --http2 over TLS (ALPN),
    // --http2-prior-knowledge on the h2c port, HTTP/1.1 when neither is asked.
    drop(paf);
    let request = |args: &[&str]| {
        let mut all = vec!["request", "--tap", crate::common::TAP];
        all.extend_from_slice(args);
        let out = ns.run(PAF, all, Duration::from_secs(60));
        assert!(out.success(), "{out}");
        out.stdout
    };
    let body = request(&["--http2", "-k", "https://198.18.0.1:8443/e/cli"]);
    assert!(body.starts_with("HTTP/2.0 /e/cli "), "{body}");
    let body = request(&["--http2-prior-knowledge", "http://198.18.0.1:8082/e/cli"]);
    assert!(body.starts_with("HTTP/2.0 /e/cli "), "{body}");
    let body = request(&["-k", "https://198.18.0.1:8443/e/cli"]);
    assert!(body.starts_with("HTTP/1.1 /e/cli "), "{body}");
}

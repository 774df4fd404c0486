//! `compress` on a proxy route end to end: `paf run --config` in front of nginx (files from
//! www/, ranges and ETags as nginx does them; gzip only under `/enc/`), reached by
//! `curl --compressed`.
//!
//! `/z/` compresses (`compress = ["br", "gzip"]`): br and gzip as asked, byte-exact once decoded,
//! over HTTP/1.1 and h2c, and the wire carries the compressed stream. A range is answered with
//! the identity's bytes; `/enc/`, which nginx gzips itself, is relayed as nginx sent it (not
//! encoded twice); `/plain/`, a proxy route without `compress`, is never compressed.

use std::time::Duration;

use super::support::*;
use crate::common::{ChildGuard, Netns, KERNEL_V4};

const NGINX_PORT: u16 = 8082;

const CONFIG: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[[listener]]
name = "web"
port = 80

[[listener.route]]
path = "/z/"
action = "proxy"
upstream = "nginx"
compress = ["br", "gzip"]

[[listener.route]]
path = "/enc/"
action = "proxy"
upstream = "nginx"
compress = ["br", "gzip"]

[[listener.route]]
path = "/plain/"
action = "proxy"
upstream = "nginx"

[[upstream]]
name = "nginx"
urls = ["http://198.18.0.1:8082"]
"#;

/// nginx on 8082: files from www/; under `/enc/` it gzips text itself (for proxies too: paf
/// sends `Via`).
fn nginx_files(ns: &Netns, dir: &Scratch) -> ChildGuard {
    let d = dir.0.to_str().unwrap();
    std::fs::create_dir_all(dir.path("tmp")).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  types {{ text/plain txt; }}\n\
         client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n  server {{\n\
         listen 198.18.0.1:{NGINX_PORT};\n    root {d}/www;\n\
         location /enc/ {{ gzip on; gzip_proxied any; gzip_types text/plain; gzip_min_length 0; }}\n\
         }}\n}}\n"
    );
    let conf = dir.write("nginx.conf", conf);
    let mut g = ns.spawn("nginx", ["-c", conf.as_str(), "-p", d]);
    ns.wait_tcp_from(
        &mut g,
        (KERNEL_V4, NGINX_PORT).into(),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("nginx not listening on {NGINX_PORT}: {e}"));
    g
}

#[test]
fn curl_compressed_through_the_proxy_gets_br_and_gzip_byte_exact_and_never_for_ranges() {
    if skip("curl_compressed_through_the_proxy_gets_br_and_gzip_byte_exact_and_never_for_ranges") {
        return;
    }
    let ns = Netns::new("applpzip");
    let dir = Scratch::new("pzip");
    let text: String = (0..50_000)
        .map(|i| format!("{i}: a line of text worth compressing\n"))
        .collect();
    let original = dir.write("www/z/big.txt", &text);
    dir.write("www/enc/big.txt", &text);
    dir.write("www/plain/big.txt", &text);
    let _nginx = nginx_files(&ns, &dir);
    let config = dir.write("paf.toml", CONFIG);
    let mut paf = start(&ns, &config);
    let url = "http://198.18.0.2/z/big.txt";
    for (enc, h2) in [("br", false), ("gzip", false), ("br", true)] {
        let got = dir.s(&format!("got.{enc}.{h2}"));
        let accept = format!("Accept-Encoding: {enc}");
        let mut args = vec!["--compressed", "-H", &accept, "-D", "-", "-o", &got];
        if h2 {
            args.push("--http2-prior-knowledge");
        }
        let (code, head) = get(&ns, url, &args);
        assert_eq!(code, 200, "{head}");
        assert_eq!(
            field(&head, "content-encoding").as_deref(),
            Some(enc),
            "{head}"
        );
        assert_eq!(
            field(&head, "vary").as_deref(),
            Some("accept-encoding"),
            "{head}"
        );
        assert_eq!(field(&head, "content-length"), None, "{head}");
        let etag = field(&head, "etag").unwrap_or_default();
        assert!(etag.starts_with("W/\""), "weak: {head}");
        assert_eq!(
            sha256(&got),
            sha256(&original),
            "{enc} (h2 {h2}): decoded body differs"
        );
        // What went over the wire was the compressed stream.
        let raw = dir.s(&format!("raw.{enc}.{h2}"));
        let (code, _) = get(&ns, url, &["-H", &accept, "-o", &raw]);
        assert_eq!(code, 200);
        let wire = std::fs::metadata(&raw).unwrap().len();
        assert!(
            wire < text.len() as u64 / 4,
            "{enc}: {wire} bytes on the wire"
        );
    }
    // A range is of the identity, compressed or not asked.
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
            &dir.s("range"),
        ],
    );
    assert_eq!(code, 206, "{head}");
    assert_eq!(field(&head, "content-encoding"), None, "{head}");
    assert_eq!(
        std::fs::read_to_string(dir.path("range")).unwrap(),
        &text[..25]
    );
    // Encoded by nginx already: relayed as it is, decoded once by curl.
    let got = dir.s("got.enc");
    let (code, head) = get(
        &ns,
        "http://198.18.0.2/enc/big.txt",
        &["--compressed", "-D", "-", "-o", &got],
    );
    assert_eq!(code, 200, "{head}");
    assert_eq!(
        field(&head, "content-encoding").as_deref(),
        Some("gzip"),
        "{head}"
    );
    assert_eq!(sha256(&got), sha256(&original), "not encoded twice");
    // A proxy route without `compress`: off.
    let got = dir.s("got.plain");
    let (code, head) = get(
        &ns,
        "http://198.18.0.2/plain/big.txt",
        &["--compressed", "-D", "-", "-o", &got],
    );
    assert_eq!(code, 200, "{head}");
    assert_eq!(field(&head, "content-encoding"), None, "{head}");
    assert_eq!(field(&head, "vary"), None, "{head}");
    assert_eq!(
        field(&head, "content-length"),
        Some(text.len().to_string()),
        "{head}"
    );
    assert_eq!(sha256(&got), sha256(&original));
    assert!(paf.stop(Duration::from_secs(20)).success());
}

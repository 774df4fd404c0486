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
//! - Five broken configs: `paf check` names each bad key and exits 2; `paf run` exits 2 before
//!   opening the TAP (it keeps NO-CARRIER).
//!
//! Each example config is copied into a scratch directory next to the `pki/` and `www/` its
//! relative paths name (made here with `paf cert` and files), so the file tested is the file
//! shipped. Needs root, nginx, python3, curl, openssl: without them the tests print `SKIP`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, run_timeout, ChildGuard, Netns, Output, KERNEL_V4};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(60);
/// Size of the large bodies.
const BIG: usize = 100_000_000;
/// Upper bound for one 100 MB transfer through the proxy (a debug build on 2 shared cores).
const BIG_TIME: Duration = Duration::from_secs(120);

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("paf-appl-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_owned()
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> String {
        let p = self.path(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        self.s(name)
    }

    /// Copies `config/<name>` from the repository here, as shipped.
    fn example(&self, name: &str) -> String {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        self.write(
            name,
            fs::read(&src).unwrap_or_else(|e| panic!("{src:?}: {e}")),
        )
    }

    /// `paf cert --out pki/<dir> --name …`.
    fn cert(&self, dir: &str, names: &[&str]) {
        let mut cmd = Command::new(PAF);
        cmd.args(["cert", "--out", &self.s(&format!("pki/{dir}"))]);
        for n in names {
            cmd.args(["--name", n]);
        }
        let out = run_timeout(&mut cmd, T);
        assert!(out.success(), "{out}");
    }

    /// `len` bytes of a pattern, written in 1 MiB pieces.
    fn big_file(&self, name: &str, len: usize, seed: u8) -> String {
        let p = self.path(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::io::BufWriter::new(fs::File::create(&p).unwrap());
        let piece: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 ^ seed).collect();
        let mut left = len;
        while left > 0 {
            let n = left.min(piece.len());
            f.write_all(&piece[..n]).unwrap();
            left -= n;
        }
        f.flush().unwrap();
        self.s(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn skip(test: &str) -> bool {
    !require_netns(test) || !require_tools(test, &["nginx", "python3", "curl", "openssl"])
}

fn sha256(path: &str) -> String {
    let out = run_timeout(Command::new("sha256sum").arg(path), T);
    assert!(out.success(), "{out}");
    out.stdout.split_whitespace().next().unwrap().to_owned()
}

/// `paf check` passes on `config`; then `paf run --config` answers on port 80.
fn start(ns: &Netns, config: &str) -> ChildGuard {
    let check = run_timeout(Command::new(PAF).args(["check", "--config", config]), T);
    assert!(check.success(), "{check}");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", config]);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(80), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("paf run --config {config}: {e}"));
    paf
}

/// curl from inside the namespace, `-sS` with a bound on time; `-w` prints the status last.
fn curl(ns: &Netns, args: &[&str]) -> Output {
    let mut all = vec!["-sS", "--max-time", "150", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    ns.run("curl", all, Duration::from_secs(160))
}

/// The status and body of a curl run made with [`curl`].
fn answer(out: &Output) -> (u16, String) {
    assert!(out.success(), "{out}");
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

fn get(ns: &Netns, url: &str, extra: &[&str]) -> (u16, String) {
    let mut args = extra.to_vec();
    args.push(url);
    answer(&curl(ns, &args))
}

/// The Python upstream: files from a directory, `/headers` (the request fields it got, in a
/// close-delimited HTTP/1.0 body), `/slow` (answers after 5 s), and POST/PUT `/sum` (length and
/// SHA-256 of the body, `Content-Length` or chunked).
const PYTHON: &str = r#"
import functools, hashlib, http.server, sys, time
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, body, length=True):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if length: self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(5)
            return self.reply(b"slow\n")
        if self.path == "/headers":
            text = "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items())
            return self.reply(text.encode(), length=False)
        return super().do_GET()
    def do_POST(self):
        h, n = hashlib.sha256(), 0
        def take(left):
            nonlocal n
            while left:
                b = self.rfile.read(min(left, 1 << 16))
                if not b: raise EOFError
                h.update(b); n += len(b); left -= len(b)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                    break
                take(size); self.rfile.readline()
        else:
            take(int(self.headers.get("Content-Length", "0")))
        self.reply(("%d %s\n" % (n, h.hexdigest())).encode())
    do_PUT = do_POST
d = functools.partial(H, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("198.18.0.1", int(sys.argv[1])), d).serve_forever()
"#;

fn python(ns: &Netns, dir: &Scratch, port: u16) -> ChildGuard {
    let script = dir.write("upstream.py", PYTHON);
    let www = dir.s("www");
    let mut g = ns.spawn("python3", [script.as_str(), &port.to_string(), &www]);
    ns.wait_tcp_from(&mut g, (KERNEL_V4, port).into(), Duration::from_secs(15))
        .expect("python upstream");
    g
}

/// nginx on 8080 (HTTP) and 8443 (HTTPS, the certificate `paf cert` made in pki/upstream):
/// `/` says hello, files from www/, PUT under `/dav/` stored in dav/.
fn nginx(ns: &Netns, dir: &Scratch) -> ChildGuard {
    let d = dir.0.to_str().unwrap();
    for sub in ["tmp", "dav/dav", "www"] {
        fs::create_dir_all(dir.path(sub)).unwrap();
    }
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_max_body_size 0;\n\
         client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n  server {{\n    listen 198.18.0.1:8080;\n\
         listen 198.18.0.1:8443 ssl;\n    ssl_certificate {d}/pki/upstream/cert.pem;\n\
         ssl_certificate_key {d}/pki/upstream/key.pem;\n    root {d}/www;\n\
         location = / {{ default_type text/plain; return 200 \"nginx hello\\n\"; }}\n\
         location = /scheme {{ default_type text/plain; return 200 \"$scheme $ssl_server_name\\n\"; }}\n\
         location /dav/ {{ root {d}/dav; dav_methods PUT; }}\n  }}\n}}\n"
    );
    let conf = dir.write("nginx.conf", conf);
    let mut g = ns.spawn("nginx", ["-c", conf.as_str(), "-p", d]);
    for port in [8080, 8443] {
        ns.wait_tcp_from(&mut g, (KERNEL_V4, port).into(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("nginx not listening on {port}: {e}"));
    }
    g
}

/// A Prometheus text exposition, parsed strictly: every sample's metric has a `# TYPE` line
/// before it, names and labels are well-formed, values are numbers.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut typed: Vec<String> = Vec::new();
    let mut samples = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(name_ok(name), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(["counter", "gauge", "untyped"].contains(&t), "{line:?}");
                typed.push(name.to_owned());
            } else {
                assert_eq!(kind, "HELP", "{line:?}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line:?}");
        assert!(typed.iter().any(|t| t == name), "no # TYPE for {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("labels in {line:?}"));
                for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(name_ok(k), "{line:?}");
                    assert!(!v.trim_end_matches('"').contains('"'), "{line:?}");
                }
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate {series}"
        );
    }
    samples
}

fn metrics(ns: &Netns) -> BTreeMap<String, f64> {
    let (code, body) = get(ns, "http://198.18.0.2/metrics", &[]);
    assert_eq!(code, 200);
    parse_metrics(&body)
}

#[test]
fn reverse_proxy_example_reaches_nginx_and_python_over_http_and_https() {
    if skip("reverse_proxy_example_reaches_nginx_and_python_over_http_and_https") {
        return;
    }
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
const FAILING: &str = r#"
[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

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
    assert_eq!(m.get(&key(4, "2xx")).copied(), Some(4.0), "{m:#?}");
}

//! Helpers of the appliance tests: scratch directories with the example configs and `paf cert`
//! output, curl from the namespace, the nginx and Python upstreams, a strict Prometheus text
//! parser.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    require_netns, require_tools, run_timeout, ChildGuard, Netns, Output, KERNEL_V4,
};

pub const PAF: &str = env!("CARGO_BIN_EXE_paf");
pub const T: Duration = Duration::from_secs(60);
/// Size of the large bodies.
pub const BIG: usize = 100_000_000;
/// Upper bound for one 100 MB transfer through the proxy (a debug build on 2 shared cores).
pub const BIG_TIME: Duration = Duration::from_secs(120);

pub use crate::common::Scratch;

/// What the appliance tests put in a [`Scratch`] directory beyond plain files.
pub trait Fixtures {
    /// Copies `config/<name>` from the repository here, as shipped.
    fn example(&self, name: &str) -> String;
    /// `paf cert --out pki/<dir> --name …`.
    fn cert(&self, dir: &str, names: &[&str]);
    /// `len` bytes of a pattern, written in 1 MiB pieces.
    fn big_file(&self, name: &str, len: usize, seed: u8) -> String;
}

impl Fixtures for Scratch {
    fn example(&self, name: &str) -> String {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        self.write(
            name,
            fs::read(&src).unwrap_or_else(|e| panic!("{src:?}: {e}")),
        )
    }

    fn cert(&self, dir: &str, names: &[&str]) {
        let mut cmd = Command::new(PAF);
        cmd.args(["cert", "--out", &self.s(&format!("pki/{dir}"))]);
        for n in names {
            cmd.args(["--name", n]);
        }
        let out = run_timeout(&mut cmd, T);
        assert!(out.success(), "{out}");
    }

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

pub fn skip(test: &str) -> bool {
    !require_netns(test) || !require_tools(test, &["nginx", "python3", "curl", "openssl"])
}

pub fn sha256(path: &str) -> String {
    let out = run_timeout(Command::new("sha256sum").arg(path), T);
    assert!(out.success(), "{out}");
    out.stdout.split_whitespace().next().unwrap().to_owned()
}

/// `paf check` passes on `config`; then `paf run --config` answers on port 80.
pub fn start(ns: &Netns, config: &str) -> ChildGuard {
    let check = run_timeout(Command::new(PAF).args(["check", "--config", config]), T);
    assert!(check.success(), "{check}");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", config]);
    ns.wait_tcp_from(
        &mut paf,
        crate::common::appliance_v4(80),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("paf run --config {config}: {e}"));
    paf
}

/// curl from inside the namespace, `-sS` with a bound on time; `-w` prints the status last.
pub fn curl(ns: &Netns, args: &[&str]) -> Output {
    let mut all = vec!["-sS", "--max-time", "150", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    ns.run("curl", all, Duration::from_secs(160))
}

/// The status and body of a curl run made with [`curl`].
pub fn answer(out: &Output) -> (u16, String) {
    assert!(out.success(), "{out}");
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

pub fn get(ns: &Netns, url: &str, extra: &[&str]) -> (u16, String) {
    let mut args = extra.to_vec();
    args.push(url);
    answer(&curl(ns, &args))
}

/// The Python upstream: files from a directory, `/headers` (the request fields it got, in a
/// close-delimited HTTP/1.0 body), `/slow` (answers after 5 s), `/stream` (100 MB, then
/// `stream.log` next to the directory says whether all was taken), and POST/PUT `/sum` (length
/// and SHA-256 of the body, `Content-Length` or chunked).
pub const PYTHON: &str = r#"
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
        if self.path == "/stream":
            # 100 MB in 64 KiB writes; stream.log says whether the reader took it all.
            self.send_response(200)
            self.send_header("Content-Length", str(100_000_000))
            self.end_headers()
            sent, chunk = 0, b"s" * 65536
            try:
                while sent < 100_000_000:
                    self.wfile.write(chunk[: 100_000_000 - sent])
                    sent += min(65536, 100_000_000 - sent)
                outcome = "complete"
            except OSError:
                outcome = "aborted"
            with open(sys.argv[2] + "/../stream.log", "w") as f:
                f.write("%s %d\n" % (outcome, sent))
            return
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

pub fn python(ns: &Netns, dir: &Scratch, port: u16) -> ChildGuard {
    let script = dir.write("upstream.py", PYTHON);
    let www = dir.s("www");
    let mut g = ns.spawn("python3", [script.as_str(), &port.to_string(), &www]);
    ns.wait_tcp_from(&mut g, (KERNEL_V4, port).into(), Duration::from_secs(15))
        .expect("python upstream");
    g
}

/// nginx on 8080 (HTTP) and 8443 (HTTPS, the certificate `paf cert` made in pki/upstream):
/// `/` says hello, files from www/, PUT under `/dav/` stored in dav/.
pub fn nginx(ns: &Netns, dir: &Scratch) -> ChildGuard {
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
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
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

pub fn metrics(ns: &Netns) -> BTreeMap<String, f64> {
    let (code, body) = get(ns, "http://198.18.0.2/metrics", &[]);
    assert_eq!(code, 200);
    parse_metrics(&body)
}

/// www/ for the static-files example: an index, a text file, a symlink inside the root and one
/// out of it (to a secret next to www/), and a secret with an encoded-path lookalike.
pub fn site(dir: &Scratch) {
    dir.write("www/index.html", "home\n");
    dir.write("www/a.txt", "hello world\n");
    dir.write("www/sub/index.html", "sub\n");
    dir.write("secret.txt", "secret\n");
    std::os::unix::fs::symlink(dir.path("secret.txt"), dir.path("www/escape")).unwrap();
    std::os::unix::fs::symlink(dir.path("www/a.txt"), dir.path("www/inside")).unwrap();
}

/// A response head field from `curl -i` output (lower-cased name), if present.
pub fn field(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

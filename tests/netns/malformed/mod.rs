//! Malformed input over a real TAP: the table of `cases.rs` (request smuggling, framing, head
//! syntax, Host, versions, limits, pipelining) sent byte for byte to `paf run --config` in a
//! network namespace, each case on a fresh connection, each answer asserted exactly (status,
//! `Connection: close`, whether paf closes or keeps the connection), and then a valid request
//! on another fresh connection that must get 200.
//!
//! Every case goes to two listeners of one appliance:
//! - **direct** (port 80): a static route, so the codec's own answers are seen;
//! - **proxy** (port 8080): a proxy route to `tests/tools/recording_upstream.py` on the kernel
//!   side (198.18.0.1:9000), which writes every byte it receives to one file per connection.
//!   After the run those files are split strictly into requests (`wire.rs`): every byte must
//!   belong to a complete request, each request names its case by its path, and each case
//!   must have reached the upstream exactly as the table says — the one legitimate request with
//!   its exact body, or nothing. A smuggled request (`/c/<case>/SMUGGLED`), stray body bytes,
//!   or a request cut short all fail the test.
//!
//! The client is `tests/tools/raw_http.py`, run inside the namespace (kernel side, 198.18.0.1).
//! The TAP has a jumbo MTU so that each case reaches paf in one segment: segmentation is not
//! what this suite tests, and it decides whether a route answers before a bad body is seen.
//!
//! Needs root (netns + TAP) and python3; without them it prints `SKIP` (and fails under
//! `PAF_REQUIRE_NETNS=1`).

use crate::common;

mod cases;
mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cases::{Case, End, Reply};
use common::{
    require_netns, require_tools, run_timeout, tool, ChildGuard, Netns, Scratch, KERNEL_V4,
};
use wire::{parse_all, show, Kind, Message};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const DIRECT_PORT: u16 = 80;
const PROXY_PORT: u16 = 8080;
const UPSTREAM_PORT: u16 = 9000;
/// What the static route of the direct listener answers.
const DIRECT_BODY: &[u8] = b"direct-ok\n";
/// What the recording upstream answers.
const UPSTREAM_BODY: &[u8] = b"upstream-ok";
/// The client's wait for an extra byte once the expected replies are in, before it calls the
/// connection open.
const QUIET_MS: u64 = 300;
/// The client's bound on one connection.
const LIMIT_S: u64 = 5;
/// Large enough that every payload that must be rejected arrives in one segment.
const MTU: u32 = 32 * 1024;

/// The appliance under test; limits are the documented defaults, written out, except the body.
/// h2c is off: this suite is about HTTP/1.1 parsing, and its `h2-preface` case checks that a
/// listener without h2c answers the HTTP/2 preface like any other version (505).
fn paf_config() -> String {
    format!(
        r#"[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
ipv6 = "fd00:198:18::2/64"
gateway6 = "fd00:198:18::1"

[defaults]
max_head_size = {head}
max_headers = {headers}
max_body_size = {body}

[[listener]]
name = "direct"
port = {DIRECT_PORT}
h2c = false

[[listener.route]]
path = "/"
action = "static"
body = "direct-ok\n"

[[listener]]
name = "proxy"
port = {PROXY_PORT}
h2c = false

[[listener.route]]
path = "/"
action = "proxy"
upstream = "recorder"

[[upstream]]
name = "recorder"
urls = ["http://198.18.0.1:{UPSTREAM_PORT}"]
connect_timeout = "2s"
response_timeout = "5s"
"#,
        head = cases::MAX_HEAD,
        headers = cases::MAX_HEADERS,
        body = cases::MAX_BODY,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    Direct,
    Proxy,
}

impl Listener {
    fn port(self) -> u16 {
        match self {
            Listener::Direct => DIRECT_PORT,
            Listener::Proxy => PROXY_PORT,
        }
    }
}

/// What the client saw for one case: the case's connection and the follow-up's.
#[derive(Debug)]
struct Seen {
    how: String,
    got: Vec<u8>,
    after_how: String,
    after: Vec<u8>,
    ms: u64,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex from raw_http.py"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The follow-up request of a case: valid, on a fresh connection, `Connection: close`.
fn followup(case: &Case) -> Vec<u8> {
    format!(
        "GET /after/{} HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\n",
        case.name
    )
    .into_bytes()
}

/// Sends every case to `listener` with `raw_http.py`; the result of each by case name.
fn run_cases(
    ns: &Netns,
    dir: &Scratch,
    listener: Listener,
    all: &[Case],
) -> BTreeMap<String, Seen> {
    let list = dir.s(&format!("cases-{}.txt", listener.port()));
    let lines: String = all
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {} {}\n",
                c.name,
                listener.port(),
                hex(&c.payload()),
                hex(&followup(c)),
                c.replies.len()
            )
        })
        .collect();
    fs::write(&list, lines).expect("case list");
    // Bound: two connections per case, each at most LIMIT_S, plus slack.
    let bound = Duration::from_secs(30 + all.len() as u64 * (2 * LIMIT_S + 1));
    let out = ns.run(
        "python3",
        [
            tool("raw_http.py"),
            common::APPLIANCE_V4.to_string(),
            list,
            QUIET_MS.to_string(),
            LIMIT_S.to_string(),
        ],
        bound,
    );
    assert!(out.success(), "raw_http.py against {listener:?}\n{out}");
    let mut seen = BTreeMap::new();
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 6, "raw_http.py line {line:?}");
        let s = Seen {
            how: f[1].to_owned(),
            got: unhex(f[2]),
            after_how: f[3].to_owned(),
            after: unhex(f[4]),
            ms: f[5].parse().expect("ms"),
        };
        seen.insert(f[0].to_owned(), s);
    }
    assert_eq!(seen.len(), all.len(), "a result per case\n{out}");
    seen
}

/// The status `reply` must get on `listener`.
fn status_of(reply: &Reply, listener: Listener) -> u16 {
    match (reply, listener) {
        (Reply::Served { method, .. }, Listener::Direct) => {
            if *method == "GET" || *method == "HEAD" {
                200
            } else {
                405
            }
        }
        (Reply::Served { .. }, Listener::Proxy) => 200,
        (Reply::Error(status), _) => *status,
        (Reply::Local { direct, .. }, Listener::Direct) => *direct,
        (Reply::Local { proxy, .. }, Listener::Proxy) => *proxy,
    }
}

/// Everything wrong with what the client saw for `case` on `listener`.
fn check_client(case: &Case, listener: Listener, seen: &Seen) -> Vec<String> {
    let mut bad = Vec::new();
    let want: Vec<u16> = case
        .replies
        .iter()
        .map(|r| status_of(r, listener))
        .collect();
    let want_how = match case.end {
        End::Open => "open",
        End::Close => "eof",
    };
    match parse_all(&seen.got, Kind::Response) {
        Err(e) => bad.push(format!("unparsable reply ({e}): {}", show(&seen.got))),
        Ok(responses) => {
            let got: Vec<u16> = responses.iter().filter_map(Message::status).collect();
            if got != want {
                bad.push(format!(
                    "statuses {got:?}, want {want:?}: {}",
                    show(&seen.got)
                ));
            }
            for (reply, resp) in case.replies.iter().zip(&responses) {
                bad.extend(check_response(reply, listener, resp));
            }
        }
    }
    if seen.how != want_how {
        bad.push(format!("connection {}, want {want_how}", seen.how));
    }
    match parse_all(&seen.after, Kind::Response).as_deref() {
        Ok([r]) if r.status() == Some(200) && seen.after_how == "eof" => {}
        _ => bad.push(format!(
            "follow-up on a fresh connection ({}): {}",
            seen.after_how,
            show(&seen.after)
        )),
    }
    bad
}

fn check_response(reply: &Reply, listener: Listener, resp: &Message) -> Vec<String> {
    let mut bad = Vec::new();
    let close = resp.field("connection") == Some(b"close");
    match reply {
        Reply::Error(_) if !close => {
            bad.push(format!("{:?} without Connection: close", resp.start))
        }
        Reply::Served { method, .. } => {
            let body = match listener {
                Listener::Direct if *method == "GET" => DIRECT_BODY,
                Listener::Direct => b"method not allowed\n",
                Listener::Proxy => UPSTREAM_BODY,
            };
            if resp.body != body {
                bad.push(format!("body {}, want {}", show(&resp.body), show(body)));
            }
        }
        _ => {}
    }
    bad
}

/// Everything wrong with what reached the upstream: every byte must split into complete
/// requests, each for a case or a follow-up, and each case must have sent exactly its served
/// requests (method and body) and one follow-up.
fn check_upstream(dir: &Path, all: &[Case]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let names: Vec<&str> = all.iter().map(|c| c.name).collect();
    let mut got: BTreeMap<&str, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut after: BTreeMap<&str, usize> = BTreeMap::new();
    for file in &files {
        let bytes = fs::read(file).expect("recording");
        let requests = match parse_all(&bytes, Kind::Request) {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!(
                    "upstream {}: {e}\n{}",
                    file.display(),
                    show(&bytes)
                ));
                continue;
            }
        };
        for r in requests {
            let (method, target) = r.method_target();
            let path = target.split('?').next().unwrap_or_default();
            let case = |prefix: &str| {
                let name = path.strip_prefix(prefix)?;
                names.iter().copied().find(|n| *n == name)
            };
            if let Some(name) = case("/c/") {
                got.entry(name)
                    .or_default()
                    .push((method.to_owned(), r.body.clone()));
            } else if let Some(name) = case("/after/").filter(|_| method == "GET") {
                *after.entry(name).or_default() += 1;
            } else {
                bad.push(format!(
                    "upstream got a request no case sent (smuggled): {method} {target} body {}",
                    show(&r.body)
                ));
            }
        }
    }
    for case in all {
        let mut want: Vec<(String, Vec<u8>)> = case
            .replies
            .iter()
            .filter_map(|r| match r {
                Reply::Served { method, body } => Some(((*method).to_owned(), body.clone())),
                _ => None,
            })
            .collect();
        let mut seen = got.remove(case.name).unwrap_or_default();
        want.sort();
        seen.sort();
        if seen != want {
            let list = |l: &[(String, Vec<u8>)]| {
                l.iter()
                    .map(|(m, b)| format!("{m} body {}", show(b)))
                    .collect::<Vec<_>>()
            };
            bad.push(format!(
                "{}: upstream got {:?}, want {:?}",
                case.name,
                list(&seen),
                list(&want)
            ));
        }
        let n = after.get(case.name).copied().unwrap_or(0);
        if n != 1 {
            bad.push(format!(
                "{}: upstream got {n} follow-ups, want 1",
                case.name
            ));
        }
    }
    bad
}

/// Starts the recording upstream, then `paf run` with the test config.
fn start(ns: &Netns, dir: &Scratch) -> (ChildGuard, ChildGuard) {
    let mut upstream = ns.spawn(
        "python3",
        [
            tool("recording_upstream.py"),
            KERNEL_V4.to_string(),
            UPSTREAM_PORT.to_string(),
            dir.s("upstream"),
            String::from_utf8(UPSTREAM_BODY.to_vec()).expect("ascii"),
        ],
    );
    ns.wait_tcp_from(
        &mut upstream,
        (KERNEL_V4, UPSTREAM_PORT).into(),
        Duration::from_secs(15),
    )
    .expect("recording upstream");
    let config = dir.s("paf.toml");
    fs::write(&config, paf_config()).expect("config");
    let check = run_timeout(
        Command::new(PAF).args(["check", "--config", &config]),
        Duration::from_secs(30),
    );
    assert!(check.success(), "{check}");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", config.as_str()]);
    for port in [DIRECT_PORT, PROXY_PORT] {
        ns.wait_tcp_from(
            &mut paf,
            common::appliance_v4(port),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("paf run: port {port}: {e}"));
    }
    (upstream, paf)
}

#[test]
fn malformed_requests_get_exact_answers_and_nothing_is_smuggled_upstream() {
    let test = "malformed_requests_get_exact_answers_and_nothing_is_smuggled_upstream";
    if !require_netns(test) || !require_tools(test, &["python3"]) {
        return;
    }
    let t0 = Instant::now();
    let all = cases::all();
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names are unique");

    let ns = Netns::builder("malformed").with_mtu(MTU).up();
    let dir = Scratch::new("run");
    let (_upstream, mut paf) = start(&ns, &dir);

    let mut failures = Vec::new();
    for listener in [Listener::Direct, Listener::Proxy] {
        let t = Instant::now();
        let seen = run_cases(&ns, &dir, listener, &all);
        for case in &all {
            let s = &seen[case.name];
            for why in check_client(case, listener, s) {
                failures.push(format!("{listener:?} {}: {why}", case.name));
            }
        }
        let slowest = seen.iter().max_by_key(|(_, s)| s.ms);
        eprintln!(
            "malformed_netns: {} cases on {listener:?} in {:?} (slowest {:?})",
            all.len(),
            t.elapsed(),
            slowest.map(|(n, s)| (n, s.ms))
        );
    }
    assert!(paf.is_running(), "paf exited: {:?}", paf.try_wait());
    // Stopped before the recordings are read, so that nothing paf still had to forward can
    // arrive after the check; a clean drain exits 0.
    let status = paf.stop(Duration::from_secs(15));
    let stderr = paf.stderr();
    assert!(!stderr.contains("panicked"), "paf panicked:\n{stderr}");
    assert!(status.success(), "paf stopped with {status}");
    std::thread::sleep(Duration::from_millis(300)); // the upstream's last reads reach its files
    failures.extend(check_upstream(&dir.0.join("upstream"), &all));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "malformed_netns: {} cases x 2 listeners passed in {:?}",
        all.len(),
        t0.elapsed()
    );
}

/// The upstream check itself, on made-up recordings: a clean one passes; a smuggled request, a
/// request cut short, stray bytes after a body, a missing or a second forward all fail.
#[test]
fn upstream_check_catches_what_it_must() {
    let dir = std::env::temp_dir().join(format!("paf-malformed-check-{}", std::process::id()));
    let table = [
        cases::all()
            .into_iter()
            .find(|c| c.name == "post-length")
            .unwrap(),
        cases::all()
            .into_iter()
            .find(|c| c.name == "cl-te")
            .unwrap(),
    ];
    let fwd = |target: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nhost: paf.test\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let after = "GET /after/post-length HTTP/1.1\r\nhost: paf.test\r\n\r\n\
                 GET /after/cl-te HTTP/1.1\r\nhost: paf.test\r\n\r\n";
    let clean = format!("{}{after}", fwd("/c/post-length", "hello"));
    let bad: [(&str, String); 6] = [
        (
            "smuggled",
            format!("{clean}{}", fwd("/c/cl-te/SMUGGLED", "")),
        ),
        (
            "cut short",
            format!("{clean}POST /c/cl-te HTTP/1.1\r\ncontent-length: 9\r\n\r\nhi"),
        ),
        (
            "stray bytes",
            format!("{}x{after}", fwd("/c/post-length", "hello")),
        ),
        (
            "wrong body",
            format!("{}{after}", fwd("/c/post-length", "hellO")),
        ),
        (
            "twice",
            format!("{clean}{}", fwd("/c/post-length", "hello")),
        ),
        (
            "rejected but forwarded",
            format!("{clean}{}", fwd("/c/cl-te", "")),
        ),
    ];
    let check = |recording: &str| {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("conn-0000.raw"), recording).unwrap();
        fs::write(dir.join("conn-0001.raw"), "").unwrap();
        check_upstream(&dir, &table)
    };
    assert_eq!(check(&clean), Vec::<String>::new());
    for (what, recording) in &bad {
        assert!(!check(recording).is_empty(), "{what} not caught");
    }
    assert!(!check("").is_empty(), "missing forward not caught");
    let _ = fs::remove_dir_all(&dir);
}

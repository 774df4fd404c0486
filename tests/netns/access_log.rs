//! Access logs as an operator sees them: `paf run --config` on a TAP in a namespace with one
//! listener logging `combined` to a file and one logging JSON to another, reached by curl
//! (HTTP/1.1 and h2c). The combined lines are parsed with nginx's `combined` pattern (a
//! Python regular expression), the JSON lines with Python's `json`; then the logrotate dance:
//! `mv access.log access.log.1`, `kill -USR1`, and the next lines go to a new `access.log`.
//!
//! Needs root, curl and python3: without them the test prints `SKIP` (fails under
//! `PAF_REQUIRE_NETNS=1`).

use crate::common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{require_netns, require_tools, run_timeout, Netns, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);

/// nginx's `log_format combined`, as a regular expression (GoAccess's `COMBINED` reads the
/// same fields).
const COMBINED: &str = r#"^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$"#;

fn config(dir: &Scratch) -> String {
    format!(
        r#"[interface]
tap = "paf0"
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"

[[listener]]
name = "web"
port = 80
access_log = {{ path = "{combined}" }}

[[listener.route]]
path = "/"
action = "static"
body = "hello\n"

[[listener]]
name = "api"
port = 81
access_log = {{ path = "logs/api.json", format = "json" }}

[[listener.route]]
path = "/"
action = "static"
body = "api\n"
"#,
        combined = dir.s("access.log"),
    )
}

/// Polls `path` until `pred` holds on its text (up to 15 s; the flush interval is 1 s).
fn wait_for(path: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {what}: not within 15 s; it holds {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each line of `text` parsed by Python: with the combined pattern, or as JSON; one JSON
/// object per line, or a failure naming the line that does not parse.
fn parse(text: &str, json: bool) -> Vec<serde_json::Value> {
    let script = if json {
        "import json,sys\nfor l in open(sys.argv[1]).read().splitlines():\n    print(json.dumps(json.loads(l)))\n"
            .to_owned()
    } else {
        format!(
            "import json,re,sys\np=re.compile(r'''{COMBINED}''')\nfor l in open(sys.argv[1]).read().splitlines():\n    m=p.match(l)\n    assert m, 'not combined: %r' % l\n    print(json.dumps(m.groupdict()))\n"
        )
    };
    let input = std::env::temp_dir().join(format!("paf-al-{}-{json}", std::process::id()));
    fs::write(&input, text).expect("input");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script).arg(&input);
    let out = run_timeout(&mut cmd, T);
    let _ = fs::remove_file(&input);
    assert!(out.success(), "python: {out}");
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("python's JSON"))
        .collect()
}

#[test]
fn file_access_logs_are_combined_or_json_and_reopened_on_sigusr1() {
    let test = "file_access_logs_are_combined_or_json_and_reopened_on_sigusr1";
    if !require_netns(test) || !require_tools(test, &["curl", "python3"]) {
        return;
    }
    let ns = Netns::new("accesslog");
    let dir = Scratch::new("accesslog");
    fs::create_dir_all(dir.path("logs")).expect("logs dir");
    let cfg = dir.write("paf.toml", config(&dir));
    let check = run_timeout(
        std::process::Command::new(PAF).args(["check", "--config", &cfg]),
        T,
    );
    assert!(check.success(), "{check}");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", cfg.as_str()]);
    for port in [80, 81] {
        ns.wait_tcp_from(
            &mut paf,
            common::appliance_v4(port),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("paf run: port {port}: {e}"));
    }
    let curl = |args: &[&str]| {
        let out = ns.run("curl", args, T);
        assert!(out.success(), "{out}");
        out.stdout
    };
    let log = dir.path("access.log");
    let rotated = dir.path("access.log.1");
    let agent = r#"curl "quoted" \ agent"#;
    assert_eq!(
        curl(&[
            "-sS",
            "-A",
            agent,
            "-e",
            "http://ref.test/",
            "http://198.18.0.2/a?x=1"
        ]),
        "hello\n"
    );
    assert_eq!(
        curl(&["-sS", "--http2-prior-knowledge", "http://198.18.0.2/h2"]),
        "hello\n"
    );
    assert_eq!(curl(&["-sS", "http://198.18.0.2:81/j?k=v"]), "api\n");
    let text = wait_for(&log, "two lines", |t| t.lines().count() == 2);
    let lines = parse(&text, false);
    let field = |i: usize, k: &str| lines[i][k].as_str().unwrap_or("").to_owned();
    assert_eq!(field(0, "addr"), "198.18.0.1");
    assert_eq!(field(0, "time").len(), 26);
    assert!(field(0, "time").ends_with(" +0000"));
    assert_eq!(field(0, "request"), "GET /a?x=1 HTTP/1.1");
    assert_eq!(
        (field(0, "status"), field(0, "bytes")),
        ("200".into(), "6".into())
    );
    assert_eq!(field(0, "referer"), "http://ref.test/");
    assert_eq!(field(0, "agent"), r"curl \x22quoted\x22 \x5C agent");
    assert_eq!(field(1, "request"), "GET /h2 HTTP/2.0");
    let json = wait_for(&dir.path("logs/api.json"), "one line", |t| {
        t.lines().count() == 1
    });
    let v = &parse(&json, true)[0];
    assert_eq!(v["uri"], "/j?k=v");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body_bytes_sent"], 4);
    assert_eq!(v["remote_addr"], "198.18.0.1");

    // logrotate: rename, then SIGUSR1; paf reopens the path (a new, empty file).
    fs::rename(&log, &rotated).expect("mv access.log access.log.1");
    paf.signal("USR1");
    wait_for(&log, "reopened", |_| log.exists());
    assert_eq!(curl(&["-sS", "http://198.18.0.2/after"]), "hello\n");
    let text = wait_for(&log, "the line after the reopen", |t| {
        t.lines().count() == 1
    });
    assert_eq!(parse(&text, false)[0]["request"], "GET /after HTTP/1.1");
    let old = fs::read_to_string(&rotated).expect("access.log.1");
    assert_eq!(old.lines().count(), 2, "{old}");
    assert!(!old.contains("/after"), "{old}");

    // A line still in the buffer at SIGTERM is written before paf exits.
    assert_eq!(curl(&["-sS", "http://198.18.0.2/last"]), "hello\n");
    let status = paf.stop(Duration::from_secs(10));
    assert!(status.success(), "paf run: {status}\n{}", paf.stderr());
    let text = fs::read_to_string(&log).expect("access.log");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("\"GET /last HTTP/1.1\""), "{text}");
    assert!(
        !paf.stderr().contains("\"GET /"),
        "no access line on stderr"
    );
}

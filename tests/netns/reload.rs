//! Reloading the real `paf run --config` on a TAP while it serves: SIGHUP and `paf reload
//! --pid-file`.
//!
//! - Ten reloads (nine SIGHUPs, one `paf reload`) during a `wrk -c100` run, a 100 MB download
//!   and a stream of new connections: wrk sees no socket error and no non-2xx answer, every new
//!   connection is answered, the namespace's kernel counts no reset and no refused connection,
//!   the download is byte-exact, `/metrics` counts ten reloads.
//! - A bad file is refused with the key and line `paf check` prints, and the old configuration
//!   serves on; a route added by a reload answers (on a connection opened before it too); a
//!   listener removed by a reload refuses new connections while a download on it finishes; a
//!   listener added answers; a kept https port serves the new certificate to new connections;
//!   a changed upstream is the one proxied to; an `[interface]` change is logged as needing a
//!   restart.
//! - `paf reload` with a missing or stale pid file fails with a clear message; SIGHUP to a
//!   `paf run` without `--config` logs that there is nothing to reload; the pid file is
//!   removed at exit.
//!
//! Needs root, curl, wrk, python3 (the upstreams) and nstat (the kernel counters): without them the tests print
//! `SKIP`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::appliance::support::{
    get, parse_metrics, python, sha256, Fixtures, Scratch, BIG, PAF, T,
};
use crate::common::{require_netns, require_tools, run_timeout, tool, ChildGuard, Netns};

/// A config: `web` on port 80 (`/health`, `/metrics`, `/bench`, files under `/files/`),
/// `extra` routes for it, and more `[[listener]]`s or an `[interface]` after.
fn config(dir: &Scratch, web_routes: &str, more: &str) -> String {
    format!(
        "[defaults]\naccess_log = false\n\
         [[listener]]\nname = \"web\"\nport = 80\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n\
         [[listener.route]]\npath = \"/metrics\"\naction = \"metrics\"\n\
         [[listener.route]]\npath = \"/bench\"\nexact = true\naction = \"static\"\n\
         content_type = \"text/plain\"\nbody = \"hello world\\n\"\n\
         [[listener.route]]\npath = \"/files\"\naction = \"files\"\nroot = \"{}\"\n\
         {web_routes}{more}",
        dir.s("www")
    )
}

/// A listener `name` on `port` serving the files under `/files/`.
fn files_listener(dir: &Scratch, name: &str, port: u16) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nport = {port}\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n\
         [[listener.route]]\npath = \"/files\"\naction = \"files\"\nroot = \"{}\"\n",
        dir.s("www")
    )
}

/// An https listener on 443 with the certificate `paf cert` made in `pki/<pki>`.
fn https_listener(dir: &Scratch, pki: &str) -> String {
    format!(
        "[[listener]]\nname = \"tls\"\nport = 443\nprotocol = \"https\"\n\
         certificate = \"{}\"\nkey = \"{}\"\n\
         [[listener.route]]\npath = \"/health\"\naction = \"health\"\n",
        dir.s(&format!("pki/{pki}/cert.pem")),
        dir.s(&format!("pki/{pki}/key.pem")),
    )
}

/// The upstream `py` at the kernel side's `port`, and the route `/headers` of `web` to it.
fn upstream(port: u16) -> String {
    format!(
        "[[upstream]]\nname = \"py\"\nurls = [\"http://198.18.0.1:{port}\"]\n\
         preserve_host = false\n"
    )
}

const PROXY_ROUTE: &str = "[[listener.route]]\npath = \"/headers\"\nexact = true\n\
                           action = \"proxy\"\nupstream = \"py\"\n";

/// `curl https://paf.test/health` trusting only the CA of `pki/<pki>`: curl's exit code.
fn https_health(ns: &Netns, dir: &Scratch, pki: &str) -> Option<i32> {
    let ca = dir.s(&format!("pki/{pki}/ca.pem"));
    let out = ns.run(
        "curl",
        [
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &ca,
            "--resolve",
            "paf.test:443:198.18.0.2",
            "https://paf.test/health",
        ],
        Duration::from_secs(20),
    );
    out.code()
}

const ADDED_ROUTE: &str = "[[listener.route]]\npath = \"/added\"\nexact = true\n\
                           action = \"static\"\ncontent_type = \"text/plain\"\nbody = \"added\\n\"\n";

/// `paf run --config FILE --pid-file PID`, once port 80 answers.
fn start(ns: &Netns, config: &str, pid: &str) -> ChildGuard {
    let check = run_timeout(Command::new(PAF).args(["check", "--config", config]), T);
    assert!(check.success(), "{check}");
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        ["--config", config, "--pid-file", pid],
    );
    ns.wait_tcp_from(
        &mut paf,
        crate::common::appliance_v4(80),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("paf run --config {config}: {e}"));
    paf
}

fn metrics(ns: &Netns) -> BTreeMap<String, f64> {
    let (code, body) = get(ns, "http://198.18.0.2/metrics", &[]);
    assert_eq!(code, 200, "{body}");
    parse_metrics(&body)
}

fn reloads(m: &BTreeMap<String, f64>) -> (f64, f64) {
    let v = |r: &str| m[&format!("paf_reloads_total{{result=\"{r}\"}}")];
    (v("ok"), v("failed"))
}

/// Waits until `/metrics` counts `ok` reloads applied and `failed` refused.
fn wait_reloads(ns: &Netns, paf: &mut ChildGuard, ok: f64, failed: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = reloads(&metrics(ns));
        if got == (ok, failed) {
            return;
        }
        assert!(paf.is_running(), "paf exited:\n{}", paf.stderr());
        assert!(
            Instant::now() < deadline,
            "reloads {got:?}, want ({ok}, {failed}):\n{}",
            paf.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `paf reload --pid-file PID`.
fn paf_reload(pid: &str) -> crate::common::Output {
    run_timeout(Command::new(PAF).args(["reload", "--pid-file", pid]), T)
}

/// A kernel counter of the namespace (`nstat -az`: absolute values, per network namespace).
fn nstat(ns: &Netns, counter: &str) -> u64 {
    let out = ns.run("nstat", ["-az", counter], Duration::from_secs(5));
    out.stdout
        .lines()
        .find(|l| l.starts_with(counter))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0, |v| v.parse().unwrap())
}

/// Connections the clients saw reset or refused: established connections reset
/// (`TcpEstabResets`, less those a client aborted itself by closing with unread data, as wrk
/// does at its end: `TcpExtTCPAbortOnClose`), and connection attempts that failed
/// (`TcpAttemptFails`: a RST to a SYN).
fn resets(ns: &Netns) -> (u64, String) {
    let names = ["TcpEstabResets", "TcpAttemptFails", "TcpExtTCPAbortOnClose"];
    let v: Vec<u64> = names.iter().map(|n| nstat(ns, n)).collect();
    let text = names
        .iter()
        .zip(&v)
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    ((v[0] + v[1]).saturating_sub(v[2]), text)
}

/// Connections the churn client opens, one after the other (a few seconds' worth).
const CHURN: u32 = 3000;

#[test]
fn ten_reloads_during_wrk_and_a_download_drop_nothing() {
    let test = "ten_reloads_during_wrk_and_a_download_drop_nothing";
    let tools = ["wrk", "curl", "nstat", "sha256sum", "python3"];
    if !require_netns(test) || !require_tools(test, &tools) {
        return;
    }
    // wrk -c100 for 10 s and 100 MB at once keep both cores busy. See crate::heavy.
    let _heavy = crate::heavy();
    let ns = Netns::new("reloadload");
    let dir = Scratch::new("reloadload");
    let blob = dir.big_file("www/blob", BIG, 3);
    let a = config(&dir, "", "");
    let b = config(&dir, ADDED_ROUTE, "");
    let file = dir.write("paf.toml", &a);
    let pid = dir.s("paf.pid");
    let mut paf = start(&ns, &file, &pid);
    let (before, counters) = resets(&ns);
    eprintln!("kernel counters before: {counters}");

    let dest = dir.s("down.bin");
    // At 25 MB/s the download spans about four seconds of the reloads.
    let mut curl = ns.spawn(
        "curl",
        [
            "-sS",
            "--max-time",
            "120",
            "--limit-rate",
            "25M",
            "-o",
            &dest,
            "-w",
            "%{http_code}",
            "http://198.18.0.2/files/blob",
        ],
    );
    let mut wrk = ns.spawn(
        "wrk",
        [
            "-t",
            "2",
            "-c",
            "100",
            "-d",
            "10s",
            "http://198.18.0.2/bench",
        ],
    );
    // And new connections all along, one after the other, so that SYNs meet every swap.
    let mut churn = ns.spawn(
        "python3",
        [
            &tool("conn_churn.py"),
            "198.18.0.2",
            "80",
            &CHURN.to_string(),
            "/bench",
            "60",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    for n in 1..=10u32 {
        std::fs::write(&file, if n % 2 == 1 { &b } else { &a }).unwrap();
        if n == 5 {
            let out = paf_reload(&pid);
            assert!(out.success(), "{out}");
            assert!(out.stdout.contains("SIGHUP sent"), "{out}");
        } else {
            paf.signal("HUP");
        }
        wait_reloads(&ns, &mut paf, f64::from(n), 0.0);
        let (code, _) = get(&ns, "http://198.18.0.2/added", &[]);
        assert_eq!(code, if n % 2 == 1 { 200 } else { 404 }, "after reload {n}");
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("ten reloads in {:?}", t0.elapsed());
    assert!(
        wrk.wait_timeout(Duration::from_secs(60)).is_some(),
        "wrk hangs"
    );
    let out = wrk.stdout();
    eprintln!("{out}");
    assert!(out.contains("requests in"), "wrk: {out}\n{}", wrk.stderr());
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
    assert!(
        churn.wait_timeout(Duration::from_secs(70)).is_some(),
        "churn hangs"
    );
    let out = churn.stdout();
    eprintln!("new connections: {}", out.trim());
    assert!(out.starts_with(&format!("ok {CHURN} ")), "churn: {out}");
    let status = curl.wait_timeout(Duration::from_secs(130));
    assert!(
        status.is_some_and(|s| s.success()),
        "curl: {}",
        curl.stderr()
    );
    assert_eq!(curl.stdout().trim(), "200");
    assert_eq!(sha256(&dest), sha256(&blob), "the download differs");

    let (after, counters) = resets(&ns);
    eprintln!("kernel counters after: {counters}");
    assert_eq!(
        after - before,
        0,
        "connections reset or refused: {counters}"
    );
    let m = metrics(&ns);
    assert_eq!(reloads(&m), (10.0, 0.0));
    assert_eq!(m["paf_config_generation"], 11.0);
    // Each worker reloads and logs it.
    let workers = paf
        .stderr()
        .lines()
        .find_map(|l| {
            l.strip_prefix("paf run: ")?
                .split_once(" worker(s)")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or(1);
    assert_eq!(
        paf.stderr()
            .matches("reload: configuration generation")
            .count(),
        10 * workers
    );
    let status = paf.stop(Duration::from_secs(40));
    assert!(status.success(), "paf: {status}\n{}", paf.stderr());
    assert!(!Path::new(&pid).exists(), "the pid file outlived paf");
}

#[test]
fn a_bad_config_is_refused_and_listeners_come_and_go() {
    let test = "a_bad_config_is_refused_and_listeners_come_and_go";
    if !require_netns(test) || !require_tools(test, &["curl", "sha256sum", "python3"]) {
        return;
    }
    let ns = Netns::new("reloadedit");
    let dir = Scratch::new("reloadedit");
    let blob = dir.big_file("www/blob", BIG, 9);
    dir.cert("a", &["paf.test"]);
    dir.cert("b", &["paf.test"]);
    let _py1 = python(&ns, &dir, 9001);
    let _py2 = python(&ns, &dir, 9002);
    let first = config(
        &dir,
        PROXY_ROUTE,
        &(files_listener(&dir, "side", 8080) + &https_listener(&dir, "a") + &upstream(9001)),
    );
    let file = dir.write("paf.toml", &first);
    let pid = dir.s("paf.pid");
    let mut paf = start(&ns, &file, &pid);
    assert_eq!(get(&ns, "http://198.18.0.2/added", &[]).0, 404);
    let (code, seen) = get(&ns, "http://198.18.0.2/headers", &[]);
    assert!(
        code == 200 && seen.contains("host: 198.18.0.1:9001"),
        "{seen}"
    );
    assert_eq!(https_health(&ns, &dir, "a"), Some(0));
    assert_eq!(
        https_health(&ns, &dir, "b"),
        Some(60),
        "b's CA trusted before"
    );

    // A bad file: refused, with the key and line `paf check` names; the old one serves on.
    let bad = first.replace("action = \"health\"", "action = \"healthy\"");
    std::fs::write(&file, &bad).unwrap();
    let check = run_timeout(Command::new(PAF).args(["check", "--config", &file]), T);
    assert_eq!(check.code(), Some(2), "{check}");
    let problem = check
        .stderr
        .lines()
        .find(|l| l.contains("listener[0].route[0]"))
        .unwrap_or_else(|| panic!("{check}"))
        .to_owned();
    let out = paf_reload(&pid);
    assert!(out.success(), "{out}");
    wait_reloads(&ns, &mut paf, 0.0, 1.0);
    let log = paf.stderr();
    assert!(log.contains("reload refused"), "{log}");
    assert!(
        log.contains(problem.trim_start_matches("paf: ")),
        "{problem:?} not in\n{log}"
    );
    assert_eq!(get(&ns, "http://198.18.0.2/health", &[]).0, 200);
    assert_eq!(get(&ns, "http://198.18.0.2:8080/health", &[]).0, 200);

    // A download on the listener about to go.
    let dest = dir.s("down.bin");
    let mut down = ns.spawn(
        "curl",
        [
            "-sS",
            "--max-time",
            "120",
            "--limit-rate",
            "30M",
            "-o",
            &dest,
            "-w",
            "%{http_code}",
            "http://198.18.0.2:8080/files/blob",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let mac = "[interface]\nmac = \"02:00:c6:12:00:09\"\n";
    let second = config(
        &dir,
        &(ADDED_ROUTE.to_owned() + PROXY_ROUTE),
        &(files_listener(&dir, "extra", 8081) + &https_listener(&dir, "b") + &upstream(9002) + mac),
    );
    std::fs::write(&file, &second).unwrap();
    paf.signal("HUP");
    wait_reloads(&ns, &mut paf, 1.0, 1.0);
    let log = paf.stderr();
    assert!(log.contains("need a restart, not applied: mac"), "{log}");
    let (code, body) = get(&ns, "http://198.18.0.2/added", &[]);
    assert_eq!((code, body.as_str()), (200, "added\n"));
    assert_eq!(get(&ns, "http://198.18.0.2:8081/health", &[]).0, 200);
    // The new certificate on new connections to the kept https port, the new upstream.
    assert_eq!(https_health(&ns, &dir, "b"), Some(0));
    assert_eq!(
        https_health(&ns, &dir, "a"),
        Some(60),
        "the old certificate still served"
    );
    let (code, seen) = get(&ns, "http://198.18.0.2/headers", &[]);
    assert!(
        code == 200 && seen.contains("host: 198.18.0.1:9002"),
        "{seen}"
    );
    // The removed port refuses new connections (curl exit 7)…
    let refused = ns.run(
        "curl",
        ["-sS", "--max-time", "10", "http://198.18.0.2:8080/health"],
        Duration::from_secs(20),
    );
    assert_eq!(refused.code(), Some(7), "{refused}");
    // …while the download on it finishes, byte-exact.
    assert!(down.is_running(), "the download ended before the reload");
    let status = down.wait_timeout(Duration::from_secs(130));
    assert!(status.is_some_and(|s| s.success()), "{}", down.stderr());
    assert_eq!(down.stdout().trim(), "200");
    assert_eq!(sha256(&dest), sha256(&blob), "the download differs");

    let m = metrics(&ns);
    assert_eq!(m["paf_config_generation"], 2.0);
    assert!(m.contains_key("paf_connections_open{listener=\"extra\"}"));
    assert!(!m.contains_key("paf_connections_open{listener=\"side\"}"));
    let status = paf.stop(Duration::from_secs(40));
    assert!(status.success(), "paf: {status}\n{}", paf.stderr());
    assert!(!Path::new(&pid).exists(), "the pid file outlived paf");
}

#[test]
fn reload_without_a_file_or_with_a_stale_pid_file_says_so() {
    let test = "reload_without_a_file_or_with_a_stale_pid_file_says_so";
    if !require_netns(test) || !require_tools(test, &["curl"]) {
        return;
    }
    let dir = Scratch::new("reloadpid");
    let missing = paf_reload(&dir.s("missing.pid"));
    assert_eq!(missing.code(), Some(1), "{missing}");
    assert!(
        missing.stderr.contains("cannot read the pid file"),
        "{missing}"
    );
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let stale = dir.write("stale.pid", format!("{gone_pid}\n"));
    let out = paf_reload(&stale);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("stale pid file"), "{out}");
    let junk = dir.write("junk.pid", "paf\n");
    let out = paf_reload(&junk);
    assert!(out.stderr.contains("not a process id"), "{out}");

    // The embedded default config: SIGHUP has nothing to reload, and paf serves on.
    let ns = Netns::new("reloadpid");
    let pid = dir.s("paf.pid");
    let mut paf = ns.paf(Path::new(PAF), "run", ["--pid-file", &pid]);
    ns.wait_tcp_from(
        &mut paf,
        crate::common::appliance_v4(80),
        Duration::from_secs(15),
    )
    .unwrap();
    let written: u32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, paf.id());
    let out = paf_reload(&pid);
    assert!(out.success(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !paf.stderr().contains("nothing to reload") {
        assert!(Instant::now() < deadline, "{}", paf.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&ns, "http://198.18.0.2/health", &[]).0, 200);
    let status = paf.stop(Duration::from_secs(40));
    assert!(status.success(), "paf: {status}\n{}", paf.stderr());
    assert!(!Path::new(&pid).exists(), "the pid file outlived paf");
}

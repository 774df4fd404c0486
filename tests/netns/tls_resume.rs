//! TLS session resumption across workers: with 2 workers on a multi-queue TAP, a client that
//! resumes each connection with the ticket of the one before resumes every time, whichever
//! worker each connection lands on (one session cache per listening port, shared by the
//! workers), for the appliance (`paf run --config`) and the built-in site (`--cert`).
//!
//! Needs root (netns + TAP): prints `SKIP` without it; must run in CI (`PAF_REQUIRE_NETNS=1`).

use crate::common;
use crate::workers::{metric, worker_totals};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{require_netns, require_tools, run_timeout, tool, ChildGuard, Netns, Scratch};

const PAF: &str = env!("CARGO_BIN_EXE_paf");
const T: Duration = Duration::from_secs(30);
/// Connections resuming the one before: with 2 workers, all on one is a chance of 2 in 2^13.
const RESUMES: usize = 12;

/// A test CA and a certificate for `paf.test`, by `paf cert`.
fn pki(dir: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let out_dir = dir.path("pki");
    let mut cmd = Command::new(PAF);
    cmd.args(["cert", "--out"]).arg(&out_dir);
    cmd.args(["--name", "paf.test"]);
    let out = run_timeout(&mut cmd, T);
    assert!(out.success(), "{out}");
    (
        out_dir.join("ca.pem"),
        out_dir.join("cert.pem"),
        out_dir.join("key.pem"),
    )
}

/// Runs the resuming client; asserts every connection after the first resumed.
fn resume_all(ns: &Netns, ca: &Path) -> String {
    let out = ns.run(
        "python3",
        [
            tool("tls_resume.py").as_str(),
            "198.18.0.2",
            "443",
            ca.to_str().unwrap(),
            "paf.test",
            &RESUMES.to_string(),
        ],
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains(&format!("resumed {RESUMES} of {RESUMES}")),
        "a connection did not resume: {out}"
    );
    out.stdout
}

/// The workers that had connections, from their `worker K: stopped after …` lines (sorted).
fn workers_with_connections(stderr: &str) -> Vec<usize> {
    worker_totals(stderr)
        .into_iter()
        .filter(|&(_, conns, _)| conns > 0)
        .map(|(k, _, _)| k)
        .collect()
}

fn stop(mut paf: ChildGuard) {
    assert!(
        paf.stop(Duration::from_secs(10)).success(),
        "{}",
        paf.stderr()
    );
}

#[test]
fn a_client_resumes_on_either_of_two_workers() {
    let test = "a_client_resumes_on_either_of_two_workers";
    if !require_netns(test) || !require_tools(test, &["python3", "curl"]) {
        return;
    }
    let ns = Netns::new("resume");
    let dir = Scratch::new("resume");
    let (ca, cert, key) = pki(&dir);

    // The built-in site: its per-worker log lines say which workers had connections.
    let mut paf = ns.paf(
        Path::new(PAF),
        "run",
        [
            "--test-routes",
            "--workers",
            "2",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), T)
        .unwrap();
    let out = resume_all(&ns, &ca);
    paf.stop(Duration::from_secs(10));
    let busy = workers_with_connections(&paf.stderr());
    assert_eq!(
        busy,
        vec![0, 1],
        "both workers must have had connections: {out}"
    );

    // The appliance: its /metrics counts responses per worker.
    let config = format!(
        r#"[interface]
ipv4 = "198.18.0.2/24"
gateway4 = "198.18.0.1"
workers = 2

[[listener]]
name = "tls"
port = 443
protocol = "https"
certificate = {cert:?}
key = {key:?}

[[listener.route]]
path = "/metrics"
exact = true
action = "metrics"

[[listener.route]]
path = "/"
action = "static"
body = "hello\n"
"#
    );
    let file = dir.write("paf.toml", config);
    let mut paf = ns.paf(Path::new(PAF), "run", ["--config", &file]);
    ns.wait_tcp_from(&mut paf, common::appliance_v4(443), T)
        .unwrap();
    let out = resume_all(&ns, &ca);
    let metrics = ns.run(
        "curl",
        [
            "-sS",
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            "paf.test:443:198.18.0.2",
            "https://paf.test/metrics",
        ],
        T,
    );
    assert!(metrics.success(), "{metrics}");
    for k in 0..2 {
        let n = metric(
            &metrics.stdout,
            &format!("paf_worker_responses{{worker=\"{k}\"}}"),
        );
        assert!(
            n > 0,
            "worker {k} served nothing: {out}\n{}",
            metrics.stdout
        );
    }
    stop(paf);
}

//! Environment checks: can this process create namespaces and TAPs, are the client tools
//! there; skip (printing why) or, under `PAF_REQUIRE_NETNS=1`, fail.

use super::*;

/// Checks that this process can create network namespaces and TAP devices: effective root,
/// `/dev/net/tun` openable, iproute2 and bash present, and a probe namespace with a TAP in it
/// can really be created and removed. The result is computed once per process.
///
/// # Errors
///
/// The reason the environment cannot run the end-to-end tests, in words.
pub fn netns_available() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(probe_netns).clone()
}

fn probe_netns() -> Result<(), String> {
    let euid = effective_uid().map_err(|e| format!("cannot read effective uid: {e}"))?;
    if euid != 0 {
        return Err(format!(
            "not root (effective uid {euid}); run the tests with sudo"
        ));
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("cannot open /dev/net/tun: {e}"))?;
    for tool in ["ip", "bash", "kill"] {
        if find_in_path(tool).is_none() {
            return Err(format!("`{tool}` not found in PATH (scripts/install-deps)"));
        }
    }
    let probe = format!("paf-probe-{}-{}", std::process::id(), next_id());
    let steps: [&[&str]; 3] = [
        &["netns", "add", &probe],
        &["-n", &probe, "tuntap", "add", "dev", TAP, "mode", "tap"],
        &["netns", "del", &probe],
    ];
    for step in steps {
        let out = run_timeout(Command::new("ip").args(step), Duration::from_secs(10));
        if !out.success() {
            // Best effort: do not leave the probe behind.
            let _ = run_timeout(
                Command::new("ip").args(["netns", "del", &probe]),
                Duration::from_secs(10),
            );
            return Err(format!(
                "`ip {}` failed: {}",
                step.join(" "),
                out.stderr.trim()
            ));
        }
    }
    Ok(())
}

fn effective_uid() -> io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| io::Error::other("no Uid line in /proc/self/status"))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Returns true when the end-to-end environment is there; call it first in every test that
/// needs a namespace and return early on false:
///
/// ```ignore
/// if !common::require_netns("http_get") { return; }
/// ```
///
/// On false it has printed `SKIP <test>: <reason>` to stderr (past the output capture).
///
/// # Panics
///
/// When the environment is missing and `PAF_REQUIRE_NETNS=1`: in CI a skip is a failure.
pub fn require_netns(test: &str) -> bool {
    match netns_available() {
        Ok(()) => true,
        Err(reason) => skip_or_panic(test, &reason),
    }
}

/// Like [`require_netns`] for programs the test runs (clients such as `dig`, `curl`, `wrk`):
/// true when all are in `PATH`, otherwise SKIP (or panic under `PAF_REQUIRE_NETNS=1`).
///
/// # Panics
///
/// When a tool is missing and `PAF_REQUIRE_NETNS=1`.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_in_path(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_panic(
        test,
        &format!(
            "missing {} in PATH (scripts/install-deps installs them)",
            missing.join(", ")
        ),
    )
}

fn skip_or_panic(test: &str, reason: &str) -> bool {
    if std::env::var_os("PAF_REQUIRE_NETNS").is_some_and(|v| v == "1") {
        panic!("{test}: PAF_REQUIRE_NETNS=1 but the end-to-end environment is missing: {reason}");
    }
    loud!("SKIP {test}: {reason}");
    false
}

//! End-to-end test harness: one private network namespace per test, holding the TAP device
//! the paf binary attaches to, and helpers that run programs inside it for a bounded time.
//!
//! `tests/netns/main.rs` includes it once (`mod common;`); each suite has `use crate::common;`.
//! It uses std only.
//!
//! # The namespace
//!
//! [`Netns`] drives `scripts/netns` (the one definition of the layout, also used by
//! `make run`), so inside every namespace there is:
//!
//! - `lo`, up;
//! - [`TAP`] (`paf0`), a persistent TAP device; the kernel side has [`KERNEL_V4`]/24 and
//!   [`KERNEL_V6`]/64 with IPv6 DAD off, so both are usable at once;
//! - the appliance, once started with [`Netns::paf`], at [`APPLIANCE_V4`] and [`APPLIANCE_V6`]
//!   (the userspace stack inside the paf process), gateway = the kernel side;
//! - optionally dnsmasq ([`Builder::with_dnsmasq`]) on the TAP: DNS for `*.test` only
//!   (`paf.test` → appliance, `upstream.test` → kernel side, nothing forwarded) and DHCPv4
//!   198.18.0.2–198.18.0.20.
//!
//! Until something opens the TAP it has no carrier (`NO-CARRIER`, routes `linkdown`), but the
//! kernel-side addresses still answer locally, so dnsmasq and kernel-side listeners can be
//! reached from inside the namespace before paf runs.
//!
//! Only 198.18.0.0/15 and fd00:198:18::/64 are used, and only inside namespaces made here.
//!
//! # Skipping
//!
//! These tests need root, `/dev/net/tun` and iproute2. Every test starts with
//! [`require_netns`] (and [`require_tools`] for clients such as `dig`). When the environment
//! lacks them, the test prints `SKIP <test>: <reason>` straight to the process's stderr
//! (past libtest's output capture, so it shows in a normal `cargo test` run) and returns early.
//! libtest has no "skipped" result, so such a test is reported `ok`: read the SKIP lines.
//! With `PAF_REQUIRE_NETNS=1` (set by `.ci/run`) a missing requirement panics instead, so CI
//! can never pass by skipping.
//!
//! # Cleanup
//!
//! [`Netns`] and [`ChildGuard`] clean up on drop, also while unwinding from a panic: children
//! get SIGTERM then SIGKILL, then the namespace's processes (dnsmasq included) are killed and
//! the namespace is removed. A test process killed outright (SIGKILL, Ctrl-C) runs no
//! destructors; the first [`Netns`] of a later run removes namespaces whose creating process
//! is gone. Names are `paf-<tag>-<pid>-<n>`, unique across parallel tests and processes.
//!
//! When a test panics, child stderr tails and the dnsmasq log are printed and the log
//! directory (under the temp dir, `paf-test-logs/<namespace>`) is kept.

#![allow(dead_code)] // not every part of the harness is used by a suite today

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Name of the TAP device inside every namespace.
pub const TAP: &str = "paf0";
/// Kernel side of the TAP; the appliance's IPv4 gateway and dnsmasq's address.
pub const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The appliance's IPv4 address (default address plan of `paf run`).
pub const APPLIANCE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Prefix length of the IPv4 link.
pub const PREFIX_V4: u8 = 24;
/// Kernel side of the TAP; the appliance's IPv6 gateway and dnsmasq's address.
pub const KERNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1);
/// The appliance's IPv6 address (default address plan of `paf run`).
pub const APPLIANCE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 2);
/// Prefix length of the IPv6 link.
pub const PREFIX_V6: u8 = 64;

/// Upper bound for `scripts/netns up`/`down`; both normally take well under a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child gets between SIGTERM and SIGKILL when a guard is dropped.
const DROP_GRACE: Duration = Duration::from_secs(3);
/// How much of a child's stderr is printed when a test panics.
const TAIL_LINES: usize = 40;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Writes to the real stderr, bypassing libtest's capture, so SKIP lines and cleanup
/// problems are seen even when the test passes.
macro_rules! loud {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), $($arg)*);
    }};
}

mod child;
mod env;
mod files;

#[allow(unused_imports)]
pub use child::ChildGuard;
#[allow(unused_imports)]
pub use env::{netns_available, require_netns, require_tools};
#[allow(unused_imports)]
pub use files::{tool, Scratch};

// ---------------------------------------------------------------------------------------------
// Running commands with a deadline
// ---------------------------------------------------------------------------------------------

/// What a command did: exit status (`None` if it was killed at the deadline) and its output.
#[derive(Debug)]
pub struct Output {
    /// Exit status, or `None` when the command ran past its timeout and was killed.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout, lossily decoded.
    pub stdout: String,
    /// Everything written to stderr, lossily decoded.
    pub stderr: String,
    /// Wall time from spawn to exit (or to the kill).
    pub elapsed: Duration,
    /// The command line, for messages.
    pub command: String,
}

impl Output {
    /// True when the command exited with status 0 before its deadline.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// True when the command was killed at its deadline.
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// The exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

impl fmt::Display for Output {
    /// Multi-line summary for assertion messages: command, status, time, stdout, stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            None => "killed at timeout".to_owned(),
            Some(s) => s.to_string(),
        };
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "status:  {status} after {:?}", self.elapsed)?;
        writeln!(f, "stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "stderr:\n{}", self.stderr.trim_end())
    }
}

/// Runs `cmd` to completion, or kills it (and every process in its process group) at
/// `timeout`. Stdin is `/dev/null`; stdout and stderr go through temp files, so a grandchild
/// that keeps them open cannot make this hang.
///
/// # Panics
///
/// When the command cannot be spawned or the temp files cannot be created.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let command = describe(cmd);
    let base = std::env::temp_dir().join(format!("paf-run-{}-{}", std::process::id(), next_id()));
    let out_path = base.with_extension("stdout");
    let err_path = base.with_extension("stderr");
    let out = File::create(&out_path).unwrap_or_else(|e| panic!("create {out_path:?}: {e}"));
    let err = File::create(&err_path).unwrap_or_else(|e| panic!("create {err_path:?}: {e}"));
    let start = Instant::now();
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        panic!("cannot spawn `{command}`: {e}")
    });
    let status = wait_deadline(&mut child, start + timeout);
    if status.is_none() {
        kill_group(child.id(), "KILL");
        let _ = child.wait();
    }
    let elapsed = start.elapsed();
    let stdout = read_lossy(&out_path);
    let stderr = read_lossy(&err_path);
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    Output {
        status,
        stdout,
        stderr,
        elapsed,
        command,
    }
}

/// Polls `child` until it exits or `deadline` passes; never blocks past the deadline.
fn wait_deadline(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // Only if the child was already reaped elsewhere; call it killed rather than hang.
            Err(_) => return Some(killed_status()),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The status of a process killed by SIGKILL (raw wait status: signal 9 in the low bits).
fn killed_status() -> ExitStatus {
    ExitStatus::from_raw(9)
}

/// Sends `signal` (a name such as "TERM") to the process group `pgid` with kill(1).
fn kill_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Sends `signal` to the single process `pid` with kill(1).
fn kill_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The namespace
// ---------------------------------------------------------------------------------------------

/// Options for a namespace; [`Builder::up`] creates it. `Netns::new(tag)` is the plain case.
#[derive(Debug, Clone)]
pub struct Builder {
    tag: String,
    dnsmasq: bool,
    mtu: Option<u32>,
    single_queue: bool,
}

impl Builder {
    /// Make the TAP single-queue (it is multi-queue by default, one queue per paf worker).
    pub fn single_queue(mut self) -> Builder {
        self.single_queue = true;
        self
    }

    /// Also start dnsmasq on the TAP (DNS for `*.test`, DHCPv4); see the module docs.
    pub fn with_dnsmasq(mut self) -> Builder {
        self.dnsmasq = true;
        self
    }

    /// Set the TAP's MTU (1280..=65535; IPv6 needs at least 1280).
    pub fn with_mtu(mut self, mtu: u32) -> Builder {
        self.mtu = Some(mtu);
        self
    }

    /// Creates the namespace.
    ///
    /// # Panics
    ///
    /// When `scripts/netns up` fails; the message carries its output.
    pub fn up(self) -> Netns {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);

        let name = format!(
            "paf-{}-{}-{}",
            sanitize(&self.tag),
            std::process::id(),
            next_id()
        );
        let log_dir = std::env::temp_dir().join("paf-test-logs").join(&name);
        fs::create_dir_all(&log_dir).unwrap_or_else(|e| panic!("create {log_dir:?}: {e}"));
        let ns = Netns {
            state_dir: rundir().join(&name),
            name,
            log_dir,
            dnsmasq: self.dnsmasq,
            mtu: self.mtu,
            children: AtomicU32::new(0),
            torn_down: false,
        };
        let mut cmd = netns_script();
        cmd.args(["up", &ns.name]);
        if self.dnsmasq {
            cmd.arg("--dnsmasq");
        }
        if let Some(mtu) = self.mtu {
            cmd.args(["--mtu", &mtu.to_string()]);
        }
        if self.single_queue {
            cmd.arg("--single-queue");
        }
        let out = run_timeout(&mut cmd, SCRIPT_TIMEOUT);
        // On failure `ns` is dropped here, which runs `down`: nothing is left behind.
        assert!(
            out.success(),
            "creating namespace {} failed\n{out}",
            ns.name
        );
        ns
    }
}

/// A network namespace with the TAP (and optionally dnsmasq); removed on drop.
///
/// ```ignore
/// let ns = common::Netns::new("get");
/// let mut paf = ns.paf(Path::new(env!("CARGO_BIN_EXE_paf")), "run", ["--mtu", "1500"]);
/// ns.wait_tcp_from(&mut paf, (common::APPLIANCE_V4, 80).into(), Duration::from_secs(10)).unwrap();
/// let out = ns.run("curl", ["-sS", "http://198.18.0.2/"], Duration::from_secs(10));
/// assert!(out.success(), "{out}");
/// ```
#[derive(Debug)]
pub struct Netns {
    name: String,
    state_dir: PathBuf,
    log_dir: PathBuf,
    dnsmasq: bool,
    mtu: Option<u32>,
    children: AtomicU32,
    torn_down: bool,
}

impl Netns {
    /// Options for a namespace tagged `tag` (letters, digits, `_`; anything else becomes `_`).
    pub fn builder(tag: &str) -> Builder {
        Builder {
            tag: tag.to_owned(),
            dnsmasq: false,
            mtu: None,
            single_queue: false,
        }
    }

    /// Creates a namespace with the TAP and no dnsmasq.
    ///
    /// # Panics
    ///
    /// When the namespace cannot be created (see [`Builder::up`]).
    pub fn new(tag: &str) -> Netns {
        Netns::builder(tag).up()
    }

    /// The namespace's name, `paf-<tag>-<pid>-<n>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TAP device inside the namespace: pass to `paf --tap`.
    pub fn tap(&self) -> &str {
        TAP
    }

    /// Kernel-side IPv4 address of the TAP (the appliance's gateway, dnsmasq).
    pub fn kernel_v4(&self) -> Ipv4Addr {
        KERNEL_V4
    }

    /// Kernel-side IPv6 address of the TAP (the appliance's gateway, dnsmasq).
    pub fn kernel_v6(&self) -> Ipv6Addr {
        KERNEL_V6
    }

    /// Where the appliance answers on IPv4 (static plan; with DHCP see [`Netns::dhcp_leases`]).
    pub fn appliance_v4(&self) -> Ipv4Addr {
        APPLIANCE_V4
    }

    /// Where the appliance answers on IPv6.
    pub fn appliance_v6(&self) -> Ipv6Addr {
        APPLIANCE_V6
    }

    /// The TAP's MTU if one was set, else `None` (kernel default, 1500).
    pub fn mtu(&self) -> Option<u32> {
        self.mtu
    }

    /// `scripts/netns` state for this namespace (dnsmasq config, pid, leases, log).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Directory for this namespace's child logs; kept when a test panics.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// dnsmasq's lease file (`<expiry> <mac> <ip> <hostname> <client-id>` lines), if started.
    pub fn dhcp_leases(&self) -> Option<PathBuf> {
        self.dnsmasq.then(|| self.state_dir.join("dnsmasq.leases"))
    }

    /// dnsmasq's log (queries and DHCP exchanges), if started.
    pub fn dnsmasq_log(&self) -> Option<PathBuf> {
        self.dnsmasq.then(|| self.state_dir.join("dnsmasq.log"))
    }

    /// dnsmasq's pid, if it was started and its pid file is readable.
    pub fn dnsmasq_pid(&self) -> Option<u32> {
        let pid = fs::read_to_string(self.state_dir.join("dnsmasq.pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// Pids of all processes inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<u32> {
        let out = run_timeout(
            Command::new("ip").args(["netns", "pids", &self.name]),
            Duration::from_secs(10),
        );
        out.stdout
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`);
    /// add arguments, environment and stdio as usual. `ip` execs the program, so the child's
    /// pid is the program's.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args…` inside the namespace to completion or `timeout` (see
    /// [`run_timeout`]).
    ///
    /// # Panics
    ///
    /// When the command cannot be spawned.
    pub fn run<I, S>(&self, program: &str, args: I, timeout: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_timeout(self.cmd(program).args(args), timeout)
    }

    /// Starts `program args…` in the background inside the namespace, in its own process
    /// group, stdout and stderr to files in [`Netns::log_dir`]. The guard stops it on drop.
    ///
    /// # Panics
    ///
    /// When the command cannot be spawned.
    pub fn spawn<I, S>(&self, program: &str, args: I) -> ChildGuard
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(program);
        cmd.args(args);
        let label = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_owned(), |n| n.to_string_lossy().into_owned());
        self.spawn_cmd(cmd, &label)
    }

    /// Starts `bin SUBCOMMAND --tap paf0 args…` (e.g. `paf run`, `paf echo --port 7`) inside
    /// the namespace. Pass `Path::new(env!("CARGO_BIN_EXE_paf"))` as `bin`. `RUST_LOG`
    /// defaults to `info` so the stderr kept for diagnostics says something.
    ///
    /// # Panics
    ///
    /// When the binary cannot be spawned.
    pub fn paf<I, S>(&self, bin: &Path, subcommand: &str, args: I) -> ChildGuard
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(bin);
        cmd.args([subcommand, "--tap", TAP]).args(args);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        self.spawn_cmd(cmd, &format!("paf-{subcommand}"))
    }

    fn spawn_cmd(&self, mut cmd: Command, label: &str) -> ChildGuard {
        let n = self.children.fetch_add(1, Ordering::Relaxed);
        let base = self.log_dir.join(format!("{n:02}-{label}"));
        let stdout_path = base.with_extension("stdout");
        let stderr_path = base.with_extension("stderr");
        let out = File::create(&stdout_path).unwrap_or_else(|e| panic!("{stdout_path:?}: {e}"));
        let err = File::create(&stderr_path).unwrap_or_else(|e| panic!("{stderr_path:?}: {e}"));
        let command = describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{command}`: {e}"));
        ChildGuard {
            child,
            label: label.to_owned(),
            command,
            stdout_path,
            stderr_path,
            status: None,
        }
    }

    /// Polls from inside the namespace until a TCP connection to `addr` succeeds or `timeout`
    /// passes; each attempt is bounded to between 250 ms and one second. Returns the time it took.
    ///
    /// # Errors
    ///
    /// The last attempt's error when `timeout` passes first.
    pub fn wait_tcp(&self, addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
        self.wait_tcp_inner(None, addr, timeout)
    }

    /// [`Netns::wait_tcp`] that gives up at once, with the server's stderr, if `server` exits
    /// while we wait.
    ///
    /// # Errors
    ///
    /// The server exited, or `timeout` passed first.
    pub fn wait_tcp_from(
        &self,
        server: &mut ChildGuard,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Duration, String> {
        self.wait_tcp_inner(Some(server), addr, timeout)
    }

    fn wait_tcp_inner(
        &self,
        mut server: Option<&mut ChildGuard>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let deadline = start + timeout;
        // bash parses /dev/tcp/HOST/PORT at the last '/', so bare IPv6 addresses work.
        let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
        let mut last = String::from("no attempt made");
        let mut attempts = 0u32;
        while Instant::now() < deadline {
            if let Some(server) = server.as_deref_mut() {
                if let Some(status) = server.try_wait() {
                    return Err(format!(
                        "{} exited ({status}) before {addr} accepted; stderr tail:\n{}",
                        server.label,
                        tail(&server.stderr(), TAIL_LINES)
                    ));
                }
            }
            attempts += 1;
            // Every attempt gets at least 250 ms, even the last one (so the wait may end up to
            // that much after `timeout`): one squeezed into the last few milliseconds would
            // time out on a busy machine and hide the reason the earlier ones gave.
            let left = deadline.saturating_duration_since(Instant::now());
            let budget = left.clamp(Duration::from_millis(250), Duration::from_secs(1));
            let out = self.run("bash", ["-c", &script], budget);
            if out.success() {
                return Ok(start.elapsed());
            }
            last = if out.timed_out() {
                "connect attempt timed out".to_owned()
            } else {
                out.stderr.trim().to_owned()
            };
            thread::sleep(
                Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
        Err(format!(
            "no TCP connect to {addr} within {timeout:?} ({attempts} attempts); last: {last}"
        ))
    }

    /// Removes the namespace now and reports failure instead of only printing it.
    ///
    /// # Errors
    ///
    /// The output of `scripts/netns down` when it fails.
    pub fn down(mut self) -> Result<(), String> {
        self.torn_down = true;
        self.teardown()
    }

    fn teardown(&self) -> Result<(), String> {
        let out = run_timeout(netns_script().args(["down", &self.name]), SCRIPT_TIMEOUT);
        if out.success() {
            Ok(())
        } else {
            // The script is the normal path; this is the fallback if it is broken or missing.
            for pid in self.pids() {
                kill_pid(pid, "KILL");
            }
            let _ = run_timeout(
                Command::new("ip").args(["netns", "del", &self.name]),
                Duration::from_secs(10),
            );
            let _ = fs::remove_dir_all(&self.state_dir);
            Err(format!("`scripts/netns down {}` failed\n{out}", self.name))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        if panicking {
            if let Some(log) = self.dnsmasq_log() {
                loud!(
                    "--- {}: dnsmasq log tail ---\n{}",
                    self.name,
                    tail(&read_lossy(&log), TAIL_LINES)
                );
            }
        }
        if !self.torn_down {
            if let Err(e) = self.teardown() {
                loud!("harness: teardown of {} failed: {e}", self.name);
            }
        }
        if panicking {
            loud!(
                "harness: logs of {} kept in {}",
                self.name,
                self.log_dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.log_dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// scripts/netns and stale namespaces
// ---------------------------------------------------------------------------------------------

/// `bash scripts/netns` with the state directory pinned, so both sides agree on it.
/// `PAF_NETNS_SCRIPT` overrides the script's path.
fn netns_script() -> Command {
    let script = std::env::var_os("PAF_NETNS_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            // The workspace root owns scripts/; a member crate finds it one level up.
            [
                manifest.join("scripts/netns"),
                manifest.join("../scripts/netns"),
            ]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| manifest.join("scripts/netns"))
        });
    let mut cmd = Command::new("bash");
    cmd.arg(script).env("PAF_NETNS_RUNDIR", rundir());
    cmd
}

fn rundir() -> PathBuf {
    std::env::var_os("PAF_NETNS_RUNDIR")
        .map_or_else(|| PathBuf::from("/run/paf-netns"), PathBuf::from)
}

fn sanitize(tag: &str) -> String {
    let s: String = tag
        .chars()
        .take(20)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "t".to_owned()
    } else {
        s
    }
}

/// Removes `paf-<tag>-<pid>-<n>` namespaces whose creating process no longer exists: leftovers
/// of a test run killed before its destructors ran. Live runs are never touched. The first
/// [`Builder::up`] of every test process calls this.
pub fn sweep_stale() {
    let out = run_timeout(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    );
    for name in out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = creator_pid(name) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        loud!("harness: removing stale namespace {name} (its creator, pid {pid}, is gone)");
        let out = run_timeout(netns_script().args(["down", name]), SCRIPT_TIMEOUT);
        if !out.success() {
            loud!("harness: could not remove {name}\n{out}");
        }
    }
}

/// The pid in a harness namespace name `paf-<tag>-<pid>-<n>`, or `None` for other names
/// (`paf-run-<pid>` from `make run`, `paf-dev`, anything not ours).
fn creator_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let n = parts.next()?;
    let pid = parts.next()?;
    let rest = parts.next()?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (rest.starts_with("paf-") && rest.len() > 4 && numeric(n) && numeric(pid))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Convenience: `SocketAddr` of the appliance on IPv4 port `port`.
pub fn appliance_v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(APPLIANCE_V4), port)
}

/// Convenience: `SocketAddr` of the appliance on IPv6 port `port`.
pub fn appliance_v6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(APPLIANCE_V6), port)
}

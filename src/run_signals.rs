//! `paf run`'s signals and pid file, and `paf reload`: signal-hook threads that only set a flag
//! or turn a switch and wake the loop (the loop does the work between two passes), the
//! `--pid-file` that `paf reload` reads, and the `kill(2)` it sends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use paf::Runtime;

use crate::{Failure, ReloadArgs};

/// SIGINT/SIGTERM set a flag and wake the loop.
pub(crate) fn stop_on_signals(rt: &Runtime) -> Result<Arc<AtomicBool>, String> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| e.to_string())?;
    }
    let waker = rt.waker();
    let f = flag.clone();
    std::thread::spawn(move || {
        let mut signals = match signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ]) {
            Ok(s) => s,
            Err(_) => return,
        };
        for _ in signals.forever() {
            f.store(true, Ordering::SeqCst);
            waker.wake();
        }
    });
    Ok(flag)
}

/// First SIGINT/SIGTERM turns `stop` off (graceful drain); a second one exits at once (removing
/// the pid file). A second signal within a second of the first is the same request arriving
/// twice (Ctrl-C reaches the whole process group, and `scripts/run` forwards it as SIGTERM
/// too), not a second request.
pub(crate) fn switch_on_signals(
    stop: paf::service::Switch,
    pid_file: Option<PathBuf>,
) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut first: Option<std::time::Instant> = None;
        for sig in signals.forever() {
            match first {
                None => {
                    log::info!("signal {sig}: stopping (send it again to exit at once)");
                    first = Some(std::time::Instant::now());
                    stop.turn_off();
                }
                Some(t) if t.elapsed() >= Duration::from_secs(1) => {
                    eprintln!("paf: second signal, exiting now");
                    if let Some(p) = &pid_file {
                        let _ = std::fs::remove_file(p);
                    }
                    std::process::exit(128 + sig);
                }
                Some(_) => {}
            }
        }
    });
    Ok(())
}

/// SIGUSR1 (logrotate's habit) reopens every access-log file. signal-hook's iterator turns the
/// signal into a wake-up of this thread (a self-pipe), and each sink's writer thread reopens
/// its file after the lines already queued: the loop is not involved. `logs` is shared with the
/// appliance (one per worker), so files a reload opened are reopened too.
pub(crate) fn reopen_on_sigusr1(logs: Vec<paf::appliance::AccessLogs>) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            log::info!("SIGUSR1: reopening access logs");
            for l in &logs {
                l.reopen();
            }
        }
    });
    Ok(())
}

/// SIGHUP adds one to `reloads` and wakes every worker's loop; each reloads between two of its
/// passes when it sees the count change.
pub(crate) fn reload_all_on_sighup(
    reloads: Arc<std::sync::atomic::AtomicU64>,
    wakers: Vec<paf::runtime::LoopWaker>,
) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            reloads.fetch_add(1, Ordering::SeqCst);
            for w in &wakers {
                w.wake();
            }
        }
    });
    Ok(())
}

/// The file `--pid-file` names, holding this process's id while it serves; removed when dropped.
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    /// Writes the pid to `path` (replacing a stale file).
    pub(crate) fn write(path: Option<&std::path::Path>) -> Result<Option<PidFile>, Failure> {
        let Some(path) = path else {
            return Ok(None);
        };
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pid-file {}: {e}", path.display()))?;
        Ok(Some(PidFile(path.to_path_buf())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `paf reload`: SIGHUP to the `paf run` whose pid is in the file.
pub(crate) fn reload(args: &ReloadArgs) -> Result<(), Failure> {
    let file = args.pid_file.display();
    let text = std::fs::read_to_string(&args.pid_file).map_err(|e| {
        format!("{file}: cannot read the pid file: {e} (was paf run started with --pid-file?)")
    })?;
    let pid: u32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{file}: not a process id: {:?}", text.trim()))?;
    if !is_paf_run(pid) {
        return Err(format!(
            "{file}: process {pid} is not a running `paf run` (a stale pid file: paf exited \
             without removing it?)"
        )
        .into());
    }
    net::signal_process(pid, signal_hook::consts::SIGHUP)
        .map_err(|e| format!("cannot signal process {pid}: {e}"))?;
    println!(
        "paf reload: SIGHUP sent to process {pid}; its log says what the reload changed or why \
         it was refused (paf_reloads_total in /metrics counts both)"
    );
    Ok(())
}

/// Whether `pid` is a live `paf run` (its command line, from /proc), not a process that reused
/// the id of one that exited.
pub(crate) fn is_paf_run(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
    let exe = args.next().unwrap_or_default();
    let name = std::path::Path::new(exe.as_ref())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.starts_with("paf") && args.any(|a| a == "run")
}

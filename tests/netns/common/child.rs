//! [`ChildGuard`]: a background process inside a namespace, stopped (and its stderr tail shown on
//! a panic) when dropped.

use super::*;

/// A background process inside a namespace. Dropping it sends SIGTERM, waits up to 3 s, then
/// SIGKILLs its whole process group; when the test is panicking it also prints the tail of the
/// process's stderr.
#[derive(Debug)]
pub struct ChildGuard {
    pub(super) child: Child,
    pub(super) label: String,
    pub(super) command: String,
    pub(super) stdout_path: PathBuf,
    pub(super) stderr_path: PathBuf,
    pub(super) status: Option<ExitStatus>,
}

impl ChildGuard {
    /// The process id (of the program itself: `ip netns exec` execs it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the process has exited, without blocking.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = wait_deadline(&mut self.child, Instant::now() + timeout);
        }
        self.status
    }

    /// Sends `signal` (a name: "TERM", "INT", "HUP", "USR1"…) to the process, if it runs.
    pub fn signal(&mut self, signal: &str) {
        if self.is_running() {
            kill_pid(self.id(), signal);
        }
    }

    /// Stops the process: SIGTERM to its process group (it and anything it started), up to
    /// `grace` to exit, then SIGKILL to the group. Returns how it ended; a `paf` that shuts
    /// down cleanly shows `success()` here.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if self.is_running() {
            kill_group(self.id(), "TERM");
        }
        if let Some(status) = self.wait_timeout(grace) {
            return status;
        }
        kill_group(self.id(), "KILL");
        let status = self.child.wait().unwrap_or_else(|_| killed_status());
        self.status = Some(status);
        status
    }

    /// Everything the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Everything the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// The file collecting the process's stderr.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let status = self.stop(DROP_GRACE);
        if thread::panicking() {
            loud!(
                "--- {} ({}) ended {status}; stderr tail ---\n{}",
                self.label,
                self.command,
                tail(&self.stderr(), TAIL_LINES)
            );
        }
    }
}

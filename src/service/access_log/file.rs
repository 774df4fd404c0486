//! [`FileSink`]: access-log batches to a file or to stderr, written by a thread of their own so
//! that a slow disk or a stalled pipe never blocks the loop.
//!
//! The loop hands batches over through a bounded queue ([`QUEUE`] batches): when it is full,
//! [`Sink::offer`] gives the batch back and the service keeps buffering (and, past its bound,
//! drops and counts). The thread writes each batch with one `write_all` (a file is opened with
//! `O_APPEND`), and [`FileSink::reopen`] (logrotate's `SIGUSR1`) reopens the file by its path
//! in order with the batches: those queued before the call go to the old file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::{Batch, Sink};

/// Batches waiting for the writer thread, at most.
pub const QUEUE: usize = 4;

enum Msg {
    Lines(Batch),
    Reopen,
}

/// Where a [`FileSink`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Stderr,
    File(PathBuf),
}

struct Inner {
    target: Target,
    /// `None` once closed.
    tx: Mutex<Option<SyncSender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Access-log lines appended to a file, or written to stderr, by a writer thread. Clones share
/// the file and the thread: listeners that log to the same path share one `FileSink`.
#[derive(Clone)]
pub struct FileSink(Arc<Inner>);

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FileSink").field(&self.0.target).finish()
    }
}

impl FileSink {
    /// Appends to the file at `path`, creating it if needed; the file is opened here, so a
    /// path that cannot be written fails now rather than at the first line.
    ///
    /// # Errors
    /// The file cannot be opened for appending, or the writer thread cannot be started.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = open(path)?;
        FileSink::start(
            Target::File(path.to_path_buf()),
            Out::File(file, path.to_path_buf()),
        )
    }

    /// Writes to the process's stderr.
    ///
    /// # Errors
    /// The writer thread cannot be started.
    pub fn stderr() -> io::Result<FileSink> {
        FileSink::start(Target::Stderr, Out::Stderr)
    }

    fn start(target: Target, out: Out) -> io::Result<FileSink> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("paf-access-log".into())
            .spawn(move || write_loop(&rx, out))?;
        Ok(FileSink(Arc::new(Inner {
            target,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })))
    }

    /// The file written to; `None` for stderr.
    pub fn path(&self) -> Option<&Path> {
        match &self.0.target {
            Target::File(p) => Some(p),
            Target::Stderr => None,
        }
    }

    fn sender(&self) -> Option<SyncSender<Msg>> {
        self.0
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reopens the file by its path (after logrotate renamed it), once the batches queued
    /// before are written. Callable from any thread (a signal-handling one); may wait for
    /// room in the queue. Nothing to do for stderr, or once closed.
    pub fn reopen(&self) {
        if let (Some(tx), Target::File(_)) = (self.sender(), &self.0.target) {
            let _ = tx.send(Msg::Reopen);
        }
    }

    /// Writes what is queued, then ends the writer thread and waits for it. Batches offered
    /// later are counted as lost. Call it once every service using the sink has stopped.
    pub fn close(&self) {
        drop(
            self.0
                .tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .0
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Sink for FileSink {
    fn offer(&mut self, batch: Batch) -> Result<(), Batch> {
        let guard = self.0.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            batch.lose();
            return Ok(());
        };
        match tx.try_send(Msg::Lines(batch)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Msg::Lines(b))) => Err(b),
            Err(TrySendError::Disconnected(Msg::Lines(b))) => {
                b.lose();
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    fn offer_final(&mut self, batch: Batch) {
        match self.sender() {
            Some(tx) => {
                if let Err(e) = tx.send(Msg::Lines(batch)) {
                    if let Msg::Lines(b) = e.0 {
                        b.lose();
                    }
                }
            }
            None => batch.lose(),
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

enum Out {
    Stderr,
    File(File, PathBuf),
}

impl Out {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Stderr => io::stderr().lock().write_all(bytes),
            Out::File(f, _) => f.write_all(bytes),
        }
    }

    fn reopen(&mut self) {
        if let Out::File(f, path) = self {
            match open(path) {
                Ok(new) => *f = new,
                Err(e) => log::error!(
                    "access log {}: cannot reopen: {e}; still writing to the old file",
                    path.display()
                ),
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Out::Stderr => "stderr".into(),
            Out::File(_, p) => p.display().to_string(),
        }
    }
}

/// The writer thread: until every sender is gone, writes batches and reopens when told.
fn write_loop(rx: &Receiver<Msg>, mut out: Out) {
    let mut failing = false;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Lines(batch) => match out.write_all(batch.bytes()) {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        log::error!("access log {}: {e}; dropping lines", out.name());
                    }
                    failing = true;
                    batch.lose();
                }
            },
            Msg::Reopen => out.reopen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn batch(text: &str, lost: &Arc<AtomicU64>) -> Batch {
        Batch {
            bytes: text.as_bytes().to_vec(),
            lines: text.matches('\n').count() as u64,
            lost: lost.clone(),
        }
    }

    #[test]
    fn batches_are_appended_and_reopen_follows_a_rename() {
        let dir = std::env::temp_dir().join(format!("paf-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let rotated = dir.join("access.log.1");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
        std::fs::write(&path, "kept\n").unwrap();
        let lost = Arc::new(AtomicU64::new(0));
        let mut sink = FileSink::open(&path).unwrap();
        assert_eq!(sink.path(), Some(path.as_path()));
        sink.offer_final(batch("a\nb\n", &lost));
        // logrotate: rename, then the signal; the batch before it goes to the old file.
        sink.offer_final(batch("c\n", &lost));
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        sink.offer_final(batch("d\n", &lost));
        sink.close();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "kept\na\nb\nc\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "d\n");
        // Closed: later batches are lost, and counted.
        sink.offer_final(batch("e\nf\n", &lost));
        assert!(sink.offer(batch("g\n", &lost)).is_ok());
        assert_eq!(lost.load(Ordering::Relaxed), 3);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "d\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_that_cannot_be_opened_fails_at_once() {
        let e = FileSink::open(Path::new("/nonexistent-paf-dir/access.log")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}

//! Workers: several loops, one per thread, each with its own [`Runtime`](super::Runtime) and
//! stack, sharing nothing on the hot path.
//!
//! [`spawn`] starts `n` threads (optionally each pinned to a CPU) that run the same body with
//! their index. A body builds its loop and what it serves, says it is ready with a value for the
//! starting thread ([`Ready::send`]: a waker, its metrics…), runs its loop and returns. The
//! starting thread waits for every worker to be ready ([`Workers::wait_ready`]), then for every
//! one to finish ([`Workers::wait_done`]). A worker that fails or panics is reported at once,
//! whatever the others do, so that the process can exit instead of serving with some of its
//! workers gone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What a worker thread tells the thread that started it.
enum Report<T> {
    Ready(usize, T),
    Done(usize, Result<(), String>),
}

/// A worker's way to say it is ready, with a value for the starting thread.
#[derive(Debug)]
pub struct Ready<T> {
    index: usize,
    tx: Sender<Report<T>>,
}

impl<T> Ready<T> {
    /// The worker is serving; `value` goes to [`Workers::wait_ready`].
    pub fn send(self, value: T) {
        let _ = self.tx.send(Report::Ready(self.index, value));
    }
}

/// A worker that failed: its index and why (its error, or its panic's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The worker's index.
    pub worker: usize,
    /// Its error or panic message.
    pub reason: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "worker {}: {}", self.worker, self.reason)
    }
}

impl std::error::Error for Failed {}

/// The threads [`spawn`] started.
#[derive(Debug)]
pub struct Workers<T> {
    rx: Receiver<Report<T>>,
    threads: Vec<JoinHandle<()>>,
    done: usize,
}

/// The body of every worker: its index and its [`Ready`]; `Err` is a failure.
pub type Body<T> = Arc<dyn Fn(usize, Ready<T>) -> Result<(), String> + Send + Sync>;

/// Start `n` workers named `paf-worker-K`, running `body`. With `cpus`, worker `K` is pinned to
/// `cpus[K % cpus.len()]` first (a failure to pin is logged, not fatal).
///
/// # Errors
/// A thread cannot be started.
pub fn spawn<T: Send + 'static>(
    n: usize,
    cpus: Option<Vec<usize>>,
    body: Body<T>,
) -> std::io::Result<Workers<T>> {
    let (tx, rx) = channel();
    let mut threads = Vec::with_capacity(n);
    for index in 0..n {
        let (tx, body) = (tx.clone(), body.clone());
        let cpu = cpus
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| c[index % c.len()]);
        let thread = std::thread::Builder::new()
            .name(format!("paf-worker-{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    match net::pin_current_thread(cpu) {
                        Ok(()) => log::info!("worker {index}: pinned to CPU {cpu}"),
                        Err(e) => log::warn!("worker {index}: cannot pin to CPU {cpu}: {e}"),
                    }
                }
                let ready = Ready {
                    index,
                    tx: tx.clone(),
                };
                let result = catch_unwind(AssertUnwindSafe(|| body(index, ready)))
                    .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))));
                let _ = tx.send(Report::Done(index, result));
            })?;
        threads.push(thread);
    }
    Ok(Workers {
        rx,
        threads,
        done: 0,
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

impl<T> Workers<T> {
    /// How many workers were started.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Waits until every worker is ready; their values in worker order.
    ///
    /// # Errors
    /// The first worker that finished before every one was ready: its failure, or "finished
    /// before it was ready".
    pub fn wait_ready(&mut self) -> Result<Vec<T>, Failed> {
        let mut values: Vec<Option<T>> = (0..self.len()).map(|_| None).collect();
        let mut ready = 0;
        while ready < values.len() {
            match self.rx.recv() {
                Ok(Report::Ready(k, v)) => {
                    if values[k].replace(v).is_none() {
                        ready += 1;
                    }
                }
                Ok(Report::Done(k, Ok(()))) if values[k].is_some() => self.done += 1,
                Ok(Report::Done(k, result)) => {
                    self.done += 1;
                    return Err(Failed {
                        worker: k,
                        reason: result
                            .err()
                            .unwrap_or_else(|| "finished before it was ready".into()),
                    });
                }
                Err(_) => {
                    return Err(Failed {
                        worker: 0,
                        reason: "every worker is gone".into(),
                    })
                }
            }
        }
        Ok(values.into_iter().flatten().collect())
    }

    /// Waits until every worker has finished, and joins their threads.
    ///
    /// # Errors
    /// The first worker that failed or panicked, as soon as it did (the others still run).
    pub fn wait_done(&mut self) -> Result<(), Failed> {
        while self.done < self.len() {
            match self.rx.recv() {
                Ok(Report::Ready(..)) => {}
                Ok(Report::Done(k, Ok(()))) => {
                    self.done += 1;
                    log::debug!("worker {k}: finished");
                }
                Ok(Report::Done(k, Err(reason))) => {
                    self.done += 1;
                    return Err(Failed { worker: k, reason });
                }
                Err(_) => break,
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_is_ready_then_done() {
        let body: Body<usize> = Arc::new(|k, ready| {
            ready.send(k * 10);
            Ok(())
        });
        let mut w = spawn(4, None, body).unwrap();
        assert_eq!(w.wait_ready(), Ok(vec![0, 10, 20, 30]));
        assert_eq!(w.wait_done(), Ok(()));
    }

    #[test]
    fn a_panic_is_reported_with_its_worker_and_message() {
        let body: Body<()> = Arc::new(|k, ready| {
            ready.send(());
            if k == 2 {
                panic!("boom in {k}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(())
        });
        let mut w = spawn(3, None, body).unwrap();
        assert!(w.wait_ready().is_ok());
        let e = w.wait_done().unwrap_err();
        assert_eq!(e.worker, 2);
        assert_eq!(e.reason, "panicked: boom in 2");
    }

    #[test]
    fn a_worker_failing_at_start_is_reported_before_ready() {
        let body: Body<()> = Arc::new(|k, ready| {
            if k == 1 {
                return Err("cannot listen".into());
            }
            ready.send(());
            Ok(())
        });
        let mut w = spawn(2, None, body).unwrap();
        let e = w.wait_ready().unwrap_err();
        assert_eq!((e.worker, e.reason.as_str()), (1, "cannot listen"));
    }
}

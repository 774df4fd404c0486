//! The completion side of a service: [`Handle`] (the seed's inner `unit Lwt.t`), its error, and
//! the counters a service publishes while it runs.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Why a service loop ended other than by its stop switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The runtime dropped the service before it finished (the loop itself went away).
    Dropped,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Dropped => f.write_str("the service's loop was dropped"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// Counters of one service, readable from any thread through [`Handle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections currently open.
    pub active: usize,
    /// Request heads handed to the request handler.
    pub requests: u64,
    /// Peer errors handed to the error handler.
    pub errors: u64,
    /// Handler or callback panics caught.
    pub panics: u64,
    /// Largest amount of unconsumed input ever held by one connection (capped by
    /// [`Config::read_buffer_size`](crate::http::Config::read_buffer_size)).
    pub max_input_buffered: usize,
    /// Largest amount of response bytes ever waiting in one connection's codec for the socket
    /// (about [`Config::response_buffer_size`](crate::http::Config::response_buffer_size) plus one
    /// response head at most, for streamed bodies).
    pub max_output_pending: usize,
    /// Largest body chunk handed to a body reader (capped by the service's read chunk).
    pub max_body_chunk: usize,
    /// TLS handshakes completed (https services).
    pub tls_handshakes: u64,
    /// TLS connections that failed before their handshake completed (bad records, wrong
    /// protocols, handshake timeouts).
    pub tls_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub active: AtomicUsize,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
    pub max_input: AtomicUsize,
    pub max_output: AtomicUsize,
    pub max_chunk: AtomicUsize,
    pub tls_ok: AtomicU64,
    pub tls_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let r = Ordering::Relaxed;
        Stats {
            accepted: self.accepted.load(r),
            active: self.active.load(r),
            requests: self.requests.load(r),
            errors: self.errors.load(r),
            panics: self.panics.load(r),
            max_input_buffered: self.max_input.load(r),
            max_output_pending: self.max_output.load(r),
            max_body_chunk: self.max_chunk.load(r),
            tls_handshakes: self.tls_ok.load(r),
            tls_failures: self.tls_failed.load(r),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    result: Mutex<Option<Result<(), ServiceError>>>,
    done: Condvar,
    pub(crate) counters: Counters,
}

/// Completes when the service loop has ended: on its stop switch (after draining) or on a fatal
/// error. Clone it and send it anywhere; drive the loop with
/// `rt.run_until(|_| handle.is_finished())`.
#[derive(Clone, Debug, Default)]
pub struct Handle(pub(crate) Arc<Inner>);

impl Handle {
    /// Whether the service loop has ended.
    pub fn is_finished(&self) -> bool {
        self.result().is_some()
    }

    /// How the service loop ended, once it has: `Ok(())` after a stop.
    pub fn result(&self) -> Option<Result<(), ServiceError>> {
        *self.0.result.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the service loop has ended (call it from another thread than the loop's).
    ///
    /// # Errors
    /// The [`ServiceError`] that ended the loop.
    pub fn wait(&self) -> Result<(), ServiceError> {
        let mut r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = *r {
                return r;
            }
            r = self.0.done.wait(r).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`Handle::wait`], giving up after `timeout` (`None` then).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), ServiceError>> {
        let r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        let (r, _) = self
            .0
            .done
            .wait_timeout_while(r, timeout, |r| r.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *r
    }

    /// The service's counters now.
    pub fn stats(&self) -> Stats {
        self.0.counters.snapshot()
    }

    /// Records the end of the loop (the first result wins) and wakes waiters.
    pub(crate) fn complete(&self, result: Result<(), ServiceError>) {
        let mut r = self.0.result.lock().unwrap_or_else(PoisonError::into_inner);
        if r.is_none() {
            *r = Some(result);
            self.0.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_result_wins_and_waiters_see_it() {
        let h = Handle::default();
        assert!(!h.is_finished());
        assert_eq!(h.wait_timeout(Duration::from_millis(10)), None);
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.wait());
        h.complete(Ok(()));
        h.complete(Err(ServiceError::Dropped));
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(h.result(), Some(Ok(())));
        assert_eq!(h.wait_timeout(Duration::ZERO), Some(Ok(())));
    }
}

//! [`Remote`]: the blocking convenience for threads that do not own the loop. A request is
//! handed to the loop's thread as a job through a channel, the loop is woken with its
//! [`LoopWaker`], the client app runs the job (a friendly [`Client`] request) at its next pass,
//! and the calling thread waits for the response on a channel of its own.
//!
//! The loop must be running (someone turns the [`Runtime`](crate::Runtime)); when it stops for
//! good, waiting calls return [`Error::Stopped`].

use std::sync::mpsc;
use std::time::Duration;

use ::http::{HeaderMap, Method};

use super::{Agent, Client, Error, Family, Response};
use crate::runtime::LoopWaker;
use crate::tls;

/// Work for the loop's thread.
pub(crate) type Job = Box<dyn FnOnce(&Agent) + Send>;

/// A handle to send requests through a client [`Agent`] from any thread, blocking until the
/// response is in (made by [`Agent::remote`]). Cheap to clone; `Send`.
#[derive(Clone, Debug)]
pub struct Remote {
    jobs: mpsc::Sender<Job>,
    waker: LoopWaker,
    tls: Option<tls::ClientConfig>,
    family: Family,
    redirects: usize,
    max_body: Option<usize>,
}

impl Remote {
    pub(crate) fn new(jobs: mpsc::Sender<Job>, waker: LoopWaker) -> Remote {
        Remote {
            jobs,
            waker,
            tls: None,
            family: Family::Any,
            redirects: 0,
            max_body: None,
        }
    }

    /// Uses `config` for `https` URLs (see [`Client::with_tls`]).
    #[must_use]
    pub fn with_tls(mut self, config: tls::ClientConfig) -> Remote {
        self.tls = Some(config);
        self
    }

    /// Which address family names resolve to (see [`Client::with_family`]).
    #[must_use]
    pub fn with_family(mut self, family: Family) -> Remote {
        self.family = family;
        self
    }

    /// Follows up to `max` redirects (see [`Client::follow_redirects`]).
    #[must_use]
    pub fn follow_redirects(mut self, max: usize) -> Remote {
        self.redirects = max;
        self
    }

    /// Largest response body accepted (see [`Client::with_max_body`]).
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Remote {
        self.max_body = Some(bytes);
        self
    }

    /// `GET url`, blocking.
    ///
    /// # Errors
    /// The request's [`Error`]; [`Error::Stopped`] when the loop is gone.
    pub fn get(&self, url: &str) -> Result<Response, Error> {
        self.fetch(Method::GET, url, HeaderMap::new(), Vec::new(), None)
    }

    /// Any request, blocking until the whole response is in, at most `timeout` when given.
    ///
    /// # Errors
    /// The request's [`Error`]; [`Error::Stopped`] when the loop is gone or `timeout` passed
    /// (the request itself goes on, its outcome is dropped).
    pub fn fetch(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Response, Error> {
        let (tx, rx) = mpsc::channel();
        let url = url.to_owned();
        let this = self.clone();
        let job: Job = Box::new(move |stack: &Agent| {
            let mut client = Client::new(stack)
                .with_family(this.family)
                .follow_redirects(this.redirects);
            if let Some(t) = this.tls {
                client = client.with_tls(t);
            }
            if let Some(n) = this.max_body {
                client = client.with_max_body(n);
            }
            client.request(method, &url, headers, body, move |r| {
                let _ = tx.send(r);
            });
        });
        self.jobs.send(job).map_err(|_| Error::Stopped)?;
        self.waker.wake();
        match timeout {
            Some(t) => rx.recv_timeout(t).map_err(|_| Error::Stopped)?,
            None => rx.recv().map_err(|_| Error::Stopped)?,
        }
    }
}

//! [`ErrorResponse`]: how the error handler answers a peer fault (httpaf's error handler
//! `respond` argument).

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use ::http::{Response, StatusCode};

use super::access_log::{Entry, Note};
use super::core::{CoreRef, Shared};
use super::reqd::{plain_head, Exchange};
use crate::http::{Error, ExchangeId};

/// The response to one peer error (malformed request, timeout, limits). On HTTP/1.1 the
/// connection closes after it; on HTTP/2 only the failed stream ends (a stream's body that
/// stalled or grew too large), the connection and its other streams go on. Answer with
/// [`ErrorResponse::respond`]; dropping it unanswered sends the default: the suggested
/// [`ErrorResponse::status`] with a one-line plain-text body.
pub struct ErrorResponse {
    core: CoreRef,
    shared: Rc<Shared>,
    peer: SocketAddr,
    error: Error,
    /// The exchange that failed (HTTP/2 answers on its stream).
    id: Option<ExchangeId>,
    /// The request whose body failed, for the access log.
    exchange: Option<Rc<Exchange>>,
    answered: bool,
}

impl fmt::Debug for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponse")
            .field("peer", &self.peer)
            .field("error", &self.error)
            .finish()
    }
}

impl ErrorResponse {
    pub(crate) fn new(
        core: CoreRef,
        shared: Rc<Shared>,
        peer: SocketAddr,
        error: Error,
        id: Option<ExchangeId>,
        exchange: Option<Rc<Exchange>>,
    ) -> ErrorResponse {
        ErrorResponse {
            core,
            shared,
            peer,
            error,
            id,
            exchange,
            answered: false,
        }
    }

    /// The status the codec suggests for the error (400, 408, 413, 414, 431, 501, 505).
    pub fn status(&self) -> StatusCode {
        self.error.status()
    }

    /// Sends `head` with `body` (`Content-Length` framing, `Connection: close`), after the
    /// responses to earlier pipelined requests. Ignored when the connection is already gone or the
    /// failed exchange's own response was under way (that response is cut short instead).
    pub fn respond(mut self, head: Response<()>, body: impl AsRef<[u8]>) {
        self.answer(head, body.as_ref());
    }

    fn answer(&mut self, head: Response<()>, body: &[u8]) {
        self.answered = true;
        let now = self.shared.now();
        let status = head.status().as_u16();
        let mut core = self.core.borrow_mut();
        if core.closed {
            return;
        }
        self.shared.set_date(&mut core, now);
        core.codec.respond_error(now, self.id, head, body);
        self.shared.mark(&mut core);
        drop(core);
        let ex = self.exchange.as_deref();
        self.shared.log_access(&Entry {
            peer: self.peer,
            request: ex.map(|ex| &ex.request),
            status,
            body_bytes: body.len() as u64,
            duration: ex.map(|ex| now.saturating_duration_since(ex.started)),
            note: Note::None,
            error: Some(&self.error),
        });
    }
}

impl Drop for ErrorResponse {
    fn drop(&mut self) {
        if !self.answered {
            let status = self.status();
            let body = format!(
                "{} {}\n",
                status.as_str(),
                status.canonical_reason().unwrap_or("")
            );
            self.answer(plain_head(status), body.as_bytes());
        }
    }
}

//! The response side of [`ClientApp`]: the codec's events to the exchanges, switched and raw
//! connections handed over, failures, and body bytes to the readers.

use std::time::Instant;

use super::ClientApp;
use crate::client::body::{BodyEnd, BodyError, ResponseBody};
use crate::client::conn::{Conn, Tunnel};
use crate::client::exchange::{complete, fail, retry, retryable};
use crate::client::state::{Deferred, Delivery, Inner, Phase, Reader};
use crate::client::Error;
use crate::http::client::ClientEvent;
use crate::http::BodyRead;
use crate::tunnel::{Hook, Upgraded};
use std::rc::Rc;

/// What [`ClientApp::events`] found.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Evented {
    /// There were events.
    pub any: bool,
    /// One of them may give the pump more to do in another round.
    pub again: bool,
}

impl ClientApp {
    /// Codec events → the exchange. Says whether there were any, and whether one of them may
    /// give another round of the pump work (a request body may flow, a reader has bytes, the
    /// connection or an exchange changed state); a response head (its handler runs after the
    /// pump) and body bytes no reader waits for do not.
    pub(super) fn events(
        &self,
        now: Instant,
        inner: &mut Inner,
        c: &mut Conn,
        out: &mut Vec<Delivery>,
    ) -> Evented {
        let mut moved = Evented::default();
        while let Some(ev) = c.codec.poll_event() {
            moved.any = true;
            // Response heads and BodyReadable say below.
            moved.again |= !matches!(
                ev,
                ClientEvent::Response { .. } | ClientEvent::BodyReadable { .. }
            );
            let rid = match &ev {
                ClientEvent::Continue { id }
                | ClientEvent::Writable { id }
                | ClientEvent::Response { id, .. }
                | ClientEvent::BodyReadable { id }
                | ClientEvent::Aborted { id } => Some(*id),
                ClientEvent::Error { id, .. } => *id,
                ClientEvent::Closed => None,
            };
            // The exchange the event is about.
            let id = rid.and_then(|rid| {
                c.exchanges.iter().copied().find(|id| {
                    inner
                        .exchanges
                        .get(id)
                        .is_some_and(|x| x.phase == Phase::Sent(c.id, rid))
                })
            });
            match ev {
                ClientEvent::Continue { .. } | ClientEvent::Writable { .. } => {}
                ClientEvent::Closed => c.closing = true,
                ClientEvent::Response { head, .. } => {
                    let Some(x) = id.and_then(|id| inner.exchanges.get_mut(&id)) else {
                        continue;
                    };
                    x.answered = true;
                    let id = id.expect("checked");
                    let upgraded = c.codec.is_switched().then(|| self.switched(c));
                    if let Some(handler) = x.response_handler.take() {
                        let body = ResponseBody::new(self.stack.clone(), id, upgraded);
                        out.push(Delivery::Response {
                            handler,
                            peer: c.peer,
                            head,
                            body,
                        });
                    }
                    if c.tunnel.is_some() {
                        // A 101: no body; the exchange is over, the connection is not.
                        complete(inner, c, id, now, out);
                        moved.again = true;
                    }
                }
                ClientEvent::BodyReadable { .. } => {
                    if let Some(x) = id.and_then(|id| inner.exchanges.get_mut(&id)) {
                        x.try_read = true;
                        moved.again |= x.reader.is_some();
                    }
                }
                ClientEvent::Aborted { .. } => {
                    let error = Error::Http {
                        peer: c.peer,
                        error: crate::http::client::ClientError::ClosedBeforeResponse,
                    };
                    self.lost(now, inner, c, id, error, out);
                }
                ClientEvent::Error { error, .. } => {
                    let error = Error::Http {
                        peer: c.peer,
                        error,
                    };
                    self.lost(now, inner, c, id, error, out);
                }
            }
        }
        moved
    }

    /// `c` switched protocols (a 101): it waits for its tunnel end; the returned
    /// [`Upgraded`] goes to the response handler.
    pub(super) fn switched(&self, c: &mut Conn) -> Upgraded {
        let shared = Rc::downgrade(&self.stack.0);
        let cid = c.id;
        let (hook, upgraded) = Hook::new(Rc::new(move || {
            if let Some(s) = shared.upgrade() {
                s.deferred.borrow_mut().push(Deferred::Pump(cid));
                s.pending.set(true);
            }
        }));
        c.tunnel = Some(Tunnel::Waiting(hook));
        c.closing = true;
        upgraded
    }

    /// The raw connection `c` is established: it waits for its tunnel end, and its exchange's
    /// handler gets it. (When the exchange is gone, the unjoined connection closes.)
    pub(super) fn connected(
        &self,
        now: Instant,
        inner: &mut Inner,
        c: &mut Conn,
        out: &mut Vec<Delivery>,
    ) {
        let upgraded = self.switched(c);
        let Some(&id) = c.exchanges.first() else {
            return;
        };
        let Some(x) = inner.exchanges.get_mut(&id) else {
            return;
        };
        log::debug!("client: raw connection {id}: {} to {} open", c.id, c.peer);
        if let Some(handler) = x.on_connect.take() {
            out.push(Delivery::Connected {
                handler,
                peer: c.peer,
                conn: upgraded,
            });
        }
        complete(inner, c, id, now, out);
    }

    /// Exchange `id` on `c` will get no (complete) response there: retry it or fail it.
    pub(super) fn lost(
        &self,
        _now: Instant,
        inner: &mut Inner,
        c: &mut Conn,
        id: Option<u64>,
        error: Error,
        out: &mut Vec<Delivery>,
    ) {
        let Some(id) = id else { return };
        c.exchanges.retain(|x| *x != id);
        let Some(x) = inner.exchanges.get_mut(&id) else {
            return;
        };
        let not_processed = matches!(&error, Error::Http { error, .. } if error.is_retryable());
        if retryable(x, c, not_processed) {
            if not_processed {
                x.refused += 1;
                log::debug!(
                    "client: request {id}: not processed on {} ({error}); retrying",
                    c.id
                );
            } else {
                log::debug!(
                    "client: request {id}: stale pooled {} ({error}); retrying",
                    c.id
                );
            }
            retry(x, id, &mut inner.hints);
            inner.stats.retries += 1;
            self.stack.0.pending.set(true);
            return;
        }
        fail(inner, id, error, out);
    }

    /// [`read_response`](Self::read_response) for each exchange on `c`; whether any moved.
    pub(super) fn read_responses(
        &self,
        now: Instant,
        inner: &mut Inner,
        c: &mut Conn,
        out: &mut Vec<Delivery>,
    ) -> bool {
        let mut moved = false;
        let mut ids = self.ids.take();
        ids.clone_from(&c.exchanges);
        for &id in &ids {
            moved |= self.read_response(now, inner, c, id, out);
        }
        self.ids.replace(ids);
        moved
    }

    /// Response body bytes → the exchange's reader; ends the exchange at the end of the body.
    fn read_response(
        &self,
        now: Instant,
        inner: &mut Inner,
        c: &mut Conn,
        id: u64,
        out: &mut Vec<Delivery>,
    ) -> bool {
        let Some(x) = inner.exchanges.get_mut(&id) else {
            return false;
        };
        let Phase::Sent(_, rid) = x.phase else {
            return false;
        };
        if !x.try_read || !x.answered {
            return false;
        }
        let Some(reader) = x.reader.take() else {
            return false;
        };
        let chunk = self.stack.0.options.read_chunk.max(1);
        let mut scratch = self.scratch.borrow_mut();
        if scratch.len() != chunk {
            scratch.resize(chunk, 0);
        }
        let buf = &mut scratch[..];
        let (reader, ended) = match reader {
            Reader::Once(reader) => match c.codec.read_body(now, rid, buf) {
                BodyRead::Data(n) => {
                    out.push(Delivery::Data {
                        reader,
                        data: self.stack.0.chunk(&buf[..n]),
                    });
                    (None, false)
                }
                BodyRead::End => {
                    out.push(Delivery::Eof {
                        reader,
                        end: BodyEnd::Complete,
                    });
                    (None, true)
                }
                BodyRead::Pending => (Some(Reader::Once(reader)), false),
            },
            Reader::ToEnd {
                limit,
                buf: mut body,
                done,
            } => loop {
                match c.codec.read_body(now, rid, buf) {
                    BodyRead::Data(n) if body.len() + n > limit => {
                        out.push(Delivery::Body {
                            done,
                            result: Err(BodyError::TooLarge),
                        });
                        // The rest is unwanted: HTTP/2 resets the stream; an HTTP/1.1
                        // connection cannot be reused.
                        if !c.codec.cancel(now, rid) {
                            c.closing = true;
                        }
                        x.phase = Phase::Done;
                        break (None, true);
                    }
                    BodyRead::Data(n) => body.extend_from_slice(&buf[..n]),
                    BodyRead::End => {
                        out.push(Delivery::Body {
                            done,
                            result: Ok(body),
                        });
                        break (None, true);
                    }
                    BodyRead::Pending => {
                        break (
                            Some(Reader::ToEnd {
                                limit,
                                buf: body,
                                done,
                            }),
                            false,
                        );
                    }
                }
            },
            Reader::Discard => loop {
                match c.codec.read_body(now, rid, buf) {
                    BodyRead::Data(_) => {}
                    BodyRead::End => break (None, true),
                    BodyRead::Pending => break (Some(Reader::Discard), false),
                }
            },
        };
        if reader.is_some() {
            x.try_read = false;
        }
        x.reader = reader;
        if ended {
            complete(inner, c, id, now, out);
        }
        true
    }
}

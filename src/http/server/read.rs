//! The reading half of [`ServerConn`]: request heads and bodies in, exchanges and events out,
//! plus the peer-fault path (stop reading, `Event::Error`).

use std::time::Instant;

use http::{Method, Version};

use super::{Decoder, ErrorState, Exchange, Expect, Reader, Response, ServerConn};
use crate::http::body::{BodyKind, Decoded};
use crate::http::event::{Event, ExchangeId};
use crate::http::head::{self, RequestHead};
use crate::http::Error;

impl ServerConn {
    /// Consumes head bytes; returns how many (always > 0 for non-empty input).
    pub(super) fn read_head(&mut self, now: Instant, rest: &[u8]) -> usize {
        self.idle_since = None;
        self.head_start.get_or_insert(now);
        let mut i = 0;
        if self.head_buf.is_empty() {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while i < rest.len() {
                match (self.skip_lf, rest[i]) {
                    (true, b'\n') => self.skip_lf = false,
                    (true, _) => {
                        self.fail(None, Error::BadRequest("invalid line ending"));
                        return i;
                    }
                    (false, b'\n') => {}
                    (false, b'\r') => self.skip_lf = true,
                    (false, _) => break,
                }
                i += 1;
            }
            if i == rest.len() {
                return i;
            }
            self.head_bytes = true;
            let window = &rest[i..rest.len().min(i + self.config.max_head_size)];
            match self.scan.scan(window, &self.config) {
                Err(e) => {
                    self.fail(None, e);
                    i
                }
                Ok(Some(n)) => {
                    let parsed = head::parse(&window[..n], &self.config);
                    self.on_head(now, parsed);
                    i + n
                }
                Ok(None) => {
                    // Partial head: keep a copy so the caller need not hold it.
                    self.head_buf.extend_from_slice(window);
                    i + window.len()
                }
            }
        } else {
            let before = self.head_buf.len();
            let take = rest
                .len()
                .min(self.config.max_head_size.saturating_sub(before).max(1));
            self.head_buf.extend_from_slice(&rest[..take]);
            match self.scan.scan(&self.head_buf, &self.config) {
                Err(e) => {
                    self.fail(None, e);
                    take
                }
                Ok(Some(n)) => {
                    let parsed = head::parse(&self.head_buf[..n], &self.config);
                    self.head_buf.clear();
                    self.on_head(now, parsed);
                    n - before
                }
                Ok(None) => take,
            }
        }
    }

    pub(super) fn on_head(&mut self, now: Instant, parsed: Result<RequestHead, Error>) {
        self.scan.reset();
        self.head_bytes = false;
        self.head_start = None;
        let h = match parsed {
            Ok(h) => h,
            Err(e) => return self.fail(None, e),
        };
        let id = ExchangeId(self.next_id);
        self.next_id += 1;
        let method = h.request.method();
        let decoder = Decoder::new(
            h.body,
            self.config.max_body_size,
            self.config.max_trailer_size,
        );
        let keep_alive = h.keep_alive && method != Method::CONNECT;
        self.exchanges.push_back(Exchange {
            id,
            is_head: method == Method::HEAD,
            http10: h.request.version() == Version::HTTP_10,
            keep_alive,
            expect: if h.expect_continue && h.body != BodyKind::Empty {
                Expect::Pending
            } else {
                Expect::None
            },
            body: Vec::new(),
            body_pos: 0,
            body_done: decoder.is_none(),
            trailers: None,
            response: Response::None,
            side: Vec::new(),
            started: false,
            want_writable: false,
            close_after: false,
            upgrade: h.upgrade,
            connect: method == Method::CONNECT,
        });
        if !keep_alive {
            self.stop_after = Some(id);
        }
        self.events.push_back(Event::Request {
            id,
            head: h.request,
        });
        match decoder {
            Some(decoder) => {
                self.body_progress = now;
                self.reader = Reader::Body {
                    id,
                    decoder,
                    discard: None,
                };
            }
            None => self.after_body(id),
        }
    }

    /// Decodes body bytes; `None` when no progress is possible.
    pub(super) fn read_body_bytes(&mut self, now: Instant, rest: &[u8]) -> Option<usize> {
        let Reader::Body {
            id,
            decoder,
            discard,
        } = &mut self.reader
        else {
            return None;
        };
        let id = *id;
        let result = if let Some(allowance) = discard {
            let max = usize::try_from(*allowance).unwrap_or(usize::MAX);
            let mut dropped = 0;
            let r = decoder.decode(rest, max, &mut |b| dropped += b.len());
            *allowance -= dropped as u64;
            match r {
                Ok(d) if !d.done && *allowance == 0 && d.consumed < rest.len() => {
                    // More body than we are willing to skip: close instead.
                    self.stop_reading();
                    return Some(d.consumed);
                }
                Ok(d) => Ok((d, false, true)),
                Err(_) => {
                    self.stop_reading();
                    return None;
                }
            }
        } else {
            let i = self.exchanges.iter().rposition(|x| x.id == id)?;
            let x = &mut self.exchanges[i];
            if x.body_pos > 0 {
                x.body.drain(..x.body_pos);
                x.body_pos = 0;
            }
            let was_empty = x.body.is_empty();
            let space = self.config.body_buffer_size.saturating_sub(x.body.len());
            if x.body.capacity() == 0 && space > 0 {
                x.body = self.pool.pop().unwrap_or_default();
            }
            let body = &mut x.body;
            let r = decoder.decode(rest, space, &mut |b| body.extend_from_slice(b));
            r.map(|d| (d, was_empty && !x.body.is_empty(), false))
        };
        match result {
            Err(e) => {
                self.fail(Some(id), e);
                None
            }
            Ok((d, readable, discarding)) => {
                self.body_decoded(now, id, d, !discarding && (readable || d.done));
                (d.done || d.consumed > 0).then_some(d.consumed)
            }
        }
    }

    /// What follows decoding body bytes of `id` (buffered, dropped, or handed out in place):
    /// the body timer, the `BodyReadable` hint when `readable`, and at the end of the body its
    /// completion (trailers, then the next head unless the connection stops here).
    pub(super) fn body_decoded(
        &mut self,
        now: Instant,
        id: ExchangeId,
        d: Decoded,
        readable: bool,
    ) {
        if d.consumed > 0 {
            self.body_progress = now;
        }
        if readable {
            self.events.push_back(Event::BodyReadable { id });
        }
        if d.done {
            let trailers = match &mut self.reader {
                Reader::Body { decoder, .. } => decoder.take_trailers(),
                _ => None,
            };
            if let Some(x) = self.exchange_mut(id) {
                x.body_done = true;
                x.trailers = trailers;
            }
            self.after_body(id);
        }
    }

    /// The request body of `id` ended: read the next head unless the connection stops here.
    pub(super) fn after_body(&mut self, id: ExchangeId) {
        if self.stop_after.is_some_and(|s| s <= id) || self.shutting_down {
            self.stop_reading();
        } else if self
            .exchange_mut(id)
            .is_some_and(|x| x.upgrade && x.response == Response::None)
        {
            // Maybe another protocol from here on: wait for the response.
            self.reader = Reader::Upgrade { id };
        } else {
            self.reader = Reader::Head;
        }
    }

    pub(super) fn stop_reading(&mut self) {
        self.reader = Reader::Stopped;
        self.head_buf.clear();
        self.head_bytes = false;
        self.head_start = None;
        self.idle_since = None;
    }

    /// The response of `id` closes the connection: drop later exchanges, read no more heads.
    pub(super) fn stop_reading_after(&mut self, id: ExchangeId) {
        self.stop_after = Some(self.stop_after.map_or(id, |s| s.min(id)));
        let dropped: Vec<ExchangeId> = self
            .exchanges
            .iter()
            .filter(|x| x.id > id)
            .map(|x| x.id)
            .collect();
        if !dropped.is_empty() {
            self.exchanges.retain(|x| x.id <= id);
            self.events.retain(|e| match e {
                Event::Request { id, .. } | Event::BodyReadable { id } | Event::Writable { id } => {
                    !dropped.contains(id)
                }
                _ => true,
            });
        }
        match self.reader {
            Reader::Body {
                id: reading,
                discard: None,
                ..
            } if reading == id => {}
            _ => self.stop_reading(),
        }
    }

    /// The response of `id` is complete: unread request body bytes are dropped from now on.
    pub(super) fn on_finished(&mut self, id: ExchangeId) {
        let limit = self.config.discard_body_limit;
        let Some(x) = self.exchange_mut(id) else {
            return;
        };
        let close = x.close_after;
        x.body.clear();
        x.body_pos = 0;
        x.body_done = true;
        if let Reader::Body {
            id: reading,
            decoder,
            discard,
        } = &mut self.reader
        {
            if *reading == id && discard.is_none() {
                if close || decoder.remaining().is_some_and(|n| n > limit) {
                    self.stop_reading();
                } else {
                    *discard = Some(limit);
                }
            }
        }
    }

    /// Records a peer fault: stop reading, emit `Event::Error`, and take the failed exchange's
    /// response out of the way of the error response.
    pub(super) fn fail(&mut self, id: Option<ExchangeId>, error: Error) {
        self.stop_reading();
        if self.error != ErrorState::None {
            return;
        }
        let mut send = true;
        if let Some(i) = id.and_then(|id| self.index(id)) {
            let x = &mut self.exchanges[i];
            if x.started || x.response == Response::Finished {
                // Its own response is (partly) out or complete: let it end, then close.
                send = false;
                x.close_after = true;
                if let Response::Streaming(_) = x.response {
                    x.response = Response::Finished;
                }
            } else {
                let x = self.exchanges.remove(i).expect("index is valid");
                self.recycle(x);
            }
        }
        log::debug!("http: peer error {error} (exchange {id:?})");
        self.error = ErrorState::Awaiting { send };
        self.events.push_back(Event::Error { id, error });
    }

    pub(super) fn force_close(&mut self) {
        self.stop_reading();
        self.out.clear();
        self.exchanges.clear();
        self.error_out.clear();
        self.closed = true;
        self.events.push_back(Event::Closed);
    }
}

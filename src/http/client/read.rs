//! The reading half of [`ClientConn`]: response heads and bodies in, events out, and the
//! end-of-input rules (which EOF is a clean close, which one truncates a response).

use std::time::Instant;

use http::StatusCode;

use super::head::{self, Parsed, RespFraming};
use super::{BodyIn, ClientConn, ClientError, ClientEvent, Reader, RequestId, Response};
use crate::http::body::{BodyKind, Decoder};

/// Interim responses accepted before one final response.
const MAX_INTERIM: usize = 16;

impl ClientConn {
    /// Feeds bytes from the server; returns how many were consumed.
    ///
    /// Consumes less than offered when the body buffer of the response being read is full
    /// (read it with `read_body`), after the last response of a closing connection, and after an
    /// error. Keep the rest and offer it again, with more appended, once `wants_read` is true.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let mut consumed = 0;
        while !self.closed {
            let rest = &bytes[consumed..];
            let n = match self.reader {
                Reader::Stopped | Reader::Switched => break,
                Reader::Head if rest.is_empty() => break,
                Reader::Head => self.read_head(now, rest),
                Reader::Body { .. } => match self.read_body_bytes(now, rest) {
                    Some(n) => n,
                    None => break,
                },
            };
            consumed += n;
        }
        self.pump(now);
        consumed
    }

    /// The server closed its sending side (FIN). Ends a close-delimited body; an EOF before a
    /// response is [`ClientError::ClosedBeforeResponse`], inside one
    /// [`ClientError::UnexpectedEof`]; with nothing in flight the connection just closes.
    pub fn handle_eof(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        match &self.reader {
            Reader::Stopped | Reader::Switched => {}
            Reader::Head => match self.waiting() {
                None => self.reader = Reader::Stopped,
                Some(i) => {
                    let x = &self.exchanges[i];
                    let error = if self.head_bytes || x.answered {
                        ClientError::UnexpectedEof
                    } else {
                        ClientError::ClosedBeforeResponse
                    };
                    self.fail(Some(x.id), error);
                }
            },
            Reader::Body {
                id,
                decoder: BodyIn::Eof,
                ..
            } => {
                let id = *id;
                self.end_response(id, true);
            }
            Reader::Body { id, .. } => {
                let id = *id;
                self.fail(Some(id), ClientError::UnexpectedEof);
            }
        }
        self.pump(now);
    }

    /// Consumes head bytes; returns how many.
    fn read_head(&mut self, now: Instant, rest: &[u8]) -> usize {
        let Some(i) = self.waiting() else {
            self.fail(None, ClientError::Malformed("response without a request"));
            return 0;
        };
        self.exchanges[i].answered = true;
        self.head_bytes = true;
        self.wait_since = None;
        self.read_progress = now;
        let max = self.config.max_head_size;
        if self.head_buf.is_empty() {
            let window = &rest[..rest.len().min(max)];
            match head::scan(window, &mut self.scanned) {
                Some(n) => {
                    self.on_head(now, i, &window[..n]);
                    n
                }
                None if window.len() >= max => {
                    let id = self.exchanges[i].id;
                    self.fail(Some(id), ClientError::HeadTooLarge);
                    window.len()
                }
                None => {
                    // Partial head: keep a copy so the caller need not hold it.
                    self.head_buf.extend_from_slice(window);
                    window.len()
                }
            }
        } else {
            let before = self.head_buf.len();
            let take = rest.len().min(max.saturating_sub(before));
            self.head_buf.extend_from_slice(&rest[..take]);
            match head::scan(&self.head_buf, &mut self.scanned) {
                Some(n) => {
                    let buf = std::mem::take(&mut self.head_buf);
                    self.on_head(now, i, &buf[..n]);
                    if !self.closed {
                        self.head_buf = buf;
                        self.head_buf.clear();
                    }
                    n - before
                }
                None if self.head_buf.len() >= max => {
                    let id = self.exchanges[i].id;
                    self.fail(Some(id), ClientError::HeadTooLarge);
                    take
                }
                None => take,
            }
        }
    }

    /// A complete head for exchange `i`.
    fn on_head(&mut self, now: Instant, i: usize, buf: &[u8]) {
        self.head_bytes = false;
        self.scanned = 0;
        let x = &mut self.exchanges[i];
        let id = x.id;
        let head = match head::parse_response(buf, &self.config, x.info.is_head) {
            Ok(Parsed::Final(head)) => head,
            Ok(Parsed::Switching(head)) => {
                if !x.info.upgrade || x.streaming.is_some() {
                    return self.fail(Some(id), ClientError::Malformed("unexpected 101 response"));
                }
                // HTTP ends here: the bytes after this head are the new protocol's, left
                // unconsumed for the owner.
                x.response = Response::Done;
                self.reader = Reader::Switched;
                self.accepting = false;
                self.wait_since = None;
                self.events.push_back(ClientEvent::Response { id, head });
                return;
            }
            Ok(Parsed::Interim(status)) => {
                self.interim += 1;
                if self.interim > MAX_INTERIM {
                    self.fail(
                        Some(id),
                        ClientError::Malformed("too many interim responses"),
                    );
                } else if status == StatusCode::CONTINUE && x.info.expect_continue && !x.continued {
                    x.continued = true;
                    self.events.push_back(ClientEvent::Continue { id });
                }
                return;
            }
            Err(e) => return self.fail(Some(id), e),
        };
        self.interim = 0;
        x.response = Response::Body;
        x.close_after |= !head.keep_alive;
        if x.streaming.is_some() && x.info.expect_continue && !x.continued {
            // A final answer before 100 Continue: the server may not read the body we still
            // owe it, so nothing after this exchange can be framed reliably.
            x.close_after = true;
        }
        self.events.push_back(ClientEvent::Response {
            id,
            head: head.response,
        });
        let c = &self.config;
        let decoder = match head.framing {
            RespFraming::Empty => return self.end_response(id, false),
            RespFraming::Length(n) => {
                Decoder::new(BodyKind::Length(n), None, 0).map(BodyIn::Framed)
            }
            RespFraming::Chunked => {
                Decoder::new(BodyKind::Chunked, c.max_body_size, c.max_trailer_size)
                    .map(BodyIn::Framed)
            }
            RespFraming::Eof => Some(BodyIn::Eof),
        };
        match decoder {
            Some(decoder) => {
                self.read_progress = now;
                self.reader = Reader::Body {
                    id,
                    decoder,
                    received: 0,
                };
            }
            None => self.end_response(id, false),
        }
    }

    /// Decodes body bytes into the exchange's buffer; `None` when no progress is possible.
    fn read_body_bytes(&mut self, now: Instant, rest: &[u8]) -> Option<usize> {
        let Reader::Body {
            id,
            decoder,
            received,
        } = &mut self.reader
        else {
            return None;
        };
        let id = *id;
        let i = self.exchanges.binary_search_by_key(&id, |x| x.id).ok()?;
        let x = &mut self.exchanges[i];
        if x.body_pos > 0 {
            x.body.drain(..x.body_pos);
            x.body_pos = 0;
        }
        let was_empty = x.body.is_empty();
        let space = self.config.body_buffer_size.saturating_sub(x.body.len());
        let result = match decoder {
            BodyIn::Eof => {
                let n = rest.len().min(space);
                *received += n as u64;
                if self.config.max_body_size.is_some_and(|max| *received > max) {
                    Err(ClientError::BodyTooLarge)
                } else {
                    x.body.extend_from_slice(&rest[..n]);
                    Ok((n, false))
                }
            }
            BodyIn::Framed(d) => {
                let body = &mut x.body;
                d.decode(rest, space, &mut |b| body.extend_from_slice(b))
                    .map(|d| (d.consumed, d.done))
                    .map_err(ClientError::from_decoder)
            }
        };
        let readable = was_empty && !x.body.is_empty();
        match result {
            Err(e) => {
                self.fail(Some(id), e);
                None
            }
            Ok((consumed, done)) => {
                if consumed > 0 {
                    self.read_progress = now;
                }
                if done {
                    self.end_response(id, true);
                } else if readable {
                    self.events.push_back(ClientEvent::BodyReadable { id });
                }
                (consumed > 0 || done).then_some(consumed)
            }
        }
    }

    /// The response of `id` is complete: read the next head, or stop after a closing response
    /// (later requests are aborted).
    pub(super) fn end_response(&mut self, id: RequestId, had_body: bool) {
        if let Some(i) = self.index(id) {
            let x = &mut self.exchanges[i];
            x.response = Response::Done;
            if had_body {
                self.events.push_back(ClientEvent::BodyReadable { id });
            }
            if x.close_after {
                self.reader = Reader::Stopped;
                self.abort_waiting(None);
                return;
            }
        }
        self.reader = Reader::Head;
    }
}

//! The writing half of [`ServerConn`]: responses in (heads, the `101` or CONNECT `2xx` that
//! switches protocols, streamed bodies and their end, the answer to an [`Event::Error`]), and
//! the pump that moves them into the output buffer in exchange order and retires exchanges.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use super::{BodyOut, ErrorState, Exchange, Expect, Reader, Response, ServerConn, POOL};
use crate::http::body;
use crate::http::error::UsageErrorKind;
use crate::http::event::{Event, ExchangeId, ResponseBody};
use crate::http::write::{self, Framing, Persist};
use crate::http::UsageError;

impl ServerConn {
    /// Starts the response of `id`: serializes `head` with the framing `body` implies. Adds
    /// `Date` and `Server` unless set; `Content-Length`, `Transfer-Encoding` and `Connection` are
    /// the codec's (a handler `Connection: close` closes the connection after this response).
    ///
    /// A `101 Switching Protocols` answers a request that asked to switch (`Upgrade` with the
    /// `upgrade` connection option, HTTP/1.1, its body read): the head goes out with
    /// `Connection: upgrade` and no body (`body` is ignored); once it is transmitted the codec
    /// reports [`Event::Switched`] and the connection's bytes are the new protocol's. Any other
    /// answer to such a request resumes HTTP.
    ///
    /// A `2xx` to a CONNECT request (its body, if any, read) switches the same way: the head
    /// goes out with no `Content-Length`, `Transfer-Encoding` or `Connection` (RFC 9110
    /// §9.3.6: a 2xx CONNECT response has no content), then [`Event::Switched`]; what the
    /// client sent after its CONNECT head is left unconsumed for the tunnel. Any other answer to
    /// a CONNECT closes the connection after it (nothing after a CONNECT is read as HTTP).
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, a second response, a 1xx status other than a `101`
    /// to a request that can switch, a 2xx to a CONNECT that cannot switch (its body unread,
    /// the connection stopping).
    pub fn respond(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: ResponseBody<'_>,
    ) -> Result<(), UsageError> {
        self.respond_with(now, id, head, body, None)
    }

    /// As [`respond`](Self::respond) with [`ResponseBody::Complete`], the body sent from `body`
    /// itself (one more reference to it) rather than copied into the output buffer first
    /// (bodies of 16 KiB and more, for the exchange whose response goes out now; otherwise it
    /// is copied as `respond` does).
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    pub fn respond_shared(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: &Bytes,
    ) -> Result<(), UsageError> {
        self.respond_with(now, id, head, ResponseBody::Complete(body), Some(body))
    }

    /// [`respond`](Self::respond), with `shared` the bytes of a `Complete` body when they may
    /// be sent from their own buffer.
    fn respond_with(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: ResponseBody<'_>,
        shared: Option<&Bytes>,
    ) -> Result<(), UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let status = head.status();
        let x = &mut self.exchanges[i];
        if x.response != Response::None {
            return Err(usage(UsageErrorKind::AlreadyResponded));
        }
        if status == StatusCode::SWITCHING_PROTOCOLS || (x.connect && status.is_success()) {
            return self.switch(now, i, &head);
        }
        if status.is_informational() {
            return Err(usage(UsageErrorKind::InformationalStatus));
        }
        if std::mem::take(&mut x.upgrade)
            && matches!(self.reader, Reader::Upgrade { id: u } if u == id)
        {
            // Not switching: HTTP goes on after this request.
            self.after_body(id);
        }
        let x = &mut self.exchanges[i];
        let handler_close = crate::http::head::all(head.headers(), &http::header::CONNECTION)
            .any(|v| has_token(v.as_bytes(), b"close"));
        // A final response without 100 Continue: the client may or may not send the body.
        let unsent_continue = matches!(x.expect, Expect::Pending | Expect::Wanted) && !x.body_done;
        if matches!(x.expect, Expect::Pending | Expect::Wanted) {
            x.expect = Expect::None;
        }
        let bodiless =
            x.is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let (framing, out_mode) = if bodiless {
            let framing = match body {
                _ if status == StatusCode::NO_CONTENT => Framing::None,
                _ if status == StatusCode::NOT_MODIFIED => Framing::Handler,
                ResponseBody::Empty => Framing::Handler,
                ResponseBody::Complete(b) => Framing::Length(b.len() as u64),
                ResponseBody::Length(n) => Framing::Length(n),
                ResponseBody::Chunked if x.http10 => Framing::Handler,
                ResponseBody::Chunked => Framing::Chunked,
            };
            (framing, BodyOut::Discard)
        } else {
            match body {
                ResponseBody::Empty => (Framing::Length(0), BodyOut::Discard),
                ResponseBody::Complete(b) => (Framing::Length(b.len() as u64), BodyOut::Discard),
                ResponseBody::Length(n) => (Framing::Length(n), BodyOut::Length(n)),
                ResponseBody::Chunked if x.http10 => (Framing::Close, BodyOut::Raw),
                ResponseBody::Chunked => (Framing::Chunked, BodyOut::Chunked),
            }
        };
        let close = x.close_after
            || !x.keep_alive
            || handler_close
            || unsent_continue
            || out_mode == BodyOut::Raw;
        x.close_after = close;
        let persist = match (close, x.http10) {
            (true, _) => Persist::Close,
            (false, true) => Persist::KeepAlive,
            (false, false) => Persist::Default,
        };
        let complete = matches!(body, ResponseBody::Empty | ResponseBody::Complete(_));
        x.response = if complete {
            Response::Finished
        } else {
            Response::Streaming(out_mode)
        };
        let server = self.config.server_name.as_deref();
        let date = self.date.as_ref();
        let dst = if i == 0 {
            x.started = true;
            self.out.tail_at(now, &mut self.write_progress)
        } else {
            &mut x.side
        };
        write::write_head(dst, &head, framing, persist, date, server);
        match (shared, body) {
            _ if bodiless => {}
            // The first exchange writes to the output itself: its body can wait there as it is.
            (Some(b), _) if i == 0 => self.out.push_shared(b),
            (_, ResponseBody::Complete(b)) => dst.extend_from_slice(b),
            _ => {}
        }
        if close {
            self.stop_reading_after(id);
        }
        if complete {
            self.on_finished(id);
        }
        self.pump(now);
        Ok(())
    }

    /// The `101` of exchange `i`, or the `2xx` of its CONNECT; see [`ServerConn::respond`].
    fn switch(
        &mut self,
        now: Instant,
        i: usize,
        head: &http::Response<()>,
    ) -> Result<(), UsageError> {
        let x = &mut self.exchanges[i];
        let id = x.id;
        // An upgrade waits for its answer; a CONNECT stopped reading at its end.
        let can = if x.connect {
            head.status().is_success() && matches!(self.reader, Reader::Stopped)
        } else {
            x.upgrade && matches!(self.reader, Reader::Upgrade { id: u } if u == id)
        };
        if !can || !x.body_done || self.shutting_down {
            return Err(usage(UsageErrorKind::NotUpgradable));
        }
        let persist = if x.connect {
            Persist::None
        } else {
            Persist::Upgrade
        };
        x.response = Response::Finished;
        x.expect = Expect::None;
        let (date, server) = (self.date.as_ref(), self.config.server_name.as_deref());
        let dst = if i == 0 {
            x.started = true;
            self.out.tail_at(now, &mut self.write_progress)
        } else {
            &mut x.side
        };
        write::write_head(dst, head, Framing::None, persist, date, server);
        self.switch_at = Some(id);
        self.on_finished(id);
        self.pump(now);
        Ok(())
    }

    /// Writes streamed body bytes of `id`; returns how many were accepted (chunked framing is
    /// added by the codec). Accepts fewer than offered (maybe 0) when output is full or an earlier
    /// response is still being written; [`Event::Writable`] follows.
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, no response yet, a response that is not streamed, or
    /// more bytes than a declared length leaves.
    pub fn write_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let pending = self.pending();
        let x = &mut self.exchanges[i];
        let mode = match x.response {
            Response::None => return Err(usage(UsageErrorKind::NotResponded)),
            Response::Finished => return Err(usage(UsageErrorKind::NotStreaming)),
            Response::Streaming(mode) => mode,
        };
        match mode {
            BodyOut::Discard => return Ok(data.len()),
            BodyOut::Length(left) if data.len() as u64 > left => {
                return Err(usage(UsageErrorKind::BodyTooLong))
            }
            _ => {}
        }
        if data.is_empty() {
            return Ok(0);
        }
        let space = self.config.response_buffer_size.saturating_sub(pending);
        let n = if i == 0 { data.len().min(space) } else { 0 };
        if n < data.len() {
            x.want_writable = true;
        }
        if n == 0 {
            return Ok(0);
        }
        let out = self.out.tail_at(now, &mut self.write_progress);
        match mode {
            BodyOut::Chunked => {
                body::write_chunk_size(out, n);
                out.extend_from_slice(&data[..n]);
                out.extend_from_slice(b"\r\n");
            }
            BodyOut::Length(left) => {
                x.response = Response::Streaming(BodyOut::Length(left - n as u64));
                out.extend_from_slice(&data[..n]);
            }
            BodyOut::Raw | BodyOut::Discard => out.extend_from_slice(&data[..n]),
        }
        Ok(n)
    }

    /// Ends the streamed body of `id`. Bytes of the request body still unread are then discarded
    /// (up to `discard_body_limit`, else the connection closes after this response).
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown id, no response, a response not streamed, or a declared
    /// length not reached (the response is then cut short and the connection closes).
    pub fn finish_body(&mut self, now: Instant, id: ExchangeId) -> Result<(), UsageError> {
        self.finish_body_with(now, id, None)
    }

    /// As [`ServerConn::finish_body`], sending `trailers` after the body. HTTP/1.1 carries
    /// trailers only in chunked framing: with a declared length (or an HTTP/1.0 client) they
    /// are dropped, as RFC 9110 §6.5 allows. Fields that may not be trailers are left out.
    ///
    /// # Errors
    ///
    /// As [`ServerConn::finish_body`].
    pub fn finish_body_with_trailers(
        &mut self,
        now: Instant,
        id: ExchangeId,
        trailers: &http::HeaderMap,
    ) -> Result<(), UsageError> {
        self.finish_body_with(now, id, Some(trailers))
    }

    fn finish_body_with(
        &mut self,
        now: Instant,
        id: ExchangeId,
        trailers: Option<&http::HeaderMap>,
    ) -> Result<(), UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let x = &mut self.exchanges[i];
        let mode = match x.response {
            Response::None => return Err(usage(UsageErrorKind::NotResponded)),
            Response::Finished => return Err(usage(UsageErrorKind::NotStreaming)),
            Response::Streaming(mode) => mode,
        };
        x.response = Response::Finished;
        let mut result = Ok(());
        match mode {
            BodyOut::Chunked => {
                if i == 0 {
                    let out = self.out.tail_at(now, &mut self.write_progress);
                    body::write_chunked_end(out, trailers);
                } else {
                    body::write_chunked_end(&mut x.side, trailers);
                }
            }
            BodyOut::Length(left) if left > 0 => {
                x.close_after = true;
                result = Err(usage(UsageErrorKind::BodyTooShort));
            }
            _ => {}
        }
        if x.close_after {
            self.stop_reading_after(id);
        }
        self.on_finished(id);
        self.pump(now);
        result
    }

    /// Answers the [`Event::Error`]: `head` and `body` go out after the responses of earlier
    /// exchanges, with `Connection: close` and `Content-Length`; after they are transmitted the
    /// connection reports [`Event::Closed`]. Ignored when no error is pending, or when the failed
    /// exchange's own response was already under way (that response is cut short instead).
    pub fn respond_error(&mut self, now: Instant, head: http::Response<()>, body: &[u8]) {
        let ErrorState::Awaiting { send } = self.error else {
            return;
        };
        self.error = ErrorState::Answered;
        if send {
            let framing = Framing::Length(body.len() as u64);
            let (date, server) = (self.date.as_ref(), self.config.server_name.as_deref());
            write::write_head(
                &mut self.error_out,
                &head,
                framing,
                Persist::Close,
                date,
                server,
            );
            self.error_out.extend_from_slice(body);
        }
        self.pump(now);
    }

    // ---- writing ----

    /// Moves finished and prepared output into the output buffer in exchange order, emits
    /// `Writable`, retires exchanges, and closes when everything is done.
    pub(super) fn pump(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let low_water = self.config.response_buffer_size / 2;
        while let Some(x) = self.exchanges.front_mut() {
            if x.expect == Expect::Wanted {
                x.expect = Expect::Sent;
                self.out
                    .tail_at(now, &mut self.write_progress)
                    .extend_from_slice(write::CONTINUE);
            }
            if x.response != Response::None && !x.started {
                x.started = true;
                self.out
                    .tail_at(now, &mut self.write_progress)
                    .extend_from_slice(&x.side);
                x.side.clear();
            }
            if x.want_writable && self.out.pending() <= low_water {
                x.want_writable = false;
                self.events.push_back(Event::Writable { id: x.id });
            }
            if x.response != Response::Finished {
                break;
            }
            let x = self.exchanges.pop_front().expect("front exists");
            if x.close_after {
                self.stop_reading_after(x.id);
                self.stop_reading();
            }
            self.recycle(x);
        }
        if self.exchanges.is_empty() {
            if !self.error_out.is_empty() {
                self.out
                    .tail_at(now, &mut self.write_progress)
                    .extend_from_slice(&self.error_out);
                self.error_out.clear();
            }
            if matches!(self.reader, Reader::Head)
                && !self.head_bytes
                && self.head_start.is_none()
                && self.idle_since.is_none()
            {
                self.idle_since = Some(now);
            }
        }
        if self.switch_at.is_some() && self.exchanges.is_empty() && self.pending() == 0 {
            // The 101 is out: the rest belongs to the new protocol.
            self.reader = Reader::Stopped;
            self.closed = true;
            self.switched = true;
            self.events.push_back(Event::Switched);
        } else if matches!(self.reader, Reader::Stopped)
            && self.exchanges.is_empty()
            && !matches!(self.error, ErrorState::Awaiting { .. })
            && self.pending() == 0
        {
            self.closed = true;
            self.events.push_back(Event::Closed);
        }
    }

    pub(super) fn recycle(&mut self, x: Exchange) {
        for mut buf in [x.body, x.side] {
            if buf.capacity() > 0 && self.pool.len() < POOL {
                buf.clear();
                self.pool.push(buf);
            }
        }
    }
}

fn usage(kind: UsageErrorKind) -> UsageError {
    UsageError::new(kind)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

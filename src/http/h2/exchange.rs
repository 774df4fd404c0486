//! The exchange side of [`ServerConn`]: what the service calls for one stream (answer an
//! error, read the request body, respond, stream the response body and its trailers, abort).

use std::task::Context;
use std::time::Instant;

use bytes::Bytes;
use h2::Reason;
use http::{header, StatusCode};

use super::{head, poll_body, usage, Out, ServerConn};
use crate::http::body::trailer_fields;
use crate::http::error::UsageErrorKind;
use crate::http::{BodyRead, ExchangeId, ResponseBody, UsageError};

impl ServerConn {
    /// Answers the [`Event::Error`] of stream `id` with `head` and `body` (`Content-Length`,
    /// `Date` and `Server` added); the stream then ends (its request body, if still coming,
    /// is refused with RST_STREAM `NO_ERROR`, RFC 9113 §8.1). The connection and its other
    /// streams go on. Ignored for a stream with no pending error: protocol errors are h2's
    /// (GOAWAY, RST_STREAM) and have no response.
    pub fn respond_error(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: &[u8],
    ) {
        let Some(i) = self.index(id).filter(|&i| self.streams[i].failed) else {
            return;
        };
        let bodiless = self.streams[i].is_head;
        let head = head::response(
            head,
            Some(body.len() as u64),
            self.date.as_ref(),
            self.config.server_name.as_deref(),
        );
        let s = &mut self.streams[i];
        let empty = bodiless || body.is_empty();
        if let Ok(mut send) = s.respond.send_response(head, empty) {
            if !empty {
                let _ = super::send::send_data(&mut send, body, true);
            }
        }
        self.streams.remove(i);
        self.drive(now);
    }

    /// Copies request body bytes of `id` into `buf`, releasing that much window to the peer.
    /// The first call on a request with `Expect: 100-continue` sends `100 Continue` unless the
    /// response started.
    pub fn read_body(&mut self, now: Instant, id: ExchangeId, buf: &mut [u8]) -> BodyRead {
        let Some(i) = self.index(id).filter(|&i| !self.streams[i].failed) else {
            return BodyRead::Pending;
        };
        let s = &mut self.streams[i];
        if s.expect {
            s.expect = false;
            if s.out == Out::None {
                let mut r = http::Response::new(());
                *r.status_mut() = StatusCode::CONTINUE;
                let _ = s.respond.send_informational(r);
            }
        }
        if s.chunk.is_empty() && !s.body_end {
            let waker = self.io.waker();
            let mut cx = Context::from_waker(&waker);
            if poll_body(s, &mut cx) {
                s.body_progress = now;
            }
        }
        let result = if !s.chunk.is_empty() {
            let n = s.chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&s.chunk[..n]);
            let _ = s.chunk.split_to(n);
            let _ = s.recv.flow_control().release_capacity(n);
            // The peer may send more now: its pause counts from here.
            s.body_progress = now;
            BodyRead::Data(n)
        } else if s.body_end {
            BodyRead::End
        } else {
            BodyRead::Pending
        };
        self.drive(now);
        result
    }

    /// Starts the response of `id` (see the HTTP/1.1 codec's `respond`): `Content-Length`
    /// from `body` when known, connection-specific fields removed, `Date` and `Server` added.
    ///
    /// # Errors
    ///
    /// [`UsageError`] for an unknown (or reset) id, a second response, or a 1xx status.
    pub fn respond(
        &mut self,
        now: Instant,
        id: ExchangeId,
        head: http::Response<()>,
        body: ResponseBody<'_>,
    ) -> Result<(), UsageError> {
        let i = self
            .index(id)
            .filter(|&i| !self.streams[i].failed)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let status = head.status();
        let s = &mut self.streams[i];
        if s.out != Out::None {
            return Err(usage(UsageErrorKind::AlreadyResponded));
        }
        if status.is_informational() {
            return Err(usage(UsageErrorKind::InformationalStatus));
        }
        s.expect = false;
        let bodiless =
            s.is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let length = match body {
            _ if status == StatusCode::NO_CONTENT => None,
            ResponseBody::Empty if bodiless => None,
            ResponseBody::Empty => Some(0),
            ResponseBody::Complete(b) => Some(b.len() as u64),
            ResponseBody::Length(n) => Some(n),
            ResponseBody::Chunked => None,
        };
        let mut head = head::response(
            head,
            length,
            self.date.as_ref(),
            self.config.server_name.as_deref(),
        );
        if status == StatusCode::NO_CONTENT {
            head.headers_mut().remove(header::CONTENT_LENGTH);
        }
        let complete = matches!(body, ResponseBody::Empty | ResponseBody::Complete(_));
        let data = match body {
            ResponseBody::Complete(b) if !bodiless && !b.is_empty() => Some(b),
            _ => None,
        };
        let end_now = complete && data.is_none();
        let mut send = match s.respond.send_response(head, end_now) {
            Ok(send) => send,
            Err(_) => return Err(usage(UsageErrorKind::UnknownExchange)),
        };
        if let Some(b) = data {
            self.body_given += b.len() as u64;
            let _ = super::send::send_data(&mut send, b, true);
        }
        if complete {
            self.finished(i);
        } else {
            let left = match body {
                ResponseBody::Length(n) => Some(n),
                _ => None,
            };
            let s = &mut self.streams[i];
            s.out = Out::Streaming {
                left,
                discard: bodiless,
            };
            s.send = Some(send);
        }
        self.drive(now);
        Ok(())
    }

    /// Sends streamed body bytes of `id`; returns how many were taken: at most the stream's
    /// send capacity (fewer than offered, maybe 0, is backpressure: [`Event::Writable`]
    /// follows).
    ///
    /// # Errors
    ///
    /// As the HTTP/1.1 codec's `write_body`.
    pub fn write_body(
        &mut self,
        now: Instant,
        id: ExchangeId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        let i = self
            .index(id)
            .ok_or(usage(UsageErrorKind::UnknownExchange))?;
        let (left, discard) = match self.streams[i].out {
            Out::None => return Err(usage(UsageErrorKind::NotResponded)),
            Out::Streaming { left, discard } => (left, discard),
        };
        if left.is_some_and(|l| data.len() as u64 > l) {
            return Err(usage(UsageErrorKind::BodyTooLong));
        }
        if discard {
            return Ok(data.len());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let s = &mut self.streams[i];
        let send = s.send.as_mut().expect("streaming has a send stream");
        if send.capacity() == 0 {
            send.reserve_capacity(data.len().max(16 * 1024));
            self.drive(now);
        }
        let Some(i) = self.index(id) else {
            return Err(usage(UsageErrorKind::UnknownExchange));
        };
        let room = self.send_room();
        let s = &mut self.streams[i];
        let send = s.send.as_mut().expect("streaming has a send stream");
        let n = send.capacity().min(data.len()).min(room);
        if n == 0 {
            s.blocked_since.get_or_insert(now);
            return Ok(0);
        }
        // Short: `Writable` follows when capacity comes (the stall timer starts now).
        s.blocked_since = (n < data.len()).then_some(now);
        if super::send::send_data(send, &data[..n], false).is_err() {
            return Err(usage(UsageErrorKind::UnknownExchange));
        }
        self.body_given += n as u64;
        if let Out::Streaming {
            left: Some(l),
            discard,
        } = s.out
        {
            s.out = Out::Streaming {
                left: Some(l - n as u64),
                discard,
            };
        }
        // Ask for the next chunk's worth ahead, so capacity arrives while this one is sent.
        send.reserve_capacity(data.len().max(16 * 1024));
        self.drive(now);
        Ok(n)
    }

    /// Ends the streamed body of `id` (an empty DATA frame with END_STREAM).
    ///
    /// # Errors
    ///
    /// As the HTTP/1.1 codec's `finish_body`; a declared length not reached resets the stream
    /// (`INTERNAL_ERROR`) instead of closing the connection.
    pub fn finish_body(&mut self, now: Instant, id: ExchangeId) -> Result<(), UsageError> {
        self.finish_body_with(now, id, None)
    }

    /// The trailer fields of request `id` once its body ended (see the HTTP/1.1 codec's).
    pub fn request_trailers(&self, id: ExchangeId) -> Option<&http::HeaderMap> {
        self.streams[self.index(id)?].trailers.as_ref()
    }

    /// Ends the streamed body of `id` with a HEADERS frame of `trailers` (END_STREAM); fields
    /// that may not be trailers are left out (an empty set ends with an empty DATA frame).
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
        let s = &mut self.streams[i];
        let Out::Streaming { left, .. } = s.out else {
            return Err(usage(UsageErrorKind::NotResponded));
        };
        let send = s.send.as_mut().expect("streaming has a send stream");
        let result = if left.is_some_and(|l| l > 0) {
            send.send_reset(Reason::INTERNAL_ERROR);
            Err(usage(UsageErrorKind::BodyTooShort))
        } else {
            let fields = trailers.map(trailer_fields).unwrap_or_default();
            if s.out
                == (Out::Streaming {
                    left,
                    discard: true,
                })
                || fields.is_empty()
            {
                let _ = send.send_data(Bytes::new(), true);
            } else {
                let _ = send.send_trailers(fields);
            }
            Ok(())
        };
        self.finished(i);
        self.drive(now);
        result
    }

    /// Abandons the response of `id` mid-body: the stream is reset (`INTERNAL_ERROR`), the
    /// connection and its other streams go on.
    pub fn abort(&mut self, now: Instant, id: ExchangeId) {
        if let Some(i) = self.index(id) {
            let mut s = self.streams.remove(i).expect("index is valid");
            match s.send.as_mut() {
                Some(send) => send.send_reset(Reason::INTERNAL_ERROR),
                None => s.respond.send_reset(Reason::INTERNAL_ERROR),
            }
        }
        self.drive(now);
    }
}

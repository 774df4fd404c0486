//! The two body handles of a request: [`BodyWriter`] (the request body, httpaf's
//! `[`write] Body.t`) and [`ResponseBody`] (the response body as it streams in, httpaf's
//! `[`read] Body.t`).
//!
//! Both are cheap handles on the client's shared state; they never touch a socket. Writes land
//! in the request's bounded buffer and reads install a callback; the client app moves the bytes
//! on the loop, in the same pass when called from a callback of the loop, else at the next pass.
//! One exception takes bytes at once: [`ResponseBody::take_complete`], a body that is all here.
//!
//! Backpressure: [`BodyWriter::write`] takes at most what the buffer has room for (then
//! [`BodyWriter::on_writable`]); a response body is read from the connection only as fast as
//! readers are scheduled (the codec's body buffer fills, then the TCP window closes).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::exchange::complete;
use super::state::{BodyKind, Deferred, Phase, Reader};
use super::Agent;
use crate::tunnel::Upgraded;

/// How a response body ended, for [`ResponseBody::schedule_read`] and [`BodyReader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body was received.
    Complete,
    /// The body will never complete: the connection failed, the response was malformed, or the
    /// request is over.
    Aborted,
}

/// A reader of the next piece of a response body, for [`ResponseBody::schedule`]: one value
/// that is told, once, either the next chunk or how the body ended. A reader that keeps
/// reading schedules a new one (from [`data`](Self::data), with a clone of the body handle).
///
/// [`ResponseBody::schedule_read`] makes one of two closures; implementing it on a type of
/// your own avoids sharing state between the two closures (one allocation a read, not three).
pub trait BodyReader: 'static {
    /// The next chunk of the body (never empty).
    fn data(self: Box<Self>, data: &[u8]);
    /// The body ended: complete, or it never will be.
    fn end(self: Box<Self>, end: BodyEnd);
}

/// [`ResponseBody::schedule_read`]'s reader: two closures.
struct Closures<D, E> {
    on_data: D,
    on_eof: E,
}

impl<D: FnOnce(&[u8]) + 'static, E: FnOnce(BodyEnd) + 'static> BodyReader for Closures<D, E> {
    fn data(self: Box<Self>, data: &[u8]) {
        (self.on_data)(data);
    }

    fn end(self: Box<Self>, end: BodyEnd) {
        (self.on_eof)(end);
    }
}

/// Why [`ResponseBody::read_to_end`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is longer than the limit given.
    TooLarge,
    /// See [`BodyEnd::Aborted`].
    Aborted,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::TooLarge => "response body larger than the limit",
            BodyError::Aborted => "response body aborted",
        })
    }
}

impl std::error::Error for BodyError {}

/// Why a [`BodyWriter`] call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The request is over (failed or cancelled), or its body was closed already.
    Closed,
    /// The request has no streamed body (no `Content-Length` or `Transfer-Encoding: chunked`
    /// header was given, or the body was given whole).
    NotStreaming,
    /// More bytes than the declared `Content-Length`.
    TooLong,
    /// [`BodyWriter::close`] before the declared `Content-Length` was reached: the request
    /// fails (its error handler gets [`UsageError::BodyTooShort`](crate::http::client::UsageError)).
    TooShort,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Closed => "the request is over",
            WriteError::NotStreaming => "the request has no streamed body",
            WriteError::TooLong => "body longer than the declared Content-Length",
            WriteError::TooShort => "body shorter than the declared Content-Length",
        })
    }
}

impl std::error::Error for WriteError {}

/// The body of a request, returned by [`request`](super::request). Closing it ends the request;
/// dropping it unclosed cancels a streamed request ([`Error::Cancelled`](super::Error)).
pub struct BodyWriter {
    pub(crate) stack: Agent,
    pub(crate) id: u64,
    /// Closed, or parked in `on_writable`: dropping does nothing.
    pub(crate) done: bool,
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("request", &self.id)
            .finish()
    }
}

impl BodyWriter {
    /// Queues body bytes; returns how many were taken. Fewer than offered (maybe 0) when the
    /// request's buffer is full: write the rest from [`on_writable`](Self::on_writable).
    ///
    /// # Errors
    /// [`WriteError::Closed`] when the request is over or the body closed;
    /// [`WriteError::NotStreaming`] for a request without a streamed body;
    /// [`WriteError::TooLong`] past the declared length (nothing is taken then).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        let shared = &self.stack.0;
        let mut inner = shared.inner.borrow_mut();
        let cap = shared.options.body_buffer;
        let replay_limit = shared.options.replay_limit;
        let x = inner
            .exchanges
            .get_mut(&self.id)
            .filter(|x| x.phase != Phase::Done)
            .ok_or(WriteError::Closed)?;
        match x.body {
            BodyKind::Empty | BodyKind::Bytes(_) => return Err(WriteError::NotStreaming),
            _ if x.closed => return Err(WriteError::Closed),
            BodyKind::Length(n) if x.written + data.len() as u64 > n => {
                return Err(WriteError::TooLong)
            }
            BodyKind::Length(_) | BodyKind::Chunked => {}
        }
        let k = data.len().min(cap.saturating_sub(x.out.len()));
        x.blocked = k < data.len();
        if k == 0 {
            return Ok(0);
        }
        x.out.extend_from_slice(&data[..k]);
        x.written += k as u64;
        if let Some(r) = &mut x.replay {
            if r.len() + k > replay_limit {
                x.replay = None;
            } else {
                r.extend_from_slice(&data[..k]);
            }
        }
        inner.touch(self.id);
        shared.pending.set(true);
        Ok(k)
    }

    /// Hands the writer to `f` once [`write`](Self::write) can take more (at the next pass if
    /// it can now). `f` is called exactly once: if the request ends first it is called anyway,
    /// and its writes fail with [`WriteError::Closed`].
    pub fn on_writable(mut self, f: impl FnOnce(BodyWriter) + 'static) {
        let shared = self.stack.0.clone();
        let mut inner = shared.inner.borrow_mut();
        match inner.exchanges.get_mut(&self.id) {
            Some(x) if x.phase != Phase::Done && !x.closed => {
                self.done = true;
                let old = x.on_writable.replace(Box::new(f));
                inner.hints.writable = true;
                inner.touch(self.id);
                shared.pending.set(true);
                drop(inner);
                drop(old);
            }
            _ => {
                drop(inner);
                f(self);
            }
        }
    }

    /// Ends the body (the last chunk for chunked framing); the response follows. For a request
    /// without a streamed body this only says so (it is sent already).
    ///
    /// # Errors
    /// [`WriteError::Closed`] when the request is over or the body was closed;
    /// [`WriteError::TooShort`] before the declared length (the request then fails).
    pub fn close(mut self) -> Result<(), WriteError> {
        self.done = true;
        let shared = &self.stack.0;
        let mut inner = shared.inner.borrow_mut();
        let x = inner
            .exchanges
            .get_mut(&self.id)
            .filter(|x| x.phase != Phase::Done)
            .ok_or(WriteError::Closed)?;
        if matches!(x.body, BodyKind::Empty | BodyKind::Bytes(_)) {
            return Ok(());
        }
        if x.closed {
            return Err(WriteError::Closed);
        }
        let short = matches!(x.body, BodyKind::Length(n) if x.written < n);
        x.closed = true;
        inner.touch(self.id);
        shared.pending.set(true);
        if short {
            shared.deferred.borrow_mut().push(Deferred::Short(self.id));
            return Err(WriteError::TooShort);
        }
        Ok(())
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if !self.done {
            self.stack
                .0
                .deferred
                .borrow_mut()
                .push(Deferred::Writer(self.id));
            self.stack.0.pending.set(true);
        }
    }
}

/// The body of a response as it streams in, given to the response handler. Clones share it;
/// when the last one is dropped without a reader waiting, the rest of the body is read and
/// dropped (so the connection can serve the next request).
#[derive(Clone)]
pub struct ResponseBody(Rc<BodyHandle>);

pub(crate) struct BodyHandle {
    stack: Agent,
    id: u64,
    /// A 101's connection, until [`ResponseBody::upgrade`] takes it.
    upgraded: RefCell<Option<Upgraded>>,
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("request", &self.0.id)
            .finish()
    }
}

impl ResponseBody {
    pub(crate) fn new(stack: Agent, id: u64, upgraded: Option<Upgraded>) -> Self {
        ResponseBody(Rc::new(BodyHandle {
            stack,
            id,
            upgraded: RefCell::new(upgraded),
        }))
    }

    /// After a `101 Switching Protocols` (to a request that sent `Upgrade` with the `upgrade`
    /// connection option): the connection, whose bytes are now the new protocol's, for
    /// [`tunnel::join`](crate::tunnel::join). `None` for any other response, and after the
    /// first call. If no clone takes it, the connection is closed when the last one is
    /// dropped. A 101 has no body: reads end at once.
    pub fn upgrade(&self) -> Option<Upgraded> {
        self.0.upgraded.borrow_mut().take()
    }

    /// Calls `on_data` once with the next chunk of the body as soon as there is one, or `on_eof`
    /// when the body has ended; schedule again (from `on_data`, with a clone of this handle) for
    /// more. Nothing more is read from the connection than the codec's body buffer holds until
    /// then. Replaces a reader scheduled before; when the request is already over,
    /// `on_eof(BodyEnd::Aborted)` is called at once.
    pub fn schedule_read(
        &self,
        on_data: impl FnOnce(&[u8]) + 'static,
        on_eof: impl FnOnce(BodyEnd) + 'static,
    ) {
        self.schedule(Closures { on_data, on_eof });
    }

    /// [`schedule_read`](Self::schedule_read) with one value for both outcomes: `reader`
    /// gets the next chunk as soon as there is one, or the end of the body (at once,
    /// [`BodyEnd::Aborted`], when the request is already over).
    pub fn schedule(&self, reader: impl BodyReader) {
        if let Some(Reader::Once(reader)) = self.install(Reader::Once(Box::new(reader))) {
            reader.end(BodyEnd::Aborted);
        }
    }

    /// Collects the whole body, then calls `done` with it; a body longer than `limit` bytes
    /// ends with [`BodyError::TooLarge`] as soon as the limit is crossed (the connection is then
    /// closed).
    pub fn read_to_end(
        &self,
        limit: usize,
        done: impl FnOnce(Result<Vec<u8>, BodyError>) + 'static,
    ) {
        let reader = Reader::ToEnd {
            limit,
            buf: Vec::new(),
            done: Box::new(done),
        };
        if let Some(Reader::ToEnd { done, .. }) = self.install(reader) {
            done(Err(BodyError::Aborted));
        }
    }

    /// The whole body at once, when all of it has already arrived (a small body that came
    /// with its head, typically): `Some(bytes)`, and the request is over, its connection free
    /// for the next one, as if a reader had read to the end. `None`, taking nothing, while more
    /// of the body is expected, when a reader is scheduled, after a `101`, and on HTTP/2 (read
    /// those with a reader). Saves a reader's round trips through the loop for each chunk.
    pub fn take_complete(&self) -> Option<Vec<u8>> {
        let shared = &self.0.stack.0;
        let mut guard = shared.inner.borrow_mut();
        let inner = &mut *guard;
        let x = inner.exchanges.get(&self.0.id)?;
        let Phase::Sent(cid, rid) = x.phase else {
            return None;
        };
        if !x.answered || x.reader.is_some() {
            return None;
        }
        let mut c = inner.conns.remove(&cid)?;
        let mut body = Vec::new();
        let mut out = Vec::new();
        let taken = c.codec.take_complete_body(rid, &mut body);
        if taken {
            let now = c.codec.now();
            complete(inner, &mut c, self.0.id, now, &mut out);
            // The free connection may take a waiting request: the app looks in its next round.
            shared.pending.set(true);
            // Its timers changed (the response's ended, the idle one started).
            shared.deadline.set(None);
        }
        inner.conns.insert(cid, c);
        drop(guard);
        // What the exchange held (callbacks, buffers) is dropped outside the borrow.
        drop(out);
        taken.then_some(body)
    }

    /// Abandons the rest of the response: the request ends at the next pass and its connection
    /// is closed rather than drained (dropping the body instead reads the rest, to reuse the
    /// connection). The error handler hears [`Error::Cancelled`](super::Error::Cancelled); a
    /// scheduled reader gets [`BodyEnd::Aborted`]. Nothing happens when the request is over.
    pub fn cancel(&self) {
        let shared = &self.0.stack.0;
        shared
            .deferred
            .borrow_mut()
            .push(Deferred::Cancel(self.0.id));
        shared.pending.set(true);
    }

    /// Puts `reader` in place; gives it back when the request is over.
    fn install(&self, reader: Reader) -> Option<Reader> {
        let shared = &self.0.stack.0;
        let mut inner = shared.inner.borrow_mut();
        let Some(x) = inner
            .exchanges
            .get_mut(&self.0.id)
            .filter(|x| x.phase != Phase::Done)
        else {
            return Some(reader);
        };
        let old = x.reader.replace(reader);
        x.try_read = true;
        inner.touch_read(self.0.id);
        shared.pending.set(true);
        drop(inner);
        drop(old);
        None
    }
}

impl Drop for BodyHandle {
    fn drop(&mut self) {
        self.stack
            .0
            .deferred
            .borrow_mut()
            .push(Deferred::Body(self.id));
        self.stack.0.pending.set(true);
    }
}

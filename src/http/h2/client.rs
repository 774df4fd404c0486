//! The HTTP/2 client connection (RFC 9113): hyperium's `h2` client driven as a sans-IO codec
//! with the surface of the HTTP/1.1 [`ClientConn`](crate::http::client::ClientConn), so the
//! client agent and the proxy drive either one per connection.
//!
//! As on the server side, h2 owns framing, HPACK, stream states, flow control and protocol
//! errors; its IO is two in-memory buffers (`io::Io`) that `handle_input` fills and
//! `poll_transmit` drains, and it is polled (never awaited) at the end of every call that can
//! give it work, until nothing it polled woke again. No waker has to reach the loop.
//!
//! Differences from the HTTP/1.1 codec's contract:
//! - requests are multiplexed: [`ClientConn::send_request`] takes a new request while
//!   [`ClientConn::can_send_request`] says so, which follows the server's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` (100 until its SETTINGS arrive) and turns false for
//!   good once the server sent GOAWAY or the connection failed;
//! - request bodies are streamed under the peer's flow control: `write_body` takes at most
//!   the stream's send capacity (peer windows, capped by `request_buffer_size`), then
//!   [`ClientEvent::Writable`] follows when more is granted;
//! - response bodies are released to the peer's windows only as `read_body` copies them out,
//!   so a reader that stops stops the server (windows are `body_buffer_size` per stream, 16
//!   times that for the connection);
//! - [`ClientEvent::Error`] may name one request and leave the connection open: a stream the
//!   server reset ([`ClientError::Reset`]), refused or left unprocessed by GOAWAY
//!   ([`ClientError::NotProcessed`], safe to retry), or a per-request timeout. A connection
//!   error gives one `Error` per request still on it, then [`ClientEvent::Closed`];
//! - the request head is sent with `:authority` from `Host` (or the URI's authority), the
//!   scheme the connection was made with, and without the connection-specific fields RFC 9113
//!   §8.2.2 forbids (`Connection` and what it names, `Keep-Alive`, `Proxy-Connection`,
//!   `Transfer-Encoding`, `Upgrade`, `TE` other than `trailers`); responses come out as
//!   `HTTP/2.0`. Interim responses are skipped (no [`ClientEvent::Continue`]).
//!
//! Timers: `response_timeout` per request from the end of its request to its response head,
//! `read_timeout` per response body while it is wanted and nothing comes, `write_timeout` for
//! output the pipe does not take (the connection fails) and for a request body blocked by the
//! server's windows (that stream is reset). Idle connections are the pool's business.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::{header, Method, Version};

use super::io::{Io, Wire};
use crate::http::client::{ClientError, ClientEvent, Config, RequestBody, RequestId, UsageError};
use crate::http::BodyRead;

mod head;
#[cfg(test)]
mod tests;

/// Peer bytes taken ahead of h2 (it parses them at once; this only bounds one call).
const INPUT_CAP: usize = 64 * 1024;

/// Frames waiting for the pipe before h2 is told to wait.
const OUTPUT_CAP: usize = 64 * 1024;

/// The connection window is this many stream windows.
const CONN_WINDOWS: u32 = 16;

/// Rounds of polling h2 in one drive (h2 progresses every round it wakes itself).
const MAX_ROUNDS: usize = 256;

/// Streams opened before the server's SETTINGS arrive.
const INITIAL_MAX_STREAMS: usize = 100;

type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Wire, Bytes>), h2::Error>>>>;

enum State {
    /// Writing the preface and SETTINGS (done at the first poll: the client need not wait).
    Handshaking(Handshake),
    Open(Box<Connection<Wire, Bytes>>),
    /// h2 is done (closed cleanly or by an error); what it wrote is still being flushed.
    Done,
}

/// Writing state of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyOut {
    /// Bytes left of a declared length.
    Length(u64),
    /// Until `finish_body`.
    Open,
}

struct Stream {
    id: RequestId,
    /// Until the response head arrives.
    response: Option<ResponseFuture>,
    /// While the request body streams.
    send: Option<SendStream<Bytes>>,
    body_out: Option<BodyOut>,
    is_head: bool,
    recv: Option<RecvStream>,
    /// Body bytes polled from h2, not yet read (their window is not released yet).
    chunk: Bytes,
    body_end: bool,
    body_len: u64,
    /// The response timer: the request ended at this instant and no head came yet.
    wait_since: Option<Instant>,
    /// The read timer: the last body progress.
    read_progress: Instant,
    /// The last `write_body` was short: `Writable` when capacity comes, or a reset when the
    /// server keeps its window shut past `write_timeout` from this instant.
    blocked_since: Option<Instant>,
}

/// One client-side HTTP/2 connection; see the [module docs](self).
pub struct ClientConn {
    config: Arc<Config>,
    io: Io,
    state: State,
    /// `None` once no new request may go (GOAWAY received, failed, closing).
    sender: Option<SendRequest<Bytes>>,
    /// h2 would take a new stream now (`poll_ready`).
    ready: bool,
    scheme: &'static str,
    /// In id order.
    streams: VecDeque<Stream>,
    next_id: u64,
    events: VecDeque<ClientEvent>,
    write_progress: Instant,
    closed: bool,
}

impl std::fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h2::ClientConn")
            .field("streams", &self.streams.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl ClientConn {
    /// A connection established at `now` (after TLS with ALPN `h2`, or plain text with prior
    /// knowledge); `tls` gives requests the `https` scheme. The preface and SETTINGS are
    /// queued at once.
    pub fn new(config: Arc<Config>, now: Instant, tls: bool) -> Self {
        let io = Io::new(OUTPUT_CAP);
        let window = u32::try_from(config.body_buffer_size)
            .unwrap_or(u32::MAX)
            .clamp(65_535, 1 << 30);
        let header_list = u32::try_from(config.max_head_size).unwrap_or(u32::MAX);
        let handshake = h2::client::Builder::new()
            .enable_push(false)
            // Until the server's SETTINGS say otherwise: RFC 9113 §6.5.2 recommends servers
            // allow at least 100 (h2 would assume no limit).
            .initial_max_send_streams(INITIAL_MAX_STREAMS)
            .max_header_list_size(header_list)
            .initial_window_size(window)
            .initial_connection_window_size(window.saturating_mul(CONN_WINDOWS).min(1 << 30))
            .max_send_buffer_size(config.request_buffer_size.max(1))
            .handshake(io.wire());
        let mut conn = ClientConn {
            config,
            io,
            state: State::Handshaking(Box::pin(handshake)),
            sender: None,
            ready: false,
            scheme: if tls { "https" } else { "http" },
            streams: VecDeque::new(),
            next_id: 0,
            events: VecDeque::new(),
            write_progress: now,
            closed: false,
        };
        conn.drive(now);
        conn
    }

    /// Queues a request (see the HTTP/1.1 codec's `send_request`): `:authority` from `Host`
    /// or the URI, the framing `body` implies (`Content-Length` for a known length), the
    /// connection-specific fields removed. `Connection: close` has no meaning here.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotAccepting`] when [`can_send_request`](Self::can_send_request) is
    /// false, [`UsageError::MissingHost`] or [`UsageError::UnsupportedMethod`] (CONNECT) for a
    /// request that cannot be sent. Nothing is queued then.
    pub fn send_request(
        &mut self,
        now: Instant,
        head: http::Request<()>,
        body: RequestBody<'_>,
    ) -> Result<RequestId, UsageError> {
        if !self.can_send_request() {
            return Err(UsageError::NotAccepting);
        }
        if head.method() == Method::CONNECT {
            return Err(UsageError::UnsupportedMethod);
        }
        let length = match body {
            RequestBody::Empty if head::wants_zero_length(head.method()) => Some(0),
            RequestBody::Empty | RequestBody::Chunked => None,
            RequestBody::Complete(b) => Some(b.len() as u64),
            RequestBody::Length(n) => Some(n),
        };
        let is_head = head.method() == Method::HEAD;
        let request = head::request(self.scheme, head, length)?;
        let end = matches!(body, RequestBody::Empty) || body == RequestBody::Complete(&[]);
        let sender = self.sender.as_mut().ok_or(UsageError::NotAccepting)?;
        let (response, mut send) = match sender.send_request(request, end) {
            Ok(pair) => pair,
            Err(e) => {
                log::debug!("h2 client: request refused by h2: {e}");
                self.sender = None;
                return Err(UsageError::NotAccepting);
            }
        };
        if let RequestBody::Complete(b) = body {
            if !b.is_empty() {
                // Buffered by h2 and sent as the windows allow (the caller holds it anyway).
                let _ = super::send::send_data(&mut send, b, true);
            }
        }
        let body_out = match body {
            RequestBody::Length(0) => {
                let _ = send.send_data(Bytes::new(), true);
                None
            }
            RequestBody::Length(n) => Some(BodyOut::Length(n)),
            RequestBody::Chunked => Some(BodyOut::Open),
            RequestBody::Empty | RequestBody::Complete(_) => None,
        };
        let id = RequestId::from_u64(self.next_id);
        self.next_id += 1;
        self.ready = false;
        self.streams.push_back(Stream {
            id,
            response: Some(response),
            send: body_out.is_some().then_some(send),
            body_out,
            is_head,
            recv: None,
            chunk: Bytes::new(),
            body_end: false,
            body_len: 0,
            wait_since: body_out.is_none().then_some(now),
            read_progress: now,
            blocked_since: None,
        });
        self.drive(now);
        Ok(id)
    }

    /// Writes streamed body bytes of `id`; returns how many were taken: at most the stream's
    /// send capacity (fewer than offered, maybe 0, is backpressure: [`ClientEvent::Writable`]
    /// follows). Bytes for a request that already ended (reset, failed) are taken and dropped.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotStreaming`] when `id`'s body is not being streamed,
    /// [`UsageError::BodyTooLong`] for more bytes than a declared length leaves.
    pub fn write_body(
        &mut self,
        now: Instant,
        id: RequestId,
        data: &[u8],
    ) -> Result<usize, UsageError> {
        let Some(i) = self.index(id) else {
            return if id.as_u64() < self.next_id {
                Ok(data.len())
            } else {
                Err(UsageError::NotStreaming)
            };
        };
        let s = &mut self.streams[i];
        let mode = s.body_out.ok_or(UsageError::NotStreaming)?;
        if let BodyOut::Length(left) = mode {
            if data.len() as u64 > left {
                return Err(UsageError::BodyTooLong);
            }
        }
        if data.is_empty() {
            return Ok(0);
        }
        let send = s.send.as_mut().expect("streaming has a send stream");
        if send.capacity() == 0 {
            send.reserve_capacity(data.len().max(16 * 1024));
            self.drive(now);
        }
        let Some(i) = self.index(id) else {
            return Ok(data.len());
        };
        let s = &mut self.streams[i];
        let Some(send) = s.send.as_mut() else {
            return Ok(data.len());
        };
        let n = send.capacity().min(data.len());
        if n == 0 {
            s.blocked_since.get_or_insert(now);
            return Ok(0);
        }
        s.blocked_since = (n < data.len()).then_some(now);
        if super::send::send_data(send, &data[..n], false).is_err() {
            // The stream ended under us: its error event says why.
            self.drive(now);
            return Ok(data.len());
        }
        if let Some(BodyOut::Length(left)) = s.body_out {
            s.body_out = Some(BodyOut::Length(left - n as u64));
        }
        // Ask for the next chunk's worth ahead, so capacity arrives while this one is sent.
        send.reserve_capacity(data.len().max(16 * 1024));
        self.drive(now);
        Ok(n)
    }

    /// Ends the streamed body of `id` (END_STREAM); the response timer starts.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotStreaming`] when `id`'s body is not being streamed;
    /// [`UsageError::BodyTooShort`] before a declared length was reached: the stream is reset
    /// (`CANCEL`) and `id` gets [`ClientEvent::Aborted`]; the connection goes on.
    pub fn finish_body(&mut self, now: Instant, id: RequestId) -> Result<(), UsageError> {
        let i = self.index(id).ok_or(UsageError::NotStreaming)?;
        let s = &mut self.streams[i];
        let mode = s.body_out.take().ok_or(UsageError::NotStreaming)?;
        let mut send = s.send.take().expect("streaming has a send stream");
        let result = if matches!(mode, BodyOut::Length(left) if left > 0) {
            send.send_reset(Reason::CANCEL);
            self.streams.remove(i);
            self.events.push_back(ClientEvent::Aborted { id });
            Err(UsageError::BodyTooShort)
        } else {
            let _ = send.send_data(Bytes::new(), true);
            s.blocked_since = None;
            s.wait_since = Some(now);
            Ok(())
        };
        self.drive(now);
        result
    }

    /// Copies response body bytes of `id` into `buf`, releasing that much window to the
    /// server. `End` once, when the whole body was read (the request is then forgotten);
    /// `Pending` while more is expected, and for unknown, forgotten or failed requests (so a
    /// truncated body never looks complete).
    pub fn read_body(&mut self, now: Instant, id: RequestId, buf: &mut [u8]) -> BodyRead {
        let Some(i) = self.index(id) else {
            return BodyRead::Pending;
        };
        let waker = self.io.waker();
        let s = &mut self.streams[i];
        if s.recv.is_none() {
            return BodyRead::Pending;
        }
        if s.chunk.is_empty() && !s.body_end {
            let mut cx = Context::from_waker(&waker);
            // An error is reported by the next drive, which polls the stream again.
            let _ = poll_body(s, &mut cx, now);
            let s = &mut self.streams[i];
            if s.chunk.is_empty() && !s.body_end {
                return BodyRead::Pending;
            }
        }
        let s = &mut self.streams[i];
        let result = if !s.chunk.is_empty() {
            let n = s.chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&s.chunk[..n]);
            let _ = s.chunk.split_to(n);
            if let Some(recv) = s.recv.as_mut() {
                let _ = recv.flow_control().release_capacity(n);
            }
            s.read_progress = now;
            BodyRead::Data(n)
        } else {
            // The end: the request is over.
            self.streams.remove(i);
            BodyRead::End
        };
        self.drive(now);
        result
    }

    /// Abandons request `id` (its response is unwanted, or its body will not be finished):
    /// the stream is reset (`CANCEL`); the connection and its other requests go on.
    pub fn cancel(&mut self, now: Instant, id: RequestId) {
        if let Some(i) = self.index(id) {
            let mut s = self.streams.remove(i).expect("index is valid");
            reset(&mut s, Reason::CANCEL);
        }
        self.drive(now);
    }

    /// The next event, if any. Call after every `handle_*`, `send_request`, `read_body` and
    /// `finish_body`.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes from the server; returns how many were taken.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        if !self.wants_read() {
            return 0;
        }
        let n = self.io.feed(bytes, INPUT_CAP);
        self.drive(now);
        n
    }

    /// The server closed its sending side: requests still open fail.
    pub fn handle_eof(&mut self, now: Instant) {
        self.io.set_eof();
        self.drive(now);
    }

    /// Whether offering input can make progress now.
    pub fn wants_read(&self) -> bool {
        !self.closed && !matches!(self.state, State::Done) && self.io.pending_in() < INPUT_CAP
    }

    /// Bytes ready to send; report with `handle_transmitted`.
    pub fn poll_transmit(&self) -> &[u8] {
        self.io.transmit()
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were sent.
    pub fn handle_transmitted(&mut self, now: Instant, n: usize) {
        if self.io.transmitted(n) > 0 {
            self.write_progress = now;
        }
        self.drive(now);
    }

    /// The earliest deadline, if any; call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let c = &self.config;
        let write = (self.io.pending_out() > 0).then(|| self.write_progress + c.write_timeout);
        let streams = self.streams.iter().filter_map(|s| {
            let response = s.wait_since.map(|t| t + c.response_timeout);
            let read = reading(s).then(|| s.read_progress + c.read_timeout);
            let stalled = s.blocked_since.map(|t| t + c.write_timeout);
            [response, read, stalled].into_iter().flatten().min()
        });
        write.into_iter().chain(streams).min()
    }

    /// Fires the deadlines at or before `now`: output the pipe did not take fails the
    /// connection; a late response head, a stalled response body or a request body the
    /// server's windows kept blocked fails that request alone (its stream is reset).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let c = Arc::clone(&self.config);
        if self.io.pending_out() > 0 && self.write_progress + c.write_timeout <= now {
            self.io.drop_output();
            self.fail_all(ClientError::WriteTimeout);
            self.state = State::Done;
            self.close();
            return;
        }
        let mut i = 0;
        while i < self.streams.len() {
            let s = &self.streams[i];
            let error = if s.wait_since.is_some_and(|t| t + c.response_timeout <= now) {
                Some(ClientError::ResponseTimeout)
            } else if reading(s) && s.read_progress + c.read_timeout <= now {
                Some(ClientError::ReadTimeout)
            } else if s.blocked_since.is_some_and(|t| t + c.write_timeout <= now) {
                Some(ClientError::WriteTimeout)
            } else {
                None
            };
            match error {
                Some(error) => {
                    let mut s = self.streams.remove(i).expect("index is valid");
                    reset(&mut s, Reason::CANCEL);
                    log::debug!("h2 client: request {}: {error}", s.id.as_u64());
                    self.events.push_back(ClientEvent::Error {
                        id: Some(s.id),
                        error,
                    });
                }
                None => i += 1,
            }
        }
        self.drive(now);
    }

    /// Takes no more requests: once the requests in flight are done, h2 sends GOAWAY
    /// (`NO_ERROR`) and the connection closes ([`ClientEvent::Closed`]). An idle connection
    /// queues its GOAWAY here, so closing it says goodbye before the FIN.
    pub fn shutdown(&mut self, now: Instant) {
        self.sender = None;
        self.ready = false;
        self.drive(now);
    }

    /// Whether [`send_request`](Self::send_request) would take a request now: the
    /// connection is open, the server did not send GOAWAY, and its concurrent-stream limit
    /// leaves room.
    pub fn can_send_request(&self) -> bool {
        let Some(sender) = self.sender.as_ref() else {
            return false;
        };
        // Below the limit by our own count too: h2 would queue a request past it until a
        // stream ends, while another connection might carry it at once.
        !self.closed && self.ready && self.active() < sender.current_max_send_streams()
    }

    /// Streams h2 may still count against the server's limit: not yet answered, still
    /// sending, or not yet read to their end (an over-estimate, never under).
    fn active(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.response.is_some() || s.body_out.is_some() || !s.body_end)
            .count()
    }

    /// Nothing in flight and nothing left to transmit.
    pub fn is_idle(&self) -> bool {
        !self.closed && self.streams.is_empty() && self.io.pending_out() == 0
    }

    /// Whether a pool may keep the connection for later requests: idle and still accepting.
    pub fn is_reusable(&self) -> bool {
        self.is_idle() && self.sender.is_some()
    }

    /// [`ClientEvent::Closed`] was emitted.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ---- driving h2 ----

    /// Polls h2 until nothing it polled woke again.
    fn drive(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let waker = self.io.waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..MAX_ROUNDS {
            self.io.woke();
            if self.io.take_output() {
                self.write_progress = now;
            }
            self.poll_conn(&mut cx);
            self.poll_streams(&mut cx, now);
            if self.io.take_output() {
                self.write_progress = now;
            }
            if !self.io.woke() {
                break;
            }
        }
        if matches!(self.state, State::Done) && self.io.pending_out() == 0 {
            self.salvage(&mut cx);
            self.close();
        }
    }

    fn poll_conn(&mut self, cx: &mut Context<'_>) {
        if let State::Handshaking(hs) = &mut self.state {
            match hs.as_mut().poll(cx) {
                Poll::Ready(Ok((sender, conn))) => {
                    self.sender = Some(sender);
                    self.state = State::Open(Box::new(conn));
                }
                Poll::Ready(Err(e)) => {
                    log::debug!("h2 client: handshake failed: {e}");
                    self.state = State::Done;
                    return;
                }
                Poll::Pending => return,
            }
        }
        if let Some(sender) = self.sender.as_mut() {
            match sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.ready = true,
                Poll::Ready(Err(e)) => {
                    // GOAWAY received or the connection failed: no new requests. Dropping
                    // the sender lets h2 close once the streams in flight are done.
                    log::debug!("h2 client: no more requests: {e}");
                    self.sender = None;
                    self.ready = false;
                }
                Poll::Pending => self.ready = false,
            }
        }
        let State::Open(conn) = &mut self.state else {
            return;
        };
        match Pin::new(&mut **conn).poll(cx) {
            Poll::Ready(Ok(())) => {
                log::debug!("h2 client: connection closed");
                self.state = State::Done;
            }
            Poll::Ready(Err(e)) => {
                log::debug!("h2 client: connection ended: {e}");
                self.state = State::Done;
            }
            Poll::Pending => {}
        }
    }

    fn poll_streams(&mut self, cx: &mut Context<'_>, now: Instant) {
        let max_body = self.config.max_body_size;
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            let id = s.id;
            if let Some(fut) = s.response.as_mut() {
                match Pin::new(fut).poll(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(resp)) => {
                        s.response = None;
                        s.wait_since = None;
                        s.read_progress = now;
                        let (mut parts, recv) = resp.into_parts();
                        parts.version = Version::HTTP_2;
                        let declared = parts
                            .headers
                            .get(header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        if let (Some(n), Some(max)) = (declared, max_body) {
                            if n > max && !s.is_head {
                                self.stream_error(i, Some(ClientError::BodyTooLarge));
                                continue;
                            }
                        }
                        s.body_end = recv.is_end_stream() || s.is_head;
                        s.recv = Some(recv);
                        self.events.push_back(ClientEvent::Response {
                            id,
                            head: http::Response::from_parts(parts, ()),
                        });
                    }
                    Poll::Ready(Err(e)) => {
                        let error = classify(&e, false);
                        log::debug!("h2 client: request {}: {e}", id.as_u64());
                        self.stream_error(i, error);
                        continue;
                    }
                }
            }
            let s = &mut self.streams[i];
            if s.recv.is_some() && s.chunk.is_empty() && !s.body_end {
                match poll_body(s, cx, now) {
                    Ok(true) => {
                        if max_body.is_some_and(|m| s.body_len > m) {
                            self.stream_error(i, Some(ClientError::BodyTooLarge));
                            continue;
                        }
                        self.events.push_back(ClientEvent::BodyReadable { id });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let error = classify(&e, true);
                        log::debug!("h2 client: request {} body: {e}", id.as_u64());
                        self.stream_error(i, error);
                        continue;
                    }
                }
            }
            let s = &mut self.streams[i];
            if s.blocked_since.is_some() {
                if let Some(send) = s.send.as_mut() {
                    let ready = match send.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(n))) => n > 0,
                        Poll::Ready(Some(Err(_)) | None) => true,
                        Poll::Pending => send.capacity() > 0,
                    };
                    if ready {
                        s.blocked_since = None;
                        self.write_progress = now;
                        self.events.push_back(ClientEvent::Writable { id });
                    }
                }
            }
            i += 1;
        }
    }

    /// Stream `i` failed (`None`: the server ended it without an error): it leaves.
    fn stream_error(&mut self, i: usize, error: Option<ClientError>) {
        let mut s = self.streams.remove(i).expect("index is valid");
        reset(&mut s, Reason::CANCEL);
        let error = error.unwrap_or(ClientError::UnexpectedEof);
        self.events.push_back(ClientEvent::Error {
            id: Some(s.id),
            error,
        });
    }

    /// The connection is over: responses h2 received in full stay readable (what it holds of
    /// them is bounded by their windows); every other stream fails.
    fn salvage(&mut self, cx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            if let Some(recv) = s.recv.as_mut() {
                let mut rest = bytes::BytesMut::new();
                while !s.body_end {
                    match recv.poll_data(cx) {
                        Poll::Ready(Some(Ok(b))) => rest.extend_from_slice(&b),
                        Poll::Ready(None) => s.body_end = true,
                        Poll::Ready(Some(Err(_))) | Poll::Pending => break,
                    }
                }
                if s.body_end {
                    if !rest.is_empty() {
                        let mut all = bytes::BytesMut::from(&s.chunk[..]);
                        all.extend_from_slice(&rest);
                        s.chunk = all.freeze();
                    }
                    let id = s.id;
                    self.events.push_back(ClientEvent::BodyReadable { id });
                    i += 1;
                    continue;
                }
            }
            let s = self.streams.remove(i).expect("index is valid");
            let error = if s.recv.is_some() {
                ClientError::UnexpectedEof
            } else {
                ClientError::ClosedBeforeResponse
            };
            self.events.push_back(ClientEvent::Error {
                id: Some(s.id),
                error,
            });
        }
    }

    /// Every stream left fails with `error` (the connection is gone).
    fn fail_all(&mut self, error: ClientError) {
        for s in self.streams.drain(..) {
            self.events.push_back(ClientEvent::Error {
                id: Some(s.id),
                error,
            });
        }
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.sender = None;
            self.ready = false;
            self.events.push_back(ClientEvent::Closed);
        }
    }

    fn index(&self, id: RequestId) -> Option<usize> {
        self.streams.binary_search_by_key(&id, |s| s.id).ok()
    }
}

/// Whether the read timer runs for `s`: its body is wanted and nothing is buffered.
fn reading(s: &Stream) -> bool {
    s.recv.is_some() && s.chunk.is_empty() && !s.body_end
}

/// Resets what is left of a stream (nothing if it already ended).
fn reset(s: &mut Stream, reason: Reason) {
    if let Some(send) = s.send.as_mut() {
        send.send_reset(reason);
    } else if let Some(recv) = s.recv.as_mut() {
        // Unread data must not hold the connection window: give it back.
        let n = s.chunk.len();
        let _ = recv.flow_control().release_capacity(n);
    }
    // Dropping the response future and body handles resets an open stream (h2 sends
    // RST_STREAM CANCEL for streams that lose every reference before they end).
}

/// Polls one chunk of `s`'s body into `s.chunk` (or its end); `Ok(true)` when something came.
fn poll_body(s: &mut Stream, cx: &mut Context<'_>, now: Instant) -> Result<bool, h2::Error> {
    let Some(recv) = s.recv.as_mut() else {
        return Ok(false);
    };
    loop {
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
            Poll::Ready(Some(Ok(b))) => {
                s.body_len += b.len() as u64;
                s.chunk = b;
                s.read_progress = now;
                return Ok(true);
            }
            Poll::Ready(None) => {
                s.body_end = true;
                return Ok(true);
            }
            Poll::Ready(Some(Err(e))) => return Err(e),
            Poll::Pending => return Ok(false),
        }
    }
}

/// A stream's failure in the client's terms; `mid_body`: after the response head.
fn classify(e: &h2::Error, mid_body: bool) -> Option<ClientError> {
    if e.is_remote() && e.is_go_away() && !mid_body {
        // The server's GOAWAY names a lower last stream id: it did not touch this request.
        return Some(ClientError::NotProcessed);
    }
    if let Some(reason) = e.reason() {
        if e.is_reset() && e.is_remote() {
            if reason == Reason::REFUSED_STREAM && !mid_body {
                return Some(ClientError::NotProcessed);
            }
            return Some(ClientError::Reset(reason.into()));
        }
        if e.is_go_away() || e.is_reset() {
            return Some(ClientError::Protocol(reason.into()));
        }
    }
    if e.is_io() {
        return Some(if mid_body {
            ClientError::UnexpectedEof
        } else {
            ClientError::ClosedBeforeResponse
        });
    }
    // h2's own checks of what the server sent (content-length mismatch, bad headers).
    Some(ClientError::Malformed("invalid HTTP/2 response"))
}

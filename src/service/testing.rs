//! Test support: a raw-bytes TCP client [`App`] and a small HTTP/1.1 response parser, for tests
//! and examples that talk to a service over the in-memory wire (until paf's own HTTP client is
//! there). Not meant for production use.
//!
//! [`RawClient::connect`] adds the client to a runtime and returns a [`ClientHandle`] that shares
//! the connection's state with the app: queue bytes with [`ClientHandle::send`] (or give a
//! [`ClientHandle::set_source`] that produces them lazily), read what came back from
//! [`ClientHandle::take_input`] (or stream it to [`ClientHandle::set_sink`]), and drive the
//! runtime until a condition holds. Changes made between loop passes are picked up in the next
//! pass.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use net::{ConnId, ConnectError, ListenerId};

use crate::pipe::{self, Codec, EofPolicy, Pipe, Pool, Shutdown};
use crate::runtime::{App, Cx, LocalWaker, Runtime};
use crate::tls::{ClientConfig, ClientSession, ServerName};

/// Bytes the pipe buffers per stage.
const CHUNK: usize = 16 * 1024;
/// Unsent bytes asked from a source at a time.
const REFILL: usize = 64 * 1024;

type Source = Box<dyn FnMut(&mut Vec<u8>) -> bool>;
type Sink = Box<dyn FnMut(&[u8])>;

/// The client's side of the bytes: what the pipe feeds and drains.
#[derive(Default)]
struct Bytes {
    out: Vec<u8>,
    sent: usize,
    source: Option<Source>,
    input: Vec<u8>,
    sink: Option<Sink>,
    received: u64,
    eof: bool,
    /// Stop reading while `input` holds this much (client-side backpressure).
    max_input: Option<usize>,
}

impl Bytes {
    /// Refills `out` from the source once everything queued was sent.
    fn refill(&mut self) {
        if self.sent < self.out.len() {
            return;
        }
        self.out.clear();
        self.sent = 0;
        if let Some(src) = self.source.as_mut() {
            while self.out.len() < REFILL {
                if !src(&mut self.out) {
                    self.source = None;
                    break;
                }
            }
        }
    }

    fn all_sent(&self) -> bool {
        self.sent == self.out.len() && self.source.is_none()
    }
}

impl Codec for Bytes {
    fn wants_read(&self) -> bool {
        !self.eof && self.max_input.is_none_or(|m| self.input.len() < m)
    }

    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> usize {
        self.received += data.len() as u64;
        match self.sink.as_mut() {
            Some(sink) => sink(data),
            None => self.input.extend_from_slice(data),
        }
        data.len()
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    fn poll_transmit(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn handle_transmitted(&mut self, _now: Instant, n: usize) {
        self.sent += n;
    }
}

struct State {
    pipe: Option<Pipe<ClientSession>>,
    bytes: Bytes,
    pool: Pool,
    connected: bool,
    reset: bool,
    close: bool,
    /// Half-close asked ([`ClientHandle::shutdown_write`]), and done.
    half: bool,
    half_done: bool,
    done: bool,
    /// Wakes the app when the caller changed something: it pumps in the loop's next step.
    waker: Option<LocalWaker>,
}

impl State {
    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

/// The app half of a raw client; see the [module docs](self).
pub struct RawClient(Rc<RefCell<State>>);

/// The caller's half of a raw client.
#[derive(Clone)]
pub struct ClientHandle(Rc<RefCell<State>>);

impl RawClient {
    /// Connects to `remote` from `rt`'s stack.
    ///
    /// # Errors
    /// The stack cannot start the connection.
    pub fn connect(rt: &mut Runtime, remote: SocketAddr) -> Result<ClientHandle, ConnectError> {
        Self::start(rt, remote, None)
    }

    /// Connects to `remote` and speaks TLS to it as `server_name`: what is sent and received
    /// through the handle is plaintext.
    ///
    /// # Errors
    /// The stack cannot start the connection; a TLS configuration error is reported as
    /// [`ConnectError::BadAddress`].
    pub fn connect_tls(
        rt: &mut Runtime,
        remote: SocketAddr,
        config: &ClientConfig,
        server_name: ServerName<'static>,
    ) -> Result<ClientHandle, ConnectError> {
        let session = ClientSession::new(config, server_name, rt.pass_time().now())
            .map_err(|_| ConnectError::BadAddress)?;
        Self::start(rt, remote, Some(session))
    }

    fn start(
        rt: &mut Runtime,
        remote: SocketAddr,
        tls: Option<ClientSession>,
    ) -> Result<ClientHandle, ConnectError> {
        let state = Rc::new(RefCell::new(State {
            pipe: None,
            bytes: Bytes::default(),
            pool: Pool::new(CHUNK),
            connected: false,
            reset: false,
            close: false,
            half: false,
            half_done: false,
            done: false,
            waker: None,
        }));
        rt.add(RawClient(state.clone()), |app, cx| {
            let mut st = app.0.borrow_mut();
            let id = cx.connect(remote)?;
            st.pipe = Some(Pipe::new(id, tls.map(|s| (s, ()))));
            st.waker = Some(cx.local_waker());
            Ok(())
        })?;
        Ok(ClientHandle(state))
    }

    fn pump(&mut self, cx: &mut Cx<'_>) {
        let mut guard = self.0.borrow_mut();
        let st = &mut *guard;
        let Some(pipe) = st.pipe.as_mut() else { return };
        let id = pipe.id();
        if !st.connected {
            let r = cx.readiness(id);
            if r.reset || r.closed {
                st.reset = true;
            } else if r.established {
                st.connected = true;
            }
        }
        pipe.begin();
        while st.connected && !st.reset {
            st.bytes.refill();
            let moved = pipe.write(cx, &mut st.bytes).and_then(|w| {
                Ok(w | pipe.read(cx, &mut st.bytes, &mut st.pool, EofPolicy::Feed)?)
            });
            match moved {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => st.reset = true,
            }
            if pipe.tls_failed() {
                st.reset = true;
            }
        }
        if st.half && !st.half_done && !st.reset && st.bytes.all_sent() {
            match pipe.shutdown_write(cx) {
                Ok(done) => st.half_done = done,
                Err(_) => st.reset = true,
            }
        }
        pipe.end(&mut st.pool);
        let ending = (st.close || st.bytes.eof) && st.bytes.all_sent();
        let next = if st.reset {
            pipe::Next::Abort
        } else if ending {
            let how = Shutdown {
                notify: false,
                write_timeout: Duration::from_secs(3600),
                linger: None,
            };
            pipe.shutdown(cx, how)
        } else {
            pipe::Next::Keep
        };
        match next {
            pipe::Next::Keep => return,
            pipe::Next::Close => cx.close(id),
            pipe::Next::Abort | pipe::Next::Expired => cx.abort(id),
        }
        st.done = true;
        st.pipe = None;
    }
}

impl App for RawClient {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, conn: ConnId, _p: SocketAddr) {
        cx.abort(conn);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, _conn: ConnId) {
        self.pump(cx);
    }

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        self.pump(cx);
    }

    fn is_finished(&self) -> bool {
        self.0.borrow().done
    }
}

impl ClientHandle {
    /// Queues bytes to send.
    pub fn send(&self, bytes: &[u8]) {
        let mut st = self.0.borrow_mut();
        st.bytes.out.extend_from_slice(bytes);
        st.wake();
    }

    /// Sends what `source` appends each time it is called, until it returns false.
    pub fn set_source(&self, source: impl FnMut(&mut Vec<u8>) -> bool + 'static) {
        let mut st = self.0.borrow_mut();
        st.bytes.source = Some(Box::new(source));
        st.wake();
    }

    /// Hands received bytes to `sink` instead of buffering them.
    pub fn set_sink(&self, sink: impl FnMut(&[u8]) + 'static) {
        self.0.borrow_mut().bytes.sink = Some(Box::new(sink));
    }

    /// Stops reading while this many received bytes are buffered (`None`: no limit).
    pub fn set_max_input(&self, max: Option<usize>) {
        let mut st = self.0.borrow_mut();
        st.bytes.max_input = max;
        st.wake();
    }

    /// Takes the bytes received so far (without a sink).
    pub fn take_input(&self) -> Vec<u8> {
        let mut st = self.0.borrow_mut();
        if st.bytes.max_input.is_some() {
            st.wake();
        }
        std::mem::take(&mut st.bytes.input)
    }

    /// Bytes received so far, sink or not.
    pub fn received(&self) -> u64 {
        self.0.borrow().bytes.received
    }

    /// Closes the connection once everything queued was sent.
    pub fn close(&self) {
        let mut st = self.0.borrow_mut();
        st.close = true;
        st.wake();
    }

    /// Half-closes the connection once everything queued was sent (TLS `close_notify`, then
    /// FIN) and goes on reading until the server closes its side.
    pub fn shutdown_write(&self) {
        let mut st = self.0.borrow_mut();
        st.half = true;
        st.wake();
    }

    /// The connection is established.
    pub fn is_connected(&self) -> bool {
        self.0.borrow().connected
    }

    /// The server closed its side.
    pub fn is_eof(&self) -> bool {
        self.0.borrow().bytes.eof
    }

    /// The connection was reset or refused.
    pub fn is_reset(&self) -> bool {
        self.0.borrow().reset
    }

    /// The connection is over (closed by either side or reset).
    pub fn is_done(&self) -> bool {
        self.0.borrow().done
    }
}

/// One parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl ParsedResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one response from the start of `buf` (`head_only`: a response to HEAD). Returns it and
/// the bytes it took, or `None` when `buf` holds no complete response yet. Close-delimited bodies
/// are not supported.
///
/// # Panics
/// On a malformed response (this is test support).
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<(ParsedResponse, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf).expect("well-formed response head") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let status = r.code.expect("status");
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut resp = ParsedResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let bodiless = head_only || status == 204 || status == 304 || status < 200;
    if bodiless {
        return Some((resp, head_len));
    }
    let rest = &buf[head_len..];
    if resp.header("transfer-encoding") == Some("chunked") {
        let (body, n) = dechunk(rest)?;
        resp.body = body;
        return Some((resp, head_len + n));
    }
    let len: usize = resp
        .header("content-length")
        .map_or(0, |v| v.parse().expect("numeric content-length"));
    if rest.len() < len {
        return None;
    }
    resp.body = rest[..len].to_vec();
    Some((resp, head_len + len))
}

/// Decodes a chunked body (no trailers); `None` when incomplete.
fn dechunk(mut buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = buf.len();
    let mut body = Vec::new();
    loop {
        let line = buf.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&buf[..line]).expect("ascii chunk size"),
            16,
        )
        .expect("hex chunk size");
        buf = &buf[line + 2..];
        if size == 0 {
            if buf.len() < 2 {
                return None;
            }
            assert_eq!(&buf[..2], b"\r\n", "no trailers expected");
            return Some((body, total - buf.len() + 2));
        }
        if buf.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

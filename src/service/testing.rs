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
use std::time::Instant;

use net::{ConnId, ConnectError, ListenerId, RecvError};

use crate::runtime::{App, Cx, LocalWaker, Runtime};
use crate::tls::{ClientConfig, ClientSession, PlainRead, ServerName};

/// Bytes read per `recv`.
const CHUNK: usize = 16 * 1024;
/// Unsent bytes asked from a source at a time.
const REFILL: usize = 64 * 1024;

type Source = Box<dyn FnMut(&mut Vec<u8>) -> bool>;
type Sink = Box<dyn FnMut(&[u8])>;

#[derive(Default)]
struct State {
    conn: Option<ConnId>,
    out: Vec<u8>,
    sent: usize,
    source: Option<Source>,
    input: Vec<u8>,
    sink: Option<Sink>,
    received: u64,
    connected: bool,
    eof: bool,
    reset: bool,
    close: bool,
    done: bool,
    /// Stop reading while `input` holds this much (client-side backpressure).
    max_input: Option<usize>,
    tls: Option<ClientTls>,
    /// Wakes the app when the caller changed something: it pumps in the loop's next step.
    waker: Option<LocalWaker>,
}

/// A client TLS session and its unsent ciphertext.
struct ClientTls {
    session: ClientSession,
    out: Vec<u8>,
    pos: usize,
}

impl State {
    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }

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

    /// Hands queued plaintext to the socket or the TLS session; returns how much was taken.
    fn send_plain(&mut self, cx: &mut Cx<'_>, id: ConnId) -> usize {
        let data = &self.out[self.sent..];
        if data.is_empty() {
            return 0;
        }
        let n = match self.tls.as_mut() {
            Some(t) => t.session.write_plaintext(data),
            None => match cx.net().send(id, data) {
                Ok(n) => n,
                Err(_) => {
                    self.reset = true;
                    0
                }
            },
        };
        self.sent += n;
        n
    }

    /// Sends pending ciphertext; returns whether any went.
    fn flush_tls(&mut self, cx: &mut Cx<'_>, id: ConnId) -> bool {
        let Some(t) = self.tls.as_mut() else {
            return false;
        };
        let mut moved = false;
        loop {
            if t.pos == t.out.len() {
                t.out.clear();
                t.pos = 0;
                if t.session.poll_transmit(&mut t.out) == 0 {
                    return moved;
                }
            }
            match cx.net().send(id, &t.out[t.pos..]) {
                Ok(0) => return moved,
                Ok(n) => {
                    t.pos += n;
                    moved = true;
                }
                Err(_) => {
                    self.reset = true;
                    return moved;
                }
            }
        }
    }

    /// Takes received bytes (ciphertext with TLS), delivering plaintext.
    fn receive(&mut self, now: Instant, mut data: &[u8]) {
        let Some(t) = self.tls.as_mut() else {
            self.deliver_plain(data);
            return;
        };
        let mut plain = [0u8; CHUNK];
        loop {
            match t.session.handle_input(now, data) {
                Ok(n) => data = &data[n..],
                Err(_) => {
                    self.reset = true;
                    return;
                }
            }
            loop {
                match t.session.read_plaintext(&mut plain) {
                    PlainRead::Data(n) => {
                        self.received += n as u64;
                        match self.sink.as_mut() {
                            Some(sink) => sink(&plain[..n]),
                            None => self.input.extend_from_slice(&plain[..n]),
                        }
                    }
                    PlainRead::Closed | PlainRead::Truncated => {
                        self.eof = true;
                        break;
                    }
                    PlainRead::Pending => break,
                }
            }
            if data.is_empty() || self.eof {
                return;
            }
        }
    }

    fn deliver_plain(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        match self.sink.as_mut() {
            Some(sink) => sink(data),
            None => self.input.extend_from_slice(data),
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
        let tls = ClientTls {
            session,
            out: Vec::new(),
            pos: 0,
        };
        Self::start(rt, remote, Some(tls))
    }

    fn start(
        rt: &mut Runtime,
        remote: SocketAddr,
        tls: Option<ClientTls>,
    ) -> Result<ClientHandle, ConnectError> {
        let state = Rc::new(RefCell::new(State {
            tls,
            ..State::default()
        }));
        rt.add(RawClient(state.clone()), |app, cx| {
            let mut st = app.0.borrow_mut();
            st.conn = Some(cx.connect(remote)?);
            st.waker = Some(cx.local_waker());
            Ok(())
        })?;
        Ok(ClientHandle(state))
    }

    fn pump(&mut self, cx: &mut Cx<'_>) {
        let mut st = self.0.borrow_mut();
        let Some(id) = st.conn else { return };
        if !st.connected {
            let r = cx.net().readiness(id);
            if r.reset || r.closed {
                st.reset = true;
            } else if r.established {
                st.connected = true;
            }
        }
        let mut buf = [0u8; CHUNK];
        while st.connected && !st.reset {
            let mut moved = false;
            // Send.
            loop {
                st.refill();
                let n = st.send_plain(cx, id);
                let flushed = st.flush_tls(cx, id);
                moved |= n > 0 || flushed;
                if n == 0 && !flushed {
                    break;
                }
            }
            // Receive.
            while !st.eof && !st.reset && st.max_input.is_none_or(|m| st.input.len() < m) {
                match cx.net().recv(id, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        moved = true;
                        st.receive(cx.now, &buf[..n]);
                    }
                    Err(RecvError::Finished) => {
                        match st.tls.as_mut() {
                            Some(t) => t.session.handle_eof(),
                            None => st.eof = true,
                        }
                        st.receive(cx.now, &[]);
                    }
                    Err(_) => st.reset = true,
                }
            }
            if !moved {
                break;
            }
        }
        let flushed = st.sent == st.out.len()
            && st.source.is_none()
            && st.tls.as_ref().is_none_or(|t| t.pos == t.out.len());
        if st.reset {
            st.done = true;
            st.conn = None;
            cx.abort(id);
        } else if (st.close || st.eof) && flushed {
            st.done = true;
            st.conn = None;
            cx.close(id);
        }
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
        st.out.extend_from_slice(bytes);
        st.wake();
    }

    /// Sends what `source` appends each time it is called, until it returns false.
    pub fn set_source(&self, source: impl FnMut(&mut Vec<u8>) -> bool + 'static) {
        let mut st = self.0.borrow_mut();
        st.source = Some(Box::new(source));
        st.wake();
    }

    /// Hands received bytes to `sink` instead of buffering them.
    pub fn set_sink(&self, sink: impl FnMut(&[u8]) + 'static) {
        self.0.borrow_mut().sink = Some(Box::new(sink));
    }

    /// Stops reading while this many received bytes are buffered (`None`: no limit).
    pub fn set_max_input(&self, max: Option<usize>) {
        let mut st = self.0.borrow_mut();
        st.max_input = max;
        st.wake();
    }

    /// Takes the bytes received so far (without a sink).
    pub fn take_input(&self) -> Vec<u8> {
        let mut st = self.0.borrow_mut();
        if st.max_input.is_some() {
            st.wake();
        }
        std::mem::take(&mut st.input)
    }

    /// Bytes received so far, sink or not.
    pub fn received(&self) -> u64 {
        self.0.borrow().received
    }

    /// Closes the connection once everything queued was sent.
    pub fn close(&self) {
        let mut st = self.0.borrow_mut();
        st.close = true;
        st.wake();
    }

    /// The connection is established.
    pub fn is_connected(&self) -> bool {
        self.0.borrow().connected
    }

    /// The server closed its side.
    pub fn is_eof(&self) -> bool {
        self.0.borrow().eof
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

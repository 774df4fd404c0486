//! `ClientConn` tests: a scripted server on a fake clock, and a client/server pair in memory.
//!
//! [`Client`] plays the socket owner: it keeps unconsumed input like a real caller, reads every
//! body as it streams, and records a transcript (events without the edge-triggered
//! `BodyReadable` hints; `body N [..]` once a body was read to its end). [`split_runs`] checks
//! that a transcript does not depend on how the input is split.

mod flow;
mod framing;
mod pair;
mod upgrade;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

pub(super) struct Client {
    pub conn: ClientConn,
    pub now: Instant,
    pub pending: Vec<u8>,
    pub wire: Vec<u8>,
    pub log: Vec<String>,
    /// Read bodies automatically; when false the test calls `read_body` itself.
    pub auto_read: bool,
    /// Transmit at most this many bytes per step (the socket's send space).
    pub send_window: usize,
    pub bodies: HashMap<RequestId, Vec<u8>>,
    /// Bodies read to their end (a later `BodyReadable` reads `End` again; logged once).
    pub ended: HashSet<RequestId>,
}

impl Client {
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Client {
            conn: ClientConn::new(Arc::new(config), now),
            now,
            pending: Vec::new(),
            wire: Vec::new(),
            log: Vec::new(),
            auto_read: true,
            send_window: usize::MAX,
            bodies: HashMap::new(),
            ended: HashSet::new(),
        }
    }

    /// Sends `method uri` with `headers` and `body`, then steps.
    pub fn send(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<RequestId, UsageError> {
        let r = self
            .conn
            .send_request(self.now, &request(method, uri, headers), body);
        self.step();
        r
    }

    /// `GET /` to host `a`.
    pub fn get(&mut self) -> RequestId {
        self.send("GET", "http://a/", &[], RequestBody::Empty)
            .expect("send")
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.step();
    }

    pub fn eof(&mut self) {
        self.conn.handle_eof(self.now);
        self.step();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
            self.conn.handle_timeout(self.now);
        }
        self.step();
    }

    /// Moves input, events and output until nothing changes.
    pub fn step(&mut self) {
        loop {
            let n = self.conn.handle_input(self.now, &self.pending);
            self.pending.drain(..n);
            let mut progress = n > 0;
            while let Some(ev) = self.conn.poll_event() {
                progress = true;
                self.on_event(ev);
            }
            let out = self.conn.poll_transmit();
            let t = out.len().min(self.send_window);
            if t > 0 {
                self.wire.extend_from_slice(&out[..t]);
                self.conn.handle_transmitted(self.now, t);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    fn on_event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Continue { id } => self.log.push(format!("continue {}", id.0)),
            ClientEvent::Response { id, head } => {
                self.log.push(format!(
                    "response {} {} {:?}",
                    id.0,
                    head.status().as_u16(),
                    head.version()
                ));
                self.bodies.insert(id, Vec::new());
                if self.auto_read {
                    self.read_all(id);
                }
            }
            ClientEvent::BodyReadable { id } => {
                if self.auto_read {
                    self.read_all(id);
                }
            }
            ClientEvent::Writable { id } => self.log.push(format!("writable {}", id.0)),
            ClientEvent::Aborted { id } => self.log.push(format!("aborted {}", id.0)),
            ClientEvent::Error { id, error } => {
                self.log
                    .push(format!("error {:?} {error}", id.map(|i| i.0)));
            }
            ClientEvent::Closed => self.log.push("closed".to_owned()),
        }
    }

    /// Reads what is available of the body of `id`; logs it once it ended.
    pub fn read_all(&mut self, id: RequestId) -> bool {
        if self.ended.contains(&id) {
            return true;
        }
        let mut buf = [0u8; 7]; // small on purpose: many calls per body
        loop {
            match self.conn.read_body(self.now, id, &mut buf) {
                BodyRead::Data(n) => self
                    .bodies
                    .entry(id)
                    .or_default()
                    .extend_from_slice(&buf[..n]),
                BodyRead::End => {
                    self.ended.insert(id);
                    let body = self.bodies.remove(&id).unwrap_or_default();
                    self.log.push(format!(
                        "body {} [{}]",
                        id.0,
                        String::from_utf8_lossy(&body)
                    ));
                    return true;
                }
                BodyRead::Pending => return false,
            }
        }
    }

    pub fn wire(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }
}

/// A request head; `headers` are added in order.
pub(super) fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).expect("valid request")
}

pub(super) fn id(n: u64) -> RequestId {
    RequestId(n)
}

/// Sends one request per method in `methods` (to `http://a/`), feeds `pieces`, records whether
/// the connection was reusable, then EOF. Returns the log (plus `reusable` before the EOF).
pub(super) fn run(config: &Config, methods: &[&str], pieces: &[&[u8]]) -> Vec<String> {
    let mut c = Client::new(config.clone());
    for m in methods {
        c.send(m, "http://a/", &[], RequestBody::Empty)
            .expect("send");
    }
    for piece in pieces {
        c.feed(piece);
    }
    if c.conn.is_reusable() {
        c.log.push("reusable".to_owned());
    }
    c.eof();
    c.log
}

/// Runs `input` whole, split at every byte boundary, and one byte at a time; all transcripts
/// must agree. Returns the transcript.
pub(super) fn split_runs(config: &Config, methods: &[&str], input: &[u8]) -> Vec<String> {
    let whole = run(config, methods, &[input]);
    for k in 1..input.len() {
        let got = run(config, methods, &[&input[..k], &input[k..]]);
        assert_eq!(
            got,
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(config, methods, &bytes), whole, "byte at a time");
    whole
}

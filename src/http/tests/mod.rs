//! `ServerConn` tests: a scripted peer and handler on a fake clock.
//!
//! [`Peer`] plays both the socket owner and a simple handler: it keeps unconsumed input like a
//! real caller, answers requests by a [`Handler`] policy once their body is read, answers errors
//! with their suggested status, and records a transcript (events without the edge-triggered
//! `BodyReadable` hints, plus every transmitted byte). [`split_runs`] checks that a transcript does
//! not depend on how the input is split.

mod errors;
mod flow;
mod in_place;
mod requests;
mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

pub(super) const DATE: &str = "date: Thu, 01 Jan 1970 00:00:00 GMT\r\nserver: paf\r\n";

/// How the scripted handler answers a request whose body was fully read.
pub(super) type Handler = fn(&http::Request<()>, &[u8]) -> (http::Response<()>, Vec<u8>);

/// 200 with `METHOD target [body]`.
pub(super) fn echo(req: &http::Request<()>, body: &[u8]) -> (http::Response<()>, Vec<u8>) {
    let text = format!(
        "{} {} [{}]",
        req.method(),
        req.uri(),
        String::from_utf8_lossy(body)
    );
    (http::Response::new(()), text.into_bytes())
}

/// The bytes of a 200 response from [`echo`], with `extra` headers after the framing.
pub(super) fn echoed(method: &str, target: &str, body: &str, extra: &str) -> String {
    let text = format!("{method} {target} [{body}]");
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}{DATE}\r\n{text}",
        text.len()
    )
}

pub(super) struct Peer {
    pub conn: ServerConn,
    pub now: Instant,
    pub pending: Vec<u8>,
    pub wire: Vec<u8>,
    pub log: Vec<String>,
    /// Read the body and answer automatically; when false the test drives the exchange.
    pub auto: bool,
    pub handler: Handler,
    /// Transmit at most this many bytes per step (the socket's send space).
    pub send_window: usize,
    reqs: HashMap<ExchangeId, (http::Request<()>, Vec<u8>)>,
}

impl Peer {
    pub fn new(config: Config) -> Self {
        Self::with(config, echo)
    }

    pub fn with(config: Config, handler: Handler) -> Self {
        let now = Instant::now();
        let mut conn = ServerConn::new(Arc::new(config), now);
        conn.set_date(HttpDate::from_unix_secs(0));
        Peer {
            conn,
            now,
            pending: Vec::new(),
            wire: Vec::new(),
            log: Vec::new(),
            auto: true,
            handler,
            send_window: usize::MAX,
            reqs: HashMap::new(),
        }
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

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Request { id, head } => {
                self.log.push(format!(
                    "request {} {} {} {:?}",
                    id.0,
                    head.method(),
                    head.uri(),
                    head.version()
                ));
                self.reqs.insert(id, (head, Vec::new()));
                if self.auto {
                    self.read_and_answer(id);
                }
            }
            Event::BodyReadable { id } => {
                if self.auto {
                    self.read_and_answer(id);
                }
            }
            Event::Error { id, error } => {
                self.log.push(format!(
                    "error {:?} {}",
                    id.map(|i| i.0),
                    error.status().as_u16()
                ));
                if self.auto {
                    let head = http::Response::builder()
                        .status(error.status())
                        .body(())
                        .unwrap();
                    self.conn.respond_error(self.now, head, b"bad");
                }
            }
            Event::Writable { id } => self.log.push(format!("writable {}", id.0)),
            Event::Closed => self.log.push("closed".to_owned()),
            Event::Switched => self.log.push("switched".to_owned()),
            Event::Reset { id } => self.log.push(format!("reset {}", id.0)),
        }
    }

    /// Reads what is available of the body of `id`; answers once it ended.
    pub fn read_and_answer(&mut self, id: ExchangeId) {
        if self.read_all(id) {
            let (req, body) = self.reqs.remove(&id).expect("known request");
            self.log.push(format!(
                "body {} [{}]",
                id.0,
                String::from_utf8_lossy(&body)
            ));
            let (head, bytes) = (self.handler)(&req, &body);
            self.conn
                .respond(self.now, id, head, ResponseBody::Complete(&bytes))
                .expect("respond");
        }
    }

    /// Reads the available body bytes of `id`; true at the end of the body.
    pub fn read_all(&mut self, id: ExchangeId) -> bool {
        let mut buf = [0u8; 7]; // small on purpose: many calls per body
        loop {
            match self.conn.read_body(self.now, id, &mut buf) {
                BodyRead::Data(n) => self
                    .reqs
                    .get_mut(&id)
                    .unwrap()
                    .1
                    .extend_from_slice(&buf[..n]),
                BodyRead::End => return true,
                BodyRead::Pending => return false,
            }
        }
    }

    pub fn wire(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }

    pub fn transcript(&self) -> (Vec<String>, String) {
        (self.log.clone(), self.wire())
    }
}

pub(super) fn id(n: u64) -> ExchangeId {
    ExchangeId(n)
}

/// Runs `input` in the given pieces, then EOF; returns the transcript.
pub(super) fn run(config: &Config, handler: Handler, pieces: &[&[u8]]) -> (Vec<String>, String) {
    let mut p = Peer::with(config.clone(), handler);
    for piece in pieces {
        p.feed(piece);
    }
    p.eof();
    p.transcript()
}

/// Runs `input` whole, split at every byte boundary, and one byte at a time; all transcripts
/// must agree. Returns the transcript.
pub(super) fn split_runs(config: &Config, handler: Handler, input: &[u8]) -> (Vec<String>, String) {
    let whole = run(config, handler, &[input]);
    for k in 1..input.len() {
        let got = run(config, handler, &[&input[..k], &input[k..]]);
        assert_eq!(
            got,
            whole,
            "split at {k} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(config, handler, &bytes), whole, "byte at a time");
    whole
}

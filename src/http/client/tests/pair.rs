//! Our client against our server, purely in memory: bytes are moved between a [`ClientConn`]
//! and a [`ServerConn`](crate::http::ServerConn) through bounded "socket" buffers, so both sides'
//! backpressure is exercised.
//!
//! The server echoes: `GET /big/N` streams N pattern bytes chunked; anything else is answered
//! with `METHOD target` for bodiless requests and with the request body itself otherwise.

use super::*;
use crate::http::{self as h, ExchangeId, ServerConn};

/// Bytes in flight per direction (a socket's buffers).
const WINDOW: usize = 256 * 1024;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

struct Server {
    conn: ServerConn,
    reqs: HashMap<ExchangeId, (http::Request<()>, Vec<u8>)>,
    /// Streamed downloads: bytes left to write from `pattern` offset.
    streams: HashMap<ExchangeId, (usize, usize)>,
}

struct Pair {
    now: Instant,
    client: ClientConn,
    server: Server,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Response bodies by request; `done` once read to `End`.
    bodies: HashMap<RequestId, Vec<u8>>,
    statuses: HashMap<RequestId, u16>,
    done: Vec<RequestId>,
    /// Client-side events other than bodies, for assertions.
    log: Vec<String>,
    /// A streamed upload: request, bytes left to write from `pattern` offset.
    upload: Option<(RequestId, usize, usize)>,
    server_eof: bool,
}

impl Pair {
    fn new(server_config: h::Config) -> Self {
        let now = Instant::now();
        Pair {
            now,
            client: ClientConn::new(Arc::new(Config::default()), now),
            server: Server {
                conn: ServerConn::new(Arc::new(server_config), now),
                reqs: HashMap::new(),
                streams: HashMap::new(),
            },
            to_server: Vec::new(),
            to_client: Vec::new(),
            bodies: HashMap::new(),
            statuses: HashMap::new(),
            done: Vec::new(),
            log: Vec::new(),
            upload: None,
            server_eof: false,
        }
    }

    fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> RequestId {
        let uri = format!("http://paf.test{target}");
        self.client
            .send_request(self.now, &request(method, &uri, headers), body)
            .expect("send")
    }

    /// Moves bytes and events both ways until nothing changes.
    fn run(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progress = false;
            // Client output → server input.
            if let Some((id, off, left)) = self.upload {
                let end = left.min(16 * 1024);
                let data: Vec<u8> = (off..off + end).map(pattern).collect();
                let n = if left == 0 {
                    0
                } else {
                    self.client.write_body(self.now, id, &data).unwrap()
                };
                if n > 0 {
                    progress = true;
                    self.upload = Some((id, off + n, left - n));
                } else if left == 0 {
                    self.client.finish_body(self.now, id).unwrap();
                    self.upload = None;
                    progress = true;
                }
            }
            progress |= shovel(
                self.now,
                &mut self.to_server,
                self.client.poll_transmit().len(),
                |now, n, dst| {
                    dst.extend_from_slice(&self.client.poll_transmit()[..n]);
                    self.client.handle_transmitted(now, n);
                },
            );
            let n = self.server.conn.handle_input(self.now, &self.to_server);
            self.to_server.drain(..n);
            progress |= n > 0;
            progress |= self.server.step(self.now, &mut buf);
            // Server output → client input.
            if !self.server_eof {
                progress |= shovel(
                    self.now,
                    &mut self.to_client,
                    self.server.conn.poll_transmit().len(),
                    |now, n, dst| {
                        dst.extend_from_slice(&self.server.conn.poll_transmit()[..n]);
                        self.server.conn.handle_transmitted(now, n);
                    },
                );
            }
            let n = self.client.handle_input(self.now, &self.to_client);
            self.to_client.drain(..n);
            progress |= n > 0;
            while let Some(ev) = self.client.poll_event() {
                progress = true;
                match ev {
                    ClientEvent::Response { id, head } => {
                        self.statuses.insert(id, head.status().as_u16());
                        self.read(id, &mut buf);
                    }
                    ClientEvent::BodyReadable { id } => self.read(id, &mut buf),
                    ClientEvent::Continue { id } => self.log.push(format!("continue {}", id.0)),
                    ClientEvent::Writable { .. } => {}
                    ClientEvent::Aborted { id } => self.log.push(format!("aborted {}", id.0)),
                    ClientEvent::Error { id, error } => self
                        .log
                        .push(format!("error {:?} {error}", id.map(|i| i.0))),
                    ClientEvent::Closed => self.log.push("closed".to_owned()),
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn read(&mut self, id: RequestId, buf: &mut [u8]) {
        loop {
            match self.client.read_body(self.now, id, buf) {
                BodyRead::Data(n) => self
                    .bodies
                    .entry(id)
                    .or_default()
                    .extend_from_slice(&buf[..n]),
                BodyRead::End => {
                    self.done.push(id);
                    return;
                }
                BodyRead::Pending => return,
            }
        }
    }

    fn body(&self, id: RequestId) -> &[u8] {
        assert!(self.done.contains(&id), "response {} not complete", id.0);
        self.bodies.get(&id).map_or(&[], Vec::as_slice)
    }
}

/// Moves up to `available` bytes into `dst`, keeping `dst` under [`WINDOW`].
fn shovel(
    now: Instant,
    dst: &mut Vec<u8>,
    available: usize,
    mut take: impl FnMut(Instant, usize, &mut Vec<u8>),
) -> bool {
    let n = available.min(WINDOW.saturating_sub(dst.len()));
    if n > 0 {
        take(now, n, dst);
    }
    n > 0
}

impl Server {
    /// Handles server events and streamed downloads; true on progress.
    fn step(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        let mut progress = false;
        while let Some(ev) = self.conn.poll_event() {
            progress = true;
            match ev {
                h::Event::Request { id, head } => {
                    self.reqs.insert(id, (head, Vec::new()));
                    self.read_and_answer(now, id, buf);
                }
                h::Event::BodyReadable { id } => self.read_and_answer(now, id, buf),
                h::Event::Error { error, .. } => panic!("server error {error}"),
                h::Event::Reset { id } => panic!("exchange {id:?} reset"),
                h::Event::Writable { .. } | h::Event::Closed | h::Event::Switched => {}
            }
        }
        let ids: Vec<ExchangeId> = self.streams.keys().copied().collect();
        for id in ids {
            let (off, left) = self.streams[&id];
            if left == 0 {
                self.conn.finish_body(now, id).unwrap();
                self.streams.remove(&id);
                progress = true;
                continue;
            }
            let data: Vec<u8> = (off..off + left.min(32 * 1024)).map(pattern).collect();
            let n = self.conn.write_body(now, id, &data).unwrap();
            if n > 0 {
                progress = true;
                self.streams.insert(id, (off + n, left - n));
            }
        }
        progress
    }

    fn read_and_answer(&mut self, now: Instant, id: ExchangeId, buf: &mut [u8]) {
        loop {
            match self.conn.read_body(now, id, buf) {
                h::BodyRead::Data(n) => self
                    .reqs
                    .get_mut(&id)
                    .unwrap()
                    .1
                    .extend_from_slice(&buf[..n]),
                h::BodyRead::End => break,
                h::BodyRead::Pending => return,
            }
        }
        let (req, body) = self.reqs.remove(&id).expect("known request");
        let path = req.uri().path().to_owned();
        if let Some(n) = path.strip_prefix("/big/") {
            let n: usize = n.parse().unwrap();
            self.conn
                .respond(now, id, http::Response::new(()), h::ResponseBody::Chunked)
                .unwrap();
            self.streams.insert(id, (0, n));
        } else if body.is_empty() {
            let text = format!("{} {}", req.method(), path);
            self.conn
                .respond(
                    now,
                    id,
                    http::Response::new(()),
                    h::ResponseBody::Complete(text.as_bytes()),
                )
                .unwrap();
        } else {
            self.conn
                .respond(
                    now,
                    id,
                    http::Response::new(()),
                    h::ResponseBody::Complete(&body),
                )
                .unwrap();
        }
    }
}

#[test]
fn thousand_sequential_requests_on_one_connection() {
    let mut p = Pair::new(h::Config::default());
    for i in 0..1000 {
        assert!(p.client.is_reusable() || i == 0);
        let id = p.send("GET", &format!("/r/{i}"), &[], RequestBody::Empty);
        p.run();
        assert_eq!(p.body(id), format!("GET /r/{i}").as_bytes());
        assert_eq!(p.statuses[&id], 200);
    }
    assert!(p.client.is_reusable());
    assert!(p.log.is_empty(), "{:?}", p.log);
}

#[test]
fn thousand_pipelined_requests_on_one_connection() {
    let mut p = Pair::new(h::Config::default());
    let ids: Vec<RequestId> = (0..1000)
        .map(|i| {
            let method = if i % 7 == 0 { "HEAD" } else { "GET" };
            p.send(method, &format!("/p/{i}"), &[], RequestBody::Empty)
        })
        .collect();
    p.run();
    for (i, id) in ids.iter().enumerate() {
        let want = if i % 7 == 0 {
            String::new()
        } else {
            format!("GET /p/{i}")
        };
        assert_eq!(p.body(*id), want.as_bytes(), "request {i}");
    }
    assert!(p.client.is_reusable());
}

#[test]
fn four_megabytes_up_chunked_and_back() {
    const N: usize = 4 << 20;
    let mut p = Pair::new(h::Config {
        max_body_size: None,
        ..h::Config::default()
    });
    let id = p.send("POST", "/echo", &[], RequestBody::Chunked);
    p.upload = Some((id, 0, N));
    p.run();
    let body = p.body(id);
    assert_eq!(body.len(), N);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "byte-exact"
    );
    assert!(p.client.is_reusable());
}

#[test]
fn four_megabytes_down_chunked() {
    const N: usize = 4 << 20;
    let mut p = Pair::new(h::Config::default());
    let id = p.send("GET", &format!("/big/{N}"), &[], RequestBody::Empty);
    p.run();
    let body = p.body(id);
    assert_eq!(body.len(), N);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "byte-exact"
    );
    // The connection carries on.
    let id = p.send("GET", "/after", &[], RequestBody::Empty);
    p.run();
    assert_eq!(p.body(id), b"GET /after");
}

#[test]
fn expect_continue_with_our_server() {
    let mut p = Pair::new(h::Config::default());
    let id = p.send(
        "PUT",
        "/up",
        &[("Expect", "100-continue")],
        RequestBody::Length(5),
    );
    p.run();
    assert_eq!(p.log, ["continue 0"]);
    assert_eq!(p.client.write_body(p.now, id, b"hello"), Ok(5));
    p.client.finish_body(p.now, id).unwrap();
    p.run();
    assert_eq!(p.body(id), b"hello");
    assert!(p.client.is_reusable());
}

#[test]
fn server_closing_mid_response_is_reported_once() {
    let mut p = Pair::new(h::Config::default());
    let id = p.send("GET", "/big/100000", &[], RequestBody::Empty);
    let next = p.send("GET", "/next", &[], RequestBody::Empty);
    // Let a part of the response through, then the server goes away.
    p.run_until(|p| p.bodies.get(&id).is_some_and(|b| b.len() > 1000));
    p.server_eof = true;
    p.client.handle_eof(p.now);
    p.run();
    p.client.handle_eof(p.now);
    p.run();
    assert_eq!(
        p.log,
        [
            "error Some(0) connection closed mid-response",
            "aborted 1",
            "closed"
        ]
    );
    assert!(!p.done.contains(&id) && !p.done.contains(&next));
}

impl Pair {
    /// Steps in small slices until `cond` holds.
    fn run_until(&mut self, cond: impl Fn(&Pair) -> bool) {
        let mut buf = vec![0u8; 512];
        for _ in 0..10_000 {
            if cond(self) {
                return;
            }
            let out = self.client.poll_transmit().len();
            self.to_server
                .extend_from_slice(self.client.poll_transmit());
            self.client.handle_transmitted(self.now, out);
            let n = self.server.conn.handle_input(self.now, &self.to_server);
            self.to_server.drain(..n);
            self.server.step(self.now, &mut buf);
            let out = self.server.conn.poll_transmit();
            let k = out.len().min(512);
            self.to_client.extend_from_slice(&out[..k]);
            self.server.conn.handle_transmitted(self.now, k);
            let n = self.client.handle_input(self.now, &self.to_client);
            self.to_client.drain(..n);
            while let Some(ev) = self.client.poll_event() {
                if let ClientEvent::Response { id, .. } | ClientEvent::BodyReadable { id } = ev {
                    self.read(id, &mut buf);
                }
            }
        }
        panic!("condition never held");
    }
}

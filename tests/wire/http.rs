//! The HTTP service over the in-memory wire, on the virtual clock: a server runtime and a client
//! runtime, each with its own smoltcp stack on one end of the wire, stepped together on the test
//! thread by `paf::testing::Pair` (time jumps to the next thing either has to do). No root
//! needed, and no timing window: a timeout fires at its virtual instant.
//!
//! Covered: pipelining (1,000 requests in one write, answered in order), a 64 MB chunked upload
//! hashed by a streaming handler with bounded buffers, a 64 MB streamed chunked response checked
//! byte for byte, the stop switch draining an in-flight response before the handle completes
//! (and refusing new connections), and a panicking handler answered with 500 while another
//! connection is served. In `http/`: HTTPS (`https.rs`), per-client limits and the PROXY
//! protocol (`clients.rs`), bodies sent from the caller's buffer (`shared.rs`), uploads read in
//! place (`upload.rs`).

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ::http::Response;
use net::testing::{B_V4, B_V6};
use paf::http::Config;
use paf::service::builtin::{blob_byte, StreamHash};
use paf::service::{self, BodyEnd, BodyWriter, ErrorResponse, Handle, Initialized, Reqd, Switch};
use paf::testing::{parse_response, ClientHandle, Pair, ParsedResponse, RawClient};
use paf::Runtime;

mod clients;
mod https;
mod shared;
mod upload;

const MTU: usize = 9000;
/// A bound of virtual time for anything to happen.
const LONG: Duration = Duration::from_secs(120);

type MakeHandler = Box<dyn FnOnce() -> Box<dyn FnMut(SocketAddr, Reqd)>>;
type ErrorHandler =
    Box<dyn FnMut(SocketAddr, &paf::http::Error, Option<&::http::Request<()>>, ErrorResponse)>;
type MakeErrorHandler = Box<dyn FnOnce() -> ErrorHandler>;

struct Server {
    handle: Handle,
    stop: Switch,
}

impl Server {
    /// Turns the switch off and drives both loops until the service has drained.
    fn stop(self, net: &mut Net) {
        self.stop.turn_off();
        drive(net, LONG, "the service to stop", || {
            self.handle.is_finished()
        });
        assert_eq!(self.handle.result(), Some(Ok(())));
    }
}

/// Both loops on the virtual clock; derefs to the client's runtime, where the tests open their
/// connections.
struct Net {
    pair: Pair,
}

impl Deref for Net {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.pair.client
    }
}

impl DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Runtime {
        &mut self.pair.client
    }
}

/// A pair on a 9000-byte wire with 256 KiB TCP buffers.
fn pair() -> Pair {
    Pair::builder()
        .mtu(MTU)
        .seed(7)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build()
}

/// A server serving `make()`'s handler on port 80 of stack B; returns it and the pair.
fn serve(cfg: Config, make: MakeHandler) -> (Server, Net) {
    serve_with(
        cfg,
        make,
        Box::new(|| Box::new(service::default_error_handler)),
    )
}

/// [`serve`] with an error handler.
fn serve_with(cfg: Config, make: MakeHandler, make_error: MakeErrorHandler) -> (Server, Net) {
    serve_on(None, cfg, make, make_error)
}

/// [`serve_with`], over TLS when `tls` is given (`https`).
fn serve_on(
    tls: Option<paf::tls::ServerConfig>,
    cfg: Config,
    make: MakeHandler,
    make_error: MakeErrorHandler,
) -> (Server, Net) {
    let mut pair = pair();
    let stop = Switch::new();
    let svc = service::init(&mut pair.server, 80).expect("init");
    let handler = make();
    let s = Some(stop.clone());
    let Initialized(handle) = match tls {
        Some(tls) => service::https(svc, tls, cfg, s, make_error(), handler),
        None => service::http(svc, cfg, s, make_error(), handler),
    };
    (Server { handle, stop }, Net { pair })
}

fn addr(ip: impl Into<IpAddr>) -> SocketAddr {
    SocketAddr::new(ip.into(), 80)
}

/// Steps both loops until `cond` holds; panics after `timeout` of virtual time. Returns the
/// virtual time it took.
fn drive(net: &mut Net, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    net.pair.drive_until(timeout, what, |_| cond())
}

/// Reads `n` complete responses from `c` (responses to HEAD when `head`).
fn responses(rt: &mut Net, c: &ClientHandle, n: usize) -> Vec<ParsedResponse> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    drive(rt, LONG, "responses", || {
        buf.extend_from_slice(&c.take_input());
        while let Some((r, used)) = parse_response(&buf, false) {
            buf.drain(..used);
            out.push(r);
        }
        out.len() >= n || c.is_done()
    });
    assert_eq!(out.len(), n, "responses received");
    out
}

fn hello() -> MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let body = format!("hello {}", reqd.request().uri().path());
            reqd.respond_with_bytes(Response::new(()), body).unwrap();
        })
    })
}

#[test]
fn get_over_ipv4_and_ipv6() {
    let (server, mut rt) = serve(Config::default(), hello());
    for ip in [IpAddr::from(B_V4), IpAddr::from(B_V6)] {
        let c = RawClient::connect(&mut rt, addr(ip)).unwrap();
        c.send(b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n");
        let r = responses(&mut rt, &c, 1);
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].body, b"hello /x");
        assert!(r[0].header("date").is_some_and(|d| d.ends_with(" GMT")));
        c.close();
        drive(&mut rt, LONG, "close", || c.is_done());
    }
    let stats = server.handle.stats();
    assert_eq!((stats.accepted, stats.requests), (2, 2));
    server.stop(&mut rt);
}

#[test]
fn thousand_pipelined_requests_in_one_write_are_answered_in_order() {
    let (server, mut rt) = serve(Config::default(), hello());
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let mut all = Vec::new();
    for i in 0..1000 {
        all.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: b\r\n\r\n").as_bytes());
    }
    c.send(&all);
    let r = responses(&mut rt, &c, 1000);
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("hello /{i}").as_bytes(), "response {i}");
    }
    assert_eq!(server.handle.stats().requests, 1000);
    server.stop(&mut rt);
}

/// Pattern byte `i` of the bodies the tests stream.
fn byte(i: u64) -> u8 {
    blob_byte(i)
}

/// A chunked-body source of `total` pattern bytes in `chunk`-byte chunks, hashed on the way.
fn chunked_source(
    total: u64,
    chunk: usize,
    hash: Rc<Cell<StreamHash>>,
) -> impl FnMut(&mut Vec<u8>) -> bool {
    let mut at = 0u64;
    let mut ended = false;
    move |out| {
        if ended {
            return false;
        }
        if at == total {
            out.extend_from_slice(b"0\r\n\r\n");
            ended = true;
            return true;
        }
        let n = (total - at).min(chunk as u64) as usize;
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        let data = out.len();
        out.extend((0..n as u64).map(|k| byte(at + k)));
        let mut h = hash.get();
        h.update(&out[data..]);
        hash.set(h);
        out.extend_from_slice(b"\r\n");
        at += n as u64;
        true
    }
}

#[test]
fn chunked_upload_of_64_mb_is_streamed_to_the_handler_with_bounded_buffers() {
    // 64 MB through two stacks, for seconds of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    const TOTAL: u64 = 64 << 20;
    let cfg = Config {
        max_body_size: None,
        body_buffer_size: 8 * 1024,
        read_buffer_size: 16 * 1024,
        ..Config::default()
    };
    let (server, mut rt) = serve(
        cfg.clone(),
        Box::new(|| {
            Box::new(|_peer, reqd: Reqd| {
                fn pump(reqd: Reqd, n: u64, h: StreamHash, biggest: usize) {
                    let (r1, r2) = (reqd.clone(), reqd.clone());
                    reqd.schedule_read(
                        move |data| {
                            let biggest = biggest.max(data.len());
                            let mut h = h;
                            h.update(data);
                            pump(r1, n + data.len() as u64, h, biggest);
                        },
                        move |end| {
                            assert_eq!(end, BodyEnd::Complete);
                            let body = format!("{n} {:016x} {biggest}", h.finish());
                            r2.respond_with_bytes(Response::new(()), body).unwrap();
                        },
                    );
                }
                pump(reqd, 0, StreamHash::new(), 0);
            })
        }),
    );
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(b"POST /upload HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n");
    let sent_hash = Rc::new(Cell::new(StreamHash::new()));
    c.set_source(chunked_source(TOTAL, 13_000, sent_hash.clone()));
    let r = responses(&mut rt, &c, 1);
    let fields: Vec<&str> = std::str::from_utf8(&r[0].body)
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(fields[0], TOTAL.to_string());
    assert_eq!(fields[1], format!("{:016x}", sent_hash.get().finish()));
    let biggest: usize = fields[2].parse().unwrap();
    let stats = server.handle.stats();
    assert!(biggest <= cfg.body_buffer_size, "chunk of {biggest} bytes");
    // Handed over as buffered, by a swap of buffers: no chunk larger than the buffer.
    assert!(stats.max_body_chunk <= cfg.body_buffer_size, "{stats:?}");
    assert!(
        stats.max_input_buffered <= cfg.read_buffer_size,
        "{stats:?}"
    );
    assert!(stats.max_output_pending < 1024, "{stats:?}");
    server.stop(&mut rt);
}

/// Incremental chunked decoding for the response check (sizes and CRLFs only; no extensions).
#[derive(Default)]
struct Dechunk {
    line: Vec<u8>,
    left: u64,
    in_data: bool,
    need_crlf: usize,
    done: bool,
}

impl Dechunk {
    fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) {
        while !input.is_empty() && !self.done {
            if self.need_crlf > 0 {
                input = &input[1..];
                self.need_crlf -= 1;
            } else if self.in_data {
                let n = (self.left as usize).min(input.len());
                out(&input[..n]);
                input = &input[n..];
                self.left -= n as u64;
                if self.left == 0 {
                    self.in_data = false;
                    self.need_crlf = 2;
                }
            } else {
                self.line.push(input[0]);
                input = &input[1..];
                if self.line.ends_with(b"\r\n") {
                    let hex = std::str::from_utf8(&self.line[..self.line.len() - 2]).unwrap();
                    self.left = u64::from_str_radix(hex, 16).unwrap();
                    self.line.clear();
                    if self.left == 0 {
                        self.done = true; // the final CRLF follows; not needed
                    } else {
                        self.in_data = true;
                    }
                }
            }
        }
    }
}

/// A handler streaming `/stream?n` pattern bytes, chunked, in writes of up to 20,000 bytes.
fn streamer() -> MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let total: u64 = reqd.request().uri().query().unwrap().parse().unwrap();
            fn more(mut w: BodyWriter, mut at: u64, total: u64) {
                let mut buf = vec![0u8; 20_000];
                while at < total {
                    let n = (total - at).min(buf.len() as u64) as usize;
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = byte(at + k as u64);
                    }
                    match w.write(&buf[..n]).unwrap() {
                        0 => return w.on_writable(move |w| more(w, at, total)),
                        k => at += k as u64,
                    }
                }
                w.close().unwrap();
            }
            let w = reqd
                .respond_with_streaming(Response::new(()), None)
                .unwrap();
            more(w, 0, total);
        })
    })
}

/// Sends `GET /stream?total` and checks the chunked body byte for byte as it arrives.
fn get_stream(c: &ClientHandle, total: u64) -> Rc<Cell<u64>> {
    c.send(format!("GET /stream?{total} HTTP/1.1\r\nHost: b\r\n\r\n").as_bytes());
    let got = Rc::new(Cell::new(0u64));
    let head = Rc::new(RefCell::new(Vec::new()));
    let mut dechunk = Dechunk::default();
    let (g, h) = (got.clone(), head.clone());
    c.set_sink(move |mut data| {
        let mut head = h.borrow_mut();
        if !head.ends_with(b"\r\n\r\n") {
            let n = data.len().min(
                data.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(data.len(), |p| p + 4),
            );
            head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if head.ends_with(b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&head);
                assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
                assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
            }
        }
        dechunk.feed(data, &mut |d| {
            let at = g.get();
            for (k, b) in d.iter().enumerate() {
                assert_eq!(*b, byte(at + k as u64), "byte {}", at + k as u64);
            }
            g.set(at + d.len() as u64);
        });
    });
    got
}

#[test]
fn streamed_chunked_response_of_64_mb_arrives_byte_exact() {
    // 64 MB through two stacks, for seconds of CPU. See crate::heavy.
    let _heavy = crate::heavy();
    const TOTAL: u64 = 64 << 20;
    let cfg = Config::default();
    let (server, mut rt) = serve(cfg.clone(), streamer());
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let got = get_stream(&c, TOTAL);
    drive(&mut rt, LONG, "64 MB", || got.get() == TOTAL);
    let stats = server.handle.stats();
    assert!(
        stats.max_output_pending <= cfg.response_buffer_size + 20_000 + 1024,
        "{stats:?}"
    );
    server.stop(&mut rt);
}

/// Steps both loops for `d` of virtual time, whatever happens.
fn idle_for(net: &mut Net, d: Duration) {
    net.pair.advance(d);
}

#[test]
fn stop_switch_drains_an_in_flight_response_before_the_handle_completes() {
    const TOTAL: u64 = 8 << 20;
    let (server, mut rt) = serve(Config::default(), streamer());
    // An idle keep-alive connection: closed by the stop at once.
    let idle = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    idle.send(b"GET /stream?5 HTTP/1.1\r\nHost: b\r\n\r\n");
    assert_eq!(responses(&mut rt, &idle, 1)[0].body, [0, 1, 2, 3, 4]);
    // A response in flight, its client not reading for now.
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let got = get_stream(&c, TOTAL);
    drive(&mut rt, LONG, "the first MB", || got.get() > 1 << 20);
    c.set_max_input(Some(0));
    server.stop.turn_off();
    idle_for(&mut rt, Duration::from_millis(300));
    assert!(
        !server.handle.is_finished(),
        "finished with a response in flight"
    );
    assert!(idle.is_eof(), "idle keep-alive connection not closed");
    assert!(got.get() < TOTAL);
    // The listener is closed: a new connection is refused.
    let late = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    drive(&mut rt, LONG, "the late connection to fail", || {
        late.is_done()
    });
    assert!(late.is_reset() && !late.is_connected());
    // The client reads again: the response completes, then the handle.
    c.set_max_input(None);
    drive(&mut rt, LONG, "the drain", || server.handle.is_finished());
    drive(&mut rt, LONG, "the rest of the body", || got.get() == TOTAL);
    drive(&mut rt, LONG, "the close", || c.is_eof());
    server.stop(&mut rt);
}

#[test]
fn a_panicking_handler_gets_500_while_other_connections_are_served() {
    let (server, mut rt) = serve(
        Config::default(),
        Box::new(|| {
            Box::new(|_peer, reqd: Reqd| match reqd.request().uri().path() {
                "/panic" => panic!("handler panic (expected by the test)"),
                "/panic-in-body" => {
                    let r = reqd.clone();
                    reqd.schedule_read(
                        move |_| panic!("body callback panic (expected by the test) {r:?}"),
                        |_| {},
                    );
                }
                path => {
                    let body = format!("ok {path}");
                    reqd.respond_with_bytes(Response::new(()), body).unwrap();
                }
            })
        }),
    );
    let a = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    let b = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    a.send(b"GET /panic HTTP/1.1\r\nHost: b\r\n\r\n");
    b.send(b"GET /1 HTTP/1.1\r\nHost: b\r\n\r\n");
    let ra = responses(&mut rt, &a, 1);
    let rb = responses(&mut rt, &b, 1);
    assert_eq!(ra[0].status, 500);
    assert_eq!((rb[0].status, rb[0].body.as_slice()), (200, &b"ok /1"[..]));
    // Both connections live on.
    a.send(b"POST /panic-in-body HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc");
    b.send(b"GET /2 HTTP/1.1\r\nHost: b\r\n\r\n");
    assert_eq!(responses(&mut rt, &a, 1)[0].status, 500);
    assert_eq!(responses(&mut rt, &b, 1)[0].body, b"ok /2");
    a.send(b"GET /3 HTTP/1.1\r\nHost: b\r\n\r\n");
    assert_eq!(responses(&mut rt, &a, 1)[0].body, b"ok /3");
    assert_eq!(server.handle.stats().panics, 2);
    server.stop(&mut rt);
}

#[test]
fn a_parked_request_is_answered_later_from_another_connection() {
    let (server, mut rt) = serve(
        Config::default(),
        Box::new(|| {
            let parked: Rc<RefCell<Vec<Reqd>>> = Rc::default();
            Box::new(move |_peer, reqd: Reqd| match reqd.request().uri().path() {
                "/wait" => parked.borrow_mut().push(reqd),
                "/wake" => {
                    let n = parked.borrow().len();
                    for r in parked.borrow_mut().drain(..) {
                        r.respond_with_bytes(Response::new(()), "woken").unwrap();
                    }
                    reqd.respond_with_bytes(Response::new(()), format!("woke {n}"))
                        .unwrap();
                }
                "/drop" => drop(reqd),
                _ => {
                    let r = reqd.clone();
                    reqd.respond_with_bytes(Response::new(()), "x").unwrap();
                    assert!(r.respond_with_bytes(Response::new(()), "y").is_err());
                }
            })
        }),
    );
    let a = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    a.send(b"GET /wait HTTP/1.1\r\nHost: b\r\n\r\nGET /after HTTP/1.1\r\nHost: b\r\n\r\n");
    idle_for(&mut rt, Duration::from_millis(200));
    assert_eq!(a.received(), 0, "answered before being woken");
    let b = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    b.send(b"GET /wake HTTP/1.1\r\nHost: b\r\n\r\nGET /drop HTTP/1.1\r\nHost: b\r\n\r\n");
    let rb = responses(&mut rt, &b, 2);
    assert_eq!(rb[0].body, b"woke 1");
    assert_eq!(rb[1].status, 500, "a dropped request gets 500");
    let ra = responses(&mut rt, &a, 2);
    assert_eq!(
        (ra[0].body.as_slice(), ra[1].body.as_slice()),
        (&b"woken"[..], &b"x"[..])
    );
    server.stop(&mut rt);
}

#[test]
fn the_error_handler_answers_peer_faults_with_the_request_when_known() {
    let (server, mut rt) = serve_with(
        Config::default(),
        Box::new(|| {
            Box::new(|_peer, reqd: Reqd| {
                let r = reqd.clone();
                reqd.read_to_end(1 << 20, move |body| {
                    let _ = body.map(|b| r.respond_with_bytes(Response::new(()), b));
                });
            })
        }),
        Box::new(|| {
            Box::new(|_peer, error, req, respond: ErrorResponse| {
                let path = req.map_or("-", |r| r.uri().path()).to_owned();
                let mut head = Response::new(());
                *head.status_mut() = respond.status();
                respond.respond(head, format!("custom {} {path}", error.status().as_u16()));
            })
        }),
    );
    let cases: [(&[u8], u16, &str); 3] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "custom 400 -"),
        (
            b"POST /up HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "custom 400 /up",
        ),
        (b"GET / HTTP/2.0\r\nHost: b\r\n\r\n", 505, "custom 505 -"),
    ];
    for (req, status, body) in cases {
        let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
        c.send(req);
        let r = responses(&mut rt, &c, 1);
        assert_eq!(
            (r[0].status, r[0].body.as_slice()),
            (status, body.as_bytes())
        );
        assert_eq!(r[0].header("connection"), Some("close"));
        drive(&mut rt, LONG, "the close after an error", || c.is_eof());
    }
    assert_eq!(server.handle.stats().errors, 3);
    server.stop(&mut rt);
}

/// A test CA, a server configuration for `paf.test` with `handshake_timeout`, and a client
/// configuration trusting the CA.
fn pki(handshake_timeout: Duration) -> (paf::tls::ServerConfig, paf::tls::ClientConfig) {
    use paf::tls::{certs::TestCa, ClientConfig, ClientTrust, ServerConfig};
    let ca = TestCa::new("paf test CA").unwrap();
    let cert = ca.issue(&["paf.test"]).unwrap();
    let server = ServerConfig::builder(cert.identity())
        .handshake_timeout(handshake_timeout)
        .build()
        .unwrap();
    let client = ClientConfig::builder(ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .build()
        .unwrap();
    (server, client)
}

fn paf_test() -> paf::tls::ServerName<'static> {
    paf::tls::ServerName::try_from("paf.test").unwrap()
}

/// An app of the server's loop that answers parked requests from its own timer: the changes it
/// makes through `Reqd`s must be flushed by the service without any IO on those connections.
struct Later {
    parked: Rc<RefCell<Vec<(Instant, Reqd)>>>,
}

impl paf::App for Later {
    fn handle_accept(
        &mut self,
        _cx: &mut paf::Cx<'_>,
        _l: net::ListenerId,
        _c: net::ConnId,
        _p: SocketAddr,
    ) {
    }

    fn handle_ready(&mut self, _cx: &mut paf::Cx<'_>, _c: net::ConnId) {}

    fn poll_timeout(&self) -> Option<Instant> {
        self.parked.borrow().iter().map(|(at, _)| *at).min()
    }

    fn handle_timeout(&mut self, cx: &mut paf::Cx<'_>) {
        let due: Vec<Reqd> = {
            let mut parked = self.parked.borrow_mut();
            let (due, keep): (Vec<_>, Vec<_>) = parked.drain(..).partition(|(at, _)| *at <= cx.now);
            *parked = keep;
            due.into_iter().map(|(_, r)| r).collect()
        };
        for r in due {
            r.respond_with_bytes(Response::new(()), "later").unwrap();
        }
    }
}

#[test]
fn a_reqd_answered_from_another_app_is_flushed_without_io() {
    let mut pair = pair();
    let stop = Switch::new();
    let parked: Rc<RefCell<Vec<(Instant, Reqd)>>> = Rc::default();
    let p = parked.clone();
    pair.server
        .add(Later { parked }, |_, _| Ok::<_, ()>(()))
        .unwrap();
    let time = pair.server.pass_time();
    let svc = service::init(&mut pair.server, 80).expect("init");
    let Initialized(handle) = service::http(
        svc,
        Config::default(),
        Some(stop.clone()),
        service::default_error_handler,
        move |_peer, reqd: Reqd| {
            let at = time.now() + Duration::from_millis(200);
            p.borrow_mut().push((at, reqd));
        },
    );
    let server = Server { handle, stop };
    let mut rt = Net { pair };
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(b"GET /a HTTP/1.1\r\nHost: b\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n");
    let mut r = Vec::new();
    let mut buf = Vec::new();
    let took = drive(&mut rt, LONG, "two responses", || {
        buf.extend_from_slice(&c.take_input());
        while let Some((resp, used)) = parse_response(&buf, false) {
            buf.drain(..used);
            r.push(resp);
        }
        r.len() == 2
    });
    assert_eq!(
        (r[0].body.as_slice(), r[1].body.as_slice()),
        (&b"later"[..], &b"later"[..])
    );
    // Answered at the parked instant, 200 ms after the request came in (plus the wire's
    // microseconds), with no IO on the connection to flush it.
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(201),
        "not flushed promptly: {took:?}"
    );
    server.stop(&mut rt);
}

/// Reads the body to its end, then streams `body=<body>` back and ends with trailers that say
/// what the request's trailers were (`x-got`, `x-host`: whether a `Host` trailer survived),
/// `grpc-status: 0`, and a `content-length` that must not go out; with a declared length on
/// `/length`.
fn trailer_echo() -> MakeHandler {
    Box::new(|| {
        Box::new(|_peer, reqd: Reqd| {
            let r = reqd.clone();
            reqd.read_to_end(1 << 20, move |body| {
                let t = r.trailers().unwrap_or_default();
                let body = format!("body={}", String::from_utf8(body.unwrap()).unwrap());
                let length = (r.request().uri().path() == "/length").then_some(body.len() as u64);
                let mut w = r.respond_with_streaming(Response::new(()), length).unwrap();
                w.write(body.as_bytes()).unwrap();
                let mut out = ::http::HeaderMap::new();
                let got = t.get("x-sum").map_or("-", |v| v.to_str().unwrap());
                out.insert("x-got", got.parse().unwrap());
                let host = if t.contains_key("host") {
                    "kept"
                } else {
                    "dropped"
                };
                out.insert("x-host", host.parse().unwrap());
                out.insert("grpc-status", "0".parse().unwrap());
                out.insert("content-length", "1".parse().unwrap());
                w.close_with_trailers(&out).unwrap();
            });
        })
    })
}

#[test]
fn request_trailers_reach_the_handler_and_response_trailers_end_a_chunked_body() {
    let (server, mut rt) = serve(Config::default(), trailer_echo());
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(
        b"POST /chunked HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\nx-sum: 12\r\nHost: evil\r\n\r\n",
    );
    let mut got = Vec::new();
    drive(&mut rt, LONG, "the chunked response", || {
        got.extend(c.take_input());
        got.ends_with(b"\r\n0\r\nx-got: 12\r\nx-host: dropped\r\ngrpc-status: 0\r\n\r\n")
    });
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.contains("transfer-encoding: chunked") && text.contains("\r\n8\r\nbody=abc\r\n"),
        "{text}"
    );
    assert!(!text.contains("content-length: 1"), "{text}");
    // A declared length cannot carry trailers: dropped, and the connection goes on.
    c.send(b"POST /length HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nxy");
    let r = responses(&mut rt, &c, 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, b"body=xy");
    assert_eq!(r[0].header("content-length"), Some("7"));
    assert!(r[0].header("grpc-status").is_none());
    c.close();
    drive(&mut rt, LONG, "close", || c.is_done());
    server.stop(&mut rt);
}

/// Bytes that cannot start a request method (a TLS ClientHello on the plain-text port, a NUL, a
/// lone TLS record header) are answered 400 and closed as soon as they arrive, long before the
/// head timeout (an hour here), and counted as peer errors.
#[test]
fn garbage_first_bytes_get_400_and_a_close_at_once() {
    let cfg = Config {
        head_timeout: Duration::from_secs(3600),
        ..Config::default()
    };
    let (server, mut rt) = serve(cfg, hello());
    let hello_start: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, // record: handshake, TLS 1.0, 512 bytes
        0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, // ClientHello, 508 bytes, TLS 1.2
        0x5a, 0x5a, 0x5a, 0x5a, // random…
    ];
    let cases: [&[u8]; 3] = [hello_start, b"\0", b"\x16\x03\x01"];
    for bytes in cases {
        let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
        c.send(bytes);
        let mut buf = Vec::new();
        // Within seconds of virtual time, not the hour of the head timeout.
        drive(&mut rt, Duration::from_secs(10), "a 400, then EOF", || {
            buf.extend_from_slice(&c.take_input());
            c.is_eof()
        });
        let (r, _) = parse_response(&buf, false).expect("a complete response");
        assert_eq!(r.status, 400, "{bytes:?}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    let stats = server.handle.stats();
    assert_eq!((stats.errors, stats.requests), (3, 0), "{stats:?}");
    // A request after all that is served as usual.
    let c = RawClient::connect(&mut rt, addr(B_V4)).unwrap();
    c.send(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(responses(&mut rt, &c, 1)[0].body, b"hello /ok");
    server.stop(&mut rt);
}

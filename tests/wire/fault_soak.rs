//! The fault soak: 1 GiB of HTTP and HTTPS bodies between paf's client and paf's service over
//! an in-memory wire that drops, duplicates, reorders and corrupts frames both ways. Both
//! runtimes are a `paf::testing::Pair`, stepped together on the test thread on one virtual
//! clock: the server's (stack B: `service::http` on 80, `service::https` on 443) and the
//! client's (stack A, `paf::client`). No thread and no sleep: while neither loop has work, time
//! jumps to the next timer (an RTO, a frame held back by the wire), so waiting out losses costs
//! no wall time, and the machine's load changes nothing the test sees.
//!
//! - Requests are planned from the seed alone: upload (`POST /up`) or download (`GET /down`),
//!   HTTP or HTTPS, IPv4 or IPv6, a size from 0 B to 6 MiB, `Content-Length` or chunked,
//!   keep-alive or `Connection: close` (the next request then opens a new connection). [`LANES`]
//!   run at once, a new one starting as one ends, until the planned bytes reach [`TOTAL`].
//! - Byte-exact: every body is SHA-256-hashed as it is produced (the client's upload writer, the
//!   server's download writer) and as it is received (the server's body reader, the client's
//!   response reader); the two digests and lengths of each body must match.
//! - No stuck connection: a request that makes no progress for [`STALL`], or takes longer than
//!   [`BOUND`] in all, both in virtual time, fails the test with a report of every request in
//!   flight (what each side moved, the connection's client port as the server saw it) and the
//!   wire's counters. The pair is stepped at most [`TICK`] of virtual time between checks; a
//!   hang (nothing left to do but let time pass) costs next to no wall time before it fails.
//!
//! The default stays 1 GiB. On one thread it takes 11–14 s in a debug build on the 2-core VM
//! (about 12 s of CPU, for 2–4 s of virtual time). The real-clock version it replaced, a server
//! thread beside the client's, took 7 s on an idle machine (10 s of CPU on two cores) and 20 s
//! or more on a busy one, where its stall bound was a wall-clock timing window. A few seconds
//! more on an idle machine buy a test that a busy one cannot fail, and a smaller default would
//! see fewer of the rare cases the soak is for (a retransmission lost again, a fault on a
//! connection's first or last segments).
//!
//! `PAF_SOAK_SEED=N` runs another plan, with other fault draws (each frame's fate is drawn from
//! the seed). Two runs of one seed still differ in detail (connections opened, frames sent):
//! the client's pool picks among idle connections in hash-map order, which is random per
//! process, and TLS brings its own randomness. `PAF_SOAK_MIB=N` plans N MiB instead of 1 GiB.
//! `PAF_SOAK_PCAP=PREFIX` captures both ends to `PREFIX-a.pcap` and `PREFIX-b.pcap` (large;
//! virtual timestamps).

use paf::http;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ::http::{HeaderValue, Method, Request, Response, StatusCode};
use net::device::wire::{WireMonitor, WireStats};
use net::device::Faults;
use net::testing::{B_V4, B_V6};
use paf::client::{self, BodyEnd, BodyWriter, Options, ResponseBody};
use paf::ctx::Ctx;
use paf::runtime::{Clock, VirtualClock};
use paf::service::{self, Handle, Initialized, Reqd, Switch};
use paf::testing::Pair;
use paf::tls;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustls::crypto::hash::Context;

/// Body bytes planned in all, both directions together (`PAF_SOAK_MIB` changes it).
const TOTAL: u64 = 1 << 30;
/// Requests in flight at once (smoltcp recovers a lost tail segment only by its RTO, 1 s at
/// least: many lanes keep the wire busy meanwhile).
const LANES: usize = 32;
/// Longest a request may go without moving a byte, in virtual time (the RTO doubles from its
/// 200 ms floor: 20 s is several losses of one segment in a row).
const STALL: Duration = Duration::from_secs(20);
/// Longest a request may take in all, in virtual time.
const BOUND: Duration = Duration::from_secs(60);
/// Virtual time the pair is stepped between two checks for a stuck request, at most.
const TICK: Duration = Duration::from_millis(50);
/// Largest body.
const MAX_BODY: u64 = 6 << 20;
const MTU: usize = 9000;
/// Pattern bytes the bodies are cut from (each body starts at its own offset).
const TABLE: usize = 1 << 20;
/// Most bytes written per call.
const SLICE: usize = 64 * 1024;

/// The faults of each direction: 1% drop, 1% duplicate, 1% reorder (held back 2 ms), 0.5% corrupt.
fn faults() -> Faults {
    Faults {
        drop: 0.01,
        duplicate: 0.01,
        reorder: 0.01,
        corrupt: 0.005,
        ..Faults::default()
    }
}

type Digest = [u8; 32];

/// A running SHA-256 (aws-lc's, through rustls: fast even in a debug build), shared by the
/// data and end callbacks of a body reader.
#[derive(Clone)]
struct Sha(Rc<RefCell<Box<dyn Context>>>);

impl Sha {
    fn new() -> Sha {
        let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
        let hash = suite.tls13().expect("a TLS 1.3 suite").common.hash_provider;
        Sha(Rc::new(RefCell::new(hash.start())))
    }

    fn update(&self, data: &[u8]) {
        self.0.borrow_mut().update(data);
    }

    fn digest(&self) -> Digest {
        let out = self.0.borrow().fork_finish();
        out.as_ref().try_into().expect("32 bytes")
    }
}

fn hex(d: &Digest) -> String {
    d.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The bytes every body is cut from: `TABLE` seeded random bytes, plus `SLICE` more repeating
/// the start so that any slice of up to `SLICE` bytes can be taken without wrapping.
fn table(seed: u64) -> Rc<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t: Vec<u8> = (0..TABLE).map(|_| rng.random()).collect();
    t.extend_from_within(..SLICE);
    Rc::new(t)
}

/// The next piece of body `id` from offset `at`, at most `left` bytes.
fn piece(table: &[u8], id: u64, at: u64, left: u64) -> &[u8] {
    let start = ((id.wrapping_mul(0x9e37_79b9) + at) % TABLE as u64) as usize;
    &table[start..start + left.min(SLICE as u64) as usize]
}

/// One request of the plan.
#[derive(Clone, Copy, Debug)]
struct Plan {
    id: u64,
    upload: bool,
    tls: bool,
    v6: bool,
    size: u64,
    chunked: bool,
    close: bool,
}

impl Plan {
    fn new(seed: u64, id: u64) -> Plan {
        let mut rng = SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        let size = match rng.random_range(0..100) {
            0..45 => rng.random_range(0..=16 << 10),
            45..75 => rng.random_range(16 << 10..=512 << 10),
            _ => rng.random_range(512 << 10..=MAX_BODY),
        };
        Plan {
            id,
            upload: rng.random_bool(0.5),
            tls: rng.random_bool(0.5),
            v6: rng.random_bool(0.25),
            size,
            chunked: rng.random_bool(0.3),
            close: rng.random_bool(0.2),
        }
    }

    fn describe(&self) -> String {
        format!(
            "#{} {} {} {} B over IPv{}, {}, {}",
            self.id,
            if self.tls { "HTTPS" } else { "HTTP" },
            if self.upload { "POST /up" } else { "GET /down" },
            self.size,
            if self.v6 { 6 } else { 4 },
            if self.chunked {
                "chunked"
            } else {
                "content-length"
            },
            if self.close {
                "connection: close"
            } else {
                "keep-alive"
            },
        )
    }
}

/// What the server saw of one request (read by the test between steps, for checks and reports).
#[derive(Clone, Debug, Default)]
struct Seen {
    peer: Option<SocketAddr>,
    local_port: u16,
    received: u64,
    sent: u64,
    /// Digest of the upload received, or of the download produced, once complete.
    digest: Option<Digest>,
}

type Ledger = Rc<RefCell<HashMap<u64, Seen>>>;

fn note(ledger: &Ledger, id: u64, f: impl FnOnce(&mut Seen)) {
    f(ledger.borrow_mut().entry(id).or_default());
}

fn query(req: &Request<()>, key: &str) -> u64 {
    let q = req.uri().query().unwrap_or("");
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {q}"))
}

/// The server's handler for one port.
fn handler(port: u16, ledger: Ledger, table: Rc<Vec<u8>>) -> impl FnMut(SocketAddr, Reqd) {
    move |peer, reqd: Reqd| {
        let id = query(reqd.request(), "id");
        note(&ledger, id, |s| {
            s.peer = Some(peer);
            s.local_port = port;
        });
        if reqd.request().method() == Method::POST {
            take_upload(reqd, id, Sha::new(), ledger.clone());
        } else {
            let size = query(reqd.request(), "size");
            let length = (query(reqd.request(), "chunked") == 0).then_some(size);
            let w = reqd
                .respond_with_streaming(Response::new(()), length)
                .unwrap();
            let state = Produce {
                id,
                at: 0,
                size,
                hash: Sha::new(),
                ledger: ledger.clone(),
                table: table.clone(),
            };
            produce(w, state);
        }
    }
}

fn take_upload(reqd: Reqd, id: u64, hash: Sha, ledger: Ledger) {
    let (r1, r2) = (reqd.clone(), reqd.clone());
    let (l2, h2) = (ledger.clone(), hash.clone());
    reqd.schedule_read(
        move |data| {
            hash.update(data);
            note(&ledger, id, |s| s.received += data.len() as u64);
            take_upload(r1, id, hash, ledger);
        },
        move |end| {
            assert_eq!(end, paf::service::BodyEnd::Complete, "upload #{id}");
            let d = h2.digest();
            let mut n = 0;
            note(&l2, id, |s| {
                s.digest = Some(d);
                n = s.received;
            });
            // A request that died while this ran has nobody to answer: that is the client's
            // report to make.
            let _ = r2.respond_with_bytes(Response::new(()), format!("{n} {}", hex(&d)));
        },
    );
}

struct Produce {
    id: u64,
    at: u64,
    size: u64,
    hash: Sha,
    ledger: Ledger,
    table: Rc<Vec<u8>>,
}

fn produce(mut w: paf::service::BodyWriter, mut p: Produce) {
    while p.at < p.size {
        let data = piece(&p.table, p.id, p.at, p.size - p.at);
        match w.write(data) {
            Ok(0) => return w.on_writable(move |w| produce(w, p)),
            Ok(k) => {
                p.hash.update(&data[..k]);
                p.at += k as u64;
                note(&p.ledger, p.id, |s| s.sent += k as u64);
            }
            Err(_) => return, // the connection is gone: the client reports it
        }
    }
    let d = p.hash.digest();
    note(&p.ledger, p.id, |s| s.digest = Some(d));
    let _ = w.close();
}

/// What the client side knows of one request (times are the pair's virtual ones).
struct Flight {
    plan: Plan,
    clock: VirtualClock,
    start: Instant,
    progress: Instant,
    sent: u64,
    received: u64,
    status: Option<StatusCode>,
    /// The upload's answer from the server (`"<length> <sha256>"`).
    answer: Vec<u8>,
    /// Digest of the upload produced, or of the download received, once complete.
    digest: Option<Digest>,
    end: Option<BodyEnd>,
    errors: Vec<String>,
}

type Shared = Rc<RefCell<Flight>>;

fn moved(f: &Shared, sent: u64, received: u64) {
    let mut f = f.borrow_mut();
    f.sent += sent;
    f.received += received;
    f.progress = f.clock.now();
}

struct Upload {
    at: u64,
    hash: Sha,
    flight: Shared,
    table: Rc<Vec<u8>>,
}

fn upload(mut w: BodyWriter, mut u: Upload) {
    let plan = u.flight.borrow().plan;
    while u.at < plan.size {
        let data = piece(&u.table, plan.id, u.at, plan.size - u.at);
        match w.write(data) {
            Ok(0) => return w.on_writable(move |w| upload(w, u)),
            Ok(k) => {
                u.hash.update(&data[..k]);
                u.at += k as u64;
                moved(&u.flight, k as u64, 0);
            }
            Err(e) => {
                let msg = format!("upload write: {e}");
                return u.flight.borrow_mut().errors.push(msg);
            }
        }
    }
    u.flight.borrow_mut().digest = Some(u.hash.digest());
    if let Err(e) = w.close() {
        u.flight.borrow_mut().errors.push(format!("close: {e}"));
    }
}

fn read_body(body: ResponseBody, flight: Shared, hash: Sha) {
    let (b, f, f2, h2) = (body.clone(), flight.clone(), flight.clone(), hash.clone());
    body.schedule_read(
        move |data| {
            if f.borrow().plan.upload {
                f.borrow_mut().answer.extend_from_slice(data);
            } else {
                hash.update(data);
                moved(&f, 0, data.len() as u64);
            }
            read_body(b, f, hash);
        },
        move |end| {
            let mut f = f2.borrow_mut();
            if !f.plan.upload {
                f.digest = Some(h2.digest());
            }
            f.end = Some(end);
        },
    );
}

/// The client side (on the pair's client runtime): the stack, the four contexts (HTTP or HTTPS,
/// IPv4 or IPv6), the plan's pattern bytes and the pair's clock.
struct Client {
    stack: client::Agent,
    ctx: [Ctx; 4],
    table: Rc<Vec<u8>>,
    clock: VirtualClock,
}

impl Client {
    fn start(&mut self, plan: Plan) -> Shared {
        let now = self.clock.now();
        let flight: Shared = Rc::new(RefCell::new(Flight {
            plan,
            clock: self.clock.clone(),
            start: now,
            progress: now,
            sent: 0,
            received: 0,
            status: None,
            answer: Vec::new(),
            digest: None,
            end: None,
            errors: Vec::new(),
        }));
        let (method, path) = if plan.upload {
            (Method::POST, "up")
        } else {
            (Method::GET, "down")
        };
        let uri = format!(
            "/{path}?id={}&size={}&chunked={}",
            plan.id, plan.size, plan.chunked as u8
        );
        let mut req = Request::builder().method(method).uri(uri);
        if plan.upload {
            req = if plan.chunked {
                req.header("transfer-encoding", "chunked")
            } else {
                req.header("content-length", plan.size)
            };
        }
        if plan.close {
            req = req.header("connection", HeaderValue::from_static("close"));
        }
        let ctx = &self.ctx[usize::from(plan.tls) * 2 + usize::from(plan.v6)];
        let (f1, f2) = (flight.clone(), flight.clone());
        let w = client::request(
            ctx,
            client_config(),
            move |_peer, e| f1.borrow_mut().errors.push(e.to_string()),
            move |_peer, head, body| {
                {
                    let mut f = f2.borrow_mut();
                    f.status = Some(head.status());
                    f.progress = f.clock.now();
                }
                read_body(body, f2, Sha::new());
            },
            req.body(()).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", plan.describe()));
        if plan.upload {
            let u = Upload {
                at: 0,
                hash: Sha::new(),
                flight: flight.clone(),
                table: self.table.clone(),
            };
            upload(w, u);
        } else {
            w.close().unwrap();
        }
        flight
    }
}

/// Generous codec timeouts: the soak's own [`STALL`] and [`BOUND`] report first, and better.
fn client_config() -> http::client::Config {
    http::client::Config {
        response_timeout: Duration::from_secs(300),
        read_timeout: Duration::from_secs(300),
        write_timeout: Duration::from_secs(300),
        ..http::client::Config::default()
    }
}

/// The pair: a 9000-byte wire with [`faults`] both ways, seeded; `PAF_SOAK_PCAP=PREFIX`
/// captures both ends.
fn pair(seed: u64) -> Pair {
    let pcap = std::env::var("PAF_SOAK_PCAP").ok();
    Pair::builder()
        .mtu(MTU)
        .faults(faults())
        .seed(seed)
        .pcap(
            pcap.as_ref().map(|p| format!("{p}-a.pcap")),
            pcap.map(|p| format!("{p}-b.pcap")),
        )
        .build()
}

/// The server: HTTP on 80 and HTTPS on 443 of the pair's server runtime, until `stop` is
/// turned off.
fn serve(
    pair: &mut Pair,
    tls: tls::ServerConfig,
    ledger: &Ledger,
    table: &Rc<Vec<u8>>,
    stop: &Switch,
) -> Vec<Handle> {
    let cfg = paf::http::Config {
        max_body_size: None,
        ..paf::http::Config::default()
    };
    let svc = service::init(&mut pair.server, 80).expect("init 80");
    let h = handler(80, ledger.clone(), table.clone());
    let errors = service::default_error_handler;
    let Initialized(plain) = service::http(svc, cfg.clone(), Some(stop.clone()), errors, h);
    let svc = service::init(&mut pair.server, 443).expect("init 443");
    let h = handler(443, ledger.clone(), table.clone());
    let Initialized(secure) = service::https(svc, tls, cfg, Some(stop.clone()), errors, h);
    vec![plain, secure]
}

/// Checks a finished request against what the server saw; `Err` says what is wrong.
fn verify(f: &Flight, seen: Option<&Seen>) -> Result<(), String> {
    if !f.errors.is_empty() {
        return Err(format!("errors {:?}", f.errors));
    }
    if f.status != Some(StatusCode::OK) || f.end != Some(BodyEnd::Complete) {
        return Err(format!("status {:?}, body end {:?}", f.status, f.end));
    }
    let seen = seen.ok_or("the server never saw it")?;
    let (ours, theirs) = (f.digest.ok_or("no client digest")?, seen.digest);
    let moved = if f.plan.upload {
        let want = format!("{} {}", f.plan.size, hex(&ours));
        if f.answer != want.as_bytes() {
            let got = String::from_utf8_lossy(&f.answer);
            return Err(format!("server received \"{got}\", client sent \"{want}\""));
        }
        (f.sent, seen.received)
    } else {
        (seen.sent, f.received)
    };
    if theirs != Some(ours) || moved != (f.plan.size, f.plan.size) {
        return Err(format!(
            "digests {} (client) / {} (server), bytes {moved:?}",
            hex(&ours),
            theirs.map_or("none".into(), |d| hex(&d))
        ));
    }
    Ok(())
}

fn report(
    why: &str,
    now: Instant,
    flights: &[Shared],
    ledger: &Ledger,
    wire: &WireMonitor,
) -> String {
    let seen = ledger.borrow();
    let mut out = format!("{why}\nrequests in flight:\n");
    for f in flights {
        let f = f.borrow();
        let s = seen.get(&f.plan.id).cloned().unwrap_or_default();
        let conn = s.peer.map_or("not accepted by the server".into(), |p| {
            format!("connection {p} -> port {}", s.local_port)
        });
        let _ = writeln!(
            out,
            "  {}: {:.1?} since start, {:.1?} since progress (virtual); client wrote {} read {}, \
             status {:?}, errors {:?}; server ({conn}) read {} wrote {}",
            f.plan.describe(),
            now - f.start,
            now - f.progress,
            f.sent,
            f.received,
            f.status,
            f.errors,
            s.received,
            s.sent,
        );
    }
    let [ab, ba] = wire.stats();
    let _ = write!(out, "wire A->B {ab:?}\nwire B->A {ba:?}");
    out
}

fn assert_faulty(dir: &str, s: &WireStats) {
    assert!(
        s.dropped > 0 && s.duplicated > 0 && s.reordered > 0 && s.corrupted > 0,
        "{dir}: every kind of fault was injected: {s:?}"
    );
}

#[test]
fn a_gigabyte_of_http_and_https_over_a_faulty_wire_is_byte_exact_and_nothing_sticks() {
    // Tens of seconds of CPU on one core. See crate::heavy.
    let _heavy = crate::heavy();
    let env = |k, default| std::env::var(k).map_or(default, |s| s.parse().expect("a number"));
    let (seed, total) = (
        env("PAF_SOAK_SEED", 1),
        env("PAF_SOAK_MIB", TOTAL >> 20) << 20,
    );
    // Wall time, for the final report only: nothing waits on it or is bounded by it.
    let t0 = Instant::now();
    let table = table(seed);
    let ledger: Ledger = Rc::default();
    let mut pair = pair(seed);
    let ca = tls::certs::TestCa::new("fault soak CA").unwrap();
    let identity = ca.issue(&["paf.test"]).unwrap().identity();
    let server_tls = tls::ServerConfig::builder(identity).build().unwrap();
    let stop = Switch::new();
    let handles = serve(&mut pair, server_tls, &ledger, &table, &stop);
    let options = Options {
        max_per_endpoint: LANES,
        ..Options::default()
    };
    let stack = client::Agent::attach(&mut pair.client, options);
    let trust = tls::ClientConfig::builder(tls::ClientTrust::CaCerts(vec![ca.cert().clone()]))
        .build()
        .unwrap();
    let ctx = |ip: IpAddr, secure: bool| {
        let base = client::ctx(&stack).add(&client::ipaddr(), ip);
        if secure {
            base.add(&client::domain_name(), "paf.test".to_owned())
                .add(&client::tls_config(), trust.clone())
        } else {
            base.add(&client::domain_name(), ip.to_string())
        }
    };
    let (v4, v6) = (IpAddr::from(B_V4), IpAddr::from(B_V6));
    let ctx = [ctx(v4, false), ctx(v6, false), ctx(v4, true), ctx(v6, true)];
    let mut client = Client {
        stack,
        ctx,
        table,
        clock: pair.clock.clone(),
    };
    let (mut planned, mut next_id) = (0u64, 0u64);
    let (mut up, mut down, mut done) = (0u64, 0u64, 0u64);
    let mut flights: Vec<Shared> = Vec::new();
    let ended = |f: &Shared| {
        let f = f.borrow();
        f.end.is_some() || !f.errors.is_empty()
    };
    while planned < total || !flights.is_empty() {
        while flights.len() < LANES && planned < total {
            let plan = Plan::new(seed, next_id);
            next_id += 1;
            planned += plan.size;
            flights.push(client.start(plan));
        }
        pair.drive(TICK, |_| flights.iter().any(ended));
        let now = pair.now();
        let mut i = 0;
        while i < flights.len() {
            if !ended(&flights[i]) {
                i += 1;
                continue;
            }
            let f = flights.swap_remove(i);
            let f = f.borrow();
            let seen = ledger.borrow().get(&f.plan.id).cloned();
            if let Err(e) = verify(&f, seen.as_ref()) {
                panic!("{}: {e}", f.plan.describe());
            }
            if f.plan.upload {
                up += f.plan.size;
            } else {
                down += f.plan.size;
            }
            done += 1;
        }
        let stuck = flights.iter().find(|f| {
            let f = f.borrow();
            now - f.progress > STALL || now - f.start > BOUND
        });
        if let Some(f) = stuck {
            let why = format!(
                "stuck: {} (no progress for {STALL:?}, or over {BOUND:?} in all, of virtual \
                 time, {:.3?} into the run); {done} requests done before it",
                f.borrow().plan.describe(),
                pair.clock.elapsed(),
            );
            panic!("{}", report(&why, now, &flights, &ledger, &pair.wire));
        }
    }
    let took = t0.elapsed();
    let virtual_time = pair.clock.elapsed();
    let stats = client.stack.stats();
    let served: u64 = handles.iter().map(|h| h.stats().requests).sum();
    assert_eq!(served, done, "requests the services answered");
    assert!(
        stats.connections > 1 && (stats.reused > 0 || done <= 4 * LANES as u64),
        "both new and reused connections: {stats:?}"
    );
    // Stop: step the pair until both services have drained (tests/wire/client/stop.rs).
    stop.turn_off();
    pair.drive_until(BOUND, "the services to stop", |_| {
        handles.iter().all(Handle::is_finished)
    });
    let [ab, ba] = pair.wire.stats();
    assert_faulty("A->B", &ab);
    assert_faulty("B->A", &ba);
    eprintln!(
        "fault soak (seed {seed}): {done} requests, {} MiB up + {} MiB down in {virtual_time:.1?} \
         of virtual time ({took:.1?} wall); client {stats:?}\n  wire A->B {ab:?}\n  wire B->A \
         {ba:?}",
        up >> 20,
        down >> 20,
    );
}

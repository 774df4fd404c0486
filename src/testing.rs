//! Deterministic tests of services and clients (feature `testing`): two runtimes joined by the
//! in-memory wire, on one [`VirtualClock`], stepped on the caller's thread (after quinn-proto's
//! `Pair`). Nothing sleeps: when neither loop has work now, the clock jumps to the earliest
//! thing either has to do (a TCP timer, a frame due on the wire, an HTTP timeout), so a test of a
//! 30-second timeout takes milliseconds and fires at the exact virtual instant.
//!
//! ```
//! use paf::service::{self, Initialized};
//! use paf::testing::{Pair, B};
//! use std::time::Duration;
//!
//! let mut pair = Pair::new();
//! let svc = service::init(&mut pair.server, 80).unwrap();
//! let Initialized(_handle) = service::http(
//!     svc,
//!     paf::http::Config::default(),
//!     None,
//!     service::default_error_handler,
//!     |_peer, reqd| {
//!         let _ = reqd.respond_with_bytes(paf::http::Response::new(()), "hello\n");
//!     },
//! );
//! let c = paf::testing::RawClient::connect(&mut pair.client, B.with_port(80)).unwrap();
//! c.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
//! pair.drive(Duration::from_secs(5), |_| c.received() > 0);
//! assert!(String::from_utf8_lossy(&c.take_input()).ends_with("hello\n"));
//! ```
//!
//! Also here: [`RawClient`], a raw-bytes TCP (or TLS) client app with a handle to feed and read
//! it, and [`parse_response`], a small HTTP/1.1 response parser, for tests that must send bytes
//! no well-behaved client would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use net::device::wire::{self, WireMonitor};
use net::device::{Device, Faults, Link};

use crate::runtime::{Clock, Runtime, VirtualClock};

pub use crate::service::testing::{parse_response, ClientHandle, ParsedResponse, RawClient};
pub use net::device::Faults as WireFaults;

/// Steps without the clock moving before [`Pair::drive`] calls it a livelock.
const MAX_STILL_STEPS: u32 = 100_000;

/// An address of one end of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// IPv4 address.
    pub v4: Ipv4Addr,
    /// IPv6 address.
    pub v6: Ipv6Addr,
}

impl End {
    /// The IPv4 socket address with `port`.
    pub fn with_port(self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.v4), port)
    }

    /// The IPv6 socket address with `port`.
    pub fn v6_with_port(self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(self.v6), port)
    }
}

/// The client end (198.18.0.1, fd00:198:18::1).
pub const A: End = End {
    v4: net::testing::A_V4,
    v6: net::testing::A_V6,
};
/// The server end (198.18.0.2, fd00:198:18::2).
pub const B: End = End {
    v4: net::testing::B_V4,
    v6: net::testing::B_V6,
};

/// How to build a [`Pair`]: MTU, faults per direction, seed, stack tuning, captures, the wire's
/// frame pools.
pub struct Builder {
    mtu: usize,
    to_server: Faults,
    to_client: Faults,
    seed: u64,
    tune: Box<dyn Fn(&mut net::Config)>,
    pcap: [Option<std::path::PathBuf>; 2],
    prefill: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("mtu", &self.mtu)
            .field("seed", &self.seed)
            .field("prefill", &self.prefill)
            .finish()
    }
}

impl Builder {
    /// The wire's MTU (default 1500).
    pub fn mtu(mut self, mtu: usize) -> Builder {
        self.mtu = mtu;
        self
    }

    /// Faults (loss, delay, reordering...) on frames from the client to the server.
    pub fn to_server(mut self, faults: Faults) -> Builder {
        self.to_server = faults;
        self
    }

    /// Faults on frames from the server to the client.
    pub fn to_client(mut self, faults: Faults) -> Builder {
        self.to_client = faults;
        self
    }

    /// The same faults both ways.
    pub fn faults(self, faults: Faults) -> Builder {
        self.to_server(faults.clone()).to_client(faults)
    }

    /// The seed of the wire's fault injection and of the stacks (default 7).
    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = seed;
        self
    }

    /// Adjusts both stacks' configurations (buffer sizes, congestion control...).
    pub fn tune(mut self, tune: impl Fn(&mut net::Config) + 'static) -> Builder {
        self.tune = Box::new(tune);
        self
    }

    /// Captures every frame the client's stack (`client`) and the server's (`server`) sees to
    /// pcap files (timestamps are virtual).
    pub fn pcap(
        mut self,
        client: Option<impl Into<std::path::PathBuf>>,
        server: Option<impl Into<std::path::PathBuf>>,
    ) -> Builder {
        self.pcap = [client.map(Into::into), server.map(Into::into)];
        self
    }

    /// Allocates the wire's recycled frame buffers up front, both ways
    /// ([`net::device::WireEnd::prefill_frame_pool`]), so that the wire allocates nothing while
    /// the pair runs: for tests that measure the heap, where the wire's pool growing to its
    /// busiest moment would look like the stacks' growth. Counters and faults are untouched.
    pub fn prefill_frame_pools(mut self) -> Builder {
        self.prefill = true;
        self
    }

    /// The pair: a client runtime on A and a server runtime on B, at virtual time zero.
    ///
    /// # Panics
    /// When a stack cannot be built (a tuning that makes the configuration invalid), a pcap
    /// file cannot be written, or mio cannot make a poll.
    pub fn build(self) -> Pair {
        let (a, b) = wire::pair(self.mtu, self.to_server, self.to_client, self.seed);
        let wire = a.monitor();
        if self.prefill {
            a.prefill_frame_pool();
            b.prefill_frame_pool();
        }
        let clock = VirtualClock::new();
        let runtime = |first: bool, end| {
            let mut config = net::testing::config(first, self.seed);
            (self.tune)(&mut config);
            let mut device = Device::new(Link::Wire(end));
            if let Some(p) = &self.pcap[usize::from(!first)] {
                device
                    .capture_to(p)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
            }
            let stack =
                net::Stack::new(config, device, clock.now()).expect("a valid stack configuration");
            Runtime::with_clock(Box::new(stack), Box::new(clock.clone())).expect("mio poll")
        };
        Pair {
            client: runtime(true, a),
            server: runtime(false, b),
            clock,
            wire,
        }
    }
}

/// A client runtime and a server runtime over the in-memory wire, on one virtual clock. See
/// the [module docs](self).
#[derive(Debug)]
pub struct Pair {
    /// The client's loop (stack A).
    pub client: Runtime,
    /// The server's loop (stack B).
    pub server: Runtime,
    /// The clock both run on.
    pub clock: VirtualClock,
    /// The wire's counters: `wire.stats()` is `[client to server, server to client]`.
    pub wire: WireMonitor,
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

impl Pair {
    /// A pair with a clean 1500-byte wire.
    pub fn new() -> Pair {
        Pair::builder().build()
    }

    /// A builder for other wires.
    pub fn builder() -> Builder {
        Builder {
            mtu: 1500,
            to_server: Faults::default(),
            to_client: Faults::default(),
            seed: 7,
            tune: Box::new(|_| {}),
            pcap: [None, None],
            prefill: false,
        }
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// One pass of each loop at the current virtual time.
    ///
    /// # Panics
    /// When mio's poll fails.
    pub fn step(&mut self) {
        self.server.turn(Some(Duration::ZERO)).expect("server turn");
        self.client.turn(Some(Duration::ZERO)).expect("client turn");
    }

    /// When either loop next has work (now, when one has work at once).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let s = self.server.next_deadline();
        let c = self.client.next_deadline();
        match (s, c) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Steps both loops, moving the clock to the next deadline whenever neither has work now,
    /// until `done` holds or `limit` of virtual time has passed. Returns the virtual time it
    /// took. With nothing left to do at all, the clock jumps to the limit.
    ///
    /// # Panics
    /// When the loops keep asking for work at the same instant (a livelock: a bug), or mio's
    /// poll fails.
    pub fn drive(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> Duration {
        let start = self.now();
        let end = start + limit;
        let mut still = 0;
        if done(self) {
            return Duration::ZERO;
        }
        loop {
            self.step();
            if done(self) {
                return self.now() - start;
            }
            let now = self.now();
            if now >= end {
                return limit;
            }
            match self.next_deadline() {
                Some(at) if at <= now => {
                    still += 1;
                    assert!(
                        still < MAX_STILL_STEPS,
                        "livelock: {MAX_STILL_STEPS} steps at one virtual instant"
                    );
                }
                next => {
                    still = 0;
                    self.clock.set(next.map_or(end, |at| at.min(end)));
                }
            }
        }
    }

    /// [`Pair::drive`] for something that must happen: panics naming `what` when `done` does not
    /// hold within `limit` of virtual time.
    ///
    /// # Panics
    /// Then, and as [`Pair::drive`] does.
    pub fn drive_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&mut Pair) -> bool,
    ) -> Duration {
        let mut ok = false;
        let took = self.drive(limit, |p| {
            ok = done(p);
            ok
        });
        assert!(ok, "{what}: not done after {limit:?} of virtual time");
        took
    }

    /// Moves the clock by `d`, stepping the loops at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        self.drive(d, |_| false);
    }

    /// Moves the clock to `t` (if later than now), stepping the loops at every deadline on the
    /// way: to act at a given virtual instant, advance to it, then act.
    pub fn advance_to(&mut self, t: Instant) {
        let d = t.saturating_duration_since(self.now());
        self.advance(d);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::http::{Config, Response};
    use crate::service::{self, Handle, Initialized};

    /// A server on B:80 answering "hello" to everything, with `config`.
    fn hello(pair: &mut Pair, config: Config) -> Handle {
        let svc = service::init(&mut pair.server, 80).expect("listen");
        let Initialized(handle) = service::http(
            svc,
            config,
            None,
            service::default_error_handler,
            |_, reqd| {
                let _ = reqd.respond_with_bytes(Response::new(()), "hello\n");
            },
        );
        handle
    }

    /// The virtual instant `c` first received something.
    fn first_byte(pair: &mut Pair, c: &ClientHandle, limit: Duration) -> Instant {
        pair.drive(limit, |_| c.received() > 0);
        assert!(c.received() > 0, "nothing received within {limit:?}");
        pair.now()
    }

    #[test]
    fn a_head_timeout_fires_at_the_exact_virtual_instant() {
        let head_timeout = Duration::from_secs(10);
        let mut pair = Pair::new();
        let config = Config {
            head_timeout,
            ..Config::default()
        };
        let handle = hello(&mut pair, config);
        let c = RawClient::connect(&mut pair.client, B.with_port(80)).unwrap();
        pair.drive(Duration::from_secs(1), |_| c.is_connected());
        // The connection is accepted when the handshake's last ACK arrives: let it.
        pair.drive(Duration::from_secs(1), |_| handle.stats().accepted == 1);
        let sent = pair.now();
        c.send(b"GET / HTTP/1.1\r\nHost: b\r\n");
        let answered = first_byte(&mut pair, &c, Duration::from_secs(60));
        let head = String::from_utf8_lossy(&c.take_input()).into_owned();
        assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
        // The head deadline counts from the accept, at the very instant the request began.
        assert_eq!(answered - sent, head_timeout, "answered after");
        assert_eq!(handle.stats().head_timeouts, 1);
    }

    #[test]
    fn an_idle_keep_alive_connection_closes_at_the_idle_timeout_and_no_earlier() {
        let idle_timeout = Duration::from_secs(30);
        let mut pair = Pair::new();
        let config = Config {
            idle_timeout,
            ..Config::default()
        };
        let handle = hello(&mut pair, config);
        let c = RawClient::connect(&mut pair.client, B.with_port(80)).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
        let answered = first_byte(&mut pair, &c, Duration::from_secs(1));
        let eof = Rc::new(Cell::new(None));
        let e = eof.clone();
        pair.drive(Duration::from_secs(120), |p| {
            if e.get().is_none() && c.is_eof() {
                e.set(Some(p.now()));
            }
            c.is_done()
        });
        let closed = eof.get().expect("the server closed the idle connection");
        assert_eq!(closed - answered, idle_timeout, "closed after");
        assert_eq!(handle.stats().active, 0);
    }

    /// `Client::get_blocking` (and `fetch_blocking` under it) on the real clock, with the server
    /// loop on its own thread, as the docs say it must be.
    #[test]
    fn get_blocking_returns_the_response_when_the_server_runs_on_another_thread() {
        use crate::client::{self, Agent, Client};
        use crate::service::Switch;
        use net::device::{wire, Device, Faults, Link};

        let (a, b) = wire::pair(1500, Faults::default(), Faults::default(), 5);
        let stack = |first: bool, end| {
            let s = net::Stack::new(
                net::testing::config(first, 5),
                Device::new(Link::Wire(end)),
                crate::runtime::SystemClock.now(),
            );
            Box::new(s.expect("stack"))
        };
        let stop = Switch::new();
        let s = stop.clone();
        let server = std::thread::spawn(move || {
            let mut rt = Runtime::new(stack(false, b)).expect("server runtime");
            let svc = service::init(&mut rt, 80).expect("listen");
            let Initialized(h) = service::http(
                svc,
                Config::default(),
                Some(s),
                service::default_error_handler,
                |_, reqd| {
                    let _ = reqd.respond_with_bytes(Response::new(()), "blocking\n");
                },
            );
            rt.run_until(|_| h.is_finished()).expect("server loop");
        });
        let mut rt = Runtime::new(stack(true, a)).expect("client runtime");
        let c = Client::new(&Agent::attach(&mut rt, client::Options::default()));
        let r = c
            .get_blocking(&mut rt, "http://198.18.0.2/")
            .expect("a response");
        assert_eq!(
            (r.status.as_u16(), r.body.as_slice()),
            (200, &b"blocking\n"[..])
        );
        stop.turn_off();
        // Keep the client's loop turning while the server drains.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !server.is_finished() && std::time::Instant::now() < deadline {
            rt.turn(Some(Duration::from_millis(10)))
                .expect("client loop");
        }
        server.join().expect("the server thread");
    }

    #[test]
    fn the_wire_can_be_captured_from_both_ends() {
        let dir = std::env::temp_dir().join(format!("paf-pair-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
        let mut pair = Pair::builder().pcap(Some(&a), Some(&b)).build();
        let _h = hello(&mut pair, Config::default());
        let c = RawClient::connect(&mut pair.client, B.with_port(80)).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
        first_byte(&mut pair, &c, Duration::from_secs(1));
        drop(pair);
        for p in [&a, &b] {
            let len = std::fs::metadata(p).unwrap().len();
            // The 24-byte file header, then the handshake, request and response frames.
            assert!(len > 24 + 5 * 54, "{}: {len} bytes", p.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drive_jumps_to_the_limit_when_nothing_is_left_to_do() {
        let mut pair = Pair::new();
        let took = pair.drive(Duration::from_secs(3600), |_| false);
        assert_eq!(took, Duration::from_secs(3600));
        assert_eq!(pair.clock.elapsed(), Duration::from_secs(3600));
    }

    /// A server on B:80 that answers each request with its `Host` header.
    fn echo_host(pair: &mut Pair) -> Handle {
        let svc = service::init(&mut pair.server, 80).expect("listen");
        let Initialized(handle) = service::http(
            svc,
            Config::default(),
            None,
            service::default_error_handler,
            |_, reqd| {
                let host = reqd
                    .request()
                    .headers()
                    .get("host")
                    .map(|v| v.to_str().unwrap_or("?").to_owned())
                    .unwrap_or_default();
                let _ = reqd.respond_with_bytes(Response::new(()), host);
            },
        );
        handle
    }

    /// Friction points 3 and 4 of issue 14: an asynchronous ctx step of the user's own, with the
    /// user's own `stack` key as in the seed, goes on when the user completes it (nothing else
    /// wakes the loop), and `Host` is the domain name, not the address.
    #[test]
    fn a_user_async_resolver_and_stack_key_work_and_host_is_the_domain_name() {
        use crate::client::{self, Agent};
        use crate::ctx::{self, dft, promise, req, Completer, Ctx, Step, TcpEndpoint};
        use std::cell::RefCell;
        use std::net::IpAddr;

        let mut pair = Pair::new();
        let _server = echo_host(&mut pair);
        let stack = Agent::attach(&mut pair.client, client::Options::default());
        let my_stack = ctx::make::<Agent>("agent");
        let pending: Rc<RefCell<Option<Completer<IpAddr>>>> = Rc::default();
        let p = pending.clone();
        let ctx = Ctx::empty()
            .add(&my_stack, stack.clone())
            .add(&client::domain_name(), "paf.test".to_owned())
            .fold(
                &client::ipaddr(),
                req(&client::domain_name()),
                move |_name: String| {
                    let (promise, completer) = promise();
                    *p.borrow_mut() = Some(completer);
                    Step::Pending(promise)
                },
            )
            .fold(
                &client::tcp_edn(),
                (
                    req(&my_stack),
                    req(&client::ipaddr()),
                    dft(&client::port(), 80),
                ),
                |(stack, addr, port)| Step::Ready(TcpEndpoint { stack, addr, port }),
            );
        let got: Rc<RefCell<Option<String>>> = Rc::default();
        let g = got.clone();
        let body = client::request(
            &ctx,
            crate::http::client::Config::default(),
            |_, e| panic!("request failed: {e}"),
            move |_, _, body| {
                body.read_to_end(1024, move |r| {
                    *g.borrow_mut() = Some(String::from_utf8(r.unwrap()).unwrap());
                });
            },
            crate::http::Request::get("/").body(()).unwrap(),
        )
        .expect("the ctx names one client agent");
        body.close().unwrap();
        pair.drive(Duration::from_secs(1), |_| pending.borrow().is_some());
        // Nothing happens while the step is pending...
        pair.drive(Duration::from_secs(5), |_| false);
        assert!(got.borrow().is_none());
        // ... and completing it is all it takes.
        let completer = pending.borrow_mut().take().expect("the resolver ran");
        completer.complete(IpAddr::V4(B.v4));
        let took = pair.drive(Duration::from_secs(5), |_| got.borrow().is_some());
        assert_eq!(got.borrow().as_deref(), Some("paf.test"));
        assert!(took < Duration::from_millis(100), "{took:?}");
    }

    /// Friction point 5: the friendly client takes a ctx, so a resolver of the user's own works
    /// for URLs by name on the userspace stack.
    #[test]
    fn the_friendly_client_resolves_names_through_its_ctx() {
        use crate::client::{self, Agent, Client};
        use crate::ctx::{req, Step};
        use std::cell::RefCell;
        use std::net::IpAddr;

        let mut pair = Pair::new();
        let _server = echo_host(&mut pair);
        let stack = Agent::attach(&mut pair.client, client::Options::default());
        let hosts = client::ctx(&stack).fold_first(
            &client::ipaddr(),
            req(&client::domain_name()),
            |name: String| Step::from((name == "paf.test").then_some(IpAddr::V4(B.v4))),
        );
        let c = Client::new(&stack).with_ctx(hosts);
        let got: Rc<RefCell<Option<String>>> = Rc::default();
        let g = got.clone();
        c.get("http://paf.test/", move |r| {
            let r = r.expect("a response");
            *g.borrow_mut() = Some(String::from_utf8(r.body).unwrap());
        });
        pair.drive(Duration::from_secs(5), |_| got.borrow().is_some());
        assert_eq!(got.borrow().as_deref(), Some("paf.test"));
    }

    /// Friction point 1: a loop waiting on a handle of another loop (another thread) returns
    /// when it completes, though nothing of its own wakes it.
    #[test]
    fn run_until_returns_when_another_loops_handle_completes() {
        use crate::service::Switch;
        use std::sync::mpsc;

        let stop = Switch::new();
        let (tx, rx) = mpsc::channel();
        let s = stop.clone();
        let server = std::thread::spawn(move || {
            let mut rt = Runtime::kernel("::1".parse().unwrap()).expect("kernel runtime");
            let svc = service::init_with_backlog(&mut rt, 47_913, 16).expect("listen");
            let Initialized(h) = service::http(
                svc,
                Config::default(),
                Some(s),
                service::default_error_handler,
                |_, _| {},
            );
            tx.send(h.clone()).unwrap();
            rt.run_until(|_| h.is_finished()).unwrap();
        });
        let handle = rx.recv().unwrap();
        let waiter = std::thread::spawn(move || {
            // A loop of its own with nothing to do: only a wake-up ends its sleep.
            let mut rt = Runtime::kernel("::1".parse().unwrap()).expect("kernel runtime");
            rt.run_until(|_| handle.is_finished()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        stop.turn_off();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            waiter.join().unwrap();
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiting loop returned");
        server.join().unwrap();
    }
}

//! The two ends of the client suite (after tests/wire/http.rs).
//!
//! Every test but one runs on [`paf::testing::Pair`]: the server's loop (stack B, `paf::service`
//! on port 80, and 443 when asked) and the client's loop (stack A) on the test thread, over the
//! in-memory wire, on one virtual clock. [`drive`] steps both and jumps the clock to the next
//! deadline, so a timeout fires at its exact virtual instant and nothing waits on wall time.
//!
//! The exception is [`real_clock`]: `remote_handles_send_blocking_requests_from_other_threads`
//! is about OS threads and a loop sleeping in its poll, which need real threads and the real
//! clock (see there).

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use paf::http::Config;
use paf::service::{self, Handle, Initialized, Reqd, Switch};
use paf::testing::Pair;
use paf::{tls, Runtime};

pub const MTU: usize = 9000;
/// The seed of the wire's faults (none here) and of both stacks.
pub const SEED: u64 = 11;
/// A bound of virtual time for anything to happen.
pub const LONG: Duration = Duration::from_secs(120);

/// Makes the server's handler (`Send` for the [`real_clock`] server, which makes it on its own
/// thread).
pub type MakeHandler = Box<dyn FnOnce() -> Box<dyn FnMut(SocketAddr, Reqd)> + Send>;

/// Both loops on the virtual clock; derefs to the client's runtime, where the tests attach
/// their client stacks. Extra server apps go on `net.pair.server`.
pub struct Net {
    pub pair: Pair,
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

pub struct Server {
    /// The HTTP service's handle (port 80).
    pub handle: Handle,
    /// Every service's handle: HTTP, then HTTPS when there is one.
    pub handles: Vec<Handle>,
    stop: Switch,
}

impl Server {
    /// Turns the switch off and steps both loops until *every* service has drained (not only
    /// the first: the HTTP service may finish at once while the HTTPS one still needs the
    /// client to take a response, its close_notify and its FIN). Returns the virtual time it
    /// took.
    pub fn stop(self, net: &mut Net) -> Duration {
        self.stop.turn_off();
        let took = drive(net, LONG, "the services to stop", || {
            self.handles.iter().all(Handle::is_finished)
        });
        for h in &self.handles {
            assert_eq!(h.result(), Some(Ok(())), "a service's result");
        }
        took
    }
}

/// A pair on a 9000-byte wire with 256 KiB TCP buffers, seed 11: the stacks the suite had on
/// the real clock.
fn pair() -> Pair {
    Pair::builder()
        .mtu(MTU)
        .seed(SEED)
        .tune(|c| {
            c.tcp.rx_buffer = 256 * 1024;
            c.tcp.tx_buffer = 256 * 1024;
        })
        .build()
}

/// A server serving `make()`'s handler on port 80 of stack B; returns it and the pair.
pub fn serve(make: MakeHandler) -> (Server, Net) {
    serve_with(Config::default(), make)
}

/// [`serve`] with a server config.
pub fn serve_with(cfg: Config, make: MakeHandler) -> (Server, Net) {
    serve_full(cfg, make, None)
}

/// [`serve_with`], plus an HTTPS service on port 443 when `https` is given.
pub fn serve_full(
    cfg: Config,
    make: MakeHandler,
    https: Option<(tls::ServerConfig, MakeHandler)>,
) -> (Server, Net) {
    let mut pair = pair();
    let stop = Switch::new();
    let mut handles = Vec::new();
    let svc = service::init(&mut pair.server, 80).expect("init");
    let Initialized(h) = service::http(
        svc,
        cfg.clone(),
        Some(stop.clone()),
        service::default_error_handler,
        make(),
    );
    handles.push(h);
    if let Some((tls, make)) = https {
        let svc = service::init(&mut pair.server, 443).expect("init 443");
        let Initialized(h) = service::https(
            svc,
            tls,
            cfg,
            Some(stop.clone()),
            service::default_error_handler,
            make(),
        );
        handles.push(h);
    }
    let server = Server {
        handle: handles[0].clone(),
        handles,
        stop,
    };
    (server, Net { pair })
}

/// Steps both loops until `cond` holds; panics after `timeout` of virtual time. Returns the
/// virtual time it took.
pub fn drive(
    net: &mut Net,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    net.pair.drive_until(timeout, what, |_| cond())
}

/// Steps both loops for `d` of virtual time, whatever happens.
pub fn idle_for(net: &mut Net, d: Duration) {
    net.pair.advance(d);
}

/// The real-clock exception, for `remote_handles_send_blocking_requests_from_other_threads`
/// only: the server's loop on a thread of its own, the client's loop made on (and run by)
/// another thread, both stacks on the system clock.
///
/// Why not the [`Pair`]: that test is about OS threads sending blocking requests through a
/// `client::Remote`, whose jobs reach the loop through a channel and a `LoopWaker` that wakes
/// it from its poll. A loop on a virtual clock never sleeps in its poll (`Runtime::turn` polls
/// with a zero timeout), so the thread running a `Pair` would spin between jobs while the clock
/// jumps ahead of the requesting threads by however many deadlines it meets: neither the
/// wake-up under test nor any determinism would be left.
///
/// `PAF_PCAP=FILE` (client end) and `PAF_PCAP_B=FILE` (server end) capture its wire.
pub mod real_clock {
    use std::sync::mpsc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use net::device::{wire, Device, Faults, Link};
    use net::testing::config;
    use paf::http::Config;
    use paf::service::{self, Handle, Initialized, Switch};
    use paf::Runtime;

    use super::{MakeHandler, LONG, MTU, SEED};

    /// The HTTP service on port 80 of stack B, on its own thread.
    pub struct ThreadServer {
        pub handle: Handle,
        stop: Switch,
        thread: Option<JoinHandle<()>>,
    }

    impl ThreadServer {
        /// Stops the service while another thread drives the client side; joins the thread.
        pub fn stop(mut self) {
            self.stop.turn_off();
            assert!(
                self.handle.wait_timeout(LONG).is_some(),
                "the service did not stop"
            );
            self.thread.take().unwrap().join().unwrap();
        }
    }

    impl Drop for ThreadServer {
        fn drop(&mut self) {
            self.stop.turn_off();
            if let Some(t) = self.thread.take() {
                if self.handle.wait_timeout(Duration::from_secs(2)).is_some() {
                    let _ = t.join();
                }
            }
        }
    }

    fn stack(a: bool, end: wire::WireEnd) -> net::Stack {
        let mut c = config(a, SEED);
        c.tcp.rx_buffer = 256 * 1024;
        c.tcp.tx_buffer = 256 * 1024;
        let mut d = Device::new(Link::Wire(end));
        if let Ok(p) = std::env::var(if a { "PAF_PCAP" } else { "PAF_PCAP_B" }) {
            d.capture_to(std::path::Path::new(&p)).unwrap();
        }
        net::Stack::new(c, d, Instant::now()).expect("stack")
    }

    /// A server thread serving `make()`'s handler on port 80 of stack B with `cfg`; the
    /// client's end of the wire, to make its runtime on the thread that runs it.
    pub fn serve(cfg: Config, make: MakeHandler) -> (ThreadServer, ClientEnd) {
        let (ea, eb) = wire::pair(MTU, Faults::default(), Faults::default(), SEED);
        let stop = Switch::new();
        let (tx, rx) = mpsc::channel();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rt = Runtime::new(Box::new(stack(false, eb))).expect("runtime");
            let svc = service::init(&mut rt, 80).expect("init");
            let Initialized(h) =
                service::http(svc, cfg, Some(s), service::default_error_handler, make());
            tx.send(h.clone()).expect("send the handle");
            rt.run_until(|_| h.is_finished()).expect("loop");
        });
        let handle = rx.recv().expect("server started");
        let server = ThreadServer {
            handle,
            stop,
            thread: Some(thread),
        };
        (server, ClientEnd(ea))
    }

    /// The client's end of the wire, to make its runtime on the thread that runs it.
    pub struct ClientEnd(wire::WireEnd);

    impl ClientEnd {
        /// The client runtime, on stack A, on the system clock.
        pub fn runtime(self) -> Runtime {
            Runtime::new(Box::new(stack(true, self.0))).expect("client runtime")
        }
    }
}

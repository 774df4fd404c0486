//! The server thread and the clock-driven loop helpers (after tests/wire/http.rs).
//!
//! `PAF_PCAP=FILE` (client end) and `PAF_PCAP_B=FILE` (server end) capture the wire.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use net::device::{wire, Device, Faults, Link};
use net::testing::config;
use paf::http::Config;
use paf::service::{self, Handle, Initialized, Reqd, Switch};
use paf::{tls, Runtime};

pub const MTU: usize = 9000;
pub const LONG: Duration = Duration::from_secs(120);

pub type MakeHandler = Box<dyn FnOnce() -> Box<dyn FnMut(SocketAddr, Reqd)> + Send>;
/// Adds more apps to the server runtime (raw test servers on other ports).
pub type Extra = Box<dyn FnOnce(&mut Runtime) + Send>;

pub struct Server {
    /// The HTTP service's handle (port 80).
    pub handle: Handle,
    /// Every service's handle: HTTP, then HTTPS when there is one.
    pub handles: Vec<Handle>,
    stop: Switch,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Turns the switch off and drives the client side until every service has drained. Not
    /// only the first: the HTTP service may finish at once while the HTTPS one still needs this
    /// client to take a response, its close_notify and its FIN (without the client's loop, it
    /// waits out its drain timeout, 31 s by default).
    pub fn stop(mut self, rt: &mut Runtime) {
        self.stop.turn_off();
        drive(rt, LONG, "the services to stop", || {
            self.handles.iter().all(Handle::is_finished)
        });
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Server {
    /// Stops the services while another thread drives the client side.
    pub fn stop_detached(mut self) {
        self.stop.turn_off();
        for h in &self.handles {
            assert!(h.wait_timeout(LONG).is_some(), "the service did not stop");
        }
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Server {
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
    let mut c = config(a, 11);
    c.tcp.rx_buffer = 256 * 1024;
    c.tcp.tx_buffer = 256 * 1024;
    let mut d = Device::new(Link::Wire(end));
    if let Ok(p) = std::env::var(if a { "PAF_PCAP" } else { "PAF_PCAP_B" }) {
        d.capture_to(std::path::Path::new(&p)).unwrap();
    }
    net::Stack::new(c, d, Instant::now()).expect("stack")
}

/// A server thread serving `make()`'s handler on port 80 of stack B; returns it and a
/// client runtime on stack A.
pub fn serve(make: MakeHandler) -> (Server, Runtime) {
    serve_with(Config::default(), make, Box::new(|_| {}))
}

/// [`serve`] with a server config and extra apps on the server's runtime.
pub fn serve_with(cfg: Config, make: MakeHandler, extra: Extra) -> (Server, Runtime) {
    serve_full(cfg, make, extra, None)
}

/// [`serve_with`], plus an HTTPS service on port 443 when `https` is given.
pub fn serve_full(
    cfg: Config,
    make: MakeHandler,
    extra: Extra,
    https: Option<(tls::ServerConfig, MakeHandler)>,
) -> (Server, Runtime) {
    let (server, end) = serve_ends(cfg, make, extra, https);
    (server, end.runtime())
}

/// [`serve_full`], the client runtime left to be made (on another thread).
pub fn serve_ends(
    cfg: Config,
    make: MakeHandler,
    extra: Extra,
    https: Option<(tls::ServerConfig, MakeHandler)>,
) -> (Server, ClientEnd) {
    let (ea, eb) = wire::pair(MTU, Faults::default(), Faults::default(), 11);
    let stop = Switch::new();
    let (tx, rx) = mpsc::channel();
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut rt = Runtime::new(Box::new(stack(false, eb))).expect("runtime");
        extra(&mut rt);
        let mut handles = Vec::new();
        let svc = service::init(&mut rt, 80).expect("init");
        let Initialized(h) = service::http(
            svc,
            cfg.clone(),
            Some(s.clone()),
            service::default_error_handler,
            make(),
        );
        handles.push(h);
        if let Some((tls, make)) = https {
            let svc = service::init(&mut rt, 443).expect("init 443");
            let Initialized(h) = service::https(
                svc,
                tls,
                cfg,
                Some(s),
                service::default_error_handler,
                make(),
            );
            handles.push(h);
        }
        tx.send(handles.clone()).expect("send handles");
        rt.run_until(|_| handles.iter().all(Handle::is_finished))
            .expect("loop");
    });
    let handles = rx.recv().expect("server started");
    let server = Server {
        handle: handles[0].clone(),
        handles,
        stop,
        thread: Some(thread),
    };
    (server, ClientEnd(ea))
}

/// The client's end of the wire, to make its runtime on the thread that runs it.
pub struct ClientEnd(wire::WireEnd);

impl ClientEnd {
    /// The client runtime, on stack A.
    pub fn runtime(self) -> Runtime {
        Runtime::new(Box::new(stack(true, self.0))).expect("client runtime")
    }
}

/// Turns `rt` until `cond` holds; panics after `timeout`.
pub fn drive(rt: &mut Runtime, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        rt.turn(Some(Duration::from_millis(50))).expect("turn");
    }
}

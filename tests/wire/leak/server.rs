//! The server side: a runtime on its own thread serving `http` on 80 and `https` on 443 of
//! stack B, commanded over a channel (start, stop, snapshot), and the stack wrapper that lets
//! the test read a stack's counters while a runtime drives it.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ::http::Response;
use net::device::{wire, Device, Link};
use net::dns::Resolution;
use net::stack::StackStats;
use net::testing::config;
use net::{
    ConnId, ConnectError, DnsError, Event, ListenError, ListenerId, QueryId, Readiness, RecordType,
    RecvError, SendError, Stack, Transport,
};
use paf::http::Config;
use paf::service::{self, builtin, BodyWriter, Handle, Initialized, Reqd, Switch};
use paf::tls::ClientConfig;
use paf::Runtime;

/// TCP buffers per socket and direction on both stacks.
pub const BUFFER: usize = 64 * 1024;
/// Socket sets per stack (see [`stack`]).
const SHARDS: usize = 64;

/// A [`Stack`] shared between a runtime (which owns a `Box<dyn Transport>`) and the test, which
/// reads the stack's counters between loop passes.
pub struct Shared(pub Rc<RefCell<Stack>>);

impl Transport for Shared {
    fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, ListenError> {
        self.0.borrow_mut().listen(port, backlog)
    }
    fn unlisten(&mut self, listener: ListenerId) {
        self.0.borrow_mut().unlisten(listener);
    }
    fn connect(&mut self, remote: SocketAddr) -> Result<ConnId, ConnectError> {
        self.0.borrow_mut().connect(remote)
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.0.borrow_mut().poll_event()
    }
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.0.borrow_mut().recv(conn, buf)
    }
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SendError> {
        self.0.borrow_mut().send(conn, data)
    }
    fn send_queue(&self, conn: ConnId) -> usize {
        self.0.borrow().send_queue(conn)
    }
    fn readiness(&self, conn: ConnId) -> Readiness {
        self.0.borrow().readiness(conn)
    }
    fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        self.0.borrow().endpoints(conn)
    }
    fn shutdown_write(&mut self, conn: ConnId) {
        self.0.borrow_mut().shutdown_write(conn);
    }
    fn close(&mut self, conn: ConnId) {
        self.0.borrow_mut().close(conn);
    }
    fn abort(&mut self, conn: ConnId) {
        self.0.borrow_mut().abort(conn);
    }
    fn register(&mut self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        self.0.borrow_mut().register(registry, token)
    }
    fn poll(&mut self, now: Instant) {
        self.0.borrow_mut().poll(now);
    }
    fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.0.borrow_mut().poll_delay(now)
    }
    fn resolve(&mut self, name: &str, rtype: RecordType) -> Result<QueryId, DnsError> {
        self.0.borrow_mut().resolve(name, rtype)
    }
    fn poll_resolution(&mut self, query: QueryId) -> Option<Resolution> {
        self.0.borrow_mut().poll_resolution(query)
    }
    fn cancel_resolution(&mut self, query: QueryId) {
        self.0.borrow_mut().cancel_resolution(query);
    }
    fn socket_count(&self) -> usize {
        self.0.borrow().socket_count()
    }
}

pub fn stack(a: bool, end: wire::WireEnd) -> Stack {
    let mut c = config(a, 23);
    c.tcp.rx_buffer = BUFFER;
    c.tcp.tx_buffer = BUFFER;
    // 64 shards, not the default 4,096: a shard's socket slots are allocated the first time a
    // connection lands in it and kept, so with 4,096 the heap grows for tens of thousands of
    // connections before it is flat. 64 fill up in the warm-up; the sharded paths are the same.
    c.tcp.shards = SHARDS;
    Stack::new(c, Device::new(Link::Wire(end)), Instant::now()).expect("stack")
}

/// Buffer bytes held by `spare` recycled sockets: every socket of a stack has the buffers of its
/// one TCP configuration, and the pool keeps them whole.
pub fn spare_bytes(spare: usize) -> usize {
    spare * 2 * BUFFER
}

/// The server's counts at one moment, taken between two loop passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snap {
    pub sockets: usize,
    pub stats: StackStats,
    pub apps: usize,
    /// Connections open in the services, summed.
    pub active: usize,
    /// Every service handle of the current incarnation has completed.
    pub finished: bool,
    pub tls_handshakes: u64,
    pub tls_failures: u64,
}

pub enum Cmd {
    /// `service::init` + `http` on 80 and `https` on 443, each with a new stop switch.
    Start,
    /// Turn both stop switches off.
    Stop,
    Snapshot(mpsc::Sender<Snap>),
    Quit,
}

pub struct Server {
    cmds: mpsc::Sender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn spawn(end: wire::WireEnd, file: PathBuf) -> Server {
        let (cmds, rx) = mpsc::channel();
        let tls = server_tls();
        let thread = std::thread::spawn(move || serve(end, file, tls, rx));
        Server {
            cmds,
            thread: Some(thread),
        }
    }

    pub fn send(&self, cmd: Cmd) {
        self.cmds.send(cmd).expect("the server thread is gone");
    }

    pub fn snap(&self) -> Snap {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Snapshot(tx));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a snapshot from the server thread")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn http_config() -> Config {
    Config {
        head_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(400),
        drain_timeout: Duration::from_millis(300),
        ..Config::default()
    }
}

fn serve(end: wire::WireEnd, file: PathBuf, tls: paf::tls::ServerConfig, rx: mpsc::Receiver<Cmd>) {
    let stack = Rc::new(RefCell::new(stack(false, end)));
    let mut rt = Runtime::new(Box::new(Shared(stack.clone()))).expect("server runtime");
    let mut running: Vec<(Switch, Handle)> = Vec::new();
    loop {
        rt.turn(Some(Duration::from_millis(5)))
            .expect("server turn");
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Cmd::Start => {
                    assert!(
                        running.iter().all(|(_, h)| h.is_finished()),
                        "start while running"
                    );
                    running.clear();
                    for port in [80, 443] {
                        let stop = Switch::new();
                        let svc = service::init(&mut rt, port).expect("init on a freed port");
                        let handler = site(file.clone());
                        let errors = service::default_error_handler;
                        let Initialized(h) = if port == 443 {
                            service::https(
                                svc,
                                tls.clone(),
                                http_config(),
                                Some(stop.clone()),
                                errors,
                                handler,
                            )
                        } else {
                            service::http(svc, http_config(), Some(stop.clone()), errors, handler)
                        };
                        running.push((stop, h));
                    }
                }
                Cmd::Stop => running.iter().for_each(|(s, _)| s.turn_off()),
                Cmd::Snapshot(tx) => {
                    let s = stack.borrow();
                    let stats: Vec<_> = running.iter().map(|(_, h)| h.stats()).collect();
                    let _ = tx.send(Snap {
                        sockets: s.socket_count(),
                        stats: s.stats(),
                        apps: rt.app_count(),
                        active: stats.iter().map(|s| s.active).sum(),
                        finished: running.iter().all(|(_, h)| h.is_finished()),
                        tls_handshakes: stats.iter().map(|s| s.tls_handshakes).sum(),
                        tls_failures: stats.iter().map(|s| s.tls_failures).sum(),
                    });
                }
                Cmd::Quit => return,
            }
        }
    }
}

/// The built-in test routes, plus `/file`: `file` streamed from disk in 16 KiB reads.
fn site(file: PathBuf) -> impl FnMut(SocketAddr, Reqd) + 'static {
    let mut builtin = builtin::handler(builtin::Options { test_routes: true });
    move |peer, reqd: Reqd| {
        if reqd.request().uri().path() != "/file" {
            return builtin(peer, reqd);
        }
        let Ok(f) = File::open(&file) else {
            let _ = reqd.respond_with_bytes(Response::builder().status(500).body(()).unwrap(), "");
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if let Ok(w) = reqd.respond_with_streaming(Response::new(()), Some(len)) {
            stream_file(
                w,
                FileBody {
                    file: f,
                    buf: vec![0; 16 * 1024],
                    pos: 0,
                    len: 0,
                },
            );
        }
    }
}

struct FileBody {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
}

/// Writes the file until the connection's output is full, then again once it is writable. A
/// gone connection fails the write: the writer and the file are dropped, closing the descriptor.
fn stream_file(mut w: BodyWriter, mut body: FileBody) {
    loop {
        if body.pos == body.len {
            body.pos = 0;
            body.len = match body.file.read(&mut body.buf) {
                Ok(0) => {
                    let _ = w.close();
                    return;
                }
                Ok(n) => n,
                Err(_) => return,
            };
        }
        match w.write(&body.buf[body.pos..body.len]) {
            Ok(0) => return w.on_writable(move |w| stream_file(w, body)),
            Ok(n) => body.pos += n,
            Err(_) => return,
        }
    }
}

fn server_tls() -> paf::tls::ServerConfig {
    let cert = ca().issue(&["paf.test"]).expect("a certificate");
    paf::tls::ServerConfig::builder(cert.identity())
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .expect("server TLS")
}

fn ca() -> &'static paf::tls::certs::TestCa {
    static CA: std::sync::OnceLock<paf::tls::certs::TestCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| paf::tls::certs::TestCa::new("paf leak CA").expect("a CA"))
}

pub fn client_tls() -> ClientConfig {
    ClientConfig::builder(paf::tls::ClientTrust::CaCerts(vec![ca().cert().clone()]))
        .build()
        .expect("client TLS")
}

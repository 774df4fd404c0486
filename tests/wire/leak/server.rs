//! The server side: `http` on port 80 and `https` on 443 of the pair's server runtime (stack B),
//! started, stopped and counted from the test thread between steps of the pair, and the pair
//! itself, built with the stack settings the leak check needs.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ::http::Response;
use net::stack::StackStats;
use paf::http::Config;
use paf::service::{self, builtin, BodyWriter, Handle, Initialized, Reqd, Switch};
use paf::testing::Pair;
use paf::tls::ClientConfig;
use paf::Runtime;

/// TCP buffers per socket and direction on both stacks.
pub const BUFFER: usize = 64 * 1024;
/// Socket sets per stack (see [`pair`]).
const SHARDS: usize = 64;
/// IP MTU of the in-memory wire.
const WIRE_MTU: usize = 1500;

/// The client (A) and server (B) runtimes on one virtual clock, over a clean 1500-byte wire
/// whose frame buffers are allocated up front (`prefill_frame_pools`: the wire's pool would
/// otherwise grow to its busiest moment, and show as heap growth that is not paf's).
pub fn pair() -> Pair {
    Pair::builder()
        .mtu(WIRE_MTU)
        .seed(23)
        .tune(|c| {
            c.tcp.rx_buffer = BUFFER;
            c.tcp.tx_buffer = BUFFER;
            // 64 shards, not the default 4,096: a shard's socket slots are allocated the first
            // time a connection lands in it and kept, so with 4,096 the heap grows for tens of
            // thousands of connections before it is flat. 64 fill up in the warm-up; the
            // sharded paths are the same.
            c.tcp.shards = SHARDS;
        })
        .prefill_frame_pools()
        .build()
}

/// Buffer bytes held by `spare` recycled sockets: every socket of a stack has the buffers of its
/// one TCP configuration, and the pool keeps them whole.
pub fn spare_bytes(spare: usize) -> usize {
    spare * 2 * BUFFER
}

/// The server's counts at one moment, taken between two steps of the pair.
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

/// The two services of the server runtime, one incarnation at a time.
pub struct Server {
    file: PathBuf,
    tls: paf::tls::ServerConfig,
    running: Vec<(Switch, Handle)>,
}

impl Server {
    /// Serves `file` at `/file` once started.
    pub fn new(file: PathBuf) -> Server {
        Server {
            file,
            tls: server_tls(),
            running: Vec::new(),
        }
    }

    /// `service::init` + `http` on 80 and `https` on 443 of `rt`, each with a new stop switch.
    pub fn start(&mut self, rt: &mut Runtime) {
        assert!(
            self.running.iter().all(|(_, h)| h.is_finished()),
            "start while running"
        );
        self.running.clear();
        for port in [80, 443] {
            let stop = Switch::new();
            let svc = service::init(rt, port).expect("init on a freed port");
            let handler = site(self.file.clone());
            let errors = service::default_error_handler;
            let Initialized(h) = if port == 443 {
                service::https(
                    svc,
                    self.tls.clone(),
                    http_config(),
                    Some(stop.clone()),
                    errors,
                    handler,
                )
            } else {
                service::http(svc, http_config(), Some(stop.clone()), errors, handler)
            };
            self.running.push((stop, h));
        }
    }

    /// Turns both stop switches off.
    pub fn stop(&self) {
        self.running.iter().for_each(|(s, _)| s.turn_off());
    }

    /// The counts of `rt`, the server's runtime, and of its services now.
    pub fn snap(&self, rt: &mut Runtime) -> Snap {
        let stats: Vec<_> = self.running.iter().map(|(_, h)| h.stats()).collect();
        Snap {
            sockets: rt.net().socket_count(),
            stats: rt.net().stats().expect("the userspace stack's counters"),
            apps: rt.app_count(),
            active: stats.iter().map(|s| s.active).sum(),
            finished: self.running.iter().all(|(_, h)| h.is_finished()),
            tls_handshakes: stats.iter().map(|s| s.tls_handshakes).sum(),
            tls_failures: stats.iter().map(|s| s.tls_failures).sum(),
        }
    }
}

/// Short timeouts: the timeout probes' waits, and the drain at a stop, are a few hundred
/// milliseconds of virtual time.
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

//! Client and server sessions stepped against each other over an in-memory
//! wire ([`Pair`], after quinn-proto's test pair), plus shared fixtures.

use std::ops::DerefMut;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::ConnectionCommon;

use super::certs::{IssuedCert, TestCa};
use super::*;

mod faults;
mod handshake;
mod pem;
mod stream;

/// Bytes the emulated TCP connection holds in flight per direction.
pub(crate) const WINDOW: usize = 32 * 1024;

/// A fresh, empty directory under the system temp dir.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("paf-tls-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A CA and a default server certificate for `localhost` and `127.0.0.1`.
pub(crate) struct Pki {
    pub ca: TestCa,
    pub default: IssuedCert,
}

impl Pki {
    pub fn new() -> Self {
        let ca = TestCa::new("paf test CA").unwrap();
        let default = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        Self { ca, default }
    }

    pub fn server(&self) -> ServerConfig {
        ServerConfig::builder(self.default.identity())
            .build()
            .unwrap()
    }

    /// A server offering only `http/1.1` by ALPN.
    pub fn http11_server(&self) -> ServerConfig {
        ServerConfig::builder(self.default.identity())
            .alpn_protocols(&[ALPN_HTTP11])
            .build()
            .unwrap()
    }

    pub fn client_builder(&self) -> ClientConfigBuilder {
        ClientConfig::builder(ClientTrust::CaCerts(vec![self.ca.cert().clone()]))
    }

    pub fn client(&self) -> ClientConfig {
        self.client_builder().build().unwrap()
    }
}

/// Parses `"localhost"` or `"127.0.0.1"` into a server name.
pub(crate) fn name(s: &str) -> ServerName<'static> {
    ServerName::try_from(s.to_owned()).unwrap()
}

/// A client and a server joined by two in-memory byte queues.
pub(crate) struct Pair {
    pub now: Instant,
    pub client: ClientSession,
    pub server: ServerSession,
    /// Ciphertext in flight, not yet consumed by the receiver.
    pub c2s: Vec<u8>,
    pub s2c: Vec<u8>,
    /// Plaintext each side has read so far.
    pub client_rx: Vec<u8>,
    pub server_rx: Vec<u8>,
    pub client_err: Option<Error>,
    pub server_err: Option<Error>,
    /// Times `handle_input` took less than it was offered (receive backpressure).
    pub short_inputs: usize,
    /// Largest amount of plaintext one side read in one step.
    pub max_rx_step: usize,
    scratch: Vec<u8>,
}

impl Pair {
    pub fn new(server: &ServerConfig, client: &ClientConfig, server_name: &str) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: ClientSession::new(client, name(server_name), now).unwrap(),
            server: ServerSession::new(server, now).unwrap(),
            c2s: Vec::new(),
            s2c: Vec::new(),
            client_rx: Vec::new(),
            server_rx: Vec::new(),
            client_err: None,
            server_err: None,
            short_inputs: 0,
            max_rx_step: 0,
            scratch: vec![0; WINDOW],
        }
    }

    /// Moves what fits in each direction once and lets both sides consume it.
    /// Returns whether anything moved.
    pub fn step(&mut self) -> bool {
        let mut progress = false;
        // Client to wire through the `Vec` variant, server through the slice
        // variant; both only while the emulated window has room.
        if self.c2s.len() < WINDOW {
            progress |= self.client.poll_transmit(&mut self.c2s) > 0;
        }
        progress |= self.flush_server() > 0;

        let now = self.now;
        let got = deliver(
            &mut self.server,
            now,
            &mut self.c2s,
            &mut self.server_rx,
            &mut self.server_err,
            &mut self.short_inputs,
        );
        self.max_rx_step = self.max_rx_step.max(got.1);
        progress |= got.0;
        let got = deliver(
            &mut self.client,
            now,
            &mut self.s2c,
            &mut self.client_rx,
            &mut self.client_err,
            &mut self.short_inputs,
        );
        self.max_rx_step = self.max_rx_step.max(got.1);
        progress | got.0
    }

    /// Moves server output onto the wire, up to the window.
    pub fn flush_server(&mut self) -> usize {
        let room = WINDOW.saturating_sub(self.s2c.len());
        let n = self.server.poll_transmit_into(&mut self.scratch[..room]);
        self.s2c.extend_from_slice(&self.scratch[..n]);
        n
    }

    /// Steps until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pair did not go quiet");
    }

    /// Drives the handshake and checks it succeeded.
    pub fn connect(&mut self) {
        self.drive();
        assert_eq!((&self.client_err, &self.server_err), (&None, &None));
        assert!(!self.client.is_handshaking() && !self.server.is_handshaking());
    }
}

/// Feeds `wire` to `session` and reads all plaintext it yields into `rx`.
/// Returns (progress, plaintext bytes read).
fn deliver<C, D>(
    session: &mut Session<C>,
    now: Instant,
    wire: &mut Vec<u8>,
    rx: &mut Vec<u8>,
    err: &mut Option<Error>,
    short_inputs: &mut usize,
) -> (bool, usize)
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: 'static,
{
    let (mut progress, mut read) = (false, 0);
    let mut buf = [0u8; 4096];
    loop {
        let mut moved = false;
        if !wire.is_empty() && err.is_none() {
            match session.handle_input(now, wire) {
                Ok(n) => {
                    if n < wire.len() {
                        *short_inputs += 1;
                    }
                    wire.drain(..n);
                    moved |= n > 0;
                }
                Err(e) => {
                    *err = Some(e);
                    progress = true;
                }
            }
        }
        while let PlainRead::Data(n) = session.read_plaintext(&mut buf) {
            rx.extend_from_slice(&buf[..n]);
            read += n;
            moved = true;
        }
        progress |= moved;
        if !moved {
            return (progress, read);
        }
    }
}

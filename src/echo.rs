//! A TCP test app with three modes, used by `paf echo` and the stack tests on either stack:
//! [`Mode::Echo`] sends every byte back and closes after the peer closes and everything is
//! flushed; [`Mode::Discard`] reads and drops; [`Mode::Source`] sends a fixed number of pattern
//! bytes and closes (the throughput measurements use the last two).

use crate::runtime::IdMap;
use std::net::SocketAddr;

use net::{ConnId, ListenError, ListenerId, RecvError};

use crate::runtime::{App, Cx};

/// Bytes read per `recv` call.
const CHUNK: usize = 16 * 1024;
/// Bytes held per connection before reading stops (backpressure).
const MAX_PENDING: usize = 256 * 1024;

/// What the app does with a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Send every byte back.
    #[default]
    Echo,
    /// Read and drop everything.
    Discard,
    /// Send this many bytes (a repeating 0..=255 pattern), then close.
    Source(u64),
}

#[derive(Default)]
struct Conn {
    pending: Vec<u8>,
    eof: bool,
    /// Source mode: bytes still to generate.
    to_send: u64,
}

/// The echo app. Counters are public for tests.
#[derive(Default)]
pub struct Echo {
    /// What to do with each connection.
    pub mode: Mode,
    conns: IdMap<ConnId, Conn>,
    /// Connections accepted so far.
    pub accepted: u64,
    /// Bytes echoed so far.
    pub echoed: u64,
}

impl Echo {
    /// Open the listener; used as the setup step of [`crate::Runtime::add`].
    ///
    /// # Errors
    /// The port cannot be listened on.
    pub fn listen(
        &mut self,
        cx: &mut Cx<'_>,
        port: u16,
        backlog: usize,
    ) -> Result<ListenerId, ListenError> {
        cx.listen(port, backlog)
    }

    /// An app in `mode`.
    pub fn new(mode: Mode) -> Echo {
        Echo {
            mode,
            ..Echo::default()
        }
    }

    fn pump(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut buf = [0u8; CHUNK];
        loop {
            // Source mode: keep the pending buffer topped up from the pattern.
            while c.to_send > 0 && c.pending.len() < CHUNK {
                let n = c.to_send.min(CHUNK as u64) as usize;
                let start = c.pending.len();
                c.pending.extend((0..n).map(|k| ((start + k) % 256) as u8));
                c.to_send -= n as u64;
            }
            // Flush first, then read more only while there is room.
            while !c.pending.is_empty() {
                match cx.send(id, &c.pending) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.pending.drain(..n);
                        self.echoed += n as u64;
                    }
                    Err(_) => {
                        self.conns.remove(&id);
                        cx.abort(id);
                        return;
                    }
                }
            }
            if c.to_send > 0 && c.pending.is_empty() {
                continue;
            }
            if c.eof || c.pending.len() >= MAX_PENDING {
                break;
            }
            match cx.recv(id, &mut buf) {
                Ok(0) => break,
                Ok(n) if self.mode == Mode::Echo => c.pending.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(RecvError::Finished) => c.eof = true,
                Err(_) => {
                    self.conns.remove(&id);
                    cx.abort(id);
                    return;
                }
            }
        }
        let source_done = matches!(self.mode, Mode::Source(_)) && c.to_send == 0;
        if (c.eof || source_done) && c.pending.is_empty() {
            self.conns.remove(&id);
            cx.close(id);
        }
    }
}

impl App for Echo {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        log::debug!("echo: {conn} from {peer}");
        self.accepted += 1;
        let to_send = match self.mode {
            Mode::Source(n) => n,
            _ => 0,
        };
        self.conns.insert(
            conn,
            Conn {
                to_send,
                ..Conn::default()
            },
        );
        self.pump(cx, conn);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        self.pump(cx, conn);
    }
}

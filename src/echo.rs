//! A TCP echo app: every byte received is sent back; when the peer closes, pending bytes are
//! flushed and the connection is closed. Used by `paf echo` and the stack tests, on either stack.

use std::collections::HashMap;
use std::net::SocketAddr;

use net::{ConnId, ListenError, ListenerId, RecvError};

use crate::runtime::{App, Cx};

/// Bytes read per `recv` call.
const CHUNK: usize = 16 * 1024;
/// Bytes held per connection before reading stops (backpressure).
const MAX_PENDING: usize = 256 * 1024;

#[derive(Default)]
struct Conn {
    pending: Vec<u8>,
    eof: bool,
}

/// The echo app. Counters are public for tests.
#[derive(Default)]
pub struct Echo {
    conns: HashMap<ConnId, Conn>,
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

    fn pump(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut buf = [0u8; CHUNK];
        loop {
            // Flush first, then read more only while there is room.
            while !c.pending.is_empty() {
                match cx.net().send(id, &c.pending) {
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
            if c.eof || c.pending.len() >= MAX_PENDING {
                break;
            }
            match cx.net().recv(id, &mut buf) {
                Ok(0) => break,
                Ok(n) => c.pending.extend_from_slice(&buf[..n]),
                Err(RecvError::Finished) => c.eof = true,
                Err(_) => {
                    self.conns.remove(&id);
                    cx.abort(id);
                    return;
                }
            }
        }
        if c.eof && c.pending.is_empty() {
            self.conns.remove(&id);
            cx.close(id);
        }
    }
}

impl App for Echo {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        log::debug!("echo: {conn} from {peer}");
        self.accepted += 1;
        self.conns.insert(conn, Conn::default());
        self.pump(cx, conn);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        self.pump(cx, conn);
    }
}

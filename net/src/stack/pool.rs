//! Recycled TCP sockets: a socket whose connection is over is reset and kept, so the next
//! connection reuses its buffers instead of allocating (and zeroing) new ones. Fresh buffers come
//! from `vec![0; n]`, which the allocator can back with untouched zero pages, so an idle
//! connection costs only the pages its traffic touched.

use smoltcp::socket::tcp;

use crate::clock::duration_to_smol;
use crate::config::TcpConfig;

/// Sockets kept for reuse at most (beyond that, finished sockets are freed).
pub(crate) const MAX_SPARE: usize = 4096;

#[derive(Default)]
pub(crate) struct Pool {
    spare: Vec<tcp::Socket<'static>>,
    /// Sockets handed out that came from the spare list (for tests and metrics).
    pub reused: u64,
}

impl Pool {
    /// A closed socket configured from `t`: a recycled one when available.
    pub fn take(&mut self, t: &TcpConfig) -> tcp::Socket<'static> {
        let mut s = match self.spare.pop() {
            Some(s) => {
                self.reused += 1;
                s
            }
            None => tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; t.rx_buffer]),
                tcp::SocketBuffer::new(vec![0; t.tx_buffer]),
            ),
        };
        s.set_nagle_enabled(t.nagle);
        s.set_ack_delay(t.ack_delay.map(duration_to_smol));
        s.set_timeout(t.timeout.map(duration_to_smol));
        s.set_keep_alive(t.keep_alive.map(duration_to_smol));
        // A fresh controller: a recycled socket must not inherit the last connection's window.
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s
    }

    /// Keep a socket removed from the socket set. It is closed here without sending anything
    /// (it is no longer in a set, so nothing is dispatched); `listen`/`connect` reset the rest.
    pub fn give(&mut self, mut s: tcp::Socket<'static>) {
        if self.spare.len() < MAX_SPARE {
            s.abort();
            self.spare.push(s);
        }
    }

    /// Sockets waiting for reuse.
    pub fn len(&self) -> usize {
        self.spare.len()
    }
}

//! Recycled TCP sockets: a socket whose connection is over is reset and kept, so the next
//! connection reuses its buffers instead of allocating (and zeroing) new ones. Fresh buffers come
//! from `vec![0; n]`, which the allocator can back with untouched zero pages, so an idle
//! connection costs only the pages its traffic touched.

use smoltcp::socket::tcp;

use crate::clock::duration_to_smol;
use crate::config::TcpConfig;

/// Buffer memory kept in spare sockets at most (beyond that, finished sockets are freed): reuse
/// saves the allocation and the page faults of a fresh buffer, but a recycled buffer keeps the
/// pages its last connection touched.
pub(crate) const MAX_SPARE_BYTES: usize = 64 << 20;

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
        s.set_min_rto(duration_to_smol(t.min_rto));
        // A fresh controller: a recycled socket must not inherit the last connection's window.
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s
    }

    /// Keep a socket removed from the socket set. It is closed here without sending anything
    /// (it is no longer in a set, so nothing is dispatched); `listen`/`connect` reset the rest.
    pub fn give(&mut self, mut s: tcp::Socket<'static>) {
        let each = s.recv_capacity() + s.send_capacity();
        if (self.spare.len() + 1) * each <= MAX_SPARE_BYTES {
            s.abort();
            self.spare.push(s);
        }
    }

    /// Sockets waiting for reuse.
    pub fn len(&self) -> usize {
        self.spare.len()
    }
}

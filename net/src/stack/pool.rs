//! Recycled TCP sockets: a socket whose connection is over is reset and kept, so the next
//! connection reuses its buffers instead of allocating (and zeroing) new ones. Fresh buffers come
//! from `vec![0; n]`, which the allocator can back with untouched zero pages, so an idle
//! connection costs only the pages its traffic touched.

use smoltcp::socket::tcp;

use crate::clock::duration_to_smol;
use crate::config::TcpConfig;

/// Buffer memory kept in reserve at most, in spare sockets and parked buffers (beyond that,
/// finished sockets and parked buffers are freed): reuse saves the allocation and the page
/// faults of a fresh buffer, but a recycled buffer keeps the pages its last connection touched.
pub(crate) const MAX_SPARE_BYTES: usize = 64 << 20;

/// Spare sockets kept at most. Those that come back from TIME-WAIT have no buffers (they were
/// parked when it began) and cost only their state.
pub(crate) const MAX_SPARE_SOCKETS: usize = 4096;

/// A receive and a transmit buffer.
type Buffers = (tcp::SocketBuffer<'static>, tcp::SocketBuffer<'static>);

fn no_buffer() -> tcp::SocketBuffer<'static> {
    tcp::SocketBuffer::new(Vec::new())
}

#[derive(Default)]
pub(crate) struct Pool {
    /// Finished sockets, with their buffers or (from TIME-WAIT) without.
    spare: Vec<tcp::Socket<'static>>,
    /// Buffers taken from sockets in TIME-WAIT ([`park`](Self::park)), for the next sockets.
    parked: Vec<Buffers>,
    /// The capacity of the buffers in `spare` and `parked`.
    bytes: usize,
    /// Sockets handed out that came from the spare list (for tests and metrics).
    pub reused: u64,
}

impl Pool {
    /// A closed socket configured from `t`: a recycled one when available, with buffers of
    /// the configured sizes (parked ones when there are).
    pub fn take(&mut self, t: &TcpConfig) -> tcp::Socket<'static> {
        let mut s = match self.spare.pop() {
            Some(s) => {
                self.reused += 1;
                self.bytes -= s.recv_capacity() + s.send_capacity();
                s
            }
            None => tcp::Socket::new(no_buffer(), no_buffer()),
        };
        if (s.recv_capacity(), s.send_capacity()) != (t.rx_buffer, t.tx_buffer) {
            let (rx, tx) = self.buffers(t);
            s.replace_buffers(rx, tx);
        }
        s.set_nagle_enabled(t.nagle);
        s.set_ack_delay(t.ack_delay.map(duration_to_smol));
        s.set_timeout(t.timeout.map(duration_to_smol));
        s.set_keep_alive(t.keep_alive.map(duration_to_smol));
        s.set_min_rto(duration_to_smol(t.min_rto));
        // A fresh controller: a recycled socket must not inherit the last connection's window.
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s
    }

    /// Parked buffers of `t`'s sizes (others, from before a reload changed them, are freed),
    /// else fresh ones.
    fn buffers(&mut self, t: &TcpConfig) -> Buffers {
        while let Some((rx, tx)) = self.parked.pop() {
            self.bytes -= rx.capacity() + tx.capacity();
            if (rx.capacity(), tx.capacity()) == (t.rx_buffer, t.tx_buffer) {
                return (rx, tx);
            }
        }
        (
            tcp::SocketBuffer::new(vec![0; t.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; t.tx_buffer]),
        )
    }

    /// Keep a socket removed from the socket set. It is closed here without sending anything
    /// (it is no longer in a set, so nothing is dispatched); `listen`/`connect` reset the rest.
    pub fn give(&mut self, mut s: tcp::Socket<'static>) {
        let each = s.recv_capacity() + s.send_capacity();
        if self.spare.len() < MAX_SPARE_SOCKETS && self.bytes + each <= MAX_SPARE_BYTES {
            s.abort();
            self.bytes += each;
            self.spare.push(s);
        }
    }

    /// Takes the buffers of a socket that entered TIME-WAIT (it only answers a resent FIN
    /// until it ends) and leaves it empty ones: the buffers serve the next connection, or are
    /// freed when the reserve is full, instead of staying with the socket for the whole of
    /// TIME-WAIT. A connection per request otherwise holds a pair of buffers per connection
    /// of the last `TIME_WAIT`.
    pub fn park(&mut self, s: &mut tcp::Socket<'static>) {
        let (rx, tx) = s.replace_buffers(no_buffer(), no_buffer());
        let each = rx.capacity() + tx.capacity();
        if each > 0 && self.bytes + each <= MAX_SPARE_BYTES {
            self.bytes += each;
            self.parked.push((rx, tx));
        }
    }

    /// Sockets waiting for reuse.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    /// Buffer pairs parked from sockets in TIME-WAIT, waiting for reuse.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

//! The h2 crate's view of the connection: [`Wire`], an `AsyncRead + AsyncWrite` over two
//! in-memory buffers that the codec fills (peer bytes in) and drains (frames out), and the
//! [`Waker`] the codec polls h2 with.
//!
//! Nothing here blocks or sleeps: a read of an empty buffer is `Pending` (the codec drives h2
//! again whenever it feeds input), a write to a full buffer is `Pending` (again when the pipe
//! took output). Those are the only two things h2 ever waits for from its IO.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bytes between the pipe and h2.
#[derive(Debug, Default)]
pub(super) struct Bufs {
    /// Peer bytes h2 has not read yet.
    pub input: Vec<u8>,
    pub input_pos: usize,
    /// The peer's stream ended (read returns 0 once `input` is empty).
    pub eof: bool,
    /// Frames h2 wrote, not yet taken by the codec (which swaps the whole buffer out).
    pub out: Vec<u8>,
    /// `out` takes no more than this (h2 waits until the codec took it).
    pub out_cap: usize,
}

impl Bufs {
    pub fn pending_in(&self) -> usize {
        self.input.len() - self.input_pos
    }
}

/// The IO half handed to h2; shares [`Bufs`] with the codec (one thread, never re-entered:
/// h2 calls it only from inside the codec's own polls).
#[derive(Debug)]
pub(super) struct Wire(pub Rc<RefCell<Bufs>>);

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut b = self.0.borrow_mut();
        let n = b.pending_in().min(buf.remaining());
        if n == 0 {
            // `Ready` with nothing read is the end of the stream to h2.
            return if b.eof {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let at = b.input_pos;
        buf.put_slice(&b.input[at..at + n]);
        b.input_pos += n;
        if b.input_pos == b.input.len() {
            b.input.clear();
            b.input_pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut b = self.0.borrow_mut();
        let room = b.out_cap.saturating_sub(b.out.len());
        if room == 0 {
            return Poll::Pending;
        }
        let n = room.min(data.len());
        b.out.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Flushed means handed to the pipe, which sends it in the same pump.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A waker that only records that it was woken: every wake-up h2 can produce comes from a
/// call the codec made (input fed, output taken, a stream written or read), and the codec
/// drives h2 again at the end of each of those calls until nothing is woken.
#[derive(Debug, Default)]
pub(super) struct Flag(AtomicBool);

impl Flag {
    /// Whether it was woken since the last call; clears it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A [`Waker`] for `flag`.
pub(super) fn waker(flag: &Arc<Flag>) -> Waker {
    Waker::from(flag.clone())
}

/// The codec's side of the wire, shared by the server and client connections: h2's
/// [`Bufs`], the output being transmitted (taken from `bufs.out` whole, a swap rather than a
/// copy), and the [`Flag`] waker h2 is polled with.
#[derive(Debug)]
pub(super) struct Io {
    bufs: Rc<RefCell<Bufs>>,
    out: Vec<u8>,
    out_pos: usize,
    flag: Arc<Flag>,
    waker: Waker,
}

impl Io {
    /// Buffers whose output half takes at most `out_cap` bytes before h2 waits.
    pub fn new(out_cap: usize) -> Io {
        let flag = Arc::new(Flag::default());
        Io {
            bufs: Rc::new(RefCell::new(Bufs {
                out_cap,
                ..Bufs::default()
            })),
            out: Vec::new(),
            out_pos: 0,
            waker: waker(&flag),
            flag,
        }
    }

    /// The IO half to hand to h2.
    pub fn wire(&self) -> Wire {
        Wire(self.bufs.clone())
    }

    /// The waker to poll h2 with.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Whether h2 woke the waker since the last call; clears it.
    pub fn woke(&self) -> bool {
        self.flag.take()
    }

    /// Appends peer bytes, at most until `cap` are pending; returns how many were taken.
    pub fn feed(&self, bytes: &[u8], cap: usize) -> usize {
        let mut b = self.bufs.borrow_mut();
        let n = cap.saturating_sub(b.pending_in()).min(bytes.len());
        b.input.extend_from_slice(&bytes[..n]);
        n
    }

    /// Appends peer bytes for h2 (the caller bounds them).
    pub fn push(&self, bytes: &[u8]) {
        self.bufs.borrow_mut().input.extend_from_slice(bytes);
    }

    /// Peer bytes h2 has not read yet.
    pub fn pending_in(&self) -> usize {
        self.bufs.borrow().pending_in()
    }

    /// The peer's stream ended: h2 reads the end once the input is drained.
    pub fn set_eof(&self) {
        self.bufs.borrow_mut().eof = true;
    }

    /// Bytes ready to send.
    pub fn transmit(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Io::transmit`] were sent; returns how many of them counted.
    pub fn transmitted(&mut self, n: usize) -> usize {
        let n = n.min(self.out.len() - self.out_pos);
        self.out_pos += n;
        n
    }

    /// Output not yet transmitted, taken or still in h2's half.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos + self.bufs.borrow().out.len()
    }

    /// Takes what h2 wrote once everything before it was transmitted; returns whether new
    /// output starts waiting now.
    pub fn take_output(&mut self) -> bool {
        if self.out_pos < self.out.len() {
            return false;
        }
        self.out.clear();
        self.out_pos = 0;
        std::mem::swap(&mut self.out, &mut self.bufs.borrow_mut().out);
        !self.out.is_empty()
    }

    /// The last `n` bytes h2 wrote (still in its half, else in the half being transmitted).
    pub fn last_written(&self, n: usize) -> Vec<u8> {
        let b = self.bufs.borrow();
        let out = if b.out.is_empty() { &self.out } else { &b.out };
        out[out.len().saturating_sub(n)..].to_vec()
    }

    /// Drops every byte not transmitted yet.
    pub fn drop_output(&mut self) {
        self.bufs.borrow_mut().out.clear();
        self.out.clear();
        self.out_pos = 0;
    }
}

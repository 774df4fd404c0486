//! Workers' stacks on one multi-queue TAP: handing a frame to the stack that needs it.
//!
//! Each worker runs its own [`Stack`](super::Stack) on its own queue of the TAP, with the same
//! MAC and addresses. The tun driver picks the queue of a frame towards us by its flow table
//! (the queue that last sent a frame of the same symmetric flow hash, for 3 s), else by that
//! hash. That keeps most traffic where it belongs, but not all of it:
//!
//! - **Neighbours** (ARP, NDP solicitations and advertisements) carry no flow: the reply to one
//!   worker's ARP request lands on whichever queue the hash picks. Every such frame is
//!   processed where it arrives and a copy goes to every other worker, whose smoltcp learns
//!   the entry from it (and answers a request again: a duplicate reply the kernel ignores).
//! - **Outgoing TCP connections** (proxy upstreams, ACME, CONNECT targets): the worker's SYN
//!   records its queue for the flow, so the SYN-ACK comes back to it; but a connection idle for
//!   more than 3 s (a pooled upstream) loses that record, and its next segment goes where the
//!   hash says. Each worker therefore takes its local ports from its own share of the
//!   ephemeral range ([`share_of`]), and a segment to a local port of another worker's share is
//!   handed to that worker.
//! - **Incoming TCP connections** (to a listener's port) need nothing: the SYN lands on the
//!   hash's queue (or the flow table's), the worker that accepts it transmits on that queue,
//!   which records the same queue for the flow, so every later segment comes back to it, with
//!   or without the record.
//! - ICMP echo is answered by whichever worker gets it. DNS answers follow the flow record
//!   that the query (and each retransmission of it) wrote a moment before.
//!
//! A handed-over frame is copied once into a per-worker inbox (a mutex-guarded queue, bounded
//! by [`INBOX_FRAMES`]) and the worker is woken through a pipe registered on its loop's poll.
//! Both are off the hot path: only neighbour frames and wrong-queue segments take it.

use std::io;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::EPHEMERAL;

/// Frames an inbox holds before further hand-overs to it are dropped (TCP retransmits them; a
/// neighbour entry is asked for again).
pub const INBOX_FRAMES: usize = 4096;

struct Inbox {
    frames: Mutex<Vec<Vec<u8>>>,
    bell: mio::unix::pipe::Sender,
}

/// Counters of hand-overs, over all workers of a mesh.
#[derive(Debug, Default)]
struct Counts {
    handed: AtomicU64,
    dropped: AtomicU64,
}

/// One worker's place in a mesh of stacks: its index, the other workers' inboxes and its own.
/// Give it to the worker's stack with [`Stack::join`](super::Stack::join).
pub struct Peer {
    me: usize,
    inboxes: Arc<[Inbox]>,
    counts: Arc<Counts>,
    bell: mio::unix::pipe::Receiver,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("me", &self.me)
            .field("workers", &self.inboxes.len())
            .finish()
    }
}

/// A mesh of `n` workers: one [`Peer`] for each, in worker order.
///
/// # Errors
/// A wake-up pipe cannot be made.
pub fn mesh(n: usize) -> io::Result<Vec<Peer>> {
    let mut inboxes = Vec::with_capacity(n);
    let mut bells = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mio::unix::pipe::new()?;
        inboxes.push(Inbox {
            frames: Mutex::new(Vec::new()),
            bell: tx,
        });
        bells.push(rx);
    }
    let inboxes: Arc<[Inbox]> = inboxes.into();
    let counts = Arc::new(Counts::default());
    Ok(bells
        .into_iter()
        .enumerate()
        .map(|(me, bell)| Peer {
            me,
            inboxes: inboxes.clone(),
            counts: counts.clone(),
            bell,
        })
        .collect())
}

/// Which of `n` workers owns the local port `port`: its share of the ephemeral range, or `None`
/// outside that range (a listener's port, owned by whoever accepted the connection).
pub fn share_of(port: u16, n: usize) -> Option<usize> {
    if !EPHEMERAL.contains(&port) || n == 0 {
        return None;
    }
    let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    Some(usize::from(port - EPHEMERAL.start()) * n / span)
}

/// The local ports worker `k` of `n` takes for its outgoing connections ([`share_of`] is `k`
/// for each of them).
pub fn ports_of(k: usize, n: usize) -> RangeInclusive<u16> {
    let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    let first = (k * span).div_ceil(n);
    let end = ((k + 1) * span).div_ceil(n);
    let start = *EPHEMERAL.start() as usize;
    (start + first) as u16..=(start + end - 1) as u16
}

impl Peer {
    /// This worker's index.
    pub fn index(&self) -> usize {
        self.me
    }

    /// How many workers the mesh has.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Frames handed over between workers so far, and those dropped on a full inbox (over all
    /// workers of the mesh).
    pub fn handed_over(&self) -> (u64, u64) {
        (
            self.counts.handed.load(Ordering::Relaxed),
            self.counts.dropped.load(Ordering::Relaxed),
        )
    }

    /// The pipe whose readability means frames are waiting for this worker.
    pub(crate) fn bell(&mut self) -> &mut mio::unix::pipe::Receiver {
        &mut self.bell
    }

    /// Empty the wake-up pipe, then take the frames handed to this worker.
    pub(crate) fn take(&self, into: &mut Vec<Vec<u8>>) {
        let mut buf = [0u8; 64];
        while matches!(io::Read::read(&mut &self.bell, &mut buf), Ok(n) if n > 0) {}
        let mut frames = self.inboxes[self.me]
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        into.append(&mut frames);
    }

    /// Hand a copy of `frame` to worker `to`.
    pub(crate) fn send(&self, to: usize, frame: &[u8]) {
        let Some(inbox) = self.inboxes.get(to).filter(|_| to != self.me) else {
            return;
        };
        let mut frames = inbox.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if frames.len() >= INBOX_FRAMES {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        frames.push(frame.to_vec());
        let first = frames.len() == 1;
        drop(frames);
        self.counts.handed.fetch_add(1, Ordering::Relaxed);
        if first {
            // A full pipe means a wake-up is pending anyway.
            let _ = io::Write::write(&mut &inbox.bell, &[1]);
        }
    }

    /// Hand a copy of `frame` to every other worker.
    pub(crate) fn broadcast(&self, frame: &[u8]) {
        for k in 0..self.inboxes.len() {
            if k != self.me {
                self.send(k, frame);
            }
        }
    }
}

/// Whether an Ethernet frame teaches neighbours: ARP, or an NDP router or neighbour message
/// (ICMPv6 types 133–137, IPv6 without extension headers, as NDP sends them).
pub(crate) fn is_neighbour_frame(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x06]) => true,
        Some([0x86, 0xdd]) => {
            frame.get(20) == Some(&58) && frame.get(54).is_some_and(|t| (133..=137).contains(t))
        }
        _ => false,
    }
}

/// The destination port of an Ethernet frame carrying TCP (IPv4, or IPv6 without extension
/// headers).
pub(crate) fn tcp_destination(frame: &[u8]) -> Option<u16> {
    let (_, at) = crate::device::tcp_segment(frame)?;
    let p = frame.get(at + 2..at + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ephemeral_range_is_split_without_gaps_or_overlaps() {
        for n in [1, 2, 3, 4, 7, 16, 256] {
            let mut next = *EPHEMERAL.start();
            for k in 0..n {
                let r = ports_of(k, n);
                assert_eq!(*r.start(), next, "n={n} k={k}");
                assert!(r.start() <= r.end(), "n={n} k={k}");
                for p in [*r.start(), *r.end()] {
                    assert_eq!(share_of(p, n), Some(k), "n={n} k={k} port {p}");
                }
                next = r.end().wrapping_add(1);
            }
            assert_eq!(next, 0, "n={n}: the last share ends at 65535");
        }
        assert_eq!(share_of(80, 4), None);
        assert_eq!(share_of(49151, 4), None);
    }

    #[test]
    fn neighbour_frames_are_arp_and_ndp_only() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(is_neighbour_frame(&arp));
        let mut v6 = vec![0u8; 14 + 40 + 24];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[20] = 58;
        for (kind, neighbour) in [
            (135, true),
            (136, true),
            (133, true),
            (128, false),
            (1, false),
        ] {
            v6[54] = kind;
            assert_eq!(is_neighbour_frame(&v6), neighbour, "ICMPv6 type {kind}");
        }
        v6[20] = 6;
        v6[54] = 135;
        assert!(!is_neighbour_frame(&v6), "TCP");
    }

    #[test]
    fn a_handed_frame_reaches_its_worker_only() {
        let peers = mesh(3).unwrap();
        peers[0].send(2, b"frame");
        peers[1].broadcast(b"arp");
        let mut got = Vec::new();
        peers[2].take(&mut got);
        assert_eq!(got, vec![b"frame".to_vec(), b"arp".to_vec()]);
        got.clear();
        peers[0].take(&mut got);
        assert_eq!(got, vec![b"arp".to_vec()]);
        got.clear();
        peers[1].take(&mut got);
        assert!(got.is_empty(), "nothing to itself");
        assert_eq!(peers[0].handed_over(), (3, 0));
    }
}

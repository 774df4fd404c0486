//! Workers' stacks on one multi-queue TAP: handing a frame to the stack that needs it, and one
//! DHCP lease for all of them.
//!
//! Each worker runs its own [`Stack`](super::Stack) on its own queue of the TAP, with the same
//! MAC and addresses. The tun driver picks the queue of a frame towards us by its flow table
//! (the queue that last sent a frame of the same symmetric flow hash, for 3 s), else by that
//! hash. That keeps most traffic where it belongs, but not all of it (`frames::route` decides,
//! from the headers only):
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
//! - **ICMP errors** (destination unreachable, fragmentation needed / packet too big, time
//!   exceeded, parameter problem) quote the packet that caused them. One quoting a TCP segment
//!   from a local port of another worker's share goes to that worker; one quoting the DHCP
//!   client's UDP (port 68) goes to worker 0. The others (about a listener's connection, or a
//!   DNS query, whose port smoltcp picks at random) stay where they land: nothing in their
//!   headers names the worker. (smoltcp 0.14 does not act on ICMP errors for TCP or UDP
//!   sockets yet; they are placed where a socket that does would be.) ICMP echo is answered
//!   by whichever worker gets it.
//! - **DHCP** (IPv4 configured by DHCP): worker 0 alone runs the client. A DHCP reply (UDP
//!   from port 67 to port 68) landing on another worker's queue is handed to worker 0, which
//!   publishes every change of its lease (taken, renewed with other values, lost) through the
//!   mesh; every other worker applies it to its own stack: the
//!   address and prefix, the default route, the DNS servers.
//! - DNS answers follow the flow record that the query (and each retransmission of it) wrote
//!   a moment before.
//!
//! An ICMP error whose quote is cut short of the quoted header and ports, or a DHCP reply that
//! does not parse, is dropped before anyone processes it and counted
//! ([`HandOvers::malformed`]).
//!
//! A handed-over frame is copied once into a per-worker inbox (a mutex-guarded queue, bounded
//! by [`INBOX_FRAMES`]) and the worker is woken through a pipe registered on its loop's poll.
//! Both are off the hot path: only neighbour frames, wrong-queue segments, ICMP errors and
//! DHCP replies take it. [`Counters`] reads the hand-overs from any thread (`/metrics`).

mod frames;

use std::io;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use smoltcp::wire::Ipv4Cidr;

use super::EPHEMERAL;
pub(crate) use frames::{route, Route};

/// Frames an inbox holds before further hand-overs to it are dropped (TCP retransmits them; a
/// neighbour entry is asked for again; a DHCP client retries).
pub const INBOX_FRAMES: usize = 4096;

/// What a handed-over frame was, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// ARP or NDP, copied to every other worker.
    Neighbour,
    /// A TCP segment for a local port of another worker's share.
    Tcp,
    /// An ICMP or ICMPv6 error quoting another worker's packet.
    Icmp,
    /// A DHCP reply, for worker 0's DHCP client.
    Dhcp,
}

impl Kind {
    /// Every kind, in the order of [`HandOvers::handed`].
    pub const ALL: [Kind; 4] = [Kind::Neighbour, Kind::Tcp, Kind::Icmp, Kind::Dhcp];

    /// The kind's name in metrics: `neighbour`, `tcp`, `icmp`, `dhcp`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Neighbour => "neighbour",
            Kind::Tcp => "tcp",
            Kind::Icmp => "icmp",
            Kind::Dhcp => "dhcp",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An IPv4 configuration learned by DHCP, as worker 0 publishes it to the other workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The leased address and its prefix.
    pub address: Ipv4Cidr,
    /// The default router, if the server gave one.
    pub router: Option<Ipv4Addr>,
    /// The DNS servers the server gave.
    pub dns_servers: Vec<Ipv4Addr>,
}

struct Inbox {
    frames: Mutex<Vec<Vec<u8>>>,
    bell: mio::unix::pipe::Sender,
}

impl Inbox {
    fn ring(&self) {
        // A full pipe means a wake-up is pending anyway.
        let _ = io::Write::write(&mut &self.bell, &[1]);
    }
}

/// Counters of hand-overs, over all workers of a mesh.
#[derive(Debug, Default)]
struct Counts {
    handed: [AtomicU64; 4],
    dropped: AtomicU64,
    malformed: AtomicU64,
}

/// What all workers of a mesh share.
struct Shared {
    inboxes: Box<[Inbox]>,
    counts: Arc<Counts>,
    /// Worker 0's lease (`None`: none, or lost).
    lease: Mutex<Option<Lease>>,
    /// How many times a lease was published (read without the lock on every pass).
    lease_generation: AtomicU64,
}

/// Hand-overs of a mesh so far, over all its workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOvers {
    /// Frames handed to another worker, by [`Kind`] (in the order of [`Kind::ALL`]); a
    /// neighbour frame counts once per worker it is copied to.
    pub handed: [u64; 4],
    /// Hand-overs dropped because the receiving worker's inbox was full.
    pub dropped: u64,
    /// Frames dropped as malformed before a hand-over: an ICMP error whose quote is cut short,
    /// a DHCP reply that does not parse.
    pub malformed: u64,
}

impl HandOvers {
    /// Frames handed over of one kind.
    pub fn of(&self, kind: Kind) -> u64 {
        self.handed[kind.index()]
    }
}

/// A handle on a mesh's hand-over counters, readable from any thread (for `/metrics`).
#[derive(Clone, Debug)]
pub struct Counters(Arc<Counts>);

impl Counters {
    /// The counters now.
    pub fn snapshot(&self) -> HandOvers {
        let c = &self.0;
        HandOvers {
            handed: std::array::from_fn(|k| c.handed[k].load(Ordering::Relaxed)),
            dropped: c.dropped.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }
}

/// One worker's place in a mesh of stacks: its index, the other workers' inboxes and its own,
/// and the lease board. Give it to the worker's stack with [`Stack::join`](super::Stack::join).
pub struct Peer {
    me: usize,
    shared: Arc<Shared>,
    bell: mio::unix::pipe::Receiver,
    /// The lease publication this worker applied last.
    lease_seen: u64,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("me", &self.me)
            .field("workers", &self.shared.inboxes.len())
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
    let shared = Arc::new(Shared {
        inboxes: inboxes.into(),
        counts: Arc::new(Counts::default()),
        lease: Mutex::new(None),
        lease_generation: AtomicU64::new(0),
    });
    Ok(bells
        .into_iter()
        .enumerate()
        .map(|(me, bell)| Peer {
            me,
            shared: shared.clone(),
            bell,
            lease_seen: 0,
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
        self.shared.inboxes.len()
    }

    /// The mesh's hand-over counters (shared by all its workers).
    pub fn counters(&self) -> Counters {
        Counters(self.shared.counts.clone())
    }

    /// The pipe whose readability means frames (or a lease) are waiting for this worker.
    pub(crate) fn bell(&mut self) -> &mut mio::unix::pipe::Receiver {
        &mut self.bell
    }

    /// Empty the wake-up pipe, then take the frames handed to this worker.
    pub(crate) fn take(&self, into: &mut Vec<Vec<u8>>) {
        let mut buf = [0u8; 64];
        while matches!(io::Read::read(&mut &self.bell, &mut buf), Ok(n) if n > 0) {}
        let mut frames = self.shared.inboxes[self.me]
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        into.append(&mut frames);
    }

    /// Hand a copy of `frame` to worker `to`, counted as `kind`.
    pub(crate) fn send(&self, to: usize, frame: &[u8], kind: Kind) {
        let Some(inbox) = self.shared.inboxes.get(to).filter(|_| to != self.me) else {
            return;
        };
        let counts = &self.shared.counts;
        let mut frames = inbox.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if frames.len() >= INBOX_FRAMES {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        frames.push(frame.to_vec());
        let first = frames.len() == 1;
        drop(frames);
        counts.handed[kind.index()].fetch_add(1, Ordering::Relaxed);
        if first {
            inbox.ring();
        }
    }

    /// Hand a copy of a neighbour frame to every other worker.
    pub(crate) fn broadcast(&self, frame: &[u8]) {
        for k in 0..self.workers() {
            if k != self.me {
                self.send(k, frame, Kind::Neighbour);
            }
        }
    }

    /// Count a frame dropped as malformed.
    pub(crate) fn malformed(&self) {
        self.shared.counts.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Publish worker 0's lease (`None`: lost) to every other worker and wake them; each
    /// applies it in its next pass (`lease_update`).
    pub(crate) fn publish_lease(&mut self, lease: Option<Lease>) {
        {
            let mut board = self
                .shared
                .lease
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *board = lease;
            // Under the lock: a reader that sees this generation reads this lease (or a later).
            self.lease_seen = self.shared.lease_generation.fetch_add(1, Ordering::AcqRel) + 1;
        }
        for (k, inbox) in self.shared.inboxes.iter().enumerate() {
            if k != self.me {
                inbox.ring();
            }
        }
    }

    /// The lease published since this worker last looked, if any: `Some(None)` when it was
    /// lost. Call it after `take` emptied the wake-up pipe, so that a publication
    /// after the check rings again.
    pub(crate) fn lease_update(&mut self) -> Option<Option<Lease>> {
        if self.shared.lease_generation.load(Ordering::Acquire) == self.lease_seen {
            return None;
        }
        let board = self
            .shared
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.lease_seen = self.shared.lease_generation.load(Ordering::Acquire);
        Some(board.clone())
    }
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
    fn a_handed_frame_reaches_its_worker_only() {
        let peers = mesh(3).unwrap();
        peers[0].send(2, b"frame", Kind::Tcp);
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
        let counts = peers[0].counters().snapshot();
        assert_eq!(counts.of(Kind::Tcp), 1);
        assert_eq!(counts.of(Kind::Neighbour), 2);
        assert_eq!((counts.dropped, counts.malformed), (0, 0));
        assert_eq!(
            peers[2].counters().snapshot(),
            counts,
            "one set of counters"
        );
    }

    #[test]
    fn a_full_inbox_drops_and_counts() {
        let peers = mesh(2).unwrap();
        for _ in 0..INBOX_FRAMES + 3 {
            peers[1].send(0, b"x", Kind::Dhcp);
        }
        let c = peers[1].counters().snapshot();
        assert_eq!((c.of(Kind::Dhcp), c.dropped), (INBOX_FRAMES as u64, 3));
        let mut got = Vec::new();
        peers[0].take(&mut got);
        assert_eq!(got.len(), INBOX_FRAMES);
    }

    #[test]
    fn a_published_lease_reaches_every_other_worker_once() {
        let mut peers = mesh(3).unwrap();
        let lease = Lease {
            address: Ipv4Cidr::new(Ipv4Addr::new(198, 18, 0, 7), 24),
            router: Some(Ipv4Addr::new(198, 18, 0, 1)),
            dns_servers: vec![Ipv4Addr::new(198, 18, 0, 1)],
        };
        assert_eq!(peers[1].lease_update(), None, "nothing published yet");
        peers[0].publish_lease(Some(lease.clone()));
        assert_eq!(peers[0].lease_update(), None, "the publisher has it");
        for k in [1, 2] {
            // Woken: its bell is readable.
            let mut buf = [0u8; 8];
            assert!(io::Read::read(&mut &peers[k].bell, &mut buf).is_ok_and(|n| n > 0));
            assert_eq!(peers[k].lease_update(), Some(Some(lease.clone())));
            assert_eq!(peers[k].lease_update(), None, "once");
        }
        peers[0].publish_lease(None);
        peers[0].publish_lease(Some(lease.clone()));
        assert_eq!(peers[1].lease_update(), Some(Some(lease)), "the latest");
        peers[0].publish_lease(None);
        assert_eq!(peers[2].lease_update(), Some(None), "lost");
    }
}

//! An in-memory Ethernet wire joining two stacks inside one process, for tests and examples.
//!
//! [`pair`] returns two [`WireEnd`]s. Each direction has its own seeded fault injector
//! ([`Faults`]: drop, duplicate, reorder, corrupt, latency and a rate limit), so a run under a
//! fixed seed sees the same faults frame for frame. Time is the smoltcp timestamp the stack passes
//! to the device, so the wire works on a virtual clock as well as on a real one.
//!
//! The two ends may live on different threads (each stack in its own loop): the queues sit behind
//! a mutex, and [`WireEnd::set_notify`] registers a callback (e.g. a mio `Waker`) run whenever a
//! frame is queued towards that end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smoltcp::time::Instant as SmolInstant;

use crate::clock::duration_to_smol;

/// Faults applied to the frames of one direction. Probabilities are in `0.0..=1.0`.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a frame is lost.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay` so that later frames overtake it.
    pub reorder: f64,
    /// Probability that one bit of a frame is flipped (checksums then reject it).
    pub corrupt: f64,
    /// One-way delay added to every frame.
    pub latency: Duration,
    /// Extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// Link rate in bytes per second (serialization delay); `None` is unlimited.
    pub rate: Option<u64>,
    /// Frames queued in flight before tail drop.
    pub capacity: usize,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            latency: Duration::ZERO,
            reorder_delay: Duration::from_millis(2),
            rate: None,
            capacity: 4096,
        }
    }
}

impl Faults {
    /// The same probability `p` of drop, duplication and reordering, as the foundation tests use.
    pub fn lossy(p: f64) -> Faults {
        Faults {
            drop: p,
            duplicate: p,
            reorder: p,
            ..Faults::default()
        }
    }
}

/// What happened on one direction of the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames offered by the sender.
    pub sent: u64,
    /// Frames handed to the receiver.
    pub delivered: u64,
    /// Frames dropped by the fault injector.
    pub dropped: u64,
    /// Extra copies queued.
    pub duplicated: u64,
    /// Frames held back.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames lost because the queue was full.
    pub overflowed: u64,
}

struct Frame {
    at: SmolInstant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Frame {}
impl PartialOrd for Frame {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Frame {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

type Notify = Arc<dyn Fn() + Send + Sync>;

struct Direction {
    queue: BinaryHeap<Reverse<Frame>>,
    faults: Faults,
    rng: SmallRng,
    seq: u64,
    busy_until: SmolInstant,
    spare: Vec<Vec<u8>>,
    stats: WireStats,
    notify: Option<Notify>,
}

impl Direction {
    fn new(faults: Faults, seed: u64) -> Direction {
        Direction {
            queue: BinaryHeap::new(),
            faults,
            rng: SmallRng::seed_from_u64(seed),
            seq: 0,
            busy_until: SmolInstant::ZERO,
            spare: Vec::new(),
            stats: WireStats::default(),
            notify: None,
        }
    }

    fn buffer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        v
    }

    fn push(&mut self, at: SmolInstant, data: Vec<u8>) {
        if self.queue.len() >= self.faults.capacity {
            self.stats.overflowed += 1;
            self.spare.push(data);
            return;
        }
        self.seq += 1;
        self.queue.push(Reverse(Frame {
            at,
            seq: self.seq,
            data,
        }));
    }

    /// Queue a frame sent at `now`, applying the faults. Returns whether anything was queued.
    fn send(&mut self, now: SmolInstant, frame: &[u8]) -> bool {
        self.stats.sent += 1;
        let f = &self.faults;
        let (drop, dup, reorder, corrupt) = (f.drop, f.duplicate, f.reorder, f.corrupt);
        // Always draw the same number of random values per frame so that changing one
        // probability does not shift the fate of every later frame.
        let draws: [f64; 4] = [
            self.rng.random(),
            self.rng.random(),
            self.rng.random(),
            self.rng.random(),
        ];
        let bit: usize = self.rng.random_range(0..frame.len().max(1) * 8);
        if draws[0] < drop {
            self.stats.dropped += 1;
            return false;
        }
        let mut at = now;
        if let Some(rate) = self.faults.rate.filter(|r| *r > 0) {
            let start = if self.busy_until > now {
                self.busy_until
            } else {
                now
            };
            let micros = (frame.len() as u64).saturating_mul(1_000_000) / rate;
            at = start + smoltcp::time::Duration::from_micros(micros);
            self.busy_until = at;
        }
        at += duration_to_smol(self.faults.latency);
        let mut data = self.buffer(frame);
        if draws[3] < corrupt && !data.is_empty() {
            data[bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        if draws[1] < dup {
            let copy = self.buffer(&data);
            self.push(at, copy);
            self.stats.duplicated += 1;
        }
        if draws[2] < reorder {
            at += duration_to_smol(self.faults.reorder_delay);
            self.stats.reordered += 1;
        }
        self.push(at, data);
        true
    }

    /// Grows the recycled buffers to the most this direction can ever use, `capacity + 2` (a
    /// full queue, plus a frame and its duplicate tail-dropped), each with room for `frame`
    /// bytes, and the queue to `capacity` frames.
    fn prefill(&mut self, frame: usize) {
        let most = self.faults.capacity + 2;
        self.queue.reserve(self.faults.capacity);
        self.spare.reserve(most);
        for v in &mut self.spare {
            v.reserve(frame);
        }
        while self.queue.len() + self.spare.len() < most {
            self.spare.push(Vec::with_capacity(frame));
        }
    }

    fn recv(&mut self, now: SmolInstant, buf: &mut [u8]) -> Option<usize> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(frame) = self.queue.pop()?;
        let n = frame.data.len().min(buf.len());
        buf[..n].copy_from_slice(&frame.data[..n]);
        self.spare.push(frame.data);
        self.stats.delivered += 1;
        Some(n)
    }
}

struct Shared {
    /// `dirs[i]` carries frames sent by end `i`.
    dirs: [Direction; 2],
}

/// One end of an in-memory wire. Send it to another thread if its stack runs there.
pub struct WireEnd {
    shared: Arc<Mutex<Shared>>,
    side: usize,
    mtu: usize,
}

impl fmt::Debug for WireEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireEnd")
            .field("side", &self.side)
            .field("mtu", &self.mtu)
            .finish()
    }
}

/// Read-only access to a wire's counters from any thread ([`WireEnd::monitor`]).
#[derive(Clone)]
pub struct WireMonitor {
    shared: Arc<Mutex<Shared>>,
}

impl fmt::Debug for WireMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.stats();
        f.debug_struct("WireMonitor")
            .field("a_to_b", &a)
            .field("b_to_a", &b)
            .finish()
    }
}

impl WireMonitor {
    /// Counters of the frames sent by end A, then of those sent by end B.
    pub fn stats(&self) -> [WireStats; 2] {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        [shared.dirs[0].stats, shared.dirs[1].stats]
    }
}

/// A wire with the given IP MTU, faults for frames sent by end A (`a_to_b`) and by end B
/// (`b_to_a`), and a seed for the fault injectors.
pub fn pair(mtu: usize, a_to_b: Faults, b_to_a: Faults, seed: u64) -> (WireEnd, WireEnd) {
    let shared = Arc::new(Mutex::new(Shared {
        dirs: [
            Direction::new(a_to_b, seed),
            Direction::new(b_to_a, seed ^ 0x9e37_79b9_7f4a_7c15),
        ],
    }));
    let end = |side| WireEnd {
        shared: shared.clone(),
        side,
        mtu,
    };
    (end(0), end(1))
}

impl WireEnd {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the queues inconsistent: keep going.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The IP MTU of the wire.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Run `notify` whenever a frame is queued towards this end (from either thread).
    pub fn set_notify(&self, notify: impl Fn() + Send + Sync + 'static) {
        self.lock().dirs[1 - self.side].notify = Some(Arc::new(notify));
    }

    /// Replace the faults applied to frames this end sends.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().dirs[self.side].faults = faults;
    }

    /// Counters of the frames this end sent.
    pub fn sent_stats(&self) -> WireStats {
        self.lock().dirs[self.side].stats
    }

    /// A handle on this wire's counters that outlives handing the end to a stack (which keeps
    /// the `WireEnd` inside its device).
    pub fn monitor(&self) -> WireMonitor {
        WireMonitor {
            shared: self.shared.clone(),
        }
    }

    /// Allocates up front every buffer the direction this end sends on will ever need: as many
    /// frame buffers of the wire's largest frame (MTU plus the Ethernet header) as its queue
    /// can hold, and the queue's room. The wire recycles frame buffers, but its pool otherwise
    /// grows to the most frames ever queued at once and each buffer to the largest frame it
    /// held; a test that measures the heap of the stacks over the wire fills it first so that
    /// growth is not counted. Sends nothing: counters and fault draws are untouched. Call it
    /// after [`WireEnd::set_faults`] (the queue's capacity is the faults').
    pub fn prefill_frame_pool(&self) {
        let frame = self.mtu + super::ETHERNET_HEADER;
        self.lock().dirs[self.side].prefill(frame);
    }

    /// When the next frame towards this end becomes deliverable.
    pub fn next_delivery(&self) -> Option<SmolInstant> {
        self.lock().dirs[1 - self.side].queue.peek().map(|f| f.0.at)
    }

    /// Take the next deliverable frame. `Ok(None)` when none is due at `now`.
    ///
    /// # Errors
    /// Never today; the signature matches the TAP's.
    pub fn recv(&self, now: SmolInstant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.lock().dirs[1 - self.side].recv(now, buf))
    }

    /// Put a frame on the wire at `now`. `Ok(false)` when the fault injector dropped it.
    ///
    /// # Errors
    /// Never today; the signature matches the TAP's.
    pub fn send(&self, now: SmolInstant, frame: &[u8]) -> io::Result<bool> {
        let (queued, notify) = {
            let mut shared = self.lock();
            let dir = &mut shared.dirs[self.side];
            (dir.send(now, frame), dir.notify.clone())
        };
        if queued {
            if let Some(n) = notify {
                n();
            }
        }
        // A dropped frame still "left" this end: report success to the device counters.
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> SmolInstant {
        SmolInstant::from_millis(ms)
    }

    #[test]
    fn frames_arrive_in_order_without_faults() {
        let (a, b) = pair(1500, Faults::default(), Faults::default(), 1);
        for i in 0..10u8 {
            a.send(t(0), &[i; 60]).unwrap();
        }
        let mut buf = [0u8; 1514];
        for i in 0..10u8 {
            assert_eq!(b.recv(t(0), &mut buf).unwrap(), Some(60));
            assert_eq!(buf[0], i);
        }
        assert_eq!(b.recv(t(0), &mut buf).unwrap(), None);
        assert_eq!(
            a.recv(t(0), &mut buf).unwrap(),
            None,
            "A receives only what B sends"
        );
    }

    #[test]
    fn latency_and_rate_delay_delivery() {
        let faults = Faults {
            latency: Duration::from_millis(5),
            rate: Some(1_000_000), // 1000 bytes = 1 ms
            ..Faults::default()
        };
        let (a, b) = pair(1500, faults, Faults::default(), 1);
        a.send(t(0), &[0; 1000]).unwrap();
        a.send(t(0), &[1; 1000]).unwrap();
        let mut buf = [0u8; 1514];
        assert_eq!(b.next_delivery(), Some(t(6)));
        assert_eq!(b.recv(t(5), &mut buf).unwrap(), None);
        assert_eq!(b.recv(t(6), &mut buf).unwrap(), Some(1000));
        assert_eq!(
            b.recv(t(6), &mut buf).unwrap(),
            None,
            "second frame serialized after"
        );
        assert_eq!(b.recv(t(7), &mut buf).unwrap(), Some(1000));
    }

    #[test]
    fn faults_are_reproducible_under_a_seed() {
        let run = |seed| {
            let (a, b) = pair(1500, Faults::lossy(0.2), Faults::default(), seed);
            let mut got = Vec::new();
            let mut buf = [0u8; 1514];
            for i in 0..200u16 {
                a.send(t(0), &i.to_be_bytes()).unwrap();
            }
            while let Some(n) = b.recv(t(1000), &mut buf).unwrap() {
                got.push(u16::from_be_bytes([buf[0], buf[1]]));
                assert_eq!(n, 2);
            }
            (got, a.sent_stats())
        };
        let (x, sx) = run(7);
        let (y, _) = run(7);
        let (z, _) = run(8);
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert!(
            sx.dropped > 10 && sx.duplicated > 10 && sx.reordered > 10,
            "{sx:?}"
        );
        assert_eq!(x.len() as u64, 200 - sx.dropped + sx.duplicated);
        assert!(x.windows(2).any(|w| w[0] > w[1]), "some frames overtaken");
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let faults = Faults {
            corrupt: 1.0,
            ..Faults::default()
        };
        let (a, b) = pair(1500, faults, Faults::default(), 3);
        let frame = [0u8; 64];
        a.send(t(0), &frame).unwrap();
        let mut buf = [0u8; 1514];
        let n = b.recv(t(0), &mut buf).unwrap().unwrap();
        let ones: u32 = buf[..n].iter().map(|b| b.count_ones()).sum();
        assert_eq!(ones, 1);
    }

    #[test]
    fn notify_runs_when_a_frame_is_queued_towards_the_end() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (a, b) = pair(1500, Faults::default(), Faults::default(), 1);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        b.set_notify(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        a.send(t(0), &[0; 60]).unwrap();
        b.send(t(0), &[0; 60]).unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_monitor_reads_both_directions() {
        let (a, b) = pair(1500, Faults::default(), Faults::lossy(1.0), 1);
        let m = a.monitor();
        a.send(t(0), &[0; 60]).unwrap();
        b.send(t(0), &[0; 60]).unwrap();
        drop((a, b));
        let [ab, ba] = m.stats();
        assert_eq!((ab.sent, ab.dropped), (1, 0));
        assert_eq!((ba.sent, ba.dropped), (1, 1));
    }

    /// After the pool is filled, a full queue each way (with tail drops) takes every buffer
    /// from the pool and gives it back: no frame buffer is allocated, and nothing is counted.
    #[test]
    fn a_filled_frame_pool_covers_a_full_queue() {
        let faults = Faults {
            capacity: 8,
            duplicate: 1.0,
            ..Faults::default()
        };
        let (a, b) = pair(1500, faults.clone(), faults, 1);
        a.prefill_frame_pool();
        b.prefill_frame_pool();
        let pools = |e: &WireEnd| {
            let s = e.lock();
            let d = &s.dirs[e.side];
            let small = d.spare.iter().filter(|v| v.capacity() < 1514).count();
            (d.spare.len(), small, d.stats)
        };
        assert_eq!(pools(&a), (10, 0, WireStats::default()));
        assert_eq!(pools(&b), (10, 0, WireStats::default()));
        let mut buf = [0u8; 1514];
        for end in [&a, &b] {
            for _ in 0..6 {
                end.send(t(0), &[7; 1514]).unwrap();
            }
            let (spare, _, stats) = pools(end);
            assert_eq!((spare, stats.overflowed), (2, 4), "{stats:?}");
        }
        for end in [&a, &b] {
            while end.recv(t(0), &mut buf).unwrap().is_some() {}
        }
        for end in [&a, &b] {
            assert_eq!(pools(end).0, 10, "every buffer back, none added");
        }
    }

    #[test]
    fn a_full_queue_tail_drops() {
        let faults = Faults {
            capacity: 3,
            ..Faults::default()
        };
        let (a, b) = pair(1500, faults, Faults::default(), 1);
        for _ in 0..5 {
            a.send(t(0), &[0; 60]).unwrap();
        }
        assert_eq!(a.sent_stats().overflowed, 2);
        let mut buf = [0u8; 1514];
        let mut n = 0;
        while b.recv(t(0), &mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}

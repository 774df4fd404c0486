//! When each shard next needs a pass without a frame or a call from above: smoltcp's `poll_at`
//! (retransmissions, delayed ACKs, keep-alives) and paf's own deadlines (TIME-WAIT ends,
//! lingering closes). A min-heap with lazy deletion, so that a pass and the loop's sleep cost
//! O(log shards) per change instead of a walk over every shard: with thousands of shards that
//! walk was the largest fixed cost of a pass.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::time::Instant;

#[derive(Debug)]
pub(crate) struct Wakeups {
    /// The one current wake-up time of each shard; heap entries that differ are stale.
    at: Vec<Option<Instant>>,
    /// How many shards have a wake-up time (the `Some`s in `at`).
    live: usize,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Wakeups {
    pub fn new(shards: usize) -> Wakeups {
        Wakeups {
            at: vec![None; shards],
            live: 0,
            heap: BinaryHeap::new(),
        }
    }

    /// Shard `k` next needs a pass at `at` (or never).
    pub fn set(&mut self, k: usize, at: Option<Instant>) {
        let was = self.at[k];
        if was == at {
            return;
        }
        self.at[k] = at;
        match (was, at) {
            (None, Some(_)) => self.live += 1,
            (Some(_), None) => self.live -= 1,
            _ => {}
        }
        if let Some(t) = at {
            self.heap.push(Reverse((t, k)));
            // Stale entries are dropped when they reach the top; bound them anyway, by the
            // shards that have a time rather than by all shards: a heap mostly of stale
            // entries (thousands of shards, a hundred busy ones whose delayed-ACK times move
            // every pass) made each pop walk a deep heap.
            if self.heap.len() > 2 * self.live + 64 {
                self.rebuild();
            }
        }
    }

    /// Move the shards due at `now` into `out` (each once); they have no wake-up time until set
    /// again.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<usize>) {
        while let Some(&Reverse((t, k))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            if self.at[k] == Some(t) {
                self.at[k] = None;
                self.live -= 1;
                out.push(k);
            }
        }
    }

    /// The earliest wake-up time of any shard.
    pub fn next(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, k))) = self.heap.peek() {
            if self.at[k] == Some(t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Drops the stale entries (in time linear in the heap, not in the shards).
    fn rebuild(&mut self) {
        let at = &self.at;
        self.heap.retain(|&Reverse((t, k))| at[k] == Some(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn due_shards_come_out_once_in_time_order_and_moved_times_count_once() {
        let mut w = Wakeups::new(4);
        w.set(0, Some(ms(30)));
        w.set(1, Some(ms(10)));
        w.set(2, Some(ms(20)));
        w.set(2, Some(ms(50))); // moved later: the 20 ms entry is stale
        w.set(3, Some(ms(5)));
        w.set(3, None); // cancelled
        assert_eq!(w.next(), Some(ms(10)));
        let mut due = Vec::new();
        w.take_due(ms(25), &mut due);
        assert_eq!(due, vec![1]);
        assert_eq!(w.next(), Some(ms(30)));
        due.clear();
        w.take_due(ms(100), &mut due);
        assert_eq!(due, vec![0, 2]);
        assert_eq!(w.next(), None);
        due.clear();
        w.take_due(ms(1000), &mut due);
        assert!(due.is_empty(), "taken shards are not due again until set");
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let mut w = Wakeups::new(8);
        for i in 0..10_000 {
            w.set(i % 8, Some(ms(i as i64)));
        }
        assert!(w.heap.len() <= 2 * 8 + 64 + 1, "{}", w.heap.len());
        let mut due = Vec::new();
        w.take_due(ms(20_000), &mut due);
        due.sort_unstable();
        assert_eq!(due, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_few_busy_shards_among_many_keep_the_heap_near_their_count() {
        // 4,096 shards, 3 with a time that moves on every pass (a delayed ACK re-armed): the
        // heap is bounded by the 3, not by the 4,096, and each shard still comes out once, at
        // its latest time.
        let mut w = Wakeups::new(4096);
        for i in 0..10_000i64 {
            for k in [7, 700, 4000] {
                w.set(k, Some(ms(1_000_000 + i * 3 + k as i64 % 3)));
            }
            assert!(w.heap.len() <= 2 * 3 + 64 + 1, "{}", w.heap.len());
        }
        w.set(700, None);
        assert_eq!(w.next(), Some(ms(1_000_000 + 9_999 * 3 + 7 % 3)));
        let mut due = Vec::new();
        w.take_due(ms(2_000_000), &mut due);
        assert_eq!(due, vec![7, 4000]);
        assert_eq!(w.live, 0);
        assert_eq!(w.next(), None);
    }
}

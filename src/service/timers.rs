//! Connection deadlines: a min-heap of `(deadline, conn)` with lazy invalidation.
//!
//! Each connection remembers the one deadline it has in the heap. A new deadline is pushed only
//! when it is earlier than the remembered one; a later one waits for the remembered entry to fire
//! (early wake-ups are harmless: the codec re-checks its timers and the connection is
//! rescheduled). Entries that no longer match their connection are dropped when popped, and the
//! heap is rebuilt from the live deadlines when stale entries outnumber them, so its size stays
//! proportional to the number of connections whatever the request rate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use net::ConnId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
}

impl Timers {
    /// The earliest entry (possibly stale: an early wake-up at worst).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Updates `slot` (the connection's remembered deadline) for a connection that now wants
    /// `deadline`: pushes an entry only when it is earlier than the remembered one.
    pub(crate) fn schedule(
        &mut self,
        conn: ConnId,
        slot: &mut Option<Instant>,
        deadline: Option<Instant>,
    ) {
        let Some(d) = deadline else {
            // Nothing wanted: the old entry fires early once and finds nothing to do.
            return;
        };
        if slot.is_some_and(|s| s <= d) {
            return;
        }
        *slot = Some(d);
        self.heap.push(Reverse((d, conn)));
    }

    /// Whether stale entries outnumber the `live` connections enough to rebuild.
    pub(crate) fn needs_rebuild(&self, live: usize) -> bool {
        self.heap.len() > 4 * live + 64
    }

    /// Replaces the heap with the connections' remembered deadlines.
    pub(crate) fn rebuild(&mut self, live: impl Iterator<Item = (Instant, ConnId)>) {
        self.heap = live.map(Reverse).collect();
    }

    /// Pops the next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId)> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Number of entries, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_deadlines_wait_for_the_earlier_entry_and_the_heap_stays_bounded() {
        let t0 = net::clock::origin();
        let s = Duration::from_secs;
        let mut timers = Timers::default();
        let mut slot = None;
        let c = ConnId(1);
        timers.schedule(c, &mut slot, Some(t0 + s(75)));
        // Later: kept as is. Earlier: pushed.
        timers.schedule(c, &mut slot, Some(t0 + s(80)));
        assert_eq!(timers.len(), 1);
        timers.schedule(c, &mut slot, Some(t0 + s(60)));
        assert_eq!((timers.len(), slot), (2, Some(t0 + s(60))));
        assert_eq!(timers.next(), Some(t0 + s(60)));
        assert_eq!(timers.pop_due(t0 + s(59)), None);
        assert_eq!(timers.pop_due(t0 + s(60)), Some((t0 + s(60), c)));
        // Many decreasing deadlines for one connection: rebuilt from the live one.
        let mut slot = None;
        for i in 0..1000 {
            timers.schedule(c, &mut slot, Some(t0 + s(1000 - i)));
            if timers.needs_rebuild(1) {
                timers.rebuild(slot.map(|t| (t, c)).into_iter());
            }
            assert!(timers.len() <= 4 + 64 + 1);
        }
        assert_eq!(timers.next(), Some(t0 + s(1)));
    }
}

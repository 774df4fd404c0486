//! Where a runtime gets its time: the OS's clocks, a virtual clock for tests, and the pass time
//! that code on the loop's thread reads outside callbacks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Where a [`Runtime`](super::Runtime) gets its time: read when a pass starts and before the loop sleeps, never
/// by the apps.
pub trait Clock {
    /// The monotonic time now.
    fn now(&self) -> Instant;
    /// The wall-clock time at `now` (for `Date` headers and logs).
    fn wall(&self, now: Instant) -> SystemTime;
    /// A virtual clock moves only when its owner moves it: the loop must never sleep on it.
    fn is_virtual(&self) -> bool {
        false
    }
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self, _now: Instant) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told ([`VirtualClock::advance`], [`VirtualClock::set`]). Clones
/// share one time, so two runtimes joined by the in-memory wire can run on the same clock. Its
/// wall clock starts at 2026-01-01T00:00:00Z.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    now: Arc<Mutex<Instant>>,
    start: Instant,
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock::new()
    }
}

impl VirtualClock {
    /// Seconds from the Unix epoch to the wall-clock start.
    const WALL_START: u64 = 1_767_225_600;

    /// A clock at one second past the stacks' time origin (`net::clock::origin`).
    pub fn new() -> VirtualClock {
        let start = net::clock::origin() + Duration::from_secs(1);
        VirtualClock {
            now: Arc::new(Mutex::new(start)),
            start,
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += d;
    }

    /// Moves the clock to `t` if that is later than now (it never goes back).
    pub fn set(&self, t: Instant) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = (*now).max(t);
    }

    /// Time elapsed on this clock since it was made.
    pub fn elapsed(&self) -> Duration {
        self.now() - self.start
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wall(&self, now: Instant) -> SystemTime {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(VirtualClock::WALL_START)
            + now.saturating_duration_since(self.start)
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// The time of the loop's current (or last) pass, for code that runs on the loop's thread
/// outside a callback's [`Cx`](super::Cx): a `Reqd` answered from another app's callback, a handler's own
/// timers. Cheap to clone; every clone reads the same loop.
#[derive(Clone, Debug)]
pub struct PassTime(Rc<Cell<(Instant, SystemTime)>>);

impl PassTime {
    /// A pass time starting at `now` on `clock`.
    pub(crate) fn new(clock: &dyn Clock, now: Instant) -> PassTime {
        PassTime(Rc::new(Cell::new((now, clock.wall(now)))))
    }

    /// A new pass began at `now`.
    pub(crate) fn set(&self, clock: &dyn Clock, now: Instant) {
        self.0.set((now, clock.wall(now)));
    }

    /// The pass's monotonic time.
    pub fn now(&self) -> Instant {
        self.0.get().0
    }

    /// The pass's wall-clock time.
    pub fn wall(&self) -> SystemTime {
        self.0.get().1
    }
}

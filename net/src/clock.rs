//! Conversion between `std::time::Instant` (what callers pass in) and smoltcp's `Instant`.
//!
//! smoltcp counts time from an arbitrary origin. All stacks in a process share one origin (set the
//! first time it is needed) so that devices joining two stacks — the in-memory wire — agree on
//! delivery times. Virtual clocks work the same way: a test passes `origin() + offset`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The process-wide origin of smoltcp time. Fixed at the first call.
pub fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Convert a std instant into smoltcp time. Instants before the origin map to zero.
pub fn to_smol(now: Instant) -> smoltcp::time::Instant {
    let micros = now.saturating_duration_since(origin()).as_micros();
    smoltcp::time::Instant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
}

/// Convert smoltcp time back into a std instant.
pub fn from_smol(t: smoltcp::time::Instant) -> Instant {
    origin() + Duration::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// Convert a smoltcp duration into a std duration.
pub fn duration_from_smol(d: smoltcp::time::Duration) -> Duration {
    Duration::from_micros(d.total_micros())
}

/// Convert a std duration into a smoltcp duration (saturating).
pub fn duration_to_smol(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_to_the_microsecond() {
        let t = origin() + Duration::from_micros(1_234_567);
        assert_eq!(to_smol(t).total_micros(), 1_234_567);
        assert_eq!(from_smol(to_smol(t)), t);
    }

    #[test]
    fn before_origin_saturates_to_zero() {
        let o = origin();
        if let Some(before) = o.checked_sub(Duration::from_secs(1)) {
            assert_eq!(to_smol(before).total_micros(), 0);
        }
    }
}

//! Test support: two stacks joined by an in-memory wire, stepped together on a virtual clock
//! (after quinn-proto's `Pair`). Deterministic under a seed: no threads, no sleeping; time jumps
//! to the next thing either stack or the wire has to do.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::{Config, Ipv4Setting, Ipv6Setting};
use crate::device::{wire, Device, Faults, Link};
use crate::{Stack, Transport};

/// The client-side ("A") and server-side ("B") addresses of a [`Pair`].
pub const A_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The server-side address of a [`Pair`].
pub const B_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// IPv6 address of A.
pub const A_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1);
/// IPv6 address of B.
pub const B_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 2);

/// A stack configuration for one end of a pair (`a = true` for A).
pub fn config(a: bool, seed: u64) -> Config {
    let (v4, v6, last) = if a { (A_V4, A_V6, 1) } else { (B_V4, B_V6, 2) };
    Config {
        mac: [0x02, 0, 0xc6, 0x12, 0, last],
        ipv4: Ipv4Setting::Static {
            addr: v4,
            prefix: 24,
            gateway: None,
        },
        ipv6: Ipv6Setting::Static {
            addr: v6,
            prefix: 64,
            gateway: None,
        },
        seed: Some(seed ^ u64::from(last)),
        ..Config::default()
    }
}

/// Two stacks over a wire, on a virtual clock.
pub struct Pair {
    /// The "client" stack (198.18.0.1).
    pub a: Stack,
    /// The "server" stack (198.18.0.2).
    pub b: Stack,
    /// The virtual now.
    pub now: Instant,
}

impl Pair {
    /// A pair with the given faults on each direction, MTU and seed, and the default
    /// configurations from [`config`] adjusted by `tune`.
    pub fn new(
        mtu: usize,
        a_to_b: Faults,
        b_to_a: Faults,
        seed: u64,
        tune: impl Fn(&mut Config),
    ) -> Pair {
        let (wa, wb) = wire::pair(mtu, a_to_b, b_to_a, seed);
        let now = crate::clock::origin() + Duration::from_secs(1);
        let mut ca = config(true, seed);
        let mut cb = config(false, seed);
        tune(&mut ca);
        tune(&mut cb);
        let a = Stack::new(ca, Device::new(Link::Wire(wa)), now).expect("valid config");
        let b = Stack::new(cb, Device::new(Link::Wire(wb)), now).expect("valid config");
        Pair { a, b, now }
    }

    /// Poll both stacks at the current virtual time.
    pub fn poll(&mut self) {
        self.a.poll(self.now);
        self.b.poll(self.now);
    }

    /// Advance the virtual clock to the earliest time either stack has work, at most `max`.
    /// Returns the step taken.
    pub fn advance(&mut self, max: Duration) -> Duration {
        let da = self.a.poll_delay(self.now);
        let db = self.b.poll_delay(self.now);
        let step = match (da, db) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => max,
        }
        .min(max);
        self.now += step;
        step
    }
}

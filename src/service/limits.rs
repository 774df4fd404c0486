//! Per-client limits ([`PerClient`](crate::http::PerClient)): open connections per client
//! address, and a request rate per client address (a token bucket).
//!
//! A client is its IPv4 address, or the /64 prefix of its IPv6 address (one subscriber's
//! network: an IPv6 client can change the low 64 bits at will). Memory stays bounded under a
//! flood of distinct addresses: a connection count lives only while the client has a
//! connection open, and the rate table holds at most [`MAX_CLIENTS`] buckets: when it is full,
//! buckets that have refilled (their clients are within their rate, so forgetting them changes
//! nothing) are dropped; if none has, a new client is not tracked until space comes back (its
//! requests pass, and [`Limiter::untracked`] counts them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::http::{PerClient, Rate};

/// Rate buckets kept at most (about 40 bytes each).
pub const MAX_CLIENTS: usize = 100_000;

/// A client as limits see it; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    pub(crate) fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(a) => Client::V4(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One service's per-client state.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    conns: HashMap<Client, u32>,
    buckets: HashMap<Client, Bucket>,
    /// Requests from clients the full rate table could not track.
    pub untracked: u64,
}

impl Limiter {
    /// A connection from `ip` opens: whether it is within `limits.max_connections_per_ip`
    /// (counted if so; call [`Limiter::close`] when it ends).
    pub(crate) fn open(&mut self, limits: &PerClient, ip: IpAddr) -> bool {
        let Some(max) = limits.max_connections_per_ip else {
            return true;
        };
        let n = self.conns.entry(Client::of(ip)).or_insert(0);
        if *n >= max {
            if *n == 0 {
                self.conns.remove(&Client::of(ip));
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`Limiter::open`] ended.
    pub(crate) fn close(&mut self, limits: &PerClient, ip: IpAddr) {
        if limits.max_connections_per_ip.is_none() {
            return;
        }
        let c = Client::of(ip);
        if let Some(n) = self.conns.get_mut(&c) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.conns.remove(&c);
            }
        }
    }

    /// A request from `ip` at `now`: `Ok` within the rate, else how long until the client may
    /// send one (for `Retry-After`).
    pub(crate) fn request(
        &mut self,
        limits: &PerClient,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(rate) = limits.rate else {
            return Ok(());
        };
        let c = Client::of(ip);
        if !self.buckets.contains_key(&c) && self.buckets.len() >= MAX_CLIENTS {
            self.buckets
                .retain(|_, b| refill(b, &rate, now) < f64::from(rate.burst));
            if self.buckets.len() >= MAX_CLIENTS {
                if self.untracked == 0 {
                    log::warn!(
                        "rate limit: {MAX_CLIENTS} clients over their rate at once; \
                         new clients pass untracked until some are within it"
                    );
                }
                self.untracked += 1;
                return Ok(());
            }
        }
        let b = self.buckets.entry(c).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        b.tokens = refill(b, &rate, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let per_token = rate.per.as_secs_f64() / f64::from(rate.requests.max(1));
        Err(Duration::from_secs_f64((1.0 - b.tokens) * per_token))
    }

    /// Clients with a connection open (with a cap set), and clients in the rate table.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.conns.len(), self.buckets.len())
    }
}

/// `b`'s tokens at `now` (not stored).
fn refill(b: &Bucket, rate: &Rate, now: Instant) -> f64 {
    let secs = now.saturating_duration_since(b.at).as_secs_f64();
    let per_sec = f64::from(rate.requests) / rate.per.as_secs_f64();
    (b.tokens + secs * per_sec).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limits(conns: Option<u32>, rate: Option<Rate>) -> PerClient {
        PerClient {
            max_connections_per_ip: conns,
            rate,
        }
    }

    #[test]
    fn connections_are_capped_per_client_and_forgotten_at_zero() {
        let l = limits(Some(2), None);
        let mut t = Limiter::default();
        let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
        let b = IpAddr::from(Ipv4Addr::new(198, 18, 0, 3));
        assert!(t.open(&l, a) && t.open(&l, a));
        assert!(!t.open(&l, a), "third from a");
        assert!(t.open(&l, b), "b is not a");
        t.close(&l, a);
        assert!(t.open(&l, a));
        for _ in 0..2 {
            t.close(&l, a);
        }
        t.close(&l, b);
        assert_eq!(t.sizes(), (0, 0));
        // An IPv6 /64 is one client; a v4-mapped address is the v4 client.
        let v6 = |low: u16| IpAddr::from(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, low));
        assert!(t.open(&l, v6(1)) && t.open(&l, v6(2)));
        assert!(!t.open(&l, v6(3)));
        let mapped = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
        assert!(t.open(&l, mapped) && t.open(&l, a));
        assert!(!t.open(&l, a));
    }

    #[test]
    fn the_rate_allows_a_burst_then_its_pace_with_a_retry_after() {
        let rate = Rate {
            requests: 10,
            per: Duration::from_secs(1),
            burst: 5,
        };
        let l = limits(None, Some(rate));
        let mut t = Limiter::default();
        let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.request(&l, a, t0), Ok(()));
        }
        let wait = t.request(&l, a, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another client is not affected.
        let b = IpAddr::from(Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(t.request(&l, b, t0), Ok(()));
        // 10 a second: one more after 100 ms, five after a second (the burst), not six.
        assert_eq!(t.request(&l, a, t0 + Duration::from_millis(100)), Ok(()));
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..5 {
            assert_eq!(t.request(&l, a, t1), Ok(()));
        }
        assert!(t.request(&l, a, t1).is_err());
    }

    #[test]
    fn a_flood_of_addresses_is_bounded_and_refilled_buckets_make_room() {
        let rate = Rate {
            requests: 1,
            per: Duration::from_secs(1),
            burst: 2,
        };
        let l = limits(None, Some(rate));
        let mut t = Limiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 + 10 {
            let _ = t.request(&l, IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)), t0);
        }
        assert_eq!(t.sizes().1, MAX_CLIENTS);
        assert_eq!(t.untracked, 10);
        // Two seconds later every bucket is full again: room for new clients.
        let later = t0 + Duration::from_secs(2);
        let fresh = IpAddr::from(Ipv4Addr::new(198, 18, 9, 9));
        assert_eq!(t.request(&l, fresh, later), Ok(()));
        assert_eq!(t.sizes().1, 1);
    }
}

//! Per-client limits ([`PerClient`](crate::http::PerClient)): open connections per client
//! address, and a request rate per client address (a token bucket), kept in a
//! [`ClientTable`] that every service serving a listener shares: the workers of a process
//! (one loop and stack per core, each accepting some of the listener's connections) and the
//! services a reload replaced. A client's limits are therefore exact however many workers its
//! connections land on, and a reload neither forgets nor doubles them.
//!
//! A client is its IPv4 address, or the /64 prefix of its IPv6 address (one subscriber's
//! network: an IPv6 client can change the low 64 bits at will); a v4-mapped IPv6 address is
//! its IPv4 client.
//!
//! Sharing without a global lock: the table is split into [`SHARDS`] shards by a keyed hash
//! of the client (the key is random per table, so a client cannot choose its shard), each
//! behind its own mutex, held for one map operation and never across IO. A connection's
//! accept and close and each request take one shard's lock once; with no limit set nothing
//! is locked.
//!
//! A client cut off for abuse (an HTTP/2 flood) is held back: its new connections wait
//! before paf reads them ([`ClientTable::held`]), 10 ms after its first cut, doubled at each
//! cut within [`ABUSE_MEMORY`], up to the listener's `abuse_delay`. An attacker that reconnects
//! the moment it is cut off then gets a few connections a second through instead of
//! thousands, each of which would cost a TCP and an HTTP/2 handshake before its next cut; its
//! other connections, and every other client, are not touched.
//!
//! Memory stays bounded under a flood of distinct addresses: a connection count lives only
//! while the client has a connection open, and each shard holds at most
//! [`MAX_CLIENTS`]` / `[`SHARDS`] rate buckets: when a shard is full, its buckets that have
//! refilled (their clients are within their rate, so forgetting them changes nothing) are
//! dropped; if none has, a new client of that shard is not tracked until space comes back (its
//! requests pass, and [`ClientTable::untracked`] counts them).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::http::{PerClient, Rate};

/// Rate buckets kept at most, over all shards (about 40 bytes each).
pub const MAX_CLIENTS: usize = 100_000;

/// Shards of a [`ClientTable`], each with its own lock.
pub const SHARDS: usize = 32;

/// How long the first cut off for abuse holds a client's new connections back.
pub const ABUSE_FIRST_DELAY: Duration = Duration::from_millis(10);

/// How long a client is remembered after its last cut off for abuse: a cut within it doubles
/// the delay, a cut after it starts over at [`ABUSE_FIRST_DELAY`].
pub const ABUSE_MEMORY: Duration = Duration::from_secs(10);

/// Rate buckets one shard keeps at most.
const PER_SHARD: usize = MAX_CLIENTS / SHARDS;

// [`ClientTable`]'s docs (and the README) give these numbers.
const _: () = assert!(SHARDS == 32 && PER_SHARD == 3_125 && PER_SHARD * SHARDS == MAX_CLIENTS);

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

/// A client cut off for abuse: how many times in a row, when last, and until when its new
/// connections wait.
#[derive(Clone, Copy, Debug)]
struct Abuse {
    cuts: u32,
    last: Instant,
    until: Instant,
}

impl Abuse {
    fn forgotten(&self, now: Instant) -> bool {
        now >= self.last + ABUSE_MEMORY && now >= self.until
    }
}

/// One shard: the clients whose keyed hash falls on it.
#[derive(Debug, Default)]
struct Shard {
    conns: HashMap<Client, u32>,
    buckets: HashMap<Client, Bucket>,
    abuse: HashMap<Client, Abuse>,
}

struct Table {
    /// Picks a client's shard (its own random key).
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    /// Requests from clients a full shard could not track.
    untracked: AtomicU64,
    /// Clients remembered for abuse, over all shards (none: no lock at accept).
    abusers: AtomicUsize,
}

/// The per-client state of a listener: connection counts and rate buckets, shared by every
/// service (and worker thread) that serves it. Clones share the table.
///
/// A client is its IPv4 address, or the /64 of its IPv6 address (a v4-mapped address is its
/// IPv4 client). The table is split into 32 shards by a keyed hash of the client (a random
/// key per table), each behind its own mutex, locked for one map operation per accept, close
/// or request, and only when the limit is set. A connection count lives while its client has
/// a connection open; each shard keeps at most 3,125 rate buckets (100,000 in all), dropping
/// refilled ones when full, and otherwise lets a new client of a full shard pass untracked
/// ([`ClientTable::untracked`]).
///
/// A service makes its own unless given one
/// ([`Service::client_table`](crate::service::Service::client_table)); a service that
/// [takes over](crate::service::take_over) from another shares that one's.
#[derive(Clone)]
pub struct ClientTable(Arc<Table>);

impl std::fmt::Debug for ClientTable {
    /// Not the clients (there may be 100,000): the shards and what went untracked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTable")
            .field("shards", &self.0.shards.len())
            .field("untracked", &self.untracked())
            .finish()
    }
}

impl Default for ClientTable {
    fn default() -> ClientTable {
        ClientTable::new()
    }
}

impl ClientTable {
    /// An empty table.
    pub fn new() -> ClientTable {
        ClientTable(Arc::new(Table {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            untracked: AtomicU64::new(0),
            abusers: AtomicUsize::new(0),
        }))
    }

    /// Requests that passed untracked because their client's shard of the rate table was
    /// full of clients over their rate.
    pub fn untracked(&self) -> u64 {
        self.0.untracked.load(Ordering::Relaxed)
    }

    /// The shard of `c`, locked. Each critical section is one map operation (or one sweep of
    /// a full shard), so a shard whose holder panicked is whole: take it.
    fn shard(&self, c: Client) -> MutexGuard<'_, Shard> {
        let i = self.0.hasher.hash_one(c) as usize % SHARDS;
        self.0.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection from `ip` opens: whether it is within `limits.max_connections_per_ip`
    /// (counted if so; call [`ClientTable::close`] with the same `limits` when it ends).
    pub(crate) fn open(&self, limits: &PerClient, ip: IpAddr) -> bool {
        let Some(max) = limits.max_connections_per_ip else {
            return true;
        };
        let c = Client::of(ip);
        let mut shard = self.shard(c);
        match shard.conns.get_mut(&c) {
            Some(n) if *n >= max => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if max == 0 => false,
            None => {
                shard.conns.insert(c, 1);
                true
            }
        }
    }

    /// A connection counted by [`ClientTable::open`] ended.
    pub(crate) fn close(&self, limits: &PerClient, ip: IpAddr) {
        if limits.max_connections_per_ip.is_none() {
            return;
        }
        let c = Client::of(ip);
        let mut shard = self.shard(c);
        if let Some(n) = shard.conns.get_mut(&c) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.conns.remove(&c);
            }
        }
    }

    /// A request from `ip` at `now`: `Ok` within the rate, else how long until the client may
    /// send one (for `Retry-After`).
    pub(crate) fn request(
        &self,
        limits: &PerClient,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(rate) = limits.rate else {
            return Ok(());
        };
        let c = Client::of(ip);
        let mut shard = self.shard(c);
        if !shard.buckets.contains_key(&c) && shard.buckets.len() >= PER_SHARD {
            shard
                .buckets
                .retain(|_, b| refill(b, &rate, now) < f64::from(rate.burst));
            if shard.buckets.len() >= PER_SHARD {
                drop(shard);
                if self.0.untracked.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "rate limit: a shard of the client table is full of clients over \
                         their rate ({PER_SHARD} of at most {MAX_CLIENTS}); its new clients \
                         pass untracked until some are within it"
                    );
                }
                return Ok(());
            }
        }
        let b = shard.buckets.entry(c).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        b.tokens = refill(b, &rate, now);
        // Workers' pass times differ slightly: never move a bucket's time back (the time in
        // between would be refilled twice).
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let per_token = rate.per.as_secs_f64() / f64::from(rate.requests.max(1));
        Err(Duration::try_from_secs_f64((1.0 - b.tokens) * per_token).unwrap_or(Duration::MAX))
    }

    /// The client of `ip` was cut off for abuse at `now`: hold its new connections back for
    /// [`ABUSE_FIRST_DELAY`], doubled for each cut within [`ABUSE_MEMORY`] of the last one, up
    /// to `max` (zero: nothing is held). A shard remembers at most 3,125 such clients;
    /// forgotten ones make room, and a new abuser of a full shard is not held.
    pub(crate) fn abused(&self, ip: IpAddr, now: Instant, max: Duration) {
        if max.is_zero() {
            return;
        }
        let c = Client::of(ip);
        let mut shard = self.shard(c);
        if !shard.abuse.contains_key(&c) && shard.abuse.len() >= PER_SHARD {
            let before = shard.abuse.len();
            shard.abuse.retain(|_, a| !a.forgotten(now));
            let gone = before - shard.abuse.len();
            self.0.abusers.fetch_sub(gone, Ordering::Relaxed);
            if shard.abuse.len() >= PER_SHARD {
                return;
            }
        }
        let fresh = Abuse {
            cuts: 0,
            last: now,
            until: now,
        };
        let a = shard.abuse.entry(c).or_insert_with(|| {
            self.0.abusers.fetch_add(1, Ordering::Relaxed);
            fresh
        });
        a.cuts = if now >= a.last + ABUSE_MEMORY || a.cuts == 0 {
            1
        } else {
            (a.cuts + 1).min(31)
        };
        let delay = ABUSE_FIRST_DELAY.saturating_mul(1 << (a.cuts - 1)).min(max);
        a.last = a.last.max(now);
        a.until = a.until.max(now + delay);
    }

    /// Until when a new connection from `ip` at `now` waits before it is read, if its client
    /// was cut off for abuse lately (see [`ClientTable::abused`]). Locks nothing while no
    /// client is remembered.
    pub(crate) fn held(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        if self.0.abusers.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let c = Client::of(ip);
        let mut shard = self.shard(c);
        let a = *shard.abuse.get(&c)?;
        if a.forgotten(now) {
            shard.abuse.remove(&c);
            self.0.abusers.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        (a.until > now).then_some(a.until)
    }

    /// Clients with a connection open (with a cap set), and clients in the rate table.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        self.0.shards.iter().fold((0, 0), |(c, b), s| {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            (c + s.conns.len(), b + s.buckets.len())
        })
    }
}

/// `b`'s tokens at `now` (not stored).
fn refill(b: &Bucket, rate: &Rate, now: Instant) -> f64 {
    let secs = now.saturating_duration_since(b.at).as_secs_f64();
    let per_sec = f64::from(rate.requests) / rate.per.as_secs_f64();
    (b.tokens + secs * per_sec).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests;

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn limits(conns: Option<u32>, rate: Option<Rate>) -> PerClient {
    PerClient {
        max_connections_per_ip: conns,
        rate,
        ..PerClient::default()
    }
}

#[test]
fn connections_are_capped_per_client_and_forgotten_at_zero() {
    let l = limits(Some(2), None);
    let t = ClientTable::new();
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
    // A cap of 0 refuses everyone and keeps nothing.
    let none = limits(Some(0), None);
    assert!(!t.open(&none, b));
    assert_eq!(t.sizes().0, 2);
}

#[test]
fn clones_share_the_table() {
    let l = limits(Some(1), None);
    let t = ClientTable::new();
    let other = t.clone();
    let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
    assert!(t.open(&l, a));
    assert!(!other.open(&l, a), "the clone sees the first connection");
    other.close(&l, a);
    assert!(t.open(&l, a));
    assert!(ClientTable::new().open(&l, a), "a new table is its own");
}

#[test]
fn the_rate_allows_a_burst_then_its_pace_with_a_retry_after() {
    let rate = Rate {
        requests: 10,
        per: Duration::from_secs(1),
        burst: 5,
    };
    let l = limits(None, Some(rate));
    let t = ClientTable::new();
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
fn an_earlier_time_from_another_worker_refills_nothing_twice() {
    let rate = Rate {
        requests: 1,
        per: Duration::from_secs(1),
        burst: 1,
    };
    let l = limits(None, Some(rate));
    let t = ClientTable::new();
    let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
    let t0 = Instant::now();
    // Worker 1 (its pass a second later) spends the token; worker 0's pass is older.
    assert_eq!(t.request(&l, a, t0 + Duration::from_secs(1)), Ok(()));
    assert!(t.request(&l, a, t0).is_err());
    // Half a second after worker 1's request: half a token, not the 1.5 s since t0's.
    assert!(t.request(&l, a, t0 + Duration::from_millis(1500)).is_err());
    assert_eq!(t.request(&l, a, t0 + Duration::from_millis(2000)), Ok(()));
}

#[test]
fn absurd_rates_never_panic() {
    let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
    let t0 = Instant::now();
    for (requests, per) in [
        (1, Duration::MAX),
        (0, Duration::from_secs(1)),
        (1, Duration::ZERO),
        (u32::MAX, Duration::from_nanos(1)),
    ] {
        let l = limits(
            None,
            Some(Rate {
                requests,
                per,
                burst: 1,
            }),
        );
        let t = ClientTable::new();
        for i in 0..3 {
            let _ = t.request(&l, a, t0 + Duration::from_millis(i));
        }
    }
}

#[test]
fn a_flood_of_addresses_is_bounded_and_refilled_buckets_make_room() {
    let rate = Rate {
        requests: 1,
        per: Duration::from_secs(1),
        burst: 2,
    };
    let l = limits(None, Some(rate));
    let t = ClientTable::new();
    let t0 = Instant::now();
    let sent = MAX_CLIENTS as u64 + 10;
    for i in 0..sent as u32 {
        let _ = t.request(&l, IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)), t0);
    }
    let tracked = t.sizes().1;
    assert!(tracked <= MAX_CLIENTS, "{tracked}");
    // Shards fill unevenly: a few hundred of the last clients land on full ones.
    assert!(tracked > MAX_CLIENTS * 95 / 100, "{tracked}");
    assert_eq!(t.untracked() + tracked as u64, sent);
    for s in t.0.shards.iter() {
        assert!(s.lock().unwrap().buckets.len() <= PER_SHARD);
    }
    // Two seconds later every bucket is full again: room for new clients, each tracked (a
    // burst of 2, then limited).
    let later = t0 + Duration::from_secs(2);
    let untracked = t.untracked();
    for i in 0..64u32 {
        let fresh = IpAddr::from(Ipv4Addr::from(0xc612_0900 + i));
        assert_eq!(t.request(&l, fresh, later), Ok(()));
        assert_eq!(t.request(&l, fresh, later), Ok(()));
        assert!(t.request(&l, fresh, later).is_err(), "{fresh} is tracked");
    }
    assert_eq!(t.untracked(), untracked);
    assert!(t.sizes().1 < tracked, "refilled buckets were dropped");
}

/// Threads counting the same client at once (workers accepting its connections) stay exact.
#[test]
fn concurrent_threads_counting_one_client_stay_exact() {
    const THREADS: usize = 8;
    const TRIES: usize = 5_000;
    let cap = 1_000;
    let l = limits(
        Some(cap),
        Some(Rate {
            requests: 1,
            per: Duration::from_secs(3600),
            burst: cap,
        }),
    );
    let t = ClientTable::new();
    let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
    let now = Instant::now();
    let barrier = std::sync::Barrier::new(THREADS);
    let (opened, admitted) = std::thread::scope(|s| {
        let runs: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let mut opened = 0;
                    let mut admitted = 0;
                    for _ in 0..TRIES {
                        opened += usize::from(t.open(&l, a));
                        admitted += usize::from(t.request(&l, a, now).is_ok());
                    }
                    (opened, admitted)
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .fold((0, 0), |(o, a), (o2, a2)| (o + o2, a + a2))
    });
    assert_eq!(opened, cap as usize, "connections admitted");
    assert_eq!(admitted, cap as usize, "requests admitted");
    // Closed from every thread at once: back to nothing.
    std::thread::scope(|s| {
        for k in 0..THREADS {
            let (t, l) = (&t, &l);
            s.spawn(move || {
                let share = cap as usize / THREADS + usize::from(k < cap as usize % THREADS);
                for _ in 0..share {
                    t.close(l, a);
                }
            });
        }
    });
    assert_eq!(t.sizes().0, 0);
    assert!(t.open(&l, a));
}

#[test]
fn a_client_cut_off_for_abuse_is_held_back_doubling_up_to_the_max_then_forgotten() {
    let t = ClientTable::new();
    let a = IpAddr::from(Ipv4Addr::new(198, 18, 0, 1));
    let b = IpAddr::from(Ipv4Addr::new(198, 18, 0, 3));
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let max = Duration::from_millis(100);
    assert_eq!(t.held(a, t0), None, "nobody abused yet");
    // Cut at 0: held 10 ms; cut again at 10: 20 ms; then 40, 80, and the max, 100.
    let mut at = 0;
    for want in [10, 20, 40, 80, 100, 100] {
        t.abused(a, ms(at), max);
        assert_eq!(t.held(a, ms(at)), Some(ms(at + want)), "cut at {at} ms");
        assert_eq!(t.held(a, ms(at + want)), None, "over at {} ms", at + want);
        at += want;
    }
    assert_eq!(t.held(b, ms(at - 1)), None, "another client is not held");
    // An IPv6 /64 is one client.
    let v6 = |low: u16| IpAddr::from(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, low));
    t.abused(v6(1), ms(at), max);
    assert_eq!(t.held(v6(2), ms(at)), Some(ms(at + 10)));
    // Ten quiet seconds after its last cut, a client starts over (and is forgotten).
    let later = at + 10_000;
    assert_eq!(t.held(a, ms(later)), None);
    assert_eq!(
        t.0.abusers.load(Ordering::Relaxed),
        1,
        "a forgotten, v6 remembered"
    );
    t.abused(a, ms(later), max);
    assert_eq!(t.held(a, ms(later)), Some(ms(later + 10)));
    // A zero max holds nobody.
    t.abused(b, ms(later), Duration::ZERO);
    assert_eq!(t.held(b, ms(later)), None);
}

#[test]
fn a_shard_full_of_abusers_makes_room_from_forgotten_ones_only() {
    let t = ClientTable::new();
    let t0 = Instant::now();
    let max = Duration::from_millis(250);
    // Enough distinct clients to fill at least one shard.
    let n = (MAX_CLIENTS * 2) as u32;
    for i in 0..n {
        t.abused(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)), t0, max);
    }
    let kept = t.0.abusers.load(Ordering::Relaxed);
    assert!(kept <= MAX_CLIENTS, "{kept}");
    assert!(kept > MAX_CLIENTS / 2, "{kept}");
    // Past their memory they are forgotten as new abusers come.
    let later = t0 + ABUSE_MEMORY + max;
    for i in 0..n {
        t.abused(IpAddr::from(Ipv4Addr::from(0x0b00_0000 + i)), later, max);
    }
    let fresh = IpAddr::from(Ipv4Addr::from(0x0b00_0000));
    assert!(t.held(fresh, later).is_some());
    assert!(t.0.abusers.load(Ordering::Relaxed) <= MAX_CLIENTS);
}

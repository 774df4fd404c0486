//! The tunnel's ends on their own: two fake owners that count their kicks.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;

struct Side {
    hook: Rc<Hook>,
    kicks: Rc<Cell<u32>>,
}

fn side() -> (Side, Upgraded) {
    let kicks = Rc::new(Cell::new(0));
    let k = kicks.clone();
    let (hook, up) = Hook::new(Rc::new(move || k.set(k.get() + 1)));
    (Side { hook, kicks }, up)
}

fn pair(config: &Config, counters: &Counters, now: Instant) -> (End, End, Side, Side) {
    let (sa, a) = side();
    let (sb, b) = side();
    assert!(matches!(sa.hook.take(), Taken::Waiting));
    join(a, b, config, counters);
    assert_eq!(
        (sa.kicks.get(), sb.kicks.get()),
        (1, 1),
        "both owners woken"
    );
    let (Taken::End(mut ea), Taken::End(mut eb)) = (sa.hook.take(), sb.hook.take()) else {
        panic!("joined ends");
    };
    ea.start(now);
    eb.start(now);
    (ea, eb, sa, sb)
}

/// Everything `e` has for its socket, as that socket would take it.
fn drain(e: &mut End, now: Instant) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        e.refill();
        let out = e.poll_transmit().to_vec();
        if out.is_empty() {
            return got;
        }
        got.extend_from_slice(&out);
        e.handle_transmitted(now, out.len());
    }
}

#[test]
fn bytes_cross_both_ways_and_are_counted() {
    let now = Instant::now();
    let counters = Counters::default();
    let (mut a, mut b, _sa, sb) = pair(&Config::default(), &counters, now);
    assert_eq!(a.handle_input(now, b"hello"), 5);
    assert_eq!(sb.kicks.get(), 2, "the other side is woken for new bytes");
    assert_eq!(b.handle_input(now, b"world!"), 6);
    assert_eq!(drain(&mut b, now), b"hello");
    assert_eq!(drain(&mut a, now), b"world!");
    let s = counters.stats();
    assert_eq!(
        (s.opened, s.open, s.bytes_a_to_b, s.bytes_b_to_a),
        (1, 1, 5, 6)
    );
    drop((a, b));
    assert_eq!(counters.stats().open, 0);
}

#[test]
fn a_full_direction_stops_reading_until_the_other_socket_takes_it() {
    let now = Instant::now();
    let config = Config {
        buffer_size: 8,
        ..Config::default()
    };
    let (mut a, mut b, sa, _sb) = pair(&config, &Counters::default(), now);
    assert_eq!(a.handle_input(now, b"0123456789"), 8);
    assert!(!a.wants_read());
    assert_eq!(a.handle_input(now, b"89"), 0);
    // b's socket takes the 8 bytes in its own buffer: a may read 8 more, no more.
    b.refill();
    let kicked = sa.kicks.get();
    assert!(kicked >= 2, "a's owner woken when room came back");
    assert!(a.wants_read());
    assert_eq!(a.handle_input(now, b"89abcdefXY"), 8);
    assert!(!a.wants_read());
    // Nothing more is taken while b's socket holds its 8.
    b.refill();
    assert!(!a.wants_read());
    assert_eq!(b.poll_transmit(), b"01234567");
    b.handle_transmitted(now, 8);
    assert!(a.wants_read());
    assert_eq!(drain(&mut b, now), b"89abcdef");
}

#[test]
fn a_fin_is_passed_on_after_the_bytes_before_it_then_both_close() {
    let now = Instant::now();
    let (mut a, mut b, _sa, _sb) = pair(&Config::default(), &Counters::default(), now);
    a.handle_input(now, b"last words");
    a.handle_eof(now);
    assert!(!a.wants_read());
    assert!(!b.wants_shutdown_write(), "bytes first");
    assert_eq!(drain(&mut b, now), b"last words");
    assert!(b.wants_shutdown_write());
    b.handle_shutdown_write();
    // Half closed: b's side still sends.
    assert!(!a.is_done() && !b.is_done());
    assert!(b.wants_read());
    b.handle_input(now, b"reply");
    assert_eq!(drain(&mut a, now), b"reply");
    b.handle_eof(now);
    assert!(a.wants_shutdown_write());
    a.handle_shutdown_write();
    assert!(a.is_done() && b.is_done());
}

#[test]
fn a_side_that_goes_away_closes_the_other_after_its_bytes() {
    let now = Instant::now();
    let (mut a, b, _sa, _sb) = pair(&Config::default(), &Counters::default(), now);
    let mut b = b;
    b.handle_input(now, b"bye");
    drop(b);
    assert!(!a.wants_read(), "nobody to read for");
    assert!(!a.is_done(), "its bytes first");
    assert_eq!(drain(&mut a, now), b"bye");
    assert!(a.is_done());
}

#[test]
fn no_byte_for_the_idle_timeout_closes_both_sides() {
    let t0 = Instant::now();
    let config = Config {
        idle_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let counters = Counters::default();
    let (mut a, mut b, _sa, sb) = pair(&config, &counters, t0);
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    let t1 = t0 + Duration::from_secs(3);
    a.handle_input(t1, b"x");
    assert_eq!(b.poll_timeout(), Some(t1 + Duration::from_secs(5)));
    a.handle_timeout(t1 + Duration::from_secs(4));
    assert!(!a.is_done());
    let kicks = sb.kicks.get();
    a.handle_timeout(t1 + Duration::from_secs(5));
    assert!(a.is_done() && b.is_done());
    assert!(sb.kicks.get() > kicks);
    assert_eq!(a.poll_timeout(), None);
    b.handle_timeout(t1 + Duration::from_secs(6));
    assert_eq!(counters.stats().idle_timeouts, 1, "counted once");
}

#[test]
fn an_upgraded_dropped_unjoined_is_abandoned() {
    let (s, up) = side();
    drop(up);
    assert_eq!(s.kicks.get(), 1);
    assert!(matches!(s.hook.take(), Taken::Abandoned));
}

//! The stack's bookkeeping between passes, on two stacks over the in-memory wire.

use std::net::SocketAddr;
use std::time::Duration;

use crate::device::Faults;
use crate::testing::{Pair, B_V4};
use crate::{ConnId, Event, Transport};

/// A connected pair: A's end and B's end of one connection.
fn connected(pair: &mut Pair) -> (ConnId, ConnId) {
    pair.b.listen(7001, 4).unwrap();
    accepted(pair)
}

/// A's end and B's end of a new connection to B's listener on port 7001.
fn accepted(pair: &mut Pair) -> (ConnId, ConnId) {
    let a = pair.a.connect(SocketAddr::new(B_V4.into(), 7001)).unwrap();
    for _ in 0..100 {
        pair.poll();
        while pair.a.poll_event().is_some() {}
        while let Some(ev) = pair.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                return (a, conn);
            }
        }
        pair.now += Duration::from_millis(1);
    }
    panic!("not accepted");
}

/// Polls both stacks `n` times, 1 ms apart, dropping their events.
fn run(pair: &mut Pair, n: usize) {
    for _ in 0..n {
        pair.poll();
        while pair.a.poll_event().is_some() {}
        while pair.b.poll_event().is_some() {}
        pair.now += Duration::from_millis(1);
    }
}

#[test]
fn a_read_asks_for_an_egress_pass_only_when_the_window_update_is_due() {
    let mut pair = Pair::new(1500, Faults::default(), Faults::default(), 5, |c| {
        c.tcp.timeout = None;
    });
    let (a, b) = connected(&mut pair);
    let mut buf = vec![0u8; 512 << 10];

    // A small request read from B's large buffer: nothing for B to send, no pass asked for.
    assert_eq!(pair.a.send(a, b"GET / HTTP/1.1\r\n\r\n").unwrap(), 18);
    run(&mut pair, 3);
    assert!(pair.b.pending.is_empty());
    assert_eq!(pair.b.recv(b, &mut buf).unwrap(), 18);
    assert!(
        pair.b.pending.is_empty(),
        "a read that leaves the window as advertised asked for an egress pass"
    );

    // A fills B's buffer until B advertises a zero window; B then reads it all: its shard is
    // marked, and the very next pass sends the window update that lets A go on.
    let mut sent = 0;
    for _ in 0..2000 {
        sent += pair.a.send(a, &buf[..64 << 10]).unwrap();
        run(&mut pair, 1);
        let e = pair.b.conns.open(b).unwrap();
        let s = pair.b.shards[e.shard].get::<smoltcp::socket::tcp::Socket>(e.handle);
        if s.recv_capacity() == s.recv_queue() {
            break;
        }
    }
    run(&mut pair, 5);
    let mut took = 0;
    while let Ok(n @ 1..) = pair.b.recv(b, &mut buf) {
        took += n;
    }
    assert!(took >= 200 << 10, "B's buffer held {took} bytes");
    assert!(
        !pair.b.pending.is_empty(),
        "the reopened window asked for no pass"
    );
    // One pass of each stack, no time passing: the update goes out and A sends again.
    let before = sent;
    pair.poll();
    pair.poll();
    sent += pair.a.send(a, &buf[..64 << 10]).unwrap();
    pair.poll();
    pair.poll();
    let mut more = 0;
    while let Ok(n @ 1..) = pair.b.recv(b, &mut buf) {
        more += n;
    }
    assert!(
        sent > before && more > 0,
        "A sent {} more, B took {more} more",
        sent - before
    );
}

#[test]
fn a_connection_whose_peer_went_silent_is_reported_once_its_timeout_gives_up() {
    // The TCP timeout closes the socket during egress, on a pass its timer alone started: the
    // look after egress must see it, or nothing would ever tell the owner (a closed socket has
    // no more timers, and no frame comes).
    let mut pair = Pair::new(1500, Faults::default(), Faults::default(), 7, |c| {
        c.tcp.timeout = Some(Duration::from_secs(3));
        c.tcp.keep_alive = None;
    });
    let (a, _b) = connected(&mut pair);
    // B is never polled again: A's data is retransmitted, unanswered, until A gives up.
    assert_eq!(pair.a.send(a, b"hello").unwrap(), 5);
    let start = pair.now;
    let mut told = None;
    for _ in 0..100_000 {
        pair.a.poll(pair.now);
        while let Some(ev) = pair.a.poll_event() {
            if ev == Event::Ready(a) && pair.a.readiness(a).closed && told.is_none() {
                told = Some(pair.now - start);
            }
        }
        if told.is_some() {
            break;
        }
        // Sleep as the loop does: until the stack's next time (A's own timers only).
        match pair.a.poll_delay(pair.now) {
            Some(d) => pair.now += d.max(Duration::from_millis(1)),
            None => break,
        }
    }
    let told = told.expect("the timed-out connection was never reported");
    assert!(
        told >= Duration::from_secs(3) && told < Duration::from_secs(5),
        "reported after {told:?}"
    );
    assert!(pair.a.readiness(a).reset, "{:?}", pair.a.readiness(a));
}

#[test]
fn a_socket_in_time_wait_lends_its_buffers_to_the_next_connections() {
    use super::table::Phase;
    use smoltcp::socket::tcp;
    let mut pair = Pair::new(1500, Faults::default(), Faults::default(), 5, |c| {
        c.tcp.timeout = None;
    });
    let (rx, tx) = (pair.b.config.tcp.rx_buffer, pair.b.config.tcp.tx_buffer);
    let buffers = |pair: &Pair, id: ConnId| {
        let e = pair.b.conns.get(id)?;
        let s = pair.b.shards[e.shard].get::<tcp::Socket>(e.handle);
        Some((e.phase, s.recv_capacity(), s.send_capacity()))
    };
    // B closes first, so its ends go through TIME-WAIT; each new connection gets buffers of
    // the configured size and carries a request.
    pair.b.listen(7001, 4).unwrap();
    let mut ended = Vec::new();
    for i in 0..12 {
        let (a, b) = accepted(&mut pair);
        assert!(matches!(buffers(&pair, b), Some((Phase::Open, r, t)) if (r, t) == (rx, tx)));
        let request = format!("GET /{i} HTTP/1.1\r\n\r\n");
        assert_eq!(pair.a.send(a, request.as_bytes()).unwrap(), request.len());
        run(&mut pair, 3);
        let mut buf = [0u8; 64];
        assert_eq!(pair.b.recv(b, &mut buf).unwrap(), request.len());
        assert_eq!(&buf[..request.len()], request.as_bytes());
        pair.b.close(b);
        run(&mut pair, 3);
        pair.a.close(a);
        run(&mut pair, 5);
        ended.push(b);
    }
    // Well inside TIME-WAIT: every ended connection is there, without buffers; the pairs wait
    // in the pool (the accepting sockets took some of them).
    for &b in &ended {
        let Some((phase, r, t)) = buffers(&pair, b) else {
            panic!("{b:?} left TIME-WAIT early");
        };
        assert!(matches!(phase, Phase::TimeWait { .. }), "{b:?}: {phase:?}");
        assert_eq!((r, t), (0, 0), "{b:?} kept its buffers in TIME-WAIT");
    }
    assert!(pair.b.stats().parked_buffers >= 1);
    // TIME-WAIT over: the sockets come back without buffers and are reused with new ones.
    run(&mut pair, super::TIME_WAIT.as_millis() as usize + 100);
    assert!(ended.iter().all(|&b| buffers(&pair, b).is_none()));
    assert!(pair.b.stats().spare_sockets >= 1);
    let reused = pair.b.stats().sockets_reused;
    for _ in 0..12 {
        let (a, b) = accepted(&mut pair);
        assert!(matches!(buffers(&pair, b), Some((Phase::Open, r, t)) if (r, t) == (rx, tx)));
        assert_eq!(pair.a.send(a, b"ping").unwrap(), 4);
        run(&mut pair, 3);
        let mut buf = [0u8; 8];
        assert_eq!(pair.b.recv(b, &mut buf).unwrap(), 4);
        pair.a.abort(a);
        pair.b.abort(b);
        run(&mut pair, 3);
    }
    assert!(pair.b.stats().sockets_reused > reused);
}

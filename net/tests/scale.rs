//! Scale on the userspace stack: 10,000 concurrent connections over the in-memory wire are all
//! accepted and served, every connection gets its own answer, and the stack returns to its
//! baseline socket count afterwards. Small TCP buffers keep the test's memory modest: the point
//! is the connection count, not the bandwidth.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use net::device::Faults;
use net::testing::{Pair, B_V4};
use net::{ConnId, Event, RecvError, Transport};

const CONNS: usize = 10_000;

#[test]
fn ten_thousand_concurrent_connections_are_all_served() {
    let mut pair = Pair::new(1500, Faults::default(), Faults::default(), 21, |c| {
        c.tcp.rx_buffer = 2048;
        c.tcp.tx_buffer = 2048;
    });
    // Every SYN of the burst is answered at once: as many half-open connections as clients.
    pair.b.listen(80, CONNS).unwrap();
    let baseline = pair.b.socket_count();
    let server = SocketAddr::new(B_V4.into(), 80);
    // Open them all before any is answered: they are concurrent, not sequential.
    let clients: Vec<ConnId> = (0..CONNS)
        .map(|_| pair.a.connect(server).unwrap())
        .collect();
    let index: HashMap<ConnId, usize> = clients.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut sent = vec![false; CONNS];
    let mut answer: Vec<Vec<u8>> = vec![Vec::new(); CONNS];
    let mut accepted = 0usize;
    let mut done = 0usize;
    let mut buf = [0u8; 64];
    // Requests held until every connection is established, so all 10,000 are open at once.
    let mut held: Vec<(ConnId, Vec<u8>)> = Vec::new();
    let mut peak_open = 0usize;
    for _ in 0..20_000 {
        pair.poll();
        // Server: echo the request's number back with a prefix, then close.
        while let Some(ev) = pair.b.poll_event() {
            let conn = match ev {
                Event::Accepted { conn, .. } => {
                    accepted += 1;
                    conn
                }
                Event::Ready(conn) => conn,
                Event::Resolved(_) => continue,
            };
            if let Ok(n) = pair.b.recv(conn, &mut buf) {
                if n > 0 {
                    held.push((conn, buf[..n].to_vec()));
                }
            }
        }
        if accepted == CONNS && held.len() == CONNS {
            peak_open = pair.b.socket_count() - baseline;
            for (conn, req) in held.drain(..) {
                let mut reply = b"re:".to_vec();
                reply.extend_from_slice(&req);
                assert_eq!(pair.b.send(conn, &reply).unwrap(), reply.len());
                pair.b.close(conn);
            }
        }
        // Clients: send once established, collect the answer until the server closes.
        while let Some(ev) = pair.a.poll_event() {
            let Event::Ready(c) = ev else { continue };
            let Some(&i) = index.get(&c) else { continue };
            if !sent[i] && pair.a.readiness(c).established {
                let msg = format!("{i}");
                assert_eq!(pair.a.send(c, msg.as_bytes()).unwrap(), msg.len());
                sent[i] = true;
            }
            loop {
                match pair.a.recv(c, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer[i].extend_from_slice(&buf[..n]),
                    Err(RecvError::Finished) => {
                        pair.a.close(c);
                        done += 1;
                        break;
                    }
                    Err(e) => panic!("client {i}: {e}"),
                }
            }
        }
        if done == CONNS {
            break;
        }
        pair.advance(Duration::from_millis(5));
    }
    assert_eq!(
        accepted,
        CONNS,
        "every connection accepted (done {done}, stats {:?})",
        pair.b.stats()
    );
    assert!(
        peak_open >= CONNS,
        "all {CONNS} were open at once (peak {peak_open})"
    );
    assert_eq!(done, CONNS, "every connection answered and closed");
    for (i, a) in answer.iter().enumerate() {
        assert_eq!(a, format!("re:{i}").as_bytes(), "connection {i}");
    }
    for _ in 0..200 {
        pair.poll();
        if pair.b.socket_count() == baseline && pair.a.socket_count() == 0 {
            break;
        }
        pair.now += Duration::from_millis(10);
    }
    assert_eq!(
        pair.b.socket_count(),
        baseline,
        "server back to its listener pool"
    );
    assert_eq!(pair.a.socket_count(), 0, "client sockets all gone");
}

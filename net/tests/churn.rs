//! Connection churn on the userspace stack: many short connections in a row are all served,
//! finished sockets are recycled (not reallocated), and the socket count returns to baseline.

use std::net::SocketAddr;
use std::time::Duration;

use net::device::Faults;
use net::testing::{Pair, B_V4};
use net::{Event, RecvError, Transport};

#[test]
fn thousand_short_connections_recycle_sockets_and_leave_nothing_behind() {
    let mut pair = Pair::new(1500, Faults::default(), Faults::default(), 5, |_| {});
    pair.b.listen(80, 4).unwrap();
    let baseline_b = pair.b.socket_count();
    let server = SocketAddr::new(B_V4.into(), 80);
    let mut buf = [0u8; 64];
    for i in 0..1000u32 {
        let c = pair.a.connect(server).unwrap();
        let mut served = false;
        let mut got = Vec::new();
        for _ in 0..400 {
            pair.poll();
            while let Some(ev) = pair.b.poll_event() {
                let conn = match ev {
                    Event::Accepted { conn, .. } | Event::Ready(conn) => conn,
                    Event::Resolved(_) => continue,
                };
                // Server: answer "ok" to whatever arrives, then close (server closes first, as
                // an HTTP server with Connection: close does).
                match pair.b.recv(conn, &mut buf) {
                    Ok(n) if n > 0 => {
                        pair.b.send(conn, b"ok").unwrap();
                        pair.b.close(conn);
                    }
                    Err(RecvError::Finished) => pair.b.close(conn),
                    _ => {}
                }
            }
            while pair.a.poll_event().is_some() {}
            if pair.a.readiness(c).established && !served {
                pair.a.send(c, format!("{i}").as_bytes()).unwrap();
                served = true;
            }
            match pair.a.recv(c, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(RecvError::Finished) => {
                    pair.a.close(c);
                    break;
                }
                Err(e) => panic!("connection {i}: {e}"),
            }
            // The test acts on every step, so the stacks always have work "now": move the
            // virtual clock on explicitly.
            pair.now += Duration::from_millis(1);
        }
        assert_eq!(got, b"ok", "connection {i}");
    }
    // Let the last FIN/ACK exchanges finish, and the last TIME-WAIT (1 s) expire.
    for _ in 0..200 {
        pair.poll();
        pair.now += Duration::from_millis(10);
    }
    assert_eq!(pair.a.socket_count(), 0, "client sockets left");
    assert_eq!(
        pair.b.socket_count(),
        baseline_b,
        "server sockets back to the listener pool"
    );
    // One connection about every 5 virtual milliseconds against a 1 s TIME-WAIT: about 200
    // server sockets are in TIME-WAIT at any time (the server closes first); every other one is
    // a recycled socket.
    let stats = pair.b.stats();
    assert!(stats.sockets_reused >= 750, "{stats:?}");
    assert!(
        stats.spare_sockets <= 250,
        "spare sockets stay bounded: {stats:?}"
    );
    assert!(pair.a.stats().sockets_reused >= 850, "{:?}", pair.a.stats());
}

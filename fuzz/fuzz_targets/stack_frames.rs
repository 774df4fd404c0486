//! The userspace stack fed arbitrary Ethernet frames (length-prefixed in the input) through the
//! in-memory wire, with a listener so that TCP paths are reached, polled on a virtual clock.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use net::device::{wire, Device, Faults, Link};
use net::{Event, Stack, Transport};

fuzz_target!(|data: &[u8]| {
    let (peer, ours) = wire::pair(1500, Faults::default(), Faults::default(), 1);
    let now0 = net::clock::origin() + Duration::from_secs(1);
    let mut stack = Stack::new(net::testing::config(false, 1), Device::new(Link::Wire(ours)), now0).unwrap();
    stack.listen(80, 2).unwrap();
    let mut now = now0;
    let mut rest = data;
    let mut buf = [0u8; 256];
    let mut conns = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        rest = &rest[2..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        let _ = peer.send(net::clock::to_smol(now), frame);
        stack.poll(now);
        while let Some(ev) = stack.poll_event() {
            let c = match ev {
                Event::Accepted { conn, .. } => {
                    conns.push(conn);
                    conn
                }
                Event::Ready(c) => c,
                Event::Resolved(_) => continue,
            };
            while let Ok(n) = stack.recv(c, &mut buf) {
                if n == 0 {
                    break;
                }
                let _ = stack.send(c, &buf[..n]);
            }
        }
        // Drain what the stack sent back so the wire does not fill.
        let mut out = [0u8; 1600];
        while let Ok(Some(_)) = peer.recv(net::clock::to_smol(now), &mut out) {}
        now += Duration::from_millis(10);
    }
    for c in conns {
        stack.abort(c);
    }
    stack.poll(now + Duration::from_secs(1));
});

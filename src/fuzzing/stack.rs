//! Harness of the userspace stack: arbitrary Ethernet frames into a [`net::Stack`] over the
//! in-memory wire, and a recorder that turns a real exchange with a second stack into an input
//! that replays it (a seed that reaches established TCP).
//!
//! Input format of [`stack_frames`]: frames one after the other, each a big-endian `u16` length
//! (taken modulo 1600) then that many bytes; a short last frame is cut at the input's end. One
//! frame is delivered every 10 ms of virtual time; an empty frame is just a tick.

use std::time::{Duration, Instant};

use net::device::{wire, Device, Faults, Link};
use net::testing::{config, B_V4, B_V6};
use net::{ConnId, Event, Stack, Transport};

/// Virtual time between two frames of an input.
const TICK: Duration = Duration::from_millis(10);
/// The port the harness listens on (and echoes).
const PORT: u16 = 80;
/// Largest frame an input can carry.
const MAX_FRAME: usize = 1599;

/// What a [`stack_frames`] run did, for tests that check a seed still reaches deep paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameReport {
    /// Connections the listener accepted.
    pub accepted: usize,
    /// Bytes received on accepted connections (and echoed back).
    pub echoed: usize,
    /// Frames the stack sent.
    pub sent: usize,
}

/// The stack under test (198.18.0.2, the address and MAC of `paf run`'s default), a listener on
/// port 80 echoing what it receives, and the raw far end of its wire.
struct Harness {
    stack: Stack,
    peer: wire::WireEnd,
    now: Instant,
    conns: Vec<ConnId>,
    report: FrameReport,
}

impl Harness {
    fn new() -> Harness {
        let (peer, ours) = wire::pair(1500, Faults::default(), Faults::default(), 1);
        let now = net::clock::origin() + Duration::from_secs(1);
        let mut c = config(false, 1);
        // Small and few: every input builds a stack; the paths are the same as with the defaults.
        c.tcp.shards = 4;
        c.tcp.rx_buffer = 8 * 1024;
        c.tcp.tx_buffer = 8 * 1024;
        let mut stack = Stack::new(c, Device::new(Link::Wire(ours)), now).expect("a valid config");
        stack.listen(PORT, 2).expect("a listener");
        Harness {
            stack,
            peer,
            now,
            conns: Vec::new(),
            report: FrameReport::default(),
        }
    }

    /// Delivers `frame`, polls, echoes, and hands each frame the stack sent to `out`; then the
    /// clock moves one tick.
    fn step(&mut self, frame: &[u8], mut out: impl FnMut(&[u8])) {
        let _ = self.peer.send(net::clock::to_smol(self.now), frame);
        self.stack.poll(self.now);
        let mut buf = [0u8; 256];
        while let Some(ev) = self.stack.poll_event() {
            let c = match ev {
                Event::Accepted { conn, .. } => {
                    self.report.accepted += 1;
                    self.conns.push(conn);
                    conn
                }
                Event::Ready(c) => c,
                Event::Resolved(_) => continue,
            };
            while let Ok(n) = self.stack.recv(c, &mut buf) {
                if n == 0 {
                    break;
                }
                self.report.echoed += n;
                let _ = self.stack.send(c, &buf[..n]);
            }
        }
        self.stack.poll(self.now);
        let mut frame = vec![0u8; 64 * 1024];
        while let Ok(Some(n)) = self.peer.recv(net::clock::to_smol(self.now), &mut frame) {
            self.report.sent += 1;
            out(&frame[..n]);
        }
        self.now += TICK;
    }

    fn finish(mut self) -> FrameReport {
        for c in std::mem::take(&mut self.conns) {
            self.stack.abort(c);
        }
        self.stack.poll(self.now + Duration::from_secs(1));
        self.report
    }
}

/// The userspace stack fed arbitrary Ethernet frames (format in the module docs), with a
/// listener so that TCP paths are reached, on a virtual clock; connections are aborted at the
/// end. Must not panic; returns what happened.
pub fn stack_frames(data: &[u8]) -> FrameReport {
    let mut h = Harness::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % (MAX_FRAME + 1);
        rest = &rest[2..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        h.step(frame, |_| {});
    }
    h.finish()
}

/// Records a [`stack_frames`] input from a real exchange: a second stack (198.18.0.1, or its IPv6
/// address with `ipv6`) connects to the harness, sends `payload`, reads the echo, closes, and
/// every frame it sends is written down at the tick the harness receives it. Replaying the input
/// gives the harness the same frames at the same times, so it runs the same TCP exchange (the
/// harness's ISNs come from a fixed seed).
pub fn stack_session(ipv6: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = Harness::new();
    let (ours, bridge) = wire::pair(1500, Faults::default(), Faults::default(), 2);
    let mut a = Stack::new(config(true, 2), Device::new(Link::Wire(ours)), h.now).expect("a");
    let to: std::net::IpAddr = if ipv6 { B_V6.into() } else { B_V4.into() };
    let conn = a
        .connect(std::net::SocketAddr::new(to, PORT))
        .expect("connect");
    let mut input = Vec::new();
    let mut last_frame_end = 0;
    let (mut sent, mut echoed, mut closed) = (0, 0, false);
    let mut frame = vec![0u8; 64 * 1024];
    for _ in 0..1000 {
        a.poll(h.now);
        while a.poll_event().is_some() {}
        if sent < payload.len() {
            sent += a.send(conn, &payload[sent..]).unwrap_or(0);
        }
        let mut buf = [0u8; 256];
        while let Ok(n) = a.recv(conn, &mut buf) {
            if n == 0 {
                break;
            }
            echoed += n;
        }
        if echoed >= payload.len() && !closed {
            a.close(conn);
            closed = true;
        }
        a.poll(h.now);
        let next = match bridge.recv(net::clock::to_smol(h.now), &mut frame) {
            Ok(Some(n)) => &frame[..n],
            _ => &[][..],
        };
        assert!(next.len() <= MAX_FRAME, "a frame too long to record");
        input.extend_from_slice(&(next.len() as u16).to_be_bytes());
        input.extend_from_slice(next);
        if !next.is_empty() {
            last_frame_end = input.len();
        }
        let now = net::clock::to_smol(h.now);
        h.step(next, |f| {
            let _ = bridge.send(now, f);
        });
        if closed && a.socket_count() == 0 && bridge.next_delivery().is_none() {
            break;
        }
    }
    // Trailing ticks (empty frames) add nothing: keep the input short.
    input.truncate(last_frame_end);
    input
}

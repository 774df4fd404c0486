//! Helpers shared by the tunnel suites (`tunnel`, `connect`): raw clients' bytes, the
//! byte pattern both directions carry, `/metrics` on port 80.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use paf::testing::{parse_response, ClientHandle, Pair, RawClient, B};

/// A bound of virtual time for anything to happen.
pub const LONG: Duration = Duration::from_secs(60);

/// Byte `i` of the pattern the tests send through tunnels.
pub fn byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// A scratch directory removed when dropped.
pub struct Dir(pub PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads from `c` until `n` bytes came, `have` first; returns them.
pub fn read(pair: &mut Pair, c: &ClientHandle, mut have: Vec<u8>, n: usize) -> Vec<u8> {
    pair.drive_until(LONG, "the bytes", |_| {
        have.extend_from_slice(&c.take_input());
        have.len() >= n
    });
    have
}

/// The body of `GET /metrics` on port 80.
pub fn metrics(pair: &mut Pair) -> String {
    let c = RawClient::connect(&mut pair.client, B.with_port(80)).unwrap();
    c.send(b"GET /metrics HTTP/1.1\r\nHost: paf.test\r\n\r\n");
    let mut got = Vec::new();
    pair.drive_until(LONG, "metrics", |_| {
        got.extend_from_slice(&c.take_input());
        parse_response(&got, false).is_some()
    });
    c.close();
    String::from_utf8(parse_response(&got, false).unwrap().0.body).unwrap()
}

/// The value of the metric line starting with `line`.
pub fn metric(text: &str, line: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{text}"))
}

/// Sends `n` pattern bytes on `c` and checks they come back (the other end echoes).
pub fn echo_pattern(pair: &mut Pair, c: &ClientHandle, n: u64) {
    let mut at = 0u64;
    c.set_source(move |out| {
        let k = (n - at).min(16 * 1024);
        out.extend((at..at + k).map(byte));
        at += k;
        at < n
    });
    let back = Rc::new(RefCell::new((0u64, true)));
    let b = back.clone();
    c.set_sink(move |data| {
        let mut b = b.borrow_mut();
        for &x in data {
            b.1 &= x == byte(b.0);
            b.0 += 1;
        }
    });
    pair.drive_until(LONG, "the echo", |_| back.borrow().0 >= n);
    assert_eq!(*back.borrow(), (n, true), "echoed byte-exact");
}

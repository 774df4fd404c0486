//! The server connection's output: bytes in the order they go out, most of them written into
//! one buffer, and at most one body sent from its own buffer (a [`Bytes`] given to
//! [`ServerConn::respond_shared`](super::ServerConn::respond_shared)) instead of being copied
//! into it first.

use std::time::Instant;

use bytes::Bytes;

/// Bodies shorter than this are copied into the buffer all the same: one more segment to hand
/// to the socket costs more than copying a few kilobytes.
pub(crate) const SHARE_FROM: usize = 16 * 1024;

/// Output waiting to be transmitted: `buf[pos..]`, then the shared body's unsent part, then
/// `later` (written while the shared body waits; it becomes `buf` once that body is sent).
#[derive(Debug, Default)]
pub(super) struct Output {
    buf: Vec<u8>,
    pos: usize,
    shared: Option<(Bytes, usize)>,
    later: Vec<u8>,
}

impl Output {
    /// Bytes waiting, over every part.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
            + self.shared.as_ref().map_or(0, |(b, at)| b.len() - at)
            + self.later.len()
    }

    /// Where the next bytes are appended (after everything waiting).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if self.shared.is_some() {
            return &mut self.later;
        }
        // Drops transmitted bytes once they are at least half the buffer, so appends stay
        // amortized.
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        &mut self.buf
    }

    /// [`tail`](Self::tail) for bytes written at `now`: when nothing was waiting, the write
    /// timer `since` starts there.
    pub fn tail_at(&mut self, now: Instant, since: &mut Instant) -> &mut Vec<u8> {
        if self.pending() == 0 {
            *since = now;
        }
        self.tail()
    }

    /// Appends `body`: sent from its own buffer when it is long enough and no other body is
    /// waiting so, else copied.
    pub fn push_shared(&mut self, body: &Bytes) {
        if body.len() < SHARE_FROM || self.shared.is_some() {
            self.tail().extend_from_slice(body);
        } else {
            self.shared = Some((body.clone(), 0));
        }
    }

    /// The next bytes to transmit (empty when nothing waits).
    pub fn chunk(&self) -> &[u8] {
        if self.pos < self.buf.len() {
            return &self.buf[self.pos..];
        }
        match &self.shared {
            Some((b, at)) => &b[*at..],
            None => &[],
        }
    }

    /// `n` bytes of [`chunk`](Self::chunk) were transmitted (more than it held count as all
    /// of it). Returns whether any byte was.
    pub fn consume(&mut self, n: usize) -> bool {
        let n = n.min(self.chunk().len());
        if n == 0 {
            return false;
        }
        if self.pos < self.buf.len() {
            self.pos += n;
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
        } else if let Some((b, at)) = &mut self.shared {
            *at += n;
            if *at == b.len() {
                // Sent: what was written meanwhile is next (`buf` is empty here).
                self.shared = None;
                std::mem::swap(&mut self.buf, &mut self.later);
            }
        }
        true
    }

    /// Drops everything waiting.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.shared = None;
        self.later.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transmits everything `step` bytes at a time.
    fn drain(o: &mut Output, step: usize) -> Vec<u8> {
        let mut sent = Vec::new();
        loop {
            let c = o.chunk();
            if c.is_empty() {
                return sent;
            }
            let n = c.len().min(step);
            sent.extend_from_slice(&c[..n]);
            assert!(o.consume(n));
        }
    }

    #[test]
    fn a_shared_body_goes_out_in_order_with_what_is_written_around_it() {
        let big: Vec<u8> = (0..SHARE_FROM * 2).map(|i| (i % 251) as u8).collect();
        for step in [1, 7, 4096, 1 << 20] {
            let mut o = Output::default();
            o.tail().extend_from_slice(b"head 1\r\n");
            o.push_shared(&Bytes::from(big.clone()));
            // Written while the body waits: after it.
            o.tail().extend_from_slice(b"head 2\r\n");
            // A second shared body while one waits is copied, in its place.
            o.push_shared(&Bytes::from(big[..SHARE_FROM].to_vec()));
            // Short bodies are copied.
            o.push_shared(&Bytes::from_static(b"tail"));
            let mut want = b"head 1\r\n".to_vec();
            want.extend_from_slice(&big);
            want.extend_from_slice(b"head 2\r\n");
            want.extend_from_slice(&big[..SHARE_FROM]);
            want.extend_from_slice(b"tail");
            assert_eq!(o.pending(), want.len());
            assert_eq!(drain(&mut o, step), want, "step {step}");
            assert_eq!(o.pending(), 0);
            assert!(!o.consume(1));
            // And it starts over: a shared body again, after a partly sent buffer.
            o.tail().extend_from_slice(b"again");
            assert!(o.consume(2));
            o.push_shared(&Bytes::from(big.clone()));
            assert_eq!(o.pending(), 3 + big.len());
            let mut want = b"ain".to_vec();
            want.extend_from_slice(&big);
            assert_eq!(drain(&mut o, step), want, "step {step}");
        }
    }

    #[test]
    fn the_body_is_not_copied_and_clear_drops_every_part() {
        static BODY: [u8; SHARE_FROM] = [7; SHARE_FROM];
        let mut o = Output::default();
        o.push_shared(&Bytes::from_static(&BODY));
        assert_eq!(
            o.chunk().as_ptr(),
            BODY.as_ptr(),
            "sent from its own buffer"
        );
        o.tail().extend_from_slice(b"x");
        assert_eq!(o.pending(), SHARE_FROM + 1);
        o.clear();
        assert_eq!(o.pending(), 0);
        assert!(o.chunk().is_empty());
        o.tail().extend_from_slice(b"y");
        assert_eq!(o.chunk(), b"y");
    }
}

//! A connection's input buffer: received bytes not yet consumed (by the HTTP codec, or by the
//! TLS session for ciphertext), in a buffer borrowed from a per-service pool while non-empty, so
//! idle connections hold none.

/// Input buffers kept for reuse by later connections.
const POOL: usize = 256;

/// Received bytes not yet consumed by the codec, in a buffer borrowed from the pool while
/// non-empty.
#[derive(Default)]
pub(crate) struct InBuf {
    buf: Option<Box<[u8]>>,
    lo: usize,
    hi: usize,
}

impl InBuf {
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], |b| &b[self.lo..self.hi])
    }

    pub(crate) fn len(&self) -> usize {
        self.hi - self.lo
    }

    /// `n` bytes were written into the slice [`InBuf::spare`] returned.
    pub(crate) fn filled(&mut self, n: usize) {
        self.hi += n;
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.lo += n;
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        }
    }

    /// Free space after the data, compacting first if the data does not start at 0.
    pub(crate) fn spare(&mut self, pool: &mut Vec<Box<[u8]>>, cap: usize) -> &mut [u8] {
        let buf = self
            .buf
            .get_or_insert_with(|| pool.pop().unwrap_or_else(|| vec![0; cap].into()));
        if self.hi == buf.len() && self.lo > 0 {
            buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        &mut buf[self.hi..]
    }

    pub(crate) fn release(&mut self, pool: &mut Vec<Box<[u8]>>) {
        if self.hi == self.lo {
            if let Some(b) = self.buf.take() {
                if pool.len() < POOL {
                    pool.push(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_buffer_compacts_caps_and_returns_to_the_pool() {
        let mut pool = Vec::new();
        let mut b = InBuf::default();
        assert!(b.data().is_empty());
        let spare = b.spare(&mut pool, 8);
        assert_eq!(spare.len(), 8);
        spare[..6].copy_from_slice(b"abcdef");
        b.hi += 6;
        b.consume(4);
        assert_eq!(b.data(), b"ef");
        // Room at the end: no move yet.
        assert_eq!(b.spare(&mut pool, 8).len(), 2);
        b.spare(&mut pool, 8).copy_from_slice(b"gh");
        b.hi += 2;
        // Full at the end with consumed bytes in front: compacted.
        assert_eq!(b.spare(&mut pool, 8).len(), 4);
        assert_eq!(b.data(), b"efgh");
        // Not released while holding data; released (to the pool) once empty.
        b.release(&mut pool);
        assert!(pool.is_empty());
        b.consume(4);
        b.release(&mut pool);
        assert_eq!((pool.len(), b.len()), (1, 0));
        // The pooled buffer is reused.
        assert_eq!(b.spare(&mut pool, 8).len(), 8);
        assert!(pool.is_empty());
    }
}

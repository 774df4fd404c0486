//! The pipe's buffers: [`InBuf`], bytes not yet taken by the next stage, in a buffer borrowed
//! from a [`Pool`] while non-empty, so idle connections hold none.

/// Buffers kept for reuse by later connections, per pool.
const POOL: usize = 256;

/// Buffers kept for reuse, all of one size.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<Box<[u8]>>,
    size: usize,
}

impl Pool {
    /// A pool of `size`-byte buffers.
    pub(crate) fn new(size: usize) -> Pool {
        Pool {
            free: Vec::new(),
            size: size.max(1),
        }
    }

    /// The buffers' size: the most a pipe buffers per stage.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    fn take(&mut self) -> Box<[u8]> {
        self.free.pop().unwrap_or_else(|| vec![0; self.size].into())
    }

    fn give(&mut self, buf: Box<[u8]>) {
        if self.free.len() < POOL && buf.len() == self.size {
            self.free.push(buf);
        }
    }
}

/// Bytes not yet consumed by the next stage, in a pooled buffer while non-empty.
#[derive(Debug, Default)]
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
    pub(crate) fn spare(&mut self, pool: &mut Pool) -> &mut [u8] {
        let buf = self.buf.get_or_insert_with(|| pool.take());
        if self.hi == buf.len() && self.lo > 0 {
            buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        &mut buf[self.hi..]
    }

    /// Returns the buffer to the pool if it holds nothing.
    pub(crate) fn release(&mut self, pool: &mut Pool) {
        if self.hi == self.lo {
            if let Some(b) = self.buf.take() {
                pool.give(b);
            }
        }
    }

    /// Drops what is held and returns the buffer.
    pub(crate) fn clear(&mut self, pool: &mut Pool) {
        self.lo = 0;
        self.hi = 0;
        self.release(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_buffer_compacts_caps_and_returns_to_the_pool() {
        let mut pool = Pool::new(8);
        let mut b = InBuf::default();
        assert!(b.data().is_empty());
        let spare = b.spare(&mut pool);
        assert_eq!(spare.len(), 8);
        spare[..6].copy_from_slice(b"abcdef");
        b.filled(6);
        b.consume(4);
        assert_eq!(b.data(), b"ef");
        // Room at the end: no move yet.
        assert_eq!(b.spare(&mut pool).len(), 2);
        b.spare(&mut pool).copy_from_slice(b"gh");
        b.filled(2);
        // Full at the end with consumed bytes in front: compacted.
        assert_eq!(b.spare(&mut pool).len(), 4);
        assert_eq!(b.data(), b"efgh");
        // Not released while holding data; released (to the pool) once empty.
        b.release(&mut pool);
        assert!(pool.free.is_empty());
        b.consume(4);
        b.release(&mut pool);
        assert_eq!((pool.free.len(), b.len()), (1, 0));
        // The pooled buffer is reused.
        assert_eq!(b.spare(&mut pool).len(), 8);
        assert!(pool.free.is_empty());
    }
}

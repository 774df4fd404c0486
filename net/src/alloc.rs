//! An allocator for a program on paf's stack (the `paf` binary sets it): mimalloc for the small
//! blocks a request allocates and frees (heads, header maps, exchanges, codec buffers), the C
//! library's `malloc` for large ones (smoltcp's socket buffers, 256 KiB each by default).
//!
//! Why split: a proxied request allocates about thirty blocks, several past the 1,032 bytes
//! glibc's per-thread cache serves quickly, and mimalloc serves those faster. But a socket
//! buffer is allocated zeroed: glibc hands a large block out of fresh pages that are zero
//! already, where mimalloc clears a reused one, 256 KiB per socket. With mimalloc for
//! everything, a new connection per request fell from 32,763 to 2,118 req/s (2026-12-05); with
//! the split, large blocks keep glibc's behaviour, and with [`crate::lazy_buffer_memory`] at
//! [`LARGE`] they come from fresh, lazily zeroed mappings. The library sets no allocator: a
//! program chooses it (`#[global_allocator] static A: net::alloc::Split = net::alloc::Split;`).

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of this many bytes or more go to the C library's allocator.
pub const LARGE: usize = 64 * 1024;

/// mimalloc below [`LARGE`], the system allocator from it. A block is freed (and resized) by
/// the allocator its size says, which is the one that made it: Rust passes `dealloc` and
/// `realloc` the layout the block was allocated (or last resized) with.
#[derive(Clone, Copy, Debug, Default)]
pub struct Split;

fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: each call is forwarded to one of two sound allocators, chosen by the block's size;
// a block's size (hence its allocator) only changes through `realloc`, which moves the block
// to the other allocator when the new size crosses `LARGE`.
unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so its size picks the
        // allocator that made it.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`: `ptr` was allocated with `layout`,
        // `new_size` is nonzero and, rounded to the alignment, does not overflow.
        unsafe {
            match (large(layout.size()), large(new_size)) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cross_the_threshold_both_ways_with_their_bytes() {
        let a = Split;
        let small = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: layouts are nonzero; each block is freed once, with its last layout.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            // Small → large: moved to the system allocator, contents kept.
            let q = a.realloc(p, small, LARGE + 10);
            assert!(!q.is_null());
            assert!((0..100).all(|i| *q.add(i) == i as u8));
            // Large → large, then back to small.
            let big = Layout::from_size_align(LARGE + 10, 8).unwrap();
            let r = a.realloc(q, big, 4 * LARGE);
            assert!((0..100).all(|i| *r.add(i) == i as u8));
            let s = a.realloc(r, Layout::from_size_align(4 * LARGE, 8).unwrap(), 50);
            assert!((0..50).all(|i| *s.add(i) == i as u8));
            a.dealloc(s, Layout::from_size_align(50, 8).unwrap());
            // Zeroed blocks are zero on both sides.
            for size in [64, LARGE, 3 * LARGE] {
                let l = Layout::from_size_align(size, 16).unwrap();
                let z = a.alloc_zeroed(l);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, l);
            }
        }
    }
}

//! Request bodies handed to their readers where the bytes lie: in the stack's receive buffer
//! (or the pipe's own, when it holds some), without the codec's body buffer and its copy.
//!
//! Only when the codec says the body may be read so
//! ([`ServerCodec::body_in_place`](crate::service::codec::ServerCodec::body_in_place): HTTP/1.1,
//! a `Content-Length` body with nothing buffered for it) and its reader waits. The codec
//! consumes the bytes first ([`ServerCodec::consume_body_in_place`]), as it would have buffered
//! them, then the reader gets them, with no borrow of the core held (user code never touches
//! the stack: it may run inside the stack's read). A `Once` reader gets one chunk per schedule,
//! a `ToEnd` one collects them; at most `body_buffer_size` bytes a chunk, and a round. No
//! reader waiting, nothing is read here: the codec buffers up to `body_buffer_size`, the
//! backpressure of the copying path.
//!
//! [`ServerCodec::consume_body_in_place`]: crate::service::codec::ServerCodec::consume_body_in_place

use std::sync::atomic::Ordering;

use super::{abort_reader, guarded, hand, Conn, Running};
use crate::http::ExchangeId;
use crate::pipe::Direct;
use crate::runtime::Cx;
use crate::service::core::{CoreRef, Reader};

impl Running {
    /// Hands waiting body readers their bytes in place, at most `body_buffer_size` bytes (the
    /// round's share: what the copying path would move through the body buffer in a round).
    /// Returns whether anything moved, and whether the reader waits for more that the share
    /// left for later (the round's normal input is skipped then: the codec would buffer, and
    /// copy, what the reader takes in place next round). `None`: the connection failed.
    pub(super) fn in_place(&mut self, cx: &mut Cx<'_>, c: &mut Conn) -> Option<(bool, bool)> {
        let mut share = self.shared.config.body_buffer_size;
        let mut moved = false;
        loop {
            let (id, max, ex, reader) = {
                let mut core = c.core.borrow_mut();
                if core.kill {
                    return Some((moved, false));
                }
                let Some((id, max)) = core.codec.body_in_place() else {
                    return Some((moved, false));
                };
                let Some(slot) = core
                    .slot_mut(id)
                    .filter(|s| s.reader.is_some() && !s.finished)
                else {
                    return Some((moved, false));
                };
                if share == 0 {
                    return Some((moved, true));
                }
                let reader = slot.reader.take().expect("checked");
                (id, max.min(share), slot.exchange.clone(), reader)
            };
            let now = cx.now;
            let (shared, core) = (&*self.shared, &c.core);
            let mut reader = Some(reader);
            let r = c.pipe.read_direct(cx, max, &mut |data: &[u8]| {
                let Some(r) = reader.take() else {
                    return 0; // (one slice per read)
                };
                let n = core.borrow_mut().codec.consume_body_in_place(now, id, data);
                if n == 0 {
                    reader = Some(r);
                } else {
                    hand(shared, core, id, &ex, r, Some(&data[..n]));
                }
                n
            });
            if let Some(r) = reader {
                put_back(core, id, r, |r| {
                    guarded(shared, &ex, "body reader", || abort_reader(r))
                });
            }
            let n = match r {
                Err(_) => return None,
                Ok(Direct::Took(n)) if n > 0 => n,
                Ok(_) => return Some((moved, false)),
            };
            moved = true;
            share -= n;
            let counters = &self.shared.handle.0.counters;
            counters
                .body_in_place
                .fetch_add(n as u64, Ordering::Relaxed);
            if n > self.max_chunk {
                self.max_chunk = n;
                counters.max_chunk.fetch_max(n, Ordering::Relaxed);
            }
        }
    }
}

/// Puts a reader that got nothing back in its slot (no user code ran: the slot is there,
/// empty); `lost` ends it otherwise.
fn put_back(core: &CoreRef, id: ExchangeId, reader: Reader, lost: impl FnOnce(Reader)) {
    let mut guard = core.borrow_mut();
    match guard.slot_mut(id) {
        Some(slot) if slot.reader.is_none() => slot.reader = Some(reader),
        _ => {
            drop(guard);
            lost(reader);
        }
    }
}

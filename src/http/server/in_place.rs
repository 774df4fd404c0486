//! Request bodies read in place: the caller hands a body reader the bytes where they lie (its
//! socket's receive buffer), and tells the codec how many it consumed; the exchange's body
//! buffer is skipped, and with it a copy of every byte.
//!
//! Only where it changes nothing the reader can see: a `Content-Length` body (the bytes on the
//! wire are the body's, in order; chunked framing keeps the copying path), nothing buffered for
//! it (buffered bytes come first), not ended, not being dropped, and the reader at that body.
//! Consuming bytes this way does what decoding them into the buffer and reading them out of it
//! would: the decoder's count, the body timer, `100 Continue` on a first read, and at the end
//! of the body its completion (the `BodyReadable` hint, so the reader learns the end, then the
//! next head or the stop).

use std::time::Instant;

use super::{Decoder, Expect, Reader, Response, ServerConn};
use crate::http::event::ExchangeId;

impl ServerConn {
    /// The exchange whose request body may be read in place now, and at most how many of its
    /// bytes: those still expected, at most `body_buffer_size` (what one buffered read would
    /// hand over). `None` unless the body being read is framed by `Content-Length`, has bytes
    /// left, nothing buffered, and is not being dropped (its response finished): then read it
    /// with [`ServerConn::take_body`] or [`ServerConn::read_body`] after `handle_input`.
    pub fn body_in_place(&self) -> Option<(ExchangeId, usize)> {
        if self.closed {
            return None;
        }
        let Reader::Body {
            id,
            decoder: Decoder::Length(left),
            discard: None,
        } = &self.reader
        else {
            return None;
        };
        let x = &self.exchanges[self.index(*id)?];
        if x.body_done || x.buffered() > 0 {
            return None;
        }
        let cap = self.config.body_buffer_size;
        let n = usize::try_from(*left).map_or(cap, |left| left.min(cap));
        (n > 0).then_some((*id, n))
    }

    /// `bytes` come next on the wire, and the caller hands those that are body bytes of `id` to
    /// its reader itself: consumes them as body (at most what
    /// [`body_in_place`](Self::body_in_place) allows), without copying, and returns how many
    /// (0 when the body may not be read in place). As a read of the body, the first one queues
    /// `100 Continue` for a request that expects it; at the end of the body the exchange's
    /// [`Event::BodyReadable`](super::Event::BodyReadable) follows, after which reads say
    /// [`BodyRead::End`](super::BodyRead::End).
    pub fn consume_body_in_place(&mut self, now: Instant, id: ExchangeId, bytes: &[u8]) -> usize {
        let n = match self.body_in_place() {
            Some((reading, max)) if reading == id => bytes.len().min(max),
            _ => return 0,
        };
        if n == 0 {
            return 0;
        }
        let Some(i) = self.index(id) else {
            return 0;
        };
        let x = &mut self.exchanges[i];
        if x.expect == Expect::Pending && x.response == Response::None {
            x.expect = Expect::Wanted; // (`body_done` is false: checked above)
        }
        let Reader::Body { decoder, .. } = &mut self.reader else {
            return 0;
        };
        // The same decoder as a buffered read, with a sink that keeps nothing.
        let Ok(d) = decoder.decode(&bytes[..n], n, &mut |_| {}) else {
            return 0; // (`Content-Length` framing cannot fail)
        };
        self.body_decoded(now, id, d, d.done);
        self.pump(now);
        d.consumed
    }
}

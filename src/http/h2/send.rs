//! Body bytes handed to h2: copied into `Bytes` pieces small enough for the allocator's fast
//! path.

use bytes::Bytes;
use h2::SendStream;

/// Most bytes copied into one `Bytes` for h2 (its default frame size, so a piece is a frame):
/// under the allocator's large-block threshold (64 KiB, `net::alloc::LARGE`, where the binary
/// sets glibc's `mmap` threshold too). A 64 KiB copy per body write was a fresh mapping each
/// time: its page faults and unmapping were 17% of paf's CPU on a 100 MB HTTP/2 download.
pub(super) const PIECE: usize = 16 * 1024;

/// Queues `data` on `send` in pieces of at most [`PIECE`] bytes; `end` ends the stream with the
/// last one (an empty `data` with `end` sends an empty DATA frame that ends it).
///
/// # Errors
/// The stream is gone (reset, or the connection ended): h2's error.
pub(super) fn send_data(
    send: &mut SendStream<Bytes>,
    data: &[u8],
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            send.send_data(Bytes::new(), true)
        } else {
            Ok(())
        };
    }
    let mut pieces = data.chunks(PIECE).peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        send.send_data(Bytes::copy_from_slice(piece), end && last)?;
    }
    Ok(())
}

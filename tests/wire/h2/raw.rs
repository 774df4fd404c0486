//! Raw HTTP/2 frames for the tests that speak to paf below the `h2` crate: frames built and
//! read by hand, and a connection that floods.

use super::*;

/// A raw h2c connection that sends the preface, an empty SETTINGS, then what `more` adds each
/// time it is asked (until it returns false), and reads everything paf sends. Returns the
/// error code of the GOAWAY paf sent, if any, once paf closed.
pub(super) fn raw_flood(
    net: &mut Net,
    mut more: impl FnMut(&mut Vec<u8>) -> bool + 'static,
) -> Option<u32> {
    let c = RawClient::connect(&mut net.pair.client, Net::addr()).unwrap();
    let mut first = true;
    c.set_source(move |out| {
        if first {
            first = false;
            out.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            out.extend_from_slice(&frame(0x4, 0, 0, &[]));
        }
        more(out)
    });
    let mut got = Vec::new();
    net.pair.drive_until(LONG, "paf to close the flood", |_| {
        got.extend(c.take_input());
        c.is_eof()
    });
    goaway_code(&got)
}

/// One frame: type, flags, stream id, payload.
pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The error code of the first GOAWAY among `frames` (paf's output, read frame by frame).
pub(super) fn goaway_code(frames: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= frames.len() {
        let n = usize::from(frames[at]) << 16
            | usize::from(frames[at + 1]) << 8
            | usize::from(frames[at + 2]);
        if frames[at + 3] == 0x7 && at + 9 + 8 <= frames.len() {
            let p = &frames[at + 9..];
            return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + n;
    }
    None
}

/// A POST to `/never-read` on `stream`, its body still to come: HPACK with static-table
/// indexes (:method POST, :scheme http, :path as a literal, :authority as a literal).
pub(super) fn post_headers(stream: u32, end_headers: bool) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x04, 11];
    block.extend_from_slice(b"/never-read");
    block.extend_from_slice(&[0x01, 8]);
    block.extend_from_slice(b"paf.test");
    frame(0x1, if end_headers { 0x4 } else { 0 }, stream, &block)
}

pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The frames in `bytes` (paf's output): type, flags, stream id.
pub(super) fn frames_in(bytes: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let n = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        let id = u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]]);
        out.push((bytes[at + 3], bytes[at + 4], id & 0x7fff_ffff));
        at += 9 + n;
    }
    out
}

/// A GET of `/hello` on `stream`, ended: HPACK as [`post_headers`].
pub(super) fn get_hello_headers(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend_from_slice(b"/hello");
    block.extend_from_slice(&[0x01, 8]);
    block.extend_from_slice(b"paf.test");
    frame(0x1, 0x4 | 0x1, stream, &block)
}

pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const REFUSED_STREAM: u32 = 0x7;

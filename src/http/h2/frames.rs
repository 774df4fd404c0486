//! A watch on the frames the peer sends, read off their 9-byte headers as the bytes go to h2
//! (h2 parses the frames; this only looks at type, flags, length and stream id).
//!
//! It bounds what h2 answers without limit, and names the abuse h2 stops by itself:
//! - **control floods** (CVE-2019-9512 ping, -9515 settings, -9516/-9518 empty frames, and
//!   PRIORITY): every PING and SETTINGS that is not an ACK, every PRIORITY frame, every frame
//!   of an unknown type, and every empty DATA, HEADERS or CONTINUATION frame that ends
//!   nothing costs a token from a bucket of [`CONTROL_BURST`] refilled at [`CONTROL_RATE`] per
//!   second. A client that sends what browsers and gRPC send (a SETTINGS, a few PRIORITY or
//!   PING frames, keep-alive pings) never comes near it; an empty bucket is a flood
//!   (GOAWAY `ENHANCE_YOUR_CALM`), counted under the frame type that emptied it.
//! - **what h2 cuts by itself** (GOAWAY `ENHANCE_YOUR_CALM` or `COMPRESSION_ERROR`) without
//!   naming it in its debug data is named from the frames seen: `continuation` if a header block ran to more than [`CONTINUATION_FLOOD`]
//!   CONTINUATION frames (the 2024 CONTINUATION-flood family), else `rapid_reset` if the peer
//!   sent RST_STREAM frames (h2 bounds streams reset before they were accepted), else `hpack`
//!   (a header list decoding to more than h2's abuse limit: an HPACK bomb).

use std::time::Instant;

/// Control frames a connection may send at once.
pub const CONTROL_BURST: u32 = 1000;

/// Control frames a connection may send per second, over time.
pub const CONTROL_RATE: u32 = 100;

/// CONTINUATION frames in one header block beyond which an abuse is named a CONTINUATION flood.
pub const CONTINUATION_FLOOD: u32 = 5;

const HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
/// The highest frame type RFC 9113 defines (CONTINUATION); anything above is an extension.
const LAST_KNOWN: u8 = CONTINUATION;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The kinds of HTTP/2 abuse paf cuts off, counted in `/metrics` as `paf_h2_floods_total{kind}` and in
/// [`Stats::h2_floods`](crate::service::Stats::h2_floods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flood {
    /// Streams opened and reset in a loop (CVE-2023-44487).
    RapidReset,
    /// PING frames beyond the control budget.
    Ping,
    /// SETTINGS frames beyond the control budget.
    Settings,
    /// PRIORITY frames (or frames of unknown types) beyond the control budget.
    Priority,
    /// Empty DATA, HEADERS or CONTINUATION frames beyond the control budget.
    EmptyFrames,
    /// A header block of endless CONTINUATION frames, cut by h2.
    Continuation,
    /// A header block decoding to more than h2's abuse limit (an HPACK bomb), cut by h2.
    Hpack,
}

impl Flood {
    /// Every kind, in the order [`Flood::index`] numbers them.
    pub const ALL: [Flood; 7] = [
        Flood::RapidReset,
        Flood::Ping,
        Flood::Settings,
        Flood::Priority,
        Flood::EmptyFrames,
        Flood::Continuation,
        Flood::Hpack,
    ];

    /// The kind's position in [`Flood::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind's name as `/metrics` labels it.
    pub fn name(self) -> &'static str {
        match self {
            Flood::RapidReset => "rapid_reset",
            Flood::Ping => "ping",
            Flood::Settings => "settings",
            Flood::Priority => "priority",
            Flood::EmptyFrames => "empty_frames",
            Flood::Continuation => "continuation",
            Flood::Hpack => "hpack",
        }
    }
}

/// What [`FrameWatch::scan`] made of some peer bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scan {
    /// Bytes taken: passed on, or kept in the watch (a frame header).
    pub taken: usize,
    /// The flood they make, if the control budget ran out.
    pub flood: Option<Flood>,
    /// A HEADERS frame opening a stream waits for room; nothing after it was taken.
    pub held: bool,
    /// HEADERS frames that open a stream passed on.
    pub opened: usize,
}

/// The watch over one connection's incoming frames; see the [module docs](self).
#[derive(Debug)]
pub(super) struct FrameWatch {
    /// The frame header being read, and how much of it arrived.
    head: [u8; HEADER_LEN],
    head_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    /// The client preface still to skip (it is not a frame).
    preface: usize,
    /// CONTINUATION frames in the current header block, and the most in any block.
    continuations: u32,
    max_continuations: u32,
    /// RST_STREAM frames received.
    resets: u64,
    /// The highest stream id a HEADERS frame opened.
    last_opened: u32,
    /// Control tokens left (scaled by 1000 for a smooth refill), and when last refilled.
    tokens: u64,
    refilled: Instant,
}

impl FrameWatch {
    /// A watch whose input starts with the client preface of `preface` bytes.
    pub(super) fn new(now: Instant, preface: usize) -> Self {
        FrameWatch {
            head: [0; HEADER_LEN],
            head_len: 0,
            skip: 0,
            preface,
            continuations: 0,
            max_continuations: 0,
            resets: 0,
            last_opened: 0,
            tokens: u64::from(CONTROL_BURST) * 1000,
            refilled: now,
        }
    }

    /// Reads the frame headers in `bytes`, the next peer bytes, and passes on to `emit` what
    /// may go to h2: every byte, except a frame header not yet complete (kept here until it
    /// is) and a HEADERS frame that opens a stream when `room` (streams the connection may
    /// still open) is spent. That frame is *held*: its header stays here, nothing after it is
    /// taken, and [`Scan::held`] says so; a later call with room passes it on.
    pub(super) fn scan(
        &mut self,
        now: Instant,
        bytes: &[u8],
        mut room: usize,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Scan {
        self.refill(now);
        let mut flood = None;
        let mut at = 0;
        let given = room;
        if self.head_len == HEADER_LEN {
            // A header held for room.
            if self.opens_stream() && room == 0 {
                return Scan {
                    taken: 0,
                    flood: None,
                    held: true,
                    opened: 0,
                };
            }
            flood = self.pass_head(&mut room, emit);
        }
        while at < bytes.len() {
            let rest = &bytes[at..];
            if self.preface > 0 || self.skip > 0 {
                let left = if self.preface > 0 {
                    &mut self.preface
                } else {
                    &mut self.skip
                };
                let n = (*left).min(rest.len());
                *left -= n;
                emit(&rest[..n]);
                at += n;
                continue;
            }
            let n = (HEADER_LEN - self.head_len).min(rest.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&rest[..n]);
            self.head_len += n;
            at += n;
            if self.head_len == HEADER_LEN {
                if self.opens_stream() && room == 0 {
                    return Scan {
                        taken: at,
                        flood,
                        held: true,
                        opened: given.saturating_sub(room),
                    };
                }
                flood = flood.or(self.pass_head(&mut room, emit));
            }
        }
        Scan {
            taken: at,
            flood,
            held: false,
            opened: given.saturating_sub(room),
        }
    }

    /// Whatever is kept here (a partial or held frame header) goes to `emit`: the peer's
    /// stream ended, h2 judges what it has.
    pub(super) fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        emit(&self.head[..self.head_len]);
        self.head_len = 0;
    }

    /// The complete header kept here: a HEADERS frame on a stream id above every stream
    /// opened so far (a client's, so odd), which opens a new stream.
    fn opens_stream(&self) -> bool {
        let id = u32::from_be_bytes([self.head[5], self.head[6], self.head[7], self.head[8]])
            & 0x7fff_ffff;
        self.head[3] == HEADERS && id % 2 == 1 && id > self.last_opened
    }

    /// Passes the complete header kept here on to `emit` and reads it.
    fn pass_head(&mut self, room: &mut usize, emit: &mut dyn FnMut(&[u8])) -> Option<Flood> {
        let h = self.head;
        self.head_len = 0;
        if self.opens_stream() {
            *room = room.saturating_sub(1);
            self.last_opened = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        }
        emit(&h);
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        self.skip = len;
        let kind = self.frame(h[3], h[4], len)?;
        self.spend(kind)
    }

    /// One frame header: the kind of control frame it is, if it costs a token.
    fn frame(&mut self, kind: u8, flags: u8, len: usize) -> Option<Flood> {
        match kind {
            HEADERS | CONTINUATION => {
                if kind == HEADERS {
                    self.continuations = 0;
                } else {
                    self.continuations = self.continuations.saturating_add(1);
                    self.max_continuations = self.max_continuations.max(self.continuations);
                }
                (len == 0 && flags & END_HEADERS == 0).then_some(Flood::EmptyFrames)
            }
            RST_STREAM => {
                self.resets += 1;
                None
            }
            DATA => (len == 0 && flags & END_STREAM == 0).then_some(Flood::EmptyFrames),
            PING | SETTINGS if flags & ACK != 0 => None,
            PING => Some(Flood::Ping),
            SETTINGS => Some(Flood::Settings),
            PRIORITY => Some(Flood::Priority),
            k if k > LAST_KNOWN => Some(Flood::Priority),
            // PUSH_PROMISE (a protocol error from a client), GOAWAY, WINDOW_UPDATE (paced by
            // the data this side sends).
            _ => None,
        }
    }

    fn spend(&mut self, kind: Flood) -> Option<Flood> {
        if self.tokens < 1000 {
            return Some(kind);
        }
        self.tokens -= 1000;
        None
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.refilled).as_millis();
        if ms == 0 {
            return;
        }
        self.refilled = now;
        let add = u64::try_from(ms)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(CONTROL_RATE));
        self.tokens = self
            .tokens
            .saturating_add(add)
            .min(u64::from(CONTROL_BURST) * 1000);
    }

    /// The kind of abuse h2 just cut by itself, judged from the frames seen (module docs).
    pub(super) fn abuse(&self) -> Flood {
        if self.max_continuations > CONTINUATION_FLOOD {
            Flood::Continuation
        } else if self.resets > 0 {
            Flood::RapidReset
        } else {
            Flood::Hpack
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        frame_on(1, kind, flags, payload)
    }

    fn frame_on(stream: u32, kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Scans with room for any number of streams; every byte must be passed on.
    fn scan(w: &mut FrameWatch, now: Instant, bytes: &[u8]) -> Option<Flood> {
        let mut out = Vec::new();
        let s = w.scan(now, bytes, usize::MAX, &mut |b| out.extend_from_slice(b));
        assert_eq!(s.taken, bytes.len());
        assert!(!s.held);
        s.flood
    }

    #[test]
    fn pings_beyond_the_burst_are_a_flood_and_acks_are_free() {
        let t0 = Instant::now();
        let mut w = FrameWatch::new(t0, 0);
        let ping = frame(PING, 0, &[0; 8]);
        let ack = frame(PING, ACK, &[0; 8]);
        for _ in 0..CONTROL_BURST {
            assert_eq!(scan(&mut w, t0, &ping), None);
            assert_eq!(scan(&mut w, t0, &ack), None);
        }
        assert_eq!(scan(&mut w, t0, &ping), Some(Flood::Ping));
        // A second later the rate has refilled some.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..CONTROL_RATE {
            assert_eq!(scan(&mut w, t1, &ping), None);
        }
        assert_eq!(
            scan(&mut w, t1, &frame(SETTINGS, 0, &[])),
            Some(Flood::Settings)
        );
    }

    #[test]
    fn frame_headers_split_anywhere_are_read_and_the_preface_is_skipped() {
        let t0 = Instant::now();
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut w = FrameWatch::new(t0, preface.len());
        let mut input = preface.to_vec();
        // Big DATA payloads whose bytes look like PING headers must be skipped, not read.
        let fake = frame(PING, 0, &[0; 8]).repeat(2000);
        input.extend(frame(DATA, 0, &fake));
        for _ in 0..=CONTROL_BURST {
            input.extend(frame(PRIORITY, 0, &[0; 5]));
        }
        let mut found = None;
        for chunk in input.chunks(7) {
            found = found.or(scan(&mut w, t0, chunk));
        }
        assert_eq!(found, Some(Flood::Priority));
    }

    #[test]
    fn empty_frames_that_end_nothing_cost_and_ones_that_end_something_do_not() {
        let t0 = Instant::now();
        let mut w = FrameWatch::new(t0, 0);
        for _ in 0..2 * CONTROL_BURST {
            assert_eq!(scan(&mut w, t0, &frame(DATA, END_STREAM, &[])), None);
            assert_eq!(scan(&mut w, t0, &frame(DATA, 0, b"x")), None);
        }
        let mut found = None;
        for _ in 0..=CONTROL_BURST {
            found = found.or(scan(&mut w, t0, &frame(DATA, 0, &[])));
        }
        assert_eq!(found, Some(Flood::EmptyFrames));
    }

    #[test]
    fn abuse_cut_by_h2_is_named_by_the_frames_seen() {
        let t0 = Instant::now();
        let mut w = FrameWatch::new(t0, 0);
        scan(&mut w, t0, &frame(HEADERS, END_HEADERS, b"abc"));
        assert_eq!(w.abuse(), Flood::Hpack);
        scan(&mut w, t0, &frame(RST_STREAM, 0, &[0, 0, 0, 8]));
        assert_eq!(w.abuse(), Flood::RapidReset);
        scan(&mut w, t0, &frame(HEADERS, 0, b"abc"));
        for _ in 0..CONTINUATION_FLOOD {
            scan(&mut w, t0, &frame(CONTINUATION, 0, b"abc"));
        }
        assert_eq!(w.abuse(), Flood::RapidReset);
        scan(&mut w, t0, &frame(CONTINUATION, 0, b"abc"));
        assert_eq!(w.abuse(), Flood::Continuation);
    }

    #[test]
    fn a_stream_opened_without_room_is_held_with_everything_after_it() {
        let t0 = Instant::now();
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut w = FrameWatch::new(t0, preface.len());
        let mut input = preface.to_vec();
        input.extend(frame_on(0, SETTINGS, 0, &[]));
        input.extend(frame_on(1, HEADERS, END_HEADERS, b"h1"));
        input.extend(frame_on(1, DATA, 0, b"body"));
        input.extend(frame_on(3, HEADERS, END_HEADERS, b"h3"));
        // Trailers of stream 1 open nothing; a PING on stream 0 neither.
        input.extend(frame_on(1, HEADERS, END_HEADERS | END_STREAM, b"t1"));
        let held_at = input.len();
        input.extend(frame_on(5, HEADERS, END_HEADERS, b"h5"));
        input.extend(frame_on(0, PING, 0, &[0; 8]));
        let mut out = Vec::new();
        // Room for two streams: the third waits, and so does the PING behind it. Fed in
        // pieces of 5 bytes, headers split anywhere.
        let mut room = 2;
        let mut taken = 0;
        for chunk in input.chunks(5) {
            let s = w.scan(t0, chunk, room, &mut |b| out.extend_from_slice(b));
            taken += s.taken;
            room = 2usize.saturating_sub(count_opened(&out, preface.len()));
            if s.held {
                break;
            }
        }
        assert_eq!(taken, held_at + HEADER_LEN, "the held header is kept here");
        assert_eq!(out, input[..held_at].to_vec());
        // Still no room: nothing moves.
        let rest = &input[taken..];
        let s = w.scan(t0, rest, 0, &mut |b| out.extend_from_slice(b));
        assert_eq!((s.taken, s.held), (0, true));
        // Room: the held frame and the rest go on.
        let s = w.scan(t0, rest, 1, &mut |b| out.extend_from_slice(b));
        assert_eq!((s.taken, s.held, s.flood), (rest.len(), false, None));
        assert_eq!(out, input);
    }

    /// HEADERS frames in `out` (after a preface of `preface` bytes) that open a stream.
    fn count_opened(out: &[u8], preface: usize) -> usize {
        let mut at = preface;
        let (mut n, mut last) = (0, 0);
        while at + HEADER_LEN <= out.len() {
            let h = &out[at..at + HEADER_LEN];
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            if h[3] == HEADERS && id > last {
                n += 1;
                last = id;
            }
            at += HEADER_LEN + len;
        }
        n
    }

    #[test]
    fn a_header_kept_at_the_end_of_the_stream_is_flushed() {
        let t0 = Instant::now();
        let mut w = FrameWatch::new(t0, 0);
        let f = frame_on(1, HEADERS, END_HEADERS, b"abc");
        let mut out = Vec::new();
        let s = w.scan(t0, &f[..4], 1, &mut |b| out.extend_from_slice(b));
        assert_eq!((s.taken, out.len()), (4, 0));
        w.flush(&mut |b| out.extend_from_slice(b));
        assert_eq!(out, f[..4].to_vec());
    }
}

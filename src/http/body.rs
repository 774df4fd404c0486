//! Request body decoding and response body framing.
//!
//! [`Decoder`] turns the framed request body (`Content-Length` or chunked) into payload bytes. It
//! is resumable at any byte boundary: every call consumes what it can and keeps its position in
//! the framing, so the result never depends on how the input was split. Chunked framing is parsed
//! strictly (CRLF only, at most 16 hex digits, bounded extensions and trailers), since a lenient
//! chunk parser behind a strict proxy is a request-smuggling vector. A request body is never
//! delimited by the connection closing.

use super::head::is_tchar;
use super::Error;

/// Total chunk-extension bytes accepted per body; extensions are skipped, never interpreted.
const MAX_CHUNK_EXT_TOTAL: usize = 16 * 1024;

/// How a request body is framed, decided from the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// No body (no `Content-Length`, no `Transfer-Encoding`, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Outcome of one [`Decoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The body (including any trailers) is complete.
    pub done: bool,
}

/// A resumable request body decoder.
#[derive(Clone, Debug)]
pub(crate) enum Decoder {
    /// Bytes still expected.
    Length(u64),
    /// Chunked framing state.
    Chunked(Chunked),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of the chunk size.
    Size,
    /// Whitespace after the size; only `;` (an extension) may follow.
    SizeWs,
    /// Inside chunk extensions, skipping to CR.
    Ext,
    /// Saw CR after the size line, expecting LF.
    SizeLf,
    /// Chunk payload.
    Data,
    /// Expecting CR after the payload.
    DataCr,
    /// Expecting LF after the payload.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Saw CR ending a trailer line, expecting LF.
    TrailerLf,
    /// Saw CR of the final empty line, expecting LF.
    EndLf,
    /// The body is complete.
    Done,
}

/// State of a chunked body.
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    state: ChunkState,
    /// Size of the current chunk while reading digits, then bytes left in it.
    size: u64,
    digits: u8,
    ext_total: usize,
    trailer_total: usize,
    /// The trailer section as received (field lines with their CRLFs), parsed at the end.
    trailer_raw: Vec<u8>,
    /// Payload bytes decoded so far, checked against `max_body`.
    total: u64,
    max_body: Option<u64>,
    max_trailer: usize,
}

impl Decoder {
    /// A decoder for `kind`, or `None` when there is no body to decode.
    pub(crate) fn new(kind: BodyKind, max_body: Option<u64>, max_trailer: usize) -> Option<Self> {
        match kind {
            BodyKind::Empty | BodyKind::Length(0) => None,
            BodyKind::Length(n) => Some(Decoder::Length(n)),
            BodyKind::Chunked => Some(Decoder::Chunked(Chunked {
                state: ChunkState::Size,
                size: 0,
                digits: 0,
                ext_total: 0,
                trailer_total: 0,
                trailer_raw: Vec::new(),
                total: 0,
                max_body,
                max_trailer,
            })),
        }
    }

    /// The request's trailer fields, once the body is complete (chunked bodies only; taken
    /// once). Fields that may not be trailers are dropped (see [`allowed_in_trailers`]).
    pub(crate) fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        let Decoder::Chunked(c) = self else {
            return None;
        };
        if c.state != ChunkState::Done || c.trailer_raw.is_empty() {
            return None;
        }
        let mut raw = std::mem::take(&mut c.trailer_raw);
        raw.extend_from_slice(b"\r\n");
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let Ok(httparse::Status::Complete((_, fields))) =
            httparse::parse_headers(&raw, &mut fields)
        else {
            // More than 64 fields (the grammar was checked as they came): keep none.
            return None;
        };
        let mut map = http::HeaderMap::new();
        for f in fields.iter() {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(f.name.as_bytes()),
                http::HeaderValue::from_bytes(f.value),
            ) else {
                continue;
            };
            if allowed_in_trailers(&name) {
                map.append(name, value);
            }
        }
        (!map.is_empty()).then_some(map)
    }

    /// Payload bytes still expected, when the framing says so.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Chunked(_) => None,
        }
    }

    /// Decodes from `input`, handing at most `max_out` payload bytes to `sink` (in order, possibly
    /// in several slices). Framing bytes are consumed even when `max_out` is 0.
    ///
    /// # Errors
    ///
    /// A framing violation ([`Error::BadRequest`]), a chunked body over `max_body`
    /// ([`Error::PayloadTooLarge`]) or trailers over `max_trailer` ([`Error::HeadersTooLarge`]).
    /// The decoder must not be used after an error.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        max_out: usize,
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<Decoded, Error> {
        match self {
            Decoder::Length(remaining) => {
                let n = clamp(*remaining, input.len().min(max_out));
                if n > 0 {
                    sink(&input[..n]);
                    *remaining -= n as u64;
                }
                Ok(Decoded {
                    consumed: n,
                    done: *remaining == 0,
                })
            }
            Decoder::Chunked(c) => c.decode(input, max_out, sink),
        }
    }
}

/// `min(a, b)` as a `usize`, without truncating `a` on 32-bit targets.
fn clamp(a: u64, b: usize) -> usize {
    usize::try_from(a).map_or(b, |a| a.min(b))
}

/// Field-value and extension bytes: HTAB, SP, VCHAR, obs-text; no other controls.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl Chunked {
    fn decode(
        &mut self,
        input: &[u8],
        max_out: usize,
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<Decoded, Error> {
        use ChunkState::*;
        let bad = |why| Err(Error::BadRequest(why));
        let mut i = 0;
        let mut out_left = max_out;
        while i < input.len() && self.state != Done {
            if self.state == Data {
                let n = clamp(self.size, (input.len() - i).min(out_left));
                if n == 0 {
                    break; // sink full
                }
                sink(&input[i..i + n]);
                i += n;
                out_left -= n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            match self.state {
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits == 16 {
                            return bad("chunk size too long");
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size << 4 | d;
                        self.digits += 1;
                    }
                    _ if self.digits == 0 => return bad("invalid chunk size"),
                    b'\r' => self.state = SizeLf,
                    b';' => self.state = Ext,
                    b' ' | b'\t' => self.state = SizeWs,
                    _ => return bad("invalid chunk size"),
                },
                SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = Ext,
                    _ => return bad("invalid chunk size line"),
                },
                Ext => {
                    self.ext_total += 1;
                    if self.ext_total > MAX_CHUNK_EXT_TOTAL {
                        return bad("chunk extensions too long");
                    }
                    match b {
                        b'\r' => self.state = SizeLf,
                        _ if is_field_byte(b) => {}
                        _ => return bad("invalid chunk extension"),
                    }
                }
                SizeLf => {
                    if b != b'\n' {
                        return bad("chunk size line not ended by CRLF");
                    }
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = TrailerStart;
                    } else {
                        self.total = self.total.saturating_add(self.size);
                        if self.max_body.is_some_and(|max| self.total > max) {
                            return Err(Error::PayloadTooLarge);
                        }
                        self.state = Data;
                    }
                }
                DataCr => match b {
                    b'\r' => self.state = DataLf,
                    _ => return bad("chunk data not followed by CRLF"),
                },
                DataLf => match b {
                    b'\n' => {
                        self.state = Size;
                        self.size = 0;
                    }
                    _ => return bad("chunk data not followed by CRLF"),
                },
                TrailerStart | TrailerName | TrailerValue => {
                    if b == b'\r' && self.state == TrailerStart {
                        self.state = EndLf;
                        continue;
                    }
                    self.trailer_total += 1;
                    if self.trailer_total > self.max_trailer {
                        return Err(Error::HeadersTooLarge);
                    }
                    self.trailer_raw.push(b);
                    self.state = match (self.state, b) {
                        (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
                        (TrailerName, b':') => TrailerValue,
                        (TrailerValue, b'\r') => TrailerLf,
                        (TrailerValue, _) if is_field_byte(b) => TrailerValue,
                        _ => return bad("invalid trailer field"),
                    };
                }
                TrailerLf => match b {
                    b'\n' => {
                        self.trailer_raw.push(b'\n');
                        self.state = TrailerStart;
                    }
                    _ => return bad("trailer line not ended by CRLF"),
                },
                EndLf => match b {
                    b'\n' => self.state = Done,
                    _ => return bad("chunked body not ended by CRLF"),
                },
                Data | Done => unreachable!("handled above"),
            }
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == Done,
        })
    }
}

/// Whether `name` may be sent or kept as a trailer field: not framing (`Content-Length`,
/// `Transfer-Encoding`, `Trailer`), routing (`Host`), connection control (`Connection`,
/// `Keep-Alive`, `TE`, `Upgrade`, `Proxy-Connection`), request modifiers (`Expect`,
/// `Max-Forwards`, `Range`), authentication, cookies, caching or content metadata, which a
/// recipient would act on before the body (RFC 9110 §6.5.1).
pub(crate) fn allowed_in_trailers(name: &http::HeaderName) -> bool {
    use http::header::*;
    const DENIED: [HeaderName; 20] = [
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        TRAILER,
        HOST,
        CONNECTION,
        TE,
        UPGRADE,
        EXPECT,
        MAX_FORWARDS,
        RANGE,
        AUTHORIZATION,
        PROXY_AUTHORIZATION,
        WWW_AUTHENTICATE,
        COOKIE,
        SET_COOKIE,
        CACHE_CONTROL,
        CONTENT_TYPE,
        CONTENT_ENCODING,
        CONTENT_RANGE,
        LOCATION,
    ];
    !DENIED.contains(name) && name != "keep-alive" && name != "proxy-connection"
}

/// The fields of `map` that are [`allowed_in_trailers`].
pub(crate) fn trailer_fields(map: &http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (name, value) in map {
        if allowed_in_trailers(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Appends the last chunk and a trailer section of `trailers` (fields not
/// [`allowed_in_trailers`] left out).
pub(crate) fn write_chunked_end(out: &mut Vec<u8>, trailers: Option<&http::HeaderMap>) {
    let Some(trailers) = trailers else {
        out.extend_from_slice(CHUNKED_END);
        return;
    };
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        if allowed_in_trailers(name) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the chunk-size line for a chunk of `len` bytes.
pub(crate) fn write_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the end of an (empty) trailer section.
pub(crate) const CHUNKED_END: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes with an unbounded sink.
    fn run(kind: BodyKind, input: &[u8], step: usize) -> (Result<Vec<u8>, Error>, usize, bool) {
        let mut d = Decoder::new(kind, Some(100), 64).expect("has a body");
        let mut out = Vec::new();
        let mut pos = 0;
        let mut pending = Vec::new();
        let mut fed = 0;
        loop {
            let end = (fed + step).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
            let r = d.decode(&pending, usize::MAX, &mut |b| out.extend_from_slice(b));
            match r {
                Err(e) => return (Err(e), pos, false),
                Ok(dec) => {
                    pending.drain(..dec.consumed);
                    pos += dec.consumed;
                    if dec.done {
                        return (Ok(out), pos, true);
                    }
                }
            }
            if fed == input.len() {
                return (Ok(out), pos, false);
            }
        }
    }

    #[test]
    fn chunked_table() {
        type Case = (&'static [u8], Result<&'static [u8], Error>);
        let bad = |s| Err(Error::BadRequest(s));
        let cases: &[Case] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", Ok(b"hello")),
            (
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                Ok(b"hello world"),
            ),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok(b"0123456789")),
            (b"5;ext=1;b=\"q\"\r\nhello\r\n0;last\r\n\r\n", Ok(b"hello")),
            (b"5 ;ext\r\nhello\r\n0\r\n\r\n", Ok(b"hello")),
            (b"3\r\nabc\r\n0\r\nX-T: 1\r\nY:\r\n\r\n", Ok(b"abc")),
            (b"0000000000000003\r\nabc\r\n0\r\n\r\n", Ok(b"abc")),
            (
                b"00000000000000003\r\nabc\r\n0\r\n\r\n",
                bad("chunk size too long"),
            ),
            (b"ffffffffffffffff\r\n", Err(Error::PayloadTooLarge)),
            (b"65\r\n", Err(Error::PayloadTooLarge)), // 101 > 100
            (b"x\r\n", bad("invalid chunk size")),
            (b"\r\n", bad("invalid chunk size")),
            (b";a\r\n", bad("invalid chunk size")),
            (b"-1\r\n", bad("invalid chunk size")),
            (b"+1\r\n", bad("invalid chunk size")),
            (b"5\nhello\r\n", bad("invalid chunk size")),
            (b"5;a\rhello\r\n", bad("chunk size line not ended by CRLF")),
            (b"5 \r\nhello\r\n", bad("invalid chunk size line")),
            (b"5;a\nb\r\n", bad("invalid chunk extension")),
            (b"5;a\0\r\n", bad("invalid chunk extension")),
            (b"5\r\nhelloX\r\n", bad("chunk data not followed by CRLF")),
            (
                b"5\r\nhello\n0\r\n\r\n",
                bad("chunk data not followed by CRLF"),
            ),
            (b"5\r\nhello\rX", bad("chunk data not followed by CRLF")),
            (b"0\r\n\n", bad("invalid trailer field")),
            (b"0\r\n\rX", bad("chunked body not ended by CRLF")),
            (b"0\r\n X: 1\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\nX : 1\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\n:1\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\nX: a\0\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\nX: 1\n\r\n", bad("invalid trailer field")),
            (b"0\r\nX: 1\rY\r\n", bad("trailer line not ended by CRLF")),
        ];
        for (input, want) in cases {
            for step in 1..=input.len() {
                let (got, _, done) = run(BodyKind::Chunked, input, step);
                match want {
                    Ok(body) => {
                        assert_eq!(
                            got.as_deref(),
                            Ok(*body),
                            "{:?}",
                            String::from_utf8_lossy(input)
                        );
                        assert!(done);
                    }
                    Err(e) => assert_eq!(
                        got,
                        Err(*e),
                        "{:?} step {step}",
                        String::from_utf8_lossy(input)
                    ),
                }
            }
        }
    }

    #[test]
    fn chunked_stops_at_end() {
        let input = b"2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        for step in 1..=input.len() {
            let (got, consumed, done) = run(BodyKind::Chunked, input, step);
            assert_eq!(got.as_deref(), Ok(&b"ab"[..]));
            assert!(done);
            assert_eq!(consumed, 12);
        }
    }

    #[test]
    fn trailers_bounded() {
        let mut input = b"0\r\nX: ".to_vec();
        input.extend_from_slice(&[b'a'; 70]);
        input.extend_from_slice(b"\r\n\r\n");
        let (got, _, _) = run(BodyKind::Chunked, &input, 7);
        assert_eq!(got, Err(Error::HeadersTooLarge));
    }

    #[test]
    fn trailers_are_kept_split_anywhere_and_forbidden_ones_dropped() {
        let input = b"2\r\nab\r\n0\r\ngrpc-status: 0\r\nContent-Length: 9\r\nx-sum:  12 \r\n\r\n";
        for step in 1..=input.len() {
            let mut d = Decoder::new(BodyKind::Chunked, None, 1024).unwrap();
            let mut pending = Vec::new();
            let mut done = false;
            for chunk in input.chunks(step) {
                pending.extend_from_slice(chunk);
                let r = d.decode(&pending, usize::MAX, &mut |_| {}).unwrap();
                pending.drain(..r.consumed);
                done = r.done;
            }
            assert!(done);
            let t = d.take_trailers().expect("trailers");
            assert_eq!(t.len(), 2, "{t:?}");
            assert_eq!(t["grpc-status"], "0");
            assert_eq!(t["x-sum"], "12");
            assert_eq!(d.take_trailers(), None, "taken once");
        }
        let mut out = Vec::new();
        write_chunked_end(&mut out, Some(&t_map()));
        assert_eq!(out, b"0\r\ngrpc-status: 0\r\n\r\n");
        out.clear();
        write_chunked_end(&mut out, None);
        assert_eq!(out, CHUNKED_END);
    }

    fn t_map() -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        m.insert("grpc-status", http::HeaderValue::from_static("0"));
        m.insert("content-length", http::HeaderValue::from_static("5"));
        m
    }

    #[test]
    fn extensions_bounded() {
        let mut input = b"1;".to_vec();
        input.extend_from_slice(&vec![b'a'; MAX_CHUNK_EXT_TOTAL + 1]);
        let (got, _, _) = run(BodyKind::Chunked, &input, 4096);
        assert_eq!(got, Err(Error::BadRequest("chunk extensions too long")));
    }

    #[test]
    fn length_and_backpressure() {
        let mut d = Decoder::new(BodyKind::Length(5), None, 0).unwrap();
        let mut out = Vec::new();
        let r = d
            .decode(b"hel", 2, &mut |b| out.extend_from_slice(b))
            .unwrap();
        assert_eq!((r.consumed, r.done, &out[..]), (2, false, &b"he"[..]));
        assert_eq!(d.remaining(), Some(3));
        let r = d
            .decode(b"lloXYZ", 100, &mut |b| out.extend_from_slice(b))
            .unwrap();
        assert_eq!((r.consumed, r.done, &out[..]), (3, true, &b"hello"[..]));
        assert!(Decoder::new(BodyKind::Length(0), None, 0).is_none());
        assert!(Decoder::new(BodyKind::Empty, None, 0).is_none());

        // Chunked: a full sink still lets framing through but never payload.
        let mut d = Decoder::new(BodyKind::Chunked, None, 0).unwrap();
        let r = d
            .decode(b"3\r\nabc", 0, &mut |_| panic!("no room"))
            .unwrap();
        assert_eq!((r.consumed, r.done), (3, false));
    }

    #[test]
    fn chunk_sizes() {
        for (len, want) in [
            (0, "0\r\n"),
            (1, "1\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            let mut out = Vec::new();
            write_chunk_size(&mut out, len);
            assert_eq!(out, want.as_bytes());
        }
    }
}

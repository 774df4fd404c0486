//! The case table: what paf must answer to each malformed (or borderline but valid) request.
//!
//! Every case is sent byte for byte on a fresh connection, once to the static listener and once
//! to the proxy listener (see `mod.rs`). `{p}` in a payload is the case's own path,
//! `/c/<name>`, so that the recording upstream can tell which case a forwarded request belongs
//! to; a request smuggled inside a payload uses `{p}/SMUGGLED`.
//!
//! The outcomes:
//! - [`Reply::Error`]: paf answers that status with `Connection: close`, then closes; the
//!   upstream gets nothing.
//! - [`Reply::Served`]: the request reaches its route. The static route answers 200 to GET and
//!   405 to other methods; through the proxy the upstream gets exactly this method and body,
//!   and its 200 comes back.
//! - [`Reply::Local`]: paf answers itself (route or proxy policy), the upstream gets nothing.
//!
//! [`End`] says whether the connection must stay open (keep-alive) or be closed by paf.
//! Limits come from the test config (`mod.rs`), which sets the documented defaults explicitly
//! and `max_body_size = "64KiB"`.
//!
//! Where RFC 9112/9110 allow more than one behaviour, the comment names the section and the
//! choice paf makes.

/// `max_head_size` in the test config (the default): request line + fields; over it 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// The request line limit (8 KiB, not above `max_head_size`); over it 414.
pub const MAX_LINE: usize = 8 * 1024;
/// `max_headers` in the test config (the default); over it 431.
pub const MAX_HEADERS: usize = 100;
/// `max_body_size` in the test config; over it 413.
pub const MAX_BODY: usize = 64 * 1024;

/// One answer paf gives on the case's connection, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The route serves the request; through the proxy the upstream gets this method and body.
    Served { method: &'static str, body: Vec<u8> },
    /// An error status with `Connection: close`; nothing reaches the upstream.
    Error(u16),
    /// Answered by paf itself on each listener; nothing reaches the upstream.
    Local { direct: u16, proxy: u16 },
}

/// How the connection ends after the replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Kept open for the next request.
    Open,
    /// Closed by paf (FIN) after the last reply.
    Close,
}

/// One case: its name (unique; part of the path), the bytes sent, and the expected outcome.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub send: Vec<u8>,
    pub replies: Vec<Reply>,
    pub end: End,
}

impl Case {
    /// The bytes to send, with `{p}` replaced by the case's path.
    pub fn payload(&self) -> Vec<u8> {
        let path = path(self.name);
        let mut out = Vec::with_capacity(self.send.len() + 64);
        let mut rest = &self.send[..];
        while let Some(i) = rest.windows(3).position(|w| w == b"{p}") {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(path.as_bytes());
            rest = &rest[i + 3..];
        }
        out.extend_from_slice(rest);
        out
    }
}

/// The path of case `name`.
pub fn path(name: &str) -> String {
    format!("/c/{name}")
}

/// An expected outcome: replies, then how the connection ends.
pub struct Outcome(Vec<Reply>, End);

/// An error status, then the close.
fn reject(status: u16) -> Outcome {
    Outcome(vec![Reply::Error(status)], End::Close)
}

/// Served, connection kept open.
fn served(method: &'static str, body: &[u8]) -> Outcome {
    Outcome(vec![serve(method, body)], End::Open)
}

/// Served, then paf closes (HTTP/1.0, `Connection: close`).
fn served_close(method: &'static str, body: &[u8]) -> Outcome {
    Outcome(vec![serve(method, body)], End::Close)
}

/// Served, then an error status and the close (garbage pipelined after a valid request).
fn served_then(method: &'static str, status: u16) -> Outcome {
    Outcome(vec![serve(method, b""), Reply::Error(status)], End::Close)
}

fn serve(method: &'static str, body: &[u8]) -> Reply {
    Reply::Served {
        method,
        body: body.to_vec(),
    }
}

/// Answered by paf itself, `direct` on the static listener and `proxy` on the proxy listener.
fn local(direct: u16, proxy: u16) -> Outcome {
    Outcome(vec![Reply::Local { direct, proxy }], End::Open)
}

fn c(name: &'static str, send: impl AsRef<[u8]>, outcome: Outcome) -> Case {
    let Outcome(replies, end) = outcome;
    Case {
        name,
        send: send.as_ref().to_vec(),
        replies,
        end,
    }
}

const GET: &str = "GET";
const POST: &str = "POST";
const HELLO: &[u8] = b"hello";

/// A request line of exactly `len` bytes (without CRLF) for case `name`: a padded query.
fn line_of(name: &str, len: usize) -> Vec<u8> {
    let fixed = "GET ".len() + path(name).len() + "?".len() + " HTTP/1.1".len();
    let pad = "a".repeat(len - fixed);
    format!(
        "GET {}?{pad} HTTP/1.1\r\nHost: paf.test\r\n\r\n",
        path(name)
    )
    .into_bytes()
}

/// A request head of exactly `len` bytes (final CRLF included), padded by one field.
fn head_of(name: &str, len: usize) -> Vec<u8> {
    let start = format!("GET {} HTTP/1.1\r\nHost: paf.test\r\nX-Pad: ", path(name));
    let pad = "v".repeat(len - start.len() - "\r\n\r\n".len());
    format!("{start}{pad}\r\n\r\n").into_bytes()
}

/// A request with Host plus `extra` more fields.
fn fields(extra: usize) -> Vec<u8> {
    let lines: String = (0..extra).map(|i| format!("X-F{i}: v\r\n")).collect();
    format!("GET {{p}} HTTP/1.1\r\nHost: paf.test\r\n{lines}\r\n").into_bytes()
}

/// A POST of `body` with `Content-Length`.
fn post_length(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {{p}} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A POST of `body` as one chunk.
fn post_chunk(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {{p}} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

/// A request that looks like one, carried as a body: it must stay a body.
const INNER: &[u8] = b"GET /SMUGGLED HTTP/1.1\r\nHost: paf.test\r\n\r\n";

/// Every case, in the order they are sent.
#[rustfmt::skip]
pub fn all() -> Vec<Case> {
    let max_body = vec![b'b'; MAX_BODY];
    vec![
        // ---- baselines: what a well-formed request gets ----
        c("get", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", served(GET, b"")),
        c("post-length", post_length(HELLO), served(POST, HELLO)),
        c("post-chunked", post_chunk(HELLO), served(POST, HELLO)),
        c("pipelined-two", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\nGET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n",
            Outcome(vec![serve(GET, b""), serve(GET, b"")], End::Open)),

        // ---- Content-Length and Transfer-Encoding together (CL.TE, TE.CL) ----
        // RFC 9112 §6.1: a server MAY reject a request with both, or process it by
        // Transfer-Encoding alone, and MUST close after it. paf rejects: 400.
        c("cl-te", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {p}/SMUGGLED HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("te-cl", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET {p}/SMUGGLED HTTP/1.1\r\n\r\n", reject(400)),
        c("te-cl-zero", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("te-tab-with-cl", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", reject(400)),
        // An underscore makes another field name: framing is by Content-Length alone.
        c("te-underscore-with-cl", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", served(POST, HELLO)),

        // ---- Transfer-Encoding variants and obfuscations ----
        // RFC 9112 §6.3 ¶4: chunked not final → the length cannot be known: 400 (MUST), which
        // outranks §6.1's SHOULD of 501 for a coding the server does not understand.
        c("te-xchunked", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("te-chunked-identity", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("te-chunked-gzip", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", reject(400)),
        // RFC 9112 §6.1: framed by chunked, but with a coding paf does not know: 501.
        c("te-identity-chunked", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", reject(501)),
        // RFC 9110 §5.5: leading and trailing OWS (SP, HTAB) is not part of the value.
        c("te-leading-spaces", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding:    chunked  \r\n\r\n5\r\nhello\r\n0\r\n\r\n", served(POST, HELLO)),
        c("te-tab", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", served(POST, HELLO)),
        // RFC 9112 §7: coding names are case-insensitive.
        c("te-uppercase", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", served(POST, HELLO)),
        // RFC 9112 §6.1: chunked MUST NOT be applied twice; two field lines are one list.
        c("te-twice", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", reject(400)),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        c("te-http10", b"POST {p} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {p}/SMUGGLED HTTP/1.0\r\n\r\n", reject(400)),
        c("te-empty", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n", reject(400)),
        c("te-quoted", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", reject(400)),
        c("te-vertical-tab", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n", reject(400)),
        // RFC 9112 §5.1: whitespace between name and colon MUST be rejected with 400.
        c("te-space-before-colon", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", reject(400)),
        // RFC 9112 §5.2: obs-fold is rejected (400) or unfolded; paf rejects.
        c("te-obs-fold", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello", reject(400)),
        // Valid for the codec; the proxy cannot forward gzip framing faithfully: 501 there.
        c("te-gzip-chunked", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", local(405, 501)),

        // ---- Content-Length ----
        // RFC 9110 §8.6: identical repeated values MAY be accepted as one.
        c("cl-dup-equal", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", served(POST, HELLO)),
        // RFC 9112 §6.3 ¶5: an invalid Content-Length MUST get 400 and a close.
        c("cl-dup-different", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", reject(400)),
        c("cl-list-different", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 5, 6\r\n\r\nhello!", reject(400)),
        c("cl-plus", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: +5\r\n\r\nhello", reject(400)),
        c("cl-minus", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: -1\r\n\r\nhello", reject(400)),
        c("cl-inner-space", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 1 0\r\n\r\nhellohello", reject(400)),
        c("cl-hex", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 0x5\r\n\r\nhello", reject(400)),
        c("cl-overflow", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 99999999999999999999999\r\n\r\nhello", reject(400)),
        c("cl-empty", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: \r\n\r\nhello", reject(400)),
        // RFC 9110 §8.6: 1*DIGIT, leading zeros included.
        c("cl-leading-zeros", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 005\r\n\r\nhello", served(POST, HELLO)),
        c("cl-at-max", post_length(&max_body), served(POST, &max_body)),
        c("cl-over-max", format!("POST {{p}} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: {}\r\n\r\nhello", MAX_BODY + 1), reject(413)),
        c("get-with-body", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 5\r\n\r\nhello", served(GET, HELLO)),
        c("body-looks-like-request", post_length(INNER), served(POST, INNER)),

        // ---- chunked framing (RFC 9112 §7.1) ----
        // §7.1: recipients MUST guard against overflow: 18 hex digits is refused.
        c("chunk-size-overflow", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-size-u64-max", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n", reject(413)),
        c("chunk-size-nonhex", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-size-negative", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-size-0x", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-size-empty", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", reject(400)),
        // chunk = chunk-size [ chunk-ext ] CRLF: whitespace only before a `;`.
        c("chunk-size-trailing-space", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", reject(400)),
        // §7.1.1: unknown extensions MUST be ignored; BWS before `;` is allowed.
        c("chunk-ext", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value;x=\"q\"\r\nhello\r\n0;last\r\n\r\n", served(POST, HELLO)),
        c("chunk-ext-bws", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\n\r\n", served(POST, HELLO)),
        // §7.1.1: a server ought to limit extension length and answer 4xx past it (16 KiB).
        c("chunk-ext-huge", format!("POST {{p}} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(17 * 1024)), reject(400)),
        c("chunk-ext-nul", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nhello\r\n0\r\n\r\n", reject(400)),
        // A lenient parser would end the size line at this LF and see a different body.
        c("chunk-ext-bare-lf", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-data-no-crlf", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", reject(400)),
        c("chunk-data-too-long", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", reject(400)),
        // RFC 9112 §2.2 lets a recipient accept bare LF in the head; paf's chunk framing is
        // CRLF only, since a lenient chunk parser behind a strict proxy smuggles.
        c("chunk-size-bare-lf", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", reject(400)),
        c("chunk-data-bare-lf", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", reject(400)),
        c("chunk-last-bare-lf", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\n", reject(400)),
        c("chunk-at-max", post_chunk(&max_body), served(POST, &max_body)),
        c("chunk-over-max", format!("POST {{p}} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\nhello", MAX_BODY + 1), reject(413)),
        // §7.1.2: trailers are not framing; a Content-Length there changes nothing.
        c("chunk-trailer", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\nContent-Length: 100\r\n\r\n", served(POST, HELLO)),
        c("chunk-trailer-bad", b"POST {p} HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX Bad: 1\r\n\r\n", reject(400)),

        // ---- line endings and bytes in the head ----
        // RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator.
        c("bare-lf-head", b"GET {p} HTTP/1.1\nHost: paf.test\n\n", served(GET, b"")),
        // RFC 9112 §2.2: a bare CR MUST be rejected or replaced by SP; paf rejects.
        c("bare-cr-in-value", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: a\rb\r\n\r\n", reject(400)),
        c("cr-cr-lf", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\r\n\r\n", reject(400)),
        // RFC 9110 §5.5: NUL, CR, LF MUST be rejected or replaced; other CTLs are invalid.
        c("nul-in-value", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: a\x00b\r\n\r\n", reject(400)),
        c("nul-in-name", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-\x00A: b\r\n\r\n", reject(400)),
        c("ctl-in-value", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: a\x01b\r\n\r\n", reject(400)),
        c("del-in-value", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: a\x7fb\r\n\r\n", reject(400)),
        // RFC 9110 §5.5: obs-text (0x80-0xFF) is allowed in a field value.
        c("obs-text-in-value", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: caf\xe9\r\n\r\n", served(GET, b"")),
        c("nul-in-target", b"GET {p}\x00 HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("ctl-in-target", b"GET {p}\x01 HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("del-in-target", b"GET {p}\x7f HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // RFC 9112 §5.2: obs-fold is rejected (400) or unfolded; paf rejects.
        c("obs-fold", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A: a\r\n b\r\n\r\n", reject(400)),
        // RFC 9112 §2.2: whitespace before the first field line MUST be rejected or skipped.
        c("space-before-first-field", b"GET {p} HTTP/1.1\r\n Host: paf.test\r\n\r\n", reject(400)),
        c("field-without-colon", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nNoColonHere\r\n\r\n", reject(400)),
        // RFC 9112 §5.1: whitespace before the colon MUST get 400.
        c("space-before-colon", b"GET {p} HTTP/1.1\r\nHost : paf.test\r\n\r\n", reject(400)),
        c("tab-before-colon", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX-A\t: b\r\n\r\n", reject(400)),
        c("empty-field-name", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n: b\r\n\r\n", reject(400)),
        c("nontoken-field-name", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nX@A: b\r\n\r\n", reject(400)),

        // ---- Host and the target (RFC 9112 §3.2) ----
        // §3.2: a 1.1 request without Host, with two, or an invalid one MUST get 400.
        c("missing-host", b"GET {p} HTTP/1.1\r\nX-A: b\r\n\r\n", reject(400)),
        c("two-hosts", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("host-invalid", b"GET {p} HTTP/1.1\r\nHost: paf test\r\n\r\n", reject(400)),
        c("host-bad-port", b"GET {p} HTTP/1.1\r\nHost: paf.test:80x\r\n\r\n", reject(400)),
        c("absolute-form", b"GET http://paf.test{p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", served(GET, b"")),
        // §3.2.2 has an origin server ignore Host for an absolute-form target; paf, a gateway
        // that routes on the host, rejects the disagreement (400, RFC 9110 §15.5.1) rather
        // than route differently from whoever read Host before it.
        c("absolute-form-host-mismatch", b"GET http://other.test{p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("absolute-form-userinfo", b"GET http://user@paf.test{p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("absolute-form-ftp", b"GET ftp://paf.test{p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // HTTP/1.0 needs no Host and closes after its response.
        c("http10-no-host", b"GET {p} HTTP/1.0\r\n\r\n", served_close(GET, b"")),
        // RFC 9112 §9.6: after `Connection: close` no further request is processed.
        c("close-then-pipelined", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\nConnection: close\r\n\r\nGET {p}/SMUGGLED HTTP/1.1\r\nHost: paf.test\r\n\r\n", served_close(GET, b"")),
        c("target-with-space", b"GET {p} x HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("target-relative", b"GET c/x HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("target-asterisk-get", b"GET * HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // CONNECT is never tunnelled without a `connect` route (neither listener has one):
        // 501, nothing reaches the upstream.
        c("connect", b"CONNECT paf.test:443 HTTP/1.1\r\nHost: paf.test:443\r\n\r\n", Outcome(vec![Reply::Local { direct: 501, proxy: 501 }], End::Close)),

        // ---- request line: methods and versions ----
        // RFC 9110 §9.1: methods are case-sensitive tokens; `get` is some other method.
        c("method-lowercase", b"get {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", served("get", b"")),
        c("method-nontoken", b"G(T {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("method-empty", b" {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // RFC 9112 §3 lets a recipient split on other whitespace; paf takes single SP only.
        c("double-space", b"GET  {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("tab-separator", b"GET\t{p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // RFC 9110 §2.5 suggests (SHOULD) treating 1.2 as 1.1; paf implements 1.0 and 1.1
        // only and says so with 505 (RFC 9110 §15.6.6), like any other version it lacks.
        c("version-1.2", b"GET {p} HTTP/1.2\r\nHost: paf.test\r\n\r\n", reject(505)),
        c("version-2.0", b"GET {p} HTTP/2.0\r\nHost: paf.test\r\n\r\n", reject(505)),
        c("version-0.9", b"GET {p} HTTP/0.9\r\nHost: paf.test\r\n\r\n", reject(505)),
        c("version-3", b"GET {p} HTTP/3\r\nHost: paf.test\r\n\r\n", reject(505)),
        // An HTTP/0.9 simple request has no version at all: not a request line paf parses.
        c("version-missing", b"GET {p}\r\nHost: paf.test\r\n\r\n", reject(400)),
        // RFC 9112 §2.3: HTTP-name is case-sensitive, one digit each side of the dot.
        c("version-lowercase", b"GET {p} http/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("version-garbage", b"GET {p} FOO/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        c("version-two-digits", b"GET {p} HTTP/1.10\r\nHost: paf.test\r\n\r\n", reject(400)),
        // The HTTP/2 connection preface on an HTTP/1 port (h2c is off in this config).
        c("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", reject(505)),
        c("garbage-line", b"\x16\x03\x01\x00\xa5\x01garbage\r\n\r\n", reject(400)),
        // Bytes that cannot start a method, with no line end: 400 and the close at once, not at
        // head_timeout (as nginx does for a ClientHello on its http port).
        c("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", reject(400)),
        c("tls-record-header", b"\x16\x03\x01", reject(400)),
        c("nul-byte", b"\0", reject(400)),

        // ---- limits ----
        c("request-line-at-limit", line_of("request-line-at-limit", MAX_LINE), served(GET, b"")),
        c("request-line-over-limit", line_of("request-line-over-limit", MAX_LINE + 1), reject(414)),
        c("head-at-limit", head_of("head-at-limit", MAX_HEAD), served(GET, b"")),
        c("head-over-limit", head_of("head-over-limit", MAX_HEAD + 1), reject(431)),
        c("fields-at-limit", fields(MAX_HEADERS - 1), served(GET, b"")),
        c("fields-over-limit", fields(MAX_HEADERS), reject(431)),

        // ---- empty lines and pipelining ----
        // RFC 9112 §2.2: empty lines before a request line SHOULD be ignored.
        c("leading-empty-lines", b"\r\n\r\nGET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", served(GET, b"")),
        c("leading-bare-cr", b"\rGET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n", reject(400)),
        // The first response is served whole, then the garbage gets its error and the close.
        c("pipelined-garbage", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\n\x16\x03\x01\x00\xa5garbage\r\n\r\n", served_then(GET, 400)),
        c("pipelined-cl-te", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\nPOST {p} HTTP/1.1\r\nHost: paf.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {p}/SMUGGLED HTTP/1.1\r\nHost: paf.test\r\n\r\n", served_then(GET, 400)),
        c("pipelined-bad-version", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\nGET {p}/SMUGGLED HTTP/1.2\r\nHost: paf.test\r\n\r\n", served_then(GET, 505)),
        c("pipelined-bad-chunk", b"GET {p} HTTP/1.1\r\nHost: paf.test\r\n\r\nPOST {p}/SMUGGLED HTTP/1.1\r\nHost: paf.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", served_then(GET, 400)),
    ]
}

//! Request head parsing and validation (RFC 9112 §2–§7, RFC 9110 §7.2).
//!
//! [`HeadScan`] finds the end of a head incrementally (so a head trickling in byte by byte costs
//! linear time) and applies the request-line limits early: 414 for a long line, 505 for another
//! HTTP version, 431 for a head over `max_head_size`. [`parse`] turns a complete head into an
//! `http::Request<()>` plus its body framing, rejecting everything that could smuggle a request
//! past a proxy that reads it differently:
//!
//! * `Transfer-Encoding` with `Content-Length`, in an HTTP/1.0 request, or with a final coding
//!   other than `chunked` → 400 (RFC 9112 §6.3 ¶4: the length "cannot be determined reliably",
//!   a MUST); only then an unknown coding name (anything but `chunked`, `gzip`, `x-gzip`,
//!   `deflate`, `compress`, `x-compress`) → 501 (RFC 9112 §6.1, a SHOULD). So `xchunked`,
//!   `chunked, identity` and `gzip` alone are 400, `x-unknown, chunked` is 501, and
//!   `gzip, chunked` is accepted (the handler sees the header and gets the de-chunked,
//!   still-gzipped bytes).
//! * `Content-Length` that is not plain digits, overflows, or disagrees with another
//!   `Content-Length` (also `1, 2` in one field) → 400; identical duplicates are accepted.
//! * obs-fold, whitespace before the colon, NUL, bare CR, invalid name bytes → 400 (httparse).
//! * HTTP/1.1 without `Host`, several `Host` fields, an invalid `Host`, or an absolute-form target
//!   whose authority differs from `Host` → 400.
//! * A target form that does not fit the method (`*` only for OPTIONS, authority-form only and
//!   always for CONNECT, absolute-form only with `http`/`https`) → 400.
//! * The HTTP/2 preface `PRI * HTTP/2.0` is answered like any other version: 505 (a service
//!   with h2c on never hands it to this codec: see `service::codec`).
//!
//! A bare LF is accepted as a line end inside the head (RFC 9112 §2.2 allows it; chunked framing
//! in [`super::body`] is stricter).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use std::mem::MaybeUninit;

use super::body::BodyKind;
use super::{Config, Error};

/// Header slots parsed on the stack; configs allowing more use a heap array.
const HEADER_SLOTS: usize = 128;

/// A validated request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub request: http::Request<()>,
    pub body: BodyKind,
    /// The client allows the connection to persist after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` in an HTTP/1.1 request.
    pub expect_continue: bool,
    /// An HTTP/1.1 request (not CONNECT) asking to switch protocols: `Upgrade` with the
    /// `upgrade` connection option (RFC 9110 §7.8). What follows its head and body may not be
    /// HTTP: the codec reads nothing more until its response says whether it switched.
    pub upgrade: bool,
}

/// Incremental search for the end of a request head.
#[derive(Debug)]
pub(crate) struct HeadScan {
    scanned: usize,
    line_checked: bool,
    /// Bytes of the method checked so far; `None` once the method and its SP are in.
    method: Option<usize>,
}

impl Default for HeadScan {
    fn default() -> Self {
        HeadScan {
            scanned: 0,
            line_checked: false,
            method: Some(0),
        }
    }
}

impl HeadScan {
    /// Scans `buf` (a head prefix that only grows between calls; `reset` starts over) and
    /// returns the head length once the empty line ending it is seen.
    ///
    /// # Errors
    ///
    /// 400 at the first byte that cannot continue a method followed by SP (a TLS ClientHello
    /// on a plain-text port, binary garbage), without waiting for the rest of the line; 414,
    /// 505 or 400 from the request line as soon as it is complete (or too long to be), 431
    /// once `buf` reaches `max_head_size` without an end.
    pub(crate) fn scan(&mut self, buf: &[u8], config: &Config) -> Result<Option<usize>, Error> {
        if let Some(checked) = self.method {
            // Only bytes the length limits below would not refuse first: the verdict must not
            // depend on how the input was split.
            let limit = (config.max_request_line + 1).min(config.max_head_size);
            self.method = check_method(&buf[..buf.len().min(limit)], checked)?;
        }
        let mut at = self.scanned;
        while let Some(off) = memchr::memchr(b'\n', &buf[at..]) {
            let lf = at + off;
            at = lf + 1;
            if !self.line_checked {
                check_request_line(&buf[..lf], config)?;
                self.line_checked = true;
            } else if buf[lf - 1] == b'\n' || (buf[lf - 1] == b'\r' && buf[lf - 2] == b'\n') {
                self.scanned = at;
                if at > config.max_head_size {
                    return Err(Error::HeadersTooLarge);
                }
                return Ok(Some(at));
            }
        }
        self.scanned = buf.len();
        if !self.line_checked && buf.len() > config.max_request_line + 1 {
            return Err(Error::UriTooLong);
        }
        if buf.len() >= config.max_head_size {
            return Err(Error::HeadersTooLarge);
        }
        Ok(None)
    }

    /// Forgets the scanned prefix, for the next head.
    pub(crate) fn reset(&mut self) {
        *self = HeadScan::default();
    }
}

/// Checks the method's bytes from `from` on: a token (RFC 9110 §9.1) followed by SP. Returns
/// how far it got (`Some`), or `None` once the SP after a non-empty method is in.
fn check_method(buf: &[u8], from: usize) -> Result<Option<usize>, Error> {
    for (i, &b) in buf.iter().enumerate().skip(from) {
        match b {
            b' ' if i > 0 => return Ok(None),
            _ if is_tchar(b) => {}
            b'\r' | b'\n' if i > 0 => return Err(Error::BadRequest("malformed request line")),
            _ => return Err(Error::BadRequest("invalid request method")),
        }
    }
    Ok(Some(buf.len()))
}

/// Checks the request line (without its LF): length, then version.
fn check_request_line(line: &[u8], config: &Config) -> Result<(), Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > config.max_request_line {
        return Err(Error::UriTooLong);
    }
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return Err(Error::BadRequest("malformed request line"));
    };
    match &line[sp + 1..] {
        b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', d] if d.is_ascii_digit() => Err(Error::VersionNotSupported),
        [b'H', b'T', b'T', b'P', b'/', d1, b'.', d2]
            if d1.is_ascii_digit() && d2.is_ascii_digit() =>
        {
            Err(Error::VersionNotSupported)
        }
        _ => Err(Error::BadRequest("malformed HTTP version")),
    }
}

/// The field values of a head, sharing one copy of its bytes: one allocation a head instead of
/// one a field, and copies of a value (the proxy forwards them) only count references. A value
/// kept after its head keeps the head's bytes (at most `max_head_size`) alive.
pub(crate) struct FieldValues {
    bytes: bytes::Bytes,
    /// Where the head starts in memory: a value's offset in `bytes` is its address minus this.
    base: usize,
}

impl FieldValues {
    /// Copies `head`, the buffer the values will be given from.
    pub(crate) fn new(head: &[u8]) -> Self {
        FieldValues {
            bytes: bytes::Bytes::copy_from_slice(head),
            base: head.as_ptr() as usize,
        }
    }

    /// The header value of `value`, a slice of the head given to [`new`](Self::new).
    pub(crate) fn value(
        &self,
        value: &[u8],
    ) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        let at = (value.as_ptr() as usize).wrapping_sub(self.base);
        match self.bytes.get(at..at + value.len()) {
            Some(_) => HeaderValue::from_maybe_shared(self.bytes.slice(at..at + value.len())),
            // Not from the head (never the case for httparse's slices): copied.
            None => HeaderValue::from_bytes(value),
        }
    }
}

/// Whether `name` is a hop-by-hop field whatever `Connection` says (RFC 9110 §7.6.1, and the
/// `Proxy-*` fields of old proxies): `Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    // By length first: most names are none of these, and most lengths match one at most.
    let s = name.as_str();
    let listed = match s.len() {
        2 => s == "te",
        7 => s == "trailer" || s == "upgrade",
        10 => s == "connection" || s == "keep-alive",
        17 => s == "transfer-encoding",
        _ => false,
    };
    listed || s.starts_with("proxy-")
}

/// Maps this small are searched by a walk over their fields: comparing names (a standard name
/// is one byte) costs less than hashing one, which every `HeaderMap` lookup does; a request or
/// response head rarely has more fields.
const WALK: usize = 12;

/// Whether `h` has a field `name`: [`HeaderMap::contains_key`], by a walk when `h` is small.
pub(crate) fn has(h: &HeaderMap, name: &HeaderName) -> bool {
    if h.len() <= WALK {
        h.keys().any(|k| k == name)
    } else {
        h.contains_key(name)
    }
}

/// The first value of `name` in `h`: [`HeaderMap::get`], by a walk when `h` is small.
pub(crate) fn first<'a>(h: &'a HeaderMap, name: &'a HeaderName) -> Option<&'a HeaderValue> {
    all(h, name).next()
}

/// Every value of `name` in `h`, in order: [`HeaderMap::get_all`], by a walk when `h` is small.
pub(crate) fn all<'a>(
    h: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a HeaderValue> + 'a {
    let walk = h.len() <= WALK;
    let walked = walk.then(|| h.iter().filter(move |(k, _)| *k == name).map(|(_, v)| v));
    let looked = (!walk).then(|| h.get_all(name).iter());
    walked
        .into_iter()
        .flatten()
        .chain(looked.into_iter().flatten())
}

/// The field name `raw`: the names most heads carry, spelled as clients and servers send them,
/// matched whole (a tenth of the cost of [`HeaderName::from_bytes`]'s lowercasing copy and
/// lookup, which every other name takes).
///
/// # Errors
/// Not a valid field name.
pub(crate) fn field_name(raw: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use http::header as h;
    Ok(match raw {
        b"Host" | b"host" => h::HOST,
        b"User-Agent" | b"user-agent" => h::USER_AGENT,
        b"Accept" | b"accept" => h::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => h::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => h::ACCEPT_LANGUAGE,
        b"Connection" | b"connection" => h::CONNECTION,
        b"Content-Length" | b"content-length" => h::CONTENT_LENGTH,
        b"Content-Type" | b"content-type" => h::CONTENT_TYPE,
        b"Date" | b"date" => h::DATE,
        b"Server" | b"server" => h::SERVER,
        b"Cookie" | b"cookie" => h::COOKIE,
        b"Referer" | b"referer" => h::REFERER,
        b"Cache-Control" | b"cache-control" => h::CACHE_CONTROL,
        b"Transfer-Encoding" | b"transfer-encoding" => h::TRANSFER_ENCODING,
        _ => return HeaderName::from_bytes(raw),
    })
}

/// Parses and validates a complete head (`buf` ends with the empty line found by [`HeadScan`]).
///
/// # Errors
///
/// The status-carrying [`Error`] the request deserves; see the module docs.
pub(crate) fn parse(buf: &[u8], config: &Config) -> Result<RequestHead, Error> {
    let max = config.max_headers;
    // Slots httparse fills (left uninitialized: writing 128 empty ones cost more than a
    // short head's whole parse).
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max <= HEADER_SLOTS {
        &mut stack[..max]
    } else {
        heap = vec![MaybeUninit::uninit(); max];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Error::BadRequest("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadersTooLarge),
        Err(e) => return Err(Error::BadRequest(httparse_why(e))),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Error::BadRequest("incomplete request line"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| Error::BadRequest("invalid method"))?;
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let uri = parse_target(&method, target)?;

    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let values = FieldValues::new(buf);
    let mut host: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut te = TransferCodings::default();
    let (mut close, mut keep_alive, mut upgrade_option) = (false, false, false);
    let mut expect_continue = false;
    let mut upgrade_field = false;
    for h in req.headers.iter() {
        let name =
            field_name(h.name.as_bytes()).map_err(|_| Error::BadRequest("invalid header name"))?;
        let value = h.value;
        if name == http::header::HOST {
            if host.replace(value).is_some() {
                return Err(Error::BadRequest("multiple Host fields"));
            }
        } else if name == http::header::CONTENT_LENGTH {
            for n in list(value) {
                let n = parse_content_length(n)?;
                if content_length.is_some_and(|cl| cl != n) {
                    return Err(Error::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            if content_length.is_none() {
                return Err(Error::BadRequest("empty Content-Length"));
            }
        } else if name == http::header::TRANSFER_ENCODING {
            te.add(value).map_err(Error::BadRequest)?;
        } else if name == http::header::CONNECTION {
            for token in list(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                upgrade_option |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name == http::header::EXPECT {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name == http::header::UPGRADE {
            upgrade_field |= list(value).next().is_some();
        }
        let value = values
            .value(value)
            .map_err(|_| Error::BadRequest("invalid header value"))?;
        headers.append(name, value);
    }

    check_host(version, host, &uri)?;
    let body = if te.present {
        if version == Version::HTTP_10 {
            return Err(Error::BadRequest("Transfer-Encoding in HTTP/1.0 request"));
        }
        if content_length.is_some() {
            return Err(Error::BadRequest("Transfer-Encoding with Content-Length"));
        }
        te.finish()?
    } else {
        match content_length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };
    if let BodyKind::Length(n) = body {
        if config.max_body_size.is_some_and(|max| n > max) {
            return Err(Error::PayloadTooLarge);
        }
    }

    // RFC 9110 §7.8: Upgrade in HTTP/1.0 is ignored; CONNECT is not an upgrade.
    let upgrade =
        upgrade_field && upgrade_option && version == Version::HTTP_11 && method != Method::CONNECT;
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(RequestHead {
        request,
        body,
        keep_alive: !close && (version == Version::HTTP_11 || keep_alive),
        expect_continue: expect_continue && version == Version::HTTP_11,
        upgrade,
    })
}

fn httparse_why(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "malformed HTTP version",
        _ => "malformed head",
    }
}

/// Elements of a comma-separated field value, trimmed of optional whitespace, empty ones skipped.
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|e| !e.is_empty())
}

pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub(super) fn parse_content_length(s: &[u8]) -> Result<u64, Error> {
    let bad = Error::BadRequest("invalid Content-Length");
    if s.is_empty() {
        return Err(bad);
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(bad);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(bad)
    })
}

/// The `Transfer-Encoding` fields of a request, in order.
#[derive(Default)]
pub(super) struct TransferCodings {
    /// A `Transfer-Encoding` field was seen.
    pub(super) present: bool,
    /// A coding other than chunked and the compressions was named.
    pub(super) unknown: bool,
    /// How many times `chunked` was named.
    pub(super) chunked: usize,
    /// The last coding named is `chunked`.
    pub(super) last_is_chunked: bool,
    /// At least one coding was named.
    pub(super) any: bool,
}

impl TransferCodings {
    /// Adds one `Transfer-Encoding` field value (requests and responses alike).
    ///
    /// # Errors
    /// A coding that is empty or not a token: the message says so.
    pub(super) fn add(&mut self, value: &[u8]) -> Result<(), &'static str> {
        self.present = true;
        for coding in list(value) {
            let name = trim(coding.split(|&b| b == b';').next().unwrap_or_default());
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err("invalid Transfer-Encoding");
            }
            let is_chunked = name.eq_ignore_ascii_case(b"chunked");
            self.chunked += usize::from(is_chunked);
            self.last_is_chunked = is_chunked;
            self.any = true;
            self.unknown |= !is_chunked
                && ![
                    &b"gzip"[..],
                    b"x-gzip",
                    b"deflate",
                    b"compress",
                    b"x-compress",
                ]
                .iter()
                .any(|known| name.eq_ignore_ascii_case(known));
        }
        Ok(())
    }

    /// The request body framing these codings give.
    ///
    /// The framing checks come first: RFC 9112 §6.3 ¶4 says a request whose final coding is not
    /// `chunked` MUST get 400 (its length cannot be determined), which outranks the SHOULD of
    /// §6.1 (501 for a coding the server does not understand). Only a request that is framed
    /// correctly but names an unknown coding before `chunked` gets 501.
    fn finish(&self) -> Result<BodyKind, Error> {
        if !self.any {
            Err(Error::BadRequest("empty Transfer-Encoding"))
        } else if !self.last_is_chunked {
            Err(Error::BadRequest("final transfer coding is not chunked"))
        } else if self.chunked > 1 {
            Err(Error::BadRequest("chunked applied more than once"))
        } else if self.unknown {
            Err(Error::NotImplemented("unknown transfer coding"))
        } else {
            Ok(BodyKind::Chunked)
        }
    }
}

pub(super) fn is_tchar(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

/// Parses the request target and checks its form against the method (RFC 9112 §3.2).
fn parse_target(method: &Method, target: &str) -> Result<Uri, Error> {
    let bad = |why| Error::BadRequest(why);
    if target == "*" {
        return if method == Method::OPTIONS {
            Ok(Uri::from_static("*"))
        } else {
            Err(bad("asterisk-form only for OPTIONS"))
        };
    }
    if method == Method::CONNECT {
        // authority-form: uri-host ":" port, nothing else.
        let uri = Uri::try_from(target).map_err(|_| bad("invalid request target"))?;
        let ok = uri.scheme().is_none()
            && uri
                .authority()
                .is_some_and(|a| a.port().is_some() && !a.as_str().contains('@'))
            && !target.contains('/');
        return if ok {
            Ok(uri)
        } else {
            Err(bad("CONNECT needs authority-form"))
        };
    }
    let uri = Uri::try_from(target).map_err(|_| bad("invalid request target"))?;
    if target.starts_with('/') {
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(bad("invalid request target"));
        }
        return Ok(uri);
    }
    let scheme_ok = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let authority_ok = uri
        .authority()
        .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@') && port_is_valid(a));
    if scheme_ok && authority_ok {
        Ok(uri)
    } else {
        Err(bad("invalid request target"))
    }
}

/// RFC 3986 §3.2.3 (RFC 9110 §4.1): `port = *DIGIT`, here also at most 65535. The `http` crate
/// accepts any bytes after the last colon and then reports no port at all, so `a:80x` would
/// otherwise pass as `a` (and route as port 80).
fn port_is_valid(a: &http::uri::Authority) -> bool {
    let s = a.as_str();
    let after_host = match s.rfind(']') {
        Some(i) => &s[i + 1..],
        None => s.rfind(':').map_or("", |i| &s[i..]),
    };
    match after_host.strip_prefix(':') {
        None => after_host.is_empty(),
        Some(port) => {
            port.is_empty()
                || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
        }
    }
}

/// Whether `host` is a registered name or IPv4 address of letters, digits, dots and hyphens,
/// with at most a port of 1 to 5 digits up to 65535: a valid `Host` (anything else goes through
/// `Authority`).
fn is_plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
    });
    name_ok && port_ok
}

/// RFC 9112 §3.2: exactly one valid Host in HTTP/1.1; it must agree with an absolute-form target.
fn check_host(version: Version, host: Option<&[u8]>, uri: &Uri) -> Result<(), Error> {
    if uri.scheme().is_none() && host.is_some_and(is_plain_host) {
        // Origin-form (no authority to agree with) and a plain `name[:port]`: what the full
        // check accepts, without building an `Authority` (a fifth of a head's parse).
        return Ok(());
    }
    check_host_in_full(version, host, uri)
}

/// [`check_host`] without its shortcut.
fn check_host_in_full(version: Version, host: Option<&[u8]>, uri: &Uri) -> Result<(), Error> {
    let Some(host) = host else {
        return if version == Version::HTTP_11 {
            Err(Error::BadRequest("missing Host"))
        } else {
            Ok(())
        };
    };
    let host = if host.is_empty() {
        None
    } else {
        let a =
            http::uri::Authority::try_from(host).map_err(|_| Error::BadRequest("invalid Host"))?;
        if a.as_str().contains('@') || a.host().is_empty() || !port_is_valid(&a) {
            return Err(Error::BadRequest("invalid Host"));
        }
        Some(a)
    };
    let Some(target) = uri.authority().filter(|_| uri.scheme().is_some()) else {
        return Ok(());
    };
    let default_port = if uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        443
    } else {
        80
    };
    let same = host.is_some_and(|h| {
        h.host().eq_ignore_ascii_case(target.host())
            && h.port_u16().unwrap_or(default_port) == target.port_u16().unwrap_or(default_port)
    });
    if same {
        Ok(())
    } else {
        Err(Error::BadRequest("Host does not match the request target"))
    }
}

#[cfg(test)]
mod tests;

//! Request head serialization and response head parsing (RFC 9112 §3–§7, §6.3).
//!
//! The codec owns the request framing: `Content-Length` and `Transfer-Encoding` set by the caller
//! are replaced by what the chosen [`RequestBody`](super::RequestBody) implies, `Host` is added
//! from the URI authority when missing, and the target is sent in origin-form.
//!
//! Response framing follows RFC 9112 §6.3, strictly wherever a lenient reading could desync a
//! pooled connection:
//!
//! * a response to HEAD, and 1xx/204/304 responses, have no body whatever their headers say;
//! * `Transfer-Encoding` with `Content-Length`, in an HTTP/1.0 response, empty, or with `chunked`
//!   applied twice → [`ClientError::Malformed`];
//! * `Transfer-Encoding` whose final coding is `chunked` → chunked; any other final coding →
//!   close-delimited (the connection is then not reused);
//! * `Content-Length` that is not plain digits, overflows, or disagrees with another
//!   `Content-Length` (also `1, 2` in one field) → `Malformed`; identical duplicates are fine;
//! * neither → close-delimited;
//! * obs-fold, NUL, bare CR, invalid names (httparse, strict) → `Malformed`; more fields than
//!   `max_headers` → [`ClientError::HeadTooLarge`].

use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, HOST};
use http::header::{EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{Method, StatusCode, Version};
use std::mem::MaybeUninit;

use super::{ClientError, Config, UsageError};
use crate::http::body;
use crate::http::head::{list, parse_content_length, FieldValues, TransferCodings};
use crate::http::write::write_u64;

/// Header slots parsed on the stack; configs allowing more use a heap array.
const HEADER_SLOTS: usize = 128;

/// How a request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReqFraming {
    /// No framing header (a GET without a body).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the codec needs to remember about a serialized request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RequestInfo {
    pub is_head: bool,
    pub expect_continue: bool,
    /// The request said `Connection: close`.
    pub close: bool,
    /// The request asks to switch protocols (`Upgrade` with the `upgrade` connection option):
    /// a `101` answer ends HTTP on the connection.
    pub upgrade: bool,
}

/// Appends a request head (always HTTP/1.1).
///
/// # Errors
///
/// [`UsageError::UnsupportedMethod`] for CONNECT, [`UsageError::MissingHost`] when neither a
/// `Host` header nor a URI authority names the server.
pub(super) fn write_request(
    out: &mut Vec<u8>,
    head: &http::Request<()>,
    framing: ReqFraming,
) -> Result<RequestInfo, UsageError> {
    let method = head.method();
    if method == Method::CONNECT {
        return Err(UsageError::UnsupportedMethod);
    }
    let headers = head.headers();
    let uri = head.uri();
    let host = if crate::http::head::has(headers, &HOST) {
        None
    } else {
        let authority = uri.authority().ok_or(UsageError::MissingHost)?.as_str();
        // Never send userinfo: it is not part of Host (RFC 9110 §7.2).
        Some(authority.rsplit('@').next().unwrap_or(authority))
    };
    // Origin-form (RFC 9112 §3.2.1); `*` stays as is (OPTIONS).
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    if !(target.starts_with('/') || target == "*") {
        out.push(b'/');
    }
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        header(out, b"host", host.as_bytes());
    }
    let mut info = RequestInfo {
        is_head: method == Method::HEAD,
        expect_continue: false,
        close: false,
        upgrade: false,
    };
    let mut upgrade_option = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        if name == CONNECTION {
            info.close |= list(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
            upgrade_option |= list(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if name == EXPECT {
            info.expect_continue |= value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    info.upgrade = upgrade_option && crate::http::head::has(headers, &UPGRADE);
    match framing {
        ReqFraming::None => {}
        ReqFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ReqFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    Ok(info)
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether a request with this method and no body still announces `Content-Length: 0`
/// (RFC 9110 §8.6: only where the method anticipates content).
pub(super) fn wants_zero_length(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH].contains(method)
}

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RespFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    Eof,
}

/// A validated final response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub response: http::Response<()>,
    pub framing: RespFraming,
    /// The server allows the connection to persist after this response.
    pub keep_alive: bool,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A 1xx response other than 101 (its fields are dropped).
    Interim(StatusCode),
    /// `101 Switching Protocols`, with its fields (`Upgrade`, `Sec-WebSocket-Accept`...).
    Switching(http::Response<()>),
    /// The final response.
    Final(ResponseHead),
}

/// Finds the end of a head in `buf`, scanning from `*scanned` (a head prefix that only grows
/// between calls); returns its length once the empty line is seen.
pub(super) fn scan(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let mut at = *scanned;
    while let Some(off) = memchr::memchr(b'\n', &buf[at..]) {
        let lf = at + off;
        at = lf + 1;
        let empty_line = match lf {
            0 => true,
            1 => buf[0] == b'\r' || buf[0] == b'\n',
            _ => buf[lf - 1] == b'\n' || (buf[lf - 1] == b'\r' && buf[lf - 2] == b'\n'),
        };
        if empty_line {
            *scanned = 0;
            return Some(at);
        }
    }
    *scanned = buf.len();
    None
}

/// Parses and validates a complete response head; `is_head` says the request was HEAD.
///
/// # Errors
///
/// [`ClientError::Malformed`], [`ClientError::HeadTooLarge`] or [`ClientError::BodyTooLarge`];
/// see the module docs.
pub(super) fn parse_response(
    buf: &[u8],
    config: &Config,
    is_head: bool,
) -> Result<Parsed, ClientError> {
    let bad = ClientError::Malformed;
    if matches!(buf.first(), Some(b'\r' | b'\n')) {
        // httparse would skip it; a stray CRLF after a body means the framing was misread.
        return Err(bad("empty line before the status line"));
    }
    let max = config.max_headers;
    // Slots httparse fills (left uninitialized, as the server's head parser does).
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max <= HEADER_SLOTS {
        &mut stack[..max]
    } else {
        heap = vec![MaybeUninit::uninit(); max];
        &mut heap
    };
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, slots)
    {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::HeadTooLarge),
        Err(e) => return Err(bad(httparse_why(e))),
    }
    let (Some(minor), Some(code)) = (res.version, res.code) else {
        return Err(bad("incomplete status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| bad("invalid status code"))?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Parsed::Interim(status));
    }
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };

    // A proxy's codec leaves the hop-by-hop fields out (not of a 101: its `Upgrade` is the
    // new protocol's name), and those `Connection` names (removed at the end: they may come
    // before it).
    let strip = config.strip_hop_by_hop && status != StatusCode::SWITCHING_PROTOCOLS;
    let mut named: Vec<&[u8]> = Vec::new();
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    let values = FieldValues::new(buf);
    let mut content_length: Option<u64> = None;
    let mut te = Codings::default();
    let (mut close, mut keep_alive) = (false, false);
    for h in res.headers.iter() {
        let name = crate::http::head::field_name(h.name.as_bytes())
            .map_err(|_| bad("invalid header name"))?;
        let value = h.value;
        if name == CONTENT_LENGTH {
            for n in list(value) {
                let n = parse_content_length(n).map_err(ClientError::from_decoder)?;
                if content_length.is_some_and(|cl| cl != n) {
                    return Err(bad("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            if content_length.is_none() {
                return Err(bad("empty Content-Length"));
            }
        } else if name == TRANSFER_ENCODING {
            te.add(value)?;
        } else if name == CONNECTION {
            for token in list(value) {
                let (c, k) = (
                    token.eq_ignore_ascii_case(b"close"),
                    token.eq_ignore_ascii_case(b"keep-alive"),
                );
                close |= c;
                keep_alive |= k;
                if strip && !c && !k {
                    named.push(token);
                }
            }
        }
        if strip && crate::http::head::is_hop_by_hop(&name) {
            continue;
        }
        let value = values
            .value(value)
            .map_err(|_| bad("invalid header value"))?;
        headers.append(name, value);
    }
    for token in named {
        if let Ok(name) = http::header::HeaderName::from_bytes(token) {
            headers.remove(name);
        }
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // No body, whatever its fields say: the next byte is the new protocol's.
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Parsed::Switching(response));
    }

    if te.0.present {
        if content_length.is_some() {
            return Err(bad("Transfer-Encoding with Content-Length"));
        }
        if version == Version::HTTP_10 {
            return Err(bad("Transfer-Encoding in HTTP/1.0 response"));
        }
    }
    let bodiless =
        is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = if te.0.present {
        let framing = te.framing()?;
        if bodiless {
            RespFraming::Empty
        } else {
            framing
        }
    } else if bodiless {
        RespFraming::Empty
    } else {
        match content_length {
            Some(0) => RespFraming::Empty,
            Some(n) if config.max_body_size.is_some_and(|max| n > max) => {
                return Err(ClientError::BodyTooLarge)
            }
            Some(n) => RespFraming::Length(n),
            None => RespFraming::Eof,
        }
    };

    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Parsed::Final(ResponseHead {
        response,
        framing,
        keep_alive: !close
            && framing != RespFraming::Eof
            && (version == Version::HTTP_11 || keep_alive),
    }))
}

fn httparse_why(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code",
        httparse::Error::Token => "invalid status line",
        httparse::Error::Version => "malformed HTTP version",
        _ => "malformed head",
    }
}

/// The `Transfer-Encoding` fields of a response, parsed as the server parses a request's.
#[derive(Default)]
struct Codings(TransferCodings);

impl Codings {
    fn add(&mut self, value: &[u8]) -> Result<(), ClientError> {
        self.0.add(value).map_err(ClientError::Malformed)
    }

    fn framing(&self) -> Result<RespFraming, ClientError> {
        if !self.0.any {
            Err(ClientError::Malformed("empty Transfer-Encoding"))
        } else if self.0.chunked > 1 {
            Err(ClientError::Malformed("chunked applied more than once"))
        } else if self.0.last_is_chunked {
            Ok(RespFraming::Chunked)
        } else {
            Ok(RespFraming::Eof)
        }
    }
}

/// The chunk framing of `data` (size line, payload, CRLF).
pub(super) fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    body::write_chunk_size(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

//! Response compression for the `static`, `files` and `proxy` routes (route keys `compress`,
//! `compress_min_size`): which coding a request gets (`Accept-Encoding`, RFC 9110 §12.5.3),
//! which types are worth it, and a streaming encoder over the well-kept crates (flate2 for
//! gzip, brotli), fed one file or upstream chunk at a time so memory stays one chunk per
//! response.
//!
//! Proxied responses ([`for_proxy`]) are compressed only when the route says so (off by
//! default), and only what is safe to transform: a 200, 403 or 404 of a compressible type that
//! the upstream did not encode, that no `Cache-Control: no-transform` protects, long enough when
//! its length is known (streamed when it is not), to a request that is not HEAD and asks no
//! range. The head then says the coding, loses its `Content-Length` and `Accept-Ranges`, and
//! its entity tag becomes weak ([`encoded_head`]).

use std::io::Write;

use ::http::header::{self, HeaderMap, HeaderValue};
use ::http::{Method, Request, Response, StatusCode};

use crate::config::{Compress, Encoding};

/// Brotli quality and window for bodies compressed as they stream (fast: quality 4 compresses
/// text about as well as gzip 6 at a few times its speed).
const BR_STREAM: (u32, u32) = (4, 22);
/// For bodies compressed once (static routes): the best ratio.
const BR_ONCE: (u32, u32) = (11, 22);
const GZIP_STREAM: u32 = 5;
const GZIP_ONCE: u32 = 9;

/// Whether a `Content-Type` is worth compressing: text, JSON, JavaScript, XML, SVG, WebAssembly.
/// Images, archives, fonts in `woff2` and video are compressed already.
pub fn compressible(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t.starts_with("text/")
        || t.ends_with("+json")
        || t.ends_with("+xml")
        || matches!(
            t.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "image/svg+xml"
                | "image/x-icon"
        )
}

/// The coding to answer with: the route's most preferred one that `accept` (the request's
/// `Accept-Encoding`, all its field lines joined) allows with a non-zero weight, by name or by
/// `*`. `None`: send the body as it is (no header, or only `identity`).
pub fn negotiate(accept: Option<&str>, offered: &[Encoding]) -> Option<Encoding> {
    let accept = accept?;
    let weight = |token: &str| -> Option<f32> {
        let mut star = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .next()
                .map_or(Some(1.0), |v| {
                    v.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))
                })
                .unwrap_or(0.0);
            if name.eq_ignore_ascii_case(token) {
                return Some(q);
            }
            if name == "*" {
                star = Some(q);
            }
        }
        star
    };
    offered
        .iter()
        .copied()
        .find(|e| weight(e.token()).is_some_and(|q| q > 0.0))
}

/// The entity tag of the `enc` variant of a representation tagged `etag`: `"x"` becomes
/// `"x-br"` (weak tags stay weak), so caches never mix codings (RFC 9110 §8.8.3).
pub fn variant_etag(etag: &str, enc: Encoding) -> String {
    match etag.strip_suffix('"') {
        Some(open) => format!("{open}-{}\"", enc.suffix()),
        None => format!("{etag}-{}", enc.suffix()),
    }
}

/// A streaming encoder: bytes in with [`Encoder::write`], compressed bytes out with
/// [`Encoder::take`], the end with [`Encoder::finish`].
pub struct Encoder(Inner);

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Gzip(_) => "Encoder(gzip)",
            Inner::Br(_) => "Encoder(br)",
        })
    }
}

impl Encoder {
    /// An encoder for a body compressed as it streams.
    pub fn new(enc: Encoding) -> Encoder {
        Encoder::with(enc, GZIP_STREAM, BR_STREAM)
    }

    fn with(enc: Encoding, gzip: u32, br: (u32, u32)) -> Encoder {
        Encoder(match enc {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(gzip),
            )),
            Encoding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                br.0,
                br.1,
            ))),
        })
    }

    /// Compresses `data` (writing to memory cannot fail).
    pub fn write(&mut self, data: &[u8]) {
        let r = match &mut self.0 {
            Inner::Gzip(e) => e.write_all(data),
            Inner::Br(e) => e.write_all(data),
        };
        debug_assert!(r.is_ok(), "in-memory compression failed: {r:?}");
    }

    /// Pushes out what the encoder holds back, so that the bytes given so far can be decoded
    /// from the output alone (a sync flush: a few bytes, the dictionary kept). A proxied body
    /// is flushed after each upstream chunk, so compression never delays what the upstream
    /// sent.
    pub fn flush(&mut self) {
        let r = match &mut self.0 {
            Inner::Gzip(e) => e.flush(),
            Inner::Br(e) => e.flush(),
        };
        debug_assert!(r.is_ok(), "in-memory compression failed: {r:?}");
    }

    /// The compressed bytes produced so far, taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(match &mut self.0 {
            Inner::Gzip(e) => e.get_mut(),
            Inner::Br(e) => e.get_mut(),
        })
    }

    /// Ends the stream: the last compressed bytes.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            Inner::Gzip(e) => e.finish().unwrap_or_default(),
            Inner::Br(e) => e.into_inner(),
        }
    }
}

/// `body` compressed whole with the best ratio (for bodies compressed once, at start-up).
pub fn compress_once(enc: Encoding, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with(enc, GZIP_ONCE, BR_ONCE);
    e.write(body);
    let mut out = e.take();
    out.extend(e.finish());
    out
}

/// The variants of a static body worth keeping: one per coding of `compress` that makes it
/// smaller, when its type is compressible and it is at least `min_size` long.
pub fn static_variants(
    compress: &Compress,
    content_type: &str,
    body: &[u8],
) -> Vec<(Encoding, Vec<u8>)> {
    if (body.len() as u64) < compress.min_size || !compressible(content_type) {
        return Vec::new();
    }
    compress
        .encodings
        .iter()
        .map(|&e| (e, compress_once(e, body)))
        .filter(|(_, c)| c.len() < body.len())
        .collect()
}

/// The request's `Accept-Encoding` field lines, joined.
pub fn accept_encoding(req: &Request<()>) -> Option<String> {
    let mut it = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = it.next()?.to_owned();
    Some(it.fold(first, |acc, v| acc + ", " + v))
}

/// What to do with a proxied response; see [`for_proxy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyPlan {
    /// The response could be compressed for another request: it gets
    /// `Vary: Accept-Encoding`.
    pub vary: bool,
    /// The coding to compress it with now.
    pub encoding: Option<Encoding>,
}

/// Whether a `Cache-Control` of `headers` says `no-transform` (RFC 9111 §5.2.1.6, §5.2.2.6).
fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
}

/// How the route's `compress` applies to the upstream's `response` (head as relayed, its body
/// `length` when declared) to `request`; see the [module docs](self).
pub fn for_proxy(
    compress: &Compress,
    request: &Request<()>,
    response: &Response<()>,
    length: Option<u64>,
) -> ProxyPlan {
    if compress.encodings.is_empty() {
        // Off (a proxy route's default): nothing to look at.
        return ProxyPlan::default();
    }
    let h = response.headers();
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoded = h
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    let eligible = matches!(
            response.status(),
            StatusCode::OK | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        )
        && compressible(content_type)
        // Events must reach the client as they come, not when a block fills.
        && !content_type
            .trim_start()
            .get(..17)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        && !encoded
        && !no_transform(h)
        && length.is_none_or(|n| n >= compress.min_size);
    if !eligible {
        return ProxyPlan::default();
    }
    let asks = request.method() != Method::HEAD
        && !request.headers().contains_key(header::RANGE)
        && !no_transform(request.headers());
    let encoding = asks
        .then(|| negotiate(accept_encoding(request).as_deref(), &compress.encodings))
        .flatten();
    ProxyPlan {
        vary: true,
        encoding,
    }
}

/// Adds `accept-encoding` to `Vary` unless it is there already (or `Vary: *`).
pub fn add_vary(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding"));
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// The head of a response relayed compressed with `enc`: `Content-Encoding` set; its length
/// unknown (`Content-Length` and `Content-Digest` go); no ranges of it (`Accept-Ranges`
/// goes); its entity tag weak, as semantically equivalent to the upstream's but not the same
/// bytes (RFC 9110 §8.8.1), so that a conditional request the client sends with it still
/// matches at the upstream (`If-None-Match` compares weakly) while `If-Range` (strong) never
/// does.
pub fn encoded_head(head: &mut Response<()>, enc: Encoding) {
    let h = head.headers_mut();
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.token()),
    );
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::ACCEPT_RANGES);
    h.remove("content-digest");
    if let Some(tag) = h.get(header::ETAG) {
        if !tag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(tag.as_bytes());
            match HeaderValue::from_bytes(&weak) {
                Ok(v) => {
                    h.insert(header::ETAG, v);
                }
                Err(_) => {
                    h.remove(header::ETAG);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unbrotli(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(b, 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn negotiation_follows_weights_and_the_route_order() {
        use Encoding::*;
        let both = [Br, Gzip];
        for (accept, want) in [
            (None, None),
            (Some(""), None),
            (Some("identity"), None),
            (Some("gzip"), Some(Gzip)),
            (Some("gzip, br"), Some(Br)),
            (Some("br;q=0, gzip;q=0.5"), Some(Gzip)),
            (Some("BR;Q=0.1"), Some(Br)),
            (Some("*"), Some(Br)),
            (Some("*;q=0, gzip"), Some(Gzip)),
            (Some("br;q=0, *"), Some(Gzip)),
            (Some("gzip;q=2"), None), // out of range: ignored
            (Some("deflate, compress"), None),
        ] {
            assert_eq!(negotiate(accept, &both), want, "{accept:?}");
        }
        assert_eq!(negotiate(Some("br, gzip"), &[Gzip, Br]), Some(Gzip));
        assert_eq!(negotiate(Some("br"), &[]), None);
    }

    #[test]
    fn types_and_etags() {
        assert!(compressible("text/html; charset=utf-8"));
        assert!(compressible("application/json"));
        assert!(compressible("application/problem+json"));
        assert!(compressible("image/svg+xml"));
        assert!(!compressible("image/png"));
        assert!(!compressible("application/gzip"));
        assert!(!compressible("font/woff2"));
        assert_eq!(variant_etag("\"5f-10\"", Encoding::Br), "\"5f-10-br\"");
        assert_eq!(variant_etag("W/\"5f\"", Encoding::Gzip), "W/\"5f-gz\"");
    }

    #[test]
    fn streamed_output_round_trips_for_both_codings() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i} of some text\n").into_bytes())
            .collect();
        for enc in [Encoding::Gzip, Encoding::Br] {
            let mut e = Encoder::new(enc);
            let mut out = Vec::new();
            for chunk in text.chunks(64 * 1024) {
                e.write(chunk);
                out.extend(e.take());
            }
            out.extend(e.finish());
            assert!(out.len() < text.len() / 5, "{enc:?}: {}", out.len());
            let back = match enc {
                Encoding::Gzip => gunzip(&out),
                Encoding::Br => unbrotli(&out),
            };
            assert!(back == text, "{enc:?} round trip");
        }
    }

    #[test]
    fn static_variants_only_when_worth_it() {
        let c = Compress::on();
        let body = "hello ".repeat(100);
        let v = static_variants(&c, "text/plain", body.as_bytes());
        assert_eq!(v.len(), 2);
        assert_eq!(unbrotli(&v[0].1), body.as_bytes());
        assert_eq!(gunzip(&v[1].1), body.as_bytes());
        assert!(static_variants(&c, "image/png", body.as_bytes()).is_empty());
        assert!(static_variants(&c, "text/plain", b"short").is_empty());
        assert!(static_variants(&Compress::off(), "text/plain", body.as_bytes()).is_empty());
    }

    #[test]
    fn flushed_chunks_decode_as_they_come_and_whole() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("event {i}\n").into_bytes())
            .collect();
        for enc in [Encoding::Gzip, Encoding::Br] {
            let mut e = Encoder::new(enc);
            let mut out = Vec::new();
            for chunk in text.chunks(1000) {
                e.write(chunk);
                e.flush();
                let got = e.take();
                assert!(!got.is_empty(), "{enc:?}: a flush gives bytes");
                out.extend(got);
            }
            // Everything given so far is in the output before the end.
            if enc == Encoding::Gzip {
                let mut partial = Vec::new();
                let _ = flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut partial);
                assert!(partial == text, "gzip: flushed output holds all the text");
            }
            out.extend(e.finish());
            assert!(out.len() < text.len() / 3, "{enc:?}: {}", out.len());
            let back = match enc {
                Encoding::Gzip => gunzip(&out),
                Encoding::Br => unbrotli(&out),
            };
            assert!(back == text, "{enc:?} round trip");
        }
    }

    fn request(method: &str, lines: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/x");
        for (k, v) in lines {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn response(status: u16, lines: &[(&str, &str)]) -> Response<()> {
        let mut b = Response::builder().status(status);
        for (k, v) in lines {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    /// Route, method, request fields, status, response fields, length, the plan.
    type Case<'a> = (
        &'a Compress,
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
        &'a [(&'a str, &'a str)],
        Option<u64>,
        ProxyPlan,
    );

    #[test]
    fn proxied_responses_are_compressed_only_when_safe() {
        use Encoding::*;
        let on = Compress::on();
        let gz = [("accept-encoding", "gzip")];
        let text = [("content-type", "text/html")];
        let plan = |vary, encoding| ProxyPlan { vary, encoding };
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // Off (the proxy default): nothing, not even Vary.
            (&Compress::off(), "GET", &gz, 200, &text, None, plan(false, None)),
            (&on, "GET", &gz, 200, &text, None, plan(true, Some(Gzip))),
            (&on, "GET", &[("accept-encoding", "br, gzip")], 200, &text, Some(5000), plan(true, Some(Br))),
            (&on, "GET", &gz, 404, &text, Some(5000), plan(true, Some(Gzip))),
            // Not asked, or asked for a range, or HEAD: as it is, but Vary says it could be.
            (&on, "GET", &[], 200, &text, None, plan(true, None)),
            (&on, "GET", &[("accept-encoding", "gzip"), ("range", "bytes=0-9")], 200, &text, None, plan(true, None)),
            (&on, "HEAD", &gz, 200, &text, Some(5000), plan(true, None)),
            (&on, "GET", &[("accept-encoding", "gzip"), ("cache-control", "no-transform")], 200, &text, None, plan(true, None)),
            // Never: ranges, other statuses, encoded, protected, small, incompressible, events.
            (&on, "GET", &gz, 206, &text, Some(5000), plan(false, None)),
            (&on, "GET", &gz, 500, &text, None, plan(false, None)),
            (&on, "GET", &gz, 200, &[("content-type", "text/html"), ("content-encoding", "br")], None, plan(false, None)),
            (&on, "GET", &gz, 200, &[("content-type", "text/html"), ("cache-control", "public, no-transform")], None, plan(false, None)),
            (&on, "GET", &gz, 200, &text, Some(100), plan(false, None)),
            (&on, "GET", &gz, 200, &[("content-type", "image/png")], None, plan(false, None)),
            (&on, "GET", &gz, 200, &[], None, plan(false, None)),
            (&on, "GET", &gz, 200, &[("content-type", "text/event-stream")], None, plan(false, None)),
            (&on, "GET", &gz, 200, &[("content-type", "Text/Event-Stream; charset=utf-8")], None, plan(false, None)),
            // `identity` is no coding.
            (&on, "GET", &gz, 200, &[("content-type", "text/html"), ("content-encoding", "identity")], None, plan(true, Some(Gzip))),
        ];
        for (i, (c, method, req, status, resp, len, want)) in cases.iter().enumerate() {
            let got = for_proxy(c, &request(method, req), &response(*status, resp), *len);
            assert_eq!(
                got, *want,
                "case {i}: {method} {req:?} {status} {resp:?} {len:?}"
            );
        }
    }

    #[test]
    fn encoded_heads_lose_their_length_and_ranges_and_weaken_their_tag() {
        let mut head = response(
            200,
            &[
                ("content-type", "text/html"),
                ("content-length", "5000"),
                ("accept-ranges", "bytes"),
                ("etag", "\"abc\""),
                ("vary", "Origin"),
            ],
        );
        add_vary(head.headers_mut());
        encoded_head(&mut head, Encoding::Br);
        let h = head.headers();
        assert_eq!(h["content-encoding"], "br");
        assert_eq!(h["etag"], "W/\"abc\"");
        assert!(!h.contains_key("content-length") && !h.contains_key("accept-ranges"));
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, ["Origin", "accept-encoding"]);
        // A weak tag stays as it is; Vary is not repeated.
        let mut head = response(200, &[("etag", "W/\"x\""), ("vary", "Accept-Encoding")]);
        add_vary(head.headers_mut());
        encoded_head(&mut head, Encoding::Gzip);
        assert_eq!(head.headers()["etag"], "W/\"x\"");
        assert_eq!(head.headers().get_all("vary").iter().count(), 1);
        let mut head = response(200, &[("vary", "*")]);
        add_vary(head.headers_mut());
        assert_eq!(head.headers().get_all("vary").iter().count(), 1);
    }
}

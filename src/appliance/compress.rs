//! Response compression for the `static` and `files` routes (route keys `compress`,
//! `compress_min_size`): which coding a request gets (`Accept-Encoding`, RFC 9110 §12.5.3),
//! which types are worth it, and a streaming encoder over the well-kept crates (flate2 for
//! gzip, brotli), fed one file chunk at a time so memory stays one chunk per response.

use std::io::Write;

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
}

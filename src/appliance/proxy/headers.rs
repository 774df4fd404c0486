//! Head rewriting for the reverse proxy: pure functions over `http` types.
//!
//! The request sent upstream is built from the *parsed* head (method, target, fields), never from
//! the bytes the client sent, and its framing comes from what the server codec validated: a body
//! is either `Content-Length` or chunked, never both, and the client codec writes the framing
//! fields itself. Hop-by-hop fields are dropped both ways (RFC 9110 §7.6.1): `Connection` and
//! every field it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade`. `Expect` is dropped too: the proxy answers `100-continue` itself when it starts
//! reading the body.
//!
//! Upgrades are the exception the route allows ([`upgrade_of`]): such a request goes with its
//! `Upgrade` and `Connection: upgrade` (the `Sec-WebSocket-*` fields are end-to-end and pass
//! anyway), and the upstream's `101` reaches the client with its `Upgrade`
//! ([`switching_head`]; the codec adds `Connection: upgrade`).

use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ::http::{Request, Response, Uri, Version};

use crate::http::head as fields;
use fields::is_hop_by_hop;

/// The request body as the client framed it (validated by the server codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked: the length is unknown.
    Chunked,
}

/// How the forwarded request names its client and the upstream.
#[derive(Clone, Debug)]
pub(crate) struct Forwarding<'a> {
    /// The client's address as text ([`peer_text`]), appended to `X-Forwarded-For`.
    pub peer: HeaderValue,
    /// Whether the client came over TLS (`X-Forwarded-Proto`).
    pub https: bool,
    /// The upstream URL's authority (`host[:port]`) as a field value: the `Host` sent when the
    /// client's is not kept or there is none (HTTP/1.0).
    pub upstream_host: Option<&'a HeaderValue>,
    /// Keep the client's `Host`.
    pub preserve_host: bool,
    /// Forward this `Upgrade` (with `Connection: upgrade`): see [`upgrade_of`].
    pub upgrade: Option<&'a HeaderValue>,
}

/// The `Upgrade` of a request the proxy may forward as one: HTTP/1.1, `Upgrade` with the
/// `upgrade` connection option (RFC 9110 §7.8), not CONNECT, and not asking for `h2c` (the
/// cleartext HTTP/2 upgrade, which RFC 9113 deprecated and paf does not offer). Several
/// `Upgrade` lines are joined into one.
pub(crate) fn upgrade_of(req: &Request<()>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 || req.method() == ::http::Method::CONNECT {
        return None;
    }
    let h = req.headers();
    // Most requests have no `Upgrade`: one lookup says so.
    fields::all(h, &header::UPGRADE).next()?;
    let option = fields::all(h, &header::CONNECTION)
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    let mut joined: Vec<u8> = Vec::new();
    for v in fields::all(h, &header::UPGRADE) {
        for token in v.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.is_empty() {
                continue;
            }
            if token.eq_ignore_ascii_case(b"h2c") {
                return None;
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(token);
        }
    }
    if !option || joined.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// The framing of a request body from its head.
pub(crate) fn body_of(headers: &HeaderMap) -> Body {
    if fields::has(headers, &header::TRANSFER_ENCODING) {
        // The server codec accepts only `chunked` last, and never with Content-Length.
        return Body::Chunked;
    }
    let length = fields::first(headers, &header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        // The codec checked that a list of lengths agrees: the first one is the length.
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) if n > 0 => Body::Length(n),
        _ => Body::Empty,
    }
}

/// Whether `Transfer-Encoding` names a coding besides `chunked` (`gzip, chunked`).
///
/// Such a body cannot be forwarded as it came: the server codec removes only the chunked
/// framing, and the client codec frames the upstream request with `chunked` alone, so the
/// upstream would get gzip bytes as if they were the content. Transfer codings are hop-by-hop
/// (RFC 9112 §6.1); a proxy that does not decode one must not drop it silently, and answers 501
/// instead (RFC 9112 §6.1: a transfer coding it does not implement).
pub(crate) fn has_other_codings(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| {
            c.split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii()
        })
        .any(|name| !name.is_empty() && !name.eq_ignore_ascii_case(b"chunked"))
}

/// Drops the hop-by-hop fields of `headers`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One look at the names, then removals only of those present: most heads carry few or
    // none (an HTTP/1.1 upstream's come without: its codec leaves them out), and each removal
    // hashes its name. No hop-by-hop field, no `Connection` naming others.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut hop = connection_options(headers);
    hop.extend(headers.keys().filter(|k| is_hop_by_hop(k)).cloned());
    for name in hop {
        headers.remove(name);
    }
}

/// The fields `Connection` names (hop-by-hop too) but those hop-by-hop anyway; none, without
/// allocating, when it names no other (`keep-alive`, as most upstreams send, is no allocation).
fn connection_options(headers: &HeaderMap) -> Vec<HeaderName> {
    fields::all(headers, &header::CONNECTION)
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.eq_ignore_ascii_case(b"keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(|n| !is_hop_by_hop(n))
        .collect()
}

/// paf's `Via` entry: the received-protocol (RFC 9110 §7.6.3; `2` for an HTTP/2 client) and
/// its name.
fn via(v: Version) -> HeaderValue {
    HeaderValue::from_static(match v {
        Version::HTTP_10 => "1.0 paf",
        Version::HTTP_2 => "2 paf",
        _ => "1.1 paf",
    })
}

/// Appends `item` to a comma-separated field, joining the existing lines into one.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: HeaderValue) {
    match headers.entry(name) {
        header::Entry::Vacant(e) => {
            e.insert(item);
        }
        header::Entry::Occupied(mut e) => {
            let mut joined: Vec<u8> = Vec::new();
            for v in e.iter() {
                joined.extend_from_slice(v.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(item.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                e.insert(v);
            }
        }
    }
}

/// The de facto fields paf adds the client's address and scheme to.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The host the client asked for: the absolute-form target's authority, else `Host`.
fn client_host(req: &Request<()>) -> Option<HeaderValue> {
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str()).ok();
    }
    fields::first(req.headers(), &header::HOST).cloned()
}

/// The request to send upstream for the client's `req`, and its body framing.
#[cfg(test)]
pub(crate) fn request_head(req: &Request<()>, fwd: &Forwarding<'_>) -> (Request<()>, Body) {
    let body = body_of(req.headers());
    (request_head_framed(req, fwd, body), body)
}

/// The request to send upstream for the client's `req`, whose body framing (`body_of` its
/// head) is `body`.
pub(crate) fn request_head_framed(
    req: &Request<()>,
    fwd: &Forwarding<'_>,
    body: Body,
) -> Request<()> {
    // The client's fields but the hop-by-hop ones, `Expect` (answered here), the framing
    // (written below) and `Host` (chosen below), copied in one pass (the values share the
    // client's head: a copy counts a reference) into a map sized for exactly what it will
    // hold: a map of more than six fields is an allocation past glibc's per-thread cache,
    // several times the cost of a small one, so no room is reserved that is not used.
    let src = req.headers();
    let named = connection_options(src);
    let forwarded = |name: &HeaderName| {
        !(is_hop_by_hop(name)
            || *name == header::EXPECT
            || *name == header::CONTENT_LENGTH
            || *name == header::HOST
            || named.contains(name))
    };
    // What is kept, and which of the fields paf adds to are there already, in one look.
    let (mut kept, mut xff, mut xfp, mut via_seen) = (0, false, false, false);
    for n in src.keys() {
        kept += usize::from(forwarded(n));
        xff |= *n == X_FORWARDED_FOR;
        xfp |= *n == X_FORWARDED_PROTO;
        via_seen |= *n == header::VIA;
    }
    // `Host`, `X-Forwarded-For` (unless the client sent one), `X-Forwarded-Proto` (likewise),
    // `Via` (likewise), the framing field, and the two of an upgrade.
    let added = 1
        + usize::from(!xff)
        + usize::from(!xfp)
        + usize::from(!via_seen)
        + usize::from(body != Body::Empty)
        + if fwd.upgrade.is_some() { 2 } else { 0 };
    let mut headers = HeaderMap::with_capacity(kept + added);
    for (name, value) in src {
        if forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(up) = fwd.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, up.clone());
    }
    let kept = fwd.preserve_host.then(|| client_host(req)).flatten();
    if let Some(host) = kept.or_else(|| fwd.upstream_host.cloned()) {
        headers.insert(header::HOST, host);
    }
    append_list(&mut headers, X_FORWARDED_FOR, fwd.peer.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if fwd.https { "https" } else { "http" }),
    );
    append_list(&mut headers, header::VIA, via(req.version()));
    match body {
        Body::Empty => {}
        Body::Length(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        Body::Chunked => {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
    }
    let target = if req.uri() == "*" {
        Uri::from_static("*")
    } else {
        req.uri()
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
    };
    let mut out = Request::new(());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = target;
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = headers;
    out
}

/// The text of the last client address asked for, kept: a keep-alive client's requests, one
/// after the other, share it.
#[derive(Debug, Default)]
pub(crate) struct PeerText(std::cell::RefCell<Option<(std::net::IpAddr, HeaderValue)>>);

impl PeerText {
    /// `ip`'s text ([`peer_text`]).
    pub(crate) fn get(&self, ip: std::net::IpAddr) -> HeaderValue {
        let mut last = self.0.borrow_mut();
        match &*last {
            Some((at, text)) if *at == ip => text.clone(),
            _ => {
                let text = peer_text(ip);
                *last = Some((ip, text.clone()));
                text
            }
        }
    }
}

/// An address's text, as `Display` writes it: an IPv4 address (once per proxied request)
/// written by the access log's writer, without the formatting machinery.
pub(crate) fn peer_text(ip: std::net::IpAddr) -> HeaderValue {
    let text = match ip {
        std::net::IpAddr::V4(_) => {
            let mut out = Vec::with_capacity(15);
            crate::service::access_log::address(&mut out, ip);
            bytes::Bytes::from(out)
        }
        // (The access log writes an IPv4-mapped address as IPv4; the field keeps `Display`'s.)
        std::net::IpAddr::V6(_) => bytes::Bytes::from(ip.to_string()),
    };
    // An address's text is a valid field value; `Bytes` takes it without a copy.
    HeaderValue::from_maybe_shared(text).expect("an address is a valid field value")
}

/// The response to send the client for the upstream's `resp`, and its body length when the
/// upstream declared one (`None`: chunked or close-delimited upstream, streamed chunked).
pub(crate) fn response_head(resp: Response<()>) -> (Response<()>, Option<u64>) {
    let (mut parts, ()) = resp.into_parts();
    let chunked = fields::has(&parts.headers, &header::TRANSFER_ENCODING);
    let length = (!chunked)
        .then(|| fields::first(&parts.headers, &header::CONTENT_LENGTH))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    strip_hop_by_hop(&mut parts.headers);
    append_list(&mut parts.headers, header::VIA, via(parts.version));
    parts.version = Version::HTTP_11;
    (Response::from_parts(parts, ()), length)
}

/// The `101 Switching Protocols` to send the client for the upstream's: its fields without
/// the hop-by-hop ones, its `Upgrade` kept, `Via` appended (`Connection: upgrade` is the
/// codec's).
pub(crate) fn switching_head(resp: Response<()>) -> Response<()> {
    let (mut parts, ()) = resp.into_parts();
    let upgrade: Vec<HeaderValue> = parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .cloned()
        .collect();
    strip_hop_by_hop(&mut parts.headers);
    for v in upgrade {
        parts.headers.append(header::UPGRADE, v);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    append_list(&mut parts.headers, header::VIA, via(parts.version));
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn an_address_text_is_what_display_writes() {
        let v4 = [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [198, 18, 0, 1],
            [10, 100, 9, 99],
            [1, 20, 100, 109],
        ];
        for a in v4 {
            let ip = std::net::IpAddr::from(a);
            assert_eq!(peer_text(ip).as_bytes(), ip.to_string().as_bytes(), "{ip}");
        }
        let v6: std::net::IpAddr = "fd00:198:18::1".parse().unwrap();
        assert_eq!(peer_text(v6).as_bytes(), "fd00:198:18::1".as_bytes());
    }

    #[test]
    fn the_kept_address_text_follows_the_client() {
        let texts = PeerText::default();
        let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let b: IpAddr = "fd00:198:18::5".parse().unwrap();
        let first = texts.get(a);
        assert_eq!(first.as_bytes(), b"198.18.0.1");
        // The same client again: the same bytes, not written anew.
        assert_eq!(texts.get(a).as_bytes().as_ptr(), first.as_bytes().as_ptr());
        assert_eq!(texts.get(b).as_bytes(), b"fd00:198:18::5");
        assert_eq!(texts.get(a).as_bytes(), b"198.18.0.1");
        let c = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 77));
        assert_eq!(texts.get(c).as_bytes(), b"198.18.0.77");
    }

    fn req(lines: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method("POST").uri("/up?x=1");
        for (k, v) in lines {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    static UPSTREAM_HOST: HeaderValue = HeaderValue::from_static("upstream.test:8080");

    fn forwarding() -> Forwarding<'static> {
        Forwarding {
            peer: peer_text(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
            https: true,
            upstream_host: Some(&UPSTREAM_HOST),
            preserve_host: true,
            upgrade: None,
        }
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn body_framing_table() {
        let cases: &[(&[(&str, &str)], Body)] = &[
            (&[], Body::Empty),
            (&[("content-length", "0")], Body::Empty),
            (&[("content-length", "12")], Body::Length(12)),
            (&[("content-length", "7, 7")], Body::Length(7)),
            (&[("transfer-encoding", "chunked")], Body::Chunked),
        ];
        for (lines, want) in cases {
            assert_eq!(body_of(req(lines).headers()), *want, "{lines:?}");
        }
    }

    #[test]
    fn codings_other_than_chunked_are_found() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("transfer-encoding", "chunked")], false),
            (&[("transfer-encoding", "CHUNKED ; x=1")], false),
            (&[("transfer-encoding", " , chunked")], false),
            (&[("transfer-encoding", "gzip, chunked")], true),
            (
                &[
                    ("transfer-encoding", "gzip"),
                    ("transfer-encoding", "chunked"),
                ],
                true,
            ),
            (&[("transfer-encoding", "x-gzip;q=1, chunked")], true),
        ];
        for (lines, want) in cases {
            assert_eq!(has_other_codings(req(lines).headers()), *want, "{lines:?}");
        }
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarding_fields_come() {
        let r = req(&[
            ("host", "paf.test"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("upgrade", "websocket"),
            ("expect", "100-continue"),
            ("transfer-encoding", "chunked"),
            ("x-forwarded-for", "10.0.0.1"),
            ("via", "1.1 edge"),
            ("x-keep", "yes"),
        ]);
        let (out, body) = request_head(&r, &forwarding());
        assert_eq!(body, Body::Chunked);
        let h = out.headers();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "expect",
            "content-length",
        ] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(all(h, "transfer-encoding"), ["chunked"]);
        assert_eq!(all(h, "host"), ["paf.test"]);
        assert_eq!(all(h, "x-forwarded-for"), ["10.0.0.1, 198.18.0.1"]);
        assert_eq!(all(h, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(h, "via"), ["1.1 edge, 1.1 paf"]);
        assert_eq!(all(h, "x-keep"), ["yes"]);
        assert_eq!(out.uri(), "/up?x=1");
        assert_eq!(out.method(), "POST");
    }

    #[test]
    fn the_forwarded_head_is_sized_for_what_it_holds() {
        // A client's usual small head: the map stays within six fields (one small
        // allocation), and nothing added overflows it.
        let r = Request::builder()
            .uri("/")
            .header("host", "paf.test")
            .header("user-agent", "wrk")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        let (out, _) = request_head(&r, &forwarding());
        let h = out.headers();
        assert_eq!(h.keys_len(), 6, "{h:?}");
        assert!(h.capacity() <= 6, "capacity {}", h.capacity());
        // A larger head with every added field already present: each is counted once.
        let mut lines: Vec<(String, String)> = (0..20)
            .map(|i| (format!("x-f{i}"), i.to_string()))
            .collect();
        for (k, v) in [
            ("x-forwarded-for", "10.0.0.1"),
            ("via", "1.0 a"),
            ("x-forwarded-proto", "http"),
            ("content-length", "3"),
        ] {
            lines.push((k.into(), v.into()));
        }
        let pairs: Vec<(&str, &str)> = lines
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (out, body) = request_head(&req(&pairs), &forwarding());
        assert_eq!(body, Body::Length(3));
        let h = out.headers();
        // 20 + XFF + Via + XFP + Host + Content-Length.
        assert_eq!(h.keys_len(), 25, "{h:?}");
        assert_eq!(all(h, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn host_is_kept_or_replaced() {
        let r = req(&[("host", "paf.test"), ("content-length", "3")]);
        let fwd = Forwarding {
            preserve_host: false,
            ..forwarding()
        };
        let (out, body) = request_head(&r, &fwd);
        assert_eq!(body, Body::Length(3));
        assert_eq!(all(out.headers(), "host"), ["upstream.test:8080"]);
        assert_eq!(all(out.headers(), "content-length"), ["3"]);
        // HTTP/1.0 without Host: the upstream's.
        let mut r = req(&[]);
        *r.version_mut() = Version::HTTP_10;
        let (out, _) = request_head(&r, &forwarding());
        assert_eq!(all(out.headers(), "host"), ["upstream.test:8080"]);
        assert_eq!(all(out.headers(), "via"), ["1.0 paf"]);
        assert_eq!(out.version(), Version::HTTP_11);
        // An HTTP/2 client's request goes out as HTTP/1.1, received as "2".
        let mut r = req(&[("host", "paf.test")]);
        *r.version_mut() = Version::HTTP_2;
        let (out, _) = request_head(&r, &forwarding());
        assert_eq!(all(out.headers(), "via"), ["2 paf"]);
        assert_eq!(out.version(), Version::HTTP_11);
        // Absolute-form: its authority is the host, the target becomes origin-form.
        let r = Request::get("http://a.test:81/p?q")
            .header("host", "ignored.test")
            .body(())
            .unwrap();
        let (out, _) = request_head(&r, &forwarding());
        assert_eq!(all(out.headers(), "host"), ["a.test:81"]);
        assert_eq!(out.uri(), "/p?q");
    }

    #[test]
    fn response_fields_and_length() {
        let resp = Response::builder()
            .status(200)
            .version(Version::HTTP_10)
            .header("content-length", "5")
            .header("connection", "close, x-hop")
            .header("x-hop", "1")
            .header("server", "up")
            .body(())
            .unwrap();
        let (out, len) = response_head(resp);
        assert_eq!(len, Some(5));
        assert!(!out.headers().contains_key("connection"));
        assert!(!out.headers().contains_key("x-hop"));
        assert_eq!(all(out.headers(), "via"), ["1.0 paf"]);
        assert_eq!(all(out.headers(), "server"), ["up"]);
        let chunked = Response::builder()
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let (out, len) = response_head(chunked);
        assert_eq!(len, None);
        assert!(!out.headers().contains_key("transfer-encoding"));
        let (_, len) = response_head(Response::new(()));
        assert_eq!(len, None, "close-delimited");
    }

    #[test]
    fn upgrades_forwardable_table() {
        let get = |v: Version, lines: &[(&str, &str)]| {
            let mut r = req(lines);
            *r.method_mut() = ::http::Method::GET;
            *r.version_mut() = v;
            upgrade_of(&r).map(|v| v.to_str().unwrap().to_string())
        };
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        let h11 = Version::HTTP_11;
        assert_eq!(get(h11, &ws).as_deref(), Some("websocket"));
        // No connection option, HTTP/1.0, HTTP/2, h2c, an empty Upgrade: not an upgrade.
        assert_eq!(get(h11, &[("upgrade", "websocket")]), None);
        assert_eq!(get(Version::HTTP_10, &ws), None);
        assert_eq!(get(Version::HTTP_2, &ws), None);
        let h2c = [("connection", "upgrade"), ("upgrade", "websocket, h2c")];
        assert_eq!(get(h11, &h2c), None);
        assert_eq!(
            get(h11, &[("connection", "upgrade"), ("upgrade", " ,")]),
            None
        );
        // Two lines are joined.
        let two = [
            ("connection", "upgrade"),
            ("upgrade", "foo/2"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(get(h11, &two).as_deref(), Some("foo/2, websocket"));
    }

    #[test]
    fn an_upgrade_keeps_its_fields_both_ways() {
        let r = req(&[
            ("host", "paf.test"),
            ("connection", "Upgrade, x-secret"),
            ("x-secret", "1"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]);
        let up = upgrade_of(&r);
        assert!(up.is_some());
        let fwd = Forwarding {
            upgrade: up.as_ref(),
            ..forwarding()
        };
        let (out, _) = request_head(&r, &fwd);
        let h = out.headers();
        assert_eq!(all(h, "connection"), ["upgrade"]);
        assert_eq!(all(h, "upgrade"), ["websocket"]);
        assert_eq!(all(h, "sec-websocket-key"), ["dGhlIHNhbXBsZSBub25jZQ=="]);
        assert_eq!(all(h, "sec-websocket-version"), ["13"]);
        assert!(!h.contains_key("x-secret"));
        // Without the route's leave, as before: stripped.
        let (out, _) = request_head(&r, &forwarding());
        assert!(!out.headers().contains_key("upgrade"));
        assert!(!out.headers().contains_key("connection"));

        let resp = Response::builder()
            .status(101)
            .header("connection", "Upgrade, x-hop")
            .header("x-hop", "1")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(())
            .unwrap();
        let out = switching_head(resp);
        let h = out.headers();
        assert_eq!(out.status(), 101);
        assert_eq!(all(h, "upgrade"), ["websocket"]);
        assert_eq!(
            all(h, "sec-websocket-accept"),
            ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]
        );
        assert_eq!(all(h, "via"), ["1.1 paf"]);
        assert!(!h.contains_key("connection") && !h.contains_key("x-hop"));
    }
}

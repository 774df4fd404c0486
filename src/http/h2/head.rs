//! Heads between HTTP/2 and the handlers' HTTP/1.1-shaped view.
//!
//! Requests: a handler written for HTTP/1.1 reads the target in origin form and the authority
//! in `Host`. An h2 request carries them in `:path` and `:authority` (RFC 9113 §8.3.1), so the
//! request is given to the handler with its URI reduced to the path and query and a `Host`
//! made from `:authority` when the request has none; its version says `HTTP/2.0`.
//!
//! Responses: connection-specific fields are not allowed in HTTP/2 (RFC 9113 §8.2.2):
//! `Connection` and every field it names, `Keep-Alive`, `Proxy-Connection`,
//! `Transfer-Encoding` and `Upgrade` are removed, and `TE` (which may only say `trailers`, and
//! only in requests). `Date` and `Server` are added unless set, as the HTTP/1.1 codec does.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Uri, Version};

use crate::http::HttpDate;

/// The request head as the handler sees it; see the [module docs](self).
pub(super) fn request(mut head: Request<()>) -> Request<()> {
    let authority = head.uri().authority().cloned();
    let origin = head
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>();
    // The CONNECT method's target is the authority itself: keep it as sent.
    if head.method() != http::Method::CONNECT {
        if let Ok(origin) = origin {
            *head.uri_mut() = origin;
        }
    }
    if let Some(a) = authority {
        if !head.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                head.headers_mut().insert(header::HOST, v);
            }
        }
    }
    *head.version_mut() = Version::HTTP_2;
    head
}

/// Removes the connection-specific fields of `headers` (RFC 9113 §8.2.2).
pub(super) fn strip_connection_fields(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
    ] {
        headers.remove(name);
    }
}

/// The response head to send: connection fields stripped, `Content-Length` set to `length`
/// when known (kept as the handler set it otherwise), `Date` and `Server` added unless set.
pub(super) fn response(
    mut head: Response<()>,
    length: Option<u64>,
    date: Option<&HttpDate>,
    server: Option<&str>,
) -> Response<()> {
    let h = head.headers_mut();
    strip_connection_fields(h);
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Some(d) = date {
        if !h.contains_key(header::DATE) {
            if let Ok(v) = HeaderValue::from_str(d.as_str()) {
                h.insert(header::DATE, v);
            }
        }
    }
    if let Some(s) = server {
        if !h.contains_key(header::SERVER) {
            if let Ok(v) = HeaderValue::from_str(s) {
                h.insert(header::SERVER, v);
            }
        }
    }
    *head.version_mut() = Version::HTTP_2;
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_look_like_origin_form_with_a_host() {
        let head = Request::builder()
            .uri("https://a.test:8443/p/q?x=1")
            .body(())
            .unwrap();
        let r = request(head);
        assert_eq!(r.uri(), "/p/q?x=1");
        assert_eq!(r.headers()[header::HOST], "a.test:8443");
        assert_eq!(r.version(), Version::HTTP_2);
        // A Host sent by the client is kept.
        let head = Request::builder()
            .uri("https://a.test/")
            .header(header::HOST, "b.test")
            .body(())
            .unwrap();
        assert_eq!(request(head).headers()[header::HOST], "b.test");
    }

    #[test]
    fn connection_specific_fields_are_stripped() {
        let head = Response::builder()
            .header("connection", "close, x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("transfer-encoding", "chunked")
            .header("upgrade", "websocket")
            .header("proxy-connection", "keep-alive")
            .header("te", "trailers")
            .header("x-end", "kept")
            .body(())
            .unwrap();
        let r = response(head, Some(3), None, Some("paf"));
        let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-end", "content-length", "server"]);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "3");
    }
}

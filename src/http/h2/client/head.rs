//! The request head as HTTP/2 sends it (RFC 9113 §8.3.1): an absolute URI whose authority
//! becomes `:authority` (from `Host`, else the request's URI) and whose scheme is the
//! connection's, `Host` itself dropped (h2 writes the pseudo-fields), `Content-Length` from
//! the body, and none of the connection-specific fields §8.2.2 forbids.

use http::{header, HeaderMap, Method, Version};

use crate::http::client::UsageError;

/// `head` made ready for h2: `scheme` is `"http"` or `"https"`, `length` the body's when known.
///
/// # Errors
///
/// [`UsageError::MissingHost`] when neither `Host` nor the URI gives a valid authority.
pub(super) fn request(
    scheme: &'static str,
    head: http::Request<()>,
    length: Option<u64>,
) -> Result<http::Request<()>, UsageError> {
    let (mut parts, ()) = head.into_parts();
    let authority = match parts.headers.get(header::HOST) {
        Some(h) => h
            .to_str()
            .ok()
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .ok_or(UsageError::MissingHost)?,
        None => parts
            .uri
            .authority()
            .cloned()
            .ok_or(UsageError::MissingHost)?,
    };
    let path = match parts.uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".to_owned(),
        Some(p) => p.to_owned(),
    };
    parts.uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| UsageError::MissingHost)?;
    parts.version = Version::HTTP_2;
    strip_connection_fields(&mut parts.headers);
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(n) = length {
        parts.headers.insert(header::CONTENT_LENGTH, n.into());
    }
    Ok(http::Request::from_parts(parts, ()))
}

/// Methods whose empty body is still declared (as the HTTP/1.1 codec does).
pub(super) fn wants_zero_length(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Removes the fields RFC 9113 §8.2.2 forbids in HTTP/2: `Connection` and the fields it
/// names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, and `TE` unless
/// it is exactly `trailers`.
fn strip_connection_fields(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in named {
        if name != "te" {
            headers.remove(name.as_str());
        }
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)], uri: &str) -> http::Request<()> {
        let mut r = http::Request::get(uri).body(()).unwrap();
        for (k, v) in pairs {
            r.headers_mut().append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    }

    #[test]
    fn connection_specific_fields_go_and_the_rest_stays() {
        type Fields = &'static [(&'static str, &'static str)];
        // (fields sent, fields left)
        let cases: &[(Fields, &[&str])] = &[
            (&[("x-a", "1")], &["x-a"]),
            (&[("connection", "close")], &[]),
            (
                &[
                    ("connection", "keep-alive, X-Hop"),
                    ("x-hop", "1"),
                    ("x-a", "1"),
                ],
                &["x-a"],
            ),
            (
                &[
                    ("keep-alive", "5"),
                    ("proxy-connection", "x"),
                    ("upgrade", "h2c"),
                ],
                &[],
            ),
            (&[("transfer-encoding", "chunked"), ("x-a", "1")], &["x-a"]),
            (&[("te", "trailers")], &["te"]),
            (&[("te", "gzip")], &[]),
            (&[("te", "trailers"), ("te", "gzip")], &[]),
            // `Connection: te` must not take a `TE: trailers` with it.
            (&[("connection", "te"), ("te", "trailers")], &["te"]),
        ];
        for (sent, left) in cases {
            let r = request("https", head(sent, "https://a.test/"), None)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
            names.retain(|n| *n != "content-length");
            assert_eq!(names, *left, "{sent:?}");
        }
    }

    #[test]
    fn authority_scheme_path_and_length() {
        // (Host, URI, scheme, length) → (URI sent, Content-Length)
        let cases = [
            (
                Some("a.test"),
                "/p?q=1",
                "https",
                None,
                "https://a.test/p?q=1",
                None,
            ),
            (
                Some("a.test:8080"),
                "/",
                "http",
                Some(0),
                "http://a.test:8080/",
                Some("0"),
            ),
            (
                None,
                "http://b.test/x",
                "https",
                Some(5),
                "https://b.test/x",
                Some("5"),
            ),
            // `Host` wins over the URI's authority; an empty path is `/`.
            (
                Some("c.test"),
                "http://b.test",
                "http",
                None,
                "http://c.test/",
                None,
            ),
        ];
        for (host, uri, scheme, length, want, cl) in cases {
            let mut fields = vec![("content-length", "99")];
            if let Some(h) = host {
                fields.push(("host", h));
            }
            let r = request(scheme, head(&fields, uri), length).unwrap();
            assert_eq!(r.uri(), want);
            assert_eq!(r.version(), Version::HTTP_2);
            assert!(!r.headers().contains_key(header::HOST));
            assert_eq!(
                r.headers()
                    .get(header::CONTENT_LENGTH)
                    .map(|v| v.to_str().unwrap()),
                cl
            );
        }
        assert_eq!(
            request("https", head(&[], "/"), None).unwrap_err(),
            UsageError::MissingHost
        );
        assert_eq!(
            request("https", head(&[("host", "bad host")], "/"), None).unwrap_err(),
            UsageError::MissingHost
        );
        assert!(wants_zero_length(&Method::POST) && !wants_zero_length(&Method::GET));
    }
}

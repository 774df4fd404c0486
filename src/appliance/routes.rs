//! Dispatch of one request to its route and the simple actions; files are streamed from disk.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ::http::header::{self, HeaderValue};
use ::http::{Method, Request, Response, StatusCode};

use super::compress::{self, accept_encoding};
use super::connect;
use super::files::{self, Plan, Resolved, Validators};
use super::proxy::{Origin, Proxy};
use super::Metrics;
use crate::config::{Action, Config, Encoding, PathMatch};
use crate::http::Error;
use crate::service::{BodyWriter, ErrorResponse, Reqd};

/// Bytes read from a file per write.
const FILE_CHUNK: usize = 64 * 1024;

pub(super) struct Router {
    config: Rc<Config>,
    listener: usize,
    metrics: Arc<Metrics>,
    proxy: Rc<Proxy>,
    /// The ACME HTTP-01 answers, served ahead of every route (the port-80 http listener).
    acme_http01: Option<Arc<crate::acme::Http01>>,
    /// Per route: a static body's compressed variants, made once.
    variants: Vec<Vec<(Encoding, Vec<u8>)>>,
}

fn response(status: StatusCode) -> ::http::response::Builder {
    Response::builder().status(status)
}

/// The request's host without port, from the absolute-form target or `Host`.
fn host_of(req: &Request<()>) -> Option<Cow<'_, str>> {
    let raw: &str = match req.uri().authority() {
        Some(a) => a.host(),
        None => {
            let h = crate::http::head::first(req.headers(), &header::HOST)?
                .to_str()
                .ok()?;
            if h.starts_with('[') {
                // `[v6]` with its brackets, without the port.
                &h[..=h.find(']')?]
            } else {
                h.split(':').next()?
            }
        }
    };
    let host = raw.trim_end_matches('.');
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

impl Router {
    pub(super) fn new(
        config: Rc<Config>,
        listener: usize,
        metrics: Arc<Metrics>,
        proxy: Rc<Proxy>,
        acme_http01: Option<Arc<crate::acme::Http01>>,
    ) -> Router {
        let variants = config.listeners[listener]
            .routes
            .iter()
            .map(|r| match &r.action {
                Action::Static {
                    content_type, body, ..
                } => compress::static_variants(&r.compress, content_type, body),
                _ => Vec::new(),
            })
            .collect();
        Router {
            config,
            listener,
            metrics,
            proxy,
            acme_http01,
            variants,
        }
    }

    fn name(&self) -> &str {
        &self.config.listeners[self.listener].name
    }

    pub(super) fn error(
        &self,
        _peer: SocketAddr,
        error: &Error,
        _request: Option<&Request<()>>,
        respond: ErrorResponse,
    ) {
        self.metrics
            .request(self.name(), None, error.status().as_u16(), 0);
        drop(respond);
    }

    fn send(&self, reqd: &Reqd, route: Option<usize>, head: Response<()>, body: &[u8]) {
        let status = head.status().as_u16();
        let sent = if reqd.request().method() == Method::HEAD {
            0
        } else {
            body.len() as u64
        };
        if reqd.respond_with_bytes(head, body).is_ok() {
            self.metrics.request(self.name(), route, status, sent);
        }
    }

    fn simple(&self, reqd: &Reqd, route: Option<usize>, status: StatusCode, text: &str) {
        let head = response(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(())
            .expect("static header");
        self.send(reqd, route, head, text.as_bytes());
    }

    pub(super) fn handle(&self, _peer: SocketAddr, reqd: Reqd) {
        let listener = &self.config.listeners[self.listener];
        if reqd.request().method() == Method::CONNECT {
            // CONNECT goes to `connect` routes only, and they take nothing else.
            let origin = connect::Origin {
                listener,
                metrics: &self.metrics,
                dialer: self.proxy.dialer(),
            };
            return connect::handle(reqd, &origin);
        }
        let host = host_of(reqd.request());
        let path = reqd.request().uri().path();
        if let Some(answer) = self.acme_http01.as_ref().and_then(|a| a.answer(path)) {
            // RFC 8555 §8.3: the key authorization, whatever the host; a token we do not
            // serve falls through to the routes.
            let method = reqd.request().method();
            if method == Method::GET || method == Method::HEAD {
                log::info!("acme: answering the http-01 challenge at {path}");
                let head = response(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(())
                    .expect("static header");
                self.send(&reqd, None, head, answer.as_bytes());
                return;
            }
        }
        let Some(index) = listener
            .routes
            .iter()
            .position(|r| r.matches(host.as_deref(), path))
        else {
            self.simple(&reqd, None, StatusCode::NOT_FOUND, "not found\n");
            return;
        };
        let route = &listener.routes[index];
        let method = reqd.request().method().clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match &route.action {
            Action::Static {
                status,
                content_type,
                body,
            } => {
                if !read_only {
                    return self.not_allowed(&reqd, index);
                }
                let mut head =
                    response(*status).header(header::CONTENT_TYPE, content_type.as_str());
                let variants = &self.variants[index];
                let mut payload: &[u8] = body;
                if !variants.is_empty() {
                    head = head.header(header::VARY, "accept-encoding");
                    let offered: Vec<Encoding> = variants.iter().map(|v| v.0).collect();
                    let accept = accept_encoding(reqd.request());
                    if let Some(e) = compress::negotiate(accept.as_deref(), &offered) {
                        let v = variants.iter().find(|v| v.0 == e).expect("offered");
                        head = head.header(header::CONTENT_ENCODING, e.token());
                        payload = &v.1;
                    }
                }
                let head = head.body(()).expect("validated content type");
                self.send(&reqd, Some(index), head, payload);
            }
            Action::Health => {
                if !read_only {
                    return self.not_allowed(&reqd, index);
                }
                self.simple(&reqd, Some(index), StatusCode::OK, "ok\n");
            }
            Action::Metrics => {
                if !read_only {
                    return self.not_allowed(&reqd, index);
                }
                let head = response(StatusCode::OK)
                    .header(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                    .body(())
                    .expect("static header");
                // Count this request before rendering so the page includes itself.
                let text = self.metrics.render();
                self.send(&reqd, Some(index), head, text.as_bytes());
            }
            Action::Redirect { to, status } => {
                let target = reqd
                    .request()
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let location = to
                    .replace("{host}", host.as_deref().unwrap_or(""))
                    .replace("{path}", &target);
                match HeaderValue::from_str(&location) {
                    Ok(v) => {
                        let head = response(*status)
                            .header(header::LOCATION, v)
                            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                            .body(())
                            .expect("valid header");
                        self.send(&reqd, Some(index), head, format!("{location}\n").as_bytes());
                    }
                    Err(_) => self.simple(
                        &reqd,
                        Some(index),
                        StatusCode::BAD_REQUEST,
                        "bad redirect target\n",
                    ),
                }
            }
            Action::Files { root, index: idx } => {
                if !read_only {
                    return self.not_allowed(&reqd, index);
                }
                let below = match &route.path {
                    PathMatch::Prefix(p) | PathMatch::Exact(p) => {
                        let rest = path.strip_prefix(p.trim_end_matches('/')).unwrap_or(path);
                        if rest.starts_with('/') {
                            rest.to_string()
                        } else {
                            format!("/{rest}")
                        }
                    }
                };
                self.file(&reqd, index, root, &below, idx, path);
            }
            // (Never matched by a request other than CONNECT.)
            Action::Connect { .. } => {
                self.simple(&reqd, Some(index), StatusCode::NOT_FOUND, "not found\n")
            }
            Action::Proxy {
                upstream,
                upgrade,
                tunnel_idle_timeout,
            } => {
                let origin = Origin {
                    config: self.config.clone(),
                    listener: self.listener,
                    route: index,
                };
                let tunnel = upgrade.then(|| crate::tunnel::Config {
                    idle_timeout: *tunnel_idle_timeout,
                    ..crate::tunnel::Config::default()
                });
                self.proxy.forward(reqd, *upstream, origin, tunnel);
            }
        }
    }

    fn not_allowed(&self, reqd: &Reqd, route: usize) {
        let head = response(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(())
            .expect("static header");
        self.send(reqd, Some(route), head, b"method not allowed\n");
    }

    fn file(
        &self,
        reqd: &Reqd,
        route: usize,
        root: &std::path::Path,
        below: &str,
        index: &str,
        full_path: &str,
    ) {
        let path = match files::resolve(root, below, index) {
            Ok(Resolved::File(p)) => p,
            Ok(Resolved::AddSlash) => {
                let head = response(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, format!("{full_path}/"))
                    .body(())
                    .expect("valid path");
                return self.send(reqd, Some(route), head, b"");
            }
            Err(refusal) => {
                let status = refusal.status();
                return self.simple(
                    reqd,
                    Some(route),
                    status,
                    status.canonical_reason().unwrap_or(""),
                );
            }
        };
        let opened = File::open(&path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, Validators::of(&meta)?))
        });
        let (file, v) = match opened {
            Ok(x) => x,
            Err(e) => {
                log::warn!("files: {}: {e}", path.display());
                return self.simple(reqd, Some(route), StatusCode::FORBIDDEN, "forbidden\n");
            }
        };
        let content_type = files::content_type(&path);
        let compress = &self.config.listeners[self.listener].routes[route].compress;
        let vary = !compress.encodings.is_empty() && compress::compressible(content_type);
        // A representation per coding: a pre-compressed sibling when there is a fresh one, else
        // the file compressed as it streams. Never for a Range request (ranges of the identity).
        let req = reqd.request();
        let coded = if vary && !req.headers().contains_key(header::RANGE) {
            let accept = accept_encoding(req);
            let accepted: Vec<_> = compress
                .encodings
                .iter()
                .copied()
                .filter(|&e| compress::negotiate(accept.as_deref(), &[e]).is_some())
                .collect();
            let sibling = accepted
                .iter()
                .find_map(|&e| files::sibling(&path, e.suffix(), &v).map(|s| (e, Some(s))));
            sibling.or_else(|| {
                accepted
                    .first()
                    .filter(|_| v.len >= compress.min_size)
                    .map(|&e| (e, None))
            })
        } else {
            None
        };
        let (mut file, v, encoding, streamed) = match coded {
            None => (file, v, None, false),
            Some((e, Some((sib, sv)))) => {
                let sv = Validators {
                    etag: compress::variant_etag(&sv.etag, e),
                    ..sv
                };
                (sib, sv, Some(e), false)
            }
            Some((e, None)) => {
                let cv = Validators {
                    etag: compress::variant_etag(&v.etag, e),
                    ..v
                };
                (file, cv, Some(e), true)
            }
        };
        let mut head = response(StatusCode::OK)
            .header(header::ETAG, v.etag.as_str())
            .header(header::LAST_MODIFIED, v.last_modified())
            .header(header::ACCEPT_RANGES, "bytes");
        if vary {
            head = head.header(header::VARY, "accept-encoding");
        }
        let (start, len) = match files::plan(req.method(), req.headers(), &v) {
            Plan::NotModified => {
                let head = head
                    .status(StatusCode::NOT_MODIFIED)
                    .body(())
                    .expect("headers");
                return self.send(reqd, Some(route), head, b"");
            }
            Plan::PreconditionFailed => {
                return self.simple(
                    reqd,
                    Some(route),
                    StatusCode::PRECONDITION_FAILED,
                    "precondition failed\n",
                );
            }
            Plan::Unsatisfiable => {
                let head = response(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", v.len))
                    .body(())
                    .expect("headers");
                return self.send(reqd, Some(route), head, b"");
            }
            Plan::Full => (0, v.len),
            Plan::Partial { start, end } => {
                head = head.status(StatusCode::PARTIAL_CONTENT).header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{}", v.len),
                );
                (start, end - start + 1)
            }
        };
        if let Some(e) = encoding {
            head = head.header(header::CONTENT_ENCODING, e.token());
        }
        let head = head
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .expect("headers");
        let status = head.status().as_u16();
        if start > 0 && file.seek(SeekFrom::Start(start)).is_err() {
            return self.simple(
                reqd,
                Some(route),
                StatusCode::INTERNAL_SERVER_ERROR,
                "read error\n",
            );
        }
        // Compressed as it streams: the length is not known ahead (chunked, or h2 DATA).
        let declared = (!streamed).then_some(len);
        let Ok(writer) = reqd.respond_with_streaming(head, declared) else {
            return;
        };
        let head_only = reqd.request().method() == Method::HEAD;
        if head_only {
            self.metrics.request(self.name(), Some(route), status, 0);
            // The codec sends the Content-Length and discards the body of a HEAD response.
            let _ = writer.close();
            return;
        }
        match encoding.filter(|_| streamed) {
            Some(e) => {
                let sent = Rc::new(std::cell::Cell::new(0));
                let (metrics, name) = (self.metrics.clone(), self.name().to_owned());
                let on_end = Box::new({
                    let sent = sent.clone();
                    move || metrics.request(&name, Some(route), status, sent.get())
                });
                let job = Squeeze {
                    file,
                    remaining: len,
                    buf: vec![0; chunk_for(len)],
                    enc: Some(compress::Encoder::new(e)),
                    out: Vec::new(),
                    off: 0,
                    sent,
                    on_end: Some(on_end),
                };
                squeeze(writer, job);
            }
            None => {
                self.metrics.request(self.name(), Some(route), status, len);
                pump(writer, file, len, vec![0; chunk_for(len)], 0, 0);
            }
        }
    }
}

/// A file compressed as it streams: one chunk read, compressed, and written at a time.
struct Squeeze {
    file: File,
    remaining: u64,
    buf: Vec<u8>,
    /// `None` once finished.
    enc: Option<compress::Encoder>,
    /// Compressed bytes not yet taken by the writer, from `off`.
    out: Vec<u8>,
    off: usize,
    /// Compressed bytes sent, for the metrics when the body ends.
    sent: Rc<std::cell::Cell<u64>>,
    on_end: Option<Box<dyn FnOnce()>>,
}

/// Streams `job` through `w`, waiting for `on_writable` whenever the connection's output is
/// full; at most one chunk of file and its compressed bytes are held.
fn squeeze(mut w: BodyWriter, mut job: Squeeze) {
    loop {
        if job.off == job.out.len() {
            job.out.clear();
            job.off = 0;
            let Some(enc) = job.enc.as_mut() else {
                if w.close().is_ok() {
                    if let Some(f) = job.on_end.take() {
                        f();
                    }
                }
                return;
            };
            if job.remaining == 0 {
                job.out = job.enc.take().expect("checked").finish();
                continue;
            }
            let want = job.remaining.min(job.buf.len() as u64) as usize;
            match job.file.read(&mut job.buf[..want]) {
                Ok(0) | Err(_) => {
                    log::warn!("files: read failed with {} bytes left", job.remaining);
                    drop(w); // cut the response: the codec closes or resets
                    return;
                }
                Ok(n) => {
                    job.remaining -= n as u64;
                    enc.write(&job.buf[..n]);
                    job.out = enc.take();
                }
            }
            continue;
        }
        match w.write(&job.out[job.off..]) {
            Ok(n) => {
                job.off += n;
                job.sent.set(job.sent.get() + n as u64);
                if job.off < job.out.len() {
                    w.on_writable(move |w| squeeze(w, job));
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Stream `remaining` bytes of `file` through `w`, waiting for `on_writable` whenever the
/// connection's output is full; at most one chunk is held in memory.
/// The read buffer for a body of `len` bytes: no bigger than the body, so a small file costs a
/// small buffer rather than [`FILE_CHUNK`] zeroed bytes.
fn chunk_for(len: u64) -> usize {
    usize::try_from(len).map_or(FILE_CHUNK, |l| l.clamp(1, FILE_CHUNK))
}

fn pump(
    mut w: BodyWriter,
    mut file: File,
    mut remaining: u64,
    mut buf: Vec<u8>,
    mut off: usize,
    mut len: usize,
) {
    loop {
        if off == len {
            if remaining == 0 {
                let _ = w.close();
                return;
            }
            let want = remaining.min(buf.len() as u64) as usize;
            match file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => {
                    // The file shrank or failed under us: cut the response (the codec closes).
                    log::warn!("files: read failed with {remaining} bytes left");
                    drop(w);
                    return;
                }
                Ok(n) => {
                    off = 0;
                    len = n;
                    remaining -= n as u64;
                }
            }
        }
        match w.write(&buf[off..len]) {
            Ok(n) => {
                off += n;
                if off < len {
                    w.on_writable(move |w| pump(w, file, remaining, buf, off, len));
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_routes_match_is_lowercase_without_port_or_trailing_dot() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("/", Some("example.test"), Some("example.test")),
            ("/", Some("Example.TEST:8080"), Some("example.test")),
            ("/", Some("example.test."), Some("example.test")),
            ("/", Some("[fd00:198:18::2]:443"), Some("[fd00:198:18::2]")),
            ("/", Some("[FD00:198:18::2]"), Some("[fd00:198:18::2]")),
            ("/", Some("198.18.0.2"), Some("198.18.0.2")),
            ("/", None, None),
            // The absolute form's authority wins over `Host`.
            (
                "http://Other.test:81/x",
                Some("example.test"),
                Some("other.test"),
            ),
        ];
        for &(uri, host, want) in cases {
            let mut b = Request::builder().uri(uri);
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            let req = b.body(()).unwrap();
            assert_eq!(host_of(&req).as_deref(), want, "{uri} {host:?}");
        }
    }
}

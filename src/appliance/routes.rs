//! Dispatch of one request to its route and the simple actions; files are streamed from disk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ::http::header::{self, HeaderValue};
use ::http::{Method, Request, Response, StatusCode};

use super::files::{self, Plan, Resolved, Validators};
use super::proxy::{Origin, Proxy};
use super::Metrics;
use crate::config::{Action, Config, PathMatch, Protocol};
use crate::http::Error;
use crate::service::{BodyWriter, ErrorResponse, Reqd};

/// Bytes read from a file per write.
const FILE_CHUNK: usize = 64 * 1024;

pub(super) struct Router {
    config: Rc<Config>,
    listener: usize,
    metrics: Arc<Metrics>,
    proxy: Rc<Proxy>,
}

fn response(status: StatusCode) -> ::http::response::Builder {
    Response::builder().status(status)
}

/// The request's host without port, from the absolute-form target or `Host`.
fn host_of(req: &Request<()>) -> Option<String> {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            let host = if h.starts_with('[') {
                h.split(']').next().map(|x| format!("{x}]"))?
            } else {
                h.split(':').next()?.to_string()
            };
            Some(host)
        })?;
    Some(raw.trim_end_matches('.').to_ascii_lowercase())
}

impl Router {
    pub(super) fn new(
        config: Rc<Config>,
        listener: usize,
        metrics: Arc<Metrics>,
        proxy: Rc<Proxy>,
    ) -> Router {
        Router {
            config,
            listener,
            metrics,
            proxy,
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
        let host = host_of(reqd.request());
        let path = reqd.request().uri().path().to_string();
        let Some(index) = listener
            .routes
            .iter()
            .position(|r| r.matches(host.as_deref(), &path))
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
                let head = response(*status)
                    .header(header::CONTENT_TYPE, content_type.as_str())
                    .body(())
                    .expect("validated content type");
                self.send(&reqd, Some(index), head, body);
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
                        let rest = path.strip_prefix(p.trim_end_matches('/')).unwrap_or(&path);
                        if rest.starts_with('/') {
                            rest.to_string()
                        } else {
                            format!("/{rest}")
                        }
                    }
                };
                self.file(&reqd, index, root, &below, idx, &path);
            }
            Action::Proxy { upstream } => {
                let origin = Origin {
                    listener: Rc::from(self.name()),
                    route: index,
                    https: matches!(listener.protocol, Protocol::Https { .. }),
                };
                self.proxy.forward(reqd, *upstream, origin);
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
        let (mut file, v) = match opened {
            Ok(x) => x,
            Err(e) => {
                log::warn!("files: {}: {e}", path.display());
                return self.simple(reqd, Some(route), StatusCode::FORBIDDEN, "forbidden\n");
            }
        };
        let mut head = response(StatusCode::OK)
            .header(header::ETAG, v.etag.as_str())
            .header(header::LAST_MODIFIED, v.last_modified())
            .header(header::ACCEPT_RANGES, "bytes");
        let (start, len) = match files::plan(reqd.request().method(), reqd.request().headers(), &v)
        {
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
        let head = head
            .header(header::CONTENT_TYPE, files::content_type(&path))
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
        let Ok(writer) = reqd.respond_with_streaming(head, Some(len)) else {
            return;
        };
        let head_only = reqd.request().method() == Method::HEAD;
        self.metrics.request(
            self.name(),
            Some(route),
            status,
            if head_only { 0 } else { len },
        );
        if head_only {
            // The codec sends the Content-Length and discards the body of a HEAD response.
            let _ = writer.close();
            return;
        }
        pump(writer, file, len, vec![0; FILE_CHUNK], 0, 0);
    }
}

/// Stream `remaining` bytes of `file` through `w`, waiting for `on_writable` whenever the
/// connection's output is full; at most one chunk is held in memory.
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

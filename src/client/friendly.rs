//! The friendly client (the seed's pointer to `paf.cohttp`): requests by URL, built on the ctx.
//!
//! The URL's scheme decides TLS (`https` adds the TLS configuration to the ctx, so `tls_edn`
//! resolves; `http` does not, so `tcp_edn` is used), its host becomes `domain_name` (resolved by
//! the ctx's DNS fold, a literal address as is), its port `port` (else the endpoints' defaults,
//! 80 and 443), and its authority the `Host` header. Redirects (301, 302, 303, 307, 308) are
//! followed up to [`Client::follow_redirects`] times: 303, and 301/302 after a POST, continue
//! with a GET without body; the last redirect response is returned when the limit is reached.

use crate::http;
use std::cell::{OnceCell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ::http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION};
use ::http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

use super::body::{BodyError, ResponseBody};
use super::state::BodyKind;
use super::{keys, Agent, Error, Family};
use crate::ctx::Ctx;
use crate::runtime::Runtime;
use crate::tls;

/// Most bytes of a redirect response's body read before following it (a longer one closes its
/// connection).
const REDIRECT_BODY: usize = 64 * 1024;

/// A response read in full by [`Client`].
#[derive(Clone, Debug)]
pub struct Response {
    /// The server that answered.
    pub peer: SocketAddr,
    /// The URL that answered (the last one, after redirects).
    pub url: String,
    /// The status.
    pub status: StatusCode,
    /// The HTTP version of the response.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// Requests by URL on a client [`Agent`]: the scheme picks TLS, the host becomes `domain_name`,
/// the port `port` (default 80/443), the authority `Host`; redirects are followed when asked
/// (303, and 301/302 after a POST, continue with a bodyless GET). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    stack: Agent,
    /// The ctx each request starts from (default: the stack's base ctx).
    base: Option<Ctx>,
    tls: Rc<OnceCell<tls::ClientConfig>>,
    family: Family,
    redirects: usize,
    max_body: usize,
    http: Arc<http::client::Config>,
}

type OnHead = Box<dyn FnOnce(SocketAddr, String, ::http::Response<()>, ResponseBody)>;
type OnError = Box<dyn FnOnce(Option<SocketAddr>, Error)>;

impl Client {
    /// A client on `agent`: webpki roots for `https`, no redirects, bodies up to 64 MiB.
    pub fn new(stack: &Agent) -> Client {
        Client {
            stack: stack.clone(),
            base: None,
            tls: Rc::new(OnceCell::new()),
            family: Family::Any,
            redirects: 0,
            max_body: 64 << 20,
            http: Arc::new(http::client::Config::default()),
        }
    }

    /// Starts every request from `ctx` instead of the stack's base ctx
    /// ([`client::ctx`](super::ctx)): build it from that one and add what the URL does not say,
    /// such as a resolver of your own ahead of DNS (`.fold_first(&client::ipaddr(), ...)`), fixed
    /// addresses, or a TLS configuration. The URL's host, port and scheme are added on top.
    #[must_use]
    pub fn with_ctx(mut self, ctx: Ctx) -> Client {
        self.base = Some(ctx);
        self
    }

    /// `GET url`, turning `rt` (the loop of the client's stack) until the whole response is in:
    /// for a thread that owns the loop and has nothing else to do. The server must be driven
    /// by another thread (or be remote): on a `paf::testing::Pair`, whose loops share this
    /// thread, use [`Client::get`] and `Pair::drive` instead.
    ///
    /// # Errors
    /// The request's [`Error`]; [`Error::Stopped`] when the loop fails.
    pub fn get_blocking(&self, rt: &mut Runtime, url: &str) -> Result<Response, Error> {
        fetch_blocking(rt, self, Method::GET, url, HeaderMap::new(), Vec::new())
    }

    /// Uses `config` for `https` URLs (a CA file, `dangerous_insecure`, …).
    #[must_use]
    pub fn with_tls(mut self, config: tls::ClientConfig) -> Client {
        self.tls = Rc::new(OnceCell::from(config));
        self
    }

    /// Which address family names resolve to.
    #[must_use]
    pub fn with_family(mut self, family: Family) -> Client {
        self.family = family;
        self
    }

    /// Follows up to `max` redirects (0: none).
    #[must_use]
    pub fn follow_redirects(mut self, max: usize) -> Client {
        self.redirects = max;
        self
    }

    /// Largest response body [`get`](Self::get) and friends accept.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Client {
        self.max_body = bytes;
        self
    }

    /// HTTP codec limits and timeouts.
    #[must_use]
    pub fn with_http_config(mut self, config: http::client::Config) -> Client {
        self.http = Arc::new(config);
        self
    }

    /// The stack the client sends on.
    pub fn stack(&self) -> &Agent {
        &self.stack
    }

    /// `GET url`; `done` gets the whole response or the error.
    pub fn get(&self, url: &str, done: impl FnOnce(Result<Response, Error>) + 'static) {
        self.request(Method::GET, url, HeaderMap::new(), Vec::new(), done);
    }

    /// `POST url` with `body`; `done` gets the whole response or the error.
    pub fn post(
        &self,
        url: &str,
        body: impl Into<Vec<u8>>,
        done: impl FnOnce(Result<Response, Error>) + 'static,
    ) {
        self.request(Method::POST, url, HeaderMap::new(), body.into(), done);
    }

    /// Any request; `done` gets the whole response (up to the body limit) or the error, once.
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        done: impl FnOnce(Result<Response, Error>) + 'static,
    ) {
        let once = Once::new(done);
        let on_error = once.clone();
        let limit = self.max_body;
        self.send(
            method,
            url,
            headers,
            body,
            move |_peer, e| on_error.call(Err(e)),
            move |peer, url, head, body| {
                body.read_to_end(limit, move |r| {
                    let r = match r {
                        Ok(body) => {
                            let (parts, ()) = head.into_parts();
                            Ok(Response {
                                peer,
                                url,
                                status: parts.status,
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            })
                        }
                        Err(BodyError::TooLarge) => Err(Error::BodyTooLarge { peer, limit }),
                        // The error handler had the reason already; this is a no-op then.
                        Err(BodyError::Aborted) => Err(Error::Reset { peer }),
                    };
                    once.call(r);
                });
            },
        );
    }

    /// Any request, the response streamed: `on_response` gets the peer, the final URL, the head
    /// and the body to read (after redirects); `on_error` any failure, once.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        on_error: impl FnOnce(Option<SocketAddr>, Error) + 'static,
        on_response: impl FnOnce(SocketAddr, String, ::http::Response<()>, ResponseBody) + 'static,
    ) {
        let on_error: OnError = Box::new(on_error);
        let on_head: OnHead = Box::new(on_response);
        self.hop(
            method,
            url.to_owned(),
            headers,
            body,
            self.redirects,
            on_error,
            on_head,
        );
    }

    /// One request of a redirect chain.
    #[allow(clippy::too_many_arguments)]
    fn hop(
        &self,
        method: Method,
        url: String,
        headers: HeaderMap,
        body: Vec<u8>,
        redirects: usize,
        on_error: OnError,
        on_head: OnHead,
    ) {
        let (ctx, uri) = match self.ctx_for(&url) {
            Ok(x) => x,
            Err(e) => return on_error(None, e),
        };
        let mut head = Request::new(());
        *head.method_mut() = method.clone();
        *head.uri_mut() = uri.clone();
        *head.headers_mut() = headers.clone();
        head.headers_mut().remove(HOST);
        let kind = if body.is_empty() {
            BodyKind::Empty
        } else {
            BodyKind::Bytes(Rc::from(body.as_slice()))
        };
        // The error handler moves into the request; a redirect needs it back.
        let on_error = Rc::new(RefCell::new(Some(on_error)));
        let e1 = on_error.clone();
        let client = self.clone();
        let response = move |peer: SocketAddr, resp: ::http::Response<()>, rbody: ResponseBody| {
            let next = (redirects > 0)
                .then(|| redirect(&uri, &method, resp.status(), resp.headers()))
                .flatten();
            let Some((next_url, next_method)) = next else {
                return on_head(peer, url, resp, rbody);
            };
            let Some(on_error) = e1.borrow_mut().take() else {
                return;
            };
            let mut headers = headers;
            let same_host = Uri::try_from(next_url.as_str())
                .ok()
                .is_some_and(|u| u.authority() == uri.authority());
            if !same_host {
                headers.remove(AUTHORIZATION);
                headers.remove(COOKIE);
            }
            let body = if next_method == method {
                body
            } else {
                Vec::new()
            };
            log::debug!("client: {} {url} → {next_url}", resp.status());
            // Finish the redirect's (small) body first, so its connection serves the next hop.
            rbody.read_to_end(REDIRECT_BODY, move |_| {
                client.hop(
                    next_method,
                    next_url,
                    headers,
                    body,
                    redirects - 1,
                    on_error,
                    on_head,
                );
            });
        };
        let e2 = on_error.clone();
        let error = move |peer, e| {
            if let Some(f) = e2.borrow_mut().take() {
                f(peer, e);
            }
        };
        let started = super::agent::start(
            &ctx,
            self.http.clone(),
            head,
            kind,
            Box::new(error),
            Box::new(response),
        );
        if let Err(e) = started {
            if let Some(f) = on_error.borrow_mut().take() {
                f(None, e);
            }
        }
    }

    /// The ctx for `url`: the stack's base ctx with the URL's host, port and scheme.
    fn ctx_for(&self, url: &str) -> Result<(Ctx, Uri), Error> {
        let uri: Uri = url.parse().map_err(|e| Error::Url(format!("{url}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(Error::Url(format!("{url}: unsupported scheme {other}"))),
            None => return Err(Error::Url(format!("{url}: no scheme"))),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Url(format!("{url}: no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let base = match &self.base {
            Some(ctx) => ctx.clone(),
            None => keys::ctx(&self.stack),
        };
        let mut ctx = base
            .add(&keys::domain_name(), host)
            .add(&keys::family(), self.family);
        if let Some(p) = uri.port_u16() {
            ctx = ctx.add(&keys::port(), p);
        }
        if tls {
            let config = match self.tls.get() {
                Some(c) => c.clone(),
                None => {
                    let c = tls::ClientConfig::webpki_roots()
                        .map_err(|e| Error::Config(e.to_string()))?;
                    self.tls.get_or_init(|| c).clone()
                }
            };
            ctx = ctx.add(&keys::tls_config(), config);
        }
        Ok((ctx, uri))
    }
}

/// Where a redirect response points, and the method to use there.
fn redirect(
    base: &Uri,
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<(String, Method)> {
    let next_method = match status.as_u16() {
        303 if *method != Method::HEAD => Method::GET,
        301 | 302 if *method == Method::POST => Method::GET,
        301 | 302 | 303 | 307 | 308 => method.clone(),
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    Some((join(base, location)?, next_method))
}

/// `location` resolved against `base` (absolute, scheme-relative, absolute-path, relative).
fn join(base: &Uri, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    let authority = base.authority()?.as_str();
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = base.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

type Callback<T> = Box<dyn FnOnce(T)>;

/// A callback shared by two paths, called by the first to arrive.
struct Once<T>(Rc<RefCell<Option<Callback<T>>>>);

impl<T> Clone for Once<T> {
    fn clone(&self) -> Self {
        Once(self.0.clone())
    }
}

impl<T> Once<T> {
    fn new(f: impl FnOnce(T) + 'static) -> Self {
        Once(Rc::new(RefCell::new(Some(Box::new(f)))))
    }

    fn call(&self, v: T) {
        let f = self.0.borrow_mut().take();
        if let Some(f) = f {
            f(v);
        }
    }
}

/// Sends one request with `client` and turns `rt` until its response is in (for a thread that
/// owns the loop and has nothing else to do, like the command line).
///
/// # Errors
/// The request's [`Error`]; [`Error::Stopped`] when the loop fails.
pub fn fetch_blocking(
    rt: &mut Runtime,
    client: &Client,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Response, Error> {
    let slot: Rc<RefCell<Option<Result<Response, Error>>>> = Rc::default();
    let s = slot.clone();
    client.request(method, url, headers, body, move |r| {
        *s.borrow_mut() = Some(r);
    });
    loop {
        if let Some(r) = slot.borrow_mut().take() {
            return r;
        }
        if rt.turn(None).is_err() {
            return Err(Error::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_base() {
        let base: Uri = "http://a.test:8080/dir/page?q=1".parse().unwrap();
        let cases = [
            ("https://b.test/x", "https://b.test/x"),
            ("//c.test/y", "http://c.test/y"),
            ("/z", "http://a.test:8080/z"),
            ("other", "http://a.test:8080/dir/other"),
        ];
        for (loc, want) in cases {
            assert_eq!(join(&base, loc).as_deref(), Some(want), "{loc}");
        }
    }

    #[test]
    fn redirects_keep_or_change_the_method() {
        let base: Uri = "http://a.test/".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(LOCATION, "/next".parse().unwrap());
        let cases = [
            (Method::POST, 301, Some(Method::GET)),
            (Method::POST, 302, Some(Method::GET)),
            (Method::PUT, 303, Some(Method::GET)),
            (Method::HEAD, 303, Some(Method::HEAD)),
            (Method::POST, 307, Some(Method::POST)),
            (Method::PUT, 308, Some(Method::PUT)),
            (Method::GET, 304, None),
            (Method::GET, 200, None),
        ];
        for (m, status, want) in cases {
            let got = redirect(&base, &m, StatusCode::from_u16(status).unwrap(), &h);
            assert_eq!(got.map(|(_, m)| m), want, "{m} {status}");
        }
        assert!(redirect(&base, &Method::GET, StatusCode::FOUND, &HeaderMap::new()).is_none());
    }
}

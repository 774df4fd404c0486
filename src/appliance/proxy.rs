//! The reverse proxy: `action = "proxy"` routes forwarded to an `[[upstream]]` through paf's own
//! client, on the same loop as the listeners.
//!
//! Contract:
//! - Each upstream gets its own [`client::Agent`]: its connect timeout (which
//!   also bounds the TLS handshake), its pool of idle keep-alive connections per URL
//!   (`pool_size`), and, for https URLs, its TLS configuration (the `ca` file or the webpki
//!   roots; `sni` as the name sent and verified). Names are resolved by the userspace stack's DNS.
//! - `protocols` is the ALPN list offered to https URLs (`["http/1.1"]` by default). An
//!   upstream that picks `h2` gets one HTTP/2 connection per URL that carries the proxied
//!   requests concurrently (up to its `SETTINGS_MAX_CONCURRENT_STREAMS`; more connections
//!   only while one is being made or is full); `["h2"]` on an http URL is h2c with prior
//!   knowledge. The request head is the same; the client's HTTP/2 codec turns `Host` into
//!   `:authority` and drops the fields HTTP/2 forbids.
//! - A request goes to the next URL round-robin, skipping URLs that failed (connect, TLS, DNS)
//!   within `retry_after`; when every URL is marked failing, the round-robin one is tried anyway.
//!   A request without a body whose connection could not be made is tried once on each other
//!   URL before the client gets an error.
//! - The request sent is rebuilt from the parsed head by the client codec
//!   ([`headers::request_head`]): hop-by-hop fields dropped, `X-Forwarded-For` appended,
//!   `X-Forwarded-Proto` set, `Via` appended, `Host` kept (or the upstream's with
//!   `preserve_host = false`). Raw client bytes never reach the upstream.
//! - Bodies stream both ways with backpressure: one chunk at a time is read from one side and
//!   the next is read only once the other side took it all, so memory per exchange is bounded by
//!   the codecs' buffers whatever the body size.
//! - A request body with a transfer coding besides `chunked` (`gzip, chunked`) is answered 501
//!   and not forwarded: the upstream request is framed `chunked` alone, so the coding would be
//!   lost (see [`headers::has_other_codings`]).
//! - `send_proxy_protocol = "v1" | "v2"`: every connection to the upstream starts with a PROXY
//!   protocol header (before TLS for https URLs) naming the client (the PROXY-protocol source
//!   when the listener trusts one, else the TCP peer: [`Reqd::peer`]) and the address it
//!   reached on paf ([`Reqd::local`]). The header is the connection's client, so the header's
//!   bytes are part of the pool key ([`client::preamble`]): a connection, HTTP/2 ones
//!   included, carries only the requests of the client connection it names.
//! - With the route's `compress` (off by default), a compressible response is compressed as it
//!   streams (see [`compress::for_proxy`]): each upstream chunk is compressed and flushed
//!   before the next is read, so backpressure and memory stay as without compression.
//! - Failures before the response head: `502 Bad Gateway` for connect, DNS, TLS and protocol
//!   failures, `504 Gateway Timeout` when no response came within `response_timeout`. After the
//!   head was sent, the client's response is cut short (its connection closes). Each failure is
//!   counted in `/metrics` by kind: `connect`, `dns`, `tls`, `protocol`, `timeout`.
//! - Upgrades (`upgrade = true`, the default): an HTTP/1.1 request with `Upgrade` and the
//!   `upgrade` connection option (not `h2c`) goes upstream with both
//!   ([`headers::upgrade_of`]). A `101` from the upstream is relayed with its `Upgrade` and
//!   `Sec-WebSocket-Accept`, then the two connections are joined into a [`tunnel`]: bytes both
//!   ways with backpressure, FIN passed on as FIN, closed after the route's
//!   `tunnel_idle_timeout` without a byte; counted per listener in `/metrics`. Any other answer
//!   is relayed as usual. HTTP/2 clients cannot upgrade (RFC 9113 §8.6; extended CONNECT,
//!   RFC 8441, is not offered), and an upstream that speaks HTTP/2 gets the request without
//!   its `Upgrade` (its answer is relayed as it is). CONNECT is not a proxy route's: see
//!   `connect` (the `connect` routes).

mod bodies;
mod headers;

use crate::http::{self, proxy_protocol};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use ::http::header::{self, HeaderValue};
use ::http::{Method, Response, StatusCode};

use super::compress;
use super::Metrics;
use crate::client::{self, ResponseBody};
use crate::config::{self, Config};
use crate::ctx::Resolution;
use crate::runtime::{PassTime, Runtime};
use crate::service::Reqd;
use crate::{tls, tunnel};

use bodies::{download, upload, Down};
use headers::{Body, Forwarding};

/// Connections open at once per upstream URL; requests beyond wait for one to be free.
const MAX_PER_URL: usize = 1024;
/// Most response body bytes read from an upstream at once.
const READ_CHUNK: usize = 64 * 1024;

/// Where a proxied request came from, for metrics and forwarding fields: a listener's route
/// of the configuration the request was routed by (shared, not copied per request).
#[derive(Clone, Debug)]
pub(super) struct Origin {
    /// The configuration.
    pub config: Rc<Config>,
    /// The listener's index in it.
    pub listener: usize,
    /// The route's index in the listener.
    pub route: usize,
}

impl Origin {
    fn listener(&self) -> &config::Listener {
        &self.config.listeners[self.listener]
    }

    /// The listener's name.
    fn listener_name(&self) -> &str {
        &self.listener().name
    }

    /// Whether the listener speaks HTTPS.
    fn https(&self) -> bool {
        matches!(self.listener().protocol, config::Protocol::Https { .. })
    }

    /// The route's `compress` (off unless the route says).
    fn compress(&self) -> &config::Compress {
        &self.listener().routes[self.route].compress
    }
}

/// Why the proxy cannot start: an upstream's TLS configuration cannot be built.
#[derive(Debug)]
pub struct StartError {
    /// The upstream's name.
    pub upstream: String,
    /// Why.
    pub error: tls::Error,
}

/// One `[[upstream]]` at run time.
struct Upstream {
    config: config::Upstream,
    /// Shared by its requests: the pool compares a connection's settings by pointer first.
    http: Arc<http::client::Config>,
    /// The URL the next request starts from.
    next: Cell<usize>,
    /// Per URL: skipped until then.
    down: Vec<Cell<Option<Instant>>>,
    /// Per URL: the client ctx that reaches it, built once (a request clones it, which is
    /// cheap: the ctx's map is shared until changed).
    ctxs: Vec<crate::ctx::Ctx>,
    /// Per URL: its authority (for logs).
    authorities: Vec<String>,
    /// Per URL: its authority as a `Host` value.
    hosts: Vec<Option<HeaderValue>>,
}

impl Upstream {
    /// The next URL round-robin that is not skipped and not in `tried`; a failing one when all
    /// are failing; `None` when every URL was tried.
    fn pick(&self, now: Instant, tried: &[usize]) -> Option<usize> {
        let n = self.config.urls.len();
        let start = self.next.get();
        let order = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i));
        let live = order
            .clone()
            .find(|&i| self.down[i].get().is_none_or(|t| now >= t));
        let i = live.or_else(|| order.clone().next())?;
        self.next.set((i + 1) % n);
        Some(i)
    }

    /// The URL's authority as a `Host` value: port only when not the scheme's default.
    fn authority(u: &config::UpstreamUrl) -> String {
        let host = if u.host.contains(':') {
            format!("[{}]", u.host)
        } else {
            u.host.clone()
        };
        if u.port == if u.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", u.port)
        }
    }

    /// The client ctx that reaches `u` through `stack`.
    fn ctx(
        stack: &client::Agent,
        tls: Option<&tls::ClientConfig>,
        sni: Option<&String>,
        u: &config::UpstreamUrl,
    ) -> crate::ctx::Ctx {
        let mut ctx = client::ctx(stack)
            .add(&client::domain_name(), u.host.clone())
            .add(&client::port(), u.port);
        if u.tls {
            if let Some(t) = tls {
                ctx = ctx.add(&client::tls_config(), t.clone());
            }
            if let Some(sni) = sni {
                ctx = ctx.add(&client::server_name(), sni.clone());
            }
        }
        // A literal address needs no resolver: the endpoint the folds give (at once: no DNS
        // for a literal) goes in as a value, instead of being computed again per request.
        if net::dns::literal(&u.host).is_some() {
            if u.tls {
                if let Resolution::Ready(edn) = ctx.resolve(&client::tls_edn()).poll() {
                    ctx = ctx.add(&client::tls_edn(), edn);
                }
            } else if let Resolution::Ready(edn) = ctx.resolve(&client::tcp_edn()).poll() {
                ctx = ctx.add(&client::tcp_edn(), edn);
            }
        }
        ctx
    }
}

/// The proxy of an appliance: every upstream of the config, shared by all listeners.
pub(super) struct Proxy {
    upstreams: Vec<Upstream>,
    /// The client agent that dials CONNECT targets (raw connections, each route's
    /// `connect_timeout` given per connection).
    dialer: client::Agent,
    metrics: Arc<Metrics>,
    /// The loop's pass time (when an upstream URL was marked down, and until when).
    time: PassTime,
    /// Client addresses' text for `X-Forwarded-For`.
    peer_text: headers::PeerText,
}

impl Proxy {
    /// Attaches one client agent per upstream to `rt`.
    ///
    /// # Errors
    /// [`StartError`] when an upstream's CA file cannot be loaded.
    pub(super) fn new(
        rt: &mut Runtime,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Proxy, StartError> {
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            let tls = if u.urls.iter().any(|x| x.tls) {
                let trust = match &u.ca {
                    Some(ca) => tls::ClientTrust::CaPemFile(ca.clone()),
                    None => tls::ClientTrust::WebPki,
                };
                // ALPN as `protocols` says: `h2` first makes a multiplexed HTTP/2 connection
                // of every upstream that picks it.
                let alpn: Vec<&[u8]> = u.protocols.iter().map(|p| p.as_bytes()).collect();
                let t = tls::ClientConfig::builder(trust)
                    .alpn_protocols(&alpn)
                    .handshake_timeout(u.connect_timeout)
                    .build()
                    .map_err(|error| StartError {
                        upstream: u.name.clone(),
                        error,
                    })?;
                Some(t)
            } else {
                None
            };
            let options = client::Options {
                connect_timeout: u.connect_timeout,
                max_per_endpoint: MAX_PER_URL.max(u.pool_size),
                max_idle_per_endpoint: u.pool_size,
                // As many as the URLs' pools hold; with `send_proxy_protocol` each client
                // connection is an endpoint of its own, and this bounds their idle leftovers.
                max_idle: u.pool_size.saturating_mul(u.urls.len()).max(1),
                read_chunk: READ_CHUNK,
                ..client::Options::default()
            };
            let http = Arc::new(http::client::Config {
                response_timeout: u.response_timeout,
                // Plain-text URLs: HTTP/2 only when it is the one protocol named.
                http2_prior_knowledge: u.protocols == ["h2"],
                // What is relayed: the upstream's hop-by-hop fields are left out at the parse.
                strip_hop_by_hop: true,
                ..http::client::Config::default()
            });
            let stack = client::Agent::attach(rt, options);
            let ctxs = u
                .urls
                .iter()
                .map(|x| Upstream::ctx(&stack, tls.as_ref(), u.sni.as_ref(), x))
                .collect();
            upstreams.push(Upstream {
                http,
                next: Cell::new(0),
                down: u.urls.iter().map(|_| Cell::new(None)).collect(),
                ctxs,
                authorities: u.urls.iter().map(Upstream::authority).collect(),
                hosts: u
                    .urls
                    .iter()
                    .map(|x| HeaderValue::from_str(&Upstream::authority(x)).ok())
                    .collect(),
                config: u.clone(),
            });
        }
        Ok(Proxy {
            upstreams,
            dialer: client::Agent::attach(rt, client::Options::default()),
            metrics,
            time: rt.pass_time(),
            peer_text: headers::PeerText::default(),
        })
    }

    /// The agent that dials CONNECT targets.
    pub(super) fn dialer(&self) -> &client::Agent {
        &self.dialer
    }

    /// Forwards `reqd` to upstream `upstream` and streams the answer back; `tunnel`: the
    /// route forwards upgrades, with these tunnel settings.
    pub(super) fn forward(
        self: &Rc<Self>,
        reqd: Reqd,
        upstream: usize,
        origin: Origin,
        tunnel: Option<tunnel::Config>,
    ) {
        let upgrade = tunnel.and_then(|t| Some((headers::upgrade_of(reqd.request())?, t)));
        let flight = Rc::new(Flight {
            upgrade,
            proxy: self.clone(),
            upstream,
            origin,
            body: headers::body_of(reqd.request().headers()),
            reqd,
            tried: RefCell::new(Vec::new()),
            counted: Cell::new(false),
        });
        // (`Transfer-Encoding` makes the body chunked: without one there is nothing to look at.)
        if flight.body == Body::Chunked
            && headers::has_other_codings(flight.reqd.request().headers())
        {
            // `gzip, chunked` would reach the upstream as plain chunked gzip bytes.
            return flight.fail(StatusCode::NOT_IMPLEMENTED, "transfer coding not forwarded");
        }
        flight.attempt();
    }
}

/// One proxied exchange.
struct Flight {
    /// The request's `Upgrade`, when the route forwards it, and the tunnel's settings.
    upgrade: Option<(::http::HeaderValue, tunnel::Config)>,
    proxy: Rc<Proxy>,
    upstream: usize,
    origin: Origin,
    reqd: Reqd,
    body: Body,
    /// URLs tried so far.
    tried: RefCell<Vec<usize>>,
    /// The response was counted in the metrics.
    counted: Cell<bool>,
}

impl Flight {
    fn upstream(&self) -> &Upstream {
        &self.proxy.upstreams[self.upstream]
    }

    /// Counts the response once.
    fn count(&self, status: StatusCode, bytes: u64) {
        if !self.counted.replace(true) {
            self.proxy.metrics.request(
                self.origin.listener_name(),
                Some(self.origin.route),
                status.as_u16(),
                bytes,
            );
        }
    }

    /// Answers the client with a gateway error (when nothing was sent yet).
    fn fail(&self, status: StatusCode, why: &str) {
        if self.reqd.is_responded() {
            return;
        }
        let head = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(())
            .expect("static header");
        let text = format!("{status}: {why}\n");
        if self.reqd.respond_with_bytes(head, text.as_bytes()).is_ok() {
            self.count(status, text.len() as u64);
        }
    }

    /// Sends the request to the next URL.
    fn attempt(self: &Rc<Self>) {
        let up = self.upstream();
        let picked = up.pick(self.proxy.time.now(), &self.tried.borrow());
        let Some(i) = picked else {
            return self.fail(StatusCode::BAD_GATEWAY, "no upstream URL left to try");
        };
        self.tried.borrow_mut().push(i);
        let fwd = Forwarding {
            peer: self.proxy.peer_text.get(self.reqd.peer().ip()),
            https: self.origin.https(),
            upstream_host: up.hosts[i].as_ref(),
            preserve_host: up.config.preserve_host,
            upgrade: self.upgrade.as_ref().map(|(u, _)| u),
        };
        let body = self.body;
        let head = headers::request_head_framed(self.reqd.request(), &fwd, body);
        let mut ctx = up.ctxs[i].clone();
        if let Some(version) = up.config.send_proxy_protocol {
            ctx = ctx.add(&client::preamble(), self.proxy_header(version));
        }
        let on_error = {
            let f = self.clone();
            move |peer: Option<SocketAddr>, e: client::Error| f.upstream_failed(i, peer, &e)
        };
        let on_response = {
            let f = self.clone();
            move |_peer: SocketAddr, head: Response<()>, rbody: ResponseBody| {
                f.respond(head, rbody);
            }
        };
        match client::request(&ctx, up.http.clone(), on_error, on_response, head) {
            Ok(writer) => match body {
                Body::Empty => {
                    let _ = writer.close();
                }
                Body::Length(_) | Body::Chunked => upload(self.clone(), writer),
            },
            // Known before any upstream was asked (CONNECT): not the upstream's failure.
            Err(e @ (client::Error::Usage(_) | client::Error::Framing(_))) => {
                log::debug!("proxy: cannot forward: {e}");
                self.fail(StatusCode::NOT_IMPLEMENTED, "cannot forward this request");
            }
            Err(e) => self.upstream_failed(i, None, &e),
        }
    }

    /// The PROXY protocol header for this request's client connection.
    fn proxy_header(&self, version: proxy_protocol::Version) -> Arc<[u8]> {
        let client = self.reqd.peer();
        // The stacks always know a connection's local end; were one not to, the header
        // still names the client, with the unspecified address as the destination.
        let local = self.reqd.local().unwrap_or_else(|| {
            let any = match client {
                SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            SocketAddr::new(any, 0)
        });
        Arc::from(proxy_protocol::encode(version, client, local))
    }

    /// The upstream request failed: count it, mark the URL, retry or answer 502/504.
    fn upstream_failed(self: &Rc<Self>, url: usize, peer: Option<SocketAddr>, e: &client::Error) {
        let Some((kind, status)) = classify(e) else {
            // Cancelled by us (the client went away): not the upstream's fault.
            return;
        };
        let up = self.upstream();
        log::warn!(
            "proxy: upstream {:?} ({}{}): {e}",
            up.config.name,
            up.authorities[url],
            peer.map(|p| format!(" at {p}")).unwrap_or_default()
        );
        self.proxy.metrics.upstream_error(&up.config.name, kind);
        let unreachable = matches!(kind, "connect" | "dns" | "tls");
        if unreachable {
            up.down[url].set(Some(self.proxy.time.now() + up.config.retry_after));
        }
        if self.reqd.is_responded() {
            // The body reader hears about it and cuts the response short.
            return;
        }
        let more = self.tried.borrow().len() < up.config.urls.len();
        if unreachable && self.body == Body::Empty && more {
            return self.attempt();
        }
        let why = if status == StatusCode::GATEWAY_TIMEOUT {
            "upstream timed out"
        } else {
            "upstream failed"
        };
        self.fail(status, why);
    }

    /// The upstream's response head arrived: answer the client and stream the body.
    fn respond(self: &Rc<Self>, head: Response<()>, body: ResponseBody) {
        let protocol = if head.version() == ::http::Version::HTTP_2 {
            "h2"
        } else {
            "http/1.1"
        };
        self.proxy
            .metrics
            .upstream_response(&self.upstream().config.name, protocol);
        if head.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.switch(head, &body);
        }
        let (mut head, length) = headers::response_head(head);
        let plan = compress::for_proxy(self.origin.compress(), self.reqd.request(), &head, length);
        if plan.vary {
            compress::add_vary(head.headers_mut());
        }
        let (length, enc) = match plan.encoding {
            Some(e) => {
                compress::encoded_head(&mut head, e);
                (None, Some(compress::Encoder::new(e)))
            }
            None => (length, None),
        };
        let status = head.status();
        let method = self.reqd.request().method().clone();
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            // No body; a 304 keeps the upstream's Content-Length (the codec sends it as is).
            drop(body);
            if self.reqd.respond_with_bytes(head, b"").is_ok() {
                self.count(status, 0);
            }
            return;
        }
        if method != Method::HEAD {
            if let Some(bytes) = body.take_complete() {
                // The whole body came with the head: one response, no reads to schedule.
                return self.respond_whole(head, status, bytes, enc);
            }
        }
        let writer = match self.reqd.respond_with_streaming(head, length) {
            Ok(w) => w,
            Err(e) => {
                log::debug!("proxy: client gone before the response: {e}");
                body.cancel();
                return;
            }
        };
        if method == Method::HEAD {
            // The upstream sends no body to HEAD; the codec sends the length and no bytes.
            drop(body);
            let _ = writer.close();
            self.count(status, 0);
            return;
        }
        download(Down::new(self.clone(), status, body, enc), writer);
    }
}

impl Flight {
    /// Answers with a body that arrived whole (compressed first when `enc` says so).
    fn respond_whole(
        &self,
        head: Response<()>,
        status: StatusCode,
        bytes: Vec<u8>,
        enc: Option<compress::Encoder>,
    ) {
        let bytes = match enc {
            Some(mut enc) => {
                enc.write(&bytes);
                let mut out = enc.take();
                out.extend(enc.finish());
                out
            }
            None => bytes,
        };
        let n = bytes.len() as u64;
        // A long body is sent from its own buffer rather than copied (`http::SHARE_FROM` and more).
        let sent = if bytes.len() >= crate::http::SHARE_FROM {
            self.reqd.respond_with_shared(head, bytes.into())
        } else {
            self.reqd.respond_with_bytes(head, &bytes)
        };
        match sent {
            Ok(()) => self.count(status, n),
            Err(e) => log::debug!("proxy: client gone before the response: {e}"),
        }
    }

    /// The upstream switched protocols: relay its 101, then tunnel the two connections.
    fn switch(self: &Rc<Self>, head: Response<()>, body: &ResponseBody) {
        // (The client codec accepts a 101 only to a request that asked for it.)
        let (Some(up), Some((_, config))) = (body.upgrade(), &self.upgrade) else {
            return self.fail(StatusCode::BAD_GATEWAY, "unexpected 101 from the upstream");
        };
        match self.reqd.upgrade(headers::switching_head(head)) {
            Ok(down) => {
                let counters = self.proxy.metrics.tunnels(self.origin.listener_name());
                tunnel::join(down, up, config, &counters);
                self.count(StatusCode::SWITCHING_PROTOCOLS, 0);
            }
            // Dropping `up` closes the upstream's connection.
            Err(e) => log::debug!("proxy: cannot switch the client's connection: {e}"),
        }
    }
}

/// The metrics kind and status of an upstream failure; `None` for a cancelled request.
fn classify(e: &client::Error) -> Option<(&'static str, StatusCode)> {
    use client::Error as E;
    let bad = StatusCode::BAD_GATEWAY;
    Some(match e {
        E::Cancelled => return None,
        E::Http { error, .. } if error.is_timeout() => ("timeout", StatusCode::GATEWAY_TIMEOUT),
        E::Http { .. } | E::Reset { .. } | E::BodyTooLarge { .. } => ("protocol", bad),
        E::Dns { .. } => ("dns", bad),
        E::Tls { .. } => ("tls", bad),
        E::Connect { .. } | E::Ctx(_) | E::NoAgent | E::Stopped | E::NotAllowed { .. } => {
            ("connect", bad)
        }
        E::Usage(_) | E::Framing(_) | E::Url(_) | E::Config(_) => ("protocol", bad),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::{Ctx, Value};

    /// `key` of `ctx`, when it resolves at once.
    fn resolved<T: Clone + 'static>(ctx: &Ctx, key: &Value<T>) -> Option<T> {
        match ctx.resolve(key).poll() {
            Resolution::Ready(v) => Some(v),
            _ => None,
        }
    }

    fn url(tls: bool, host: &str, port: u16) -> config::UpstreamUrl {
        config::UpstreamUrl {
            tls,
            host: host.to_owned(),
            port,
        }
    }

    /// A literal address's endpoint goes into the upstream's ctx as a value: it must be the
    /// endpoint the base ctx's folds compute from the same URL (what a request got before),
    /// and a name gets none.
    #[test]
    fn a_literal_urls_endpoint_is_the_one_the_folds_give() {
        let mut rt = crate::testing::Pair::new().client;
        let stack = client::Agent::attach(&mut rt, client::Options::default());
        let tls = tls::ClientConfig::builder(tls::ClientTrust::WebPki)
            .build()
            .unwrap();
        let sni = "upstream.test".to_owned();
        let cases = [
            (url(false, "198.18.0.1", 8080), None),
            (url(false, "fd00:198:18::1", 80), None),
            (url(true, "198.18.0.1", 8443), Some(&sni)),
            (url(true, "fd00:198:18::1", 443), None),
        ];
        for (u, sni) in cases {
            let ours = Upstream::ctx(&stack, Some(&tls), sni, &u);
            // The same ctx without the endpoint values: the folds compute them.
            let mut folded = client::ctx(&stack)
                .add(&client::domain_name(), u.host.clone())
                .add(&client::port(), u.port);
            if u.tls {
                folded = folded.add(&client::tls_config(), tls.clone());
                if let Some(s) = sni {
                    folded = folded.add(&client::server_name(), s.clone());
                }
            }
            if u.tls {
                let given = ours.get(&client::tls_edn()).expect("a value for a literal");
                let want = resolved(&folded, &client::tls_edn()).expect("the folds' endpoint");
                assert_eq!(
                    (&given.domain_name, &given.stack, given.addr, given.port),
                    (&want.domain_name, &want.stack, want.addr, want.port),
                    "{}",
                    u.host
                );
            } else {
                let given = ours.get(&client::tcp_edn()).expect("a value for a literal");
                let want = resolved(&folded, &client::tcp_edn()).expect("the folds' endpoint");
                assert_eq!(given, want, "{}", u.host);
                // Still no TLS endpoint for an http URL.
                assert!(resolved(&ours, &client::tls_edn()).is_none());
            }
        }
        // A name is left to the resolver's fold, request by request.
        let named = Upstream::ctx(&stack, None, None, &url(false, "upstream.test", 80));
        assert!(named.get(&client::tcp_edn()).is_none());
    }
}

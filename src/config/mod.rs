//! The appliance configuration: a TOML file (or the embedded default) declaring the interface,
//! the listeners with their routes, and the upstreams.
//!
//! Contract: [`parse`] / [`load`] either return a fully validated [`Config`] or every problem
//! found, each naming the key (`listener[0].route[2].upstream`) and the line. Unknown keys are
//! errors. Nothing is opened, bound or started here; files that must exist (certificates, keys,
//! document roots, CA bundles) are checked, and certificates are parsed, so that a bad config
//! never half-starts. Relative paths are relative to the config file's directory.

mod acme;
pub mod allow;
mod raw;
pub mod units;
mod validate;

#[cfg(test)]
use validate::parse_upstream_url;
use validate::Validator;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The embedded default configuration (also shipped as `config/default.toml`).
pub const DEFAULT: &str = include_str!("../../config/default.toml");

/// Which TCP/IP stack the appliance uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// paf's userspace stack on a TAP device.
    Userspace,
    /// The host kernel's sockets.
    Kernel,
}

/// `[interface]`: where and how the appliance attaches.
#[derive(Clone, Debug)]
pub struct Interface {
    /// TAP device name (userspace stack).
    pub tap: String,
    /// Which stack.
    pub stack: StackKind,
    /// Address the kernel stack binds.
    pub bind: IpAddr,
    /// MTU to set on the TAP, if any.
    pub mtu: Option<usize>,
    /// pcap file to capture every frame to.
    pub pcap: Option<PathBuf>,
    /// The userspace stack's configuration (addresses, DHCP, DNS, TCP buffers).
    pub net: net::Config,
    /// Worker threads, each with its own loop and stack (on its own queue of the TAP, or, with
    /// the kernel stack, its own `SO_REUSEPORT` listening sockets); `None` for the default,
    /// [`Interface::default_workers`].
    pub workers: Option<usize>,
    /// Pin worker `k` to the `k`-th core the process may use.
    pub pin: bool,
}

/// Most workers (a multi-queue TAP's queue limit).
pub const MAX_WORKERS: usize = net::device::tap::MAX_QUEUES;

impl Interface {
    /// The workers to run as far as the interface decides: `workers` when set, else one with
    /// a pcap capture (one file of one stack), else one per core the process may use (DHCP
    /// included: worker 0 takes the lease for all).
    pub fn default_workers(&self) -> usize {
        match self.workers {
            Some(n) => n,
            None if self.pcap.is_some() => 1,
            None => available_cores(),
        }
    }
}

/// The cores this process may run on (its affinity mask, as `std` reads it), at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Limits and timeouts of a listener: `[defaults]` overridden by `[listener.limits]`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Listening sockets kept ready.
    pub backlog: usize,
    /// The HTTP codec configuration (sizes and timeouts).
    pub http: crate::http::Config,
    /// TLS handshake timeout (https listeners).
    pub handshake_timeout: Duration,
}

/// How a listener speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain text: HTTP/1.1, and h2c with prior knowledge unless `h2c = false`.
    Http,
    /// TLS: HTTP/2 or HTTP/1.1, as ALPN settles (see [`Listener::protocols`]).
    Https {
        /// Default certificate: (chain, private key), PEM (the key PKCS#8, PKCS#1 or SEC1).
        /// `None` only with `acme`, whose listener serves a self-signed certificate until
        /// the first one is issued.
        certificate: Option<(PathBuf, PathBuf)>,
        /// Extra certificates chosen by SNI: (name, chain, key).
        sni: Vec<(String, PathBuf, PathBuf)>,
        /// Certificates ordered by ACME for some names (they win over `certificate` and `sni`
        /// for those names once issued).
        acme: Option<Acme>,
    },
}

/// How the ACME server checks that paf answers for a name (RFC 8555 §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `http-01`: a file under `/.well-known/acme-challenge/` on the port-80 listener.
    Http01,
    /// `tls-alpn-01` (RFC 8737): a special certificate on the https listener, port 443, for
    /// clients that offer only the `acme-tls/1` protocol.
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The challenge type's name in ACME (`http-01`, `tls-alpn-01`).
    pub fn name(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// A listener's `acme = { … }` block: one certificate for `domains`, ordered, renewed and
/// kept in `state_dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acme {
    /// The directory URL of the ACME server (`https://…/directory`).
    pub directory: String,
    /// Contact URLs of the account (`mailto:…`).
    pub contact: Vec<String>,
    /// The names of the certificate (lower case, no wildcard), the first one its subject.
    pub domains: Vec<String>,
    /// Which challenge paf answers.
    pub challenge: AcmeChallenge,
    /// CA bundle that verifies the directory's TLS certificate (`None`: the webpki roots).
    pub ca: Option<PathBuf>,
    /// Where the account key and the certificates are kept (created when missing).
    pub state_dir: PathBuf,
}

/// How a route matches the request's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this host (lower case, no port).
    Exact(String),
    /// Any host ending in this suffix, which starts with a dot (`*.example.com` → `.example.com`).
    Suffix(String),
}

/// How a route matches the request's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Exactly this path.
    Exact(String),
    /// This path or anything below it.
    Prefix(String),
}

/// What a route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A fixed response.
    Static {
        /// Status code.
        status: ::http::StatusCode,
        /// `Content-Type`.
        content_type: String,
        /// The body.
        body: Arc<[u8]>,
    },
    /// Files under a directory.
    Files {
        /// The document root (must exist).
        root: PathBuf,
        /// File served for a directory.
        index: String,
    },
    /// Forward to a named upstream.
    Proxy {
        /// Index into [`Config::upstreams`].
        upstream: usize,
        /// Forward `Upgrade` requests (WebSocket...) and, on `101`, tunnel both connections
        /// (`upgrade`, default `true`); `false` strips `Upgrade` as any hop-by-hop field.
        upgrade: bool,
        /// A tunnel with no byte either way for this long is closed (`tunnel_idle_timeout`,
        /// default 60 s).
        tunnel_idle_timeout: Duration,
    },
    /// Redirect; `{host}` and `{path}` (with query) are substituted in `to`.
    Redirect {
        /// Target template, e.g. `https://{host}{path}`.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: ::http::StatusCode,
    },
    /// CONNECT tunnels (RFC 9110 §9.3.6) to the targets `allow` names; such a route takes
    /// CONNECT requests only, and CONNECT requests go to such routes only.
    Connect {
        /// Which targets may be reached (`allow`, required, not empty).
        allow: allow::Allow,
        /// Longest wait for the TCP connection to the target (`connect_timeout`, default
        /// 5 s, as upstreams').
        connect_timeout: Duration,
        /// A tunnel with no byte either way for this long is closed (`tunnel_idle_timeout`,
        /// default 60 s).
        tunnel_idle_timeout: Duration,
    },
    /// 200 while serving.
    Health,
    /// Prometheus text metrics.
    Metrics,
}

/// One route of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Host condition, if any.
    pub host: Option<HostMatch>,
    /// Path condition.
    pub path: PathMatch,
    /// What to do.
    pub action: Action,
    /// Response compression (`static` and `files` routes, on by default; `proxy` routes, off
    /// by default).
    pub compress: Compress,
}

/// A content coding paf can compress responses with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Brotli (RFC 7932), `br`.
    Br,
    /// gzip (RFC 1952), `gzip`.
    Gzip,
}

impl Encoding {
    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file name suffix of a pre-compressed sibling (`file.br`, `file.gz`).
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gz",
        }
    }
}

/// A route's compression settings (`compress`, `compress_min_size`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compress {
    /// Codings offered, most preferred first; empty: off.
    pub encodings: Vec<Encoding>,
    /// Bodies shorter than this are sent as they are.
    pub min_size: u64,
}

impl Compress {
    /// The default for `static` and `files` routes: brotli then gzip, from 256 bytes.
    pub fn on() -> Compress {
        Compress {
            encodings: vec![Encoding::Br, Encoding::Gzip],
            min_size: 256,
        }
    }

    /// No compression (the default of `proxy` routes, and the other routes').
    pub fn off() -> Compress {
        Compress {
            encodings: Vec::new(),
            min_size: 256,
        }
    }
}

impl Route {
    /// Whether this route takes a request for `host` (without port, any case) and `path`.
    /// A `connect` route takes none: see [`Route::matches_connect`].
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        !matches!(self.action, Action::Connect { .. })
            && self.host_matches(host)
            && match &self.path {
                PathMatch::Exact(p) => path == p,
                PathMatch::Prefix(p) => {
                    path.starts_with(p.as_str())
                        && (p.ends_with('/')
                            || path.len() == p.len()
                            || path.as_bytes()[p.len()] == b'/')
                }
            }
    }

    /// Whether this route takes a CONNECT request to `host` (the target's host, without port,
    /// any case; an IPv6 address in brackets): a `connect` route whose `host` filter, if any,
    /// matches it.
    pub fn matches_connect(&self, host: &str) -> bool {
        matches!(self.action, Action::Connect { .. }) && self.host_matches(Some(host))
    }

    fn host_matches(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(HostMatch::Exact(h)), Some(x)) => h.eq_ignore_ascii_case(x),
            (Some(HostMatch::Suffix(s)), Some(x)) => {
                x.len() > s.len()
                    && x.is_char_boundary(x.len() - s.len())
                    && x[x.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// Where a listener's access log goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccessLogTarget {
    /// The process's stderr (`path = "stderr"` or `"-"`).
    Stderr,
    /// A file, appended to (reopened on `SIGUSR1` by `paf run`).
    File(PathBuf),
}

/// A listener's `access_log = { path = "…", format = "…" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// Where the lines go.
    pub target: AccessLogTarget,
    /// How they are written.
    pub format: crate::service::access_log::Format,
}

impl Default for AccessLog {
    /// What a listener logs when neither it nor `[defaults]` says: `combined` lines on stderr.
    fn default() -> Self {
        AccessLog {
            target: AccessLogTarget::Stderr,
            format: crate::service::access_log::Format::Combined,
        }
    }
}

/// `[[listener]]`.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Name used in logs and metrics.
    pub name: String,
    /// TCP port.
    pub port: u16,
    /// HTTP or HTTPS.
    pub protocol: Protocol,
    /// Application protocols an https listener offers by ALPN, most preferred first: `h2`,
    /// `http/1.1` or both (default both, `h2` first). Unused by http listeners, whose h2c
    /// switch is [`crate::http::Config::h2c`] in `limits.http`.
    pub protocols: Vec<String>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// The access log; `None` for `access_log = false`.
    pub access_log: Option<AccessLog>,
    /// Routes, tried in order.
    pub routes: Vec<Route>,
}

impl Listener {
    /// The first route that matches a request other than CONNECT, if any.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(host, path))
    }
}

/// One URL of an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// https?
    pub tls: bool,
    /// Host name or address literal.
    pub host: String,
    /// Port (default 80/443).
    pub port: u16,
}

/// `[[upstream]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Name routes refer to.
    pub name: String,
    /// URLs, balanced round-robin.
    pub urls: Vec<UpstreamUrl>,
    /// CA bundle to verify https upstreams (`None`: the webpki roots).
    pub ca: Option<PathBuf>,
    /// SNI / certificate name override.
    pub sni: Option<String>,
    /// Connect (and TLS handshake) timeout.
    pub connect_timeout: Duration,
    /// Time allowed for the response head after the request was sent.
    pub response_timeout: Duration,
    /// Idle connections kept per URL.
    pub pool_size: usize,
    /// How long a failing URL is skipped.
    pub retry_after: Duration,
    /// Send the client's `Host` upstream (`true`), or the upstream URL's host and port.
    pub preserve_host: bool,
    /// Application protocols offered to https URLs by ALPN, most preferred first: `h2`,
    /// `http/1.1` (default `["http/1.1"]`). For http URLs, exactly `["h2"]` means HTTP/2 with
    /// prior knowledge (h2c); anything else, HTTP/1.1.
    pub protocols: Vec<String>,
    /// `send_proxy_protocol = "v1" | "v2"`: a PROXY protocol header first on every connection
    /// to this upstream (before TLS), naming the client and the address it reached on paf.
    /// `None` (the default): no header. Connections are then pooled per client connection.
    pub send_proxy_protocol: Option<crate::http::proxy_protocol::Version>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[interface]`.
    pub interface: Interface,
    /// `[[listener]]`s.
    pub listeners: Vec<Listener>,
    /// `[[upstream]]`s.
    pub upstreams: Vec<Upstream>,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The key, e.g. `listener[0].route[1].upstream`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a config file, with the file's name for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors {
    /// Where the config came from (a path, or `<default>`).
    pub origin: String,
    /// The problems, in file order.
    pub errors: Vec<Error>,
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.line {
                Some(l) => write!(f, "{}:{l}: {}: {}", self.origin, e.key, e.message)?,
                None => write!(f, "{}: {}: {}", self.origin, e.key, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Read and validate a config file.
///
/// # Errors
/// The file cannot be read, or every problem found in it.
pub fn load(path: &Path) -> Result<Config, Errors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Errors {
        origin: origin.clone(),
        errors: vec![Error {
            key: "(file)".into(),
            line: None,
            message: format!("cannot read: {e}"),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &origin, base)
}

/// The embedded default configuration, validated.
///
/// # Panics
/// Never for the shipped default (a test checks it).
pub fn default_config() -> Config {
    parse(DEFAULT, "<default>", Path::new(".")).expect("the embedded default config is valid")
}

/// Validate config text. `base` resolves relative paths.
///
/// # Errors
/// Every problem found.
pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, Errors> {
    let mut v = Validator {
        text,
        base,
        errors: Vec::new(),
    };
    let file: raw::File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let line = e.span().map(|s| v.line(s.start));
            let message = e.message().to_string();
            let key = key_of_toml_error(&message, text, e.span());
            return Err(Errors {
                origin: origin.to_string(),
                errors: vec![Error { key, line, message }],
            });
        }
    };
    let config = v.file(file);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(Errors {
            origin: origin.to_string(),
            errors: v.errors,
        })
    }
}

fn key_of_toml_error(message: &str, text: &str, span: Option<std::ops::Range<usize>>) -> String {
    // toml names unknown keys as "unknown field `x`": surface that name as the key.
    if let Some(name) = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field"))
    {
        return name.to_string();
    }
    // A value that does not parse (a duration, a size, a type): the key left of its `=`.
    let before = span.and_then(|s| text.get(..s.start)).unwrap_or("");
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    match line.split_once('=') {
        Some((k, _))
            if !k.trim().is_empty()
                && k.trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.\"".contains(&b)) =>
        {
            k.trim().to_string()
        }
        _ => "(syntax)".to_string(),
    }
}

#[cfg(test)]
mod tests;

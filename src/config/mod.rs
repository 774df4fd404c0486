//! The appliance configuration: a TOML file (or the embedded default) declaring the interface,
//! the listeners with their routes, and the upstreams.
//!
//! Contract: [`parse`] / [`load`] either return a fully validated [`Config`] or every problem
//! found, each naming the key (`listener[0].route[2].upstream`) and the line. Unknown keys are
//! errors. Nothing is opened, bound or started here; files that must exist (certificates, keys,
//! document roots, CA bundles) are checked, and certificates are parsed, so that a bad config
//! never half-starts. Relative paths are relative to the config file's directory.

mod raw;
pub mod units;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

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
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS.
    Https {
        /// Default certificate chain (PEM).
        certificate: PathBuf,
        /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
        /// Extra certificates chosen by SNI: (name, chain, key).
        sni: Vec<(String, PathBuf, PathBuf)>,
    },
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
    },
    /// Redirect; `{host}` and `{path}` (with query) are substituted in `to`.
    Redirect {
        /// Target template, e.g. `https://{host}{path}`.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: ::http::StatusCode,
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
}

impl Route {
    /// Whether this route takes a request for `host` (without port, any case) and `path`.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(HostMatch::Exact(h)), Some(x)) => h.eq_ignore_ascii_case(x),
            (Some(HostMatch::Suffix(s)), Some(x)) => {
                x.len() > s.len() && x[x.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        };
        host_ok
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
    /// Limits and timeouts.
    pub limits: Limits,
    /// Routes, tried in order.
    pub routes: Vec<Route>,
}

impl Listener {
    /// The first route that matches, if any.
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
#[derive(Clone, Debug)]
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

struct Validator<'a> {
    text: &'a str,
    base: &'a Path,
    errors: Vec<Error>,
}

impl Validator<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(
        &mut self,
        key: impl Into<String>,
        span: Option<std::ops::Range<usize>>,
        msg: impl Into<String>,
    ) {
        let line = span.filter(|s| s.end > 0).map(|s| self.line(s.start));
        self.errors.push(Error {
            key: key.into(),
            line,
            message: msg.into(),
        });
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn existing_file(&mut self, key: &str, span: &std::ops::Range<usize>, p: &Path) -> PathBuf {
        let full = self.path(p);
        if !full.is_file() {
            self.err(
                key,
                Some(span.clone()),
                format!("{} is not a readable file", full.display()),
            );
        }
        full
    }

    fn file(&mut self, f: raw::File) -> Config {
        let interface = self.interface(f.interface);
        let defaults = f.defaults.map(|d| d.into_inner()).unwrap_or_default();
        let upstreams: Vec<Upstream> = f
            .upstreams
            .into_iter()
            .enumerate()
            .map(|(i, u)| self.upstream(i, u))
            .collect();
        for (i, u) in upstreams.iter().enumerate() {
            if upstreams[..i].iter().any(|o| o.name == u.name) {
                self.err(
                    format!("upstream[{i}].name"),
                    None,
                    format!("duplicate upstream name {:?}", u.name),
                );
            }
        }
        let names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
        let mut listeners = Vec::new();
        for (i, l) in f.listeners.into_iter().enumerate() {
            let span = l.span();
            let port = *l.get_ref().port.get_ref();
            if let Some(prev) = listeners.iter().position(|x: &Listener| x.port == port) {
                self.err(
                    format!("listener[{i}].port"),
                    Some(span.clone()),
                    format!("port {port} is already used by listener[{prev}]"),
                );
            }
            if listeners
                .iter()
                .any(|x: &Listener| x.name == l.get_ref().name)
            {
                self.err(
                    format!("listener[{i}].name"),
                    Some(span.clone()),
                    format!("duplicate listener name {:?}", l.get_ref().name),
                );
            }
            listeners.push(self.listener(i, l, &defaults, &names));
        }
        Config {
            interface,
            listeners,
            upstreams,
        }
    }

    fn interface(&mut self, i: Option<Spanned<raw::Interface>>) -> Interface {
        let i = i.map(|s| s.into_inner()).unwrap_or_default();
        let mut net = net::Config::default();
        let stack = match i.stack.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("userspace", _)) => StackKind::Userspace,
            Some(("kernel", _)) => StackKind::Kernel,
            Some((other, span)) => {
                self.err(
                    "interface.stack",
                    Some(span),
                    format!("{other:?} is not \"userspace\" or \"kernel\""),
                );
                StackKind::Userspace
            }
        };
        if let Some(mac) = &i.mac {
            match parse_mac(mac.get_ref()) {
                Some(m) => net.mac = m,
                None => self.err(
                    "interface.mac",
                    Some(mac.span()),
                    "expected six hex bytes like 02:00:c6:12:00:02",
                ),
            }
        }
        if let Some(m) = &i.mtu {
            if !(576..=net::device::MAX_MTU).contains(m.get_ref()) {
                self.err(
                    "interface.mtu",
                    Some(m.span()),
                    format!("must be 576..={}", net::device::MAX_MTU),
                );
            }
        }
        if i.dhcp {
            if let Some(v4) = &i.ipv4 {
                self.err(
                    "interface.ipv4",
                    Some(v4.span()),
                    "set either ipv4 or dhcp = true, not both",
                );
            }
            net.ipv4 = net::Ipv4Setting::Dhcp;
        } else if let Some(v4) = &i.ipv4 {
            match parse_cidr::<Ipv4Addr>(v4.get_ref(), 32) {
                Ok((addr, prefix)) => {
                    let gateway = match i.gateway4 {
                        Some(IpAddr::V4(g)) => Some(g),
                        Some(IpAddr::V6(_)) => {
                            self.err("interface.gateway4", None, "must be an IPv4 address");
                            None
                        }
                        None => None,
                    };
                    net.ipv4 = net::Ipv4Setting::Static {
                        addr,
                        prefix,
                        gateway,
                    };
                }
                Err(e) => self.err("interface.ipv4", Some(v4.span()), e),
            }
        }
        if let Some(v6) = &i.ipv6 {
            match parse_cidr::<Ipv6Addr>(v6.get_ref(), 128) {
                Ok((addr, prefix)) => {
                    let gateway = match i.gateway6 {
                        Some(IpAddr::V6(g)) => Some(g),
                        Some(IpAddr::V4(_)) => {
                            self.err("interface.gateway6", None, "must be an IPv6 address");
                            None
                        }
                        None => None,
                    };
                    net.ipv6 = net::Ipv6Setting::Static {
                        addr,
                        prefix,
                        gateway,
                    };
                }
                Err(e) => self.err("interface.ipv6", Some(v6.span()), e),
            }
        }
        net.dns_servers = i.dns.clone();
        if let Some(b) = &i.tcp_buffer {
            let n = b.get_ref().0;
            if !(1024..=(1 << 30)).contains(&n) {
                self.err(
                    "interface.tcp_buffer",
                    Some(b.span()),
                    "must be 1KiB..=1GiB",
                );
            } else {
                net.tcp.rx_buffer = n as usize;
                net.tcp.tx_buffer = n as usize;
            }
        }
        if let Err(e) = net.validate() {
            self.err(format!("interface.{}", e.field), None, e.reason);
        }
        Interface {
            tap: i.tap.unwrap_or_else(|| "paf0".into()),
            stack,
            bind: i.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            mtu: i.mtu.map(|m| m.into_inner()),
            pcap: i.pcap.map(|p| self.path(&p)),
            net,
        }
    }

    fn limits(&mut self, key: &str, defaults: &raw::Limits, over: &raw::Limits) -> Limits {
        let mut http = crate::http::Config::default();
        if let Some(n) = pick(&over.backlog, &defaults.backlog) {
            if n == 0 || n > 65535 {
                self.err(format!("{key}.backlog"), None, "must be 1..=65535");
            }
        }
        if let Some(s) = pick(&over.max_head_size, &defaults.max_head_size) {
            http.max_head_size = s.0 as usize;
            http.max_request_line = http.max_request_line.min(http.max_head_size);
        }
        if let Some(n) = pick(&over.max_headers, &defaults.max_headers) {
            http.max_headers = n;
        }
        if let Some(s) = pick(&over.max_body_size, &defaults.max_body_size) {
            http.max_body_size = Some(s.0);
        }
        if let Some(s) = pick(&over.body_buffer_size, &defaults.body_buffer_size) {
            if s.0 < 1024 {
                self.err(
                    format!("{key}.body_buffer_size"),
                    None,
                    "must be at least 1KiB",
                );
            }
            http.body_buffer_size = s.0 as usize;
        }
        let timeouts = [
            (
                &over.head_timeout,
                &defaults.head_timeout,
                &mut http.head_timeout,
            ),
            (
                &over.idle_timeout,
                &defaults.idle_timeout,
                &mut http.idle_timeout,
            ),
            (
                &over.body_timeout,
                &defaults.body_timeout,
                &mut http.body_timeout,
            ),
            (
                &over.write_timeout,
                &defaults.write_timeout,
                &mut http.write_timeout,
            ),
            (
                &over.drain_timeout,
                &defaults.drain_timeout,
                &mut http.drain_timeout,
            ),
        ];
        for (o, d, slot) in timeouts {
            if let Some(t) = o.or(*d) {
                *slot = t.0;
            }
        }
        Limits {
            backlog: pick(&over.backlog, &defaults.backlog).unwrap_or(256),
            http,
            handshake_timeout: pick(&over.handshake_timeout, &defaults.handshake_timeout)
                .map_or(Duration::from_secs(10), |d| d.0),
        }
    }

    fn listener(
        &mut self,
        i: usize,
        l: Spanned<raw::Listener>,
        defaults: &raw::Limits,
        upstreams: &[String],
    ) -> Listener {
        let span = l.span();
        let l = l.into_inner();
        let key = format!("listener[{i}]");
        let port = *l.port.get_ref();
        if port == 0 {
            self.err(
                format!("{key}.port"),
                Some(l.port.span()),
                "must be 1..=65535",
            );
        }
        let protocol = match l.protocol.get_ref().as_str() {
            "http" => {
                if l.certificate.is_some() || l.key.is_some() || !l.sni.is_empty() {
                    self.err(
                        format!("{key}.certificate"),
                        Some(span.clone()),
                        "certificates need protocol = \"https\"",
                    );
                }
                Protocol::Http
            }
            "https" => self.https(&key, &span, &l),
            other => {
                self.err(
                    format!("{key}.protocol"),
                    Some(l.protocol.span()),
                    format!("{other:?} is not \"http\" or \"https\""),
                );
                Protocol::Http
            }
        };
        let limits = self.limits(&format!("{key}.limits"), defaults, &l.limits);
        let routes = l
            .routes
            .into_iter()
            .enumerate()
            .filter_map(|(j, r)| self.route(&format!("{key}.route[{j}]"), r, upstreams))
            .collect();
        Listener {
            name: l.name,
            port,
            protocol,
            limits,
            routes,
        }
    }

    fn https(&mut self, key: &str, span: &std::ops::Range<usize>, l: &raw::Listener) -> Protocol {
        let (Some(cert), Some(k)) = (&l.certificate, &l.key) else {
            self.err(
                format!("{key}.certificate"),
                Some(span.clone()),
                "https needs certificate and key",
            );
            return Protocol::Http;
        };
        let certificate = self.existing_file(&format!("{key}.certificate"), span, cert);
        let keyf = self.existing_file(&format!("{key}.key"), span, k);
        let mut sni = Vec::new();
        for (j, s) in l.sni.iter().enumerate() {
            let sk = format!("{key}.sni[{j}]");
            let c = self.existing_file(
                &format!("{sk}.certificate"),
                &s.span(),
                &s.get_ref().certificate,
            );
            let kk = self.existing_file(&format!("{sk}.key"), &s.span(), &s.get_ref().key);
            sni.push((s.get_ref().name.clone(), c, kk));
        }
        if self.errors.is_empty() {
            if let Err(e) = crate::tls::ServerConfig::from_pem_files((&certificate, &keyf), &sni) {
                self.err(
                    format!("{key}.certificate"),
                    Some(span.clone()),
                    e.to_string(),
                );
            }
        }
        Protocol::Https {
            certificate,
            key: keyf,
            sni,
        }
    }

    fn route(&mut self, key: &str, r: Spanned<raw::Route>, upstreams: &[String]) -> Option<Route> {
        let span = r.span();
        let r = r.into_inner();
        let host = match r.host.as_deref() {
            None => None,
            Some(h) if h.starts_with("*.") && h.len() > 2 => {
                Some(HostMatch::Suffix(h[1..].to_ascii_lowercase()))
            }
            Some(h) if !h.is_empty() && !h.contains(['*', '/', ' ']) => {
                Some(HostMatch::Exact(h.to_ascii_lowercase()))
            }
            Some(h) => {
                self.err(
                    format!("{key}.host"),
                    Some(span.clone()),
                    format!("{h:?} is not a host name or *.suffix"),
                );
                None
            }
        };
        let p = r.path.clone().unwrap_or_else(|| "/".into());
        if !p.starts_with('/') {
            self.err(
                format!("{key}.path"),
                Some(span.clone()),
                "must start with /",
            );
        }
        let path = if r.exact {
            PathMatch::Exact(p)
        } else {
            PathMatch::Prefix(p)
        };
        let action_name = r.action.get_ref().clone();
        // Keys that belong to other actions are mistakes worth naming.
        let given: [(&str, bool); 7] = [
            ("status", r.status.is_some()),
            ("content_type", r.content_type.is_some()),
            ("body", r.body.is_some()),
            ("root", r.root.is_some()),
            ("index", r.index.is_some()),
            ("upstream", r.upstream.is_some()),
            ("to", r.to.is_some()),
        ];
        let allowed: &[&str] = match action_name.as_str() {
            "static" => &["status", "content_type", "body"],
            "files" => &["root", "index"],
            "proxy" => &["upstream"],
            "redirect" => &["to", "status"],
            "health" | "metrics" => &[],
            other => {
                self.err(
                    format!("{key}.action"),
                    Some(r.action.span()),
                    format!(
                        "{other:?} is not one of static, files, proxy, redirect, health, metrics"
                    ),
                );
                return None;
            }
        };
        for (k, set) in given {
            if set && !allowed.contains(&k) {
                self.err(
                    format!("{key}.{k}"),
                    Some(span.clone()),
                    format!("not used by action {action_name:?}"),
                );
            }
        }
        let action = match action_name.as_str() {
            "static" => Action::Static {
                status: self.status(key, &span, r.status.unwrap_or(200), false)?,
                content_type: r
                    .content_type
                    .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
                body: Arc::from(r.body.unwrap_or_default().into_bytes()),
            },
            "files" => {
                let Some(root) = r.root else {
                    self.err(format!("{key}.root"), Some(span), "files needs root");
                    return None;
                };
                let root = self.path(&root);
                if !root.is_dir() {
                    self.err(
                        format!("{key}.root"),
                        Some(span.clone()),
                        format!("{} is not a directory", root.display()),
                    );
                }
                let index = r.index.unwrap_or_else(|| "index.html".into());
                if index.contains('/') || index == ".." {
                    self.err(
                        format!("{key}.index"),
                        Some(span),
                        "must be a plain file name",
                    );
                }
                Action::Files { root, index }
            }
            "proxy" => {
                let Some(name) = r.upstream else {
                    self.err(
                        format!("{key}.upstream"),
                        Some(span),
                        "proxy needs upstream",
                    );
                    return None;
                };
                match upstreams.iter().position(|u| *u == name) {
                    Some(upstream) => Action::Proxy { upstream },
                    None => {
                        self.err(
                            format!("{key}.upstream"),
                            Some(span),
                            format!("no [[upstream]] named {name:?}"),
                        );
                        return None;
                    }
                }
            }
            "redirect" => {
                let Some(to) = r.to else {
                    self.err(format!("{key}.to"), Some(span), "redirect needs to");
                    return None;
                };
                Action::Redirect {
                    to,
                    status: self.status(key, &span, r.status.unwrap_or(301), true)?,
                }
            }
            "health" => Action::Health,
            _ => Action::Metrics,
        };
        Some(Route { host, path, action })
    }

    fn status(
        &mut self,
        key: &str,
        span: &std::ops::Range<usize>,
        code: u16,
        redirect: bool,
    ) -> Option<::http::StatusCode> {
        let ok = if redirect {
            matches!(code, 301 | 302 | 303 | 307 | 308)
        } else {
            (200..=599).contains(&code)
        };
        match ::http::StatusCode::from_u16(code) {
            Ok(s) if ok => Some(s),
            _ => {
                let want = if redirect {
                    "301, 302, 303, 307 or 308"
                } else {
                    "200..=599"
                };
                self.err(
                    format!("{key}.status"),
                    Some(span.clone()),
                    format!("{code} is not {want}"),
                );
                None
            }
        }
    }

    fn upstream(&mut self, i: usize, u: Spanned<raw::Upstream>) -> Upstream {
        let key = format!("upstream[{i}]");
        let span = u.span();
        let u = u.into_inner();
        if u.urls.is_empty() {
            self.err(
                format!("{key}.urls"),
                Some(span.clone()),
                "needs at least one URL",
            );
        }
        let mut urls = Vec::new();
        for (j, s) in u.urls.iter().enumerate() {
            match parse_upstream_url(s.get_ref()) {
                Ok(url) => urls.push(url),
                Err(e) => self.err(format!("{key}.urls[{j}]"), Some(s.span()), e),
            }
        }
        let ca =
            u.ca.as_ref()
                .map(|p| self.existing_file(&format!("{key}.ca"), &span, p));
        if let Some(n) = u.pool_size {
            if n > 10_000 {
                self.err(
                    format!("{key}.pool_size"),
                    Some(span.clone()),
                    "must be at most 10000",
                );
            }
        }
        Upstream {
            name: u.name,
            urls,
            ca,
            sni: u.sni,
            connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
            response_timeout: u.response_timeout.map_or(Duration::from_secs(60), |d| d.0),
            pool_size: u.pool_size.unwrap_or(32),
            retry_after: u.retry_after.map_or(Duration::from_secs(10), |d| d.0),
            preserve_host: u.preserve_host.unwrap_or(true),
        }
    }
}

/// A listener's own value, else the `[defaults]` one.
fn pick<T: Copy>(own: &Option<T>, default: &Option<T>) -> Option<T> {
    own.or(*default)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_cidr<A: std::str::FromStr>(s: &str, max: u8) -> Result<(A, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX"))?;
    let a = a.parse().map_err(|_| format!("{s:?}: bad address"))?;
    let p: u8 = p.parse().map_err(|_| format!("{s:?}: bad prefix"))?;
    if p > max {
        return Err(format!("{s:?}: prefix must be at most {max}"));
    }
    Ok((a, p))
}

fn parse_upstream_url(s: &str) -> Result<UpstreamUrl, String> {
    let uri: ::http::Uri = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{s:?}: scheme must be http or https")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("{s:?}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("{s:?}: an upstream URL has no path"));
    }
    Ok(UpstreamUrl {
        tls,
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        host,
    })
}

#[cfg(test)]
mod tests;

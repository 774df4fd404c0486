//! Validation of a parsed config file into a [`Config`]: every problem is collected with its
//! key and line; files that must exist are checked and certificates parsed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::allow::{Allow, AllowEntry};
use super::raw;
use super::*;
use crate::service::access_log::Format;

mod routes;
mod upstreams;

/// The application protocols a listener may offer, in the default order.
const PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

/// The longest `abuse_delay` a listener may set.
const MAX_ABUSE_DELAY: Duration = Duration::from_secs(60);

/// Highest `max_concurrent_streams` accepted (each open stream may hold a window of body).
const MAX_STREAMS: u32 = 10_000;

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) base: &'a Path,
    pub(super) errors: Vec<Error>,
}

impl Validator<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(super) fn err(
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

    pub(super) fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn existing_file(
        &mut self,
        key: &str,
        span: &std::ops::Range<usize>,
        p: &Path,
    ) -> PathBuf {
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

    pub(super) fn file(&mut self, f: raw::File) -> Config {
        let interface = self.interface(f.interface);
        let defaults = f.defaults.map(|d| d.into_inner()).unwrap_or_default();
        let default_log = match &defaults.access_log {
            Some(v) => self.access_log("defaults.access_log", v),
            None => Some(AccessLog::default()),
        };
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
        let mut spans = Vec::new();
        for (i, l) in f.listeners.into_iter().enumerate() {
            let span = l.span();
            spans.push(span.clone());
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
            listeners.push(self.listener(i, l, &defaults, &default_log, &names));
        }
        self.acme_listeners(&listeners, &spans);
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
        if let Some(rto) = &i.tcp_min_rto {
            let d = rto.get_ref().0;
            if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&d) {
                self.err(
                    "interface.tcp_min_rto",
                    Some(rto.span()),
                    "must be 10ms..=60s",
                );
            } else {
                net.tcp.min_rto = d;
            }
        }
        if let Err(e) = net.validate() {
            self.err(format!("interface.{}", e.field), None, e.reason);
        }
        if let Some(w) = &i.workers {
            let n = *w.get_ref();
            if !(1..=super::MAX_WORKERS).contains(&n) {
                self.err(
                    "interface.workers",
                    Some(w.span()),
                    format!("must be 1..={}", super::MAX_WORKERS),
                );
            } else if n > 1 && i.pcap.is_some() {
                self.err(
                    "interface.workers",
                    Some(w.span()),
                    "pcap needs workers = 1 (one capture of the one stack)",
                );
            }
        }
        Interface {
            tap: i.tap.unwrap_or_else(|| "paf0".into()),
            stack,
            bind: i.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            mtu: i.mtu.map(|m| m.into_inner()),
            pcap: i.pcap.map(|p| self.path(&p)),
            net,
            workers: i.workers.map(Spanned::into_inner),
            pin: i.pin,
        }
    }

    fn limits(&mut self, key: &str, defaults: &raw::Limits, over: &raw::Limits) -> Limits {
        let mut http = crate::http::Config::default();
        if let Some(v) = &over.access_log {
            self.err(
                format!("{key}.access_log"),
                Some(v.span()),
                "belongs to the listener itself (or [defaults]), not to its limits",
            );
        }
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
        if let Some(n) = pick(
            &over.max_concurrent_streams,
            &defaults.max_concurrent_streams,
        ) {
            if n == 0 || n > MAX_STREAMS {
                self.err(
                    format!("{key}.max_concurrent_streams"),
                    None,
                    format!("must be 1..={MAX_STREAMS}"),
                );
            }
            http.max_concurrent_streams = n;
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
        if let Some(n) = pick(
            &over.max_connections_per_ip,
            &defaults.max_connections_per_ip,
        ) {
            if n == 0 {
                self.err(
                    format!("{key}.max_connections_per_ip"),
                    None,
                    "must be at least 1",
                );
            }
            http.per_client.max_connections_per_ip = Some(n);
        }
        let burst = pick(&over.burst, &defaults.burst);
        match over.rate.as_ref().or(defaults.rate.as_ref()) {
            Some(text) => match parse_rate(text) {
                Ok((requests, per)) => {
                    let burst = burst.unwrap_or(requests);
                    if burst == 0 {
                        self.err(format!("{key}.burst"), None, "must be at least 1");
                    }
                    http.per_client.rate = Some(crate::http::Rate {
                        requests,
                        per,
                        burst,
                    });
                }
                Err(e) => self.err(format!("{key}.rate"), None, e),
            },
            None if burst.is_some() => {
                self.err(format!("{key}.burst"), None, "burst needs a rate");
            }
            None => {}
        }
        if let Some(d) = pick(&over.abuse_delay, &defaults.abuse_delay) {
            if d.0 > MAX_ABUSE_DELAY {
                self.err(
                    format!("{key}.abuse_delay"),
                    None,
                    "must be at most 60s (0s: never hold a client back)",
                );
            }
            http.per_client.abuse_delay = d.0;
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
            backlog: pick(&over.backlog, &defaults.backlog)
                .unwrap_or(crate::service::DEFAULT_BACKLOG),
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
        default_log: &Option<AccessLog>,
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
                if let Some(a) = &l.acme {
                    self.err(
                        format!("{key}.acme"),
                        Some(a.span()),
                        "acme needs protocol = \"https\" (http-01 is answered on the port-80 http listener by itself)",
                    );
                }
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
        let mut limits = self.limits(&format!("{key}.limits"), defaults, &l.limits);
        let https = matches!(protocol, Protocol::Https { .. });
        if let (Some(h2c), false) = (&l.h2c, https) {
            limits.http.h2c = *h2c.get_ref();
        } else if let Some(h2c) = &l.h2c {
            self.err(
                format!("{key}.h2c"),
                Some(h2c.span()),
                "applies to http listeners (https ones choose by `protocols`)",
            );
        }
        let on = l.proxy_protocol.as_ref().is_some_and(|p| *p.get_ref());
        match (on, &l.proxy_protocol_trusted) {
            (true, Some(list)) => {
                let mut blocks = Vec::new();
                for s in list.get_ref() {
                    match crate::http::Cidr::parse(s) {
                        Ok(c) => blocks.push(c),
                        Err(e) => self.err(
                            format!("{key}.proxy_protocol_trusted"),
                            Some(list.span()),
                            e,
                        ),
                    }
                }
                if blocks.is_empty() {
                    self.err(
                        format!("{key}.proxy_protocol_trusted"),
                        Some(list.span()),
                        "lists no source: every connection would be refused",
                    );
                }
                limits.http.proxy_protocol = Some(blocks.into());
            }
            (true, None) => self.err(
                format!("{key}.proxy_protocol"),
                l.proxy_protocol.as_ref().map(Spanned::span),
                "needs proxy_protocol_trusted = [\"CIDR\", ...]: the balancers allowed to send it",
            ),
            (false, Some(list)) => self.err(
                format!("{key}.proxy_protocol_trusted"),
                Some(list.span()),
                "only with proxy_protocol = true",
            ),
            (false, None) => {}
        }
        let protocols = self.protocols(&key, https, l.protocols.as_ref());
        let access_log = match &l.access_log {
            Some(v) => self.access_log(&format!("{key}.access_log"), v),
            None => default_log.clone(),
        };
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
            protocols,
            limits,
            access_log,
            routes,
        }
    }

    /// `access_log`: `false`, `true` (the default) or `{ path = "…", format = "…" }`.
    fn access_log(&mut self, key: &str, v: &Spanned<toml::Value>) -> Option<AccessLog> {
        let span = Some(v.span());
        let table = match v.get_ref() {
            toml::Value::Boolean(false) => return None,
            toml::Value::Boolean(true) => return Some(AccessLog::default()),
            toml::Value::Table(t) => t,
            _ => {
                self.err(
                    key,
                    span,
                    "expected false, true or { path = \"…\", format = \"…\" }",
                );
                return None;
            }
        };
        let mut log = AccessLog::default();
        for (k, value) in table {
            match (k.as_str(), value) {
                ("path", toml::Value::String(p)) => match p.as_str() {
                    "stderr" | "-" => log.target = AccessLogTarget::Stderr,
                    "" => self.err(format!("{key}.path"), span.clone(), "must not be empty"),
                    p => {
                        let full = self.path(Path::new(p));
                        let dir = full.parent().filter(|d| !d.as_os_str().is_empty());
                        if full.is_dir() {
                            let msg = format!("{} is a directory", full.display());
                            self.err(format!("{key}.path"), span.clone(), msg);
                        } else if dir.is_some_and(|d| !d.is_dir()) {
                            let msg = format!(
                                "directory {} does not exist",
                                dir.unwrap_or(&full).display()
                            );
                            self.err(format!("{key}.path"), span.clone(), msg);
                        }
                        log.target = AccessLogTarget::File(full);
                    }
                },
                ("format", toml::Value::String(f)) => match Format::from_name(f) {
                    Some(f) => log.format = f,
                    None => self.err(
                        format!("{key}.format"),
                        span.clone(),
                        format!("{f:?} is not \"combined\", \"json\" or \"paf\""),
                    ),
                },
                ("path" | "format", _) => {
                    self.err(format!("{key}.{k}"), span.clone(), "expected a string");
                }
                _ => self.err(
                    format!("{key}.{k}"),
                    span.clone(),
                    "unknown key (access_log takes path and format)",
                ),
            }
        }
        if !table.contains_key("path") {
            self.err(
                format!("{key}.path"),
                span,
                "missing: a file, or \"stderr\"",
            );
        }
        Some(log)
    }

    /// `protocols`: the ALPN list of an https listener.
    fn protocols(
        &mut self,
        key: &str,
        https: bool,
        given: Option<&Spanned<Vec<String>>>,
    ) -> Vec<String> {
        let default = || PROTOCOLS.iter().map(|p| (*p).to_owned()).collect();
        let Some(given) = given else {
            return default();
        };
        let key = format!("{key}.protocols");
        if !https {
            self.err(
                key,
                Some(given.span()),
                "applies to https listeners (ALPN); http listeners take `h2c`",
            );
            return default();
        }
        self.protocol_list(key, given).unwrap_or_else(default)
    }

    fn https(&mut self, key: &str, span: &std::ops::Range<usize>, l: &raw::Listener) -> Protocol {
        let acme = l.acme.as_ref().map(|a| self.acme(key, a));
        let certificate = match (&l.certificate, &l.key) {
            (Some(cert), Some(k)) => Some((
                self.existing_file(&format!("{key}.certificate"), span, cert),
                self.existing_file(&format!("{key}.key"), span, k),
            )),
            (None, None) if acme.is_some() => None,
            _ => {
                self.err(
                    format!("{key}.certificate"),
                    Some(span.clone()),
                    "https needs certificate and key (or an acme block)",
                );
                return Protocol::Http;
            }
        };
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
            if let Some((certificate, keyf)) = &certificate {
                if let Err(e) = crate::tls::ServerConfig::from_pem_files((certificate, keyf), &sni)
                {
                    self.err(
                        format!("{key}.certificate"),
                        Some(span.clone()),
                        e.to_string(),
                    );
                }
            }
        }
        Protocol::Https {
            certificate,
            sni,
            acme,
        }
    }

    /// A `protocols` list: a non-empty list of `h2` and `http/1.1`, each once; `None` (after
    /// saying why) when it is empty.
    fn protocol_list(&mut self, key: String, given: &Spanned<Vec<String>>) -> Option<Vec<String>> {
        let list = given.get_ref();
        if list.is_empty() {
            self.err(
                key,
                Some(given.span()),
                "must name \"h2\", \"http/1.1\" or both",
            );
            return None;
        }
        for (i, p) in list.iter().enumerate() {
            if !PROTOCOLS.contains(&p.as_str()) {
                self.err(
                    key.clone(),
                    Some(given.span()),
                    format!("{p:?} is not \"h2\" or \"http/1.1\""),
                );
            } else if list[..i].contains(p) {
                self.err(
                    key.clone(),
                    Some(given.span()),
                    format!("{p:?} is listed twice"),
                );
            }
        }
        Some(list.clone())
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

pub(super) fn parse_upstream_url(s: &str) -> Result<UpstreamUrl, String> {
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

/// `"100/s"`, `"6000/m"`, `"10/h"`: requests per second, minute or hour (at least 1).
fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let bad = || format!("{text:?} is not a rate like \"100/s\" (per s, m or h)");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("{text:?}: the rate must be at least 1"));
    }
    Ok((n, per))
}

//! The targets a `connect` route may reach (its `allow` list), and CONNECT request targets.
//!
//! An entry is `HOST:PORT`, where `PORT` is a number (1–65535) or `*` (any port) and `HOST` is
//! one of:
//!
//! | `HOST` | matches |
//! |---|---|
//! | `example.com` | that name (any case, a trailing dot ignored) |
//! | `*.example.com` | any name ending in `.example.com` (not `example.com` itself) |
//! | `*` | any target, name or address |
//! | `198.51.100.7`, `[2001:db8::7]` | that address |
//! | `10.0.0.0/8`, `[fd00::/8]` | any address in the block (IPv6 in brackets) |
//!
//! Contract ([`Allow`]): a target written as a name is allowed when a name entry (or `*`)
//! matches it and its port, without looking further: the name is the operator's word. Any
//! other name is allowed only if the address it resolves to is in an address entry for its
//! port ([`Allow::verdict`] says when that lookup is worth making, [`Allow::allows_addr`]
//! decides after it). A target written as an address is checked against the address entries
//! (and `*`). Nothing else is allowed: an empty list allows nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::http::Cidr;

/// What an entry's host part matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowHost {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Names ending in this suffix, which starts with a dot (`*.example.com` → `.example.com`).
    Suffix(String),
    /// Addresses in this block (one address: a full-length prefix).
    Net(Cidr),
    /// Anything (`*`).
    Any,
}

/// One `allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// The host part.
    pub host: AllowHost,
    /// The port; `None` for `*`.
    pub port: Option<u16>,
}

/// The host of a CONNECT target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetHost {
    /// A DNS name, lower case, no trailing dot.
    Name(String),
    /// An address literal.
    Addr(IpAddr),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Name(n) => f.write_str(n),
            TargetHost::Addr(IpAddr::V6(a)) => write!(f, "[{a}]"),
            TargetHost::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// A CONNECT request target (RFC 9110 §9.3.6, authority-form `host:port`), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host.
    pub host: TargetHost,
    /// The port (never 0).
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Target {
    /// Parses `host:port`: a DNS name (letters, digits, `-`, `_`, dots; labels of 1–63
    /// bytes, 253 in all), an IPv4 address, or an IPv6 address in brackets; a port 1–65535.
    ///
    /// # Errors
    /// A message saying what is wrong (answered `400`).
    pub fn parse(s: &str) -> Result<Target, String> {
        let (host, port) = split_port(s)?;
        let port = match port {
            PortSpec::Num(p) => p,
            PortSpec::Any => return Err(format!("{s:?}: the port must be a number")),
        };
        let host = if let Some(v6) = host.strip_prefix('[') {
            let v6 = v6
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?}: unclosed ["))?;
            let a: std::net::Ipv6Addr = v6
                .parse()
                .map_err(|_| format!("{s:?}: not an IPv6 address"))?;
            TargetHost::Addr(IpAddr::V6(a))
        } else if let Ok(a) = host.parse::<std::net::Ipv4Addr>() {
            TargetHost::Addr(IpAddr::V4(a))
        } else {
            TargetHost::Name(dns_name(host).ok_or_else(|| format!("{s:?}: not a host name"))?)
        };
        Ok(Target { host, port })
    }
}

/// What [`Allow::verdict`] says of a target before any DNS lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed as written.
    Allowed,
    /// Refused as written, and no address could change that.
    Refused,
    /// A name that only its address can allow: resolve it, then ask [`Allow::allows_addr`].
    ByAddress,
}

/// A `connect` route's `allow` list; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    /// The entries, in file order.
    pub entries: Vec<AllowEntry>,
}

impl Allow {
    /// Parses every entry.
    ///
    /// # Errors
    /// The first entry that does not parse, with why.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allow, String> {
        let entries = entries
            .iter()
            .map(|e| AllowEntry::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Allow { entries })
    }

    /// Whether `target` is allowed as written, refused, or up to its address.
    pub fn verdict(&self, target: &Target) -> Verdict {
        let ports = || self.entries.iter().filter(|e| e.port_matches(target.port));
        match &target.host {
            TargetHost::Addr(a) => {
                if self.allows_addr(SocketAddr::new(*a, target.port)) {
                    Verdict::Allowed
                } else {
                    Verdict::Refused
                }
            }
            TargetHost::Name(n) => {
                if ports().any(|e| e.host.matches_name(n)) {
                    Verdict::Allowed
                } else if ports().any(|e| matches!(e.host, AllowHost::Net(_))) {
                    Verdict::ByAddress
                } else {
                    Verdict::Refused
                }
            }
        }
    }

    /// Whether an address entry (or `*`) allows `addr` (an IPv4-mapped IPv6 address counts as
    /// its IPv4 one).
    pub fn allows_addr(&self, addr: SocketAddr) -> bool {
        self.entries.iter().any(|e| {
            e.port_matches(addr.port())
                && match &e.host {
                    AllowHost::Net(net) => net.contains(addr.ip()),
                    AllowHost::Any => true,
                    AllowHost::Name(_) | AllowHost::Suffix(_) => false,
                }
        })
    }
}

impl AllowEntry {
    /// Parses one entry; see the [module docs](self).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(s: &str) -> Result<AllowEntry, String> {
        let (host, port) = split_port(s)?;
        let port = match port {
            PortSpec::Num(p) => Some(p),
            PortSpec::Any => None,
        };
        let host = if host == "*" {
            AllowHost::Any
        } else if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?}: unclosed ["))?;
            let net = Cidr::parse(inner).map_err(|e| format!("{s:?}: {e}"))?;
            if !net.addr.is_ipv6() {
                return Err(format!("{s:?}: brackets are for IPv6 only"));
            }
            AllowHost::Net(net)
        } else if host.starts_with(|c: char| c.is_ascii_digit()) && host.contains(['.', '/']) {
            match Cidr::parse(host) {
                Ok(net) if net.addr.is_ipv4() => AllowHost::Net(net),
                // `1.example` is a name all the same.
                _ if !host.contains('/') && dns_name(host).is_some() => {
                    AllowHost::Name(dns_name(host).expect("checked"))
                }
                Err(e) if host.contains('/') => return Err(format!("{s:?}: {e}")),
                Ok(_) | Err(_) => {
                    return Err(format!("{s:?}: not an IPv4 address or address/prefix"))
                }
            }
        } else if let Some(suffix) = host.strip_prefix("*.") {
            let name = dns_name(suffix)
                .ok_or_else(|| format!("{s:?}: *.NAME needs a host name after *."))?;
            AllowHost::Suffix(format!(".{name}"))
        } else {
            let name = dns_name(host).ok_or_else(|| {
                format!("{s:?}: not a host name, *.suffix, *, address or CIDR (IPv6 in [ ])")
            })?;
            AllowHost::Name(name)
        };
        Ok(AllowEntry { host, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

impl AllowHost {
    fn matches_name(&self, name: &str) -> bool {
        match self {
            AllowHost::Name(n) => n == name,
            AllowHost::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
            AllowHost::Any => true,
            AllowHost::Net(_) => false,
        }
    }
}

enum PortSpec {
    Num(u16),
    Any,
}

/// `host` and the port after its last colon (`[v6]:port` keeps the brackets on the host).
fn split_port(s: &str) -> Result<(&str, PortSpec), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: needs host:port"))?;
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(format!(
            "{s:?}: needs host:port (an IPv6 address in brackets)"
        ));
    }
    let port = match port {
        "*" => PortSpec::Any,
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(n) if n > 0 => PortSpec::Num(n),
            _ => return Err(format!("{s:?}: the port must be 1..=65535 or *")),
        },
        _ => return Err(format!("{s:?}: the port must be 1..=65535 or *")),
    };
    Ok((host, port))
}

/// A DNS name, lower-cased without its trailing dot, or `None` when it is not one (nor an
/// address in disguise).
fn dns_name(s: &str) -> Option<String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        // An all-numeric last label is an address written short (`10.0.0`), not a name
        // (RFC 3696 §2).
        && !s.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn allow(entries: &[&str]) -> Allow {
        Allow::parse(entries).unwrap()
    }

    #[test]
    fn targets_parse_strictly() {
        let ok = [
            ("example.com:443", "example.com:443"),
            ("Example.COM.:443", "example.com:443"),
            ("198.51.100.7:8443", "198.51.100.7:8443"),
            ("[2001:DB8::7]:443", "[2001:db8::7]:443"),
            ("_srv.x-y.test:1", "_srv.x-y.test:1"),
        ];
        for (s, want) in ok {
            assert_eq!(t(s).to_string(), want, "{s}");
        }
        let bad = [
            "example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:*",
            "example.com:+1",
            ":443",
            "2001:db8::7:443",
            "[2001:db8::7:443",
            "[198.51.100.7]:443",
            "exa mple.com:443",
            "-x.test:443",
            "a..b:443",
            "user@host:443",
            "*.example.com:443",
            "10.0.0:443",
            "1.2.3.4.5:443",
        ];
        for s in bad {
            assert!(Target::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn entries_parse_and_say_what_is_wrong() {
        let cases: &[(&str, AllowEntry)] = &[
            (
                "Example.com:443",
                AllowEntry {
                    host: AllowHost::Name("example.com".into()),
                    port: Some(443),
                },
            ),
            (
                "*.example.com:*",
                AllowEntry {
                    host: AllowHost::Suffix(".example.com".into()),
                    port: None,
                },
            ),
            (
                "*:443",
                AllowEntry {
                    host: AllowHost::Any,
                    port: Some(443),
                },
            ),
            (
                "10.0.0.0/8:22",
                AllowEntry {
                    host: AllowHost::Net(Cidr::parse("10.0.0.0/8").unwrap()),
                    port: Some(22),
                },
            ),
            (
                "198.51.100.7:443",
                AllowEntry {
                    host: AllowHost::Net(Cidr::parse("198.51.100.7/32").unwrap()),
                    port: Some(443),
                },
            ),
            (
                "[fd00::/8]:*",
                AllowEntry {
                    host: AllowHost::Net(Cidr::parse("fd00::/8").unwrap()),
                    port: None,
                },
            ),
            (
                "1.example:80",
                AllowEntry {
                    host: AllowHost::Name("1.example".into()),
                    port: Some(80),
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(&AllowEntry::parse(s).unwrap(), want, "{s}");
        }
        let bad = [
            ("example.com", "needs host:port"),
            ("example.com:0", "1..=65535"),
            ("example.com:https", "1..=65535"),
            ("fd00::/8:443", "brackets"),
            ("[10.0.0.0/8]:443", "brackets are for IPv6 only"),
            ("10.0.0.0/33:443", "the prefix must be 0..=32"),
            ("10.0.0.0/8x:443", "the prefix must be 0..=32"),
            ("10.0.0:443", "not an IPv4"),
            ("*.:443", "*.NAME"),
            ("**:443", "not a host name"),
            ("ex ample:443", "not a host name"),
        ];
        for (s, want) in bad {
            let e = AllowEntry::parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn names_are_allowed_by_name_entries_and_otherwise_by_their_address() {
        let a = allow(&[
            "example.com:443",
            "*.internal.test:*",
            "10.0.0.0/8:22",
            "[fd00::/8]:443",
        ]);
        let cases = [
            ("example.com:443", Verdict::Allowed),
            ("EXAMPLE.com.:443", Verdict::Allowed),
            ("example.com:80", Verdict::Refused),
            ("www.example.com:443", Verdict::ByAddress),
            ("db.internal.test:5432", Verdict::Allowed),
            ("internal.test:5432", Verdict::Refused),
            ("evilinternal.test:5432", Verdict::Refused),
            ("anything.test:22", Verdict::ByAddress),
            ("anything.test:23", Verdict::Refused),
            ("10.1.2.3:22", Verdict::Allowed),
            ("10.1.2.3:443", Verdict::Refused),
            ("11.1.2.3:22", Verdict::Refused),
            ("[fd00::1]:443", Verdict::Allowed),
            ("[fe80::1]:443", Verdict::Refused),
        ];
        for (s, want) in cases {
            assert_eq!(a.verdict(&t(s)), want, "{s}");
        }
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(a.allows_addr(addr("10.9.9.9:22")));
        assert!(a.allows_addr(addr("[::ffff:10.9.9.9]:22")), "IPv4-mapped");
        assert!(!a.allows_addr(addr("10.9.9.9:443")));
        assert!(a.allows_addr(addr("[fd12::1]:443")));
        assert!(!a.allows_addr(addr("192.0.2.1:22")));
        // Name entries never allow an address.
        assert!(!allow(&["example.com:443"]).allows_addr(addr("192.0.2.1:443")));
        // `*` allows names and addresses on its port.
        let any = allow(&["*:443"]);
        assert_eq!(any.verdict(&t("a.test:443")), Verdict::Allowed);
        assert_eq!(any.verdict(&t("192.0.2.1:443")), Verdict::Allowed);
        assert_eq!(any.verdict(&t("a.test:444")), Verdict::Refused);
        assert!(any.allows_addr(addr("[2001:db8::1]:443")));
        // Nothing listed, nothing allowed.
        assert_eq!(Allow::default().verdict(&t("a.test:443")), Verdict::Refused);
    }
}

//! Validation of a listener's `acme = { … }` block, and of what it needs from the other
//! listeners (the port-80 http listener for `http-01`, port 443 for `tls-alpn-01`).

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::DnsName;
use toml::Spanned;

use super::raw;
use super::validate::Validator;
use super::{Acme, AcmeChallenge, Listener, Protocol};

/// Most names in one certificate (Let's Encrypt's limit).
const MAX_DOMAINS: usize = 100;

impl Validator<'_> {
    /// `listener[i].acme`: the directory an https URL, domains valid DNS names without
    /// wildcards, contacts `mailto:` URLs, the CA file readable, the state directory writable.
    pub(super) fn acme(&mut self, key: &str, a: &Spanned<raw::Acme>) -> Acme {
        let key = format!("{key}.acme");
        let a = a.get_ref();
        let directory = a.directory.get_ref().clone();
        if let Err(e) = check_directory(&directory) {
            self.err(
                format!("{key}.directory"),
                Some(a.directory.span()),
                format!("{directory:?}: {e}"),
            );
        }
        let mut domains: Vec<String> = Vec::new();
        for (j, d) in a.domains.get_ref().iter().enumerate() {
            let name = d.get_ref().trim_end_matches('.').to_ascii_lowercase();
            match check_domain(&name) {
                Err(e) => self.err(
                    format!("{key}.domains[{j}]"),
                    Some(d.span()),
                    format!("{:?}: {e}", d.get_ref()),
                ),
                Ok(()) if domains.contains(&name) => self.err(
                    format!("{key}.domains[{j}]"),
                    Some(d.span()),
                    format!("{name:?} is listed twice"),
                ),
                Ok(()) => domains.push(name),
            }
        }
        let n = a.domains.get_ref().len();
        if n == 0 || n > MAX_DOMAINS {
            self.err(
                format!("{key}.domains"),
                Some(a.domains.span()),
                format!("must list 1..={MAX_DOMAINS} names"),
            );
        }
        let mut contact = Vec::new();
        for (j, c) in a.contact.iter().enumerate() {
            let text = c.get_ref();
            let ok = text
                .strip_prefix("mailto:")
                .is_some_and(|m| m.contains('@') && !m.contains([' ', ',']));
            if !ok {
                self.err(
                    format!("{key}.contact[{j}]"),
                    Some(c.span()),
                    format!("{text:?} is not a mailto: URL (\"mailto:admin@example.com\")"),
                );
            }
            contact.push(text.clone());
        }
        let challenge = match a
            .challenge
            .as_ref()
            .map(|c| (c.get_ref().as_str(), c.span()))
        {
            None | Some(("http-01", _)) => AcmeChallenge::Http01,
            Some(("tls-alpn-01", _)) => AcmeChallenge::TlsAlpn01,
            Some((other, span)) => {
                self.err(
                    format!("{key}.challenge"),
                    Some(span),
                    format!("{other:?} is not \"http-01\" or \"tls-alpn-01\""),
                );
                AcmeChallenge::Http01
            }
        };
        let ca =
            a.ca.as_ref()
                .map(|p| self.existing_file(&format!("{key}.ca"), &p.span(), p.get_ref()));
        let state_dir = self.path(a.state_dir.get_ref());
        if let Err(e) = check_state_dir(&state_dir) {
            self.err(
                format!("{key}.state_dir"),
                Some(a.state_dir.span()),
                format!("{}: {e}", state_dir.display()),
            );
        }
        Acme {
            directory,
            contact,
            domains,
            challenge,
            ca,
            state_dir,
        }
    }

    /// What the acme blocks need from the listeners: `http-01` an http listener on port 80,
    /// `tls-alpn-01` its own listener on port 443 (the ports ACME servers validate on); no
    /// two blocks sharing a state directory.
    pub(super) fn acme_listeners(
        &mut self,
        listeners: &[Listener],
        spans: &[std::ops::Range<usize>],
    ) {
        let mut dirs: Vec<(usize, &Path)> = Vec::new();
        for (i, l) in listeners.iter().enumerate() {
            let Protocol::Https {
                acme: Some(acme), ..
            } = &l.protocol
            else {
                continue;
            };
            let key = format!("listener[{i}].acme");
            let span = spans.get(i).cloned();
            match acme.challenge {
                AcmeChallenge::Http01 => {
                    let port80 = listeners
                        .iter()
                        .any(|o| o.port == 80 && o.protocol == Protocol::Http);
                    if !port80 {
                        self.err(
                            format!("{key}.challenge"),
                            span.clone(),
                            "http-01 is validated on port 80: add an http listener on port 80 (or use challenge = \"tls-alpn-01\")",
                        );
                    }
                }
                AcmeChallenge::TlsAlpn01 if l.port != 443 => self.err(
                    format!("{key}.challenge"),
                    span.clone(),
                    format!(
                        "tls-alpn-01 is validated on port 443, this listener is on {}",
                        l.port
                    ),
                ),
                AcmeChallenge::TlsAlpn01 => {}
            }
            if let Some((j, _)) = dirs.iter().find(|(_, d)| *d == acme.state_dir.as_path()) {
                self.err(
                    format!("{key}.state_dir"),
                    span,
                    format!("already used by listener[{j}].acme"),
                );
            }
            dirs.push((i, &acme.state_dir));
        }
    }
}

/// The directory URL: `https://host[:port]/path`.
pub(super) fn check_directory(url: &str) -> Result<(), String> {
    let uri: ::http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err("must be an https:// URL (RFC 8555 §6.1)".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

/// A name ACME can validate by http-01 or tls-alpn-01: a DNS name, not an address, no wildcard.
pub(super) fn check_domain(name: &str) -> Result<(), String> {
    if name.contains('*') {
        return Err("wildcards need the dns-01 challenge, which paf does not answer".into());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address, not a DNS name".into());
    }
    if name.is_empty() || DnsName::try_from(name).is_err() {
        return Err("not a valid DNS name".into());
    }
    Ok(())
}

/// The state directory: an existing writable directory, or a missing one whose parent is
/// (`paf run` creates it). Writability is tried with a probe file, removed at once.
pub(super) fn check_state_dir(dir: &Path) -> Result<(), String> {
    let target = if dir.exists() {
        if !dir.is_dir() {
            return Err("is not a directory".into());
        }
        dir
    } else {
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) if p.is_dir() => p,
            _ => return Err("does not exist, nor does its parent directory".into()),
        }
    };
    let probe = target.join(format!(".paf-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("not writable ({}: {e})", target.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

//! Server certificate choice by SNI.
//!
//! Exact names win over wildcards; a wildcard `*.example.com` covers exactly one
//! extra label (`a.example.com`, not `example.com` nor `a.b.example.com`).
//! Matching ignores ASCII case and a trailing dot. Everything else gets the
//! default certificate: no SNI at all, an IP-address connection (clients never
//! send IP literals as SNI, RFC 6066 §3) and unknown names. Serving the default
//! to unknown names, rather than refusing, lets `curl -k https://anything/`
//! and misconfigured DNS still reach the appliance; the client's own name check
//! is what rejects the mismatch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::DnsName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Error;

#[derive(Debug)]
pub(crate) struct SniResolver {
    /// Certificates installed at run time, ahead of the configured ones (see
    /// [`CertStore`](super::CertStore)).
    pub(crate) store: Option<Arc<super::CertStore>>,
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    pub(crate) fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            store: None,
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }

    /// Registers `pattern` (host name or `*.parent`).
    pub(crate) fn add(&mut self, pattern: &str, key: Arc<CertifiedKey>) -> Result<(), Error> {
        let bad = |why: &str| Error::Config(format!("SNI name {pattern:?}: {why}"));
        let name = normalize(pattern);
        if name.parse::<IpAddr>().is_ok() {
            return Err(bad(
                "IP addresses are never sent as SNI; put them in the default certificate",
            ));
        }
        let (table, key_name) = match name.strip_prefix("*.") {
            Some(parent) if parent.contains('.') => (&mut self.wildcard, parent.to_owned()),
            Some(_) => return Err(bad("a wildcard needs at least two labels after `*.`")),
            None => (&mut self.exact, name.clone()),
        };
        if key_name.contains('*') || DnsName::try_from(key_name.as_str()).is_err() {
            return Err(bad("not a valid DNS name"));
        }
        if table.insert(key_name, key).is_some() {
            return Err(bad("configured twice"));
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        sni.and_then(|s| self.named(s)).unwrap_or(&self.default)
    }

    /// The configured certificate for `sni` by exact name, then wildcard.
    fn named(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let name = normalize(sni);
        if let Some(key) = self.exact.get(&name) {
            return Some(key);
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = client_hello.server_name();
        let Some(store) = &self.store else {
            return Some(Arc::clone(self.lookup(sni)));
        };
        let acme_tls = client_hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == super::store::ALPN_ACME_TLS));
        if acme_tls {
            // A validation: its challenge certificate or nothing (RFC 8737 §3).
            return sni.and_then(|s| store.challenge(s));
        }
        // Installed by name, configured by name, installed default, configured default.
        sni.and_then(|s| store.named(s).or_else(|| self.named(s).cloned()))
            .or_else(|| store.default_key())
            .or_else(|| Some(Arc::clone(&self.default)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::sign::SigningKey;

    /// Resolution only compares `Arc`s; a certificate's first byte tells them apart.
    fn key(tag: u8) -> Arc<CertifiedKey> {
        let provider = super::super::default_provider();
        let kp = rcgen::KeyPair::generate().expect("keygen");
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(kp.serialize_der().into());
        let signer: Arc<dyn SigningKey> =
            provider.key_provider.load_private_key(der).expect("load");
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            signer,
        ))
    }

    fn tag(k: &Arc<CertifiedKey>) -> u8 {
        k.cert[0].as_ref()[0]
    }

    #[test]
    fn lookup_table() {
        let mut r = SniResolver::new(key(0));
        r.add("a.example.com", key(1)).unwrap();
        r.add("*.example.com", key(2)).unwrap();
        r.add("Mixed.Case.ORG.", key(3)).unwrap();
        let cases: &[(Option<&str>, u8)] = &[
            (None, 0),
            (Some("a.example.com"), 1),
            (Some("A.EXAMPLE.COM"), 1),
            (Some("a.example.com."), 1),
            (Some("b.example.com"), 2),
            (Some("B.Example.Com"), 2),
            (Some("example.com"), 0),
            (Some("x.b.example.com"), 0),
            (Some("mixed.case.org"), 3),
            (Some("unknown.test"), 0),
            (Some("com"), 0),
        ];
        for &(sni, want) in cases {
            assert_eq!(tag(r.lookup(sni)), want, "sni {sni:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        let mut r = SniResolver::new(key(0));
        for bad in [
            "127.0.0.1",
            "::1",
            "*.com",
            "a.*.example.com",
            "**.x.y",
            "bad name.test",
            "",
        ] {
            let err = r.add(bad, key(1)).unwrap_err();
            assert!(
                matches!(err, Error::Config(ref m) if m.contains("SNI name")),
                "{bad}: {err}"
            );
        }
        r.add("dup.test", key(1)).unwrap();
        assert!(r.add("DUP.test", key(2)).is_err());
    }
}

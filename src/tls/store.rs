//! Certificates that change while the server runs: ACME's issued chains and its TLS-ALPN-01
//! challenge certificates (RFC 8737).
//!
//! A [`CertStore`] is shared by a [`ServerConfig`](super::ServerConfig)'s certificate resolver
//! and whoever installs certificates. Each handshake looks the name up at its ClientHello, so
//! an installed certificate serves the next handshake and open connections keep the one they
//! had; nothing is rebuilt or restarted. Names the store does not hold fall through to the
//! configuration's own certificates (SNI, then the default).
//!
//! A ClientHello that offers the `acme-tls/1` protocol by ALPN is a validation: it gets the
//! challenge certificate for its SNI name, or no certificate (the handshake fails) when none is
//! set. It never gets a real certificate, and other clients never get a challenge one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustls::sign::CertifiedKey;

use super::{Error, Identity};

/// The ALPN protocol of TLS-ALPN-01 validations (RFC 8737 §6.2).
pub const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";

#[derive(Debug, Default)]
struct Entries {
    /// Installed certificates by name (lower case).
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// Served to connections without SNI and to unknown names, over the configuration's
    /// default, when set.
    default: Option<Arc<CertifiedKey>>,
    /// TLS-ALPN-01 certificates by name.
    challenges: HashMap<String, Arc<CertifiedKey>>,
}

/// Certificates installed at run time (see the module doc). Share it in an `Arc`.
#[derive(Debug, Default)]
pub struct CertStore {
    entries: RwLock<Entries>,
}

impl CertStore {
    /// An empty store: every name falls through to the configuration's certificates.
    pub fn new() -> CertStore {
        CertStore::default()
    }

    // A writer that panicked left whole entries behind (each is one insert or removal), so a
    // poisoned lock is still consistent: take it.
    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `identity` to `names` from the next handshake on, and also to clients that send
    /// no SNI or an unknown name when `as_default`.
    ///
    /// # Errors
    /// [`Error::Config`] when the key does not match the certificate or is of an unsupported
    /// type; nothing is installed then.
    pub fn install(
        &self,
        names: &[String],
        identity: &Identity,
        as_default: bool,
    ) -> Result<(), Error> {
        let key = identity.certified_key(&super::default_provider())?;
        let mut e = self.write();
        for n in names {
            e.by_name.insert(normalize(n), key.clone());
        }
        if as_default {
            e.default = Some(key);
        }
        Ok(())
    }

    /// Serves `identity` to TLS-ALPN-01 validations of `name` (until [`CertStore::clear_challenges`]).
    ///
    /// # Errors
    /// [`Error::Config`] when the key is of an unsupported type.
    pub fn set_challenge(&self, name: &str, identity: &Identity) -> Result<(), Error> {
        // Not parsed: webpki refuses the critical acmeIdentifier extension.
        let key = identity.certified_key_unparsed(&super::default_provider())?;
        self.write().challenges.insert(normalize(name), key);
        Ok(())
    }

    /// Forgets every challenge certificate.
    pub fn clear_challenges(&self) {
        self.write().challenges.clear();
    }

    /// Whether a certificate is installed for `name`.
    pub fn has(&self, name: &str) -> bool {
        self.read().by_name.contains_key(&normalize(name))
    }

    /// The certificate installed for `sni`, if any.
    pub(crate) fn named(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        self.read().by_name.get(&normalize(sni)).cloned()
    }

    /// The certificate installed as the default, if any.
    pub(crate) fn default_key(&self) -> Option<Arc<CertifiedKey>> {
        self.read().default.clone()
    }

    /// The TLS-ALPN-01 certificate for `sni`, if any.
    pub(crate) fn challenge(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        self.read().challenges.get(&normalize(sni)).cloned()
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

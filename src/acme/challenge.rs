//! What answers the challenges: the HTTP-01 key authorizations by token, served by the port-80
//! listener ahead of its routes, and (feature `certs`) the TLS-ALPN-01 certificate of a name
//! (RFC 8737 §3), installed in the https listener's [`CertStore`](crate::tls::CertStore).

use std::collections::HashMap;
use std::sync::Mutex;

/// Where HTTP-01 answers live (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The HTTP-01 answers of the orders under way: token → key authorization. Shared (in an
/// `Arc`) by the ACME driver, which sets and clears them, and the http listeners, which serve
/// them.
#[derive(Debug, Default)]
pub struct Http01 {
    answers: Mutex<HashMap<String, String>>,
}

impl Http01 {
    /// Serves `key_authorization` at [`HTTP01_PREFIX`]`token`.
    pub fn set(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops serving `token`.
    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// The answer for a request `path`, if it is a challenge path with a token we serve.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Each critical section is one insert, removal or lookup: a poisoned map is whole.
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The TLS-ALPN-01 certificate for `domain` (RFC 8737 §3): self-signed, `domain` its only
/// name, and the critical acmeIdentifier extension holding SHA-256 of `key_authorization`.
///
/// # Errors
/// [`crate::tls::Error::Config`] when rcgen cannot make it.
#[cfg(feature = "certs")]
pub fn tls_alpn01_identity(
    domain: &str,
    key_authorization: &str,
) -> Result<crate::tls::Identity, crate::tls::Error> {
    let err = |e: rcgen::Error| crate::tls::Error::Config(format!("tls-alpn-01 certificate: {e}"));
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(err)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    crate::tls::Identity::new(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_its_tokens() {
        let h = Http01::default();
        h.set("tok", "tok.thumb");
        assert_eq!(
            h.answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(h.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(h.answer("/tok"), None);
        assert_eq!(h.answer("/.well-known/acme-challenge/"), None);
        h.remove("tok");
        assert_eq!(h.answer("/.well-known/acme-challenge/tok"), None);
    }

    #[cfg(feature = "certs")]
    #[test]
    fn the_tls_alpn01_certificate_carries_the_digest_critically() {
        let id = tls_alpn01_identity("a.test", "tok.thumb").unwrap();
        let der = id.chain()[0].as_ref();
        // id-pe-acmeIdentifier 1.3.6.1.5.5.7.1.31, critical, OCTET STRING of the 32-byte digest.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("the extension");
        let rest = &der[at + oid.len()..];
        assert_eq!(&rest[..3], [0x01, 0x01, 0xff], "critical");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"tok.thumb");
        assert_eq!(&rest[3..7], [0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&rest[7..39], digest.as_ref());
    }
}

//! The account key and what ACME signs with it: JWS in flattened JSON serialization with ES256
//! (RFC 7515, RFC 7518 §3.4), the key as a JWK (RFC 7517) and its thumbprint (RFC 7638), and
//! key authorizations (RFC 8555 §8.1).
//!
//! The cryptography is aws-lc-rs's (the provider rustls already links): ECDSA P-256 with
//! SHA-256, signatures in the fixed `r || s` form JWS wants.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::pki_types::pem::{PemObject, SectionKind};

/// base64url without padding (RFC 7515 §2), as every JWS part and JWK field is written.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A failure of the key operations; aws-lc-rs says no more than that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key could not be generated or signing failed.
    Crypto,
    /// The stored key is not a PEM `PRIVATE KEY` of an ECDSA P-256 key.
    BadKey(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Crypto => f.write_str("ECDSA P-256 key operation failed"),
            KeyError::BadKey(why) => write!(f, "not an ECDSA P-256 PKCS#8 key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// An ACME account key: ECDSA P-256, signing ES256.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material; the thumbprint names the key.
        f.debug_struct("AccountKey")
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl AccountKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`KeyError::Crypto`] when aws-lc-rs cannot generate it.
    pub fn generate() -> Result<AccountKey, KeyError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Crypto)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// The key from its PKCS#8 DER.
    ///
    /// # Errors
    /// [`KeyError::BadKey`] when it is not an ECDSA P-256 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<AccountKey, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| KeyError::BadKey(e.to_string()))?;
        Ok(AccountKey {
            pair,
            pkcs8: der.to_vec(),
            rng: SystemRandom::new(),
        })
    }

    /// The key from PEM (`-----BEGIN PRIVATE KEY-----`, as [`AccountKey::to_pem`] writes).
    ///
    /// # Errors
    /// [`KeyError::BadKey`] when there is no such block or it is not a P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<AccountKey, KeyError> {
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| KeyError::BadKey(e.to_string()))?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    /// The key as PKCS#8 PEM, to keep in the state directory.
    pub fn to_pem(&self) -> String {
        pem(SectionKind::PrivateKey, &self.pkcs8)
    }

    /// The public key as a JWK, members in the lexicographic order RFC 7638 hashes.
    pub fn jwk(&self) -> String {
        let point = self.pair.public_key().as_ref();
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let (x, y) = point[1..].split_at(32);
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        )
    }

    /// The JWK thumbprint (RFC 7638): base64url of SHA-256 of [`AccountKey::jwk`].
    pub fn thumbprint(&self) -> String {
        b64(digest::digest(&digest::SHA256, self.jwk().as_bytes()).as_ref())
    }

    /// The key authorization of a challenge `token` (RFC 8555 §8.1): `token.thumbprint`.
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// The public key, an uncompressed P-256 point (for verifying in tests).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// A JWS of `payload` for `url` (RFC 8555 §6.2), flattened JSON: protected header with
    /// `alg` ES256, `nonce`, `url`, and `kid` (the account URL) or, without an account yet, the
    /// `jwk`. `payload` `None` is a POST-as-GET (an empty payload, §6.3).
    ///
    /// # Errors
    /// [`KeyError::Crypto`] when signing fails.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&str>,
    ) -> Result<String, KeyError> {
        let key = match kid {
            Some(kid) => format!(r#""kid":{}"#, json_string(kid)),
            None => format!(r#""jwk":{}"#, self.jwk()),
        };
        let protected = format!(
            r#"{{"alg":"ES256",{key},"nonce":{},"url":{}}}"#,
            json_string(nonce),
            json_string(url)
        );
        let protected = b64(protected.as_bytes());
        let payload = payload.map_or_else(String::new, |p| b64(p.as_bytes()));
        let input = format!("{protected}.{payload}");
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| KeyError::Crypto)?;
        Ok(format!(
            r#"{{"protected":"{protected}","payload":"{payload}","signature":"{}"}}"#,
            b64(sig.as_ref())
        ))
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// DER as a PEM block of `kind`.
pub(crate) fn pem(kind: SectionKind, der: &[u8]) -> String {
    let label = match kind {
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::Certificate => "CERTIFICATE",
        _ => "UNKNOWN",
    };
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn unb64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn a_jws_verifies_with_the_public_key_and_says_what_acme_needs() {
        let key = AccountKey::generate().unwrap();
        let jws = key
            .sign(
                "https://ca.test/new-order",
                "nonce-1",
                Some("https://ca.test/acct/7"),
                Some(r#"{"identifiers":[]}"#),
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&jws).unwrap();
        let (p, pl, sig) = (
            v["protected"].as_str().unwrap(),
            v["payload"].as_str().unwrap(),
            v["signature"].as_str().unwrap(),
        );
        let sig = unb64(sig);
        assert_eq!(sig.len(), 64, "ES256 signatures are r || s");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key())
            .verify(format!("{p}.{pl}").as_bytes(), &sig)
            .expect("the signature verifies");
        // A changed payload does not.
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key())
                .verify(format!("{p}.{pl}x").as_bytes(), &sig)
                .is_err()
        );
        let header: serde_json::Value = serde_json::from_slice(&unb64(p)).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["nonce"], "nonce-1");
        assert_eq!(header["url"], "https://ca.test/new-order");
        assert_eq!(header["kid"], "https://ca.test/acct/7");
        assert!(header.get("jwk").is_none());
        assert_eq!(unb64(pl), br#"{"identifiers":[]}"#);
        // Without an account: the JWK instead of kid; POST-as-GET: an empty payload.
        let jws = key.sign("https://ca.test/x", "n", None, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&jws).unwrap();
        assert_eq!(v["payload"], "");
        let header: serde_json::Value =
            serde_json::from_slice(&unb64(v["protected"].as_str().unwrap())).unwrap();
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert_eq!(
            unb64(header["jwk"]["x"].as_str().unwrap()),
            key.public_key()[1..33]
        );
        assert_eq!(
            unb64(header["jwk"]["y"].as_str().unwrap()),
            key.public_key()[33..]
        );
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3: the required members only (crv, kty, x, y), in lexicographic order, no
        // whitespace, then SHA-256: rebuilt here from the public point by serde_json's
        // sorted map.
        let key = AccountKey::generate().unwrap();
        let point = key.public_key();
        let members: std::collections::BTreeMap<&str, String> = [
            ("kty", "EC".to_owned()),
            ("y", b64(&point[33..])),
            ("x", b64(&point[1..33])),
            ("crv", "P-256".to_owned()),
        ]
        .into_iter()
        .collect();
        let canonical = serde_json::to_string(&members).unwrap();
        assert_eq!(key.jwk(), canonical);
        let want = b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(key.thumbprint(), want);
        assert_eq!(want.len(), 43);
        assert_eq!(key.key_authorization("tok"), format!("tok.{want}"));
    }

    #[test]
    fn the_key_survives_pem() {
        let key = AccountKey::generate().unwrap();
        let again = AccountKey::from_pem(key.to_pem().as_bytes()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        assert!(matches!(
            AccountKey::from_pem(b"garbage"),
            Err(KeyError::BadKey(_))
        ));
        // An RSA or P-384 key is refused, not misused.
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(AccountKey::from_pem(p384.serialize_pem().as_bytes()).is_err());
    }
}

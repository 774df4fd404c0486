//! A throw-away PKI for tests, `make run` and `paf cert`: one CA and server
//! certificates it signs, all ECDSA P-256, made with rcgen.
//!
//! Nothing here is for production trust: the CA's private key is never written
//! out, so the CA can sign only what [`TestCa`] issues while it is alive.
//! Certificates are valid from 1975 to 4096 (rcgen's defaults), so tests never
//! depend on the clock.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Error, Identity};

fn gen_err(e: rcgen::Error) -> Error {
    Error::Config(format!("generating test certificate: {e}"))
}

/// A self-signed test certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    cert_pem: String,
}

impl TestCa {
    /// Generates a CA key and its self-signed certificate named `common_name`.
    ///
    /// # Errors
    /// [`Error::Config`] if rcgen fails (it should not).
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (DER), to trust in a client.
    #[must_use]
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate as PEM.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `names`: DNS names (wildcards allowed)
    /// and IP addresses (`"127.0.0.1"`, `"::1"`), the first also used as the
    /// subject common name.
    ///
    /// # Errors
    /// [`Error::Config`] if `names` is empty or holds an invalid DNS name.
    pub fn issue(&self, names: &[&str]) -> Result<IssuedCert, Error> {
        let Some(first) = names.first() else {
            return Err(Error::Config(
                "test certificate needs at least one name".into(),
            ));
        };
        for name in names {
            let host = name.strip_prefix("*.").unwrap_or(name);
            if host.parse::<IpAddr>().is_err() && DnsName::try_from(host).is_err() {
                return Err(Error::Config(format!(
                    "test certificate: {name:?} is neither a DNS name nor an IP address"
                )));
            }
        }
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .map_err(gen_err)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, *first);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

/// A server certificate issued by a [`TestCa`], with its PKCS#8 key.
pub struct IssuedCert {
    /// The end-entity certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl IssuedCert {
    /// The end-entity certificate (DER).
    #[must_use]
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate and key as an [`Identity`] for a server.
    #[must_use]
    pub fn identity(&self) -> Identity {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        Identity::new(vec![self.cert.clone()], key).expect("chain has one certificate")
    }
}

/// Files written by [`write_test_pki`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiPaths {
    /// `ca.pem`: the CA certificate, for clients (`curl --cacert`).
    pub ca_cert: PathBuf,
    /// `cert.pem`: the server certificate.
    pub cert: PathBuf,
    /// `key.pem`: the server's private key (PKCS#8, mode 0600 on Unix).
    pub key: PathBuf,
}

/// Creates `dir` if needed and writes a fresh CA and a server certificate for
/// `names` into it (see [`PkiPaths`]); existing files are replaced.
///
/// # Errors
/// [`Error::Config`] naming the file or directory that could not be written, or
/// for invalid `names`.
pub fn write_test_pki(dir: &Path, names: &[&str]) -> Result<PkiPaths, Error> {
    let ca = TestCa::new("paf test CA")?;
    let server = ca.issue(names)?;
    fs::create_dir_all(dir)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
    let paths = PkiPaths {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    write(&paths.ca_cert, ca.cert_pem(), false)?;
    write(&paths.cert, &server.cert_pem, false)?;
    write(&paths.key, &server.key_pem, true)?;
    Ok(paths)
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
    let mut file = fs::File::create(path).map_err(err)?;
    // Restrict before writing the secret; also fixes a pre-existing file's mode.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_cert_names_and_chain() {
        let ca = TestCa::new("t").unwrap();
        let leaf = ca
            .issue(&["localhost", "127.0.0.1", "::1", "*.paf.test"])
            .unwrap();
        let id = Identity::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
        assert_eq!(id.chain(), std::slice::from_ref(leaf.cert()));
        assert!(ca.issue(&[]).is_err());
        for bad in ["not a name", "*.", "a..b", ""] {
            assert!(ca.issue(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn write_test_pki_writes_loadable_files() {
        let dir = super::super::tests::temp_dir("pki");
        let paths = write_test_pki(&dir.join("sub"), &["localhost", "127.0.0.1"]).unwrap();
        let id = Identity::from_pem_files(&paths.cert, &paths.key).unwrap();
        assert_eq!(id.chain().len(), 1);
        assert!(fs::read_to_string(&paths.ca_cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A second run replaces the files.
        let again = write_test_pki(&dir.join("sub"), &["localhost"]).unwrap();
        assert_eq!(again, paths);
        fs::remove_dir_all(dir).unwrap();
    }
}

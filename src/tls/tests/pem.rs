//! Loading certificates and keys from PEM files, and the errors that name them.
//!
//! `fixtures/` holds keys made once with OpenSSL so the PKCS#1 and SEC1 formats
//! are the real thing (rcgen writes only PKCS#8): `openssl genrsa -traditional`
//! and `openssl ecparam -genkey -noout`, each with a self-signed certificate
//! valid until 2126. Test-only keys; they protect nothing.

use std::fs;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::version::{TLS12, TLS13};

use super::*;

const RSA_CERT: &str = include_str!("fixtures/rsa.pem");
const RSA_PKCS1_KEY: &str = include_str!("fixtures/rsa-pkcs1.key");
const EC_CERT: &str = include_str!("fixtures/ec.pem");
const EC_SEC1_KEY: &str = include_str!("fixtures/ec-sec1.key");

fn put(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, text).unwrap();
    path
}

fn first_cert(pem: &str) -> CertificateDer<'static> {
    Identity::from_pem(pem.as_bytes(), EC_SEC1_KEY.as_bytes())
        .unwrap()
        .chain()[0]
        .clone()
}

fn config_err(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Config(msg)) => msg,
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn pkcs1_rsa_and_sec1_ec_keys_serve_tls12_and_tls13() {
    let dir = temp_dir("pem-keys");
    let pki = Pki::new();
    let default_cert = put(&dir, "default.pem", &pki.default.cert_pem);
    let default_key = put(&dir, "default.key", &pki.default.key_pem); // PKCS#8
    let sni = [
        (
            "rsa.paf.test".to_owned(),
            put(&dir, "rsa.pem", RSA_CERT),
            put(&dir, "rsa.key", RSA_PKCS1_KEY),
        ),
        (
            "ec.paf.test".to_owned(),
            put(&dir, "ec.pem", EC_CERT),
            put(&dir, "ec.key", EC_SEC1_KEY),
        ),
    ];
    let server = ServerConfig::from_pem_files((&default_cert, &default_key), &sni).unwrap();
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        // The fixtures are self-signed: trust them as they are, but the
        // handshake signature is still checked against the presented key.
        let client = ClientConfig::builder(ClientTrust::DangerousInsecure)
            .versions(versions)
            .build()
            .unwrap();
        for (host, pem) in [
            ("rsa.paf.test", RSA_CERT),
            ("ec.paf.test", EC_CERT),
            ("localhost", &*pki.default.cert_pem),
        ] {
            let mut p = Pair::new(&server, &client, host);
            p.connect();
            assert_eq!(
                p.client.peer_certificates().unwrap(),
                &[first_cert(pem)][..],
                "{host}"
            );
        }
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn chain_file_with_ca_and_ca_pem_file_for_client() {
    let dir = temp_dir("pem-chain");
    let pki = Pki::new();
    let chain = put(
        &dir,
        "fullchain.pem",
        &format!("{}{}", pki.default.cert_pem, pki.ca.cert_pem()),
    );
    let key = put(&dir, "key.pem", &pki.default.key_pem);
    let ca = put(&dir, "ca.pem", pki.ca.cert_pem());
    let identity = Identity::from_pem_files(&chain, &key).unwrap();
    assert_eq!(
        identity.chain(),
        &[pki.default.cert().clone(), pki.ca.cert().clone()][..]
    );
    let server = ServerConfig::from_pem_files((&chain, &key), &[]).unwrap();
    let client = ClientConfig::from_ca_pem_file(&ca).unwrap();
    let mut p = Pair::new(&server, &client, "127.0.0.1");
    p.connect();
    assert_eq!(p.client.peer_certificates().unwrap().len(), 2);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn write_test_pki_round_trip() {
    let dir = temp_dir("pem-pki");
    let paths = certs::write_test_pki(&dir, &["localhost", "127.0.0.1", "::1"]).unwrap();
    let server = ServerConfig::from_pem_files((&paths.cert, &paths.key), &[]).unwrap();
    let client = ClientConfig::from_ca_pem_file(&paths.ca_cert).unwrap();
    for host in ["localhost", "127.0.0.1", "::1"] {
        Pair::new(&server, &client, host).connect();
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_name_the_file() {
    let dir = temp_dir("pem-errors");
    let pki = Pki::new();
    let cert = put(&dir, "cert.pem", &pki.default.cert_pem);
    let key = put(&dir, "key.pem", &pki.default.key_pem);
    let missing = dir.join("missing.pem");
    let garbage = put(
        &dir,
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    );
    let unterminated = put(&dir, "cut.pem", "-----BEGIN PRIVATE KEY-----\nMIIB\n");
    let text = put(&dir, "text.pem", "hello\n");
    let rsa_cert = put(&dir, "rsa.pem", RSA_CERT);

    let cases: Vec<(Result<Identity, Error>, &Path, &str)> = vec![
        (
            Identity::from_pem_files(&missing, &key),
            &missing,
            "cannot read",
        ),
        (
            Identity::from_pem_files(&cert, &missing),
            &missing,
            "cannot read",
        ),
        (
            Identity::from_pem_files(&garbage, &key),
            &garbage,
            "bad certificate PEM",
        ),
        (
            Identity::from_pem_files(&text, &key),
            &text,
            "no CERTIFICATE",
        ),
        (Identity::from_pem_files(&key, &key), &key, "no CERTIFICATE"),
        (
            Identity::from_pem_files(&cert, &cert),
            &cert,
            "no PRIVATE KEY",
        ),
        (
            Identity::from_pem_files(&cert, &unterminated),
            &unterminated,
            "bad key PEM",
        ),
    ];
    for (result, path, what) in cases {
        let msg = config_err(result);
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(what),
            "{msg}"
        );
    }

    // A key that does not belong to its certificate: caught at build time.
    let msg = config_err(ServerConfig::from_pem_files((&rsa_cert, &key), &[]));
    assert!(msg.contains("rsa.pem") && msg.contains("key.pem"), "{msg}");
    // An SNI name that cannot be matched.
    let sni = [("10.0.0.1".to_owned(), cert.clone(), key.clone())];
    assert!(config_err(ServerConfig::from_pem_files((&cert, &key), &sni)).contains("10.0.0.1"));
    // Client CA files.
    assert!(config_err(ClientConfig::from_ca_pem_file(&missing)).contains("missing.pem"));
    assert!(config_err(ClientConfig::from_ca_pem_file(&text)).contains("text.pem"));
    assert!(config_err(ClientConfig::from_ca_pem_file(&garbage)).contains("garbage.pem"));
    // In memory.
    assert!(config_err(Identity::new(
        Vec::new(),
        PrivateKeyDer::from_pem_slice(pki.default.key_pem.as_bytes()).unwrap()
    ))
    .contains("empty"));
    fs::remove_dir_all(dir).unwrap();
}

//! Handshakes: versions, ALPN, SNI certificate choice.

use rustls::version::{TLS12, TLS13};
use rustls::AlertDescription;

use super::*;

#[test]
fn tls13_handshake_negotiates_http11() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "localhost");
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + config::DEFAULT_HANDSHAKE_TIMEOUT)
    );
    assert!(p.client.is_handshaking() && p.client.poll_timeout().is_some());
    p.connect();
    for (version, alpn) in [
        (p.client.protocol_version(), p.client.alpn_protocol()),
        (p.server.protocol_version(), p.server.alpn_protocol()),
    ] {
        assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(alpn, Some(ALPN_HTTP11));
    }
    assert_eq!(p.client.cipher_suite(), p.server.cipher_suite());
    assert_eq!(p.server.sni(), Some("localhost"));
    assert_eq!(
        (p.client.poll_timeout(), p.server.poll_timeout()),
        (None, None)
    );
    assert!(!p.client.is_closed() && !p.server.is_closed());

    assert_eq!(p.client.write_plaintext(b"GET / HTTP/1.1\r\n\r\n"), 18);
    assert_eq!(
        p.server.write_plaintext(b"HTTP/1.1 204 No Content\r\n\r\n"),
        27
    );
    p.drive();
    assert_eq!(p.server_rx, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(p.client_rx, b"HTTP/1.1 204 No Content\r\n\r\n");
}

#[test]
fn tls12_handshake_and_data() {
    let pki = Pki::new();
    let client = pki.client_builder().versions(&[&TLS12]).build().unwrap();
    let mut p = Pair::new(&pki.server(), &client, "localhost");
    // Written before the handshake: held back, then sent encrypted.
    assert_eq!(p.client.write_plaintext(b"early"), 5);
    p.connect();
    assert_eq!(p.server.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(p.client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_eq!(p.server.alpn_protocol(), Some(ALPN_HTTP11));
    assert_eq!(p.server_rx, b"early");
}

#[test]
fn no_common_version_fails_on_both_sides() {
    let pki = Pki::new();
    let server = ServerConfig::builder(pki.default.identity())
        .versions(&[&TLS13])
        .build()
        .unwrap();
    let client = pki.client_builder().versions(&[&TLS12]).build().unwrap();
    let mut p = Pair::new(&server, &client, "localhost");
    p.drive();
    assert!(
        matches!(
            p.server_err,
            Some(Error::Peer(rustls::Error::PeerIncompatible(_)))
        ),
        "{:?}",
        p.server_err
    );
    assert_eq!(
        p.client_err,
        Some(Error::Peer(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion
        )))
    );
    assert!(p.client.is_closed() && p.server.is_closed());
}

#[test]
fn client_offering_only_h2_to_an_http11_server_gets_no_application_protocol() {
    let pki = Pki::new();
    let client = pki
        .client_builder()
        .alpn_protocols(&[b"h2"])
        .build()
        .unwrap();
    let mut p = Pair::new(&pki.http11_server(), &client, "localhost");
    assert_eq!(p.client.write_plaintext(b"PRI * HTTP/2.0"), 14);
    p.drive();
    assert_eq!(
        p.server_err,
        Some(Error::Peer(rustls::Error::NoApplicationProtocol))
    );
    assert_eq!(
        p.client_err,
        Some(Error::Peer(rustls::Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        )))
    );
    // The alert was flushed, nothing reached either application.
    assert!(p.server.is_closed() && p.client.is_closed());
    assert!(p.server_rx.is_empty() && p.client_rx.is_empty());
    assert_eq!(
        (p.server.poll_timeout(), p.client.poll_timeout()),
        (None, None)
    );
}

#[test]
fn client_without_alpn_is_served() {
    let pki = Pki::new();
    let client = pki.client_builder().alpn_protocols(&[]).build().unwrap();
    let mut p = Pair::new(&pki.server(), &client, "localhost");
    p.connect();
    assert_eq!(
        (p.client.alpn_protocol(), p.server.alpn_protocol()),
        (None, None)
    );
}

#[test]
fn client_preferring_h2_falls_back_to_http11() {
    let pki = Pki::new();
    let client = pki
        .client_builder()
        .alpn_protocols(&[b"h2", ALPN_HTTP11])
        .build()
        .unwrap();
    let mut p = Pair::new(&pki.http11_server(), &client, "localhost");
    p.connect();
    assert_eq!(p.client.alpn_protocol(), Some(ALPN_HTTP11));
}

#[test]
fn the_default_server_offers_h2_then_http11() {
    let pki = Pki::new();
    for (offer, want) in [
        (&[ALPN_HTTP11, ALPN_H2][..], ALPN_H2),
        (&[ALPN_HTTP11][..], ALPN_HTTP11),
        (&[ALPN_H2][..], ALPN_H2),
    ] {
        let client = pki.client_builder().alpn_protocols(offer).build().unwrap();
        let mut p = Pair::new(&pki.server(), &client, "localhost");
        p.connect();
        assert_eq!(p.server.alpn_protocol(), Some(want), "{offer:?}");
    }
}

#[test]
fn sni_picks_certificate() {
    let pki = Pki::new();
    let a = pki.ca.issue(&["a.paf.test"]).unwrap();
    let wild = pki.ca.issue(&["*.wild.paf.test"]).unwrap();
    let server = ServerConfig::builder(pki.default.identity())
        .sni("A.paf.test", a.identity())
        .sni("*.wild.paf.test", wild.identity())
        .build()
        .unwrap();
    let verified = pki.client();
    let insecure = ClientConfig::dangerous_insecure().unwrap();
    let cases: &[(&str, &ClientConfig, &IssuedCert, Option<&str>)] = &[
        ("a.paf.test", &verified, &a, Some("a.paf.test")),
        ("x.wild.paf.test", &verified, &wild, Some("x.wild.paf.test")),
        ("localhost", &verified, &pki.default, Some("localhost")),
        // An IP address is not sent as SNI: default certificate.
        ("127.0.0.1", &verified, &pki.default, None),
        // Unknown name: default certificate (only an insecure client accepts it).
        (
            "unknown.paf.test",
            &insecure,
            &pki.default,
            Some("unknown.paf.test"),
        ),
    ];
    for &(host, client, want, sni) in cases {
        let mut p = Pair::new(&server, client, host);
        p.connect();
        assert_eq!(
            p.client.peer_certificates().unwrap()[0],
            *want.cert(),
            "{host}"
        );
        assert_eq!(p.server.sni(), sni, "{host}");
    }
}

#[test]
fn wrong_name_is_rejected_by_verifying_client() {
    let pki = Pki::new();
    let mut p = Pair::new(&pki.server(), &pki.client(), "unknown.paf.test");
    p.drive();
    assert!(
        matches!(
            p.client_err,
            Some(Error::Peer(rustls::Error::InvalidCertificate(_)))
        ),
        "{:?}",
        p.client_err
    );
    assert_eq!(
        p.server_err,
        Some(Error::Peer(rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
        )))
    );
}

#[test]
fn untrusted_ca_is_rejected() {
    let pki = Pki::new();
    let other = certs::TestCa::new("another CA").unwrap();
    let client = ClientConfig::builder(ClientTrust::CaCerts(vec![other.cert().clone()]))
        .build()
        .unwrap();
    let mut p = Pair::new(&pki.server(), &client, "localhost");
    p.drive();
    assert_eq!(
        p.client_err,
        Some(Error::Peer(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )))
    );
    assert!(p.client.is_closed() && p.server.is_closed());
}

#[test]
fn webpki_roots_reject_test_ca() {
    let pki = Pki::new();
    let mut p = Pair::new(
        &pki.server(),
        &ClientConfig::webpki_roots().unwrap(),
        "localhost",
    );
    p.drive();
    assert_eq!(
        p.client_err,
        Some(Error::Peer(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )))
    );
}

#[test]
fn a_cert_store_serves_new_handshakes_and_acme_tls_validations() {
    let pki = Pki::new();
    let configured = pki.ca.issue(&["conf.paf.test"]).unwrap();
    let store = Arc::new(CertStore::new());
    let server = ServerConfig::builder(pki.default.identity())
        .sni("conf.paf.test", configured.identity())
        .alpn_protocols(&[ALPN_HTTP11, ALPN_ACME_TLS])
        .cert_store(store.clone())
        .build()
        .unwrap();
    // No resumption: a resumed session shows the certificate of the session it resumes.
    let insecure = ClientConfig::builder(ClientTrust::DangerousInsecure)
        .resumption(false)
        .build()
        .unwrap();
    let verified = pki.client_builder().resumption(false).build().unwrap();
    let served = |host: &str, client: &ClientConfig| {
        let mut p = Pair::new(&server, client, host);
        p.drive();
        p.client
            .peer_certificates()
            .map(|c| c[0].clone())
            .ok_or(p.client_err)
    };
    // Nothing installed: the configured certificates.
    assert_eq!(
        served("a.paf.test", &insecure).unwrap(),
        *pki.default.cert()
    );
    // Installed for a name, then as default: the next handshakes see it; configured SNI
    // names keep theirs.
    let acme = pki.ca.issue(&["a.paf.test"]).unwrap();
    store
        .install(&["A.paf.test".into()], &acme.identity(), false)
        .unwrap();
    assert!(store.has("a.paf.test"));
    assert_eq!(served("a.paf.test", &verified).unwrap(), *acme.cert());
    assert_eq!(
        served("other.paf.test", &insecure).unwrap(),
        *pki.default.cert()
    );
    store
        .install(&["a.paf.test".into()], &acme.identity(), true)
        .unwrap();
    assert_eq!(served("other.paf.test", &insecure).unwrap(), *acme.cert());
    assert_eq!(
        served("conf.paf.test", &verified).unwrap(),
        *configured.cert()
    );
    // A renewal replaces it for the next handshake.
    let renewed = pki.ca.issue(&["a.paf.test"]).unwrap();
    store
        .install(&["a.paf.test".into()], &renewed.identity(), true)
        .unwrap();
    assert_eq!(served("a.paf.test", &verified).unwrap(), *renewed.cert());
    // acme-tls/1: the challenge certificate for its name, or no handshake at all.
    let acme_client = ClientConfig::builder(ClientTrust::DangerousInsecure)
        .alpn_protocols(&[ALPN_ACME_TLS])
        .build()
        .unwrap();
    assert!(served("a.paf.test", &acme_client).is_err());
    let challenge = pki.ca.issue(&["a.paf.test"]).unwrap();
    store
        .set_challenge("a.paf.test", &challenge.identity())
        .unwrap();
    assert_eq!(
        served("a.paf.test", &acme_client).unwrap(),
        *challenge.cert()
    );
    assert_eq!(served("a.paf.test", &verified).unwrap(), *renewed.cert());
    store.clear_challenges();
    assert!(served("a.paf.test", &acme_client).is_err());
    // A real RFC 8737 certificate is accepted although webpki cannot parse it (its critical
    // acmeIdentifier extension).
    let rfc8737 = crate::acme::challenge::tls_alpn01_identity("a.paf.test", "t.k").unwrap();
    store.set_challenge("a.paf.test", &rfc8737).unwrap();
    assert_eq!(
        store.challenge("a.paf.test").unwrap().cert[0],
        rfc8737.chain()[0]
    );
}

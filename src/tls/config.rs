//! Shared, immutable TLS settings: built once at start-up, cloned (an `Arc`)
//! into every session.
//!
//! [`Identity`] is a certificate chain with its private key, loaded from PEM
//! files or memory. [`ServerConfig`] turns a default identity plus per-name SNI
//! identities into a rustls server configuration; [`ClientConfig`] does the same
//! for the client side with a [`ClientTrust`] policy. Every failure here is
//! local, so every error is [`Error::Config`] and names the file involved.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};

use super::sni::SniResolver;
use super::{Error, ALPN_H2, ALPN_HTTP11};

/// How long a session may take to finish its handshake unless configured.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap, in bytes, on plaintext queued for sending and ciphertext not yet
/// flushed (rustls' own default; one record of 16 KiB plus slack would also do).
pub const DEFAULT_BUFFER_LIMIT: usize = 64 * 1024;

/// A certificate chain (end-entity first) and the private key of its first
/// certificate.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Where it came from, for error messages: file paths or "in-memory".
    origin: String,
}

impl Identity {
    /// Wraps an in-memory chain and key.
    ///
    /// # Errors
    /// [`Error::Config`] if `chain` is empty.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        if chain.is_empty() {
            return Err(Error::Config(
                "in-memory identity: empty certificate chain".into(),
            ));
        }
        Ok(Self {
            chain,
            key,
            origin: "in-memory identity".into(),
        })
    }

    /// Parses PEM text: every `CERTIFICATE` block of `chain_pem` in order, and the
    /// first private key of `key_pem` (PKCS#8 `PRIVATE KEY`, PKCS#1
    /// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
    ///
    /// # Errors
    /// [`Error::Config`] on malformed PEM, no certificate, or no key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        Self::parse(chain_pem, key_pem, "in-memory certificate", "in-memory key")
    }

    /// Loads a chain file and a key file in the formats of [`Identity::from_pem`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the file that could not be read or parsed.
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<Self, Error> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
        };
        let (chain_pem, key_pem) = (read(chain)?, read(key)?);
        let chain_name = chain.display().to_string();
        let key_name = key.display().to_string();
        Self::parse(&chain_pem, &key_pem, &chain_name, &key_name)
    }

    fn parse(
        chain_pem: &[u8],
        key_pem: &[u8],
        chain_name: &str,
        key_name: &str,
    ) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("{chain_name}: bad certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(Error::Config(format!(
                "{chain_name}: no CERTIFICATE block found"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => Error::Config(format!(
                "{key_name}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found"
            )),
            e => Error::Config(format!("{key_name}: bad key PEM: {e}")),
        })?;
        Ok(Self {
            chain,
            key,
            origin: format!("{chain_name} + {key_name}"),
        })
    }

    /// The certificate chain, end-entity certificate first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Checks the key against the provider and the end-entity certificate.
    pub(crate) fn certified_key(
        &self,
        provider: &CryptoProvider,
    ) -> Result<Arc<CertifiedKey>, Error> {
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), provider)
            .map(Arc::new)
            .map_err(|e| Error::Config(format!("{}: {e}", self.origin)))
    }
}

impl Identity {
    /// The key paired with the chain without parsing the certificate: for TLS-ALPN-01
    /// certificates, whose critical acmeIdentifier extension webpki refuses to parse (RFC 8737
    /// certificates are made with their key, so there is nothing to match).
    pub(crate) fn certified_key_unparsed(
        &self,
        provider: &CryptoProvider,
    ) -> Result<Arc<CertifiedKey>, Error> {
        let signer = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| Error::Config(format!("{}: {e}", self.origin)))?;
        Ok(Arc::new(CertifiedKey::new(self.chain.clone(), signer)))
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            origin: self.origin.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Identity")
            .field("origin", &self.origin)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Server-side TLS settings, built once and shared by all connections.
///
/// Cloning is cheap (the rustls configuration sits behind an `Arc`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) inner: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) buffer_limit: Option<usize>,
}

impl ServerConfig {
    /// The appliance's configuration: a default certificate (`(chain PEM, key
    /// PEM)` paths) served without SNI, for IP-address connections and for
    /// unknown names, plus `(name, chain, key)` certificates chosen by SNI. `name`
    /// is an exact host name or a `*.example.com` wildcard, matched
    /// case-insensitively. ALPN offers `h2` then `http/1.1` (a paf service serves
    /// both); TLS 1.2 and 1.3 with rustls' default cipher suites.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file that cannot be read, parsed or whose key
    /// does not match its certificate, or the SNI name that is not valid.
    pub fn from_pem_files(
        default: (&Path, &Path),
        sni: &[(String, PathBuf, PathBuf)],
    ) -> Result<Self, Error> {
        let mut builder = Self::builder(Identity::from_pem_files(default.0, default.1)?);
        for (name, chain, key) in sni {
            builder = builder.sni(name, Identity::from_pem_files(chain, key)?);
        }
        builder.build()
    }

    /// Draws once from the crypto provider's random generator, so that the generator of the
    /// calling thread is seeded now rather than inside the first handshake. aws-lc-rs seeds
    /// it from a CPU-jitter entropy source: about 20 ms of CPU, measured as a third of paf's
    /// samples during the first HTTPS download after a start, during which the loop served
    /// no other connection. A service calls this when it starts, on its loop's thread.
    pub(crate) fn seed_random(&self) {
        let mut bytes = [0u8; 16];
        if let Err(e) = self.inner.crypto_provider().secure_random.fill(&mut bytes) {
            log::warn!("TLS: the crypto provider's random generator failed: {e:?}");
        }
    }

    /// Starts a configuration serving `default` (see
    /// [`ServerConfig::from_pem_files`] for when it is used).
    #[must_use]
    pub fn builder(default: Identity) -> ServerConfigBuilder {
        ServerConfigBuilder {
            default,
            sni: Vec::new(),
            alpn: vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()],
            versions: rustls::DEFAULT_VERSIONS.to_vec(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            buffer_limit: Some(DEFAULT_BUFFER_LIMIT),
            provider: None,
            store: None,
            sessions: None,
        }
    }

    /// How long a session may spend in its handshake.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The underlying rustls configuration.
    #[must_use]
    pub fn rustls(&self) -> &Arc<rustls::ServerConfig> {
        &self.inner
    }

    /// The same configuration keeping resumable sessions in `sessions` (see
    /// [`ServerConfigBuilder::session_cache`]).
    #[must_use]
    pub fn with_session_cache(mut self, sessions: &SessionCache) -> Self {
        let mut inner = (*self.inner).clone();
        inner.session_storage = sessions.0.clone();
        self.inner = Arc::new(inner);
        self
    }

    /// The same configuration offering `protocols` by ALPN, most preferred first (see
    /// [`ServerConfigBuilder::alpn_protocols`]).
    #[must_use]
    pub fn with_alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        let mut inner = (*self.inner).clone();
        inner.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        self.inner = Arc::new(inner);
        self
    }

    /// Whether ALPN offers `protocol`.
    #[must_use]
    pub fn offers_alpn(&self, protocol: &[u8]) -> bool {
        self.inner.alpn_protocols.iter().any(|p| p == protocol)
    }
}

/// Options for a [`ServerConfig`]; every setter has a sensible default.
#[derive(Debug)]
pub struct ServerConfigBuilder {
    default: Identity,
    sni: Vec<(String, Identity)>,
    alpn: Vec<Vec<u8>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    handshake_timeout: Duration,
    buffer_limit: Option<usize>,
    provider: Option<Arc<CryptoProvider>>,
    store: Option<Arc<super::CertStore>>,
    sessions: Option<SessionCache>,
}

/// Where a server keeps the sessions it may resume (TLS 1.2 session ids, TLS 1.3 tickets,
/// which rustls keeps on the server side): one cache shared by the configurations given it,
/// so that a client resumes on any of them (on any worker). Cheap to clone; thread-safe.
#[derive(Clone)]
pub struct SessionCache(Arc<dyn rustls::server::StoresServerSessions>);

impl SessionCache {
    /// A cache of at most `size` sessions (the oldest go first).
    #[must_use]
    pub fn new(size: usize) -> SessionCache {
        SessionCache(rustls::server::ServerSessionMemoryCache::new(size))
    }
}

impl Default for SessionCache {
    /// rustls's own default size: 256 sessions.
    fn default() -> SessionCache {
        SessionCache::new(256)
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache").finish_non_exhaustive()
    }
}

impl ServerConfigBuilder {
    /// Keeps resumable sessions in `sessions` (shared with the other configurations given the
    /// same cache) instead of a cache of this configuration's own.
    #[must_use]
    pub fn session_cache(mut self, sessions: &SessionCache) -> Self {
        self.sessions = Some(sessions.clone());
        self
    }

    /// Looks every handshake's name up in `store` first (certificates installed while the
    /// server runs; see [`CertStore`](super::CertStore)), and answers TLS-ALPN-01 validations
    /// from it. Add [`ALPN_ACME_TLS`](super::ALPN_ACME_TLS) to the ALPN list for those.
    #[must_use]
    pub fn cert_store(mut self, store: Arc<super::CertStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves `identity` to clients asking for `name` by SNI: an exact host name
    /// or `*.parent.domain` (one label, never the parent itself).
    #[must_use]
    pub fn sni(mut self, name: &str, identity: Identity) -> Self {
        self.sni.push((name.to_owned(), identity));
        self
    }

    /// ALPN protocols offered, most preferred first (default: `h2`, `http/1.1`:
    /// a paf service serves HTTP/2 to clients that pick `h2`, see
    /// [`service::https`](crate::service::https)). A client that offers ALPN
    /// without any of these is refused with the `no_application_protocol` alert;
    /// an empty list disables ALPN.
    #[must_use]
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Protocol versions accepted (default: TLS 1.3 and TLS 1.2).
    #[must_use]
    pub fn versions(mut self, versions: &[&'static SupportedProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Deadline for the handshake, counted from session creation.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Initial plaintext/ciphertext send-buffer limit of each session (`None`:
    /// unbounded; not recommended).
    #[must_use]
    pub fn buffer_limit(mut self, limit: Option<usize>) -> Self {
        self.buffer_limit = limit;
        self
    }

    /// Crypto provider (default: [`super::default_provider`]).
    #[must_use]
    pub fn provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Checks every key against its certificate and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] for a key that does not match its certificate or is of
    /// an unsupported type, an invalid or duplicate SNI name, or versions the
    /// provider cannot serve.
    pub fn build(self) -> Result<ServerConfig, Error> {
        let provider = self.provider.unwrap_or_else(super::default_provider);
        let mut resolver = SniResolver::new(self.default.certified_key(&provider)?);
        for (name, identity) in &self.sni {
            resolver.add(name, identity.certified_key(&provider)?)?;
        }
        resolver.store = self.store;
        let mut inner = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .map_err(|e| Error::Config(format!("server protocol versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        inner.alpn_protocols = self.alpn;
        if let Some(sessions) = self.sessions {
            inner.session_storage = sessions.0;
        }
        Ok(ServerConfig {
            inner: Arc::new(inner),
            handshake_timeout: self.handshake_timeout,
            buffer_limit: self.buffer_limit,
        })
    }
}

/// Which server certificates a client accepts.
#[derive(Clone, Debug)]
pub enum ClientTrust {
    /// The Mozilla root program, compiled in (`webpki-roots`).
    WebPki,
    /// Only certificates issued by the CAs in this PEM file.
    CaPemFile(PathBuf),
    /// Only certificates issued by these CAs.
    CaCerts(Vec<CertificateDer<'static>>),
    /// Any certificate for any name (`curl -k`). The handshake signature is still
    /// checked, so the peer must hold the key of the certificate it shows, but
    /// nothing says that certificate is the right one: no protection against an
    /// active attacker.
    DangerousInsecure,
}

/// Client-side TLS settings, shared by all outgoing connections.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) inner: Arc<rustls::ClientConfig>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) buffer_limit: Option<usize>,
}

impl ClientConfig {
    /// Trusts the compiled-in Mozilla roots; ALPN `http/1.1`.
    ///
    /// # Errors
    /// None in practice; shares the signature of the other constructors.
    pub fn webpki_roots() -> Result<Self, Error> {
        Self::builder(ClientTrust::WebPki).build()
    }

    /// Trusts only the CAs of a PEM file; ALPN `http/1.1`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file if it cannot be read or holds no usable
    /// CA certificate.
    pub fn from_ca_pem_file(path: &Path) -> Result<Self, Error> {
        Self::builder(ClientTrust::CaPemFile(path.to_owned())).build()
    }

    /// Accepts any server certificate (see [`ClientTrust::DangerousInsecure`]).
    ///
    /// # Errors
    /// None in practice; shares the signature of the other constructors.
    pub fn dangerous_insecure() -> Result<Self, Error> {
        Self::builder(ClientTrust::DangerousInsecure).build()
    }

    /// Starts a configuration with the given trust policy.
    #[must_use]
    pub fn builder(trust: ClientTrust) -> ClientConfigBuilder {
        ClientConfigBuilder {
            trust,
            alpn: vec![ALPN_HTTP11.to_vec()],
            versions: rustls::DEFAULT_VERSIONS.to_vec(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            buffer_limit: Some(DEFAULT_BUFFER_LIMIT),
            provider: None,
            resumption: true,
        }
    }

    /// The underlying rustls configuration.
    #[must_use]
    pub fn rustls(&self) -> &Arc<rustls::ClientConfig> {
        &self.inner
    }
}

/// Options for a [`ClientConfig`]; every setter has a sensible default.
#[derive(Debug)]
pub struct ClientConfigBuilder {
    trust: ClientTrust,
    alpn: Vec<Vec<u8>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    handshake_timeout: Duration,
    buffer_limit: Option<usize>,
    provider: Option<Arc<CryptoProvider>>,
    resumption: bool,
}

impl ClientConfigBuilder {
    /// ALPN protocols offered (default: `http/1.1`; empty: no ALPN extension).
    #[must_use]
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Protocol versions offered (default: TLS 1.3 and TLS 1.2).
    #[must_use]
    pub fn versions(mut self, versions: &[&'static SupportedProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Deadline for the handshake, counted from session creation.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Initial send-buffer limit of each session (`None`: unbounded).
    #[must_use]
    pub fn buffer_limit(mut self, limit: Option<usize>) -> Self {
        self.buffer_limit = limit;
        self
    }

    /// Crypto provider (default: [`super::default_provider`]).
    #[must_use]
    pub fn provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Whether sessions remember server tickets to resume later connections
    /// with a cheaper handshake (default: yes, in memory, shared by all sessions
    /// of this configuration).
    #[must_use]
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.resumption = enabled;
        self
    }

    /// Loads the trust anchors and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] if a CA file cannot be read or holds no usable CA
    /// certificate, or the provider cannot serve the requested versions.
    pub fn build(self) -> Result<ClientConfig, Error> {
        let provider = self.provider.unwrap_or_else(super::default_provider);
        let algorithms = provider.signature_verification_algorithms;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .map_err(|e| Error::Config(format!("client protocol versions: {e}")))?;
        let builder = match self.trust {
            ClientTrust::WebPki => builder.with_root_certificates(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            ClientTrust::CaPemFile(path) => {
                let pem = std::fs::read(&path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Config(format!("{}: bad certificate PEM: {e}", path.display()))
                    })?;
                builder.with_root_certificates(roots(certs, &path.display().to_string())?)
            }
            ClientTrust::CaCerts(certs) => builder.with_root_certificates(roots(certs, "CA list")?),
            ClientTrust::DangerousInsecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(InsecureVerifier(algorithms))),
        };
        let mut inner = builder.with_no_client_auth();
        inner.alpn_protocols = self.alpn;
        if !self.resumption {
            inner.resumption = rustls::client::Resumption::disabled();
        }
        Ok(ClientConfig {
            inner: Arc::new(inner),
            handshake_timeout: self.handshake_timeout,
            buffer_limit: self.buffer_limit,
        })
    }
}

fn roots(certs: Vec<CertificateDer<'static>>, origin: &str) -> Result<RootCertStore, Error> {
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{origin}: no CERTIFICATE block found"
        )));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| Error::Config(format!("{origin}: unusable CA certificate: {e}")))?;
    }
    Ok(store)
}

/// Accepts any certificate chain, but still verifies the handshake signature
/// against the presented certificate.
#[derive(Debug)]
struct InsecureVerifier(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

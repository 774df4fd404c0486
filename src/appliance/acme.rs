//! The ACME driver of an https listener with an `acme` block: it runs [`acme::Order`]s
//! through `paf::client` on the appliance's loop (the userspace stack, its DNS), answers their
//! challenges, installs the issued chain in the listener's [`CertStore`] (the next handshakes
//! use it; open connections keep theirs), keeps it in `state_dir`, and renews it.
//!
//! With several workers (one loop and stack per core) the driver runs on worker 0 only; what
//! the others need is shared through the appliance's `Shared`: the listener's [`CertStore`]
//! (issued and TLS-ALPN-01 certificates, looked up by every worker's TLS configuration) and
//! the HTTP-01 answers (served by whichever worker accepts the validation's connection).
//!
//! Contract:
//! - Before the driver, [`prepare`] (once per block, for every worker) reads the account key
//!   from `state_dir/account.key` or makes and writes it there. At start ([`Driver::new`]) a
//!   stored certificate (`certificate.pem`, `certificate.key`, for the names in
//!   `certificate.names`) is installed at once when it covers the configured names and has
//!   not expired, and no order is made before its renewal time. Until a certificate is
//!   installed the listener serves its `certificate`, or a self-signed one (see
//!   [`fallback_identity`]).
//! - Renewal starts at two thirds of the certificate's lifetime. A failed order is logged
//!   (step and the server's problem document) and retried after 10 s, doubling up to 1 h, each
//!   wait jittered by ±25% and never shorter than the server's `Retry-After`.
//! - The loop's `now` and wall time are the only clocks read (the wall time converts the
//!   certificate's dates into deadlines).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ::http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use ::http::{HeaderMap, Method};
use net::{ConnId, ListenerId};

use super::Metrics;
use crate::acme::{self, order, AccountKey, Event, Order, Validity};
use crate::client;
use crate::config::{Acme, AcmeChallenge};
use crate::runtime::{App, Cx, LocalWaker, Runtime};
use crate::tls::{self, CertStore, Identity};

/// The first retry after a failed order; each failure in a row doubles it.
const RETRY_FIRST: Duration = Duration::from_secs(10);
/// The longest wait between retries (before `Retry-After`).
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// The longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// Renewal at this fraction of the lifetime.
const RENEW_AT: f64 = 2.0 / 3.0;
/// Largest reply read from the ACME server (a chain is a few KiB).
const MAX_REPLY: usize = 1 << 20;

/// Why a listener's ACME cannot start ([`prepare`]).
#[derive(Debug)]
pub(super) enum StartError {
    /// The state directory or the account key.
    State(String),
    /// The client's TLS configuration (the `ca` file).
    Tls(tls::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::State(s) => write!(f, "acme: {s}"),
            StartError::Tls(e) => write!(f, "acme: directory trust: {e}"),
        }
    }
}

/// What the listener serves until ACME has issued: its configured `certificate`, else a
/// self-signed certificate for the ACME names.
///
/// # Errors
/// [`tls::Error::Config`] when rcgen cannot make it.
pub(super) fn fallback_identity(acme: &Acme) -> Result<Identity, tls::Error> {
    let err = |e: rcgen::Error| tls::Error::Config(format!("self-signed certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = rcgen::CertificateParams::new(acme.domains.clone())
        .map_err(err)?
        .self_signed(&key)
        .map_err(err)?;
    Identity::new(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

/// The files of `state_dir`.
struct Files {
    account: PathBuf,
    chain: PathBuf,
    key: PathBuf,
    names: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Files {
        Files {
            account: dir.join("account.key"),
            chain: dir.join("certificate.pem"),
            key: dir.join("certificate.key"),
            names: dir.join("certificate.names"),
        }
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash never leaves
/// half a file; keys are readable by the owner only.
fn write_atomic(path: &Path, data: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What every worker shares for one listener's `acme` block (see `Shared`): the certificate
/// store the listener's TLS configurations look in, the account key, and the client TLS
/// configuration that trusts the directory.
pub(super) struct Prepared {
    /// Where issued certificates and TLS-ALPN-01 challenge certificates go.
    pub store: Arc<CertStore>,
    /// The account key.
    pub key: Arc<AccountKey>,
    /// Trusts the directory's certificate (the `ca` file, or the webpki roots).
    pub tls: tls::ClientConfig,
}

/// Makes `config`'s state directory if missing, reads the account key there or makes and
/// writes one, and loads the `ca` file: what the driver needs, done once for every worker.
///
/// # Errors
/// [`StartError`] when the state directory cannot be made or read, or the `ca` file cannot
/// be loaded.
pub(super) fn prepare(listener: &str, config: &Acme) -> Result<Prepared, StartError> {
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| StartError::State(format!("{}: {e}", dir.display())))?;
    let files = Files::new(dir);
    let key = match std::fs::read(&files.account) {
        Ok(pem) => AccountKey::from_pem(&pem)
            .map_err(|e| StartError::State(format!("{}: {e}", files.account.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = AccountKey::generate().map_err(|e| StartError::State(e.to_string()))?;
            write_atomic(&files.account, key.to_pem().as_bytes(), true)
                .map_err(|e| StartError::State(format!("{}: {e}", files.account.display())))?;
            log::info!(
                "acme {listener}: new account key in {}",
                files.account.display()
            );
            key
        }
        Err(e) => {
            return Err(StartError::State(format!(
                "{}: {e}",
                files.account.display()
            )))
        }
    };
    let trust = match &config.ca {
        Some(ca) => tls::ClientTrust::CaPemFile(ca.clone()),
        None => tls::ClientTrust::WebPki,
    };
    let tls = tls::ClientConfig::builder(trust)
        .alpn_protocols(&[tls::ALPN_HTTP11])
        .build()
        .map_err(StartError::Tls)?;
    Ok(Prepared {
        store: Arc::new(CertStore::new()),
        key: Arc::new(key),
        tls,
    })
}

/// The outcome of the request out, filled by the client's callback.
type Reply = Rc<RefCell<Option<Result<(order::Response, Option<String>), String>>>>;

/// The order under way and what it made.
struct Current {
    order: Order,
    /// The certificate's key (PEM), to pair with the issued chain.
    key_pem: String,
    /// HTTP-01 tokens set for it.
    tokens: Vec<String>,
}

/// What a driver shares with the appliance (and its workers).
pub(super) struct Links {
    /// The store issued certificates go to (the TLS configurations of the listener on every
    /// worker look there), the account key, the directory's trust.
    pub prepared: Arc<Prepared>,
    /// The HTTP-01 answers of every driver.
    pub http01: Arc<acme::Http01>,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set by a reload that dropped or changed the listener's block.
    pub retired: Rc<Cell<bool>>,
}

/// One listener's ACME driver (an [`App`] on the appliance's loop).
pub(super) struct Driver {
    listener: String,
    config: Acme,
    files: Files,
    /// Whether the issued certificate is also the default (the listener has no `certificate`).
    as_default: bool,
    store: Arc<CertStore>,
    http01: Arc<acme::Http01>,
    metrics: Arc<Metrics>,
    key: Arc<AccountKey>,
    client: client::Client,
    waker: Option<LocalWaker>,
    reply: Reply,
    current: Option<Current>,
    /// When the next order starts, when none is under way.
    next_order: Option<Instant>,
    /// Failed orders in a row.
    failures: u32,
    /// Set by a reload that dropped or changed the listener's `acme` block: nothing more is
    /// ordered (an order under way is dropped).
    retired: Rc<Cell<bool>>,
}

impl Driver {
    /// The driver of `listener`'s `config` on the account and store `links.prepared` (see
    /// [`prepare`]): installs a stored certificate, and attaches its client to `rt`.
    pub(super) fn new(
        rt: &mut Runtime,
        listener: &str,
        config: &Acme,
        as_default: bool,
        links: Links,
    ) -> Driver {
        let Links {
            prepared,
            http01,
            metrics,
            retired,
        } = links;
        let agent = client::Agent::attach(rt, client::Options::default());
        let client = client::Client::new(&agent)
            .with_tls(prepared.tls.clone())
            .with_max_body(MAX_REPLY);
        let now = rt.pass_time().now();
        let mut driver = Driver {
            listener: listener.to_owned(),
            config: config.clone(),
            files: Files::new(&config.state_dir),
            as_default,
            store: prepared.store.clone(),
            http01,
            metrics,
            key: prepared.key.clone(),
            client,
            waker: None,
            reply: Rc::default(),
            current: None,
            next_order: Some(now),
            failures: 0,
            retired,
        };
        driver.load_stored(now, rt.pass_time().wall());
        driver
    }

    /// The driver, waking itself with `waker` when a reply is in.
    pub(super) fn with_waker(mut self, waker: LocalWaker) -> Driver {
        self.waker = Some(waker);
        self
    }

    /// Installs the stored certificate if it is for the configured names and still valid,
    /// and schedules its renewal.
    fn load_stored(&mut self, now: Instant, wall: SystemTime) {
        let names = std::fs::read_to_string(&self.files.names).unwrap_or_default();
        let want = self.config.domains.join("\n");
        if names.trim_end() != want {
            if !names.is_empty() {
                log::info!(
                    "acme {}: the stored certificate is for other names; ordering a new one",
                    self.listener
                );
            }
            return;
        }
        let chain = std::fs::read(&self.files.chain);
        let key = std::fs::read(&self.files.key);
        let (Ok(chain), Ok(key)) = (chain, key) else {
            return;
        };
        match self.install(&chain, &key, now, wall) {
            Ok(v) if v.not_after > wall => log::info!(
                "acme {}: serving the stored certificate for {} (renewal in {:?})",
                self.listener,
                self.config.domains.join(", "),
                self.next_order.map(|t| t.saturating_duration_since(now))
            ),
            Ok(_) => {
                log::warn!("acme {}: the stored certificate has expired", self.listener);
                self.next_order = Some(now);
            }
            Err(e) => log::warn!(
                "acme {}: the stored certificate cannot be used: {e}",
                self.listener
            ),
        }
    }

    /// Installs a chain and key (PEM) for the configured names, updates the expiry metric and
    /// schedules the renewal.
    fn install(
        &mut self,
        chain: &[u8],
        key: &[u8],
        now: Instant,
        wall: SystemTime,
    ) -> Result<Validity, String> {
        let identity = Identity::from_pem(chain, key).map_err(|e| e.to_string())?;
        let validity = Validity::of_certificate(identity.chain()[0].as_ref())
            .ok_or("the certificate's validity does not parse")?;
        self.store
            .install(&self.config.domains, &identity, self.as_default)
            .map_err(|e| e.to_string())?;
        let expiry = validity
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for d in &self.config.domains {
            self.metrics.acme_expiry(d, expiry);
        }
        let renew = validity
            .renew_at(RENEW_AT)
            .duration_since(wall)
            .unwrap_or_default();
        self.next_order = Some(now + renew);
        Ok(validity)
    }

    /// Starts an order: a fresh certificate key and its CSR.
    fn start_order(&mut self) -> Result<(), String> {
        let key = rcgen::KeyPair::generate().map_err(|e| format!("certificate key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(self.config.domains.clone())
            .map_err(|e| format!("CSR: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.config.domains[0].clone());
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("CSR: {e}"))?;
        let settings = acme::Settings {
            directory: self.config.directory.clone(),
            contact: self.config.contact.clone(),
            domains: self.config.domains.clone(),
            challenge: self.config.challenge,
        };
        log::info!(
            "acme {}: ordering a certificate for {} from {} ({})",
            self.listener,
            self.config.domains.join(", "),
            self.config.directory,
            self.config.challenge.name()
        );
        self.current = Some(Current {
            order: Order::new(settings, self.key.clone(), csr.der().to_vec()),
            key_pem: key.serialize_pem(),
            tokens: Vec::new(),
        });
        Ok(())
    }

    /// Everything that can move: the reply in, events out, the next request or order.
    fn step(&mut self, cx: &mut Cx<'_>) {
        if self.retired.get() {
            if self.current.take().is_some() || self.next_order.take().is_some() {
                log::info!("acme {}: retired by a reload", self.listener);
            }
            return;
        }
        let now = cx.now;
        let wall = cx.wall();
        loop {
            if self.current.is_none() {
                if self.next_order.is_none_or(|t| now < t) {
                    return;
                }
                self.next_order = None;
                if let Err(e) = self.start_order() {
                    self.failed(now, format!("cannot start: {e}"), None);
                    return;
                }
            }
            let Some(cur) = self.current.as_mut() else {
                return;
            };
            if let Some(reply) = self.reply.borrow_mut().take() {
                match reply {
                    Ok((mut r, retry_date)) => {
                        if let Some(date) = retry_date {
                            r.retry_after = httpdate::parse_http_date(&date)
                                .ok()
                                .map(|t| t.duration_since(wall).unwrap_or_default());
                        }
                        cur.order.handle_response(now, r);
                    }
                    Err(e) => cur.order.handle_transport_error(now, e),
                }
            }
            while let Some(ev) = self.current.as_mut().and_then(|c| c.order.poll_event()) {
                self.event(now, wall, ev);
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            if cur.order.is_finished() {
                self.current = None;
                continue;
            }
            match cur.order.poll_request(now) {
                Some(req) => self.send(req),
                None if cur.order.is_finished() => continue,
                None => return,
            }
            return;
        }
    }

    fn event(&mut self, now: Instant, wall: SystemTime, ev: Event) {
        match ev {
            Event::Respond {
                domain,
                token,
                key_authorization,
            } => match self.config.challenge {
                AcmeChallenge::Http01 => {
                    self.http01.set(&token, &key_authorization);
                    if let Some(c) = self.current.as_mut() {
                        c.tokens.push(token);
                    }
                }
                AcmeChallenge::TlsAlpn01 => {
                    let made = acme::challenge::tls_alpn01_identity(&domain, &key_authorization)
                        .and_then(|id| self.store.set_challenge(&domain, &id));
                    if let Err(e) = made {
                        log::warn!("acme {}: tls-alpn-01 for {domain}: {e}", self.listener);
                    }
                }
            },
            Event::Issued { chain_pem } => {
                let Some(cur) = self.current.take() else {
                    return;
                };
                self.end_challenges(&cur);
                let key_pem = cur.key_pem;
                match self.install(chain_pem.as_bytes(), key_pem.as_bytes(), now, wall) {
                    Ok(v) => {
                        self.failures = 0;
                        self.metrics.acme_order(&self.listener, true);
                        self.persist(&chain_pem, &key_pem);
                        log::info!(
                            "acme {}: certificate for {} installed, valid until {}, renewal in {:?}",
                            self.listener,
                            self.config.domains.join(", "),
                            httpdate::fmt_http_date(v.not_after),
                            self.next_order.map(|t| t.saturating_duration_since(now))
                        );
                    }
                    Err(e) => {
                        self.failed(now, format!("the issued chain cannot be used: {e}"), None)
                    }
                }
            }
            Event::Failed(f) => {
                if let Some(cur) = self.current.take() {
                    self.end_challenges(&cur);
                }
                let retry = f.retry_after;
                self.failed(now, format!("order failed at {f}"), retry);
            }
        }
    }

    fn end_challenges(&self, cur: &Current) {
        for t in &cur.tokens {
            self.http01.remove(t);
        }
        self.store.clear_challenges();
    }

    fn persist(&self, chain: &str, key: &str) {
        let r = write_atomic(&self.files.key, key.as_bytes(), true)
            .and_then(|()| write_atomic(&self.files.chain, chain.as_bytes(), false))
            .and_then(|()| {
                write_atomic(
                    &self.files.names,
                    format!("{}\n", self.config.domains.join("\n")).as_bytes(),
                    false,
                )
            });
        if let Err(e) = r {
            log::warn!(
                "acme {}: cannot keep the certificate in {}: {e}",
                self.listener,
                self.config.state_dir.display()
            );
        }
    }

    /// Counts and logs a failed order and schedules the next one.
    fn failed(&mut self, now: Instant, why: String, retry_after: Option<Duration>) {
        self.current = None;
        self.failures += 1;
        self.metrics.acme_order(&self.listener, false);
        let backoff = RETRY_FIRST
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(RETRY_MAX);
        let wait = backoff
            .mul_f64(jitter())
            .max(retry_after.unwrap_or_default().min(RETRY_AFTER_MAX));
        self.next_order = Some(now + wait);
        log::warn!(
            "acme {}: {why}; retry {} in {:.1}s",
            self.listener,
            self.failures,
            wait.as_secs_f64()
        );
    }

    /// Sends `req`; its outcome lands in `reply` and wakes the driver.
    fn send(&mut self, req: order::Request) {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static(concat!("paf-acme/", env!("CARGO_PKG_VERSION"))),
        );
        if req.method == order::Method::Post {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/jose+json"),
            );
        }
        if req.wants_pem {
            headers.insert(
                ACCEPT,
                HeaderValue::from_static("application/pem-certificate-chain"),
            );
        }
        let method = match req.method {
            order::Method::Get => Method::GET,
            order::Method::Head => Method::HEAD,
            order::Method::Post => Method::POST,
        };
        log::debug!("acme {}: {method} {}", self.listener, req.url);
        let slot = self.reply.clone();
        let waker = self.waker.clone();
        let url = req.url.clone();
        self.client
            .request(method, &req.url, headers, req.body, move |r| {
                let out = match r {
                    Ok(resp) => {
                        let h = |name| {
                            resp.headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let retry = h(RETRY_AFTER);
                        let seconds = retry.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
                        let date = retry.filter(|_| seconds.is_none());
                        Ok((
                            order::Response {
                                status: resp.status.as_u16(),
                                location: h(LOCATION),
                                nonce: h(HeaderName::from_static("replay-nonce")),
                                retry_after: seconds.map(Duration::from_secs),
                                body: resp.body,
                            },
                            date,
                        ))
                    }
                    Err(e) => Err(format!("{url}: {e}")),
                };
                *slot.borrow_mut() = Some(out);
                if let Some(w) = waker {
                    w.wake();
                }
            });
    }
}

/// A factor in [0.75, 1.25) from the system's random source.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    0.75 + f64::from(u16::from_le_bytes(b)) / 131_072.0
}

impl App for Driver {
    fn handle_accept(
        &mut self,
        cx: &mut Cx<'_>,
        _: ListenerId,
        conn: ConnId,
        _: std::net::SocketAddr,
    ) {
        cx.abort(conn);
    }

    fn handle_ready(&mut self, _: &mut Cx<'_>, _: ConnId) {}

    fn poll_timeout(&self) -> Option<Instant> {
        if self.retired.get() {
            return None;
        }
        match &self.current {
            Some(c) => c.order.poll_timeout(),
            None => self.next_order,
        }
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.step(cx);
    }

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        self.step(cx);
    }
}

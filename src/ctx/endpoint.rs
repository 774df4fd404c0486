//! Connection endpoints and their resolution in priority order.
//!
//! The endpoint types are generic: `S` is the network stack handle the client runtime connects
//! through (opaque here; the runtime fills it in, e.g. a handle to the loop's `net::Transport`),
//! `C` the TLS client configuration (the runtime uses `Arc<rustls::ClientConfig>`). The keys
//! themselves (`tcp_edn`, `tls_edn`) are made by the runtime with [`make`](super::make), so that
//! this module depends on neither.
//!
//! [`Connect`] walks the candidates: `tls_edn` first; if the ctx does not describe it at all
//! (only missing keys: no TLS config given, say), `tcp_edn`. Once a TLS endpoint was built, or
//! its resolution failed for another reason than absent keys (a fold failed, a cycle), plain TCP
//! is tried only if [`allow_plain_fallback`] resolves to `true`: a broken TLS setup never
//! silently becomes plaintext.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use super::resolve::{Engine, KeyError, Missing, Resolution};
use super::{make, Ctx, Value};

/// What a plain TCP connection needs (mimic's `tcp_edn`: stack, address, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEndpoint<S> {
    /// The stack to connect through (opaque here).
    pub stack: S,
    /// The server's address.
    pub addr: IpAddr,
    /// The server's port.
    pub port: u16,
}

/// What a TLS connection needs (mimic's `tls_edn`: domain name, TLS config, stack, address,
/// port). `domain_name` is the SNI and the name the certificate is checked against; without it
/// the certificate must be valid for `addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsEndpoint<S, C> {
    /// Server name for SNI and certificate verification.
    pub domain_name: Option<String>,
    /// The TLS client configuration (opaque here).
    pub tls: C,
    /// The stack to connect through (opaque here).
    pub stack: S,
    /// The server's address.
    pub addr: IpAddr,
    /// The server's port.
    pub port: u16,
}

/// An endpoint to try, as yielded by [`Connect::poll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint<S, C> {
    /// Connect with TLS.
    Tls(TlsEndpoint<S, C>),
    /// Connect in plain TCP.
    Tcp(TcpEndpoint<S>),
}

impl<S, C> Endpoint<S, C> {
    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Endpoint::Tls(e) => SocketAddr::new(e.addr, e.port),
            Endpoint::Tcp(e) => SocketAddr::new(e.addr, e.port),
        }
    }

    /// Whether this is a TLS endpoint.
    pub fn is_tls(&self) -> bool {
        matches!(self, Endpoint::Tls(_))
    }
}

/// The key that allows plain TCP after TLS failed (absent means no). Add `true` to a ctx only
/// when plaintext is acceptable for the request.
pub fn allow_plain_fallback() -> Value<bool> {
    static KEY: OnceLock<Value<bool>> = OnceLock::new();
    *KEY.get_or_init(|| make::<bool>("allow_plain_fallback"))
}

/// What happened to one candidate endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateOutcome {
    /// The endpoint could not be built from the ctx.
    Unresolved(KeyError),
    /// It was built and tried; the connection failed.
    AttemptFailed {
        /// Where the connection went.
        addr: SocketAddr,
        /// Why it failed, as reported to [`Connect::attempt_failed`].
        reason: String,
    },
    /// Not tried: TLS failed and the ctx does not allow a plaintext fallback.
    NoFallback,
}

/// One candidate of a failed [`Connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The endpoint key's name (`tls_edn`, `tcp_edn`).
    pub key: &'static str,
    /// What happened to it.
    pub outcome: CandidateOutcome,
}

/// No endpoint could be used: every candidate, in priority order, with what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    candidates: Vec<Candidate>,
}

impl ResolveError {
    /// The candidates in priority order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Every missing key reported by any candidate.
    pub fn missing(&self) -> impl Iterator<Item = &Missing> {
        self.candidates.iter().flat_map(|c| match &c.outcome {
            CandidateOutcome::Unresolved(e) => e.missing(),
            _ => &[],
        })
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no usable endpoint")?;
        let mut sep = ": ";
        for c in &self.candidates {
            f.write_str(sep)?;
            sep = "; ";
            match &c.outcome {
                CandidateOutcome::Unresolved(e) => write!(f, "{e}")?,
                CandidateOutcome::AttemptFailed { addr, reason } => {
                    write!(f, "{} to {addr} failed: {reason}", c.key)?
                }
                CandidateOutcome::NoFallback => {
                    write!(f, "{} not tried (no plaintext fallback after TLS)", c.key)?
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for ResolveError {}

/// What to do next; see [`Connect::poll`].
#[derive(Debug)]
pub enum Next<S, C> {
    /// Try this endpoint; report a failure with [`Connect::attempt_failed`].
    Connect(Endpoint<S, C>),
    /// A fold step is pending (or an attempt is under way): poll again later.
    Pending,
    /// No endpoint is left.
    Failed(ResolveError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Tls,
    TlsAttempt(SocketAddr),
    /// TLS failed: TCP only if the ctx allows it.
    Fallback,
    Tcp,
    TcpAttempt(SocketAddr),
    Done,
}

/// Resolves the endpoints of a ctx in priority order (TLS, then TCP) and keeps the report of
/// what failed. One per connection attempt; lazy like every resolution (a DNS fold runs only
/// when an endpoint needs its result, once for both candidates).
pub struct Connect<S, C> {
    engine: Engine,
    tls: Value<TlsEndpoint<S, C>>,
    tcp: Value<TcpEndpoint<S>>,
    stage: Stage,
    report: Vec<Candidate>,
    /// The TLS endpoint was passed over for missing keys; its report is made only if no
    /// endpoint is found (an `http://` ctx has no TLS configuration: the common case).
    tls_missing: bool,
}

impl<S: Clone + 'static, C: Clone + 'static> Connect<S, C> {
    /// Starts resolving `ctx` with the runtime's endpoint keys.
    pub fn new(ctx: &Ctx, tls: &Value<TlsEndpoint<S, C>>, tcp: &Value<TcpEndpoint<S>>) -> Self {
        Connect {
            engine: Engine::new(ctx),
            tls: *tls,
            tcp: *tcp,
            stage: Stage::Tls,
            report: Vec::new(),
            tls_missing: false,
        }
    }

    /// The next endpoint to try, `Pending` while a fold step (or a yielded attempt) is under
    /// way, or the final error. Call again after a pending step completed or an attempt failed.
    pub fn poll(&mut self) -> Next<S, C> {
        loop {
            match self.stage {
                Stage::Tls if self.engine.is_missing(&self.tls) => {
                    self.tls_missing = true;
                    self.stage = Stage::Tcp;
                }
                Stage::Tls => match self.engine.resolve(&self.tls) {
                    Resolution::Pending => return Next::Pending,
                    Resolution::Ready(e) => {
                        let e = Endpoint::Tls(e);
                        self.stage = Stage::TlsAttempt(e.addr());
                        return Next::Connect(e);
                    }
                    Resolution::Failed(e) => {
                        self.stage = if e.is_missing_only() {
                            Stage::Tcp
                        } else {
                            Stage::Fallback
                        };
                        self.unresolved(self.tls.name(), e);
                    }
                },
                Stage::Fallback => match self.engine.resolve(&allow_plain_fallback()) {
                    Resolution::Pending => return Next::Pending,
                    Resolution::Ready(true) => self.stage = Stage::Tcp,
                    Resolution::Ready(false) | Resolution::Failed(_) => {
                        self.report.push(Candidate {
                            key: self.tcp.name(),
                            outcome: CandidateOutcome::NoFallback,
                        });
                        self.stage = Stage::Done;
                    }
                },
                Stage::Tcp => match self.engine.resolve(&self.tcp) {
                    Resolution::Pending => return Next::Pending,
                    Resolution::Ready(e) => {
                        let e = Endpoint::Tcp(e);
                        self.stage = Stage::TcpAttempt(e.addr());
                        return Next::Connect(e);
                    }
                    Resolution::Failed(e) => {
                        self.unresolved(self.tcp.name(), e);
                        self.stage = Stage::Done;
                    }
                },
                Stage::TlsAttempt(_) | Stage::TcpAttempt(_) => return Next::Pending,
                Stage::Done => {
                    if std::mem::take(&mut self.tls_missing) {
                        let e = self.engine.report_missing(&self.tls);
                        self.report.insert(
                            0,
                            Candidate {
                                key: self.tls.name(),
                                outcome: CandidateOutcome::Unresolved(e),
                            },
                        );
                    }
                    return Next::Failed(ResolveError {
                        candidates: self.report.clone(),
                    });
                }
            }
        }
    }

    /// The endpoint last yielded by [`poll`](Self::poll) could not be connected (refused, timed
    /// out, TLS handshake failed); `reason` goes into the report. Ignored when no attempt is
    /// under way.
    pub fn attempt_failed(&mut self, reason: impl Into<String>) {
        let (key, addr, next) = match self.stage {
            Stage::TlsAttempt(addr) => (self.tls.name(), addr, Stage::Fallback),
            Stage::TcpAttempt(addr) => (self.tcp.name(), addr, Stage::Done),
            _ => return,
        };
        self.report.push(Candidate {
            key,
            outcome: CandidateOutcome::AttemptFailed {
                addr,
                reason: reason.into(),
            },
        });
        self.stage = next;
    }

    fn unresolved(&mut self, key: &'static str, e: KeyError) {
        self.report.push(Candidate {
            key,
            outcome: CandidateOutcome::Unresolved(e),
        });
    }
}

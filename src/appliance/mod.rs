//! The appliance: what `paf run` serves from a [`Config`] — one HTTP service per listener, each
//! request dispatched to the first matching route (static, files, proxy, redirect, health,
//! metrics), with Prometheus counters; `proxy` routes go through one client agent per upstream
//! on the same loop (see `proxy`).
//!
//! Contract: [`start`] opens every listener or none (a port that cannot be listened on fails
//! the start before anything is served); all services share one stop [`Switch`] and finish when
//! it is turned off and their connections have drained.

#[cfg(feature = "certs")]
mod acme;
mod compress;
pub mod files;
pub mod metrics;
mod proxy;
mod routes;

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::{AccessLogTarget, Config, Listener, Protocol};
use crate::runtime::Runtime;
use crate::service::access_log::{AccessLog, FileSink};
use crate::service::{self, Handle, InitError, Initialized, Switch};

pub use metrics::Metrics;

/// Why the appliance cannot start.
#[derive(Debug)]
pub enum StartError {
    /// A listener's port cannot be listened on.
    Listen {
        /// The listener's name.
        listener: String,
        /// Why.
        error: InitError,
    },
    /// A listener's certificates cannot be loaded.
    Tls {
        /// The listener's name.
        listener: String,
        /// Why.
        error: crate::tls::Error,
    },
    /// A listener's access-log file cannot be opened.
    AccessLog {
        /// The listener's name.
        listener: String,
        /// Why.
        error: std::io::Error,
    },
    /// A listener's ACME driver cannot start (its state directory, its `ca` file), or ACME
    /// is configured in a build without the `certs` feature.
    Acme {
        /// The listener's name.
        listener: String,
        /// Why.
        error: String,
    },
    /// An upstream's TLS configuration (its `ca` file) cannot be loaded.
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// Why.
        error: crate::tls::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Listen { listener, error } => write!(f, "listener {listener:?}: {error}"),
            StartError::Tls { listener, error } => write!(f, "listener {listener:?}: {error}"),
            StartError::AccessLog { listener, error } => {
                write!(f, "listener {listener:?}: access log: {error}")
            }
            StartError::Acme { listener, error } => write!(f, "listener {listener:?}: {error}"),
            StartError::Upstream { upstream, error } => {
                write!(f, "upstream {upstream:?}: {error}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// A started appliance.
#[derive(Debug)]
pub struct Appliance {
    /// One handle per listener, in config order.
    pub handles: Vec<Handle>,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The switch that stops every listener.
    pub stop: Switch,
    /// The access-log sinks, one per distinct file (and one for stderr), shared by the
    /// listeners that write there.
    pub access_logs: Vec<FileSink>,
}

impl Appliance {
    /// Whether every listener's service has finished (after the switch was turned off).
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(Handle::is_finished)
    }

    /// Writes what the access logs have queued and ends their writer threads: call it once
    /// the appliance has finished.
    pub fn close_access_logs(&self) {
        for sink in &self.access_logs {
            sink.close();
        }
    }
}

/// The sink for `target`, opened once and shared by every listener that logs there.
fn access_sink(
    sinks: &mut Vec<(AccessLogTarget, FileSink)>,
    target: &AccessLogTarget,
) -> std::io::Result<FileSink> {
    if let Some((_, s)) = sinks.iter().find(|(t, _)| t == target) {
        return Ok(s.clone());
    }
    let sink = match target {
        AccessLogTarget::Stderr => FileSink::stderr()?,
        AccessLogTarget::File(path) => FileSink::open(path)?,
    };
    sinks.push((target.clone(), sink.clone()));
    Ok(sink)
}

/// Start every listener of `config` on `rt`.
///
/// # Errors
/// [`StartError`] naming the listener that cannot start; nothing is served then (listeners
/// already opened are closed by turning `stop` off).
pub fn start(rt: &mut Runtime, config: &Config, stop: Switch) -> Result<Appliance, StartError> {
    let metrics = Arc::new(Metrics::default());
    let config = Rc::new(config.clone());
    let proxy = match proxy::Proxy::new(rt, &config, metrics.clone()) {
        Ok(p) => Rc::new(p),
        Err(proxy::StartError { upstream, error }) => {
            stop.turn_off();
            return Err(StartError::Upstream { upstream, error });
        }
    };
    let mut handles = Vec::new();
    let mut sinks = Vec::new();
    let http01 = Arc::new(crate::acme::Http01::default());
    for (index, listener) in config.listeners.iter().enumerate() {
        let log = match &listener.access_log {
            None => None,
            Some(l) => match access_sink(&mut sinks, &l.target) {
                Ok(sink) => Some(AccessLog::new(l.format, sink)),
                Err(error) => {
                    stop.turn_off();
                    return Err(StartError::AccessLog {
                        listener: listener.name.clone(),
                        error,
                    });
                }
            },
        };
        let store = Arc::new(crate::tls::CertStore::new());
        let tls = match tls_config(listener, &store) {
            Ok(t) => t,
            Err(error) => {
                stop.turn_off();
                return Err(StartError::Tls {
                    listener: listener.name.clone(),
                    error,
                });
            }
        };
        if let Protocol::Https {
            acme: Some(acme),
            certificate,
            ..
        } = &listener.protocol
        {
            let as_default = certificate.is_none();
            if let Err(error) = start_acme(rt, listener, acme, as_default, store, &http01, &metrics)
            {
                stop.turn_off();
                return Err(StartError::Acme {
                    listener: listener.name.clone(),
                    error,
                });
            }
        }
        let service = match service::init_with_backlog(rt, listener.port, listener.limits.backlog) {
            Ok(s) => s,
            Err(error) => {
                stop.turn_off();
                return Err(StartError::Listen {
                    listener: listener.name.clone(),
                    error,
                });
            }
        };
        let service = match log {
            Some(log) => service.access_log(log),
            None => service.no_access_log(),
        };
        // HTTP-01 is answered on port 80, ahead of the routes.
        let answers =
            (listener.port == 80 && listener.protocol == Protocol::Http).then(|| http01.clone());
        let router = routes::Router::new(
            config.clone(),
            index,
            metrics.clone(),
            proxy.clone(),
            answers,
        );
        let Initialized(handle) = serve(service, listener, tls, stop.clone(), router);
        metrics.add_service(&listener.name, handle.clone());
        handles.push(handle);
    }
    let sampler = metrics::Sampler {
        metrics: metrics.clone(),
        next: Some(rt.pass_time().now()),
    };
    let _ = rt.add(sampler, |_, _| Ok::<(), ()>(()));
    Ok(Appliance {
        handles,
        metrics,
        stop,
        access_logs: sinks.into_iter().map(|(_, s)| s).collect(),
    })
}

/// Starts the ACME driver of `listener` on `rt`.
#[cfg(feature = "certs")]
fn start_acme(
    rt: &mut Runtime,
    listener: &Listener,
    config: &crate::config::Acme,
    as_default: bool,
    store: Arc<crate::tls::CertStore>,
    http01: &Arc<crate::acme::Http01>,
    metrics: &Arc<Metrics>,
) -> Result<(), String> {
    let driver = acme::Driver::new(
        rt,
        &listener.name,
        config,
        as_default,
        store,
        http01.clone(),
        metrics.clone(),
    )
    .map_err(|e| e.to_string())?;
    rt.add_with(|cx| Ok::<_, String>(driver.with_waker(cx.local_waker())))
        .map(|_| ())
}

/// Without rcgen there are no CSRs: ACME needs the `certs` feature.
#[cfg(not(feature = "certs"))]
fn start_acme(
    _: &mut Runtime,
    _: &Listener,
    _: &crate::config::Acme,
    _: bool,
    _: Arc<crate::tls::CertStore>,
    _: &Arc<crate::acme::Http01>,
    _: &Arc<Metrics>,
) -> Result<(), String> {
    Err("acme needs paf built with the `certs` feature".into())
}

/// The TLS configuration of an https listener (certificates by SNI, its handshake timeout;
/// with ACME, `store` ahead of them and `acme-tls/1` offered for TLS-ALPN-01).
fn tls_config(
    listener: &Listener,
    store: &Arc<crate::tls::CertStore>,
) -> Result<Option<crate::tls::ServerConfig>, crate::tls::Error> {
    let Protocol::Https {
        certificate,
        sni,
        acme,
    } = &listener.protocol
    else {
        return Ok(None);
    };
    let default = match (certificate, acme) {
        (Some((certificate, key)), _) => crate::tls::Identity::from_pem_files(certificate, key)?,
        #[cfg(feature = "certs")]
        (None, Some(acme)) => acme::fallback_identity(acme)?,
        _ => {
            return Err(crate::tls::Error::Config(
                "no certificate (acme needs the `certs` feature)".into(),
            ))
        }
    };
    let mut b = crate::tls::ServerConfig::builder(default);
    for (name, chain, key) in sni {
        b = b.sni(name, crate::tls::Identity::from_pem_files(chain, key)?);
    }
    let mut alpn: Vec<&[u8]> = listener.protocols.iter().map(|p| p.as_bytes()).collect();
    if let Some(acme) = acme {
        b = b.cert_store(store.clone());
        if acme.challenge == crate::config::AcmeChallenge::TlsAlpn01 {
            alpn.push(crate::tls::ALPN_ACME_TLS);
        }
    }
    b.handshake_timeout(listener.limits.handshake_timeout)
        .alpn_protocols(&alpn)
        .build()
        .map(Some)
}

fn serve(
    service: service::Service<'_>,
    listener: &Listener,
    tls: Option<crate::tls::ServerConfig>,
    stop: Switch,
    router: routes::Router,
) -> Initialized {
    let router = Rc::new(router);
    let r = router.clone();
    let on_error = move |peer,
                         error: &crate::http::Error,
                         request: Option<&::http::Request<()>>,
                         respond| { r.error(peer, error, request, respond) };
    let on_request = move |peer, reqd| router.handle(peer, reqd);
    let config = listener.limits.http.clone();
    match tls {
        Some(tls) => service::https(service, tls, config, Some(stop), on_error, on_request),
        None => service::http(service, config, Some(stop), on_error, on_request),
    }
}

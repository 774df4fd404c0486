//! The appliance: what `paf run` serves from a [`Config`] — one HTTP service per listener, each
//! request dispatched to the first matching route (static, files, proxy, redirect, health,
//! metrics; CONNECT requests to `connect` routes only), with Prometheus counters; `proxy`
//! routes go through one client agent per upstream on the same loop (see `proxy`), `connect`
//! routes dial their targets through one more (see `connect`).
//!
//! Contract: [`start`] opens every listener or none (a port that cannot be listened on fails
//! the start before anything is served); all services stop when the one stop [`Switch`] is
//! turned off, and finish once their connections have drained. [`Appliance::reload`] applies a
//! new configuration while serving, all or nothing, without closing a kept listener's socket
//! (see [`reload`]).

#[cfg(feature = "certs")]
mod acme;
mod compress;
mod connect;
pub mod files;
pub mod metrics;
mod proxy;
pub mod reload;
mod routes;
mod shared;

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use net::ListenerId;

use crate::config::{AccessLogTarget, Config, Listener, Protocol};
use crate::runtime::Runtime;
use crate::service::access_log::{AccessLog, FileSink};
use crate::service::{self, Handle, InitError, Initialized, Switch};

pub use metrics::Metrics;
pub use reload::{Plan, ReloadError};
pub use shared::Shared;

/// The worker whose appliance runs the ACME order drivers (the others serve what they
/// publish: see [`Shared`]).
pub const ACME_WORKER: usize = 0;

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

/// The access-log sinks of an appliance, one per distinct file (and one for stderr), shared by
/// the listeners that write there. Clone it to another thread (`SIGUSR1`): a reload adds the
/// files it opens.
#[derive(Clone, Debug, Default)]
pub struct AccessLogs(Arc<Mutex<Vec<FileSink>>>);

impl From<Vec<FileSink>> for AccessLogs {
    fn from(sinks: Vec<FileSink>) -> AccessLogs {
        AccessLogs(Arc::new(Mutex::new(sinks)))
    }
}

impl AccessLogs {
    /// The sinks now.
    pub fn sinks(&self) -> Vec<FileSink> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether any sink writes to a file (not stderr).
    pub fn has_files(&self) -> bool {
        self.sinks().iter().any(|s| s.path().is_some())
    }

    /// Reopens every file (logrotate's `SIGUSR1`); see [`FileSink::reopen`].
    pub fn reopen(&self) {
        for s in self.sinks() {
            s.reopen();
        }
    }

    fn add(&self, sink: FileSink) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sink);
    }
}

/// A started appliance.
pub struct Appliance {
    /// The handles of the services still running: one per listener, and those of services a
    /// reload replaced that still serve connections accepted before it. Every one completes
    /// after the stop switch was turned off.
    pub handles: Vec<Handle>,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The switch that stops every listener.
    pub stop: Switch,
    /// The access-log sinks.
    pub access_logs: AccessLogs,
    /// The running configuration (its interface the one started with).
    config: Rc<Config>,
    /// One per listening port, in config order.
    ports: Vec<Port>,
    /// The upstreams' client agents.
    proxy: Option<Rc<proxy::Proxy>>,
    /// Every sink opened, by target: kept for the services that still log there.
    sinks: Vec<(AccessLogTarget, FileSink)>,
    /// What the process's workers share: per-listener client tables, the ACME HTTP-01
    /// answers of every driver (served on the port-80 http listener), ACME certificate stores.
    shared: Arc<Shared>,
    /// This appliance's worker (0 when it is the only one).
    #[cfg_attr(not(feature = "certs"), allow(dead_code))] // (read for ACME only)
    worker: usize,
    /// The ACME blocks in use, one per https listener with one; on [`ACME_WORKER`], each
    /// with its driver.
    acme: Vec<AcmeRun>,
}

/// Adds a made ACME driver to the loop (once nothing else can fail).
type StartDriver = Box<dyn FnOnce(&mut Runtime)>;

/// A listener's ACME block across reloads: kept while its port keeps the same block (its
/// certificate store then goes on serving the listener's new TLS configuration, and on
/// [`ACME_WORKER`] its driver goes on).
#[cfg_attr(not(feature = "certs"), allow(dead_code))] // (none is made without it)
struct AcmeRun {
    port: u16,
    config: crate::config::Acme,
    as_default: bool,
    store: Arc<crate::tls::CertStore>,
    /// Held so that [`Shared`] keeps the block's entry while a worker uses it.
    #[cfg(feature = "certs")]
    prepared: Arc<acme::Prepared>,
    /// Set when a reload drops or changes the block: the driver orders nothing more.
    retired: Rc<std::cell::Cell<bool>>,
}

/// The router a listener's requests start with. Every service that served the port (one per
/// reload) shares it, so a request on a connection accepted before a reload is routed by the
/// new configuration; a request takes the router when it starts and keeps it.
type RouterSlot = Rc<RefCell<Rc<routes::Router>>>;

/// A listening port across reloads.
struct Port {
    port: u16,
    name: String,
    /// A child of the appliance's stop switch, turned off when a reload removes the port.
    stop: Switch,
    router: RouterSlot,
    /// The service that has the listening socket.
    handle: Handle,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("port", &self.port)
            .field("name", &self.name)
            .finish()
    }
}

impl fmt::Debug for Appliance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Appliance")
            .field("handles", &self.handles.len())
            .field("ports", &self.ports)
            .finish()
    }
}

impl Appliance {
    /// Whether every service has finished (after the switch was turned off).
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(Handle::is_finished)
    }

    /// Writes what the access logs have queued and ends their writer threads: call it once
    /// the appliance has finished.
    pub fn close_access_logs(&self) {
        for sink in self.access_logs.sinks() {
            sink.close();
        }
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Makes `new` the running configuration along `plan`: opens everything that can fail
    /// first (certificates, access-log files, upstream agents, new ports) and changes nothing
    /// if one fails; then starts a service per listener, on the socket of the same port when
    /// there was one, and stops the ports `new` no longer has.
    fn apply(&mut self, rt: &mut Runtime, mut new: Config, plan: &Plan) -> Result<(), StartError> {
        if !self.ports.is_empty() || self.proxy.is_some() {
            // Not applied: the running interface stays the one started with.
            new.interface = self.config.interface.clone();
        }
        let config = Rc::new(new);
        let (acme, drivers) = self.acme_for(rt, &config)?;
        let tls = config
            .listeners
            .iter()
            .map(|l| {
                let store = acme
                    .iter()
                    .find(|a| a.port == l.port)
                    .map_or_else(Default::default, |a| a.store.clone());
                let sessions = self.shared.sessions(l.port);
                tls_config(l, &store, &sessions).map_err(|error| StartError::Tls {
                    listener: l.name.clone(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut opened = Vec::new();
        let logs = self.access_logs_for(&config, &mut opened);
        let logs = match logs {
            Ok(l) => l,
            Err(e) => {
                close_all(&opened);
                return Err(e);
            }
        };
        let proxy = match &self.proxy {
            Some(p) if !plan.upstreams_changed => Ok(p.clone()),
            _ => proxy::Proxy::new(rt, &config, self.metrics.clone())
                .map(Rc::new)
                .map_err(
                    |proxy::StartError { upstream, error }| StartError::Upstream {
                        upstream,
                        error,
                    },
                ),
        };
        let proxy = match proxy {
            Ok(p) => p,
            Err(e) => {
                close_all(&opened);
                return Err(e);
            }
        };
        let sockets = match self.sockets(rt, &config) {
            Ok(s) => s,
            Err(e) => {
                close_all(&opened);
                return Err(e);
            }
        };
        // Nothing can fail from here on.
        let mut ports = Vec::new();
        for (index, ((listener, tls), (socket, log))) in config
            .listeners
            .iter()
            .zip(tls)
            .zip(sockets.into_iter().zip(logs))
            .enumerate()
        {
            // HTTP-01 is answered on port 80, ahead of the routes.
            let answers = (listener.port == 80 && listener.protocol == Protocol::Http)
                .then(|| self.shared.http01.clone());
            let router = Rc::new(routes::Router::new(
                config.clone(),
                index,
                self.metrics.clone(),
                proxy.clone(),
                answers,
            ));
            let old = self.ports.iter().find(|p| p.port == listener.port);
            // One table per port for every worker, kept across reloads.
            let service = service::on_listener(rt, socket, listener.port)
                .client_table(self.shared.client_table(listener.port));
            let (service, stop, slot) = match old {
                Some(p) => {
                    p.router.replace(router);
                    let s = service.succeeding(&p.handle);
                    (s, p.stop.clone(), p.router.clone())
                }
                None => (service, self.stop.child(), Rc::new(RefCell::new(router))),
            };
            let service = match log {
                Some(log) => service.access_log(log),
                None => service.no_access_log(),
            };
            let Initialized(handle) = serve(service, listener, tls, stop.clone(), slot.clone());
            self.handles.push(handle.clone());
            ports.push(Port {
                port: listener.port,
                name: listener.name.clone(),
                stop,
                router: slot,
                handle,
            });
        }
        if !self.ports.is_empty() {
            // Services that were replaced learn it at their next callback.
            rt.waker().wake();
        }
        for p in &self.ports {
            if !ports.iter().any(|n| n.port == p.port) {
                log::info!("listener {:?} (port {}) removed: draining", p.name, p.port);
                p.stop.turn_off();
            }
        }
        self.metrics.set_services(
            ports
                .iter()
                .map(|p| (p.name.clone(), p.handle.clone()))
                .collect(),
        );
        self.handles.retain(|h| !matches!(h.result(), Some(Ok(()))));
        for (target, sink) in opened {
            self.access_logs.add(sink.clone());
            self.sinks.push((target, sink));
        }
        self.ports = ports;
        self.proxy = Some(proxy);
        self.config = config;
        for run in &self.acme {
            if !acme.iter().any(|a| Rc::ptr_eq(&a.retired, &run.retired)) {
                run.retired.set(true);
            }
        }
        self.acme = acme;
        for start in drivers {
            start(rt);
        }
        Ok(())
    }

    /// The ACME blocks of `config`: those in use kept where a listener's port has the same
    /// block, new ones taken from [`Shared`] for the others, with (on [`ACME_WORKER`]) their
    /// drivers made, not started yet.
    #[cfg(feature = "certs")]
    fn acme_for(
        &self,
        rt: &mut Runtime,
        config: &Config,
    ) -> Result<(Vec<AcmeRun>, Vec<StartDriver>), StartError> {
        let mut runs = Vec::new();
        let mut drivers = Vec::new();
        for l in &config.listeners {
            let Protocol::Https {
                acme: Some(block),
                certificate,
                ..
            } = &l.protocol
            else {
                continue;
            };
            let as_default = certificate.is_none();
            let kept = self
                .acme
                .iter()
                .find(|a| a.port == l.port && a.config == *block && a.as_default == as_default);
            if let Some(a) = kept {
                runs.push(AcmeRun {
                    port: a.port,
                    config: a.config.clone(),
                    as_default,
                    store: a.store.clone(),
                    prepared: a.prepared.clone(),
                    retired: a.retired.clone(),
                });
                continue;
            }
            let prepared = self
                .shared
                .acme(&l.name, l.port, block, as_default)
                .map_err(|e| StartError::Acme {
                    listener: l.name.clone(),
                    error: e.to_string(),
                })?;
            let retired = Rc::new(std::cell::Cell::new(false));
            if self.worker == ACME_WORKER {
                let links = acme::Links {
                    prepared: prepared.clone(),
                    http01: self.shared.http01.clone(),
                    metrics: self.metrics.clone(),
                    retired: retired.clone(),
                };
                let driver = acme::Driver::new(rt, &l.name, block, as_default, links);
                drivers.push(Box::new(move |rt: &mut Runtime| {
                    let added = rt.add_with(|cx| Ok::<_, ()>(driver.with_waker(cx.local_waker())));
                    if added.is_err() {
                        log::error!("acme: a driver could not start");
                    }
                }) as StartDriver);
            }
            runs.push(AcmeRun {
                port: l.port,
                config: block.clone(),
                as_default,
                store: prepared.store.clone(),
                prepared,
                retired,
            });
        }
        Ok((runs, drivers))
    }

    /// Without rcgen there are no CSRs: ACME needs the `certs` feature.
    #[cfg(not(feature = "certs"))]
    fn acme_for(
        &self,
        _: &mut Runtime,
        config: &Config,
    ) -> Result<(Vec<AcmeRun>, Vec<StartDriver>), StartError> {
        match config
            .listeners
            .iter()
            .find(|l| matches!(&l.protocol, Protocol::Https { acme: Some(_), .. }))
        {
            Some(l) => Err(StartError::Acme {
                listener: l.name.clone(),
                error: "acme needs paf built with the `certs` feature".into(),
            }),
            None => Ok((Vec::new(), Vec::new())),
        }
    }

    /// The access log of each listener of `config`: a sink already open for its target, or one
    /// opened now (added to `opened`).
    fn access_logs_for(
        &self,
        config: &Config,
        opened: &mut Vec<(AccessLogTarget, FileSink)>,
    ) -> Result<Vec<Option<AccessLog>>, StartError> {
        let mut logs = Vec::new();
        for listener in &config.listeners {
            let Some(l) = &listener.access_log else {
                logs.push(None);
                continue;
            };
            let known = self.sinks.iter().chain(opened.iter());
            let sink = match known.clone().find(|(t, _)| *t == l.target) {
                Some((_, s)) => s.clone(),
                None => {
                    let sink = match &l.target {
                        AccessLogTarget::Stderr => FileSink::stderr(),
                        AccessLogTarget::File(path) => FileSink::open(path),
                    }
                    .map_err(|error| StartError::AccessLog {
                        listener: listener.name.clone(),
                        error,
                    })?;
                    opened.push((l.target.clone(), sink.clone()));
                    sink
                }
            };
            logs.push(Some(AccessLog::new(l.format, sink)));
        }
        Ok(logs)
    }

    /// The listening socket of each listener of `config`: taken from the service on the same
    /// port, or opened. On failure every socket goes back where it was.
    fn sockets(&self, rt: &mut Runtime, config: &Config) -> Result<Vec<ListenerId>, StartError> {
        let mut taken: Vec<(&Handle, ListenerId, u16)> = Vec::new();
        let mut fresh = Vec::new();
        let mut out = Vec::new();
        let mut failed = None;
        for l in &config.listeners {
            match self.ports.iter().find(|p| p.port == l.port) {
                Some(p) => match p.handle.take_listening() {
                    Some(s) => {
                        taken.push((&p.handle, s.id, s.port));
                        out.push(s.id);
                    }
                    None => {
                        failed = Some(StartError::Listen {
                            listener: l.name.clone(),
                            error: InitError::Listen {
                                port: l.port,
                                error: net::ListenError::InUse,
                            },
                        });
                        break;
                    }
                },
                None => match rt.net().listen(l.port, l.limits.backlog) {
                    Ok(id) => {
                        fresh.push(id);
                        out.push(id);
                    }
                    Err(error) => {
                        failed = Some(StartError::Listen {
                            listener: l.name.clone(),
                            error: InitError::Listen {
                                port: l.port,
                                error,
                            },
                        });
                        break;
                    }
                },
            }
        }
        let Some(e) = failed else {
            return Ok(out);
        };
        for (handle, id, port) in taken {
            handle.set_listening(service::handle::Listening { id, port });
        }
        for id in fresh {
            rt.net().unlisten(id);
        }
        Err(e)
    }
}

/// Closes sinks a failed reload opened.
fn close_all(opened: &[(AccessLogTarget, FileSink)]) {
    for (_, s) in opened {
        s.close();
    }
}

/// Start every listener of `config` on `rt`: the appliance of a process with one worker.
///
/// # Errors
/// [`StartError`] naming the listener that cannot start; nothing is served then (listeners
/// already opened are closed, and `stop` is turned off).
pub fn start(rt: &mut Runtime, config: &Config, stop: Switch) -> Result<Appliance, StartError> {
    start_worker(rt, config, stop, Arc::new(Shared::new()), ACME_WORKER)
}

/// [`start`] for worker `worker` of a process whose workers (each with its own loop and
/// stack) all start with the same `shared`: their listeners count per-client limits in one
/// table per port, and ACME runs its orders on [`ACME_WORKER`] while every worker serves its
/// certificates and challenge answers.
///
/// # Errors
/// As [`start`].
pub fn start_worker(
    rt: &mut Runtime,
    config: &Config,
    stop: Switch,
    shared: Arc<Shared>,
    worker: usize,
) -> Result<Appliance, StartError> {
    let metrics = Arc::new(Metrics::default());
    let mut app = Appliance {
        handles: Vec::new(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        access_logs: AccessLogs::default(),
        config: Rc::new(config.clone()),
        ports: Vec::new(),
        proxy: None,
        sinks: Vec::new(),
        shared,
        worker,
        acme: Vec::new(),
    };
    if let Err(e) = app.apply(rt, config.clone(), &Plan::initial(config)) {
        stop.turn_off();
        return Err(e);
    }
    metrics.config_applied(rt.pass_time().wall());
    let sampler = metrics::Sampler {
        metrics: metrics.clone(),
        next: Some(rt.pass_time().now()),
    };
    let _ = rt.add(sampler, |_, _| Ok::<(), ()>(()));
    Ok(app)
}

/// The TLS configuration of an https listener (certificates by SNI, its handshake timeout;
/// with ACME, `store` ahead of them and `acme-tls/1` offered for TLS-ALPN-01), resuming
/// sessions from `sessions`, which every worker's listener on the port shares.
fn tls_config(
    listener: &Listener,
    store: &Arc<crate::tls::CertStore>,
    sessions: &crate::tls::SessionCache,
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
    let mut b = crate::tls::ServerConfig::builder(default).session_cache(sessions);
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
    router: RouterSlot,
) -> Initialized {
    let r = router.clone();
    // The router is taken out of the slot before it runs: a reload may replace it meanwhile.
    let on_error =
        move |peer, error: &crate::http::Error, request: Option<&::http::Request<()>>, respond| {
            let current = r.borrow().clone();
            current.error(peer, error, request, respond);
        };
    let on_request = move |peer, reqd| {
        let current = router.borrow().clone();
        current.handle(peer, reqd);
    };
    let config = listener.limits.http.clone();
    match tls {
        Some(tls) => service::https(service, tls, config, Some(stop), on_error, on_request),
        None => service::http(service, config, Some(stop), on_error, on_request),
    }
}

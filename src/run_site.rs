//! `paf run --test-routes` / `--cert`: the built-in site (the benchmark's), on `--workers`
//! threads as the appliance runs (see `run_workers.rs`): each worker with its own loop, stack,
//! services and access-log writer, one stop switch for all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use paf::service::{self, builtin, Initialized, Switch};

use crate::run_workers::{count, Link, Serve, Stacks};
use crate::{access_log_flags, stack_config, Failure, RunArgs, StackKind};

/// The built-in site on `--workers` workers (default: one per core the process may use; one
/// with `--pcap` on the userspace stack), on the TAP's queues or on kernel sockets listening
/// with `SO_REUSEPORT`.
pub(crate) fn run_site(args: RunArgs) -> Result<(), Failure> {
    let http = paf::http::Config {
        head_timeout: args.head_timeout,
        idle_timeout: args.idle_timeout,
        drain_timeout: args.drain_timeout,
        max_body_size: Some(args.max_body),
        ..paf::http::Config::default()
    };
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            // Loaded here first, so that a bad certificate stops the process before any worker
            // starts; each worker then loads its own, all keeping sessions in one cache.
            tls_config(cert, key)?;
            Some((cert.clone(), key.clone()))
        }
        _ => None,
    };
    let userspace = args.net.stack == StackKind::Userspace;
    let pcap = args.net.pcap.clone().filter(|_| userspace);
    let n = count(
        args.workers.map(usize::from),
        &[(pcap.is_some(), "pcap")],
        false,
    )?;
    let stacks = if userspace {
        Stacks::tap(
            &args.net.tap,
            args.net.mtu,
            stack_config(&args.net)?,
            pcap,
            n,
        )?
    } else {
        Stacks::kernel(args.net.bind, n)
    };
    let stop = Switch::new();
    let reloads = Arc::new(AtomicU64::new(0));
    let mut banner = Vec::new();
    if tls.is_some() {
        banner.push(format!("paf run: serving https on port {}", args.tls_port));
    }
    banner.push(format!(
        "paf run: serving http on port {} ({:?} stack)",
        args.port, args.net.stack
    ));
    let serve = Serve {
        n,
        pin: args.pin,
        stop: stop.clone(),
        reloads: reloads.clone(),
        pid_file: args.pid_file.clone(),
        reopen_always: false,
        banner,
    };
    let stacks = Arc::new(stacks);
    let site = Site {
        stacks: stacks.clone(),
        http,
        tls,
        sessions: paf::tls::SessionCache::default(),
        log: access_log_flags(&args),
        options: builtin::Options {
            test_routes: args.test_routes,
        },
        port: args.port,
        tls_port: args.tls_port,
        backlog: args.backlog,
        stop,
        reloads,
    };
    serve.run(&stacks, Arc::new(move |k, ready| site.worker(k, ready)))
}

/// The TLS configuration of `--cert` and `--key`.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<paf::tls::ServerConfig, String> {
    Ok(paf::tls::ServerConfig::from_pem_files((cert, key), &[])
        .map_err(|e| e.to_string())?
        .with_alpn_protocols(&[paf::tls::ALPN_H2, paf::tls::ALPN_HTTP11]))
}

/// What every worker of the site is given.
struct Site {
    stacks: Arc<Stacks>,
    http: paf::http::Config,
    /// `--cert` and `--key`.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Resumable TLS sessions, one cache for every worker.
    sessions: paf::tls::SessionCache,
    log: Option<paf::config::AccessLog>,
    options: builtin::Options,
    port: u16,
    tls_port: u16,
    backlog: usize,
    stop: Switch,
    reloads: Arc<AtomicU64>,
}

impl Site {
    /// Worker `k`: its loop and stack, the site on `--port` (and `--tls-port`), until the stop
    /// switch is off and its services have drained.
    fn worker(&self, k: usize, ready: paf::runtime::workers::Ready<Link>) -> Result<(), String> {
        let mut rt = self.stacks.runtime(k)?;
        let sink = match self.log.as_ref().map(|l| &l.target) {
            None => None,
            Some(paf::config::AccessLogTarget::Stderr) => {
                Some(service::access_log::FileSink::stderr())
            }
            Some(paf::config::AccessLogTarget::File(p)) => {
                Some(service::access_log::FileSink::open(p))
            }
        }
        .transpose()
        .map_err(|e| format!("access log: {e}"))?;
        let svc = service::init_with_backlog(&mut rt, self.port, self.backlog)
            .map_err(|e| e.to_string())?;
        let svc = with_access_log(svc, self.log.as_ref(), sink.as_ref());
        let Initialized(plain) = service::http(
            svc,
            self.http.clone(),
            Some(self.stop.clone()),
            service::default_error_handler,
            builtin::handler(self.options),
        );
        let mut handles = vec![plain];
        if let Some((cert, key)) = &self.tls {
            let tls = tls_config(cert, key)?.with_session_cache(&self.sessions);
            let svc = service::init_with_backlog(&mut rt, self.tls_port, self.backlog)
                .map_err(|e| e.to_string())?;
            let svc = with_access_log(svc, self.log.as_ref(), sink.as_ref());
            let Initialized(secure) = service::https(
                svc,
                tls,
                self.http.clone(),
                Some(self.stop.clone()),
                service::default_error_handler,
                builtin::handler(self.options),
            );
            handles.push(secure);
        }
        ready.send(Link {
            waker: rt.waker(),
            metrics: None,
            access_logs: paf::appliance::AccessLogs::from(sink.iter().cloned().collect::<Vec<_>>()),
        });
        let mut seen = 0;
        rt.run_until(|_| {
            let wanted = self.reloads.load(Ordering::SeqCst);
            if wanted != seen {
                seen = wanted;
                if k == 0 {
                    log::warn!(
                        "SIGHUP: nothing to reload: --test-routes and --cert take no config file"
                    );
                }
            }
            handles.iter().all(service::Handle::is_finished)
        })
        .map_err(|e| format!("event loop: {e}"))?;
        if let Some(s) = &sink {
            s.close();
        }
        let (accepted, requests) = handles.iter().fold((0, 0), |(a, r), h| {
            let s = h.stats();
            (a + s.accepted, r + s.requests)
        });
        log::info!("worker {k}: stopped after {accepted} connections, {requests} requests");
        for h in &handles {
            match h.result() {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err(String::from("service did not finish")),
            }
        }
        Ok(())
    }
}

/// `svc` with the access log of the flags, or none.
fn with_access_log<'a>(
    svc: service::Service<'a>,
    log: Option<&paf::config::AccessLog>,
    sink: Option<&service::access_log::FileSink>,
) -> service::Service<'a> {
    match (log, sink) {
        (Some(l), Some(s)) => svc.access_log(service::AccessLog::new(l.format, s.clone())),
        _ => svc.no_access_log(),
    }
}

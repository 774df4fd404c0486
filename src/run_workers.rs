//! `paf run` with several workers: one thread per worker, each with its own loop, stack and
//! appliance (see the README's *Workers*).

use std::sync::atomic::Ordering;

use paf::runtime::Runtime;

use crate::run_signals::{self, reopen_on_sigusr1, switch_on_signals, PidFile};
use crate::{filter_access_logs, stack_config, Failure, RunArgs};

/// What a worker of `paf run` hands the main thread once it serves.
struct WorkerLink {
    waker: paf::runtime::LoopWaker,
    metrics: std::sync::Arc<paf::appliance::Metrics>,
    access_logs: paf::appliance::AccessLogs,
}

/// `paf run` on the userspace stack: `workers` threads, each with its own loop, stack (on its
/// own queue of the TAP) and appliance; the configuration shared read-only, one stop switch,
/// reloads and log reopening sent to every worker, `/metrics` summed over them. A worker that
/// fails or panics ends the process with an error.
pub(crate) fn run_workers(args: RunArgs, config: paf::config::Config) -> Result<(), Failure> {
    use std::sync::{Arc, Mutex};
    let i = &config.interface;
    let (tap, mtu, net_config, pcap) = match &args.config {
        None => (
            args.net.tap.clone(),
            args.net.mtu,
            stack_config(&args.net)?,
            args.net.pcap.clone(),
        ),
        Some(_) => (
            i.tap.clone(),
            i.mtu,
            i.net.clone(),
            args.net.pcap.clone().or_else(|| i.pcap.clone()),
        ),
    };
    let acme = config.listeners.iter().any(|l| {
        matches!(
            &l.protocol,
            paf::config::Protocol::Https { acme: Some(_), .. }
        )
    });
    // Per-client limits are counted by each worker's services: with more workers, a client
    // whose connections land on several of them gets up to that many times its limits.
    let per_client = config.listeners.iter().any(|l| {
        let p = &l.limits.http.per_client;
        p.max_connections_per_ip.is_some() || p.rate.is_some()
    });
    let n = match args.workers.map(usize::from).or(i.workers) {
        Some(n) => n,
        None if pcap.is_some() || acme || per_client => 1,
        None => paf::config::available_cores(),
    };
    if per_client && n > 1 {
        log::warn!(
            "workers: {n} workers count max_connections_per_ip and rate each on its own: a \
             client may get up to {n} times its limits (workers = 1 keeps them exact)"
        );
    }
    let single = [(pcap.is_some(), "pcap"), (acme, "acme")];
    if let Some((_, what)) = single.iter().find(|(on, _)| *on && n > 1) {
        return Err(Failure {
            code: 2,
            message: format!("{what} needs one worker (workers = 1, --workers 1), not {n}"),
        });
    }
    let pin = args.pin || i.pin;
    let taps = net::device::Tap::open_queues(&tap, mtu, net_config.offload, n)
        .map_err(|e| format!("tap {tap}: {e}"))?;
    let mut peers: Vec<Option<net::stack::mesh::Peer>> = if n > 1 {
        net::stack::mesh::mesh(n)
            .map_err(|e| format!("workers: {e}"))?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    let handovers = peers.iter().flatten().next().map(|p| p.counters());
    let slots: Vec<Mutex<Option<_>>> = taps
        .into_iter()
        .zip(peers.drain(..))
        .map(|slot| Mutex::new(Some(slot)))
        .collect();
    let cpus = if pin {
        Some(net::allowed_cpus().map_err(|e| format!("pin: {e}"))?)
    } else {
        None
    };
    let stop = paf::service::Switch::new();
    let reloads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let serving: Vec<String> = config
        .listeners
        .iter()
        .map(|l| {
            let scheme = match l.protocol {
                paf::config::Protocol::Http => "http",
                paf::config::Protocol::Https { .. } => "https",
            };
            format!(
                "paf run: listener {:?} serving {scheme} on port {}",
                l.name, l.port
            )
        })
        .collect();
    let shared = Arc::new((config, slots, stop.clone(), reloads.clone(), pcap));
    let path = args.config.clone();
    let body: paf::runtime::workers::Body<WorkerLink> = Arc::new(move |k, ready| {
        let (config, slots, stop, reloads, pcap) = &*shared;
        let (tap, peer) = slots[k]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or("no queue")?;
        let mut rt = Runtime::on_tap(tap, net_config.clone(), pcap.as_deref(), peer)
            .map_err(|e| format!("stack: {e}"))?;
        let mut app =
            paf::appliance::start(&mut rt, config, stop.clone()).map_err(|e| e.to_string())?;
        ready.send(WorkerLink {
            waker: rt.waker(),
            metrics: app.metrics.clone(),
            access_logs: app.access_logs.clone(),
        });
        let mut seen = 0;
        // Reloads happen here, on each worker's thread between two passes.
        rt.run_until(|rt| {
            let wanted = reloads.load(Ordering::SeqCst);
            if wanted != seen {
                seen = wanted;
                match &path {
                    None if k == 0 => log::warn!(
                        "SIGHUP: nothing to reload: paf run serves the embedded default (no --config)"
                    ),
                    None => {}
                    Some(path) => {
                        log::info!("SIGHUP: worker {k} reloading {}", path.display());
                        // Logged and counted by the appliance either way.
                        let _ = app.reload_file(rt, path, filter_access_logs);
                    }
                }
            }
            app.is_finished()
        })
        .map_err(|e| format!("event loop: {e}"))?;
        app.close_access_logs();
        for h in &app.handles {
            if let Some(Err(e)) = h.result() {
                return Err(e.to_string());
            }
        }
        Ok(())
    });
    let mut workers =
        paf::runtime::workers::spawn(n, cpus, body).map_err(|e| format!("workers: {e}"))?;
    let links = match workers.wait_ready() {
        Ok(l) => l,
        Err(e) => {
            stop.turn_off();
            return Err(Failure {
                code: 1,
                message: e.to_string(),
            });
        }
    };
    let metrics: Vec<_> = links.iter().map(|l| l.metrics.clone()).collect();
    paf::appliance::Metrics::join_workers(&metrics);
    if let Some(c) = handovers {
        paf::appliance::Metrics::join_mesh(&metrics, c);
    }
    switch_on_signals(stop.clone(), args.pid_file.clone())?;
    let logs: Vec<_> = links.iter().map(|l| l.access_logs.clone()).collect();
    if args.config.is_some() || logs.iter().any(paf::appliance::AccessLogs::has_files) {
        reopen_on_sigusr1(logs)?;
    }
    run_signals::reload_all_on_sighup(reloads, links.iter().map(|l| l.waker.clone()).collect())?;
    for l in &serving {
        eprintln!("{l}");
    }
    eprintln!("paf run: {n} worker(s) on TAP {tap}");
    let _pid = PidFile::write(args.pid_file.as_deref())?;
    if let Err(e) = workers.wait_done() {
        log::error!("{e}: exiting rather than serving without it");
        stop.turn_off();
        return Err(Failure {
            code: 1,
            message: e.to_string(),
        });
    }
    log::info!("run: stopped");
    Ok(())
}

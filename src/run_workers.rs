//! `paf run` with several workers: one thread per worker, each with its own loop, stack and
//! services (see the README's *Workers*).
//!
//! The parts every mode of `paf run` shares: [`count`] settles how many workers, [`Stacks`]
//! gives each worker its stack (its own queue of the TAP, or kernel sockets listening with
//! `SO_REUSEPORT`), and [`Serve::run`] starts the workers, wires the signals (one stop switch,
//! SIGHUP and SIGUSR1 to every worker), writes the pid file and waits. [`run_workers`] is the
//! config-driven appliance on them; the built-in site (`--test-routes`, `--cert`) is in
//! `run_site.rs`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use paf::runtime::Runtime;

use crate::run_signals::{self, reopen_on_sigusr1, switch_on_signals, PidFile};
use crate::{filter_access_logs, stack_config, Failure, RunArgs, StackKind};

/// One queue of the TAP and the worker's place in the mesh, until its worker takes them.
type Slot = Mutex<Option<(net::device::Tap, Option<net::stack::mesh::Peer>)>>;

/// Where the workers' stacks come from.
pub(crate) enum Stacks {
    /// The userspace stack: one queue each of a TAP, joined by a mesh when more than one.
    Tap {
        /// The TAP's name.
        name: String,
        /// Every stack's configuration (the same MAC and addresses).
        config: Box<net::Config>,
        /// A capture of every frame (one worker only).
        pcap: Option<PathBuf>,
        /// Worker `k`'s queue and peer, taken by it.
        slots: Vec<Slot>,
        /// The mesh's hand-over counters (none with one worker), for `/metrics`.
        handovers: Option<net::stack::mesh::Counters>,
    },
    /// The kernel twin: sockets bound to `bind`; with more than one worker, each worker's
    /// listeners are opened with `SO_REUSEPORT` and the kernel spreads connections over them.
    Kernel {
        /// The address listeners bind.
        bind: IpAddr,
        /// Listen with `SO_REUSEPORT` (more than one worker).
        reuse_port: bool,
    },
}

impl Stacks {
    /// `n` queues of the TAP `name` (a single-queue TAP with `n` > 1 is an error naming the
    /// fix), and the mesh joining them.
    pub(crate) fn tap(
        name: &str,
        mtu: Option<usize>,
        config: net::Config,
        pcap: Option<PathBuf>,
        n: usize,
    ) -> Result<Stacks, String> {
        let taps = net::device::Tap::open_queues(name, mtu, config.offload, n)
            .map_err(|e| format!("tap {name}: {e}"))?;
        let peers: Vec<Option<net::stack::mesh::Peer>> = if n > 1 {
            net::stack::mesh::mesh(n)
                .map_err(|e| format!("workers: {e}"))?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let handovers = peers.iter().flatten().next().map(|p| p.counters());
        Ok(Stacks::Tap {
            name: name.to_owned(),
            config: Box::new(config),
            pcap,
            handovers,
            slots: taps
                .into_iter()
                .zip(peers)
                .map(|slot| Mutex::new(Some(slot)))
                .collect(),
        })
    }

    /// Kernel sockets bound to `bind` for `n` workers.
    pub(crate) fn kernel(bind: IpAddr, n: usize) -> Stacks {
        Stacks::Kernel {
            bind,
            reuse_port: n > 1,
        }
    }

    /// Worker `k`'s loop around its stack (a TAP queue is handed out once).
    pub(crate) fn runtime(&self, k: usize) -> Result<Runtime, String> {
        match self {
            Stacks::Tap {
                config,
                pcap,
                slots,
                ..
            } => {
                let (tap, peer) = slots
                    .get(k)
                    .and_then(|s| s.lock().unwrap_or_else(PoisonError::into_inner).take())
                    .ok_or("no queue")?;
                Runtime::on_tap(tap, (**config).clone(), pcap.as_deref(), peer)
                    .map_err(|e| format!("stack: {e}"))
            }
            Stacks::Kernel { bind, reuse_port } => {
                let mut k = net::kernel::KernelStack::new(*bind, std::time::Instant::now())
                    .map_err(|e| format!("kernel stack: {e}"))?;
                k.set_reuse_port(*reuse_port);
                Runtime::new(Box::new(k)).map_err(|e| format!("kernel stack: {e}"))
            }
        }
    }

    /// Where the workers run, for the start-up line: `TAP paf0`, `kernel sockets on ::`.
    fn describe(&self) -> String {
        match self {
            Stacks::Tap { name, .. } => format!("TAP {name}"),
            Stacks::Kernel { bind, .. } => format!("kernel sockets on {bind}"),
        }
    }
}

/// How many workers to run: `asked` (`--workers`, `[interface] workers`) when given, else one
/// when one of `single` is on or `one_by_default` holds, else one per core the process may
/// use. `single` lists what needs exactly one worker, with its name for the message.
///
/// # Errors
/// More than one worker asked for while one of `single` is on (exit status 2).
pub(crate) fn count(
    asked: Option<usize>,
    single: &[(bool, &str)],
    one_by_default: bool,
) -> Result<usize, Failure> {
    let n = match asked {
        Some(n) => n,
        None if one_by_default || single.iter().any(|(on, _)| *on) => 1,
        None => paf::config::available_cores(),
    };
    if let Some((_, what)) = single.iter().find(|(on, _)| *on && n > 1) {
        return Err(Failure {
            code: 2,
            message: format!("{what} needs one worker (workers = 1, --workers 1), not {n}"),
        });
    }
    Ok(n)
}

/// What a worker hands the main thread once it serves.
pub(crate) struct Link {
    /// Wakes the worker's loop (SIGHUP).
    pub(crate) waker: paf::runtime::LoopWaker,
    /// The worker's `/metrics` registry, if it has one: joined with the others'.
    pub(crate) metrics: Option<Arc<paf::appliance::Metrics>>,
    /// The worker's access logs (SIGUSR1 reopens them).
    pub(crate) access_logs: paf::appliance::AccessLogs,
}

/// The workers of one `paf run` and what they share.
pub(crate) struct Serve {
    /// How many.
    pub(crate) n: usize,
    /// Pin worker `k` to the `k`-th allowed core.
    pub(crate) pin: bool,
    /// The one stop switch (SIGINT/SIGTERM turn it off).
    pub(crate) stop: paf::service::Switch,
    /// SIGHUPs so far: each worker reloads when it sees the count change.
    pub(crate) reloads: Arc<AtomicU64>,
    /// `--pid-file`.
    pub(crate) pid_file: Option<PathBuf>,
    /// Reopen access logs on SIGUSR1 even when none writes to a file yet (a reload may add
    /// one).
    pub(crate) reopen_always: bool,
    /// Lines printed to stderr once every worker serves.
    pub(crate) banner: Vec<String>,
}

impl Serve {
    /// Starts the workers on `stacks`, each running `body`, and waits for them: the process
    /// then serves until the stop switch is off and every worker has drained.
    ///
    /// # Errors
    /// A worker that fails to start, fails or panics (exit status 1; the others are stopped);
    /// signals that cannot be handled; the pid file.
    pub(crate) fn run(
        self,
        stacks: &Stacks,
        body: paf::runtime::workers::Body<Link>,
    ) -> Result<(), Failure> {
        let cpus = if self.pin {
            Some(net::allowed_cpus().map_err(|e| format!("pin: {e}"))?)
        } else {
            None
        };
        let mut workers = paf::runtime::workers::spawn(self.n, cpus, body)
            .map_err(|e| format!("workers: {e}"))?;
        let links = match workers.wait_ready() {
            Ok(l) => l,
            Err(e) => {
                self.stop.turn_off();
                return Err(Failure {
                    code: 1,
                    message: e.to_string(),
                });
            }
        };
        let metrics: Vec<_> = links.iter().filter_map(|l| l.metrics.clone()).collect();
        paf::appliance::Metrics::join_workers(&metrics);
        if let Stacks::Tap {
            handovers: Some(c), ..
        } = stacks
        {
            paf::appliance::Metrics::join_mesh(&metrics, c.clone());
        }
        switch_on_signals(self.stop.clone(), self.pid_file.clone())?;
        let logs: Vec<_> = links.iter().map(|l| l.access_logs.clone()).collect();
        if self.reopen_always || logs.iter().any(paf::appliance::AccessLogs::has_files) {
            reopen_on_sigusr1(logs)?;
        }
        run_signals::reload_all_on_sighup(
            self.reloads.clone(),
            links.iter().map(|l| l.waker.clone()).collect(),
        )?;
        for l in &self.banner {
            eprintln!("{l}");
        }
        eprintln!("paf run: {} worker(s) on {}", self.n, stacks.describe());
        let _pid = PidFile::write(self.pid_file.as_deref())?;
        if let Err(e) = workers.wait_done() {
            log::error!("{e}: exiting rather than serving without it");
            self.stop.turn_off();
            return Err(Failure {
                code: 1,
                message: e.to_string(),
            });
        }
        log::info!("run: stopped");
        Ok(())
    }
}

/// `paf run` without test routes or certificate flags: the config-driven appliance on
/// `workers` threads, each with its own loop, stack (its own queue of the TAP, or kernel
/// sockets listening with `SO_REUSEPORT`) and appliance; the configuration shared read-only,
/// one stop switch, reloads and log reopening sent to every worker, `/metrics` summed over
/// them. A worker that fails or panics ends the process with an error.
pub(crate) fn run_workers(args: RunArgs, config: paf::config::Config) -> Result<(), Failure> {
    let i = &config.interface;
    let userspace = match &args.config {
        None => args.net.stack == StackKind::Userspace,
        Some(_) => i.stack == paf::config::StackKind::Userspace,
    };
    let (tap, mtu, net_config, pcap, bind) = match &args.config {
        None => (
            args.net.tap.clone(),
            args.net.mtu,
            stack_config(&args.net)?,
            args.net.pcap.clone(),
            args.net.bind,
        ),
        Some(_) => (
            i.tap.clone(),
            i.mtu,
            i.net.clone(),
            args.net.pcap.clone().or_else(|| i.pcap.clone()),
            i.bind,
        ),
    };
    // Captures are the userspace stack's (the kernel twin has none). DHCP takes any number of
    // workers: worker 0 holds the lease for all.
    let pcap = pcap.filter(|_| userspace);
    let n = count(
        args.workers.map(usize::from).or(i.workers),
        &[(pcap.is_some(), "pcap")],
        false,
    )?;
    let pin = args.pin || i.pin;
    let stacks = if userspace {
        Stacks::tap(&tap, mtu, net_config, pcap, n)?
    } else {
        Stacks::kernel(bind, n)
    };
    let stop = paf::service::Switch::new();
    let reloads = Arc::new(AtomicU64::new(0));
    let banner: Vec<String> = config
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
    let serve = Serve {
        n,
        pin,
        stop: stop.clone(),
        reloads: reloads.clone(),
        pid_file: args.pid_file.clone(),
        reopen_always: args.config.is_some(),
        banner,
    };
    let stacks = Arc::new(stacks);
    // Per-client limits and ACME's certificates and challenge answers, for every worker.
    let appliance_shared = Arc::new(paf::appliance::Shared::new());
    let shared = (config, stacks.clone());
    let path = args.config.clone();
    let body: paf::runtime::workers::Body<Link> = Arc::new(move |k, ready| {
        let (config, stacks) = &shared;
        let mut rt = stacks.runtime(k)?;
        let mut app = paf::appliance::start_worker(
            &mut rt,
            config,
            stop.clone(),
            appliance_shared.clone(),
            k,
        )
        .map_err(|e| e.to_string())?;
        ready.send(Link {
            waker: rt.waker(),
            metrics: Some(app.metrics.clone()),
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
    serve.run(&stacks, body)
}

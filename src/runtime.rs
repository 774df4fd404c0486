//! The one event loop: a single-threaded mio loop around one network stack.
//!
//! Each pass: sleep until IO, a wake-up or the earliest timer; read the clock once; let the stack
//! do its network work ([`net::Transport::poll`]: drain the device, run TCP, transmit); hand its
//! events to the [`App`] that owns each listener or connection; fire due app timers; poll the
//! stack again so that what the apps wrote goes out in the same pass; then sleep until the earliest
//! of the stack's delay and the apps' timers.
//!
//! Apps (HTTP services, clients, the echo service) never see mio: they get a [`Cx`] with `now`
//! and the stack. Other threads reach the loop only through a [`LoopWaker`] (the stop switch uses
//! it), which makes the loop call [`App::handle_wake`] on every app.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use net::{ConnId, ConnectError, DnsError, Event, ListenError, ListenerId, QueryId};
use net::{RecordType, Transport};
use slab::Slab;

const WAKER: Token = Token(0);
const STACK: Token = Token(1);

/// Identifies an app registered with a [`Runtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppId(usize);

/// Something the loop drives: it owns listeners and connections of the stack.
///
/// Every method gets a [`Cx`]; the app moves bytes with it and must drain a ready connection
/// (receive until 0, send until 0 or done) because readiness is reported on change only.
pub trait App {
    /// A connection arrived on a listener this app opened.
    fn handle_accept(
        &mut self,
        cx: &mut Cx<'_>,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
    );

    /// A connection of this app may have become readable, writable or closed.
    fn handle_ready(&mut self, cx: &mut Cx<'_>, conn: ConnId);

    /// A DNS query this app started with [`Cx::resolve`] has its outcome: take it with
    /// [`net::Transport::poll_resolution`].
    fn handle_resolved(&mut self, _cx: &mut Cx<'_>, _query: QueryId) {}

    /// The earliest instant at which [`App::handle_timeout`] has work; `None` for no timer.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Called when `now` has reached [`App::poll_timeout`] (possibly later; extra calls are fine).
    fn handle_timeout(&mut self, _cx: &mut Cx<'_>) {}

    /// Called after another thread woke the loop (e.g. a stop switch was turned off).
    fn handle_wake(&mut self, _cx: &mut Cx<'_>) {}

    /// Once true, the loop drops the app. Its connections must all be released by then.
    fn is_finished(&self) -> bool {
        false
    }
}

/// What an app can do during a callback: read the pass's clock and use the stack. Listeners and
/// connections opened through a `Cx` belong to the calling app.
pub struct Cx<'a> {
    /// The time of this loop pass.
    pub now: Instant,
    net: &'a mut dyn Transport,
    app: AppId,
    owners: &'a mut HashMap<ConnId, AppId>,
    listeners: &'a mut HashMap<ListenerId, AppId>,
    queries: &'a mut HashMap<QueryId, AppId>,
    woken: &'a mut bool,
}

impl Cx<'_> {
    /// The stack, to `recv`/`send`/query connections this app owns.
    pub fn net(&mut self) -> &mut dyn Transport {
        self.net
    }

    /// Open a listener owned by this app.
    ///
    /// # Errors
    /// See [`net::Transport::listen`].
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, ListenError> {
        let id = self.net.listen(port, backlog)?;
        self.listeners.insert(id, self.app);
        Ok(id)
    }

    /// Close a listener of this app.
    pub fn unlisten(&mut self, listener: ListenerId) {
        self.listeners.remove(&listener);
        self.net.unlisten(listener);
    }

    /// Start an outgoing connection owned by this app.
    ///
    /// # Errors
    /// See [`net::Transport::connect`].
    pub fn connect(&mut self, remote: SocketAddr) -> Result<ConnId, ConnectError> {
        let id = self.net.connect(remote)?;
        self.owners.insert(id, self.app);
        Ok(id)
    }

    /// Start a DNS query owned by this app: [`App::handle_resolved`] follows.
    ///
    /// # Errors
    /// See [`net::Transport::resolve`].
    pub fn resolve(&mut self, name: &str, rtype: RecordType) -> Result<QueryId, DnsError> {
        let q = self.net.resolve(name, rtype)?;
        self.queries.insert(q, self.app);
        Ok(q)
    }

    /// Stop a query of this app.
    pub fn cancel_resolution(&mut self, query: QueryId) {
        self.queries.remove(&query);
        self.net.cancel_resolution(query);
    }

    /// Graceful close (FIN after queued data); the id is released.
    pub fn close(&mut self, conn: ConnId) {
        self.owners.remove(&conn);
        self.net.close(conn);
    }

    /// Reset the connection; the id is released.
    pub fn abort(&mut self, conn: ConnId) {
        self.owners.remove(&conn);
        self.net.abort(conn);
    }

    /// Ask for another pass right away (e.g. after freeing buffer space the app wants to refill).
    pub fn wake(&mut self) {
        *self.woken = true;
    }
}

/// Wakes a [`Runtime`] from any thread.
#[derive(Clone, Debug)]
pub struct LoopWaker(Arc<Waker>);

impl LoopWaker {
    /// Wake the loop; it calls [`App::handle_wake`] on every app. Errors are ignored: a loop that
    /// is gone needs no waking.
    pub fn wake(&self) {
        let _ = self.0.wake();
    }
}

/// One stack and the apps on it, driven by one mio loop. See the module docs.
pub struct Runtime {
    poll: Poll,
    events: Events,
    net: Box<dyn Transport>,
    waker: LoopWaker,
    apps: Slab<Box<dyn App>>,
    owners: HashMap<ConnId, AppId>,
    listeners: HashMap<ListenerId, AppId>,
    queries: HashMap<QueryId, AppId>,
    again: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("apps", &self.apps.len())
            .field("connections", &self.owners.len())
            .finish()
    }
}

impl Runtime {
    /// A loop around `net`.
    ///
    /// # Errors
    /// mio cannot create its poll or register the stack.
    pub fn new(mut net: Box<dyn Transport>) -> io::Result<Runtime> {
        let poll = Poll::new()?;
        let waker = LoopWaker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        net.register(poll.registry(), STACK)?;
        Ok(Runtime {
            poll,
            events: Events::with_capacity(256),
            net,
            waker,
            apps: Slab::new(),
            owners: HashMap::new(),
            listeners: HashMap::new(),
            queries: HashMap::new(),
            again: true,
        })
    }

    /// A loop around a userspace stack on the TAP `tap`: optionally set its MTU, optionally
    /// capture every frame to `pcap`.
    ///
    /// # Errors
    /// The TAP cannot be opened, the pcap file created, or the configuration is invalid (the
    /// error names the field).
    pub fn tap(
        tap: &str,
        mtu: Option<usize>,
        config: net::Config,
        pcap: Option<&std::path::Path>,
    ) -> io::Result<Runtime> {
        let t = net::device::Tap::open_with(tap, mtu, config.offload)?;
        log::info!(
            "tap {}: MTU {}, offloads {}",
            t.name(),
            t.mtu(),
            match t.offload() {
                net::Offload::Full => "on (TCP segmentation and checksums, both ways)",
                net::Offload::Checksum => "checksums only (MTU-sized frames both ways)",
                net::Offload::Off => "off",
            }
        );
        let mut device = net::device::Device::new(net::device::Link::Tap(t));
        if let Some(p) = pcap {
            device.capture_to(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write pcap {}: {e}", p.display()))
            })?;
        }
        let stack = net::Stack::new(config, device, Instant::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Runtime::new(Box::new(stack))
    }

    /// A loop around the kernel-socket twin, listening on `bind` (`::` for every address).
    ///
    /// # Errors
    /// mio cannot create its polls.
    pub fn kernel(bind: std::net::IpAddr) -> io::Result<Runtime> {
        Runtime::new(Box::new(net::kernel::KernelStack::new(
            bind,
            Instant::now(),
        )?))
    }

    /// A handle that wakes this loop from any thread.
    pub fn waker(&self) -> LoopWaker {
        self.waker.clone()
    }

    /// The stack (for inspection: counters, socket counts).
    pub fn net(&mut self) -> &mut dyn Transport {
        &mut *self.net
    }

    /// Number of apps still running.
    pub fn app_count(&self) -> usize {
        self.apps.len()
    }

    /// Add an app and let it set itself up (open listeners, connect) with a [`Cx`] at once, so
    /// that a client started right after can connect.
    ///
    /// # Errors
    /// Whatever `setup` returns; the app is not added then.
    pub fn add<A: App + 'static, E>(
        &mut self,
        app: A,
        setup: impl FnOnce(&mut A, &mut Cx<'_>) -> Result<(), E>,
    ) -> Result<AppId, E> {
        let mut app = app;
        let entry = self.apps.vacant_entry();
        let id = AppId(entry.key());
        let mut woken = false;
        let mut cx = Cx {
            now: Instant::now(),
            net: &mut *self.net,
            app: id,
            owners: &mut self.owners,
            listeners: &mut self.listeners,
            queries: &mut self.queries,
            woken: &mut woken,
        };
        setup(&mut app, &mut cx)?;
        entry.insert(Box::new(app));
        self.again = true;
        Ok(id)
    }

    /// Run one pass, sleeping at most `max` (or until the next timer or IO when shorter).
    ///
    /// # Errors
    /// The OS poll failed.
    pub fn turn(&mut self, max: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut timeout = self.net.poll_delay(now);
        for (_, app) in &self.apps {
            if let Some(at) = app.poll_timeout() {
                let d = at.saturating_duration_since(now);
                timeout = Some(timeout.map_or(d, |t| t.min(d)));
            }
        }
        if let Some(m) = max {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        if std::mem::take(&mut self.again) {
            timeout = Some(Duration::ZERO);
        }
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let woken = self.events.iter().any(|e| e.token() == WAKER);
        let now = Instant::now();
        self.net.poll(now);
        self.dispatch(now);
        if woken {
            self.each_app(now, |app, cx| app.handle_wake(cx));
        }
        self.each_app(now, |app, cx| {
            if app.poll_timeout().is_some_and(|at| at <= cx.now) {
                app.handle_timeout(cx);
            }
        });
        // Send what the apps wrote in this same pass, and hand out what that produced.
        self.net.poll(now);
        self.dispatch(now);
        self.apps.retain(|_, app| !app.is_finished());
        Ok(())
    }

    /// Run until `done` returns true (checked before every pass).
    ///
    /// # Errors
    /// The OS poll failed.
    pub fn run_until(&mut self, mut done: impl FnMut(&mut Runtime) -> bool) -> io::Result<()> {
        while !done(self) {
            self.turn(None)?;
        }
        Ok(())
    }

    /// Run until every app has finished (forever for a service without a stop switch).
    ///
    /// # Errors
    /// The OS poll failed.
    pub fn run(&mut self) -> io::Result<()> {
        self.run_until(|rt| rt.apps.is_empty())
    }

    fn each_app(&mut self, now: Instant, mut f: impl FnMut(&mut dyn App, &mut Cx<'_>)) {
        let mut woken = false;
        for (key, app) in self.apps.iter_mut() {
            let mut cx = Cx {
                now,
                net: &mut *self.net,
                app: AppId(key),
                owners: &mut self.owners,
                listeners: &mut self.listeners,
                queries: &mut self.queries,
                woken: &mut woken,
            };
            f(&mut **app, &mut cx);
        }
        self.again |= woken;
    }

    fn dispatch(&mut self, now: Instant) {
        let mut woken = false;
        while let Some(ev) = self.net.poll_event() {
            if let Event::Resolved(q) = ev {
                self.resolved(now, q, &mut woken);
                continue;
            }
            let (owner, conn) = match ev {
                Event::Accepted { listener, conn, .. } => match self.listeners.get(&listener) {
                    Some(&app) => {
                        self.owners.insert(conn, app);
                        (app, conn)
                    }
                    None => {
                        // A listener closed in this pass: nobody wants the connection.
                        self.net.abort(conn);
                        continue;
                    }
                },
                Event::Ready(conn) => match self.owners.get(&conn) {
                    Some(&app) => (app, conn),
                    None => continue,
                },
                Event::Resolved(_) => continue,
            };
            let Some(app) = self.apps.get_mut(owner.0) else {
                self.owners.remove(&conn);
                self.net.abort(conn);
                continue;
            };
            let mut cx = Cx {
                now,
                net: &mut *self.net,
                app: owner,
                owners: &mut self.owners,
                listeners: &mut self.listeners,
                queries: &mut self.queries,
                woken: &mut woken,
            };
            match ev {
                Event::Accepted { listener, peer, .. } => {
                    app.handle_accept(&mut cx, listener, conn, peer)
                }
                Event::Ready(_) => app.handle_ready(&mut cx, conn),
                Event::Resolved(_) => {}
            }
        }
        self.again |= woken;
    }

    /// Hands a DNS outcome to the app that asked; an orphan query's outcome is dropped.
    fn resolved(&mut self, now: Instant, q: QueryId, woken: &mut bool) {
        let app = self.queries.remove(&q).and_then(|owner| {
            let app = self.apps.get_mut(owner.0)?;
            Some((owner, app))
        });
        let Some((owner, app)) = app else {
            let _ = self.net.poll_resolution(q);
            return;
        };
        let mut cx = Cx {
            now,
            net: &mut *self.net,
            app: owner,
            owners: &mut self.owners,
            listeners: &mut self.listeners,
            queries: &mut self.queries,
            woken,
        };
        app.handle_resolved(&mut cx, q);
    }
}

//! The one event loop: a single-threaded mio loop around one network stack.
//!
//! Each pass: sleep until IO, a wake-up or the earliest timer; read the clock (the pass's `now`,
//! the one instant every callback of the pass sees); let the stack do its network work
//! ([`net::Transport::poll`]: drain the device, run TCP, transmit); hand its events to the [`App`]
//! that owns each listener or connection; call [`App::handle_wake`] on the apps that asked to be
//! woken; fire due app timers; poll the stack again so that what the apps wrote goes out in the
//! same pass; then read the clock once more to compute how long to sleep: until the earliest of
//! the stack's delay and the apps' timers, or not at all when a wake-up is pending.
//!
//! Time is an input: the loop reads a [`Clock`] ([`SystemClock`] unless built with
//! [`Runtime::with_clock`]), and nothing above it reads the OS clock. Code that runs outside a
//! callback but on the loop's thread (a `Reqd` kept by a handler and answered from another
//! app's callback) reads the pass's time through [`PassTime`]. With a [`VirtualClock`] the loop
//! never sleeps; whoever drives it moves the clock (see `paf::testing`, feature `testing`).
//!
//! Apps (HTTP services, clients, the echo service) never see mio: they get a [`Cx`] with `now`
//! and the connections they own. "Call me now" is explicit: [`Cx::wake`] or a [`LocalWaker`]
//! (from the loop's thread) makes the loop call [`App::handle_wake`] on that app without sleeping;
//! other threads use a [`LoopWaker`] (the stop switch does), which wakes every app. Extra wake-ups
//! are harmless: an app's `handle_wake` does what is due and nothing else.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// A map keyed by ids the stack or the loop hands out (connections, listeners, queries). The
/// hasher ([`IdHasher`](crate::ctx::IdHasher): one multiply) has no random key, so iterating
/// one (which connection is pumped or reused first) follows the same order on every run: a
/// test on the virtual clock replays exactly. Safe because no peer chooses these keys.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<crate::ctx::IdHasher>>;

use mio::{Events, Poll, Token, Waker};
use net::dns::Resolution;
use net::{ConnId, ConnectError, DnsError, Event, ListenError, ListenerId, QueryId};
use net::{Readiness, RecordType, RecvError, SendError, Transport};
use slab::Slab;

mod clock;
#[cfg(test)]
mod tests;
pub mod workers;

pub use clock::{Clock, PassTime, SystemClock, VirtualClock};

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

    /// The earliest instant at which [`App::handle_timeout`] has work; `None` for no timer. An
    /// app that has work right away asks for it with [`Cx::wake`] or a [`LocalWaker`] instead.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Called when `now` has reached [`App::poll_timeout`] (possibly later; extra calls are fine).
    fn handle_timeout(&mut self, _cx: &mut Cx<'_>) {}

    /// Called after the app asked to be woken ([`Cx::wake`], a [`LocalWaker`]) or another thread
    /// woke the loop (a [`LoopWaker`]: a stop switch was turned off). Extra calls are fine.
    fn handle_wake(&mut self, _cx: &mut Cx<'_>) {}

    /// Once true, the loop drops the app. Its connections must all be released by then.
    fn is_finished(&self) -> bool {
        false
    }
}

/// Apps that asked to be woken, shared by the loop and its [`LocalWaker`]s.
#[derive(Debug, Default)]
struct Wakes {
    apps: RefCell<Vec<AppId>>,
}

impl Wakes {
    fn flag(&self, app: AppId) {
        let mut apps = self.apps.borrow_mut();
        if !apps.contains(&app) {
            apps.push(app);
        }
    }

    fn any(&self) -> bool {
        !self.apps.borrow().is_empty()
    }
}

/// Wakes one app of a loop from that loop's own thread (it is not `Send`): the loop calls the
/// app's [`App::handle_wake`] at the next step that can, in this pass or the next, without
/// sleeping. Handles that change an app's state from outside its callbacks (a `Reqd` answered
/// from another app's callback, a client body written from a handler) wake it this way.
#[derive(Clone, Debug)]
pub struct LocalWaker {
    wakes: Rc<Wakes>,
    app: AppId,
}

impl LocalWaker {
    /// Asks for a call to the app's `handle_wake`. Repeated calls before it happens are one.
    pub fn wake(&self) {
        self.wakes.flag(self.app);
    }
}

/// What an app can do during a callback: read the pass's clock and use the connections it owns.
/// Listeners and connections opened through a `Cx` belong to the calling app.
pub struct Cx<'a> {
    /// The time of this loop pass.
    pub now: Instant,
    net: &'a mut dyn Transport,
    app: AppId,
    owners: &'a mut IdMap<ConnId, AppId>,
    listeners: &'a mut IdMap<ListenerId, AppId>,
    queries: &'a mut IdMap<QueryId, AppId>,
    wakes: &'a Rc<Wakes>,
    pass: &'a PassTime,
    count: u64,
}

impl Cx<'_> {
    /// The wall-clock time of this pass.
    pub fn wall(&self) -> SystemTime {
        self.pass.wall()
    }

    /// The loop's pass time, to keep for code that runs outside callbacks.
    pub fn pass_time(&self) -> PassTime {
        self.pass.clone()
    }

    /// Which pass this is: increases by one per [`Runtime::turn`].
    pub fn pass(&self) -> u64 {
        self.count
    }

    /// A waker for this app, to keep (see [`LocalWaker`]).
    pub fn local_waker(&self) -> LocalWaker {
        LocalWaker {
            wakes: self.wakes.clone(),
            app: self.app,
        }
    }

    fn owns(&self, conn: ConnId) -> bool {
        self.owners.get(&conn) == Some(&self.app)
    }

    /// Reads received bytes of a connection this app owns into `buf`; `Ok(0)`: nothing now.
    ///
    /// # Errors
    /// See [`net::Transport::recv`]; [`RecvError::Invalid`] for a connection of another app.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, RecvError> {
        if !self.owns(conn) {
            return Err(RecvError::Invalid);
        }
        self.net.recv(conn, buf)
    }

    /// Offers the received bytes of a connection this app owns to `take` in the stack's own
    /// buffer (no copy); see [`net::Transport::recv_in_place`]. `Ok(None)`: the stack cannot
    /// lend its buffer, use [`Cx::recv`].
    ///
    /// # Errors
    /// See [`net::Transport::recv`]; [`RecvError::Invalid`] for a connection of another app.
    pub fn recv_in_place(
        &mut self,
        conn: ConnId,
        take: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<Option<usize>, RecvError> {
        if !self.owns(conn) {
            return Err(RecvError::Invalid);
        }
        self.net.recv_in_place(conn, take)
    }

    /// Queues bytes on a connection this app owns; returns how many were taken (`Ok(0)`: no
    /// room now).
    ///
    /// # Errors
    /// See [`net::Transport::send`]; [`SendError::Invalid`] for a connection of another app.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, SendError> {
        if !self.owns(conn) {
            return Err(SendError::Invalid);
        }
        self.net.send(conn, data)
    }

    /// Bytes queued on a connection this app owns and not yet acknowledged (0 for another
    /// app's).
    pub fn send_queue(&self, conn: ConnId) -> usize {
        if self.owns(conn) {
            self.net.send_queue(conn)
        } else {
            0
        }
    }

    /// Where a connection this app owns stands (all false for another app's).
    pub fn readiness(&self, conn: ConnId) -> Readiness {
        if self.owns(conn) {
            self.net.readiness(conn)
        } else {
            Readiness::default()
        }
    }

    /// The remote and local addresses of a connection this app owns.
    pub fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        if self.owns(conn) {
            self.net.endpoints(conn)
        } else {
            None
        }
    }

    /// Half-closes a connection this app owns: FIN after the queued data; it keeps receiving.
    pub fn shutdown_write(&mut self, conn: ConnId) {
        if self.owns(conn) {
            self.net.shutdown_write(conn);
        }
    }

    /// The outcome of a DNS query this app started, once [`App::handle_resolved`] said so.
    pub fn poll_resolution(&mut self, query: QueryId) -> Option<Resolution> {
        self.net.poll_resolution(query)
    }

    /// Sockets the stack holds (a gauge for metrics).
    pub fn socket_count(&self) -> usize {
        self.net.socket_count()
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

    /// Makes a listener opened on the stack directly (by `service::init`, before the app
    /// existed) this app's.
    pub(crate) fn adopt_listener(&mut self, listener: ListenerId) {
        self.listeners.insert(listener, self.app);
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

    /// Ask for a call to this app's [`App::handle_wake`] without sleeping: in this pass if its
    /// wake step is still to come, else in the next one.
    pub fn wake(&mut self) {
        self.wakes.flag(self.app);
    }
}

/// Every live loop's waker, for [`wake_all`].
static LOOPS: Mutex<Vec<std::sync::Weak<Waker>>> = Mutex::new(Vec::new());

/// Wakes every loop of the process: when something any loop may be waiting on completes (a
/// service [`Handle`](crate::service::Handle) of another loop), so that a predicate given to
/// [`Runtime::run_until`] is looked at again. Rare, and extra wake-ups are harmless.
pub(crate) fn wake_all() {
    let mut loops = LOOPS.lock().unwrap_or_else(PoisonError::into_inner);
    loops.retain(|w| match w.upgrade() {
        Some(w) => {
            let _ = w.wake();
            true
        }
        None => false,
    });
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

    /// Whether both wake the same loop.
    pub(crate) fn same_loop(&self, other: &LoopWaker) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One stack and the apps on it, driven by one mio loop. See the module docs.
pub struct Runtime {
    poll: Poll,
    events: Events,
    net: Box<dyn Transport>,
    clock: Box<dyn Clock>,
    waker: LoopWaker,
    apps: Slab<Box<dyn App>>,
    owners: IdMap<ConnId, AppId>,
    listeners: IdMap<ListenerId, AppId>,
    queries: IdMap<QueryId, AppId>,
    wakes: Rc<Wakes>,
    pass: PassTime,
    count: u64,
    /// Run the next pass without sleeping (a new app, or the stack has work).
    again: bool,
    /// Apps with a timer due, reused every pass.
    due: Vec<usize>,
    /// Apps being woken, reused every pass.
    woken: Vec<AppId>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("apps", &self.apps.len())
            .field("connections", &self.owners.len())
            .finish()
    }
}

/// A [`Cx`] for `app`, borrowing the runtime's fields one by one.
macro_rules! cx {
    ($rt:expr, $app:expr, $now:expr) => {
        Cx {
            now: $now,
            net: &mut *$rt.net,
            app: $app,
            owners: &mut $rt.owners,
            listeners: &mut $rt.listeners,
            queries: &mut $rt.queries,
            wakes: &$rt.wakes,
            pass: &$rt.pass,
            count: $rt.count,
        }
    };
}

impl Runtime {
    /// A loop around `net`, on the system clock.
    ///
    /// # Errors
    /// mio cannot create its poll or register the stack.
    pub fn new(net: Box<dyn Transport>) -> io::Result<Runtime> {
        Runtime::with_clock(net, Box::new(SystemClock))
    }

    /// A loop around `net` on `clock` (a [`VirtualClock`] for deterministic tests: the loop then
    /// never sleeps, and whoever drives it moves the clock).
    ///
    /// # Errors
    /// mio cannot create its poll or register the stack.
    pub fn with_clock(mut net: Box<dyn Transport>, clock: Box<dyn Clock>) -> io::Result<Runtime> {
        let poll = Poll::new()?;
        let waker = LoopWaker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        net.register(poll.registry(), STACK)?;
        LOOPS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&waker.0));
        let now = clock.now();
        let pass = PassTime::new(&*clock, now);
        Ok(Runtime {
            poll,
            events: Events::with_capacity(256),
            net,
            clock,
            waker,
            apps: Slab::new(),
            owners: IdMap::default(),
            listeners: IdMap::default(),
            queries: IdMap::default(),
            wakes: Rc::default(),
            pass,
            count: 0,
            again: true,
            due: Vec::new(),
            woken: Vec::new(),
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
        Runtime::on_tap(t, config, pcap, None)
    }

    /// A loop around a userspace stack on an open TAP (one queue of it), optionally capturing
    /// to `pcap`; with `peer`, the stack is one of the workers sharing the TAP (see
    /// [`net::stack::mesh`]).
    ///
    /// # Errors
    /// The pcap file cannot be created, or the configuration is invalid (the error names the
    /// field).
    pub fn on_tap(
        t: net::device::Tap,
        config: net::Config,
        pcap: Option<&std::path::Path>,
        peer: Option<net::stack::mesh::Peer>,
    ) -> io::Result<Runtime> {
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
        let mut stack = net::Stack::new(config, device, SystemClock.now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if let Some(p) = peer {
            stack.join(p);
        }
        Runtime::new(Box::new(stack))
    }

    /// A loop around the kernel-socket twin, listening on `bind` (`::` for every address).
    ///
    /// # Errors
    /// mio cannot create its polls.
    pub fn kernel(bind: std::net::IpAddr) -> io::Result<Runtime> {
        Runtime::new(Box::new(net::kernel::KernelStack::new(
            bind,
            SystemClock.now(),
        )?))
    }

    /// A handle that wakes this loop from any thread.
    pub fn waker(&self) -> LoopWaker {
        self.waker.clone()
    }

    /// The time of the current (or last) pass, for code on the loop's thread outside callbacks.
    pub fn pass_time(&self) -> PassTime {
        self.pass.clone()
    }

    /// The loop's clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
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
        let id = AppId(self.apps.vacant_key());
        let now = self.pass.now();
        let mut cx = cx!(self, id, now);
        setup(&mut app, &mut cx)?;
        let key = self.apps.insert(Box::new(app));
        debug_assert_eq!(key, id.0);
        self.again = true;
        Ok(id)
    }

    /// Add the app `build` makes with a [`Cx`] of its own (to keep a [`LocalWaker`] or the
    /// [`PassTime`], open listeners, connect): the app exists only fully built.
    ///
    /// # Errors
    /// Whatever `build` returns; nothing is added then.
    pub fn add_with<A: App + 'static, E>(
        &mut self,
        build: impl FnOnce(&mut Cx<'_>) -> Result<A, E>,
    ) -> Result<AppId, E> {
        let id = AppId(self.apps.vacant_key());
        let now = self.pass.now();
        let mut cx = cx!(self, id, now);
        let app = build(&mut cx)?;
        let key = self.apps.insert(Box::new(app));
        debug_assert_eq!(key, id.0);
        self.again = true;
        Ok(id)
    }

    /// When the loop next has work without IO: now when a wake-up is pending, else the earliest
    /// of the stack's next timer and the apps' timers; `None` when only IO can bring work. A
    /// driver of a [`VirtualClock`] moves the clock there.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let now = self.clock.now();
        self.deadline_from(now)
    }

    /// [`Runtime::next_deadline`] as seen at `now`.
    fn deadline_from(&mut self, now: Instant) -> Option<Instant> {
        if self.again || self.wakes.any() {
            return Some(now);
        }
        let mut at = self.net.poll_delay(now).map(|d| now + d);
        for (_, app) in &self.apps {
            if let Some(t) = app.poll_timeout() {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        at
    }

    /// Run one pass, sleeping at most `max` (or until the next timer or IO when shorter). On a
    /// virtual clock it never sleeps.
    ///
    /// # Errors
    /// The OS poll failed.
    pub fn turn(&mut self, max: Option<Duration>) -> io::Result<()> {
        let before = self.clock.now();
        let mut timeout = self
            .deadline_from(before)
            .map(|at| at.saturating_duration_since(before));
        if let Some(m) = max {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        if self.clock.is_virtual() {
            timeout = Some(Duration::ZERO);
        }
        self.again = false;
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let woken = self.events.iter().any(|e| e.token() == WAKER);
        let now = self.clock.now();
        self.count += 1;
        self.pass.set(&*self.clock, now);
        self.net.poll(now);
        self.dispatch(now);
        if woken {
            for (key, _) in &self.apps {
                self.wakes.flag(AppId(key));
            }
        }
        self.wake_apps(now);
        let mut due = std::mem::take(&mut self.due);
        due.extend(
            self.apps
                .iter()
                .filter(|(_, app)| app.poll_timeout().is_some_and(|at| at <= now))
                .map(|(key, _)| key),
        );
        for key in due.drain(..) {
            let Some(app) = self.apps.get_mut(key) else {
                continue;
            };
            let mut cx = cx!(self, AppId(key), now);
            app.handle_timeout(&mut cx);
        }
        self.due = due;
        // Send what the apps wrote in this same pass, and hand out what that produced.
        self.net.poll(now);
        self.dispatch(now);
        self.apps.retain(|_, app| !app.is_finished());
        Ok(())
    }

    /// Run until `done` returns true (checked before every pass).
    ///
    /// A pass sleeps until IO, a timer or a wake-up, so `done` must depend on this loop's work,
    /// or whatever makes it true must wake the loop: a [`LoopWaker`] from another thread, a
    /// [`LocalWaker`] on this thread. A service [`Handle`](crate::service::Handle) wakes every
    /// loop when it completes, so `rt.run_until(|_| handle.is_finished())` works for a handle
    /// of this loop or of another one. To wait on anything else, pass a bound to
    /// [`Runtime::turn`] instead.
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

    /// Calls `handle_wake` on every app that asked, until none asks again within this step (an
    /// app asking from its own `handle_wake` waits for the next pass).
    fn wake_apps(&mut self, now: Instant) {
        let mut flagged = std::mem::take(&mut self.woken);
        std::mem::swap(&mut flagged, &mut *self.wakes.apps.borrow_mut());
        for id in flagged.drain(..) {
            let Some(app) = self.apps.get_mut(id.0) else {
                continue;
            };
            let mut cx = cx!(self, id, now);
            app.handle_wake(&mut cx);
        }
        self.woken = flagged;
    }

    fn dispatch(&mut self, now: Instant) {
        while let Some(ev) = self.net.poll_event() {
            if let Event::Resolved(q) = ev {
                self.resolved(now, q);
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
            let mut cx = cx!(self, owner, now);
            match ev {
                Event::Accepted { listener, peer, .. } => {
                    app.handle_accept(&mut cx, listener, conn, peer)
                }
                Event::Ready(_) => app.handle_ready(&mut cx, conn),
                Event::Resolved(_) => {}
            }
        }
    }

    /// Hands a DNS outcome to the app that asked; an orphan query's outcome is dropped.
    fn resolved(&mut self, now: Instant, q: QueryId) {
        let app = self.queries.remove(&q).and_then(|owner| {
            let app = self.apps.get_mut(owner.0)?;
            Some((owner, app))
        });
        let Some((owner, app)) = app else {
            let _ = self.net.poll_resolution(q);
            return;
        };
        let mut cx = cx!(self, owner, now);
        app.handle_resolved(&mut cx, q);
    }
}

//! The service as an [`App`] of the loop: accepts connections, pumps them on readiness, fires
//! their timers, flushes connections that `Reqd`s changed, and runs the stop sequence.
//!
//! Timers: one heap entry per connection (see `timers.rs`). Changes made through a `Reqd` from
//! outside this app's callbacks (another app's callback) wake the app through its
//! [`LocalWaker`](crate::runtime::LocalWaker): the loop calls [`App::handle_wake`] in the same or
//! the next pass without sleeping, and that flushes them.
//!
//! Stop: when the switch is off the listener is closed (new SYNs are refused), every codec is
//! told to shut down (in-flight exchanges finish, idle keep-alive connections close at once),
//! closing connections wait until the peer has acknowledged every byte, and once no connection
//! is left the [`Handle`] completes. Whatever is left at `drain_timeout` (plus a grace second)
//! is reset.
//!
//! Taken over ([`crate::service::take_over`]): the listener belongs to the new service; this one
//! serves the connections it has as before and finishes (completing its handle) when the last
//! one has closed. Its switch still stops it.

use crate::runtime::IdMap;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use net::{ConnId, ListenerId};

use super::codec::ServerCodec;
use super::conn::{Conn, ErrorHandler, Next, RequestHandler, Running};
use super::core::{Core, Shared};
use super::handle::{Handle, Listening, ServiceError};
use super::switch::Switch;
use super::timers::Timers;
use super::tls_stats::TlsStats;
use crate::http::Config;
use crate::runtime::{App, Cx};

/// What `http` hands to the app.
pub(crate) struct Start {
    pub config: Arc<Config>,
    pub tls: Option<crate::tls::ServerConfig>,
    pub stop: Option<Switch>,
    pub request: RequestHandler,
    pub error: ErrorHandler,
    pub handle: Handle,
    pub access: super::core::Access,
}

pub(crate) struct ServiceApp {
    port: u16,
    run: Running,
    conns: IdMap<ConnId, Conn>,
    timers: Timers,
    finished: bool,
    batch: Vec<ConnId>,
    /// Connections that yielded (see [`conn::ROUNDS_PER_PUMP`]), with the pass they yielded
    /// in; pumped again in a later pass.
    yielded: Vec<(ConnId, u64)>,
}

impl ServiceApp {
    /// The app serving `listener` (opened by `init`), built in the loop's setup call.
    pub(crate) fn new(port: u16, listener: ListenerId, s: Start, cx: &mut Cx<'_>) -> ServiceApp {
        cx.adopt_listener(listener);
        s.handle.set_listening(Listening { id: listener, port });
        let shared = Rc::new(Shared::new(
            s.config,
            s.handle,
            cx.pass_time(),
            cx.local_waker(),
            s.access,
        ));
        ServiceApp {
            port,
            run: Running::new(shared, s.tls, s.request, s.error, s.stop),
            conns: IdMap::default(),
            timers: Timers::default(),
            finished: false,
            batch: Vec::new(),
            yielded: Vec::new(),
        }
    }

    fn check_stop(&mut self, cx: &mut Cx<'_>) {
        let run = &mut self.run;
        if run.stopping.is_some() || !run.stop.as_ref().is_some_and(Switch::is_off) {
            return;
        }
        let drain = run.shared.config.drain_timeout;
        run.stopping = Some(cx.now + drain + Duration::from_secs(1));
        log::info!(
            "service on port {}: stopping, draining {} connections",
            self.port,
            self.conns.len()
        );
        // Unless another service took it over.
        if let Some(l) = run.shared.handle.take_listening() {
            cx.unlisten(l.id);
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get(&id) {
                c.core.borrow_mut().codec.shutdown(cx.now);
            }
            self.pump(cx, id);
        }
    }

    /// Pumps one connection and acts on the outcome.
    fn pump(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        let run = &mut self.run;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match run.pump(cx, c) {
            next @ (Next::Keep | Next::Yield) => {
                if next == Next::Yield {
                    self.yielded.push((id, cx.pass()));
                    cx.wake();
                }
                self.schedule(id);
            }
            next => {
                let c = self.conns.remove(&id).expect("present");
                if next == Next::Abort {
                    cx.abort(id);
                } else {
                    cx.close(id);
                }
                let counters = &run.shared.handle.0.counters;
                counters.active.fetch_sub(1, Ordering::Relaxed);
                run.teardown(c);
            }
        }
    }

    /// Puts the connection's next deadline in the timer heap.
    fn schedule(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut slot = c.timer;
        self.timers.schedule(id, &mut slot, c.deadline());
        c.timer = slot;
        if self.timers.needs_rebuild(self.conns.len()) {
            let live = self
                .conns
                .iter()
                .filter_map(|(id, c)| Some((c.timer?, *id)));
            self.timers.rebuild(live);
        }
    }

    /// Flushes every connection a `Reqd` changed, until none is left.
    fn drain(&mut self, cx: &mut Cx<'_>) {
        if !self.run.shared.pending.get() {
            return;
        }
        let shared = self.run.shared.clone();
        loop {
            std::mem::swap(&mut *shared.dirty.borrow_mut(), &mut self.batch);
            if self.batch.is_empty() {
                break;
            }
            let mut batch = std::mem::take(&mut self.batch);
            for id in batch.drain(..) {
                self.pump(cx, id);
            }
            self.batch = batch;
        }
        shared.pending.set(false);
    }

    /// Completes the handle once stopping is over, or once a service that took over has the
    /// listener and this one's last connection is gone.
    fn settle(&mut self, cx: &mut Cx<'_>) {
        let Some(deadline) = self.run.stopping else {
            if self.conns.is_empty() && !self.finished && !self.run.shared.handle.is_listening() {
                self.finished = true;
                self.run.shared.finish_access();
                log::info!(
                    "service on port {}: handed over, its last connection closed",
                    self.port
                );
                self.run.shared.handle.complete(Ok(()));
            }
            return;
        };
        if !self.conns.is_empty() && cx.now >= deadline {
            log::warn!(
                "service on port {}: drain deadline passed, resetting {} connections",
                self.port,
                self.conns.len()
            );
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                if let Some(c) = self.conns.remove(&id) {
                    cx.abort(id);
                    let run = &mut self.run;
                    run.shared
                        .handle
                        .0
                        .counters
                        .active
                        .fetch_sub(1, Ordering::Relaxed);
                    run.teardown(c);
                }
            }
        }
        if self.conns.is_empty() && !self.finished {
            self.finished = true;
            self.run.shared.finish_access();
            log::info!("service on port {}: stopped", self.port);
            self.run.shared.handle.complete(Ok(()));
        }
    }

    /// The end of every callback.
    fn after(&mut self, cx: &mut Cx<'_>) {
        self.drain(cx);
        self.settle(cx);
    }
}

impl App for ServiceApp {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, id: ConnId, peer: SocketAddr) {
        self.check_stop(cx);
        let run = &mut self.run;
        let proxied = run.shared.config.proxy_protocol.is_some();
        if let Some(trusted) = &run.shared.config.proxy_protocol {
            if !trusted.iter().any(|c| c.contains(peer.ip())) {
                log::info!("{peer}: not a trusted PROXY protocol source; reset");
                let counters = &run.shared.handle.0.counters;
                counters.proxy_refused.fetch_add(1, Ordering::Relaxed);
                cx.abort(id);
                return;
            }
            // The client (and its connection cap) is known once the header is read.
        } else if !run.clients.open(&run.shared.config.per_client, peer.ip()) {
            // Over its connection cap: reset now, before any buffer or TLS state exists.
            log::debug!("{peer}: over max_connections_per_ip; reset");
            let counters = &run.shared.handle.0.counters;
            counters.limited_connections.fetch_add(1, Ordering::Relaxed);
            cx.abort(id);
            return;
        }
        let tls = match run
            .tls
            .as_ref()
            .map(|cfg| crate::tls::ServerSession::new(cfg, cx.now))
        {
            None => None,
            Some(Ok(t)) => Some((t, TlsStats::new(run.shared.handle.clone(), peer))),
            Some(Err(e)) => {
                log::error!("{peer}: cannot start TLS: {e}");
                if !proxied {
                    run.clients.close(&run.shared.config.per_client, peer.ip());
                }
                cx.abort(id);
                return;
            }
        };
        let counters = &run.shared.handle.0.counters;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.active.fetch_add(1, Ordering::Relaxed);
        let tls_h2 = run
            .tls
            .as_ref()
            .is_some_and(|t| t.offers_alpn(crate::tls::ALPN_H2));
        let config = run.shared.config.clone();
        let mut codec = ServerCodec::new(config, cx.now, run.tls.is_some(), tls_h2);
        if run.stopping.is_some() {
            codec.shutdown(cx.now);
        }
        let core = Rc::new(RefCell::new(Core {
            codec,
            conn: id,
            slots: Default::default(),
            queued: false,
            closed: false,
            kill: false,
            date_gen: 0,
            upgrade: None,
        }));
        log::debug!("{peer}: accepted {id}");
        let mut conn = Conn::new(id, peer, core, tls);
        conn.local = cx.endpoints(id).map(|(_, local)| local);
        if proxied {
            let until = cx.now + run.shared.config.head_timeout;
            conn.preamble = Some((crate::http::proxy_protocol::Reader::new(), until));
            conn.counted = false;
        } else {
            conn.held = run.hold(peer.ip(), cx.now);
        }
        self.conns.insert(id, conn);
        self.pump(cx, id);
        self.after(cx);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, id: ConnId) {
        self.pump(cx, id);
        self.after(cx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        [
            self.timers.next(),
            self.run.stopping,
            self.run.shared.access_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.run.shared.access_timeout(cx.now);
        while let Some((at, id)) = self.timers.pop_due(cx.now) {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.timer != Some(at) {
                continue;
            }
            c.timer = None;
            if c.handle_timeout(cx.now) {
                self.pump(cx, id);
            } else {
                self.schedule(id);
            }
        }
        self.after(cx);
    }

    /// Flushes what `Reqd`s changed, starts stopping when the switch is off, and pumps the
    /// connections that yielded in an earlier pass (not this one: the others go first).
    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        if self.finished {
            return;
        }
        self.check_stop(cx);
        let pass = cx.pass();
        let mut list = std::mem::take(&mut self.yielded);
        list.retain(|&(id, at)| {
            if at < pass {
                self.pump(cx, id);
                false
            } else {
                true
            }
        });
        if !list.is_empty() {
            cx.wake();
        }
        list.append(&mut self.yielded);
        self.yielded = list;
        self.after(cx);
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for ServiceApp {
    fn drop(&mut self) {
        for (_, c) in self.conns.drain() {
            let slots = {
                let mut core = c.core.borrow_mut();
                core.closed = true;
                std::mem::take(&mut core.slots)
            };
            drop(slots);
        }
        self.run.shared.finish_access();
        self.run.shared.handle.complete(Err(ServiceError::Dropped));
    }
}

//! The client as an [`App`] of the loop: resolves ctxs, runs DNS jobs, hands requests to pooled
//! or new connections, pumps connections, and delivers what user code must hear.
//!
//! Every callback ends in [`ClientApp::work`], which repeats until nothing is left to do: handle
//! drops noted by handles, start DNS queries, poll the ctx of resolving requests, assign waiting
//! requests to connections, pump the connections that had events, then deliver (with the state
//! released) — deliveries may queue more work (a handler starting the next request on the
//! connection just freed), which the next round picks up in the same pass.
//!
//! Changes made through handles outside the app's callbacks set [`Shared::pending`]; while it is
//! set, [`App::poll_timeout`] returns an instant already past, so the loop runs the app in the
//! same or the next pass without sleeping.

use std::net::SocketAddr;
use std::time::Instant;

use net::{ConnId, ListenerId, QueryId};

use super::conn::{Conn, ConnState, Failure, TunnelNext};
use super::dns;
use super::exchange::{
    abort, attempt_failed, conn_failed, deliver, fail, feed_body, send_on, writable,
};
use super::state::{BodyKind, Deferred, Delivery, Inner, Phase, Reader};
use super::{Agent, Error};
use crate::http::client::UsageError;
use crate::pipe::{Codec as _, Pool};
use crate::runtime::{App, Cx};

mod responses;

/// Rounds of [`ClientApp::work`] per callback before yielding to the loop (the rest runs at the
/// next pass).
const MAX_ROUNDS: usize = 64;

/// Bytes a connection's pipe buffers per stage (socket input or TLS plaintext, ciphertext).
const BUFFER: usize = 64 * 1024;

pub(crate) struct ClientApp {
    stack: Agent,
    /// Buffers for the connections' pipes.
    pool: std::cell::RefCell<Pool>,
    /// Where response bodies are read to before they are handed over at their size: one
    /// `read_chunk` buffer for every read, not a fresh zeroed one per response.
    scratch: std::cell::RefCell<Vec<u8>>,
    /// A connection's exchange ids, copied before a loop that may change them (kept, so that
    /// the copy does not allocate each time).
    ids: std::cell::RefCell<Vec<u64>>,
    /// The hinted ids of a pass (see [`Hints`](super::state::Hints)), kept between passes.
    hinted: std::cell::RefCell<Vec<u64>>,
    /// The deliveries of a `work` call (kept for its capacity).
    out: Vec<Delivery>,
    /// The connections a round pumps (kept for its capacity).
    dirty: Vec<ConnId>,
    /// The connections a round pumps for a scheduled read alone (kept for its capacity).
    reads: Vec<ConnId>,
}

impl ClientApp {
    pub(crate) fn new(stack: Agent) -> Self {
        ClientApp {
            stack,
            pool: std::cell::RefCell::new(Pool::new(BUFFER)),
            scratch: std::cell::RefCell::new(Vec::new()),
            ids: std::cell::RefCell::new(Vec::new()),
            hinted: std::cell::RefCell::new(Vec::new()),
            out: Vec::new(),
            dirty: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// Gives the handles the app's waker: work they queue wakes it.
    pub(crate) fn attach(&self, waker: crate::runtime::LocalWaker) {
        self.stack.0.pending.attach(waker);
    }

    fn work(&mut self, cx: &mut Cx<'_>) {
        let shared = self.stack.0.clone();
        // The connections' timers move with what follows: asked again, the deadline is found
        // anew.
        shared.deadline.set(None);
        let mut out = std::mem::take(&mut self.out);
        for _ in 0..MAX_ROUNDS {
            shared.pending.set(false);
            self.deferred(cx, &mut out);
            dns::start(cx, &mut shared.inner.borrow_mut());
            self.poll_resolving(cx, &mut out);
            self.assign(cx, &mut out);
            self.pump_dirty(cx, &mut out);
            self.writables(&mut out);
            if out.is_empty() && !shared.pending.get() {
                self.out = out;
                return;
            }
            deliver(&self.stack, &mut out);
        }
        self.out = out;
        // Not done: come back at the next pass.
        shared.pending.set(true);
        cx.wake();
    }

    /// `on_writable` of requests not on a connection yet (their buffer has room).
    fn writables(&mut self, out: &mut Vec<Delivery>) {
        let mut guard = self.stack.0.inner.borrow_mut();
        let inner = &mut *guard;
        if !std::mem::take(&mut inner.hints.writable) {
            return;
        }
        // In id order: the order requests were made.
        let mut ids: Vec<u64> = inner.exchanges.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(x) = inner.exchanges.get_mut(&id) else {
                continue;
            };
            writable(&self.stack, x, id, out);
            // Still blocked with no room: it waits for its connection to take bytes, and that
            // connection's pump calls `writable`; but keep looking while it is not on one.
            if x.on_writable.is_some() && !matches!(x.phase, Phase::Sent(..)) {
                inner.hints.writable = true;
            }
        }
    }

    /// Handle drops and short bodies noted by handles.
    fn deferred(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Delivery>) {
        let notes = std::mem::take(&mut *self.stack.0.deferred.borrow_mut());
        if notes.is_empty() {
            return;
        }
        let mut inner = self.stack.0.inner.borrow_mut();
        for note in notes {
            match note {
                Deferred::Writer(id) => {
                    let streaming = inner.exchanges.get(&id).is_some_and(|x| {
                        matches!(x.body, BodyKind::Length(_) | BodyKind::Chunked) && !x.closed
                    });
                    if streaming {
                        log::debug!("client: request {id}: body writer dropped unclosed");
                        let conn = fail(&mut inner, id, Error::Cancelled, out);
                        abort(cx, &mut inner, conn);
                    }
                }
                Deferred::Cancel(id) => {
                    let conn = fail(&mut inner, id, Error::Cancelled, out);
                    abort(cx, &mut inner, conn);
                }
                Deferred::Short(id) => {
                    let conn = fail(&mut inner, id, Error::Usage(UsageError::BodyTooShort), out);
                    abort(cx, &mut inner, conn);
                }
                Deferred::Pump(cid) => inner.dirty.push(cid),
                Deferred::Body(id) => {
                    if let Some(x) = inner.exchanges.get_mut(&id) {
                        if x.reader.is_none() && x.answered {
                            x.reader = Some(Reader::Discard);
                            x.try_read = true;
                            inner.touch(id);
                        }
                    }
                }
            }
        }
    }

    /// Polls the ctx of every resolving request.
    fn poll_resolving(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Delivery>) {
        let ids = {
            let mut guard = self.stack.0.inner.borrow_mut();
            let inner = &mut *guard;
            if inner.hints.resolving.is_empty() {
                return;
            }
            // Each poll that stays pending adds its id again.
            listed(
                &mut inner.hints.resolving,
                self.hinted.take(),
                &inner.exchanges,
                |x| x.phase == Phase::Resolving && x.connect.is_some(),
            )
        };
        for &id in &ids {
            if let Some(error) = self.stack.poll_connect(id) {
                let mut inner = self.stack.0.inner.borrow_mut();
                let conn = fail(&mut inner, id, error, out);
                abort(cx, &mut inner, conn);
            }
        }
        let mut ids = ids;
        ids.clear();
        self.hinted.replace(ids);
    }

    /// Gives waiting requests a connection of their endpoint: an HTTP/2 one with room, an idle
    /// one, or a new one while the endpoint is under its limit. While a connection that may
    /// turn out HTTP/2 is being made, requests wait for it rather than open more.
    fn assign(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Delivery>) {
        let options = &self.stack.0.options;
        let mut guard = self.stack.0.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.hints.waiting.is_empty() {
            return;
        }
        // Each request left waiting below adds its id again.
        let mut waiting = listed(
            &mut inner.hints.waiting,
            self.hinted.take(),
            &inner.exchanges,
            |x| x.phase == Phase::Waiting,
        );
        for &id in &waiting {
            let x = &inner.exchanges[&id];
            let key = x.key.clone().expect("waiting requests have a key");
            // A raw connection is always a new one of its own, outside the endpoint's limit.
            let raw = x.is_raw();
            // A shared HTTP/2 connection first: no new socket, no handshake (none can be one
            // of an endpoint that does not offer HTTP/2).
            let mut found = if raw || !key.may_be_h2() {
                None
            } else {
                inner
                    .conns
                    .values()
                    .find(|c| c.has_room() && c.key == key)
                    .map(|c| c.id)
            };
            let mut dead = Vec::new();
            if found.is_none() && !x.fresh_only && !raw {
                let idle = inner
                    .conns
                    .values()
                    .filter(|c| c.idle_since.is_some() && c.key == key);
                for c in idle {
                    if c.is_live(cx) {
                        found = Some(c.id);
                        break;
                    }
                    dead.push(c.id);
                }
            }
            for cid in dead {
                if let Some(mut c) = inner.conns.remove(&cid) {
                    log::debug!("client: idle {cid} to {} went stale", c.peer);
                    c.shutdown(cx);
                    cx.close(cid);
                }
            }
            if let Some(cid) = found {
                let c = inner.conns.get_mut(&cid).expect("found");
                let x = inner.exchanges.get_mut(&id).expect("listed");
                if c.served > 0 || !c.exchanges.is_empty() {
                    inner.stats.reused += 1;
                }
                match send_on(c, x, id, cx.now) {
                    Ok(()) => inner.dirty.push(cid),
                    Err(e) => {
                        fail(inner, id, e, out);
                    }
                }
                continue;
            }
            if key.may_be_h2() && !raw {
                let known_h1 = inner
                    .conns
                    .values()
                    .any(|c| c.key == key && c.state == ConnState::Open && !c.codec.is_h2());
                let making = inner
                    .conns
                    .values()
                    .any(|c| c.key == key && c.state != ConnState::Open);
                if making && !known_h1 {
                    inner.hints.waiting.push(id);
                    continue;
                }
            }
            // Tunnels (upgraded connections) are not the endpoint's HTTP connections.
            let open = inner
                .conns
                .values()
                .filter(|c| c.key == key && c.tunnel.is_none())
                .count();
            if open >= options.max_per_endpoint && !raw {
                inner.hints.waiting.push(id);
                continue;
            }
            let x = inner.exchanges.get_mut(&id).expect("listed");
            match cx.connect(key.addr) {
                Ok(cid) => {
                    inner.stats.connections += 1;
                    let timeout = x.connect_timeout.unwrap_or(options.connect_timeout);
                    let mut c = Conn::new(cid, key.clone(), cx.now, timeout);
                    c.raw = raw;
                    c.exchanges.push(id);
                    inner.conns.insert(cid, Box::new(c));
                    x.phase = Phase::Connecting(cid);
                    log::debug!("client: request {id}: connecting to {} ({cid})", key.addr);
                }
                Err(e) => {
                    attempt_failed(
                        x,
                        id,
                        &mut inner.hints,
                        Failure::Connect(e.into()),
                        key.addr,
                    );
                    self.stack.0.pending.set(true);
                }
            }
        }
        waiting.clear();
        self.hinted.replace(waiting);
    }

    fn pump_dirty(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Delivery>) {
        // Swapped with the kept buffers: none allocates once grown.
        let mut dirty = std::mem::take(&mut self.dirty);
        let mut reads = std::mem::take(&mut self.reads);
        {
            let mut inner = self.stack.0.inner.borrow_mut();
            std::mem::swap(&mut dirty, &mut inner.dirty);
            std::mem::swap(&mut reads, &mut inner.reads);
        }
        for (i, &cid) in dirty.iter().enumerate() {
            if !dirty[..i].contains(&cid) {
                self.pump(cx, cid, out, false);
            }
        }
        for (i, &cid) in reads.iter().enumerate() {
            if !reads[..i].contains(&cid) && !dirty.contains(&cid) {
                self.pump(cx, cid, out, true);
            }
        }
        dirty.clear();
        reads.clear();
        self.dirty = dirty;
        self.reads = reads;
    }

    /// Moves one connection and its exchange as far as they go (`for_read`: it was marked only
    /// because a reader was scheduled; see [`read_only`](Self::read_only)).
    fn pump(&mut self, cx: &mut Cx<'_>, cid: ConnId, out: &mut Vec<Delivery>, for_read: bool) {
        let options = &self.stack.0.options;
        let mut guard = self.stack.0.inner.borrow_mut();
        let inner = &mut *guard;
        let Some(mut c) = inner.conns.remove(&cid) else {
            return;
        };
        if c.tunnel.is_some() {
            return Self::tunnel(cx, inner, c, &mut self.pool.borrow_mut());
        }
        let result = if for_read && c.reads_alone() {
            self.read_only(cx, inner, &mut c, out)
        } else {
            self.rounds(cx, inner, &mut c, out)
        };
        if result.is_ok() && c.tunnel.is_some() {
            // A 101 arrived in this pump: the connection is a tunnel's from now on.
            return Self::tunnel(cx, inner, c, &mut self.pool.borrow_mut());
        }
        if let Err(f) = result {
            if let Failure::Tls(_) = f {
                // The alert rustls owes the peer, then FIN (rustls: flush, then close).
                c.shutdown(cx);
                cx.close(cid);
            } else {
                cx.abort(cid);
            }
            conn_failed(inner, c, f, out);
            // The exchange may go on (next endpoint, retry) or fail: look again.
            self.stack.0.pending.set(true);
            return;
        }
        // An exchange on it went away (cancelled, failed): HTTP/1.1 is mid-request, HTTP/2
        // resets that stream alone (normally done already by `abort`).
        let live = &inner.exchanges;
        let gone: Vec<u64> = c
            .exchanges
            .iter()
            .copied()
            .filter(|id| !live.contains_key(id))
            .collect();
        if !gone.is_empty() {
            if !c.codec.is_h2() {
                cx.abort(cid);
                return;
            }
            c.exchanges.retain(|id| !gone.contains(id));
        }
        if c.exchanges.is_empty() && c.state != ConnState::Open {
            cx.abort(cid);
            return;
        }
        if c.has_room() {
            // Requests waiting for this endpoint may share it.
            let waiting = inner.hints.waiting.iter().any(|id| {
                inner
                    .exchanges
                    .get(id)
                    .is_some_and(|x| x.phase == Phase::Waiting && x.key.as_ref() == Some(&c.key))
            });
            if waiting {
                self.stack.0.pending.set(true);
            }
        }
        if c.exchanges.is_empty() {
            let expired = c
                .idle_since
                .is_some_and(|t| cx.now >= t + options.idle_timeout);
            // (`c` is out of the map: the others may keep one less.)
            let keep = options.max_idle.saturating_sub(1);
            // Idle connections, all and of this endpoint, in one look; not looked for when
            // there are too few other connections to reach either limit (a pool sized for
            // its load: the look was 2% of a proxied request).
            let others = inner.conns.len();
            let idle = (others >= options.max_idle_per_endpoint || others > keep).then(|| {
                inner
                    .conns
                    .values()
                    .filter(|o| o.idle_since.is_some())
                    .fold((0, 0), |(all, here), o| {
                        (all + 1, here + usize::from(o.key == c.key))
                    })
            });
            if c.closing
                || c.codec.is_closed()
                || expired
                || idle.is_some_and(|(_, here)| here >= options.max_idle_per_endpoint)
            {
                log::debug!("client: closing {cid} to {}", c.peer);
                c.shutdown(cx);
                cx.close(cid);
                // A request waiting for a free slot of this endpoint may go now.
                self.stack.0.pending.set(true);
                return;
            }
            if c.idle_since.is_none() {
                c.idle_since = Some(cx.now);
                self.stack.0.pending.set(true);
            }
            if idle.is_some_and(|(all, _)| all > keep) {
                close_idle_past(cx, inner, keep);
            }
        }
        inner.conns.insert(cid, c);
    }

    /// Pumps a connection that switched protocols; keeps it until its tunnel is over.
    fn tunnel(cx: &mut Cx<'_>, inner: &mut Inner, mut c: Box<Conn>, pool: &mut Pool) {
        let cid = c.id;
        match c.pump_tunnel(cx, pool) {
            TunnelNext::Keep => {
                inner.conns.insert(cid, c);
            }
            TunnelNext::Close => {
                log::debug!("client: tunnel on {cid} to {} over", c.peer);
                c.shutdown(cx);
                cx.close(cid);
            }
            TunnelNext::Abort => cx.abort(cid),
        }
    }

    /// The pump of a plain HTTP/1.1 connection that a scheduled read alone made dirty: the
    /// exchanges' readers get what the codec holds, and the socket is left alone. Input that
    /// came since the last pump came with a readiness event, which makes the connection dirty
    /// and pumps it in full; so does a read that changed what the pipe acts on (room for input
    /// the codec had refused, output, a held end of stream) or raised an event. On a proxied
    /// request two of the four pumps of its upstream connection were such reads (the body,
    /// then its end), each a full pump that found the socket empty.
    fn read_only(
        &self,
        cx: &mut Cx<'_>,
        inner: &mut Inner,
        c: &mut Conn,
        out: &mut Vec<Delivery>,
    ) -> Result<(), Failure> {
        let wanted = c.codec.wants_read();
        self.read_responses(cx.now, inner, c, out);
        let evented = self.events(cx.now, inner, c, out);
        if evented.any
            || (!wanted && c.codec.wants_read())
            || !c.codec.poll_transmit().is_empty()
            || c.is_eof_held()
        {
            return self.rounds(cx, inner, c, out);
        }
        Ok(())
    }

    fn rounds(
        &self,
        cx: &mut Cx<'_>,
        inner: &mut Inner,
        c: &mut Conn,
        out: &mut Vec<Delivery>,
    ) -> Result<(), Failure> {
        c.tick(cx.now)?;
        loop {
            let mut fed = false;
            let mut ids = self.ids.take();
            ids.clone_from(&c.exchanges);
            for &id in &ids {
                if let Some(x) = inner.exchanges.get_mut(&id) {
                    fed |= feed_body(c, x, cx.now);
                }
            }
            self.ids.replace(ids);
            let was_open = c.state == ConnState::Open;
            // Body bytes may wait in the codec for a reader: the end of the stream (which would
            // drop them if it comes early) waits for them to be read.
            let hold = c.exchanges.iter().any(|id| {
                inner
                    .exchanges
                    .get(id)
                    .is_some_and(|x| x.answered && x.try_read)
            });
            let io = c.pump(cx, &mut self.pool.borrow_mut(), hold)?;
            let mut moved = fed || io;
            let wanted = c.codec.wants_read();
            if !was_open && c.state == ConnState::Open {
                log::debug!(
                    "client: {} to {} open ({})",
                    c.id,
                    c.peer,
                    if c.codec.is_h2() {
                        "HTTP/2"
                    } else {
                        "HTTP/1.1"
                    }
                );
                if c.raw {
                    // A raw connection: no HTTP, it is the handler's from now on.
                    self.connected(cx.now, inner, c, out);
                    return Ok(());
                }
                let mut ids = self.ids.take();
                ids.clone_from(&c.exchanges);
                for &id in &ids {
                    if let Some(x) = inner.exchanges.get_mut(&id) {
                        if let Err(e) = send_on(c, x, id, cx.now) {
                            fail(inner, id, e, out);
                            c.exchanges.retain(|x| *x != id);
                        }
                    }
                }
                self.ids.replace(ids);
                if c.codec.is_h2() {
                    inner.stats.h2_connections += 1;
                }
                // Requests that waited for this connection may share it (HTTP/2).
                self.stack.0.pending.set(true);
                continue;
            }
            let evented = self.events(cx.now, inner, c, out);
            moved |= evented.any;
            moved |= self.read_responses(cx.now, inner, c, out);
            for &id in &c.exchanges {
                if let Some(x) = inner.exchanges.get_mut(&id) {
                    writable(&self.stack, x, id, out);
                }
            }
            if !moved {
                return Ok(());
            }
            // Another round only when this one may have made more work for the pump: request
            // body bytes went to the codec (it may take more once they are sent), an event that
            // lets a body flow or changes a state, room for input the codec had refused, queued
            // output, a held end of stream. The socket itself was read and written until
            // nothing moved, and nothing arrives on it during a pump; a response head's handler
            // runs after the pump (its reads pump again). HTTP/2 always goes round: its reads
            // queue window updates.
            let again = fed
                || evented.again
                || c.codec.is_h2()
                || (hold && c.is_eof_held())
                || (!wanted && c.codec.wants_read())
                || !c.codec.poll_transmit().is_empty();
            if !again {
                return Ok(());
            }
        }
    }
}

impl App for ClientApp {
    fn handle_accept(&mut self, cx: &mut Cx<'_>, _l: ListenerId, conn: ConnId, _p: SocketAddr) {
        cx.abort(conn);
    }

    fn handle_ready(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        self.stack.0.inner.borrow_mut().dirty.push(conn);
        self.work(cx);
    }

    fn handle_resolved(&mut self, cx: &mut Cx<'_>, query: QueryId) {
        dns::resolved(cx, &mut self.stack.0.inner.borrow_mut(), query);
        self.stack.0.pending.set(true);
        self.work(cx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let shared = &self.stack.0;
        if let Some(at) = shared.deadline.get() {
            return at;
        }
        let inner = shared.inner.borrow();
        let idle = shared.options.idle_timeout;
        let at = inner.conns.values().filter_map(|c| c.deadline(idle)).min();
        shared.deadline.set(Some(at));
        at
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        {
            let mut inner = self.stack.0.inner.borrow_mut();
            let idle = self.stack.0.options.idle_timeout;
            let due: Vec<ConnId> = inner
                .conns
                .values()
                .filter(|c| c.deadline(idle).is_some_and(|d| d <= cx.now))
                .map(|c| c.id)
                .collect();
            inner.dirty.extend(due);
        }
        self.work(cx);
    }

    fn handle_wake(&mut self, cx: &mut Cx<'_>) {
        self.stack.run_jobs();
        self.work(cx);
    }

    /// An agent nobody can use any more (every [`Agent`] handle dropped, no [`Remote`] made:
    /// the upstreams of a proxy replaced by a reload) is done once no request, connection or
    /// DNS query is left; its idle connections close at the idle timeout. Then the loop drops
    /// it, instead of keeping an app forever per replaced agent.
    ///
    /// [`Remote`]: super::Remote
    fn is_finished(&self) -> bool {
        let shared = &self.stack.0;
        if std::rc::Rc::strong_count(shared) > 1 || shared.jobs.borrow().is_some() {
            return false;
        }
        let Ok(inner) = shared.inner.try_borrow() else {
            return false;
        };
        inner.exchanges.is_empty()
            && inner.conns.is_empty()
            && inner.dns.is_empty()
            && inner.queries.is_empty()
            && shared.deferred.borrow().is_empty()
    }
}

impl Drop for ClientApp {
    fn drop(&mut self) {
        let mut out = Vec::new();
        if let Ok(mut inner) = self.stack.0.inner.try_borrow_mut() {
            inner.stopped = true;
            inner.conns.clear();
            let mut ids: Vec<u64> = inner.exchanges.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                fail(&mut inner, id, Error::Stopped, &mut out);
            }
            inner.dns.clear();
        }
        deliver(&self.stack, &mut out);
    }
}

/// The ids of a hint list (see [`Hints`](super::state::Hints)), taken into `buf` (the list is
/// left empty, with `buf`'s capacity: neither allocates once grown), in id order, once each,
/// those whose exchange is still in the state `still` checks.
fn listed(
    list: &mut Vec<u64>,
    mut buf: Vec<u64>,
    exchanges: &crate::runtime::IdMap<u64, Box<super::state::Exchange>>,
    still: impl Fn(&super::state::Exchange) -> bool,
) -> Vec<u64> {
    buf.clear();
    std::mem::swap(&mut buf, list);
    buf.sort_unstable();
    buf.dedup();
    buf.retain(|id| exchanges.get(id).is_some_and(|x| still(x)));
    buf
}

/// Closes the connections idle the longest until at most `keep` are idle.
fn close_idle_past(cx: &mut Cx<'_>, inner: &mut Inner, keep: usize) {
    let mut idle: Vec<(Instant, ConnId)> = inner
        .conns
        .iter()
        .filter_map(|(&cid, c)| Some((c.idle_since?, cid)))
        .collect();
    if idle.len() <= keep {
        return;
    }
    idle.sort_unstable();
    for &(_, cid) in &idle[..idle.len() - keep] {
        if let Some(mut c) = inner.conns.remove(&cid) {
            log::debug!("client: closing {cid} to {}: too many idle", c.peer);
            c.shutdown(cx);
            cx.close(cid);
        }
    }
}

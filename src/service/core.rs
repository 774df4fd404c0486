//! State shared between the service loop and the [`Reqd`](super::Reqd) handles of one service.
//!
//! Everything here is single-threaded (`Rc`/`RefCell`): a `Reqd` may outlive the callback that
//! got it and be used from any callback of the same loop. The rule that keeps `RefCell` borrows
//! from ever colliding: **no borrow of a [`Core`] is held while user code runs.** The loop takes
//! a callback out of its [`Slot`], releases the borrow, then calls it; `Reqd` methods borrow only
//! for the codec call itself.
//!
//! A `Reqd` method that changes a connection marks it dirty ([`Shared::mark`]): the loop flushes
//! dirty connections before the end of the pass (see `app.rs`), so a response written from
//! another app's callback goes out in the same pass.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use net::ConnId;

use super::access_log::{Entry, Recorder};
use super::codec::ServerCodec;
use super::handle::Handle;
use super::reqd::{BodyEnd, BodyError, Exchange};
use crate::http::{Config, DateCache, ExchangeId, HttpDate};
use crate::runtime::{LocalWaker, PassTime};

/// A body chunk consumer of [`Reader::Once`].
pub(crate) type OnData = Box<dyn FnOnce(&[u8])>;

/// A pending body read, registered by `Reqd::schedule_read` or `Reqd::read_to_end`.
pub(crate) enum Reader {
    /// One chunk or the end, then the reader is gone (httpaf's `schedule_read`).
    Once {
        on_data: OnData,
        on_eof: Box<dyn FnOnce(BodyEnd)>,
    },
    /// Collect the whole body up to `limit` bytes.
    ToEnd {
        limit: usize,
        buf: Vec<u8>,
        done: Box<dyn FnOnce(Result<Vec<u8>, BodyError>)>,
    },
}

/// The loop's view of one exchange: where its callbacks wait.
pub(crate) struct Slot {
    pub id: ExchangeId,
    pub exchange: Weak<Exchange>,
    pub reader: Option<Reader>,
    /// Body bytes may be readable (a `BodyReadable` event, or a reader was just registered).
    pub try_read: bool,
    pub on_writable: Option<Box<dyn FnOnce()>>,
    /// The last body write was short: `on_writable` waits for the codec's `Writable`.
    pub blocked: bool,
    /// Call `on_writable` at the next flush.
    pub writable_now: bool,
    /// The response is complete: pending readers end with `Aborted`, then the slot goes.
    pub finished: bool,
}

impl Slot {
    pub(crate) fn new(id: ExchangeId, exchange: Weak<Exchange>) -> Slot {
        Slot {
            id,
            exchange,
            reader: None,
            try_read: false,
            on_writable: None,
            blocked: false,
            writable_now: false,
            finished: false,
        }
    }

    /// Whether the loop has something to do for this slot.
    pub(crate) fn needs_work(&self) -> bool {
        (self.reader.is_some() && self.try_read)
            || (self.on_writable.is_some() && self.writable_now)
            || self.finished
    }
}

/// One connection's codec and exchange slots, shared by the loop and the `Reqd`s.
pub(crate) struct Core {
    pub codec: ServerCodec,
    pub conn: ConnId,
    /// In exchange order (ids increase), at most `max_pipelined + 1` long.
    pub slots: VecDeque<Slot>,
    /// In the dirty list, or being flushed by the loop right now (no need to queue again).
    pub queued: bool,
    /// The connection is gone: every `Reqd` operation fails with `ReqdError::Closed`.
    pub closed: bool,
    /// A response was abandoned mid-body: flush what the codec has, then close.
    pub kill: bool,
    /// `Shared::date` generation last handed to the codec.
    pub date_gen: u64,
    /// Set by `Reqd::upgrade`: where the tunnel's end arrives once the `101` is out.
    pub upgrade: Option<Rc<crate::tunnel::Hook>>,
}

impl Core {
    pub(crate) fn slot_mut(&mut self, id: ExchangeId) -> Option<&mut Slot> {
        let i = self.slots.binary_search_by_key(&id, |s| s.id).ok()?;
        self.slots.get_mut(i)
    }
}

pub(crate) type CoreRef = Rc<RefCell<Core>>;

/// The `Date` value, re-formatted when the second changes.
struct DateState {
    cache: DateCache,
    date: HttpDate,
    /// Generation, bumped on every new value.
    generation: u64,
    /// When the wall-clock second next changes (approximately).
    next: Instant,
}

/// Where a service's access-log lines go.
pub(crate) enum Access {
    /// No access log was given: a line per exchange through the `log` crate (target
    /// `paf::access`), as before access logs existed.
    Log,
    /// None at all.
    Off,
    /// Buffered, to a sink.
    Buffered(RefCell<Recorder>),
}

/// Service-wide state shared with every `Reqd`.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub handle: Handle,
    /// Connections changed by a `Reqd` since the loop last flushed them.
    pub dirty: RefCell<Vec<ConnId>>,
    date: RefCell<DateState>,
    /// Any dirty entry waiting (cheap check).
    pub pending: Cell<bool>,
    /// The loop's pass time: what `Reqd`s pass to the codec as `now`.
    pub pass: PassTime,
    /// Wakes the service app when a `Reqd` changed a connection outside its callbacks.
    waker: LocalWaker,
    access: Access,
}

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        handle: Handle,
        pass: PassTime,
        waker: LocalWaker,
        access: Access,
    ) -> Shared {
        let cache = DateCache::new(pass.wall());
        let date = cache.clone().update(pass.wall());
        Shared {
            config,
            handle,
            dirty: RefCell::new(Vec::new()),
            date: RefCell::new(DateState {
                cache,
                date,
                generation: 1,
                next: pass.now(),
            }),
            pending: Cell::new(false),
            pass,
            waker,
            access,
        }
    }

    /// Records one exchange (or error answer) in the access log, at the pass's time.
    pub(crate) fn log_access(&self, e: &Entry<'_>) {
        match &self.access {
            Access::Off => {}
            Access::Log => super::access_log::log_line(e),
            Access::Buffered(r) => r.borrow_mut().record(self.now(), self.pass.wall(), e),
        }
    }

    /// When the access log's buffer is due at the sink.
    pub(crate) fn access_deadline(&self) -> Option<Instant> {
        match &self.access {
            Access::Buffered(r) => r.borrow().poll_timeout(),
            _ => None,
        }
    }

    /// Flushes the access log if it is due at `now`.
    pub(crate) fn access_timeout(&self, now: Instant) {
        if let Access::Buffered(r) = &self.access {
            r.borrow_mut().handle_timeout(now);
        }
    }

    /// The service stopped: the access log's last lines go to the sink.
    pub(crate) fn finish_access(&self) {
        if let Access::Buffered(r) = &self.access {
            r.borrow_mut().finish();
        }
    }

    /// The time of the loop's pass.
    pub(crate) fn now(&self) -> Instant {
        self.pass.now()
    }

    /// Notes that work is waiting for the loop, and wakes the service app for it.
    pub(crate) fn set_pending(&self) {
        self.pending.set(true);
        self.waker.wake();
    }

    /// Queues `core`'s connection for flushing unless it already is.
    pub(crate) fn mark(&self, core: &mut Core) {
        if !core.queued {
            core.queued = true;
            self.dirty.borrow_mut().push(core.conn);
            self.set_pending();
        }
    }

    /// Marks connection `conn` for pumping without its `Core` (a tunnel end: the other side
    /// moved bytes); duplicates are harmless.
    pub(crate) fn kick(&self, conn: ConnId) {
        self.dirty.borrow_mut().push(conn);
        self.set_pending();
    }

    /// Hands the current `Date` to `core`'s codec if it has an older one; refreshes the cached
    /// value at most about once a second.
    pub(crate) fn set_date(&self, core: &mut Core, now: Instant) {
        let mut d = self.date.borrow_mut();
        if now >= d.next {
            let wall = self.pass.wall();
            let date = d.cache.update(wall);
            if date != d.date {
                d.date = date;
                d.generation += 1;
            }
            let sub = wall
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            d.next = now + std::time::Duration::from_nanos(u64::from(1_000_000_000 - sub));
        }
        if core.date_gen != d.generation {
            core.date_gen = d.generation;
            core.codec.set_date(d.date);
        }
    }
}

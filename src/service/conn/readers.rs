//! Body readers and `on_writable` callbacks: handing a reader its chunk or the end of its
//! body, and running user code guarded (a panic fails its exchange, not the loop).

use super::*;

impl Running {
    /// Runs waiting callbacks: body readers, `on_writable`, and retires finished slots.
    pub(super) fn callbacks(&mut self, now: Instant, c: &mut Conn) -> bool {
        let mut moved = false;
        loop {
            let mut guard = c.core.borrow_mut();
            let core = &mut *guard;
            let Some(i) = core.slots.iter().position(Slot::needs_work) else {
                return moved;
            };
            moved = true;
            let slot = &mut core.slots[i];
            if slot.finished {
                let slot = core.slots.remove(i).expect("index is valid");
                drop(guard);
                if let Some(reader) = slot.reader {
                    self.guarded(&slot.exchange, "body reader", || {
                        abort_reader(reader);
                    });
                }
                continue;
            }
            if slot.writable_now && slot.on_writable.is_some() {
                slot.writable_now = false;
                let f = slot.on_writable.take().expect("checked");
                let ex = slot.exchange.clone();
                drop(guard);
                self.guarded(&ex, "on_writable", f);
                continue;
            }
            // A reader and maybe data.
            let id = slot.id;
            let (got, swapped) = match core.codec.take_body(now, id, &mut self.body) {
                Some(got) => (got, true),
                None => (core.codec.read_body(now, id, &mut self.scratch), false),
            };
            let slot = &mut core.slots[i];
            let ex = slot.exchange.clone();
            let reader = match got {
                BodyRead::Pending => {
                    slot.try_read = false;
                    continue;
                }
                _ => slot.reader.take().expect("checked"),
            };
            drop(guard);
            if let BodyRead::Data(n) = got {
                if n > self.max_chunk {
                    self.max_chunk = n;
                    let counters = &self.shared.handle.0.counters;
                    counters.max_chunk.fetch_max(n, Ordering::Relaxed);
                }
            }
            let data = match got {
                BodyRead::Data(n) if swapped => Some(&self.body[..n]),
                BodyRead::Data(n) => Some(&self.scratch[..n]),
                _ => None,
            };
            hand(&self.shared, &c.core, id, &ex, reader, data);
        }
    }

    pub(super) fn guarded(&self, ex: &Weak<Exchange>, what: &str, f: impl FnOnce()) {
        guarded(&self.shared, ex, what, f);
    }

    pub(super) fn panicked(&self, ex: &Exchange, what: &str) {
        panicked(&self.shared, ex, what);
    }
}

/// Hands the body reader of exchange `id` its next chunk (`Some`) or the end of the body
/// (`None`); a `ToEnd` reader under its limit goes back to its slot for more. Runs user code:
/// no borrow of the core may be held.
pub(super) fn hand(
    shared: &Shared,
    core: &CoreRef,
    id: ExchangeId,
    ex: &Weak<Exchange>,
    reader: Reader,
    data: Option<&[u8]>,
) {
    match reader {
        Reader::Once { on_data, on_eof } => match data {
            Some(d) => guarded(shared, ex, "body reader", || on_data(d)),
            None => guarded(shared, ex, "body reader", || on_eof(BodyEnd::Complete)),
        },
        Reader::ToEnd {
            limit,
            mut buf,
            done,
        } => match data {
            Some(d) if buf.len() + d.len() > limit => {
                guarded(shared, ex, "body reader", || done(Err(BodyError::TooLarge)));
            }
            Some(d) => {
                buf.extend_from_slice(d);
                let mut core = core.borrow_mut();
                if let Some(slot) = core.slot_mut(id) {
                    if slot.reader.is_none() {
                        slot.reader = Some(Reader::ToEnd { limit, buf, done });
                    }
                }
            }
            None => guarded(shared, ex, "body reader", || done(Ok(buf))),
        },
    }
}

pub(super) fn abort_reader(reader: Reader) {
    match reader {
        Reader::Once { on_eof, .. } => on_eof(BodyEnd::Aborted),
        Reader::ToEnd { done, .. } => done(Err(BodyError::Aborted)),
    }
}

/// Runs user code `f` for the exchange `ex`; a panic fails that exchange only.
pub(super) fn guarded(shared: &Shared, ex: &Weak<Exchange>, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        match ex.upgrade() {
            Some(ex) => panicked(shared, &ex, what),
            None => {
                let counters = &shared.handle.0.counters;
                counters.panics.fetch_add(1, Ordering::Relaxed);
                log::error!("{what} panicked");
            }
        }
    }
}

pub(super) fn panicked(shared: &Shared, ex: &Exchange, what: &str) {
    let counters = &shared.handle.0.counters;
    counters.panics.fetch_add(1, Ordering::Relaxed);
    log::error!(
        "{} {} {}: {what} panicked; failing the exchange",
        ex.peer,
        ex.request.method(),
        ex.request.uri()
    );
    let _ = ex.fail();
}

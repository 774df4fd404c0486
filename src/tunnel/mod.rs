//! Byte tunnels between two connections that switched protocols (`101 Switching Protocols`):
//! what the proxy makes of a WebSocket (or any `Upgrade`) exchange.
//!
//! ```text
//! let down = reqd.upgrade(head_101)?;          // the server side, once its 101 is written
//! let up = upstream_body.upgrade().unwrap();   // the client side, after the upstream's 101
//! tunnel::join(down, up, &tunnel::Config::default(), &counters);
//! ```
//!
//! Contract:
//! - An [`Upgraded`] is one connection whose HTTP is over: the server's after it wrote a `101`
//!   ([`Reqd::upgrade`](crate::service::Reqd::upgrade)), the client's after it read one
//!   ([`ResponseBody::upgrade`](crate::client::ResponseBody::upgrade)). The connection stays
//!   with the app that owns it (service or client agent), on its pipe (TLS included); only its
//!   codec changes, from HTTP to one end of a tunnel. Bytes that came after the HTTP head
//!   (a WebSocket frame sent right behind the request, or right behind the 101) wait in the
//!   pipe and are the tunnel's first bytes. Dropping an `Upgraded` without joining it closes
//!   its connection.
//! - [`join`] links two of them: what one side reads, the other writes, both ways at once.
//!   Each direction holds at most [`Config::buffer_size`] bytes waiting to be read by the
//!   other side's socket plus as much being written: a side whose peer does not read stops
//!   the other side's reading (its TCP window closes), never memory growth.
//! - The end of one side's stream (FIN, TLS `close_notify`) is passed on once every byte before
//!   it was written: the other side's socket is half-closed (`close_notify`, then FIN) and the
//!   other direction goes on. When both directions ended, both connections close. A side that
//!   fails (reset) or is dropped closes the other once what it had sent is written.
//! - No byte either way for [`Config::idle_timeout`]: both connections are closed and
//!   [`Stats::idle_timeouts`] counts it.
//!
//! Sans-IO like the codecs: an end is a codec of the connection's pipe (bytes in, bytes out), its
//! time comes from the owner's pass (`now`), its timer is an `Option<Instant>`. The two ends
//! are usually driven by two apps of one loop (the service and a client agent); each one wakes
//! the other's owner through the kick it was given (a closure that marks its connection for
//! pumping), so no end ever reads the clock or touches a socket.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipe::Codec;

#[cfg(test)]
mod tests;

/// How a tunnel behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Both connections are closed after this long without a byte either way.
    pub idle_timeout: Duration,
    /// Bytes read from one side held for the other at most (per direction); the same again may
    /// be on its way into the other side's socket.
    pub buffer_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            idle_timeout: Duration::from_secs(60),
            buffer_size: 64 * 1024,
        }
    }
}

/// Counters of the tunnels joined with one [`Counters`], readable from any thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tunnels joined.
    pub opened: u64,
    /// Tunnels still open (both ends not yet closed).
    pub open: u64,
    /// Bytes read from the first side given to [`join`] and written to the second (for the
    /// proxy: client to upstream).
    pub bytes_a_to_b: u64,
    /// Bytes from the second side to the first (upstream to client).
    pub bytes_b_to_a: u64,
    /// Tunnels closed by [`Config::idle_timeout`].
    pub idle_timeouts: u64,
}

#[derive(Debug, Default)]
struct Atomics {
    opened: AtomicU64,
    closed: AtomicU64,
    bytes: [AtomicU64; 2],
    idle_timeouts: AtomicU64,
}

/// Where tunnels count what they do (shared by every tunnel joined with a clone).
#[derive(Clone, Debug, Default)]
pub struct Counters(Arc<Atomics>);

impl Counters {
    /// The counts so far.
    pub fn stats(&self) -> Stats {
        let a = &self.0;
        let opened = a.opened.load(Ordering::Relaxed);
        Stats {
            opened,
            open: opened.saturating_sub(a.closed.load(Ordering::Relaxed)),
            bytes_a_to_b: a.bytes[0].load(Ordering::Relaxed),
            bytes_b_to_a: a.bytes[1].load(Ordering::Relaxed),
            idle_timeouts: a.idle_timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Marks a connection of its owner for pumping (and wakes the owner).
pub(crate) type Kick = Rc<dyn Fn()>;

/// One direction: bytes read from one side, waiting for the other.
#[derive(Debug, Default)]
struct Dir {
    buf: Vec<u8>,
    /// The reading side's stream ended.
    eof: bool,
}

/// The state two ends share.
struct Link {
    /// `dirs[i]`: read from side `i`, for side `1 - i`.
    dirs: [Dir; 2],
    /// Side `i`'s end was dropped (its connection is gone).
    gone: [bool; 2],
    kicks: [Kick; 2],
    config: Config,
    /// The last byte either way (set when the first end starts).
    last: Option<Instant>,
    expired: bool,
    counters: Counters,
}

impl Link {
    fn kick(&self, side: usize) -> Kick {
        self.kicks[side].clone()
    }
}

/// One side of a tunnel: the codec of a connection that switched protocols. See the
/// [module docs](self).
pub(crate) struct End {
    link: Rc<RefCell<Link>>,
    side: usize,
    /// Bytes for this side's socket, taken from the other side's direction.
    out: Vec<u8>,
    sent: usize,
    /// This side's write half was shut (FIN, after `close_notify` on TLS).
    shut: bool,
}

impl fmt::Debug for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("End")
            .field("side", &self.side)
            .field("out", &(self.out.len() - self.sent))
            .field("shut", &self.shut)
            .finish()
    }
}

impl End {
    fn other(&self) -> usize {
        1 - self.side
    }

    /// The owner runs this end from `now` on: the idle timer starts with the first end.
    pub(crate) fn start(&mut self, now: Instant) {
        self.link.borrow_mut().last.get_or_insert(now);
    }

    /// Takes what the other side read, once this side's socket took everything before
    /// (the other side's reading resumes). Call before writing, each round.
    pub(crate) fn refill(&mut self) {
        if self.sent < self.out.len() {
            return;
        }
        self.out.clear();
        self.sent = 0;
        let other = self.other();
        let mut link = self.link.borrow_mut();
        if link.dirs[other].buf.is_empty() {
            return;
        }
        std::mem::swap(&mut self.out, &mut link.dirs[other].buf);
        let kick = link.kick(other);
        drop(link);
        kick();
    }

    /// Whether this side's write half should be shut now: the other side's stream ended and
    /// every byte before its end was handed to this side's socket.
    pub(crate) fn wants_shutdown_write(&self) -> bool {
        let link = self.link.borrow();
        let other = &link.dirs[self.other()];
        let drained = self.sent == self.out.len() && other.buf.is_empty();
        !self.shut && drained && (other.eof || link.gone[self.other()])
    }

    /// The owner shut this side's write half.
    pub(crate) fn handle_shutdown_write(&mut self) {
        self.shut = true;
    }

    /// Whether the owner should close this connection: both directions ended (this side's
    /// stream and, passed on, the other's), the tunnel expired, or the other side is gone and
    /// everything it sent was written.
    pub(crate) fn is_done(&self) -> bool {
        let link = self.link.borrow();
        let other = self.other();
        let drained = self.sent == self.out.len() && link.dirs[other].buf.is_empty();
        link.expired || (link.dirs[self.side].eof && self.shut) || (link.gone[other] && drained)
    }

    /// When the idle timeout fires.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let link = self.link.borrow();
        if link.expired {
            return None;
        }
        link.last.map(|t| t + link.config.idle_timeout)
    }

    /// Fires the idle timeout when due: the tunnel expires, both owners close their side.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut link = self.link.borrow_mut();
        let due = !link.expired
            && link
                .last
                .is_some_and(|t| t + link.config.idle_timeout <= now);
        if !due {
            return;
        }
        link.expired = true;
        link.counters
            .0
            .idle_timeouts
            .fetch_add(1, Ordering::Relaxed);
        let kick = link.kick(self.other());
        drop(link);
        kick();
    }
}

impl Codec for End {
    fn wants_read(&self) -> bool {
        let link = self.link.borrow();
        let dir = &link.dirs[self.side];
        !link.expired
            && !dir.eof
            && !link.gone[self.other()]
            && dir.buf.len() < link.config.buffer_size
    }

    fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let mut link = self.link.borrow_mut();
        if link.expired || link.gone[self.other()] {
            return 0;
        }
        let cap = link.config.buffer_size;
        let dir = &mut link.dirs[self.side];
        let n = bytes.len().min(cap.saturating_sub(dir.buf.len()));
        if n == 0 {
            return 0;
        }
        let was_empty = dir.buf.is_empty();
        dir.buf.extend_from_slice(&bytes[..n]);
        link.last = Some(now);
        link.counters.0.bytes[self.side].fetch_add(n as u64, Ordering::Relaxed);
        let kick = was_empty.then(|| link.kick(self.other()));
        drop(link);
        if let Some(kick) = kick {
            kick();
        }
        n
    }

    fn handle_eof(&mut self, _now: Instant) {
        let mut link = self.link.borrow_mut();
        link.dirs[self.side].eof = true;
        let kick = link.kick(self.other());
        drop(link);
        kick();
    }

    fn poll_transmit(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn handle_transmitted(&mut self, now: Instant, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
        if n > 0 {
            self.link.borrow_mut().last = Some(now);
        }
        self.refill();
    }
}

impl Drop for End {
    fn drop(&mut self) {
        // (No end is dropped while the link is borrowed.)
        let mut link = self.link.borrow_mut();
        link.gone[self.side] = true;
        if link.gone[self.other()] {
            link.counters.0.closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let kick = link.kick(self.other());
        drop(link);
        kick();
    }
}

/// Where an [`Upgraded`] connection's end goes once joined.
enum HookState {
    /// Not joined yet.
    Waiting,
    /// Joined: the owner takes the end.
    Joined(End),
    /// Taken by the owner.
    Taken,
    /// The `Upgraded` was dropped unjoined: the owner closes the connection.
    Abandoned,
}

/// The owner's half of an [`Upgraded`]: where [`join`] leaves the end.
pub(crate) struct Hook {
    state: RefCell<HookState>,
    kick: Kick,
}

/// What the owner finds in its [`Hook`].
pub(crate) enum Taken {
    /// Not joined yet: keep waiting.
    Waiting,
    /// The end to drive from now on.
    End(End),
    /// Dropped unjoined (or taken already): close the connection.
    Abandoned,
}

impl Hook {
    /// A hook whose owner `kick` marks the connection for pumping, and the [`Upgraded`] that
    /// goes to user code.
    pub(crate) fn new(kick: Kick) -> (Rc<Hook>, Upgraded) {
        let hook = Rc::new(Hook {
            state: RefCell::new(HookState::Waiting),
            kick,
        });
        (hook.clone(), Upgraded { hook })
    }

    /// Takes the end once joined.
    pub(crate) fn take(&self) -> Taken {
        let mut state = self.state.borrow_mut();
        match std::mem::replace(&mut *state, HookState::Taken) {
            HookState::Waiting => {
                *state = HookState::Waiting;
                Taken::Waiting
            }
            HookState::Joined(end) => Taken::End(end),
            HookState::Taken | HookState::Abandoned => {
                *state = HookState::Abandoned;
                Taken::Abandoned
            }
        }
    }
}

/// A connection that switched protocols, waiting to be [`join`]ed; see the
/// [module docs](self). Dropping it closes the connection.
pub struct Upgraded {
    hook: Rc<Hook>,
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded").finish_non_exhaustive()
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        let mut state = self.hook.state.borrow_mut();
        if matches!(*state, HookState::Waiting) {
            *state = HookState::Abandoned;
            drop(state);
            (self.hook.kick)();
        }
    }
}

/// Links `a` and `b` into a tunnel: bytes read from one are written to the other, both ways,
/// until both directions end, one side fails, or `config.idle_timeout` passes without a byte.
/// Counted in `counters` (`a` to `b` is [`Stats::bytes_a_to_b`]). Both owners are woken; the
/// tunnel runs on their next pass.
pub fn join(a: Upgraded, b: Upgraded, config: &Config, counters: &Counters) {
    counters.0.opened.fetch_add(1, Ordering::Relaxed);
    let config = Config {
        buffer_size: config.buffer_size.max(1),
        ..config.clone()
    };
    let link = Rc::new(RefCell::new(Link {
        dirs: [Dir::default(), Dir::default()],
        gone: [false; 2],
        kicks: [a.hook.kick.clone(), b.hook.kick.clone()],
        config,
        last: None,
        expired: false,
        counters: counters.clone(),
    }));
    for (side, up) in [&a, &b].into_iter().enumerate() {
        let end = End {
            link: link.clone(),
            side,
            out: Vec::new(),
            sent: 0,
            shut: false,
        };
        *up.hook.state.borrow_mut() = HookState::Joined(end);
    }
    // (Their drops see `Joined` and leave it.)
    let kicks = [a.hook.kick.clone(), b.hook.kick.clone()];
    drop((a, b));
    for kick in kicks {
        kick();
    }
}

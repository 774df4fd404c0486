//! Mimic's ctx, typed: how a client finds out what to connect to.
//!
//! A [`Ctx`] maps typed keys ([`Value<T>`], made with [`make`]) to values ([`Ctx::add`]) and to
//! ways of computing them from other keys ([`Ctx::fold`] with [`req`], [`opt`] and [`dft`]
//! arguments). As in the seed's OCaml example, `ipaddr` can come from `domain_name` through a
//! resolver and `port` can default to 80:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use paf::ctx::{self, dft, req, Ctx, Resolution, Step, TcpEndpoint};
//!
//! let domain_name = ctx::make::<String>("domain_name");
//! let ipaddr = ctx::make::<IpAddr>("ipaddr");
//! let stack = ctx::make::<&'static str>("stack");
//! let port = ctx::make::<u16>("port");
//! let tcp_edn = ctx::make::<TcpEndpoint<&'static str>>("tcp_edn");
//!
//! let ctx = Ctx::empty()
//!     .fold(&ipaddr, req(&domain_name), |name: String| {
//!         Step::from((name == "paf.test").then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
//!     })
//!     .fold(&tcp_edn, (req(&stack), req(&ipaddr), dft(&port, 80)), |(stack, addr, port)| {
//!         Step::Ready(TcpEndpoint { stack, addr, port })
//!     })
//!     .add(&stack, "tap0")
//!     .add(&domain_name, "paf.test".to_owned());
//!
//! match ctx.resolve(&tcp_edn).poll() {
//!     Resolution::Ready(edn) => assert_eq!(edn.port, 80),
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! Resolution is lazy and memoized: a key is computed only when something asks for it, each fold
//! function runs at most once per resolution, a value given with `add` wins over folds (so a
//! resolver fold never runs when the address is given), and folds of one key are tried in the
//! order they were added. A fold whose required keys cannot possibly be produced is skipped
//! without evaluating anything. A fold function may be asynchronous: it returns
//! [`Step::Pending`] with a [`Promise`] whose [`Completer`] the work (e.g. a DNS query in the
//! event loop) completes later; the caller polls the resolution again after each loop pass.
//!
//! Unlike OCaml mimic, cycles are detected and reported, and a failed resolution says which keys
//! were missing and what failed ([`KeyError`], [`ResolveError`]) rather than `Not_found`.
//! [`Connect`] resolves connection endpoints in priority order — [`TlsEndpoint`] before
//! [`TcpEndpoint`] — and never falls back from TLS to plain TCP unless
//! [`allow_plain_fallback`] says so.
//!
//! A ctx holds `Rc`s: it lives on the thread (the event loop) that resolves it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::LocalWaker;

mod args;
mod endpoint;
mod resolve;
#[cfg(test)]
mod tests;

pub use args::{dft, opt, req, Arg, ArgSpec, Args, Dft, Opt, Req};
pub use endpoint::{
    allow_plain_fallback, Candidate, CandidateOutcome, Connect, Endpoint, Next, ResolveError,
    TcpEndpoint, TlsEndpoint,
};
pub use resolve::{Failure, KeyError, Missing, Reason, Resolution, Resolver};

/// A typed key of a [`Ctx`]: unique (two `make` calls with the same name are different keys)
/// and named (for error reports). Cheap to copy.
pub struct Value<T> {
    id: u64,
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Value<T> {
    /// The name given to [`make`].
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Value<T> {}

impl<T> PartialEq for Value<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for Value<T> {}

impl<T> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({}#{})", self.name, self.id)
    }
}

/// Makes a new key for values of type `T`.
pub fn make<T: Clone + 'static>(name: &'static str) -> Value<T> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Value {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
        name,
        _type: PhantomData,
    }
}

/// What a fold function returns.
pub enum Step<T> {
    /// The value.
    Ready(T),
    /// No value; the reason goes into the error report and the next fold of the key is tried.
    Failed(String),
    /// The value comes later, through the [`Completer`] of this promise.
    Pending(Promise<T>),
}

impl<T> From<Option<T>> for Step<T> {
    /// `None` (mimic's "no value") becomes `Failed("no value")`.
    fn from(v: Option<T>) -> Self {
        v.map_or_else(|| Step::Failed("no value".to_owned()), Step::Ready)
    }
}

impl<T, E: fmt::Display> From<Result<T, E>> for Step<T> {
    fn from(v: Result<T, E>) -> Self {
        v.map_or_else(|e| Step::Failed(e.to_string()), Step::Ready)
    }
}

impl<T> fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Ready(_) => f.write_str("Ready(..)"),
            Step::Failed(why) => write!(f, "Failed({why:?})"),
            Step::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

enum PromiseState<T> {
    Waiting,
    Done(Result<T, String>),
    Taken,
}

/// A promise's outcome and who to wake when it arrives.
struct PromiseCell<T> {
    state: PromiseState<T>,
    /// The loop app that polled the promise while it was waiting.
    waker: Option<LocalWaker>,
}

/// The receiving end of an asynchronous fold step; see [`promise`].
pub struct Promise<T> {
    state: Rc<RefCell<PromiseCell<T>>>,
}

/// The completing end of an asynchronous fold step; see [`promise`]. Dropping it without
/// completing fails the step ("abandoned"). Completing it (or dropping it) wakes the loop app
/// that polled the resolution (the client of `paf::client::request`), so the request goes on
/// in that loop's next step without anything else to do.
pub struct Completer<T> {
    state: Rc<RefCell<PromiseCell<T>>>,
}

thread_local! {
    /// The waker of the loop app polling a resolution on this thread right now.
    static POLLER: RefCell<Option<LocalWaker>> = const { RefCell::new(None) };
}

/// Runs `f` (which polls resolutions) with `waker` as the one to wake when a promise it finds
/// waiting completes.
pub(crate) fn polling_with<R>(waker: Option<&LocalWaker>, f: impl FnOnce() -> R) -> R {
    let old = POLLER.with(|p| std::mem::replace(&mut *p.borrow_mut(), waker.cloned()));
    let r = f();
    POLLER.with(|p| *p.borrow_mut() = old);
    r
}

/// A one-shot slot: a fold function returns `Step::Pending(promise)` and hands the completer
/// to whatever produces the value (a DNS query, a timer, another connection).
pub fn promise<T>() -> (Promise<T>, Completer<T>) {
    let state = Rc::new(RefCell::new(PromiseCell {
        state: PromiseState::Waiting,
        waker: None,
    }));
    (
        Promise {
            state: Rc::clone(&state),
        },
        Completer { state },
    )
}

impl<T> Promise<T> {
    /// The outcome, once (later calls return `None` again).
    pub(crate) fn poll(&mut self) -> Option<Result<T, String>> {
        let mut cell = self.state.borrow_mut();
        match std::mem::replace(&mut cell.state, PromiseState::Taken) {
            PromiseState::Done(r) => Some(r),
            other => {
                cell.state = other;
                if let Some(w) = POLLER.with(|p| p.borrow().clone()) {
                    cell.waker = Some(w);
                }
                None
            }
        }
    }
}

impl<T> Completer<T> {
    /// Completes the step with a value.
    pub fn complete(self, value: T) {
        self.finish(Ok(value));
    }

    /// Fails the step; `reason` goes into the error report.
    pub fn fail(self, reason: impl Into<String>) {
        self.finish(Err(reason.into()));
    }

    /// Whether the resolution still waits for this step (its [`Promise`] is alive), so the work
    /// behind it (a DNS query) can be cancelled when not.
    pub fn is_wanted(&self) -> bool {
        Rc::strong_count(&self.state) > 1
    }

    fn finish(&self, result: Result<T, String>) {
        let mut cell = self.state.borrow_mut();
        if matches!(cell.state, PromiseState::Waiting) {
            cell.state = PromiseState::Done(result);
            if let Some(w) = cell.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(Err("abandoned".to_owned()));
    }
}

/// A fold function with its arguments, type-erased for storage in a [`Ctx`].
trait Fold {
    fn specs(&self) -> &[ArgSpec];
    fn call(&self, values: &[Option<Rc<dyn Any>>]) -> resolve::ErasedStep;
}

struct FoldFn<T, A, K> {
    args: A,
    /// `args.specs()`, computed once: every resolution reads them.
    specs: Vec<ArgSpec>,
    k: K,
    _type: PhantomData<fn() -> T>,
}

impl<T, A, K> Fold for FoldFn<T, A, K>
where
    T: Clone + 'static,
    A: Args,
    K: Fn(A::Output) -> Step<T>,
{
    fn specs(&self) -> &[ArgSpec] {
        &self.specs
    }

    fn call(&self, values: &[Option<Rc<dyn Any>>]) -> resolve::ErasedStep {
        match self.args.build(values) {
            Some(args) => resolve::ErasedStep::from((self.k)(args)),
            None => resolve::ErasedStep::Failed("argument of the wrong type".to_owned()),
        }
    }
}

/// `k` over `args`, type-erased.
fn fold_fn<T, A, K>(args: A, k: K) -> Rc<dyn Fold>
where
    T: Clone + 'static,
    A: Args,
    K: Fn(A::Output) -> Step<T> + 'static,
{
    Rc::new(FoldFn {
        specs: args.specs(),
        args,
        k,
        _type: PhantomData,
    })
}

/// Hashes an id (a ctx key's process-wide counter; a connection, listener or query id of the
/// loop) with one multiply: these maps are looked up several times per request, and SipHash
/// cost more than the lookups (6% of a proxied request's instructions for the loop's maps).
/// No peer chooses these keys, and the hash has no random key, so iteration order is the same
/// on every run (tests on the virtual clock replay exactly).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u64` keys; kept correct for any other.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: consecutive ids spread over the high bits the table uses. A
        // newtype's derived `Hash` ends here with its one field (the stack's `ConnId`: its slot
        // in the low bits, a generation above).
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_usize(&mut self, id: usize) {
        self.write_u64(id as u64);
    }
}

/// A map keyed by key id.
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Clone)]
struct Slot {
    value: Option<Rc<dyn Any>>,
    folds: Vec<Rc<dyn Fold>>,
}

/// Values and folds by key. Building returns a new ctx (cheap: the map is shared until
/// changed), so one base ctx can be extended per request.
#[derive(Clone, Default)]
pub struct Ctx {
    slots: Rc<IdMap<Slot>>,
    /// Per key id, whether a fresh resolution of the key could only fail for missing keys
    /// (running nothing to find out). That depends on `slots` alone, so clones share it and a
    /// change to the slots starts a new one.
    missing: Rc<RefCell<IdMap<bool>>>,
}

impl Ctx {
    /// A ctx with nothing in it.
    pub fn empty() -> Self {
        Ctx::default()
    }

    /// Sets the value of `key` (replacing an earlier one). A value wins over folds of the key.
    pub fn add<T: Clone + 'static>(mut self, key: &Value<T>, value: T) -> Self {
        self.slot(key.id).value = Some(Rc::new(value));
        self
    }

    /// Adds a way to compute `key`: once every argument in `args` is resolved (a [`req`] that
    /// cannot be makes this fold fail, an [`opt`] gives `None`, a [`dft`] its default), `k`
    /// gets their values — a single value for one argument, a tuple for several — and returns
    /// a [`Step`]. Folds of one key are tried in the order they were added.
    pub fn fold<T, A, K>(mut self, key: &Value<T>, args: A, k: K) -> Self
    where
        T: Clone + 'static,
        A: Args,
        K: Fn(A::Output) -> Step<T> + 'static,
    {
        let folds = &mut self.slot(key.id).folds;
        folds.push(fold_fn(args, k));
        self
    }

    /// Like [`fold`](Self::fold), but tried before the folds `key` already has: a resolver of
    /// your own ahead of a base ctx's DNS fold, say.
    pub fn fold_first<T, A, K>(mut self, key: &Value<T>, args: A, k: K) -> Self
    where
        T: Clone + 'static,
        A: Args,
        K: Fn(A::Output) -> Step<T> + 'static,
    {
        let folds = &mut self.slot(key.id).folds;
        folds.insert(0, fold_fn(args, k));
        self
    }

    /// Every value of type `T` given to [`add`](Self::add), whatever its key.
    pub(crate) fn values_of<T: Clone + 'static>(&self) -> Vec<T> {
        self.slots
            .values()
            .filter_map(|s| s.value.as_ref()?.downcast_ref::<T>().cloned())
            .collect()
    }

    /// The value given to [`add`](Self::add) for `key`, if any (folds are not run).
    pub fn get<T: Clone + 'static>(&self, key: &Value<T>) -> Option<T> {
        let value = self.slots.get(&key.id)?.value.as_ref()?;
        value.downcast_ref::<T>().cloned()
    }

    /// Whether `key` has a value or at least one fold.
    pub fn contains<T>(&self, key: &Value<T>) -> bool {
        self.slots.contains_key(&key.id)
    }

    /// Starts resolving `key`; drive it with [`Resolver::poll`].
    pub fn resolve<T: Clone + 'static>(&self, key: &Value<T>) -> Resolver<T> {
        Resolver::new(self, key)
    }

    /// Whether a fresh resolution of key `id` could only fail for missing keys: kept, else
    /// `find` (which must depend on the slots only) answers and is kept.
    fn missing_on_fresh(&self, id: u64, find: impl FnOnce() -> bool) -> bool {
        if let Some(&m) = self.missing.borrow().get(&id) {
            return m;
        }
        let m = find();
        self.missing.borrow_mut().insert(id, m);
        m
    }

    fn slot(&mut self, id: u64) -> &mut Slot {
        self.missing = Rc::default();
        Rc::make_mut(&mut self.slots).entry(id).or_insert(Slot {
            value: None,
            folds: Vec::new(),
        })
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("keys", &self.slots.len())
            .finish()
    }
}

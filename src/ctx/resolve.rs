//! Lazy, memoized, resumable resolution of ctx keys, and its error report.
//!
//! The [`Engine`] evaluates a key on demand: its value if added, else its folds in order. For a
//! fold it first checks, without running anything, that every required argument could possibly
//! be produced (a value, or a fold whose required arguments could be, recursively); only then are
//! the arguments evaluated, in order, stopping at the first that is pending. Results are
//! memoized per engine, so each fold function runs at most once, and a pending step is resumed
//! (its promise polled) by the next evaluation. A key met again while it is being evaluated is a
//! cycle: that fold fails with the cycle in the report.

use std::any::Any;
use std::fmt;
use std::rc::Rc;

use super::{ArgSpec, Ctx, Fold, Promise, Step, Value};

/// Result of polling a [`Resolver`].
#[derive(Debug)]
pub enum Resolution<T> {
    /// The key's value.
    Ready(T),
    /// A fold step waits for its [`Completer`](super::Completer); poll again later.
    Pending,
    /// The key cannot be resolved.
    Failed(KeyError),
}

/// Resolves one key of a ctx; see [`Ctx::resolve`].
pub struct Resolver<T> {
    engine: Engine,
    key: Value<T>,
}

impl<T: Clone + 'static> Resolver<T> {
    pub(super) fn new(ctx: &Ctx, key: &Value<T>) -> Self {
        Resolver {
            engine: Engine::new(ctx),
            key: *key,
        }
    }

    /// Advances the resolution as far as possible. Call again after a pending step was
    /// completed (e.g. once per event-loop pass); `Ready` and `Failed` repeat once reached.
    pub fn poll(&mut self) -> Resolution<T> {
        self.engine.resolve(&self.key)
    }
}

/// A key that had no value and no way to be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// From the key asked for down to the missing one, each needing the next.
    pub chain: Vec<&'static str>,
}

impl Missing {
    /// The missing key's name.
    pub fn key(&self) -> &'static str {
        self.chain.last().copied().unwrap_or("?")
    }
}

/// Why a key could not be computed although it had a fold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The fold function (or the promise it returned) failed with this reason.
    Step(String),
    /// The key depends on itself through these keys (first and last are the same).
    Cycle(Vec<&'static str>),
}

/// A fold that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// From the key asked for down to the key whose fold failed.
    pub chain: Vec<&'static str>,
    /// What went wrong.
    pub reason: Reason,
}

/// Why a key could not be resolved: the keys missing and the folds that failed, each with the
/// chain of keys that needed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    key: &'static str,
    missing: Vec<Missing>,
    failures: Vec<Failure>,
}

impl KeyError {
    fn new(key: &'static str) -> Self {
        KeyError {
            key,
            missing: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn missing_key(key: &'static str) -> Self {
        let mut e = KeyError::new(key);
        e.missing.push(Missing { chain: vec![key] });
        e
    }

    fn failed(key: &'static str, reason: Reason) -> Self {
        let mut e = KeyError::new(key);
        e.add_failure(Failure {
            chain: vec![key],
            reason,
        });
        e
    }

    /// The key that could not be resolved.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// Keys that were needed but had neither a value nor a fold.
    pub fn missing(&self) -> &[Missing] {
        &self.missing
    }

    /// Folds that failed, and cycles.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Whether the key failed only because keys were absent (nothing failed, no cycle): the ctx
    /// simply does not describe this key.
    pub fn is_missing_only(&self) -> bool {
        self.failures.is_empty()
    }

    /// Adds `child`'s report (about a key `self.key` needed), its chains prefixed by our key.
    fn absorb(&mut self, child: &KeyError) {
        for m in &child.missing {
            let mut chain = vec![self.key];
            chain.extend_from_slice(&m.chain);
            let m = Missing { chain };
            if !self.missing.contains(&m) {
                self.missing.push(m);
            }
        }
        for f in &child.failures {
            let mut chain = vec![self.key];
            chain.extend_from_slice(&f.chain);
            self.add_failure(Failure {
                chain,
                reason: f.reason.clone(),
            });
        }
    }

    fn add_failure(&mut self, f: Failure) {
        if !self.failures.contains(&f) {
            self.failures.push(f);
        }
    }

    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.failures.is_empty()
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve {}", self.key)?;
        let mut sep = ": ";
        for m in &self.missing {
            write!(f, "{sep}missing {}", m.chain.join(" → "))?;
            sep = "; ";
        }
        for x in &self.failures {
            match &x.reason {
                Reason::Step(why) => write!(f, "{sep}{} failed: {why}", x.chain.join(" → "))?,
                Reason::Cycle(keys) => write!(f, "{sep}cycle {}", keys.join(" → "))?,
            }
            sep = "; ";
        }
        Ok(())
    }
}

impl std::error::Error for KeyError {}

/// A fold step with its type erased.
pub(super) enum ErasedStep {
    Ready(Rc<dyn Any>),
    Failed(String),
    Pending(Box<dyn ErasedPromise>),
}

impl<T: 'static> From<Step<T>> for ErasedStep {
    fn from(step: Step<T>) -> Self {
        match step {
            Step::Ready(v) => ErasedStep::Ready(Rc::new(v)),
            Step::Failed(why) => ErasedStep::Failed(why),
            Step::Pending(p) => ErasedStep::Pending(Box::new(p)),
        }
    }
}

pub(super) trait ErasedPromise {
    fn poll(&mut self) -> Option<Result<Rc<dyn Any>, String>>;
}

impl<T: 'static> ErasedPromise for Promise<T> {
    fn poll(&mut self) -> Option<Result<Rc<dyn Any>, String>> {
        Promise::poll(self).map(|r| r.map(|v| Rc::new(v) as Rc<dyn Any>))
    }
}

/// Progress of one key.
enum State {
    /// At fold `fold`, maybe waiting for its step; `report` collects earlier folds' failures.
    Trying {
        fold: usize,
        waiting: Option<Box<dyn ErasedPromise>>,
        report: KeyError,
    },
    Resolved(Rc<dyn Any>),
    Failed(KeyError),
}

/// Outcome of evaluating one key.
pub(super) enum Outcome {
    Ready(Rc<dyn Any>),
    Pending,
    Failed(KeyError),
    /// The key has neither a value nor a fold.
    Missing,
}

/// [`Engine::quietly_possible`]'s verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Possible {
    Yes,
    MissingOnly,
    No,
}

/// A key being looked at by [`Engine::quietly_possible`], and the one that needed it.
struct Visiting<'a> {
    id: u64,
    up: Option<&'a Visiting<'a>>,
}

impl Visiting<'_> {
    fn contains(mut at: Option<&Visiting<'_>>, id: u64) -> bool {
        while let Some(v) = at {
            if v.id == id {
                return true;
            }
            at = v.up;
        }
        false
    }
}

/// The memo of one resolution (shared by every key it evaluates).
pub(super) struct Engine {
    ctx: Ctx,
    states: super::IdMap<State>,
    /// Keys being evaluated, outermost first.
    path: Vec<(u64, &'static str)>,
}

impl Engine {
    pub(super) fn new(ctx: &Ctx) -> Self {
        Engine {
            ctx: ctx.clone(),
            states: super::IdMap::default(),
            path: Vec::new(),
        }
    }

    /// Evaluates a typed key.
    pub(super) fn resolve<T: Clone + 'static>(&mut self, key: &Value<T>) -> Resolution<T> {
        match self.eval(key.id, key.name) {
            Outcome::Ready(v) => match v.downcast_ref::<T>() {
                Some(v) => Resolution::Ready(v.clone()),
                None => Resolution::Failed(KeyError::failed(
                    key.name,
                    Reason::Step("value of the wrong type".to_owned()),
                )),
            },
            Outcome::Pending => Resolution::Pending,
            Outcome::Failed(e) => Resolution::Failed(e),
            Outcome::Missing => Resolution::Failed(KeyError::missing_key(key.name)),
        }
    }

    pub(super) fn eval(&mut self, id: u64, name: &'static str) -> Outcome {
        match self.states.get(&id) {
            Some(State::Resolved(v)) => return Outcome::Ready(Rc::clone(v)),
            Some(State::Failed(e)) => return Outcome::Failed(e.clone()),
            _ => {}
        }
        if let Some(at) = self.path.iter().position(|&(k, _)| k == id) {
            // Not memoized: the key may still resolve through another fold.
            let mut keys: Vec<&'static str> = self.path[at..].iter().map(|&(_, n)| n).collect();
            keys.push(name);
            return Outcome::Failed(KeyError::failed(name, Reason::Cycle(keys)));
        }
        // The ctx's map is shared (an `Rc`): holding it lets the folds be borrowed while the
        // engine changes, without copying them.
        let ctx = self.ctx.clone();
        let (value, folds) = match ctx.slots.get(&id) {
            None => (None, &[][..]),
            Some(slot) => (slot.value.clone(), &slot.folds[..]),
        };
        // Not memoized: the ctx answers the same every time (and an engine that memoized
        // nothing can use the ctx's kept verdicts, see `is_missing`).
        if let Some(v) = value {
            return Outcome::Ready(v);
        }
        if folds.is_empty() {
            return Outcome::Missing;
        }
        self.path.push((id, name));
        let outcome = self.try_folds(id, name, folds);
        self.path.pop();
        outcome
    }

    fn try_folds(&mut self, id: u64, name: &'static str, folds: &[Rc<dyn Fold>]) -> Outcome {
        let (mut fold, mut waiting, mut report) = match self.states.remove(&id) {
            Some(State::Trying {
                fold,
                waiting,
                report,
            }) => (fold, waiting, report),
            _ => (0, None, KeyError::new(name)),
        };
        let step_failed = |report: &mut KeyError, why: String| {
            report.add_failure(Failure {
                chain: vec![name],
                reason: Reason::Step(why),
            });
        };
        while let Some(f) = folds.get(fold) {
            if let Some(p) = waiting.as_mut() {
                match p.poll() {
                    None => {
                        let state = State::Trying {
                            fold,
                            waiting,
                            report,
                        };
                        self.states.insert(id, state);
                        return Outcome::Pending;
                    }
                    Some(Ok(v)) => return self.resolved(id, v),
                    Some(Err(why)) => {
                        step_failed(&mut report, why);
                        waiting = None;
                        fold += 1;
                        continue;
                    }
                }
            }
            let specs = f.specs();
            let mut impossible = KeyError::new(name);
            // `possible` pushes and pops: the path comes back as it went.
            let mut visiting = std::mem::take(&mut self.path);
            for s in specs.iter().filter(|s| s.required) {
                if let Err(e) = self.possible(s, &mut visiting) {
                    impossible.absorb(&e);
                }
            }
            self.path = visiting;
            if !impossible.is_empty() {
                if report.is_empty() {
                    // The first fold's report: taken, not copied.
                    report = impossible;
                } else {
                    absorb_same(&mut report, &impossible);
                }
                fold += 1;
                continue;
            }
            let mut values = Vec::with_capacity(specs.len());
            let mut blocked = None;
            for s in specs {
                match self.eval(s.key, s.name) {
                    Outcome::Ready(v) => values.push(Some(v)),
                    Outcome::Failed(e) if s.required => {
                        blocked = Some(Some(e));
                        break;
                    }
                    Outcome::Missing if s.required => {
                        blocked = Some(Some(KeyError::missing_key(s.name)));
                        break;
                    }
                    Outcome::Failed(_) | Outcome::Missing => values.push(None),
                    Outcome::Pending => {
                        blocked = Some(None);
                        break;
                    }
                }
            }
            match blocked {
                Some(None) => {
                    let state = State::Trying {
                        fold,
                        waiting,
                        report,
                    };
                    self.states.insert(id, state);
                    return Outcome::Pending;
                }
                Some(Some(e)) => {
                    report.absorb(&e);
                    fold += 1;
                    continue;
                }
                None => {}
            }
            match f.call(&values) {
                ErasedStep::Ready(v) => return self.resolved(id, v),
                ErasedStep::Failed(why) => {
                    step_failed(&mut report, why);
                    fold += 1;
                }
                ErasedStep::Pending(p) => waiting = Some(p),
            }
        }
        self.states.insert(id, State::Failed(report.clone()));
        Outcome::Failed(report)
    }

    fn resolved(&mut self, id: u64, v: Rc<dyn Any>) -> Outcome {
        self.states.insert(id, State::Resolved(Rc::clone(&v)));
        Outcome::Ready(v)
    }

    /// Whether evaluating `key` now would fail with only missing keys to report, running no
    /// fold: [`possible`](Self::possible)'s verdict without its report (which allocates), for
    /// a caller that can do without the report unless it is needed later
    /// ([`report_missing`](Self::report_missing) makes it then).
    pub(super) fn is_missing<T>(&self, key: &Value<T>) -> bool {
        let find = || self.quietly_possible(key.id, None) == Possible::MissingOnly;
        if !self.path.is_empty() {
            false
        } else if self.states.is_empty() {
            // Nothing evaluated yet: the verdict is the ctx's, kept in it for the next engine.
            self.ctx.missing_on_fresh(key.id, find)
        } else {
            find()
        }
    }

    /// The report [`resolve`](Self::resolve) gives for `key` when
    /// [`is_missing`](Self::is_missing) said so: made by a fresh engine on the same ctx, which
    /// runs no fold for it (none can run), so that what was resolved since is not in it.
    pub(super) fn report_missing<T: Clone + 'static>(&self, key: &Value<T>) -> KeyError {
        match Engine::new(&self.ctx).resolve(key) {
            Resolution::Failed(e) => e,
            // (Not the case when `is_missing` held: the ctx did not change.)
            Resolution::Ready(_) | Resolution::Pending => KeyError::missing_key(key.name),
        }
    }

    /// [`possible`](Self::possible) without the report: `Yes`, `MissingOnly` (its report would
    /// list missing keys only), or `No` (a failure or a cycle too). `visiting`: the keys being
    /// looked at, innermost first, on the stack (nothing is allocated).
    fn quietly_possible(&self, id: u64, visiting: Option<&Visiting<'_>>) -> Possible {
        match self.states.get(&id) {
            Some(State::Resolved(_)) => return Possible::Yes,
            Some(State::Failed(e)) if e.is_missing_only() => return Possible::MissingOnly,
            Some(State::Failed(_)) => return Possible::No,
            _ => {}
        }
        let Some(slot) = self.ctx.slots.get(&id) else {
            return Possible::MissingOnly;
        };
        if slot.value.is_some() {
            return Possible::Yes;
        }
        if Visiting::contains(visiting, id) {
            return Possible::No;
        }
        if slot.folds.is_empty() {
            return Possible::MissingOnly;
        }
        let here = Visiting { id, up: visiting };
        let mut verdict = Possible::MissingOnly;
        for f in &slot.folds {
            let mut ok = true;
            // Every argument, as `possible` reports on every one.
            for s in f.specs().iter().filter(|s| s.required) {
                match self.quietly_possible(s.key, Some(&here)) {
                    Possible::Yes => {}
                    Possible::MissingOnly => ok = false,
                    Possible::No => {
                        ok = false;
                        verdict = Possible::No;
                    }
                }
            }
            if ok {
                verdict = Possible::Yes;
                break;
            }
        }
        verdict
    }

    /// Whether `spec`'s key could possibly be produced, without running anything; else what
    /// is missing (or cyclic) on every way to it. `visiting` holds the keys being looked at.
    fn possible(
        &self,
        spec: &ArgSpec,
        visiting: &mut Vec<(u64, &'static str)>,
    ) -> Result<(), KeyError> {
        let (id, name) = (spec.key, spec.name);
        match self.states.get(&id) {
            Some(State::Resolved(_)) => return Ok(()),
            Some(State::Failed(e)) => return Err(e.clone()),
            _ => {}
        }
        let Some(slot) = self.ctx.slots.get(&id) else {
            return Err(KeyError::missing_key(name));
        };
        if slot.value.is_some() {
            return Ok(());
        }
        if let Some(at) = visiting.iter().position(|&(k, _)| k == id) {
            let mut keys: Vec<&'static str> = visiting[at..].iter().map(|&(_, n)| n).collect();
            keys.push(name);
            return Err(KeyError::failed(name, Reason::Cycle(keys)));
        }
        if slot.folds.is_empty() {
            return Err(KeyError::missing_key(name));
        }
        visiting.push((id, name));
        let mut report = KeyError::new(name);
        let mut any = false;
        for f in &slot.folds {
            let mut ok = true;
            for s in f.specs().iter().filter(|s| s.required) {
                if let Err(e) = self.possible(s, visiting) {
                    report.absorb(&e);
                    ok = false;
                }
            }
            if ok {
                any = true;
                break;
            }
        }
        visiting.pop();
        if any {
            Ok(())
        } else {
            Err(report)
        }
    }
}

/// Adds the entries of `other` (a report about the same key) to `report`.
fn absorb_same(report: &mut KeyError, other: &KeyError) {
    for m in &other.missing {
        if !report.missing.contains(m) {
            report.missing.push(m.clone());
        }
    }
    for f in &other.failures {
        report.add_failure(f.clone());
    }
}

//! The stop switch, the Rust counterpart of the seed's `Lwt_switch`.
//!
//! A [`Switch`] is a shared one-way flag: on until [`Switch::turn_off`], then off for good. Every
//! service given the switch registers its loop's [`LoopWaker`], so turning it off from any thread
//! (a signal handler thread, a timer thread, another loop, or a callback of the same loop) wakes
//! every loop concerned; each service then stops gracefully (see [`crate::service`]).
//!
//! A [`Switch::child`] is off when its parent is, or when turned off itself: one switch stops
//! everything, and a child stops one part (the appliance gives each listener a child of its
//! stop switch, turned off when a reload removes the listener).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::runtime::LoopWaker;

#[derive(Debug, Default)]
struct Inner {
    off: AtomicBool,
    wakers: Mutex<Vec<LoopWaker>>,
    /// Off when this one is.
    parent: Option<Switch>,
}

/// A stop switch: clone it freely, hand it to services, turn it off from anywhere.
#[derive(Clone, Debug, Default)]
pub struct Switch(Arc<Inner>);

impl Switch {
    /// A switch that is on.
    pub fn new() -> Switch {
        Switch::default()
    }

    /// A switch that is off when this one is, or when turned off itself (which leaves this one
    /// on). Loops attached to the child are woken by either.
    pub fn child(&self) -> Switch {
        Switch(Arc::new(Inner {
            parent: Some(self.clone()),
            ..Inner::default()
        }))
    }

    /// Turns the switch off (idempotent) and wakes every loop with a service attached to it.
    pub fn turn_off(&self) {
        if self.0.off.swap(true, Ordering::SeqCst) {
            return;
        }
        let wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for w in wakers.iter() {
            w.wake();
        }
    }

    /// Whether [`Switch::turn_off`] was called, on this switch or on a parent of a
    /// [`Switch::child`].
    pub fn is_off(&self) -> bool {
        self.0.off.load(Ordering::SeqCst) || self.0.parent.as_ref().is_some_and(Switch::is_off)
    }

    /// Registers a loop to wake when the switch (or its parent) turns off; wakes it at once if
    /// it already is. A loop is registered once however many services attach it.
    pub(crate) fn attach(&self, waker: LoopWaker) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if !wakers.iter().any(|w| w.same_loop(&waker)) {
            wakers.push(waker.clone());
        }
        drop(wakers);
        if let Some(p) = &self.0.parent {
            p.attach(waker.clone());
        }
        if self.is_off() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn turning_off_from_another_thread_wakes_an_attached_loop() {
        let mut rt = crate::Runtime::kernel("::1".parse().unwrap()).unwrap();
        let stop = Switch::new();
        stop.attach(rt.waker());
        assert!(!stop.is_off());
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s.turn_off();
            s.turn_off(); // idempotent
        });
        // The first pass may be an immediate one (a new runtime runs its apps at once).
        rt.turn(Some(Duration::ZERO)).unwrap();
        let start = rt.clock().now();
        while !stop.is_off() {
            rt.turn(Some(Duration::from_secs(10))).unwrap();
        }
        let took = rt.clock().now() - start;
        assert!(took < Duration::from_secs(5), "not woken: {took:?}");
        t.join().unwrap();
        // Attaching to a switch that is already off wakes the loop at once.
        let mut rt2 = crate::Runtime::kernel("::1".parse().unwrap()).unwrap();
        rt2.turn(Some(Duration::ZERO)).unwrap();
        stop.attach(rt2.waker());
        let start = rt2.clock().now();
        rt2.turn(Some(Duration::from_secs(10))).unwrap();
        let took = rt2.clock().now() - start;
        assert!(took < Duration::from_secs(5), "not woken: {took:?}");
    }

    #[test]
    fn a_child_is_off_with_its_parent_or_alone() {
        let parent = Switch::new();
        let (a, b) = (parent.child(), parent.child());
        a.turn_off();
        assert!(a.is_off() && !b.is_off() && !parent.is_off());
        parent.turn_off();
        assert!(b.is_off() && b.child().is_off());
        // A loop attached through children is registered with the parent once.
        let rt = crate::Runtime::kernel("::1".parse().unwrap()).unwrap();
        let p = Switch::new();
        for _ in 0..3 {
            p.child().attach(rt.waker());
        }
        assert_eq!(p.0.wakers.lock().unwrap().len(), 1);
    }
}

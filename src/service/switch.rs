//! The stop switch, the Rust counterpart of the seed's `Lwt_switch`.
//!
//! A [`Switch`] is a shared one-way flag: on until [`Switch::turn_off`], then off for good. Every
//! service given the switch registers its loop's [`LoopWaker`], so turning it off from any thread
//! (a signal handler thread, a timer thread, another loop, or a callback of the same loop) wakes
//! every loop concerned; each service then stops gracefully (see [`crate::service`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::runtime::LoopWaker;

#[derive(Debug, Default)]
struct Inner {
    off: AtomicBool,
    wakers: Mutex<Vec<LoopWaker>>,
}

/// A stop switch: clone it freely, hand it to services, turn it off from anywhere.
#[derive(Clone, Debug, Default)]
pub struct Switch(Arc<Inner>);

impl Switch {
    /// A switch that is on.
    pub fn new() -> Switch {
        Switch::default()
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

    /// Whether [`Switch::turn_off`] was called.
    pub fn is_off(&self) -> bool {
        self.0.off.load(Ordering::SeqCst)
    }

    /// Registers a loop to wake when the switch turns off; wakes it at once if it already is.
    pub(crate) fn attach(&self, waker: LoopWaker) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.push(waker.clone());
        drop(wakers);
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
}

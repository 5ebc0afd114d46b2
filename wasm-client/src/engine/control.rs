//! The caller's hold on a running upload: pause, resume, cancel.
//!
//! A [`Control`] is shared between the caller (the JS handle's buttons) and the engine. Pausing
//! stops new parts and aborts the PUTs in flight (their bytes would be re-sent anyway once the
//! connection is gone); resuming continues with the parts not yet stored; cancelling aborts the
//! multipart upload in the store. [`Watch`] is the small change-notification primitive behind it,
//! also used by network-status sources.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Wakes whoever waits for "something changed". Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Watch(Rc<WatchInner>);

#[derive(Debug, Default)]
struct WatchInner {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Watch {
    /// Wakes every waiter.
    pub fn notify(&self) {
        self.0.version.set(self.0.version.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.0.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves at the first [`notify`](Self::notify) after this call.
    pub fn changed(&self) -> impl Future<Output = ()> + 'static {
        let inner = self.0.clone();
        let seen = inner.version.get();
        poll_fn(move |cx| {
            if inner.version.get() != seen {
                return Poll::Ready(());
            }
            let mut wakers = inner.wakers.borrow_mut();
            // The engine polls from one task; keeping one waker per task keeps the list short.
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// What the caller wants the upload to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    /// Final: the upload is aborted and its stored parts deleted.
    Cancelled,
}

/// Pause, resume and cancel for one upload.
#[derive(Debug)]
pub struct Control {
    state: Cell<RunState>,
    watch: Watch,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            state: Cell::new(RunState::Running),
            watch: Watch::default(),
        }
    }
}

impl Control {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    pub fn state(&self) -> RunState {
        self.state.get()
    }

    pub fn is_cancelled(&self) -> bool {
        self.state.get() == RunState::Cancelled
    }

    /// Stops new parts and aborts those in flight. No effect once cancelled.
    pub fn pause(&self) {
        self.set(RunState::Paused);
    }

    /// Continues a paused upload. No effect once cancelled.
    pub fn resume(&self) {
        self.set(RunState::Running);
    }

    /// Aborts the upload and deletes what it stored.
    pub fn cancel(&self) {
        self.set(RunState::Cancelled);
    }

    fn set(&self, state: RunState) {
        if self.state.get() != RunState::Cancelled && self.state.get() != state {
            self.state.set(state);
            self.watch.notify();
        }
    }

    /// Resolves at the next change of [`state`](Self::state).
    pub fn changed(&self) -> impl Future<Output = ()> + 'static {
        self.watch.changed()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn cancel_is_final_and_changes_wake_waiters() {
        let c = Control::new();
        let mut changed = Box::pin(c.changed());
        assert!((&mut changed).now_or_never().is_none());
        c.pause();
        assert!(changed.now_or_never().is_some());
        let changed = c.changed();
        c.pause();
        assert!(changed.now_or_never().is_none(), "no change, no wake");
        c.cancel();
        c.resume();
        assert_eq!(c.state(), RunState::Cancelled);
    }
}

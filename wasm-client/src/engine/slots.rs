//! One global limit of part PUTs in flight, shared by every upload of a queue, handed out first
//! come, first served.
//!
//! An upload asks for a slot when it has a part ready to send and holds the [`Slot`] while the
//! PUT runs; dropping the slot hands it to the longest waiting request, or frees it. A request is
//! granted at once only while nobody waits, so an upload that just finished a PUT and wants
//! another goes to the back of the line behind the others: a file of 200 parts and ten small
//! files added after it take turns instead of the small ones waiting for all 200 parts.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A pool of PUT slots. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Slots(Rc<Pool>);

struct Pool {
    limit: usize,
    used: Cell<usize>,
    /// Requests in the order they were made; each is granted a slot in this order.
    waiting: RefCell<VecDeque<Rc<Request>>>,
    /// Most slots ever taken at once (for tests and diagnostics).
    peak: Cell<usize>,
}

#[derive(Default)]
struct Request {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("limit", &self.0.limit)
            .field("used", &self.0.used.get())
            .field("waiting", &self.0.waiting.borrow().len())
            .finish()
    }
}

impl Slots {
    /// A pool of `limit` slots (at least one).
    pub fn new(limit: usize) -> Self {
        Self(Rc::new(Pool {
            limit: limit.max(1),
            used: Cell::new(0),
            waiting: RefCell::new(VecDeque::new()),
            peak: Cell::new(0),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Slots taken now.
    pub fn used(&self) -> usize {
        self.0.used.get()
    }

    /// Most slots taken at once so far.
    pub fn peak(&self) -> usize {
        self.0.peak.get()
    }

    /// A slot now, if one is free and no earlier request waits for it.
    pub fn try_take(&self) -> Option<Slot> {
        let pool = &self.0;
        if pool.used.get() < pool.limit && pool.waiting.borrow().is_empty() {
            self.take_one();
            Some(Slot(Some(self.0.clone())))
        } else {
            None
        }
    }

    /// Resolves with a slot once every earlier request has been served and one is free.
    /// Dropping the future withdraws the request (or returns the slot it was granted).
    pub fn take(&self) -> Take {
        match self.try_take() {
            Some(slot) => Take {
                pool: self.0.clone(),
                request: None,
                ready: Some(slot),
            },
            None => {
                let request = Rc::new(Request::default());
                self.0.waiting.borrow_mut().push_back(request.clone());
                Take {
                    pool: self.0.clone(),
                    request: Some(request),
                    ready: None,
                }
            }
        }
    }

    fn take_one(&self) {
        let pool = &self.0;
        pool.used.set(pool.used.get() + 1);
        pool.peak.set(pool.peak.get().max(pool.used.get()));
    }
}

impl Pool {
    /// A slot came back: hand it to the first waiting request, or free it.
    fn give_back(&self) {
        let next = self.waiting.borrow_mut().pop_front();
        match next {
            Some(request) => {
                request.granted.set(true);
                if let Some(waker) = request.waker.borrow_mut().take() {
                    waker.wake();
                }
            }
            None => self.used.set(self.used.get() - 1),
        }
    }
}

/// A taken slot; dropping it gives it back.
pub struct Slot(Option<Rc<Pool>>);

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.give_back();
        }
    }
}

/// A request for a slot (see [`Slots::take`]).
pub struct Take {
    pool: Rc<Pool>,
    request: Option<Rc<Request>>,
    ready: Option<Slot>,
}

impl fmt::Debug for Take {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Take")
            .field("ready", &self.ready.is_some())
            .finish()
    }
}

impl Future for Take {
    type Output = Slot;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Slot> {
        if let Some(slot) = self.ready.take() {
            return Poll::Ready(slot);
        }
        let Some(request) = self.request.clone() else {
            // Polled again after it resolved: the slot was handed out already.
            return Poll::Pending;
        };
        if request.granted.get() {
            self.request = None;
            return Poll::Ready(Slot(Some(self.pool.clone())));
        }
        *request.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Take {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        if request.granted.get() {
            // Granted but never collected: pass it on.
            self.pool.give_back();
        } else {
            self.pool
                .waiting
                .borrow_mut()
                .retain(|r| !Rc::ptr_eq(r, &request));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn requests_are_served_in_order_and_dropped_ones_step_aside() {
        let slots = Slots::new(2);
        let a = slots.try_take().unwrap();
        let b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        let mut first = slots.take();
        let second = slots.take();
        let mut third = slots.take();
        assert!((&mut first).now_or_never().is_none());
        drop(a);
        assert!(
            slots.try_take().is_none(),
            "a freed slot goes to a waiter, not to a newcomer"
        );
        let first = first
            .now_or_never()
            .expect("the first request is served first");
        drop(second);
        drop(b);
        let third_slot = (&mut third)
            .now_or_never()
            .expect("the withdrawn request is skipped");
        assert_eq!(slots.used(), 2);
        drop((first, third_slot));
        assert_eq!((slots.used(), slots.peak()), (0, 2));
    }

    #[test]
    fn a_granted_request_dropped_before_it_is_polled_passes_the_slot_on() {
        let slots = Slots::new(1);
        let a = slots.try_take().unwrap();
        let granted = slots.take();
        let mut next = slots.take();
        drop(a);
        drop(granted);
        let slot = (&mut next).now_or_never().expect("the slot was passed on");
        assert_eq!(slots.used(), 1);
        drop(slot);
        assert_eq!(slots.used(), 0);
    }
}

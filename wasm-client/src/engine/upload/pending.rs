//! [`Pending`]: a set of futures of one output type, the first to finish taken out: the
//! transfer's PUTs, backoffs and checksums.
//!
//! Every future is polled whenever the set is: the sets hold at most `concurrency` PUTs (or
//! [`HASHES_AT_ONCE`](super::checksum::HASHES_AT_ONCE) checksums), and the transfer's task is
//! woken a few times per part, so polling the ones not woken costs less than telling them apart.
//! `futures`' `FuturesUnordered`, which gives each future a waker of its own, was 3,416 bytes
//! more of the page's code for the three sets (668 gzipped).

use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;

pub(super) struct Pending<'a, T>(Vec<LocalBoxFuture<'a, T>>);

impl<'a, T> Pending<'a, T> {
    pub(super) fn new() -> Self {
        Self(Vec::new())
    }

    pub(super) fn push(&mut self, future: LocalBoxFuture<'a, T>) {
        self.0.push(future);
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops every future (a PUT's drop aborts it).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// The output of the first future, in the order they were pushed, that is ready, taken out
    /// of the set; pending while none is (an empty set is always pending). Each future not
    /// ready has `cx`'s waker.
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        for i in 0..self.0.len() {
            if let Poll::Ready(out) = self.0[i].as_mut().poll(cx) {
                drop(self.0.remove(i));
                return Poll::Ready(out);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    use futures::FutureExt;

    use super::*;

    #[test]
    fn takes_out_the_first_ready_future_in_push_order() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut set = Pending::new();
        assert!(set.poll_next(&mut cx).is_pending(), "an empty set");
        let open = Rc::new(Cell::new(false));
        let gate = open.clone();
        set.push(
            futures::future::poll_fn(move |_| match gate.get() {
                true => Poll::Ready(1),
                false => Poll::Pending,
            })
            .boxed_local(),
        );
        set.push(async { 2 }.boxed_local());
        set.push(async { 3 }.boxed_local());
        assert_eq!(set.poll_next(&mut cx), Poll::Ready(2));
        open.set(true);
        assert_eq!(set.poll_next(&mut cx), Poll::Ready(1));
        assert_eq!(set.len(), 1);
        set.clear();
        assert!(set.is_empty() && set.poll_next(&mut cx).is_pending());
    }
}

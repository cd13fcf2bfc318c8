//! Which connections of an event loop have something to do: each connection's waker (the one
//! its socket, timer and outbox are given) puts its slot on the loop's ready list once, and
//! wakes the loop's task when the list was empty.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

/// The slots woken since the loop last looked, and the loop task's waker.
#[derive(Debug, Default)]
pub(super) struct ReadyList {
    inner: Mutex<ReadyInner>,
}

#[derive(Debug, Default)]
struct ReadyInner {
    /// Each slot at most once (its waker's `queued` flag), so never longer than the loop.
    slots: Vec<usize>,
    task: Option<Waker>,
}

impl ReadyList {
    fn lock(&self) -> MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves the loop task's waker for the next wake-up (at every poll of the loop).
    pub(super) fn register(&self, waker: &Waker) {
        let mut inner = self.lock();
        if !inner.task.as_ref().is_some_and(|w| w.will_wake(waker)) {
            inner.task = Some(waker.clone());
        }
    }

    /// Moves the woken slots to the back of `into`.
    pub(super) fn drain_into(&self, into: &mut std::collections::VecDeque<usize>) {
        into.extend(self.lock().slots.drain(..));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().slots.is_empty()
    }

    fn push(&self, slot: usize) {
        let task = {
            let mut inner = self.lock();
            inner.slots.push(slot);
            // A longer list already woke the task, which hasn't taken it yet.
            if inner.slots.len() == 1 {
                inner.task.clone()
            } else {
                None
            }
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// One connection's waker.
#[derive(Debug)]
pub(super) struct SlotWaker {
    slot: usize,
    /// On the ready list and not yet polled: further wakes add nothing.
    queued: AtomicBool,
    list: Arc<ReadyList>,
}

impl SlotWaker {
    pub(super) fn new(slot: usize, list: Arc<ReadyList>) -> Arc<SlotWaker> {
        Arc::new(SlotWaker {
            slot,
            queued: AtomicBool::new(false),
            list,
        })
    }

    /// Called by the loop as it polls the connection: a wake from now on lists it again.
    pub(super) fn clear(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.list.push(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_listed_once_until_polled_and_the_task_woken_once_per_batch() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(0.into()));
        let list = Arc::new(ReadyList::default());
        list.register(&Waker::from(count.clone()));
        let a = Waker::from(SlotWaker::new(3, list.clone()));
        let b = SlotWaker::new(7, list.clone());
        let b_waker = Waker::from(b.clone());
        a.wake_by_ref();
        a.wake_by_ref();
        b_waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let mut taken = std::collections::VecDeque::new();
        list.drain_into(&mut taken);
        assert_eq!(taken, [3, 7]);
        assert!(list.is_empty());
        // Not cleared: still counted as listed.
        b_waker.wake_by_ref();
        assert!(list.is_empty());
        b.clear();
        b_waker.wake_by_ref();
        assert!(!list.is_empty());
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}

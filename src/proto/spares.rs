//! Per-thread spares: the buffers idle connections hand back, for the next connection on the
//! thread with bytes to read or to send. An idle connection then holds none, and a busy one
//! doesn't allocate them at each wake-up. Each list is bounded; what doesn't fit is freed.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Spares kept per thread, of each kind.
const MAX_SPARES: usize = 16;

/// One thread's spares of one kind. Whoever gives one back checks its size first.
pub(crate) struct Spares<T>(RefCell<Vec<T>>);

impl<T> Spares<T> {
    const fn new() -> Spares<T> {
        Spares(RefCell::new(Vec::new()))
    }

    pub(crate) fn take(&self) -> Option<T> {
        self.0.borrow_mut().pop()
    }

    /// Keeps `spare` if the list has room; frees it otherwise.
    pub(crate) fn give(&self, spare: T) {
        let mut list = self.0.borrow_mut();
        if list.len() < MAX_SPARES {
            list.push(spare);
        }
    }
}

impl Spares<BytesMut> {
    /// (start address, capacity) of each spare, for tests.
    #[cfg(test)]
    pub(crate) fn buffers(&self) -> Vec<(usize, usize)> {
        let list = self.0.borrow();
        list.iter()
            .map(|b| (b.as_ptr() as usize, b.capacity()))
            .collect()
    }
}

thread_local! {
    /// Read buffers (`io::read_buffer`).
    pub(crate) static READ_BUFFERS: Spares<BytesMut> = const { Spares::new() };
    /// Staging buffers, where frames to send are built (`connection::output`).
    pub(crate) static STAGING: Spares<BytesMut> = const { Spares::new() };
    /// Lists of shared frames queued after the staged ones (`connection::output`).
    pub(crate) static FRAME_LISTS: Spares<VecDeque<Bytes>> = const { Spares::new() };
}

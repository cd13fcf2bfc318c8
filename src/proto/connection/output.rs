//! Output: the bytes owed to the peer, as one buffer or a list for a vectored write.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::Connection;
use crate::proto::frame::OpCode;
use crate::proto::spares::{Spares, FRAME_LISTS, STAGING};

/// Larger staging buffers (a burst of replies) are freed, not kept as spares.
pub(super) const MAX_SPARE_STAGING: usize = 64 << 10;
/// Longer frame lists too.
const MAX_SPARE_FRAME_LIST: usize = 16;

impl Connection {
    /// Bytes waiting to be written (the seed's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.queued_len + self.staging.len()
    }

    /// Whether there is anything to write, including an owed pong.
    pub fn has_output(&self) -> bool {
        self.buffered_amount() > 0 || self.pending_pong.is_some()
    }

    /// All pending output when it is one contiguous buffer (no large payload is queued), so
    /// the I/O layer can write it without building a slice list; `None` otherwise (use
    /// [`output_slices`](Connection::output_slices)). An owed pong is queued first.
    pub fn contiguous_output(&mut self) -> Option<&[u8]> {
        self.queue_owed_pong();
        if self.queue.is_empty() {
            Some(&self.staging)
        } else {
            None
        }
    }

    /// Fills `dst` with the buffers to write next, in order, and returns how many it filled.
    /// An owed pong is queued first.
    pub fn output_slices<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        self.queue_owed_pong();
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.queue.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        // The staging buffer follows the queue; it is written in place, not sealed into a
        // shared buffer, so small frames cost no allocation.
        if n < dst.len() && n == self.queue.len() && !self.staging.is_empty() {
            dst[n] = IoSlice::new(&self.staging);
            n += 1;
        }
        n
    }

    /// A pong owed to a peer that wasn't reading (only the latest is kept) goes out with the
    /// next write.
    fn queue_owed_pong(&mut self) {
        if let Some(pong) = self.pending_pong.take() {
            self.write_frame(OpCode::Pong, true, &pong);
        }
    }

    /// Marks `n` bytes of output as written.
    pub fn consume_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let len = front.len();
            if n >= len {
                n -= len;
                self.queued_len -= len;
                self.queue.pop_front();
            } else {
                front.advance(n);
                self.queued_len -= n;
                n = 0;
            }
        }
        if n >= self.staging.len() {
            // Written whole: clearing keeps the buffer's start where it is, whereas advancing
            // first would move it, and the next frame staged would pay for moving it back.
            self.staging.clear();
        } else if n > 0 {
            self.staging.advance(n);
        }
        if self.queue.is_empty() && self.staging.is_empty() {
            // All written: a connection that goes quiet keeps no buffer (one burst of replies
            // would otherwise pin its staging buffer, or its list of shared frames, for as long
            // as it stays idle). Both go to this thread's spares for the next connection with
            // something to send.
            self.release_output();
        }
    }

    /// Hands the empty staging buffer and frame list to this thread's spares, each if it holds
    /// memory and not too much; frees them otherwise.
    fn release_output(&mut self) {
        if self.staging.capacity() > 0 {
            // A buffer whose start moved (a partial write advanced it) or whose front was
            // handed out (sealed into a queued chunk, written and dropped since: nothing else
            // shares it) takes its whole allocation back, so the size checked is the
            // allocation's.
            let _ = self
                .staging
                .try_reclaim(self.staging.capacity().saturating_add(1));
            let staging = std::mem::take(&mut self.staging);
            if staging.capacity() <= MAX_SPARE_STAGING {
                STAGING.with(|spares| spares.give(staging));
            }
        }
        if self.queue.capacity() > 0 {
            let queue = std::mem::take(&mut self.queue);
            if queue.capacity() <= MAX_SPARE_FRAME_LIST {
                FRAME_LISTS.with(|spares| spares.give(queue));
            }
        }
    }

    /// The staging buffer, with room for `additional` bytes more: an empty one starts from
    /// this thread's spares.
    pub(super) fn staging_room(&mut self, additional: usize) -> &mut BytesMut {
        if self.staging.capacity() == 0 {
            if let Some(spare) = STAGING.with(Spares::take) {
                self.staging = spare;
            }
        }
        self.staging.reserve(additional);
        &mut self.staging
    }

    /// Queues a shared chunk after what is queued: an empty list starts from this thread's
    /// spares.
    pub(super) fn queue_chunk(&mut self, chunk: Bytes) {
        if self.queue.capacity() == 0 {
            if let Some(spare) = FRAME_LISTS.with(Spares::take) {
                self.queue = spare;
            }
        }
        self.queued_len += chunk.len();
        self.queue.push_back(chunk);
    }

    /// Bytes of memory the output holds (staging buffer and frame list), for tests.
    #[cfg(test)]
    pub(crate) fn output_capacity(&self) -> usize {
        self.staging.capacity() + self.queue.capacity() * std::mem::size_of::<bytes::Bytes>()
    }

    /// Takes all pending output as one contiguous buffer (convenient for tests and for
    /// transports without vectored writes).
    pub fn take_output(&mut self) -> BytesMut {
        self.queue_owed_pong();
        self.seal_staging();
        let mut out = BytesMut::with_capacity(self.queued_len);
        for chunk in self.queue.drain(..) {
            out.extend_from_slice(&chunk);
        }
        self.queued_len = 0;
        out
    }
}

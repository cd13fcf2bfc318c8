//! Read buffers: how much room a read gets, how a buffer grows (with the bytes a peer
//! delivered, never with a length it merely declared), and the per-thread spares that idle
//! connections hand back, so an idle connection holds no buffer and a busy one allocates none
//! per wake-up.

use bytes::BytesMut;

use crate::proto::connection::Connection;
use crate::proto::frame::MAX_HEADER_LEN;
use crate::proto::spares::{Spares, READ_BUFFERS};

/// Smallest read: big enough that small frames rarely straddle reads.
pub(super) const READ_CHUNK: usize = 8 << 10;
/// Largest single reservation before the buffer holds data to justify more.
pub(super) const READ_MAX_STEP: usize = 64 << 10;
/// A large frame's buffer, when full, grows to this many times the bytes it holds.
pub(super) const FRAME_GROWTH: usize = 4;

/// A connection's read sizing: its read chunk, which adapts to how busy it is, and whether its
/// buffer is a spare not grown since.
#[derive(Debug)]
pub(super) struct ReadSizing {
    /// At most `READ_MAX_STEP`: a `u32` keeps the sizing in one word.
    pub(super) chunk: u32,
    /// The read buffer is a spare, not reserved into since, so its whole allocation is known
    /// to be at most `READ_MAX_STEP`: it may go back to the spares without reclaiming it.
    small: bool,
}

impl Default for ReadSizing {
    fn default() -> ReadSizing {
        ReadSizing {
            chunk: READ_CHUNK as u32,
            small: false,
        }
    }
}

/// Where the next read goes: the room it may fill and the most it may read.
pub(super) struct ReadPlan {
    /// Room made for this read; reading it all means the connection is busy.
    pub(super) room: usize,
    /// Read no more than this many bytes (`None`: whatever the buffer has room for).
    pub(super) limit: Option<usize>,
}

/// Makes room for `additional` more bytes. A reservation larger than `READ_MAX_STEP` (only a
/// large frame asks for one) grows the buffer to exactly what is asked: `BytesMut::reserve` at
/// least doubles its allocation, which would let the capacity run ahead of the bytes received
/// and past the frame's end. Smaller ones keep `reserve`'s own growth: at most double the
/// allocation the buffer already holds, which earlier input paid for.
fn reserve_exact(buf: &mut BytesMut, additional: usize) {
    if additional <= READ_MAX_STEP {
        buf.reserve(additional);
        return;
    }
    if buf.capacity() - buf.len() >= additional || buf.try_reclaim(additional) {
        return;
    }
    let mut grown = BytesMut::with_capacity(buf.len() + additional);
    grown.extend_from_slice(buf);
    *buf = grown;
}

impl ReadSizing {
    /// Prepares the core's read buffer for the next read.
    pub(super) fn prepare(&mut self, conn: &mut Connection) -> ReadPlan {
        let wanted = conn.bytes_wanted();
        // A frame no larger than the peer's last one (header included) may have its whole
        // buffer at once: the peer delivered that much before.
        let earned = conn.last_frame_len().saturating_add(MAX_HEADER_LEN);
        // After a large frame, the next one is read straight into a buffer of that size, in
        // one read if it is as large: no first part read into a small buffer and copied.
        let expect_large = earned > READ_MAX_STEP && conn.awaiting_frame_header();
        let read_chunk = self.chunk as usize;
        let buf = conn.read_buffer();
        if expect_large && buf.is_empty() {
            // The buffer the last frame was read into, once nothing else shares it (the
            // message was written), is used again from its start; otherwise a new one.
            if buf.capacity() < earned && !buf.try_reclaim(earned) {
                *buf = BytesMut::with_capacity(earned);
                self.small = false;
            }
        } else if buf.capacity() == 0 {
            if let Some(spare) = READ_BUFFERS.with(Spares::take) {
                *buf = spare;
                self.small = true;
            } else if buf.is_empty() {
                // No spare: an empty buffer with no room left starts over at the beginning of
                // its allocation if nothing else shares it (else it is reserved into below).
                let _ = buf.try_reclaim(READ_CHUNK);
            }
        }
        // Room for the rest of the current frame (or a read chunk). A buffer that lacks it
        // grows with the bytes received, never with a length the peer merely declared: to the
        // frame's end when that is within FRAME_GROWTH times what the buffer holds plus one
        // large step, or twice the capacity it already holds, or the size of the peer's last
        // frame (memory earlier input earned: a peer sending large frames one after another
        // gets each one's buffer at once, without copying a first part into a larger buffer);
        // otherwise, once it can't take a useful read, to FRAME_GROWTH times what it holds.
        // Reserving the rest exactly as soon as the bound allows means a buffer is never left a
        // few bytes short of a large frame and copied whole for them; growing fourfold rather
        // than doubling copies about a third of a large frame on the way instead of all of it,
        // and takes it in fewer, larger reads.
        let len = buf.len();
        let capacity = buf.capacity();
        // Between frames, an empty buffer's spare room (at least half this connection's read
        // chunk) is enough for the next read: growing it to a full chunk would allocate a new
        // buffer while the message just handed out still shares this one, or at best move the
        // buffer back to its start, once per message on a connection that exchanges one
        // message at a time (a buffer just handed a message out is a few bytes short of a
        // chunk).
        let rest = if len == 0 && capacity >= read_chunk / 2 {
            wanted.max(read_chunk.min(capacity))
        } else {
            wanted.max(read_chunk)
        };
        if capacity - len < rest {
            let bound = len
                .saturating_mul(FRAME_GROWTH)
                .saturating_add(READ_MAX_STEP)
                .max(capacity.saturating_mul(2))
                .max(earned);
            if len.saturating_add(rest) <= bound {
                reserve_exact(buf, rest);
            } else if capacity - len < read_chunk {
                let target = len.saturating_mul(FRAME_GROWTH).max(READ_MAX_STEP);
                reserve_exact(buf, target - len);
            }
            // It may have grown: judged again (reclaimed whole) when it goes back to the spares.
            self.small = false;
        }
        let room = rest.min(buf.capacity() - len);
        // Read no further than the current frame needs, or the largest step: bytes read far past
        // a large frame's end would be moved to the front of the buffer when the frame is handed
        // out. (Small frames are not limited: one read takes a whole burst of them.)
        let limit = if expect_large { earned } else { wanted }.max(READ_MAX_STEP);
        ReadPlan {
            room,
            limit: (buf.capacity() - len > limit).then_some(limit),
        }
    }

    /// After a read of `n` bytes into `room`: a busy connection reads in larger chunks (fewer
    /// system calls per burst); a quiet one goes back to small ones.
    pub(super) fn after_read(&mut self, n: usize, room: usize) {
        let read_chunk = self.chunk as usize;
        if n >= room {
            self.chunk = (read_chunk * 2).min(READ_MAX_STEP) as u32;
        } else if n < read_chunk / 4 {
            self.chunk = (read_chunk / 2).max(READ_CHUNK) as u32;
        }
    }

    /// The input ran dry: an empty read buffer goes back to this thread's spares (when nothing
    /// else still shares it) for the next connection that has input, so idle connections hold
    /// none and busy ones don't allocate one per wake-up either. Called after writing what is
    /// owed, so a message just echoed (once written) no longer shares the buffer and the whole
    /// allocation can be reused.
    pub(super) fn release_idle(&mut self, conn: &mut Connection) {
        let buf = conn.read_buffer();
        if !buf.is_empty() {
            return;
        }
        let mut spare = std::mem::take(buf);
        let small = std::mem::replace(&mut self.small, false);
        // A buffer known to be small, with room for a read (half the connection's read chunk,
        // what the next read asks of a spare), goes back as it is: moving it back
        // to its start can wait until its room runs low (the next reservation does it, once
        // per several messages instead of once per message). Otherwise, asking for one byte more
        // than the buffer's tail has takes back the whole allocation when nothing else shares
        // it (the empty buffer moves to its start); failing that, a tail of at least a chunk
        // will do. Capacity is judged once reclaimed: a large frame may have grown the
        // allocation far past what a spare should keep.
        let keep = (small && spare.capacity() >= self.chunk as usize / 2) || {
            let whole = spare.capacity().saturating_add(1);
            let reclaimed = spare.try_reclaim(whole) || spare.try_reclaim(READ_CHUNK);
            reclaimed && spare.capacity() <= READ_MAX_STEP
        };
        if keep {
            READ_BUFFERS.with(|spares| spares.give(spare));
        }
    }
}

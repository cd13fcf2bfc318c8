//! The thread's shared compressors: a message compressed on its own (no context before or
//! after it) needs no compressor of its own, so every connection of a thread that compresses
//! without context takeover, and every prepared message, uses one compressor per tuning kept by
//! the thread. A compressor's state is a few hundred KiB: built per connection it would be most
//! of an idle connection's memory, and built per message most of the cost of compressing it.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

use super::codec::Compressor;
use super::DeflateConfig;

/// Compressors kept per thread, most recently used last: a server has one tuning, and its
/// clients may ask for any of the seven window sizes zlib compresses with (9-15; 8 is 9), so
/// they can't make it build a compressor per message.
const CACHED_COMPRESSORS: usize = 8;

/// What makes two compressors the same: the window and tuning as zlib gets them.
type CompressorKey = (u8, u8, u8, crate::deflate::Strategy);

thread_local! {
    static COMPRESSORS: RefCell<Vec<(CompressorKey, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// `payload` compressed as a message of its own (no context before or after it).
pub fn compress_alone(payload: &[u8], bits: u8, config: &DeflateConfig) -> Option<Bytes> {
    let key = (
        bits.clamp(9, 15),
        config.level.min(9),
        config.mem_level.clamp(1, 9),
        config.strategy,
    );
    let compress = |compressor: &mut Compressor| {
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
        let result = compressor.compress_fragment(payload, &mut out, true);
        compressor.reset();
        result.ok().map(|()| out.freeze())
    };
    let cached = COMPRESSORS.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        // Taken out while in use: if compressing panicked, a compressor in the middle of a
        // stream would not go back for the next message.
        let (key, mut compressor) = match cache.iter().position(|(k, _)| *k == key) {
            Some(index) => cache.remove(index),
            None => (key, Compressor::new(bits, config)),
        };
        let out = compress(&mut compressor);
        if cache.len() == CACHED_COMPRESSORS {
            cache.remove(0);
        }
        cache.push((key, compressor));
        out
    });
    // The thread is ending (its locals gone): a compressor for this message alone.
    cached.unwrap_or_else(|_| compress(&mut Compressor::new(bits, config)))
}

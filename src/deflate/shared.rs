//! The thread's shared compressors: a message compressed on its own (no context before or
//! after it) needs no compressor of its own, so every connection of a thread that compresses
//! without context takeover, and every prepared message, uses one compressor per tuning kept by
//! the thread. A compressor's state is a few hundred KiB: built per connection it would be most
//! of an idle connection's memory, and built per message most of the cost of compressing it.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

use super::codec::Compressor;
use super::DeflateConfig;

/// Compressors kept per thread, one per tuning met (a server has one).
const CACHED_COMPRESSORS: usize = 4;

type CompressorKey = (u8, u8, u8, crate::deflate::Strategy);

thread_local! {
    static COMPRESSORS: RefCell<Vec<(CompressorKey, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// `payload` compressed as a message of its own (no context before or after it).
pub fn compress_alone(payload: &[u8], bits: u8, config: &DeflateConfig) -> Option<Bytes> {
    let key = (bits, config.level, config.mem_level, config.strategy);
    COMPRESSORS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let index = match cache.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                if cache.len() == CACHED_COMPRESSORS {
                    cache.remove(0);
                }
                cache.push((key, Compressor::new(bits, config)));
                cache.len() - 1
            }
        };
        let compressor = &mut cache[index].1;
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
        let result = compressor.compress_fragment(payload, &mut out, true);
        compressor.reset();
        result.ok().map(|()| out.freeze())
    })
}

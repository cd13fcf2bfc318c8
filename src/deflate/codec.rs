//! Raw deflate and inflate for permessage-deflate (RFC 7692 §7.2), on zlib-rs.
//!
//! zlib-rs is used directly rather than through flate2 because its safe API exposes the memory
//! level and strategy, which flate2 does not. A message is compressed with a sync flush and the
//! trailing `00 00 ff ff` removed (§7.2.1); the receiver appends it back before inflating the
//! end of the message (§7.2.2).
//!
//! zlib can't compress raw deflate with an 8-bit window, so a window of 8 compresses with 9:
//! zlib never emits a distance beyond the window size less its 262-byte lookahead, so a 9-bit
//! compressor's distances stay under 256 and its output inflates with an 8-bit window, which is
//! what RFC 7692 §7.1.2.1's limit protects (checked by a test below).

use bytes::BytesMut;
use zlib_rs::{Deflate, DeflateConfig as ZConfig, DeflateFlush, Inflate, InflateFlush, Status};

use super::{DeflateConfig, Strategy};

/// The empty stored block a sync flush ends with.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A compressor for one direction of one connection.
///
/// With [`keep_history`](Compressor::keep_history), it remembers the last window of input so
/// that [`compact`](Compressor::compact) can drop the zlib state (about 320 KiB at window 15)
/// between messages and rebuild it on next use by priming a fresh one with that history as a
/// dictionary. The peer's inflater holds the same history, so every back-reference stays valid:
/// context takeover survives compaction.
pub struct Compressor {
    inner: Option<Deflate>,
    zconfig: ZConfig,
    /// The last `window` bytes of input, when kept.
    history: Option<Vec<u8>>,
    window: usize,
    /// Compressed something since the last [`take_used`](Compressor::take_used).
    used: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

/// Compression failed (only on an internal zlib error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressError;

/// Why inflating failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The output would exceed the limit.
    TooBig,
    /// The compressed data is invalid.
    Corrupt,
}

impl Compressor {
    /// A raw deflate compressor with `window_bits` (8-15) and the configured tuning.
    pub fn new(window_bits: u8, config: &DeflateConfig) -> Compressor {
        let strategy = match config.strategy {
            Strategy::Default => zlib_rs::Strategy::Default,
            Strategy::Filtered => zlib_rs::Strategy::Filtered,
            Strategy::HuffmanOnly => zlib_rs::Strategy::HuffmanOnly,
            Strategy::Rle => zlib_rs::Strategy::Rle,
            Strategy::Fixed => zlib_rs::Strategy::Fixed,
        };
        let bits = window_bits.clamp(9, 15);
        let zconfig = ZConfig {
            level: i32::from(config.level.min(9)),
            window_bits: -i32::from(bits),
            mem_level: i32::from(config.mem_level.clamp(1, 9)),
            strategy,
            ..ZConfig::default()
        };
        Compressor {
            inner: None,
            zconfig,
            history: None,
            window: 1 << bits,
            used: false,
        }
    }

    /// Remembers the last window of input, so that [`compact`](Compressor::compact) can
    /// free the zlib state without breaking context takeover.
    pub fn keep_history(mut self) -> Compressor {
        self.history = Some(Vec::new());
        self
    }

    /// Frees the zlib state, keeping only the history (when kept; otherwise this does
    /// nothing). Answers whether state was freed.
    pub fn compact(&mut self) -> bool {
        if self.history.is_some() && self.inner.is_some() {
            self.inner = None;
            true
        } else {
            false
        }
    }

    /// Whether anything was compressed since the last call.
    pub fn take_used(&mut self) -> bool {
        std::mem::take(&mut self.used)
    }

    /// Whether the zlib state is allocated.
    pub fn is_live(&self) -> bool {
        self.inner.is_some()
    }

    /// The zlib state, created on first use (primed with the history after a compaction).
    fn deflate(&mut self) -> Result<&mut Deflate, CompressError> {
        if self.inner.is_none() {
            let mut deflate = Deflate::new_with_config(self.zconfig);
            if let Some(history) = self.history.as_deref().filter(|h| !h.is_empty()) {
                deflate.set_dictionary(history).map_err(|_| CompressError)?;
            }
            self.inner = Some(deflate);
        }
        self.inner.as_mut().ok_or(CompressError)
    }

    /// Appends `input` to the history, keeping its last `window` bytes.
    fn remember(&mut self, input: &[u8]) {
        let window = self.window;
        let Some(history) = self.history.as_mut() else {
            return;
        };
        if input.len() >= window {
            history.clear();
            history.extend_from_slice(&input[input.len() - window..]);
        } else {
            let excess = (history.len() + input.len()).saturating_sub(window);
            history.drain(..excess);
            history.extend_from_slice(input);
        }
    }

    /// Compresses one whole message and appends it to `out` without the sync-flush tail.
    ///
    /// # Errors
    /// An internal zlib error.
    #[cfg(any(test, feature = "internals"))]
    pub fn compress(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), CompressError> {
        self.compress_fragment(input, out, true)
    }

    /// Compresses one fragment of a message and appends it to `out`. Only the last one loses
    /// its sync-flush tail (RFC 7692 §7.2.1): in the middle of a message the tail is the
    /// empty stored block that ends the fragment's data on a byte boundary, and the next
    /// fragment's blocks follow it.
    ///
    /// # Errors
    /// An internal zlib error.
    pub fn compress_fragment(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        last: bool,
    ) -> Result<(), CompressError> {
        self.used = true;
        let start = out.len();
        let mut consumed = 0usize;
        let deflate = self.deflate()?;
        loop {
            let len = out.len();
            let room = (input.len() - consumed) / 2 + 64;
            out.resize(len + room, 0);
            let before_in = deflate.total_in();
            let before_out = deflate.total_out();
            let status = deflate
                .compress(&input[consumed..], &mut out[len..], DeflateFlush::SyncFlush)
                .map_err(|_| CompressError)?;
            let read = (deflate.total_in() - before_in) as usize;
            let written = (deflate.total_out() - before_out) as usize;
            consumed += read;
            out.truncate(len + written);
            // Done once all input is in and the flush fitted (output space left over).
            if consumed == input.len() && written < room {
                break;
            }
            if status == Status::BufError && read == 0 && written == 0 {
                return Err(CompressError);
            }
        }
        if !last {
            self.remember(input);
            return Ok(());
        }
        if out.len() - start >= 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        if out.len() == start {
            // zlib emits nothing for an empty input right after a flush; RFC 7692 §7.2.3.6
            // wants an empty stored block's header, so the receiver's appended tail completes
            // a valid block.
            out.extend_from_slice(&[0x00]);
        }
        self.remember(input);
        Ok(())
    }

    /// Starts a new context (no context takeover).
    pub fn reset(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.reset();
        }
        if let Some(history) = self.history.as_mut() {
            history.clear();
        }
    }
}

/// A decompressor for one direction of one connection.
pub struct Decompressor {
    inner: Inflate,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor").finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A raw inflater with `window_bits` (8-15).
    pub fn new(window_bits: u8) -> Decompressor {
        Decompressor {
            inner: Inflate::new(false, window_bits.clamp(8, 15)),
        }
    }

    /// Inflates `input` onto `out`, failing as soon as `out` would grow past `limit` bytes in
    /// total: memory use stays about the limit, whatever the compressed data claims.
    ///
    /// # Errors
    /// [`InflateError::TooBig`] past the limit, [`InflateError::Corrupt`] on invalid data.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let mut consumed = 0usize;
        loop {
            let len = out.len();
            if len > limit {
                return Err(InflateError::TooBig);
            }
            // Grow with the output, by at least 4 KiB and at most what the limit still allows
            // (plus one byte, to notice going over it).
            let room = (input.len() - consumed)
                .saturating_mul(4)
                .max(len)
                .clamp(4096, 1 << 20)
                .min(limit - len + 1);
            out.resize(len + room, 0);
            let before_in = self.inner.total_in();
            let before_out = self.inner.total_out();
            let result =
                self.inner
                    .decompress(&input[consumed..], &mut out[len..], InflateFlush::SyncFlush);
            let read = (self.inner.total_in() - before_in) as usize;
            let written = (self.inner.total_out() - before_out) as usize;
            consumed += read;
            out.truncate(len + written);
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            match result {
                Err(_) => return Err(InflateError::Corrupt),
                // A final block ends the stream; permessage-deflate never sets BFINAL usefully,
                // but data after it would be an error.
                Ok(Status::StreamEnd) => {
                    return if consumed == input.len() {
                        Ok(())
                    } else {
                        Err(InflateError::Corrupt)
                    };
                }
                Ok(_) => {}
            }
            if consumed == input.len() && written < room {
                return Ok(());
            }
            if read == 0 && written == 0 {
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Starts a new context (the peer doesn't take over context).
    pub fn reset(&mut self) {
        self.inner.reset(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(data: &[u8], bits: u8, config: &DeflateConfig) -> Vec<u8> {
        let mut c = Compressor::new(bits, config);
        let mut d = Decompressor::new(bits);
        let mut wire = BytesMut::new();
        c.compress(data, &mut wire).unwrap();
        wire.extend_from_slice(&TAIL);
        let mut out = BytesMut::new();
        d.inflate(&wire, &mut out, usize::MAX - 1).unwrap();
        out.to_vec()
    }

    proptest! {
        #[test]
        fn fragments_make_one_stream(parts in proptest::collection::vec(
            proptest::collection::vec(0u8..4, 0..3000), 1..6)) {
            let config = DeflateConfig::default();
            let mut c = Compressor::new(15, &config);
            let mut d = Decompressor::new(15);
            // Twice, so the second message uses the context the first left.
            for _ in 0..2 {
                let mut wire = BytesMut::new();
                for (i, part) in parts.iter().enumerate() {
                    c.compress_fragment(part, &mut wire, i + 1 == parts.len()).unwrap();
                }
                wire.extend_from_slice(&TAIL);
                let mut out = BytesMut::new();
                d.inflate(&wire, &mut out, usize::MAX - 1).unwrap();
                prop_assert_eq!(out.to_vec(), parts.concat());
            }
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[(i * 7 + i / 13) % 44])
            .collect()
    }

    #[test]
    fn window_8_is_compressed_with_9_and_inflates_with_8() {
        let config = DeflateConfig::default();
        for len in [0usize, 1, 300, 5000, 100_000] {
            assert_eq!(round_trip(&sample(len), 8, &config), sample(len));
        }
        // Pseudo-random blocks repeating at distances of 257 to 511 bytes: matches there would
        // need more than an 8-bit window.
        let mut state = 0x2545_f491_u32;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        for period in [257usize, 300, 400, 511] {
            let block: Vec<u8> = (0..period).map(|_| noise()).collect();
            let data = block.repeat(50);
            assert_eq!(round_trip(&data, 8, &config), data, "period {period}");
        }
    }

    #[test]
    fn context_takeover_and_reset() {
        let config = DeflateConfig::default();
        let mut c = Compressor::new(15, &config);
        let mut d = Decompressor::new(15);
        let message = sample(2000);
        let mut sizes = Vec::new();
        for reset in [false, false, true] {
            if reset {
                c.reset();
                d.reset();
            }
            let mut wire = BytesMut::new();
            c.compress(&message, &mut wire).unwrap();
            sizes.push(wire.len());
            wire.extend_from_slice(&TAIL);
            let mut out = BytesMut::new();
            d.inflate(&wire, &mut out, 1 << 20).unwrap();
            assert_eq!(&out[..], &message[..]);
        }
        // The second message refers to the first; after a reset it can't.
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
        assert_eq!(sizes[2], sizes[0]);
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        let config = DeflateConfig::default();
        let mut c = Compressor::new(15, &config);
        let zeros = vec![0u8; 64 << 20];
        let mut wire = BytesMut::new();
        c.compress(&zeros, &mut wire).unwrap();
        assert!(wire.len() < 128 << 10);
        let mut d = Decompressor::new(15);
        let mut out = BytesMut::new();
        assert_eq!(
            d.inflate(&wire, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() <= (2 << 20) + 4096, "{}", out.capacity());
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut d = Decompressor::new(15);
        let mut out = BytesMut::new();
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn every_tuning_round_trips() {
        use crate::deflate::Strategy as S;
        for strategy in [S::Default, S::Filtered, S::HuffmanOnly, S::Rle, S::Fixed] {
            for level in [0u8, 1, 6, 9] {
                for mem_level in [1u8, 8, 9] {
                    let config = DeflateConfig {
                        level,
                        mem_level,
                        strategy,
                        ..DeflateConfig::default()
                    };
                    assert_eq!(round_trip(&sample(3000), 12, &config), sample(3000));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn round_trips_with_every_window(data in proptest::collection::vec(any::<u8>(), 0..4000), bits in 8u8..=15) {
            prop_assert_eq!(round_trip(&data, bits, &DeflateConfig::default()), data);
        }

        #[test]
        fn split_input_inflates_the_same(cut in 0usize..400) {
            let data = sample(20_000);
            let mut c = Compressor::new(15, &DeflateConfig::default());
            let mut wire = BytesMut::new();
            c.compress(&data, &mut wire).unwrap();
            wire.extend_from_slice(&TAIL);
            let cut = cut.min(wire.len());
            let mut d = Decompressor::new(15);
            let mut out = BytesMut::new();
            d.inflate(&wire[..cut], &mut out, 1 << 20).unwrap();
            d.inflate(&wire[cut..], &mut out, 1 << 20).unwrap();
            prop_assert_eq!(&out[..], &data[..]);
        }
    }
}

#[cfg(test)]
mod sequence_tests {
    use super::*;

    #[test]
    fn compaction_keeps_context_takeover() {
        // Messages that repeat earlier ones compress to back-references into the history;
        // after each compaction the rebuilt compressor must still produce what the peer's
        // (never compacted) inflater decodes.
        for bits in [9u8, 12, 15] {
            let config = DeflateConfig::default();
            let mut compressor = Compressor::new(bits, &config).keep_history();
            let mut decompressor = Decompressor::new(bits);
            let base: Vec<u8> = (0..3000).map(|i| (i * 31 % 251) as u8).collect();
            let mut compacted_sizes = Vec::new();
            for round in 0..6 {
                let mut message = base.clone();
                message.extend_from_slice(format!("round {round}").as_bytes());
                let mut wire = BytesMut::new();
                compressor.compress(&message, &mut wire).unwrap();
                if round > 0 {
                    compacted_sizes.push(wire.len());
                }
                let mut out = BytesMut::new();
                decompressor.inflate(&wire, &mut out, 1 << 20).unwrap();
                decompressor.inflate(&TAIL, &mut out, 1 << 20).unwrap();
                assert_eq!(&out[..], &message[..], "bits {bits} round {round}");
                assert!(compressor.take_used());
                assert!(compressor.compact());
                assert!(!compressor.is_live());
            }
            // The repeats really were back-references (context taken over).
            if bits == 15 {
                assert!(
                    compacted_sizes.iter().all(|&n| n < 200),
                    "{compacted_sizes:?}"
                );
            }
        }
    }

    #[test]
    fn empty_then_short_messages_with_takeover() {
        for (bits, dbits) in [(9u8, 15u8), (15, 15), (9, 9), (12, 12), (12, 15), (10, 10)] {
            let mut c = Compressor::new(bits, &DeflateConfig::default());
            let mut d = Decompressor::new(dbits);
            for len in [0usize, 10, 5000, 0, 3] {
                let data: Vec<u8> = b"permessage-deflate round trip "
                    .iter()
                    .copied()
                    .cycle()
                    .take(len)
                    .collect();
                let mut wire = BytesMut::new();
                c.compress(&data, &mut wire).unwrap();
                let mut out = BytesMut::new();
                d.inflate(&wire, &mut out, 1 << 20).unwrap_or_else(|e| {
                    panic!("bits {bits}/{dbits} len {len} wire {:?}: {e:?}", &wire[..])
                });
                d.inflate(&TAIL, &mut out, 1 << 20)
                    .unwrap_or_else(|e| panic!("tail bits {bits} len {len}: {e:?}"));
                assert_eq!(&out[..], &data[..], "bits {bits} len {len}");
            }
        }
    }
}

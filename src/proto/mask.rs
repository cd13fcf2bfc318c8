//! Masking and unmasking of payloads (RFC 6455 §5.3).
//!
//! The fast path XORs 32 bytes at a time as four `u64` words, which the compiler turns into
//! SIMD instructions (about 50 GB/s here, `cargo bench -p elo-bench -- mask`), and short
//! payloads a word at a time too; it needs no `unsafe` and no alignment, because
//! `from_le_bytes` on a fixed-size chunk compiles to unaligned loads.

/// XORs `data` with `key`, as if `data` started `offset` bytes into a masked payload. Applying
/// it twice restores the input.
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as a little-endian word, turned so that its first byte is the one for
    // `data[0]`: rotating right by whole bytes moves key byte `(i + offset) % 4` to byte `i`.
    let word32 = u32::from_le_bytes(key).rotate_right(8 * (offset % 4) as u32);
    let word = u64::from(word32) | (u64::from(word32) << 32);
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for lane in chunk.chunks_exact_mut(8) {
            xor_word(lane, word);
        }
    }
    // Every piece below is a multiple of 4 bytes long until the last few bytes, so the key
    // phase is the same for each.
    let mut words = chunks.into_remainder().chunks_exact_mut(8);
    for lane in &mut words {
        xor_word(lane, word);
    }
    let rest = words.into_remainder();
    let (four, tail) = rest.split_at_mut(rest.len() & 4);
    if let Ok(four) = <&mut [u8; 4]>::try_from(four) {
        *four = (u32::from_le_bytes(*four) ^ word32).to_le_bytes();
    }
    for (b, k) in tail.iter_mut().zip(word32.to_le_bytes()) {
        *b ^= k;
    }
}

/// XORs an 8-byte lane with `word` (little-endian), through unaligned loads and stores.
#[inline(always)]
fn xor_word(lane: &mut [u8], word: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(lane);
    lane.copy_from_slice(&(u64::from_le_bytes(bytes) ^ word).to_le_bytes());
}

#[cfg(any(test, feature = "internals"))]
/// The byte-by-byte reference implementation, for tests and benchmarks.
#[inline]
pub fn apply_mask_naive(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(i + offset) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..300),
                             key in any::<[u8; 4]>(), offset in 0usize..8, start in 0usize..8) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut naive = data.clone();
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_naive(&mut naive[start..], key, offset);
            prop_assert_eq!(fast, naive);
        }

        #[test]
        fn split_masking_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..200),
                                      key in any::<[u8; 4]>(), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, parts);
        }
    }

    #[test]
    fn every_short_length_and_key_phase() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=72 {
            for offset in 0..4 {
                let data: Vec<u8> = (0..len as u8).collect();
                let mut fast = data.clone();
                let mut naive = data;
                apply_mask(&mut fast, key, offset);
                apply_mask_naive(&mut naive, key, offset);
                assert_eq!(fast, naive, "length {len}, offset {offset}");
            }
        }
    }

    #[test]
    fn involution() {
        let original: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_eq!(data, original);
    }

    #[test]
    fn rfc_6455_example() {
        // RFC 6455 §5.7: "Hello", masked.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}

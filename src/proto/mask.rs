//! Masking and unmasking of payloads (RFC 6455 §5.3).
//!
//! The fast path XORs 32 bytes at a time as four `u64` words, which the compiler turns into
//! SIMD instructions; it needs no `unsafe` and no alignment, because `from_ne_bytes` on a
//! fixed-size chunk compiles to unaligned loads.

/// XORs `data` with `key`, as if `data` started `offset` bytes into a masked payload. Applying
/// it twice restores the input.
///
/// ```
/// use enim_labore_occaecati::proto::mask::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// ```
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let shift = offset % 4;
    let key = [
        key[shift],
        key[(shift + 1) % 4],
        key[(shift + 2) % 4],
        key[(shift + 3) % 4],
    ];
    if data.len() < 32 {
        apply_mask_naive(data, key, 0);
        return;
    }
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for lane in chunk.chunks_exact_mut(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(lane);
            lane.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    // Each chunk is a multiple of 4 bytes long, so the key phase is unchanged for the rest.
    apply_mask_naive(chunks.into_remainder(), key, 0);
}

/// The byte-by-byte reference implementation, used for short inputs and in tests.
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
    fn involution() {
        let original: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 0);
        assert_eq!(data, original);
    }
}

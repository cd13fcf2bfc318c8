//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Autobahn's cases 6.x require failing "fast": an invalid sequence must be reported with the
//! fragment (or even the part of a frame) in which it arrives, not when the message ends. The
//! validator keeps at most three bytes of an unfinished code point between calls.

/// Validates a byte stream as UTF-8, piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The input is not UTF-8 (or ended inside a code point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

fn sequence_width(first: u8) -> usize {
    match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Feeds the next piece; `last` says the message ends with it. Fails as soon as the bytes
    /// seen so far cannot be the start of valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8], last: bool) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = self.partial_len as usize;
            let width = sequence_width(self.partial[0]);
            let take = (width - have).min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            let have = have + take;
            self.partial_len = have as u8;
            match simdutf8::compat::from_utf8(&self.partial[..have]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // Still an unfinished but valid prefix: only possible if `data` ran out.
                    return if last { Err(InvalidUtf8) } else { Ok(()) };
                }
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                if last {
                    return Err(InvalidUtf8);
                }
                let rest = &data[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the bytes fed so far end on a code point boundary.
    #[cfg(test)]
    fn is_complete(&self) -> bool {
        self.partial_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunked(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            v.feed(&data[start..cut], false)?;
            start = cut;
        }
        v.feed(&data[start..], true)
    }

    proptest! {
        #[test]
        fn incremental_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..64),
                                       cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(chunked(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn valid_strings_in_pieces(s in "\\PC{0,40}", cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            prop_assert!(chunked(s.as_bytes(), &cuts).is_ok());
        }
    }

    #[test]
    fn fails_fast_on_the_first_bad_piece() {
        // κόσμε followed by an invalid code point (above U+10FFFF) split across pieces.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes(), false).unwrap();
        assert!(v.feed(&[0xf4], false).is_ok());
        assert_eq!(v.feed(&[0x90], false), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_at_end() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82], false).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.feed(&[], true), Err(InvalidUtf8));
    }
}

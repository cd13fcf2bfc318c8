//! Frame header decoding and encoding (RFC 6455 §5.2).
//!
//! Decoding is stateless over the bytes buffered so far: [`FrameHeader::decode`] answers
//! `Ok(None)` until the whole header (2 to 14 bytes) is there, so feeding a stream whole, byte by
//! byte or in any split gives the same frames. Errors that the first bytes already show (a
//! reserved opcode, a fragmented or over-long control frame) are reported as soon as those bytes
//! arrive.

use bytes::{BufMut, BytesMut};

use crate::proto::error::ProtocolError;

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or the protocol error for a reserved one.
    pub fn from_u8(value: u8) -> Result<OpCode, ProtocolError> {
        match value {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xa => Ok(OpCode::Pong),
            other => Err(ProtocolError::InvalidOpcode(other)),
        }
    }

    /// The 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The largest header: 2 bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate).
    pub rsv1: bool,
    /// RSV2.
    pub rsv2: bool,
    /// RSV3.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`: `Ok(Some((header, header_len)))` when it is
    /// complete, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// A reserved opcode, a control frame with FIN clear or a payload over 125 bytes, or a 64-bit
    /// length with its most significant bit set.
    // Inlined into the receive loop, once per frame: whether the compiler does so on its own
    // changes with unrelated code (seen: 56 instructions a message when it didn't).
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0f)?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() && len7 > 125 {
            return Err(ProtocolError::ControlFrameTooLong);
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut len = [0u8; 8];
                len.copy_from_slice(b);
                let len = u64::from_be_bytes(len);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidPayloadLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let Some(b) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// The encoded length of this header.
    #[cfg(test)]
    fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the encoded header to `out`. Each length form is appended as a fixed-size
    /// piece, which compiles to a few stores rather than a copy of a variable length.
    #[inline]
    pub fn encode(&self, out: &mut BytesMut) {
        let b0 = self.first_byte();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match self.payload_len {
            len @ 0..=125 => out.put_slice(&[b0, mask_bit | len as u8]),
            len @ 126..=0xffff => {
                let [hi, lo] = (len as u16).to_be_bytes();
                out.put_slice(&[b0, mask_bit | 126, hi, lo]);
            }
            len => {
                let mut head = [0u8; 10];
                head[0] = b0;
                head[1] = mask_bit | 127;
                head[2..].copy_from_slice(&len.to_be_bytes());
                out.put_slice(&head);
            }
        }
        if let Some(key) = self.mask {
            out.put_slice(&key);
        }
    }

    #[inline]
    fn first_byte(&self) -> u8 {
        (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.as_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7: unmasked "Hello", masked "Hello", 256-byte and 64 KiB binary frames.
        let (h, n) = FrameHeader::decode(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert_eq!((h, n), (header(OpCode::Text, true, None, 5), 2));
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(
            (h, n),
            (
                header(OpCode::Text, true, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
                6
            )
        );
        let (h, n) = FrameHeader::decode(&[0x82, 0x7e, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h, n), (header(OpCode::Binary, true, None, 256), 4));
        let (h, n) = FrameHeader::decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h, n), (header(OpCode::Binary, true, None, 65536), 10));
        // First fragment of "Hel" and a ping.
        let (h, _) = FrameHeader::decode(&[0x01, 0x03]).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Text, false, None, 3));
        let (h, _) = FrameHeader::decode(&[0x89, 0x05]).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Ping, true, None, 5));
    }

    #[test]
    fn incomplete_headers_need_more() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(FrameHeader::decode(&full[..n]), Ok(None), "prefix {n}");
        }
        assert!(FrameHeader::decode(&full).unwrap().is_some());
    }

    #[test]
    fn errors_show_early() {
        assert_eq!(
            FrameHeader::decode(&[0x83]),
            Err(ProtocolError::InvalidOpcode(3))
        );
        assert_eq!(
            FrameHeader::decode(&[0x0b]),
            Err(ProtocolError::InvalidOpcode(11))
        );
        assert_eq!(
            FrameHeader::decode(&[0x09]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::decode(&[0x89, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    #[test]
    fn rsv_bits_decode() {
        let (h, _) = FrameHeader::decode(&[0xf2, 0]).unwrap().unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3);
    }

    fn arb_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(opcode in arb_opcode(), fin in any::<bool>(), rsv in 0u8..8,
                      mask in any::<Option<[u8; 4]>>(),
                      len in prop_oneof![0u64..=125, 126u64..=0xffff, 0x10000u64..(1 << 63)]) {
            let fin = fin || opcode.is_control();
            let len = if opcode.is_control() { len % 126 } else { len };
            let h = FrameHeader { fin, rsv1: rsv & 4 != 0, rsv2: rsv & 2 != 0, rsv3: rsv & 1 != 0,
                                  opcode, mask, payload_len: len };
            let mut out = BytesMut::new();
            h.encode(&mut out);
            prop_assert_eq!(out.len(), h.encoded_len());
            prop_assert_eq!(FrameHeader::decode(&out), Ok(Some((h, out.len()))));
        }
    }
}

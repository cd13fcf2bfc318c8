//! The load generator's frames: requests masked with a fixed key, and an incremental parser
//! that counts the echoed messages without copying their payload.

use std::io;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// A masked binary frame carrying `payload`, as a client sends it.
pub fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x82);
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= 0xffff {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Deterministic payload bytes (xorshift), not all zeros so a broken unmask shows.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The length of a frame header whose second byte is `b1`.
pub fn header_len(b1: u8) -> usize {
    2 + match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    } + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Incremental parser of the server's (unmasked) frames: counts complete data messages of the
/// expected length and skips their payload bytes without copying them.
pub struct ReplyParser {
    expected: u64,
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes of the current frame still to skip.
    remaining: u64,
    /// Opcode and FIN of the current frame.
    opcode: u8,
    fin: bool,
    /// Length of the data message assembled so far.
    message_len: u64,
}

impl ReplyParser {
    /// A parser that counts data messages of any length (compressed ones, for instance).
    pub fn any() -> ReplyParser {
        let mut parser = ReplyParser::new(0);
        parser.expected = u64::MAX;
        parser
    }

    pub fn new(expected: usize) -> ReplyParser {
        ReplyParser {
            expected: expected as u64,
            hdr: [0; 14],
            hdr_len: 0,
            remaining: 0,
            opcode: 0,
            fin: false,
            message_len: 0,
        }
    }

    /// Consumes `data`; returns how many complete messages it finished.
    pub fn feed(&mut self, mut data: &[u8]) -> io::Result<u64> {
        let mut done = 0;
        loop {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining > 0 {
                    return Ok(done);
                }
                done += self.end_of_frame()?;
                continue;
            }
            if data.is_empty() {
                return Ok(done);
            }
            let (b0, b1, len);
            if self.hdr_len == 0 && data.len() >= 2 && data.len() >= header_len(data[1]) {
                let n = header_len(data[1]);
                (b0, b1, len) = parse_header(&data[..n]);
                data = &data[n..];
            } else {
                while self.hdr_len < 2 && !data.is_empty() {
                    self.hdr[self.hdr_len] = data[0];
                    self.hdr_len += 1;
                    data = &data[1..];
                }
                if self.hdr_len < 2 {
                    return Ok(done);
                }
                let need = header_len(self.hdr[1]);
                while self.hdr_len < need && !data.is_empty() {
                    self.hdr[self.hdr_len] = data[0];
                    self.hdr_len += 1;
                    data = &data[1..];
                }
                if self.hdr_len < need {
                    return Ok(done);
                }
                (b0, b1, len) = parse_header(&self.hdr[..need]);
                self.hdr_len = 0;
            }
            if b1 & 0x80 != 0 {
                return Err(err("server sent a masked frame"));
            }
            self.fin = b0 & 0x80 != 0;
            self.opcode = b0 & 0x0f;
            if self.opcode == 0x8 {
                return Err(err("server sent a close frame"));
            }
            if self.opcode < 0x8 {
                self.message_len += len;
            }
            self.remaining = len;
            if len == 0 {
                done += self.end_of_frame()?;
            }
        }
    }

    fn end_of_frame(&mut self) -> io::Result<u64> {
        if self.opcode >= 0x8 || !self.fin {
            return Ok(0); // ping/pong, or a fragment of a longer message
        }
        let len = std::mem::take(&mut self.message_len);
        if len != self.expected && self.expected != u64::MAX {
            return Err(err(format!(
                "echo of {} bytes, expected {}",
                len, self.expected
            )));
        }
        Ok(1)
    }
}

/// First byte, second byte and payload length of a whole frame header.
pub fn parse_header(h: &[u8]) -> (u8, u8, u64) {
    let len = match h[1] & 0x7f {
        126 => u16::from_be_bytes([h[2], h[3]]) as u64,
        127 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
        n => n as u64,
    };
    (h[0], h[1], len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(payload_len: usize, fin: bool, opcode: u8) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if payload_len < 126 {
            f.push(payload_len as u8);
        } else if payload_len <= 0xffff {
            f.push(126);
            f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn parser_counts_across_any_split() {
        for len in [0usize, 16, 125, 126, 1024, 70_000] {
            let mut stream = Vec::new();
            for _ in 0..3 {
                stream.extend(server_frame(len, true, 2));
            }
            stream.extend(server_frame(0, true, 0x9)); // a ping in between
            stream.extend(server_frame(len / 2, false, 2));
            stream.extend(server_frame(len - len / 2, true, 0));
            for chunk in [1usize, 2, 3, 7, 64, 100_000] {
                let mut p = ReplyParser::new(len);
                let total: u64 = stream.chunks(chunk).map(|c| p.feed(c).unwrap()).sum();
                assert_eq!(total, 4, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn parser_rejects_wrong_length_and_close() {
        assert!(ReplyParser::new(5).feed(&server_frame(4, true, 2)).is_err());
        assert!(ReplyParser::new(5).feed(&server_frame(2, true, 8)).is_err());
    }
}

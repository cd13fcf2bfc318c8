//! Receiving: frames parsed out of the read buffer (fed in arbitrary pieces) and assembled
//! into messages, with every check of RFC 6455 and RFC 7692 and every limit, before anything a
//! peer merely declared is buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::{Connection, DataKind, Role};
use crate::deflate::codec::{Decompressor, InflateError, TAIL};
use crate::proto::close::CloseFrame;
use crate::proto::error::{Failure, ProtocolError};
use crate::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::proto::mask::apply_mask;
use crate::proto::message::{Fragment, Message, Utf8Bytes};
use crate::proto::utf8::Utf8Validator;

pub(super) struct IncomingFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes at the front of the read buffer already unmasked (and UTF-8 checked).
    processed: usize,
}

pub(super) struct IncomingMessage {
    kind: DataKind,
    fragments: usize,
    /// Wire bytes so far (compressed bytes for a compressed message); not a limit when
    /// fragments are handed out as they arrive (nothing is held).
    size: usize,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    compressed: bool,
    /// Fragments received so far (inflated, for a compressed message); empty while an
    /// uncompressed message is a single frame.
    buf: BytesMut,
}

impl Connection {
    /// The buffer incoming bytes go into. Append to it (or read into its spare capacity), then
    /// call [`next_message`](Connection::next_message).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.read_buf
    }

    /// Whether received bytes wait in the read buffer. Without any,
    /// [`next_message`](Connection::next_message) has nothing to return: every frame is handed
    /// out by the call that completes it.
    pub fn has_input(&self) -> bool {
        !self.read_buf.is_empty()
    }

    /// Appends received bytes (a convenience over [`read_buffer`](Connection::read_buffer)).
    pub fn receive_data(&mut self, data: &[u8]) {
        self.read_buf.extend_from_slice(data);
    }

    /// How many more bytes it takes to make progress: the rest of the current frame, or of a
    /// header. The I/O layer reserves about this much, but grows a buffer only with what it
    /// holds (at most fourfold plus one large step, or double its capacity, or the size of the
    /// peer's [last frame](Connection::last_frame_len); at least a small chunk), so a declared
    /// length alone never allocates.
    pub fn bytes_wanted(&self) -> usize {
        match &self.frame {
            Some(frame) => frame.len.saturating_sub(self.read_buf.len()).max(1),
            None => MAX_HEADER_LEN.saturating_sub(self.read_buf.len()).max(1),
        }
    }

    /// Whether the next bytes start a frame: no frame is partly received.
    pub fn awaiting_frame_header(&self) -> bool {
        self.frame.is_none()
    }

    /// The payload length of the last frame received whole: bytes the peer has actually
    /// delivered, so the I/O layer may grant a frame of up to that size its whole buffer at
    /// once (a frame's declared length alone never earns memory).
    pub fn last_frame_len(&self) -> usize {
        self.last_frame_len
    }

    /// Parses what has been received into the next message, or `Ok(None)` when more bytes are
    /// needed (or nothing more will be read).
    ///
    /// Pings get a pong queued (unless `auto_pong` is off), a close frame gets its echo queued.
    /// Control messages are returned too; the I/O layer decides whether the application sees
    /// them.
    ///
    /// # Errors
    /// A protocol violation. The close frame for it has been queued, and the connection is
    /// closed for reading.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if self.is_read_closed() {
            return Ok(None);
        }
        match self.parse() {
            Ok(message) => Ok(message),
            Err(error) => {
                self.fail(error);
                Err(error)
            }
        }
    }

    fn parse(&mut self) -> Result<Option<Message>, ProtocolError> {
        loop {
            let (header, len) = if let Some(mut frame) = self.frame.take() {
                if !self.unmask_received(&mut frame)? {
                    self.frame = Some(frame);
                    return Ok(None);
                }
                (frame.header, frame.len)
            } else {
                let Some((header, header_len)) = FrameHeader::decode(&self.read_buf)? else {
                    return Ok(None);
                };
                if self.is_whole_message(&header, header_len) {
                    return self.take_whole_message(&header, header_len).map(Some);
                }
                let len = self.accept_header(&header)?;
                self.read_buf.advance(header_len);
                let mut frame = IncomingFrame {
                    header,
                    len,
                    processed: 0,
                };
                if !self.unmask_received(&mut frame)? {
                    // Boxed only while partly received: a connection holds it for its whole
                    // life, and most frames arrive whole.
                    self.frame = Some(Box::new(frame));
                    return Ok(None);
                }
                (header, len)
            };
            self.last_frame_len = len;
            // The payload shares the read buffer's allocation; once the application drops it,
            // the next read reuses the allocation (`BytesMut::reserve` reclaims it).
            let payload = self.read_buf.split_to(len).freeze();
            if let Some(message) = self.complete_frame(header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Unmasks (and checks as UTF-8) the payload bytes of `frame` received since the last
    /// call. Returns whether the whole payload is in the read buffer.
    fn unmask_received(&mut self, frame: &mut IncomingFrame) -> Result<bool, ProtocolError> {
        let available = self.read_buf.len().min(frame.len);
        if available > frame.processed {
            let fresh = &mut self.read_buf[frame.processed..available];
            if let Some(key) = frame.header.mask {
                apply_mask(fresh, key, frame.processed);
            }
            let is_text = match frame.header.opcode {
                OpCode::Text | OpCode::Continuation => matches!(
                    &self.message,
                    Some(m) if m.kind == DataKind::Text && !m.compressed
                ),
                _ => false,
            };
            if is_text && self.config.validate_utf8 {
                let last = frame.header.fin && available == frame.len;
                self.utf8
                    .feed(fresh, last)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            frame.processed = available;
        }
        Ok(available == frame.len)
    }

    /// Whether the frame just decoded is a whole, valid data message already in the buffer:
    /// unfragmented, uncompressed, masked as the role requires, within the limits. Most
    /// messages are, and [`take_whole_message`](Connection::take_whole_message) hands them out
    /// without the bookkeeping of frames and fragments. Anything else takes the general path,
    /// which also reports every violation.
    fn is_whole_message(&self, header: &FrameHeader, header_len: usize) -> bool {
        let len = header.payload_len;
        self.message.is_none()
            && !self.config.deliver_fragments
            && header.fin
            && !(header.rsv1 || header.rsv2 || header.rsv3)
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && header.mask.is_some() == (self.role == Role::Server)
            && len <= self.config.max_frame_size.min(self.config.max_message_size) as u64
            && len <= (self.read_buf.len() - header_len) as u64
    }

    /// Hands out the whole message [`is_whole_message`](Connection::is_whole_message)
    /// accepted: unmasked in place and, if text, checked as UTF-8 in one pass.
    fn take_whole_message(
        &mut self,
        header: &FrameHeader,
        header_len: usize,
    ) -> Result<Message, ProtocolError> {
        self.read_buf.advance(header_len);
        self.last_frame_len = header.payload_len as usize;
        let mut payload = self.read_buf.split_to(self.last_frame_len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        let kind = if header.opcode == OpCode::Binary {
            DataKind::Binary
        } else {
            DataKind::Text
        };
        self.data_message(kind, payload.freeze())
    }

    /// Checks a header against the protocol and the limits, and starts or continues the
    /// message it belongs to. Returns the payload length.
    fn accept_header(&mut self, header: &FrameHeader) -> Result<usize, ProtocolError> {
        // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them. RFC 7692 §6:
        // permessage-deflate defines RSV1, on the first frame of a data message only.
        let compressed_start = header.rsv1
            && self.deflate.is_some()
            && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if (header.rsv1 && !compressed_start) || header.rsv2 || header.rsv3 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        // RFC 6455 §5.1: a server MUST close on an unmasked frame, a client on a masked one.
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.opcode.is_control() {
            // Length ≤ 125 and FIN were checked by the decoder.
            return Ok(header.payload_len as usize);
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig);
        }
        let len = header.payload_len as usize;
        match header.opcode {
            OpCode::Continuation => {
                let message = self
                    .message
                    .as_mut()
                    .ok_or(ProtocolError::UnexpectedContinuation)?;
                message.fragments += 1;
                if message.fragments > self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments);
                }
                message.size = message.size.saturating_add(len);
                if message.size > self.config.max_message_size && !self.config.deliver_fragments {
                    return Err(ProtocolError::MessageTooBig);
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if len > self.config.max_message_size && !self.config.deliver_fragments {
                    return Err(ProtocolError::MessageTooBig);
                }
                let kind = if header.opcode == OpCode::Text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                self.utf8 = Utf8Validator::new();
                // Boxed for the same reason as a partial frame: most messages are one frame.
                self.message = Some(Box::new(IncomingMessage {
                    kind,
                    fragments: 1,
                    size: len,
                    compressed: compressed_start,
                    buf: BytesMut::new(),
                }));
            }
            _ => unreachable!("control opcodes returned above"),
        }
        Ok(len)
    }

    fn complete_frame(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
    ) -> Result<Option<Message>, ProtocolError> {
        match header.opcode {
            OpCode::Ping => {
                if self.config.auto_pong && !self.close_sent {
                    if self.buffered_amount() < self.config.max_write_buffer {
                        self.write_frame(OpCode::Pong, true, &payload);
                    } else {
                        // The peer isn't reading: owe it only the latest pong, which RFC 6455
                        // §5.5.3 allows, so answers can't pile up.
                        self.pending_pong = Some(Box::new(payload.clone()));
                    }
                }
                Ok(Some(Message::Ping(payload)))
            }
            OpCode::Pong => {
                if self.heartbeat.is_some() {
                    self.on_pong(&payload);
                }
                Ok(Some(Message::Pong(payload)))
            }
            OpCode::Close => {
                let frame = CloseFrame::parse(&payload)?;
                self.close_received = true;
                self.message = None;
                if !self.close_sent {
                    // RFC 6455 §5.5.1: answer with a close frame, echoing the status code
                    // (and, as the seed library does, the reason).
                    self.queue_close(frame.as_ref());
                }
                Ok(Some(Message::Close(frame)))
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if matches!(&self.message, Some(m) if m.compressed) {
                    return self.complete_compressed_frame(header.fin, &payload);
                }
                if self.config.deliver_fragments {
                    // Checked as UTF-8 as it arrived (in `parse`), when validation is on.
                    let Some(message) = self.message.as_ref() else {
                        return Err(ProtocolError::UnexpectedContinuation);
                    };
                    let kind = message.kind;
                    if header.fin {
                        self.message = None;
                    }
                    return Ok(Some(Message::Fragment(Fragment {
                        kind,
                        data: payload,
                        fin: header.fin,
                    })));
                }
                if !header.fin {
                    if let Some(message) = self.message.as_mut() {
                        message.buf.extend_from_slice(&payload);
                    }
                    return Ok(None);
                }
                let Some(mut message) = self.message.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                let data = if message.buf.is_empty() {
                    payload
                } else {
                    message.buf.extend_from_slice(&payload);
                    message.buf.freeze()
                };
                self.data_message(message.kind, data).map(Some)
            }
        }
    }

    /// Inflates one frame of a compressed message onto the message buffer, checking the
    /// inflated size against the message limit and text against UTF-8 as it grows.
    fn complete_compressed_frame(
        &mut self,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<Message>, ProtocolError> {
        let (Some(deflate), Some(message)) = (self.deflate.as_mut(), self.message.as_mut()) else {
            return Err(ProtocolError::ReservedBitsSet);
        };
        // Handing fragments out, each is inflated on its own, up to the frame limit; else the
        // message is, up to the message limit.
        let fragments = self.config.deliver_fragments;
        let limit = if fragments {
            self.config.max_frame_size
        } else {
            self.config.max_message_size
        };
        let window = deflate.params.remote_max_window_bits;
        let decompressor = deflate
            .decompressor
            .get_or_insert_with(|| Decompressor::new(window));
        let start = message.buf.len();
        let mut result = decompressor.inflate(payload, &mut message.buf, limit);
        // A message whose compressed payload is empty carries no deflate data at all (RFC 7692
        // §7.2.3.6 asks senders for one 0x00 byte, but some send nothing): appending the tail
        // to nothing would start a bogus stored block and corrupt the context.
        if fin && result.is_ok() && message.size > 0 {
            result = decompressor.inflate(&TAIL, &mut message.buf, limit);
        }
        result.map_err(|e| match e {
            InflateError::TooBig if fragments => ProtocolError::FrameTooBig,
            InflateError::TooBig => ProtocolError::MessageTooBig,
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
        })?;
        if message.kind == DataKind::Text && self.config.validate_utf8 {
            self.utf8
                .feed(&message.buf[start..], fin)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if fragments {
            let fragment = Fragment {
                kind: message.kind,
                data: message.buf.split().freeze(),
                fin,
            };
            if fin {
                self.message = None;
                self.reset_decompressor();
            }
            return Ok(Some(Message::Fragment(fragment)));
        }
        if !fin {
            return Ok(None);
        }
        self.reset_decompressor();
        let Some(message) = self.message.take() else {
            return Ok(None);
        };
        self.data_message(message.kind, message.buf.freeze())
            .map(Some)
    }

    /// A whole data message. Text is checked as `Utf8Bytes` are made (once more, after the
    /// check as it arrived, which fails fast): `Utf8Bytes` holds the proof, so reading it costs
    /// nothing. With validation off, text is not checked at all: handed out as the bytes of a
    /// fragment that ends its message, typed as what it is, unchecked.
    fn data_message(&self, kind: DataKind, data: Bytes) -> Result<Message, ProtocolError> {
        if kind == DataKind::Binary {
            return Ok(Message::Binary(data));
        }
        if !self.config.validate_utf8 {
            return Ok(Message::Fragment(Fragment {
                kind: DataKind::Text,
                data,
                fin: true,
            }));
        }
        let text = Utf8Bytes::try_from(data).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Message::Text(text))
    }

    /// A new context for the next message, when the peer compresses without context takeover.
    fn reset_decompressor(&mut self) {
        let Some(deflate) = self.deflate.as_mut() else {
            return;
        };
        if deflate.params.remote_no_context_takeover {
            if deflate.config.release_idle_state {
                deflate.decompressor = None;
            } else if let Some(d) = deflate.decompressor.as_mut() {
                d.reset();
            }
        }
    }

    fn fail(&mut self, error: ProtocolError) {
        self.failure = Some(Failure::Protocol(error));
        self.frame = None;
        self.message = None;
        self.read_buf = BytesMut::new();
        self.pending_pong = None;
        if !self.close_sent {
            self.queue_close(Some(&CloseFrame::new(error.close_code(), "")));
        }
    }
}

//! The sans-I/O connection: bytes in, messages out; messages in, bytes out.
//!
//! [`Connection`] knows nothing of sockets or clocks. The I/O layer reads into
//! [`Connection::read_buffer`], calls [`Connection::next_message`] until it answers `Ok(None)`,
//! and writes what [`Connection::output_slices`] shows. The connection answers pings and close
//! frames itself and, when the peer breaks the protocol, queues the close frame with the right
//! code before reporting the error.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::deflate::codec::{Compressor, Decompressor, InflateError, TAIL};
use crate::deflate::{DeflateConfig, Negotiated};
use crate::error::ProtocolError;
use crate::message::{Message, Utf8Bytes};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::proto::mask::apply_mask;
use crate::proto::utf8::Utf8Validator;

/// Which end of the connection this is; it decides masking (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client masks what it sends and refuses masked frames.
    Client,
    /// The server refuses unmasked frames and masks nothing.
    Server,
}

/// Where the close handshake stands (RFC 6455 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// One side has sent a close frame; the other's is awaited.
    Closing,
    /// Both close frames were exchanged, or the connection failed.
    Closed,
}

/// The kind of a data message, for fragmented sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// Text (must be UTF-8 once reassembled).
    Text,
    /// Binary.
    Binary,
}

/// Payloads at least this long are queued as their own buffer and written with a vectored
/// write instead of being copied behind their header (server role; a client masks into its own
/// buffer anyway).
const VECTORED_MIN: usize = 4096;

/// A generator of masking keys.
pub type MaskGenerator = Box<dyn FnMut() -> [u8; 4] + Send + Sync>;

struct IncomingFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes at the front of the read buffer already unmasked (and UTF-8 checked).
    processed: usize,
}

struct IncomingMessage {
    kind: DataKind,
    fragments: usize,
    /// Wire bytes so far (compressed bytes for a compressed message).
    size: usize,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    compressed: bool,
    /// Fragments received so far (inflated, for a compressed message); empty while an
    /// uncompressed message is a single frame.
    buf: BytesMut,
}

/// permessage-deflate state of a connection; compressors are created on first use.
struct DeflateState {
    params: Negotiated,
    config: DeflateConfig,
    compressor: Option<Compressor>,
    decompressor: Option<Decompressor>,
}

/// The protocol state machine of one connection.
pub struct Connection {
    role: Role,
    config: Config,
    read_buf: BytesMut,
    frame: Option<IncomingFrame>,
    message: Option<IncomingMessage>,
    utf8: Utf8Validator,
    staging: BytesMut,
    queue: VecDeque<Bytes>,
    queued_len: usize,
    pending_pong: Option<Bytes>,
    sending_fragmented: Option<DataKind>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
    mask_generator: Option<MaskGenerator>,
    /// Boxed: most connections have none, and a connection is in memory for all its life.
    deflate: Option<Box<DeflateState>>,
    /// Payload length of the last frame received whole.
    last_frame_len: usize,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("buffered_input", &self.read_buf.len())
            .field("buffered_output", &self.buffered_amount())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in the open state. A client draws masking keys from the operating
    /// system's random source through a ChaCha-based generator.
    pub fn new(role: Role, config: Config) -> Connection {
        let mask_generator: Option<MaskGenerator> = match role {
            Role::Client => {
                let mut rng = rand::rngs::StdRng::from_os_rng();
                Some(Box::new(move || rng.random()))
            }
            Role::Server => None,
        };
        Connection {
            role,
            config,
            read_buf: BytesMut::new(),
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            staging: BytesMut::new(),
            queue: VecDeque::new(),
            queued_len: 0,
            pending_pong: None,
            sending_fragmented: None,
            close_sent: false,
            close_received: false,
            failed: false,
            mask_generator,
            deflate: None,
            last_frame_len: 0,
        }
    }

    /// Enables permessage-deflate with negotiated parameters: RSV1 marks compressed messages,
    /// and data messages at least `config.threshold` bytes long are sent compressed.
    pub fn with_deflate(mut self, params: Negotiated, config: DeflateConfig) -> Connection {
        self.deflate = Some(Box::new(DeflateState {
            params,
            config,
            compressor: None,
            decompressor: None,
        }));
        self
    }

    /// How long an unused compressor may keep its full state
    /// ([`DeflateConfig::compact_idle_after`]), when this connection has one to compact.
    pub fn deflate_compaction_delay(&self) -> Option<std::time::Duration> {
        let deflate = self.deflate.as_ref()?;
        let live = deflate.compressor.as_ref().is_some_and(Compressor::is_live);
        if live && !deflate.params.local_no_context_takeover {
            deflate.config.compact_idle_after
        } else {
            None
        }
    }

    /// Compacts the compressor if it was not used since the previous call; answers whether it
    /// is compacted now (`false`: it was busy, ask again later).
    pub fn compact_idle_deflate(&mut self) -> bool {
        let Some(compressor) = self.deflate.as_mut().and_then(|d| d.compressor.as_mut()) else {
            return true;
        };
        if compressor.take_used() {
            return false;
        }
        compressor.compact();
        true
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub fn deflate_params(&self) -> Option<&Negotiated> {
        self.deflate.as_ref().map(|d| &d.params)
    }

    /// Replaces the source of masking keys (for tests that need fixed bytes).
    pub fn with_mask_generator(mut self, generator: MaskGenerator) -> Connection {
        self.mask_generator = Some(generator);
        self
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The options it was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        if self.failed || (self.close_sent && self.close_received) {
            State::Closed
        } else if self.close_sent || self.close_received {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether the peer's close frame has arrived.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether a close frame has been queued (by `send_close`, as an echo, or after an error).
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

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

    /// Whether no more messages will come: the peer's close frame arrived or the connection
    /// failed.
    pub fn is_read_closed(&self) -> bool {
        self.close_received || self.failed
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
            if self.frame.is_none() {
                let Some((header, header_len)) = FrameHeader::decode(&self.read_buf)? else {
                    return Ok(None);
                };
                if self.is_whole_message(&header, header_len) {
                    return self.take_whole_message(&header, header_len).map(Some);
                }
                let len = self.accept_header(&header)?;
                self.read_buf.advance(header_len);
                self.frame = Some(IncomingFrame {
                    header,
                    len,
                    processed: 0,
                });
            }
            let Some(frame) = self.frame.as_mut() else {
                continue;
            };
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
            if available < frame.len {
                return Ok(None);
            }
            let header = frame.header;
            let len = frame.len;
            self.frame = None;
            self.last_frame_len = len;
            // The payload shares the read buffer's allocation; once the application drops it,
            // the next read reuses the allocation (`BytesMut::reserve` reclaims it).
            let payload = self.read_buf.split_to(len).freeze();
            if let Some(message) = self.complete_frame(header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Whether the frame just decoded is a whole, valid data message already in the buffer:
    /// unfragmented, uncompressed, masked as the role requires, within the limits. Most
    /// messages are, and [`take_whole_message`](Connection::take_whole_message) hands them out
    /// without the bookkeeping of frames and fragments. Anything else takes the general path,
    /// which also reports every violation.
    fn is_whole_message(&self, header: &FrameHeader, header_len: usize) -> bool {
        let len = header.payload_len;
        self.message.is_none()
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
        if header.opcode == OpCode::Binary {
            return Ok(Message::Binary(payload.freeze()));
        }
        // With validation off, text is still checked once whole, as on the general path.
        simdutf8::basic::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Message::Text(Utf8Bytes::from_validated(payload.freeze())))
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
                if message.size > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig);
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig);
                }
                let kind = if header.opcode == OpCode::Text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                self.utf8 = Utf8Validator::new();
                self.message = Some(IncomingMessage {
                    kind,
                    fragments: 1,
                    size: len,
                    compressed: compressed_start,
                    buf: BytesMut::new(),
                });
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
                        self.pending_pong = Some(payload.clone());
                    }
                }
                Ok(Some(Message::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Message::Pong(payload))),
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
                Ok(Some(match message.kind {
                    DataKind::Binary => Message::Binary(data),
                    DataKind::Text if self.config.validate_utf8 => {
                        Message::Text(Utf8Bytes::from_validated(data))
                    }
                    DataKind::Text => Message::Text(
                        Utf8Bytes::try_from(data).map_err(|_| ProtocolError::InvalidUtf8)?,
                    ),
                }))
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
        let limit = self.config.max_message_size;
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
            InflateError::TooBig => ProtocolError::MessageTooBig,
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
        })?;
        if message.kind == DataKind::Text && self.config.validate_utf8 {
            self.utf8
                .feed(&message.buf[start..], fin)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if !fin {
            return Ok(None);
        }
        if deflate.params.remote_no_context_takeover {
            if deflate.config.release_idle_state {
                deflate.decompressor = None;
            } else if let Some(d) = deflate.decompressor.as_mut() {
                d.reset();
            }
        }
        let Some(message) = self.message.take() else {
            return Ok(None);
        };
        let data = message.buf.freeze();
        Ok(Some(match message.kind {
            DataKind::Binary => Message::Binary(data),
            DataKind::Text if self.config.validate_utf8 => {
                Message::Text(Utf8Bytes::from_validated(data))
            }
            DataKind::Text => {
                Message::Text(Utf8Bytes::try_from(data).map_err(|_| ProtocolError::InvalidUtf8)?)
            }
        }))
    }

    fn fail(&mut self, error: ProtocolError) {
        self.failed = true;
        self.frame = None;
        self.message = None;
        self.read_buf = BytesMut::new();
        self.pending_pong = None;
        if !self.close_sent {
            self.queue_close(Some(&CloseFrame::new(error.close_code(), "")));
        }
    }

    /// Queues a whole message. Control messages (ping, pong, close) are checked: payloads of at
    /// most 125 bytes, a sendable close code.
    ///
    /// # Errors
    /// `Err(reason)` when the message can't be sent: the connection is closing, a fragmented
    /// message is in progress (data messages only), or the control payload is invalid.
    pub fn send(&mut self, message: &Message) -> Result<(), &'static str> {
        self.send_with_compression(message, None)
    }

    /// Queues a whole message, choosing compression for a data message: `Some(true)` or
    /// `Some(false)` force it on or off (if permessage-deflate was negotiated), `None` applies
    /// the size threshold.
    ///
    /// # Errors
    /// As [`send`](Connection::send).
    pub fn send_with_compression(
        &mut self,
        message: &Message,
        compress: Option<bool>,
    ) -> Result<(), &'static str> {
        let (kind, payload) = match message {
            Message::Text(text) => (DataKind::Text, text.bytes_ref()),
            Message::Binary(data) => (DataKind::Binary, data),
            Message::Ping(data) => return self.send_control(OpCode::Ping, data),
            Message::Pong(data) => return self.send_control(OpCode::Pong, data),
            Message::Close(frame) => return self.send_close(frame.as_ref()),
        };
        if let Some(deflate) = self.deflate.as_ref() {
            let wanted = compress.unwrap_or(payload.len() >= deflate.config.threshold);
            if wanted && self.sending_fragmented.is_none() {
                return self.send_compressed(kind, payload);
            }
        }
        self.send_data(kind, payload, true)
    }

    /// Queues one frame of a data message: the first call names the kind; `fin` ends the
    /// message. Control messages may be sent between fragments.
    ///
    /// # Errors
    /// When the connection is closing or a message of the other kind is in progress.
    pub fn send_data(
        &mut self,
        kind: DataKind,
        payload: &Bytes,
        fin: bool,
    ) -> Result<(), &'static str> {
        if self.close_sent {
            return Err("close frame already sent");
        }
        let opcode = match self.sending_fragmented {
            None => match kind {
                DataKind::Text => OpCode::Text,
                DataKind::Binary => OpCode::Binary,
            },
            Some(current) if current == kind => OpCode::Continuation,
            Some(_) => return Err("another fragmented message is in progress"),
        };
        self.sending_fragmented = if fin { None } else { Some(kind) };
        self.write_frame(opcode, fin, payload);
        Ok(())
    }

    fn send_compressed(&mut self, kind: DataKind, payload: &Bytes) -> Result<(), &'static str> {
        if self.close_sent {
            return Err("close frame already sent");
        }
        let Some(deflate) = self.deflate.as_mut() else {
            return Err("permessage-deflate was not negotiated");
        };
        let window = deflate.params.local_max_window_bits;
        let config = &deflate.config;
        let takeover = !deflate.params.local_no_context_takeover;
        let compressor = deflate.compressor.get_or_insert_with(|| {
            let compressor = Compressor::new(window, config);
            if takeover && config.compact_idle_after.is_some() {
                compressor.keep_history()
            } else {
                compressor
            }
        });
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
        compressor
            .compress(payload, &mut out)
            .map_err(|_| "compression failed")?;
        if deflate.params.local_no_context_takeover {
            if deflate.config.release_idle_state {
                deflate.compressor = None;
            } else if let Some(c) = deflate.compressor.as_mut() {
                c.reset();
            }
        }
        let opcode = match kind {
            DataKind::Text => OpCode::Text,
            DataKind::Binary => OpCode::Binary,
        };
        self.write_frame_rsv1(opcode, true, true, &out.freeze());
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &Bytes) -> Result<(), &'static str> {
        if self.close_sent {
            return Err("close frame already sent");
        }
        if payload.len() > 125 {
            return Err("control frame payload longer than 125 bytes");
        }
        if opcode == OpCode::Pong {
            // An explicit pong answers whatever ping is outstanding.
            self.pending_pong = None;
        }
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Queues a close frame, starting the close handshake (RFC 6455 §7.1.2).
    ///
    /// # Errors
    /// When a close frame was already sent, or the code or reason may not be sent.
    pub fn send_close(&mut self, frame: Option<&CloseFrame>) -> Result<(), &'static str> {
        if self.close_sent {
            return Err("close frame already sent");
        }
        if let Some(frame) = frame {
            frame.validate_outgoing()?;
        }
        self.queue_close(frame);
        Ok(())
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = BytesMut::new();
        if let Some(frame) = frame {
            frame.encode(&mut payload);
        }
        self.pending_pong = None;
        self.write_frame(OpCode::Close, true, &payload.freeze());
        self.close_sent = true;
    }

    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &Bytes) {
        self.write_frame_rsv1(opcode, fin, false, payload);
    }

    fn write_frame_rsv1(&mut self, opcode: OpCode, fin: bool, rsv1: bool, payload: &Bytes) {
        let mask = self.mask_generator.as_mut().map(|generate| generate());
        let header = FrameHeader {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let copied = mask.is_some() || payload.len() < VECTORED_MIN;
        self.staging
            .reserve(MAX_HEADER_LEN + if copied { payload.len() } else { 0 });
        header.encode(&mut self.staging);
        match mask {
            Some(key) => {
                // Mask into our own buffer, never the caller's payload.
                let start = self.staging.len();
                self.staging.extend_from_slice(payload);
                apply_mask(&mut self.staging[start..], key, 0);
            }
            None if payload.len() >= VECTORED_MIN => {
                self.seal_staging();
                self.queued_len += payload.len();
                self.queue.push_back(payload.clone());
            }
            None => self.staging.extend_from_slice(payload),
        }
    }

    fn seal_staging(&mut self) {
        if !self.staging.is_empty() {
            let chunk = self.staging.split().freeze();
            self.queued_len += chunk.len();
            self.queue.push_back(chunk);
        }
    }

    /// Bytes waiting to be written (the seed's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.queued_len + self.staging.len()
    }

    /// Whether there is anything to write, including an owed pong.
    pub fn has_output(&self) -> bool {
        self.buffered_amount() > 0 || self.pending_pong.is_some()
    }

    /// All pending output when it is one contiguous buffer (no large payload is queued), so
    /// the I/O layer can write it without building a slice list; `None` otherwise (use
    /// [`output_slices`](Connection::output_slices)). An owed pong is queued first.
    pub fn contiguous_output(&mut self) -> Option<&[u8]> {
        if let Some(pong) = self.pending_pong.take() {
            self.write_frame(OpCode::Pong, true, &pong);
        }
        if self.queue.is_empty() {
            Some(&self.staging)
        } else {
            None
        }
    }

    /// Fills `dst` with the buffers to write next, in order, and returns how many it filled.
    /// An owed pong is queued first.
    pub fn output_slices<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        if let Some(pong) = self.pending_pong.take() {
            self.write_frame(OpCode::Pong, true, &pong);
        }
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.queue.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        // The staging buffer follows the queue; it is written in place, not sealed into a
        // shared buffer, so small frames cost no allocation.
        if n < dst.len() && n == self.queue.len() && !self.staging.is_empty() {
            dst[n] = IoSlice::new(&self.staging);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes of output as written.
    pub fn consume_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let len = front.len();
            if n >= len {
                n -= len;
                self.queued_len -= len;
                self.queue.pop_front();
            } else {
                front.advance(n);
                self.queued_len -= n;
                n = 0;
            }
        }
        if n >= self.staging.len() {
            // Written whole: clearing keeps the buffer's start where it is, whereas advancing
            // first would move it, and the next frame staged would pay for moving it back.
            self.staging.clear();
        } else if n > 0 {
            self.staging.advance(n);
        }
        if self.queue.is_empty() && self.staging.is_empty() && self.staging.capacity() > 64 << 10 {
            // Don't let one large burst pin a large staging buffer on an idle connection.
            self.staging = BytesMut::new();
        }
    }

    /// Takes all pending output as one contiguous buffer (convenient for tests and for
    /// transports without vectored writes).
    pub fn take_output(&mut self) -> BytesMut {
        {
            // Queues an owed pong.
            let mut slices = [IoSlice::new(&[])];
            self.output_slices(&mut slices);
        }
        self.seal_staging();
        let mut out = BytesMut::with_capacity(self.queued_len);
        for chunk in self.queue.drain(..) {
            out.extend_from_slice(&chunk);
        }
        self.queued_len = 0;
        out
    }

    /// The close code to report when the transport ends: `None` after a clean close handshake,
    /// 1006 otherwise.
    pub fn abnormal_close_code(&self) -> Option<CloseCode> {
        if self.close_received {
            None
        } else {
            Some(CloseCode::ABNORMAL)
        }
    }
}

#[cfg(test)]
mod tests;

//! Sending: messages and fragments framed (masked into our own buffer on a client, large
//! payloads queued without copying on a server, compressed when negotiated) onto the output.

use bytes::{Bytes, BytesMut};

use super::{Connection, DataKind, Role};
use crate::deflate::codec::Compressor;
use crate::proto::close::CloseFrame;
use crate::proto::error::SendError;
use crate::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::proto::mask::apply_mask;
use crate::proto::message::Message;
use crate::proto::prepared::{PreparedBatch, PreparedMessage};

/// Payloads at least this long are queued as their own buffer and written with a vectored
/// write instead of being copied behind their header (server role; a client masks into its own
/// buffer anyway).
const VECTORED_MIN: usize = 4096;

/// Frames made once for many connections at least this long are queued as the shared buffer
/// they are, not copied: ten thousand connections then hold one copy of a broadcast, not ten
/// thousand. Shorter ones cost less copied than as one more slice of a vectored write.
const SHARED_FRAME_MIN: usize = 512;

impl Connection {
    /// Queues a whole message. Control messages (ping, pong, close) are checked: payloads of at
    /// most 125 bytes, a sendable close code.
    ///
    /// # Errors
    /// [`SendError::Closed`] once a close frame was sent; for a control message, an invalid
    /// payload (over 125 bytes, a close code that may not be sent, a reason over 123 bytes).
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
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
    ) -> Result<(), SendError> {
        let (kind, payload) = match message {
            Message::Text(text) => (DataKind::Text, text.bytes_ref()),
            Message::Binary(data) => (DataKind::Binary, data),
            Message::Ping(data) => return self.send_control(OpCode::Ping, data),
            Message::Pong(data) => return self.send_control(OpCode::Pong, data),
            Message::Close(frame) => return self.send_close(frame.as_ref()),
            Message::Fragment(f) => {
                let compress = compress.unwrap_or(false);
                return self.send_data_with_compression(f.kind, &f.data, f.fin, compress);
            }
        };
        let compress = compress.unwrap_or_else(|| {
            let threshold = self.deflate.as_ref().map(|d| d.config.threshold);
            threshold.is_some_and(|t| payload.len() >= t)
        });
        self.send_data_with_compression(kind, payload, true, compress)
    }

    /// Queues one frame of a data message: the first call names the kind; `fin` ends the
    /// message. Control messages may be sent between fragments. The frames of a message whose
    /// first frame was compressed are compressed too.
    ///
    /// # Errors
    /// When the connection is closing or a message of the other kind is in progress.
    pub fn send_data(
        &mut self,
        kind: DataKind,
        payload: &Bytes,
        fin: bool,
    ) -> Result<(), SendError> {
        self.send_data_with_compression(kind, payload, fin, false)
    }

    /// [`send_data`](Connection::send_data), choosing compression with the first fragment:
    /// with `compress` (and permessage-deflate negotiated) the message's first frame carries
    /// RSV1 and every fragment is its part of one compressed stream (RFC 7692 §6.1); later
    /// fragments follow the first one's choice whatever `compress` says.
    ///
    /// # Errors
    /// As [`send_data`](Connection::send_data), and [`SendError::CompressionFailed`].
    pub fn send_data_with_compression(
        &mut self,
        kind: DataKind,
        payload: &Bytes,
        fin: bool,
        compress: bool,
    ) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let (opcode, compressed) = match self.sending {
            None => {
                let opcode = match kind {
                    DataKind::Text => OpCode::Text,
                    DataKind::Binary => OpCode::Binary,
                };
                (opcode, compress && self.deflate.is_some())
            }
            Some((current, compressed)) if current == kind => (OpCode::Continuation, compressed),
            Some(_) => return Err(SendError::FragmentKindMismatch),
        };
        if compressed {
            let compressed_payload = self.compress(payload, fin)?;
            // RSV1 on the first frame only (RFC 7692 §6.1).
            let first = opcode != OpCode::Continuation;
            self.write_frame_rsv1(opcode, fin, first, &compressed_payload);
        } else {
            self.write_frame(opcode, fin, payload);
        }
        self.sending = (!fin).then_some((kind, compressed));
        Ok(())
    }

    /// Queues a message framed once for many connections. A server queues the shared frame
    /// (with permessage-deflate and no context takeover on its side, the shared compressed
    /// one); a connection with context takeover, or a client, frames the payload itself.
    /// Compression follows the size threshold, as for [`send`](Connection::send).
    ///
    /// # Errors
    /// [`SendError::Closed`] once a close frame was sent;
    /// [`SendError::FragmentKindMismatch`] while a fragmented message is being sent (a whole
    /// message can't go between its frames).
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), SendError> {
        let Some(data) = message.data_parts() else {
            return match message.other() {
                Some(other) => self.send(other),
                None => Err(SendError::Closed),
            };
        };
        self.check_whole_message()?;
        let (kind, payload) = (data.kind(), data.payload());
        if self.takes_shared_frame(payload.len()) {
            self.queue_frame(data.frame());
            return Ok(());
        }
        // Compressed (at or over the threshold), or else masked by this client.
        if let Some(deflate) = self.deflate.as_ref() {
            if payload.len() >= deflate.config.threshold {
                if self.role == Role::Server && deflate.params.local_no_context_takeover {
                    let bits = deflate.params.local_max_window_bits;
                    if let Some(frame) = data.compressed_frame(bits, &deflate.config) {
                        self.queue_frame(frame);
                        return Ok(());
                    }
                }
                return self.send_data_with_compression(kind, payload, true, true);
            }
        }
        self.send_data_with_compression(kind, payload, true, false)
    }

    /// Whether a whole message may be queued now: not after a close frame, nor between the
    /// frames of a fragmented message.
    fn check_whole_message(&self) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if self.sending.is_some() {
            return Err(SendError::FragmentKindMismatch);
        }
        Ok(())
    }

    /// Whether a prepared message of `len` payload bytes goes out as its shared, uncompressed
    /// server frame: no mask of our own (a server) and under any compression threshold.
    fn takes_shared_frame(&self, len: usize) -> bool {
        self.mask_generator.is_none()
            && self
                .deflate
                .as_ref()
                .map_or(true, |d| len < d.config.threshold)
    }

    /// Queues a batch of prepared messages, in order: a server connection that would send
    /// each one's shared uncompressed frame takes the batch's frames at once; any other takes
    /// them one by one, as [`send_prepared`](Connection::send_prepared) does.
    pub(crate) fn send_prepared_batch(&mut self, batch: &PreparedBatch) -> Result<(), SendError> {
        if !self.takes_shared_frame(batch.longest()) {
            // As many `send_prepared`s: one that fails (a compression error) leaves the
            // others queued.
            let mut result = Ok(());
            for message in batch.messages() {
                let sent = self.send_prepared(message);
                result = result.and(sent);
            }
            return result;
        }
        self.check_whole_message()?;
        self.queue_frame(batch.frames());
        Ok(())
    }

    /// Whether a fragmented message is being sent (its last frame not queued yet).
    pub fn is_sending_fragments(&self) -> bool {
        self.sending.is_some()
    }

    /// Queues a frame built elsewhere: copied behind what is staged when small, its shared
    /// buffer queued as it is otherwise (many connections then hold one copy).
    fn queue_frame(&mut self, frame: &Bytes) {
        if frame.len() < SHARED_FRAME_MIN {
            self.staging_room(frame.len()).extend_from_slice(frame);
        } else {
            self.seal_staging();
            self.queue_chunk(frame.clone());
        }
    }

    /// Compresses a message or one of its fragments (`last`: the message ends with it), and
    /// starts a new context after a message when context takeover is off.
    fn compress(&mut self, payload: &Bytes, last: bool) -> Result<Bytes, SendError> {
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(SendError::CompressionFailed);
        };
        let window = deflate.params.local_max_window_bits;
        let config = &deflate.config;
        let takeover = !deflate.params.local_no_context_takeover;
        // A whole message without context takeover: the thread's compressor, none of our own.
        if !takeover && last && self.sending.is_none() {
            return crate::deflate::shared::compress_alone(payload, window, config)
                .ok_or(SendError::CompressionFailed);
        }
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
            .compress_fragment(payload, &mut out, last)
            .map_err(|_| SendError::CompressionFailed)?;
        if last && deflate.params.local_no_context_takeover {
            if deflate.config.release_idle_state {
                deflate.compressor = None;
            } else if let Some(c) = deflate.compressor.as_mut() {
                c.reset();
            }
        }
        Ok(out.freeze())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &Bytes) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLong);
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
    pub fn send_close(&mut self, frame: Option<&CloseFrame>) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if let Some(frame) = frame {
            frame.validate_outgoing()?;
        }
        self.queue_close(frame);
        Ok(())
    }

    pub(super) fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = BytesMut::new();
        if let Some(frame) = frame {
            frame.encode(&mut payload);
        }
        self.pending_pong = None;
        self.write_frame(OpCode::Close, true, &payload.freeze());
        self.close_sent = true;
    }

    pub(super) fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &Bytes) {
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
        let staging = self.staging_room(MAX_HEADER_LEN + if copied { payload.len() } else { 0 });
        header.encode(staging);
        match mask {
            Some(key) => {
                // Mask into our own buffer, never the caller's payload.
                let start = self.staging.len();
                self.staging.extend_from_slice(payload);
                apply_mask(&mut self.staging[start..], key, 0);
            }
            None if payload.len() >= VECTORED_MIN => {
                self.seal_staging();
                self.queue_chunk(payload.clone());
            }
            None => self.staging.extend_from_slice(payload),
        }
    }

    pub(super) fn seal_staging(&mut self) {
        if !self.staging.is_empty() {
            let chunk = self.staging.split().freeze();
            if self.staging.capacity() == 0 {
                // Split when full: no room left, yet it would share the allocation with the
                // chunk (and keep it once the chunk is written).
                self.staging = BytesMut::new();
            }
            self.queue_chunk(chunk);
        }
    }
}

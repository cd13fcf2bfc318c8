//! Messages framed once for many connections: broadcasts, topics, a handler's own loops.
//!
//! A [`PreparedMessage`] holds the whole unmasked frame (header and payload) in one shared
//! buffer, so queueing it to a thousand server connections costs a thousand reference counts,
//! not a thousand frames built. With permessage-deflate, the compressed frame is made once per
//! window size, on first use, and shared by every connection that compresses each message on
//! its own (`server_no_context_takeover` negotiated): any such connection accepts the same
//! bytes. A connection with context takeover compresses with its own history, so it frames the
//! payload itself, as for [`Connection::send`](super::Connection::send); so does a client,
//! which masks every frame with a key of its own.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use super::connection::DataKind;
use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::message::{Message, Utf8Bytes};
use crate::deflate::shared::compress_alone;
use crate::deflate::DeflateConfig;

/// A text or binary message framed once, to be queued to many connections.
///
/// Cheap to clone (a reference count). Built from any [`Message`] (a control message or a
/// fragment is kept as it is and framed by each connection) or with
/// [`text`](PreparedMessage::text) and [`binary`](PreparedMessage::binary); queued with
/// [`WebSocket::send_prepared`](crate::WebSocket::send_prepared), and by the server's
/// broadcasts and topics.
///
/// ```
/// use enim_labore_occaecati::proto::PreparedMessage;
/// let message = PreparedMessage::text("hello, everyone");
/// assert_eq!(message.len(), 15);
/// ```
#[derive(Clone)]
pub struct PreparedMessage(Arc<Body>);

// Behind an Arc: one allocation of the larger size either way.
#[allow(clippy::large_enum_variant)]
enum Body {
    Data(Prepared),
    /// A control message or a fragment: framed by each connection, as
    /// [`Connection::send`](super::Connection::send) does.
    Other(Message),
}

pub(crate) struct Prepared {
    kind: DataKind,
    payload: Bytes,
    /// The unmasked, uncompressed frame: header and payload.
    frame: Bytes,
    /// The compressed frame (RSV1 set) for each window size 9-15 (8 is compressed as 9, as
    /// for a connection), made on first use; `None` if compression failed.
    compressed: [OnceLock<Option<Bytes>>; 7],
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Body::Data(data) => f
                .debug_struct("PreparedMessage")
                .field("kind", &data.kind)
                .field("len", &data.payload.len())
                .finish_non_exhaustive(),
            Body::Other(message) => f.debug_tuple("PreparedMessage").field(message).finish(),
        }
    }
}

impl PreparedMessage {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> PreparedMessage {
        PreparedMessage::data(DataKind::Text, text.into().into_bytes())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> PreparedMessage {
        PreparedMessage::data(DataKind::Binary, data.into())
    }

    fn data(kind: DataKind, payload: Bytes) -> PreparedMessage {
        let opcode = match kind {
            DataKind::Text => OpCode::Text,
            DataKind::Binary => OpCode::Binary,
        };
        PreparedMessage(Arc::new(Body::Data(Prepared {
            kind,
            frame: frame(opcode, false, &payload),
            payload,
            compressed: Default::default(),
        })))
    }

    /// Text or binary; `None` for a control message or a fragment, which each connection
    /// frames itself.
    pub fn kind(&self) -> Option<DataKind> {
        match &*self.0 {
            Body::Data(data) => Some(data.kind),
            Body::Other(_) => None,
        }
    }

    /// The payload (for text, its UTF-8 bytes; for a close message, its code and reason).
    pub fn payload(&self) -> &[u8] {
        match &*self.0 {
            Body::Data(data) => &data.payload,
            Body::Other(message) => message.as_payload(),
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    pub(crate) fn data_parts(&self) -> Option<&Prepared> {
        match &*self.0 {
            Body::Data(data) => Some(data),
            Body::Other(_) => None,
        }
    }

    pub(crate) fn other(&self) -> Option<&Message> {
        match &*self.0 {
            Body::Other(message) => Some(message),
            Body::Data(_) => None,
        }
    }
}

impl Prepared {
    pub(crate) fn kind(&self) -> DataKind {
        self.kind
    }

    pub(crate) fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The frame as a server sends it uncompressed.
    pub(crate) fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The frame compressed without context takeover with `window_bits`, made by the first
    /// caller (with its tuning: any level inflates the same) and shared from then on.
    pub(crate) fn compressed_frame(
        &self,
        window_bits: u8,
        config: &DeflateConfig,
    ) -> Option<&Bytes> {
        let bits = window_bits.clamp(9, 15);
        self.compressed[usize::from(bits - 9)]
            .get_or_init(|| {
                let opcode = match self.kind {
                    DataKind::Text => OpCode::Text,
                    DataKind::Binary => OpCode::Binary,
                };
                let payload = compress_alone(&self.payload, bits, config)?;
                Some(frame(opcode, true, &payload))
            })
            .as_ref()
    }
}

impl From<Message> for PreparedMessage {
    /// Text and binary messages are framed once; others (control messages, fragments) are
    /// framed by each connection.
    fn from(message: Message) -> PreparedMessage {
        match message {
            Message::Text(text) => PreparedMessage::data(DataKind::Text, text.into_bytes()),
            Message::Binary(data) => PreparedMessage::data(DataKind::Binary, data),
            other => PreparedMessage(Arc::new(Body::Other(other))),
        }
    }
}

impl From<Utf8Bytes> for PreparedMessage {
    fn from(text: Utf8Bytes) -> PreparedMessage {
        PreparedMessage::text(text)
    }
}

impl From<&str> for PreparedMessage {
    fn from(text: &str) -> PreparedMessage {
        PreparedMessage::text(text)
    }
}

impl From<String> for PreparedMessage {
    fn from(text: String) -> PreparedMessage {
        PreparedMessage::text(text)
    }
}

impl From<Bytes> for PreparedMessage {
    fn from(data: Bytes) -> PreparedMessage {
        PreparedMessage::binary(data)
    }
}

impl From<Vec<u8>> for PreparedMessage {
    fn from(data: Vec<u8>) -> PreparedMessage {
        PreparedMessage::binary(data)
    }
}

/// Frame bytes up to which a publisher's batch of small messages is also framed as one
/// buffer: past it, each message's own shared frame costs little per byte.
const BATCH_MAX: usize = 64 << 10;

/// Several small data messages published together, for connections that take them as they
/// are: one queue entry and one copy of their frames, laid end to end, per connection,
/// instead of one per message. Connections that frame each message themselves (a client,
/// compression) take the messages one by one.
#[derive(Clone, Debug)]
pub(crate) struct PreparedBatch(Arc<Batch>);

#[derive(Debug)]
struct Batch {
    messages: Vec<PreparedMessage>,
    /// Total payload bytes.
    len: usize,
    /// The longest payload: below a connection's compression threshold, no message of the
    /// batch is compressed.
    longest: usize,
    /// The uncompressed frames, end to end.
    frames: Bytes,
}

impl PreparedBatch {
    /// A batch of `messages`, if there are several, all text or binary, their frames within
    /// `BATCH_MAX` bytes.
    pub(crate) fn new(messages: &[PreparedMessage]) -> Option<PreparedBatch> {
        if messages.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut longest = 0;
        let mut frames_len = 0;
        for message in messages {
            let data = message.data_parts()?;
            len += data.payload.len();
            longest = longest.max(data.payload.len());
            frames_len += data.frame.len();
            if frames_len > BATCH_MAX {
                return None;
            }
        }
        let mut frames = BytesMut::with_capacity(frames_len);
        for message in messages {
            frames.extend_from_slice(message.data_parts()?.frame());
        }
        Some(PreparedBatch(Arc::new(Batch {
            messages: messages.to_vec(),
            len,
            longest,
            frames: frames.freeze(),
        })))
    }

    /// The messages, in order.
    pub(crate) fn messages(&self) -> &[PreparedMessage] {
        &self.0.messages
    }

    /// Total payload bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len
    }

    /// The longest payload.
    pub(crate) fn longest(&self) -> usize {
        self.0.longest
    }

    /// Every message's uncompressed server frame, end to end.
    pub(crate) fn frames(&self) -> &Bytes {
        &self.0.frames
    }
}

/// One unmasked frame, FIN set.
fn frame(opcode: OpCode, rsv1: bool, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
    header.encode(&mut out);
    out.extend_from_slice(payload);
    out.freeze()
}

//! Messages as the application sends and receives them.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use crate::proto::close::CloseFrame;
use crate::proto::connection::DataKind;

/// Immutable, cheaply clonable UTF-8 text backed by [`Bytes`]: cloning a received text message
/// to broadcast it copies no payload. Checked once, when made; reading it is free.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(ByteString);

/// The bytes given to [`Utf8Bytes::try_from`] are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for NotUtf8 {}

impl Utf8Bytes {
    /// Text from a static string.
    pub const fn from_static(s: &'static str) -> Utf8Bytes {
        Utf8Bytes(ByteString::from_static(s))
    }

    /// The text, in constant time (`ByteString` holds the proof it is UTF-8).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// The underlying bytes, shared.
    pub(crate) fn bytes_ref(&self) -> &Bytes {
        self.0.as_bytes()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = NotUtf8;
    fn try_from(bytes: Bytes) -> Result<Utf8Bytes, NotUtf8> {
        ByteString::try_from(bytes)
            .map(Utf8Bytes)
            .map_err(|_| NotUtf8)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Utf8Bytes {
        Utf8Bytes(ByteString::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Utf8Bytes {
        Utf8Bytes(ByteString::from(s))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(s: &String) -> Utf8Bytes {
        Utf8Bytes::from(s.as_str())
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WebSocket message.
///
/// Data messages are what [`WebSocket::recv`](crate::WebSocket::recv) yields; control messages
/// (ping, pong, close) are yielded too when
/// [`Config::receive_control_frames`](crate::Config::receive_control_frames) is set, and can
/// always be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping with its payload (at most 125 bytes).
    Ping(Bytes),
    /// A pong with its payload (at most 125 bytes).
    Pong(Bytes),
    /// A close frame, with its code and reason if it had one.
    Close(Option<CloseFrame>),
    /// One frame of a data message, as it arrived: what `recv` yields with
    /// [`Config::deliver_fragments`](crate::Config::deliver_fragments). Sent, it is one frame
    /// of a fragmented message, as with [`WebSocket::send_fragment`](crate::WebSocket::send_fragment).
    Fragment(Fragment),
}

/// One frame of a data message ([`Message::Fragment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Text or binary: the kind of the message the fragment belongs to.
    pub kind: DataKind,
    /// The fragment's payload (inflated, if the message was compressed). For text, checked as
    /// UTF-8 with the fragments before it unless validation is off, but it may end inside a
    /// code point that the next fragment completes.
    pub data: Bytes,
    /// The last fragment of its message.
    pub fin: bool,
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// Whether this is a text or binary message (or a fragment of one).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            Message::Text(_) | Message::Binary(_) | Message::Fragment(_)
        )
    }

    /// The payload bytes (for a close message, the reason).
    pub fn as_payload(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Fragment(f) => &f.data,
            Message::Close(Some(frame)) => frame.reason.as_bytes(),
            Message::Close(None) => &[],
        }
    }

    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_payload().is_empty()
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message::text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Message {
        Message::binary(v)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Message {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Message {
        Message::binary(Bytes::copy_from_slice(b))
    }
}

//! The protocol core's errors: what a peer did wrong ([`ProtocolError`], with the close code
//! it gets), why a message can't be sent ([`SendError`]), and why a connection ended without a
//! clean close handshake ([`Failure`]). No I/O, TLS or HTTP here: the crate's
//! [`Error`](crate::Error) wraps these.

use std::fmt;

use crate::proto::close::CloseCode;

/// A violation of RFC 6455 by the peer. Each has a stable [`code`](ProtocolError::code) and the
/// close code ([`close_code`](ProtocolError::close_code)) sent to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode RFC 6455 reserves (3-7, 11-15).
    InvalidOpcode(u8),
    /// RSV1, RSV2 or RSV3 set without an extension that defines it.
    ReservedBitsSet,
    /// A control frame with FIN clear (RFC 6455 §5.5: control frames MUST NOT be fragmented).
    FragmentedControlFrame,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong,
    /// A client sent an unmasked frame (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server sent a masked frame (RFC 6455 §5.1).
    MaskedFrame,
    /// A 64-bit payload length with the most significant bit set (RFC 6455 §5.2).
    InvalidPayloadLength,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was in progress.
    ExpectedContinuation,
    /// A text message or close reason that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame with a status code that may not be received.
    InvalidCloseCode(u16),
    /// A close frame whose payload is a single byte.
    InvalidClosePayload,
    /// A frame longer than the configured maximum frame size.
    FrameTooBig,
    /// A message longer than the configured maximum message size.
    MessageTooBig,
    /// A message split into more fragments than the configured maximum.
    TooManyFragments,
    /// A compressed message whose data doesn't inflate (RFC 7692).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code sent to the peer for this error (RFC 6455 §7.4.1): 1007 for invalid
    /// UTF-8 or compressed data, 1009 for size limits, 1008 for the fragment-count policy, 1002 for the rest.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_DATA
            }
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => CloseCode::TOO_BIG,
            ProtocolError::TooManyFragments => CloseCode::POLICY,
            ProtocolError::InvalidOpcode(_)
            | ProtocolError::ReservedBitsSet
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong
            | ProtocolError::UnmaskedFrame
            | ProtocolError::MaskedFrame
            | ProtocolError::InvalidPayloadLength
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::InvalidCloseCode(_)
            | ProtocolError::InvalidClosePayload => CloseCode::PROTOCOL,
        }
    }

    /// A stable identifier for logs and metrics, such as `"WS_ERR_INVALID_UTF8"`.
    pub fn code(self) -> &'static str {
        match self {
            ProtocolError::InvalidOpcode(_) => "WS_ERR_INVALID_OPCODE",
            ProtocolError::ReservedBitsSet => "WS_ERR_UNEXPECTED_RSV",
            ProtocolError::FragmentedControlFrame => "WS_ERR_EXPECTED_FIN",
            ProtocolError::ControlFrameTooLong => "WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH",
            ProtocolError::UnmaskedFrame => "WS_ERR_EXPECTED_MASK",
            ProtocolError::MaskedFrame => "WS_ERR_UNEXPECTED_MASK",
            ProtocolError::InvalidPayloadLength => "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH",
            ProtocolError::UnexpectedContinuation => "WS_ERR_UNEXPECTED_CONTINUATION",
            ProtocolError::ExpectedContinuation => "WS_ERR_EXPECTED_CONTINUATION",
            ProtocolError::InvalidUtf8 => "WS_ERR_INVALID_UTF8",
            ProtocolError::InvalidCloseCode(_) => "WS_ERR_INVALID_CLOSE_CODE",
            ProtocolError::InvalidClosePayload => "WS_ERR_INVALID_CLOSE_PAYLOAD",
            ProtocolError::FrameTooBig => "WS_ERR_FRAME_TOO_BIG",
            ProtocolError::MessageTooBig => "WS_ERR_MESSAGE_TOO_BIG",
            ProtocolError::TooManyFragments => "WS_ERR_TOO_MANY_FRAGMENTS",
            ProtocolError::InvalidCompressedData => "WS_ERR_INVALID_COMPRESSED_DATA",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidOpcode(op) => write!(f, "invalid opcode {op}"),
            ProtocolError::ReservedBitsSet => f.write_str("reserved bits set"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            ProtocolError::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrame => f.write_str("masked frame from a server"),
            ProtocolError::InvalidPayloadLength => {
                f.write_str("payload length with the most significant bit set")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidClosePayload => f.write_str("one-byte close payload"),
            ProtocolError::FrameTooBig => f.write_str("frame exceeds the maximum frame size"),
            ProtocolError::MessageTooBig => f.write_str("message exceeds the maximum message size"),
            ProtocolError::TooManyFragments => {
                f.write_str("message exceeds the maximum fragment count")
            }
            ProtocolError::InvalidCompressedData => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why a message or frame can't be queued. Nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent: nothing more may follow it (RFC 6455 §5.5.1).
    Closed,
    /// A ping, pong or close payload over 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong,
    /// A close code that may not be sent (1005, 1006, 1015, and codes outside 1000-1003,
    /// 1007-1014, 3000-4999).
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes (it must fit a 125-byte payload with the code).
    CloseReasonTooLong,
    /// A fragment of one kind while a fragmented message of the other kind is in progress.
    FragmentKindMismatch,
    /// The compressor failed (it can't on valid input; reported rather than hidden).
    CompressionFailed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("a close frame was already sent"),
            SendError::ControlFrameTooLong => {
                f.write_str("control frame payload longer than 125 bytes")
            }
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            SendError::CloseReasonTooLong => f.write_str("close reason longer than 123 bytes"),
            SendError::FragmentKindMismatch => {
                f.write_str("a fragmented message of the other kind is in progress")
            }
            SendError::CompressionFailed => f.write_str("compression failed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a connection ended without a clean close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The peer broke the protocol; the close frame with the error's code was sent.
    Protocol(ProtocolError),
    /// The transport ended before the peer's close frame arrived (reported as 1006).
    AbnormalClosure,
    /// The close handshake didn't complete within [`Config::close_timeout`].
    ///
    /// [`Config::close_timeout`]: crate::Config::close_timeout
    CloseTimeout,
    /// A heartbeat ping went unanswered for its timeout ([`Config::heartbeat`]).
    ///
    /// [`Config::heartbeat`]: crate::Config::heartbeat
    HeartbeatTimeout,
}

impl Failure {
    /// The close code the application sees for this ending: the one sent for a protocol
    /// error, 1006 (never sent on the wire) for the others.
    pub fn close_code(self) -> CloseCode {
        match self {
            Failure::Protocol(error) => error.close_code(),
            Failure::AbnormalClosure | Failure::CloseTimeout | Failure::HeartbeatTimeout => {
                CloseCode::ABNORMAL
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Protocol(error) => write!(f, "protocol error: {error}"),
            Failure::AbnormalClosure => f.write_str("the stream ended without a close frame"),
            Failure::CloseTimeout => f.write_str("the close handshake timed out"),
            Failure::HeartbeatTimeout => f.write_str("no pong within the heartbeat timeout"),
        }
    }
}

impl std::error::Error for Failure {}

//! Close status codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::error::{ProtocolError, SendError};
use crate::proto::message::Utf8Bytes;

/// A close status code (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: service restart.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN: CloseCode = CloseCode(1013);
    /// 1014: bad gateway.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// A code from its number, whatever it is; see [`CloseCode::is_sendable`].
    pub const fn new(code: u16) -> CloseCode {
        CloseCode(code)
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a close frame: 1000-1003, 1007-1014 (defined by RFC 6455
    /// and the IANA registry) and 3000-4999 (libraries, frameworks and applications). 1004-1006
    /// and 1015 are reserved or only for reporting, 0-999 are unused, 1016-2999 are reserved for
    /// future protocol revisions and 5000 and up are undefined.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> CloseCode {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The payload of a close frame: a status code and a UTF-8 reason of at most 123 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<Utf8Bytes>) -> CloseFrame {
        CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// Parses a received close payload (RFC 6455 §5.5.1): empty, or a 2-byte code followed by
    /// a UTF-8 reason. A 1-byte payload, a code that may not be sent and an invalid reason are
    /// errors.
    pub fn parse(payload: &Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from(payload.slice(2..))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }

    /// Encodes the payload: code then reason.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.code.0);
        out.extend_from_slice(self.reason.as_bytes());
    }

    /// Checks that this frame may be sent: a sendable code and a reason of at most 123 bytes.
    pub(crate) fn validate_outgoing(&self) -> Result<(), SendError> {
        if !self.code.is_sendable() {
            return Err(SendError::InvalidCloseCode(self.code.as_u16()));
        }
        if self.reason.len() > 123 {
            return Err(SendError::CloseReasonTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(code: u16, reason: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u16(code);
        b.extend_from_slice(reason);
        b.freeze()
    }

    #[test]
    fn every_code_class() {
        for code in 0..=u16::MAX {
            let parsed = CloseFrame::parse(&payload(code, b""));
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(parsed.is_ok(), valid, "code {code}");
            if !valid {
                assert_eq!(parsed, Err(ProtocolError::InvalidCloseCode(code)));
            }
        }
    }

    #[test]
    fn empty_and_one_byte() {
        assert_eq!(CloseFrame::parse(&Bytes::new()), Ok(None));
        assert_eq!(
            CloseFrame::parse(&Bytes::from_static(&[3])),
            Err(ProtocolError::InvalidClosePayload)
        );
    }

    #[test]
    fn reason_must_be_utf8() {
        let ok = CloseFrame::parse(&payload(1000, "bye ✓".as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(ok.reason.as_str(), "bye ✓");
        assert_eq!(
            CloseFrame::parse(&payload(1000, &[0xce, 0xba, 0xff])),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn outgoing_validation() {
        assert!(CloseFrame::new(1000, "x").validate_outgoing().is_ok());
        assert!(CloseFrame::new(1005, "").validate_outgoing().is_err());
        assert!(CloseFrame::new(1000, "x".repeat(124))
            .validate_outgoing()
            .is_err());
    }
}

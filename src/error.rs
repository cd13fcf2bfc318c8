//! The crate's error type.
//!
//! One opaque, pointer-sized [`Error`] carries an [`ErrorKind`]; a protocol violation also
//! carries the [`ProtocolError`] that names it and, through [`ProtocolError::close_code`], the
//! close code that was sent to the peer. A failed handshake carries the HTTP status (server) or
//! the whole unexpected response (client).

use std::fmt;

use bytes::Bytes;

use crate::proto::close::CloseCode;
pub use crate::proto::error::ProtocolError;
use crate::proto::error::{Failure, SendError};

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in broad classes. Use [`Error::kind`] to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The peer broke RFC 6455; see [`Error::protocol_error`]. A close frame with the matching
    /// code was queued before this error was returned.
    Protocol,
    /// The opening handshake failed; see [`Error::handshake_error`] and
    /// [`Error::http_response`].
    Handshake,
    /// An I/O error from the underlying stream.
    Io,
    /// A time limit (handshake, close) ran out.
    Timeout,
    /// The connection ended without a close handshake (status 1006 in RFC 6455 terms).
    AbnormalClosure,
    /// The connection is closing or closed, so the operation can't be done.
    Closed,
    /// The caller passed something invalid (a bad URL, a close code that may not be sent, an
    /// over-long control payload).
    InvalidInput,
    /// The TLS handshake failed; see [`Error::tls_failure`] for why (unknown issuer, name
    /// mismatch, expired certificate, …).
    Tls,
    /// A proxy refused or failed the tunnel; see [`Error::proxy_failure`].
    Proxy,
    /// The message broker joining servers is unreachable, or its publish queue is full:
    /// the message went nowhere.
    Broker,
    /// The connection's write buffer is over [`Config::max_write_buffer`](crate::Config):
    /// the message was not queued. Only the event API's
    /// [`Client::send`](crate::server::events::Client::send), which can't wait, answers it;
    /// [`EventHandler::on_drain`](crate::server::events::EventHandler::on_drain) tells when
    /// there is room again.
    WriteBufferFull,
}

/// Why an opening handshake failed. On the server each maps to the HTTP status sent back
/// ([`HandshakeError::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request method is not GET (HTTP/1.1) or CONNECT (HTTP/2) (405).
    MethodNotAllowed,
    /// The request is not HTTP/1.1 or later (400).
    UnsupportedHttpVersion,
    /// The request has no `Host` header (400).
    MissingHost,
    /// `Upgrade: websocket` is missing (400).
    MissingUpgrade,
    /// `Connection` does not list `upgrade` (400).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64 (400).
    InvalidKey,
    /// `Sec-WebSocket-Version` is neither 13 nor 8 (426).
    UnsupportedVersion,
    /// `Sec-WebSocket-Protocol` is malformed or lists a protocol twice (400).
    InvalidSubprotocol,
    /// The request path is not the one the server serves (400).
    PathNotFound,
    /// The request head is larger than the configured maximum (431).
    HeadTooLarge,
    /// The request has more headers than the configured maximum (431).
    TooManyHeaders,
    /// The head is not valid HTTP (400 on the server).
    Malformed(&'static str),
    /// The peer closed the connection before the head was complete.
    UnexpectedEof,
    /// The server's response status is not 101 (client side); see [`Error::http_response`].
    UnexpectedStatus(u16),
    /// `Sec-WebSocket-Accept` does not match the key the client sent.
    InvalidAccept,
    /// The server chose a subprotocol the client did not offer, or none when one was required.
    UnexpectedSubprotocol,
    /// The server answered with an extension the client did not offer.
    UnexpectedExtension,
    /// The application rejected the request (the status it chose).
    Rejected(u16),
    /// Too many redirects.
    TooManyRedirects,
    /// An HTTP/2 request that is not an extended CONNECT with `:protocol` websocket
    /// (RFC 8441; 400).
    NotWebSocketConnect,
}

impl HandshakeError {
    /// The HTTP status a server answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::Rejected(status) => *status,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::MethodNotAllowed => {
                f.write_str("method is not GET (HTTP/1.1) or CONNECT (HTTP/2)")
            }
            HandshakeError::UnsupportedHttpVersion => f.write_str("HTTP version below 1.1"),
            HandshakeError::MissingHost => f.write_str("missing Host header"),
            HandshakeError::MissingUpgrade => f.write_str("missing or invalid Upgrade header"),
            HandshakeError::MissingConnectionUpgrade => {
                f.write_str("missing or invalid Connection header")
            }
            HandshakeError::InvalidKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            HandshakeError::UnsupportedVersion => {
                f.write_str("missing or unsupported Sec-WebSocket-Version")
            }
            HandshakeError::InvalidSubprotocol => f.write_str("invalid Sec-WebSocket-Protocol"),
            HandshakeError::PathNotFound => f.write_str("path not served"),
            HandshakeError::HeadTooLarge => f.write_str("HTTP head too large"),
            HandshakeError::TooManyHeaders => f.write_str("too many HTTP headers"),
            HandshakeError::Malformed(what) => write!(f, "malformed HTTP head: {what}"),
            HandshakeError::UnexpectedEof => f.write_str("connection closed during handshake"),
            HandshakeError::UnexpectedStatus(status) => {
                write!(f, "unexpected server response: {status}")
            }
            HandshakeError::InvalidAccept => f.write_str("invalid Sec-WebSocket-Accept"),
            HandshakeError::UnexpectedSubprotocol => {
                f.write_str("server sent an invalid subprotocol")
            }
            HandshakeError::UnexpectedExtension => {
                f.write_str("server sent an extension that was not offered")
            }
            HandshakeError::Rejected(status) => write!(f, "rejected with status {status}"),
            HandshakeError::TooManyRedirects => f.write_str("too many redirects"),
            HandshakeError::NotWebSocketConnect => {
                f.write_str("HTTP/2 request is not an extended CONNECT for websocket")
            }
        }
    }
}

/// Why a proxy didn't open the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyFailure {
    /// An HTTP proxy answered `CONNECT` with this status (407: authentication required or
    /// refused).
    HttpStatus(u16),
    /// A SOCKS5 proxy accepts none of the authentication methods offered (no credentials were
    /// configured, or it doesn't do username/password).
    SocksNoAcceptableAuth,
    /// A SOCKS5 proxy refused the username and password.
    SocksAuthFailed,
    /// A SOCKS5 proxy answered the connect request with this reply code (RFC 1928 §6: 1
    /// general failure, 2 not allowed, 3 network unreachable, 4 host unreachable, 5 refused,
    /// …).
    SocksReply(u8),
    /// The proxy's answer was not valid for its protocol.
    Malformed(String),
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyFailure::HttpStatus(407) => {
                f.write_str("HTTP proxy requires authentication (407)")
            }
            ProxyFailure::HttpStatus(status) => {
                write!(f, "HTTP proxy answered CONNECT with {status}")
            }
            ProxyFailure::SocksNoAcceptableAuth => {
                f.write_str("SOCKS5 proxy accepts none of the offered authentication methods")
            }
            ProxyFailure::SocksAuthFailed => f.write_str("SOCKS5 proxy refused the credentials"),
            ProxyFailure::SocksReply(code) => write!(f, "SOCKS5 proxy refused: reply code {code}"),
            ProxyFailure::Malformed(what) => write!(f, "malformed proxy answer: {what}"),
        }
    }
}

/// The error type of this crate: opaque and pointer-sized; inspect it with [`Error::kind`] and
/// the accessors.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    protocol: Option<ProtocolError>,
    handshake: Option<HandshakeError>,
    response: Option<http::Response<Bytes>>,
    message: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsFailure>,
    proxy: Option<ProxyFailure>,
    send: Option<SendError>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                protocol: None,
                handshake: None,
                response: None,
                message: None,
                #[cfg(feature = "tls")]
                tls: None,
                proxy: None,
                send: None,
                source: None,
            }),
        }
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Error {
        self.inner.message = Some(message.into());
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn handshake(error: HandshakeError) -> Error {
        let mut e = Error::new(ErrorKind::Handshake);
        e.inner.handshake = Some(error);
        e
    }

    pub(crate) fn http_status(response: http::Response<Bytes>) -> Error {
        let mut e = Error::handshake(HandshakeError::UnexpectedStatus(response.status().as_u16()));
        e.inner.response = Some(response);
        e
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls(failure: crate::tls::TlsFailure) -> Error {
        let mut e = Error::new(ErrorKind::Tls);
        e.inner.tls = Some(failure);
        e
    }

    pub(crate) fn proxy(failure: ProxyFailure) -> Error {
        let mut e = Error::new(ErrorKind::Proxy);
        e.inner.proxy = Some(failure);
        e
    }

    /// Why the TLS handshake failed, for [`ErrorKind::Tls`].
    #[cfg(feature = "tls")]
    pub fn tls_failure(&self) -> Option<&crate::tls::TlsFailure> {
        self.inner.tls.as_ref()
    }

    /// Why the proxy refused or failed the tunnel, for [`ErrorKind::Proxy`].
    pub fn proxy_failure(&self) -> Option<&ProxyFailure> {
        self.inner.proxy.as_ref()
    }

    /// Why a message or close frame couldn't be queued, when that is the error: `Closed` for
    /// [`ErrorKind::Closed`] after a close frame was sent, the others for
    /// [`ErrorKind::InvalidInput`].
    pub fn send_error(&self) -> Option<SendError> {
        self.inner.send
    }

    pub(crate) fn broker(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Broker).with_message(message)
    }

    pub(crate) fn write_buffer_full() -> Error {
        Error::new(ErrorKind::WriteBufferFull)
    }

    pub(crate) fn closed() -> Error {
        Error::new(ErrorKind::Closed)
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput).with_message(message)
    }

    pub(crate) fn timeout(what: &'static str) -> Error {
        Error::new(ErrorKind::Timeout).with_message(what)
    }

    /// The broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The protocol violation, for [`ErrorKind::Protocol`].
    pub fn protocol_error(&self) -> Option<ProtocolError> {
        self.inner.protocol
    }

    /// The handshake failure, for [`ErrorKind::Handshake`].
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        self.inner.handshake.as_ref()
    }

    /// The close code sent to the peer because of this error, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.inner.protocol.map(ProtocolError::close_code)
    }

    /// The server's whole response (status, headers, body) when a client handshake got
    /// something other than `101 Switching Protocols`.
    pub fn http_response(&self) -> Option<&http::Response<Bytes>> {
        self.inner.response.as_ref()
    }

    /// Whether this is a protocol violation by the peer.
    pub fn is_protocol(&self) -> bool {
        self.inner.kind == ErrorKind::Protocol
    }

    /// Whether a time limit ran out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Closed | ErrorKind::AbnormalClosure
        )
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Error {
        let mut e = Error::new(ErrorKind::Protocol);
        e.inner.protocol = Some(error);
        e
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Error {
        let mut e = match error {
            SendError::Closed => Error::closed(),
            other => Error::invalid_input(other.to_string()),
        };
        e.inner.send = Some(error);
        e
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        match failure {
            Failure::Protocol(error) => error.into(),
            Failure::AbnormalClosure => Error::new(ErrorKind::AbnormalClosure),
            Failure::CloseTimeout => Error::timeout("close handshake"),
            Failure::HeartbeatTimeout => Error::timeout("heartbeat: no pong within the timeout"),
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Error {
        Error::handshake(error)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::new(ErrorKind::Io).with_source(error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(p) = &self.inner.protocol {
            d.field("protocol", p);
        }
        if let Some(h) = &self.inner.handshake {
            d.field("handshake", h);
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.inner.tls {
            d.field("tls", t);
        }
        if let Some(p) = &self.inner.proxy {
            d.field("proxy", p);
        }
        if let Some(e) = &self.inner.send {
            d.field("send", e);
        }
        if let Some(m) = &self.inner.message {
            d.field("message", m);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner.kind {
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Handshake => "handshake failed",
            ErrorKind::Io => "I/O error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::AbnormalClosure => "connection closed without a close frame",
            ErrorKind::Closed => "connection closed",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Tls => "TLS handshake failed",
            ErrorKind::Proxy => "proxy tunnel failed",
            ErrorKind::Broker => "message broker unavailable",
            ErrorKind::WriteBufferFull => "write buffer full",
        };
        f.write_str(kind)?;
        if let Some(p) = &self.inner.protocol {
            write!(f, ": {p} (close code {})", p.close_code().as_u16())?;
        }
        if let Some(h) = &self.inner.handshake {
            write!(f, ": {h}")?;
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.inner.tls {
            write!(f, ": {t}")?;
        }
        if let Some(p) = &self.inner.proxy {
            write!(f, ": {p}")?;
        }
        if let Some(m) = &self.inner.message {
            write!(f, ": {m}")?;
        }
        // The underlying error is `source()`, not repeated here: reporters that walk the chain
        // would print it twice.
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.source {
            Some(s) => Some(&**s as &(dyn std::error::Error + 'static)),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn source_is_reported_once() {
        let error = Error::from(std::io::Error::other("disk on fire"));
        assert_eq!(error.to_string(), "I/O error");
        assert_eq!(error.source().unwrap().to_string(), "disk on fire");
    }

    #[test]
    fn send_errors_keep_their_cause() {
        let error = Error::from(SendError::CloseReasonTooLong);
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert_eq!(error.send_error(), Some(SendError::CloseReasonTooLong));
        assert_eq!(Error::from(SendError::Closed).kind(), ErrorKind::Closed);
    }

    #[test]
    fn protocol_error_names_its_close_code() {
        let error = Error::from(ProtocolError::InvalidUtf8);
        assert!(error.to_string().contains("close code 1007"), "{error}");
    }
}

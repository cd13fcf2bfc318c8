//! WebSockets over HTTP/2 (RFC 8441, feature `http2`): one TCP or TLS connection carries many
//! WebSockets, each on its own stream, opened by an extended CONNECT.
//!
//! The server side is [`ServerBuilder::http2`](crate::server::ServerBuilder::http2) (on by
//! default: a TLS server offers ALPN `h2`); the client side is
//! [`ClientBuilder::http2`](crate::ClientBuilder::http2). A stream becomes a
//! [`WebSocket`](crate::WebSocket) like any other: the same `recv`/`send`, limits, broadcast
//! and topics. The close handshake ends the stream with END_STREAM; a WebSocket dropped
//! without one resets its stream (RST_STREAM, CANCEL), and an HTTP/2 connection that fails
//! ends each of its WebSockets with 1006.

pub(crate) mod stream;

pub use stream::Http2Stream;

use std::time::Duration;

/// HTTP/2 options of a server or a client.
///
/// Flow control: every stream gets `stream_window` bytes of credit, and the connection
/// `stream_window × max_streams`, so a WebSocket whose reader is slow or stopped can hold up
/// only its own stream, never the others on the connection. Credit is returned as the
/// WebSocket's driver takes the bytes in, so a stream's memory is bounded by its window.
///
/// ```
/// use enim_labore_occaecati::http2::Http2Config;
/// let mut h2c = Http2Config::default();
/// h2c.cleartext = true;
/// h2c.max_streams = 1000;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Http2Config {
    /// Whether HTTP/2 is used at all (server: offer ALPN `h2` and accept extended CONNECT;
    /// client: ask for it). Default: on for the server, off for the client.
    pub enabled: bool,
    /// The most WebSockets one HTTP/2 connection carries at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`); a peer opening more is refused by the protocol.
    /// Default 128.
    pub max_streams: u32,
    /// The flow-control window of each stream, in bytes (`SETTINGS_INITIAL_WINDOW_SIZE`).
    /// Default 256 KiB.
    pub stream_window: u32,
    /// The largest HTTP/2 frame this side accepts (`SETTINGS_MAX_FRAME_SIZE`), 16 KiB to
    /// 16 MiB. Default 16 KiB.
    pub max_frame_size: u32,
    /// Cleartext HTTP/2 with prior knowledge (h2c) on a server without TLS: a connection that
    /// opens with the HTTP/2 preface is served as HTTP/2, any other as HTTP/1.1. The client
    /// uses prior knowledge for `ws://` URLs when HTTP/2 is on. Default off.
    pub cleartext: bool,
    /// How long a WebSocket whose close handshake is over keeps its stream open for the
    /// peer's END_STREAM (in the background, after it is dropped): a stream reset earlier
    /// would lose the close frame still queued for it. Default 5 s.
    pub linger: Duration,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            enabled: true,
            max_streams: 128,
            stream_window: 256 * 1024,
            max_frame_size: 16 * 1024,
            cleartext: false,
            linger: Duration::from_secs(5),
        }
    }
}

impl Http2Config {
    /// Off: HTTP/1.1 only.
    pub fn off() -> Http2Config {
        Http2Config {
            enabled: false,
            ..Http2Config::default()
        }
    }

    /// On, with cleartext HTTP/2 (h2c, prior knowledge) too.
    pub fn with_cleartext() -> Http2Config {
        Http2Config {
            cleartext: true,
            ..Http2Config::default()
        }
    }

    /// The connection's window: every stream's window, so no stream waits on another's.
    pub(crate) fn connection_window(&self) -> u32 {
        let total = u64::from(self.stream_window) * u64::from(self.max_streams.max(1));
        total.min(u64::from(MAX_WINDOW)) as u32
    }

    /// Refuses values HTTP/2 forbids (RFC 9113 §6.5.2) or that can't carry a WebSocket.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.max_streams == 0 {
            return Err(crate::Error::invalid_input(
                "http2.max_streams must be at least 1",
            ));
        }
        if self.stream_window == 0 || self.stream_window > MAX_WINDOW {
            return Err(crate::Error::invalid_input(
                "http2.stream_window must be 1 to 2^31-1 bytes",
            ));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.max_frame_size) {
            return Err(crate::Error::invalid_input(
                "http2.max_frame_size must be 16 KiB to 16 MiB - 1",
            ));
        }
        Ok(())
    }
}

const MAX_WINDOW: u32 = (1 << 31) - 1;
const MIN_FRAME: u32 = 1 << 14;
const MAX_FRAME: u32 = (1 << 24) - 1;

/// The client preface of HTTP/2 (RFC 9113 §3.4), by which a cleartext server tells an h2c
/// connection from an HTTP/1.1 one.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 error as an I/O error: a reset stream is `ConnectionReset`, a failed connection
/// keeps its I/O error or becomes `ConnectionAborted`, and a request or response the HTTP/2
/// library refused to send (no reason, not from the peer) is `InvalidInput`.
pub(crate) fn io_error(error: h2::Error) -> std::io::Error {
    if !error.is_io() && error.reason().is_none() && !error.is_remote() {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
    }
    if error.is_io() {
        if let Some(io) = error.into_io() {
            return io;
        }
        return std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
    }
    let kind = if error.is_reset() {
        std::io::ErrorKind::ConnectionReset
    } else {
        std::io::ErrorKind::ConnectionAborted
    };
    std::io::Error::new(kind, error)
}

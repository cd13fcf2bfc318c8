//! Connection limits and options. Every field has a safe default, documented with its reason.

use std::time::Duration;

/// Options of one WebSocket connection (both roles). Fixed when the connection is created.
///
/// ```
/// use enim_labore_occaecati::Config;
/// let mut config = Config::default();
/// config.max_message_size = 1 << 20;
/// assert!(config.auto_pong);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest message accepted, after reassembly, in bytes. A frame whose declared length
    /// would exceed it is refused with close code 1009 before any of its payload is buffered.
    /// Default: 64 MiB (large enough for Autobahn's 16 MiB cases, small enough that a peer can't
    /// exhaust memory on a typical server).
    pub max_message_size: usize,
    /// Largest single frame accepted, in bytes (close code 1009). Default: 64 MiB.
    pub max_frame_size: usize,
    /// Most fragments one message may have (close code 1008). It bounds the work a peer can
    /// cause with empty continuation frames. Default: 1 048 576, above the 65 536 fragments of
    /// Autobahn's 9.3/9.4 cases.
    pub max_fragments: usize,
    /// Check text messages as they arrive (RFC 6455 §8.1), failing at the first invalid
    /// fragment, even mid-frame, with close code 1007. When off (the seed's
    /// `skipUTF8Validation`; only for peers you trust, or that you check yourself): text is
    /// never checked, and so never made a [`Utf8Bytes`](crate::Utf8Bytes) (which is always
    /// UTF-8): a text message arrives as the bytes of a
    /// [`Message::Fragment`](crate::Message::Fragment) with `kind: Text` and `fin: true`
    /// (whole; or each fragment, with [`deliver_fragments`](Config::deliver_fragments)). Close
    /// reasons are always checked. Default: on.
    pub validate_utf8: bool,
    /// Hand out each data frame as it arrives, as a [`Message::Fragment`](crate::Message)
    /// (inflated, for a compressed message), instead of whole messages (the seed's
    /// `binaryType = 'fragments'`, without holding the message): for messages too large to
    /// hold. `max_message_size` then doesn't apply (nothing is held); each fragment is at most
    /// [`max_frame_size`](Config::max_frame_size) (inflated, too), and `max_fragments` still
    /// bounds a message. Text fragments are checked as UTF-8 as they arrive (a code point may
    /// span two fragments). Default: off.
    pub deliver_fragments: bool,
    /// Answer pings with pongs automatically (RFC 6455 §5.5.2). Once the write buffer is over
    /// [`max_write_buffer`](Config::max_write_buffer), only the most recent ping is answered
    /// (RFC 6455 §5.5.3 allows it), so a peer that pings but never reads can't make pongs pile
    /// up. Default: on.
    pub auto_pong: bool,
    /// Yield ping, pong and close frames from `recv` as [`Message`](crate::Message)s, besides
    /// handling them. Default: off (only text and binary messages are yielded).
    pub receive_control_frames: bool,
    /// The write buffer's high-water mark in bytes. `send` and `feed` wait (flushing) while more
    /// than this is buffered, and `recv` stops reading from a peer that doesn't read our replies
    /// while the buffer is over it. One message is always accepted when the buffer is under the
    /// mark, whatever its size. Default: 128 KiB.
    pub max_write_buffer: usize,
    /// How long `close` waits for the peer's close frame (and, on the client, for the server to
    /// close TCP) before dropping the connection. Default: 10 s.
    pub close_timeout: Duration,
    /// Built-in keepalive: ping every so often and drop the connection when no pong comes back
    /// in time (the seed README's "detect broken connections" recipe, built in). Default: off,
    /// as in the seed; a server facing the Internet usually wants it on.
    pub heartbeat: Option<Heartbeat>,
}

/// Keepalive settings ([`Config::heartbeat`]).
///
/// `interval` after the connection opens, and `interval` after each ping that was answered, a
/// ping goes out; if its pong hasn't arrived `timeout` later, the connection is dropped
/// without a close handshake (the peer is presumed dead) and `recv` fails with
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout). A dead peer is therefore detected
/// within `interval + timeout`. Each answered ping measures the round-trip time
/// ([`WebSocket::rtt`](crate::WebSocket::rtt)).
///
/// The timers run while the connection is being read (`recv`, the `Stream`, or the reader
/// half after a split), which is how every connection that expects messages is used, and
/// while a send or flush waits for a peer to read (which ends with the timeout when the peer
/// is gone).
///
/// ```
/// use std::time::Duration;
/// use enim_labore_occaecati::config::{Config, Heartbeat};
///
/// let mut config = Config::default();
/// config.heartbeat = Some(Heartbeat::new(Duration::from_secs(30), Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time from the last answered ping (or the start) to the next ping.
    pub interval: Duration,
    /// How long a ping may go unanswered.
    pub timeout: Duration,
}

impl Heartbeat {
    /// Pings every `interval`, waiting up to `timeout` for each pong.
    pub fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        Heartbeat { interval, timeout }
    }
}

impl Config {
    /// Checks that the values can work: every size limit and the heartbeat's times above zero
    /// (a zero heartbeat interval would ping as fast as the peer answers; a zero limit refuses
    /// every message). Server start, client connect and
    /// [`WebSocket::try_from_raw`](crate::WebSocket::try_from_raw) call it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), naming the first value out
    /// of range.
    pub fn validate(&self) -> crate::Result<()> {
        let check = |ok: bool, what: &str| require(ok, "Config", what);
        check(
            self.max_message_size > 0,
            "max_message_size must be above 0",
        )?;
        check(self.max_frame_size > 0, "max_frame_size must be above 0")?;
        check(self.max_fragments > 0, "max_fragments must be above 0")?;
        if let Some(heartbeat) = &self.heartbeat {
            check(
                !heartbeat.interval.is_zero(),
                "heartbeat interval must be above 0",
            )?;
            check(
                !heartbeat.timeout.is_zero(),
                "heartbeat timeout must be above 0",
            )?;
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_message_size: 64 << 20,
            max_frame_size: 64 << 20,
            max_fragments: 1 << 20,
            validate_utf8: true,
            auto_pong: true,
            receive_control_frames: false,
            max_write_buffer: 128 << 10,
            close_timeout: Duration::from_secs(10),
            heartbeat: None,
            deliver_fragments: false,
        }
    }
}

/// Limits of the HTTP opening handshake (both roles).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandshakeLimits {
    /// Largest request or response head (request line and headers), in bytes: 431 on the
    /// server when exceeded. Default: 16 KiB, Node's default.
    pub max_head_size: usize,
    /// Most headers in a head: 431 on the server when exceeded. Default: 100.
    pub max_headers: usize,
    /// Largest body of a non-101 response the client reads to report it. Default: 64 KiB.
    pub max_error_body: usize,
    /// Time allowed for the whole handshake; a peer that trickles its head or never finishes it
    /// is dropped. Default: 10 s.
    pub timeout: Duration,
}

impl HandshakeLimits {
    /// Checks that a handshake can succeed within the limits: a head of at least 256 bytes, at
    /// least one header, a timeout above zero. Server start and client connect call it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), naming the first value out
    /// of range.
    pub fn validate(&self) -> crate::Result<()> {
        let check = |ok: bool, what: &str| require(ok, "HandshakeLimits", what);
        check(
            self.max_head_size >= 256,
            "max_head_size must be at least 256",
        )?;
        check(self.max_headers > 0, "max_headers must be above 0")?;
        check(!self.timeout.is_zero(), "timeout must be above 0")
    }
}

impl Default for HandshakeLimits {
    fn default() -> HandshakeLimits {
        HandshakeLimits {
            max_head_size: 16 << 10,
            max_headers: 100,
            max_error_body: 64 << 10,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `Ok` when `ok`, else the `InvalidInput` error naming `owner`'s field and its rule.
fn require(ok: bool, owner: &str, what: &str) -> crate::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid_input(format!("{owner}: {what}")))
    }
}

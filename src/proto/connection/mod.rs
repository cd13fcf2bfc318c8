//! The sans-I/O connection: bytes in, events and bytes out, the time told by its caller.
//!
//! [`Connection`] owns every protocol rule of an open connection and knows nothing of sockets
//! or clocks. Its contract with a transport (TCP, TLS, a Unix socket, an HTTP/2 stream, a test
//! pipe) is small:
//!
//! - **input**: bytes into [`read_buffer`](Connection::read_buffer) (or
//!   [`receive_data`](Connection::receive_data)), then [`next_message`](Connection::next_message)
//!   until it answers `Ok(None)`; the end of the stream to
//!   [`receive_eof`](Connection::receive_eof);
//! - **output**: the bytes [`output_slices`](Connection::output_slices) shows, marked written with
//!   [`consume_output`](Connection::consume_output);
//! - **time**: while [`needs_clock`](Connection::needs_clock), the time to
//!   [`handle_timeout`](Connection::handle_timeout) on each wake-up and one timer at
//!   [`poll_timeout`](Connection::poll_timeout);
//! - **the end**: once [`is_read_closed`](Connection::is_read_closed), write what is owed, wait
//!   while [`awaits_transport_close`](Connection::awaits_transport_close), close the transport,
//!   and report [`failure`](Connection::failure) (`None`: a clean close).
//!
//! It answers pings, echoes close frames, sends heartbeat pings, and when the peer breaks the
//! protocol queues the close frame with the right code before reporting the error. The files:
//! `receive` parses frames into messages, `send` frames messages, `output` hands the bytes to
//! write, `clock` keeps the deadlines (close handshake, heartbeat, idle compressor).

mod clock;
mod output;
mod receive;
mod send;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::deflate::codec::{Compressor, Decompressor};
use crate::deflate::{DeflateConfig, Negotiated};
use crate::proto::close::CloseCode;
use crate::proto::error::Failure;
use crate::proto::utf8::Utf8Validator;

use clock::HeartbeatState;
use receive::{IncomingFrame, IncomingMessage};

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

/// A generator of masking keys.
pub type MaskGenerator = Box<dyn FnMut() -> [u8; 4] + Send + Sync>;

/// permessage-deflate state of a connection; compressors are created on first use.
struct DeflateState {
    params: Negotiated,
    config: DeflateConfig,
    compressor: Option<Compressor>,
    decompressor: Option<Decompressor>,
    /// When the compressor, unused until then, is compacted (see `clock`).
    compaction_at: Option<std::time::Instant>,
}

/// The protocol state machine of one connection.
pub struct Connection {
    role: Role,
    /// Shared: a server's connections hold one configuration, not a copy each.
    config: Arc<Config>,
    read_buf: BytesMut,
    /// A frame partly received.
    frame: Option<Box<IncomingFrame>>,
    /// A message of several frames, or compressed, being received.
    message: Option<Box<IncomingMessage>>,
    utf8: Utf8Validator,
    staging: BytesMut,
    queue: VecDeque<Bytes>,
    queued_len: usize,
    /// Boxed: owed only to a peer that pings without reading.
    pending_pong: Option<Box<Bytes>>,
    /// The fragmented message being sent, if any: its kind, and whether it is compressed (its
    /// first frame had RSV1).
    sending: Option<(DataKind, bool)>,
    close_sent: bool,
    close_received: bool,
    /// The transport ended (the peer closed it, or it failed).
    eof_received: bool,
    /// A deadline passed (close handshake or heartbeat): nothing more is read or written.
    timed_out: bool,
    failure: Option<Failure>,
    /// Boxed again: a server has none, and the thin pointer halves what it costs there.
    mask_generator: Option<Box<MaskGenerator>>,
    /// Boxed: most connections have none, and a connection is in memory for all its life.
    deflate: Option<Box<DeflateState>>,
    /// Boxed for the same reason.
    heartbeat: Option<Box<HeartbeatState>>,
    /// When the close handshake times out; armed once it starts.
    /// Boxed: set once, by the few connections that are closing.
    close_deadline: Option<Box<std::time::Instant>>,
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
    /// A connection in the open state, with `config` (a `Config`, or an `Arc<Config>` many
    /// connections share). A client draws masking keys from the operating system's random
    /// source through a ChaCha-based generator.
    pub fn new(role: Role, config: impl Into<Arc<Config>>) -> Connection {
        let config = config.into();
        let mask_generator: Option<Box<MaskGenerator>> = match role {
            Role::Client => {
                let mut rng = rand::rngs::StdRng::from_os_rng();
                Some(Box::new(Box::new(move || rng.random())))
            }
            Role::Server => None,
        };
        let heartbeat = config
            .heartbeat
            .map(|settings| Box::new(HeartbeatState::new(settings)));
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
            sending: None,
            close_sent: false,
            close_received: false,
            eof_received: false,
            timed_out: false,
            failure: None,
            mask_generator,
            deflate: None,
            heartbeat,
            close_deadline: None,
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
            compaction_at: None,
        }));
        self
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub fn deflate_params(&self) -> Option<&Negotiated> {
        self.deflate.as_ref().map(|d| &d.params)
    }

    /// Replaces the source of masking keys (for tests that need fixed bytes).
    pub fn with_mask_generator(mut self, generator: MaskGenerator) -> Connection {
        self.mask_generator = Some(Box::new(generator));
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
        if self.failure.is_some()
            || self.timed_out
            || self.eof_received
            || (self.close_sent && self.close_received)
        {
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

    /// The transport's stream ended: the peer closed it, or reading or writing failed. Before
    /// the peer's close frame, that is an abnormal closure (1006).
    pub fn receive_eof(&mut self) {
        self.eof_received = true;
        if !self.close_received && self.failure.is_none() && !self.timed_out {
            self.failure = Some(Failure::AbnormalClosure);
        }
        self.frame = None;
        self.message = None;
    }

    /// Whether no more messages will come: the peer's close frame arrived, the connection
    /// failed, the stream ended or a deadline passed. The transport then writes what is owed
    /// and closes (see [`awaits_transport_close`](Connection::awaits_transport_close)).
    pub fn is_read_closed(&self) -> bool {
        self.close_received || self.failure.is_some() || self.eof_received || self.timed_out
    }

    /// Whether, its output written, the transport should wait for the peer to close it before
    /// closing it too: a client after a clean close handshake (RFC 6455 §7.1.1: the server
    /// closes the TCP connection first), until the stream ends or the close deadline passes.
    /// Otherwise the transport is closed as soon as the output is written.
    pub fn awaits_transport_close(&self) -> bool {
        self.role == Role::Client
            && self.close_sent
            && self.close_received
            && self.failure.is_none()
            && !self.eof_received
            && !self.timed_out
    }

    /// Whether a deadline passed: what was owed was dropped, and the transport should be closed
    /// at once, without waiting to write.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Why the connection ended other than with a clean close handshake, once it has (or is
    /// ending): a protocol error, the stream's end before the close frame, a timeout.
    pub fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// The close code to report once the transport ended: `None` after a clean close
    /// handshake, the code sent for a protocol error, 1006 for the other failures.
    pub fn abnormal_close_code(&self) -> Option<CloseCode> {
        self.failure.map(Failure::close_code)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod transport_tests;

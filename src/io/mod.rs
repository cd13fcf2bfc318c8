//! The tokio driver: [`WebSocket`] over any `AsyncRead + AsyncWrite + Unpin` stream.
//!
//! It moves bytes between the stream and the sans-I/O
//! [`Connection`](crate::proto::connection::Connection), arms one timer at the deadline the
//! core asks for, and closes the stream when the core says so; every protocol decision (close
//! order, timeouts, heartbeats, abnormal closes) is the core's.
//!
//! # Writes
//! Small frames are coalesced in one buffer and large payloads written with vectored writes,
//! without copying them. [`WebSocket::feed`] queues a message without writing; whatever is queued
//! is written by the next [`send`](WebSocket::send) or [`flush`](WebSocket::flush), and by
//! [`recv`](WebSocket::recv) before it waits for the network. An echo loop built from `recv`
//! and `feed` therefore makes one write per batch of messages read, not one per message.
//!
//! # Backpressure
//! `send` and `feed` wait while more than [`Config::max_write_buffer`] bytes are buffered, and
//! `recv` stops reading from a peer that doesn't read the replies it causes (pongs, echoes) while
//! the buffer is over that mark, so memory stays bounded.
//!
//! # Files
//! `websocket` holds the type and its methods; `receive` the receive loop, `read_buffer` the
//! read buffers (their growth and the per-thread spares), `write` the writes, `timer` the one
//! timer, `finish` the close sequence, `outbox` messages queued from other tasks (server
//! broadcasts), `pause` reads paused on request; `split` and `byte_stream` the adapters.
//!
//! [`Config::max_write_buffer`]: crate::Config::max_write_buffer

mod byte_stream;
mod finish;
pub(crate) mod outbox;
mod pause;
mod read_buffer;
mod receive;
mod split;
mod timer;
mod websocket;
mod write;

pub use byte_stream::ByteStream;
pub(crate) use outbox::{Outbox, Outgoing};
pub use pause::PauseHandle;
pub use split::{WsReader, WsWriter};
pub use websocket::{Feed, Recv, WebSocket};

#[cfg(test)]
mod tests;

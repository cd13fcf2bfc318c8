//! # enim-labore-occaecati
//!
//! A WebSocket (RFC 6455) client and server for tokio, built on a sans-I/O protocol core.
//!
//! - [`proto`]: the sans-I/O protocol core — the [`Connection`](proto::Connection) state
//!   machine (frames, masking, UTF-8, close codes, limits, the close handshake and its
//!   deadlines), for anyone building a transport of their own. No I/O, no clock.
//! - [`handshake`]: the `Sec-WebSocket-Accept` computation, for HTTP servers of your own (the
//!   validation itself is shared by the server, the client and the integrations).
//! - [`WebSocket`]: the tokio layer over any `AsyncRead + AsyncWrite + Unpin`.
//! - [`server`]: binds a port, authenticates, tracks clients, broadcasts, shuts down.
//! - [`client`]: connects to `ws://`, `wss://` and `ws+unix:` URLs with subprotocols, headers,
//!   redirects, timeouts and proxies (HTTP `CONNECT`, SOCKS5).
//! - [`tls`]: rustls settings for `wss://` clients and TLS servers.
//! - [`integrations`]: upgrades on a hyper server and an axum extractor, through the server's
//!   own decision path.
//! - [`deflate`]: permessage-deflate (RFC 7692) negotiation and codec: off on the server unless
//!   [`ServerBuilder::deflate`](server::ServerBuilder::deflate), offered by the client.
//! - [`io::ByteStream`]: a connection as `AsyncRead + AsyncWrite`
//!   ([`WebSocket::into_byte_stream`]).
//!
//! ## Quick start
//!
//! ```no_run
//! use enim_labore_occaecati::{connect, server::Server};
//!
//! # async fn run() -> enim_labore_occaecati::Result<()> {
//! // An echo server on a free port.
//! let server = Server::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}", server.local_addr()?);
//! tokio::spawn(server.serve(|mut ws, _client| async move {
//!     while let Ok(Some(message)) = ws.recv().await {
//!         if ws.feed(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }));
//!
//! // A client.
//! let (mut ws, _) = connect(&url).await?;
//! ws.send("hello").await?;
//! assert_eq!(ws.recv().await?.unwrap().as_text(), Some("hello"));
//! ws.close(None).await?;
//! # Ok(()) }
//! ```
//!
//! ## Features
//! - `tls` (default): `wss://` and TLS servers on rustls with the ring provider.
//! - `native-roots`: trust the operating system's root certificates too.
//! - `hyper`: [`integrations::hyper`], upgrades of hyper 1 requests.
//! - `axum`: [`integrations::axum`], the `WebSocketUpgrade` extractor.
//!
//! Proxies, Unix domain sockets and heartbeats ([`config::Heartbeat`]) need no feature.
//!
//! ## Limits
//! Every limit has a safe default and an option: [`Config`] (message, frame and fragment
//! limits, write buffer, close timeout) and [`HandshakeLimits`] (head size, header count,
//! handshake timeout). A length a peer declares is checked before anything is buffered.
//!
//! ## Errors
//! One [`Error`] type. A protocol violation by the peer is reported after the close frame with
//! its code (1002, 1007, 1008, 1009) was sent; a clean close is not an error: `recv` answers
//! `Ok(None)`.
//!
//! ## Concurrency and cancel safety
//! A [`WebSocket`] is used by one task at a time through `&mut`; [`WebSocket::split`] gives a
//! reader and a writer for two tasks. What dropping each method's future does (in a
//! `select!`, a timeout, an aborted task), as `tests/cancel_safety.rs` checks by dropping it at
//! each point where it is pending over a connection that stalls every other read and write:
//!
//! | Method | If its future is dropped before it finishes |
//! |---|---|
//! | `recv`, `recv_many`, the `Stream`; [`WsReader::recv`](io::WsReader::recv) | Nothing is lost: a message is handed out only by the poll that returns it; the next call gets it. |
//! | `send`, `feed`, `send_with_compression`, `send_prepared`, `feed_prepared`, `ping`, `pong`; [`WsWriter::send`](io::WsWriter::send), [`feed`](io::WsWriter::feed) | The message is queued whole by the first poll that finds the write buffer under [`Config::max_write_buffer`] (the first poll, unless the buffer is over it), and once queued it is written by any later `send`, `flush`, `recv` or `close`. Dropped before that, nothing was queued. A frame is never torn. |
//! | `send_fragment`, `send_fragment_with_compression` | As `send`, per fragment. A message must go on with its next fragment, so a caller that may drop one should know it was queued: it is, by the first poll, when `buffered_amount()` is under the mark before the call. |
//! | `flush`; [`WsWriter::flush`](io::WsWriter::flush) | What it wrote stays written; the rest stays queued for the next write. |
//! | `close`; [`WsWriter::close`](io::WsWriter::close) | Its first poll queues the close frame. The handshake goes on with the next `close` or `recv`, within the close deadline that started then. |
//! | `terminate` | The connection is finished either way (`recv` answers `Ok(None)`, nothing more is sent); the stream may stay open until the `WebSocket` is dropped. |
//! | [`ByteStream`](io::ByteStream) reads and writes | `AsyncRead`/`AsyncWrite`: a poll that returned `Pending` took no bytes and queued none. |
//! | [`connect`], [`ClientBuilder::connect`], `connect_on`; [`ServerBuilder::accept`](server::ServerBuilder::accept) and the server's own accept loop | The half-made connection is closed; nothing stays registered on either side. Try again. |

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod broker;
pub mod client;
pub mod config;
pub mod deflate;
pub mod error;
pub mod handshake;
#[cfg(feature = "http2")]
pub mod http2;
pub mod integrations;
pub mod io;
pub mod proto;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

/// Internal parsers and codecs for the project's own tests, benchmarks and fuzz targets.
/// Not part of the public API: no documentation, no semver promise.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::deflate::codec::{Compressor, Decompressor, TAIL};
    pub use crate::deflate::shared::compress_alone;
    pub use crate::proto::mask::{apply_mask, apply_mask_naive};
}

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;

pub use client::{connect, ClientBuilder};
pub use config::{Config, HandshakeLimits};
pub use error::{Error, ErrorKind, HandshakeError, ProtocolError, ProxyFailure, Result};
pub use io::WebSocket;
pub use proto::{
    CloseCode, CloseFrame, DataKind, Fragment, Message, PreparedMessage, Role, State, Utf8Bytes,
};

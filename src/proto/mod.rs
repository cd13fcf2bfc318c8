//! The sans-I/O protocol core, for building a transport of your own: frames, masking, UTF-8,
//! close codes and the [`Connection`] state machine. Nothing here touches a socket or a clock.
//!
//! A transport feeds the bytes it reads to a [`Connection`], writes the bytes it hands out,
//! tells it of the end of the stream and of the time, and closes the stream when it says so;
//! `ARCHITECTURE.md` ("The transport contract") lists the five steps. The crate's
//! [`WebSocket`](crate::WebSocket) is that transport for any tokio stream.

pub(crate) mod close;
pub(crate) mod connection;
pub(crate) mod error;
pub(crate) mod frame;
pub(crate) mod mask;
pub(crate) mod message;
pub(crate) mod prepared;
pub(crate) mod spares;
pub(crate) mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Connection, DataKind, MaskGenerator, Role, State};
pub use error::{Failure, ProtocolError, SendError};
pub use message::{Fragment, Message, NotUtf8, Utf8Bytes};
pub use prepared::PreparedMessage;

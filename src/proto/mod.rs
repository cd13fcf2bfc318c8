//! The sans-I/O protocol core: frames, masking, UTF-8, close codes and the connection state
//! machine. Nothing here touches a socket or a clock.

pub mod close;
pub mod connection;
pub mod error;
pub mod frame;
pub mod mask;
pub mod message;
pub mod utf8;

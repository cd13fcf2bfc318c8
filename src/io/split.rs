//! Reader and writer halves of a [`WebSocket`], usable from two tasks.
//!
//! Both halves share the connection behind a mutex that is held only inside one `poll` call,
//! never across an `.await`, so neither half blocks the other. Writes made by either half wake
//! the other if it was waiting for the stream to accept bytes.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::error::{Error, Result};
use crate::proto::close::CloseFrame;
use crate::proto::message::Message;

type Shared<S> = Arc<Mutex<WebSocket<S>>>;

fn lock<S>(shared: &Shared<S>) -> MutexGuard<'_, WebSocket<S>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn split<S>(ws: WebSocket<S>) -> (WsReader<S>, WsWriter<S>) {
    let shared = Arc::new(Mutex::new(ws));
    (
        WsReader {
            shared: shared.clone(),
        },
        WsWriter { shared },
    )
}

/// The receiving half of a split [`WebSocket`]. It also answers pings and echoes close frames.
#[derive(Debug)]
pub struct WsReader<S> {
    shared: Shared<S>,
}

/// The sending half of a split [`WebSocket`]. Clone it to send from several tasks.
#[derive(Debug)]
pub struct WsWriter<S> {
    shared: Shared<S>,
}

impl<S> Clone for WsWriter<S> {
    fn clone(&self) -> Self {
        WsWriter {
            shared: self.shared.clone(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    /// Receives the next message; see [`WebSocket::recv`].
    ///
    /// # Errors
    /// As [`WebSocket::recv`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is handed out only by the poll that returns it.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        poll_fn(|cx| lock(&self.shared).poll_recv(cx))
            .await
            .transpose()
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    /// Gives both halves back if they don't belong together.
    pub fn reunite(
        self,
        writer: WsWriter<S>,
    ) -> std::result::Result<WebSocket<S>, (Self, WsWriter<S>)> {
        if !Arc::ptr_eq(&self.shared, &writer.shared) {
            return Err((self, writer));
        }
        drop(writer);
        match Arc::try_unwrap(self.shared) {
            Ok(mutex) => Ok(mutex.into_inner().unwrap_or_else(|e| e.into_inner())),
            Err(shared) => Err((
                WsReader {
                    shared: shared.clone(),
                },
                WsWriter { shared },
            )),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Sends a message and writes everything queued; see [`WebSocket::send`].
    ///
    /// # Errors
    /// As [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message; see [`WebSocket::feed`].
    ///
    /// # Errors
    /// As [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::feed`].
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn feed(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        poll_fn(|cx| lock(&self.shared).poll_ready_send(cx)).await?;
        lock(&self.shared).queue(&message)
    }

    /// Writes everything queued.
    ///
    /// # Errors
    /// An I/O error.
    ///
    /// # Cancel safety
    /// As [`WebSocket::flush`].
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn flush(&self) -> Result<()> {
        poll_fn(|cx| lock(&self.shared).poll_write_timed(cx)).await
    }

    /// Sends a close frame (once: a later call only writes it, if it isn't written yet); the
    /// reader sees the stream end when the peer answers.
    ///
    /// # Errors
    /// As [`WebSocket::close`], without the wait.
    ///
    /// # Cancel safety
    /// The first poll queues the close frame; a later `close` or `flush` writes it.
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn close(&self, frame: Option<CloseFrame>) -> Result<()> {
        {
            let mut ws = lock(&self.shared);
            if !ws.conn.close_sent() {
                ws.conn.send_close(frame.as_ref())?;
            }
        }
        self.flush().await
    }

    /// Bytes queued but not yet written.
    pub fn buffered_amount(&self) -> usize {
        lock(&self.shared).buffered_amount()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReader<S> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        lock(&self.shared).poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsWriter<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        lock(&self.shared).poll_ready_send(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        lock(&self.shared).queue(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        lock(&self.shared).poll_write_timed(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut *lock(&self.shared)).poll_close(cx)
    }
}

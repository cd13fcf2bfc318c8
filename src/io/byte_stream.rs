//! A [`WebSocket`] as a byte stream (the seed's `createWebSocketStream`).
//!
//! Each write becomes one binary message; reads yield the bytes of incoming messages (text or
//! binary) in order, with message boundaries dropped. A message is only received when the
//! reader asks for more bytes, so a slow reader holds back the peer (read backpressure), and
//! the write buffer's limit holds back a fast writer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::WebSocket;
use crate::error::{Error, ErrorKind};
use crate::proto::close::CloseFrame;
use crate::proto::message::Message;

/// A [`WebSocket`] wrapped as `AsyncRead + AsyncWrite`; see the module docs. Made by
/// [`WebSocket::into_byte_stream`].
///
/// ```no_run
/// # async fn run() -> enim_labore_occaecati::Result<()> {
/// let (ws, _) = enim_labore_occaecati::connect("ws://127.0.0.1:8080").await?;
/// let mut stream = ws.into_byte_stream();
/// let mut stdout = tokio::io::stdout();
/// tokio::io::copy(&mut stream, &mut stdout).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ByteStream<S> {
    ws: WebSocket<S>,
    pending: Bytes,
    read_done: bool,
}

fn io_error(error: Error) -> io::Error {
    let kind = match error.kind() {
        ErrorKind::Io => io::ErrorKind::Other,
        ErrorKind::Timeout => io::ErrorKind::TimedOut,
        ErrorKind::AbnormalClosure | ErrorKind::Closed => io::ErrorKind::ConnectionAborted,
        ErrorKind::Protocol | ErrorKind::Handshake => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps the connection as a byte stream.
    pub fn into_byte_stream(self) -> ByteStream<S> {
        ByteStream {
            ws: self,
            pending: Bytes::new(),
            read_done: false,
        }
    }
}

impl<S> ByteStream<S> {
    /// The connection, for its state and options.
    pub fn get_ref(&self) -> &WebSocket<S> {
        &self.ws
    }

    /// Unwraps the connection; bytes of a partly read message are returned with it.
    pub fn into_inner(self) -> (WebSocket<S>, Bytes) {
        (self.ws, self.pending)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() && !this.read_done {
            match ready!(this.ws.poll_recv(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(text))) => this.pending = text.into_bytes(),
                // Fragments as they arrive, or unchecked text: bytes all the same.
                Some(Ok(Message::Fragment(fragment))) => this.pending = fragment.data,
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    this.read_done = true;
                    return Poll::Ready(Err(io_error(error)));
                }
                None => this.read_done = true,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.ws.poll_ready_send(cx)).map_err(io_error)?;
        this.ws
            .queue(&Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_write_timed(cx).map_err(io_error)
    }

    /// Sends a normal close frame and writes everything queued; reading goes on until the
    /// peer's close frame ends the stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ws.conn.close_sent() {
            let _ = this.ws.conn.send_close(Some(&CloseFrame::new(1000u16, "")));
        }
        this.ws.poll_write_timed(cx).map_err(io_error)
    }
}

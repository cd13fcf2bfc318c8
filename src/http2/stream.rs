//! One HTTP/2 stream as a byte stream (`AsyncRead + AsyncWrite`), so the WebSocket driver runs
//! on it as on a socket.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::io_error;

/// The WebSocket's side of one HTTP/2 stream. Received bytes return their flow-control credit
/// as the driver takes them; writes wait for the peer's credit. Shutting down sends
/// END_STREAM. Dropped before that, the stream is reset with CANCEL; dropped after it while the
/// peer's side is still open, the stream lingers (see [`Http2Config::linger`](super::Http2Config::linger)).
#[derive(Debug)]
pub struct Http2Stream {
    send: SendStream<Bytes>,
    /// `None` only once dropped (it may move to the lingering task).
    recv: Option<RecvStream>,
    /// A DATA frame's bytes not yet taken by the reader.
    pending: Bytes,
    ended: bool,
    linger: Duration,
    /// A client's share of its pooled connection: the pool counts the streams open on each
    /// connection by these.
    pool_slot: Option<Arc<()>>,
}

impl Http2Stream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream, linger: Duration) -> Http2Stream {
        Http2Stream {
            send,
            recv: Some(recv),
            pending: Bytes::new(),
            ended: false,
            linger,
            pool_slot: None,
        }
    }

    /// A client stream, counted against its pooled connection while it lives.
    pub(crate) fn pooled(mut self, slot: Arc<()>) -> Http2Stream {
        self.pool_slot = Some(slot);
        self
    }

    /// The HTTP/2 stream id.
    pub fn stream_id(&self) -> u32 {
        self.send.stream_id().as_u32()
    }

    /// Waits for credit to send, and answers how many bytes of `want` may be sent now.
    fn poll_credit(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        if self.ended {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        self.send.reserve_capacity(want);
        loop {
            let credit = self.send.capacity();
            if credit > 0 {
                return Poll::Ready(Ok(credit.min(want)));
            }
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                None => return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
}

impl AsyncRead for Http2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let Some(recv) = this.recv.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while this.pending.is_empty() {
            match ready!(recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                // END_STREAM, RST_STREAM or a failed connection all end the byte stream; the
                // core then reports 1006 unless a close frame came first (RFC 6455 §7.1.5).
                Some(Err(_)) | None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        // The driver holds these bytes now (its buffer is bounded): the peer may send more.
        let _ = recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Http2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let n = ready!(this.poll_credit(cx, buf.len()))?;
        this.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let n = ready!(this.poll_credit(cx, total))?;
        // One DATA frame for what the driver batched, as one write would be on a socket.
        let mut data = BytesMut::with_capacity(n);
        for slice in bufs {
            let take = slice.len().min(n - data.len());
            data.extend_from_slice(&slice[..take]);
            if data.len() == n {
                break;
            }
        }
        this.send
            .send_data(data.freeze(), false)
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // The connection's task writes what was queued, in order with the other streams.
        Poll::Ready(Ok(()))
    }

    /// Sends END_STREAM (once).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.ended {
            this.ended = true;
            this.send.send_data(Bytes::new(), true).map_err(io_error)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Http2Stream {
    fn drop(&mut self) {
        if !self.ended {
            // Ended without the close handshake's END_STREAM: an abnormal close.
            self.send.send_reset(Reason::CANCEL);
            return;
        }
        // Our side is closed but the peer's is open: dropping both halves now would reset the
        // stream, and a reset discards the frames still queued for it (the close frame among
        // them). The receiving half waits, in a task, for the peer's END_STREAM (which comes once
        // the peer has our close frame) or the linger time, whichever is first.
        let Some(mut recv) = self.recv.take() else {
            return;
        };
        if recv.is_end_stream() {
            return;
        }
        let _ = recv.flow_control().release_capacity(self.pending.len());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let linger = self.linger;
        let pool_slot = self.pool_slot.take();
        runtime.spawn(async move {
            let _pool_slot = pool_slot;
            let drain = async {
                while let Some(Ok(data)) = recv.data().await {
                    let _ = recv.flow_control().release_capacity(data.len());
                }
            };
            let _ = tokio::time::timeout(linger, drain).await;
        });
    }
}

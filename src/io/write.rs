//! Writes: the core's output to the stream, coalesced small frames as one buffer, large
//! payloads with vectored writes, and the wait for room under the write buffer's mark.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::error::{Error, Result};

/// Buffers one vectored write takes at most.
const WRITE_SLICES: usize = 64;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Writes queued output until it is all written (and flushed) or the stream would block.
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while self.conn.has_output() {
            // Small frames are all in one buffer: written as it is, without a slice list.
            let poll = match self.conn.contiguous_output() {
                Some(bytes) => Pin::new(&mut self.stream).poll_write(cx, bytes),
                None => {
                    let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
                    match self.conn.output_slices(&mut slices) {
                        1 => Pin::new(&mut self.stream).poll_write(cx, &slices[0]),
                        n => Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n]),
                    }
                }
            };
            match poll {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(
                        std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                    ))
                }
                Poll::Ready(Ok(written)) => {
                    self.conn.consume_output(written);
                    self.publish_staged();
                    if let Some(rare) = self.rare.as_mut() {
                        for waker in rare.write_waiters.drain(..) {
                            waker.wake();
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    let waiters = &mut self.rare().write_waiters;
                    if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
        Pin::new(&mut self.stream)
            .poll_flush(cx)
            .map_err(Error::from)
    }

    /// [`poll_write_out`](WebSocket::poll_write_out) for the application's waits (send, flush):
    /// while the peer doesn't read, the core's clock keeps running. A peer that stopped reading
    /// stopped answering pings too, so the heartbeat (or a close deadline) ends the wait with
    /// its timeout instead of leaving it forever.
    pub(super) fn poll_write_timed(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let poll = self.poll_write_out(cx);
        if poll.is_pending() && self.conn.needs_clock() {
            self.poll_clock(cx);
            if let Some(failure) = self.conn.failure().filter(|_| self.conn.is_timed_out()) {
                return Poll::Ready(Err(failure.into()));
            }
        }
        poll
    }

    /// Ready once a message may be queued: the connection is open for sending and the write
    /// buffer is under its mark (writing until it is).
    pub(crate) fn poll_ready_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.conn.close_sent() {
            return Poll::Ready(Err(Error::closed()));
        }
        self.poll_write_under_mark(cx)
    }

    /// Writes until the write buffer is under its mark (with the clock running, as
    /// `poll_write_timed`).
    pub(crate) fn poll_write_under_mark(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while self.is_over_write_mark() {
            ready!(self.poll_write_timed(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

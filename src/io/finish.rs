//! The close sequence, once the core says no more messages will come (the peer's close frame,
//! a protocol error, the stream's end, a deadline): write what is owed, hand out the peer's
//! close frame if asked, wait for the server to close the stream if the core says so, close
//! the stream, report the outcome.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::error::Result;
use crate::proto::message::Message;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    pub(super) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            // The close deadline bounds every wait below.
            self.poll_clock(cx);
            if self.conn.is_timed_out() {
                // Nothing more is owed or awaited: close at once, without waiting to.
                let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
                return self.finished(cx);
            }
            if self.conn.has_output() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    // The stream is gone: nothing more can be written or read.
                    Poll::Ready(Err(_)) => self.conn.receive_eof(),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if let Some(message) = self.rare.as_mut().and_then(|r| r.close_message.take()) {
                return Poll::Ready(Some(Ok(message)));
            }
            if self.conn.awaits_transport_close() {
                // RFC 6455 §7.1.1: the server closes first; what still arrives is discarded.
                let buf = self.conn.read_buffer();
                buf.clear();
                buf.reserve(256);
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.conn.receive_eof(),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => return Poll::Pending,
                }
                continue;
            }
            if Pin::new(&mut self.stream).poll_shutdown(cx).is_pending() {
                return Poll::Pending;
            }
            return self.finished(cx);
        }
    }

    fn finished(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.finished = true;
        self.timer = None;
        *self.conn.read_buffer() = BytesMut::new();
        match self.conn.failure() {
            Some(failure) => Poll::Ready(Some(Err(failure.into()))),
            None => Poll::Ready(None),
        }
    }
}

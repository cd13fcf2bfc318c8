//! The receive loop: messages parsed out of what the stream delivers, replies written when the
//! input runs dry (one write per burst), reading paused while the peer doesn't read what it is
//! owed, and the close sequence once the core says no more messages will come.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::error::Result;
use crate::proto::message::Message;

/// Output owed after which `recv` writes before reading more.
const COALESCE_MAX: usize = 64 << 10;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The receive loop; see [`recv`](WebSocket::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if self.finished
            || self
                .rare
                .as_ref()
                .is_some_and(|r| r.deferred_error.is_some())
        {
            let deferred = self.rare.as_mut().and_then(|r| r.deferred_error.take());
            return Poll::Ready(deferred.map(Err));
        }
        if self.outbox.is_some() {
            self.drain_outbox(cx);
        }
        if self.conn.needs_clock() {
            self.poll_clock(cx);
        }
        // Once a close frame went out (or the connection is over), reading goes on whatever
        // the pause: the close handshake and its deadline need it.
        if let Some(pause) = self.rare.as_ref().and_then(|r| r.pause.as_ref()) {
            if !self.conn.close_sent() && !self.conn.is_read_closed() && pause.poll_paused(cx) {
                // Nothing read or handed out; what is owed still goes out.
                if self.conn.has_output() {
                    if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                        return self.fail(e);
                    }
                }
                return Poll::Pending;
            }
        }
        let deliver_control = self.conn.config().receive_control_frames;
        loop {
            // With no input buffered there is nothing to parse (a frame is never left complete
            // but not handed out): go straight to reading.
            if self.conn.has_input() {
                // A protocol error is the core's to report: it queued the close frame and the
                // connection is closed for reading; the close sequence reports it.
                if let Ok(Some(message)) = self.conn.next_message() {
                    match message {
                        Message::Text(_) | Message::Binary(_) | Message::Fragment(_) => {
                            return Poll::Ready(Some(Ok(message)))
                        }
                        Message::Close(ref frame) => {
                            self.rare().peer_close = frame.clone();
                            if deliver_control {
                                // Handed out once the echo is written (see `finish`), so an
                                // application that drops the connection on seeing it loses
                                // nothing.
                                self.rare().close_message = Some(message);
                            }
                        }
                        Message::Ping(_) | Message::Pong(_) => {
                            if deliver_control {
                                return Poll::Ready(Some(Ok(message)));
                            }
                            // More frames may already be buffered: parse before reading.
                            continue;
                        }
                    }
                }
            }
            if self.conn.is_read_closed() {
                return self.poll_finish(cx);
            }
            // Replies are written when the input runs dry (below), so everything one burst of
            // input causes goes out in one write; but not later than once COALESCE_MAX bytes
            // are owed, so a peer that never stops sending still gets its replies.
            let owed = self.conn.buffered_amount();
            if owed >= COALESCE_MAX.min(self.conn.config().max_write_buffer) {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return self.fail(e),
                    Poll::Pending => {
                        if self.conn.buffered_amount() >= self.conn.config().max_write_buffer {
                            // The peer isn't reading what we owe it: stop reading too.
                            if self.conn.needs_clock() && self.poll_clock(cx) {
                                continue;
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
            match self.poll_read_more(cx) {
                Poll::Ready(Ok(0)) => self.conn.receive_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return self.fail(e),
                Poll::Pending => {
                    if self.conn.has_output() {
                        if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                            return self.fail(e);
                        }
                    }
                    // About to wait: the deadlines may have changed during this call (a close
                    // frame, a compressed send); the timer must stand at the next one.
                    if self.conn.needs_clock() && self.poll_clock(cx) {
                        continue;
                    }
                    self.read_sizing.release_idle(&mut self.conn);
                    return Poll::Pending;
                }
            }
        }
    }

    /// An I/O error ends the connection at once: nothing more can be read or written.
    fn fail(&mut self, error: crate::Error) -> Poll<Option<Result<Message>>> {
        self.finished = true;
        self.timer = None;
        Poll::Ready(Some(Err(error)))
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let plan = self.read_sizing.prepare(&mut self.conn);
        let buf = self.conn.read_buffer();
        let stream = Pin::new(&mut self.stream);
        let poll = match plan.limit {
            None => tokio_util::io::poll_read_buf(stream, cx, buf),
            Some(limit) => tokio_util::io::poll_read_buf(
                stream,
                cx,
                &mut bytes::BufMut::limit(&mut *buf, limit),
            ),
        };
        match poll {
            Poll::Ready(Ok(n)) => {
                self.read_sizing.after_read(n, plan.room);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

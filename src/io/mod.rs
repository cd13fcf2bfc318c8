//! The tokio layer: [`WebSocket`] over any `AsyncRead + AsyncWrite + Unpin` stream.
//!
//! It moves bytes between the stream and the sans-I/O [`Connection`] and runs the close timer;
//! every protocol decision is the core's.
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

mod byte_stream;
mod split;

pub use byte_stream::ByteStream;
pub use split::{WsReader, WsWriter};

use std::future::{poll_fn, Future as _};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;
use crate::proto::close::CloseFrame;
use crate::proto::connection::{Connection, DataKind, Role, State};
use crate::proto::frame::MAX_HEADER_LEN;

/// Smallest read: big enough that small frames rarely straddle reads.
const READ_CHUNK: usize = 8 << 10;
/// Output owed after which `recv` writes before reading more.
const COALESCE_MAX: usize = 64 << 10;
/// Buffers one vectored write takes at most.
const WRITE_SLICES: usize = 64;
/// Spare read buffers kept per thread (each at most `READ_MAX_STEP` bytes).
const SPARE_READ_BUFFERS_MAX: usize = 16;

thread_local! {
    static SPARE_READ_BUFFERS: std::cell::RefCell<Vec<BytesMut>> =
        const { std::cell::RefCell::new(Vec::new()) };
}
/// Largest single reservation before the buffer holds data to justify more.
const READ_MAX_STEP: usize = 64 << 10;
/// A large frame's buffer, when full, grows to this many times the bytes it holds.
const FRAME_GROWTH: usize = 4;

/// Makes room for `additional` more bytes. A reservation larger than `READ_MAX_STEP` (only a
/// large frame asks for one) grows the buffer to exactly what is asked: `BytesMut::reserve` at
/// least doubles its allocation, which would let the capacity run ahead of the bytes received
/// and past the frame's end. Smaller ones keep `reserve`'s own growth: at most double the
/// allocation the buffer already holds, which earlier input paid for.
fn reserve_exact(buf: &mut BytesMut, additional: usize) {
    if additional <= READ_MAX_STEP {
        buf.reserve(additional);
        return;
    }
    if buf.capacity() - buf.len() >= additional || buf.try_reclaim(additional) {
        return;
    }
    let mut grown = BytesMut::with_capacity(buf.len() + additional);
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// Messages injected into a connection from outside its task (server broadcasts, shutdown).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inner: Mutex<OutboxInner>,
}

#[derive(Debug, Default)]
struct OutboxInner {
    queue: std::collections::VecDeque<Message>,
    bytes: usize,
    waker: Option<Waker>,
}

/// What happened to a message offered to a connection's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued; the connection's task writes it.
    Queued,
    /// Dropped: the connection already had its limit of undelivered bytes.
    Dropped,
}

impl Outbox {
    pub(crate) fn push(&self, message: Message, limit: usize) -> Delivery {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let len = message.len();
        // Close frames always go through: shutdown must reach slow clients too.
        if inner.bytes > 0 && inner.bytes + len > limit && !matches!(message, Message::Close(_)) {
            return Delivery::Dropped;
        }
        inner.bytes += len;
        inner.queue.push_back(message);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
        Delivery::Queued
    }
}

/// A WebSocket connection over a stream `S`, after the opening handshake.
///
/// One task may read and write through `&mut`; to read and write from two tasks, use
/// [`split`](WebSocket::split).
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    protocol: Option<String>,
    extensions: String,
    peer_close: Option<CloseFrame>,
    close_message: Option<Message>,
    pending_error: Option<Error>,
    read_eof: bool,
    finished: bool,
    close_timer: Option<Pin<Box<Sleep>>>,
    write_waiters: Vec<Waker>,
    outbox: Option<Arc<Outbox>>,
    read_chunk: usize,
    /// The read buffer is a spare, not reserved into since, so its whole allocation is known
    /// to be at most `READ_MAX_STEP`: it may go back to the spares without reclaiming it.
    read_buffer_small: bool,
    heartbeat: Option<Box<HeartbeatState>>,
    /// When an unused compressor gets compacted ([`DeflateConfig::compact_idle_after`]).
    ///
    /// [`DeflateConfig::compact_idle_after`]: crate::deflate::DeflateConfig::compact_idle_after
    deflate_idle: Option<Pin<Box<Sleep>>>,
}

/// The future of [`WebSocket::recv`]: the next message, `None` once the connection closed
/// cleanly. Cancel-safe.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Recv<'a, S> {
    ws: &'a mut WebSocket<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> std::future::Future for Recv<'_, S> {
    type Output = Result<Option<Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().ws.poll_recv(cx).map(Option::transpose)
    }
}

/// The future of [`WebSocket::feed`]: queues the message once the write buffer has room.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Feed<'a, S> {
    ws: &'a mut WebSocket<S>,
    message: Option<Message>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> std::future::Future for Feed<'_, S> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        ready!(this.ws.poll_ready_send(cx))?;
        match this.message.take() {
            Some(message) => Poll::Ready(this.ws.queue(&message)),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// The keepalive's timer and the ping it waits for ([`Config::heartbeat`]).
#[derive(Debug)]
struct HeartbeatState {
    settings: crate::config::Heartbeat,
    timer: Pin<Box<Sleep>>,
    /// The sequence number and send time of the unanswered ping.
    waiting: Option<(u64, tokio::time::Instant)>,
    sequence: u64,
    rtt: Option<std::time::Duration>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.conn)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream on which the handshake is already done.
    pub fn from_raw(stream: S, role: Role, config: Config) -> WebSocket<S> {
        WebSocket::from_parts(stream, Connection::new(role, config), BytesMut::new(), None)
    }

    /// Wraps a stream and a protocol core; `leftover` holds bytes read past the handshake.
    pub fn from_parts(
        stream: S,
        mut conn: Connection,
        leftover: BytesMut,
        protocol: Option<String>,
    ) -> WebSocket<S> {
        if !leftover.is_empty() {
            *conn.read_buffer() = leftover;
        }
        let heartbeat = conn.config().heartbeat.map(|settings| {
            Box::new(HeartbeatState {
                settings,
                timer: Box::pin(tokio::time::sleep(settings.interval)),
                waiting: None,
                sequence: 0,
                rtt: None,
            })
        });
        let extensions = conn
            .deflate_params()
            .map(|n| crate::deflate::negotiation::extension_header(conn.role(), n))
            .unwrap_or_default();
        WebSocket {
            stream,
            conn,
            protocol,
            extensions,
            peer_close: None,
            close_message: None,
            pending_error: None,
            read_eof: false,
            finished: false,
            close_timer: None,
            write_waiters: Vec::new(),
            outbox: None,
            read_chunk: READ_CHUNK,
            read_buffer_small: false,
            heartbeat,
            deflate_idle: None,
        }
    }

    pub(crate) fn set_outbox(&mut self, outbox: Arc<Outbox>) {
        self.outbox = Some(outbox);
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extensions agreed in the handshake, as a `Sec-WebSocket-Extensions` value (empty
    /// when none were).
    pub fn extensions(&self) -> &str {
        &self.extensions
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.conn.state()
    }

    /// The peer's close frame, once it has arrived (`None` too if it carried no code).
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// Bytes queued but not yet written (the seed's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount()
    }

    /// The round-trip time the last answered heartbeat ping measured ([`Config::heartbeat`]).
    pub fn rtt(&self) -> Option<std::time::Duration> {
        self.heartbeat.as_ref().and_then(|h| h.rtt)
    }

    /// The connection's options.
    pub fn config(&self) -> &Config {
        self.conn.config()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably. Reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Receives the next message. `Ok(None)` means the connection closed cleanly (the close
    /// handshake completed); [`close_frame`](WebSocket::close_frame) then tells the peer's code.
    ///
    /// Pings are answered and close frames echoed while receiving. Queued output is written
    /// before waiting for the network.
    ///
    /// # Errors
    /// A protocol violation (after the close frame with its code was sent), an I/O error, or
    /// [`ErrorKind::AbnormalClosure`] when the stream ended without a close frame.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is never lost if the future is dropped.
    pub fn recv(&mut self) -> Recv<'_, S> {
        Recv { ws: self }
    }

    /// Sends a message and writes everything queued.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] after a close frame was sent, [`ErrorKind::InvalidInput`] for an
    /// invalid control message, or an I/O error.
    ///
    /// # Cancel safety
    /// If dropped after the message was queued, it is still written by later calls.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message without writing it (unless the buffer is over its high-water mark).
    /// See the module docs for when queued messages are written.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send).
    pub fn feed(&mut self, message: impl Into<Message>) -> Feed<'_, S> {
        Feed {
            ws: self,
            message: Some(message.into()),
        }
    }

    /// Sends a message, compressed or not whatever its size (when permessage-deflate was
    /// negotiated; otherwise it is sent as is).
    ///
    /// # Errors
    /// As [`send`](WebSocket::send).
    pub async fn send_with_compression(
        &mut self,
        message: impl Into<Message>,
        compress: bool,
    ) -> Result<()> {
        let message = message.into();
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.conn
            .send_with_compression(&message, Some(compress))
            .map_err(send_error)?;
        self.flush().await
    }

    /// Sends one frame of a fragmented message; `fin` ends the message.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send), and when a message of the other kind is in progress.
    pub async fn send_fragment(
        &mut self,
        kind: DataKind,
        payload: impl Into<bytes::Bytes>,
        fin: bool,
    ) -> Result<()> {
        let payload = payload.into();
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.conn
            .send_data(kind, &payload, fin)
            .map_err(send_error)?;
        self.flush().await
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send); the payload may have at most 125 bytes.
    pub async fn ping(&mut self, payload: impl Into<bytes::Bytes>) -> Result<()> {
        self.send(Message::Ping(payload.into())).await
    }

    /// Sends an unsolicited pong (a one-way heartbeat).
    ///
    /// # Errors
    /// As [`ping`](WebSocket::ping).
    pub async fn pong(&mut self, payload: impl Into<bytes::Bytes>) -> Result<()> {
        self.send(Message::Pong(payload.into())).await
    }

    /// Writes everything queued.
    ///
    /// # Errors
    /// An I/O error.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush_all(cx)).await
    }

    /// Starts the close handshake with `code` and `reason` and waits (up to
    /// [`Config::close_timeout`]) for it to complete. Data messages that arrive meanwhile are
    /// discarded. If the peer already closed, this just completes the handshake.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a code that may not be sent or a reason over 123 bytes;
    /// [`ErrorKind::Timeout`] if the peer didn't answer in time (the stream is then shut down);
    /// I/O and protocol errors met while waiting.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        if !self.conn.close_sent() {
            self.conn
                .send_close(frame.as_ref())
                .map_err(Error::invalid_input)?;
        }
        let timeout = self.conn.config().close_timeout;
        let finish = async {
            self.flush().await?;
            while self.recv().await?.is_some() {}
            Ok(())
        };
        match tokio::time::timeout(timeout, finish).await {
            Ok(result) => result,
            Err(_) => {
                self.terminate().await;
                Err(Error::timeout("close handshake"))
            }
        }
    }

    /// Drops the connection at once, without a close handshake (the seed's `terminate`).
    pub async fn terminate(&mut self) {
        self.finished = true;
        let _ = poll_fn(|cx| Pin::new(&mut self.stream).poll_shutdown(cx)).await;
    }

    /// Splits the connection into a reader and a writer that can be used from two tasks.
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        split::split(self)
    }

    fn queue(&mut self, message: &Message) -> Result<()> {
        self.conn.send(message).map_err(send_error)
    }

    // Kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    fn drain_outbox(&mut self, cx: &mut Context<'_>) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let mut inner = outbox.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.waker = Some(cx.waker().clone());
        }
        if inner.queue.is_empty() {
            return;
        }
        inner.bytes = 0;
        let messages = std::mem::take(&mut inner.queue);
        drop(inner);
        for message in messages {
            // A message that can no longer be sent (the connection is closing) is dropped.
            let _ = self.conn.send(&message);
        }
    }

    /// Writes queued output until it is all written or the stream would block.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
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
                    if !self.write_waiters.is_empty() {
                        for waker in self.write_waiters.drain(..) {
                            waker.wake();
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {
                    if !self.write_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        self.write_waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
        Pin::new(&mut self.stream)
            .poll_flush(cx)
            .map_err(Error::from)
    }

    fn poll_ready_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.conn.close_sent() {
            return Poll::Ready(Err(Error::closed()));
        }
        while self.conn.buffered_amount() >= self.conn.config().max_write_buffer {
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_write_out(cx)
    }

    /// The receive loop; see [`recv`](WebSocket::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.outbox.is_some() {
            self.drain_outbox(cx);
        }
        if self.deflate_idle.is_some() || self.conn.deflate_params().is_some() {
            self.poll_deflate_idle(cx);
        }
        if self.heartbeat.is_some() {
            if let Some(error) = self.poll_heartbeat(cx) {
                self.finished = true;
                let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
                return Poll::Ready(Some(Err(error)));
            }
        }
        let deliver_control = self.conn.config().receive_control_frames;
        loop {
            // With no input buffered there is nothing to parse (a frame is never left complete
            // but not handed out): go straight to reading.
            let parsed = if self.conn.has_input() {
                self.conn.next_message()
            } else {
                Ok(None)
            };
            match parsed {
                Ok(Some(message)) => match message {
                    Message::Text(_) | Message::Binary(_) => return Poll::Ready(Some(Ok(message))),
                    Message::Pong(ref payload) if self.heartbeat.is_some() => {
                        self.on_pong(payload);
                        // The timer was moved: poll it so it wakes this task when due.
                        if let Some(error) = self.poll_heartbeat(cx) {
                            self.finished = true;
                            return Poll::Ready(Some(Err(error)));
                        }
                        if deliver_control {
                            return Poll::Ready(Some(Ok(message)));
                        }
                        continue;
                    }
                    Message::Close(ref frame) => {
                        self.peer_close = frame.clone();
                        if deliver_control {
                            // Handed out once the echo is written (see `poll_finish`), so an
                            // application that drops the connection on seeing it loses nothing.
                            self.close_message = Some(message);
                        }
                    }
                    Message::Ping(_) | Message::Pong(_) => {
                        if deliver_control {
                            return Poll::Ready(Some(Ok(message)));
                        }
                        // More frames may already be buffered: parse before reading.
                        continue;
                    }
                },
                Ok(None) => {}
                Err(error) => self.pending_error = Some(error.into()),
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
                    Poll::Ready(Err(e)) => {
                        self.finished = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => {
                        if self.conn.buffered_amount() >= self.conn.config().max_write_buffer {
                            // The peer isn't reading what we owe it: stop reading too.
                            return Poll::Pending;
                        }
                    }
                }
            }
            let read = match self.poll_read_more(cx) {
                Poll::Ready(read) => read,
                Poll::Pending => {
                    if self.conn.has_output() {
                        if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                            self.finished = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    self.release_idle_read_buffer();
                    return Poll::Pending;
                }
            };
            match read {
                Ok(0) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(Error::new(ErrorKind::AbnormalClosure))));
                }
                Ok(_) => {}
                Err(e) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    /// Runs the keepalive timer: sends the next ping when it is due, and answers the error that
    /// ends the connection when a ping went unanswered for the timeout.
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    fn poll_heartbeat(&mut self, cx: &mut Context<'_>) -> Option<Error> {
        let heartbeat = self.heartbeat.as_mut()?;
        while heartbeat.timer.as_mut().poll(cx).is_ready() {
            if heartbeat.waiting.is_some() {
                return Some(Error::timeout("heartbeat: no pong within the timeout"));
            }
            if self.conn.state() != State::Open {
                // Closing: the close timeout takes over.
                self.heartbeat = None;
                return None;
            }
            heartbeat.sequence += 1;
            let payload = bytes::Bytes::copy_from_slice(&heartbeat.sequence.to_be_bytes());
            let now = tokio::time::Instant::now();
            if self.conn.send(&Message::Ping(payload)).is_err() {
                self.heartbeat = None;
                return None;
            }
            heartbeat.waiting = Some((heartbeat.sequence, now));
            heartbeat
                .timer
                .as_mut()
                .reset(now + heartbeat.settings.timeout);
        }
        None
    }

    /// Arms the compaction timer of a compressor with live state, and compacts it once it went
    /// a whole delay unused. Checked, not reset, on activity: a busy connection costs one timer
    /// expiry per delay, not a timer update per message.
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    fn poll_deflate_idle(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(timer) = self.deflate_idle.as_mut() else {
                let Some(delay) = self.conn.deflate_compaction_delay() else {
                    return;
                };
                self.deflate_idle = Some(Box::pin(tokio::time::sleep(delay)));
                continue;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            if self.conn.compact_idle_deflate() {
                self.deflate_idle = None;
                return;
            }
            match self.conn.deflate_compaction_delay() {
                Some(delay) => timer.as_mut().reset(tokio::time::Instant::now() + delay),
                None => {
                    self.deflate_idle = None;
                    return;
                }
            }
        }
    }

    /// A pong arrived: if it answers the heartbeat's ping, the peer is alive.
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    fn on_pong(&mut self, payload: &[u8]) {
        let Some(heartbeat) = self.heartbeat.as_mut() else {
            return;
        };
        let Some((sequence, sent)) = heartbeat.waiting else {
            return;
        };
        if payload == sequence.to_be_bytes() {
            heartbeat.rtt = Some(sent.elapsed());
            heartbeat.waiting = None;
            heartbeat
                .timer
                .as_mut()
                .reset(sent + heartbeat.settings.interval);
        }
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let wanted = self.conn.bytes_wanted();
        // A frame no larger than the peer's last one (header included) may have its whole
        // buffer at once: the peer delivered that much before.
        let earned = self.conn.last_frame_len().saturating_add(MAX_HEADER_LEN);
        // After a large frame, the next one is read straight into a buffer of that size, in
        // one read if it is as large: no first part read into a small buffer and copied.
        let expect_large = earned > READ_MAX_STEP && self.conn.awaiting_frame_header();
        let read_chunk = self.read_chunk;
        let buf = self.conn.read_buffer();
        if expect_large && buf.is_empty() {
            // The buffer the last frame was read into, once nothing else shares it (the
            // message was written), is used again from its start; otherwise a new one.
            if buf.capacity() < earned && !buf.try_reclaim(earned) {
                *buf = BytesMut::with_capacity(earned);
                self.read_buffer_small = false;
            }
        } else if buf.capacity() == 0 {
            if let Some(spare) = SPARE_READ_BUFFERS.with(|pool| pool.borrow_mut().pop()) {
                *buf = spare;
                self.read_buffer_small = true;
            } else if buf.is_empty() {
                // No spare: an empty buffer with no room left starts over at the beginning of
                // its allocation if nothing else shares it (else it is reserved into below).
                let _ = buf.try_reclaim(READ_CHUNK);
            }
        }
        // Room for the rest of the current frame (or a read chunk). A buffer that lacks it
        // grows with the bytes received, never with a length the peer merely declared: to the
        // frame's end when that is within FRAME_GROWTH times what the buffer holds plus one
        // large step, or twice the capacity it already holds, or the size of the peer's last
        // frame (memory earlier input earned: a peer sending large frames one after another
        // gets each one's buffer at once, without copying a first part into a larger buffer);
        // otherwise, once it can't take a useful read, to FRAME_GROWTH times what it holds.
        // Reserving the rest exactly as soon as the bound allows means a buffer is never left a
        // few bytes short of a large frame and copied whole for them; growing fourfold rather
        // than doubling copies about a third of a large frame on the way instead of all of it,
        // and takes it in fewer, larger reads.
        let len = buf.len();
        let capacity = buf.capacity();
        // Between frames, an empty buffer's spare room (at least half this connection's read
        // chunk) is enough for the next read: growing it to a full chunk would allocate a new
        // buffer while the message just handed out still shares this one, or at best move the
        // buffer back to its start, once per message on a connection that exchanges one
        // message at a time (a buffer just handed a message out is a few bytes short of a
        // chunk).
        let rest = if len == 0 && capacity >= read_chunk / 2 {
            wanted.max(read_chunk.min(capacity))
        } else {
            wanted.max(read_chunk)
        };
        if capacity - len < rest {
            let bound = len
                .saturating_mul(FRAME_GROWTH)
                .saturating_add(READ_MAX_STEP)
                .max(capacity.saturating_mul(2))
                .max(earned);
            if len.saturating_add(rest) <= bound {
                reserve_exact(buf, rest);
            } else if capacity - len < read_chunk {
                let target = len.saturating_mul(FRAME_GROWTH).max(READ_MAX_STEP);
                reserve_exact(buf, target - len);
            }
            // It may have grown: judged again (reclaimed whole) when it goes back to the spares.
            self.read_buffer_small = false;
        }
        let room = rest.min(buf.capacity() - len);
        // Read no further than the current frame needs, or the largest step: bytes read far past
        // a large frame's end would be moved to the front of the buffer when the frame is handed
        // out. (Small frames are not limited: one read takes a whole burst of them.)
        let limit = if expect_large { earned } else { wanted }.max(READ_MAX_STEP);
        let stream = Pin::new(&mut self.stream);
        let poll = if buf.capacity() - len <= limit {
            tokio_util::io::poll_read_buf(stream, cx, buf)
        } else {
            tokio_util::io::poll_read_buf(stream, cx, &mut bytes::BufMut::limit(&mut *buf, limit))
        };
        match poll {
            Poll::Ready(Ok(n)) => {
                if n == 0 {
                    self.read_eof = true;
                }
                // A busy connection reads in larger chunks (fewer system calls per burst); a
                // quiet one goes back to small ones.
                if n >= room {
                    self.read_chunk = (read_chunk * 2).min(READ_MAX_STEP);
                } else if n < read_chunk / 4 {
                    self.read_chunk = (read_chunk / 2).max(READ_CHUNK);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The input ran dry: an empty read buffer goes back to this thread's spares (when nothing
    /// else still shares it) for the next connection that has input, so idle connections hold
    /// none and busy ones don't allocate one per wake-up either. Called after writing what is
    /// owed, so a message just echoed (once written) no longer shares the buffer and the whole
    /// allocation can be reused.
    fn release_idle_read_buffer(&mut self) {
        let buf = self.conn.read_buffer();
        if !buf.is_empty() {
            return;
        }
        let mut spare = std::mem::take(buf);
        let small = std::mem::replace(&mut self.read_buffer_small, false);
        // A buffer known to be small, with room for a read (half the connection's read chunk,
        // what the next read asks of a spare), goes back as it is: moving it back
        // to its start can wait until its room runs low (the next reservation does it, once
        // per several messages instead of once per message). Otherwise, asking for one byte more
        // than the buffer's tail has takes back the whole allocation when nothing else shares
        // it (the empty buffer moves to its start); failing that, a tail of at least a chunk
        // will do. Capacity is judged once reclaimed: a large frame may have grown the
        // allocation far past what a spare should keep.
        let keep = (small && spare.capacity() >= self.read_chunk / 2) || {
            let whole = spare.capacity().saturating_add(1);
            let reclaimed = spare.try_reclaim(whole) || spare.try_reclaim(READ_CHUNK);
            reclaimed && spare.capacity() <= READ_MAX_STEP
        };
        if keep {
            SPARE_READ_BUFFERS.with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < SPARE_READ_BUFFERS_MAX {
                    pool.push(spare);
                }
            });
        }
    }

    /// After the peer's close frame (or a protocol error): write what is owed (the close
    /// frame), then end the transport. RFC 6455 §7.1.1: the server closes TCP first; the client
    /// waits for that, up to the close timeout.
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let timeout = self.conn.config().close_timeout;
        let timer = self
            .close_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        let expired = timer.as_mut().poll(cx).is_ready();
        if !expired {
            if self.conn.has_output() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => self.read_eof = true,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if let Some(message) = self.close_message.take() {
                return Poll::Ready(Some(Ok(message)));
            }
            let wait_for_server =
                self.conn.role() == Role::Client && self.pending_error.is_none() && !self.read_eof;
            if wait_for_server {
                loop {
                    let buf = self.conn.read_buffer();
                    buf.clear();
                    buf.reserve(256);
                    match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                        Poll::Ready(Ok(_)) => continue,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
            let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
        }
        self.finished = true;
        self.close_timer = None;
        *self.conn.read_buffer() = BytesMut::new();
        match self.pending_error.take() {
            Some(error) => Poll::Ready(Some(Err(error))),
            None => Poll::Ready(None),
        }
    }
}

fn send_error(reason: &'static str) -> Error {
    if reason.contains("already sent") {
        Error::closed()
    } else {
        Error::invalid_input(reason)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_ready_send(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().queue(&item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_all(cx)
    }

    /// Sends a normal close frame (if none was sent) and writes it; the close handshake
    /// completes on the reading side.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if !this.conn.close_sent() {
            let _ = this.conn.send_close(Some(&CloseFrame::new(1000u16, "")));
        }
        this.poll_flush_all(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{FrameHeader, OpCode};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// A masked binary frame header with a zero mask key (so the payload bytes go on the wire
    /// as they are).
    fn masked_binary_header(len: u64) -> BytesMut {
        let mut header = BytesMut::new();
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Binary,
            mask: Some([0; 4]),
            payload_len: len,
        }
        .encode(&mut header);
        header
    }

    /// Writes one masked binary frame of `len` bytes of `fill` (the mask is all zeros).
    /// Writes a masked binary frame in one write (it arrives whole when the pipe has room).
    async fn write_masked_binary(peer: &mut tokio::io::DuplexStream, len: usize, fill: u8) {
        let mut frame = masked_binary_header(len as u64);
        frame.resize(frame.len() + len, fill);
        peer.write_all(&frame).await.unwrap();
    }

    /// Writes the header of a masked binary frame declared at `declared` bytes and its first
    /// `sent` bytes, then checks that the connection waits for the rest.
    async fn write_frame_start(
        ws: &mut WebSocket<tokio::io::DuplexStream>,
        peer: &mut tokio::io::DuplexStream,
        declared: usize,
        sent: usize,
        fill: u8,
    ) {
        peer.write_all(&masked_binary_header(declared as u64))
            .await
            .unwrap();
        peer.write_all(&vec![fill; sent]).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
        assert!(early.is_err(), "the frame can't be complete yet");
    }

    /// The read buffer of a frame in progress grows with the bytes that arrived, not with the
    /// length its header declares; once the rest arrives the frame is whole.
    #[tokio::test]
    async fn frame_buffer_grows_with_bytes_received_not_declared_length() {
        const DECLARED: usize = 32 << 20;
        const SENT: usize = 100 << 10;
        let (mut peer, local) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
        write_frame_start(&mut ws, &mut peer, DECLARED, SENT, 7).await;
        let capacity = ws.conn.read_buffer().capacity();
        assert!(
            (SENT..=4 * SENT + READ_MAX_STEP).contains(&capacity),
            "{capacity} bytes of read buffer for {SENT} bytes received"
        );

        let writer = tokio::spawn(async move {
            peer.write_all(&vec![7u8; DECLARED - SENT]).await.unwrap();
            peer
        });
        let message = ws.recv().await.unwrap().expect("the whole frame");
        let Message::Binary(payload) = message else {
            panic!("expected a binary message, got {message:?}");
        };
        assert_eq!(payload.len(), DECLARED);
        assert!(payload.iter().all(|&byte| byte == 7));
        drop(writer.await.unwrap());
    }

    /// An idle connection holds no read buffer. A large frame's allocation is freed, never kept
    /// as a spare (nor is the buffer of the size of a large frame that the next frame is read
    /// into). A small frame's buffer goes to the thread's spares and the next messages are read
    /// into it again: once reclaimed whole, then as it is while it has room, then reclaimed
    /// whole again when its room runs low. No allocation per message.
    #[tokio::test]
    async fn idle_read_buffer_goes_to_the_spares_but_a_large_one_is_freed() {
        const LARGE: usize = 1 << 20;
        const SMALL: usize = 1000;
        // The header of a masked frame of SMALL bytes: 2 bytes, a 16-bit length and the key.
        const HEADER: usize = 8;
        // (start address, capacity) of each spare buffer.
        let pooled = || {
            SPARE_READ_BUFFERS.with(|pool| {
                let pool = pool.borrow();
                pool.iter()
                    .map(|spare| (spare.as_ptr() as usize, spare.capacity()))
                    .collect::<Vec<_>>()
            })
        };
        let (mut peer, local) = tokio::io::duplex(2 << 20);
        let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
        // Echo one message of `len` bytes and wait until the connection is idle; the address of
        // its payload.
        async fn one(
            ws: &mut WebSocket<tokio::io::DuplexStream>,
            peer: &mut tokio::io::DuplexStream,
            len: usize,
            fill: u8,
        ) -> usize {
            write_masked_binary(peer, len, fill).await;
            let message = ws.recv().await.unwrap().expect("a frame");
            assert_eq!(message.len(), len);
            let Message::Binary(payload) = message else {
                panic!("expected a binary message");
            };
            let at = payload.as_ptr() as usize;
            drop(payload);
            let idle = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
            assert!(idle.is_err(), "nothing more was sent");
            assert_eq!(
                ws.conn.read_buffer().capacity(),
                0,
                "an idle connection holds no buffer"
            );
            at
        }
        let all_small = |spares: &[(usize, usize)]| spares.iter().all(|&(_, c)| c <= READ_MAX_STEP);

        one(&mut ws, &mut peer, LARGE, 1).await;
        assert!(
            all_small(&pooled()),
            "a spare kept a large frame's allocation: {:?}",
            pooled()
        );
        // Read into a buffer as large as the last frame, which is freed too.
        one(&mut ws, &mut peer, SMALL, 2).await;
        assert!(
            all_small(&pooled()),
            "a spare kept a large buffer: {:?}",
            pooled()
        );

        // A new buffer (the spares are empty), reclaimed whole into the spares before the
        // message is read into it if a read came up empty first. Then each message is read into
        // the spare the one before left: after it, as it is, while it has room for a read (half
        // the connection's read chunk); once it hasn't, reclaimed whole, back to its start.
        let first = one(&mut ws, &mut peer, SMALL, 3).await;
        let start = first - HEADER;
        let spare_after = |at: usize| {
            let spares = pooled();
            assert!(all_small(&spares));
            match spares.iter().find(|&&(s, _)| s == start || s == at + SMALL) {
                Some(&spare) => spare,
                None => panic!("not in the spares: {spares:?}, the message was at {at}"),
            }
        };
        let (mut spare_at, room) = spare_after(first);
        let capacity = spare_at + room - start;
        let (mut kept_as_is, mut started_over) = (spare_at != start, false);
        for fill in 4..=80u8 {
            let at = one(&mut ws, &mut peer, SMALL, fill).await;
            assert_eq!(
                at,
                spare_at + HEADER,
                "message {fill} was read into the spare"
            );
            let room;
            (spare_at, room) = spare_after(at);
            assert_eq!(spare_at + room, start + capacity, "the same allocation");
            if spare_at == at + SMALL {
                assert!(
                    room >= ws.read_chunk / 2,
                    "kept as it was with room for a read"
                );
                kept_as_is = true;
            } else {
                assert!(
                    at + SMALL + ws.read_chunk / 2 > start + capacity,
                    "reclaimed when low"
                );
                started_over = true;
            }
        }
        assert!(kept_as_is, "a spare with room went back as it was");
        assert!(
            started_over,
            "a spare whose room ran low was reclaimed whole"
        );
    }

    /// After a large frame, a frame up to its size gets its whole buffer at once (the peer
    /// delivered that much before), read into directly; a larger declared length earns nothing
    /// more than that, or the usual growth with the bytes received.
    #[tokio::test]
    async fn a_frame_as_large_as_the_last_gets_its_buffer_at_once() {
        const LAST: usize = 300 << 10;
        const SENT: usize = 10 << 10;
        let (mut peer, local) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
        write_masked_binary(&mut peer, LAST, 1).await;
        assert_eq!(ws.recv().await.unwrap().expect("a frame").len(), LAST);
        let idle = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
        assert!(idle.is_err(), "nothing more was sent");
        assert_eq!(
            ws.conn.read_buffer().capacity(),
            0,
            "idle: the buffer was freed"
        );

        // As large as the last one: the whole frame's buffer, and the part sent is in it.
        write_frame_start(&mut ws, &mut peer, LAST, SENT, 2).await;
        let buf = ws.conn.read_buffer();
        assert_eq!(buf.len(), SENT);
        assert!(
            buf.capacity() >= LAST,
            "{} bytes of buffer for a frame of {LAST}",
            buf.capacity()
        );
        let start = buf.as_ptr() as usize;
        peer.write_all(&vec![2u8; LAST - SENT]).await.unwrap();
        let Some(Message::Binary(payload)) = ws.recv().await.unwrap() else {
            panic!("expected a binary message");
        };
        assert_eq!(
            payload.as_ptr() as usize,
            start,
            "read into that buffer, not copied"
        );
        assert!(payload.len() == LAST && payload.iter().all(|&b| b == 2));
        drop(payload);

        // Declared far larger: bounded by the last frame's size (or 4 x received + 64 KiB).
        write_frame_start(&mut ws, &mut peer, 32 << 20, SENT, 3).await;
        let capacity = ws.conn.read_buffer().capacity();
        let bound = (LAST + MAX_HEADER_LEN).max(FRAME_GROWTH * SENT + READ_MAX_STEP);
        assert!(
            (SENT..=bound).contains(&capacity),
            "{capacity} bytes of read buffer for {SENT} bytes of a frame declared at 32 MiB"
        );
    }

    /// Two large frames back to back, the second arriving in the buffer the first one leaves:
    /// both arrive intact (the early reservation of the rest of a frame is exercised).
    #[tokio::test]
    async fn large_frames_back_to_back_arrive_intact() {
        const LEN: usize = (1 << 20) + 3;
        let (mut peer, local) = tokio::io::duplex(256 << 10);
        let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
        let writer = tokio::spawn(async move {
            for fill in [1u8, 2, 3] {
                write_masked_binary(&mut peer, LEN, fill).await;
            }
            peer
        });
        for fill in [1u8, 2, 3] {
            let Some(Message::Binary(payload)) = ws.recv().await.unwrap() else {
                panic!("expected a binary message");
            };
            assert_eq!(payload.len(), LEN);
            assert!(payload.iter().all(|&byte| byte == fill));
        }
        drop(writer.await.unwrap());
    }
}

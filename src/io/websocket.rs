//! [`WebSocket`]: a connection over a stream, and its methods.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use super::outbox::Outbox;
use super::read_buffer::ReadSizing;
use super::split::{self, WsReader, WsWriter};
use super::PauseHandle;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::proto::close::CloseFrame;
use crate::proto::connection::{Connection, DataKind, Role, State};
use crate::proto::message::Message;
use crate::proto::prepared::PreparedMessage;

/// A WebSocket connection over a stream `S`, after the opening handshake.
///
/// One task may read and write through `&mut`; to read and write from two tasks, use
/// [`split`](WebSocket::split).
pub struct WebSocket<S> {
    pub(super) stream: S,
    pub(super) conn: Connection,
    /// The stream was closed and the outcome reported: `recv` answers `None` from now on.
    pub(super) finished: bool,
    /// The one timer, at the core's next deadline; allocated only while the core keeps one.
    pub(super) timer: Option<Pin<Box<Sleep>>>,
    pub(super) outbox: Option<Arc<Outbox>>,
    pub(super) read_sizing: ReadSizing,
    /// What most connections never set, allocated when one is: a connection is in memory for
    /// all its life, and an idle one is mostly this struct.
    pub(super) rare: Option<Box<Rare>>,
}

/// A connection's rarely set state ([`WebSocket::rare`]).
#[derive(Default)]
pub(super) struct Rare {
    protocol: Option<Box<str>>,
    extensions: Box<str>,
    /// The peer's close frame, once it arrived.
    pub(super) peer_close: Option<CloseFrame>,
    /// The peer's close frame as a message, handed out once its echo is written (when control
    /// frames are delivered).
    pub(super) close_message: Option<Message>,
    /// Tasks waiting for the stream to take bytes (the other half of a split connection).
    pub(super) write_waiters: Vec<Waker>,
    /// Set once the application asks for pausing (`pause`, `pause_handle`).
    pub(super) pause: Option<PauseHandle>,
    /// The URL a client connected to (set by the client only).
    url: Option<Box<str>>,
    /// An error `recv_many` met after messages it returned: the next receive's answer.
    pub(super) deferred_error: Option<Error>,
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

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.conn)
            .field(
                "protocol",
                &self.rare.as_ref().and_then(|r| r.protocol.as_deref()),
            )
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream on which the handshake is already done.
    ///
    /// # Panics
    /// If `config` fails [`Config::validate`] (a programming error, reported with what is
    /// wrong); [`try_from_raw`](WebSocket::try_from_raw) returns it as an error instead.
    pub fn from_raw(stream: S, role: Role, config: Config) -> WebSocket<S> {
        match WebSocket::try_from_raw(stream, role, config) {
            Ok(ws) => ws,
            Err(error) => panic!("WebSocket::from_raw: {error}"),
        }
    }

    /// [`from_raw`](WebSocket::from_raw), with the configuration checked first.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `config` fails
    /// [`Config::validate`].
    pub fn try_from_raw(stream: S, role: Role, config: Config) -> crate::Result<WebSocket<S>> {
        config.validate()?;
        Ok(WebSocket::from_parts(
            stream,
            Connection::new(role, config),
            BytesMut::new(),
            None,
        ))
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
        let extensions = conn
            .deflate_params()
            .map(|n| crate::deflate::negotiation::extension_header(conn.role(), n));
        let mut ws = WebSocket {
            stream,
            conn,
            finished: false,
            timer: None,
            outbox: None,
            read_sizing: ReadSizing::default(),
            rare: None,
        };
        if let Some(extensions) = extensions {
            ws.rare().extensions = extensions.into_boxed_str();
        }
        if let Some(protocol) = protocol {
            ws.rare().protocol = Some(protocol.into_boxed_str());
        }
        ws
    }

    /// The rarely set state, allocated on first use.
    pub(super) fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Stops reading (the seed's `pause()`): `recv` hands out no message and reads nothing
    /// until [`resume`](WebSocket::resume); see [`PauseHandle`] for what still runs.
    pub fn pause(&mut self) {
        self.pause_handle().pause();
    }

    /// Reads again after [`pause`](WebSocket::pause).
    pub fn resume(&mut self) {
        if let Some(pause) = self.rare.as_ref().and_then(|r| r.pause.as_ref()) {
            pause.resume();
        }
    }

    /// Whether reading is paused.
    pub fn is_paused(&self) -> bool {
        self.rare
            .as_ref()
            .and_then(|r| r.pause.as_ref())
            .is_some_and(PauseHandle::is_paused)
    }

    /// A handle to pause and resume reading from another task (say, a consumer that can't
    /// keep up, while this connection's `recv` waits in its own task).
    pub fn pause_handle(&mut self) -> PauseHandle {
        self.rare()
            .pause
            .get_or_insert_with(PauseHandle::default)
            .clone()
    }

    pub(crate) fn set_outbox(&mut self, outbox: Arc<Outbox>) {
        self.outbox = Some(outbox);
    }

    pub(crate) fn set_url(&mut self, url: Box<str>) {
        self.rare().url = Some(url);
    }

    /// The URL a client connected to, after any redirects, without user info (the seed's
    /// `ws.url`); for a Unix socket, `ws+unix:/path/to/socket:/request/path`. `None` on the
    /// server side and for a connection made with [`from_raw`](Self::from_raw) or
    /// [`from_parts`](Self::from_parts).
    pub fn url(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.url.as_deref())
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.protocol.as_deref())
    }

    /// The extensions agreed in the handshake, as a `Sec-WebSocket-Extensions` value (empty
    /// when none were).
    pub fn extensions(&self) -> &str {
        self.rare.as_ref().map_or("", |r| &r.extensions)
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.conn.state()
    }

    /// The peer's close frame, once it has arrived (`None` too if it carried no code).
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.rare.as_ref().and_then(|r| r.peer_close.as_ref())
    }

    /// Bytes queued but not yet written (the seed's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount()
    }

    /// The round-trip time the last answered heartbeat ping measured ([`Config::heartbeat`]).
    pub fn rtt(&self) -> Option<std::time::Duration> {
        self.conn.rtt()
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
    /// A protocol violation (after the close frame with its code was sent), an I/O error,
    /// [`ErrorKind::AbnormalClosure`](crate::ErrorKind::AbnormalClosure) when the stream ended
    /// without a close frame, or [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the
    /// close handshake or a heartbeat ping timed out.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is never lost if the future is dropped.
    pub fn recv(&mut self) -> Recv<'_, S> {
        Recv { ws: self }
    }

    /// Receives at least one message and then every one ready without waiting, up to `limit`,
    /// appended to `buffer` (like tokio's `mpsc::Receiver::recv_many`): what one read brought,
    /// for a relay to handle as one batch. Answers how many; 0 once the connection closed
    /// cleanly (or for a `limit` of 0).
    ///
    /// # Errors
    /// As [`recv`](WebSocket::recv); an error met after some messages is returned by the
    /// next call, those messages first.
    ///
    /// # Cancel safety
    /// Cancel-safe: messages are appended only in the poll that returns them.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Message>, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut n = 0;
            while n < limit {
                match self.poll_recv(cx) {
                    Poll::Ready(Some(Ok(message))) => {
                        buffer.push(message);
                        n += 1;
                    }
                    Poll::Ready(Some(Err(error))) if n == 0 => return Poll::Ready(Err(error)),
                    Poll::Ready(Some(Err(error))) => {
                        self.rare().deferred_error = Some(error);
                        break;
                    }
                    Poll::Ready(None) => break,
                    Poll::Pending if n == 0 => return Poll::Pending,
                    Poll::Pending => break,
                }
            }
            Poll::Ready(Ok(n))
        })
        .await
    }

    /// Sends a message and writes everything queued.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) after a close frame was sent,
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an invalid control
    /// message, or an I/O error.
    ///
    /// # Cancel safety
    /// The first poll queues the message whole unless the write buffer is over its mark; once
    /// queued it is written by later calls, even if this future is dropped. See the
    /// [table](crate#concurrency-and-cancel-safety).
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message without writing it (unless the buffer is over its high-water mark).
    /// See the module docs for when queued messages are written.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send).
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send): queued whole or not at all.
    /// See the [table](crate#concurrency-and-cancel-safety).
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
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn send_with_compression(
        &mut self,
        message: impl Into<Message>,
        compress: bool,
    ) -> Result<()> {
        let message = message.into();
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.conn.send_with_compression(&message, Some(compress))?;
        self.flush().await
    }

    /// Sends a message framed once for many connections (see [`PreparedMessage`]), and writes
    /// everything queued. A loop over many connections should rather
    /// [`feed_prepared`](WebSocket::feed_prepared) and let each connection's `recv` write.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send), and while a fragmented message is being sent.
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        self.feed_prepared(message).await?;
        self.flush().await
    }

    /// Queues a prepared message without writing it (unless the buffer is over its mark),
    /// like [`feed`](WebSocket::feed).
    ///
    /// # Errors
    /// As [`send_prepared`](WebSocket::send_prepared).
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn feed_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.conn.send_prepared(message).map_err(Error::from)
    }

    /// Sends one frame of a fragmented message; `fin` ends the message.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send), and when a message of the other kind is in progress.
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send), per fragment: queued by the first poll when
    /// [`buffered_amount`](WebSocket::buffered_amount) is under the mark before the call.
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn send_fragment(
        &mut self,
        kind: DataKind,
        payload: impl Into<bytes::Bytes>,
        fin: bool,
    ) -> Result<()> {
        self.send_fragment_with_compression(kind, payload, fin, false)
            .await
    }

    /// [`send_fragment`](WebSocket::send_fragment), compressing the message with
    /// permessage-deflate (when negotiated) if `compress` is set on its first fragment: each
    /// fragment goes out as its part of one compressed stream, so a large message can be
    /// compressed and sent piece by piece. Later fragments follow the first one's choice.
    ///
    /// # Errors
    /// As [`send_fragment`](WebSocket::send_fragment).
    ///
    /// # Cancel safety
    /// As [`send_fragment`](WebSocket::send_fragment).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn send_fragment_with_compression(
        &mut self,
        kind: DataKind,
        payload: impl Into<bytes::Bytes>,
        fin: bool,
        compress: bool,
    ) -> Result<()> {
        let payload = payload.into();
        poll_fn(|cx| self.poll_ready_send(cx)).await?;
        self.conn
            .send_data_with_compression(kind, &payload, fin, compress)?;
        self.flush().await
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// As [`send`](WebSocket::send); the payload may have at most 125 bytes.
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn ping(&mut self, payload: impl Into<bytes::Bytes>) -> Result<()> {
        self.send(Message::Ping(payload.into())).await
    }

    /// Sends an unsolicited pong (a one-way heartbeat).
    ///
    /// # Errors
    /// As [`ping`](WebSocket::ping).
    ///
    /// # Cancel safety
    /// As [`send`](WebSocket::send).
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn pong(&mut self, payload: impl Into<bytes::Bytes>) -> Result<()> {
        self.send(Message::Pong(payload.into())).await
    }

    /// Writes everything queued.
    ///
    /// # Errors
    /// An I/O error.
    ///
    /// # Cancel safety
    /// What was written stays written; the rest stays queued.
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_write_timed(cx)).await
    }

    /// Starts the close handshake with `code` and `reason` and waits (up to
    /// [`Config::close_timeout`]) for it to complete. Data messages that arrive meanwhile are
    /// discarded. If the peer already closed, this just completes the handshake.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a code that may not be
    /// sent or a reason over 123 bytes; [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if
    /// the peer didn't answer in time (the stream is then closed); I/O and protocol errors met
    /// while waiting.
    ///
    /// # Cancel safety
    /// The first poll queues the close frame; the next `close` or `recv` goes on with the
    /// handshake, within the deadline that started then.
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        if !self.conn.close_sent() {
            self.conn.send_close(frame.as_ref())?;
        }
        // The core's close deadline bounds the wait, the writes included.
        while self.recv().await?.is_some() {}
        Ok(())
    }

    /// Drops the connection at once, without a close handshake (the seed's `terminate`). The
    /// connection is finished from the first poll: `recv` then answers `Ok(None)`.
    ///
    /// # Cancel safety
    /// If dropped, the connection is finished all the same; the stream may stay open until the
    /// `WebSocket` is dropped.
    /// See the [table](crate#concurrency-and-cancel-safety).
    pub async fn terminate(&mut self) {
        self.finished = true;
        self.timer = None;
        let _ = poll_fn(|cx| Pin::new(&mut self.stream).poll_shutdown(cx)).await;
    }

    /// Splits the connection into a reader and a writer that can be used from two tasks.
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        split::split(self)
    }

    pub(crate) fn queue(&mut self, message: &Message) -> Result<()> {
        self.conn.send(message).map_err(Error::from)
    }

    pub(crate) fn queue_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        self.conn.send_prepared(message).map_err(Error::from)
    }

    /// Queues a close frame, unless one was sent; the receive loop carries the handshake on.
    pub(crate) fn start_close(&mut self, frame: Option<&CloseFrame>) -> Result<()> {
        if !self.conn.close_sent() {
            self.conn.send_close(frame)?;
        }
        Ok(())
    }

    /// Whether more is buffered than [`Config::max_write_buffer`] allows queuing on top of
    /// (`has_output`: with a mark of 0, an empty buffer is under it too, not a busy loop).
    pub(crate) fn is_over_write_mark(&self) -> bool {
        self.conn.has_output() && self.conn.buffered_amount() >= self.conn.config().max_write_buffer
    }

    /// Whether the server asked to drop this connection without a close frame (a client
    /// driven by an event loop, which has no task of its own to abort).
    pub(crate) fn is_terminated(&self) -> bool {
        self.outbox.as_ref().is_some_and(|o| o.is_terminated())
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
        self.get_mut().poll_write_timed(cx)
    }

    /// Sends a normal close frame (if none was sent) and writes it; the close handshake
    /// completes on the reading side.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if !this.conn.close_sent() {
            let _ = this.conn.send_close(Some(&CloseFrame::new(1000u16, "")));
        }
        this.poll_write_timed(cx)
    }
}

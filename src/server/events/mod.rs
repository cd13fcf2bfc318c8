//! Many connections driven by one task each thread: an event handler instead of a task per
//! connection ([`Server::serve_events`]).
//!
//! [`Server::serve`] runs each connection's handler in a task of its own: the most natural
//! code (`while let Some(m) = ws.recv().await`), at the price of the task, whose memory an idle
//! connection keeps (tokio's task cell is cache-line aligned: about 1 KiB with the handler's
//! state). [`Server::serve_events`] opens each connection in a short-lived task (TLS, the
//! upgrade) and then hands it to an event loop, one task per runtime worker, which holds it in
//! a slab and polls it only when its socket, timer or outbox wakes it. An idle connection
//! then costs its [`WebSocket`] state, the socket's reactor entry and a
//! waker: measured with `elo-bench idle`, see the README.
//!
//! Everything else is the same as for [`serve`](Server::serve): the options, the hooks, TLS,
//! HTTP/2 streams, the client registry (broadcasts, topics, `send_to`, the slow-client
//! policy, `terminate_client`) and shutdown. The handler's callbacks run on the loop's task,
//! so they must not block; a callback that panics ends its connection (without a close
//! frame), not the loop.
//!
//! ```no_run
//! use enim_labore_occaecati::server::events::{Client, EventHandler};
//! use enim_labore_occaecati::server::{ClientInfo, Server};
//! use enim_labore_occaecati::Message;
//!
//! struct Echo;
//!
//! impl EventHandler for Echo {
//!     type State = ();
//!     fn on_open(&self, _client: &mut Client<'_>, _info: ClientInfo) {}
//!     fn on_message(&self, _state: &mut (), client: &mut Client<'_>, message: Message) {
//!         // Queued; written when the loop is done with this connection's input.
//!         let _ = client.send(message);
//!     }
//! }
//!
//! # async fn run() -> enim_labore_occaecati::Result<()> {
//! Server::bind("127.0.0.1:9001").await?.serve_events(Echo).await
//! # }
//! ```

mod event_loop;
mod wake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

use super::{ClientId, ClientInfo, Server, ServerStream};
use crate::error::{Error, Result};
use crate::io::WebSocket;
use crate::proto::close::CloseFrame;
use crate::proto::connection::State;
use crate::proto::message::Message;
use crate::proto::prepared::PreparedMessage;
use event_loop::EventLoop;

/// Connections opened but not yet taken by their loop, per loop: the accepting side waits
/// beyond it.
const HANDOFF_QUEUE: usize = 128;

/// What a server driven by event loops does with its connections. The callbacks run on the
/// loop's task: they must not block or wait.
pub trait EventHandler: Send + Sync + 'static {
    /// What the application keeps per connection (`()` for nothing).
    type State: Send + 'static;

    /// A connection opened (its handshake done, the client registered); answers its state.
    fn on_open(&self, client: &mut Client<'_>, info: ClientInfo) -> Self::State;

    /// A data message arrived (and pings and pongs, with
    /// [`Config::receive_control_frames`](crate::Config::receive_control_frames)).
    fn on_message(&self, state: &mut Self::State, client: &mut Client<'_>, message: Message);

    /// After one or more [`on_message`](EventHandler::on_message)s, when the loop stops
    /// handing this connection's messages out for now: its input ran dry, the turn's 64 were
    /// handed out (more may be buffered), its write buffer is over the mark, or it ended (then
    /// just before [`on_close`](EventHandler::on_close), after a `terminate` too). A handler
    /// that gathers messages in its state publishes them together here
    /// ([`ServerHandle::publish_all`](super::ServerHandle::publish_all): each subscriber's
    /// queue visited once for all of them), as a task-per-connection relay does with
    /// [`recv_many`](crate::WebSocket::recv_many). What it sends goes out in the write after
    /// the replies `on_message` queued.
    fn on_read_done(&self, state: &mut Self::State, client: &mut Client<'_>) {
        let _ = (state, client);
    }

    /// A connection whose [`send`](Client::send) was refused with
    /// [`ErrorKind::WriteBufferFull`](crate::ErrorKind::WriteBufferFull) has written enough to
    /// take messages again.
    fn on_drain(&self, state: &mut Self::State, client: &mut Client<'_>) {
        let _ = (state, client);
    }

    /// The connection ended: `Ok` with the peer's close frame after a clean close handshake,
    /// else why (as [`WebSocket::recv`](crate::WebSocket::recv) would have said). A connection
    /// ended by [`terminate`](Client::terminate) or
    /// [`ServerHandle::terminate_client`](super::ServerHandle::terminate_client) ends with
    /// [`ErrorKind::AbnormalClosure`](crate::ErrorKind::AbnormalClosure).
    fn on_close(&self, state: Self::State, outcome: Result<Option<CloseFrame>>) {
        let _ = (state, outcome);
    }
}

/// One connection, as a callback sees it.
#[derive(Debug)]
pub struct Client<'a> {
    ws: &'a mut WebSocket<ServerStream>,
    waker: &'a Waker,
    id: Option<ClientId>,
    /// A send was refused: `on_drain` is owed.
    refused: &'a mut bool,
    terminate: &'a mut bool,
    /// This callback queued a message already: the next ones are subject to the mark.
    sent: bool,
}

impl Client<'_> {
    /// The client's id in the server's registry (`None` when the server doesn't track
    /// clients): for [`ServerHandle`](super::ServerHandle)'s `send_to`, `subscribe`,
    /// `publish_except` and the like.
    pub fn id(&self) -> Option<ClientId> {
        self.id
    }

    /// Queues a message; it is written once the loop is done with this connection's input
    /// (or sooner, when much is owed). The first message a callback sends is always queued.
    ///
    /// # Errors
    /// [`ErrorKind::WriteBufferFull`](crate::ErrorKind::WriteBufferFull) for a later one while
    /// [`Config::max_write_buffer`](crate::Config::max_write_buffer) bytes or more are
    /// buffered and the socket takes no more (the message is not queued;
    /// [`EventHandler::on_drain`] follows), and as [`WebSocket::send`](crate::WebSocket::send).
    pub fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.ready()?;
        self.ws.queue(&message.into())
    }

    /// Queues a message framed once for many connections (see [`PreparedMessage`]).
    ///
    /// # Errors
    /// As [`send`](Client::send), and while a fragmented message is being sent.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<()> {
        self.ready()?;
        self.ws.queue_prepared(message)
    }

    fn ready(&mut self) -> Result<()> {
        // The first message of each callback is always taken (the loop hands out messages
        // only under the mark, so this is at most one reply per message received, plus one per
        // `on_read_done` or `on_drain`): a reply can't be refused for what a broadcast staged
        // meanwhile.
        if !std::mem::replace(&mut self.sent, true) {
            return Ok(());
        }
        match self
            .ws
            .poll_ready_send(&mut Context::from_waker(self.waker))
        {
            Poll::Ready(result) => result,
            Poll::Pending => {
                *self.refused = true;
                Err(Error::write_buffer_full())
            }
        }
    }

    /// Starts the close handshake; [`EventHandler::on_close`] follows when it completes (or
    /// times out, after [`Config::close_timeout`](crate::Config::close_timeout)). Messages
    /// that arrive meanwhile are still delivered. Nothing is sent if a close frame already
    /// was.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a code that may not be
    /// sent or a reason over 123 bytes.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        self.ws.start_close(frame.as_ref())
    }

    /// Drops the connection without a close frame once the callback returns (the seed's
    /// `terminate()`); [`EventHandler::on_close`] follows.
    pub fn terminate(&mut self) {
        *self.terminate = true;
    }

    /// Bytes queued but not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.ws.buffered_amount()
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.ws.protocol()
    }

    /// The extensions agreed in the handshake, as a `Sec-WebSocket-Extensions` value.
    pub fn extensions(&self) -> &str {
        self.ws.extensions()
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.ws.state()
    }

    /// The peer's close frame, once it arrived.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.ws.close_frame()
    }
}

/// The loops' hand-off queues; connections go to them in turn.
struct Loops {
    senders: Vec<mpsc::Sender<(WebSocket<ServerStream>, ClientInfo)>>,
    next: AtomicUsize,
}

impl Loops {
    /// The next loop in turn that is still running (one whose task panicked is skipped).
    fn pick(&self) -> mpsc::Sender<(WebSocket<ServerStream>, ClientInfo)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.senders.len();
        (0..count)
            .map(|i| &self.senders[(n + i) % count])
            .find(|sender| !sender.is_closed())
            .unwrap_or(&self.senders[n % count])
            .clone()
    }
}

impl Server {
    /// Accepts connections until shutdown, like [`serve`](Server::serve), and drives every
    /// open connection from an event loop (one task per runtime worker) calling `handler`,
    /// instead of a task per connection: see the [module docs](self) for what it saves.
    ///
    /// # Errors
    /// As [`serve`](Server::serve).
    pub async fn serve_events<H: EventHandler>(self, handler: H) -> Result<()> {
        self.shared.options.validate()?;
        self.shared
            .loops_register
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let handler = Arc::new(handler);
        let workers = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .max(1);
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel(HANDOFF_QUEUE);
            senders.push(tx);
            let event_loop = EventLoop::new(self.shared.clone(), handler.clone(), rx);
            let task = tokio::spawn(tokio::task::unconstrained(event_loop));
            self.shared.registry.track_task(task.abort_handle());
        }
        let loops = Arc::new(Loops {
            senders,
            next: AtomicUsize::new(0),
        });
        let forward = move |ws: WebSocket<ServerStream>, info: ClientInfo| {
            let sender = loops.pick();
            async move {
                // A loop that ended (the server is being dropped) drops the connection.
                let _ = sender.send((ws, info)).await;
            }
        };
        self.accept_loop(Arc::new(forward)).await
    }
}

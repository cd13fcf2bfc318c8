//! Messages queued for a connection from outside its task (server broadcasts, shutdown), and
//! drained by its receive loop.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Waker};

use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::proto::message::Message;

/// A connection's queue of messages from other tasks.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inner: Mutex<OutboxInner>,
}

#[derive(Debug, Default)]
struct OutboxInner {
    queue: VecDeque<Message>,
    bytes: usize,
    waker: Option<Waker>,
}

/// What happened to a message queued for one client
/// ([`ServerHandle::send_to`](crate::server::ServerHandle::send_to)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued; the client's task writes it.
    Queued,
    /// Not queued: the client already had its broadcast backlog pending.
    Dropped,
    /// No such client: it has disconnected (or was never tracked).
    NotConnected,
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

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Moves what other tasks queued onto the connection's output, and leaves this task's
    /// waker for the next message.
    // Kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    pub(super) fn drain_outbox(&mut self, cx: &mut Context<'_>) {
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
}

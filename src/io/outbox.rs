//! Messages queued for a connection from other tasks (broadcasts, topics, `send_to`, shutdown),
//! drained by its receive loop, and the bound on what a connection may have pending.
//!
//! A delivery is counted against the connection's backlog: what waits here plus what its task
//! has already staged but not yet written (the core's buffered amount, published after every
//! write). Past the limit the slow-subscriber policy decides, so memory stays bounded whether
//! the handler is in `recv`, busy elsewhere, or its peer has stopped reading. Close frames
//! always go through; pongs are the core's and never wait here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Waker};

use tokio::io::{AsyncRead, AsyncWrite};

use super::WebSocket;
use crate::proto::close::CloseFrame;
use crate::proto::message::Message;
use crate::proto::prepared::{PreparedBatch, PreparedMessage};

/// What happens to a connection whose backlog would pass its limit
/// ([`ServerBuilder::max_backlog`](crate::server::ServerBuilder::max_backlog)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowPolicy {
    /// The delivery is skipped for that connection (counted: [`Delivery::Dropped`],
    /// [`BroadcastReport::dropped`](crate::server::BroadcastReport::dropped)); later ones
    /// go through once it has caught up. The client is not told it missed anything.
    Drop,
    /// The connection is closed with 1008 (policy violation) and what was waiting for it is
    /// freed: the client knows it fell behind and can reconnect and resynchronise. The default,
    /// because a subscriber that silently misses messages is wrong in a way neither side can
    /// see.
    #[default]
    Close,
}

/// Bytes of queued messages a connection stages for writing per turn of its task (more when
/// a single message is larger): what waits beyond it stays shared in the outbox, and the task
/// yields to the others before taking more.
const DRAIN_BUDGET: usize = 64 << 10;

/// The close code a slow subscriber is closed with: 1008, the generic policy violation
/// (RFC 6455 §7.4.1).
pub const SLOW_CLOSE_CODE: u16 = 1008;

/// What happened to a message queued for one client
/// ([`ServerHandle::send_to`](crate::server::ServerHandle::send_to)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued; the client's task writes it.
    Queued,
    /// Not queued: the client's backlog is full ([`SlowPolicy::Drop`]).
    Dropped,
    /// Not queued: the client's backlog is full, and it is being closed
    /// ([`SlowPolicy::Close`]), or already was for that reason.
    Closed,
    /// No such client: it has disconnected (or was never tracked).
    NotConnected,
}

/// Something queued for a connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A data message framed once for many connections.
    Data(PreparedMessage),
    /// Small data messages published together: one entry for all of them.
    Batch(PreparedBatch),
    /// A close frame, or a message for this connection alone (boxed: rare, and a queue entry
    /// stays two words long).
    Message(Box<Message>),
}

impl Outgoing {
    fn is_close(&self) -> bool {
        match self {
            Outgoing::Data(m) => matches!(m.other(), Some(Message::Close(_))),
            Outgoing::Batch(_) => false,
            Outgoing::Message(m) => matches!(**m, Message::Close(_)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Outgoing::Data(m) => m.len(),
            Outgoing::Batch(b) => b.len(),
            Outgoing::Message(m) => m.len(),
        }
    }
}

/// A connection's queue of messages from other tasks.
#[derive(Debug)]
pub(crate) struct Outbox {
    inner: Mutex<OutboxInner>,
    /// Bytes the connection's task has staged and not yet written.
    staged: AtomicUsize,
    limit: usize,
    policy: SlowPolicy,
    dropped: AtomicU64,
    /// To be dropped without a close frame (`terminate_client` of a connection that has no
    /// task of its own to abort).
    terminate: AtomicBool,
}

#[derive(Debug, Default)]
struct OutboxInner {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    waker: Option<Waker>,
    /// Closed for falling behind: nothing more is queued.
    closed_slow: bool,
}

impl Outbox {
    pub(crate) fn new(limit: usize, policy: SlowPolicy) -> Outbox {
        Outbox {
            inner: Mutex::new(OutboxInner::default()),
            staged: AtomicUsize::new(0),
            limit,
            policy,
            dropped: AtomicU64::new(0),
            terminate: AtomicBool::new(false),
        }
    }

    /// Deliveries skipped for this connection ([`SlowPolicy::Drop`]).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the connection was closed for falling behind ([`SlowPolicy::Close`]).
    pub(crate) fn is_closed_slow(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed_slow
    }

    /// Asks the connection's driver to drop it at once, without a close frame.
    pub(crate) fn terminate(&self) {
        self.terminate.store(true, Ordering::Release);
        wake(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Whether [`terminate`](Outbox::terminate) was asked.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminate.load(Ordering::Acquire)
    }

    pub(crate) fn push(&self, item: Outgoing) -> Delivery {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let delivery = self.push_locked(&mut inner, item);
        wake(&mut inner);
        delivery
    }

    /// Queues several messages under one lock (a publisher's batch: one touch of this
    /// connection's state for all of them), telling `each` what happened to each. `batch`,
    /// the same messages framed together, is queued as one entry when they all fit within
    /// the limit; otherwise each is judged on its own.
    pub(crate) fn push_all(
        &self,
        messages: &[PreparedMessage],
        batch: Option<&PreparedBatch>,
        mut each: impl FnMut(Delivery),
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(batch) = batch {
            let pending = inner.bytes + self.staged.load(Ordering::Relaxed);
            if !inner.closed_slow && pending + batch.len() <= self.limit {
                inner.bytes += batch.len();
                inner.queue.push_back(Outgoing::Batch(batch.clone()));
                messages.iter().for_each(|_| each(Delivery::Queued));
                wake(&mut inner);
                return;
            }
        }
        // One allocation for the batch, not the queue's doublings.
        inner.queue.reserve(messages.len());
        for message in messages {
            each(self.push_locked(&mut inner, Outgoing::Data(message.clone())));
        }
        wake(&mut inner);
    }

    fn push_locked(&self, inner: &mut OutboxInner, item: Outgoing) -> Delivery {
        let len = item.len();
        let is_close = item.is_close();
        if inner.closed_slow && !is_close {
            return Delivery::Closed;
        }
        let pending = inner.bytes + self.staged.load(Ordering::Relaxed);
        // Close frames always go through: shutdown must reach slow clients too. A message
        // larger than the limit still goes to a client that has nothing pending.
        if !is_close && pending > 0 && pending + len > self.limit {
            match self.policy {
                SlowPolicy::Drop => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return Delivery::Dropped;
                }
                SlowPolicy::Close => {
                    inner.closed_slow = true;
                    inner.queue.clear();
                    inner.bytes = 0;
                    let frame = CloseFrame::new(SLOW_CLOSE_CODE, "too slow: backlog limit");
                    let close = Message::Close(Some(frame));
                    inner.queue.push_back(Outgoing::Message(Box::new(close)));
                    return Delivery::Closed;
                }
            }
        }
        inner.bytes += len;
        inner.queue.push_back(item);
        Delivery::Queued
    }
}

/// The waker the next push wakes (kept if it is the same task's).
fn leave_waker(inner: &mut OutboxInner, waker: &Waker) {
    if !inner.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
        inner.waker = Some(waker.clone());
    }
}

/// One wake per batch: the task takes the waker, drains everything queued meanwhile, and
/// writes it at once.
fn wake(inner: &mut OutboxInner) {
    if let Some(waker) = inner.waker.take() {
        waker.wake();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Leaves this task's waker with the outbox without draining it: a driver that isn't
    /// reading now (its peer owes it reading) still hears of what is queued or asked.
    pub(crate) fn watch_outbox(&self, cx: &Context<'_>) {
        if let Some(outbox) = &self.outbox {
            let mut inner = outbox.inner.lock().unwrap_or_else(|e| e.into_inner());
            leave_waker(&mut inner, cx.waker());
        }
    }

    /// Moves what other tasks queued onto the connection's output, at most about
    /// [`DRAIN_BUDGET`] bytes of it a turn, and leaves this task's waker for the next message.
    // Kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    pub(super) fn drain_outbox(&mut self, cx: &mut Context<'_>) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let mut inner = outbox.inner.lock().unwrap_or_else(|e| e.into_inner());
        leave_waker(&mut inner, cx.waker());
        // A whole message can't go between the frames of one being sent: it waits for the
        // last frame (the next `recv` drains it).
        if inner.queue.is_empty() || self.conn.is_sending_fragments() {
            return;
        }
        let mut room = DRAIN_BUDGET.saturating_sub(self.conn.buffered_amount());
        // Taken whole when it fits: an idle connection then keeps no queue's memory.
        let mut batch = VecDeque::new();
        if inner.bytes <= room {
            batch = std::mem::take(&mut inner.queue);
            inner.bytes = 0;
        } else {
            // The first always goes, however large.
            while let Some(item) = inner.queue.pop_front() {
                let len = item.len();
                inner.bytes -= len;
                batch.push_back(item);
                room = room.saturating_sub(len);
                if room == 0 || inner.queue.front().is_some_and(|next| next.len() > room) {
                    break;
                }
            }
        }
        let more = !inner.queue.is_empty();
        drop(inner);
        for item in batch {
            // What can no longer be sent (the connection is closing) is dropped.
            let _ = match item {
                Outgoing::Data(message) => self.conn.send_prepared(&message),
                Outgoing::Batch(batch) => self.conn.send_prepared_batch(&batch),
                Outgoing::Message(message) => self.conn.send(&message),
            };
        }
        outbox
            .staged
            .store(self.conn.buffered_amount(), Ordering::Relaxed);
        if more {
            // The rest next turn, after the other tasks: one connection with much queued
            // doesn't hold the thread while the others wait for their first message.
            cx.waker().wake_by_ref();
        }
    }

    /// Tells the outbox how much is staged, after a write.
    pub(super) fn publish_staged(&self) {
        if let Some(outbox) = &self.outbox {
            outbox
                .staged
                .store(self.conn.buffered_amount(), Ordering::Relaxed);
        }
    }
}

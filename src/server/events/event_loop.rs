//! One event loop: a task holding many connections in a slab, polling each only when its
//! waker listed it, a bounded turn at a time.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;
use tokio::sync::mpsc;

use super::wake::{ReadyList, SlotWaker};
use super::{Client, EventHandler};
use crate::error::{Error, ErrorKind, Result};
use crate::io::WebSocket;
use crate::proto::close::CloseFrame;
use crate::server::{ClientId, ClientInfo, ServerStream, Shared};

/// Messages one connection may hand to the handler per turn before the others get theirs.
const MESSAGES_PER_TURN: usize = 64;
/// Connections polled per turn of the loop's task before it yields to the runtime.
const SLOTS_PER_TURN: usize = 1024;
/// New connections taken per turn.
const OPENS_PER_TURN: usize = 64;

/// One connection in the loop.
struct Entry<T> {
    ws: WebSocket<ServerStream>,
    waker: Arc<SlotWaker>,
    id: Option<ClientId>,
    /// The application's state; `None` for a connection that arrived during shutdown (closed
    /// with 1001, never shown to the handler).
    state: Option<T>,
    /// A send was refused: `on_drain` is owed once the buffer is under its mark.
    refused: bool,
    /// The handler asked to drop the connection.
    terminate: bool,
}

impl<T> Entry<T> {
    /// Runs a callback with the connection's state (none for a connection closed as it
    /// arrived); one that panics loses the state and drops the connection.
    fn call(&mut self, waker: &Waker, callback: impl FnOnce(&mut T, &mut Client<'_>)) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let mut client = Client {
            ws: &mut self.ws,
            waker,
            id: self.id,
            refused: &mut self.refused,
            terminate: &mut self.terminate,
            sent: false,
        };
        let call = || callback(state, &mut client);
        if std::panic::catch_unwind(AssertUnwindSafe(call)).is_err() {
            // Its drop may panic too: not on the loop.
            let state = self.state.take();
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(state)));
            self.terminate = true;
        }
    }
}

pub(super) struct EventLoop<H: EventHandler> {
    shared: Arc<Shared>,
    handler: Arc<H>,
    incoming: mpsc::Receiver<(WebSocket<ServerStream>, ClientInfo)>,
    accepting: bool,
    slots: Slab<Entry<H::State>>,
    ready: Arc<ReadyList>,
    /// Slots listed and not yet polled, in the order they were woken.
    pending: VecDeque<usize>,
}

impl<H: EventHandler> EventLoop<H> {
    pub(super) fn new(
        shared: Arc<Shared>,
        handler: Arc<H>,
        incoming: mpsc::Receiver<(WebSocket<ServerStream>, ClientInfo)>,
    ) -> EventLoop<H> {
        EventLoop {
            shared,
            handler,
            incoming,
            accepting: true,
            slots: Slab::new(),
            ready: Arc::new(ReadyList::default()),
            pending: VecDeque::new(),
        }
    }

    /// Takes a connection in: registers it (so broadcasts, topics and shutdown reach it) and
    /// asks the handler for its state; answers its slot.
    fn open(&mut self, mut ws: WebSocket<ServerStream>, mut info: ClientInfo) -> usize {
        let entry = self.slots.vacant_entry();
        let slot = entry.key();
        let waker = SlotWaker::new(slot, self.ready.clone());
        let mut id = None;
        if self.shared.options.track_clients {
            let (client, outbox) = self.shared.registry.register(info.remote_addr(), None);
            id = Some(client);
            info.id = Some(client);
            ws.set_outbox(outbox);
        }
        let mut refused = false;
        let mut terminate = false;
        // Read after registering: a shutdown from now on reaches it through the registry.
        let state = if self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            let _ = ws.start_close(Some(&CloseFrame::new(1001u16, "")));
            None
        } else {
            let slot_waker = Waker::from(waker.clone());
            let mut client = Client {
                ws: &mut ws,
                waker: &slot_waker,
                id,
                refused: &mut refused,
                terminate: &mut terminate,
                sent: false,
            };
            let handler = &self.handler;
            match std::panic::catch_unwind(AssertUnwindSafe(|| handler.on_open(&mut client, info)))
            {
                Ok(state) => Some(state),
                Err(_) => {
                    terminate = true;
                    None
                }
            }
        };
        entry.insert(Entry {
            ws,
            waker,
            id,
            state,
            refused,
            terminate,
        });
        slot
    }

    /// Polls one connection: what it received goes to the handler (at most
    /// `MESSAGES_PER_TURN`), what it owes is written, and its end is reported.
    fn poll_slot(&mut self, slot: usize) {
        let EventLoop { slots, handler, .. } = self;
        let Some(entry) = slots.get_mut(slot) else {
            // A waker of a connection gone since.
            return;
        };
        entry.waker.clear();
        let waker = Waker::from(entry.waker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut handled = 0;
        // `on_read_done` was called since the last message.
        let mut told = false;
        let outcome: Option<Result<Option<CloseFrame>>> = loop {
            if entry.terminate || entry.ws.is_terminated() {
                break Some(Err(Error::new(ErrorKind::AbnormalClosure)));
            }
            // No message for the handler while the peer owes us reading what we wrote: what
            // it sends meanwhile waits in its socket, and the replies a callback may always
            // queue (its first message) stay one per message received.
            match entry.ws.poll_write_under_mark(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => break Some(Err(error)),
                Poll::Pending => {
                    // Not reading now, so the outbox isn't drained; it must still be able to
                    // wake this slot (a `terminate_client` for a client that stopped reading).
                    entry.ws.watch_outbox(&cx);
                    break None;
                }
            }
            match entry.ws.poll_recv(&mut cx) {
                Poll::Ready(Some(Ok(message))) => {
                    entry.call(&waker, |state, client| {
                        handler.on_message(state, client, message);
                    });
                    handled += 1;
                    told = false;
                    if handled == MESSAGES_PER_TURN {
                        // More may be buffered: back of the line.
                        waker.wake_by_ref();
                        break None;
                    }
                }
                Poll::Ready(Some(Err(error))) => break Some(Err(error)),
                Poll::Ready(None) => break Some(Ok(entry.ws.close_frame().cloned())),
                Poll::Pending => {
                    if handled > 0 && !told {
                        told = true;
                        entry.call(&waker, |state, client| handler.on_read_done(state, client));
                        // Whatever it queued is written by the next turn of this loop.
                        continue;
                    }
                    if entry.refused && !entry.ws.is_over_write_mark() {
                        entry.refused = false;
                        entry.call(&waker, |state, client| handler.on_drain(state, client));
                        // Whatever it queued is written by the next poll.
                        continue;
                    }
                    break None;
                }
            }
        };
        if handled > 0 && !told {
            // Stopped before the input ran dry (the turn's budget, the write mark, the end):
            // told all the same; what it queues is written by the next poll.
            entry.call(&waker, |state, client| handler.on_read_done(state, client));
            if outcome.is_none() {
                waker.wake_by_ref();
            }
        }
        if let Some(outcome) = outcome {
            self.close(slot, outcome);
        }
    }

    /// Removes an ended connection: unregistered, its stream dropped, the handler told.
    fn close(&mut self, slot: usize, outcome: Result<Option<CloseFrame>>) {
        let entry = self.slots.remove(slot);
        if let Some(id) = entry.id {
            self.shared.registry.unregister(id);
        }
        drop(entry.ws);
        if let Some(state) = entry.state {
            let handler = &self.handler;
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| handler.on_close(state, outcome)));
        }
    }
}

// Nothing of the loop is ever pinned in place: the states move with the slab.
impl<H: EventHandler> Unpin for EventLoop<H> {}

impl<H: EventHandler> Future for EventLoop<H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.ready.register(cx.waker());
        let mut opened = 0;
        while this.accepting && opened < OPENS_PER_TURN {
            match this.incoming.poll_recv(cx) {
                Poll::Ready(Some((ws, info))) => {
                    let slot = this.open(ws, info);
                    // Polled this turn: it may have bytes read with its handshake.
                    this.pending.push_back(slot);
                    opened += 1;
                }
                Poll::Ready(None) => this.accepting = false,
                Poll::Pending => break,
            }
        }
        this.ready.drain_into(&mut this.pending);
        for _ in 0..SLOTS_PER_TURN {
            let Some(slot) = this.pending.pop_front() else {
                break;
            };
            this.poll_slot(slot);
        }
        if !this.accepting && this.slots.is_empty() {
            return Poll::Ready(());
        }
        if opened == OPENS_PER_TURN || !this.pending.is_empty() || !this.ready.is_empty() {
            // More to do: after the runtime's other tasks.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<H: EventHandler> Drop for EventLoop<H> {
    /// A loop dropped with connections (its task aborted): they leave the registry too.
    fn drop(&mut self) {
        for (_, entry) in self.slots.iter() {
            if let Some(id) = entry.id {
                self.shared.registry.unregister(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection of an event loop is its slab entry, its socket's reactor entry and
    /// its waker: the entry is most of it (measured with `elo-bench idle`: about 0.9 KB a
    /// connection in all). Rarely set state is boxed (`WebSocket::rare`, the core's partial
    /// frame and message, owed pong, close deadline and heartbeat), so a field added to the hot
    /// structs shows here first. The bounds are a test build's sizes: 16 bytes over a release
    /// build's (264 and 288).
    #[test]
    fn an_idle_connections_state_stays_small() {
        let ws = std::mem::size_of::<WebSocket<ServerStream>>();
        let entry = std::mem::size_of::<Entry<()>>();
        assert!(ws <= 280, "WebSocket<ServerStream> is {ws} bytes");
        assert!(entry <= 304, "a loop's entry is {entry} bytes");
    }
}

//! The set of connected clients, for broadcast, messages to one client, and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::{AbortHandle, Id as TaskId};

use crate::io::outbox::Delivery;
use crate::io::Outbox;
use crate::proto::message::Message;

/// Identifies a connected client for the lifetime of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a broadcast did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Clients the message was queued for.
    pub queued: usize,
    /// Clients skipped because their broadcast backlog was full.
    pub dropped: usize,
}

struct Client {
    outbox: Arc<Outbox>,
    remote: Option<SocketAddr>,
    /// The task running the client's handler, to terminate it.
    task: Option<TaskId>,
}

#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    clients: Mutex<HashMap<ClientId, Client>>,
    tasks: Mutex<HashMap<TaskId, AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub(super) fn register(&self, remote: Option<SocketAddr>) -> (ClientId, Arc<Outbox>) {
        let id = ClientId(self.next.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::default());
        lock(&self.clients).insert(
            id,
            Client {
                outbox: outbox.clone(),
                remote,
                task: tokio::task::try_id(),
            },
        );
        (id, outbox)
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.clients).len()
    }

    pub(super) fn ids(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = lock(&self.clients).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(super) fn broadcast(
        &self,
        message: &Message,
        except: Option<ClientId>,
        limit: usize,
    ) -> BroadcastReport {
        let clients = lock(&self.clients);
        let mut report = BroadcastReport::default();
        for (id, client) in clients.iter() {
            if Some(*id) == except {
                continue;
            }
            match client.outbox.push(message.clone(), limit) {
                Delivery::Queued => report.queued += 1,
                Delivery::Dropped | Delivery::NotConnected => report.dropped += 1,
            }
        }
        report
    }

    pub(super) fn send_to(&self, id: ClientId, message: Message, limit: usize) -> Delivery {
        // The outbox is cloned out so that no other client waits on this push.
        let outbox = lock(&self.clients).get(&id).map(|c| c.outbox.clone());
        outbox.map_or(Delivery::NotConnected, |outbox| outbox.push(message, limit))
    }

    pub(super) fn remote_addr(&self, id: ClientId) -> Option<SocketAddr> {
        lock(&self.clients).get(&id).and_then(|c| c.remote)
    }

    /// Aborts the client's task, which drops its connection without a close frame.
    pub(super) fn terminate(&self, id: ClientId) -> bool {
        let Some(task) = lock(&self.clients).get(&id).and_then(|c| c.task) else {
            return false;
        };
        match lock(&self.tasks).remove(&task) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    pub(super) fn track_task(&self, handle: AbortHandle) {
        let id = handle.id();
        let finished = handle.is_finished();
        let mut tasks = lock(&self.tasks);
        if finished {
            tasks.remove(&id);
        } else {
            tasks.insert(id, handle);
        }
    }

    pub(super) fn untrack_current_task(&self) {
        if let Some(id) = tokio::task::try_id() {
            lock(&self.tasks).remove(&id);
        }
    }

    pub(super) fn abort_all(&self) {
        for (_, handle) in lock(&self.tasks).drain() {
            handle.abort();
        }
        lock(&self.clients).clear();
    }
}

/// Removes a client, once registered, when its task ends (or is aborted).
pub(super) struct Unregister<'a> {
    pub(super) registry: &'a Registry,
    pub(super) id: Option<ClientId>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&self.registry.clients).remove(&id);
        }
    }
}

/// Forgets the current task's abort handle when the task ends.
pub(super) struct UntrackTask<'a>(pub(super) &'a Registry);

impl Drop for UntrackTask<'_> {
    fn drop(&mut self) {
        self.0.untrack_current_task();
    }
}

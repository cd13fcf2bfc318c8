//! The set of connected clients and their subscriptions: for broadcasts, topics, messages to
//! one client, and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::{AbortHandle, Id as TaskId};

use super::topics::{Subscribers, Topics};
use crate::broker::Link;
use crate::io::outbox::{Delivery, SlowPolicy};
use crate::io::{Outbox, Outgoing};
use crate::proto::message::Message;
use crate::proto::prepared::PreparedMessage;

/// Identifies a connected client for the lifetime of the server.
// Non-zero (numbered from 1): an `Option<ClientId>`, held by every connection of an event
// loop, costs no more than the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(std::num::NonZeroU64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a broadcast or a publish did on this server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Clients the message was queued for.
    pub queued: usize,
    /// Clients skipped because their backlog was full ([`SlowPolicy::Drop`]).
    pub dropped: usize,
    /// Clients skipped because their backlog was full, and closed for it
    /// ([`SlowPolicy::Close`]).
    pub closed: usize,
}

struct Client {
    outbox: Arc<Outbox>,
    remote: Option<SocketAddr>,
    /// The task running the client's handler, to terminate it.
    task: Option<TaskId>,
    topics: Vec<Arc<str>>,
}

pub(super) struct Registry {
    next: AtomicU64,
    clients: Mutex<HashMap<ClientId, Client>>,
    /// Every client, for broadcasts.
    all: Subscribers,
    topics: Topics,
    tasks: Mutex<HashMap<TaskId, AbortHandle>>,
    /// The backlog limit and policy every client's outbox gets.
    limit: usize,
    policy: SlowPolicy,
    /// Told when the last client leaves (shutdown waits on it).
    pub(super) emptied: tokio::sync::Notify,
    /// The broker joining this server to others, if any: told of the first and last
    /// subscriber of each topic.
    pub(super) link: Option<Arc<Link>>,
    /// Deliveries dropped for, and clients closed for falling behind, of clients gone.
    dropped_total: AtomicU64,
    closed_slow: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub(super) fn new(limit: usize, policy: SlowPolicy, link: Option<Arc<Link>>) -> Registry {
        Registry {
            next: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
            all: Subscribers::default(),
            topics: Topics::default(),
            tasks: Mutex::new(HashMap::new()),
            limit,
            policy,
            emptied: tokio::sync::Notify::new(),
            link,
            dropped_total: AtomicU64::new(0),
            closed_slow: AtomicU64::new(0),
        }
    }

    /// Registers a client whose connection is driven by `task` (its own, aborted by
    /// `terminate`), or by an event loop (`None`: `terminate` asks through its outbox).
    pub(super) fn register(
        &self,
        remote: Option<SocketAddr>,
        task: Option<TaskId>,
    ) -> (ClientId, Arc<Outbox>) {
        let id = ClientId(
            std::num::NonZeroU64::MIN.saturating_add(self.next.fetch_add(1, Ordering::Relaxed)),
        );
        let outbox = Arc::new(Outbox::new(self.limit, self.policy));
        lock(&self.clients).insert(
            id,
            Client {
                outbox: outbox.clone(),
                remote,
                task,
                topics: Vec::new(),
            },
        );
        self.all.add(id, &outbox);
        (id, outbox)
    }

    pub(super) fn unregister(&self, id: ClientId) {
        let Some(client) = lock(&self.clients).remove(&id) else {
            return;
        };
        self.all.remove(id);
        for topic in &client.topics {
            self.leave(topic, id);
        }
        self.dropped_total
            .fetch_add(client.outbox.dropped(), Ordering::Relaxed);
        if client.outbox.is_closed_slow() {
            self.closed_slow.fetch_add(1, Ordering::Relaxed);
        }
        if lock(&self.clients).is_empty() {
            self.emptied.notify_waiters();
        }
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
        message: &PreparedMessage,
        except: Option<ClientId>,
    ) -> BroadcastReport {
        self.all.deliver(std::slice::from_ref(message), except)
    }

    /// Queues a close frame for every client, whatever its backlog.
    pub(super) fn close_all(&self, message: &Message) {
        for (_, outbox) in self.all.snapshot().iter() {
            outbox.push(Outgoing::Message(Box::new(message.clone())));
        }
    }

    pub(super) fn send_to(&self, id: ClientId, message: Outgoing) -> Delivery {
        // The outbox is cloned out so that no other client waits on this push.
        let outbox = lock(&self.clients).get(&id).map(|c| c.outbox.clone());
        outbox.map_or(Delivery::NotConnected, |outbox| outbox.push(message))
    }

    /// Subscribes a client to a topic; `false` if it is not connected.
    pub(super) fn subscribe(&self, id: ClientId, topic: &str) -> bool {
        let mut clients = lock(&self.clients);
        let Some(client) = clients.get_mut(&id) else {
            return false;
        };
        if client.topics.iter().any(|t| &**t == topic) {
            return true;
        }
        client.topics.push(Arc::from(topic));
        let outbox = client.outbox.clone();
        // Under the clients lock: a client leaving meanwhile can't miss this subscription.
        if self.topics.subscribe(topic, id, &outbox) {
            if let Some(link) = &self.link {
                link.want(topic, true);
            }
        }
        true
    }

    /// Unsubscribes a client from a topic; `false` if it was not subscribed.
    pub(super) fn unsubscribe(&self, id: ClientId, topic: &str) -> bool {
        let mut clients = lock(&self.clients);
        let Some(client) = clients.get_mut(&id) else {
            return false;
        };
        let Some(index) = client.topics.iter().position(|t| &**t == topic) else {
            return false;
        };
        client.topics.swap_remove(index);
        self.leave(topic, id);
        true
    }

    fn leave(&self, topic: &str, id: ClientId) {
        if self.topics.unsubscribe(topic, id) {
            if let Some(link) = &self.link {
                link.want(topic, false);
            }
        }
    }

    /// Queues `messages`, in order, for the topic's subscribers on this server.
    pub(super) fn publish_local(
        &self,
        topic: &str,
        messages: &[PreparedMessage],
        except: Option<ClientId>,
    ) -> BroadcastReport {
        self.topics
            .get(topic)
            .map_or_else(BroadcastReport::default, |s| s.deliver(messages, except))
    }

    pub(super) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.len())
    }

    pub(super) fn topic_names(&self) -> Vec<String> {
        self.topics.names()
    }

    pub(super) fn client_topics(&self, id: ClientId) -> Vec<String> {
        lock(&self.clients).get(&id).map_or_else(Vec::new, |c| {
            c.topics.iter().map(|t| t.to_string()).collect()
        })
    }

    /// Deliveries dropped and clients closed for falling behind, since the start.
    pub(super) fn slow_counts(&self) -> (u64, u64) {
        let clients = lock(&self.clients);
        let mut dropped = self.dropped_total.load(Ordering::Relaxed);
        let mut closed = self.closed_slow.load(Ordering::Relaxed);
        for client in clients.values() {
            dropped += client.outbox.dropped();
            closed += u64::from(client.outbox.is_closed_slow());
        }
        (dropped, closed)
    }

    pub(super) fn remote_addr(&self, id: ClientId) -> Option<SocketAddr> {
        lock(&self.clients).get(&id).and_then(|c| c.remote)
    }

    /// Aborts the client's task, which drops its connection without a close frame; a client
    /// of an event loop is dropped by its loop, asked through the outbox.
    pub(super) fn terminate(&self, id: ClientId) -> bool {
        let task = {
            let clients = lock(&self.clients);
            let Some(client) = clients.get(&id) else {
                return false;
            };
            match client.task {
                Some(task) => task,
                None => {
                    client.outbox.terminate();
                    return true;
                }
            }
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
        let ids: Vec<ClientId> = lock(&self.clients).keys().copied().collect();
        for id in ids {
            self.unregister(id);
        }
    }
}

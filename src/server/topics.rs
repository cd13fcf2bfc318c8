//! Subscriber lists: every client (for broadcasts) and named topics.
//!
//! A list is an `Arc`'d vector swapped under a short lock: a publisher takes a snapshot (one
//! reference count) and queues to every subscriber without holding any lock but each
//! subscriber's own outbox, so publishing to ten thousand clients never blocks subscribing,
//! and two publishers never wait for each other. Changing a list copies it only while a
//! publisher still holds the old snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::registry::{BroadcastReport, ClientId};
use crate::io::outbox::Delivery;
use crate::io::Outbox;
use crate::proto::prepared::{PreparedBatch, PreparedMessage};

pub(super) type Member = (ClientId, Arc<Outbox>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One list of subscribers.
#[derive(Default)]
pub(super) struct Subscribers {
    list: Mutex<Arc<Vec<Member>>>,
}

impl Subscribers {
    /// Adds a member (once); answers the count after.
    pub(super) fn add(&self, id: ClientId, outbox: &Arc<Outbox>) -> usize {
        let mut list = lock(&self.list);
        if !list.iter().any(|(m, _)| *m == id) {
            Arc::make_mut(&mut list).push((id, outbox.clone()));
        }
        list.len()
    }

    /// Removes a member; answers the count after, `None` if it wasn't there.
    pub(super) fn remove(&self, id: ClientId) -> Option<usize> {
        let mut list = lock(&self.list);
        let index = list.iter().position(|(m, _)| *m == id)?;
        Arc::make_mut(&mut list).swap_remove(index);
        Some(list.len())
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.list).len()
    }

    pub(super) fn snapshot(&self) -> Arc<Vec<Member>> {
        lock(&self.list).clone()
    }

    /// Queues `messages`, in order, for every member but `except`: one visit per member.
    pub(super) fn deliver(
        &self,
        messages: &[PreparedMessage],
        except: Option<ClientId>,
    ) -> BroadcastReport {
        let members = self.snapshot();
        let mut report = BroadcastReport::default();
        // Framed together once, when at least two members may take it (`except` may be one).
        let batch = if members.len() >= 2 + usize::from(except.is_some()) {
            PreparedBatch::new(messages)
        } else {
            None
        };
        for (id, outbox) in members.iter() {
            if Some(*id) != except {
                outbox.push_all(messages, batch.as_ref(), |delivery| report.count(delivery));
            }
        }
        report
    }
}

impl BroadcastReport {
    pub(super) fn count(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Queued => self.queued += 1,
            Delivery::Dropped => self.dropped += 1,
            Delivery::Closed => self.closed += 1,
            Delivery::NotConnected => {}
        }
    }
}

/// Named topics and their subscribers; a topic exists while it has any.
#[derive(Default)]
pub(super) struct Topics {
    map: Mutex<HashMap<Arc<str>, Arc<Subscribers>>>,
}

impl Topics {
    /// Subscribes; answers whether it is the topic's first subscriber.
    pub(super) fn subscribe(&self, topic: &str, id: ClientId, outbox: &Arc<Outbox>) -> bool {
        let mut map = lock(&self.map);
        let subscribers = map.entry(Arc::from(topic)).or_default();
        subscribers.add(id, outbox) == 1
    }

    /// Unsubscribes; answers whether the topic has no subscriber left (it is then gone).
    pub(super) fn unsubscribe(&self, topic: &str, id: ClientId) -> bool {
        let mut map = lock(&self.map);
        let Some(subscribers) = map.get(topic) else {
            return false;
        };
        if subscribers.remove(id) == Some(0) {
            map.remove(topic);
            return true;
        }
        false
    }

    pub(super) fn get(&self, topic: &str) -> Option<Arc<Subscribers>> {
        lock(&self.map).get(topic).cloned()
    }

    pub(super) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.map).keys().map(|k| k.to_string()).collect();
        names.sort_unstable();
        names
    }
}

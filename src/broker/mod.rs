//! Many servers, one fan-out: topics joined across server processes through a message broker.
//!
//! A server given a [`Broker`] ([`ServerBuilder::broker`](crate::server::ServerBuilder::broker))
//! holds one broker subscription per topic while it has local subscribers to it (taken at the
//! first, dropped at the last). [`ServerHandle::publish`](crate::server::ServerHandle::publish)
//! queues the message for the local subscribers and sends it to the broker once; every other
//! server subscribed to the topic delivers it to its own. Each message carries its server's
//! node id, and a server ignores its own messages coming back, so every subscriber gets each
//! message once.
//!
//! The link to the broker reconnects on its own, with exponential backoff (100 ms doubling to
//! 5 s, with jitter), and resubscribes to every topic. While it is down,
//! [`ServerHandle::broker_status`](crate::server::ServerHandle::broker_status) says so and
//! every publish returns an [`ErrorKind::Broker`](crate::ErrorKind::Broker) error: nothing is
//! delivered, here or elsewhere, so the caller may retry.
//!
//! **Delivery guarantee**: at most once, in order per publishing server, as the brokers' plain
//! publish/subscribe gives: a message published while a node's link is down, or in flight
//! when a connection drops, is not delivered to that node's subscribers, and nothing is
//! replayed after a reconnection. Redis pub/sub and NATS core both give exactly this.
//!
//! Implementations: [`redis::RedisBroker`] (feature `redis`) and [`nats::NatsBroker`]
//! (feature `nats`); another broker implements [`Broker`] and [`BrokerSession`].

mod link;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

pub(crate) use link::Link;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A boxed future, as the broker traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a broker's client, as a message (the link logs it in the status and
/// reconnects).
pub type BrokerError = Box<dyn std::error::Error + Send + Sync>;

/// A message broker with publish/subscribe: how to open a session to it.
pub trait Broker: Send + Sync + 'static {
    /// Opens a session (a connection, or two). Called again, after a backoff, whenever the
    /// previous session is lost.
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn BrokerSession>, BrokerError>>;

    /// Where it is, for logs and status (a URL without credentials).
    fn describe(&self) -> String;
}

/// One connected session with a broker. The link calls it from one task.
pub trait BrokerSession: Send {
    /// Starts receiving the messages published to `topic`.
    fn subscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Stops receiving the messages published to `topic`.
    fn unsubscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Publishes each `(topic, payload)` in order.
    fn publish<'a>(
        &'a mut self,
        batch: &'a [(std::sync::Arc<str>, Bytes)],
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// The next message on a subscribed topic, as `(topic, payload)`; `None` once the session
    /// is lost. Must be cancel-safe: the link drops it to publish or subscribe meanwhile, and,
    /// after each message, polls it once more per message already arrived and drops it as
    /// soon as none is ready.
    fn next_message(&mut self) -> BoxFuture<'_, Option<(String, Bytes)>>;
}

/// Where a server's link to its broker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerStatus {
    /// Not connected yet (the first attempt is running).
    Connecting,
    /// Connected and subscribed to every topic with local subscribers.
    Up,
    /// Lost or unreachable; reconnecting with backoff. Publishes fail meanwhile.
    Down {
        /// Why, as the broker's client said.
        error: String,
    },
}

impl BrokerStatus {
    /// Whether publishes go through.
    pub fn is_up(&self) -> bool {
        matches!(self, BrokerStatus::Up)
    }
}

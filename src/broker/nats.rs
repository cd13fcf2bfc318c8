//! NATS core publish/subscribe (feature `nats`): topics are subjects `elo.t` followed by the
//! topic's bytes in hex (a topic may hold dots, spaces or wildcards, which subjects can't).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, StreamMap};

use super::{BoxFuture, Broker, BrokerError, BrokerSession};

/// A NATS server (or cluster) as the broker.
///
/// The link, not the NATS client, reconnects: a session ends when the client reports a
/// disconnection, so that publishes fail during the outage instead of waiting in the client's
/// buffer, and every topic is resubscribed on the new connection.
pub struct NatsBroker {
    url: String,
}

impl NatsBroker {
    /// A broker at `url` (`nats://host:port`, or several separated by commas); nothing is
    /// connected yet.
    pub fn new(url: impl Into<String>) -> NatsBroker {
        NatsBroker { url: url.into() }
    }
}

fn subject(topic: &str) -> String {
    let mut subject = String::with_capacity(5 + topic.len() * 2);
    subject.push_str("elo.t");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in topic.bytes() {
        subject.push(char::from(HEX[usize::from(byte >> 4)]));
        subject.push(char::from(HEX[usize::from(byte & 15)]));
    }
    subject
}

impl Broker for NatsBroker {
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn BrokerSession>, BrokerError>> {
        Box::pin(async move {
            let (lost_tx, lost) = mpsc::channel(1);
            let client = async_nats::ConnectOptions::new()
                .event_callback(move |event| {
                    let lost_tx = lost_tx.clone();
                    async move {
                        if matches!(event, async_nats::Event::Disconnected) {
                            let _ = lost_tx.try_send(());
                        }
                    }
                })
                .connect(self.url.as_str())
                .await?;
            Ok(Box::new(NatsSession {
                client,
                subscriptions: StreamMap::new(),
                lost,
            }) as Box<dyn BrokerSession>)
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

struct NatsSession {
    client: async_nats::Client,
    subscriptions: StreamMap<String, async_nats::Subscriber>,
    lost: mpsc::Receiver<()>,
}

impl BrokerSession for NatsSession {
    fn subscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let subscriber = self.client.subscribe(subject(topic)).await?;
            self.subscriptions.insert(topic.to_owned(), subscriber);
            Ok(())
        })
    }

    fn unsubscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if let Some(mut subscriber) = self.subscriptions.remove(topic) {
                subscriber.unsubscribe().await?;
            }
            Ok(())
        })
    }

    fn publish<'a>(
        &'a mut self,
        batch: &'a [(Arc<str>, Bytes)],
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            for (topic, payload) in batch {
                self.client.publish(subject(topic), payload.clone()).await?;
            }
            Ok(())
        })
    }

    fn next_message(&mut self) -> BoxFuture<'_, Option<(String, Bytes)>> {
        Box::pin(async move {
            // With no subscription, StreamMap ends at once: then only a disconnection counts.
            let subscribed = !self.subscriptions.is_empty();
            tokio::select! {
                _ = self.lost.recv() => None,
                Some((topic, message)) = self.subscriptions.next(), if subscribed => {
                    Some((topic, message.payload))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_topic_makes_a_valid_subject() {
        assert_eq!(super::subject("/chat"), "elo.t2f63686174");
        assert_eq!(super::subject(""), "elo.t");
        assert_eq!(super::subject("a.b *>"), "elo.t612e62202a3e");
    }
}

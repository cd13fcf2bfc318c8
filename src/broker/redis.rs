//! Redis pub/sub (feature `redis`): topics are channels named `elo:TOPIC`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};

use super::{BoxFuture, Broker, BrokerError, BrokerSession};

const PREFIX: &str = "elo:";

/// A Redis server (or a Sentinel-less replica set's primary) as the broker.
///
/// ```no_run
/// use enim_labore_occaecati::broker::redis::RedisBroker;
/// use enim_labore_occaecati::server::Server;
/// # async fn run() -> enim_labore_occaecati::Result<()> {
/// let server = Server::builder()
///     .broker(RedisBroker::new("redis://127.0.0.1:6379")?)
///     .bind("127.0.0.1:8080")
///     .await?;
/// # Ok(()) }
/// ```
pub struct RedisBroker {
    client: redis::Client,
    describe: String,
}

impl RedisBroker {
    /// A broker at `url` (`redis://[user:password@]host:port[/db]`); nothing is connected yet.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a URL Redis can't use.
    pub fn new(url: &str) -> crate::Result<RedisBroker> {
        let client = redis::Client::open(url)
            .map_err(|e| crate::Error::invalid_input(format!("Redis URL {url:?}: {e}")))?;
        let info = client.get_connection_info();
        let describe = format!("redis://{}", info.addr());
        Ok(RedisBroker { client, describe })
    }
}

impl Broker for RedisBroker {
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn BrokerSession>, BrokerError>> {
        Box::pin(async move {
            // Subscribing takes a connection of its own; publishing goes through another.
            let (sink, stream) = self.client.get_async_pubsub().await?.split();
            let publisher = self.client.get_multiplexed_async_connection().await?;
            Ok(Box::new(RedisSession {
                sink,
                stream,
                publisher,
            }) as Box<dyn BrokerSession>)
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

struct RedisSession {
    sink: PubSubSink,
    stream: PubSubStream,
    publisher: MultiplexedConnection,
}

impl BrokerSession for RedisSession {
    fn subscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move { Ok(self.sink.subscribe(format!("{PREFIX}{topic}")).await?) })
    }

    fn unsubscribe<'a>(&'a mut self, topic: &'a str) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move { Ok(self.sink.unsubscribe(format!("{PREFIX}{topic}")).await?) })
    }

    fn publish<'a>(
        &'a mut self,
        batch: &'a [(Arc<str>, Bytes)],
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            // One pipeline: one round trip for the batch.
            let mut pipe = redis::pipe();
            for (topic, payload) in batch {
                pipe.cmd("PUBLISH")
                    .arg(format!("{PREFIX}{topic}"))
                    .arg(&payload[..])
                    .ignore();
            }
            pipe.query_async::<()>(&mut self.publisher).await?;
            Ok(())
        })
    }

    fn next_message(&mut self) -> BoxFuture<'_, Option<(String, Bytes)>> {
        Box::pin(async move {
            loop {
                let message = self.stream.next().await?;
                let Some(topic) = message.get_channel_name().strip_prefix(PREFIX) else {
                    continue;
                };
                return Some((
                    topic.to_owned(),
                    Bytes::copy_from_slice(message.get_payload_bytes()),
                ));
            }
        })
    }
}

//! The relay servers of the fan-out benchmark: each relays every message a client sends to
//! every other client connected on the same path. One tokio `current_thread` runtime per
//! process, like the echo servers; the reference library's runs under Node
//! (`bench/fanout/ws-broadcast.js`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

use crate::servers::{ready, BoxError};

/// How a relay server is started (`elo-bench fanout-server …`).
pub struct RelayOpts {
    pub deflate: bool,
    pub broker: Option<String>,
}

pub fn run(
    imp: &str,
    addr: SocketAddr,
    cpu: Option<usize>,
    opts: RelayOpts,
) -> Result<(), BoxError> {
    crate::servers::serve_on_one_thread(cpu, async move {
        match imp {
            "elo" => elo(addr, opts).await,
            "elo-events" => elo_events(addr, opts).await,
            "tungstenite" => tungstenite(addr).await,
            other => Err(format!("no relay server {other:?}").into()),
        }
    })
}

/// Ours: each client subscribed to its path's topic, each message published to the others.
/// With `--deflate`, permessage-deflate with the default threshold (1 KiB); a client that asks
/// for server_no_context_takeover gets the message compressed once for all such clients.
async fn elo(addr: SocketAddr, opts: RelayOpts) -> Result<(), BoxError> {
    use enim_labore_occaecati::server::Server;
    let mut builder = Server::builder();
    if opts.deflate {
        builder = builder.deflate(enim_labore_occaecati::deflate::DeflateConfig::default());
    }
    if let Some(url) = &opts.broker {
        builder = if url.starts_with("nats://") {
            builder.broker(enim_labore_occaecati::broker::nats::NatsBroker::new(
                url.as_str(),
            ))
        } else {
            builder.broker(enim_labore_occaecati::broker::redis::RedisBroker::new(url)?)
        };
    }
    let server = builder.bind(addr).await?;
    let handle = server.handle();
    if let Some(mut events) = handle.broker_events() {
        // Ready once the broker link is up.
        events.wait_for(|s| s.is_up()).await?;
    }
    ready(server.local_addr()?);
    let relay = handle.clone();
    server
        .serve(move |mut ws, client| {
            let handle = relay.clone();
            async move {
                let Some(id) = client.id() else { return };
                let topic = client.request().uri().path().to_owned();
                // The request's headers aren't needed while the connection lasts.
                drop(client);
                handle.subscribe(id, &topic);
                // What one read brought is published as one batch.
                let mut batch = Vec::new();
                while let Ok(1..) = ws.recv_many(&mut batch, 64).await {
                    let _ = handle.publish_all(&topic, Some(id), batch.drain(..));
                }
            }
        })
        .await?;
    Ok(())
}

/// Ours on event loops (`serve_events`): the same relay from callbacks, the messages of one
/// read gathered by `on_message` and published together from `on_read_done`.
async fn elo_events(addr: SocketAddr, opts: RelayOpts) -> Result<(), BoxError> {
    use enim_labore_occaecati::server::events::{Client, EventHandler};
    use enim_labore_occaecati::server::{ClientId, ClientInfo, Server, ServerHandle};
    use enim_labore_occaecati::Message;

    struct Relay(ServerHandle);
    /// The client's id and topic, and the messages of its current read.
    type Subscriber = Option<(ClientId, String, Vec<Message>)>;
    impl EventHandler for Relay {
        type State = Subscriber;
        fn on_open(&self, _client: &mut Client<'_>, info: ClientInfo) -> Subscriber {
            let id = info.id()?;
            let topic = info.request().uri().path().to_owned();
            self.0.subscribe(id, &topic);
            Some((id, topic, Vec::new()))
        }
        fn on_message(&self, state: &mut Subscriber, _client: &mut Client<'_>, m: Message) {
            if let Some((_, _, read)) = state {
                read.push(m);
            }
        }
        // What one read brought is published as one batch.
        fn on_read_done(&self, state: &mut Subscriber, _client: &mut Client<'_>) {
            if let Some((id, topic, read)) = state {
                let _ = self.0.publish_all(topic, Some(*id), read.drain(..));
            }
        }
    }

    let mut builder = Server::builder();
    if opts.deflate {
        builder = builder.deflate(enim_labore_occaecati::deflate::DeflateConfig::default());
    }
    if opts.broker.is_some() {
        return Err("elo-events relays on one node only".into());
    }
    let server = builder.bind(addr).await?;
    let handle = server.handle();
    ready(server.local_addr()?);
    server.serve_events(Relay(handle)).await?;
    Ok(())
}

type Channel = broadcast::Sender<(u64, tokio_tungstenite::tungstenite::Message)>;

/// tokio-tungstenite with its idiomatic fan-out: a task per connection and a
/// `tokio::sync::broadcast` channel per path; each connection's writer forwards what others
/// sent. A writer that lags past the channel's capacity misses messages (and the benchmark,
/// a closed loop, then stalls and says so).
async fn tungstenite(addr: SocketAddr) -> Result<(), BoxError> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    let rooms: Arc<Mutex<HashMap<String, Channel>>> = Arc::default();
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let rooms = rooms.clone();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut path = String::new();
            // The callback's type is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |request: &Request, response: Response| {
                path = request.uri().path().to_owned();
                Ok(response)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let channel = rooms
                .lock()
                .unwrap()
                .entry(path)
                .or_insert_with(|| broadcast::channel(4096).0)
                .clone();
            let mut inbox = channel.subscribe();
            let (mut write, mut read) = ws.split();
            let writer = tokio::spawn(async move {
                loop {
                    match inbox.recv().await {
                        Ok((from, message)) if from != id => {
                            if write.send(message).await.is_err() {
                                break;
                            }
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            while let Some(Ok(message)) = read.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = channel.send((id, message));
                }
            }
            writer.abort();
        });
    }
}

//! Fan-out on one server, against real clients over loopback: prepared messages framed once
//! (and compressed once), topics, and the bounded backlog of a client that stops reading,
//! under both slow-subscriber policies. Across servers through real brokers: `brokers`.

use std::time::Duration;

use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::{ClientId, Server, ServerHandle, SlowPolicy};
use enim_labore_occaecati::{ClientBuilder, Config, Message, PreparedMessage, WebSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::common;

const LIMIT: Duration = Duration::from_secs(20);

/// A server whose handlers announce their client's id and then read until the end.
async fn server(
    builder: enim_labore_occaecati::server::ServerBuilder,
) -> (String, ServerHandle, mpsc::UnboundedReceiver<ClientId>) {
    let (url, handle, ids, _left) = server_with_departures(builder).await;
    (url, handle, ids)
}

/// [`server`], also announcing each client whose handler has ended. The test runtime has one
/// thread, and a client is unregistered in the same poll as its handler ends, so a departure
/// received means the client is gone from the registry.
async fn server_with_departures(
    builder: enim_labore_occaecati::server::ServerBuilder,
) -> (
    String,
    ServerHandle,
    mpsc::UnboundedReceiver<ClientId>,
    mpsc::UnboundedReceiver<ClientId>,
) {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let handle = server.handle();
    let (ids_tx, ids) = mpsc::unbounded_channel();
    let (left_tx, left) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws, info| {
        let ids_tx = ids_tx.clone();
        let left_tx = left_tx.clone();
        async move {
            let id = info.id().expect("tracked");
            let _ = ids_tx.send(id);
            while let Ok(Some(_)) = ws.recv().await {}
            let _ = left_tx.send(id);
        }
    }));
    (url, handle, ids, left)
}

async fn next(ws: &mut WebSocket<ClientStream>) -> Message {
    timeout(LIMIT, ws.recv()).await.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn a_prepared_message_reaches_plain_and_compressing_clients_alike() {
    let mut deflate = DeflateConfig::default();
    deflate.threshold = 16;
    let (url, handle, mut ids) = server(Server::builder().deflate(deflate.clone())).await;
    let mut shared = DeflateConfig::default();
    // Asks the server to compress each message on its own: the frame compressed once is
    // shared with it. The default offer keeps context takeover: its own compressor.
    shared.server_no_context_takeover = true;
    let mut clients = vec![connect_plain(&url).await];
    clients.push(
        ClientBuilder::new()
            .deflate(Some(shared))
            .connect(&url)
            .await
            .unwrap()
            .0,
    );
    clients.push(
        ClientBuilder::new()
            .deflate(Some(DeflateConfig::default()))
            .connect(&url)
            .await
            .unwrap()
            .0,
    );
    for _ in 0..3 {
        timeout(LIMIT, ids.recv()).await.unwrap();
    }
    assert!(clients[1]
        .extensions()
        .contains("server_no_context_takeover"));
    assert!(!clients[2]
        .extensions()
        .contains("server_no_context_takeover"));
    let text = "a broadcast repeated until it compresses well; ".repeat(40);
    let binary: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    for _ in 0..3 {
        assert_eq!(handle.broadcast(text.as_str()).queued, 3);
        assert_eq!(handle.broadcast(binary.clone()).queued, 3);
    }
    // A control message goes through the same path, framed by each connection.
    assert_eq!(handle.broadcast(Message::Ping("hi".into())).queued, 3);
    for client in &mut clients {
        for _ in 0..3 {
            assert_eq!(next(client).await, Message::text(text.as_str()));
            assert_eq!(next(client).await, Message::binary(binary.clone()));
        }
    }
}

async fn connect_plain(url: &str) -> WebSocket<ClientStream> {
    enim_labore_occaecati::connect(url).await.unwrap().0
}

#[tokio::test]
async fn a_handler_can_send_one_prepared_message_to_many_connections() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let message = PreparedMessage::text("framed once");
    let copy = message.clone();
    tokio::spawn(server.serve(move |mut ws, _| {
        let message = copy.clone();
        async move {
            // Twice: fed (written by recv) and sent.
            ws.feed_prepared(&message).await.unwrap();
            ws.send_prepared(&message).await.unwrap();
            while let Ok(Some(_)) = ws.recv().await {}
        }
    }));
    for _ in 0..3 {
        let mut client = connect_plain(&url).await;
        assert_eq!(next(&mut client).await, Message::text("framed once"));
        assert_eq!(next(&mut client).await, Message::text("framed once"));
    }
    assert_eq!(message.len(), 11);
}

#[tokio::test]
async fn topics_reach_their_subscribers_only_and_end_with_the_connection() {
    let (url, handle, mut ids, mut left) = server_with_departures(Server::builder()).await;
    let mut a = connect_plain(&url).await;
    let id_a = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    let mut b = connect_plain(&url).await;
    let id_b = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    let c = connect_plain(&url).await;
    let id_c = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();

    assert!(handle.subscribe(id_a, "news"));
    assert!(handle.subscribe(id_b, "news"));
    assert!(handle.subscribe(id_a, "news"), "twice is once");
    assert!(handle.subscribe(id_c, "sport"));
    assert_eq!(handle.subscriber_count("news"), 2);
    assert_eq!(handle.topics(), ["news", "sport"]);
    assert_eq!(handle.client_topics(id_a), ["news"]);

    let report = handle.publish("news", "headline").unwrap();
    assert_eq!(report.queued, 2);
    // All but the sender.
    assert_eq!(
        handle
            .publish_except("news", id_a, "from a")
            .unwrap()
            .queued,
        1
    );
    assert_eq!(handle.publish("nobody", "void").unwrap().queued, 0);
    assert_eq!(next(&mut a).await, Message::text("headline"));
    assert_eq!(next(&mut b).await, Message::text("headline"));
    assert_eq!(next(&mut b).await, Message::text("from a"));

    assert!(handle.unsubscribe(id_b, "news"));
    assert!(!handle.unsubscribe(id_b, "news"));
    assert_eq!(handle.publish("news", "to a only").unwrap().queued, 1);
    assert_eq!(next(&mut a).await, Message::text("to a only"));

    // The connection ends: its subscriptions, and the topic it was alone in, go.
    drop(c);
    let gone = timeout(LIMIT, left.recv()).await.unwrap();
    assert_eq!(gone, Some(id_c));
    assert_eq!(
        handle.subscriber_count("sport"),
        0,
        "ended with the connection"
    );
    assert_eq!(handle.topics(), ["news"]);
    assert!(!handle.subscribe(id_c, "sport"), "not connected");
    // Nothing else arrived at b.
    handle.broadcast("last");
    assert_eq!(next(&mut b).await, Message::text("last"));
}

/// One client that never reads, one that reads everything, 1 KiB messages published far past
/// what the slow one's socket buffers and backlog hold.
async fn slow_subscriber(policy: SlowPolicy) -> (ServerHandle, u64, tokio::net::TcpStream) {
    const BACKLOG: usize = 256 << 10;
    const MESSAGES: u64 = 30_000;
    const WINDOW: u64 = 64;
    let mut config = Config::default();
    config.close_timeout = Duration::from_secs(1);
    let builder = Server::builder()
        .config(config)
        .max_backlog(BACKLOG)
        .slow_policy(policy);
    let (url, handle, mut ids) = server(builder).await;
    let addr = url.trim_start_matches("ws://").parse().unwrap();
    // Handshake done, then never a byte read.
    let stalled = common::raw_upgrade(addr).await;
    let stalled_id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    let mut reader = connect_plain(&url).await;
    let reader_id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    assert!(handle.subscribe(stalled_id, "feed") && handle.subscribe(reader_id, "feed"));

    // The reader keeps up: the publisher stays at most WINDOW messages ahead of it.
    let (read_tx, mut read) = mpsc::unbounded_channel::<u64>();
    let reading = tokio::spawn(async move {
        for expected in 0..MESSAGES {
            let message = next(&mut reader).await;
            let payload = message.as_payload();
            assert_eq!(payload.len(), 1024);
            let n = u64::from_be_bytes(payload[..8].try_into().unwrap());
            assert_eq!(n, expected, "in order, none missing");
            read_tx.send(n).unwrap();
        }
        reader
    });
    let mut payload = vec![b'x'; 1024];
    let mut skipped = 0u64;
    let mut last_read = None;
    for n in 0..MESSAGES {
        while last_read.map_or(0, |r| r + 1) + WINDOW <= n {
            last_read = Some(timeout(LIMIT, read.recv()).await.unwrap().unwrap());
        }
        payload[..8].copy_from_slice(&n.to_be_bytes());
        let report = handle.publish("feed", payload.clone()).unwrap();
        assert!(report.queued >= 1, "the reader always gets it");
        skipped += (report.dropped + report.closed) as u64;
    }
    let mut reader = timeout(LIMIT, reading).await.unwrap().unwrap();
    assert!(skipped > 0, "the stalled client fell behind");
    reader.close(None).await.unwrap();
    (handle, skipped, stalled)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_while_the_others_get_everything() {
    let (handle, skipped, mut stalled) = slow_subscriber(SlowPolicy::Close).await;
    let stats = handle.slow_stats();
    assert_eq!(stats.closed, 1, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    assert!(
        skipped > 10_000,
        "closed once, skipped from then on: {skipped}"
    );
    // Behind what was already on its way, the close frame: 1008, policy violation.
    let code = timeout(LIMIT, common::read_close_code(&mut stalled))
        .await
        .unwrap();
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn a_client_that_stops_reading_misses_messages_while_the_others_get_everything() {
    let (handle, skipped, _stalled) = slow_subscriber(SlowPolicy::Drop).await;
    let stats = handle.slow_stats();
    assert_eq!(stats.closed, 0, "{stats:?}");
    assert_eq!(stats.dropped, skipped, "every skip counted");
}

#[tokio::test]
async fn a_close_frame_passes_a_full_backlog() {
    // The close handshake's deadline ends the connection soon after the frame.
    let mut config = Config::default();
    config.close_timeout = Duration::from_millis(500);
    let (url, handle, mut ids) = server(
        Server::builder()
            .config(config)
            .max_backlog(4096)
            .slow_policy(SlowPolicy::Drop),
    )
    .await;
    let addr = url.trim_start_matches("ws://").parse().unwrap();
    let mut stalled = common::raw_upgrade(addr).await;
    let id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    // Under 64 KiB: read_close_code reads 16-bit lengths.
    let big = vec![0u8; 60_000];
    let mut dropped = 0;
    for _ in 0..200 {
        dropped += handle.broadcast(big.clone()).dropped;
    }
    assert!(dropped > 0);
    handle
        .close_client(
            id,
            Some(enim_labore_occaecati::CloseFrame::new(4000u16, "bye")),
        )
        .unwrap();
    // Behind the queued messages, the close frame arrives.
    let code = timeout(LIMIT, common::read_close_code(&mut stalled))
        .await
        .unwrap();
    assert_eq!(code, Some(4000));
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn publishing_with_a_broker_down_is_an_error_and_delivers_nothing() {
    use enim_labore_occaecati::broker::redis::RedisBroker;
    use enim_labore_occaecati::server::BrokerStatus;
    use enim_labore_occaecati::ErrorKind;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = RedisBroker::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let (url, handle, mut ids) = server(Server::builder().broker(broker)).await;
    let mut client = connect_plain(&url).await;
    let id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    assert!(handle.subscribe(id, "t"));
    let mut events = handle.broker_events().unwrap();
    let down = |s: &BrokerStatus| matches!(s, BrokerStatus::Down { .. });
    timeout(LIMIT, events.wait_for(down))
        .await
        .unwrap()
        .unwrap();
    let error = handle.publish("t", "lost?").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Broker);
    assert!(error.to_string().contains("down"), "{error}");
    // Delivered nowhere, not even here.
    handle.broadcast("next");
    assert_eq!(next(&mut client).await, Message::text("next"));
}

#[tokio::test]
async fn recv_many_takes_what_one_read_brought_and_keeps_a_later_error_for_the_next_call() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, mut results) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |mut ws, _| {
        let tx = tx.clone();
        async move {
            let mut batch = Vec::new();
            loop {
                let result = ws.recv_many(&mut batch, 3).await;
                let done = !matches!(result, Ok(1..));
                let _ = tx.send((result.map_err(|e| e.protocol_error()), batch.split_off(0)));
                if done {
                    break;
                }
            }
        }
    }));
    // Four messages and a frame with a reserved opcode, in one write.
    let mut tcp = common::raw_upgrade(addr).await;
    let mut bytes = Vec::new();
    for text in ["a", "b", "c", "d"] {
        bytes.extend(common::masked_frame(0x81, text.as_bytes()));
    }
    bytes.extend(common::masked_frame(0x83, b"bad"));
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &bytes)
        .await
        .unwrap();
    let mut texts = Vec::new();
    let error = loop {
        let (result, batch) = timeout(LIMIT, results.recv()).await.unwrap().unwrap();
        assert!(batch.len() <= 3, "at most the limit");
        texts.extend(batch.iter().map(|m| m.as_text().unwrap().to_owned()));
        match result {
            Ok(n) => assert_eq!(n, batch.len()),
            Err(error) => break error,
        }
    };
    assert_eq!(
        texts,
        ["a", "b", "c", "d"],
        "every message before the error"
    );
    assert_eq!(
        error.map(|e| e.close_code().as_u16()),
        Some(1002),
        "then the error"
    );
}

#[tokio::test]
async fn publish_all_delivers_a_batch_in_order_to_every_subscriber_but_one() {
    let (url, handle, mut ids) = server(Server::builder()).await;
    let mut a = connect_plain(&url).await;
    let id_a = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    let mut b = connect_plain(&url).await;
    let id_b = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
    assert!(handle.subscribe(id_a, "t") && handle.subscribe(id_b, "t"));
    let report = handle.publish_all("t", None, ["1", "2", "3"]).unwrap();
    assert_eq!(report.queued, 6, "a delivery per message and subscriber");
    let report = handle.publish_all("t", Some(id_a), ["4"]).unwrap();
    assert_eq!(report.queued, 1);
    for expected in ["1", "2", "3"] {
        assert_eq!(next(&mut a).await, Message::text(expected));
    }
    for expected in ["1", "2", "3", "4"] {
        assert_eq!(next(&mut b).await, Message::text(expected));
    }
}

#[tokio::test]
async fn a_published_batch_reaches_plain_and_compressing_subscribers_alike() {
    let mut deflate = DeflateConfig::default();
    deflate.threshold = 16;
    let (url, handle, mut ids) = server(Server::builder().deflate(deflate)).await;
    let mut shared = DeflateConfig::default();
    shared.server_no_context_takeover = true;
    let mut clients = vec![connect_plain(&url).await];
    for offer in [shared, DeflateConfig::default()] {
        let client = ClientBuilder::new()
            .deflate(Some(offer))
            .connect(&url)
            .await;
        clients.push(client.unwrap().0);
    }
    for _ in 0..3 {
        let id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
        assert!(handle.subscribe(id, "t"));
    }
    let long = "long enough to be compressed, and repeated; ".repeat(20);
    let large: Vec<u8> = (0..40_000u32).map(|i| (i % 13) as u8).collect();
    // Small ones only: the frames laid end to end go to every client, compressing or not
    // (all are under the compression threshold). Then one to compress: the plain client still
    // takes the frames at once, the others each message on its own. Then two too large to
    // be framed together.
    let batches: [Vec<Message>; 3] = [
        vec![Message::text("a"), Message::binary(vec![1, 2, 3])],
        vec![
            Message::text("b"),
            Message::text(long.as_str()),
            Message::text("c"),
        ],
        vec![
            Message::binary(large.clone()),
            Message::binary(large.clone()),
        ],
    ];
    for batch in &batches {
        let report = handle
            .publish_all("t", None, batch.iter().cloned())
            .unwrap();
        assert_eq!(report.queued, 3 * batch.len());
    }
    for client in &mut clients {
        for expected in batches.iter().flatten() {
            assert_eq!(&next(client).await, expected);
        }
    }
}

/// A server whose clients may have 4 KiB pending, under `policy`, and two clients of it
/// subscribed to "t".
async fn two_subscribers_of_4_kib(
    policy: SlowPolicy,
) -> (ServerHandle, Vec<WebSocket<ClientStream>>) {
    let builder = Server::builder().max_backlog(4096).slow_policy(policy);
    let (url, handle, mut ids) = server(builder).await;
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(connect_plain(&url).await);
        let id = timeout(LIMIT, ids.recv()).await.unwrap().unwrap();
        assert!(handle.subscribe(id, "t"));
    }
    (handle, clients)
}

fn message(n: u8) -> Message {
    Message::binary(vec![n; 1000])
}

#[tokio::test]
async fn a_batch_that_would_pass_the_backlog_is_judged_message_by_message() {
    let (handle, mut clients) = two_subscribers_of_4_kib(SlowPolicy::Drop).await;
    // No task runs between the two publishes (one thread): the first batch is still pending
    // when the second comes. 3000 + 1000 bytes fit in the limit, 3000 + 2000 don't.
    let first = handle.publish_all("t", None, (0..3).map(message)).unwrap();
    assert_eq!((first.queued, first.dropped), (6, 0));
    let second = handle.publish_all("t", None, (3..6).map(message)).unwrap();
    assert_eq!((second.queued, second.dropped), (2, 4), "{second:?}");
    // Caught up, the next batch goes through whole.
    for client in &mut clients {
        for n in 0..4 {
            assert_eq!(next(client).await, message(n));
        }
    }
    let third = handle.publish_all("t", None, (6..9).map(message)).unwrap();
    assert_eq!((third.queued, third.dropped), (6, 0), "{third:?}");
    for client in &mut clients {
        for n in 6..9 {
            assert_eq!(next(client).await, message(n));
        }
    }
    assert_eq!(handle.slow_stats().dropped, 4);
}

#[tokio::test]
async fn a_batch_that_would_pass_the_backlog_closes_per_policy() {
    let (handle, mut clients) = two_subscribers_of_4_kib(SlowPolicy::Close).await;
    // As above, nothing is written between the publishes: the second batch doesn't fit, so
    // its first message is queued and the second closes each client (the third finds it
    // closed); a later batch isn't queued whole either.
    let first = handle.publish_all("t", None, (0..3).map(message)).unwrap();
    assert_eq!((first.queued, first.closed), (6, 0));
    let second = handle.publish_all("t", None, (3..6).map(message)).unwrap();
    assert_eq!((second.queued, second.closed), (2, 4), "{second:?}");
    let third = handle.publish_all("t", None, (6..9).map(message)).unwrap();
    assert_eq!((third.queued, third.closed), (0, 6), "{third:?}");
    assert_eq!(handle.slow_stats().closed, 2);
    // What was waiting was freed: each client's next frame is the close, 1008.
    for client in &mut clients {
        let end = timeout(LIMIT, client.recv()).await.unwrap();
        assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
        assert_eq!(client.close_frame().map(|f| f.code.as_u16()), Some(1008));
    }
}

//! The event API (`Server::serve_events`): connections driven by an event loop instead of a
//! task each, against real peers over loopback: Node's `ws` echo conversation (with and
//! without permessage-deflate), many clients at once, the registry (broadcast, `send_to`,
//! `terminate_client`, shutdown), backpressure with `on_drain`, a panicking callback, and
//! HTTP/2 streams.

use std::time::Duration;

use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::events::{Client, EventHandler};
use enim_labore_occaecati::server::{ClientId, ClientInfo, Delivery, Server, ServerBuilder};
use enim_labore_occaecati::{connect, CloseFrame, ErrorKind, Message, Result, WebSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::common;

const LIMIT: Duration = Duration::from_secs(20);

/// What the handler saw, in order, for the tests to check.
#[derive(Debug, PartialEq)]
enum Seen {
    Open(ClientId, String),
    Closed(ClientId, std::result::Result<Option<u16>, ErrorKind>),
    Drained(ClientId),
}

/// Echoes every message, except a few commands: `flood N` queues N 64 KiB messages (as many as
/// the write buffer takes; the rest after `on_drain`), `boom` panics, `bye` closes with 4000.
struct Echo {
    seen: mpsc::UnboundedSender<Seen>,
}

struct PerClient {
    id: ClientId,
    /// Flood messages still to send.
    owed: usize,
}

impl Echo {
    fn flood(state: &mut PerClient, client: &mut Client<'_>) {
        while state.owed > 0 {
            match client.send(Message::binary(vec![state.owed as u8; 64 << 10])) {
                Ok(()) => state.owed -= 1,
                Err(e) if e.kind() == ErrorKind::WriteBufferFull => return,
                Err(e) => panic!("flood: {e}"),
            }
        }
        client.send(Message::text("flood done")).unwrap();
    }
}

impl EventHandler for Echo {
    type State = PerClient;

    fn on_open(&self, _client: &mut Client<'_>, info: ClientInfo) -> PerClient {
        let id = info.id().expect("tracked");
        let _ = self.seen.send(Seen::Open(id, info.path().to_owned()));
        PerClient { id, owed: 0 }
    }

    fn on_message(&self, state: &mut PerClient, client: &mut Client<'_>, message: Message) {
        match &message {
            Message::Text(t) if t.as_str().starts_with("flood ") => {
                state.owed = t.as_str()[6..].parse().unwrap();
                Echo::flood(state, client);
            }
            Message::Text(t) if t.as_str() == "boom" => panic!("boom, as asked"),
            Message::Text(t) if t.as_str() == "bye" => {
                client.close(Some(CloseFrame::new(4000u16, "bye"))).unwrap();
            }
            _ => client.send(message).unwrap(),
        }
    }

    fn on_drain(&self, state: &mut PerClient, client: &mut Client<'_>) {
        let _ = self.seen.send(Seen::Drained(state.id));
        Echo::flood(state, client);
    }

    fn on_close(&self, state: PerClient, outcome: Result<Option<CloseFrame>>) {
        let outcome = outcome
            .map(|f| f.map(|f| f.code.as_u16()))
            .map_err(|e| e.kind());
        let _ = self.seen.send(Seen::Closed(state.id, outcome));
    }
}

struct Running {
    url: String,
    handle: enim_labore_occaecati::server::ServerHandle,
    seen: mpsc::UnboundedReceiver<Seen>,
}

async fn start(builder: ServerBuilder) -> Running {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let handle = server.handle();
    let (tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(server.serve_events(Echo { seen: tx }));
    Running { url, handle, seen }
}

impl Running {
    /// A client connected, and its id as the handler's `on_open` saw it.
    async fn open(&mut self) -> (WebSocket<ClientStream>, ClientId) {
        let (ws, _) = connect(&self.url).await.unwrap();
        match next_seen(&mut self.seen).await {
            Seen::Open(id, _) => (ws, id),
            other => panic!("expected an open, saw {other:?}"),
        }
    }
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(LIMIT, seen.recv()).await.unwrap().unwrap()
}

async fn recv(ws: &mut WebSocket<ClientStream>) -> Option<Message> {
    timeout(LIMIT, ws.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn node_ws_conversation_with_and_without_deflate() {
    if !common::node::available("node_ws_conversation_with_and_without_deflate") {
        return;
    }
    let plain = start(Server::builder()).await;
    common::node::client_passes(&plain.url, &["--echo-only"]).await;
    let deflate = start(Server::builder().deflate(DeflateConfig::default())).await;
    common::node::client_passes(&deflate.url, &["--echo-only", "--require-deflate"]).await;
}

/// Two hundred clients on a two-worker runtime (two loops), each with its own conversation,
/// interleaved: every echo reaches its own client, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_on_two_loops_each_get_their_own_echoes_in_order() {
    let mut running = start(Server::builder()).await;
    let mut clients = Vec::new();
    for n in 0..200 {
        let url = format!("{}/c{n}", running.url);
        clients.push(tokio::spawn(async move {
            let (mut ws, _) = connect(&url).await.unwrap();
            for i in 0..20 {
                ws.feed(Message::text(format!("{n}:{i}"))).await.unwrap();
            }
            ws.flush().await.unwrap();
            for i in 0..20 {
                assert_eq!(recv(&mut ws).await, Some(Message::text(format!("{n}:{i}"))));
            }
            ws.close(Some(CloseFrame::new(1000u16, ""))).await.unwrap();
        }));
    }
    for client in clients {
        timeout(LIMIT, client).await.unwrap().unwrap();
    }
    let mut opened = 0;
    let mut closed = 0;
    while closed < 200 {
        match next_seen(&mut running.seen).await {
            Seen::Open(_, path) => {
                assert!(path.starts_with("/c"));
                opened += 1;
            }
            Seen::Closed(_, outcome) => {
                assert_eq!(outcome, Ok(Some(1000)));
                closed += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(opened, 200);
    assert_eq!(running.handle.client_count(), 0);
}

#[tokio::test]
async fn the_registry_reaches_event_loop_clients_and_shutdown_closes_them() {
    let mut running = start(Server::builder()).await;
    let (mut a, a_id) = running.open().await;
    let (mut b, b_id) = running.open().await;
    assert_eq!(running.handle.client_count(), 2);

    assert_eq!(running.handle.send_to(a_id, "only a"), Delivery::Queued);
    assert_eq!(running.handle.broadcast("everyone").queued, 2);
    assert_eq!(recv(&mut a).await, Some(Message::text("only a")));
    assert_eq!(recv(&mut a).await, Some(Message::text("everyone")));
    assert_eq!(recv(&mut b).await, Some(Message::text("everyone")));

    // The handler closes on request: the client sees 4000, the handler a clean close.
    a.send(Message::text("bye")).await.unwrap();
    assert_eq!(recv(&mut a).await, None);
    assert_eq!(a.close_frame().map(|f| f.code.as_u16()), Some(4000));
    assert_eq!(
        next_seen(&mut running.seen).await,
        Seen::Closed(a_id, Ok(Some(4000)))
    );

    // Terminated by id: dropped without a close frame on both sides.
    assert!(running.handle.terminate_client(b_id));
    let error = timeout(LIMIT, b.recv()).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AbnormalClosure);
    assert_eq!(
        next_seen(&mut running.seen).await,
        Seen::Closed(b_id, Err(ErrorKind::AbnormalClosure))
    );

    // Shutdown: 1001 for the one still connected.
    let (mut c, c_id) = running.open().await;
    let handle = running.handle.clone();
    let shutdown = tokio::spawn(async move { handle.shutdown(LIMIT).await });
    assert_eq!(recv(&mut c).await, None);
    assert_eq!(c.close_frame().map(|f| f.code.as_u16()), Some(1001));
    timeout(LIMIT, shutdown).await.unwrap().unwrap();
    assert_eq!(
        next_seen(&mut running.seen).await,
        Seen::Closed(c_id, Ok(Some(1001)))
    );
    assert_eq!(running.handle.client_count(), 0);
}

/// A client that doesn't read: the handler's sends are refused once the write buffer is over
/// its mark (memory stays bounded), `on_drain` comes once the client reads, and every message
/// the handler queued arrives, in order.
#[tokio::test]
async fn sends_are_refused_over_the_mark_and_resume_on_drain() {
    let mut running = start(Server::builder()).await;
    let (mut ws, id) = running.open().await;
    // 64 MiB: far more than the socket buffers and the 128 KiB mark hold.
    const N: usize = 1024;
    ws.send(Message::text(format!("flood {N}"))).await.unwrap();
    // Refused at least once before the client reads anything: drained only after.
    assert_eq!(next_seen(&mut running.seen).await, Seen::Drained(id));
    let mut received = 0;
    loop {
        match recv(&mut ws).await.unwrap() {
            Message::Binary(b) => {
                assert_eq!(b.len(), 64 << 10);
                assert_eq!(b[0], (N - received) as u8, "in order");
                received += 1;
            }
            Message::Text(t) => {
                assert_eq!(t.as_str(), "flood done");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, N);
    ws.close(Some(CloseFrame::new(1000u16, ""))).await.unwrap();
}

/// A client that stopped reading, with the loop waiting for its socket: a broadcast (which
/// takes the outbox's waker) and then `terminate_client` still reach it.
#[tokio::test]
async fn a_stalled_client_can_still_be_terminated() {
    let mut running = start(Server::builder()).await;
    let (mut ws, id) = running.open().await;
    ws.send(Message::text("flood 1024")).await.unwrap();
    // On this one-thread runtime each yield lets the loop run what was woken.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    // Queued, or (over the backlog limit) a close frame queued instead: either takes the waker.
    let report = running.handle.broadcast("while stalled");
    assert_eq!(report.queued + report.closed, 1);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(running.handle.terminate_client(id));
    // Drained as the socket buffers filled, maybe several times; then the end.
    loop {
        match next_seen(&mut running.seen).await {
            Seen::Drained(_) => continue,
            seen => {
                assert_eq!(seen, Seen::Closed(id, Err(ErrorKind::AbnormalClosure)));
                break;
            }
        }
    }
    drop(ws);
}

/// A callback that panics ends its own connection (without a close frame), not the loop.
#[tokio::test]
async fn a_panicking_callback_ends_only_its_connection() {
    let mut running = start(Server::builder()).await;
    let (mut a, _) = running.open().await;
    let (mut b, _) = running.open().await;
    a.send(Message::text("boom")).await.unwrap();
    let error = timeout(LIMIT, a.recv()).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AbnormalClosure);
    b.send(Message::text("still here")).await.unwrap();
    assert_eq!(recv(&mut b).await, Some(Message::text("still here")));
    b.close(Some(CloseFrame::new(1000u16, ""))).await.unwrap();
    // Only b's close is reported: a's state went with the panic.
    assert!(matches!(
        next_seen(&mut running.seen).await,
        Seen::Closed(_, Ok(Some(1000)))
    ));
    assert_eq!(running.handle.client_count(), 0);
}

/// WebSockets over HTTP/2 streams (h2c) are handed to the loop like any other.
#[cfg(feature = "http2")]
#[tokio::test]
async fn http2_streams_are_served_by_the_loop() {
    use enim_labore_occaecati::http2::Http2Config;
    let mut running = start(Server::builder().http2(Http2Config::with_cleartext())).await;
    let client = enim_labore_occaecati::ClientBuilder::new().http2(Http2Config::with_cleartext());
    let (mut a, _) = client.clone().connect(&running.url).await.unwrap();
    let (mut b, _) = client.connect(&running.url).await.unwrap();
    assert!(matches!(a.get_ref(), ClientStream::Http2(_)));
    for _ in 0..2 {
        assert!(matches!(next_seen(&mut running.seen).await, Seen::Open(..)));
    }
    assert_eq!(running.handle.client_count(), 2);
    for ws in [&mut a, &mut b] {
        ws.send(Message::binary(vec![7u8; 70_000])).await.unwrap();
        assert_eq!(recv(ws).await, Some(Message::binary(vec![7u8; 70_000])));
        ws.close(Some(CloseFrame::new(1000u16, ""))).await.unwrap();
    }
    for _ in 0..2 {
        assert!(matches!(
            next_seen(&mut running.seen).await,
            Seen::Closed(_, Ok(Some(1000)))
        ));
    }
}

/// Gathers the texts a connection sends and, once the loop is done with its input, answers
/// them joined with `+`.
struct Gather;

impl EventHandler for Gather {
    type State = Vec<String>;

    fn on_open(&self, _client: &mut Client<'_>, _info: ClientInfo) -> Vec<String> {
        Vec::new()
    }

    fn on_message(&self, gathered: &mut Vec<String>, _client: &mut Client<'_>, m: Message) {
        gathered.push(m.as_text().unwrap().to_owned());
    }

    fn on_read_done(&self, gathered: &mut Vec<String>, client: &mut Client<'_>) {
        assert!(!gathered.is_empty(), "called after a message only");
        client.send(Message::text(gathered.join("+"))).unwrap();
        gathered.clear();
    }
}

#[tokio::test]
async fn on_read_done_follows_the_messages_of_each_read_within_the_turns_budget() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve_events(Gather));
    let (mut ws, _) = connect(&url).await.unwrap();
    // Sent in one write each time; 70 is past the 64 messages a connection gets per turn.
    for count in [3, 70] {
        let texts: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
        for text in &texts {
            ws.feed(Message::text(text.as_str())).await.unwrap();
        }
        ws.flush().await.unwrap();
        let mut answered = Vec::new();
        let mut answers = 0;
        while answered.len() < count {
            let answer = recv(&mut ws).await.unwrap();
            let parts: Vec<String> = answer
                .as_text()
                .unwrap()
                .split('+')
                .map(str::to_owned)
                .collect();
            assert!(parts.len() <= 64, "one turn's messages at most");
            answered.extend(parts);
            answers += 1;
        }
        assert_eq!(answered, texts, "every message once, in order");
        // One write on loopback arrives in one read: one answer, or, past the turn's budget,
        // one for the first 64 and one for the rest.
        assert_eq!(answers, if count == 70 { 2 } else { 1 }, "{count} messages");
    }
}

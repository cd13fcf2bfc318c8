//! Built-in heartbeats: a peer that stops answering (a socket that swallows frames, a paused
//! Node process) is dropped within interval + timeout, on both roles; a live one is kept and
//! its round-trip time measured.

use crate::common;

use std::time::{Duration, Instant};

use enim_labore_occaecati::config::Heartbeat;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, ErrorKind};
use tokio::io::AsyncReadExt;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(700);

/// Asserts the connection was dropped no later than interval + timeout after `started`.
fn assert_dropped_in_time(
    result: Result<Option<enim_labore_occaecati::Message>, enim_labore_occaecati::Error>,
    started: Instant,
) {
    let error = result.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let elapsed = started.elapsed();
    assert!(
        elapsed <= INTERVAL + TIMEOUT + SLACK,
        "dropped after {elapsed:?}"
    );
}

fn heartbeat_config() -> Config {
    let mut config = Config::default();
    config.heartbeat = Some(Heartbeat::new(INTERVAL, TIMEOUT));
    config
}

#[tokio::test]
async fn server_drops_a_client_that_swallows_pings() {
    let server = Server::builder()
        .config(heartbeat_config())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    tokio::spawn(server.serve(move |mut ws, _| {
        let done = done_tx.lock().unwrap().take();
        async move {
            let started = Instant::now();
            let result = loop {
                match ws.recv().await {
                    Ok(Some(_)) => continue,
                    other => break other,
                }
            };
            if let Some(done) = done {
                let _ = done.send((started.elapsed(), result.map(|_| ())));
            }
        }
    }));
    // A client that completes the handshake, then reads (and ignores) everything.
    let mut tcp = common::raw_upgrade(addr).await;
    let swallow = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
        sink
    });
    let (elapsed, result) = tokio::time::timeout(Duration::from_secs(10), done_rx)
        .await
        .expect("the server kept a client that never answers pings")
        .unwrap();
    let error = result.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(
        elapsed >= INTERVAL + TIMEOUT - Duration::from_millis(50)
            && elapsed <= INTERVAL + TIMEOUT + SLACK,
        "dropped after {elapsed:?}"
    );
    // The client saw one ping (opcode 9, 8-byte payload) and then the end of the stream.
    let seen = tokio::time::timeout(Duration::from_secs(5), swallow)
        .await
        .expect("the server did not close the socket")
        .unwrap();
    assert_eq!(&seen[..2], &[0x89, 8], "{seen:?}");
}

#[tokio::test]
async fn client_keeps_a_live_server_and_measures_rtt() {
    let (addr, _handle) = common::echo_server(Server::builder()).await;
    let client = ClientBuilder::new().config(heartbeat_config());
    let (mut ws, _) = client.connect(&format!("ws://{addr}/")).await.unwrap();
    assert_eq!(ws.rtt(), None);
    // Several heartbeats go by while the application waits for messages.
    let waited = tokio::time::timeout(INTERVAL * 4, ws.recv()).await;
    assert!(waited.is_err(), "recv ended: {waited:?}");
    let rtt = ws.rtt().expect("no heartbeat was answered");
    assert!(rtt < TIMEOUT, "{rtt:?}");
    ws.send("still here").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("still here")
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn client_drops_a_server_that_stops_answering() {
    // A server that never answers pings (auto-pong off) and never sends anything.
    let mut silent = Config::default();
    silent.auto_pong = false;
    let (addr, _handle) = common::echo_server(Server::builder().config(silent)).await;
    let client = ClientBuilder::new().config(heartbeat_config());
    let (mut ws, _) = client.connect(&format!("ws://{addr}/")).await.unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), ws.recv())
        .await
        .expect("the client kept a server that never answers pings");
    assert_dropped_in_time(result, started);
}

#[tokio::test]
async fn client_drops_a_paused_node_server() {
    if !common::node::available("client_drops_a_paused_node_server") {
        return;
    }
    let peer = common::node::server(&[]).await;
    let port = peer.port;
    let child = peer.drain();
    let pid = child.id().unwrap().to_string();
    let client = ClientBuilder::new().config(heartbeat_config());
    let (mut ws, _) = client
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    // Alive: pings are answered by ws's automatic pong.
    assert!(tokio::time::timeout(INTERVAL * 3, ws.recv()).await.is_err());
    assert!(ws.rtt().is_some());
    // Paused: the kernel still holds the TCP connection open, but nothing answers.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    // The pause may fall anywhere in an interval: detection takes at most interval + timeout.
    assert_dropped_in_time(result.expect("the client kept a paused server"), started);
    drop(child);
}

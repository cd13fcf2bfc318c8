//! Built-in heartbeats: a peer that stops answering (a pipe that swallows frames, a paused
//! Node process) is dropped interval + timeout after the last answer, on both roles; a live
//! one is kept and its round-trip time measured. On tokio's paused clock, except the Node
//! process, which runs on real time.

use crate::common;

use std::time::{Duration, Instant};

use enim_labore_occaecati::config::Heartbeat;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// On the paused clock: a peer that swallows pings is dropped exactly interval + timeout
/// after the connection opened.
const PAUSED_INTERVAL: Duration = Duration::from_secs(30);
const PAUSED_TIMEOUT: Duration = Duration::from_secs(10);

fn paused_heartbeat() -> Config {
    let mut config = Config::default();
    config.heartbeat = Some(Heartbeat::new(PAUSED_INTERVAL, PAUSED_TIMEOUT));
    config
}

#[tokio::test(start_paused = true)]
async fn server_drops_a_client_that_swallows_pings() {
    let (a, b) = tokio::io::duplex(64 << 10);
    let options = Server::builder().config(paused_heartbeat());
    // A client that completes the handshake by hand, then reads (and ignores) everything.
    let swallow = tokio::spawn(async move {
        let mut tcp = a;
        tcp.write_all(common::UPGRADE_REQUEST).await.unwrap();
        let mut seen = Vec::new();
        let _ = tcp.read_to_end(&mut seen).await;
        seen
    });
    let (mut ws, _) = options.accept(b, None).await.unwrap();
    let started = tokio::time::Instant::now();
    let error = loop {
        match ws.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("closed cleanly"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(started.elapsed(), PAUSED_INTERVAL + PAUSED_TIMEOUT);
    drop(ws);
    // The client saw the 101, one ping (opcode 9, 8-byte payload), and then the end.
    let seen = swallow.await.unwrap();
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&seen[head_end..head_end + 2], &[0x89, 8], "{seen:?}");
    assert_eq!(seen.len(), head_end + 10, "one ping and nothing else");
}

#[tokio::test(start_paused = true)]
async fn client_keeps_a_live_server_and_measures_rtt() {
    let client = ClientBuilder::new().config(paused_heartbeat());
    let (mut ws, mut server) = common::pipe_pair(&Server::builder(), &client).await;
    let echo = tokio::spawn(async move {
        while let Ok(Some(message)) = server.recv().await {
            server.send(message).await.unwrap();
        }
    });
    assert_eq!(ws.rtt(), None);
    // Four heartbeats go by while the application waits for messages.
    let waited = tokio::time::timeout(PAUSED_INTERVAL * 4, ws.recv()).await;
    assert!(waited.is_err(), "recv ended: {waited:?}");
    // The pipe answers at once, and the paused clock stands still meanwhile.
    assert_eq!(ws.rtt(), Some(Duration::ZERO));
    ws.send("still here").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("still here")
    );
    ws.close(None).await.unwrap();
    echo.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn client_drops_a_server_that_stops_answering() {
    // A server that never answers pings (auto-pong off) and never sends anything.
    let mut silent = Config::default();
    silent.auto_pong = false;
    let client = ClientBuilder::new().config(paused_heartbeat());
    let (mut ws, mut server) = common::pipe_pair(&Server::builder().config(silent), &client).await;
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = server.recv().await {} });
    let started = tokio::time::Instant::now();
    let error = ws.recv().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(started.elapsed(), PAUSED_INTERVAL + PAUSED_TIMEOUT);
    drop(ws);
    reader.await.unwrap();
}

/// A real peer process runs on real time, so this one keeps a window: a paused Node process is
/// dropped within interval + timeout, plus scheduling slack.
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

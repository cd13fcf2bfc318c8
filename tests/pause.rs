//! Pausing reads (the seed's `pause()` / `resume()` / `isPaused`): `WebSocket::pause`,
//! `resume`, `is_paused` and a `PauseHandle` used from another task, over loopback.

use std::time::Duration;

use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{connect, Message, WebSocket};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// A server that answers each message with two: `<it>-1` and `<it>-2`.
async fn doubling_server() -> String {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            let text = message.as_text().unwrap_or("").to_owned();
            let _ = ws.feed(format!("{text}-1")).await;
            let _ = ws.send(format!("{text}-2")).await;
        }
    }));
    url
}

/// Waits until the server's reply is in the client's socket, unread by the connection.
async fn reply_arrived(ws: &WebSocket<ClientStream>) {
    let ClientStream::Plain(tcp) = ws.get_ref() else {
        panic!("a plain TCP client")
    };
    let mut byte = [0u8; 1];
    timeout(LIMIT, tcp.peek(&mut byte)).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_paused_connection_reads_nothing_until_resumed() {
    let url = doubling_server().await;
    let (mut ws, _) = connect(&url).await.unwrap();
    assert!(!ws.is_paused());

    ws.pause();
    assert!(ws.is_paused());
    // Sending still works while paused.
    ws.send("a").await.unwrap();
    reply_arrived(&ws).await;
    // The reply is there, but a paused connection hands out nothing.
    assert!(futures_util::poll!(Box::pin(ws.recv())).is_pending());
    assert!(futures_util::poll!(Box::pin(ws.recv())).is_pending());

    ws.resume();
    assert!(!ws.is_paused());
    assert_eq!(
        timeout(LIMIT, ws.recv()).await.unwrap().unwrap(),
        Some(Message::text("a-1"))
    );
    assert_eq!(
        timeout(LIMIT, ws.recv()).await.unwrap().unwrap(),
        Some(Message::text("a-2"))
    );

    // Closing while paused still completes the close handshake.
    ws.pause();
    timeout(LIMIT, ws.close(None)).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_pause_handle_pauses_and_resumes_a_recv_waiting_in_another_task() {
    let url = doubling_server().await;
    let (mut ws, _) = connect(&url).await.unwrap();
    let pause = ws.pause_handle();
    pause.pause();
    ws.send("b").await.unwrap();
    reply_arrived(&ws).await;

    let reader = tokio::spawn(async move {
        let first = ws.recv().await.unwrap();
        (ws, first)
    });
    // However often the reader runs, it stays paused.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!reader.is_finished());
    assert!(pause.is_paused());

    pause.resume();
    let (mut ws, first) = timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(first, Some(Message::text("b-1")));
    assert_eq!(
        timeout(LIMIT, ws.recv()).await.unwrap().unwrap(),
        Some(Message::text("b-2"))
    );
    ws.close(None).await.unwrap();
}

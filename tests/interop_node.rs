//! Interop with the seed library (`ws` for Node.js, pinned in tests/interop/node): its client
//! against our server and our client against its server, over loopback.
//!
//! Needs `node` and `npm ci` in tests/interop/node (`.ci/run` does it). Elsewhere the tests
//! say they were skipped; under CI (`CI` set) a missing peer is a failure.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::Peer;
use enim_labore_occaecati::server::{Server, Verdict};
use enim_labore_occaecati::{
    ClientBuilder, CloseCode, CloseFrame, Config, DataKind, Message, WebSocket,
};
use tokio::io::{AsyncRead, AsyncWrite};

use common::node::{available as node_available, dir as node_dir, run_client as run_node_client};

/// Our server speaking the interop command protocol (see tests/interop/node/README.md).
async fn command_handler<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    let mut awaiting_pong: Option<Bytes> = None;
    while let Ok(Some(message)) = ws.recv().await {
        let text = message.as_text().map(str::to_owned);
        match (&message, text.as_deref()) {
            (Message::Ping(_) | Message::Close(_), _) => {}
            (Message::Pong(data), _) => {
                if awaiting_pong.as_ref() == Some(data) {
                    awaiting_pong = None;
                    let reply = format!("pong:{}", String::from_utf8_lossy(data));
                    let _ = ws.send(reply).await;
                }
            }
            (_, Some(t)) if t.starts_with("close:") => {
                let mut parts = t.splitn(3, ':').skip(1);
                let code: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
                let reason = parts.next().unwrap_or("").to_owned();
                let _ = ws.close(Some(CloseFrame::new(code, reason))).await;
                return;
            }
            (_, Some(t)) if t.starts_with("ping:") => {
                let data = Bytes::from(t["ping:".len()..].to_owned());
                awaiting_pong = Some(data.clone());
                let _ = ws.ping(data).await;
            }
            (_, Some(t)) if t.starts_with("fragments:") => {
                let n: usize = t["fragments:".len()..].parse().unwrap_or(0);
                for i in 0..n {
                    let _ = ws
                        .send_fragment(DataKind::Text, format!("fragment-{i}"), i + 1 == n)
                        .await;
                }
                let bytes: Vec<u8> = (0..300).map(|i| i as u8).collect();
                for (i, chunk) in bytes.chunks(100).enumerate() {
                    let _ = ws
                        .send_fragment(DataKind::Binary, chunk.to_vec(), i == 2)
                        .await;
                }
            }
            _ => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn control_config() -> Config {
    let mut config = Config::default();
    config.receive_control_frames = true;
    config
}

#[tokio::test]
async fn node_client_against_our_server() {
    if !node_available("node_client_against_our_server") {
        return;
    }
    let server = Server::builder()
        .config(control_config())
        .verify(|client| {
            let reject = client.path() == "/private";
            async move {
                if reject {
                    Verdict::reject(401).with_body("no entry")
                } else {
                    Verdict::accept()
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|ws, _| command_handler(ws)));

    let (ok, stdout, stderr) = run_node_client(&url, &[]).await;
    assert!(ok && stdout.trim() == "OK", "{stdout}\n{stderr}");
    let (ok, stdout, stderr) =
        run_node_client(&url, &["--expect-close", "4002", "reason: with colon"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let (ok, stdout, stderr) =
        run_node_client(&format!("{url}/private"), &["--expect-status", "401"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("BODY \"no entry\""), "{stdout}");
}

async fn node_server() -> Peer {
    let script = node_dir().join("server.js");
    Peer::spawn(
        std::path::Path::new("node"),
        &[script.to_str().unwrap()],
        true,
    )
    .await
}

#[tokio::test]
async fn our_client_against_node_server() {
    if !node_available("our_client_against_node_server") {
        return;
    }
    let mut node = node_server().await;
    let url = format!("ws://127.0.0.1:{}/", node.port);
    let (mut ws, _) = ClientBuilder::new()
        .config(control_config())
        .connect(&url)
        .await
        .unwrap();
    let next = async |ws: &mut WebSocket<_>| {
        tokio::time::timeout(Duration::from_secs(10), ws.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };

    ws.send("héllo ✓").await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("héllo ✓"));
    for len in [0usize, 125, 126, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        ws.send(payload.clone()).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::binary(payload));
    }
    ws.send_fragment(DataKind::Binary, vec![1u8; 10], false)
        .await
        .unwrap();
    ws.send_fragment(DataKind::Binary, vec![2u8; 10], true)
        .await
        .unwrap();
    let mut expected = vec![1u8; 10];
    expected.extend([2u8; 10]);
    assert_eq!(next(&mut ws).await, Message::binary(expected));

    ws.ping("abc").await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::Pong(Bytes::from_static(b"abc"))
    );
    ws.send("ping:xyz").await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::Ping(Bytes::from_static(b"xyz"))
    );
    assert_eq!(next(&mut ws).await, Message::text("pong:xyz"));

    ws.send("fragments:3").await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::text("fragment-0fragment-1fragment-2")
    );
    let bytes: Vec<u8> = (0..300).map(|i| i as u8).collect();
    assert_eq!(next(&mut ws).await, Message::binary(bytes));

    ws.close(Some(CloseFrame::new(4003u16, "bye-from-rust")))
        .await
        .unwrap();
    assert_eq!(ws.close_frame().unwrap().code, CloseCode::new(4003));
    let line = node.lines.next_line().await.unwrap().unwrap();
    assert_eq!(line, "CLOSE 4003 bye-from-rust");

    // The server closes with a code and reason of its choosing.
    let (mut ws, _) = ClientBuilder::new()
        .config(control_config())
        .connect(&url)
        .await
        .unwrap();
    ws.send("close:4005:server says bye").await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::Close(Some(CloseFrame::new(4005u16, "server says bye")))
    );
    assert_eq!(ws.recv().await.unwrap(), None);
    drop(node.child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await;
}

//! permessage-deflate interop with real peers, in every combination of the four RFC 7692
//! parameters and window bits 9, 12 and 15: the seed library (`ws` under Node) and Python's
//! `websockets`, each as server and as client. Large (16 MiB) and many small messages.
//!
//! Needs `npm ci` in tests/interop/node and a Python with `websockets` (scripts/test.sh makes
//! target/interop-venv); skipped with a message elsewhere, a failure under CI.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{deflate_combinations as combinations, Peer};
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, DataKind, Message};
use tokio::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/interop-venv/bin/python"))
}

fn available(test: &str, what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {what} missing under CI"
        );
        eprintln!("{test}: skipped ({what} missing; run scripts/test.sh)");
    }
    ok
}

fn node_ok(test: &str) -> bool {
    let ok = root()
        .join("tests/interop/node/node_modules/ws/package.json")
        .exists();
    available(test, "node ws", ok)
}

fn python_ok(test: &str) -> bool {
    let ok = std::process::Command::new(python())
        .args(["-c", "import websockets"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    available(test, "python websockets", ok)
}

fn ws_options(c: &DeflateConfig) -> String {
    format!(
        r#"{{"serverNoContextTakeover":{},"clientNoContextTakeover":{},"serverMaxWindowBits":{},"clientMaxWindowBits":{}}}"#,
        c.server_no_context_takeover,
        c.client_no_context_takeover,
        c.server_max_window_bits.unwrap_or(15),
        c.client_max_window_bits.unwrap_or(15)
    )
}

fn py_params(c: &DeflateConfig) -> String {
    format!(
        r#"{{"server_no_context_takeover":{},"client_no_context_takeover":{},"server_max_window_bits":{},"client_max_window_bits":{}}}"#,
        c.server_no_context_takeover,
        c.client_no_context_takeover,
        c.server_max_window_bits.unwrap_or(15),
        c.client_max_window_bits.unwrap_or(15)
    )
}

fn compressible(n: usize) -> Vec<u8> {
    b"deflate interop with a real peer "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// Our client against an echo server: text, binary, many small pipelined messages and,
/// when `large`, a 16 MiB message.
async fn converse(url: &str, deflate: &DeflateConfig, large: bool) {
    let (mut ws, _) = ClientBuilder::new()
        .deflate(Some(deflate.clone()))
        .connect(url)
        .await
        .unwrap();
    assert!(
        ws.extensions().starts_with("permessage-deflate"),
        "not negotiated with {deflate:?}"
    );
    let mut messages = vec![
        Message::text("héllo ✓"),
        Message::binary(compressible(70_000)),
        Message::text(String::from_utf8(compressible(5000)).unwrap()),
    ];
    if large {
        messages.push(Message::binary(compressible(16 << 20)));
    }
    for m in &messages {
        ws.send(m.clone()).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(60), ws.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed.as_ref(), Some(m), "{deflate:?}");
    }
    // A compressed message sent in fragments (RFC 7692 §6.1), twice: the second in the
    // context the first left (with context takeover).
    let text = String::from_utf8(compressible(30_000)).unwrap();
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(7_000).collect();
    for _ in 0..2 {
        for (i, chunk) in chunks.iter().enumerate() {
            let fin = i + 1 == chunks.len();
            ws.send_fragment_with_compression(DataKind::Text, chunk.to_vec(), fin, true)
                .await
                .unwrap();
        }
        let echoed = tokio::time::timeout(Duration::from_secs(60), ws.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Some(Message::text(text.clone())), "{deflate:?}");
    }
    for i in 0..300 {
        ws.feed(format!("small {i} ").repeat(i % 5 + 1))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..300 {
        let echoed = ws.recv().await.unwrap().unwrap();
        assert_eq!(
            echoed.as_text().unwrap(),
            format!("small {i} ").repeat(i % 5 + 1)
        );
    }
    ws.close(None).await.unwrap();
}

async fn our_server(deflate: DeflateConfig) -> String {
    let mut config = Config::default();
    config.max_message_size = 64 << 20;
    let server = Server::builder()
        .deflate(deflate)
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            let text = message.as_text().map(str::to_owned);
            match text.as_deref() {
                // The node client's commands (tests/interop/node/README.md).
                Some(t) if t.starts_with("ping:") => {
                    let data = t["ping:".len()..].to_owned();
                    let _ = ws.ping(data.clone()).await;
                    let _ = ws.send(format!("pong:{data}")).await;
                }
                Some(t) if t.starts_with("fragments:") => {
                    let n: usize = t["fragments:".len()..].parse().unwrap_or(0);
                    let kind = enim_labore_occaecati::DataKind::Text;
                    for i in 0..n {
                        let _ = ws
                            .send_fragment(kind, format!("fragment-{i}"), i + 1 == n)
                            .await;
                    }
                    let bytes: Vec<u8> = (0..300).map(|i| i as u8).collect();
                    for (i, chunk) in bytes.chunks(100).enumerate() {
                        let kind = enim_labore_occaecati::DataKind::Binary;
                        let _ = ws.send_fragment(kind, chunk.to_vec(), i == 2).await;
                    }
                }
                _ => {
                    if ws.feed(message).await.is_err() {
                        break;
                    }
                }
            }
        }
    }));
    url
}

#[tokio::test]
async fn our_client_against_node_ws_server() {
    if !node_ok("our_client_against_node_ws_server") {
        return;
    }
    let script = root().join("tests/interop/node/server.js");
    for (i, deflate) in combinations().into_iter().enumerate() {
        let options = ws_options(&deflate);
        let peer = Peer::spawn(
            Path::new("node"),
            &[script.to_str().unwrap(), "--deflate-options", &options],
            false,
        )
        .await;
        let port = peer.port;
        let mut child = peer.drain();
        converse(&format!("ws://127.0.0.1:{port}/"), &deflate, i == 0).await;
        drop(child.stdin.take());
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn node_ws_client_against_our_server() {
    if !node_ok("node_ws_client_against_our_server") {
        return;
    }
    let script = root().join("tests/interop/node/client.js");
    for deflate in combinations() {
        let url = our_server(deflate.clone()).await;
        let options = ws_options(&deflate);
        let output = Command::new("node")
            .arg(&script)
            .arg(&url)
            .args(["--deflate-options", &options])
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success() && output.stdout.starts_with(b"OK"),
            "{options}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn our_client_against_python_websockets_server() {
    if !python_ok("our_client_against_python_websockets_server") {
        return;
    }
    let peer = root().join("tests/interop/python/peer.py");
    for (i, deflate) in combinations().into_iter().enumerate() {
        let params = py_params(&deflate);
        let server = Peer::spawn(
            &python(),
            &[peer.to_str().unwrap(), "server", "--params", &params],
            false,
        )
        .await;
        let port = server.port;
        let mut child = server.drain();
        converse(&format!("ws://127.0.0.1:{port}/"), &deflate, i == 0).await;
        drop(child.stdin.take());
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn python_websockets_client_against_our_server() {
    if !python_ok("python_websockets_client_against_our_server") {
        return;
    }
    let peer = root().join("tests/interop/python/peer.py");
    for deflate in combinations() {
        let url = our_server(deflate.clone()).await;
        let params = py_params(&deflate);
        let output = Command::new(python())
            .arg(&peer)
            .args(["client", &url, "--params", &params])
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), output)
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success() && output.stdout.starts_with(b"OK"),
            "{params}\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

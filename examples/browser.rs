//! A browser client: one axum server serves a small page over plain HTTP on `/` and
//! WebSockets on `/ws` through the library's axum extractor. The page uses the browser's native `WebSocket`: it connects, sends a message, and
//! shows the echo; a form sends more. The server prints every message it receives.
//!
//! ```text
//! cargo run --example browser --features axum -- 127.0.0.1:8080     # port 0: a free port
//! # then open http://127.0.0.1:8080/ in a browser
//! ```
//!
//! `tests/browser.rs` drives it with headless Chromium.

use axum::response::{Html, Response};
use axum::routing::get;
use axum::Router;
use enim_labore_occaecati::integrations::axum::WebSocketUpgrade;
use enim_labore_occaecati::integrations::hyper::UpgradedStream;
use enim_labore_occaecati::WebSocket;
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>enim-labore-occaecati: browser example</title>
</head>
<body>
  <h1>WebSocket echo</h1>
  <p>Status: <span id="status">connecting</span></p>
  <form id="form"><input id="input" value="hi again" autocomplete="off"> <button>Send</button></form>
  <ul id="log"></ul>
  <script>
    const status = document.getElementById("status");
    const log = document.getElementById("log");
    const show = (text) => {
      const item = document.createElement("li");
      item.textContent = text;
      log.appendChild(item);
    };
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => {
      status.textContent = "open";
      ws.send("hello from the browser");
    };
    ws.onmessage = (event) => show(`echo: ${event.data}`);
    ws.onclose = (event) => { status.textContent = `closed (${event.code})`; };
    ws.onerror = () => { status.textContent = "error"; };
    document.getElementById("form").onsubmit = (event) => {
      event.preventDefault();
      ws.send(document.getElementById("input").value);
    };
  </script>
</body>
</html>
"#;

/// Echoes every message and prints the text ones.
async fn echo(mut ws: WebSocket<UpgradedStream>) {
    while let Ok(Some(message)) = ws.recv().await {
        if let Some(text) = message.as_text() {
            println!("received: {text}");
        }
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn websocket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|ws, _client| echo(ws)).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(websocket));
    axum::serve(listener, app).await?;
    Ok(())
}

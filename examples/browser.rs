//! A browser client: one port serves a small page over plain HTTP on `/` and WebSockets on
//! `/ws`. The page uses the browser's native `WebSocket`: it connects, sends a message, and
//! shows the echo; a form sends more. The server prints every message it receives.
//!
//! ```text
//! cargo run --example browser -- 127.0.0.1:8080     # port 0 picks a free port
//! # then open http://127.0.0.1:8080/ in a browser
//! ```
//!
//! `tests/browser.rs` drives it with headless Chromium.

#[path = "support/hyper_upgrade.rs"]
mod hyper_upgrade;

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_upgrade::{upgrade, Body, HyperWebSocket};
use hyper_util::rt::TokioIo;
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
async fn echo(mut ws: HyperWebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if let Some(text) = message.as_text() {
            println!("received: {text}");
        }
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match request.uri().path() {
        "/" => {
            let mut response = Response::new(Body::from(PAGE));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        "/ws" => upgrade(request, echo),
        _ => {
            let mut response = Response::new(Body::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(route))
                .with_upgrades();
            if let Err(error) = connection.await {
                eprintln!("HTTP connection failed: {error}");
            }
        });
    }
}

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

use std::convert::Infallible;

use enim_labore_occaecati::handshake::server::{accept_headers, validate_request};
use enim_labore_occaecati::handshake::SUPPORTED_VERSIONS;
use enim_labore_occaecati::{Config, Role, WebSocket};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
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

type Body = Full<Bytes>;

/// Answers an upgrade request with `101` and runs `handler` on the WebSocket once hyper has
/// handed over the connection; a request that is not a valid upgrade gets its error status.
fn upgrade<F, Fut>(request: Request<Incoming>, handler: F) -> Response<Body>
where
    F: FnOnce(WebSocket<TokioIo<Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    // The validation looks at the head only; GET upgrade requests have no body.
    let (parts, _body) = request.into_parts();
    let mut request = Request::from_parts(parts, ());
    let upgrade = match validate_request(&request) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            let mut response = Response::new(Body::from(error.to_string()));
            *response.status_mut() =
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            if response.status() == StatusCode::UPGRADE_REQUIRED {
                // Name the protocol versions we speak (RFC 6455 §4.4).
                response.headers_mut().insert(
                    "sec-websocket-version",
                    hyper::header::HeaderValue::from_static(SUPPORTED_VERSIONS),
                );
            }
            return response;
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                handler(WebSocket::from_raw(io, Role::Server, Config::default())).await;
            }
            Err(error) => eprintln!("upgrade failed: {error}"),
        }
    });
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = accept_headers(&upgrade.key, None, &HeaderMap::new());
    response
}

/// Echoes every message and prints the text ones.
async fn echo(mut ws: WebSocket<TokioIo<Upgraded>>) {
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

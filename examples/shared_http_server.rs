//! Several WebSocket servers sharing one HTTP server, chosen by path (the seed's `noServer`
//! mode): `/foo` echoes, `/bar` answers in upper case and speaks the `shout` subprotocol,
//! `/health` is a plain HTTP route beside them, and anything else is refused with 404 before
//! any upgrade. Each endpoint has its own options, decided by `integrations::hyper::upgrade`.
//!
//! ```text
//! cargo run --example shared_http_server --features hyper -- 127.0.0.1:8080   # port 0: a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/foo
//! cargo run -p elo -- connect ws://127.0.0.1:8080/bar
//! curl http://127.0.0.1:8080/health
//! ```

#[path = "support/hyper_serve.rs"]
mod hyper_serve;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;

use enim_labore_occaecati::integrations::hyper::{upgrade, UpgradedStream};
use enim_labore_occaecati::server::{Server, ServerBuilder};
use enim_labore_occaecati::{Message, WebSocket};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_serve::{serve, Body};
use tokio::net::TcpListener;

/// The `/foo` server: echoes every message.
async fn foo(mut ws: WebSocket<UpgradedStream>) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// The `/bar` server: answers text in upper case.
async fn bar(mut ws: WebSocket<UpgradedStream>) {
    while let Ok(Some(message)) = ws.recv().await {
        let reply = match message.as_text() {
            Some(text) => Message::text(text.to_uppercase()),
            None => message,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

static FOO: LazyLock<ServerBuilder> = LazyLock::new(Server::builder);
static BAR: LazyLock<ServerBuilder> = LazyLock::new(|| Server::builder().protocols(["shout"]));

async fn route(
    request: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let is_foo = match request.uri().path() {
        "/foo" => true,
        "/bar" => false,
        "/health" => return Ok(Response::new(Body::from("ok\n"))),
        _ => {
            let mut response = Response::new(Body::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    let options: &ServerBuilder = if is_foo { &FOO } else { &BAR };
    let (response, pending) = upgrade(options, request, Some(remote)).await;
    if let Some(pending) = pending {
        tokio::spawn(async move {
            if let Ok((ws, _client)) = pending.finish().await {
                if is_foo {
                    foo(ws).await
                } else {
                    bar(ws).await
                }
            }
        });
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    serve(listener, None, route).await
}

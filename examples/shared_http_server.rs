//! Several WebSocket servers sharing one HTTP server, chosen by path (the seed's `noServer`
//! mode): `/foo` echoes, `/bar` answers in upper case, `/health` is a plain HTTP route beside
//! them, and anything else is refused with 404 before any upgrade.
//!
//! ```text
//! cargo run --example shared_http_server -- 127.0.0.1:8080   # port 0 picks a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/foo
//! cargo run -p elo -- connect ws://127.0.0.1:8080/bar
//! curl http://127.0.0.1:8080/health
//! ```

#[path = "support/hyper_upgrade.rs"]
mod hyper_upgrade;

use std::convert::Infallible;

use enim_labore_occaecati::Message;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_upgrade::{upgrade, Body, HyperWebSocket};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The `/foo` server: echoes every message.
async fn foo(mut ws: HyperWebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// The `/bar` server: answers text in upper case.
async fn bar(mut ws: HyperWebSocket) {
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

async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match request.uri().path() {
        "/foo" => upgrade(request, foo),
        "/bar" => upgrade(request, bar),
        "/health" => Response::new(Body::from("ok\n")),
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

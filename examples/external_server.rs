//! A WebSocket server on an HTTP server you already run: hyper answers plain HTTP requests,
//! and upgrade requests are validated with the library's handshake functions, answered with
//! `101`, then handed to [`WebSocket::from_raw`]. (HTTPS comes with the TLS work.)
//!
//! ```text
//! cargo run --example external_server -- 127.0.0.1:8080    # port 0 picks a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/
//! curl http://127.0.0.1:8080/
//! ```

#[path = "support/hyper_upgrade.rs"]
mod hyper_upgrade;

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::UPGRADE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_upgrade::{upgrade, Body};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn route(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if !request.headers().contains_key(UPGRADE) {
        return Ok(Response::new(Body::from(
            "plain HTTP here; WebSockets too\n",
        )));
    }
    Ok(upgrade(request, |mut ws| async move {
        if ws.send("something").await.is_err() {
            return;
        }
        while let Ok(Some(message)) = ws.recv().await {
            if let Some(text) = message.as_text() {
                println!("received: {text}");
            }
        }
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/", listener.local_addr()?);
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

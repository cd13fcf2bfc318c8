//! A WebSocket server on an HTTP(S) server you already run (the seed's "external HTTP(S)
//! server"): hyper answers plain HTTP requests, and upgrade requests go through
//! `integrations::hyper::upgrade`, the same decision path as the library's own server. With
//! `--tls CERT KEY` it serves HTTPS and `wss://`.
//!
//! ```text
//! cargo run --example external_server --features hyper -- 127.0.0.1:8080   # port 0: a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/
//! cargo run --example external_server --features hyper -- 127.0.0.1:8443 --tls cert.pem key.pem
//! ```

#[path = "support/hyper_serve.rs"]
mod hyper_serve;

use std::convert::Infallible;
use std::net::SocketAddr;

use enim_labore_occaecati::integrations::hyper::{is_upgrade_request, upgrade};
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::tls::ServerTls;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_serve::{serve, Body};
use tokio::net::TcpListener;

async fn route(
    request: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    if !is_upgrade_request(&request) {
        return Ok(Response::new(Body::from(
            "plain HTTP here; WebSockets too\n",
        )));
    }
    let (response, pending) = upgrade(&Server::builder(), request, Some(remote)).await;
    if let Some(pending) = pending {
        tokio::spawn(async move {
            let Ok((mut ws, _client)) = pending.finish().await else {
                return;
            };
            if ws.send("something").await.is_err() {
                return;
            }
            while let Ok(Some(message)) = ws.recv().await {
                if let Some(text) = message.as_text() {
                    println!("received: {text}");
                }
            }
        });
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let tls = match args.iter().position(|a| a == "--tls") {
        Some(i) => {
            let (Some(cert), Some(key)) = (args.get(i + 1), args.get(i + 2)) else {
                return Err("--tls needs CERT and KEY (PEM files)".into());
            };
            Some(ServerTls::from_pem_files(cert, key)?)
        }
        None => None,
    };
    let listener = TcpListener::bind(&addr).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!("listening on {scheme}://{}/", listener.local_addr()?);
    serve(listener, tls, route).await
}

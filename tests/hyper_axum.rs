//! The hyper and axum integrations on real servers (port 0) with plain HTTP routes beside the
//! WebSocket ones: the standalone server's decisions (validation statuses, the hook's 401 and
//! body, subprotocols, permessage-deflate) hold there too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::Response as AxumResponse;
use axum::routing::{any, get};
use axum::Router;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::integrations::axum::WebSocketUpgrade;
use enim_labore_occaecati::integrations::hyper::{is_upgrade_request, upgrade, UpgradedStream};
use enim_labore_occaecati::server::{Server, ServerBuilder, Verdict};
use enim_labore_occaecati::{connect, ClientBuilder, WebSocket};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo(mut ws: WebSocket<UpgradedStream>) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Options with everything the decision path does: a token check, subprotocols, deflate.
fn options() -> ServerBuilder {
    Server::builder()
        .protocols(["chat"])
        .deflate(DeflateConfig::default())
        .verify(|client| {
            let ok = client.query() != Some("token=bad");
            async move {
                if ok {
                    Verdict::accept().with_header("X-Checked", "yes")
                } else {
                    Verdict::reject(401).with_body("bad token")
                }
            }
        })
}

async fn hyper_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = Arc::new(options());
    tokio::spawn(async move {
        loop {
            let (stream, remote) = listener.accept().await.unwrap();
            let options = options.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let options = options.clone();
                async move {
                    if !is_upgrade_request(&request) {
                        let body = format!("plain {}", request.uri().path());
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))));
                    }
                    let (response, pending) = upgrade(&options, request, Some(remote)).await;
                    if let Some(pending) = pending {
                        assert_eq!(pending.info().remote_addr(), Some(remote));
                        tokio::spawn(async move {
                            if let Ok((ws, _)) = pending.finish().await {
                                echo(ws).await;
                            }
                        });
                    }
                    Ok(response)
                }
            });
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

async fn axum_server() -> SocketAddr {
    async fn ws(upgrade: WebSocketUpgrade) -> AxumResponse {
        upgrade
            .options(options())
            .on_upgrade(|ws, _client| echo(ws))
            .await
    }
    let app = Router::new()
        .route("/", get(|| async { "plain /" }))
        // `any`: over HTTP/2 the upgrade is a CONNECT (RFC 8441), not a GET.
        .route("/ws", any(ws));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Sends a raw request and answers the response head and body.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn check_server(addr: SocketAddr, ws_path: &str) {
    // A WebSocket with the subprotocol, deflate and the hook's header.
    let (mut ws, response) = ClientBuilder::new()
        .protocol("chat")
        .connect(&format!("ws://{addr}{ws_path}"))
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("chat"));
    assert!(
        ws.extensions().starts_with("permessage-deflate"),
        "{}",
        ws.extensions()
    );
    assert_eq!(response.headers()["x-checked"], "yes");
    let big = "compressible ".repeat(10_000);
    ws.send(big.as_str()).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some(big.as_str())
    );
    ws.close(None).await.unwrap();

    // The hook refuses: 401 with its body.
    let error = connect(&format!("ws://{addr}{ws_path}?token=bad"))
        .await
        .unwrap_err();
    let refusal = error.http_response().unwrap();
    assert_eq!(refusal.status(), 401);
    assert_eq!(&refusal.body()[..], b"bad token");

    // Validation statuses: an unknown version gets 426 with the versions we speak.
    let answer = raw(
        addr,
        &format!(
            "GET {ws_path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13, 8"),
        "{answer}"
    );

    // A plain route beside it.
    let answer = raw(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("plain /"),
        "{answer}"
    );
}

#[tokio::test]
async fn hyper_upgrades_share_the_servers_decisions() {
    let addr = hyper_server().await;
    check_server(addr, "/anything").await;
}

#[tokio::test]
async fn axum_extractor_shares_the_servers_decisions() {
    let addr = axum_server().await;
    check_server(addr, "/ws").await;
    // A plain GET on the WebSocket route: the extractor refuses it with 400.
    let answer = raw(
        addr,
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// axum serves cleartext HTTP/2 (prior knowledge) with extended CONNECT on: the extractor takes
/// the RFC 8441 form of the upgrade through the same decisions.
#[cfg(feature = "http2")]
#[tokio::test]
async fn axum_extractor_over_http2() {
    use enim_labore_occaecati::http2::Http2Config;
    let addr = axum_server().await;
    let client = ClientBuilder::new()
        .http2(Http2Config::with_cleartext())
        .protocol("chat");
    let (mut ws, response) = client.connect(&format!("ws://{addr}/ws")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(ws.protocol(), Some("chat"));
    assert!(
        ws.extensions().starts_with("permessage-deflate"),
        "{}",
        ws.extensions()
    );
    assert_eq!(response.headers()["x-checked"], "yes");
    ws.send("over h2").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("over h2"));
    ws.close(None).await.unwrap();
    assert!(ws.recv().await.unwrap().is_none());
    // The hook's refusal comes back on the stream, status and body.
    let error = client
        .connect(&format!("ws://{addr}/ws?token=bad"))
        .await
        .unwrap_err();
    let response = error.http_response().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.body().as_ref(), b"bad token");
}

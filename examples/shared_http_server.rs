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

use std::convert::Infallible;

use enim_labore_occaecati::handshake::server::{accept_headers, validate_request};
use enim_labore_occaecati::handshake::SUPPORTED_VERSIONS;
use enim_labore_occaecati::{Config, Message, Role, WebSocket};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

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

/// The `/foo` server: echoes every message.
async fn foo(mut ws: WebSocket<TokioIo<Upgraded>>) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// The `/bar` server: answers text in upper case.
async fn bar(mut ws: WebSocket<TokioIo<Upgraded>>) {
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

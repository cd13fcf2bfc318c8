//! The accept loop of the examples that run a hyper server (external_server,
//! shared_http_server, client_auth in hyper mode, browser): HTTP/1.1 with upgrades, over TLS
//! when a certificate is given.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use enim_labore_occaecati::tls::ServerTls;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The response body type of the examples' services.
pub type Body = Full<Bytes>;

/// Serves `route` on every connection `listener` accepts (after a TLS handshake with `tls`),
/// with upgrades enabled so WebSocket requests can take the connection over.
pub async fn serve<F, Fut>(listener: TcpListener, tls: Option<ServerTls>, route: F) -> !
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        let route = route.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route.clone()(request, remote));
            let http = http1::Builder::new();
            let result = match tls {
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        http.serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await
                    }
                    Err(error) => return eprintln!("{error}"),
                },
                None => {
                    http.serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
            };
            if let Err(error) = result {
                eprintln!("HTTP connection failed: {error}");
            }
        });
    }
}

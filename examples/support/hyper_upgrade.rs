//! WebSockets on a hyper server, shared by the `external_server`, `shared_http_server` and
//! `browser` examples: the library's handshake validation on the hyper request, a `101` with
//! the library's accept headers, then the upgraded connection as a [`WebSocket`].

use enim_labore_occaecati::handshake::server::{
    accept_headers, error_status, rejection_headers, validate_request,
};
use enim_labore_occaecati::{Config, Role, WebSocket};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The response body type of the examples' services.
pub type Body = Full<Bytes>;

/// A WebSocket over a connection hyper handed over.
pub type HyperWebSocket = WebSocket<TokioIo<Upgraded>>;

/// Answers an upgrade request with `101` and runs `handler` on the WebSocket once hyper has
/// handed over the connection; a request that is not a valid upgrade gets its error status
/// and the same headers the library's own server sends.
pub fn upgrade<F, Fut>(request: Request<Incoming>, handler: F) -> Response<Body>
where
    F: FnOnce(HyperWebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    // The validation looks at the head only; GET upgrade requests have no body.
    let (parts, _body) = request.into_parts();
    let mut request = Request::from_parts(parts, ());
    let upgrade = match validate_request(&request) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            let status = error_status(&error);
            let mut response = Response::new(Body::from(error.to_string()));
            *response.status_mut() = status;
            *response.headers_mut() = rejection_headers(status);
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

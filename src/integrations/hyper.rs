//! Upgrading requests of a hyper 1 server (the seed's `noServer` mode and `handleUpgrade`).
//!
//! [`upgrade`] validates a request with the options of a
//! [`ServerBuilder`] and answers either a response to send back (`101`, or
//! the error status with its body) and a [`PendingWebSocket`] that becomes a
//! [`WebSocket`] once hyper has switched the connection over. Serve the connection with
//! `.with_upgrades()` so hyper hands it over.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{Request, Response};
//! use enim_labore_occaecati::integrations::hyper::{is_upgrade_request, upgrade};
//! use enim_labore_occaecati::server::Server;
//!
//! async fn route(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if request.uri().path() == "/ws" && is_upgrade_request(&request) {
//!         let options = Server::builder();
//!         let (response, pending) = upgrade(&options, request, None).await;
//!         if let Some(pending) = pending {
//!             tokio::spawn(async move {
//!                 let Ok((mut ws, _info)) = pending.finish().await else { return };
//!                 while let Ok(Some(message)) = ws.recv().await {
//!                     if ws.send(message).await.is_err() { break; }
//!                 }
//!             });
//!         }
//!         return Ok(response);
//!     }
//!     Ok(Response::new(Full::new(Bytes::from_static(b"plain HTTP"))))
//! }
//! ```

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};
use crate::handshake::header_has_token;
use crate::handshake::server::{
    accept_headers, connect_accept_headers, http2_head, rejection, remove_connection_headers,
};
use crate::io::WebSocket;
use crate::proto::connection::Connection;
use crate::server::accept::{connection, decide, Decision};
use crate::server::{ClientInfo, ServerBuilder};

/// The stream of a connection hyper handed over.
pub type UpgradedStream = TokioIo<::hyper::upgrade::Upgraded>;

/// Whether `request` asks for a WebSocket upgrade (`Connection: upgrade` and
/// `Upgrade: websocket`), or, over HTTP/2, is an extended CONNECT with `:protocol` websocket
/// (RFC 8441), to route it to [`upgrade`] and everything else to plain HTTP.
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    if request.version() == http::Version::HTTP_2 {
        return request.method() == http::Method::CONNECT
            && connect_protocol(request.extensions())
                .is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
    }
    let headers = request.headers();
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

/// The `:protocol` of an HTTP/2 extended CONNECT, as hyper hands it over.
fn connect_protocol(extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "http2")]
    return extensions
        .get::<::hyper::ext::Protocol>()
        .map(|p| p.as_str());
    #[cfg(not(feature = "http2"))]
    return {
        let _ = extensions;
        None
    };
}

/// A request's head for the decision; for HTTP/2, with its `:protocol` (from `extensions`,
/// where hyper put it) and authority made visible to it (see `http2_head`).
pub(crate) fn request_head(head: Request<()>, extensions: &http::Extensions) -> Request<()> {
    if head.version() != http::Version::HTTP_2 {
        return head;
    }
    let protocol = connect_protocol(extensions).map(str::to_owned);
    http2_head(head, protocol.as_deref())
}

/// An accepted upgrade: the connection becomes a [`WebSocket`] once the `101` response was
/// sent and hyper handed the connection over.
#[derive(Debug)]
pub struct PendingWebSocket {
    on_upgrade: ::hyper::upgrade::OnUpgrade,
    conn: Connection,
    info: ClientInfo,
}

impl PendingWebSocket {
    /// What the server knows of the client (request, hook data, protocol).
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// Waits for hyper to hand the connection over.
    ///
    /// # Errors
    /// The connection failed before the upgrade, or the server was not run with
    /// `.with_upgrades()`.
    pub async fn finish(self) -> Result<(WebSocket<UpgradedStream>, ClientInfo)> {
        let upgraded = self.on_upgrade.await.map_err(|e| {
            Error::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                e,
            ))
        })?;
        let ws = WebSocket::from_parts(
            TokioIo::new(upgraded),
            self.conn,
            BytesMut::new(),
            self.info.protocol.clone(),
        );
        Ok((ws, self.info))
    }
}

/// Decides on an upgrade request with the options of `options` (limits, path, hook,
/// subprotocols, deflate, connection config) and answers the response to send: `101` (`200`
/// for an HTTP/2 extended CONNECT; serve HTTP/2 with `enable_connect_protocol()`) with a
/// [`PendingWebSocket`], or the error status (400, 405, 426, or what the hook chose) with its
/// headers and body and no WebSocket.
///
/// `remote_addr` is the client's address, which hyper's accept loop knows (for the hook and
/// [`ClientInfo::remote_addr`]).
pub async fn upgrade<B>(
    options: &ServerBuilder,
    mut request: Request<B>,
    remote_addr: Option<SocketAddr>,
) -> (Response<Full<Bytes>>, Option<PendingWebSocket>) {
    let on_upgrade = ::hyper::upgrade::on(&mut request);
    // The decision looks at the head only; an upgrade request has no body.
    let (mut parts, _body) = request.into_parts();
    let extensions = std::mem::take(&mut parts.extensions);
    let mut head = request_head(Request::from_parts(parts, ()), &extensions);
    head.extensions_mut().extend(extensions);
    upgrade_head(options, head, on_upgrade, remote_addr).await
}

/// [`upgrade`] on a request head whose upgrade future was already taken out.
pub(crate) async fn upgrade_head(
    options: &ServerBuilder,
    head: Request<()>,
    on_upgrade: ::hyper::upgrade::OnUpgrade,
    remote_addr: Option<SocketAddr>,
) -> (Response<Full<Bytes>>, Option<PendingWebSocket>) {
    let http2 = head.version() == http::Version::HTTP_2;
    match decide(options, head, remote_addr).await {
        Decision::Accept { info, headers } => {
            let mut response = Response::new(Full::new(Bytes::new()));
            if http2 {
                // RFC 8441 §5: a 2xx answers an extended CONNECT.
                *response.headers_mut() =
                    connect_accept_headers(info.protocol.as_deref(), &headers);
            } else {
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                *response.headers_mut() =
                    accept_headers(&info.upgrade.key, info.protocol.as_deref(), &headers);
            }
            let conn = connection(options, &info);
            let pending = PendingWebSocket {
                on_upgrade,
                conn,
                info: *info,
            };
            (response, Some(pending))
        }
        Decision::Refuse(refusal) => {
            let (mut parts, body) =
                rejection(refusal.status, &refusal.headers, &refusal.body).into_parts();
            if http2 {
                remove_connection_headers(&mut parts.headers);
            }
            (Response::from_parts(parts, Full::new(body)), None)
        }
    }
}

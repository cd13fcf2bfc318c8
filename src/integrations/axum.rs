//! An axum extractor for WebSocket upgrades, on the same decision path as the standalone
//! server (see [`hyper`](super::hyper)).
//!
//! ```no_run
//! use axum::{response::Response, routing::get, Router};
//! use enim_labore_occaecati::integrations::axum::WebSocketUpgrade;
//!
//! async fn echo(upgrade: WebSocketUpgrade) -> Response {
//!     upgrade
//!         .on_upgrade(|mut ws, _info| async move {
//!             while let Ok(Some(message)) = ws.recv().await {
//!                 if ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!         .await
//! }
//!
//! let app: Router = Router::new().route("/ws", get(echo));
//! ```

use std::future::Future;
use std::net::SocketAddr;

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::Response;
use http::request::Parts;
use http::{HeaderMap, Request, StatusCode};

use super::hyper::{request_head, upgrade_head, UpgradedStream};
use crate::handshake::server::{error_status, rejection, validate_request};
use crate::io::WebSocket;
use crate::server::{ClientInfo, ServerBuilder};

/// Extracts a WebSocket upgrade request. Extraction fails with the handshake's error status
/// (400, 405, 426) when the request is not a valid upgrade.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    head: Request<()>,
    on_upgrade: ::hyper::upgrade::OnUpgrade,
    options: ServerBuilder,
    remote_addr: Option<SocketAddr>,
}

impl WebSocketUpgrade {
    /// Decides with these options (hook, subprotocols, deflate, limits, connection config)
    /// instead of the defaults.
    pub fn options(mut self, options: ServerBuilder) -> WebSocketUpgrade {
        self.options = options;
        self
    }

    /// The client's address, for the hook and [`ClientInfo::remote_addr`] (axum's
    /// `ConnectInfo` knows it).
    pub fn remote_addr(mut self, addr: SocketAddr) -> WebSocketUpgrade {
        self.remote_addr = Some(addr);
        self
    }

    /// Decides on the upgrade and answers the response to return from the handler; when it is
    /// `101`, `callback` runs on the connection in a task of its own once axum has handed it
    /// over.
    pub async fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket<UpgradedStream>, ClientInfo) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (response, pending) =
            upgrade_head(&self.options, self.head, self.on_upgrade, self.remote_addr).await;
        if let Some(pending) = pending {
            tokio::spawn(async move {
                if let Ok((ws, info)) = pending.finish().await {
                    callback(ws, info).await;
                }
            });
        }
        response.map(Body::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.version_mut() = parts.version;
        *head.headers_mut() = parts.headers.clone();
        let head = request_head(head, &parts.extensions);
        if let Err(error) = validate_request(&head) {
            return Err(refuse(error_status(&error)));
        }
        let Some(on_upgrade) = parts.extensions.remove::<::hyper::upgrade::OnUpgrade>() else {
            // Served without upgrade support (say, HTTP/2 or a test without a connection).
            return Err(refuse(StatusCode::UPGRADE_REQUIRED));
        };
        Ok(WebSocketUpgrade {
            head,
            on_upgrade,
            options: ServerBuilder::default(),
            remote_addr: None,
        })
    }
}

fn refuse(status: StatusCode) -> Response {
    rejection(status, &HeaderMap::new(), b"").map(Body::from)
}

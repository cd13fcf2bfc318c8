//! The client's WebSockets over HTTP/2 (RFC 8441): a pool of HTTP/2 connections by origin,
//! each WebSocket an extended CONNECT on one of them, and the fall back to HTTP/1.1.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Response, Uri};

use super::url::Target;
use super::{read_body, ClientBuilder, ClientStream};
use crate::deflate::negotiation;
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::client::{build_connect_request, validate_connect_response, ClientRequest};
use crate::http2::{io_error, Http2Stream};
use crate::io::WebSocket;

/// What an HTTP/2 try came to.
pub(super) enum Attempt {
    /// The WebSocket, on a stream of an HTTP/2 connection.
    Done(WebSocket<ClientStream>, Response<()>),
    /// Use HTTP/1.1: on this connection (ALPN chose `http/1.1`), or a new one.
    Http1(Option<ClientStream>),
}

/// The HTTP/2 connections of a builder and its clones, one per origin.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Held while a connection is made, so that concurrent connects to one origin share it.
    origins: tokio::sync::Mutex<HashMap<Origin, Entry>>,
}

/// `wss://` or not, host, port.
type Origin = (bool, String, u16);

#[derive(Debug)]
enum Entry {
    /// A live connection; cloned for each new stream.
    Open(SendRequest<Bytes>),
    /// The origin answered HTTP/2 without extended CONNECT: HTTP/1.1 from now on.
    Http1Only,
}

/// A connection's sender, or why there is none.
enum Sender {
    Ready(SendRequest<Bytes>),
    Http1(Option<ClientStream>),
}

impl ClientBuilder {
    /// Opens a WebSocket over HTTP/2 to `target`, if the origin allows it.
    pub(super) async fn connect_http2(
        &self,
        target: &Target,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Attempt> {
        let Target::Tcp { host, port, secure } = target else {
            return Ok(Attempt::Http1(None));
        };
        if !*secure && !self.http2.cleartext {
            return Ok(Attempt::Http1(None));
        }
        let origin = (*secure, host.to_ascii_lowercase(), *port);
        let mut sender = match self.sender(target, origin).await? {
            Sender::Ready(sender) => sender,
            Sender::Http1(stream) => return Ok(Attempt::Http1(stream)),
        };
        let offer = self.deflate.as_ref().map(negotiation::offer_header);
        let mut request = build_connect_request(&ClientRequest {
            uri,
            key: "",
            version: self.version,
            protocols: &self.protocols,
            origin: self.origin.as_deref(),
            headers,
            extensions: offer.as_deref(),
        })?;
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let (response, send) = sender.send_request(request, false).map_err(io_error)?;
        let (parts, recv) = response.await.map_err(io_error)?.into_parts();
        let response = Response::from_parts(parts, ());
        let mut stream = Http2Stream::new(send, recv);
        match validate_connect_response(&response, &self.protocols, offer.is_some()) {
            Ok(protocol) => {
                let conn = self.client_connection(&response)?;
                let stream = ClientStream::Http2(stream);
                let ws = WebSocket::from_parts(stream, conn, BytesMut::new(), protocol);
                Ok(Attempt::Done(ws, response))
            }
            Err(HandshakeError::UnexpectedStatus(_)) => {
                let max = self.limits.max_error_body;
                let body = read_body(&mut stream, &response, BytesMut::new(), max).await;
                let (parts, ()) = response.into_parts();
                Err(Error::http_status(Response::from_parts(parts, body)))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The pooled connection to `origin` if it is alive, else a new one.
    async fn sender(&self, target: &Target, origin: Origin) -> Result<Sender> {
        let mut origins = self.pool.origins.lock().await;
        match origins.get(&origin) {
            Some(Entry::Http1Only) => return Ok(Sender::Http1(None)),
            Some(Entry::Open(sender)) => match sender.clone().ready().await {
                Ok(sender) => return Ok(Sender::Ready(sender)),
                // The connection ended (GOAWAY, an error, or the server went): a new one.
                Err(_) => {
                    origins.remove(&origin);
                }
            },
            None => {}
        }
        let stream = self.open(target, true).await?;
        #[cfg(feature = "tls")]
        if let ClientStream::Tls(tls) = &stream {
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Ok(Sender::Http1(Some(stream)));
            }
        }
        let settings = &self.http2;
        let mut builder = h2::client::Builder::new();
        builder
            .enable_push(false)
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window())
            .max_frame_size(settings.max_frame_size)
            .max_concurrent_streams(settings.max_streams);
        let (sender, mut connection) = builder
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(io_error)?;
        let ping = connection.ping_pong();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        // The server's SETTINGS come before its answer to our PING (RFC 9113 §3.4, §6.7):
        // once the PONG is in, whether it allows extended CONNECT is known.
        if let Some(mut ping) = ping {
            ping.ping(h2::Ping::opaque()).await.map_err(io_error)?;
        }
        let sender = sender.ready().await.map_err(io_error)?;
        if !sender.is_extended_connect_protocol_enabled() {
            origins.insert(origin, Entry::Http1Only);
            return Ok(Sender::Http1(None));
        }
        origins.insert(origin, Entry::Open(sender.clone()));
        Ok(Sender::Ready(sender))
    }
}

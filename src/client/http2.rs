//! The client's WebSockets over HTTP/2 (RFC 8441): a pool of HTTP/2 connections by origin,
//! each WebSocket an extended CONNECT on one of them, and the fall back to HTTP/1.1.

use std::collections::HashMap;
use std::sync::Arc;

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

/// What an HTTP/2 try came to. Made once per connect and taken apart at once: boxing the
/// large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Attempt {
    /// The WebSocket, on a stream of an HTTP/2 connection.
    Done(WebSocket<ClientStream>, Response<()>),
    /// Use HTTP/1.1: on this connection (ALPN chose `http/1.1`), or a new one.
    Http1(Option<ClientStream>),
}

/// The HTTP/2 connections of a builder and its clones, by origin: a WebSocket goes on the
/// first connection with a stream to spare (the server's `SETTINGS_MAX_CONCURRENT_STREAMS`),
/// and a new connection is opened when none has.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Held while a connection is made, so that concurrent connects to one origin share it.
    origins: tokio::sync::Mutex<HashMap<Origin, Entry>>,
}

/// One pooled connection; `streams` has one more strong count per open WebSocket on it.
#[derive(Debug, Clone)]
struct Pooled {
    sender: SendRequest<Bytes>,
    streams: Arc<()>,
}

impl Pooled {
    fn has_room(&self) -> bool {
        Arc::strong_count(&self.streams) - 1 < self.sender.current_max_send_streams()
    }
}

/// `wss://` or not, host, port.
type Origin = (bool, String, u16);

#[derive(Debug)]
enum Entry {
    /// The live connections.
    Open(Vec<Pooled>),
    /// The origin answered HTTP/2 without extended CONNECT: HTTP/1.1 from now on.
    Http1Only,
}

/// A connection to open the stream on, or why there is none.
enum Sender {
    Ready(Pooled),
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
        let Pooled {
            mut sender,
            streams,
        } = match self.sender(target, origin).await? {
            Sender::Ready(pooled) => pooled,
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
        let mut stream = Http2Stream::pooled(send, recv, streams);
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

    /// A pooled connection to `origin` that is alive and has a stream to spare, else a new one.
    async fn sender(&self, target: &Target, origin: Origin) -> Result<Sender> {
        let mut origins = self.pool.origins.lock().await;
        let mut live = match origins.remove(&origin) {
            Some(Entry::Http1Only) => {
                origins.insert(origin, Entry::Http1Only);
                return Ok(Sender::Http1(None));
            }
            Some(Entry::Open(connections)) => connections,
            None => Vec::new(),
        };
        let mut found = None;
        let mut kept = Vec::with_capacity(live.len());
        for pooled in live.drain(..) {
            // A connection that ended (GOAWAY, an error, the server gone) leaves the pool.
            let Ok(sender) = pooled.sender.clone().ready().await else {
                continue;
            };
            let pooled = Pooled { sender, ..pooled };
            if found.is_none() && pooled.has_room() {
                found = Some(pooled.clone());
            }
            kept.push(pooled);
        }
        if let Some(pooled) = found {
            origins.insert(origin, Entry::Open(kept));
            return Ok(Sender::Ready(pooled));
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
        let pooled = Pooled {
            sender,
            streams: Arc::new(()),
        };
        kept.push(pooled.clone());
        origins.insert(origin, Entry::Open(kept));
        Ok(Sender::Ready(pooled))
    }
}

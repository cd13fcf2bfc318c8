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
/// first connection with a stream to spare (the fewer of the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` and our `max_streams`), and a new connection is opened
/// when none has. Setting the builder's TLS, proxy, address or HTTP/2 options starts a new
/// pool, so clones that differ in them never share a connection.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Each origin's connections, behind a lock of their own: held while a connection to that
    /// origin is made (so concurrent connects to it share one), never across origins.
    origins: std::sync::Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// One pooled connection; `streams` has one more strong count per open WebSocket on it.
#[derive(Debug, Clone)]
struct Pooled {
    sender: SendRequest<Bytes>,
    streams: Arc<()>,
}

impl Pooled {
    fn has_room(&self, max_streams: u32) -> bool {
        let limit = self
            .sender
            .current_max_send_streams()
            .min(max_streams as usize);
        Arc::strong_count(&self.streams) - 1 < limit
    }
}

/// `wss://` or not, host, port.
type Origin = (bool, String, u16);

#[derive(Debug, Default)]
enum Entry {
    /// The live connections (none yet).
    #[default]
    Unknown,
    Open(Vec<Pooled>),
    /// The origin answered HTTP/2 without extended CONNECT: HTTP/1.1 from now on (for this
    /// pool).
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
        let offer = self.deflate.as_ref().map(negotiation::offer_header);
        // A stream the server refused unprocessed (REFUSED_STREAM, or cut off by a GOAWAY: RFC
        // 9113 §8.7) is tried once more, on another connection.
        let mut retried = false;
        let (response, send, streams) = loop {
            let pooled = match self.sender(target, origin.clone()).await? {
                Sender::Ready(pooled) => pooled,
                Sender::Http1(stream) => return Ok(Attempt::Http1(stream)),
            };
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
            let mut sender = pooled.sender.clone();
            let sent = match sender.send_request(request, false) {
                Ok((response, send)) => response.await.map(|response| (response, send)),
                Err(error) => Err(error),
            };
            match sent {
                Ok((response, send)) => break (response, send, pooled.streams),
                Err(error) if !retried && unprocessed(&error) => {
                    retried = true;
                    self.forget(&origin, &pooled).await;
                }
                Err(error) => return Err(io_error(error).into()),
            }
        };
        let (parts, recv) = response.into_parts();
        let response = Response::from_parts(parts, ());
        let mut stream = Http2Stream::new(send, recv, self.http2.linger).pooled(streams);
        match validate_connect_response(&response, &self.protocols, offer.is_some()) {
            Ok(protocol) => {
                let conn = self.client_connection(&response)?;
                let stream = ClientStream::Http2(Box::new(stream));
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

    /// Takes a connection that refused a stream out of the pool.
    async fn forget(&self, origin: &Origin, pooled: &Pooled) {
        let entry = self
            .pool
            .origins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(origin)
            .cloned();
        if let Some(entry) = entry {
            if let Entry::Open(connections) = &mut *entry.lock().await {
                connections.retain(|c| !Arc::ptr_eq(&c.streams, &pooled.streams));
            }
        }
    }

    /// A pooled connection to `origin` that is alive and has a stream to spare, else a new one.
    /// The origin's entry is changed in place, so an error or a cancelled connect leaves it as
    /// it was.
    async fn sender(&self, target: &Target, origin: Origin) -> Result<Sender> {
        let entry = {
            let mut origins = self
                .pool
                .origins
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            origins.entry(origin).or_default().clone()
        };
        let mut entry = entry.lock().await;
        if let Entry::Http1Only = *entry {
            return Ok(Sender::Http1(None));
        }
        if let Entry::Open(connections) = &mut *entry {
            let mut index = 0;
            while index < connections.len() {
                // A connection that ended (GOAWAY, an error, the server gone) leaves the pool.
                match connections[index].sender.clone().ready().await {
                    Ok(sender) => {
                        connections[index].sender = sender;
                        if connections[index].has_room(self.http2.max_streams) {
                            return Ok(Sender::Ready(connections[index].clone()));
                        }
                        index += 1;
                    }
                    Err(_) => {
                        connections.swap_remove(index);
                    }
                }
            }
        }
        let stream = self.open(target, true).await?;
        #[cfg(feature = "tls")]
        if let ClientStream::Tls(tls) = &stream {
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                // The server doesn't speak HTTP/2: later connects go straight to HTTP/1.1.
                *entry = Entry::Http1Only;
                return Ok(Sender::Http1(Some(stream)));
            }
        }
        let cleartext = matches!(stream, ClientStream::Plain(_));
        let no_h2c = |error: h2::Error| {
            let error = Error::from(io_error(error));
            if cleartext {
                error.with_message("no cleartext HTTP/2 (h2c) answer from the server")
            } else {
                error
            }
        };
        let settings = &self.http2;
        let mut builder = h2::client::Builder::new();
        builder
            .enable_push(false)
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window())
            .max_frame_size(settings.max_frame_size)
            .max_header_list_size(u32::try_from(self.limits.max_head_size).unwrap_or(u32::MAX));
        let (sender, mut connection) = builder
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(no_h2c)?;
        let ping = connection.ping_pong();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        // The server's SETTINGS come before its answer to our PING (RFC 9113 §3.4, §6.7):
        // once the PONG is in, whether it allows extended CONNECT is known.
        if let Some(mut ping) = ping {
            ping.ping(h2::Ping::opaque()).await.map_err(no_h2c)?;
        }
        let sender = sender.ready().await.map_err(no_h2c)?;
        if !sender.is_extended_connect_protocol_enabled() {
            *entry = Entry::Http1Only;
            return Ok(Sender::Http1(None));
        }
        let pooled = Pooled {
            sender,
            streams: Arc::new(()),
        };
        match &mut *entry {
            Entry::Open(connections) => connections.push(pooled.clone()),
            other => *other = Entry::Open(vec![pooled.clone()]),
        }
        Ok(Sender::Ready(pooled))
    }
}

/// Whether the server refused the stream without processing it, so it can be tried again.
fn unprocessed(error: &h2::Error) -> bool {
    error.is_remote() && (error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM))
}

//! The server side of one connection's handshake: read the head (bounded, timed), validate it,
//! run the application's hook, answer.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ClientId, HandshakeFailure, ServerBuilder};
use crate::deflate::{negotiation, Negotiated};
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::head::{parse_request, HeadReader};
use crate::handshake::server::{
    accept_response, error_status, reject_response, validate_request, UpgradeRequest,
};
use crate::io::WebSocket;
use crate::proto::connection::{Connection, Role};

/// What the server knows about a client: its upgrade request and address. Handed to the
/// verification hook and to the connection handler.
#[derive(Debug)]
pub struct ClientInfo {
    /// Boxed: a handler keeps its `ClientInfo` in its future for the connection's life, and
    /// the request head is most of it.
    request: Box<http::Request<()>>,
    pub(crate) upgrade: UpgradeRequest,
    remote_addr: Option<SocketAddr>,
    pub(crate) protocol: Option<String>,
    deflate: Option<Negotiated>,
    pub(super) id: Option<ClientId>,
}

impl ClientInfo {
    /// The upgrade request (method, URI, headers, and extensions set by the hook).
    pub fn request(&self) -> &http::Request<()> {
        &self.request
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.request.uri().path()
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }

    /// The peer's address (`None` for streams without one, such as in-memory pipes).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The first address of `X-Forwarded-For`, as set by a reverse proxy in front of us. Only
    /// trust it when such a proxy is there.
    pub fn forwarded_for(&self) -> Option<&str> {
        self.headers()
            .get("x-forwarded-for")?
            .to_str()
            .ok()?
            .split(',')
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The origin the client declared.
    pub fn origin(&self) -> Option<&str> {
        self.upgrade.origin.as_deref()
    }

    /// The protocol version (13 or 8).
    pub fn version(&self) -> u8 {
        self.upgrade.version
    }

    /// The subprotocols the client offered.
    pub fn offered_protocols(&self) -> &[String] {
        &self.upgrade.protocols
    }

    /// The subprotocol chosen (after the handshake).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// This client's id in the server's registry (when clients are tracked).
    pub fn id(&self) -> Option<ClientId> {
        self.id
    }

    /// Data the verification hook attached with [`Verdict::with_data`].
    pub fn data<T: Send + Sync + Clone + 'static>(&self) -> Option<&T> {
        self.request.extensions().get::<T>()
    }
}

/// The verification hook's answer.
#[derive(Debug)]
pub struct Verdict {
    accept: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    extensions: http::Extensions,
}

impl Verdict {
    /// Accept the upgrade.
    pub fn accept() -> Verdict {
        Verdict {
            accept: true,
            status: StatusCode::SWITCHING_PROTOCOLS,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// Refuse with `status` (3xx, 4xx or 5xx; anything else becomes 400). The default body is
    /// the status's reason phrase.
    pub fn reject(status: u16) -> Verdict {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 300)
            .unwrap_or(StatusCode::BAD_REQUEST);
        Verdict {
            accept: false,
            status,
            ..Verdict::accept()
        }
    }

    /// Adds a response header (to the `101` or to the rejection). Invalid ones are ignored.
    pub fn with_header(mut self, name: &str, value: &str) -> Verdict {
        crate::handshake::append_header(&mut self.headers, name, value);
        self
    }

    /// The rejection's body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Verdict {
        self.body = body.into();
        self
    }

    /// Attaches data (say, the authenticated user) that the connection handler reads with
    /// [`ClientInfo::data`].
    pub fn with_data<T: Send + Sync + Clone + 'static>(mut self, data: T) -> Verdict {
        self.extensions.insert(data);
        self
    }
}

async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    options: &ServerBuilder,
) -> std::result::Result<(bytes::BytesMut, bytes::BytesMut), HandshakeError> {
    let mut reader = HeadReader::new();
    loop {
        if let Some(end) = reader.find_end(&options.limits)? {
            return Ok(reader.take(end));
        }
        let buf = reader.buffer();
        buf.reserve(4096.min(options.limits.max_head_size));
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(HandshakeError::UnexpectedEof),
            Ok(_) => {}
        }
    }
}

pub(super) async fn accept<S>(
    options: &ServerBuilder,
    mut stream: S,
    remote_addr: Option<SocketAddr>,
) -> Result<(WebSocket<S>, ClientInfo)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Limits that can't work would fail the head's reading first: answered before it.
    if let Err(error) = options.validate() {
        let refusal = misconfigured(error);
        let error = refusal.send(&mut stream).await;
        let _ = stream.shutdown().await;
        return Err(error);
    }
    let timeout = options.limits.timeout;
    let result = tokio::time::timeout(timeout, handshake(options, &mut stream, remote_addr)).await;
    match result {
        Ok(Ok((info, leftover))) => {
            let conn = connection(options, &info);
            let protocol = info.protocol.clone();
            Ok((
                WebSocket::from_parts(stream, conn, leftover, protocol),
                info,
            ))
        }
        Ok(Err(error)) => {
            let _ = stream.shutdown().await;
            Err(error)
        }
        Err(_) => {
            let _ = stream.shutdown().await;
            Err(Error::timeout("opening handshake"))
        }
    }
}

/// The protocol core for an accepted client, with the deflate parameters it negotiated.
pub(crate) fn connection(options: &ServerBuilder, info: &ClientInfo) -> Connection {
    let conn = Connection::new(Role::Server, options.config.clone());
    match (info.deflate, &options.deflate) {
        (Some(params), Some(config)) => conn.with_deflate(params, config.clone()),
        _ => conn,
    }
}

async fn handshake<S>(
    options: &ServerBuilder,
    stream: &mut S,
    remote_addr: Option<SocketAddr>,
) -> Result<(ClientInfo, bytes::BytesMut)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let parsed = async {
        let (head, leftover) = read_head(stream, options).await?;
        Ok((parse_request(&head, &options.limits)?, leftover))
    };
    let (request, leftover) = match parsed.await {
        Ok(parts) => parts,
        Err(error) => {
            if error != HandshakeError::UnexpectedEof {
                let refusal = Refusal::from_error(options, error, None, remote_addr);
                return Err(refusal.send(stream).await);
            }
            return Err(error.into());
        }
    };
    match decide(options, request, remote_addr).await {
        Decision::Accept { info, headers } => {
            let response = accept_response(&info.upgrade.key, info.protocol.as_deref(), &headers);
            stream.write_all(&response).await?;
            Ok((*info, leftover))
        }
        Decision::Refuse(refusal) => Err(refusal.send(stream).await),
    }
}

/// The server's answer to an upgrade request.
pub(crate) enum Decision {
    /// Upgrade; `headers` are the extra response headers (hook, extensions, configured).
    Accept {
        info: Box<ClientInfo>,
        headers: HeaderMap,
    },
    /// Answer with an error response and drop the connection.
    Refuse(Refusal),
}

/// The answer to an upgrade when the server's options can't work: 500, and the reason for the
/// application only.
fn misconfigured(error: Error) -> Refusal {
    Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: HeaderMap::new(),
        body: Bytes::new(),
        error,
    }
}

/// An error response and the error the server reports for it.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) error: Error,
}

impl Refusal {
    /// Writes the response (the connection is dropped after it, so a failed write changes
    /// nothing) and gives the error to report.
    async fn send<S: AsyncWrite + Unpin>(self, stream: &mut S) -> Error {
        let response = reject_response(self.status, &self.headers, &self.body);
        let _ = stream.write_all(&response).await;
        self.error
    }

    /// The default response for `error` (its status and reason phrase), or the one the
    /// application's `on_handshake_error` hook answers.
    fn from_error(
        options: &ServerBuilder,
        error: HandshakeError,
        request: Option<&http::Request<()>>,
        remote_addr: Option<SocketAddr>,
    ) -> Refusal {
        let custom = options.on_handshake_error.as_ref().and_then(|hook| {
            hook(&HandshakeFailure {
                error: &error,
                request,
                remote_addr,
            })
        });
        match custom {
            Some(response) => {
                let (parts, body) = response.into_parts();
                Refusal {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    error: error.into(),
                }
            }
            None => Refusal {
                status: error_status(&error),
                headers: HeaderMap::new(),
                body: Bytes::new(),
                error: error.into(),
            },
        }
    }
}

/// Every decision about a parsed upgrade request, in one place for the standalone server and
/// the hyper and axum integrations: path, RFC 6455 validation, the verification hook,
/// subprotocol choice and permessage-deflate negotiation.
pub(crate) async fn decide(
    options: &ServerBuilder,
    request: http::Request<()>,
    remote_addr: Option<SocketAddr>,
) -> Decision {
    let refuse = |error, request: &http::Request<()>| {
        Decision::Refuse(Refusal::from_error(
            options,
            error,
            Some(request),
            remote_addr,
        ))
    };
    // Options built without `bind` (hyper, axum, `accept`) are checked here; the client
    // isn't told what is wrong with the server.
    if let Err(error) = options.validate() {
        return Decision::Refuse(misconfigured(error));
    }
    if !options.handles_head(&request) {
        return refuse(HandshakeError::PathNotFound, &request);
    }
    let upgrade = match validate_request(&request) {
        Ok(upgrade) => upgrade,
        Err(error) => return refuse(error, &request),
    };
    let mut info = ClientInfo {
        request: Box::new(request),
        upgrade,
        remote_addr,
        protocol: None,
        deflate: None,
        id: None,
    };
    let mut headers = options.headers.clone();
    if let Some(verify) = &options.verify {
        let verdict = verify(&info).await;
        if !verdict.accept {
            return Decision::Refuse(Refusal {
                status: verdict.status,
                headers: verdict.headers,
                body: verdict.body,
                error: HandshakeError::Rejected(verdict.status.as_u16()).into(),
            });
        }
        for (name, value) in &verdict.headers {
            headers.append(name.clone(), value.clone());
        }
        info.request.extensions_mut().extend(verdict.extensions);
    }
    info.protocol = choose_protocol(options, &info);
    if let Some(config) = &options.deflate {
        let offers = info
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(|v| v.as_bytes());
        match negotiation::accept_offer(offers, config) {
            Ok(Some((answer, params))) => {
                if let Ok(value) = http::HeaderValue::from_str(&answer) {
                    headers.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
                }
                info.deflate = Some(params);
            }
            Ok(None) => {}
            Err(()) => {
                // A malformed extension header: 400, as the seed library answers.
                let error = HandshakeError::Malformed("invalid Sec-WebSocket-Extensions");
                return refuse(error, &info.request);
            }
        }
    }
    Decision::Accept {
        info: Box::new(info),
        headers,
    }
}

fn choose_protocol(options: &ServerBuilder, info: &ClientInfo) -> Option<String> {
    let offered = &info.upgrade.protocols;
    if offered.is_empty() {
        return None;
    }
    if let Some(select) = &options.select_protocol {
        return select(offered, info).filter(|p| offered.contains(p));
    }
    if let Some(supported) = &options.protocols {
        return offered.iter().find(|p| supported.contains(p)).cloned();
    }
    offered.first().cloned()
}

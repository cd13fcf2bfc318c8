//! The WebSocket client: URL → TCP → opening handshake → [`WebSocket`].
//!
//! ```no_run
//! # async fn run() -> enim_labore_occaecati::Result<()> {
//! let (mut ws, _response) = enim_labore_occaecati::connect("ws://127.0.0.1:8080/chat").await?;
//! ws.send("hello").await?;
//! if let Some(reply) = ws.recv().await? {
//!     println!("{reply:?}");
//! }
//! ws.close(None).await?;
//! # Ok(()) }
//! ```

mod proxy;

pub use crate::transport::ClientStream;
pub use proxy::{proxy_from_env, Proxy, ProxyKind};

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Response, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Config, HandshakeLimits};
use crate::deflate::{negotiation, DeflateConfig};
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::client::{build_request, validate_response, ClientRequest};
use crate::handshake::generate_key;
use crate::handshake::head::{parse_response, HeadReader};
use crate::io::WebSocket;
use crate::proto::connection::{Connection, Role};

/// Connects to a `ws://` URL with default options.
///
/// # Errors
/// As [`ClientBuilder::connect`].
pub async fn connect(url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
    ClientBuilder::new().connect(url).await
}

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    config: Config,
    limits: HandshakeLimits,
    protocols: Vec<String>,
    headers: HeaderMap,
    origin: Option<String>,
    version: u8,
    max_redirects: usize,
    deflate: Option<DeflateConfig>,
    proxy: ProxySetting,
    #[cfg(feature = "tls")]
    tls: crate::tls::ClientTls,
}

/// Where the client's proxy comes from.
#[derive(Debug, Clone)]
enum ProxySetting {
    Direct,
    Explicit(Proxy),
    FromEnv,
}

/// Where a URL says to connect.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Tcp {
        host: String,
        port: u16,
        secure: bool,
    },
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(std::path::PathBuf),
}

impl Default for ClientBuilder {
    fn default() -> Self {
        let limits = HandshakeLimits {
            timeout: Duration::from_secs(30),
            ..HandshakeLimits::default()
        };
        ClientBuilder {
            config: Config::default(),
            limits,
            protocols: Vec::new(),
            headers: HeaderMap::new(),
            origin: None,
            version: 13,
            max_redirects: 0,
            deflate: Some(DeflateConfig::default()),
            proxy: ProxySetting::Direct,
            #[cfg(feature = "tls")]
            tls: crate::tls::ClientTls::new(),
        }
    }
}

impl ClientBuilder {
    /// Default options: protocol version 13, a 30 s handshake timeout, no redirects.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connection options (limits, auto-pong, write buffer).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Handshake limits: response head size and header count, and the handshake timeout.
    pub fn handshake_limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The time allowed for TCP connect and handshake together (default 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Offers a subprotocol (call once per protocol, in order of preference).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a request header. Invalid names or values are ignored.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        crate::handshake::append_header(&mut self.headers, name, value);
        self
    }

    /// The origin to declare.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The protocol version: 13 (RFC 6455, default) or 8 (HyBi drafts 07-12).
    ///
    /// # Errors
    /// Any other version is refused when connecting.
    pub fn protocol_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// permessage-deflate: offered by default (as in the seed library) with
    /// [`DeflateConfig::default`]; `None` offers nothing.
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// TLS settings for `wss://` URLs (roots, client certificate, SNI); the default verifies
    /// servers against the webpki roots.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// Connects through this proxy (HTTP `CONNECT` or SOCKS5). For `wss://`, TLS runs inside
    /// the tunnel.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxySetting::Explicit(proxy);
        self
    }

    /// Takes the proxy from `HTTPS_PROXY` (for `wss://`), `HTTP_PROXY` (for `ws://`) or
    /// `ALL_PROXY`, honouring `NO_PROXY` ([`proxy_from_env`]). Off unless asked for, so a
    /// program never sends its traffic through a proxy it didn't choose.
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = ProxySetting::FromEnv;
        self
    }

    /// Follow up to `max` redirects (default 0: a redirect is an error carrying the response).
    /// `Authorization` and `Cookie` are dropped when a redirect leads to another host.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Connects: resolves and dials the URL's host, performs the handshake (following
    /// redirects if allowed), all within the handshake timeout.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad URL,
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the connection fails,
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), or
    /// [`ErrorKind::Handshake`](crate::ErrorKind::Handshake), with
    /// [`Error::http_response`] holding the server's answer when it wasn't `101`.
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.connect_inner(url)).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout("opening handshake")),
        }
    }

    async fn connect_inner(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
        let (mut target, mut uri) = parse_target(url)?;
        let mut headers = self.headers.clone();
        let mut redirects = 0;
        loop {
            let stream = self.open(&target).await?;
            match self.handshake_with(stream, &uri, &headers).await {
                Ok(done) => return Ok(done),
                Err(error) => {
                    let Some(location) = redirect_target(&error, &uri) else {
                        return Err(error);
                    };
                    if redirects >= self.max_redirects {
                        if self.max_redirects == 0 {
                            return Err(error);
                        }
                        return Err(HandshakeError::TooManyRedirects.into());
                    }
                    redirects += 1;
                    let same_host =
                        location.host() == uri.host() && location.port_u16() == uri.port_u16();
                    if !same_host {
                        headers.remove(header::AUTHORIZATION);
                        headers.remove(header::COOKIE);
                    }
                    // A relative redirect on a Unix socket stays on that socket.
                    if !(same_host && matches!(target, Target::Unix(_))) {
                        target = tcp_target(&location);
                    }
                    uri = location;
                }
            }
        }
    }

    /// Opens the transport to `target`: a Unix socket, or TCP (through the proxy, if any),
    /// then TLS for `wss://`.
    async fn open(&self, target: &Target) -> Result<ClientStream> {
        let (host, port, secure) = match target {
            #[cfg(unix)]
            Target::Unix(path) => {
                return Ok(ClientStream::Unix(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
            #[cfg(not(unix))]
            Target::Unix(_) => {
                return Err(Error::invalid_input(
                    "ws+unix: URLs need Unix domain sockets",
                ))
            }
            Target::Tcp { host, port, secure } => (host.as_str(), *port, *secure),
        };
        let proxy = match &self.proxy {
            ProxySetting::Direct => None,
            ProxySetting::Explicit(proxy) => Some(proxy.clone()),
            ProxySetting::FromEnv => proxy_from_env(host, secure)?,
        };
        let tcp = match proxy {
            Some(proxy) => proxy.connect(host, port, &self.limits).await?,
            None => TcpStream::connect((host, port)).await?,
        };
        let _ = tcp.set_nodelay(true);
        if secure {
            #[cfg(feature = "tls")]
            return Ok(ClientStream::Tls(Box::new(
                self.tls.connect(host, tcp).await?,
            )));
            #[cfg(not(feature = "tls"))]
            return Err(Error::invalid_input(
                "wss:// URLs need the `tls` feature of this crate",
            ));
        }
        Ok(ClientStream::Plain(tcp))
    }

    /// Performs the client handshake over a stream the caller opened (the seed's
    /// `createConnection`), for the given URL (used for `Host` and the request target).
    ///
    /// # Errors
    /// As [`connect`](ClientBuilder::connect), without redirects.
    pub async fn connect_on<S>(&self, stream: S, url: &str) -> Result<(WebSocket<S>, Response<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let uri = parse_url(url)?;
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.handshake_with(stream, &uri, &self.headers)).await
        {
            Ok(result) => result,
            Err(_) => Err(Error::timeout("opening handshake")),
        }
    }

    async fn handshake_with<S>(
        &self,
        mut stream: S,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(WebSocket<S>, Response<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.version != 13 && self.version != 8 {
            return Err(Error::invalid_input("protocol version must be 13 or 8"));
        }
        if let Some(deflate) = &self.deflate {
            deflate.validate().map_err(Error::invalid_input)?;
        }
        let offer = self.deflate.as_ref().map(negotiation::offer_header);
        let key = generate_key();
        let request = build_request(&ClientRequest {
            uri,
            key: &key,
            version: self.version,
            protocols: &self.protocols,
            origin: self.origin.as_deref(),
            headers,
            extensions: offer.as_deref(),
        });
        stream.write_all(&request).await?;
        let mut reader = HeadReader::new();
        let head_len = loop {
            if let Some(end) = reader.find_end(&self.limits)? {
                break end;
            }
            let buf = reader.buffer();
            buf.reserve(4096);
            if stream.read_buf(buf).await? == 0 {
                return Err(HandshakeError::UnexpectedEof.into());
            }
        };
        let (head, leftover) = reader.take(head_len);
        let response = parse_response(&head, &self.limits)?;
        match validate_response(&response, &key, &self.protocols, offer.is_some()) {
            Ok(protocol) => {
                let mut conn = Connection::new(Role::Client, self.config.clone());
                if let Some(deflate) = &self.deflate {
                    let answer = response
                        .headers()
                        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                        .iter()
                        .map(|v| v.as_bytes());
                    let negotiated =
                        negotiation::validate_answer(answer, deflate).map_err(|why| {
                            Error::from(HandshakeError::UnexpectedExtension).with_message(why)
                        })?;
                    if let Some(params) = negotiated {
                        conn = conn.with_deflate(params, deflate.clone());
                    }
                }
                Ok((
                    WebSocket::from_parts(stream, conn, leftover, protocol),
                    response,
                ))
            }
            Err(HandshakeError::UnexpectedStatus(_)) => {
                let body =
                    read_body(&mut stream, &response, leftover, self.limits.max_error_body).await;
                let (parts, ()) = response.into_parts();
                Err(Error::http_status(Response::from_parts(parts, body)))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Reads the body of an error response: `Content-Length` bytes, or until the server closes,
/// at most `max` bytes either way.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    response: &Response<()>,
    mut body: BytesMut,
    max: usize,
) -> Bytes {
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let want = length.unwrap_or(max).min(max);
    while body.len() < want {
        body.reserve((want - body.len()).min(8192));
        match stream.read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(want);
    body.freeze()
}

fn is_secure(uri: &Uri) -> bool {
    matches!(uri.scheme_str(), Some("wss") | Some("https"))
}

fn tcp_target(uri: &Uri) -> Target {
    let secure = is_secure(uri);
    Target::Tcp {
        host: uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: uri.port_u16().unwrap_or(if secure { 443 } else { 80 }),
        secure,
    }
}

/// Where to connect and the URL to request: `ws+unix:/path/to/socket:/request/path` (the
/// seed's spelling; the request path defaults to `/`) names a Unix socket, anything else goes
/// through [`parse_url`].
fn parse_target(url: &str) -> Result<(Target, Uri)> {
    if let Some(rest) = url.strip_prefix("ws+unix:") {
        let (socket, path) = match rest.split_once(':') {
            Some((socket, path)) => (socket, path),
            None => (rest, "/"),
        };
        if socket.is_empty() {
            return Err(Error::invalid_input(format!(
                "no socket path in {url:?} (ws+unix:/path/to/socket:/request/path)"
            )));
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let uri = format!("ws://localhost{path}")
            .parse()
            .map_err(|_| Error::invalid_input(format!("invalid request path in {url:?}")))?;
        return Ok((Target::Unix(socket.into()), uri));
    }
    let uri = parse_url(url)?;
    Ok((tcp_target(&uri), uri))
}

/// Parses a `ws://`/`wss://` URL (`http://` and `https://` are taken as their WebSocket
/// equivalents, as in the seed).
fn parse_url(url: &str) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid_input(format!("invalid URL: {url:?}")))?;
    match uri.scheme_str() {
        Some("ws") | Some("wss") | Some("http") | Some("https") => {}
        _ => {
            return Err(Error::invalid_input(format!(
                "URL scheme must be ws or wss: {url:?}"
            )))
        }
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(Error::invalid_input(format!("URL has no host: {url:?}")));
    }
    Ok(uri)
}

/// The URL to follow for a redirect response, resolved against `base`.
fn redirect_target(error: &Error, base: &Uri) -> Option<Uri> {
    let response = error.http_response()?;
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    let target: Uri = location.parse().ok()?;
    let uri = if target.scheme().is_some() {
        target
    } else {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = target.path_and_query().cloned();
        Uri::from_parts(parts).ok()?
    };
    let scheme = match uri.scheme_str() {
        Some("http") => "ws",
        Some("https") => "wss",
        Some("ws") => "ws",
        Some("wss") => "wss",
        _ => return None,
    };
    let mut parts = uri.into_parts();
    parts.scheme = scheme.parse().ok();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("ws://localhost:9001/x?y").is_ok());
        assert!(parse_url("http://localhost").is_ok());
        assert!(parse_url("ftp://localhost").is_err());
        assert!(parse_url("ws://").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn unix_urls() {
        let (target, uri) = parse_target("ws+unix:/tmp/app.sock:/chat?room=1").unwrap();
        assert_eq!(target, Target::Unix("/tmp/app.sock".into()));
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/chat?room=1");
        let (target, uri) = parse_target("ws+unix:/tmp/app.sock").unwrap();
        assert_eq!(target, Target::Unix("/tmp/app.sock".into()));
        assert_eq!(uri.path(), "/");
        assert!(parse_target("ws+unix::/x").is_err());
        let (target, _) = parse_target("wss://[::1]/x").unwrap();
        assert_eq!(
            target,
            Target::Tcp {
                host: "::1".into(),
                port: 443,
                secure: true
            }
        );
    }
}

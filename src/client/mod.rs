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

mod dial;
#[cfg(feature = "http2")]
mod http2;
pub(crate) mod proxy;
mod redirect;
pub(crate) mod url;

pub use dial::IpFamily;
pub use redirect::RedirectHop;

pub use crate::transport::ClientStream;
pub use proxy::{proxy_from_env, Proxy, ProxyKind};

pub(crate) use dial::Dial;
use redirect::redirect_target;
use url::{
    add_basic_auth, display_url, effective_port, is_secure, parse_target, parse_url,
    take_user_info, tcp_target, Target,
};

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Response, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
///
/// # Cancel safety
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
    dial: Dial,
    mask_generator: Option<Hook<SharedMaskGenerator>>,
    on_redirect: Option<Hook<RedirectHook>>,
    #[cfg(feature = "http2")]
    http2: crate::http2::Http2Config,
    /// HTTP/2 connections by origin, shared by the clones of this builder.
    #[cfg(feature = "http2")]
    pool: Arc<http2::Pool>,
}

/// The caller's mask generator, shared by every connection the builder opens.
type SharedMaskGenerator = Mutex<dyn FnMut() -> [u8; 4] + Send>;

/// The caller's redirect callback.
type RedirectHook = dyn Fn(&RedirectHop<'_>, &mut HeaderMap) + Send + Sync;

/// A caller's function, shared by the clones of a builder; `Debug` without showing it.
struct Hook<T: ?Sized>(Arc<T>);

impl<T: ?Sized> Clone for Hook<T> {
    fn clone(&self) -> Self {
        Hook(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for Hook<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<function>")
    }
}

/// Where the client's proxy comes from.
#[derive(Debug, Clone)]
enum ProxySetting {
    Direct,
    Explicit(Proxy),
    FromEnv,
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
            dial: Dial::default(),
            mask_generator: None,
            on_redirect: None,
            #[cfg(feature = "http2")]
            http2: crate::http2::Http2Config::off(),
            #[cfg(feature = "http2")]
            pool: Arc::default(),
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
        self.new_pool();
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

    /// WebSockets over HTTP/2 (RFC 8441), off by default; `Http2Config::default()` turns it
    /// on. A `wss://` connection then offers ALPN `h2`; when the server answers with it and
    /// allows extended CONNECT (`SETTINGS_ENABLE_CONNECT_PROTOCOL`), the WebSocket is a stream
    /// of that HTTP/2 connection, and later WebSockets to the same origin from this builder
    /// (or its clones) share it. Otherwise the handshake falls back to HTTP/1.1, on the same
    /// TLS connection when ALPN chose `http/1.1`; an origin found without extended CONNECT
    /// goes straight to HTTP/1.1 afterwards. `ws://` URLs use HTTP/1.1 unless `cleartext` is
    /// set (h2c with prior knowledge). Not used through a Unix socket.
    #[cfg(feature = "http2")]
    pub fn http2(mut self, config: crate::http2::Http2Config) -> Self {
        self.new_pool();
        self.http2 = config;
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
        self.new_pool();
        self.tls = tls;
        self
    }

    /// Connects through this proxy (HTTP `CONNECT` or SOCKS5). For `wss://`, TLS runs inside
    /// the tunnel.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.new_pool();
        self.proxy = ProxySetting::Explicit(proxy);
        self
    }

    /// Takes the proxy from `HTTPS_PROXY` (for `wss://`), `HTTP_PROXY` (for `ws://`) or
    /// `ALL_PROXY`, honouring `NO_PROXY` ([`proxy_from_env`]). Off unless asked for, so a
    /// program never sends its traffic through a proxy it didn't choose.
    pub fn proxy_from_env(mut self) -> Self {
        self.new_pool();
        self.proxy = ProxySetting::FromEnv;
        self
    }

    /// Follow up to `max` redirects (default 0: a redirect is an error carrying the response).
    /// `Authorization` and `Cookie` are dropped when a redirect leads to another host or
    /// port, or from `wss:` to `ws:`; [`on_redirect`](Self::on_redirect) can change the
    /// headers of each next request.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Calls `f` before each redirect is followed (the seed's `'redirect'` event), with the
    /// hop (its status, response, and the URLs it goes from and to) and the headers of the
    /// next request: the builder's [`header`](Self::header)s, `Authorization` from user
    /// info, after `Authorization` and `Cookie` were dropped for another host or a
    /// downgrade to `ws:`. What `f` leaves in them is sent, and carried on to later hops.
    /// The headers the handshake generates (`Host`, `Sec-WebSocket-*`, …) are not in the map
    /// and cannot be replaced here. Only redirects allowed by
    /// [`max_redirects`](Self::max_redirects) reach `f`. A later call replaces the callback.
    ///
    /// ```
    /// use enim_labore_occaecati::ClientBuilder;
    ///
    /// let client = ClientBuilder::new().max_redirects(3).on_redirect(|hop, headers| {
    ///     if hop.to().host() == Some("ws.example.com") {
    ///         headers.insert("authorization", "Bearer for-example".parse().unwrap());
    ///     }
    /// });
    /// ```
    pub fn on_redirect<F>(mut self, f: F) -> Self
    where
        F: Fn(&RedirectHop<'_>, &mut HeaderMap) + Send + Sync + 'static,
    {
        self.on_redirect = Some(Hook(Arc::new(f)));
        self
    }

    /// The source of masking keys for every frame sent (the seed's `generateMask`), called
    /// once per frame. It is shared by all connections this builder (and its clones) opens,
    /// so they call it in turn. The default draws the keys from the operating system's
    /// random source; RFC 6455 §10.3 wants them unpredictable, so a fixed or counting
    /// generator is for tests and trusted peers only.
    pub fn mask_generator<F>(mut self, f: F) -> Self
    where
        F: FnMut() -> [u8; 4] + Send + 'static,
    {
        self.mask_generator = Some(Hook(Arc::new(Mutex::new(f))));
        self
    }

    /// Binds the client's TCP socket to this local address (any free port) before it
    /// connects: the seed's `localAddress`. Only the resolved addresses of the same family
    /// are tried. With a proxy it applies to the connection to the proxy; not to Unix
    /// sockets.
    pub fn local_addr(mut self, addr: IpAddr) -> Self {
        self.new_pool();
        self.dial.local_addr = Some(addr);
        self
    }

    /// Connects over IPv4 or IPv6 only (the seed's `family`): resolved addresses of the other
    /// family are skipped, and a host with none of this family fails with
    /// [`ErrorKind::Io`](crate::ErrorKind::Io). Default [`IpFamily::Any`]. With a proxy it
    /// applies to the connection to the proxy (a SOCKS5 proxy resolves the target itself);
    /// not to Unix sockets.
    pub fn family(mut self, family: IpFamily) -> Self {
        self.new_pool();
        self.dial.family = family;
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
    ///
    /// # Cancel safety
    /// Dropped before it finishes, the half-made connection is closed; nothing is left behind.
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
        self.validate()?;
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.connect_inner(url)).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout("opening handshake")),
        }
    }

    async fn connect_inner(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
        let (mut target, uri) = parse_target(url)?;
        let (mut uri, credentials) = take_user_info(uri)?;
        let mut headers = self.headers.clone();
        add_basic_auth(&mut headers, credentials);
        let mut redirects = 0;
        loop {
            match self.attempt(&target, &uri, &headers).await {
                Ok((mut ws, response)) => {
                    ws.set_url(display_url(&target, &uri).into_boxed_str());
                    return Ok((ws, response));
                }
                Err(error) => {
                    let Some((response, location)) = error
                        .http_response()
                        .and_then(|response| Some((response, redirect_target(response, &uri)?)))
                    else {
                        return Err(error);
                    };
                    if redirects >= self.max_redirects {
                        if self.max_redirects == 0 {
                            return Err(error);
                        }
                        return Err(HandshakeError::TooManyRedirects.into());
                    }
                    redirects += 1;
                    let (location, credentials) = take_user_info(location)?;
                    let same_host = location.host().map(str::to_ascii_lowercase)
                        == uri.host().map(str::to_ascii_lowercase)
                        && effective_port(&location) == effective_port(&uri);
                    let downgrade = is_secure(&uri) && !is_secure(&location);
                    if !same_host || downgrade {
                        headers.remove(header::AUTHORIZATION);
                        headers.remove(header::COOKIE);
                    }
                    add_basic_auth(&mut headers, credentials);
                    if let Some(Hook(on_redirect)) = &self.on_redirect {
                        let hop = RedirectHop {
                            number: redirects,
                            response,
                            from: &uri,
                            to: &location,
                        };
                        on_redirect(&hop, &mut headers);
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

    /// One try at the handshake: over HTTP/2 when it is on and the origin speaks RFC 8441,
    /// else HTTP/1.1 (on the connection ALPN settled on, or a new one).
    async fn attempt(
        &self,
        target: &Target,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(WebSocket<ClientStream>, Response<()>)> {
        #[cfg(feature = "http2")]
        let opened = match self.http2.enabled {
            true => match self.connect_http2(target, uri, headers).await? {
                http2::Attempt::Done(ws, response) => return Ok((ws, response)),
                http2::Attempt::Http1(stream) => stream,
            },
            false => None,
        };
        #[cfg(not(feature = "http2"))]
        let opened = None;
        let stream = match opened {
            Some(stream) => stream,
            None => self.open(target, false).await?,
        };
        self.handshake_with(stream, uri, headers).await
    }

    /// Opens the transport to `target`: a Unix socket, or TCP (through the proxy, if any),
    /// then TLS for `wss://`, offering ALPN `h2` if `offer_h2`.
    async fn open(
        &self,
        target: &Target,
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))] offer_h2: bool,
    ) -> Result<ClientStream> {
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
            Some(proxy) => proxy.connect(host, port, &self.limits, &self.dial).await?,
            None => self.dial.connect(host, port).await?,
        };
        let _ = tcp.set_nodelay(true);
        if secure {
            #[cfg(feature = "tls")]
            return Ok(ClientStream::Tls(Box::new(
                self.tls.connect(host, tcp, offer_h2).await?,
            )));
            #[cfg(not(feature = "tls"))]
            return Err(Error::invalid_input(
                "wss:// URLs need the `tls` feature of this crate",
            ));
        }
        Ok(ClientStream::Plain(tcp))
    }

    /// Performs the client handshake over a stream the caller opened (the seed's
    /// `createConnection`), for the given URL (used for `Host`, the request target, and
    /// user info as `Authorization`).
    ///
    /// # Errors
    /// As [`connect`](ClientBuilder::connect), without redirects.
    ///
    /// # Cancel safety
    /// Dropped before it finishes, the half-made connection is closed; nothing is left behind.
    pub async fn connect_on<S>(&self, stream: S, url: &str) -> Result<(WebSocket<S>, Response<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.validate()?;
        let (uri, credentials) = take_user_info(parse_url(url)?)?;
        let mut headers = self.headers.clone();
        add_basic_auth(&mut headers, credentials);
        let timeout = self.limits.timeout;
        match tokio::time::timeout(timeout, self.handshake_with(stream, &uri, &headers)).await {
            Ok(Ok((mut ws, response))) => {
                ws.set_url(uri.to_string().into_boxed_str());
                Ok((ws, response))
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::timeout("opening handshake")),
        }
    }

    /// Checks the options before a connection is tried: a value that can't work is a clear
    /// error, not a hang or a flood.
    fn validate(&self) -> Result<()> {
        if self.version != 13 && self.version != 8 {
            return Err(Error::invalid_input("protocol version must be 13 or 8"));
        }
        self.config.validate()?;
        self.limits.validate()?;
        if let Some(deflate) = &self.deflate {
            deflate.validate().map_err(Error::invalid_input)?;
        }
        #[cfg(feature = "http2")]
        self.http2.validate()?;
        Ok(())
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
                let conn = self.client_connection(&response)?;
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

impl ClientBuilder {
    /// Starts a pool of HTTP/2 connections of its own: connections made with other TLS, proxy
    /// or address settings are not this builder's to reuse.
    fn new_pool(&mut self) {
        #[cfg(feature = "http2")]
        {
            self.pool = Arc::default();
        }
    }

    /// The protocol core for an accepted handshake: the mask generator, and the deflate
    /// parameters the server's answer settled on.
    fn client_connection(&self, response: &Response<()>) -> Result<Connection> {
        let mut conn = Connection::new(Role::Client, self.config.clone());
        if let Some(Hook(generator)) = &self.mask_generator {
            let generator = generator.clone();
            conn = conn.with_mask_generator(Box::new(move || {
                // A generator that panicked once still answers the next time.
                let mut generator = generator.lock().unwrap_or_else(PoisonError::into_inner);
                (*generator)()
            }));
        }
        if let Some(deflate) = &self.deflate {
            let answer = response
                .headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .map(|v| v.as_bytes());
            let negotiated = negotiation::validate_answer(answer, deflate).map_err(|why| {
                Error::from(HandshakeError::UnexpectedExtension).with_message(why)
            })?;
            if let Some(params) = negotiated {
                conn = conn.with_deflate(params, deflate.clone());
            }
        }
        Ok(conn)
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
    fn user_info_is_taken_off_the_url() {
        let uri = parse_url("ws://us%40er:p%3Ass%20w@Example.com:8080/a?b").unwrap();
        let (uri, credentials) = take_user_info(uri).unwrap();
        assert_eq!(uri.to_string(), "ws://Example.com:8080/a?b");
        let (user, password) = credentials.unwrap();
        assert_eq!((&user[..], &password[..]), (&b"us@er"[..], &b"p:ss w"[..]));

        let (uri, credentials) = take_user_info(parse_url("wss://user@[::1]/").unwrap()).unwrap();
        assert_eq!(uri.host(), Some("[::1]"));
        assert_eq!(credentials, Some((b"user".to_vec(), Vec::new())));
        let (_, none) = take_user_info(parse_url("ws://host/").unwrap()).unwrap();
        assert_eq!(none, None);

        let mut headers = HeaderMap::new();
        add_basic_auth(&mut headers, Some((b"user".to_vec(), Vec::new())));
        assert_eq!(headers[header::AUTHORIZATION], "Basic dXNlcjo=");
        // The first Authorization wins.
        add_basic_auth(&mut headers, Some((b"other".to_vec(), b"x".to_vec())));
        assert_eq!(headers[header::AUTHORIZATION], "Basic dXNlcjo=");
    }

    #[test]
    fn dial_filters_addresses_by_family() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let any = Dial::default();
        assert!(any.admits(v4) && any.admits(v6));
        let only_v6 = Dial {
            family: IpFamily::V6,
            ..Dial::default()
        };
        assert!(!only_v6.admits(v4) && only_v6.admits(v6));
        let bound_v4 = Dial {
            local_addr: Some(v4),
            ..Dial::default()
        };
        assert!(bound_v4.admits(v4) && !bound_v4.admits(v6));
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

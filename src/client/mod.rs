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

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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
    dial: Dial,
    mask_generator: Option<Hook<SharedMaskGenerator>>,
    on_redirect: Option<Hook<RedirectHook>>,
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

/// The address family the client may connect over ([`ClientBuilder::family`]), the `family`
/// option of the seed library (4, 6, or 0 for either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamily {
    /// Either family: every resolved address, in the resolver's order (the default).
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// Whether `ip` belongs to this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}

/// How TCP connections are dialled (to the server, or to the proxy): the local address to
/// bind and the address family allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dial {
    local_addr: Option<IpAddr>,
    family: IpFamily,
}

impl Dial {
    /// Resolves `host` and connects to the first of its addresses that fits (tried in the
    /// resolver's order), bound to the local address if one is set.
    pub(crate) async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        if *self == Dial::default() {
            return TcpStream::connect((host, port)).await;
        }
        let mut last_error = None;
        for addr in tokio::net::lookup_host((host, port)).await? {
            if !self.admits(addr.ip()) {
                continue;
            }
            match self.connect_to(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            let what = match (self.family, self.local_addr) {
                (IpFamily::V4, _) => "IPv4 address".to_owned(),
                (IpFamily::V6, _) => "IPv6 address".to_owned(),
                (IpFamily::Any, Some(local)) => format!("address of the family of {local}"),
                (IpFamily::Any, None) => "address".to_owned(),
            };
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{host} has no {what}"),
            )
        }))
    }

    /// Whether a resolved address may be tried: of the allowed family, and of the local
    /// address's family when one is set.
    fn admits(&self, ip: IpAddr) -> bool {
        self.family.admits(ip)
            && self
                .local_addr
                .map_or(true, |l| l.is_ipv4() == ip.is_ipv4())
    }

    async fn connect_to(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(local) = self.local_addr {
            socket.bind(SocketAddr::new(local, 0))?;
        }
        socket.connect(addr).await
    }
}

/// One redirect the client is about to follow, as [`ClientBuilder::on_redirect`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct RedirectHop<'a> {
    number: usize,
    response: &'a Response<Bytes>,
    from: &'a Uri,
    to: &'a Uri,
}

impl<'a> RedirectHop<'a> {
    /// Which redirect this is: 1 for the first.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The redirect's status (301, 302, 303, 307 or 308).
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The whole redirect response: headers (`Location`, `Set-Cookie`, …) and up to
    /// [`HandshakeLimits::max_error_body`] bytes of body.
    pub fn response(&self) -> &'a Response<Bytes> {
        self.response
    }

    /// The URL that answered with the redirect (without user info).
    pub fn from(&self) -> &'a Uri {
        self.from
    }

    /// The URL the client goes to next: the `Location`, resolved against [`from`](Self::from),
    /// with `http`/`https` taken as `ws`/`wss`, and without user info.
    pub fn to(&self) -> &'a Uri {
        self.to
    }
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
            dial: Dial::default(),
            mask_generator: None,
            on_redirect: None,
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
        self.dial.local_addr = Some(addr);
        self
    }

    /// Connects over IPv4 or IPv6 only (the seed's `family`): resolved addresses of the other
    /// family are skipped, and a host with none of this family fails with
    /// [`ErrorKind::Io`](crate::ErrorKind::Io). Default [`IpFamily::Any`]. With a proxy it
    /// applies to the connection to the proxy (a SOCKS5 proxy resolves the target itself);
    /// not to Unix sockets.
    pub fn family(mut self, family: IpFamily) -> Self {
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
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<ClientStream>, Response<()>)> {
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
            let stream = self.open(&target).await?;
            match self.handshake_with(stream, &uri, &headers).await {
                Ok((mut ws, response)) => {
                    ws.set_url(display_url(&target, &uri).into_boxed_str());
                    return Ok((ws, response));
                }
                Err(error) => {
                    let (Some(response), Some(location)) =
                        (error.http_response(), redirect_target(&error, &uri))
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
            Some(proxy) => proxy.connect(host, port, &self.limits, &self.dial).await?,
            None => self.dial.connect(host, port).await?,
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
    /// `createConnection`), for the given URL (used for `Host`, the request target, and
    /// user info as `Authorization`).
    ///
    /// # Errors
    /// As [`connect`](ClientBuilder::connect), without redirects.
    pub async fn connect_on<S>(&self, stream: S, url: &str) -> Result<(WebSocket<S>, Response<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
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
                if let Some(Hook(generator)) = &self.mask_generator {
                    let generator = generator.clone();
                    conn = conn.with_mask_generator(Box::new(move || {
                        // A generator that panicked once still answers the next time.
                        let mut generator =
                            generator.lock().unwrap_or_else(PoisonError::into_inner);
                        (*generator)()
                    }));
                }
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

/// The URL's port, or its scheme's default.
fn effective_port(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if is_secure(uri) { 443 } else { 80 })
}

fn tcp_target(uri: &Uri) -> Target {
    Target::Tcp {
        host: uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: effective_port(uri),
        secure: is_secure(uri),
    }
}

/// The URL a connection was made to, for [`WebSocket::url`]: the request URL, or the
/// `ws+unix:` spelling for a Unix socket.
fn display_url(target: &Target, uri: &Uri) -> String {
    match target {
        Target::Unix(path) => {
            let request = uri.path_and_query().map_or("/", |pq| pq.as_str());
            format!("ws+unix:{}:{request}", path.display())
        }
        Target::Tcp { .. } => uri.to_string(),
    }
}

/// A user name and password from a URL's user info, percent-decoded.
type Credentials = (Vec<u8>, Vec<u8>);

/// Splits the user info (`user:password@`) off a URL: the URL without it, and the
/// percent-decoded user name and password (empty when missing, as in `ws://user@host/`).
fn take_user_info(uri: Uri) -> Result<(Uri, Option<Credentials>)> {
    let Some((user_info, host)) = uri
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once('@'))
    else {
        return Ok((uri, None));
    };
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    let credentials = (
        proxy::percent_decode_bytes(user),
        proxy::percent_decode_bytes(password),
    );
    let invalid = || Error::invalid_input("invalid host after the user info of a URL");
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host.parse().map_err(|_| invalid())?);
    let uri = Uri::from_parts(parts).map_err(|_| invalid())?;
    Ok((uri, Some(credentials)))
}

/// Sends URL credentials as `Authorization: Basic …`, unless an `Authorization` header is
/// already there (the caller's, or an earlier hop's): the first one wins, as in curl.
fn add_basic_auth(headers: &mut HeaderMap, credentials: Option<Credentials>) {
    let Some((user, password)) = credentials else {
        return;
    };
    if headers.contains_key(header::AUTHORIZATION) {
        return;
    }
    let mut pair = user;
    pair.push(b':');
    pair.extend_from_slice(&password);
    let token = base64::engine::general_purpose::STANDARD.encode(pair);
    if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {token}")) {
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
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

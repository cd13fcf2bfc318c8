//! The WebSocket server: binds a port, validates and authenticates upgrade requests, tracks
//! clients, broadcasts and shuts down gracefully.
//!
//! ```no_run
//! use enim_labore_occaecati::server::Server;
//!
//! # async fn run() -> enim_labore_occaecati::Result<()> {
//! let server = Server::builder().bind("127.0.0.1:8080").await?;
//! server
//!     .serve(|mut ws, _client| async move {
//!         while let Ok(Some(message)) = ws.recv().await {
//!             if ws.feed(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .await
//! # }
//! ```

pub(crate) mod accept;
pub mod events;
#[cfg(feature = "http2")]
mod http2;
mod registry;
mod topics;

pub use crate::broker::BrokerStatus;
pub use crate::io::outbox::{Delivery, SlowPolicy, SLOW_CLOSE_CODE};
pub use crate::transport::ServerStream;
pub use accept::{ClientInfo, Verdict};
pub use registry::{BroadcastReport, ClientId};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::net::{TcpListener, TcpSocket};

use crate::broker::{Broker, Link};
use crate::config::{Config, HandshakeLimits};
use crate::deflate::DeflateConfig;
use crate::error::{Error, HandshakeError, Result};
use crate::io::Outgoing;
use crate::io::WebSocket;
use crate::proto::message::Message;
use crate::proto::prepared::PreparedMessage;
use registry::Registry;

type VerifyFn = dyn Fn(&ClientInfo) -> Pin<Box<dyn Future<Output = Verdict> + Send>> + Send + Sync;
type SelectFn = dyn Fn(&[String], &ClientInfo) -> Option<String> + Send + Sync;
type ShouldHandleFn = dyn Fn(&http::Request<()>) -> bool + Send + Sync;
type HandshakeErrorFn =
    dyn Fn(&HandshakeFailure<'_>) -> Option<http::Response<bytes::Bytes>> + Send + Sync;

/// A failed opening handshake, as [`ServerBuilder::on_handshake_error`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct HandshakeFailure<'a> {
    /// What was wrong.
    pub error: &'a HandshakeError,
    /// The request, when its head could be parsed.
    pub request: Option<&'a http::Request<()>>,
    /// The client's address (`None` for streams without one).
    pub remote_addr: Option<SocketAddr>,
}

/// Server options; built with [`Server::builder`].
#[derive(Clone)]
pub struct ServerBuilder {
    /// Shared by every connection (an `Arc`, not a copy each).
    config: Arc<Config>,
    limits: HandshakeLimits,
    path: Option<String>,
    verify: Option<Arc<VerifyFn>>,
    select_protocol: Option<Arc<SelectFn>>,
    should_handle: Option<Arc<ShouldHandleFn>>,
    on_handshake_error: Option<Arc<HandshakeErrorFn>>,
    protocols: Option<Vec<String>>,
    headers: HeaderMap,
    track_clients: bool,
    backlog: u32,
    max_backlog: usize,
    slow_policy: SlowPolicy,
    broker: Option<Arc<dyn Broker>>,
    deflate: Option<DeflateConfig>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTls>,
    #[cfg(feature = "http2")]
    http2: crate::http2::Http2Config,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .field("path", &self.path)
            .field("protocols", &self.protocols)
            .field("track_clients", &self.track_clients)
            .finish_non_exhaustive()
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            config: Arc::new(Config::default()),
            limits: HandshakeLimits::default(),
            path: None,
            verify: None,
            select_protocol: None,
            should_handle: None,
            on_handshake_error: None,
            protocols: None,
            headers: HeaderMap::new(),
            track_clients: true,
            backlog: 1024,
            max_backlog: DEFAULT_MAX_BACKLOG,
            slow_policy: SlowPolicy::default(),
            broker: None,
            deflate: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "http2")]
            http2: crate::http2::Http2Config::default(),
        }
    }
}

impl ServerBuilder {
    /// Connection options (limits, auto-pong, write buffer) for every accepted client.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Handshake limits (head size, header count, timeout).
    pub fn handshake_limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Serve only this path (query strings are ignored); other paths get 400, as in the seed.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// A routing hook (the seed's `shouldHandle`): whether this server handles an upgrade
    /// request, decided on its head before anything else. A request it declines gets 400, as
    /// in the seed (and [`HandshakeError::PathNotFound`]); beside a router, ask
    /// [`handles`](ServerBuilder::handles) first and send the request elsewhere.
    pub fn should_handle<F>(mut self, hook: F) -> Self
    where
        F: Fn(&http::Request<()>) -> bool + Send + Sync + 'static,
    {
        self.should_handle = Some(Arc::new(hook));
        self
    }

    /// Whether this server handles `request`: its [`path`](ServerBuilder::path) and its
    /// [`should_handle`](ServerBuilder::should_handle) hook agree. (Whether it is a valid
    /// upgrade is checked later, with an error response.)
    pub fn handles<B>(&self, request: &http::Request<B>) -> bool {
        if self.should_handle.is_none() {
            return self.serves_path(request.uri());
        }
        // The hook sees a head without the body type.
        let mut head = http::Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        self.handles_head(&head)
    }

    pub(crate) fn handles_head(&self, head: &http::Request<()>) -> bool {
        self.serves_path(head.uri()) && self.should_handle.as_ref().map_or(true, |hook| hook(head))
    }

    fn serves_path(&self, uri: &http::Uri) -> bool {
        self.path.as_ref().map_or(true, |path| uri.path() == path)
    }

    /// A hook that sees every handshake that fails with an error response (the seed's
    /// `wsClientError`): a malformed or oversized head, a request that is not a valid
    /// upgrade, a path not served, a request [`should_handle`](ServerBuilder::should_handle)
    /// declined. It may answer its own response to send instead of the default one (the
    /// status and its reason phrase); the connection is closed after it either way. Refusals
    /// by the [`verify`](ServerBuilder::verify) hook don't come here: it chose its response.
    pub fn on_handshake_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HandshakeFailure<'_>) -> Option<http::Response<bytes::Bytes>>
            + Send
            + Sync
            + 'static,
    {
        self.on_handshake_error = Some(Arc::new(hook));
        self
    }

    /// An authentication hook run before the upgrade (the seed's `verifyClient`). It sees the
    /// request (headers, path, remote address, origin) and answers [`Verdict::accept`] or
    /// [`Verdict::reject`] with any status, headers and body.
    pub fn verify<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(&ClientInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Verdict> + Send + 'static,
    {
        self.verify = Some(Arc::new(move |info| Box::pin(hook(info))));
        self
    }

    /// The subprotocols this server speaks; the first one the client offers is chosen.
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.protocols = Some(protocols.into_iter().map(Into::into).collect());
        self
    }

    /// A hook choosing the subprotocol from the client's offers (the seed's
    /// `handleProtocols`). An answer that is not among the offers is ignored. Without this or
    /// [`protocols`](ServerBuilder::protocols), the client's first offer is chosen.
    pub fn select_protocol<F>(mut self, hook: F) -> Self
    where
        F: Fn(&[String], &ClientInfo) -> Option<String> + Send + Sync + 'static,
    {
        self.select_protocol = Some(Arc::new(hook));
        self
    }

    /// A header added to every `101` response. Invalid names or values are ignored.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        crate::handshake::append_header(&mut self.headers, name, value);
        self
    }

    /// Enables permessage-deflate (off by default, as in the seed library): the first offer of
    /// the client that this configuration can honour is accepted. An invalid configuration
    /// (window bits outside 8-15, level above 9, memory level outside 1-9) makes
    /// [`bind`](ServerBuilder::bind) fail.
    pub fn deflate(mut self, deflate: DeflateConfig) -> Self {
        self.deflate = Some(deflate);
        self
    }

    /// Track connected clients for broadcast and shutdown (default: on).
    pub fn track_clients(mut self, on: bool) -> Self {
        self.track_clients = on;
        self
    }

    /// The listen backlog (default 1024).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Bytes a client may have pending (broadcasts, publishes and `send_to` messages not yet
    /// written, with what its own handler sent and is still unwritten) before the
    /// [`slow_policy`](ServerBuilder::slow_policy) applies to the next delivery for it.
    /// Default: 1 MiB. Close frames always go through. A single message larger than the limit
    /// still goes to a client with nothing pending.
    pub fn max_backlog(mut self, bytes: usize) -> Self {
        self.max_backlog = bytes;
        self
    }

    /// What happens to a client whose backlog would pass
    /// [`max_backlog`](ServerBuilder::max_backlog): [`SlowPolicy::Close`] (the default) or
    /// [`SlowPolicy::Drop`].
    pub fn slow_policy(mut self, policy: SlowPolicy) -> Self {
        self.slow_policy = policy;
        self
    }

    /// Joins this server's topics with every other server using the same broker (see
    /// [`broker`](crate::broker)): a publish reaches the topic's subscribers on every server.
    pub fn broker(mut self, broker: impl Broker) -> Self {
        self.broker = Some(Arc::new(broker));
        self
    }

    /// Binds a TCP listener (port 0 picks a free port; see [`Server::local_addr`]).
    ///
    /// Serves over TLS (`wss://`) with this certificate. The TLS handshake runs in the
    /// connection's task, within the handshake timeout.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// WebSockets over HTTP/2 (RFC 8441), on by default: a TLS server offers ALPN `h2` beside
    /// `http/1.1` and accepts extended CONNECTs on any stream, with the same path filter,
    /// hooks, subprotocol and deflate negotiation as an HTTP/1.1 upgrade. `enabled: false`
    /// serves HTTP/1.1 only; `cleartext: true` also takes h2c with prior knowledge on a server
    /// without TLS. See [`Http2Config`](crate::http2::Http2Config) for the stream limit and
    /// flow-control windows.
    #[cfg(feature = "http2")]
    pub fn http2(mut self, config: crate::http2::Http2Config) -> Self {
        self.http2 = config;
        self
    }

    /// Listens on a Unix domain socket at `path` (clients connect with
    /// `ws+unix:/path:/request`). A stale socket file left by an earlier run is replaced.
    ///
    /// # Errors
    /// The path can't be bound (a directory missing, no permission, or another server
    /// listening there).
    #[cfg(unix)]
    pub fn bind_unix(self, path: impl AsRef<std::path::Path>) -> Result<Server> {
        self.validate()?;
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        let listener = match tokio::net::UnixListener::bind(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                // Replace only a socket file nobody answers on (left by an earlier run); any
                // other file, or a live server, keeps the error.
                let is_socket =
                    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
                if !is_socket || std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(e.into());
                }
                std::fs::remove_file(path)?;
                tokio::net::UnixListener::bind(path)?
            }
            other => other?,
        };
        Ok(self.serve_on(Listener::Unix(listener, path.to_owned())))
    }

    /// Runs the TLS handshake on a new connection when the server has a certificate.
    async fn secure(&self, stream: ServerStream) -> Result<ServerStream> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            if let ServerStream::Plain(tcp) = stream {
                let handshake = tls.accept(tcp);
                return match tokio::time::timeout(self.limits.timeout, handshake).await {
                    Ok(tls) => Ok(ServerStream::Tls(Box::new(tls?))),
                    Err(_) => Err(Error::timeout("TLS handshake")),
                };
            }
        }
        Ok(stream)
    }

    /// Checks the options at the point of use (bind, accept, and each upgrade decision), so a
    /// value that can't work is a clear error rather than a hang or a flood.
    pub(crate) fn validate(&self) -> Result<()> {
        self.config.validate()?;
        self.limits.validate()?;
        if let Some(deflate) = &self.deflate {
            deflate.validate().map_err(Error::invalid_input)?;
        }
        #[cfg(feature = "http2")]
        self.http2.validate()?;
        Ok(())
    }

    /// # Errors
    /// The address doesn't resolve or can't be bound.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> Result<Server> {
        self.validate()?;
        let mut last = None;
        for addr in tokio::net::lookup_host(addr).await? {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            match socket.bind(addr).and_then(|()| socket.listen(self.backlog)) {
                Ok(listener) => return Ok(self.from_listener(listener)),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::invalid_input("address resolved to nothing")))
    }

    /// A server on a listener the caller bound.
    pub fn from_listener(self, listener: TcpListener) -> Server {
        self.serve_on(Listener::Tcp(listener))
    }

    fn serve_on(
        #[cfg_attr(not(all(feature = "tls", feature = "http2")), allow(unused_mut))] mut self,
        listener: Listener,
    ) -> Server {
        #[cfg(all(feature = "tls", feature = "http2"))]
        {
            let enabled = self.http2.enabled;
            self.tls = self.tls.take().map(|tls| match enabled {
                true => tls.with_h2(),
                false => tls.without_h2(),
            });
        }
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let link = self.broker.clone().map(|broker| {
                let weak = weak.clone();
                let (link, task) = Link::start(
                    broker,
                    Box::new(move |topic, messages| {
                        if let Some(shared) = weak.upgrade() {
                            shared.registry.publish_local(topic, messages, None);
                        }
                    }),
                );
                tokio::spawn(task);
                link
            });
            Shared {
                registry: Registry::new(self.max_backlog, self.slow_policy, link),
                options: self,
                shutdown: tokio::sync::Notify::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                loops_register: std::sync::atomic::AtomicBool::new(false),
            }
        });
        Server { listener, shared }
    }

    /// Performs the server side of the handshake on a stream already accepted (TCP, TLS, a Unix
    /// socket or an in-memory pipe), applying every check, the hook and the limits.
    ///
    /// # Errors
    /// The handshake failed or was rejected; the error response was written.
    ///
    /// # Cancel safety
    /// Dropped before it finishes, the stream is dropped with it; nothing is registered.
    pub async fn accept<S>(
        &self,
        stream: S,
        remote_addr: Option<SocketAddr>,
    ) -> Result<(WebSocket<S>, ClientInfo)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        accept::accept(self, stream, remote_addr).await
    }
}

/// Default of [`ServerBuilder::max_backlog`].
const DEFAULT_MAX_BACKLOG: usize = 1 << 20;

struct Shared {
    options: ServerBuilder,
    registry: Registry,
    shutdown: tokio::sync::Notify,
    stopping: std::sync::atomic::AtomicBool,
    /// Clients are registered by the event loops that drive them (`serve_events`), not by
    /// the tasks that open them.
    loops_register: std::sync::atomic::AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(link) = &self.registry.link {
            link.stop();
        }
    }
}

impl Shared {
    /// TLS if configured and the opening handshake; `None` when the connection ends before
    /// its handler runs (a failed handshake). An HTTP/2 connection is served here, to its end,
    /// its streams each in a task of their own: this future is boxed by the caller, so an
    /// HTTP/2 connection's state is never in the room every connection's task keeps.
    async fn open<F, Fut>(
        self: &Arc<Self>,
        stream: ServerStream,
        remote: Option<SocketAddr>,
        #[cfg_attr(not(feature = "http2"), allow(unused_variables))] handler: &Arc<F>,
    ) -> Option<(WebSocket<ServerStream>, ClientInfo)>
    where
        F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stream = self.options.secure(stream).await.ok()?;
        #[cfg(feature = "http2")]
        let stream = match http2::detect(&self.options, stream).await {
            http2::Detected::Http2(stream) => {
                http2::serve(self, handler, stream, remote).await;
                return None;
            }
            http2::Detected::Http1(stream) => stream,
            http2::Detected::Neither => return None,
        };
        self.options.accept(stream, remote).await.ok()
    }

    /// A connection's (or an HTTP/2 stream's) start, once `opened` (its handshake) gives a
    /// `WebSocket`: the client registered, and the handler's future with the guard that undoes
    /// the task's bookkeeping when the task ends. The guard is made first, so a task whose
    /// handshake fails is untracked too; `None` then, or when the server is shutting down.
    async fn start<F, Fut>(
        self: &Arc<Self>,
        handler: &F,
        opened: impl Future<Output = Option<(WebSocket<ServerStream>, ClientInfo)>>,
    ) -> Option<(Fut, ConnectionGuard)>
    where
        F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut,
    {
        let mut guard = ConnectionGuard::new(self.clone());
        let (ws, info) = opened.await?;
        let (ws, info) = self.register(ws, info, &mut guard).await?;
        Some((handler(ws, info), guard))
    }

    /// Registers an accepted client (when clients are tracked) until `guard` drops; `None`
    /// when the server is shutting down (the client is closed with 1001).
    async fn register(
        &self,
        mut ws: WebSocket<ServerStream>,
        mut info: ClientInfo,
        guard: &mut ConnectionGuard,
    ) -> Option<(WebSocket<ServerStream>, ClientInfo)> {
        let in_loop = self
            .loops_register
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.options.track_clients && !in_loop {
            let (id, outbox) = self
                .registry
                .register(info.remote_addr(), tokio::task::try_id());
            guard.id = Some(id);
            info.id = Some(id);
            ws.set_outbox(outbox);
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = ws.close(Some(crate::CloseFrame::new(1001u16, ""))).await;
                return None;
            }
        }
        Some((ws, info))
    }
}

/// One accepted connection's task: TLS, the handshake, then the handler (or an HTTP/2
/// connection, served inside `open`).
///
/// The task keeps room for the largest state of its future, for the connection's whole life.
/// The handshake's state is large and short-lived, so it runs in a boxed future, which owns
/// the stream, the address and the handler until it hands over the handler's future: while the
/// connection is open, the task holds that future, the guard and a pointer, and nothing else
/// (an idle connection costs mostly its task).
fn run_connection<F, Fut>(
    shared: Arc<Shared>,
    handler: Arc<F>,
    stream: ServerStream,
    remote: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send + 'static
where
    F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    connection_task(Box::pin(async move {
        let opened = shared.open(stream, remote, &handler);
        shared.start(&*handler, opened).await
    }))
}

/// A task that runs the handler's future `opening` gives (if any) and then drops the guard:
/// the task's whole state, besides the pointer to `opening`, while the connection is open.
async fn connection_task<O, Fut>(opening: Pin<Box<O>>)
where
    O: Future<Output = Option<(Fut, ConnectionGuard)>>,
    Fut: Future<Output = ()>,
{
    // A `let … else`, not an `if let`: the scrutinee of an `if let` lives to the end of its
    // block, across the handler's await, which would keep room for the handler's future
    // twice.
    let Some((connection, _guard)) = opening.await else {
        return;
    };
    connection.await;
}

/// What a connection's (or an HTTP/2 stream's) task undoes when it ends, however it ends: the
/// client's registration, if it was registered, and the task's abort handle. It owns its
/// `Arc`, so the task's future borrows nothing from the boxed handshake.
struct ConnectionGuard {
    shared: Arc<Shared>,
    id: Option<ClientId>,
}

impl ConnectionGuard {
    fn new(shared: Arc<Shared>) -> ConnectionGuard {
        ConnectionGuard { shared, id: None }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.registry.unregister(id);
        }
        self.shared.registry.untrack_current_task();
    }
}

/// Deliveries dropped and clients closed for falling behind ([`ServerHandle::slow_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlowStats {
    /// Deliveries skipped for clients over their backlog ([`SlowPolicy::Drop`]).
    pub dropped: u64,
    /// Clients closed for being over their backlog ([`SlowPolicy::Close`]).
    pub closed: u64,
}

/// What a server accepts connections from.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(ServerStream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((ServerStream::Plain(stream), Some(remote)))
            }
            #[cfg(unix)]
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok((ServerStream::Unix(stream), None))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A bound WebSocket server.
pub struct Server {
    listener: Listener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A handle to a running server: client list, broadcast, shutdown. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("clients", &self.client_count())
            .finish()
    }
}

impl Server {
    /// Options for a new server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds with default options.
    ///
    /// # Errors
    /// As [`ServerBuilder::bind`].
    pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> Result<Server> {
        ServerBuilder::default().bind(addr).await
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// An I/O error from the operating system, or
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a Unix socket server
    /// (see [`unix_path`](Server::unix_path)).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        match &self.listener {
            Listener::Tcp(listener) => Ok(listener.local_addr()?),
            #[cfg(unix)]
            Listener::Unix(..) => Err(Error::invalid_input(
                "a Unix socket server has no socket address",
            )),
        }
    }

    /// The socket path of a server bound with [`ServerBuilder::bind_unix`].
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        match &self.listener {
            #[cfg(unix)]
            Listener::Unix(_, path) => Some(path),
            _ => None,
        }
    }

    /// A handle for broadcasting and shutting down.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections (TCP, TLS or Unix socket) until [`ServerHandle::shutdown`], upgrading each in its own task
    /// (within the handshake timeout) and running `handler` on it. Clients are registered for
    /// broadcast while their handler runs.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) at once when the options
    /// can't work (a server made by [`ServerBuilder::from_listener`], which can't refuse
    /// them). Accept errors (such as running out of file descriptors) are retried after a
    /// short pause.
    pub async fn serve<F, Fut>(self, handler: F) -> Result<()>
    where
        F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // A server made by `from_listener` meets its options here first.
        self.shared.options.validate()?;
        self.accept_loop(Arc::new(handler)).await
    }

    /// Accepts connections until shutdown, each in a task of its own: TLS, the handshake,
    /// then `handler`.
    async fn accept_loop<F, Fut>(self, handler: Arc<F>) -> Result<()>
    where
        F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            // Registered before the flag is read: a shutdown between the two still wakes it
            // (`notify_waiters` keeps no permit for futures not yet registered).
            let shutdown = self.shared.shutdown.notified();
            tokio::pin!(shutdown);
            shutdown.as_mut().enable();
            if self
                .shared
                .stopping
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Ok(());
            }
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown => return Ok(()),
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let task = tokio::spawn(run_connection(
                self.shared.clone(),
                handler.clone(),
                stream,
                remote,
            ));
            self.shared.registry.track_task(task.abort_handle());
        }
    }
}

impl ServerHandle {
    /// How many clients are connected (tracked clients whose handler is running).
    pub fn client_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// The ids of connected clients.
    pub fn clients(&self) -> Vec<ClientId> {
        self.shared.registry.ids()
    }

    /// Queues `message` for every client on this server, framed once (and compressed once
    /// for the clients that allow it): each client's task writes it. Clients over their
    /// backlog get the [`SlowPolicy`]'s outcome, counted in the report.
    pub fn broadcast(&self, message: impl Into<PreparedMessage>) -> BroadcastReport {
        self.shared.registry.broadcast(&message.into(), None)
    }

    /// Queues `message` for every client but `except` (typically the sender).
    pub fn broadcast_except(
        &self,
        except: ClientId,
        message: impl Into<PreparedMessage>,
    ) -> BroadcastReport {
        self.shared
            .registry
            .broadcast(&message.into(), Some(except))
    }

    /// Queues `message` for one client (any message; data is framed by its task), subject to
    /// its backlog limit.
    pub fn send_to(&self, id: ClientId, message: impl Into<Message>) -> Delivery {
        self.shared
            .registry
            .send_to(id, Outgoing::Message(Box::new(message.into())))
    }

    /// Subscribes a client to `topic`; subscriptions end with the connection. Answers `false`
    /// if the client is not connected. With a broker, the server's subscription to the topic
    /// there is taken with its first local subscriber.
    pub fn subscribe(&self, id: ClientId, topic: &str) -> bool {
        self.shared.registry.subscribe(id, topic)
    }

    /// Unsubscribes a client from `topic`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, id: ClientId, topic: &str) -> bool {
        self.shared.registry.unsubscribe(id, topic)
    }

    /// Publishes `message` to every subscriber of `topic`: those of this server, and with a
    /// broker those of every server joined through it. Framed once here (and compressed once
    /// for the clients that allow it).
    ///
    /// # Errors
    /// With a broker, [`ErrorKind::Broker`](crate::ErrorKind::Broker) while it is unreachable
    /// or its publish queue is full: the message was then delivered nowhere.
    pub fn publish(
        &self,
        topic: &str,
        message: impl Into<PreparedMessage>,
    ) -> Result<BroadcastReport> {
        self.publish_slice(topic, &[message.into()], None)
    }

    /// [`publish`](ServerHandle::publish) to every subscriber but `except` (typically the
    /// client that sent it).
    ///
    /// # Errors
    /// As [`publish`](ServerHandle::publish).
    pub fn publish_except(
        &self,
        topic: &str,
        except: ClientId,
        message: impl Into<PreparedMessage>,
    ) -> Result<BroadcastReport> {
        self.publish_slice(topic, &[message.into()], Some(except))
    }

    /// Publishes several messages to `topic`, in order, to every subscriber but `except` (if
    /// any): as many [`publish`](ServerHandle::publish)es, but each subscriber's queue is
    /// visited once for all of them, which is cheaper with many subscribers. A relay that has
    /// read several messages at once publishes them together. The report counts deliveries
    /// (a message to a subscriber).
    ///
    /// # Errors
    /// As [`publish`](ServerHandle::publish): on an error none of them went anywhere.
    pub fn publish_all<M: Into<PreparedMessage>>(
        &self,
        topic: &str,
        except: Option<ClientId>,
        messages: impl IntoIterator<Item = M>,
    ) -> Result<BroadcastReport> {
        let messages: Vec<PreparedMessage> = messages.into_iter().map(Into::into).collect();
        self.publish_slice(topic, &messages, except)
    }

    /// Every publish: to the broker first (all or nothing), then to this server's subscribers.
    fn publish_slice(
        &self,
        topic: &str,
        messages: &[PreparedMessage],
        except: Option<ClientId>,
    ) -> Result<BroadcastReport> {
        let registry = &self.shared.registry;
        if let Some(link) = &registry.link {
            let envelopes = messages
                .iter()
                .map(|m| link.envelope(m))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::invalid_input("only text and binary messages cross the broker")
                })?;
            // Reserved first: on an error the messages go nowhere, not only here.
            let permits = link.reserve(envelopes.len())?;
            let topic: Arc<str> = Arc::from(topic);
            for (permit, envelope) in permits.zip(envelopes) {
                permit.send((topic.clone(), envelope));
            }
        }
        Ok(registry.publish_local(topic, messages, except))
    }

    /// How many clients of this server are subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shared.registry.subscriber_count(topic)
    }

    /// The topics with subscribers on this server, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.shared.registry.topic_names()
    }

    /// The topics a client is subscribed to.
    pub fn client_topics(&self, id: ClientId) -> Vec<String> {
        self.shared.registry.client_topics(id)
    }

    /// Deliveries dropped and clients closed for falling behind ([`SlowPolicy`]), since the
    /// server started.
    pub fn slow_stats(&self) -> SlowStats {
        let (dropped, closed) = self.shared.registry.slow_counts();
        SlowStats { dropped, closed }
    }

    /// The link to the broker, when the server has one.
    pub fn broker_status(&self) -> Option<BrokerStatus> {
        self.shared.registry.link.as_ref().map(|l| l.status())
    }

    /// Every change of the broker link's status, to wait on
    /// ([`watch::Receiver::changed`](tokio::sync::watch::Receiver::changed)).
    pub fn broker_events(&self) -> Option<tokio::sync::watch::Receiver<BrokerStatus>> {
        self.shared.registry.link.as_ref().map(|l| l.watch())
    }

    /// Starts the close handshake with one client: its task sends `frame` (a close frame
    /// always goes through, whatever the backlog), its handler's `recv` then sees the peer's
    /// answer and returns `Ok(None)`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a code or reason that
    /// may not be sent; [`ErrorKind::Closed`](crate::ErrorKind::Closed) if the client is not
    /// connected.
    pub fn close_client(&self, id: ClientId, frame: Option<crate::CloseFrame>) -> Result<()> {
        if let Some(frame) = &frame {
            frame.validate_outgoing()?;
        }
        // A close frame is queued whatever the backlog (`Outbox::push`).
        match self.send_to(id, Message::Close(frame)) {
            Delivery::NotConnected => Err(Error::closed()),
            Delivery::Queued | Delivery::Dropped | Delivery::Closed => Ok(()),
        }
    }

    /// Drops one client's connection at once, without a close frame (the seed's
    /// `terminate()`): its handler is cancelled and the peer sees the connection end (1006).
    /// Answers whether the client was connected.
    pub fn terminate_client(&self, id: ClientId) -> bool {
        self.shared.registry.terminate(id)
    }

    /// The remote address of a connected client (`None` for Unix sockets, or once it left).
    pub fn client_addr(&self, id: ClientId) -> Option<SocketAddr> {
        self.shared.registry.remote_addr(id)
    }

    /// Stops accepting, sends every client a close frame with 1001 (going away), waits up to
    /// `timeout` for their handlers to end, then drops the rest.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.shutdown.notify_waiters();
        let registry = &self.shared.registry;
        registry.close_all(&Message::Close(Some(crate::CloseFrame::new(
            1001u16,
            "server shutting down",
        ))));
        // Woken when the last client leaves, not polled.
        let _ = tokio::time::timeout(timeout, async {
            loop {
                let emptied = registry.emptied.notified();
                if registry.len() == 0 {
                    return;
                }
                emptied.await;
            }
        })
        .await;
        registry.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task keeps room for the largest state of `run_connection` across an
    /// await, for the connection's whole life. The handshake (and an HTTP/2 connection) run in
    /// a boxed future that owns the stream, the address and the handler, so that room is the
    /// handler's future plus a few words: the opening handshake's result (a `WebSocket` and its
    /// `ClientInfo`, 680 bytes) kept across an await would add about 700 bytes to every idle
    /// connection (seen: 2.1 KB became 2.9 KB), and the stream and the address kept as the
    /// task's arguments 64 more (they took the bench's task cell from 512 to 640 bytes).
    #[tokio::test]
    async fn a_connection_task_keeps_room_for_its_handler_and_a_few_words() {
        /// The size of the future `handler` returns.
        fn future_size<F, Fut>(_: &F) -> usize
        where
            F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut,
        {
            std::mem::size_of::<Fut>()
        }
        let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (client, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(addr),
            server.listener.accept()
        );
        let (stream, remote) = accepted.unwrap();
        // An echo loop: the connection is held across its awaits, as handlers do.
        let handler = Arc::new(
            |mut ws: WebSocket<ServerStream>, _info: ClientInfo| async move {
                while let Ok(Some(message)) = ws.recv().await {
                    if ws.feed(message).await.is_err() {
                        break;
                    }
                }
            },
        );
        let handler_future = future_size(&*handler);
        let task = run_connection(server.shared.clone(), handler, stream, remote);
        let size = std::mem::size_of_val(&task);
        // The boxed handshake's pointer, the guard (two words), the state's tag.
        let words = 4 * std::mem::size_of::<usize>();
        assert!(
            size <= handler_future + words,
            "the task's future is {size} bytes, the handler's {handler_future}"
        );
        drop((task, client));
    }
}

//! The three echo servers under test. Each runs on a tokio current_thread runtime in its own
//! process (`elo-bench server <impl> <addr>`) and echoes every data message unchanged.
//!
//! All three set TCP_NODELAY on accepted sockets (ours does it inside `serve`; for the other
//! two it is one line here) so that Nagle's algorithm cannot add delayed-ACK stalls to any of
//! them.

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use enim_labore_occaecati::tls::ServerTls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impl {
    Elo,
    /// Ours, every connection driven by an event loop (`serve_events`) instead of a task each.
    EloEvents,
    Tungstenite,
    FastWebSockets,
    /// Our server from another build of this benchmark (`--baseline PATH`), such as the
    /// previous main: a change's cost or gain, measured side by side in one run.
    Baseline,
    /// uWebSockets (C++) through its Node.js binding (`bench/node/uws-server.mjs`; needs
    /// `npm ci --prefix bench/node`).
    Uws,
}

impl Impl {
    /// The servers a run measures unless told otherwise.
    pub const ALL: [Impl; 3] = [Impl::Elo, Impl::Tungstenite, Impl::FastWebSockets];

    pub fn name(self) -> &'static str {
        match self {
            Impl::Elo => "elo",
            Impl::EloEvents => "elo-events",
            Impl::Tungstenite => "tungstenite",
            Impl::FastWebSockets => "fastwebsockets",
            Impl::Baseline => "baseline",
            Impl::Uws => "uws",
        }
    }

    pub fn parse(s: &str) -> Option<Impl> {
        Impl::ALL
            .into_iter()
            .chain([Impl::EloEvents, Impl::Baseline, Impl::Uws])
            .find(|i| i.name() == s)
    }
}

/// Entry point of the `server` subcommand. Prints `READY <addr>` on stdout once listening.
/// With `tls`, every connection is TLS first: the library's `ServerTls` for ours, tokio-rustls
/// on the same configuration for the others.
pub fn run(
    imp: Impl,
    addr: SocketAddr,
    cpu: Option<usize>,
    tls: Option<ServerTls>,
) -> Result<(), BoxError> {
    serve_on_one_thread(cpu, async move {
        match imp {
            Impl::Elo => elo(addr, tls).await,
            Impl::EloEvents => elo_events(addr, tls).await,
            Impl::Tungstenite => tungstenite(addr, tls).await,
            Impl::FastWebSockets => fastwebsockets(addr, tls).await,
            Impl::Baseline => Err("the baseline runs as `elo` in its own binary".into()),
            Impl::Uws => Err("uws runs under node (bench/node/uws-server.mjs)".into()),
        }
    })
}

/// Runs a server process's future on one tokio `current_thread` runtime, pinned to `cpu`,
/// dying with the load generator.
pub(crate) fn serve_on_one_thread(
    cpu: Option<usize>,
    server: impl std::future::Future<Output = Result<(), BoxError>>,
) -> Result<(), BoxError> {
    crate::sys::die_with_parent();
    if let Some(cpu) = cpu {
        crate::sys::pin_to_cpu(cpu)?;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(server)
}

pub(crate) fn ready(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY {addr}");
    let _ = out.flush();
}

/// Ours: `feed` queues the echo, `recv` flushes everything queued before waiting for input,
/// so the replies to one read go out in one write.
async fn elo(addr: SocketAddr, tls: Option<ServerTls>) -> Result<(), BoxError> {
    let mut builder = enim_labore_occaecati::server::Server::builder().track_clients(false);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let server = builder.bind(addr).await?;
    ready(server.local_addr()?);
    server
        .serve(|mut ws, _client| async move {
            while let Ok(Some(message)) = ws.recv().await {
                if ws.feed(message).await.is_err() {
                    break;
                }
            }
        })
        .await?;
    Ok(())
}

/// Ours on event loops: the echo queued from the callback, written once the loop is done with
/// the connection's input (one write per read, as above).
async fn elo_events(addr: SocketAddr, tls: Option<ServerTls>) -> Result<(), BoxError> {
    use enim_labore_occaecati::server::events::{Client, EventHandler};
    use enim_labore_occaecati::server::ClientInfo;
    use enim_labore_occaecati::Message;

    struct Echo;
    impl EventHandler for Echo {
        type State = ();
        fn on_open(&self, _client: &mut Client<'_>, _info: ClientInfo) {}
        fn on_message(&self, _state: &mut (), client: &mut Client<'_>, message: Message) {
            // Refused only while the peer isn't reading its echoes; the loop then stops
            // reading from it too, as `recv` would.
            let _ = client.send(message);
        }
    }

    let mut builder = enim_labore_occaecati::server::Server::builder().track_clients(false);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let server = builder.bind(addr).await?;
    ready(server.local_addr()?);
    server.serve_events(Echo).await?;
    Ok(())
}

async fn accept(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            // Out of file descriptors and the like: back off, as a real server would.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// TLS as tokio-tungstenite's and fastwebsockets' users terminate it: tokio-rustls (rustls'
/// buffered API), on the same rustls configuration as ours (the library's `ServerTls`, on
/// rustls' unbuffered API).
async fn their_tls(
    tls: &ServerTls,
    stream: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio_rustls::TlsAcceptor::from(tls.rustls_config())
        .accept(stream)
        .await
}

/// tokio-tungstenite, as in its `examples/echo-server.rs`: `accept_async`, split, and
/// `forward` the (data-only) read half into the write half. `Forward` flushes the sink only
/// when the stream has nothing ready, so it batches replies too. Default `WebSocketConfig`
/// (64 MiB messages, 16 MiB frames) is enough for 1 MiB payloads. The example's
/// `expect`/logging on errors is dropped: the load generator resets connections at the end
/// of every measurement.
async fn tungstenite(addr: SocketAddr, tls: Option<ServerTls>) -> Result<(), BoxError> {
    let listener = TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    loop {
        let stream = accept(&listener).await;
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Ok(stream) = their_tls(&tls, stream).await {
                        tungstenite_echo(stream).await;
                    }
                }
                None => tungstenite_echo(stream).await,
            }
        });
    }
}

async fn tungstenite_echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    use futures_util::{future, StreamExt, TryStreamExt};

    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

/// fastwebsockets, as in its `examples/echo_server.rs`: hyper http1 connection with
/// upgrades, `upgrade::upgrade`, a `FragmentCollector` (whole messages), auto close and auto
/// pong on, `read_frame` + `write_frame`, the handler run `unconstrained` as the example does.
async fn fastwebsockets(addr: SocketAddr, tls: Option<ServerTls>) -> Result<(), BoxError> {
    let listener = TcpListener::bind(addr).await?;
    ready(listener.local_addr()?);
    loop {
        let stream = accept(&listener).await;
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Ok(stream) = their_tls(&tls, stream).await {
                        fws_serve(stream).await;
                    }
                }
                None => fws_serve(stream).await,
            }
        });
    }
}

async fn fws_serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;

    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = http1::Builder::new()
        .serve_connection(io, service_fn(fws_upgrade))
        .with_upgrades()
        .await;
}

async fn fws_upgrade(
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<
    hyper::Response<http_body_util::Empty<hyper::body::Bytes>>,
    fastwebsockets::WebSocketError,
> {
    let (response, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        let _ = tokio::task::unconstrained(fws_echo(fut)).await;
    });
    Ok(response)
}

async fn fws_echo(
    fut: fastwebsockets::upgrade::UpgradeFut,
) -> Result<(), fastwebsockets::WebSocketError> {
    use fastwebsockets::OpCode;

    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

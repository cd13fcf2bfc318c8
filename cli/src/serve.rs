//! `elo serve`: an echo or broadcast server with connection logging and graceful shutdown.

use std::time::Duration;

use clap::{Args, ValueEnum};
use enim_labore_occaecati::broker::{nats::NatsBroker, redis::RedisBroker};
use enim_labore_occaecati::config::Heartbeat;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::http2::Http2Config;
use enim_labore_occaecati::server::{
    BrokerStatus, ClientId, ClientInfo, Server, ServerBuilder, ServerHandle, ServerStream,
    SlowPolicy,
};
use enim_labore_occaecati::tls::ServerTls;
use enim_labore_occaecati::{Config, WebSocket};

use crate::util::{escape, parse_path, parse_seconds, say, CliError, CliResult};

/// How long shutdown waits for clients to answer the 1001 close frame.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the URL printed first tells which).
    #[arg(short, long, default_value_t = 8080)]
    port: u16,
    /// Accept upgrades on this path only (others get 400).
    #[arg(long, value_parser = parse_path)]
    path: Option<String>,
    /// echo: send each message back; broadcast: relay it to every other client connected on
    /// the same request path (the path is the topic; a chat room per path).
    #[arg(short, long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Join every `elo serve --mode broadcast` using this broker into one fan-out:
    /// redis://HOST:PORT or nats://HOST:PORT.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Bytes a client may have pending before the slow-client policy applies (default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    max_backlog: Option<usize>,
    /// What happens to a client over its backlog: close it (1008) or drop the message for it.
    #[arg(long, value_enum, default_value_t = Slow::Close)]
    slow_policy: Slow,
    /// Largest message accepted, in bytes (bigger ones are refused with close code 1009).
    #[arg(long, value_name = "BYTES")]
    max_payload: Option<usize>,
    /// Accept permessage-deflate (compression) when clients offer it.
    #[arg(long)]
    deflate: bool,
    /// Ping every client this often (seconds) and drop one whose pong hasn't come back as
    /// long after the ping: a peer that vanished without closing is found.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    heartbeat: Option<Duration>,
    /// Serve wss:// with this certificate chain and private key (PEM files).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    tls: Option<Vec<std::path::PathBuf>>,
    /// WebSockets over HTTP/2 (RFC 8441): with --tls, ALPN offers h2 and extended CONNECTs
    /// are accepted beside HTTP/1.1 upgrades.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    http2: OnOff,
    /// Also take cleartext HTTP/2 with prior knowledge (h2c) on a server without --tls.
    #[arg(long)]
    h2c: bool,
    /// The most WebSockets one HTTP/2 connection may carry at once (default 128).
    #[arg(long, value_name = "N")]
    http2_max_streams: Option<u32>,
    /// No line per connection (for many connections); the start, broker and stop lines stay.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Slow {
    Close,
    Drop,
}

/// The broker a `--broker` URL names.
fn broker(builder: ServerBuilder, url: &str) -> CliResult<ServerBuilder> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let broker = RedisBroker::new(url).map_err(|e| CliError(format!("--broker: {e}")))?;
        Ok(builder.broker(broker))
    } else if url.starts_with("nats://") {
        Ok(builder.broker(NatsBroker::new(url)))
    } else {
        Err(CliError(format!(
            "--broker {url:?}: expected redis://HOST:PORT or nats://HOST:PORT"
        )))
    }
}

pub async fn run(args: ServeArgs) -> CliResult<()> {
    // Installed before the URL is printed: a signal sent as soon as it appears is handled.
    let mut signals =
        Signals::new().map_err(|e| CliError(format!("cannot listen for signals: {e}")))?;
    let mut config = Config::default();
    if let Some(max) = args.max_payload {
        config.max_message_size = max;
        config.max_frame_size = max;
    }
    if let Some(every) = args.heartbeat {
        config.heartbeat = Some(Heartbeat::new(every, every));
    }
    let mut builder = Server::builder().config(config);
    if args.deflate {
        builder = builder.deflate(DeflateConfig::default());
    }
    if let Some(path) = &args.path {
        builder = builder.path(path.clone());
    }
    if let Some(bytes) = args.max_backlog {
        builder = builder.max_backlog(bytes);
    }
    builder = builder.slow_policy(match args.slow_policy {
        Slow::Close => SlowPolicy::Close,
        Slow::Drop => SlowPolicy::Drop,
    });
    if let Some(url) = &args.broker {
        builder = broker(builder, url)?;
    }
    if let Some(files) = &args.tls {
        let tls = ServerTls::from_pem_files(&files[0], &files[1])
            .map_err(|e| CliError(format!("--tls: {e}")))?;
        builder = builder.tls(tls);
    }
    let mut http2 = Http2Config::default();
    http2.enabled = args.http2 == OnOff::On;
    http2.cleartext = args.h2c;
    if let Some(max) = args.http2_max_streams {
        http2.max_streams = max;
    }
    builder = builder.http2(http2);
    let server = builder
        .bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| match e.kind() {
            enim_labore_occaecati::ErrorKind::InvalidInput => {
                CliError(format!("invalid options: {e}"))
            }
            _ => CliError(format!("cannot listen on {}:{}: {e}", args.host, args.port)),
        })?;
    let addr = server
        .local_addr()
        .map_err(|e| CliError(format!("cannot read the listening address: {e}")))?;
    // The first stdout line is the URL, so scripts and tests can use `--port 0`.
    say(format_args!(
        "listening on {}://{addr}{}",
        if args.tls.is_some() { "wss" } else { "ws" },
        args.path.as_deref().unwrap_or("/")
    ));
    eprintln!(
        "elo: {} server; Ctrl-C or SIGTERM closes every client with 1001 and exits",
        match args.mode {
            Mode::Echo => "echo",
            Mode::Broadcast => "broadcast",
        }
    );

    let handle = server.handle();
    if let (Some(url), Some(mut events)) = (&args.broker, handle.broker_events()) {
        let url = url.clone();
        tokio::spawn(async move {
            loop {
                match &*events.borrow_and_update() {
                    BrokerStatus::Up => eprintln!("elo: broker {url} up"),
                    BrokerStatus::Down { error } => {
                        eprintln!("elo: broker {url} down: {}", escape(error))
                    }
                    _ => {}
                }
                if events.changed().await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(give_back_memory(handle.clone()));
    let for_clients = handle.clone();
    let (mode, quiet) = (args.mode, args.quiet);
    let serving = tokio::spawn(
        server.serve(move |ws, client| handle_client(ws, client, mode, quiet, for_clients.clone())),
    );

    let signal = signals.recv().await;
    eprintln!(
        "elo: {signal}: closing {} client(s) with 1001",
        handle.client_count()
    );
    handle.shutdown(SHUTDOWN_GRACE).await;
    let _ = serving.await;
    eprintln!("elo: stopped");
    Ok(())
}

async fn handle_client(
    mut ws: WebSocket<ServerStream>,
    client: ClientInfo,
    mode: Mode,
    quiet: bool,
    handle: ServerHandle,
) {
    let peer = client
        .remote_addr()
        .map_or_else(|| "?".to_owned(), |a| a.to_string());
    let id = client.id();
    // The topic of a broadcast client: its request path.
    let topic = client.request().uri().path().to_owned();
    if let (Mode::Broadcast, Some(id)) = (mode, id) {
        handle.subscribe(id, &topic);
    }
    let log = |line: std::fmt::Arguments<'_>| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    // Over HTTP/2 the request is an extended CONNECT on a stream of a shared connection.
    let over = match ws.get_ref() {
        ServerStream::Http2(stream) => format!(
            " over HTTP/2 (extended CONNECT, stream {})",
            stream.stream_id()
        ),
        _ => String::new(),
    };
    log(format_args!(
        "[{peer}] connected {}{over}{}",
        escape(
            client
                .request()
                .uri()
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
        ),
        client
            .protocol()
            .map(|p| format!(" (subprotocol {})", escape(p)))
            .unwrap_or_default()
    ));
    // Its request and headers aren't needed while the connection lasts.
    drop(client);
    let outcome = match mode {
        Mode::Echo => echo(&mut ws).await,
        Mode::Broadcast => relay(&mut ws, id, &topic, &handle, &peer).await,
    };
    match outcome {
        Ok(()) => match ws.close_frame() {
            Some(frame) if frame.reason.is_empty() => {
                log(format_args!("[{peer}] closed {}", frame.code.as_u16()))
            }
            Some(frame) => log(format_args!(
                "[{peer}] closed {} {:?}",
                frame.code.as_u16(),
                escape(frame.reason.as_str())
            )),
            None => log(format_args!("[{peer}] closed 1005 (no status code)")),
        },
        Err(error) => log(format_args!(
            "[{peer}] closed with error: {}",
            escape(&error.to_string())
        )),
    }
}

/// Hands freed memory back to the system once most clients have gone. glibc's allocator keeps
/// what connections freed in its heaps (only the top of a heap shrinks by itself), so a
/// server's RSS would stay at its peak after a load: `malloc_trim` returns every free page.
async fn give_back_memory(handle: ServerHandle) {
    let mut peak = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let clients = handle.client_count();
        peak = peak.max(clients);
        if peak >= 64 && clients <= peak / 2 {
            // It walks every heap under its lock: not on a thread that serves connections.
            let _ = tokio::task::spawn_blocking(trim_heap).await;
            peak = clients;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers and may be called at any time; it only returns
    // free pages of the allocator's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Sends each message back until the connection ends.
async fn echo(ws: &mut WebSocket<ServerStream>) -> enim_labore_occaecati::Result<()> {
    while let Some(message) = ws.recv().await? {
        // `feed` queues; `recv` writes the whole batch before it waits again. A closing
        // connection refuses new messages: keep reading to finish the close handshake.
        if let Err(error) = ws.feed(message).await {
            if !error.is_closed() {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Publishes each message to the client's topic, for every other subscriber (on every server
/// joined through the broker), until the connection ends. What one read brought goes as one
/// batch.
async fn relay(
    ws: &mut WebSocket<ServerStream>,
    id: Option<ClientId>,
    topic: &str,
    handle: &ServerHandle,
    peer: &str,
) -> enim_labore_occaecati::Result<()> {
    let mut batch = Vec::new();
    while ws.recv_many(&mut batch, 64).await? > 0 {
        if let Err(error) = handle.publish_all(topic, id, batch.drain(..)) {
            eprintln!("[{peer}] not relayed: {}", escape(&error.to_string()));
        }
    }
    Ok(())
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next signal; answers its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

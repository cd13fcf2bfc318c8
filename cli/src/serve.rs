//! `elo serve`: an echo or broadcast server with connection logging and graceful shutdown.

use std::time::Duration;

use clap::{Args, ValueEnum};
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::{ClientInfo, Server, ServerHandle, ServerStream};
use enim_labore_occaecati::{Config, WebSocket};

use crate::util::{escape, parse_path, say, CliError, CliResult};

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
    /// echo: send each message back; broadcast: relay it to every other client (a chat).
    #[arg(short, long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Largest message accepted, in bytes (bigger ones are refused with close code 1009).
    #[arg(long, value_name = "BYTES")]
    max_payload: Option<usize>,
    /// Accept permessage-deflate (compression) when clients offer it.
    #[arg(long)]
    deflate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Broadcast,
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
    let mut builder = Server::builder().config(config);
    if args.deflate {
        builder = builder.deflate(DeflateConfig::default());
    }
    if let Some(path) = &args.path {
        builder = builder.path(path.clone());
    }
    let server = builder
        .bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| CliError(format!("cannot listen on {}:{}: {e}", args.host, args.port)))?;
    let addr = server
        .local_addr()
        .map_err(|e| CliError(format!("cannot read the listening address: {e}")))?;
    // The first stdout line is the URL, so scripts and tests can use `--port 0`.
    say(format_args!(
        "listening on ws://{addr}{}",
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
    let for_clients = handle.clone();
    let mode = args.mode;
    let serving = tokio::spawn(
        server.serve(move |ws, client| handle_client(ws, client, mode, for_clients.clone())),
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
    handle: ServerHandle,
) {
    let peer = client
        .remote_addr()
        .map_or_else(|| "?".to_owned(), |a| a.to_string());
    let id = client.id();
    eprintln!(
        "[{peer}] connected {}{}",
        escape(&client.request().uri().to_string()),
        client
            .protocol()
            .map(|p| format!(" (subprotocol {})", escape(p)))
            .unwrap_or_default()
    );
    let outcome = loop {
        match ws.recv().await {
            Ok(Some(message)) => match mode {
                Mode::Echo => {
                    // `feed` queues; `recv` writes the whole batch before it waits again.
                    // A closing connection refuses new messages: keep reading to finish the
                    // close handshake.
                    if let Err(error) = ws.feed(message).await {
                        if !error.is_closed() {
                            break Err(error);
                        }
                    }
                }
                Mode::Broadcast => {
                    if let Some(id) = id {
                        handle.broadcast_except(id, message);
                    }
                }
            },
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    match outcome {
        Ok(()) => match ws.close_frame() {
            Some(frame) if frame.reason.is_empty() => {
                eprintln!("[{peer}] closed {}", frame.code.as_u16())
            }
            Some(frame) => eprintln!(
                "[{peer}] closed {} {:?}",
                frame.code.as_u16(),
                escape(frame.reason.as_str())
            ),
            None => eprintln!("[{peer}] closed 1005 (no status code)"),
        },
        Err(error) => eprintln!("[{peer}] closed with error: {}", escape(&error.to_string())),
    }
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

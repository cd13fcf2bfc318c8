//! `elo`: the command line of enim-labore-occaecati.
//!
//! - `elo serve`: an echo or broadcast (chat) WebSocket server.
//! - `elo connect URL`: an interactive client (like `wscat`), or a scripted one with `-x`.
//! - `elo bench URL`: a load generator for any WebSocket echo server.
//!
//! Errors a user can cause (bad URLs, refused connections, failed handshakes) end with one line
//! on stderr, `elo: error: …`, and exit status 1; bad flags exit with status 2 (clap's usage
//! errors).

mod bench;
mod connect;
mod serve;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// WebSocket server, client and load generator built on enim-labore-occaecati.
#[derive(Debug, Parser)]
#[command(name = "elo", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an echo or broadcast (chat) server until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Connect to a server: send stdin lines, print what arrives (or script it with -x / -w).
    Connect(connect::ConnectArgs),
    /// Load-test a WebSocket echo server: messages/s, MB/s and round-trip latency.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("elo: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // Don't wait for the blocking stdin reader of `connect`: it only ends with a line or EOF.
    runtime.shutdown_background();
    util::flush_stdout();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("elo: error: {error}");
            ExitCode::FAILURE
        }
    }
}

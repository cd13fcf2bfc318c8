//! An echo server: every message comes back unchanged. The test subject of the Autobahn
//! fuzzingclient runs and of the benchmarks.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001 [--deflate] [--h2c]
//! ```
//!
//! `--deflate` enables permessage-deflate, accepting the client's offers. `--h2c` also takes
//! WebSockets over cleartext HTTP/2 (RFC 8441, prior knowledge) on the same port.

use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::http2::Http2Config;
use enim_labore_occaecati::server::Server;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let h2c = args.iter().any(|a| a == "--h2c");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let mut http2 = Http2Config::default();
    http2.cleartext = h2c;
    let mut builder = Server::builder().track_clients(false).http2(http2);
    if deflate {
        builder = builder.deflate(DeflateConfig::default());
    }
    let server = builder.bind(&addr).await?;
    eprintln!("echo server listening on ws://{}", server.local_addr()?);
    server
        .serve(|mut ws, _client| async move {
            // `feed` queues the echo; `recv` writes everything queued before it waits for more
            // input, so one read's worth of messages is answered with one write.
            while let Ok(Some(message)) = ws.recv().await {
                if ws.feed(message).await.is_err() {
                    break;
                }
            }
        })
        .await?;
    Ok(())
}

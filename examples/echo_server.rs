//! An echo server: every message comes back unchanged. The test subject of the Autobahn
//! fuzzingclient runs and of the benchmarks.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001
//! ```

use enim_labore_occaecati::server::Server;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let server = Server::builder().track_clients(false).bind(&addr).await?;
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

//! The byte-stream API (the seed's `createWebSocketStream`): a connection as
//! `AsyncRead + AsyncWrite`, piped from stdin and to stdout. Each chunk read from stdin is sent
//! as a binary message; every message received is written to stdout.
//!
//! ```text
//! cargo run -p elo -- serve &                  # an echo server on ws://127.0.0.1:8080/
//! echo hello | cargo run --example byte_stream -- ws://127.0.0.1:8080/
//! ```

use enim_labore_occaecati::connect;
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let (ws, _) = connect(&url).await?;
    let (mut from_server, mut to_server) = tokio::io::split(ws.into_byte_stream());
    let upload = tokio::spawn(async move {
        tokio::io::copy(&mut tokio::io::stdin(), &mut to_server).await?;
        // End of input: close the connection normally; the server's answer ends the download.
        to_server.shutdown().await
    });
    tokio::io::copy(&mut from_server, &mut tokio::io::stdout()).await?;
    upload.await??;
    Ok(())
}

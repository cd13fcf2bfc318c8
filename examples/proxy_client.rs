//! Connecting through a proxy (the seed README's FAQ "How to connect via a proxy?"): an HTTP
//! proxy (`CONNECT`) or a SOCKS5 proxy, given as a URL, or taken from `HTTPS_PROXY` /
//! `HTTP_PROXY` / `ALL_PROXY` (honouring `NO_PROXY`) when none is given. For `wss://` the TLS
//! handshake runs inside the tunnel.
//!
//! ```text
//! cargo run --example proxy_client -- ws://127.0.0.1:8080/ http://user:pass@127.0.0.1:3128
//! cargo run --example proxy_client -- wss://example.com/ socks5h://127.0.0.1:1080
//! HTTPS_PROXY=http://127.0.0.1:3128 cargo run --example proxy_client -- wss://example.com/
//! ```

use enim_labore_occaecati::client::Proxy;
use enim_labore_occaecati::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let client = match args.next() {
        Some(proxy) => ClientBuilder::new().proxy(Proxy::parse(&proxy)?),
        None => ClientBuilder::new().proxy_from_env(),
    };
    let (mut ws, _response) = client.connect(&url).await?;
    ws.send("through the proxy").await?;
    if let Some(message) = ws.recv().await? {
        println!("received: {}", message.as_text().unwrap_or("(binary)"));
    }
    ws.close(None).await?;
    Ok(())
}

//! A simple server: greets each client with "something" and prints every message it receives.
//!
//! ```text
//! cargo run --example simple_server -- 127.0.0.1:8080     # port 0 picks a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/
//! ```

use enim_labore_occaecati::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let server = Server::bind(&addr).await?;
    println!("listening on ws://{}/", server.local_addr()?);
    server
        .serve(|mut ws, _client| async move {
            if ws.send("something").await.is_err() {
                return;
            }
            // An error (a protocol violation, a dropped connection) ends the loop like a close.
            while let Ok(Some(message)) = ws.recv().await {
                if let Some(text) = message.as_text() {
                    println!("received: {text}");
                }
            }
        })
        .await?;
    Ok(())
}

//! Sending and receiving text: connect, send a text message, print what comes back.
//!
//! ```text
//! cargo run --example simple_server            # in one terminal (or `elo serve`)
//! cargo run --example text_client -- ws://127.0.0.1:8080/
//! ```

use enim_labore_occaecati::{connect, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let (mut ws, _response) = connect(&url).await?;
    ws.send("something").await?;
    // `recv` yields text and binary messages; `None` means the server closed the connection.
    if let Some(message) = ws.recv().await? {
        match message {
            Message::Text(text) => println!("received: {text}"),
            other => println!("received: {other:?}"),
        }
    }
    ws.close(None).await?;
    Ok(())
}

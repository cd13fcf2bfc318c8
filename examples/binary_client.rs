//! Sending binary data: an array of `f32` as little-endian bytes (the seed sends a
//! `Float32Array`). Against an echo server, the reply is decoded back into numbers.
//!
//! ```text
//! cargo run -p elo -- serve                    # in one terminal: an echo server
//! cargo run --example binary_client -- ws://127.0.0.1:8080/
//! ```

use enim_labore_occaecati::{connect, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let (mut ws, _) = connect(&url).await?;

    let array: Vec<f32> = (0..5).map(|i| i as f32 / 2.0).collect();
    let bytes: Vec<u8> = array.iter().flat_map(|x| x.to_le_bytes()).collect();
    ws.send(Message::binary(bytes)).await?;

    if let Some(Message::Binary(data)) = ws.recv().await? {
        let echoed: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        println!("received {} bytes: {echoed:?}", data.len());
    }
    ws.close(None).await?;
    Ok(())
}

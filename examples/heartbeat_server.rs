//! Detecting and closing broken connections, server side: ping every client each interval and
//! terminate a client that has not answered the previous ping by the next one (a pulled cord
//! leaves both ends unaware; only traffic tells). Pongs are seen with
//! `Config::receive_control_frames`. Data messages are echoed.
//!
//! ```text
//! cargo run --example heartbeat_server -- 127.0.0.1:8080 30000   # interval in ms; port 0 ok
//! ```

use std::time::Duration;

use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{Config, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let interval = Duration::from_millis(args.next().map_or(Ok(30_000), |ms| ms.parse())?);

    let mut config = Config::default();
    config.receive_control_frames = true;
    let server = Server::builder().config(config).bind(&addr).await?;
    println!("listening on ws://{}/", server.local_addr()?);
    server
        .serve(move |mut ws, client| async move {
            let peer = client
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await; // the first tick is immediate
            let mut alive = true;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if !alive {
                            println!("terminating {peer}: no pong since the last ping");
                            // No close handshake: the peer is presumed gone.
                            ws.terminate().await;
                            return;
                        }
                        alive = false;
                        if ws.ping("").await.is_err() {
                            return;
                        }
                    }
                    // `recv` is cancel-safe, so losing the race to the ticker loses nothing.
                    message = ws.recv() => match message {
                        Ok(Some(Message::Pong(_))) => alive = true,
                        Ok(Some(message)) if message.is_data() => {
                            if ws.send(message).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => {
                            println!("{peer} disconnected");
                            return;
                        }
                    },
                }
            }
        })
        .await?;
    Ok(())
}

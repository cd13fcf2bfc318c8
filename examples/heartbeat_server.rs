//! Detecting and closing broken connections, server side (the seed README's FAQ recipe, built
//! in): with `Config::heartbeat`, every client is pinged each interval and dropped when a ping
//! goes unanswered for the timeout (a pulled cord leaves both ends unaware; only traffic
//! tells). `recv` then fails with a timeout. Data messages are echoed.
//!
//! ```text
//! cargo run --example heartbeat_server -- 127.0.0.1:8080 30000   # interval in ms; port 0 ok
//! ```

use std::time::Duration;

use enim_labore_occaecati::config::Heartbeat;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let interval = Duration::from_millis(args.next().map_or(Ok(30_000), |ms| ms.parse())?);

    let mut config = Config::default();
    // A ping each interval; a client that hasn't answered by the next one is dropped.
    config.heartbeat = Some(Heartbeat::new(interval, interval));
    let server = Server::builder().config(config).bind(&addr).await?;
    println!("listening on ws://{}/", server.local_addr()?);
    server
        .serve(move |mut ws, client| async move {
            let peer = client
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            loop {
                match ws.recv().await {
                    Ok(Some(message)) => {
                        if ws.send(message).await.is_err() {
                            return;
                        }
                    }
                    Err(error) if error.is_timeout() => {
                        println!("terminating {peer}: no pong since the last ping");
                        return;
                    }
                    Ok(None) | Err(_) => {
                        println!("{peer} disconnected");
                        return;
                    }
                }
            }
        })
        .await?;
    Ok(())
}

//! Detecting and closing broken connections, client side: the server pings every interval,
//! so a client that has seen no ping for the interval plus a conservative latency allowance
//! assumes the link is dead and terminates (no close handshake: that would wait for the close
//! timeout). Pings are answered automatically and, with `Config::receive_control_frames`, also
//! handed to the application.
//!
//! ```text
//! cargo run --example heartbeat_server -- 127.0.0.1:8080 30000
//! cargo run --example heartbeat_client -- ws://127.0.0.1:8080/ 30000   # the server's interval
//! ```

use std::time::Duration;

use enim_labore_occaecati::{ClientBuilder, Config, Message};
use tokio::time::{timeout_at, Instant};

/// The allowance for latency on top of the server's ping interval.
const LATENCY: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let interval = Duration::from_millis(args.next().map_or(Ok(30_000), |ms| ms.parse())?);

    let mut config = Config::default();
    config.receive_control_frames = true;
    let (mut ws, _) = ClientBuilder::new().config(config).connect(&url).await?;
    println!("connected");
    let mut deadline = Instant::now() + interval + LATENCY;
    loop {
        match timeout_at(deadline, ws.recv()).await {
            Err(_) => {
                println!("no ping for {:?}: terminating", interval + LATENCY);
                ws.terminate().await;
                return Ok(());
            }
            Ok(Ok(Some(Message::Ping(_)))) => {
                println!("ping from the server");
                deadline = Instant::now() + interval + LATENCY;
            }
            Ok(Ok(Some(message))) => println!("received: {message:?}"),
            Ok(Ok(None)) => {
                println!("disconnected");
                return Ok(());
            }
            Ok(Err(error)) => return Err(error.into()),
        }
    }
}

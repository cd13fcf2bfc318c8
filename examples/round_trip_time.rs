//! Round-trip time: ping the server every half second and time the pong. With
//! `Config::receive_control_frames`, `recv` hands out pongs (and pings) besides messages.
//!
//! ```text
//! cargo run -p elo -- serve                    # any server: pongs are automatic
//! cargo run --example round_trip_time -- ws://127.0.0.1:8080/ 5   # 5 pings, 0 = forever
//! ```

use std::time::{Duration, Instant};

use enim_labore_occaecati::{ClientBuilder, Config, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/".to_owned());
    let count: u64 = args.next().map_or(Ok(0), |n| n.parse())?;

    let mut config = Config::default();
    config.receive_control_frames = true;
    let (mut ws, _) = ClientBuilder::new().config(config).connect(&url).await?;
    println!("connected");

    let start = Instant::now();
    let mut sent = 0u64;
    while count == 0 || sent < count {
        // The ping carries its send time, so the pong tells which ping it answers.
        let nanos = start.elapsed().as_nanos() as u64;
        ws.ping(nanos.to_be_bytes().to_vec()).await?;
        sent += 1;
        loop {
            match ws.recv().await? {
                Some(Message::Pong(payload)) => {
                    let Ok(bytes) = <[u8; 8]>::try_from(&payload[..]) else {
                        continue; // an unsolicited pong
                    };
                    let rtt = start.elapsed() - Duration::from_nanos(u64::from_be_bytes(bytes));
                    println!("Round-trip time: {:.3} ms", rtt.as_secs_f64() * 1e3);
                    break;
                }
                Some(_) => continue,
                None => {
                    println!("disconnected");
                    return Ok(());
                }
            }
        }
        if count == 0 || sent < count {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    ws.close(None).await?;
    println!("disconnected");
    Ok(())
}

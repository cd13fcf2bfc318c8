//! The client's IP address: the peer address of the TCP connection, and the first address of
//! `X-Forwarded-For` when a reverse proxy (NGINX and the like) stands in front of the server.
//! Trust that header only when such a proxy is there: any client can send it.
//!
//! ```text
//! cargo run --example client_ip -- 127.0.0.1:8080       # port 0 picks a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/ -H 'X-Forwarded-For: 203.0.113.7, 10.0.0.1'
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
        .serve(|mut ws, client| async move {
            let ip = client
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string());
            let forwarded = client.forwarded_for().unwrap_or("nobody");
            let line = format!("your address: {ip}, forwarded for: {forwarded}");
            println!("{line}");
            if ws.send(line).await.is_err() {
                return;
            }
            while let Ok(Some(_)) = ws.recv().await {}
        })
        .await?;
    Ok(())
}

//! Server broadcast: every message a client sends goes to all connected clients, the sender
//! included (`all`, the default), or to every client but the sender (`others`). The payload is
//! shared between the clients, not copied.
//!
//! ```text
//! cargo run --example broadcast -- 127.0.0.1:8080 all      # or `others`; port 0 picks one
//! cargo run -p elo -- connect ws://127.0.0.1:8080/         # in two terminals
//! ```

use enim_labore_occaecati::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let include_sender = match args.next().as_deref() {
        None | Some("all") => true,
        Some("others") => false,
        Some(other) => return Err(format!("expected `all` or `others`, got {other:?}").into()),
    };
    let server = Server::bind(&addr).await?;
    println!("listening on ws://{}/", server.local_addr()?);
    let handle = server.handle();
    server
        .serve(move |mut ws, client| {
            let handle = handle.clone();
            async move {
                // Clients are tracked by default, so each one has an id.
                let Some(me) = client.id() else { return };
                while let Ok(Some(message)) = ws.recv().await {
                    if include_sender {
                        handle.broadcast(message);
                    } else {
                        handle.broadcast_except(me, message);
                    }
                }
            }
        })
        .await?;
    Ok(())
}

//! Client authentication during the upgrade: the `verify` hook checks a bearer token before the
//! handshake completes, refuses with `401` (the client sees the status and body), or accepts and
//! attaches the user, which the connection handler reads with `ClientInfo::data`.
//!
//! ```text
//! cargo run --example client_auth -- 127.0.0.1:8080      # port 0 picks a free port
//! cargo run -p elo -- connect ws://127.0.0.1:8080/ -H 'Authorization: Bearer alice-token'
//! cargo run -p elo -- connect ws://127.0.0.1:8080/       # refused: HTTP 401
//! ```

use enim_labore_occaecati::server::{ClientInfo, Server, Verdict};

/// The authenticated user handed from the hook to the handler.
#[derive(Debug, Clone)]
struct User {
    name: String,
}

/// The bearer token of the upgrade request, if any.
fn bearer_token(client: &ClientInfo) -> Option<String> {
    let value = client.headers().get("authorization")?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.to_owned())
}

/// Looks the token up. A real server would ask its session store or check a signature; the
/// hook is async, so it may.
async fn authenticate(token: Option<String>) -> Option<User> {
    let name = match token.as_deref()? {
        "alice-token" => "alice",
        "bob-token" => "bob",
        _ => return None,
    };
    Some(User {
        name: name.to_owned(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let server = Server::builder()
        .verify(|client| {
            // The hook's future must own what it uses: take the token out of the request first.
            let token = bearer_token(client);
            async move {
                match authenticate(token).await {
                    Some(user) => Verdict::accept().with_data(user),
                    None => Verdict::reject(401)
                        .with_header("WWW-Authenticate", "Bearer")
                        .with_body("a valid bearer token is required\n"),
                }
            }
        })
        .bind(&addr)
        .await?;
    println!("listening on ws://{}/", server.local_addr()?);
    server
        .serve(|mut ws, client| async move {
            let Some(user) = client.data::<User>().cloned() else {
                return;
            };
            if ws.send(format!("hello, {}", user.name)).await.is_err() {
                return;
            }
            while let Ok(Some(message)) = ws.recv().await {
                if let Some(text) = message.as_text() {
                    println!("Received message {text} from user {}", user.name);
                }
            }
        })
        .await?;
    Ok(())
}

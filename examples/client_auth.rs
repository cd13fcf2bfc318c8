//! Client authentication during the upgrade: the `verify` hook checks a bearer token before the
//! handshake completes, refuses with `401` (the client sees the status and body), or accepts and
//! attaches the user, which the connection handler reads with `ClientInfo::data`.
//!
//! The same hook runs on the library's own server or, with `hyper` as second argument, on a
//! hyper server through `integrations::hyper` (the seed README's example uses Node's HTTP
//! server's `upgrade` event the same way).
//!
//! ```text
//! cargo run --example client_auth --features hyper -- 127.0.0.1:8080   # port 0: a free port
//! cargo run --example client_auth --features hyper -- 127.0.0.1:8080 hyper
//! cargo run -p elo -- connect ws://127.0.0.1:8080/ -H 'Authorization: Bearer alice-token'
//! cargo run -p elo -- connect ws://127.0.0.1:8080/       # refused: HTTP 401
//! ```

#[path = "support/hyper_serve.rs"]
mod hyper_serve;

use enim_labore_occaecati::integrations::hyper::upgrade;
use enim_labore_occaecati::server::{ClientInfo, Server, ServerBuilder, Verdict};
use enim_labore_occaecati::WebSocket;
use tokio::io::{AsyncRead, AsyncWrite};

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

/// Upgrade options with the authentication hook.
fn options() -> ServerBuilder {
    Server::builder().verify(|client| {
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
}

/// A connection of an authenticated user.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>, client: ClientInfo) {
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    if args.get(1).map(String::as_str) == Some("hyper") {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on ws://{}/", listener.local_addr()?);
        let options = std::sync::Arc::new(options());
        hyper_serve::serve(listener, None, move |request, remote| {
            let options = options.clone();
            async move {
                let (response, pending) = upgrade(&options, request, Some(remote)).await;
                if let Some(pending) = pending {
                    tokio::spawn(async move {
                        if let Ok((ws, client)) = pending.finish().await {
                            handle(ws, client).await;
                        }
                    });
                }
                Ok(response)
            }
        })
        .await
    }
    let server = options().bind(&addr).await?;
    println!("listening on ws://{}/", server.local_addr()?);
    server.serve(handle).await?;
    Ok(())
}

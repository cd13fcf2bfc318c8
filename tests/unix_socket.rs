//! Unix domain sockets: a server listening on a path, clients on `ws+unix:` URLs (ours and the
//! seed library's).

use crate::common;

use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{connect, ErrorKind, Message};

fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("elo-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn unix_echo(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let server = Server::builder().bind_unix(path).unwrap();
    assert_eq!(server.unix_path(), Some(path));
    assert_eq!(
        server.local_addr().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    tokio::spawn(async move {
        let _ = server
            .serve(|mut ws, client| async move {
                // The request path and query travel as on TCP; there is no remote address.
                let greeting = format!(
                    "{} {:?} {:?}",
                    client.path(),
                    client.query(),
                    client.remote_addr()
                );
                if ws.send(greeting).await.is_err() {
                    return;
                }
                while let Ok(Some(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            })
            .await;
    })
}

#[tokio::test]
async fn server_and_client_on_a_unix_socket() {
    let path = socket_path("echo.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = unix_echo(&path).await;

    let url = format!("ws+unix:{}:/chat?room=7", path.display());
    let (mut ws, response) = connect(&url).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("/chat Some(\"room=7\") None")
    );
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::Binary(vec![1u8, 2, 3].into())
    );
    ws.close(None).await.unwrap();

    // Without a request path, `/` is requested.
    let (mut ws, _) = connect(&format!("ws+unix:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("/ None None")
    );
    ws.close(None).await.unwrap();

    // The socket file goes when the server does.
    server.abort();
    let _ = server.await;
    assert!(!path.exists());
    let error = connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
}

#[tokio::test]
async fn bind_unix_never_replaces_a_file_or_a_live_server() {
    let path = socket_path("regular-file");
    std::fs::write(&path, b"not a socket").unwrap();
    assert!(Server::builder().bind_unix(&path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    let live = socket_path("live.sock");
    let _server = Server::builder().bind_unix(&live).unwrap();
    assert!(Server::builder().bind_unix(&live).is_err());
}

#[tokio::test]
async fn node_client_on_our_unix_socket() {
    if !common::node::available("node_client_on_our_unix_socket") {
        return;
    }
    let path = socket_path("node.sock");
    let server = Server::builder().bind_unix(&path).unwrap();
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    let url = format!("ws+unix:{}:/", path.display());
    common::node::client_passes(&url, &["--echo-only"]).await;
}

//! Options that can't work are refused where they are used (server start, the upgrade
//! decision, client connect, `try_from_raw`) with a clear error, instead of a hang or a flood.

use crate::common;

use std::time::Duration;

use common::read_head;
use enim_labore_occaecati::config::Heartbeat;
use enim_labore_occaecati::proto::Role;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, ErrorKind, HandshakeLimits, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn zero_heartbeat() -> Config {
    let mut config = Config::default();
    // A zero interval pinged as fast as the peer answered before it was refused.
    config.heartbeat = Some(Heartbeat::new(Duration::ZERO, Duration::from_secs(1)));
    config
}

#[tokio::test]
async fn server_start_refuses_a_config_that_cannot_work() {
    let error = Server::builder()
        .config(zero_heartbeat())
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("heartbeat interval"), "{error}");

    let mut limits = HandshakeLimits::default();
    limits.max_headers = 0;
    let error = Server::builder()
        .handshake_limits(limits)
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("max_headers"), "{error}");
}

/// Options used without `bind` (as `accept`, hyper and axum use them) are checked at each
/// upgrade: the client gets 500, the application the reason. Bad limits are answered before
/// the head is read (they would fail its reading first).
#[tokio::test]
async fn an_upgrade_with_bad_options_answers_500() {
    let mut config = Config::default();
    config.max_fragments = 0;
    let mut limits = HandshakeLimits::default();
    limits.max_headers = 0;
    for (options, reason) in [
        (Server::builder().config(config), "max_fragments"),
        (Server::builder().handshake_limits(limits), "max_headers"),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            options.accept(tcp, None).await.map(|_| ()).unwrap_err()
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(common::UPGRADE_REQUEST).await.unwrap();
        let head = read_head(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 500"), "{reason}: {head}");
        let error = server.await.unwrap();
        assert!(error.to_string().contains(reason), "{error}");
    }
}

/// A server made from a listener can't refuse its options: `serve` does, at once.
#[tokio::test]
async fn serve_refuses_options_from_listener_that_cannot_work() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let server = Server::builder()
        .config(zero_heartbeat())
        .from_listener(listener);
    let error = server.serve(|_, _| async {}).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}

#[tokio::test]
async fn client_connect_refuses_a_config_that_cannot_work() {
    // A live listener, so only the check can fail the connect.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let mut config = Config::default();
    config.max_message_size = 0;
    let mut limits = HandshakeLimits::default();
    limits.timeout = Duration::ZERO;
    for (client, reason) in [
        (ClientBuilder::new().config(config), "max_message_size"),
        (ClientBuilder::new().handshake_limits(limits), "timeout"),
    ] {
        let error = client.connect(&url).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().contains(reason), "{error}");
    }
}

#[tokio::test]
async fn try_from_raw_refuses_and_from_raw_panics_with_the_reason() {
    let (a, _b) = tokio::io::duplex(1024);
    let error = WebSocket::try_from_raw(a, Role::Client, zero_heartbeat()).unwrap_err();
    assert!(error.to_string().contains("heartbeat interval"), "{error}");
    let (a, _b) = tokio::io::duplex(1024);
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        WebSocket::from_raw(a, Role::Server, zero_heartbeat());
    }))
    .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("heartbeat interval"), "{text}");
}

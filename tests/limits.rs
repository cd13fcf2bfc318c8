//! Untrusted input over real sockets: every violation ends with the RFC's close code or HTTP
//! status, quickly, without allocating what the peer declared.

use crate::common;

use std::time::{Duration, Instant};

use common::{echo_server, masked_frame, raw_upgrade, read_close_code};
use enim_labore_occaecati::server::{Server, Verdict};
use enim_labore_occaecati::{ClientBuilder, Config, ErrorKind, HandshakeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn declared_2_pow_40_frame_is_closed_with_1009() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = raw_upgrade(addr).await;
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.unwrap();
    tcp.write_all(&[0u8; 1000]).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1009));
}

#[tokio::test]
async fn oversize_message_is_closed_with_1009() {
    let mut config = Config::default();
    config.max_message_size = 1024;
    let (addr, _) = echo_server(Server::builder().config(config)).await;
    let mut tcp = raw_upgrade(addr).await;
    // Two fragments of 600 bytes: each fits, the message doesn't.
    tcp.write_all(&masked_frame(0x02, &[0; 600])).await.unwrap();
    tcp.write_all(&masked_frame(0x80, &[0; 600])).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1009));
}

#[tokio::test]
async fn invalid_utf8_is_closed_with_1007() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = raw_upgrade(addr).await;
    tcp.write_all(&masked_frame(0x81, &[b'a', 0xc0, 0xaf]))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1007));
}

#[tokio::test]
async fn unmasked_client_frame_is_closed_with_1002() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = raw_upgrade(addr).await;
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1002));
}

/// On the paused clock, through the server's accept path: a head that never ends is dropped
/// exactly at the handshake timeout, without an answer.
#[tokio::test(start_paused = true)]
async fn unfinished_handshake_is_dropped_after_the_timeout() {
    let mut limits = HandshakeLimits::default();
    limits.timeout = Duration::from_secs(7);
    let options = Server::builder().handshake_limits(limits);
    let (mut client, server_end) = tokio::io::duplex(4096);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = options.accept(server_end, None).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert!(answer.is_empty(), "dropped without an answer: {answer:?}");
}

/// Sends `head` and returns the status line, or `None` if the server reset the connection
/// before we could read it (allowed: it stopped reading an oversize head).
pub(crate) async fn status_for(addr: std::net::SocketAddr, head: Vec<u8>) -> Option<String> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let writer = async {
        let _ = tcp.write_all(&head).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn megabyte_header_line_gets_431_quickly() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 1 << 20));
    head.extend_from_slice(b"\r\n\r\n");
    let start = Instant::now();
    let status = status_for(addr, head).await;
    if let Some(status) = status {
        assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_requests_get_their_status() {
    let (addr, _) = echo_server(Server::builder().path("/ws")).await;
    let good = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let cases = [
        ("GET /ws", "POST /ws", "405"),
        ("GET /ws", "GET /other", "400"),
        ("Version: 13", "Version: 7", "426"),
        ("Upgrade: websocket", "Upgrade: nope", "400"),
    ];
    for (from, to, status) in cases {
        let line = status_for(addr, good.replace(from, to).into_bytes())
            .await
            .unwrap();
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "{to}: {line}"
        );
    }
}

#[tokio::test]
async fn auth_hook_rejects_with_401_and_a_body_the_client_reads() {
    let server = Server::builder()
        .verify(|client| {
            let token = client
                .headers()
                .get("authorization")
                .map(|v| v.as_bytes().to_vec());
            async move {
                if token.as_deref() == Some(b"Bearer good") {
                    Verdict::accept().with_data(String::from("alice"))
                } else {
                    Verdict::reject(401)
                        .with_header("www-authenticate", "Bearer")
                        .with_body("who are you?")
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, client| async move {
        let user = client.data::<String>().cloned().unwrap_or_default();
        let _ = ws.send(format!("hello {user}")).await;
        while let Ok(Some(_)) = ws.recv().await {}
    }));

    let error = ClientBuilder::new().connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    let response = error.http_response().expect("the response");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(&response.body()[..], b"who are you?");

    let (mut ws, _) = ClientBuilder::new()
        .header("Authorization", "Bearer good")
        .connect(&url)
        .await
        .unwrap();
    let greeting = ws.recv().await.unwrap().unwrap();
    assert_eq!(greeting.as_text(), Some("hello alice"));
    ws.close(None).await.unwrap();
}

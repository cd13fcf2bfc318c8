//! The server's routing and failure hooks (the seed's `shouldHandle` and `wsClientError`):
//! `ServerBuilder::should_handle` / `handles` and `ServerBuilder::on_handshake_error`, against
//! our client and raw sockets over loopback.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{echo_server, read_head};
use enim_labore_occaecati::server::{Server, Verdict};
use enim_labore_occaecati::{connect, ErrorKind, HandshakeError, HandshakeLimits, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn should_handle_decides_which_upgrades_this_server_takes() {
    let builder = Server::builder().should_handle(|request| {
        request.uri().path().starts_with("/live/") && request.headers().contains_key("origin")
    });
    let get = |path: &str, origin: bool| {
        let request = http::Request::get(path);
        let request = if origin {
            request.header("Origin", "https://a.example")
        } else {
            request
        };
        request.body(()).unwrap()
    };
    // A router beside the server asks first.
    assert!(builder.handles(&get("/live/scores", true)));
    assert!(!builder.handles(&get("/live/scores", false)));
    assert!(!builder.handles(&get("/static/app.js", true)));

    let (addr, _handle) = echo_server(builder).await;
    let (mut ws, _) = enim_labore_occaecati::ClientBuilder::new()
        .origin("https://a.example")
        .connect(&format!("ws://{addr}/live/scores"))
        .await
        .unwrap();
    ws.send("goal").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("goal")));
    ws.close(None).await.unwrap();

    // Declined: 400, as the seed answers.
    let error = connect(&format!("ws://{addr}/live/scores"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    assert_eq!(error.http_response().unwrap().status(), 400);
}

#[tokio::test]
async fn on_handshake_error_sees_each_failure_and_may_answer_its_own_response() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut limits = HandshakeLimits::default();
    limits.max_head_size = 1024;
    let builder = Server::builder()
        .handshake_limits(limits)
        .verify(|info| {
            let refuse = info.path() == "/private";
            async move {
                if refuse {
                    Verdict::reject(401)
                } else {
                    Verdict::accept()
                }
            }
        })
        .on_handshake_error(move |failure| {
            let path = failure.request.map(|r| r.uri().path().to_owned());
            log.lock().unwrap().push((failure.error.clone(), path));
            // Our own answer for a request without a key; the default for the rest.
            matches!(failure.error, HandshakeError::InvalidKey).then(|| {
                http::Response::builder()
                    .status(418)
                    .header("X-Why", "no key")
                    .body(bytes::Bytes::from_static(b"a key, please"))
                    .unwrap()
            })
        });
    let (addr, _handle) = echo_server(builder).await;

    // No Sec-WebSocket-Key: the hook's response.
    let (head, body) = exchange(
        addr,
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 418"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-why: no key"),
        "{head}"
    );
    assert_eq!(body, "a key, please");

    // A head over the limit: seen without a request, answered with the default 431.
    let mut big = b"GET /chat HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2000));
    big.extend_from_slice(b"\r\n\r\n");
    let (head, _) = exchange(addr, &big).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // A refusal by the verify hook is the verify hook's: not reported here.
    let error = connect(&format!("ws://{addr}/private")).await.unwrap_err();
    assert_eq!(error.http_response().unwrap().status(), 401);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (HandshakeError::InvalidKey, Some("/chat".to_owned())),
            (HandshakeError::HeadTooLarge, None),
        ]
    );
}

/// Sends `request` on a new connection and reads the response head and the body up to EOF.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let head = read_head(&mut tcp).await;
    let mut body = Vec::new();
    let _ = tcp.read_to_end(&mut body).await;
    (head, String::from_utf8_lossy(&body).into_owned())
}

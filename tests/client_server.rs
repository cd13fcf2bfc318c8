//! The client against the server over loopback: messages, subprotocols, headers, versions,
//! close handshakes, broadcast, shutdown, split halves, backpressure and redirects.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::echo_server;
use enim_labore_occaecati::server::{Server, Verdict};
use enim_labore_occaecati::{
    connect, ClientBuilder, CloseCode, CloseFrame, Config, DataKind, ErrorKind, Message, State,
    WebSocket,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WebSocket<tokio::net::TcpStream>>();
    check::<enim_labore_occaecati::Error>();
    check::<Message>();
    check::<enim_labore_occaecati::server::ServerHandle>();
    check::<enim_labore_occaecati::io::WsWriter<tokio::net::TcpStream>>();
}

#[tokio::test]
async fn text_binary_fragments_and_clean_close() {
    let (addr, _) = echo_server(Server::builder()).await;
    let (mut ws, response) = connect(&format!("ws://{addr}/path?x=1")).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(ws.state(), State::Open);

    ws.send("héllo ✓").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("héllo ✓")));
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        ws.send(payload.clone()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::binary(payload)),
            "{len}"
        );
    }
    ws.send_fragment(DataKind::Text, "frag", false)
        .await
        .unwrap();
    ws.ping("in-between").await.unwrap();
    ws.send_fragment(DataKind::Text, "mented", true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("fragmented")));

    ws.close(Some(CloseFrame::new(4000u16, "done")))
        .await
        .unwrap();
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::new(4000)));
    assert!(ws.send("late").await.unwrap_err().is_closed());
}

#[tokio::test]
async fn control_frames_on_request_and_pong_payload() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut config = Config::default();
    config.receive_control_frames = true;
    let (mut ws, _) = ClientBuilder::new()
        .config(config)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    ws.ping(Bytes::from_static(b"rtt")).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Some(Message::Pong(Bytes::from_static(b"rtt")))
    );
    assert!(ws.ping(vec![0u8; 126]).await.is_err());
}

#[tokio::test]
async fn server_close_code_and_reason_reach_the_client() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        let _ = ws.close(Some(CloseFrame::new(4321u16, "bye now"))).await;
    }));
    let mut config = Config::default();
    config.receive_control_frames = true;
    let (mut ws, _) = ClientBuilder::new()
        .config(config)
        .connect(&url)
        .await
        .unwrap();
    let message = ws.recv().await.unwrap();
    assert_eq!(
        message,
        Some(Message::Close(Some(CloseFrame::new(4321u16, "bye now"))))
    );
    assert_eq!(ws.recv().await.unwrap(), None);
}

#[tokio::test]
async fn subprotocols_headers_origin_and_versions() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in_hook = seen.clone();
    let server = Server::builder()
        .protocols(["v2", "v1"])
        .header("x-server", "elo")
        .verify(move |client| {
            seen_in_hook.lock().unwrap().push((
                client.version(),
                client.origin().map(str::to_owned),
                client.headers().get("x-custom").cloned(),
            ));
            async { Verdict::accept().with_header("x-verified", "yes") }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, client| async move {
        let protocol = client.protocol().unwrap_or("none").to_owned();
        let _ = ws.send(protocol).await;
        while let Ok(Some(_)) = ws.recv().await {}
    }));

    for version in [13u8, 8] {
        let (mut ws, response) = ClientBuilder::new()
            .protocol("v1")
            .protocol("v2")
            .origin("http://example.test")
            .header("X-Custom", "42")
            .protocol_version(version)
            .connect(&url)
            .await
            .unwrap();
        assert_eq!(ws.protocol(), Some("v1"));
        assert_eq!(response.headers()["x-server"], "elo");
        assert_eq!(response.headers()["x-verified"], "yes");
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("v1"));
        ws.close(None).await.unwrap();
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, 13);
        assert_eq!(seen[1].0, 8);
        for (_, origin, custom) in seen.iter() {
            assert_eq!(origin.as_deref(), Some("http://example.test"));
            assert_eq!(custom.as_ref().unwrap(), "42");
        }
    }
    let error = ClientBuilder::new()
        .protocol_version(7)
        .connect(&url)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn broadcast_to_all_and_all_but_one_then_shutdown() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let handle = server.handle();
    let for_handler = handle.clone();
    // Each handler says it runs: its client is registered by then.
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let server_task = tokio::spawn(server.serve(move |mut ws, client| {
        let handle = for_handler.clone();
        let _ = started_tx.send(());
        async move {
            while let Ok(Some(message)) = ws.recv().await {
                if let Some(text) = message.as_text() {
                    let text = format!("{}: {text}", client.id().unwrap());
                    handle.broadcast_except(client.id().unwrap(), text);
                }
            }
        }
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&url).await.unwrap().0);
    }
    for _ in 0..3 {
        started.recv().await.unwrap();
    }
    assert_eq!(handle.client_count(), 3);

    let report = handle.broadcast("to everyone");
    assert_eq!((report.queued, report.dropped), (3, 0));
    for ws in clients.iter_mut() {
        assert_eq!(
            ws.recv().await.unwrap().unwrap().as_text(),
            Some("to everyone")
        );
    }
    clients[0].send("hi").await.unwrap();
    for ws in clients[1..].iter_mut() {
        let text = ws.recv().await.unwrap().unwrap();
        assert!(text.as_text().unwrap().ends_with(": hi"));
    }

    let shutdown = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.shutdown(Duration::from_secs(30)).await })
    };
    for ws in clients.iter_mut() {
        assert_eq!(ws.recv().await.unwrap(), None);
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::GOING_AWAY);
    }
    // Returns as soon as every client completed its close handshake, not at the timeout.
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handle.client_count(), 0);
    tokio::time::timeout(Duration::from_secs(5), server_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(connect(&url).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn split_halves_work_from_two_tasks() {
    let (addr, _) = echo_server(Server::builder()).await;
    let (ws, _) = connect(&format!("ws://{addr}")).await.unwrap();
    let (mut reader, writer) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..1000 {
            writer.send(format!("m{i}")).await.unwrap();
        }
        writer.close(None).await.unwrap();
    });
    let mut count = 0;
    while let Some(message) = reader.recv().await.unwrap() {
        assert_eq!(message.as_text().unwrap(), format!("m{count}"));
        count += 1;
    }
    assert_eq!(count, 1000);
    sender.await.unwrap();
}

#[tokio::test]
async fn stream_and_sink() {
    let (addr, _) = echo_server(Server::builder()).await;
    let (mut ws, _) = connect(&format!("ws://{addr}")).await.unwrap();
    let outgoing = futures_util::stream::iter((0..50).map(|i| Ok(Message::text(format!("{i}")))));
    ws.send_all(&mut outgoing.map(|m| m)).await.unwrap();
    let received: Vec<_> = ws.by_ref().take(50).collect().await;
    assert_eq!(received.len(), 50);
    assert_eq!(received[49].as_ref().unwrap().as_text(), Some("49"));
    SinkExt::close(&mut ws).await.unwrap();
    assert!(ws.next().await.is_none());
}

#[tokio::test]
async fn echo_server_stops_reading_from_a_client_that_stops_reading() {
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let observed = max_buffered.clone();
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(move |mut ws, _| {
        let observed = observed.clone();
        async move {
            while let Ok(Some(message)) = ws.recv().await {
                if ws.feed(message).await.is_err() {
                    break;
                }
                observed.fetch_max(ws.buffered_amount(), Ordering::Relaxed);
            }
        }
    }));
    let (ws, _) = connect(&format!("ws://{addr}")).await.unwrap();
    let (_reader, writer) = ws.split();
    // Send up to 256 MiB without ever reading the echoes.
    let payload = Bytes::from(vec![0u8; 1 << 20]);
    let mut sent = 0usize;
    let sending = async {
        for _ in 0..256 {
            writer.send(payload.clone()).await.unwrap();
            sent += 1;
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(3), sending).await;
    assert!(
        finished.is_err(),
        "the server kept reading: {sent} MiB accepted"
    );
    let limit = Config::default().max_write_buffer + (1 << 20) + 64;
    assert!(max_buffered.load(Ordering::Relaxed) <= limit);
    assert!(sent < 256);
}

/// A plain HTTP server that answers every request with a redirect to `location`, after
/// recording the request head.
async fn redirector(location: String, heads: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let head = common::read_head(&mut tcp).await;
            heads.lock().unwrap().push(head);
            let response = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 5\r\n\r\nmoved"
            );
            let _ = tcp.write_all(response.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test]
async fn redirects_are_off_by_default_and_followed_when_allowed() {
    let seen_auth = Arc::new(Mutex::new(Vec::new()));
    let seen = seen_auth.clone();
    // The server redirects /start to /final itself (same host and port).
    let server = Server::builder()
        .verify(move |client| {
            let redirect = client.path() == "/start";
            if !redirect {
                seen.lock()
                    .unwrap()
                    .push(client.headers().get("authorization").cloned());
            }
            async move {
                if redirect {
                    Verdict::reject(302).with_header("location", "/final")
                } else {
                    Verdict::accept()
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(m)) = ws.recv().await {
            let _ = ws.send(m).await;
        }
    }));
    let heads = Arc::new(Mutex::new(Vec::new()));
    // Another host (localhost instead of 127.0.0.1, another port): credentials dropped.
    let other_host = redirector(
        format!("http://localhost:{}/", target.port()),
        heads.clone(),
    )
    .await;

    let error = connect(&format!("ws://{target}/start")).await.unwrap_err();
    let response = error.http_response().unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/final");

    let client = ClientBuilder::new()
        .max_redirects(1)
        .header("Authorization", "Basic c2VjcmV0");
    let (mut ws, _) = client
        .connect(&format!("ws://{target}/start"))
        .await
        .unwrap();
    ws.send("ok").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("ok"));
    ws.close(None).await.unwrap();
    let (ws, _) = client
        .connect(&format!("ws://{other_host}/"))
        .await
        .unwrap();
    drop(ws);
    {
        let seen = seen_auth.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].is_some(), "same host and port keep Authorization");
        assert!(seen[1].is_none(), "another host doesn't get it");
    }
    assert_eq!(heads.lock().unwrap().len(), 1);

    // Two redirects with a limit of one.
    let chain = redirector(format!("ws://{other_host}/"), heads.clone()).await;
    let error = ClientBuilder::new()
        .max_redirects(1)
        .connect(&format!("ws://{chain}/"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
}

#[tokio::test]
async fn client_handshake_timeout_and_abnormal_closure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp); // never answers
        }
    });
    let error = ClientBuilder::new()
        .handshake_timeout(Duration::from_millis(200))
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap_err();
    assert!(error.is_timeout());

    // A server that drops the TCP connection without a close frame.
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        let _ = ws.recv().await;
        ws.terminate().await;
    }));
    let (mut ws, _) = connect(&url).await.unwrap();
    ws.send("x").await.unwrap();
    let error = ws.recv().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AbnormalClosure);
}

#[tokio::test]
async fn connection_refused_and_bad_urls_are_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert_eq!(
        connect(&format!("ws://{addr}")).await.unwrap_err().kind(),
        ErrorKind::Io
    );
    assert_eq!(
        connect("ftp://x").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        connect("ws://").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn leftover_bytes_after_the_head_are_kept() {
    // A client that sends its first frame in the same packet as the upgrade request.
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    bytes.extend(common::masked_frame(0x81, b"early"));
    tcp.write_all(&bytes).await.unwrap();
    let head = common::read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"));
    let mut frame = [0u8; 7];
    tcp.read_exact(&mut frame).await.unwrap();
    assert_eq!(&frame, b"\x81\x05early");
}

/// `shutdown` returns the moment its last client has gone: it waits on the registry's
/// notification (it polled every 5 ms before, so this took at least 5 ms of virtual time).
/// On the paused clock over loopback, where only timers move time.
#[tokio::test(start_paused = true)]
async fn shutdown_returns_as_soon_as_the_last_client_is_gone() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    let handle = server.handle();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let serving = tokio::spawn(server.serve(move |mut ws, _| {
        let _ = started_tx.send(());
        async move { while let Ok(Some(_)) = ws.recv().await {} }
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = connect(&url).await.unwrap();
        clients.push(tokio::spawn(async move {
            while let Ok(Some(_)) = ws.recv().await {}
            ws.close_frame().map(|frame| frame.code.as_u16())
        }));
    }
    for _ in 0..3 {
        started.recv().await.unwrap();
    }
    let begun = tokio::time::Instant::now();
    handle.shutdown(Duration::from_secs(30)).await;
    assert_eq!(begun.elapsed(), Duration::ZERO);
    assert_eq!(handle.client_count(), 0);
    for client in clients {
        assert_eq!(client.await.unwrap(), Some(1001));
    }
    serving.await.unwrap().unwrap();
}

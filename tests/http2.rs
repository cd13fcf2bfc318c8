//! WebSockets over HTTP/2 (RFC 8441) between our client and server over TLS and h2c: many
//! WebSockets on one connection, the same decision path (refusals, subprotocols, deflate) as
//! HTTP/1.1, the fall back to HTTP/1.1, the close handshake ending streams with END_STREAM, an
//! abandoned WebSocket resetting only its stream, and a failed connection ending every stream
//! with 1006.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::certs::Ca;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::http2::Http2Config;
use enim_labore_occaecati::server::{ClientInfo, Server, ServerBuilder, ServerStream};
use enim_labore_occaecati::tls::{ClientTls, ServerTls};
use enim_labore_occaecati::{ClientBuilder, CloseFrame, ErrorKind, Message, WebSocket};
use tokio::sync::mpsc;

/// What the server saw of each WebSocket: method, HTTP version, remote address, and how the
/// connection ended (`None`: a clean close).
#[derive(Debug)]
struct Seen {
    method: http::Method,
    version: http::Version,
    remote: Option<SocketAddr>,
    protocol: Option<String>,
    ended: Option<u16>,
}

/// An echo server with `builder`'s options that reports every WebSocket once it ends.
async fn echo_server(builder: ServerBuilder) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let (seen, reports) = mpsc::unbounded_channel();
    tokio::spawn(server.serve(move |ws, info| echo(ws, info, seen.clone())));
    (port, reports)
}

async fn echo(
    mut ws: WebSocket<ServerStream>,
    info: ClientInfo,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let ended = loop {
        match ws.recv().await {
            Ok(Some(message)) => {
                if let Err(error) = ws.send(message).await {
                    panic!("send failed: {error:?}");
                }
            }
            Ok(None) => break None,
            Err(error) if error.kind() == ErrorKind::AbnormalClosure => break Some(1006),
            Err(error) => panic!("unexpected end: {error:?}"),
        }
    };
    let _ = seen.send(Seen {
        method: info.request().method().clone(),
        version: info.request().version(),
        remote: info.remote_addr(),
        protocol: info.protocol().map(str::to_owned),
        ended,
    });
}

fn tls_pair() -> (ServerTls, ClientTls) {
    let ca = Ca::new("elo h2 test CA");
    let leaf = ca.server(&["localhost", "127.0.0.1"]);
    let server = ServerTls::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap();
    let client = ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap();
    (server, client)
}

fn h2_client(tls: ClientTls) -> ClientBuilder {
    ClientBuilder::new().tls(tls).http2(Http2Config::default())
}

async fn round_trip(ws: &mut WebSocket<enim_labore_occaecati::client::ClientStream>, n: usize) {
    let text = format!("hello {n}");
    let binary = Bytes::from(vec![n as u8; 100_000 + n]);
    ws.send(text.as_str()).await.unwrap();
    ws.send(binary.clone()).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some(text.as_str())
    );
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Binary(binary));
}

#[tokio::test]
async fn websockets_share_one_tls_connection_as_http2_streams() {
    let (server_tls, client_tls) = tls_pair();
    let (port, mut reports) = echo_server(Server::builder().tls(server_tls)).await;
    let client = h2_client(client_tls).protocol("chat");
    let url = format!("wss://localhost:{port}/");
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let (ws, response) = client.connect(&url).await.unwrap();
        // RFC 8441 §5: a 200 answers the extended CONNECT, not a 101.
        assert_eq!(response.status(), 200);
        assert!(matches!(
            ws.get_ref(),
            enim_labore_occaecati::client::ClientStream::Http2(_)
        ));
        sockets.push(ws);
    }
    // Interleaved: every stream carries its own messages, large ones included.
    for (n, ws) in sockets.iter_mut().enumerate() {
        round_trip(ws, n).await;
    }
    for ws in &mut sockets {
        ws.close(None).await.unwrap();
        // The close handshake ends cleanly: the server's END_STREAM, then ours.
        assert!(ws.recv().await.unwrap().is_none());
    }
    let mut remotes = Vec::new();
    for _ in 0..4 {
        let seen = next_report(&mut reports).await;
        assert_eq!(seen.method, http::Method::CONNECT);
        assert_eq!(seen.version, http::Version::HTTP_2);
        assert_eq!(seen.protocol.as_deref(), Some("chat"));
        assert_eq!(seen.ended, None, "a clean close on the server too");
        remotes.push(seen.remote.unwrap());
    }
    remotes.dedup();
    assert_eq!(remotes.len(), 1, "one TCP connection for all: {remotes:?}");
}

#[tokio::test]
async fn deflate_is_negotiated_per_stream() {
    let (server_tls, client_tls) = tls_pair();
    let builder = Server::builder()
        .tls(server_tls)
        .deflate(DeflateConfig::default());
    let (port, _reports) = echo_server(builder).await;
    let url = format!("wss://localhost:{port}/");
    let plain = h2_client(client_tls.clone()).deflate(None);
    let compressed = h2_client(client_tls).deflate(Some(DeflateConfig::default()));
    let (mut a, response) = compressed.connect(&url).await.unwrap();
    assert!(response.headers()["sec-websocket-extensions"]
        .to_str()
        .unwrap()
        .starts_with("permessage-deflate"));
    let (mut b, response) = plain.connect(&url).await.unwrap();
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    round_trip(&mut a, 1).await;
    round_trip(&mut b, 2).await;
    a.close(None).await.unwrap();
    b.close(None).await.unwrap();
}

#[tokio::test]
async fn refusals_answer_on_the_stream_and_the_connection_stays_usable() {
    let (server_tls, client_tls) = tls_pair();
    let builder = Server::builder().tls(server_tls).path("/ws");
    let (port, _reports) = echo_server(builder).await;
    let client = h2_client(client_tls);
    let error = client
        .connect(&format!("wss://localhost:{port}/elsewhere"))
        .await
        .unwrap_err();
    let response = error.http_response().expect("the refusal's response");
    assert_eq!(response.status(), 400);
    assert_eq!(response.body().as_ref(), b"Bad Request");
    let (mut ws, _) = client
        .connect(&format!("wss://localhost:{port}/ws"))
        .await
        .unwrap();
    round_trip(&mut ws, 3).await;
    ws.close(None).await.unwrap();
}

/// An HTTP/2 client (offering ALPN `h2`) on a TLS server built by `builder`: the WebSocket is
/// an HTTP/1.1 upgrade (101), it echoes, and the server saw a `GET` over HTTP/1.1.
async fn served_over_http1(builder: ServerBuilder, client_tls: ClientTls, n: usize) {
    let (port, mut reports) = echo_server(builder).await;
    let (mut ws, response) = h2_client(client_tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    round_trip(&mut ws, n).await;
    ws.close(None).await.unwrap();
    let seen = next_report(&mut reports).await;
    assert_eq!(
        (seen.method, seen.version),
        (http::Method::GET, http::Version::HTTP_11)
    );
}

#[tokio::test]
async fn the_client_falls_back_to_http1_when_the_server_has_http2_off() {
    let (server_tls, client_tls) = tls_pair();
    let off = Http2Config::off();
    served_over_http1(Server::builder().tls(server_tls).http2(off), client_tls, 4).await;
}

#[tokio::test]
async fn cleartext_prior_knowledge_and_http1_on_one_port() {
    let h2c = Http2Config::with_cleartext();
    let (port, mut reports) = echo_server(Server::builder().http2(h2c)).await;
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut over_h2, response) = ClientBuilder::new().http2(h2c).connect(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut over_h1, response) = ClientBuilder::new().connect(&url).await.unwrap();
    assert_eq!(response.status(), 101);
    round_trip(&mut over_h2, 5).await;
    round_trip(&mut over_h1, 6).await;
    over_h2.close(None).await.unwrap();
    over_h1.close(None).await.unwrap();
    let mut versions = vec![
        next_report(&mut reports).await.version,
        next_report(&mut reports).await.version,
    ];
    versions.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(versions, [http::Version::HTTP_11, http::Version::HTTP_2]);
}

#[tokio::test]
async fn an_abandoned_websocket_resets_only_its_stream() {
    let (server_tls, client_tls) = tls_pair();
    let (port, mut reports) = echo_server(Server::builder().tls(server_tls)).await;
    let client = h2_client(client_tls);
    let url = format!("wss://localhost:{port}/");
    let (mut kept, _) = client.connect(&url).await.unwrap();
    let (mut dropped, _) = client.connect(&url).await.unwrap();
    round_trip(&mut dropped, 7).await;
    drop(dropped);
    // RST_STREAM: the server's side ends abnormally (1006)...
    let seen = next_report(&mut reports).await;
    assert_eq!(seen.ended, Some(1006));
    // ...and the other WebSocket on the connection goes on.
    round_trip(&mut kept, 8).await;
    kept.close(None).await.unwrap();
    assert_eq!(next_report(&mut reports).await.ended, None);
}

#[tokio::test]
async fn a_failed_connection_ends_every_stream_with_1006() {
    // A raw HTTP/2 client over a TCP connection the test cuts.
    let h2c = Http2Config::with_cleartext();
    let (port, mut reports) = echo_server(Server::builder().http2(h2c)).await;
    let (mut sender, driver) = raw_h2_client(port).await;
    assert!(sender.is_extended_connect_protocol_enabled());
    let mut streams = Vec::new();
    for _ in 0..3 {
        let request = extended_connect(port, None);
        let (response, send) = sender.send_request(request, false).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push((send, response));
    }
    // The connection dies without a close handshake on any stream.
    driver.abort();
    let _ = driver.await;
    drop(streams);
    drop(sender);
    for _ in 0..3 {
        let seen = next_report(&mut reports).await;
        assert_eq!(seen.ended, Some(1006));
    }
}

#[tokio::test]
async fn the_stream_limit_is_advertised_and_bad_options_are_refused() {
    let mut h2c = Http2Config::with_cleartext();
    h2c.max_streams = 3;
    let (port, _reports) = echo_server(Server::builder().http2(h2c)).await;
    let (sender, _driver) = raw_h2_client(port).await;
    assert_eq!(sender.current_max_send_streams(), 3);
    let (mut no_streams, mut no_window, mut tiny_frames) = (h2c, h2c, h2c);
    no_streams.max_streams = 0;
    no_window.stream_window = 0;
    tiny_frames.max_frame_size = 1000;
    for bad in [no_streams, no_window, tiny_frames] {
        let error = Server::builder()
            .http2(bad)
            .bind("127.0.0.1:0")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }
}

/// Node's `http2` module as the client: three WebSockets on one session, frames by `ws`.
#[tokio::test]
async fn node_http2_client_against_our_server() {
    if !common::node::available("node_http2_client_against_our_server") {
        return;
    }
    for deflate in [false, true] {
        let h2c = Http2Config::with_cleartext();
        let mut builder = Server::builder().http2(h2c);
        if deflate {
            builder = builder.deflate(DeflateConfig::default());
        }
        let (port, mut reports) = echo_server(builder).await;
        let script = common::node::dir().join("h2.js");
        let url = format!("http://127.0.0.1:{port}/chat");
        let mut args = vec!["client", url.as_str()];
        if deflate {
            args.push("--deflate");
        }
        let output = tokio::process::Command::new("node")
            .arg(&script)
            .args(&args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("node timed out")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.starts_with(&format!("OK 3 deflate={deflate}")),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for _ in 0..3 {
            let seen = next_report(&mut reports).await;
            assert_eq!(
                (seen.method, seen.version, seen.ended),
                (http::Method::CONNECT, http::Version::HTTP_2, None)
            );
        }
    }
}

/// Node's `http2` module as the server, `ws` framing: our client over h2c, three WebSockets
/// sharing the connection, with and without permessage-deflate.
#[tokio::test]
async fn our_client_against_node_http2_server() {
    if !common::node::available("our_client_against_node_http2_server") {
        return;
    }
    for deflate in [false, true] {
        let script = common::node::dir().join("h2.js");
        let mut args = vec![script.to_str().unwrap(), "server"];
        if deflate {
            args.push("--deflate");
        }
        let mut peer = common::Peer::spawn(std::path::Path::new("node"), &args, true).await;
        let client = ClientBuilder::new()
            .http2(Http2Config::with_cleartext())
            .deflate(deflate.then(DeflateConfig::default));
        let url = format!("ws://127.0.0.1:{}/node", peer.port);
        let mut sockets = Vec::new();
        for _ in 0..3 {
            let (ws, response) = client.connect(&url).await.unwrap();
            assert_eq!(response.status(), 200);
            sockets.push(ws);
        }
        for (n, ws) in sockets.iter_mut().enumerate() {
            round_trip(ws, n).await;
        }
        for ws in &mut sockets {
            ws.close(Some(CloseFrame::new(1000u16, "done")))
                .await
                .unwrap();
            assert!(ws.recv().await.unwrap().is_none());
        }
        let (mut streams, mut closes) = (0, 0);
        while closes < 3 {
            let line = tokio::time::timeout(Duration::from_secs(30), peer.lines.next_line())
                .await
                .expect("node reported")
                .unwrap()
                .unwrap();
            if let Some(rest) = line.strip_prefix("STREAM /node ") {
                assert_eq!(rest.starts_with("permessage-deflate"), deflate, "{line}");
                streams += 1;
            } else if line.starts_with("CLOSE ") {
                assert_eq!(line, "CLOSE 1000");
                closes += 1;
            }
        }
        assert_eq!(streams, 3);
    }
}

/// The next WebSocket the server reports, within 30 s (a handler that failed never reports).
async fn next_report(reports: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), reports.recv())
        .await
        .expect("the server reported the WebSocket")
        .unwrap()
}

#[tokio::test]
async fn the_pool_opens_another_connection_when_one_is_full() {
    let (server_tls, client_tls) = tls_pair();
    let mut limited = Http2Config::default();
    limited.max_streams = 2;
    let (port, mut reports) = echo_server(Server::builder().tls(server_tls).http2(limited)).await;
    let client = h2_client(client_tls);
    let url = format!("wss://localhost:{port}/");
    let mut sockets = Vec::new();
    for n in 0..5 {
        let (mut ws, _) = client.connect(&url).await.unwrap();
        round_trip(&mut ws, n).await;
        sockets.push(ws);
    }
    for ws in &mut sockets {
        ws.close(None).await.unwrap();
    }
    let mut remotes = Vec::new();
    for _ in 0..5 {
        remotes.push(next_report(&mut reports).await.remote.unwrap());
    }
    remotes.sort();
    remotes.dedup();
    assert_eq!(remotes.len(), 3, "2 + 2 + 1 streams: {remotes:?}");
}

#[tokio::test]
async fn a_connection_without_websockets_is_closed_after_the_handshake_timeout() {
    let h2c = Http2Config::with_cleartext();
    let mut limits = enim_labore_occaecati::HandshakeLimits::default();
    limits.timeout = Duration::from_millis(200);
    let builder = Server::builder().http2(h2c).handshake_limits(limits);
    let (port, _reports) = echo_server(builder).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (_sender, connection) = h2::client::handshake(tcp).await.unwrap();
    // The server's GOAWAY ends the connection; nothing else would.
    let ended = tokio::time::timeout(Duration::from_secs(30), connection).await;
    assert!(ended.is_ok(), "the idle connection was not closed");
}

/// A server that speaks HTTP/2 without RFC 8441 (hyper without `enable_connect_protocol`):
/// the client learns it from the SETTINGS, opens an HTTP/1.1 connection instead, and goes
/// straight to HTTP/1.1 for that origin afterwards.
#[cfg(feature = "hyper")]
#[tokio::test]
async fn the_client_falls_back_when_http2_lacks_extended_connect() {
    use enim_labore_occaecati::integrations::hyper::{is_upgrade_request, upgrade};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let (server_tls, client_tls) = tls_pair();
    let server_tls = server_tls.alpn_protocols(["h2", "http/1.1"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let h2_connections = Arc::new(AtomicUsize::new(0));
    let counted = h2_connections.clone();
    tokio::spawn(async move {
        let server_tls = Arc::new(server_tls);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (tls, counted) = (server_tls.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                if stream.alpn_protocol() == Some(b"h2") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let service =
                    service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                        assert!(is_upgrade_request(&request), "{request:?}");
                        let (response, pending) = upgrade(&Server::builder(), request, None).await;
                        if let Some(pending) = pending {
                            tokio::spawn(async move {
                                let Ok((mut ws, _)) = pending.finish().await else {
                                    return;
                                };
                                while let Ok(Some(message)) = ws.recv().await {
                                    if ws.send(message).await.is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let client = h2_client(client_tls);
    let url = format!("wss://localhost:{port}/");
    for n in 0..2 {
        let (mut ws, response) = client.connect(&url).await.unwrap();
        assert_eq!(response.status(), 101);
        round_trip(&mut ws, n).await;
        ws.close(None).await.unwrap();
    }
    // One HTTP/2 connection to learn the server's settings, none after.
    assert_eq!(h2_connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn terminate_returns_at_once_when_the_peer_does_not_read() {
    let (server_tls, client_tls) = tls_pair();
    let server = Server::builder()
        .tls(server_tls)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    // A handler that never reads: its side of the stream never ends.
    tokio::spawn(server.serve(|ws, _| async move {
        let _keep = ws;
        std::future::pending::<()>().await;
    }));
    let (mut ws, _) = h2_client(client_tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), ws.terminate())
        .await
        .expect("terminate returned");
    assert!(ws.recv().await.unwrap().is_none());
}

#[tokio::test]
async fn clones_with_other_tls_settings_do_not_share_connections() {
    let (server_tls, _) = tls_pair();
    let (port, _reports) = echo_server(Server::builder().tls(server_tls)).await;
    let url = format!("wss://localhost:{port}/");
    let lax = ClientBuilder::new()
        .http2(Http2Config::default())
        .tls(ClientTls::new().danger_accept_invalid_certs(true));
    let (mut ws, _) = lax.connect(&url).await.unwrap();
    // A clone that verifies certificates (and doesn't know the test CA) must not ride the
    // connection the lax one opened.
    let strict = lax.clone().tls(ClientTls::new());
    let error = strict.connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
    round_trip(&mut ws, 9).await;
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn connection_specific_headers_are_not_sent_over_http2() {
    let (server_tls, client_tls) = tls_pair();
    let (port, _reports) = echo_server(Server::builder().tls(server_tls)).await;
    let (mut ws, _) = h2_client(client_tls)
        .header("TE", "gzip")
        .header("Connection", "x-hop")
        .header("X-Hop", "1")
        .header("Keep-Alive", "timeout=5")
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    round_trip(&mut ws, 10).await;
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_host_that_differs_from_the_authority_is_refused() {
    let (port, _reports) =
        echo_server(Server::builder().http2(Http2Config::with_cleartext())).await;
    let (mut sender, _driver) = raw_h2_client(port).await;
    let request = extended_connect(port, Some("elsewhere.example"));
    let (response, _send) = sender.send_request(request, false).unwrap();
    assert_eq!(response.await.unwrap().status(), 400);
}

/// A server that refuses the first stream unprocessed (REFUSED_STREAM, RFC 9113 §8.7): the
/// client tries once more on a new connection, and the WebSocket opens there.
#[tokio::test]
async fn a_refused_stream_is_tried_again_on_another_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, mut streams) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for connection in 0.. {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut h2 = h2::server::Builder::new()
                    .enable_connect_protocol()
                    .handshake::<_, Bytes>(tcp)
                    .await
                    .unwrap();
                while let Some(Ok((request, mut respond))) = h2.accept().await {
                    seen.send(connection).unwrap();
                    if connection == 0 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    // The second connection accepts, and closes at once with 1000 (a server's
                    // close frame, unmasked) and END_STREAM.
                    drop(request);
                    let mut send = respond
                        .send_response(http::Response::new(()), false)
                        .unwrap();
                    send.send_data(Bytes::from_static(&[0x88, 0x02, 0x03, 0xe8]), true)
                        .unwrap();
                }
            });
        }
    });
    let (mut ws, response) = ClientBuilder::new()
        .http2(Http2Config::with_cleartext())
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        (streams.recv().await, streams.recv().await),
        (Some(0), Some(1)),
        "refused on the first connection, accepted on the second"
    );
    // The server's close frame (1000) came over the second connection's stream.
    assert!(ws.recv().await.unwrap().is_none());
    assert_eq!(ws.close_frame().map(|f| f.code.as_u16()), Some(1000));
}

#[tokio::test]
async fn a_server_with_http2_off_takes_h2_out_of_its_alpn_list() {
    let (server_tls, client_tls) = tls_pair();
    let server_tls = server_tls.alpn_protocols(["h2", "http/1.1"]);
    let builder = Server::builder().tls(server_tls).http2(Http2Config::off());
    served_over_http1(builder, client_tls, 11).await;
}

/// A bare HTTP/2 client on the server at `port` (h2c), once the server's SETTINGS are in (they
/// precede the answer to a PING); the connection runs in the returned task.
async fn raw_h2_client(port: u16) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (sender, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping = connection.ping_pong().unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    ping.ping(h2::Ping::opaque()).await.unwrap();
    (sender.ready().await.unwrap(), driver)
}

/// An extended CONNECT for a WebSocket at `/` (RFC 8441), with a `Host` header if given.
fn extended_connect(port: u16, host: Option<&str>) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://127.0.0.1:{port}/"))
        .header("sec-websocket-version", "13");
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let mut request = request.body(()).unwrap();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    request
}

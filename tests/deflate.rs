//! permessage-deflate between our client and our server over loopback: every parameter
//! combination, limits on inflated size, corrupt data, RSV1 misuse, declined offers, and
//! compressed fragmented sends.

use crate::common;

use std::time::Duration;

use bytes::BytesMut;
use common::{
    deflate_combinations as combinations, masked_frame, read_close_code, read_frame, read_head,
};
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::internals::{Compressor, Decompressor, TAIL};
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, DataKind, Message};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn compressible(n: usize) -> Vec<u8> {
    b"permessage-deflate round trip "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

pub(crate) async fn deflate_echo_server(
    deflate: DeflateConfig,
    config: Config,
) -> std::net::SocketAddr {
    let server = Server::builder()
        .deflate(deflate)
        .config(config)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.feed(message).await.is_err() {
                break;
            }
        }
    }));
    addr
}

#[tokio::test]
async fn every_parameter_combination_round_trips() {
    for config in combinations() {
        let addr = deflate_echo_server(config.clone(), Config::default()).await;
        let (mut ws, _) = ClientBuilder::new()
            .deflate(Some(config.clone()))
            .connect(&format!("ws://{addr}"))
            .await
            .unwrap();
        let ext = ws.extensions().to_owned();
        assert!(ext.starts_with("permessage-deflate"), "{config:?}: {ext}");
        assert_eq!(
            ext.contains("server_no_context_takeover"),
            config.server_no_context_takeover
        );
        for len in [0usize, 10, 5000, 70_000] {
            let data = compressible(len);
            ws.send(data.clone()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap(), Some(Message::binary(data)));
            let text = String::from_utf8(compressible(len)).unwrap();
            ws.send(text.clone()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap(), Some(Message::text(text)));
        }
        ws.close(None).await.unwrap();
    }
}

#[tokio::test]
async fn compression_is_chosen_per_message_and_by_threshold() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    let (mut ws, _) = ClientBuilder::new()
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    assert_eq!(ws.extensions(), "permessage-deflate");
    let data = compressible(100_000);
    ws.send_with_compression(data.clone(), false).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Some(Message::binary(data.clone()))
    );
    ws.send_with_compression("tiny", true).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("tiny")));
    // 16 MiB, compressed.
    let big = compressible(16 << 20);
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::binary(big)));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn no_compression_unless_both_sides_want_it() {
    // Server without deflate: the client's offer is ignored.
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(m)) = ws.recv().await {
            let _ = ws.send(m).await;
        }
    }));
    let (mut ws, response) = ClientBuilder::new().connect(&url).await.unwrap();
    assert_eq!(ws.extensions(), "");
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    ws.send(compressible(5000)).await.unwrap();
    assert!(ws.recv().await.unwrap().is_some());

    // A server that must limit the client's window declines a client that can't be limited.
    let mut limiting = DeflateConfig::default();
    limiting.client_max_window_bits = Some(10);
    let addr = deflate_echo_server(limiting, Config::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7, permessage-deflate\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head.to_lowercase().contains("sec-websocket-extensions"),
        "{head}"
    );

    // A client without deflate offers nothing.
    let (ws, response) = ClientBuilder::new()
        .deflate(None)
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    assert_eq!(ws.extensions(), "");
    assert!(response.headers().get("sec-websocket-extensions").is_none());
}

#[tokio::test]
async fn malformed_extension_header_gets_400() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; x=\"unterminated\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

/// A raw client that negotiated permessage-deflate (default parameters).
pub(crate) async fn raw_deflate_upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.contains("permessage-deflate"), "{head}");
    tcp
}

pub(crate) fn compressed(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Compressor::new(15, &DeflateConfig::default())
        .compress(data, &mut out)
        .unwrap();
    out.to_vec()
}

#[tokio::test]
async fn corrupt_compressed_data_is_closed_with_1007() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    let mut tcp = raw_deflate_upgrade(addr).await;
    tcp.write_all(&masked_frame(0xc2, &[0xff, 0xff, 0xff, 0xff, 0x00]))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1007));
}

#[tokio::test]
async fn rsv1_misuse_is_closed_with_1002() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    // RSV1 on a ping, and on a continuation frame.
    for frames in [
        masked_frame(0xc9, b"ping"),
        [masked_frame(0x02, b"a"), masked_frame(0xc0, b"b")].concat(),
    ] {
        let mut tcp = raw_deflate_upgrade(addr).await;
        tcp.write_all(&frames).await.unwrap();
        assert_eq!(read_close_code(&mut tcp).await, Some(1002));
    }
    // RSV1 without permessage-deflate negotiated.
    let (plain, _) = common::echo_server(Server::builder()).await;
    let mut tcp = common::raw_upgrade(plain).await;
    tcp.write_all(&masked_frame(0xc2, &compressed(b"hello")))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1002));
}

#[tokio::test]
async fn compressed_text_must_inflate_to_utf8() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    let mut tcp = raw_deflate_upgrade(addr).await;
    tcp.write_all(&masked_frame(0xc1, &compressed(&[b'a', 0xff, b'b'])))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1007));
    let _ = Duration::from_secs(0);
}

/// Idle compressors are compacted to their history and rebuilt on the next message: the
/// context carries over, as the peer's inflater checks. Against our server on the paused clock
/// (exactly past both compaction delays), and against the seed library's zlib on real time.
#[tokio::test(start_paused = true)]
async fn idle_compaction_keeps_the_context() {
    let deflate = compaction_config();
    let server = Server::builder().deflate(deflate.clone());
    let client = ClientBuilder::new().deflate(Some(deflate));
    let (mut ws, mut peer) = common::pipe_pair(&server, &client).await;
    let echo = tokio::spawn(async move {
        while let Ok(Some(message)) = peer.recv().await {
            peer.send(message).await.unwrap();
        }
    });
    compacted_rounds(&mut ws, "our server").await;
    echo.await.unwrap();
}

#[tokio::test]
async fn idle_compaction_keeps_the_context_with_the_seed_library() {
    if !common::node::available("idle_compaction_keeps_the_context_with_the_seed_library") {
        return;
    }
    let peer = common::node::server(&["--deflate-options", r#"{"threshold":0}"#]).await;
    let url = format!("ws://127.0.0.1:{}/", peer.port);
    let _node = peer.drain();
    let (mut ws, _) = ClientBuilder::new()
        .deflate(Some(compaction_config()))
        .connect(&url)
        .await
        .unwrap();
    compacted_rounds(&mut ws, &url).await;
}

fn compaction_config() -> DeflateConfig {
    let mut deflate = DeflateConfig::default();
    deflate.compact_idle_after = Some(Duration::from_millis(40));
    deflate.threshold = 0;
    deflate
}

/// Four messages, each repeating the last (compressed, mostly back-references into it), with
/// an idle time between them long enough for both compressors to be compacted.
async fn compacted_rounds<S>(ws: &mut enim_labore_occaecati::WebSocket<S>, peer: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    assert!(ws.extensions().starts_with("permessage-deflate"), "{peer}");
    let base = compressible(20_000);
    for round in 0..4 {
        let mut message = base.clone();
        message.extend_from_slice(format!(" round {round}").as_bytes());
        ws.send(message.clone()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::binary(message)),
            "{peer} round {round}"
        );
        // Two compaction delays at most.
        let idle = tokio::time::timeout(Duration::from_millis(150), ws.recv()).await;
        assert!(idle.is_err(), "{idle:?}");
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn compressed_fragments_are_one_stream_with_rsv1_on_the_first_frame() {
    let server = Server::builder()
        .deflate(DeflateConfig::default())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let parts = [
        compressible(40_000),
        compressible(3),
        Vec::new(),
        compressible(20_000),
    ];
    let sent = parts.clone();
    tokio::spawn(server.serve(move |mut ws, _| {
        let parts = sent.clone();
        async move {
            // Two messages, so the second is compressed in the context the first left.
            for _ in 0..2 {
                for (i, part) in parts.iter().enumerate() {
                    let fin = i + 1 == parts.len();
                    ws.send_fragment_with_compression(DataKind::Binary, part.clone(), fin, true)
                        .await
                        .unwrap();
                }
            }
            let _ = ws.recv().await;
        }
    }));
    let mut tcp = raw_deflate_upgrade(addr).await;
    let whole: Vec<u8> = parts.concat();
    let mut inflater = Decompressor::new(15);
    for message in 0..2 {
        let mut stream = Vec::new();
        for i in 0..parts.len() {
            let (first, payload) = read_frame(&mut tcp).await;
            let fin = i + 1 == parts.len();
            let opcode = if i == 0 { 0x2 } else { 0x0 };
            let rsv1 = if i == 0 { 0x40 } else { 0x00 };
            let expected = if fin { 0x80 } else { 0x00 } | rsv1 | opcode;
            assert_eq!(
                first, expected,
                "message {message}, frame {i}: {first:#04x}"
            );
            stream.extend_from_slice(&payload);
        }
        assert!(
            stream.len() < whole.len() / 10,
            "compressed to {} bytes",
            stream.len()
        );
        stream.extend_from_slice(&TAIL);
        let mut out = BytesMut::new();
        inflater.inflate(&stream, &mut out, 1 << 20).unwrap();
        assert_eq!(out.as_ref(), whole.as_slice(), "message {message}");
    }
}

#[tokio::test]
async fn a_fragmented_message_keeps_the_first_fragments_choice() {
    let addr = deflate_echo_server(DeflateConfig::default(), Config::default()).await;
    let (mut ws, _) = ClientBuilder::new()
        .connect(&format!("ws://{addr}"))
        .await
        .unwrap();
    // Compressed from the first fragment on, whatever the later ones ask; and uncompressed
    // ones after it.
    let text = String::from_utf8(compressible(9000)).unwrap();
    let (a, b) = text.split_at(4000);
    ws.send_fragment_with_compression(DataKind::Text, a.to_owned(), false, true)
        .await
        .unwrap();
    ws.ping("between").await.unwrap();
    ws.send_fragment(DataKind::Text, b.to_owned(), true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text(text.clone())));
    ws.send_fragment_with_compression(DataKind::Text, a.to_owned(), false, false)
        .await
        .unwrap();
    ws.send_fragment_with_compression(DataKind::Text, b.to_owned(), true, true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text(text)));
    ws.close(None).await.unwrap();
}

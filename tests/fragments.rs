//! Receiving messages as their fragments arrive (`Config::deliver_fragments`, the seed's
//! `binaryType = 'fragments'` without holding the message) and unchecked text with UTF-8
//! validation off (the seed's `skipUTF8Validation`): against the seed library under Node
//! (plain and compressed fragments), our server, and a raw server.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::node;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Config, DataKind, ErrorKind, Fragment, Message};
use enim_labore_occaecati::{ProtocolError, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn fragments_config() -> Config {
    let mut config = Config::default();
    config.deliver_fragments = true;
    config
}

fn fragment(kind: DataKind, data: impl Into<Bytes>, fin: bool) -> Option<Message> {
    Some(Message::Fragment(Fragment {
        kind,
        data: data.into(),
        fin,
    }))
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Option<Message> {
    timeout(LIMIT, ws.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn fragments_of_the_seed_library_arrive_one_by_one() {
    if !node::available("fragments_of_the_seed_library_arrive_one_by_one") {
        return;
    }
    // The Node server sends each `ws.send(…, { fin })` as one frame; with --deflate, each is
    // compressed (threshold 0), so the fragments are inflated one by one.
    for args in [&[][..], &["--deflate"][..]] {
        let peer = node::server(args).await;
        let url = format!("ws://127.0.0.1:{}/", peer.port);
        let mut child = peer.drain();
        let (mut ws, _) = ClientBuilder::new()
            .config(fragments_config())
            .connect(&url)
            .await
            .unwrap();
        assert_eq!(ws.extensions().is_empty(), args.is_empty(), "{args:?}");
        ws.send("fragments:3").await.unwrap();
        for i in 0..3 {
            let text = format!("fragment-{i}");
            assert_eq!(next(&mut ws).await, fragment(DataKind::Text, text, i == 2));
        }
        let binary: Vec<u8> = (0..300).map(|i| i as u8).collect();
        for (i, part) in binary.chunks(100).enumerate() {
            let expected = fragment(DataKind::Binary, part.to_vec(), i == 2);
            assert_eq!(next(&mut ws).await, expected, "{args:?}");
        }
        // An unfragmented message is one fragment that ends it.
        ws.send("whole").await.unwrap();
        assert_eq!(next(&mut ws).await, fragment(DataKind::Text, "whole", true));
        ws.close(None).await.unwrap();
        drop(child.stdin.take());
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn a_message_larger_than_the_message_limit_streams_through() {
    const PART: usize = 64 << 10;
    const PARTS: usize = 10;
    let mut limits = Config::default();
    limits.max_message_size = 100 << 10;
    limits.max_frame_size = 100 << 10;
    for compress in [false, true] {
        let server = Server::builder()
            .deflate(DeflateConfig::default())
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let url = format!("ws://{}", server.local_addr().unwrap());
        // 640 KiB in ten frames, to clients that hold at most 100 KiB.
        tokio::spawn(server.serve(move |mut ws, _| async move {
            for i in 0..PARTS {
                let part = vec![i as u8; PART];
                let fin = i + 1 == PARTS;
                let sent = ws
                    .send_fragment_with_compression(DataKind::Binary, part, fin, compress)
                    .await;
                if sent.is_err() {
                    return;
                }
            }
            let _ = ws.recv().await;
        }));

        let mut config = limits.clone();
        config.deliver_fragments = true;
        let (mut ws, _) = ClientBuilder::new()
            .config(config)
            .connect(&url)
            .await
            .unwrap();
        for i in 0..PARTS {
            let expected = fragment(DataKind::Binary, vec![i as u8; PART], i + 1 == PARTS);
            assert_eq!(
                next(&mut ws).await,
                expected,
                "compress {compress}, fragment {i}"
            );
        }
        ws.close(None).await.unwrap();

        // Held whole, the same message is refused (1009).
        let (mut ws, _) = ClientBuilder::new()
            .config(limits.clone())
            .connect(&url)
            .await
            .unwrap();
        let error = timeout(LIMIT, ws.recv()).await.unwrap().unwrap_err();
        assert_eq!(
            error.protocol_error(),
            Some(ProtocolError::MessageTooBig),
            "compress {compress}: {error}"
        );
    }
}

/// A server that answers the handshake by hand and sends one text frame that is not UTF-8.
async fn invalid_text_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                common::raw_accept(&mut tcp).await;
                // "ok", then a lone continuation byte and an invalid byte.
                tcp.write_all(&[0x81, 0x04, b'o', b'k', 0x80, 0xff])
                    .await
                    .unwrap();
                let mut rest = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn with_validation_off_text_is_handed_out_unchecked() {
    let url = invalid_text_server().await;

    // Unchecked: the bytes, typed as bytes (never a `Utf8Bytes`), whole or as fragments.
    for deliver_fragments in [true, false] {
        let mut config = Config::default();
        config.deliver_fragments = deliver_fragments;
        config.validate_utf8 = false;
        let (mut ws, _) = ClientBuilder::new()
            .config(config)
            .connect(&url)
            .await
            .unwrap();
        let bytes = Bytes::from_static(&[b'o', b'k', 0x80, 0xff]);
        assert_eq!(next(&mut ws).await, fragment(DataKind::Text, bytes, true));
    }

    // Checked (the default), the same frame is refused with 1007.
    for deliver_fragments in [true, false] {
        let mut config = Config::default();
        config.deliver_fragments = deliver_fragments;
        let (mut ws, _) = ClientBuilder::new()
            .config(config)
            .connect(&url)
            .await
            .unwrap();
        let error = timeout(LIMIT, ws.recv()).await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Protocol);
        assert_eq!(error.protocol_error(), Some(ProtocolError::InvalidUtf8));
    }
}

//! The byte-stream adapter (the seed's `createWebSocketStream`) over loopback: piped through
//! `tokio::io::copy` on the server, written and read with `AsyncWriteExt`/`AsyncReadExt` on the
//! client.

use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{connect, ClientBuilder, CloseFrame, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn bytes_round_trip_through_a_piped_server() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|ws, _| async move {
        // Echo as a byte pipe: whatever is read is written back.
        let (mut reader, mut writer) = tokio::io::split(ws.into_byte_stream());
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
        let _ = writer.shutdown().await;
    }));

    let (ws, _) = ClientBuilder::new()
        .deflate(None)
        .connect(&url)
        .await
        .unwrap();
    let stream = ws.into_byte_stream();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let data: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let expected = data.clone();
    let sender = tokio::spawn(async move {
        for chunk in data.chunks(70_000) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    reader.read_to_end(&mut received).await.unwrap();
    sender.await.unwrap();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected);
}

#[tokio::test]
async fn messages_are_read_as_one_byte_stream() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        let _ = ws.feed("hello ").await;
        let _ = ws.feed(Message::binary(&b"binary "[..])).await;
        let _ = ws.feed("world").await;
        let _ = ws.close(Some(CloseFrame::new(1000u16, "done"))).await;
    }));
    let (ws, _) = connect(&url).await.unwrap();
    let mut stream = ws.into_byte_stream();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "hello binary world");
    let (ws, rest) = stream.into_inner();
    assert!(rest.is_empty());
    assert_eq!(ws.close_frame().map(|f| f.code.as_u16()), Some(1000));
}

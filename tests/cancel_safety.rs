//! Cancel safety, as each method's docs state it (the table is in the crate docs): every
//! public async method is polled to each of its pending points in turn and dropped there, then
//! the connection is checked against what its docs promise: nothing lost, nothing torn, still
//! usable. The pending points come from a stream that answers every I/O call first with
//! `Pending` and then moves at most a few bytes, over a real TCP connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use enim_labore_occaecati::proto::Role;
use enim_labore_occaecati::{
    CloseFrame, Config, DataKind, Message, PreparedMessage, Result, WebSocket,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Every I/O call answers `Pending` first (asking to be polled again), then moves at most
/// `CHUNK` bytes: a future over it stops at a pending point every other call.
struct Stutter {
    inner: TcpStream,
    /// Whether the next read (`[0]`) or write or flush (`[1]`) stalls: each direction
    /// alternates on its own, so reads never use up the writes' turns.
    stall: [bool; 2],
}

const CHUNK: usize = 5;

impl Stutter {
    fn stall(&mut self, direction: usize, cx: &mut Context<'_>) -> bool {
        self.stall[direction] = !self.stall[direction];
        if self.stall[direction] {
            cx.waker().wake_by_ref();
        }
        self.stall[direction]
    }
}

impl AsyncRead for Stutter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stall(0, cx) {
            return Poll::Pending;
        }
        let mut small = [0u8; CHUNK];
        let mut limited = ReadBuf::new(&mut small[..buf.remaining().min(CHUNK)]);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = polled {
            buf.put_slice(limited.filled());
        }
        polled
    }
}

impl AsyncWrite for Stutter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.stall(1, cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, &buf[..buf.len().min(CHUNK)])
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stall(1, cx) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client over a stuttering TCP connection and a plain server peer.
async fn pair() -> (WebSocket<Stutter>, WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let client = Stutter {
        inner: client,
        stall: [false; 2],
    };
    (
        WebSocket::from_raw(client, Role::Client, Config::default()),
        WebSocket::from_raw(server, Role::Server, Config::default()),
    )
}

/// Polls `future` up to `polls` times (each a pending point, or its end), letting the runtime
/// run between polls (so the peer and the I/O driver move on, as they would), then drops it.
/// Answers its output if it finished.
async fn poll_then_drop<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    for _ in 0..polls {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if let Poll::Ready(output) = polled {
            return Some(output);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Most pending points a method is tried at; each sweep must see the method finish before.
const MAX_POLLS: usize = 400;

/// Messages the peer receives up to and including the text "after".
async fn peer_reads_until_after(peer: &mut WebSocket<TcpStream>) -> Vec<Message> {
    let mut seen = Vec::new();
    loop {
        let message = peer.recv().await.unwrap().expect("a message");
        let last = message == Message::text("after");
        seen.push(message);
        if last {
            return seen;
        }
    }
}

/// A sending method (`op`, given `message`'s content): dropped at each pending point, the
/// message was queued whole or not at all, and the connection stays usable: the peer sees
/// `[message, "after"]` or `["after"]`. Answers how many drops found it queued.
async fn check_send_kind<F>(name: &str, message: Message, op: F) -> (usize, usize)
where
    F: for<'a> Fn(&'a mut WebSocket<Stutter>) -> Pin<Box<dyn Future<Output = Result<()>> + 'a>>,
{
    let (mut queued, mut not_queued) = (0, 0);
    for polls in 0..MAX_POLLS {
        let (mut ws, mut peer) = pair().await;
        let finished = poll_then_drop(op(&mut ws), polls).await;
        ws.send("after").await.unwrap();
        let seen = peer_reads_until_after(&mut peer).await;
        let after = Message::text("after");
        if seen == [message.clone(), after.clone()] {
            queued += 1;
        } else if seen == [after] && finished.is_none() {
            not_queued += 1;
        } else {
            panic!("{name} dropped after {polls} polls: the peer saw {seen:?}");
        }
        if let Some(result) = finished {
            result.unwrap();
            return (queued, not_queued);
        }
    }
    panic!("{name} did not finish within {MAX_POLLS} polls");
}

fn big_message() -> Message {
    Message::binary(vec![7u8; 300])
}

#[tokio::test]
async fn send_feed_and_prepared_queue_whole_or_not_at_all() {
    let prepared = PreparedMessage::from(big_message());
    let send = check_send_kind("send", big_message(), |ws| Box::pin(ws.send(big_message()))).await;
    let feed = check_send_kind("feed", big_message(), |ws| Box::pin(ws.feed(big_message()))).await;
    let send_prepared = check_send_kind("send_prepared", big_message(), |ws| {
        let prepared = prepared.clone();
        Box::pin(async move { ws.send_prepared(&prepared).await })
    })
    .await;
    for (name, (queued, not_queued)) in [
        ("send", send),
        ("feed", feed),
        ("send_prepared", send_prepared),
    ] {
        eprintln!("{name}: {queued} drops delivered the message, {not_queued} did not");
        // The first poll queues (the buffer is under its mark): only a drop before it loses it.
        assert_eq!(not_queued, 1, "{name}");
    }
    assert!(
        send.0 > 1,
        "send finished at its first poll: no pending point was tried"
    );
}

/// Pings and pongs: the peer answers or swallows them, so a drop anywhere leaves it usable.
#[tokio::test]
async fn ping_and_pong_leave_the_connection_usable() {
    let ping = Message::Ping(bytes::Bytes::from_static(b"are you there"));
    let pong = Message::Pong(bytes::Bytes::from_static(b"here"));
    for (name, control) in [("ping", ping), ("pong", pong)] {
        let mut done = false;
        for polls in 0..MAX_POLLS {
            let (mut ws, mut peer) = pair().await;
            let finished = poll_then_drop(ws.send(control.clone()), polls).await;
            ws.send("after").await.unwrap();
            assert_eq!(
                peer_reads_until_after(&mut peer).await,
                [Message::text("after")],
                "{name} dropped after {polls} polls"
            );
            if finished.is_some() {
                done = true;
                break;
            }
        }
        assert!(done, "{name} never finished");
    }
}

/// `send_fragment`: a fragment is queued whole by the first poll (the buffer under its mark);
/// the message goes on with the next fragment.
#[tokio::test]
async fn send_fragment_queues_whole_fragments() {
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let (mut ws, mut peer) = pair().await;
        ws.send_fragment(DataKind::Binary, vec![1u8; 40], false)
            .await
            .unwrap();
        let finished = poll_then_drop(
            ws.send_fragment(DataKind::Binary, vec![2u8; 40], true),
            polls,
        )
        .await;
        if polls == 0 {
            // Never polled: not queued, so the message is finished by a call again.
            ws.send_fragment(DataKind::Binary, vec![2u8; 40], true)
                .await
                .unwrap();
        }
        ws.send("after").await.unwrap();
        let mut whole = vec![1u8; 40];
        whole.extend_from_slice(&[2u8; 40]);
        assert_eq!(
            peer_reads_until_after(&mut peer).await,
            [Message::binary(whole), Message::text("after")],
            "dropped after {polls} polls"
        );
        if finished.is_some() {
            done = true;
            break;
        }
    }
    assert!(done, "send_fragment never finished");
}

/// `recv` and `recv_many`: a message is handed out only by the poll that returns it; dropped
/// anywhere else (mid-frame included), the next call gets it.
#[tokio::test]
async fn recv_and_recv_many_lose_nothing() {
    let sent: Vec<Message> = (0..4)
        .map(|i| Message::text(format!("message {i} {}", "x".repeat(60 + i * 20))))
        .collect();
    for many in [false, true] {
        let mut dropped_pending = 0;
        let mut done = false;
        for polls in 0..MAX_POLLS {
            let (mut ws, mut peer) = pair().await;
            for message in &sent {
                peer.send(message.clone()).await.unwrap();
            }
            let mut got = Vec::new();
            if many {
                if let Some(n) = poll_then_drop(ws.recv_many(&mut got, 2), polls).await {
                    assert_eq!(n.unwrap(), got.len());
                }
            } else if let Some(message) = poll_then_drop(ws.recv(), polls).await {
                got.push(message.unwrap().unwrap());
            }
            let first = got.len();
            while got.len() < sent.len() {
                got.push(ws.recv().await.unwrap().unwrap());
            }
            assert_eq!(got, sent, "recv_many={many}, dropped after {polls} polls");
            if first > 0 {
                done = true;
                break;
            }
            dropped_pending += 1;
        }
        assert!(done, "recv_many={many} never finished");
        // The first frame arrives in reads of at most 5 bytes: many drops were mid-frame.
        assert!(
            dropped_pending > 10,
            "recv_many={many}: {dropped_pending} drop points"
        );
    }
}

/// `flush`: bytes it wrote stay written, the rest stays queued.
#[tokio::test]
async fn flush_keeps_what_it_did_not_write() {
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let (mut ws, mut peer) = pair().await;
        ws.feed(big_message()).await.unwrap();
        let finished = poll_then_drop(ws.flush(), polls).await;
        ws.send("after").await.unwrap();
        assert_eq!(
            peer_reads_until_after(&mut peer).await,
            [big_message(), Message::text("after")],
            "dropped after {polls} polls"
        );
        if finished.is_some() {
            done = true;
            break;
        }
    }
    assert!(done, "flush never finished");
}

/// `close`: its first poll queues the close frame; dropped later, the handshake is finished by
/// calling `close` again, and the peer sees the one close frame.
#[tokio::test]
async fn close_can_be_resumed() {
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let (mut ws, mut peer) = pair().await;
        let peer_side = tokio::spawn(async move {
            assert_eq!(peer.recv().await.unwrap(), None);
            peer.close_frame().cloned()
        });
        let frame = CloseFrame::new(4000, "bye");
        let finished = poll_then_drop(ws.close(Some(frame.clone())), polls)
            .await
            .map(Result::unwrap)
            .is_some();
        if !finished {
            ws.close(Some(frame.clone())).await.unwrap();
        }
        assert_eq!(peer_side.await.unwrap(), Some(frame), "after {polls} polls");
        if finished {
            done = true;
            break;
        }
    }
    assert!(done, "close never finished");
}

/// The split halves: the reader's `recv` and the writer's `send` and `close` keep the promises
/// of the whole connection's methods; a `close` dropped is finished by `close` again.
#[tokio::test]
async fn split_halves_keep_the_same_promises() {
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let (ws, mut peer) = pair().await;
        let (mut reader, writer) = ws.split();
        peer.send("to the reader").await.unwrap();
        let received = poll_then_drop(reader.recv(), polls).await;
        let sent = poll_then_drop(writer.send(big_message()), polls).await;
        let received_at_once = received.is_some();
        let message = match received {
            Some(message) => message.unwrap(),
            None => reader.recv().await.unwrap(),
        };
        assert_eq!(message, Some(Message::text("to the reader")));
        writer.send("after").await.unwrap();
        let seen = peer_reads_until_after(&mut peer).await;
        if polls == 0 {
            assert_eq!(seen, [Message::text("after")]);
        } else {
            assert_eq!(seen, [big_message(), Message::text("after")], "{polls}");
        }
        let closed = poll_then_drop(writer.close(None), polls).await;
        if closed.is_none() {
            writer.close(None).await.unwrap();
        }
        assert_eq!(peer.recv().await.unwrap(), None, "after {polls} polls");
        if received_at_once && sent.is_some() && closed.is_some() {
            done = true;
            break;
        }
    }
    assert!(done, "the halves' methods never all finished");
}

/// The byte stream: a read that returned `Pending` took nothing, and a write that returned
/// `Pending` queued nothing (each completed write is one message).
#[tokio::test]
async fn byte_stream_reads_and_writes_lose_nothing() {
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let (ws, mut peer) = pair().await;
        let mut stream = ws.into_byte_stream();
        peer.send(Message::binary(&b"hello, stream"[..]))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let read = poll_then_drop(stream.read(&mut buf), polls)
            .await
            .map(Result::unwrap);
        let mut got = match read {
            Some(n) => buf[..n].to_vec(),
            None => Vec::new(),
        };
        while got.len() < 13 {
            let n = stream.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello, stream", "after {polls} polls");
        let written = poll_then_drop(stream.write(b"bytes"), polls).await;
        stream.write_all(b"after").await.unwrap();
        stream.flush().await.unwrap();
        let first = peer.recv().await.unwrap().unwrap();
        match written {
            Some(n) => {
                assert_eq!(n.unwrap(), 5);
                assert_eq!(first, Message::binary(&b"bytes"[..]));
                done = read.is_some();
                if done {
                    break;
                }
            }
            None => assert_eq!(first, Message::binary(&b"after"[..]), "{polls}"),
        }
    }
    assert!(done, "the byte stream's read and write never both finished");
}

/// `connect` and the server's accept path: a connect dropped at any point of the handshake
/// leaves nothing behind on either side (the server drops the half-made connection; no client
/// stays registered), and the next connect works.
#[tokio::test]
async fn a_dropped_connect_leaves_nothing_behind() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use enim_labore_occaecati::server::Server;
    use enim_labore_occaecati::ClientBuilder;
    let server = Server::builder().bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let handle = server.handle();
    // Handlers started and ended: equal once every connection the server took is gone.
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (on_start, on_end) = (started.clone(), ended.clone());
    tokio::spawn(server.serve(move |mut ws, _| {
        on_start.fetch_add(1, Ordering::SeqCst);
        let on_end = on_end.clone();
        async move {
            while let Ok(Some(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            on_end.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let client = ClientBuilder::new();
    let mut done = false;
    for polls in 0..MAX_POLLS {
        let finished = poll_then_drop(client.connect(&url), polls).await;
        let completed = matches!(finished, Some(Ok(_)));
        drop(finished);
        let (mut ws, _) = client.connect(&url).await.unwrap();
        ws.send("after").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(Message::text("after")));
        ws.close(None).await.unwrap();
        if completed {
            done = true;
            break;
        }
    }
    assert!(done, "connect never finished");
    tokio::time::timeout(Duration::from_secs(10), async {
        while started.load(Ordering::SeqCst) != ended.load(Ordering::SeqCst)
            || handle.client_count() > 0
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a connection the client dropped stayed on the server");
}

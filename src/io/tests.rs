//! The driver's buffers, over an in-memory pipe or loopback TCP.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::read_buffer::{FRAME_GROWTH, READ_MAX_STEP};
use super::WebSocket;
use crate::config::Config;
use crate::proto::connection::Role;
use crate::proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::proto::message::Message;
use crate::proto::spares::{Spares, READ_BUFFERS, STAGING};

/// A masked binary frame header with a zero mask key (so the payload bytes go on the wire
/// as they are).
fn masked_binary_header(len: u64) -> BytesMut {
    let mut header = BytesMut::new();
    FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Binary,
        mask: Some([0; 4]),
        payload_len: len,
    }
    .encode(&mut header);
    header
}

/// Writes one masked binary frame of `len` bytes of `fill` (the mask is all zeros).
/// Writes a masked binary frame in one write (it arrives whole when the pipe has room).
async fn write_masked_binary(peer: &mut tokio::io::DuplexStream, len: usize, fill: u8) {
    let mut frame = masked_binary_header(len as u64);
    frame.resize(frame.len() + len, fill);
    peer.write_all(&frame).await.unwrap();
}

/// Writes the header of a masked binary frame declared at `declared` bytes and its first
/// `sent` bytes, then checks that the connection waits for the rest.
async fn write_frame_start(
    ws: &mut WebSocket<tokio::io::DuplexStream>,
    peer: &mut tokio::io::DuplexStream,
    declared: usize,
    sent: usize,
    fill: u8,
) {
    peer.write_all(&masked_binary_header(declared as u64))
        .await
        .unwrap();
    peer.write_all(&vec![fill; sent]).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
    assert!(early.is_err(), "the frame can't be complete yet");
}

/// The read buffer of a frame in progress grows with the bytes that arrived, not with the
/// length its header declares; once the rest arrives the frame is whole.
#[tokio::test]
async fn frame_buffer_grows_with_bytes_received_not_declared_length() {
    const DECLARED: usize = 32 << 20;
    const SENT: usize = 100 << 10;
    let (mut peer, local) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
    write_frame_start(&mut ws, &mut peer, DECLARED, SENT, 7).await;
    let capacity = ws.conn.read_buffer().capacity();
    assert!(
        (SENT..=4 * SENT + READ_MAX_STEP).contains(&capacity),
        "{capacity} bytes of read buffer for {SENT} bytes received"
    );

    let writer = tokio::spawn(async move {
        peer.write_all(&vec![7u8; DECLARED - SENT]).await.unwrap();
        peer
    });
    let message = ws.recv().await.unwrap().expect("the whole frame");
    let Message::Binary(payload) = message else {
        panic!("expected a binary message, got {message:?}");
    };
    assert_eq!(payload.len(), DECLARED);
    assert!(payload.iter().all(|&byte| byte == 7));
    drop(writer.await.unwrap());
}

/// An idle connection holds no read buffer. A large frame's allocation is freed, never kept
/// as a spare (nor is the buffer of the size of a large frame that the next frame is read
/// into). A small frame's buffer goes to the thread's spares and the next messages are read
/// into it again: once reclaimed whole, then as it is while it has room, then reclaimed
/// whole again when its room runs low. No allocation per message.
#[tokio::test]
async fn idle_read_buffer_goes_to_the_spares_but_a_large_one_is_freed() {
    const LARGE: usize = 1 << 20;
    const SMALL: usize = 1000;
    // The header of a masked frame of SMALL bytes: 2 bytes, a 16-bit length and the key.
    const HEADER: usize = 8;
    // (start address, capacity) of each spare buffer.
    let pooled = || READ_BUFFERS.with(Spares::buffers);
    let (mut peer, local) = tokio::io::duplex(2 << 20);
    let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
    // Echo one message of `len` bytes and wait until the connection is idle; the address of
    // its payload.
    async fn one(
        ws: &mut WebSocket<tokio::io::DuplexStream>,
        peer: &mut tokio::io::DuplexStream,
        len: usize,
        fill: u8,
    ) -> usize {
        write_masked_binary(peer, len, fill).await;
        let message = ws.recv().await.unwrap().expect("a frame");
        assert_eq!(message.len(), len);
        let Message::Binary(payload) = message else {
            panic!("expected a binary message");
        };
        let at = payload.as_ptr() as usize;
        drop(payload);
        let idle = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
        assert!(idle.is_err(), "nothing more was sent");
        assert_eq!(
            ws.conn.read_buffer().capacity(),
            0,
            "an idle connection holds no buffer"
        );
        at
    }
    let all_small = |spares: &[(usize, usize)]| spares.iter().all(|&(_, c)| c <= READ_MAX_STEP);

    one(&mut ws, &mut peer, LARGE, 1).await;
    assert!(
        all_small(&pooled()),
        "a spare kept a large frame's allocation: {:?}",
        pooled()
    );
    // Read into a buffer as large as the last frame, which is freed too.
    one(&mut ws, &mut peer, SMALL, 2).await;
    assert!(
        all_small(&pooled()),
        "a spare kept a large buffer: {:?}",
        pooled()
    );

    // A new buffer (the spares are empty), reclaimed whole into the spares before the
    // message is read into it if a read came up empty first. Then each message is read into
    // the spare the one before left: after it, as it is, while it has room for a read (half
    // the connection's read chunk); once it hasn't, reclaimed whole, back to its start.
    let first = one(&mut ws, &mut peer, SMALL, 3).await;
    let start = first - HEADER;
    let spare_after = |at: usize| {
        let spares = pooled();
        assert!(all_small(&spares));
        match spares.iter().find(|&&(s, _)| s == start || s == at + SMALL) {
            Some(&spare) => spare,
            None => panic!("not in the spares: {spares:?}, the message was at {at}"),
        }
    };
    let (mut spare_at, room) = spare_after(first);
    let capacity = spare_at + room - start;
    let (mut kept_as_is, mut started_over) = (spare_at != start, false);
    for fill in 4..=80u8 {
        let at = one(&mut ws, &mut peer, SMALL, fill).await;
        assert_eq!(
            at,
            spare_at + HEADER,
            "message {fill} was read into the spare"
        );
        let room;
        (spare_at, room) = spare_after(at);
        assert_eq!(spare_at + room, start + capacity, "the same allocation");
        if spare_at == at + SMALL {
            assert!(
                room >= ws.read_sizing.chunk as usize / 2,
                "kept as it was with room for a read"
            );
            kept_as_is = true;
        } else {
            assert!(
                at + SMALL + ws.read_sizing.chunk as usize / 2 > start + capacity,
                "reclaimed when low"
            );
            started_over = true;
        }
    }
    assert!(kept_as_is, "a spare with room went back as it was");
    assert!(
        started_over,
        "a spare whose room ran low was reclaimed whole"
    );
}

/// After a large frame, a frame up to its size gets its whole buffer at once (the peer
/// delivered that much before), read into directly; a larger declared length earns nothing
/// more than that, or the usual growth with the bytes received.
#[tokio::test]
async fn a_frame_as_large_as_the_last_gets_its_buffer_at_once() {
    const LAST: usize = 300 << 10;
    const SENT: usize = 10 << 10;
    let (mut peer, local) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
    write_masked_binary(&mut peer, LAST, 1).await;
    assert_eq!(ws.recv().await.unwrap().expect("a frame").len(), LAST);
    let idle = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
    assert!(idle.is_err(), "nothing more was sent");
    assert_eq!(
        ws.conn.read_buffer().capacity(),
        0,
        "idle: the buffer was freed"
    );

    // As large as the last one: the whole frame's buffer, and the part sent is in it.
    write_frame_start(&mut ws, &mut peer, LAST, SENT, 2).await;
    let buf = ws.conn.read_buffer();
    assert_eq!(buf.len(), SENT);
    assert!(
        buf.capacity() >= LAST,
        "{} bytes of buffer for a frame of {LAST}",
        buf.capacity()
    );
    let start = buf.as_ptr() as usize;
    peer.write_all(&vec![2u8; LAST - SENT]).await.unwrap();
    let Some(Message::Binary(payload)) = ws.recv().await.unwrap() else {
        panic!("expected a binary message");
    };
    assert_eq!(
        payload.as_ptr() as usize,
        start,
        "read into that buffer, not copied"
    );
    assert!(payload.len() == LAST && payload.iter().all(|&b| b == 2));
    drop(payload);

    // Declared far larger: bounded by the last frame's size (or 4 x received + 64 KiB).
    write_frame_start(&mut ws, &mut peer, 32 << 20, SENT, 3).await;
    let capacity = ws.conn.read_buffer().capacity();
    let bound = (LAST + MAX_HEADER_LEN).max(FRAME_GROWTH * SENT + READ_MAX_STEP);
    assert!(
        (SENT..=bound).contains(&capacity),
        "{capacity} bytes of read buffer for {SENT} bytes of a frame declared at 32 MiB"
    );
}

/// Two large frames back to back, the second arriving in the buffer the first one leaves:
/// both arrive intact (the early reservation of the rest of a frame is exercised).
#[tokio::test]
async fn large_frames_back_to_back_arrive_intact() {
    const LEN: usize = (1 << 20) + 3;
    let (mut peer, local) = tokio::io::duplex(256 << 10);
    let mut ws = WebSocket::from_raw(local, Role::Server, Config::default());
    let writer = tokio::spawn(async move {
        for fill in [1u8, 2, 3] {
            write_masked_binary(&mut peer, LEN, fill).await;
        }
        peer
    });
    for fill in [1u8, 2, 3] {
        let Some(Message::Binary(payload)) = ws.recv().await.unwrap() else {
            panic!("expected a binary message");
        };
        assert_eq!(payload.len(), LEN);
        assert!(payload.iter().all(|&byte| byte == fill));
    }
    drop(writer.await.unwrap());
}

/// The whole echo path through the driver over an in-memory pipe: a message each way, then a
/// close handshake that ends both sides cleanly.
#[tokio::test]
async fn echo_and_close_over_a_pipe() {
    let (a, b) = tokio::io::duplex(64 << 10);
    let mut client = WebSocket::from_raw(a, Role::Client, Config::default());
    let mut server = WebSocket::from_raw(b, Role::Server, Config::default());
    let echo = tokio::spawn(async move {
        while let Some(message) = server.recv().await.unwrap() {
            server.send(message).await.unwrap();
        }
        server.close_frame().map(|f| f.code.as_u16())
    });
    client.send("over the pipe").await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Message::text("over the pipe"))
    );
    client.close(None).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), None);
    assert_eq!(echo.await.unwrap(), None, "a close frame without a code");
}

/// A peer that never answers the close frame: `close` gives up after the close timeout (on
/// tokio's paused clock), with a timeout error.
#[tokio::test(start_paused = true)]
async fn close_times_out_when_the_peer_is_silent() {
    let (a, _silent) = tokio::io::duplex(64 << 10);
    let config = Config {
        close_timeout: Duration::from_secs(7),
        ..Config::default()
    };
    let mut client = WebSocket::from_raw(a, Role::Client, config);
    let started = tokio::time::Instant::now();
    let error = client.close(None).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(client.recv().await.unwrap(), None, "finished");
}

/// A ping every 30 s, answered within 10 s.
fn heartbeat_30_10() -> Config {
    Config {
        heartbeat: Some(crate::config::Heartbeat::new(
            Duration::from_secs(30),
            Duration::from_secs(10),
        )),
        ..Config::default()
    }
}

/// A heartbeat ping that goes unanswered ends `recv` with a timeout error, interval plus
/// timeout after the start (paused clock).
#[tokio::test(start_paused = true)]
async fn unanswered_heartbeat_ends_the_connection() {
    let (a, _silent) = tokio::io::duplex(64 << 10);
    let config = heartbeat_30_10();
    let mut client = WebSocket::from_raw(a, Role::Client, config);
    let started = tokio::time::Instant::now();
    let error = client.recv().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(40));
}

/// A send that waits on a peer that stopped reading ends when the heartbeat's ping goes
/// unanswered: interval + timeout after the start (paused clock). It waited forever before.
#[tokio::test(start_paused = true)]
async fn a_send_blocked_on_a_peer_that_stopped_reading_ends_with_the_heartbeat() {
    let (a, _stopped_reading) = tokio::io::duplex(16 << 10);
    let config = heartbeat_30_10();
    let mut server = WebSocket::from_raw(a, Role::Server, config);
    let started = tokio::time::Instant::now();
    let error = loop {
        if let Err(error) = server.send(Message::binary(vec![0u8; 64 << 10])).await {
            break error;
        }
    };
    assert!(error.is_timeout(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(40));
}

/// A write buffer mark of 0 means "write before queueing more", not a busy loop: with nothing
/// buffered, `send` queues and writes (it spun forever before, and hung this test).
#[tokio::test]
async fn a_write_buffer_mark_of_zero_still_sends() {
    let (a, b) = tokio::io::duplex(64 << 10);
    let config = Config {
        max_write_buffer: 0,
        ..Config::default()
    };
    let mut client = WebSocket::from_raw(a, Role::Client, config);
    let mut server = WebSocket::from_raw(b, Role::Server, Config::default());
    client.send("one").await.unwrap();
    client.send("two").await.unwrap();
    assert_eq!(server.recv().await.unwrap(), Some(Message::text("one")));
    assert_eq!(server.recv().await.unwrap(), Some(Message::text("two")));
}

/// A connection that wrote all it owed keeps no output buffer, over a real socket: its staging
/// buffer goes to the thread's spares, and the next message is staged in it again (no
/// allocation per message). The partial writes and the size bound are the core's tests.
#[tokio::test]
async fn a_connection_that_wrote_everything_keeps_no_output_buffer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) =
        tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let mut client = WebSocket::from_raw(connected.unwrap(), Role::Client, Config::default());
    let mut server = WebSocket::from_raw(accepted.unwrap().0, Role::Server, Config::default());
    // Messages of 1 KiB, echoed: replies staged (copied), not queued as shared payloads.
    async fn burst(
        client: &mut WebSocket<tokio::net::TcpStream>,
        server: &mut WebSocket<tokio::net::TcpStream>,
        count: usize,
    ) {
        for i in 0..count {
            client
                .feed(Message::binary(vec![i as u8; 1024]))
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        let mut received = Vec::new();
        for _ in 0..count {
            received.push(server.recv().await.unwrap().expect("a message"));
        }
        // Staged together, then written.
        for message in &received {
            server.conn.send(message).unwrap();
        }
        assert!(server.conn.output_capacity() >= count * 1024);
        server.flush().await.unwrap();
        assert_eq!(
            server.conn.output_capacity(),
            0,
            "all written: no buffer kept"
        );
        for i in 0..count {
            let echo = client.recv().await.unwrap().expect("an echo");
            assert_eq!(echo, Message::binary(vec![i as u8; 1024]));
        }
        assert_eq!(client.conn.output_capacity(), 0);
    }
    burst(&mut client, &mut server, 16).await;
    let spares = STAGING.with(Spares::buffers);
    assert!(
        spares.iter().any(|&(_, capacity)| capacity >= 16 * 1024),
        "the burst's buffer is a spare: {spares:?}"
    );
    // One message at a time: staged in the spares, no new buffer.
    for _ in 0..3 {
        burst(&mut client, &mut server, 1).await;
        assert_eq!(
            STAGING.with(Spares::buffers),
            spares,
            "the same buffers, reused"
        );
    }
}

//! The load generator's minimal WebSocket client over a raw tokio `TcpStream`, identical for
//! every server: a hand-written handshake, request frames masked once per payload with a fixed
//! key (and sent from one shared buffer), replies parsed header by header with their payload
//! skipped, not copied.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use elo_bench::frames::{header_len, masked_frame, parse_header, ReplyParser};

/// The RFC 6455 §1.3 sample key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Connects and performs the opening handshake (within `timeout`).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    tokio::time::timeout(timeout, connect_inner(addr))
        .await
        .map_err(|_| err("handshake timed out"))?
}

async fn connect_inner(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    handshake(&mut stream, addr).await?;
    Ok(stream)
}

/// Connects over TLS (trusting the bench's own certificate) and performs the opening
/// handshake (within `timeout`).
pub async fn connect_tls(
    addr: SocketAddr,
    timeout: Duration,
    tls: &crate::tls::Certificate,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut stream = tls.connect(tcp).await?;
        handshake(&mut stream, addr).await?;
        Ok(stream)
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| err("handshake timed out"))?
}

/// The client side of the opening handshake on `stream`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
) -> io::Result<()> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // Read the response head byte-exactly (a server sends nothing after it until we do), so
    // no frame bytes can be left behind in a buffer here.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || stream.read(&mut byte).await? == 0 {
            return Err(err("bad handshake response"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") || !head.contains(ACCEPT) {
        return Err(err(format!("handshake refused: {head:?}")));
    }
    Ok(())
}

/// Sends one message of `payload` and checks that exactly the same bytes come back.
pub async fn verify_echo(
    addr: SocketAddr,
    payload: &[u8],
    tls: Option<&crate::tls::Certificate>,
) -> io::Result<()> {
    match tls {
        Some(tls) => {
            let mut stream = connect_tls(addr, Duration::from_secs(10), tls).await?;
            echo_burst(&mut stream, payload, 1).await
        }
        None => echo_burst(&mut connect_inner(addr).await?, payload, 1).await,
    }
}

/// Sends `count` messages of `payload` at once and checks that each comes back whole.
pub async fn echo_burst<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
    count: usize,
) -> io::Result<()> {
    let check = async {
        stream
            .write_all(&masked_frame(payload).repeat(count))
            .await?;
        let mut buf = Vec::with_capacity(payload.len() + 64);
        let mut received = Vec::with_capacity(payload.len());
        let mut echoed = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            // Parse whole frames out of `buf`.
            while buf.len() >= 2 && buf.len() >= header_len(buf[1]) {
                let n = header_len(buf[1]);
                let (b0, _, len) = parse_header(&buf[..n]);
                if buf.len() < n + len as usize {
                    break;
                }
                if b0 & 0x0f == 0x8 {
                    return Err(err("server closed"));
                }
                if b0 & 0x0f < 0x8 {
                    received.extend_from_slice(&buf[n..n + len as usize]);
                    if b0 & 0x80 != 0 {
                        if received != payload {
                            return Err(err("echo differs from what was sent"));
                        }
                        received.clear();
                        echoed += 1;
                        if echoed == count {
                            return Ok(());
                        }
                    }
                }
                buf.drain(..n + len as usize);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(err("connection closed before the echo"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .map_err(|_| err("no echo within 10 s"))?
}

/// [`drive`] over any stream (TLS): a writer and a reader on the two halves of the stream,
/// the reader handing the writer one permit per reply, so `k` messages stay in flight.
pub async fn drive_stream<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    frames: Arc<Vec<u8>>,
    frame_len: usize,
    k: usize,
    payload_len: usize,
    counter: Arc<AtomicU64>,
) -> io::Result<()> {
    let (reader, writer) = tokio::io::split(stream);
    let permits = Arc::new(tokio::sync::Semaphore::new(k));
    let write = write_on_permits(writer, permits.clone(), frames, frame_len);
    let read = count_replies(reader, permits, payload_len, counter);
    tokio::try_join!(write, read).map(|_| ())
}

/// Writes one frame per permit, all the permits available at once in one write.
async fn write_on_permits<W: AsyncWrite + Unpin>(
    mut writer: W,
    permits: Arc<tokio::sync::Semaphore>,
    frames: Arc<Vec<u8>>,
    frame_len: usize,
) -> io::Result<()> {
    loop {
        // At least one; the single writer may take all that are there.
        let n = permits.available_permits().max(1);
        permits
            .acquire_many(n as u32)
            .await
            .map_err(|_| err("closed"))?
            .forget();
        writer.write_all(&frames[..n * frame_len]).await?;
        writer.flush().await?;
    }
}

/// Counts complete replies and hands the writer one permit for each.
async fn count_replies<R: AsyncRead + Unpin>(
    mut reader: R,
    permits: Arc<tokio::sync::Semaphore>,
    payload_len: usize,
    counter: Arc<AtomicU64>,
) -> io::Result<()> {
    let mut parser = ReplyParser::new(payload_len);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Err(err("server closed the connection"));
        }
        let done = parser.feed(&buf[..n])?;
        if done > 0 {
            counter.fetch_add(done, Ordering::Relaxed);
            permits.add_permits(done as usize);
        }
    }
}

/// Drives one connection until aborted: keeps `k` messages in flight, sending one more for
/// every reply. `frames` holds `k` copies of the same masked frame of `frame_len` bytes, so
/// any run of pending frames (even starting mid-frame) is one slice of it. Reading and writing
/// are interleaved on one task with `ready`/`try_*`, so neither side can deadlock on full
/// socket buffers whatever the in-flight volume. Reads and writes are single system calls on
/// the socket (see `read_some`), so the client spends no EAGAIN calls per wake-up.
pub async fn drive(
    stream: TcpStream,
    frames: Arc<Vec<u8>>,
    frame_len: usize,
    k: usize,
    payload_len: usize,
    counter: Arc<AtomicU64>,
    latencies: Arc<elo_bench::latency::Latencies>,
) -> io::Result<()> {
    let mut parser = ReplyParser::new(payload_len);
    // When each message in flight was written whole, oldest first: replies come in order.
    let mut sent = std::collections::VecDeque::with_capacity(k);
    let mut rbuf = vec![0u8; if payload_len >= 64 * 1024 { 256 } else { 64 } * 1024];
    let mut pending = k; // frames not yet fully written
    let mut offset = 0; // bytes of the first pending frame already written
    loop {
        let interest = if pending > 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let ready = stream.ready(interest).await?;
        if ready.is_readable() {
            if let Some(n) = read_some(&stream, &mut rbuf)? {
                if n == 0 {
                    return Err(err("server closed the connection"));
                }
                let done = parser.feed(&rbuf[..n])?;
                if done > 0 {
                    counter.fetch_add(done, Ordering::Relaxed);
                    pending += done as usize;
                    let now = std::time::Instant::now();
                    for _ in 0..done {
                        if let Some(at) = sent.pop_front() {
                            latencies.record(now - at);
                        }
                    }
                }
            }
        }
        // Answer the replies just read right away. Without write readiness this returns
        // `None` without a system call, and the next `ready` waits for it.
        if pending > 0 {
            if let Some(n) = write_some(&stream, &frames[offset..pending * frame_len])? {
                offset += n;
                let written = offset / frame_len;
                pending -= written;
                offset %= frame_len;
                if written > 0 {
                    let now = std::time::Instant::now();
                    sent.extend(std::iter::repeat_n(now, written));
                }
            }
        }
    }
}

/// One `read(2)` if tokio saw the socket readable; `None` if it would block. A short read
/// means the socket is drained, so it clears tokio's readiness right away, as tokio's own
/// `poll_read` does (`try_read` does not, which costs one more EAGAIN `read` per wake-up).
/// Clearing is race-free: tokio only clears if no new event arrived since.
fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let fd = stream.as_raw_fd();
    let mut got = None;
    let result = stream.try_io(Interest::READABLE, || {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `fd` is open while
        // `stream` is borrowed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        got = Some(n);
        if n > 0 && n < buf.len() {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    finish(result, got)
}

/// One `write(2)` if tokio saw the socket writable; `None` if it would block. A short write
/// means the send buffer is full, so it clears tokio's write readiness (as `poll_write` does).
fn write_some(stream: &TcpStream, buf: &[u8]) -> io::Result<Option<usize>> {
    let fd = stream.as_raw_fd();
    let mut got = None;
    let result = stream.try_io(Interest::WRITABLE, || {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is open while
        // `stream` is borrowed.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        got = Some(n);
        if n < buf.len() {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    finish(result, got)
}

fn finish(result: io::Result<()>, got: Option<usize>) -> io::Result<Option<usize>> {
    match result {
        Ok(()) => Ok(got),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(got)
        }
        Err(e) => Err(e),
    }
}

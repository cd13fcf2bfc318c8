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

/// The RFC 6455 §1.3 sample key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

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

/// A masked binary frame carrying `payload`, as a client sends it.
pub fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x82);
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= 0xffff {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Deterministic payload bytes (xorshift), not all zeros so a broken unmask shows.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn header_len(b1: u8) -> usize {
    2 + match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    } + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Incremental parser of the server's (unmasked) frames: counts complete data messages of the
/// expected length and skips their payload bytes without copying them.
pub struct ReplyParser {
    expected: u64,
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes of the current frame still to skip.
    remaining: u64,
    /// Opcode and FIN of the current frame.
    opcode: u8,
    fin: bool,
    /// Length of the data message assembled so far.
    message_len: u64,
}

impl ReplyParser {
    pub fn new(expected: usize) -> ReplyParser {
        ReplyParser {
            expected: expected as u64,
            hdr: [0; 14],
            hdr_len: 0,
            remaining: 0,
            opcode: 0,
            fin: false,
            message_len: 0,
        }
    }

    /// Consumes `data`; returns how many complete messages it finished.
    pub fn feed(&mut self, mut data: &[u8]) -> io::Result<u64> {
        let mut done = 0;
        loop {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining > 0 {
                    return Ok(done);
                }
                done += self.end_of_frame()?;
                continue;
            }
            if data.is_empty() {
                return Ok(done);
            }
            let (b0, b1, len);
            if self.hdr_len == 0 && data.len() >= 2 && data.len() >= header_len(data[1]) {
                let n = header_len(data[1]);
                (b0, b1, len) = parse_header(&data[..n]);
                data = &data[n..];
            } else {
                while self.hdr_len < 2 && !data.is_empty() {
                    self.hdr[self.hdr_len] = data[0];
                    self.hdr_len += 1;
                    data = &data[1..];
                }
                if self.hdr_len < 2 {
                    return Ok(done);
                }
                let need = header_len(self.hdr[1]);
                while self.hdr_len < need && !data.is_empty() {
                    self.hdr[self.hdr_len] = data[0];
                    self.hdr_len += 1;
                    data = &data[1..];
                }
                if self.hdr_len < need {
                    return Ok(done);
                }
                (b0, b1, len) = parse_header(&self.hdr[..need]);
                self.hdr_len = 0;
            }
            if b1 & 0x80 != 0 {
                return Err(err("server sent a masked frame"));
            }
            self.fin = b0 & 0x80 != 0;
            self.opcode = b0 & 0x0f;
            if self.opcode == 0x8 {
                return Err(err("server sent a close frame"));
            }
            if self.opcode < 0x8 {
                self.message_len += len;
            }
            self.remaining = len;
            if len == 0 {
                done += self.end_of_frame()?;
            }
        }
    }

    fn end_of_frame(&mut self) -> io::Result<u64> {
        if self.opcode >= 0x8 || !self.fin {
            return Ok(0); // ping/pong, or a fragment of a longer message
        }
        let len = std::mem::take(&mut self.message_len);
        if len != self.expected {
            return Err(err(format!(
                "echo of {} bytes, expected {}",
                len, self.expected
            )));
        }
        Ok(1)
    }
}

fn parse_header(h: &[u8]) -> (u8, u8, u64) {
    let len = match h[1] & 0x7f {
        126 => u16::from_be_bytes([h[2], h[3]]) as u64,
        127 => u64::from_be_bytes(h[2..10].try_into().unwrap()),
        n => n as u64,
    };
    (h[0], h[1], len)
}

/// Sends one message of `payload` and checks that exactly the same bytes come back.
pub async fn verify_echo(
    addr: SocketAddr,
    payload: &[u8],
    tls: Option<&crate::tls::Certificate>,
) -> io::Result<()> {
    match tls {
        Some(tls) => {
            verify_echo_on(
                connect_tls(addr, Duration::from_secs(10), tls).await?,
                payload,
            )
            .await
        }
        None => verify_echo_on(connect_inner(addr).await?, payload).await,
    }
}

async fn verify_echo_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    payload: &[u8],
) -> io::Result<()> {
    let check = async {
        stream.write_all(&masked_frame(payload)).await?;
        let mut buf = Vec::with_capacity(payload.len() + 64);
        let mut received = Vec::with_capacity(payload.len());
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
                        return if received == payload {
                            Ok(())
                        } else {
                            Err(err("echo differs from what was sent"))
                        };
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
) -> io::Result<()> {
    let mut parser = ReplyParser::new(payload_len);
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
                }
            }
        }
        // Answer the replies just read right away. Without write readiness this returns
        // `None` without a system call, and the next `ready` waits for it.
        if pending > 0 {
            if let Some(n) = write_some(&stream, &frames[offset..pending * frame_len])? {
                offset += n;
                pending -= offset / frame_len;
                offset %= frame_len;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(payload_len: usize, fin: bool, opcode: u8) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if payload_len < 126 {
            f.push(payload_len as u8);
        } else if payload_len <= 0xffff {
            f.push(126);
            f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn parser_counts_across_any_split() {
        for len in [0usize, 16, 125, 126, 1024, 70_000] {
            let mut stream = Vec::new();
            for _ in 0..3 {
                stream.extend(server_frame(len, true, 2));
            }
            stream.extend(server_frame(0, true, 0x9)); // a ping in between
            stream.extend(server_frame(len / 2, false, 2));
            stream.extend(server_frame(len - len / 2, true, 0));
            for chunk in [1usize, 2, 3, 7, 64, 100_000] {
                let mut p = ReplyParser::new(len);
                let total: u64 = stream.chunks(chunk).map(|c| p.feed(c).unwrap()).sum();
                assert_eq!(total, 4, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn parser_rejects_wrong_length_and_close() {
        assert!(ReplyParser::new(5).feed(&server_frame(4, true, 2)).is_err());
        assert!(ReplyParser::new(5).feed(&server_frame(2, true, 8)).is_err());
    }
}

//! Attacks that hurt other WebSocket libraries, each replayed over a real socket with the
//! bound it must stay under (CPU time, memory). The figures are printed (`--no-capture`).

use crate::common;

use std::time::Duration;

use common::{
    cpu_time, echo_server, masked_frame, raw_upgrade, read_close_code, read_frame, rss_kib,
};
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{Config, HandshakeLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// CPU the process spent on `work` (its threads' run time, in nanoseconds), for attacks whose
/// cost is computation.
async fn cpu_spent<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = cpu_time().expect("/proc/self/stat");
    let out = work.await;
    (out, cpu_time().expect("/proc/self/stat") - before)
}

/// Node `ws` CVE-2024-37890: a request with very many headers crashed the server. Here:
/// 10 000 headers (under a 1 MiB head limit) get 431, and the server keeps serving.
#[tokio::test]
async fn cve_2024_37890_ten_thousand_headers_get_431_and_the_server_lives() {
    let mut limits = HandshakeLimits::default();
    limits.max_head_size = 1 << 20;
    let (addr, _) = echo_server(Server::builder().handshake_limits(limits)).await;
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        head.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let (status, cpu) = cpu_spent(crate::limits::status_for(addr, head)).await;
    let status = status.expect("a response");
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    eprintln!("10 000 headers: {status}, {cpu:?} of CPU (bound 1 s)");
    assert!(cpu < Duration::from_secs(1), "{cpu:?}");
    raw_upgrade(addr).await;
}

/// tungstenite CVE-2023-43669: a long header re-parsed on every read took minutes of CPU.
/// Here: a head just under the 16 KiB limit, trickled one byte per write, over a socket. (That
/// each byte is scanned a bounded number of times is proven exactly by
/// `handshake::head`'s unit test; this bounds the whole exchange's CPU.)
#[tokio::test]
async fn cve_2023_43669_a_long_header_trickled_is_parsed_in_linear_time() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        .to_vec();
    let pad = (16 << 10) - head.len() - 16;
    head.extend_from_slice(format!("X-Pad: {}\r\n\r\n", "p".repeat(pad)).as_bytes());
    let trickle = async {
        for byte in &head {
            tcp.write_all(std::slice::from_ref(byte)).await.unwrap();
        }
        common::read_head(&mut tcp).await
    };
    let (response, cpu) = cpu_spent(trickle).await;
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    // Most of it is the 16 000 writes and reads of one byte each, on both ends.
    eprintln!(
        "{} bytes trickled one at a time: {cpu:?} of CPU (bound 2 s)",
        head.len()
    );
    assert!(cpu < Duration::from_secs(2), "{cpu:?}");
}

/// Node `ws` CVE-2021-32640: a crafted `Sec-WebSocket-Protocol` value made a backtracking
/// parser spin. Here: the worst shape for such a parser, spaces between two tokens, is
/// refused with 400 in one pass.
#[tokio::test]
async fn cve_2021_32640_crafted_subprotocol_header_is_refused_in_one_pass() {
    let (addr, _) = echo_server(Server::builder().protocols(["chat"])).await;
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        .to_vec();
    let spaces = " ".repeat(7_000);
    head.extend_from_slice(
        format!("Sec-WebSocket-Protocol: b{spaces}x,{spaces}\r\n\r\n").as_bytes(),
    );
    let (status, cpu) = cpu_spent(crate::limits::status_for(addr, head)).await;
    let status = status.expect("a response");
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    eprintln!("crafted subprotocol header: {status}, {cpu:?} of CPU (bound 1 s)");
    assert!(cpu < Duration::from_secs(1), "{cpu:?}");
}

/// Node `ws` 2026 advisory: floods of tiny fragments pinned 13-16 MB for 0.87 MB of traffic,
/// the per-fragment bookkeeping costing far more than the payload. Here a message's fragments
/// are appended to one buffer: 200 000 one-byte fragments (1.4 MB of traffic) held unfinished
/// cost about their payload, and the finished message arrives whole.
#[tokio::test]
async fn tiny_fragment_flood_holds_about_its_payload() {
    const FRAGMENTS: usize = 200_000;
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = raw_upgrade(addr).await;
    let fragment = masked_frame(0x00, b"x");
    let traffic = FRAGMENTS * fragment.len();
    let before = rss_kib().expect("/proc/self/status");
    tcp.write_all(&masked_frame(0x02, b"x")).await.unwrap();
    // Written a thousand at a time, so this side holds little of it.
    let batch = fragment.repeat(1000);
    for _ in 0..(FRAGMENTS - 2) / 1000 {
        tcp.write_all(&batch).await.unwrap();
    }
    for _ in 0..(FRAGMENTS - 2) % 1000 {
        tcp.write_all(&fragment).await.unwrap();
    }
    // A ping behind the fragments: its pong means every fragment before it was taken in.
    tcp.write_all(&masked_frame(0x89, b"sync")).await.unwrap();
    let (first, payload) = read_frame(&mut tcp).await;
    assert_eq!((first, payload.as_slice()), (0x8a, &b"sync"[..]));
    let held = rss_kib().expect("/proc/self/status").saturating_sub(before);
    eprintln!(
        "{FRAGMENTS} one-byte fragments, {traffic} bytes of traffic: RSS +{held} KiB while \
         held (bound 2 MiB)"
    );
    assert!(held < 2 << 10, "RSS grew by {held} KiB");
    tcp.write_all(&masked_frame(0x80, b"x")).await.unwrap();
    let (first, payload) = read_frame(&mut tcp).await;
    assert_eq!(first, 0x82);
    assert_eq!(payload.len(), FRAGMENTS);
}

/// rust-websocket RUSTSEC-2022-0035: a frame's declared length was allocated up front. Here a
/// frame declaring 60 MiB (under the 64 MiB limits, so it is accepted) with 1000 bytes sent
/// makes the server reserve about what arrived: neither its resident nor its virtual memory
/// grows by the declared length. (A 2^40 declaration is refused from its header: `limits.rs`.)
#[tokio::test]
async fn rustsec_2022_0035_declared_length_is_not_allocated() {
    let (addr, _) = echo_server(Server::builder()).await;
    let mut tcp = raw_upgrade(addr).await;
    let (rss, virt) = (rss_kib().unwrap(), vm_size_kib().unwrap());
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&(60u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.unwrap();
    tcp.write_all(&[0u8; 1000]).await.unwrap();
    // A ping can't go between a frame's bytes. The server runs on this test's one thread: two
    // round trips on a second connection let it take in what the first one sent.
    let mut other = raw_upgrade(addr).await;
    for _ in 0..2 {
        other.write_all(&masked_frame(0x89, b"sync")).await.unwrap();
        assert_eq!(read_frame(&mut other).await, (0x8a, b"sync".to_vec()));
    }
    let grown_rss = rss_kib().unwrap().saturating_sub(rss);
    let grown_virt = vm_size_kib().unwrap().saturating_sub(virt);
    eprintln!(
        "a frame declaring 60 MiB, 1000 bytes sent: RSS +{grown_rss} KiB, virtual +{grown_virt} \
         KiB (bound 8 MiB each)"
    );
    assert!(grown_rss < 8 << 10, "RSS grew by {grown_rss} KiB");
    assert!(
        grown_virt < 8 << 10,
        "virtual memory grew by {grown_virt} KiB"
    );
}

/// This process's virtual memory size, in KiB: an allocation shows here even untouched.
fn vm_size_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A compressed message that inflates past the message limit (a deflate bomb): inflation
/// stops at the limit, 1009. 256 MiB of zeros in a few hundred KiB, a 1 MiB limit.
#[tokio::test]
async fn deflate_bomb_stops_at_the_message_limit_with_1009() {
    let mut config = Config::default();
    config.max_message_size = 1 << 20;
    let addr = crate::deflate::deflate_echo_server(DeflateConfig::default(), config).await;
    let mut tcp = crate::deflate::raw_deflate_upgrade(addr).await;
    let bomb = crate::deflate::compressed(&vec![0u8; 256 << 20]);
    assert!(bomb.len() < 1 << 20);
    let frame = masked_frame(0xc2, &bomb);
    let before = rss_kib().expect("/proc/self/status");
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, Some(1009));
    let grown = rss_kib().expect("/proc/self/status").saturating_sub(before);
    eprintln!(
        "{} bytes inflating to 256 MiB, limit 1 MiB: 1009, RSS +{grown} KiB (bound 8 MiB)",
        bomb.len()
    );
    assert!(grown < 8 << 10, "RSS grew by {grown} KiB");
}

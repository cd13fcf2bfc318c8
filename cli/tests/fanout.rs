//! `elo serve --mode broadcast` as users run it: several server processes joined through a real
//! broker (Debian's `redis-server` and `nats-server`, started here through
//! `scripts/brokers/run.sh` on free loopback ports, and killed with SIGKILL), and a client that
//! stops reading while another sends 200 000 messages. Without the brokers' binaries these
//! tests skip, except under CI (`CI` set), where they fail.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::{connect, Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const ELO: &str = env!("CARGO_BIN_EXE_elo");
const LIMIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `program` can run here; without it, a skip (a failure under CI).
fn available(program: &str) -> bool {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("PATH=$PATH:/usr/sbin:/sbin command -v {program}"),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing (scripts/brokers/install.sh installs it)"
        );
        eprintln!("skipped: {program} is missing (scripts/brokers/install.sh installs it)");
    }
    found
}

/// A broker process, killed when dropped.
struct Broker {
    kind: &'static str,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn start(kind: &'static str) -> Broker {
        let mut broker = Broker {
            kind,
            port: free_port(),
            child: None,
        };
        broker.restart();
        broker
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.kind, self.port)
    }

    /// Starts it (again) on its port, and waits for the line it logs once it accepts
    /// connections (Redis on stdout, NATS on stderr).
    fn restart(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/brokers/run.sh");
        let mut child = Command::new("bash")
            .arg(script)
            .args([self.kind, &self.port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the broker");
        let (lines, read) = std::sync::mpsc::channel();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let lines = lines.clone();
            // Drained to the end, so the broker never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        self.child = Some(child);
        loop {
            let line = read
                .recv_timeout(LIMIT)
                .unwrap_or_else(|_| panic!("{} did not start", self.kind));
            if line.contains("Ready to accept connections") || line.contains("Server is ready") {
                return;
            }
        }
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `elo serve` process; its stderr lines are collected.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Log>,
}

/// A node's stderr lines, and a wake-up for each new one.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: tokio::sync::Notify,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let mut child = Command::new(ELO)
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn elo serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first.trim().strip_prefix("listening on ws://").unwrap();
        let addr = url.trim_end_matches('/').parse().unwrap();
        let log = Arc::new(Log::default());
        let lines = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lines.lock().unwrap().push(line);
                lines.grew.notify_waiters();
            }
        });
        Node { child, addr, log }
    }

    /// Waits for a stderr line containing `needle`, the `nth` one (0: the first).
    async fn wait_for(&self, needle: &str, nth: usize) {
        let found = timeout(LIMIT, async {
            loop {
                // Registered before the lines are read: a line added meanwhile still wakes it.
                let grew = self.log.grew.notified();
                tokio::pin!(grew);
                grew.as_mut().enable();
                let seen = {
                    let lines = self.log.lines.lock().unwrap();
                    lines.iter().filter(|l| l.contains(needle)).count()
                };
                if seen > nth {
                    return;
                }
                grew.await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {needle:?} in {:#?}",
            self.log.lines.lock().unwrap()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The server's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next_text(ws: &mut WebSocket<ClientStream>) -> String {
    match timeout(LIMIT, ws.recv()).await {
        Ok(Ok(Some(Message::Text(text)))) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Every client sends `count` messages, then a `done` marker; every client must see each
/// message of every other client exactly once, none of its own, and nothing from another room.
async fn exchange(clients: &mut [WebSocket<ClientStream>], round: &str, count: usize) {
    for (i, client) in clients.iter_mut().enumerate() {
        for k in 0..count {
            client.feed(format!("{round} {i} {k}")).await.unwrap();
        }
        client.send(format!("{round} {i} done")).await.unwrap();
    }
    let n = clients.len();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut done = 0;
        while done < n - 1 {
            let text = next_text(client).await;
            if text.starts_with("settle") {
                continue;
            }
            let mut parts = text.split(' ');
            assert_eq!(parts.next(), Some(round), "{text}");
            let from: usize = parts.next().unwrap().parse().unwrap();
            assert_ne!(from, i, "a client got its own message back");
            if parts.next() == Some("done") {
                done += 1;
            } else {
                *seen.entry(text.clone()).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), (n - 1) * count, "client {i}: every message");
        assert!(seen.values().all(|&c| c == 1), "client {i}: each once");
    }
}

async fn three_nodes_through(kind: &'static str) {
    if !available(if kind == "redis" {
        "redis-server"
    } else {
        "nats-server"
    }) {
        return;
    }
    let mut broker = Broker::start(kind);
    let url = broker.url();
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node::start(&["--mode", "broadcast", "--broker", &url]))
        .collect();
    for node in &nodes {
        node.wait_for("up", 0).await;
    }
    // Two clients on each node in one room, and one in another room that must hear nothing.
    let mut room = Vec::new();
    for node in &nodes {
        for _ in 0..2 {
            room.push(connect(&node.url("/room")).await.unwrap().0);
        }
    }
    let other = connect(&nodes[2].url("/other")).await.unwrap().0;
    // Each node takes its broker subscription for the room when its first client joins; a
    // message that crosses from every node to every other proves them all in place.
    settle(&mut room).await;
    exchange(&mut room, "first", 50).await;

    // The broker dies: every node says so, and a message sent meanwhile is refused, not lost
    // silently.
    broker.kill();
    for node in &nodes {
        node.wait_for("down", 0).await;
    }
    room[0].send("during the outage").await.unwrap();
    nodes[0].wait_for("not relayed", 0).await;

    // Back: the nodes reconnect, resubscribe, and deliver again.
    broker.restart();
    for node in &nodes {
        node.wait_for("up", 1).await;
    }
    settle(&mut room).await;
    exchange(&mut room, "second", 20).await;

    // The other room heard none of it: settling it sees nothing but its own markers.
    let other_peer = connect(&nodes[0].url("/other")).await.unwrap().0;
    settle(&mut [other_peer, other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_through_redis_deliver_every_message_once_and_survive_a_broker_crash() {
    three_nodes_through("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_through_nats_deliver_every_message_once_and_survive_a_broker_crash() {
    three_nodes_through("nats").await;
}

/// Until a message from each client has reached every other (each node's broker subscription
/// taken), every client sends pings of text and reads what comes; then drains to a marker.
async fn settle(clients: &mut [WebSocket<ClientStream>]) {
    let n = clients.len();
    let deadline = Instant::now() + LIMIT;
    for attempt in 0.. {
        assert!(Instant::now() < deadline, "the nodes never joined up");
        let round = format!("settle{attempt}");
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(format!("{round} {i} done")).await.unwrap();
        }
        // Each client should see the n-1 others' markers of this round; a short wait tells a
        // round that didn't fully cross.
        let mut complete = true;
        for client in clients.iter_mut() {
            let mut got = 0;
            while got < n - 1 {
                match timeout(Duration::from_millis(500), client.recv()).await {
                    Ok(Ok(Some(Message::Text(t)))) if t.starts_with(&format!("{round} ")) => {
                        got += 1
                    }
                    // A marker of an earlier round, late.
                    Ok(Ok(Some(Message::Text(t)))) if t.starts_with("settle") => {}
                    Ok(Ok(Some(other))) => panic!("unexpected while settling: {other:?}"),
                    _ => {
                        complete = false;
                        break;
                    }
                }
            }
        }
        if complete {
            return;
        }
    }
}

/// A client that completes the handshake and never reads a byte again.
async fn stalled_client(addr: SocketAddr, path: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp
}

/// 200 000 messages of 1 KiB through `elo serve --mode broadcast` while one client never
/// reads: the server's memory grows by at most the backlog limit and a few MB, the reader gets
/// every message in order, and the policy's outcome shows in the server's log.
async fn stalled_subscriber(policy: &str) {
    const MESSAGES: u64 = 200_000;
    const WINDOW: u64 = 256;
    const BACKLOG: u64 = 1 << 20;
    let node = Node::start(&[
        "--mode",
        "broadcast",
        "--max-backlog",
        &BACKLOG.to_string(),
        "--slow-policy",
        policy,
    ]);
    let _stalled = stalled_client(node.addr, "/feed").await;
    let mut reader = connect(&node.url("/feed")).await.unwrap().0;
    let mut sender = connect(&node.url("/feed")).await.unwrap().0;
    // Each handler subscribes before it logs the connection.
    node.wait_for("connected", 2).await;
    let before = node.rss();
    let started = Instant::now();
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = read.clone();
    let reading = tokio::spawn(async move {
        for expected in 0..MESSAGES {
            match timeout(LIMIT, reader.recv()).await {
                Ok(Ok(Some(Message::Binary(data)))) => {
                    assert_eq!(data.len(), 1024);
                    let n = u64::from_be_bytes(data[..8].try_into().unwrap());
                    assert_eq!(n, expected, "in order, none lost");
                }
                other => panic!("message {expected}: {other:?}"),
            }
            progress.store(expected + 1, std::sync::atomic::Ordering::Relaxed);
        }
        reader
    });
    let mut payload = vec![b'x'; 1024];
    let mut peak = before;
    for n in 0..MESSAGES {
        while n >= read.load(std::sync::atomic::Ordering::Relaxed) + WINDOW {
            sender.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        payload[..8].copy_from_slice(&n.to_be_bytes());
        sender.feed(Message::binary(payload.clone())).await.unwrap();
        if n % 10_000 == 0 {
            peak = peak.max(node.rss());
        }
    }
    sender.flush().await.unwrap();
    let _reader = timeout(LIMIT, reading).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    let after = node.rss();
    peak = peak.max(after);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "--slow-policy {policy}: {MESSAGES} x 1 KiB in {:.2} s ({:.0} messages/s to the reader); \
         server RSS {:.1} MB before, {:.1} MB peak, growth {:.1} MB (backlog limit {:.1} MB)",
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64(),
        before as f64 / 1e6,
        peak as f64 / 1e6,
        growth as f64 / 1e6,
        BACKLOG as f64 / 1e6,
    );
    assert!(
        growth < BACKLOG + (8 << 20),
        "RSS grew {growth} bytes, past the backlog limit and 8 MiB"
    );
    if policy == "close" {
        // Closed with 1008; it never answers, so the close handshake times out.
        node.wait_for("closed with error", 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_from_and_memory_stays_bounded() {
    stalled_subscriber("drop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_closed_and_memory_stays_bounded() {
    stalled_subscriber("close").await;
}

//! The `soak` mode (`scripts/soak.sh`): thousands of connections to the echo server (`elo
//! serve`) for minutes, with well-behaved clients checking every echo, and a mix of faults
//! beside them: readers that stop reading, resets mid-frame and mid-handshake, peers that
//! vanish without a FIN (a process that holds connections and is then stopped), ping floods,
//! floods of one-byte fragments, decompression bombs and handshakes trickled a byte at a time.
//!
//! `ELO_SOAK_PARTS=echo,stalled,faults` (or a fault's name) narrows a run down, and
//! `ELO_SOAK_DEFLATE=off` makes the clients not offer permessage-deflate.
//!
//! It reports the server's RSS (before, with the idle connections, peak, final), its file
//! descriptors before and after, every outcome the faults met, and the messages lost; and
//! fails if a message was lost or reordered, a descriptor leaked, the memory was not
//! returned, or the server died.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::internals::Compressor;
use enim_labore_occaecati::{ClientBuilder, CloseFrame, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::sys;
use elo_bench::frames::{self, masked_frame};

/// Options of `elo-bench soak`.
#[derive(Debug)]
pub struct SoakOpts {
    /// The `elo` binary whose echo server is soaked.
    pub elo: PathBuf,
    /// Connections held at once (idle, active, stalled and held by the stopped process).
    pub connections: usize,
    /// How long the faults and the traffic run.
    pub seconds: u64,
    /// The server's heartbeat interval (and timeout): what finds the vanished peers.
    pub heartbeat: u64,
}

pub fn parse(args: &[String]) -> Result<SoakOpts, String> {
    let mut opts = SoakOpts {
        elo: PathBuf::from("target/release/elo"),
        connections: 10_000,
        seconds: 180,
        heartbeat: 5,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        let number = |v: &String| v.parse::<u64>().map_err(|e| format!("{arg} {v:?}: {e}"));
        match arg.as_str() {
            "--elo" => opts.elo = PathBuf::from(value()?),
            "--connections" => opts.connections = number(value()?)? as usize,
            "--seconds" => opts.seconds = number(value()?)?,
            "--heartbeat" => opts.heartbeat = number(value()?)?,
            _ => return Err(format!("unknown soak option {arg:?}")),
        }
    }
    if opts.connections < 100 {
        return Err("--connections must be at least 100".to_owned());
    }
    // The silent peers go quiet a third in and need interval + timeout (and slack) to be found.
    if opts.seconds < 6 * opts.heartbeat {
        return Err(format!(
            "--seconds must be at least 6 × --heartbeat ({} s)",
            6 * opts.heartbeat
        ));
    }
    Ok(opts)
}

/// Outcomes counted by kind ("fault: outcome" -> count).
#[derive(Default)]
struct Outcomes(Mutex<BTreeMap<String, u64>>);

impl Outcomes {
    fn add(&self, kind: &str, outcome: impl std::fmt::Display) {
        let mut map = self.0.lock().unwrap();
        *map.entry(format!("{kind}: {outcome}")).or_default() += 1;
    }
}

#[derive(Default)]
struct Counters {
    echoes: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    outcomes: Outcomes,
}

/// The echo server under test, its stderr scanned for panics.
struct Server {
    child: Child,
    url: String,
    addr: std::net::SocketAddr,
    panicked: Arc<AtomicBool>,
}

impl Server {
    fn start(opts: &SoakOpts) -> Result<Server, String> {
        let mut child = Command::new(&opts.elo)
            .args(["serve", "--port", "0", "--deflate", "--quiet"])
            .args(["--max-payload", "1048576"])
            .args(["--heartbeat", &opts.heartbeat.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", opts.elo.display()))?;
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .map_err(|e| e.to_string())?;
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {first:?}"))?
            .to_owned();
        let addr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("{url}: {e}"))?;
        let panicked = Arc::new(AtomicBool::new(false));
        let stderr = child.stderr.take().unwrap();
        let flag = panicked.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("panicked") {
                    eprintln!("server: {line}");
                    flag.store(true, Ordering::SeqCst);
                }
            }
        });
        Ok(Server {
            child,
            url,
            addr,
            panicked,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    fn rss(&self) -> u64 {
        sys::rss_bytes(self.pid()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(opts: &SoakOpts) -> Result<(), String> {
    let fd_limit = sys::raise_fd_limit();
    if (opts.connections as u64) + 1024 > fd_limit {
        return Err(format!(
            "RLIMIT_NOFILE is {fd_limit}, too low for {} connections (the script raises it)",
            opts.connections
        ));
    }
    let mut server = Server::start(opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = rt.block_on(soak(opts, &server));
    // Alive and unpanicked at the end: then asked to stop, as an operator would.
    let alive = matches!(server.child.try_wait(), Ok(None));
    // SAFETY: kill with a pid of our own child and a valid signal number.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let stopped = server.child.wait().map_err(|e| e.to_string())?;
    let report = report?;
    let panicked = server.panicked.load(Ordering::SeqCst);
    report.print(opts, alive, stopped.success(), panicked);
    report.verdict(alive && stopped.success() && !panicked)
}

struct Report {
    rss_before: u64,
    rss_idle: u64,
    idle: usize,
    rss_active: u64,
    busy: usize,
    rss_peak: u64,
    rss_final: u64,
    fds_before: usize,
    fds_peak: usize,
    fds_after: usize,
    held_dropped: usize,
    held: usize,
    counters: Arc<Counters>,
}

/// How many of the connections do what.
struct Mix {
    active: usize,
    stalled: usize,
    held: usize,
    idle: usize,
}

impl Mix {
    fn of(connections: usize) -> Mix {
        let active = connections / 10;
        let stalled = connections / 100;
        let held = connections / 20;
        Mix {
            active,
            stalled,
            held,
            idle: connections - active - stalled - held,
        }
    }
}

async fn soak(opts: &SoakOpts, server: &Server) -> Result<Report, String> {
    let mix = Mix::of(opts.connections);
    let counters = Arc::new(Counters::default());
    let fds_before = server.fds();
    let rss_before = server.rss();
    eprintln!(
        "soak: server {} (pid {}), {} fds, RSS {} KiB",
        server.url,
        server.pid(),
        fds_before,
        rss_before / 1024
    );

    // Idle connections first: what one costs.
    let mut idle = Vec::with_capacity(mix.idle);
    // The clients offer permessage-deflate, as browsers do; ELO_SOAK_DEFLATE=off to compare.
    let client = if std::env::var("ELO_SOAK_DEFLATE").is_ok_and(|v| v == "off") {
        ClientBuilder::new().deflate(None)
    } else {
        ClientBuilder::new()
    };
    for chunk in 0..mix.idle.div_ceil(256) {
        let mut opening = JoinSet::new();
        for _ in 0..256.min(mix.idle - chunk * 256) {
            let (client, url) = (client.clone(), server.url.clone());
            opening.spawn(async move { client.connect(&url).await });
        }
        while let Some(done) = opening.join_next().await {
            let (ws, _) = done.unwrap().map_err(|e| format!("idle connect: {e}"))?;
            idle.push(ws);
        }
    }
    // Each idle client reads, so it answers the server's heartbeat pings.
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut idle_tasks = JoinSet::new();
    for mut ws in idle {
        let stop = stop.clone();
        idle_tasks.spawn(async move {
            tokio::select! {
                _ = stop.notified() => {}
                end = ws.recv() => return format!("{end:?}"),
            }
            match ws.close(Some(CloseFrame::new(1000u16, ""))).await {
                Ok(()) => close_outcome(ws.close_frame()),
                Err(e) => format!("close failed: {e}"),
            }
        });
    }
    settle(server).await;
    let rss_idle = server.rss();
    eprintln!(
        "soak: {} idle connections, RSS {} KiB",
        mix.idle,
        rss_idle / 1024
    );

    // The process that holds connections and is then stopped: peers that vanish without FIN.
    let mut holder = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["soak-hold", &server.url, &mix.held.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the holder: {e}"))?;
    let mut ready = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut ready)
        .map_err(|e| e.to_string())?;
    if ready.trim() != format!("ready {}", mix.held) {
        return Err(format!("holder: {ready:?}"));
    }

    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let mut work = JoinSet::new();
    // ELO_SOAK_PARTS=echo,stalled,faults (all by default) narrows a run down, to see which
    // part costs what.
    let parts = std::env::var("ELO_SOAK_PARTS").unwrap_or_else(|_| "echo,stalled,faults".into());
    let part = |name: &str| parts.split(',').any(|p| p == name);
    for i in 0..mix.active * usize::from(part("echo")) {
        let (client, url, counters) = (client.clone(), server.url.clone(), counters.clone());
        work.spawn(echo_client(client, url, counters, deadline, i as u64));
    }
    for _ in 0..mix.stalled * usize::from(part("stalled")) {
        let (client, url, counters) = (client.clone(), server.url.clone(), counters.clone());
        work.spawn(stalled_reader(client, url, counters, deadline));
    }
    // The bomb: 64 MiB of zeros in one compressed frame, made once for every bomb loop.
    let bomb = Arc::new(compressed_zeros(64 << 20));
    let mut fault_loops = 0;
    for kind in FAULTS
        .into_iter()
        .filter(|f| part("faults") || part(&format!("{f:?}")))
    {
        for _ in 0..4 {
            let (addr, url, counters) = (server.addr, server.url.clone(), counters.clone());
            work.spawn(fault_loop(
                kind,
                addr,
                url,
                bomb.clone(),
                counters,
                deadline,
            ));
            fault_loops += 1;
        }
    }
    let busy = mix.active * usize::from(part("echo"))
        + mix.stalled * usize::from(part("stalled"))
        + fault_loops;

    // A third in, the holder stops: its connections go silent without a FIN.
    let mut rss_peak = rss_idle;
    let mut fds_peak = server.fds();
    let mut rss_active = 0;
    let stop_at = Instant::now() + Duration::from_secs(opts.seconds / 3);
    let mut held_stopped_fds = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = server.rss();
        rss_peak = rss_peak.max(rss);
        fds_peak = fds_peak.max(server.fds());
        if rss_active == 0 && Instant::now() > stop_at - Duration::from_secs(1) {
            rss_active = rss;
        }
        if held_stopped_fds.is_none() && Instant::now() >= stop_at {
            // SAFETY: kill with our child's pid and a valid signal number.
            unsafe { libc::kill(holder.id() as i32, libc::SIGSTOP) };
            held_stopped_fds = Some(server.fds());
            eprintln!(
                "soak: holder stopped with {} connections; server fds {}",
                mix.held,
                server.fds()
            );
        }
    }
    // Everything the faults and the active clients do ends at the deadline.
    while work.join_next().await.is_some() {}
    // The stopped holder can't close its sockets: those the server dropped wait in CLOSE_WAIT.
    let held_dropped = if held_stopped_fds.is_some() {
        sockets_in_close_wait(holder.id())
    } else {
        0
    };
    let _ = holder.kill();
    let _ = holder.wait();
    stop.notify_waiters();
    while let Some(outcome) = idle_tasks.join_next().await {
        counters
            .outcomes
            .add("idle", outcome.unwrap_or_else(|e| e.to_string()));
    }
    // The server lets go of every connection: descriptors back to where they were.
    let settled = Instant::now() + Duration::from_secs(60);
    while server.fds() > fds_before && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `elo serve` hands memory back within a few seconds of its clients leaving.
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle(server).await;
    Ok(Report {
        rss_before,
        rss_idle,
        idle: mix.idle,
        rss_active,
        busy,
        rss_peak,
        rss_final: server.rss(),
        fds_before,
        fds_peak,
        fds_after: server.fds(),
        held_dropped,
        held: mix.held,
        counters,
    })
}

/// TCP sockets of process `pid` in CLOSE_WAIT: the peer closed, the process hasn't.
fn sockets_in_close_wait(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Field 3 is the state (08: CLOSE_WAIT), field 9 the inode.
            fields.len() > 9 && fields[3] == "08" && inodes.contains(fields[9])
        })
        .count()
}

/// Waits until the server's RSS stops moving (two equal readings 200 ms apart, at most 5 s).
async fn settle(server: &Server) {
    let mut last = server.rss();
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = server.rss();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Connects, or counts the failure as `kind`'s outcome.
async fn connect_or_count(
    client: &ClientBuilder,
    url: &str,
    counters: &Counters,
    kind: &str,
) -> Option<enim_labore_occaecati::WebSocket<enim_labore_occaecati::client::ClientStream>> {
    match client.connect(url).await {
        Ok((ws, _)) => Some(ws),
        Err(e) => {
            counters.outcomes.add(kind, format!("connect failed: {e}"));
            None
        }
    }
}

/// A well-behaved client: numbered messages of varied sizes, each echo checked, in order.
async fn echo_client(
    client: ClientBuilder,
    url: String,
    counters: Arc<Counters>,
    deadline: Instant,
    seed: u64,
) {
    let Some(mut ws) = connect_or_count(&client, &url, &counters, "echo").await else {
        return;
    };
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = 8 + (state >> 33) as usize % 2048;
        // Up to four in flight, each numbered: the echoes must come back whole and in order.
        let burst = 1 + (state >> 60) as usize % 4;
        let mut sent = Vec::with_capacity(burst);
        for _ in 0..burst {
            let mut payload = vec![(sequence % 251) as u8; len];
            payload[..8].copy_from_slice(&sequence.to_be_bytes());
            sequence += 1;
            if ws.feed(Message::binary(payload.clone())).await.is_err() {
                counters.lost.fetch_add(1, Ordering::Relaxed);
                return counters.outcomes.add("echo", "send failed");
            }
            sent.push(payload);
        }
        if ws.flush().await.is_err() {
            return counters.outcomes.add("echo", "flush failed");
        }
        for payload in sent {
            match ws.recv().await {
                Ok(Some(Message::Binary(echo))) if echo[..] == payload[..] => {
                    counters.echoes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(_)) => {
                    counters.reordered.fetch_add(1, Ordering::Relaxed);
                }
                other => {
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                    return counters
                        .outcomes
                        .add("echo", format!("ended early: {other:?}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50 + (state >> 40) % 100)).await;
    }
    match ws.close(Some(CloseFrame::new(1000u16, ""))).await {
        Ok(()) => counters
            .outcomes
            .add("echo", close_outcome(ws.close_frame())),
        Err(e) => counters.outcomes.add("echo", format!("close failed: {e}")),
    }
}

/// Sends without ever reading: the server's writes back pile up until it stops reading this
/// client (backpressure); the client never answers a heartbeat ping either, so the server drops
/// it interval + timeout later.
async fn stalled_reader(
    client: ClientBuilder,
    url: String,
    counters: Arc<Counters>,
    deadline: Instant,
) {
    let Some(mut ws) = connect_or_count(&client, &url, &counters, "stalled").await else {
        return;
    };
    let chunk = Message::binary(vec![0x5a; 16 << 10]);
    let mut sent = 0usize;
    let until = tokio::time::Instant::from_std(deadline);
    loop {
        match tokio::time::timeout_at(until, ws.send(chunk.clone())).await {
            Ok(Ok(())) => sent += 16 << 10,
            Ok(Err(e)) if e.kind() == enim_labore_occaecati::ErrorKind::Io => {
                let bucket = if sent < 4 << 20 {
                    "under 4 MiB"
                } else {
                    "4 MiB or more"
                };
                return counters
                    .outcomes
                    .add("stalled", format!("dropped by the server, {bucket} sent"));
            }
            Ok(Err(e)) => {
                return counters
                    .outcomes
                    .add("stalled", format!("send failed: {e}"))
            }
            Err(_) => break,
        }
    }
    counters.outcomes.add(
        "stalled",
        format!("still held back at the deadline, {} KiB sent", sent >> 10),
    );
}

/// The outcomes a soak may see: anything else fails it.
const EXPECTED: [&str; 11] = [
    "idle: closed 1000",
    "echo: closed 1000",
    // The heartbeat drops a client that neither reads nor answers pings.
    "stalled: dropped by the server, under 4 MiB sent",
    "stalled: dropped by the server, 4 MiB or more sent",
    "DecompressionBomb: closed 1009",
    "FragmentFlood: closed 1000",
    "PingFlood: closed 1000",
    "ResetMidFrame: reset by the client",
    "ResetMidHandshake: reset by the client",
    "TrickledHandshake: closed 1000",
    // Under load the trickle can outlast the handshake timeout.
    "TrickledHandshake: dropped at the server's 10 s handshake timeout",
];

#[derive(Debug, Clone, Copy)]
enum Fault {
    ResetMidFrame,
    ResetMidHandshake,
    PingFlood,
    FragmentFlood,
    DecompressionBomb,
    TrickledHandshake,
}

const FAULTS: [Fault; 6] = [
    Fault::ResetMidFrame,
    Fault::ResetMidHandshake,
    Fault::PingFlood,
    Fault::FragmentFlood,
    Fault::DecompressionBomb,
    Fault::TrickledHandshake,
];

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n";

/// One fault again and again until the deadline, each outcome counted.
async fn fault_loop(
    fault: Fault,
    addr: std::net::SocketAddr,
    url: String,
    bomb: Arc<Vec<u8>>,
    counters: Arc<Counters>,
    deadline: Instant,
) {
    while Instant::now() < deadline {
        let outcome = match fault {
            Fault::ResetMidFrame => reset_mid_frame(addr).await,
            Fault::ResetMidHandshake => reset_mid_handshake(addr).await,
            Fault::PingFlood => ping_flood(&url).await,
            Fault::FragmentFlood => fragment_flood(addr).await,
            Fault::DecompressionBomb => decompression_bomb(addr, &bomb).await,
            Fault::TrickledHandshake => trickled_handshake(addr).await,
        };
        let kind = format!("{fault:?}");
        counters.outcomes.add(&kind, outcome.unwrap_or_else(|e| e));
    }
}

fn io(e: impl std::fmt::Display) -> String {
    format!("error: {e}")
}

/// A raw connection that completed the upgrade (`extra` headers added).
async fn raw_upgrade(addr: std::net::SocketAddr, extra: &str) -> Result<TcpStream, String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(io)?;
    tcp.write_all(format!("{UPGRADE}{extra}\r\n").as_bytes())
        .await
        .map_err(io)?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.map_err(io)? == 0 {
            return Err("no answer to the upgrade".to_owned());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&head[..12])
        ));
    }
    Ok(tcp)
}

/// Ends with a TCP reset: SO_LINGER 0, then close.
fn reset(tcp: TcpStream) -> Result<String, String> {
    tcp.set_zero_linger().map_err(io)?;
    drop(tcp);
    Ok("reset by the client".to_owned())
}

async fn reset_mid_frame(addr: std::net::SocketAddr) -> Result<String, String> {
    let mut tcp = raw_upgrade(addr, "").await?;
    let frame = masked_frame(&[7u8; 1000]);
    tcp.write_all(&frame[..300]).await.map_err(io)?;
    reset(tcp)
}

async fn reset_mid_handshake(addr: std::net::SocketAddr) -> Result<String, String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(io)?;
    tcp.write_all(&UPGRADE.as_bytes()[..UPGRADE.len() / 2])
        .await
        .map_err(io)?;
    reset(tcp)
}

/// Ten thousand pings without reading a pong, then a clean close.
async fn ping_flood(url: &str) -> Result<String, String> {
    let (mut ws, _) = ClientBuilder::new().connect(url).await.map_err(io)?;
    let ping = Message::Ping(bytes::Bytes::from_static(&[0x42; 125]));
    for _ in 0..10_000 {
        ws.feed(ping.clone()).await.map_err(io)?;
    }
    ws.close(Some(CloseFrame::new(1000u16, "")))
        .await
        .map_err(io)?;
    Ok(close_outcome(ws.close_frame()))
}

/// A message of 100 000 one-byte fragments (700 kB of frames for 100 kB of payload) written
/// at once, echoed whole, then a clean close.
async fn fragment_flood(addr: std::net::SocketAddr) -> Result<String, String> {
    const FRAGMENTS: usize = 100_000;
    let mut tcp = raw_upgrade(addr, "").await?;
    let mut flood = Vec::with_capacity(FRAGMENTS * 7);
    for i in 0..FRAGMENTS {
        let mut frame = masked_frame(b"f");
        frame[0] = match i {
            0 => 0x02,
            i if i == FRAGMENTS - 1 => 0x80,
            _ => 0x00,
        };
        flood.extend_from_slice(&frame);
    }
    tcp.write_all(&flood).await.map_err(io)?;
    let mut header = [0u8; 10];
    tcp.read_exact(&mut header).await.map_err(io)?;
    let (first, _, len) = frames::parse_header(&header);
    let mut payload = vec![0u8; len.min(1 << 20) as usize];
    tcp.read_exact(&mut payload).await.map_err(io)?;
    if first != 0x82 || len != FRAGMENTS as u64 || payload.iter().any(|&b| b != b'f') {
        return Err(format!("wrong echo: {first:#x}, {len} bytes"));
    }
    close_1000(&mut tcp).await
}

/// A masked close 1000, then the server's answer.
async fn close_1000(tcp: &mut TcpStream) -> Result<String, String> {
    let mut close = masked_frame(&1000u16.to_be_bytes());
    close[0] = 0x88;
    tcp.write_all(&close).await.map_err(io)?;
    read_close_code(tcp).await
}

fn compressed_zeros(len: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    Compressor::new(15, &DeflateConfig::default())
        .compress(&vec![0u8; len], &mut out)
        .expect("compress");
    out.to_vec()
}

/// 64 MiB of zeros in one compressed frame, against the soak's 1 MiB message limit.
async fn decompression_bomb(addr: std::net::SocketAddr, bomb: &[u8]) -> Result<String, String> {
    let mut tcp = raw_upgrade(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n").await?;
    let mut frame = masked_frame(bomb);
    frame[0] |= 0x40; // RSV1: compressed
    tcp.write_all(&frame).await.map_err(io)?;
    read_close_code(&mut tcp).await
}

/// The upgrade request a byte at a time, 2 ms apart, then one echo and a clean close. Under
/// load the trickle can outlast the server's 10 s handshake timeout: then it is dropped.
async fn trickled_handshake(addr: std::net::SocketAddr) -> Result<String, String> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.map_err(io)?;
    tcp.set_nodelay(true).map_err(io)?;
    for byte in format!("{UPGRADE}\r\n").bytes() {
        if let Err(e) = tcp.write_all(&[byte]).await {
            if started.elapsed() >= Duration::from_secs(10) {
                return Ok("dropped at the server's 10 s handshake timeout".to_owned());
            }
            return Err(io(e));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.map_err(io)? == 0 {
            return Ok("dropped during the handshake".to_owned());
        }
        head.push(byte[0]);
    }
    tcp.write_all(&masked_frame(b"trickled"))
        .await
        .map_err(io)?;
    let mut reply = [0u8; 10];
    tcp.read_exact(&mut reply).await.map_err(io)?;
    if &reply[2..] != b"trickled" {
        return Err(format!("wrong echo {reply:?}"));
    }
    close_1000(&mut tcp).await
}

/// Reads to the end (5 s at most) and names the close code of the first close frame.
async fn read_close_code(tcp: &mut TcpStream) -> Result<String, String> {
    let mut data = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut data)).await;
    if let Ok(Err(e)) = read {
        if data.is_empty() {
            return Ok(format!("connection error: {}", e.kind()));
        }
    }
    let mut at = 0;
    while at + 2 <= data.len() && at + frames::header_len(data[at + 1]) <= data.len() {
        let (first, _, len) = frames::parse_header(&data[at..]);
        let header = frames::header_len(data[at + 1]);
        if first & 0x0f == 8 {
            let payload = &data[at + header..];
            return Ok(if len >= 2 && payload.len() >= 2 {
                format!("closed {}", u16::from_be_bytes([payload[0], payload[1]]))
            } else {
                "closed without a code".to_owned()
            });
        }
        at += header + len as usize;
    }
    Ok("ended without a close frame".to_owned())
}

fn close_outcome(frame: Option<&CloseFrame>) -> String {
    frame.map_or("closed without a code".to_owned(), |f| {
        format!("closed {}", f.code.as_u16())
    })
}

/// `elo-bench soak-hold URL COUNT`: opens COUNT connections, answers pings while running, says
/// `ready COUNT`, and holds them until killed (the soak stops it first: its peers go silent).
pub fn hold(args: &[String]) -> Result<(), String> {
    let [url, count] = args else {
        return Err("usage: elo-bench soak-hold URL COUNT".to_owned());
    };
    let count: usize = count.parse().map_err(|e| format!("{count:?}: {e}"))?;
    sys::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut held = JoinSet::new();
        for _ in 0..count {
            let (mut ws, _) = ClientBuilder::new()
                .connect(url)
                .await
                .map_err(|e| format!("hold connect: {e}"))?;
            held.spawn(async move { while let Ok(Some(_)) = ws.recv().await {} });
        }
        println!("ready {count}");
        while held.join_next().await.is_some() {}
        Ok(())
    })
}

impl Report {
    fn print(&self, opts: &SoakOpts, alive: bool, stopped: bool, panicked: bool) {
        let kib = |b: u64| b / 1024;
        let per = |a: u64, b: u64, n: usize| a.saturating_sub(b) / n.max(1) as u64;
        println!(
            "\n## Soak: {} connections, {} s\n",
            opts.connections, opts.seconds
        );
        println!("Machine: {}", sys::machine_description());
        println!("| measure | value |\n|---|---:|");
        println!("| RSS before | {} KiB |", kib(self.rss_before));
        println!(
            "| RSS with {} idle connections | {} KiB ({} B per idle connection) |",
            self.idle,
            kib(self.rss_idle),
            per(self.rss_idle, self.rss_before, self.idle)
        );
        println!(
            "| RSS with the traffic and faults running | {} KiB ({} B per busy connection over the idle ones) |",
            kib(self.rss_active),
            per(self.rss_active, self.rss_idle, self.busy)
        );
        println!("| RSS peak | {} KiB |", kib(self.rss_peak));
        println!(
            "| RSS final (every client gone) | {} KiB |",
            kib(self.rss_final)
        );
        println!(
            "| file descriptors before / peak / after | {} / {} / {} |",
            self.fds_before, self.fds_peak, self.fds_after
        );
        println!(
            "| silent peers dropped by the heartbeat | {} of {} |",
            self.held_dropped, self.held
        );
        let c = &self.counters;
        println!(
            "| echoes checked / lost / out of order | {} / {} / {} |",
            c.echoes.load(Ordering::Relaxed),
            c.lost.load(Ordering::Relaxed),
            c.reordered.load(Ordering::Relaxed)
        );
        println!(
            "| server alive at the end / stopped cleanly / panicked | {alive} / {stopped} / {panicked} |"
        );
        println!("\n| outcome | count |\n|---|---:|");
        for (outcome, count) in c.outcomes.0.lock().unwrap().iter() {
            println!("| {outcome} | {count} |");
        }
    }

    fn verdict(&self, server_ok: bool) -> Result<(), String> {
        let c = &self.counters;
        let mut failures = Vec::new();
        if !server_ok {
            failures.push("the server died, panicked or did not stop cleanly".to_owned());
        }
        if c.lost.load(Ordering::Relaxed) + c.reordered.load(Ordering::Relaxed) > 0 {
            failures.push("a well-behaved client's message was lost or reordered".to_owned());
        }
        if self.fds_after != self.fds_before {
            failures.push(format!(
                "file descriptors: {} before, {} after",
                self.fds_before, self.fds_after
            ));
        }
        if self.held_dropped < self.held {
            failures.push(format!(
                "the heartbeat dropped {} of {} silent peers",
                self.held_dropped, self.held
            ));
        }
        // Memory returned: what is still held is under a quarter of the peak's growth.
        let grown = self.rss_peak.saturating_sub(self.rss_before);
        let kept = self.rss_final.saturating_sub(self.rss_before);
        if kept > grown / 4 {
            failures.push(format!(
                "memory not returned: {} KiB kept of {} KiB grown",
                kept / 1024,
                grown / 1024
            ));
        }
        // Every outcome must be one its fault is expected to end with.
        let bad: Vec<String> = c
            .outcomes
            .0
            .lock()
            .unwrap()
            .keys()
            .filter(|outcome| !EXPECTED.contains(&outcome.as_str()))
            .cloned()
            .collect();
        if !bad.is_empty() {
            failures.push(format!("unexpected outcomes: {bad:?}"));
        }
        if failures.is_empty() {
            println!("\nsoak: passed");
            Ok(())
        } else {
            Err(format!("soak failed: {}", failures.join("; ")))
        }
    }
}

//! `elo-bench fanout`: one publisher, N subscribers on one path, every message relayed by the
//! server to every subscriber. A closed loop: the publisher keeps K messages in flight, a
//! message counting as done once every subscriber has it, so a server that drops a delivery
//! stalls the run (reported, not hidden). Subscribers count frames without reading payloads
//! (each one's i-th message is the i-th published: order per connection), so compressed
//! deliveries cost the load generator nothing more.
//!
//! Per scenario and server: deliveries/s, server CPU µs per delivery, publish-to-receive
//! latency p50/p99, server RSS, and the fairness gap: the largest difference, after the first
//! second, between the subscriber with the most messages and the one with the fewest.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use elo_bench::frames::{masked_frame, ReplyParser};

const USAGE: &str = "usage: elo-bench fanout [--servers elo,ws,tungstenite[,elo-events,uws]] [--subs 100,1000,10000]
                  [--payloads 16,1024,16384] [--deflate off,on] [--inflight 32]
                  [--duration SECS] [--nodes 1,2,3 --broker redis,nats] [--no-pin]";

pub struct Opts {
    servers: Vec<String>,
    subs: Vec<usize>,
    payloads: Vec<usize>,
    deflate: Vec<bool>,
    inflight: usize,
    duration: Duration,
    nodes: Vec<usize>,
    brokers: Vec<String>,
    pin: bool,
}

pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        servers: vec!["elo".into(), "ws".into(), "tungstenite".into()],
        subs: vec![100, 1000, 10_000],
        payloads: vec![16, 1024, 16384],
        deflate: vec![false, true],
        inflight: 32,
        duration: Duration::from_secs(3),
        nodes: vec![1],
        brokers: Vec::new(),
        pin: true,
    };
    let list = |v: &str| -> Result<Vec<usize>, String> {
        v.split(',')
            .map(|x| x.parse().map_err(|_| format!("bad number {x:?}\n{USAGE}")))
            .collect()
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--no-pin" {
            opts.pin = false;
            continue;
        }
        let value = it.next().ok_or_else(|| USAGE.to_owned())?;
        match flag.as_str() {
            "--servers" => opts.servers = value.split(',').map(str::to_owned).collect(),
            "--subs" => opts.subs = list(value)?,
            "--payloads" => opts.payloads = list(value)?,
            "--inflight" => opts.inflight = value.parse().map_err(|_| USAGE.to_owned())?,
            "--duration" => {
                opts.duration = Duration::from_secs_f64(
                    value
                        .parse()
                        .map_err(|_| format!("bad --duration\n{USAGE}"))?,
                )
            }
            "--deflate" => {
                opts.deflate = value
                    .split(',')
                    .map(|v| match v {
                        "on" => Ok(true),
                        "off" => Ok(false),
                        _ => Err(format!("--deflate off,on\n{USAGE}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--nodes" => opts.nodes = list(value)?,
            "--broker" => opts.brokers = value.split(',').map(str::to_owned).collect(),
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(opts)
}

/// A server process (or a broker), killed when dropped.
struct Proc {
    child: Child,
    addr: Option<SocketAddr>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts a relay server, pinned to `cpu`, and reads its `READY addr` line.
fn start_server(
    name: &str,
    cpu: Option<usize>,
    deflate: bool,
    broker: Option<&str>,
) -> Result<Proc, String> {
    let mut cmd = match name {
        "ws" | "uws" => {
            let mut cmd = if name == "ws" {
                let mut cmd = crate::sys::node_command(cpu);
                cmd.arg(manifest_dir().join("fanout/ws-broadcast.js"));
                cmd
            } else {
                crate::sys::uws_command(cpu, "relay").map_err(|e| e.to_string())?
            };
            if deflate {
                cmd.arg("--deflate");
            }
            cmd
        }
        _ => {
            let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            cmd.args(["fanout-server", name, "127.0.0.1:0"]);
            if let Some(cpu) = cpu {
                cmd.args(["--cpu", &cpu.to_string()]);
            }
            if deflate {
                cmd.arg("--deflate");
            }
            if let Some(url) = broker {
                cmd.args(["--broker", url]);
            }
            cmd
        }
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{name} server: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let mut proc = Proc { child, addr: None };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{name} server said {line:?}"))?;
    proc.addr = Some(addr);
    Ok(proc)
}

/// A broker on a free port, started through the project's script.
fn start_broker(kind: &str, cpu: Option<usize>) -> Result<(Proc, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let script = manifest_dir().join("../scripts/brokers/run.sh");
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), "bash"]);
            c
        }
        None => Command::new("bash"),
    };
    let child = cmd
        .arg(script)
        .args([kind, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{kind}: {e}"))?;
    let proc = Proc { child, addr: None };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{kind} did not start"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((proc, format!("{kind}://127.0.0.1:{port}")))
}

/// One measurement's figures.
struct Figures {
    deliveries_per_s: f64,
    cpu_us_per_delivery: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    max_gap: u64,
    stalled: bool,
}

async fn handshake(addr: SocketAddr, deflate: bool) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let extension = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET /fan HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         {extension}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() > 4096 {
            return Err(std::io::Error::other("bad handshake response"));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("handshake refused"));
    }
    Ok(stream)
}

/// Latencies, one bucket per 10 µs up to 10 s.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    fn record(&mut self, us: u64, n: u64) {
        let i = (us as usize / 10).min(self.buckets.len() - 1);
        self.buckets[i] += n;
        self.count += n;
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        let target = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (bucket, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return bucket as f64 / 100.0;
            }
        }
        f64::NAN
    }
}

/// What the subscribers and the publisher share (one thread).
struct State {
    n: usize,
    received: Vec<Cell<u64>>,
    /// Per message in flight, from the oldest: when it was published, how many have it.
    in_flight: RefCell<VecDeque<(Instant, usize)>>,
    /// Sequence number of the oldest message in flight.
    base: Cell<u64>,
    completed: Cell<u64>,
    wake: Notify,
    measuring: Cell<bool>,
    deliveries: Cell<u64>,
    latency: RefCell<Histogram>,
}

impl State {
    fn delivered(&self, sub: usize, messages: u64, now: Instant) {
        let mut in_flight = self.in_flight.borrow_mut();
        let first = self.received[sub].get();
        self.received[sub].set(first + messages);
        let base = self.base.get();
        let measuring = self.measuring.get();
        for seq in first..first + messages {
            let Some(entry) = in_flight.get_mut((seq - base) as usize) else {
                continue;
            };
            entry.1 += 1;
            if measuring {
                let us = now.saturating_duration_since(entry.0).as_micros() as u64;
                self.latency.borrow_mut().record(us, 1);
            }
        }
        if measuring {
            self.deliveries.set(self.deliveries.get() + messages);
        }
        let mut done = false;
        while in_flight.front().is_some_and(|&(_, got)| got == self.n) {
            in_flight.pop_front();
            self.base.set(self.base.get() + 1);
            self.completed.set(self.completed.get() + 1);
            done = true;
        }
        if done {
            self.wake.notify_one();
        }
    }
}

async fn subscriber(state: Rc<State>, index: usize, mut stream: TcpStream) {
    let mut parser = ReplyParser::any();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(messages) = parser.feed(&buf[..n]) else {
            return;
        };
        if messages > 0 {
            state.delivered(index, messages, Instant::now());
        }
    }
}

/// Message bytes that compress like chat traffic does.
fn chat_payload(len: usize) -> Vec<u8> {
    let line = b"{\"room\":\"lobby\",\"user\":\"alice\",\"text\":\"hello, everyone here\"} ";
    line.iter().copied().cycle().take(len).collect()
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    addrs: &[SocketAddr],
    pids: &[u32],
    subs: usize,
    payload: usize,
    deflate: bool,
    inflight: usize,
    duration: Duration,
) -> Result<Figures, String> {
    let state = Rc::new(State {
        n: subs,
        received: (0..subs).map(|_| Cell::new(0)).collect(),
        in_flight: RefCell::new(VecDeque::new()),
        base: Cell::new(0),
        completed: Cell::new(0),
        wake: Notify::new(),
        measuring: Cell::new(false),
        deliveries: Cell::new(0),
        latency: RefCell::new(Histogram {
            buckets: vec![0; 1_000_000],
            count: 0,
        }),
    });
    // Subscribers spread over the nodes; the publisher on the first.
    let mut tasks = Vec::with_capacity(subs);
    for chunk in (0..subs).collect::<Vec<_>>().chunks(100) {
        let connecting = chunk
            .iter()
            .map(|&i| handshake(addrs[i % addrs.len()], deflate));
        for (i, stream) in chunk
            .iter()
            .zip(futures_util::future::join_all(connecting).await)
        {
            let stream = stream.map_err(|e| format!("subscriber {i}: {e}"))?;
            tasks.push(tokio::task::spawn_local(subscriber(
                state.clone(),
                *i,
                stream,
            )));
        }
    }
    let mut publisher = handshake(addrs[0], deflate)
        .await
        .map_err(|e| format!("publisher: {e}"))?;
    // Every subscription in place (a broker's too) before the first message.
    tokio::time::sleep(Duration::from_millis(500 + subs as u64 / 20)).await;

    let frame = masked_frame(&chat_payload(payload));
    let cpu = |pids: &[u32]| -> u64 {
        pids.iter()
            .map(|&p| crate::sys::cpu_time_us(p).unwrap_or(0))
            .sum()
    };
    let rss = |pids: &[u32]| -> u64 {
        pids.iter()
            .map(|&p| crate::sys::rss_bytes(p).unwrap_or(0))
            .sum()
    };
    let start = Instant::now();
    let warmup = Duration::from_secs(1);
    let end = start + warmup + duration;
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(frame.len() * inflight);
    let mut cpu_start = 0;
    let mut max_gap = 0u64;
    let mut rss_peak = 0u64;
    let mut last_sample = start;
    let mut last_progress = (start, 0u64);
    let mut stalled = false;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !state.measuring.get() && now >= start + warmup {
            state.measuring.set(true);
            cpu_start = cpu(pids);
        }
        if state.measuring.get() && now.duration_since(last_sample) >= Duration::from_millis(50) {
            last_sample = now;
            let (lo, hi) = state.received.iter().fold((u64::MAX, 0), |(lo, hi), r| {
                (lo.min(r.get()), hi.max(r.get()))
            });
            max_gap = max_gap.max(hi - lo);
            rss_peak = rss_peak.max(rss(pids));
        }
        while sent - state.completed.get() < inflight as u64 {
            state.in_flight.borrow_mut().push_back((Instant::now(), 0));
            batch.extend_from_slice(&frame);
            sent += 1;
        }
        if !batch.is_empty() {
            publisher
                .write_all(&batch)
                .await
                .map_err(|e| format!("publisher: {e}"))?;
            batch.clear();
        }
        let completed = state.completed.get();
        if completed != last_progress.1 {
            last_progress = (now, completed);
        } else if now.duration_since(last_progress.0) > Duration::from_secs(5) {
            stalled = true;
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(10), state.wake.notified()).await;
    }
    let elapsed = Instant::now()
        .saturating_duration_since(start + warmup)
        .as_secs_f64();
    let cpu_used = cpu(pids).saturating_sub(cpu_start);
    rss_peak = rss_peak.max(rss(pids));
    let deliveries = state.deliveries.get();
    for task in tasks {
        task.abort();
    }
    let latency = state.latency.borrow();
    Ok(Figures {
        deliveries_per_s: deliveries as f64 / elapsed,
        cpu_us_per_delivery: cpu_used as f64 / deliveries.max(1) as f64,
        p50_ms: latency.quantile_ms(0.5),
        p99_ms: latency.quantile_ms(0.99),
        rss_mb: rss_peak as f64 / 1e6,
        max_gap,
        stalled,
    })
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

pub fn run(opts: &Opts) -> Result<(), String> {
    let fds = crate::sys::raise_fd_limit();
    let cpus = crate::sys::allowed_cpus();
    let (server_cpu, load_cpu) = match (opts.pin, cpus.as_slice()) {
        (true, [a, b, ..]) => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if let Some(cpu) = load_cpu {
        crate::sys::pin_to_cpu(cpu).map_err(|e| e.to_string())?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    println!(
        "# Fan-out: 1 publisher, N subscribers, {} in flight, {} s per point after 1 s of warm-up\n",
        opts.inflight,
        opts.duration.as_secs_f64()
    );
    println!(
        "{}; servers pinned to CPU {server_cpu:?}, load generator to {load_cpu:?}; file limit {fds}\n",
        crate::sys::machine_description()
    );
    println!("| subscribers × payload | deflate | server | nodes | deliveries/s | CPU µs/delivery | p50 ms | p99 ms | RSS MB | max gap |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    let mut setups: Vec<(String, usize, Option<String>)> =
        opts.servers.iter().map(|s| (s.clone(), 1, None)).collect();
    for &nodes in opts.nodes.iter().filter(|&&n| n > 1) {
        for broker in &opts.brokers {
            setups.push(("elo".into(), nodes, Some(broker.clone())));
        }
    }
    for &deflate in &opts.deflate {
        for &payload in &opts.payloads {
            for &subs in &opts.subs {
                for (server, nodes, broker) in &setups {
                    if deflate && server == "tungstenite" {
                        continue; // no permessage-deflate in tokio-tungstenite
                    }
                    let label = match broker {
                        Some(b) => format!("{nodes} via {b}"),
                        None => "1".into(),
                    };
                    let figures = local.block_on(&rt, async {
                        let broker = match broker {
                            Some(kind) => Some(start_broker(kind, server_cpu)?),
                            None => None,
                        };
                        let url = broker.as_ref().map(|(_, url)| url.as_str());
                        let procs: Vec<Proc> = (0..*nodes)
                            .map(|_| start_server(server, server_cpu, deflate, url))
                            .collect::<Result<_, _>>()?;
                        let addrs: Vec<SocketAddr> = procs.iter().filter_map(|p| p.addr).collect();
                        let mut pids: Vec<u32> = procs.iter().map(|p| p.child.id()).collect();
                        if let Some((b, _)) = &broker {
                            pids.push(b.child.id());
                        }
                        let figures = measure(
                            &addrs,
                            &pids,
                            subs,
                            payload,
                            deflate,
                            opts.inflight,
                            opts.duration,
                        )
                        .await;
                        drop(procs);
                        figures
                    });
                    match figures {
                        Ok(f) => println!(
                            "| {subs} × {} | {} | {server} | {label} | {}{} | {:.3} | {:.2} | {:.2} | {:.1} | {} |",
                            size(payload),
                            if deflate { "on" } else { "off" },
                            rate(f.deliveries_per_s),
                            if f.stalled { " (stalled: deliveries lost)" } else { "" },
                            f.cpu_us_per_delivery,
                            f.p50_ms,
                            f.p99_ms,
                            f.rss_mb,
                            f.max_gap
                        ),
                        Err(e) => println!(
                            "| {subs} × {} | {} | {server} | {label} | failed: {e} | | | | | |",
                            size(payload),
                            if deflate { "on" } else { "off" },
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}

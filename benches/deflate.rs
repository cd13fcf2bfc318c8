//! permessage-deflate, measured side by side with the seed library (ws under Node) in one run:
//!
//! 1. codec throughput: the same 1000 JSON-like 16 KiB messages compressed and inflated with
//!    context takeover, by our codec and by ws's `PerMessageDeflate` (zlib underneath), at
//!    level 6 (both defaults) and then at every level 1-9;
//! 2. memory per connection: server RSS growth over 200 connections that each exchanged one
//!    compressed 16 KiB message and then stayed idle for 2.5 s, for our server (default: idle
//!    compressors compacted after 1 s; without compaction; without context takeover with idle
//!    state released; without context takeover, state kept) and for a ws server;
//! 3. without context takeover, compressing with a compressor per connection against the
//!    thread's shared one.
//!
//! `cargo bench --bench deflate [-- --throughput-only]` (needs `node` and `npm ci` in
//! tests/interop/node). Figures are for comparison within one run on one machine, not absolute
//! claims.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::internals::{compress_alone, Compressor, Decompressor, TAIL};
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{ClientBuilder, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

const COUNT: usize = 1000;
const SIZE: usize = 16 << 10;
const CONNECTIONS: usize = 200;
const ROUNDS: usize = 7;
const LEVEL_ROUNDS: usize = 3;

/// JSON-like records with a counter: the same text benches/deflate-node.js makes.
fn message(i: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut n = 0;
    while s.len() < SIZE {
        s.push_str(&format!(
            r#"{{"id":{},"user":"user-{}","text":"message number {} of batch {}","ok":{}}},"#,
            i * 1000 + n,
            (i + n) % 97,
            n,
            i,
            n % 3 == 0
        ));
        n += 1;
    }
    s.truncate(SIZE);
    s.into_bytes()
}

/// Seconds to compress, seconds to inflate, and compressed bytes, at `level`.
fn ours_throughput(messages: &[Vec<u8>], level: u8) -> (f64, f64, usize) {
    let mut config = DeflateConfig::default();
    config.level = level;
    // As a connection with context takeover holds it by default: keeping its window of history
    // for idle compaction.
    let mut compressor = Compressor::new(15, &config).keep_history();
    let mut wire = Vec::with_capacity(messages.len());
    let start = Instant::now();
    for m in messages {
        let mut out = BytesMut::new();
        compressor.compress(m, &mut out).unwrap();
        wire.push(out);
    }
    let compress = start.elapsed().as_secs_f64();
    let mut decompressor = Decompressor::new(15);
    let start = Instant::now();
    for w in &wire {
        let mut out = BytesMut::new();
        decompressor.inflate(w, &mut out, 1 << 26).unwrap();
        decompressor.inflate(&TAIL, &mut out, 1 << 26).unwrap();
        assert_eq!(out.len(), SIZE);
    }
    let inflate = start.elapsed().as_secs_f64();
    (compress, inflate, wire.iter().map(|w| w.len()).sum())
}

fn json_field(json: &str, key: &str) -> f64 {
    let rest = &json[json.find(&format!("\"{key}\":")).unwrap() + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Without context takeover, the same messages sent by `CONNECTIONS` connections in turn:
/// seconds to compress them with a compressor per connection (reset after each message, as
/// each connection held one before the shared compressor), and with the thread's shared one.
fn no_takeover_throughput(messages: &[Vec<u8>]) -> (f64, f64) {
    let config = DeflateConfig::default();
    let mut own: Vec<Compressor> = (0..CONNECTIONS)
        .map(|_| Compressor::new(15, &config))
        .collect();
    // Each connection's compressor built (on first use) before timing, as a connection's is
    // long before its later messages; the shared one is warm after the first round.
    for compressor in &mut own {
        compressor
            .compress(&messages[0], &mut BytesMut::new())
            .unwrap();
        compressor.reset();
    }
    assert!(compress_alone(&messages[0], 15, &config).is_some());
    let start = Instant::now();
    for (i, m) in messages.iter().enumerate() {
        let compressor = &mut own[i % CONNECTIONS];
        let mut out = BytesMut::new();
        compressor.compress(m, &mut out).unwrap();
        compressor.reset();
    }
    let per_connection = start.elapsed().as_secs_f64();
    drop(own);
    let start = Instant::now();
    for m in messages {
        assert!(compress_alone(m, 15, &config).is_some());
    }
    (per_connection, start.elapsed().as_secs_f64())
}

/// Runs our echo server in this process (re-executed as a child by the benchmark): `default`,
/// `full` (no idle compaction), `nct` (no context takeover, idle state released) or
/// `nct-keep` (no context takeover, idle state kept).
fn serve(mode: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut deflate = DeflateConfig::default();
        if mode == "full" {
            deflate.compact_idle_after = None;
        }
        if mode == "nct" || mode == "nct-keep" {
            deflate.server_no_context_takeover = true;
            deflate.client_no_context_takeover = true;
            deflate.release_idle_state = mode == "nct";
        }
        let server = Server::builder()
            .deflate(deflate)
            .track_clients(false)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        println!("LISTENING {}", server.local_addr().unwrap().port());
        server
            .serve(|mut ws, _| async move {
                while let Ok(Some(m)) = ws.recv().await {
                    if ws.feed(m).await.is_err() {
                        break;
                    }
                }
            })
            .await
            .unwrap();
    });
}

/// Server RSS growth per connection after each of `CONNECTIONS` clients exchanged one
/// compressed message and went idle.
async fn memory_per_connection(mut child: tokio::process::Child) -> f64 {
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let port: u16 = first.strip_prefix("LISTENING ").unwrap().parse().unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = format!("ws://127.0.0.1:{port}/");
    // One connection first, so lazily initialised runtime state isn't counted.
    let (mut warm, _) = ClientBuilder::new().connect(&url).await.unwrap();
    warm.send(Message::binary(message(0))).await.unwrap();
    warm.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for i in 0..CONNECTIONS {
        let (mut ws, _) = ClientBuilder::new().connect(&url).await.unwrap();
        assert!(ws.extensions().starts_with("permessage-deflate"));
        ws.send(Message::binary(message(i))).await.unwrap();
        ws.recv().await.unwrap();
        held.push(ws);
    }
    // Idle long enough for compaction (between one and two delays of 1 s after last use).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = rss_kib(pid);
    drop(held);
    let _ = child.kill().await;
    (after.saturating_sub(before) as f64 * 1024.0) / CONNECTIONS as f64
}

/// Medians of (compress s, inflate s, compressed bytes) for ours and for ws, and the
/// compression speed ratio of each round.
struct Comparison {
    ours: (f64, f64, f64),
    node: (f64, f64, f64),
    compress_ratios: Vec<String>,
}

/// Compresses and inflates `messages` with our codec and with ws's, `rounds` times
/// interleaved (so a slow moment of the machine falls on both), at zlib level `level`.
fn compare(messages: &[Vec<u8>], level: u8, rounds: usize) -> Comparison {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut ours = Vec::with_capacity(rounds);
    let mut node = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (c, i, wire) = ours_throughput(messages, level);
        ours.push((c, i, wire as f64));
        let out = Command::new("node")
            .arg(format!("{root}/benches/deflate-node.js"))
            .args([COUNT.to_string(), SIZE.to_string(), level.to_string()])
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        node.push((
            json_field(&json, "compress_s"),
            json_field(&json, "inflate_s"),
            json_field(&json, "wire_bytes"),
        ));
    }
    let median = |v: &[(f64, f64, f64)]| {
        let pick = |f: fn(&(f64, f64, f64)) -> f64| {
            let mut x: Vec<f64> = v.iter().map(f).collect();
            x.sort_by(f64::total_cmp);
            x[x.len() / 2]
        };
        (pick(|r| r.0), pick(|r| r.1), pick(|r| r.2))
    };
    Comparison {
        ours: median(&ours),
        node: median(&node),
        compress_ratios: ours
            .iter()
            .zip(&node)
            .map(|(o, n)| format!("{:.2}", n.0 / o.0))
            .collect(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-elo") {
        serve(args.get(i + 1).map(String::as_str).unwrap_or("default"));
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let messages: Vec<Vec<u8>> = (0..COUNT).map(message).collect();
    let level6 = compare(&messages, 6, ROUNDS);
    let mb = (COUNT * SIZE) as f64 / 1e6;
    println!("permessage-deflate, {COUNT} messages of {SIZE} bytes, context takeover, level 6 (both libraries' default), window 15, median of {ROUNDS} interleaved rounds");
    println!("| | ours | ws (Node) | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| compress, MB/s of input | {:.0} | {:.0} | {:.2}x |",
        mb / level6.ours.0,
        mb / level6.node.0,
        level6.node.0 / level6.ours.0
    );
    println!(
        "| inflate, MB/s of output | {:.0} | {:.0} | {:.2}x |",
        mb / level6.ours.1,
        mb / level6.node.1,
        level6.node.1 / level6.ours.1
    );
    println!(
        "| compressed size, bytes | {:.0} | {:.0} | {:.3} |",
        level6.ours.2,
        level6.node.2,
        level6.ours.2 / level6.node.2
    );
    println!(
        "compress ratio per round: {}",
        level6.compress_ratios.join(" ")
    );
    println!();
    println!("every level, same messages, median of {LEVEL_ROUNDS} interleaved rounds each");
    println!("| level | ours compress MB/s | ws compress MB/s | ratio | ours bytes | ws bytes | size ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for level in 1..=9u8 {
        let c = compare(&messages, level, LEVEL_ROUNDS);
        println!(
            "| {level} | {:.0} | {:.0} | {:.2}x | {:.0} | {:.0} | {:.3} |",
            mb / c.ours.0,
            mb / c.node.0,
            c.node.0 / c.ours.0,
            c.ours.2,
            c.node.2,
            c.ours.2 / c.node.2
        );
    }
    println!();
    let mut own = Vec::new();
    let mut shared = Vec::new();
    for _ in 0..ROUNDS {
        let (o, s) = no_takeover_throughput(&messages);
        own.push(o);
        shared.push(s);
    }
    own.sort_by(f64::total_cmp);
    shared.sort_by(f64::total_cmp);
    let (own, shared) = (own[ROUNDS / 2], shared[ROUNDS / 2]);
    println!("no context takeover, the same messages sent by {CONNECTIONS} connections in turn, level 6, median of {ROUNDS} rounds");
    println!("| compressor | compress MB/s of input | compressor state held per connection |");
    println!("|---|---:|---|");
    println!(
        "| one per connection, reset after each message (before) | {:.0} | one zlib state (about 320 KiB at window 15) |",
        mb / own
    );
    println!(
        "| the thread's shared compressor (now) | {:.0} ({:.2}x) | none |",
        mb / shared,
        own / shared
    );
    if args.iter().any(|a| a == "--throughput-only") {
        return;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = |cmd: &mut tokio::process::Command| {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let (ours, ours_full, ours_nct, ours_nct_keep, node_mem) = runtime.block_on(async {
        let ours = memory_per_connection(spawn(
            tokio::process::Command::new(&exe)
                .arg("--serve-elo")
                .arg("default"),
        ))
        .await;
        let ours_full = memory_per_connection(spawn(
            tokio::process::Command::new(&exe)
                .arg("--serve-elo")
                .arg("full"),
        ))
        .await;
        let ours_nct = memory_per_connection(spawn(
            tokio::process::Command::new(&exe)
                .arg("--serve-elo")
                .arg("nct"),
        ))
        .await;
        let ours_nct_keep = memory_per_connection(spawn(
            tokio::process::Command::new(&exe)
                .arg("--serve-elo")
                .arg("nct-keep"),
        ))
        .await;
        let node_mem = memory_per_connection(spawn(
            tokio::process::Command::new("node")
                .arg(format!("{root}/tests/interop/node/server.js"))
                .args(["--deflate-options", r#"{"threshold":1024}"#]),
        ))
        .await;
        (ours, ours_full, ours_nct, ours_nct_keep, node_mem)
    });
    println!();
    println!("server memory per idle connection after one compressed 16 KiB message each way, {CONNECTIONS} connections, 2.5 s idle (RSS growth)");
    println!("| server | bytes per connection | vs ws |");
    println!("|---|---:|---:|");
    println!(
        "| ours, context takeover (default: idle compressor compacted after 1 s) | {ours:.0} | {:.2} |",
        ours / node_mem
    );
    println!(
        "| ours, context takeover, compaction off | {ours_full:.0} | {:.2} |",
        ours_full / node_mem
    );
    println!(
        "| ours, no context takeover, idle state released | {ours_nct:.0} | {:.2} |",
        ours_nct / node_mem
    );
    println!(
        "| ours, no context takeover, idle state kept (the shared compressor; the inflater kept) | {ours_nct_keep:.0} | {:.2} |",
        ours_nct_keep / node_mem
    );
    println!("| ws (Node), context takeover | {node_mem:.0} | 1.00 |");
}

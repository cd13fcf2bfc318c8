//! `elo bench`: a load generator for any WebSocket echo server.
//!
//! Each connection keeps `--in-flight` messages outstanding: it queues messages with `feed`
//! until K are in flight, and `recv` writes the batch before it waits for replies (one write
//! per batch, as a pipelining client should). An echo server answers in order, so the reply
//! that arrives is the oldest message in flight: its round-trip time is measured from the send
//! time kept in a FIFO. Each payload also carries its sequence number, which is checked, so a
//! server that drops, reorders or mangles messages is caught instead of measured.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Args;
use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::{ClientBuilder, CloseFrame, Config, Message, Utf8Bytes, WebSocket};

use crate::util::{chain, describe_connect_error, parse_seconds, say, CliError, CliResult};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The echo server's URL, such as ws://127.0.0.1:8080/.
    url: String,
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Payload size of each message, in bytes.
    #[arg(short, long, value_name = "BYTES", default_value_t = 64)]
    payload: usize,
    /// Messages kept in flight on each connection.
    #[arg(short = 'k', long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    in_flight: u32,
    /// How long to measure, in seconds.
    #[arg(short, long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
    /// Offer permessage-deflate (compression; default: off, so figures measure framing).
    #[arg(long)]
    deflate: bool,
    #[command(flatten)]
    transport: crate::util::ClientTransport,
}

/// Counters the progress line reads while the workers run.
#[derive(Default)]
struct Live {
    messages: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
}

/// What one connection measured.
struct Outcome {
    messages: u64,
    bytes: u64,
    latency: Histogram,
}

pub async fn run(args: BenchArgs) -> CliResult<()> {
    let mut config = Config::default();
    config.max_message_size = config.max_message_size.max(args.payload);
    config.max_frame_size = config.max_frame_size.max(args.payload);
    config.close_timeout = Duration::from_secs(2);
    // With --http2 the clones share the builder's pool: every WebSocket on one connection
    // (more when the server's stream limit is lower than --connections).
    let builder = args.transport.apply(
        ClientBuilder::new()
            .config(config)
            .handshake_timeout(Duration::from_secs(10))
            .deflate(args.deflate.then(DeflateConfig::default)),
    )?;

    // Connect everything first, so the handshakes are not part of the measurement.
    let mut connecting = Vec::new();
    for _ in 0..args.connections {
        let builder = builder.clone();
        let url = args.url.clone();
        connecting.push(tokio::spawn(async move { builder.connect(&url).await }));
    }
    let mut sockets = Vec::new();
    for task in connecting {
        let (ws, _) = task
            .await
            .map_err(|e| CliError(format!("connect task failed: {e}")))?
            .map_err(|e| describe_connect_error(&args.url, &e))?;
        sockets.push(ws);
    }

    let payload = Payload::new(args.payload, args.binary);
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut workers = Vec::new();
    for (index, ws) in sockets.into_iter().enumerate() {
        let live = live.clone();
        // The connection's index goes into the top 16 bits of every sequence number, so a
        // server that mixes connections up is caught too.
        let payload = Payload {
            first_seq: (index as u64) << 48,
            ..payload.clone()
        };
        let in_flight = args.in_flight as usize;
        workers.push(tokio::spawn(async move {
            drive(ws, payload, in_flight, deadline, &live).await
        }));
    }
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(live.clone(), start)));

    let mut total = Outcome {
        messages: 0,
        bytes: 0,
        latency: Histogram::new(),
    };
    let mut failure = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(outcome)) => {
                total.messages += outcome.messages;
                total.bytes += outcome.bytes;
                total.latency.merge(&outcome.latency);
            }
            Ok(Err(error)) => failure = failure.or(Some(error)),
            Err(error) => failure = failure.or(Some(CliError(format!("worker failed: {error}")))),
        }
    }
    live.stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    if let Some(error) = failure {
        return Err(error);
    }
    report(&args, &total, args.duration);
    Ok(())
}

/// One connection's load loop; see the module docs.
async fn drive(
    mut ws: WebSocket<ClientStream>,
    payload: Payload,
    in_flight: usize,
    deadline: Instant,
    live: &Live,
) -> CliResult<Outcome> {
    let mut outcome = Outcome {
        messages: 0,
        bytes: 0,
        latency: Histogram::new(),
    };
    let mut sent_at = VecDeque::with_capacity(in_flight);
    let mut next_send = 0u64;
    let mut next_reply = 0u64;
    let fail =
        |e: enim_labore_occaecati::Error| CliError(format!("connection failed: {}", chain(&e)));
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        while sent_at.len() < in_flight {
            ws.feed(payload.message(next_send)).await.map_err(fail)?;
            sent_at.push_back(Instant::now());
            next_send += 1;
        }
        // `recv` is cancel-safe: at the deadline nothing is lost, the reply is drained below.
        let reply = match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(reply) => reply.map_err(fail)?,
            Err(_) => break,
        };
        let Some(reply) = reply else {
            return Err(CliError("the server closed the connection".to_owned()));
        };
        let sent = sent_at
            .pop_front()
            .ok_or("a message arrived that was never sent")?;
        outcome.latency.record(sent.elapsed());
        payload.check(&reply, next_reply)?;
        next_reply += 1;
        outcome.messages += 1;
        outcome.bytes += reply.len() as u64;
        live.messages.fetch_add(1, Ordering::Relaxed);
        live.bytes.fetch_add(reply.len() as u64, Ordering::Relaxed);
    }
    // Collect the replies still in flight (not counted), then close cleanly.
    let drain = async {
        while !sent_at.is_empty() {
            match ws.recv().await {
                Ok(Some(_)) => {
                    sent_at.pop_front();
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    let _ = ws.close(Some(CloseFrame::new(1000u16, "bench done"))).await;
    Ok(outcome)
}

/// The message template: a sequence number first (16 hex digits in text, 8 bytes little-endian
/// in binary) when it fits, then filler. Sequence numbers of a connection start at
/// `first_seq`.
#[derive(Clone)]
struct Payload {
    template: Bytes,
    binary: bool,
    first_seq: u64,
}

impl Payload {
    fn new(size: usize, binary: bool) -> Payload {
        let template: Vec<u8> = if binary {
            (0..size).map(|i| (i % 251) as u8).collect()
        } else {
            (0..size).map(|i| b'a' + (i % 26) as u8).collect()
        };
        Payload {
            template: template.into(),
            binary,
            first_seq: 0,
        }
    }

    fn seq_len(&self) -> usize {
        if self.binary {
            8
        } else {
            16
        }
    }

    fn encode_seq(&self, seq: u64) -> Vec<u8> {
        let seq = self.first_seq.wrapping_add(seq);
        if self.binary {
            seq.to_le_bytes().to_vec()
        } else {
            format!("{seq:016x}").into_bytes()
        }
    }

    fn message(&self, seq: u64) -> Message {
        let bytes = if self.template.len() >= self.seq_len() {
            let mut bytes = BytesMut::from(&self.template[..]);
            bytes[..self.seq_len()].copy_from_slice(&self.encode_seq(seq));
            bytes.freeze()
        } else {
            // Too small for a sequence number: FIFO order alone matches replies.
            self.template.clone()
        };
        if self.binary {
            Message::Binary(bytes)
        } else {
            match Utf8Bytes::try_from(bytes) {
                Ok(text) => Message::Text(text),
                Err(_) => unreachable!("the text template is ASCII"),
            }
        }
    }

    fn check(&self, reply: &Message, seq: u64) -> CliResult<()> {
        let ok = match reply {
            Message::Text(_) if self.binary => false,
            Message::Binary(_) if !self.binary => false,
            Message::Text(_) | Message::Binary(_) => {
                let data = reply.as_payload();
                data.len() == self.template.len()
                    && (data.len() < self.seq_len()
                        || data[..self.seq_len()] == self.encode_seq(seq)[..])
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(CliError(format!(
                "reply {seq} does not echo message {seq} (is this an echo server?)"
            )))
        }
    }
}

/// A log-linear latency histogram in nanoseconds: 128 buckets per power of two, so every
/// recorded value is within 1% of the one reported, in 58 KiB.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB],
            total: 0,
            max: 0,
        }
    }

    fn index(nanos: u64) -> usize {
        if nanos < SUB as u64 {
            return nanos as usize;
        }
        let exponent = 63 - nanos.leading_zeros();
        let shift = exponent - SUB_BITS;
        let sub = (nanos >> shift) as usize & (SUB - 1);
        ((shift as usize + 1) << SUB_BITS) + sub
    }

    /// The smallest value of bucket `index`.
    fn lower_bound(index: usize) -> u64 {
        let bucket = index >> SUB_BITS;
        let sub = (index & (SUB - 1)) as u64;
        if bucket == 0 {
            sub
        } else {
            (SUB as u64 + sub) << (bucket - 1)
        }
    }

    fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), in nanoseconds.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::lower_bound(index).min(self.max);
            }
        }
        self.max
    }
}

/// Once a second, the last second's rate on one stderr line (only on a terminal).
async fn progress(live: Arc<Live>, start: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut last_messages, mut last_bytes) = (0, 0);
    loop {
        ticker.tick().await;
        if live.stop.load(Ordering::Relaxed) {
            break;
        }
        let messages = live.messages.load(Ordering::Relaxed);
        let bytes = live.bytes.load(Ordering::Relaxed);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{:>4.0} s  {:>10} msg/s  {:>9.2} MB/s",
            start.elapsed().as_secs_f64(),
            messages - last_messages,
            (bytes - last_bytes) as f64 / 1e6
        );
        let _ = err.flush();
        (last_messages, last_bytes) = (messages, bytes);
    }
    let _ = write!(std::io::stderr(), "\r\x1b[K");
}

fn report(args: &BenchArgs, total: &Outcome, duration: Duration) {
    let secs = duration.as_secs_f64();
    let ms = |nanos: u64| nanos as f64 / 1e6;
    say(format_args!(
        "{}: {} connection(s), {} in flight each, {}-byte {} messages, {:.1} s",
        args.url,
        args.connections,
        args.in_flight,
        args.payload,
        if args.binary { "binary" } else { "text" },
        secs
    ));
    say(format_args!(
        "messages:   {} echoed, {:.0} msg/s",
        total.messages,
        total.messages as f64 / secs
    ));
    say(format_args!(
        "throughput: {:.2} MB/s of payload each way",
        total.bytes as f64 / secs / 1e6
    ));
    let h = &total.latency;
    say(format_args!(
        "latency:    p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(h.quantile(0.50)),
        ms(h.quantile(0.90)),
        ms(h.quantile(0.99)),
        ms(h.max)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            123_456,
            u64::MAX / 3,
        ] {
            let lower = Histogram::lower_bound(Histogram::index(v));
            assert!(lower <= v, "{v}");
            assert!(v - lower <= v / 100 + 1, "{v} {lower}");
        }
        let mut h = Histogram::new();
        for micros in 1..=100u64 {
            h.record(Duration::from_micros(micros));
        }
        let p50 = h.quantile(0.5);
        assert!((49_500..=50_000).contains(&p50), "{p50}");
        assert_eq!(h.max, 100_000);
        assert!(h.quantile(0.99) <= 99_000 && h.quantile(0.99) >= 98_000);
    }

    #[test]
    fn payload_carries_its_sequence_number() {
        let text = Payload::new(20, false);
        let m = text.message(42);
        assert_eq!(m.as_text().unwrap(), "000000000000002aqrst");
        assert!(text.check(&m, 42).is_ok());
        assert!(text.check(&m, 41).is_err());
        let bin = Payload::new(10, true);
        assert!(bin.check(&bin.message(7), 7).is_ok());
        assert!(bin.check(&text.message(7), 7).is_err());
        let other = Payload {
            first_seq: 1 << 48,
            ..text.clone()
        };
        assert!(other.check(&text.message(42), 42).is_err());
        let tiny = Payload::new(3, false);
        assert!(tiny.check(&tiny.message(9), 9).is_ok());
    }
}

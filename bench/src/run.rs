//! The `run` mode: throughput and server CPU per message, servers interleaved.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client;
use crate::servers::Impl;
use crate::sys::{self, ServerProc};
use crate::Opts;
use elo_bench::frames;
use elo_bench::latency::{quantile, Latencies};
use elo_bench::stats::{median, min_max, sign_test_p};

/// Payloads at or above this size use at most `BIG_MAX_CONNS` connections.
const BIG_PAYLOAD: usize = 1 << 20;
const BIG_MAX_CONNS: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A load-generator connection.
enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scenario {
    pub payload: usize,
    pub conns: usize,
    pub k: usize,
}

/// One server's figures in one scenario, over the rounds: medians, but for the spread of the
/// rates and whether any round failed.
struct RowStats {
    rate: f64,
    cpu: f64,
    /// CPU µs per message in user space and in the kernel.
    user: f64,
    kernel: f64,
    srv: f64,
    gen: f64,
    spread: f64,
    err: bool,
}

#[derive(Clone, Debug, Default)]
struct Sample {
    msgs_per_s: f64,
    cpu_us_per_msg: f64,
    /// Server CPU time over wall time, in percent of one core.
    server_util: f64,
    /// The part of `cpu_us_per_msg` spent in the kernel (the server's system time).
    kernel_us_per_msg: f64,
    /// Load generator CPU time over wall time, in percent of one core.
    client_util: f64,
    /// CPU used by other processes on the machine meanwhile, in percent of one core.
    other_util: f64,
    /// Reply latency percentiles, µs (NaN over TLS).
    p50_us: f64,
    p99_us: f64,
    error: Option<String>,
}

fn plan(opts: &Opts) -> (Vec<Scenario>, Vec<String>) {
    let payloads = opts.payloads.clone().unwrap_or_else(|| {
        if opts.quick {
            vec![16, 1024, 1 << 20]
        } else {
            vec![16, 1024, 16 << 10, 1 << 20]
        }
    });
    let conns = opts.conns.clone().unwrap_or_else(|| {
        if opts.quick {
            vec![1, 64]
        } else {
            vec![1, 64, 256]
        }
    });
    let ks = opts.inflight.clone().unwrap_or_else(|| vec![1, 16]);
    let mut scenarios = Vec::new();
    let mut notes = Vec::new();
    for &payload in &payloads {
        for &c in &conns {
            for &k in &ks {
                if payload >= BIG_PAYLOAD && c > BIG_MAX_CONNS {
                    let note = format!(
                        "{} payloads: {} connections skipped (at most {BIG_MAX_CONNS} \
                         connections for payloads >= 1 MiB, to bound the bytes in flight)",
                        size(payload),
                        c
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    continue;
                }
                scenarios.push(Scenario {
                    payload,
                    conns: c,
                    k,
                });
            }
        }
    }
    (scenarios, notes)
}

pub fn run(opts: &Opts) -> Result<(), String> {
    let fd_limit = sys::raise_fd_limit();
    let crate::LoadGenerator {
        rt,
        server_cpu,
        client_cpu,
    } = crate::load_generator(opts.pin)?;
    let (scenarios, mut notes) = plan(opts);
    let max_conns = scenarios.iter().map(|s| s.conns).max().unwrap_or(0);
    if (max_conns as u64) * 2 + 64 > fd_limit {
        return Err(format!(
            "RLIMIT_NOFILE is {fd_limit}, too low for {max_conns} connections"
        ));
    }
    let tls = if opts.tls {
        let cert = crate::tls::Certificate::generate()?;
        let _ = sys::SERVER_TLS.set((cert.cert_file.clone(), cert.key_file.clone()));
        notes.push(
            "every connection over TLS (rustls with ring, TLS 1.3, one configuration: the \
             library's ServerTls for elo and elo-events, tokio-rustls for the others)"
                .to_owned(),
        );
        Some(Arc::new(cert))
    } else {
        None
    };

    let mut procs = Vec::new();
    for &imp in &opts.servers {
        let proc = ServerProc::spawn(imp, server_cpu)
            .map_err(|e| format!("starting {} server: {e}", imp.name()))?;
        procs.push(proc);
    }
    // Correctness first: every server must echo every payload size byte for byte.
    let payload_sizes: std::collections::BTreeSet<usize> =
        scenarios.iter().map(|s| s.payload).collect();
    for proc in &procs {
        for &p in &payload_sizes {
            rt.block_on(client::verify_echo(
                proc.addr,
                &frames::payload(p),
                tls.as_deref(),
            ))
            .map_err(|e| {
                format!(
                    "{} server failed the echo check ({p} B): {e}",
                    proc.imp.name()
                )
            })?;
        }
    }

    let warmup = (opts.duration / 8).min(Duration::from_millis(250));
    let total = scenarios.len() * procs.len() * opts.rounds;
    let estimate = (opts.duration + warmup + Duration::from_millis(150)) * total as u32;
    eprintln!(
        "elo-bench: {} scenarios x {} servers x {} rounds = {total} measurements of {:.1} s \
         (+{:.2} s warm-up each), about {:.0} s",
        scenarios.len(),
        procs.len(),
        opts.rounds,
        opts.duration.as_secs_f64(),
        warmup.as_secs_f64(),
        estimate.as_secs_f64()
    );

    let started = Instant::now();
    let mut results: BTreeMap<(Scenario, usize), Vec<Sample>> = BTreeMap::new();
    let mut done = 0;
    for (si, sc) in scenarios.iter().enumerate() {
        let frame = frames::masked_frame(&frames::payload(sc.payload));
        let frame_len = frame.len();
        let frames = Arc::new(frame.repeat(sc.k));
        for round in 0..opts.rounds {
            let n = procs.len();
            for j in 0..n {
                let idx = (j + si + round) % n;
                let sample = rt.block_on(measure(
                    &procs[idx],
                    sc,
                    &frames,
                    frame_len,
                    opts.duration,
                    warmup,
                    tls.clone(),
                ));
                procs[idx].wait_idle(Duration::from_secs(3));
                done += 1;
                eprintln!(
                    "[{done:>3}/{total}] {:>7} c={:<3} K={:<2} {:<14} {:>10.0} msg/s {:>8.2} µs/msg \
                     srv {:>3.0}% gen {:>3.0}% other {:>3.0}%{}",
                    size(sc.payload),
                    sc.conns,
                    sc.k,
                    procs[idx].imp.name(),
                    sample.msgs_per_s,
                    sample.cpu_us_per_msg,
                    sample.server_util,
                    sample.client_util,
                    sample.other_util,
                    sample
                        .error
                        .as_deref()
                        .map(|e| format!("  ERROR: {e}"))
                        .unwrap_or_default()
                );
                if !procs[idx].alive() {
                    let imp = procs[idx].imp;
                    notes.push(format!(
                        "{} server died during {} c={} K={}; restarted",
                        imp.name(),
                        size(sc.payload),
                        sc.conns,
                        sc.k
                    ));
                    procs[idx] = ServerProc::spawn(imp, server_cpu)
                        .map_err(|e| format!("restarting {} server: {e}", imp.name()))?;
                }
                results.entry((*sc, idx)).or_default().push(sample);
            }
        }
    }
    drop(procs);

    print_report(
        opts,
        &scenarios,
        &results,
        &notes,
        server_cpu,
        client_cpu,
        started.elapsed(),
    );
    Ok(())
}

/// The load of one measurement: `sc.conns` connections (handshakes 64 at a time), each
/// keeping `sc.k` messages in flight; replies are counted in the counter.
pub(crate) struct Load {
    pub tasks: JoinSet<std::io::Result<()>>,
    pub replies: Arc<AtomicU64>,
    /// Reply latencies of the plain connections (not measured over TLS).
    pub latencies: Arc<Latencies>,
}

impl Load {
    pub(crate) async fn start(
        addr: std::net::SocketAddr,
        sc: &Scenario,
        frames: &Arc<Vec<u8>>,
        frame_len: usize,
        tls: Option<Arc<crate::tls::Certificate>>,
    ) -> Result<Load, String> {
        let mut streams = Vec::with_capacity(sc.conns);
        while streams.len() < sc.conns {
            let batch = (sc.conns - streams.len()).min(64);
            let mut set = JoinSet::new();
            for _ in 0..batch {
                let tls = tls.clone();
                set.spawn(async move {
                    Ok::<_, std::io::Error>(match tls {
                        Some(tls) => Conn::Tls(Box::new(
                            client::connect_tls(addr, CONNECT_TIMEOUT, &tls).await?,
                        )),
                        None => Conn::Plain(client::connect(addr, CONNECT_TIMEOUT).await?),
                    })
                });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(s)) => streams.push(s),
                    Ok(Err(e)) => return Err(format!("connect: {e}")),
                    Err(e) => return Err(format!("connect task: {e}")),
                }
            }
        }
        let replies = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Latencies::new());
        let mut tasks = JoinSet::new();
        for stream in streams {
            let (frames, counter) = (frames.clone(), replies.clone());
            match stream {
                Conn::Plain(stream) => tasks.spawn(client::drive(
                    stream,
                    frames,
                    frame_len,
                    sc.k,
                    sc.payload,
                    counter,
                    latencies.clone(),
                )),
                Conn::Tls(stream) => tasks.spawn(client::drive_stream(
                    *stream, frames, frame_len, sc.k, sc.payload, counter,
                )),
            };
        }
        Ok(Load {
            tasks,
            replies,
            latencies,
        })
    }

    pub(crate) fn replies(&self) -> u64 {
        self.replies.load(Ordering::Relaxed)
    }

    /// Stops every connection; the first error of a connection that failed before, if any.
    pub(crate) async fn stop(mut self) -> Option<String> {
        let mut error = None;
        while let Some(r) = self.tasks.try_join_next() {
            if let Ok(Err(e)) = r {
                error.get_or_insert(format!("connection failed: {e}"));
            }
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        error
    }
}

async fn measure(
    server: &ServerProc,
    sc: &Scenario,
    frames: &Arc<Vec<u8>>,
    frame_len: usize,
    duration: Duration,
    warmup: Duration,
    tls: Option<Arc<crate::tls::Certificate>>,
) -> Sample {
    let load = match Load::start(server.addr, sc, frames, frame_len, tls).await {
        Ok(load) => load,
        Err(e) => {
            return Sample {
                error: Some(e),
                p50_us: f64::NAN,
                p99_us: f64::NAN,
                ..Sample::default()
            }
        }
    };
    let me = std::process::id();
    tokio::time::sleep(warmup).await;
    let l0 = load.latencies.snapshot();
    let (m0, s0, c0, b0, t0) = (
        load.replies(),
        server.cpu_times_us().unwrap_or((0, 0)),
        sys::cpu_time_us(me).unwrap_or(0),
        sys::machine_busy_us().unwrap_or(0),
        Instant::now(),
    );
    tokio::time::sleep(duration).await;
    let (m1, s1, c1, b1, t1) = (
        load.replies(),
        server.cpu_times_us().unwrap_or((0, 0)),
        sys::cpu_time_us(me).unwrap_or(0),
        sys::machine_busy_us().unwrap_or(0),
        Instant::now(),
    );
    let l1 = load.latencies.snapshot();
    // Connections that failed before the end.
    let error = load.stop().await;

    let wall = (t1 - t0).as_secs_f64();
    let msgs = (m1 - m0) as f64;
    let user = s1.0.saturating_sub(s0.0);
    let kernel = s1.1.saturating_sub(s0.1);
    let cpu = (user + kernel) as f64;
    Sample {
        msgs_per_s: msgs / wall,
        cpu_us_per_msg: if msgs > 0.0 { cpu / msgs } else { f64::NAN },
        server_util: cpu / (wall * 1e4),
        kernel_us_per_msg: if msgs > 0.0 {
            kernel as f64 / msgs
        } else {
            f64::NAN
        },
        client_util: c1.saturating_sub(c0) as f64 / (wall * 1e4),
        other_util: b1
            .saturating_sub(b0)
            .saturating_sub(user + kernel + c1.saturating_sub(c0)) as f64
            / (wall * 1e4),
        p50_us: quantile(&l0, &l1, 0.5),
        p99_us: quantile(&l0, &l1, 0.99),
        error,
    }
}

pub fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

fn rate(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_owned()
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A table of two µs figures per server (`columns` names them) for each scenario; `figures`
/// gives them for a scenario and a server's index.
fn print_two_per_server(
    scenarios: &[Scenario],
    names: &[&str],
    columns: [&str; 2],
    figures: impl Fn(&Scenario, usize) -> (f64, f64),
) {
    let mut header = "| payload | conns | K |".to_owned();
    let mut rule = "|---:|---:|---:|".to_owned();
    for n in names {
        header += &format!(" {n} {} | {n} {} |", columns[0], columns[1]);
        rule += "---:|---:|";
    }
    println!("{header}\n{rule}");
    for sc in scenarios {
        let mut row = format!("| {} | {} | {} |", size(sc.payload), sc.conns, sc.k);
        for i in 0..names.len() {
            let (a, b) = figures(sc, i);
            row += &format!(" {} | {} |", micros(a), micros(b));
        }
        println!("{row}");
    }
}

fn micros(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_owned()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 1000.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    opts: &Opts,
    scenarios: &[Scenario],
    results: &BTreeMap<(Scenario, usize), Vec<Sample>>,
    notes: &[String],
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    elapsed: Duration,
) {
    let names: Vec<&str> = opts.servers.iter().map(|i| i.name()).collect();
    let elo = opts.servers.iter().position(|&i| i == Impl::Elo);
    let stats = |sc: &Scenario, i: usize| -> RowStats {
        let samples = results.get(&(*sc, i)).map(Vec::as_slice).unwrap_or(&[]);
        let rates: Vec<f64> = samples.iter().map(|s| s.msgs_per_s).collect();
        let med = median(rates.clone());
        let spread = if med > 0.0 {
            let (min, max) = min_max(&rates);
            (max - min) / med * 100.0
        } else {
            f64::NAN
        };
        RowStats {
            rate: med,
            cpu: median(samples.iter().map(|s| s.cpu_us_per_msg).collect()),
            user: median(
                samples
                    .iter()
                    .map(|s| s.cpu_us_per_msg - s.kernel_us_per_msg)
                    .collect(),
            ),
            kernel: median(samples.iter().map(|s| s.kernel_us_per_msg).collect()),
            srv: median(samples.iter().map(|s| s.server_util).collect()),
            gen: median(samples.iter().map(|s| s.client_util).collect()),
            spread,
            err: samples.iter().any(|s| s.error.is_some()),
        }
    };

    println!("\n## Echo throughput: elo vs tokio-tungstenite vs fastwebsockets\n");
    println!("Machine: {}", sys::machine_description());
    match (server_cpu, client_cpu) {
        (Some(s), Some(c)) => println!(
            "Placement: each server process pinned to CPU {s} (tokio current_thread), load \
             generator pinned to CPU {c} (tokio current_thread)."
        ),
        _ => println!("Placement: not pinned."),
    }
    println!(
        "Run: {:.1} s per measurement after a {:.2} s warm-up, median of {} round(s), servers \
         interleaved (rotated within each scenario); total {:.0} s.",
        opts.duration.as_secs_f64(),
        (opts.duration / 8)
            .min(Duration::from_millis(250))
            .as_secs_f64(),
        opts.rounds,
        elapsed.as_secs_f64()
    );
    println!(
        "Figures are relative: the same load generator on the same machine, loopback only; \
         absolute numbers depend on the machine. K = messages in flight per connection; \
         payloads are binary messages echoed unchanged. CPU µs/msg = server process \
         utime+stime (from /proc/PID/stat, 10 ms ticks) / messages echoed. Ratios are msgs/s; \
         above 1 means elo is faster."
    );
    for note in notes {
        println!("Note: {note}");
    }
    println!();

    let mut header = "| payload | conns | K |".to_owned();
    let mut rule = "|---:|---:|---:|".to_owned();
    for n in &names {
        header += &format!(" {n} msg/s | {n} CPU µs/msg |");
        rule += "---:|---:|";
    }
    let others: Vec<usize> = (0..names.len()).filter(|&i| Some(i) != elo).collect();
    if elo.is_some() {
        for &o in &others {
            header += &format!(" elo/{} |", names[o]);
            rule += "---:|";
        }
    }
    println!("{header}\n{rule}");
    let mut log_ratio_sums = vec![(0.0f64, 0usize); names.len()];
    for sc in scenarios {
        let mut row = format!("| {} | {} | {} |", size(sc.payload), sc.conns, sc.k);
        for i in 0..names.len() {
            let st = stats(sc, i);
            let mark = if st.err { " (!)" } else { "" };
            row += &format!(" {}{mark} | {} |", rate(st.rate), micros(st.cpu));
        }
        if let Some(e) = elo {
            let base = stats(sc, e).rate;
            for &o in &others {
                let r = base / stats(sc, o).rate;
                if r.is_finite() && r > 0.0 {
                    log_ratio_sums[o].0 += r.ln();
                    log_ratio_sums[o].1 += 1;
                    row += &format!(" {r:.2} |");
                } else {
                    row += " n/a |";
                }
            }
        }
        println!("{row}");
    }
    if elo.is_some() {
        println!();
        for &o in &others {
            let (sum, n) = log_ratio_sums[o];
            if n > 0 {
                println!(
                    "Geometric mean of elo/{} (msgs/s) over {n} scenarios: {:.2}",
                    names[o],
                    (sum / n as f64).exp()
                );
            }
        }
    }

    println!("\n### Details\n");
    println!(
        "MB/s = echoed payload bytes per second, one direction (10^6 bytes). srv % = server \
         CPU over wall time (100 = one core busy). spread = (max - min) / median of msgs/s \
         over the rounds. gen % = load generator CPU (100 = its core saturated: the client, \
         not the server, may then be the limit). Neither counts the kernel's softirq time for \
         loopback delivery. other % = highest CPU use by other processes on the machine during \
         any measurement of the row (user+system from /proc/stat minus ours).\n"
    );
    let mut header = "| payload | conns | K |".to_owned();
    let mut rule = "|---:|---:|---:|".to_owned();
    for n in &names {
        header += &format!(" {n} MB/s | srv % | spread | gen % |");
        rule += "---:|---:|---:|---:|";
    }
    header += " other % |";
    rule += "---:|";
    println!("{header}\n{rule}");
    let mut worst_other = 0.0f64;
    for sc in scenarios {
        let mut row = format!("| {} | {} | {} |", size(sc.payload), sc.conns, sc.k);
        for i in 0..names.len() {
            let st = stats(sc, i);
            row += &format!(
                " {:.1} | {:.0} | {:.1}% | {:.0} |",
                st.rate * sc.payload as f64 / 1e6,
                st.srv,
                st.spread,
                st.gen
            );
        }
        let other = (0..names.len())
            .flat_map(|i| results.get(&(*sc, i)).into_iter().flatten())
            .map(|s| s.other_util)
            .fold(0.0f64, f64::max);
        worst_other = worst_other.max(other);
        row += &format!(" {other:.0} |");
        println!("{row}");
    }
    println!("\n### Server CPU per message: user space and kernel\n");
    println!(
        "µs per message echoed, split by the server's utime and stime (/proc/PID/stat): the \
         user part is the server's own code (library, runtime, libc), the kernel part its \
         system calls (socket reads and writes, loopback delivery, epoll). Medians over the \
         rounds, each part on its own.\n"
    );
    print_two_per_server(scenarios, &names, ["user", "kernel"], |sc, i| {
        let st = stats(sc, i);
        (st.user, st.kernel)
    });
    if worst_other > 10.0 {
        println!(
            "\nWarning: other processes used up to {worst_other:.0}% of a core during the run; \
             rows with a high other % are less reliable."
        );
    }
    if !opts.tls {
        println!("\n### Latency\n");
        println!(
            "Per message, from its frame written whole by the load generator to its reply \
             parsed, µs: p50 and p99 over every message of the measurement, median over the \
             rounds (log buckets: within 1/8).\n"
        );
        print_two_per_server(scenarios, &names, ["p50", "p99"], |sc, i| {
            let samples = results.get(&(*sc, i)).map(Vec::as_slice).unwrap_or(&[]);
            (
                median(samples.iter().map(|s| s.p50_us).collect()),
                median(samples.iter().map(|s| s.p99_us).collect()),
            )
        });
    }
    if let Some(e) = elo.filter(|_| opts.rounds > 1) {
        print_paired_rounds(scenarios, results, &names, e, &others);
    }
    let names = &names;
    let errors: Vec<String> = results
        .iter()
        .flat_map(|((sc, i), samples)| {
            samples.iter().filter_map(move |s| {
                s.error.as_ref().map(|e| {
                    format!(
                        "{} c={} K={} {}: {e}",
                        size(sc.payload),
                        sc.conns,
                        sc.k,
                        names[*i]
                    )
                })
            })
        })
        .collect();
    if !errors.is_empty() {
        println!("\n### Errors (rows marked (!))\n");
        for e in errors {
            println!("- {e}");
        }
    }
}

/// Round-by-round comparison. The servers of a scenario are measured back to back within each
/// round, so the ratio of one round's two rates is untouched by drifts slower than a round (other
/// load, frequency, the host's neighbours); the spread of those ratios shows how far a row's
/// ratio of medians can be trusted.
fn print_paired_rounds(
    scenarios: &[Scenario],
    results: &BTreeMap<(Scenario, usize), Vec<Sample>>,
    names: &[&str],
    elo: usize,
    others: &[usize],
) {
    println!("\n### Round by round\n");
    println!(
        "Per round, elo's rate over the peer's rate measured in the same round: the median of \
         those ratios, their lowest and highest, in how many rounds elo was at least as fast, \
         and the two-sided sign test's p: the chance of a split of rounds at least that uneven \
         if neither server were faster. With p of 0.05 or more the rounds show neither server \
         faster (a tie within this machine's noise, or too few rounds to tell); below, one was \
         faster in that run.\n"
    );
    let mut header = "| payload | conns | K |".to_owned();
    let mut rule = "|---:|---:|---:|".to_owned();
    for &o in others {
        header += &format!(" elo/{} median | range | elo ≥ | p |", names[o]);
        rule += "---:|---:|---:|---:|";
    }
    println!("{header}\n{rule}");
    for sc in scenarios {
        let mut row = format!("| {} | {} | {} |", size(sc.payload), sc.conns, sc.k);
        let ours = results.get(&(*sc, elo)).map(Vec::as_slice).unwrap_or(&[]);
        for &o in others {
            let theirs = results.get(&(*sc, o)).map(Vec::as_slice).unwrap_or(&[]);
            let ratios: Vec<f64> = ours
                .iter()
                .zip(theirs)
                .filter(|(a, b)| a.error.is_none() && b.error.is_none())
                .map(|(a, b)| a.msgs_per_s / b.msgs_per_s)
                .filter(|r| r.is_finite() && *r > 0.0)
                .collect();
            if ratios.is_empty() {
                row += " n/a | n/a | n/a | n/a |";
                continue;
            }
            let (low, high) = min_max(&ratios);
            let wins = ratios.iter().filter(|&&r| r >= 1.0).count();
            let rounds = ratios.len();
            row += &format!(
                " {:.2} | {low:.2}-{high:.2} | {wins}/{rounds} | {:.2} |",
                median(ratios),
                sign_test_p(wins, rounds)
            );
        }
        println!("{row}");
    }
}

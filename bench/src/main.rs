//! `elo-bench`: echo-server benchmarks of enim-labore-occaecati against tokio-tungstenite and
//! fastwebsockets, each server in its own process, driven by one load generator.
//!
//! ```text
//! elo-bench [run] [--quick] [--duration SECS] [--rounds N] [--servers a,b,c]
//!                 [--payloads 16,1024,..] [--conns 1,64,..] [--inflight 1,16] [--no-pin] [--tls]
//!                 [--baseline PATH]
//! elo-bench idle [--conns N] [--hold SECS] [--servers a,b,c] [--no-pin]
//!                [--warm N [--payloads B]] [--massif]
//! elo-bench instructions [--duration SECS] [--servers a,b,c] [--payloads ..] [--conns ..]
//!                        [--inflight ..] [--no-pin]
//! elo-bench server <elo|elo-events|tungstenite|fastwebsockets> <addr> [--cpu N] [--tls CERT KEY]
//! elo-bench soak [--elo PATH] [--connections N] [--seconds S] [--heartbeat S]
//! ```
//!
//! Environment: `ELO_BENCH_DURATION` (seconds per measurement), `ELO_BENCH_ROUNDS`,
//! `ELO_BENCH_QUICK=1`; flags win over the environment.

mod client;
mod fanout;
mod fanout_servers;
mod idle;
mod instructions;
mod massif;
mod run;
mod servers;
mod soak;
mod sys;
mod tls;

use std::process::ExitCode;
use std::time::Duration;

use servers::Impl;

const USAGE: &str = "usage:
  elo-bench [run] [--quick] [--duration SECS] [--rounds N] [--servers elo,tungstenite,fastwebsockets[,elo-events,uws]]
                  [--payloads 16,1024,16384,1048576] [--conns 1,64,256] [--inflight 1,16] [--no-pin]
                  [--tls]   (every connection over TLS, one rustls stack for all servers)
                  [--baseline PATH]   (server `baseline`: elo from another elo-bench build)
  elo-bench idle [--conns N] [--hold SECS] [--servers ...] [--no-pin] [--tls]
                  [--warm N [--payloads B]]   (each connection echoes N messages of B bytes
                  at once, 1024 unless told, before it goes idle)
                  [--massif]   (servers under valgrind's massif: the heap per connection by
                  allocation site)
  elo-bench instructions [--duration SECS] [--servers ...] [--payloads 16,1024,16384]
                  [--conns 1,64] [--inflight 1,16] [--no-pin]   (valgrind's callgrind)
  elo-bench server <elo|elo-events|tungstenite|fastwebsockets> <addr> [--cpu N] [--tls CERT KEY]
  elo-bench fanout [--servers elo,ws,tungstenite[,elo-events,uws]] [--subs 100,1000,10000]
                  [--payloads 16,1024,16384] [--deflate off,on] [--inflight 32] [--duration SECS]
                  [--nodes 1,2,3 --broker redis,nats] [--no-pin]   (one publisher, N subscribers)
  elo-bench fanout-server <elo|elo-events|tungstenite> <addr> [--cpu N] [--broker URL] [--deflate]
  elo-bench soak [--elo PATH] [--connections 10000] [--seconds 180] [--heartbeat 5]
                  (the echo server under connections, traffic and faults; scripts/soak.sh)
environment: ELO_BENCH_DURATION=SECS, ELO_BENCH_ROUNDS=N, ELO_BENCH_QUICK=1";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server_cmd(&args[1..]),
        Some("fanout") => fanout::parse(&args[1..]).and_then(|o| fanout::run(&o)),
        Some("fanout-server") => fanout_server_cmd(&args[1..]),
        Some("soak") => soak::parse(&args[1..]).and_then(|o| soak::run(&o)),
        Some("soak-hold") => soak::hold(&args[1..]),
        Some("idle") => parse_opts(&args[1..]).and_then(|o| idle::run(&o)),
        Some("instructions") => parse_opts(&args[1..]).and_then(|o| instructions::run(&o)),
        Some("run") => parse_opts(&args[1..]).and_then(|o| run::run(&o)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => parse_opts(&args).and_then(|o| run::run(&o)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("elo-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fanout_server_cmd(args: &[String]) -> Result<(), String> {
    let [imp, addr, rest @ ..] = args else {
        return Err(USAGE.to_owned());
    };
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    let mut cpu = None;
    let mut opts = fanout_servers::RelayOpts {
        deflate: false,
        broker: None,
    };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--deflate", next) => {
                opts.deflate = true;
                if let Some(next) = next {
                    return Err(format!("unexpected {next:?}\n{USAGE}"));
                }
            }
            ("--cpu", Some(n)) => cpu = Some(n.parse().map_err(|_| format!("bad --cpu {n:?}"))?),
            ("--broker", Some(url)) => opts.broker = Some(url.clone()),
            _ => return Err(USAGE.to_owned()),
        }
    }
    fanout_servers::run(imp, addr, cpu, opts).map_err(|e| format!("{imp} relay server: {e}"))
}

fn server_cmd(args: &[String]) -> Result<(), String> {
    let [imp, addr, rest @ ..] = args else {
        return Err(USAGE.to_owned());
    };
    let imp = Impl::parse(imp).ok_or_else(|| format!("unknown server {imp:?}\n{USAGE}"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    let mut cpu = None;
    let mut tls = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--cpu", Some(n)) => cpu = Some(n.parse().map_err(|_| format!("bad --cpu {n:?}"))?),
            ("--tls", Some(cert)) => {
                let key = it.next().ok_or_else(|| USAGE.to_owned())?;
                let loaded = enim_labore_occaecati::tls::ServerTls::from_pem_files(cert, key)
                    .map_err(|e| format!("--tls: {e}"))?;
                tls = Some(loaded);
            }
            _ => return Err(USAGE.to_owned()),
        }
    }
    servers::run(imp, addr, cpu, tls).map_err(|e| format!("{} server: {e}", imp.name()))
}

/// Options of `run`, `idle` and `instructions`.
#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    pub duration: Duration,
    pub rounds: usize,
    pub servers: Vec<Impl>,
    pub payloads: Option<Vec<usize>>,
    pub conns: Option<Vec<usize>>,
    pub inflight: Option<Vec<usize>>,
    pub pin: bool,
    pub hold: Duration,
    pub tls: bool,
    /// `idle`: messages each connection echoes before it goes idle.
    pub warm: usize,
    /// `idle`: the servers under valgrind's massif, with the heap per connection by site.
    pub massif: bool,
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| x.trim().parse().map_err(|_| format!("bad {what} {x:?}")))
        .collect()
}

fn secs(s: &str, what: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad {what} {s:?} (seconds, 0 < s <= 600)"))
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut quick = env("ELO_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut duration = env("ELO_BENCH_DURATION")
        .map(|v| secs(&v, "ELO_BENCH_DURATION"))
        .transpose()?;
    let mut rounds = env("ELO_BENCH_ROUNDS")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| format!("bad ELO_BENCH_ROUNDS {v:?}"))
        })
        .transpose()?;
    let mut opts = Opts {
        quick: false,
        duration: Duration::ZERO,
        rounds: 0,
        servers: Impl::ALL.to_vec(),
        payloads: None,
        conns: None,
        inflight: None,
        pin: true,
        hold: Duration::from_secs(1),
        tls: false,
        warm: 0,
        massif: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--quick" => quick = true,
            "--duration" => duration = Some(secs(&value()?, "--duration")?),
            "--rounds" => rounds = Some(value()?.parse().map_err(|_| "bad --rounds")?),
            "--servers" => {
                opts.servers = value()?
                    .split(',')
                    .map(|s| Impl::parse(s.trim()).ok_or_else(|| format!("unknown server {s:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--payloads" => opts.payloads = Some(list(&value()?, "payload")?),
            "--conns" => opts.conns = Some(list(&value()?, "connection count")?),
            "--inflight" => opts.inflight = Some(list(&value()?, "in-flight count")?),
            "--hold" => opts.hold = secs(&value()?, "--hold")?,
            "--no-pin" => opts.pin = false,
            "--tls" => opts.tls = true,
            "--warm" => opts.warm = value()?.parse().map_err(|_| "bad --warm")?,
            "--massif" => opts.massif = true,
            "--baseline" => {
                let exe = std::path::PathBuf::from(value()?);
                if !exe.is_file() {
                    return Err(format!("--baseline: no file {}", exe.display()));
                }
                let _ = sys::BASELINE_EXE.set(exe);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    opts.quick = quick;
    opts.duration = duration.unwrap_or(if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(2)
    });
    opts.rounds = rounds.unwrap_or(if quick { 1 } else { 3 }).clamp(1, 50);
    if opts.servers.is_empty() {
        return Err("no servers".to_owned());
    }
    if opts.servers.contains(&Impl::Baseline) && sys::BASELINE_EXE.get().is_none() {
        return Err(
            "server `baseline` needs --baseline PATH (another build of elo-bench)".to_owned(),
        );
    }
    let bad = |v: &Option<Vec<usize>>, max: usize| v.iter().flatten().any(|&x| x == 0 || x > max);
    if bad(&opts.payloads, 64 << 20) || bad(&opts.conns, 10_000) || bad(&opts.inflight, 1024) {
        return Err("payloads, conns and inflight must be positive (and sane)".to_owned());
    }
    Ok(opts)
}

/// The load generator's runtime (tokio `current_thread`) and where things run.
pub struct LoadGenerator {
    pub rt: tokio::runtime::Runtime,
    /// The CPU the servers are pinned to.
    pub server_cpu: Option<usize>,
    /// The CPU this process is pinned to.
    pub client_cpu: Option<usize>,
}

/// Pins this process (the load generator) as [`placement`] says and builds its runtime.
pub fn load_generator(pin: bool) -> Result<LoadGenerator, String> {
    let (server_cpu, client_cpu) = placement(pin);
    if let Some(cpu) = client_cpu {
        sys::pin_to_cpu(cpu).map_err(|e| format!("pinning the load generator: {e}"))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(LoadGenerator {
        rt,
        server_cpu,
        client_cpu,
    })
}

/// CPU placement: servers on the first allowed CPU, the load generator on the second, when
/// there are at least two.
pub fn placement(pin: bool) -> (Option<usize>, Option<usize>) {
    let cpus = sys::allowed_cpus();
    if pin && cpus.len() >= 2 {
        (Some(cpus[0]), Some(cpus[1]))
    } else {
        (None, None)
    }
}

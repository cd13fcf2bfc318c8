//! The `instructions` mode: user-space instructions each server process executes per echoed
//! message, counted by valgrind's callgrind. The count is exact and repeatable (the same binary
//! and load give the same figure to a fraction of a percent, whatever else the machine does),
//! so it compares the servers' own work where wall-clock rates sit within the machine's noise:
//! rows where both make the same system calls per message, and the kernel's work is the same.
//!
//! Each server runs under `valgrind --tool=callgrind` (about 50 times slower, so rates here
//! mean nothing). Per scenario: the load starts, warms up, `callgrind_control -z` zeroes the
//! counters, the replies are counted for the measurement window, `callgrind_control -d` dumps
//! the counters, and the dump's total is divided by the replies counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::run::{size, Load, Scenario};
use crate::servers::Impl;
use crate::sys::{self, ServerProc};
use crate::Opts;

/// Warm-up before the counters are zeroed (valgrind translates code on first use).
const WARMUP: Duration = Duration::from_secs(1);

pub fn run(opts: &Opts) -> Result<(), String> {
    sys::require_valgrind(&["valgrind", "callgrind_control"])?;
    let scenarios = plan(opts);
    let crate::LoadGenerator { rt, server_cpu, .. } = crate::load_generator(opts.pin)?;
    // ELO_BENCH_CALLGRIND_DIR keeps the dumps there, for callgrind_annotate. Only an empty
    // one: a count is read from the newest dump of its server, which must be this run's.
    let kept = std::env::var_os("ELO_BENCH_CALLGRIND_DIR").map(PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("elo-bench-callgrind-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let empty = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .next()
        .is_none();
    if !empty {
        return Err(format!("{} is not empty", dir.display()));
    }
    let result = measure_all(opts, &scenarios, &rt, &dir, server_cpu);
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_report(opts, &scenarios, &result?);
    Ok(())
}

fn plan(opts: &Opts) -> Vec<Scenario> {
    let payloads = opts
        .payloads
        .clone()
        .unwrap_or_else(|| vec![16, 1024, 16 << 10]);
    let conns = opts.conns.clone().unwrap_or_else(|| vec![1, 64]);
    let ks = opts.inflight.clone().unwrap_or_else(|| vec![1, 16]);
    let mut scenarios = Vec::new();
    for &payload in &payloads {
        for &conns in &conns {
            for &k in &ks {
                scenarios.push(Scenario { payload, conns, k });
            }
        }
    }
    scenarios
}

/// Instructions per message, by scenario and server.
type Counts = BTreeMap<(Scenario, Impl), Result<f64, String>>;

fn measure_all(
    opts: &Opts,
    scenarios: &[Scenario],
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    server_cpu: Option<usize>,
) -> Result<Counts, String> {
    let mut counts = Counts::new();
    for &imp in &opts.servers {
        let out = dir.join(format!("{}.callgrind", imp.name()));
        let wrapper = [
            "valgrind".to_owned(),
            "--tool=callgrind".to_owned(),
            "--dump-instr=no".to_owned(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        let server = ServerProc::spawn_under(imp, server_cpu, &wrapper, sys::VALGRIND_START)
            .map_err(|e| format!("starting {} under valgrind: {e}", imp.name()))?;
        for sc in scenarios {
            let count = rt.block_on(measure(&server, sc, opts.duration, &out));
            match &count {
                Ok(ir) => eprintln!(
                    "{:>7} c={:<3} K={:<2} {:<14} {ir:>9.0} instructions/msg",
                    size(sc.payload),
                    sc.conns,
                    sc.k,
                    imp.name()
                ),
                Err(e) => eprintln!(
                    "{:>7} c={:<3} K={:<2} {:<14} ERROR: {e}",
                    size(sc.payload),
                    sc.conns,
                    sc.k,
                    imp.name()
                ),
            }
            counts.insert((*sc, imp), count);
            server.wait_idle(Duration::from_secs(5));
        }
    }
    Ok(counts)
}

async fn measure(
    server: &ServerProc,
    sc: &Scenario,
    duration: Duration,
    out: &Path,
) -> Result<f64, String> {
    let frame = elo_bench::frames::masked_frame(&elo_bench::frames::payload(sc.payload));
    let frame_len = frame.len();
    let frames = Arc::new(frame.repeat(sc.k));
    let load = Load::start(server.addr, sc, &frames, frame_len, None).await?;
    tokio::time::sleep(WARMUP).await;
    let counted = async {
        callgrind_control("-z", server.pid).await?;
        let m0 = load.replies();
        tokio::time::sleep(duration).await;
        let m1 = load.replies();
        callgrind_control("-d", server.pid).await?;
        Ok::<_, String>(m1 - m0)
    }
    .await;
    let error = load.stop().await;
    let replies = counted?;
    if let Some(e) = error {
        return Err(e);
    }
    if replies == 0 {
        return Err("no replies in the window".to_owned());
    }
    let instructions = last_dump_total(out)?;
    Ok(instructions as f64 / replies as f64)
}

/// Runs `callgrind_control FLAG PID`, which returns once the running server has done it.
async fn callgrind_control(flag: &'static str, pid: u32) -> Result<(), String> {
    let args = [flag.to_owned(), pid.to_string()];
    sys::run_tool("callgrind_control", &args, Duration::from_secs(30)).await
}

/// The instruction total of the newest dump (`OUT.1`, `OUT.2`, ...: the highest part).
fn last_dump_total(out: &Path) -> Result<u64, String> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        "{}.",
        out.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    );
    let newest: Option<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let part = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((part, entry.path()))
        })
        .max();
    let (_, path) = newest.ok_or("no callgrind dump was written")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("{}: no summary line", path.display()))
}

fn print_report(opts: &Opts, scenarios: &[Scenario], counts: &Counts) {
    let peers: Vec<Impl> = opts
        .servers
        .iter()
        .copied()
        .filter(|&i| i != Impl::Elo)
        .collect();
    let has_elo = opts.servers.contains(&Impl::Elo);
    let get = |sc: &Scenario, imp: Impl| match counts.get(&(*sc, imp)) {
        Some(Ok(ir)) => Some(*ir),
        _ => None,
    };
    println!("\n## Server instructions per message (callgrind)\n");
    println!("Machine: {}", sys::machine_description());
    println!(
        "Each server under `valgrind --tool=callgrind`, counters zeroed after a {:.0} s warm-up, \
         then {:.1} s of load; instructions = every user-space instruction of the server process \
         (library, runtime, libc; not the kernel) / messages echoed. Exact and repeatable, unlike \
         rates; ratios below 1 mean elo executes fewer instructions per message.\n",
        WARMUP.as_secs_f64(),
        opts.duration.as_secs_f64()
    );
    let mut head = String::from("| payload | conns | K |");
    let mut rule = String::from("|---:|---:|---:|");
    for imp in &opts.servers {
        head.push_str(&format!(" {} |", imp.name()));
        rule.push_str("---:|");
    }
    if has_elo {
        for peer in &peers {
            head.push_str(&format!(" elo/{} |", peer.name()));
            rule.push_str("---:|");
        }
    }
    println!("{head}\n{rule}");
    for sc in scenarios {
        let mut row = format!("| {} | {} | {} |", size(sc.payload), sc.conns, sc.k);
        for &imp in &opts.servers {
            match get(sc, imp) {
                Some(ir) => row.push_str(&format!(" {ir:.0} |")),
                None => row.push_str(" error |"),
            }
        }
        if has_elo {
            for &peer in &peers {
                match (get(sc, Impl::Elo), get(sc, peer)) {
                    (Some(e), Some(p)) => row.push_str(&format!(" {:.2} |", e / p)),
                    _ => row.push_str(" n/a |"),
                }
            }
        }
        println!("{row}");
    }
}

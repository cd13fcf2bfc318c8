//! Linux process plumbing: server child processes (killed on drop), CPU time and RSS from
//! `/proc`, CPU pinning, the file-descriptor limit.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::servers::Impl;

/// The certificate and key files every server process serves TLS with (`--tls`).
pub static SERVER_TLS: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
    std::sync::OnceLock::new();

/// Another build of this benchmark whose `elo` server is measured as `baseline`
/// (`--baseline PATH`).
pub static BASELINE_EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// A server under test, running in its own process. Killed (and reaped) when dropped, also
/// while unwinding from a panic; the child also asks the kernel to kill it if we die.
pub struct ServerProc {
    pub imp: Impl,
    pub pid: u32,
    pub addr: SocketAddr,
    child: Child,
}

impl ServerProc {
    /// Spawns `<this binary> server <impl> 127.0.0.1:0 [--cpu N]` and waits (at most 10 s)
    /// for its `READY <addr>` line.
    pub fn spawn(imp: Impl, cpu: Option<usize>) -> io::Result<ServerProc> {
        ServerProc::spawn_under(imp, cpu, &[], Duration::from_secs(10))
    }

    /// As [`spawn`](ServerProc::spawn), with the server started through `wrapper` (a
    /// command and its arguments, such as valgrind's, that runs the rest of its command line
    /// in the same process), waiting at most `ready_within` for it to be ready.
    pub fn spawn_under(
        imp: Impl,
        cpu: Option<usize>,
        wrapper: &[String],
        ready_within: Duration,
    ) -> io::Result<ServerProc> {
        let mut cmd = if imp == Impl::Uws {
            if !wrapper.is_empty() {
                return Err(io::Error::other("uws can't run under a wrapper"));
            }
            uws_command(cpu, "echo")?
        } else {
            let (exe, name) = match imp {
                Impl::Baseline => match BASELINE_EXE.get() {
                    Some(exe) => (exe.clone(), Impl::Elo.name()),
                    None => {
                        return Err(io::Error::other("baseline server without --baseline PATH"))
                    }
                },
                _ => (std::env::current_exe()?, imp.name()),
            };
            let mut cmd = match wrapper.split_first() {
                Some((program, args)) => {
                    let mut cmd = Command::new(program);
                    cmd.args(args).arg(exe);
                    cmd
                }
                None => Command::new(exe),
            };
            cmd.arg("server").arg(name).arg("127.0.0.1:0");
            if let Some(cpu) = cpu {
                cmd.arg("--cpu").arg(cpu.to_string());
            }
            cmd
        };
        if let Some((cert, key)) = SERVER_TLS.get() {
            cmd.arg("--tls").arg(cert).arg(key);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        // From here on a guard owns the child, so any early return kills it.
        let mut guard = ServerProc {
            imp,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for line in lines.map_while(Result::ok) {
                eprintln!("[{} server] {line}", imp.name());
            }
        });
        let line = rx
            .recv_timeout(ready_within)
            .map_err(|_| io::Error::other(format!("{} server did not report READY", imp.name())))?;
        let addr = line
            .strip_prefix("READY ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected line from server: {line:?}")))?;
        guard.addr = addr;
        Ok(guard)
    }

    /// User + system CPU time of the server process so far, in microseconds.
    pub fn cpu_us(&self) -> io::Result<u64> {
        cpu_time_us(self.pid)
    }

    /// User and system CPU time of the server process so far, in microseconds.
    pub fn cpu_times_us(&self) -> io::Result<(u64, u64)> {
        cpu_times_us(self.pid)
    }

    /// Resident set size of the server process, in bytes.
    pub fn rss(&self) -> io::Result<u64> {
        rss_bytes(self.pid)
    }

    /// Waits (at most `max`) until the server stops using CPU: no new clock tick over two
    /// consecutive 30 ms polls. Used after a measurement so leftover work does not spill
    /// into the next one.
    pub fn wait_idle(&self, max: Duration) {
        let deadline = std::time::Instant::now() + max;
        let mut last = self.cpu_us().unwrap_or(0);
        let mut quiet = 0;
        while std::time::Instant::now() < deadline && quiet < 2 {
            std::thread::sleep(Duration::from_millis(30));
            let now = self.cpu_us().unwrap_or(0);
            if now == last {
                quiet += 1;
            } else {
                quiet = 0;
            }
            last = now;
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// `node bench/node/uws-server.mjs MODE`, pinned to `cpu` through `taskset` (uWebSockets runs
/// its event loop on node's main thread). Fails, saying how to install it, without
/// `npm ci --prefix bench/node`.
pub fn uws_command(cpu: Option<usize>, mode: &str) -> io::Result<Command> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    if !dir.join("node_modules/uws-pack").is_dir() {
        return Err(io::Error::other(format!(
            "uws is not installed: npm ci --prefix {}",
            dir.display()
        )));
    }
    let mut cmd = node_command(cpu);
    cmd.arg(dir.join("uws-server.mjs")).arg(mode);
    Ok(cmd)
}

/// `node`, pinned to `cpu` through `taskset` when asked.
pub fn node_command(cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string(), "node"]);
            cmd
        }
        None => Command::new("node"),
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// utime + stime of a process (all threads), from `/proc/<pid>/stat`, in microseconds.
pub fn cpu_time_us(pid: u32) -> io::Result<u64> {
    cpu_times_us(pid).map(|(user, system)| user + system)
}

/// utime and stime of a process (all threads): its CPU time in user space and in the kernel,
/// from `/proc/<pid>/stat`, in microseconds.
pub fn cpu_times_us(pid: u32) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after the last ')' are plain.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let parse = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    let us = |ticks: u64| ticks * 1_000_000 / clock_ticks_per_sec();
    Ok((us(parse(11)?), us(parse(12)?)))
}

/// Busy user + nice + system time of all CPUs together (first line of `/proc/stat`), in
/// microseconds. Minus our own processes' time it shows what else ran during a measurement.
pub fn machine_busy_us() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Ok(ticks * 1_000_000 / clock_ticks_per_sec())
}

/// VmRSS of a process, from `/proc/<pid>/status`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling process (its current and future threads) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data, initialised by CPU_ZERO/CPU_SET.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Asks the kernel to SIGKILL this process when its parent dies, so a server child never
/// outlives the load generator (even one killed with SIGKILL).
pub fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit. Children
/// inherit it.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// A one-line description of the machine.
pub fn machine_description() -> String {
    // Online CPUs of the machine (not this process's affinity mask, which pinning narrows).
    // SAFETY: sysconf has no preconditions.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("nproc={nproc}, {model}, Linux {kernel}")
}

/// How long a server under valgrind may take to report READY.
pub const VALGRIND_START: Duration = Duration::from_secs(60);

/// Fails with how to install them unless each of valgrind's `tools` can be started.
pub fn require_valgrind(tools: &[&str]) -> Result<(), String> {
    for tool in tools {
        let started = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if started.is_err() {
            return Err(format!(
                "{tool} not found: install valgrind (Debian package `valgrind`)"
            ));
        }
    }
    Ok(())
}

/// Runs `program ARGS` to completion on a blocking thread, so the load keeps going meanwhile
/// (tokio's process support is left out: its driver would run in every server's runtime too).
/// The child is killed if it takes longer than `timeout`, so neither it nor the thread waiting
/// for it outlives the measurement. An error names the command, and gives its exit status and
/// standard error.
pub async fn run_tool(
    program: &'static str,
    args: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let args = args.to_vec();
    let what = format!("{program} {}", args.join(" "));
    let run = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut child = Command::new(program)
            .args(&args)
            .stdout(Stdio::null())
            // A few lines at most (the pipe can't fill up while it runs).
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let deadline = Instant::now() + timeout;
        let failure = loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                    }
                    return Err(format!("{what}: {status}: {}", stderr.trim()));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => break format!("{what} timed out"),
                Err(e) => break format!("{what}: {e}"),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        Err(failure)
    });
    run.await.map_err(|e| e.to_string())?
}

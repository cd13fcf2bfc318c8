//! The `idle` mode: server memory per idle (handshaken, silent) connection, plain or, with
//! `--tls`, over TLS (ours on the library's `ServerTls`, the others on tokio-rustls, one rustls
//! configuration).

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::client;
use crate::massif;
use crate::sys::{self, ServerProc};
use crate::Opts;

const DEFAULT_CONNS: usize = 1000;

pub fn run(opts: &Opts) -> Result<(), String> {
    let conns = match opts.conns.as_deref() {
        None => DEFAULT_CONNS,
        Some([n]) => *n,
        Some(_) => return Err("idle takes one --conns value".to_owned()),
    };
    let fd_limit = sys::raise_fd_limit();
    if (conns as u64) + 64 > fd_limit {
        return Err(format!(
            "RLIMIT_NOFILE is {fd_limit}, too low for {conns} connections"
        ));
    }
    let warm = match (opts.warm, opts.payloads.as_deref()) {
        (0, _) => None,
        (count, None) => Some((count, 1024)),
        (count, Some([size])) => Some((count, *size)),
        (_, Some(_)) => return Err("idle takes one --payloads value".to_owned()),
    };
    let crate::LoadGenerator { rt, server_cpu, .. } = crate::load_generator(opts.pin)?;
    // With --tls every idle connection is a TLS session, on one rustls configuration.
    let tls = if opts.tls {
        let cert = crate::tls::Certificate::generate()?;
        let _ = sys::SERVER_TLS.set((cert.cert_file.clone(), cert.key_file.clone()));
        Some(std::sync::Arc::new(cert))
    } else {
        None
    };

    let massif_dir = if opts.massif {
        sys::require_valgrind(&["valgrind", "vgdb"])?;
        if opts.servers.contains(&crate::servers::Impl::Uws) {
            return Err("uws can't run under massif: leave it out of --servers".to_owned());
        }
        let dir = std::env::temp_dir().join(format!("elo-bench-massif-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Some(dir)
    } else {
        None
    };
    let mut rows = Vec::new();
    let mut heaps = Vec::new();
    for &imp in &opts.servers {
        let server = match &massif_dir {
            Some(dir) => ServerProc::spawn_under(
                imp,
                server_cpu,
                &massif::wrapper(dir, imp.name()),
                sys::VALGRIND_START,
            ),
            None => ServerProc::spawn(imp, server_cpu),
        }
        .map_err(|e| format!("starting {} server: {e}", imp.name()))?;
        let snapshots = massif_dir
            .as_deref()
            .map(|dir| massif::files(dir, imp.name()));
        let row = rt.block_on(measure(
            &server,
            conns,
            opts.hold,
            tls.as_ref(),
            warm,
            snapshots.as_ref(),
        ));
        drop(server);
        if let (Ok(_), Some((before, after))) = (&row, &snapshots) {
            match (massif::read(before), massif::read(after)) {
                (Ok(before), Ok(after)) => heaps.push((imp.name(), before, after)),
                (Err(e), _) | (_, Err(e)) => eprintln!("{}: {e}", imp.name()),
            }
        }
        match row {
            Ok((before, after)) => {
                eprintln!(
                    "{}: RSS {} KiB -> {} KiB with {conns} idle connections",
                    imp.name(),
                    before / 1024,
                    after / 1024
                );
                rows.push((imp.name(), before, after));
            }
            Err(e) => {
                eprintln!("{}: {e}", imp.name());
                rows.push((imp.name(), 0, 0));
            }
        }
    }

    let over = if tls.is_some() { " over TLS" } else { "" };
    let after_echo = match warm {
        Some((count, size)) => format!(", after echoing {count} messages of {size} B each"),
        None => String::new(),
    };
    println!("\n## Server memory per idle connection{over}{after_echo}\n");
    println!("Machine: {}", sys::machine_description());
    println!(
        "Each server in its own process (tokio current_thread); VmRSS from /proc/PID/status \
         after one warm-up connection, then again after {conns} connections completed the \
         handshake and stayed idle for {:.1} s. Per connection = RSS growth / {conns}. Kernel \
         socket buffers are not in RSS. Figures are relative.\n",
        opts.hold.as_secs_f64()
    );
    println!("| server | RSS before | RSS with {conns} idle | bytes per idle connection |");
    println!("|---|---:|---:|---:|");
    for (name, before, after) in rows {
        if before == 0 {
            println!("| {name} | error | error | n/a |");
        } else {
            println!(
                "| {name} | {} KiB | {} KiB | {} |",
                before / 1024,
                after / 1024,
                after.saturating_sub(before) / conns as u64
            );
        }
    }
    if massif_dir.is_some() {
        println!(
            "\nUnder massif, RSS includes valgrind's own memory: read the heap figures below \
             instead. Heap snapshots (`vgdb detailed_snapshot`) taken where RSS is read."
        );
    }
    for (name, before, after) in &heaps {
        massif::print_breakdown(name, before, after, conns);
    }
    if let Some(dir) = massif_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// An idle client connection, plain or TLS.
enum Idle {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Idle {
    /// Connects; with `warm` (count, size), echoes that many messages of that size at once
    /// before going idle (a connection that was busy must not keep what the burst needed).
    async fn open(
        addr: std::net::SocketAddr,
        timeout: Duration,
        tls: Option<&crate::tls::Certificate>,
        warm: Option<(usize, usize)>,
    ) -> std::io::Result<Idle> {
        Ok(match tls {
            Some(tls) => {
                let stream = client::connect_tls(addr, timeout, tls).await?;
                Idle::Tls(Box::new(warmed(stream, warm).await?))
            }
            None => Idle::Plain(warmed(client::connect(addr, timeout).await?, warm).await?),
        })
    }

    fn tcp(&self) -> &tokio::net::TcpStream {
        match self {
            Idle::Plain(tcp) => tcp,
            Idle::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// `stream`, after echoing `warm`'s (count, size) messages at once, if any.
async fn warmed<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    warm: Option<(usize, usize)>,
) -> std::io::Result<S> {
    if let Some((count, size)) = warm {
        client::echo_burst(&mut stream, &vec![0x5a; size], count).await?;
    }
    Ok(stream)
}

async fn measure(
    server: &ServerProc,
    conns: usize,
    hold: Duration,
    tls: Option<&std::sync::Arc<crate::tls::Certificate>>,
    warm: Option<(usize, usize)>,
    snapshots: Option<&(PathBuf, PathBuf)>,
) -> Result<(u64, u64), String> {
    let timeout = Duration::from_secs(10);
    // One connection first, so one-time allocations are in the baseline.
    let first = Idle::open(server.addr, timeout, tls.map(|t| &**t), warm)
        .await
        .map_err(|e| format!("warm-up connection: {e}"))?;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.rss().map_err(|e| e.to_string())?;
    if let Some((file, _)) = snapshots {
        massif::snapshot(server.pid, file).await?;
    }

    let mut streams = Vec::with_capacity(conns);
    while streams.len() < conns {
        let batch = (conns - streams.len()).min(100);
        let mut set = JoinSet::new();
        for _ in 0..batch {
            let tls = tls.cloned();
            let addr = server.addr;
            set.spawn(async move { Idle::open(addr, timeout, tls.as_deref(), warm).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(s)) => streams.push(s),
                Ok(Err(e)) => return Err(format!("connection {}: {e}", streams.len() + 1)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    tokio::time::sleep(hold).await;
    let after = server.rss().map_err(|e| e.to_string())?;
    if let Some((_, file)) = snapshots {
        massif::snapshot(server.pid, file).await?;
    }
    // Every connection must still be open (the server sent nothing and closed nothing).
    let mut probe = [0u8; 16];
    let closed = streams
        .iter()
        .filter(|s| !matches!(s.tcp().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    if closed > 0 {
        return Err(format!(
            "{closed} of {conns} connections were closed or got data while idle"
        ));
    }
    drop(streams);
    Ok((before, after))
}

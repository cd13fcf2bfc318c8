//! Helpers shared by the integration tests: servers on port 0 and raw sockets that speak
//! exactly the bytes a test needs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use enim_labore_occaecati::server::{ServerBuilder, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts an echo server built from `builder` on 127.0.0.1:0.
pub async fn echo_server(builder: ServerBuilder) -> (SocketAddr, ServerHandle) {
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.feed(message).await.is_err() {
                break;
            }
        }
    }));
    (addr, handle)
}

/// A valid upgrade request (RFC 6455's sample key).
pub const UPGRADE_REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A raw TCP connection that has completed a valid upgrade to `addr`.
pub async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(UPGRADE_REQUEST).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// The server's side of a valid upgrade, by hand, on an accepted connection: reads the
/// request head, answers 101 with its `Sec-WebSocket-Accept`, and returns the head.
pub async fn raw_accept(tcp: &mut TcpStream) -> String {
    let head = read_head(tcp).await;
    let key = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_owned())
        .expect("a Sec-WebSocket-Key");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        enim_labore_occaecati::handshake::accept_key(key.as_bytes())
    );
    tcp.write_all(response.as_bytes()).await.unwrap();
    head
}

/// Reads an HTTP head byte by byte (so nothing after it is consumed).
pub async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A masked client frame.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Reads until EOF (or 5 s) and returns the close code of the first close frame seen.
pub async fn read_close_code(tcp: &mut TcpStream) -> Option<u16> {
    let mut data = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut data)).await;
    let mut pos = 0;
    while pos + 2 <= data.len() {
        let opcode = data[pos] & 0x0f;
        let len = (data[pos + 1] & 0x7f) as usize;
        let (len, start) = match len {
            126 => (
                u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize,
                pos + 4,
            ),
            127 => return None,
            n => (n, pos + 2),
        };
        if opcode == 0x8 {
            return (len >= 2).then(|| u16::from_be_bytes([data[start], data[start + 1]]));
        }
        pos = start + len;
    }
    None
}

/// The 36 permessage-deflate configurations the tests try: both no-context-takeover flags and
/// window bits 9, 12 and 15 for each side, every message compressed (threshold 0). Each is
/// used as the same configuration on both ends.
pub fn deflate_combinations() -> Vec<enim_labore_occaecati::deflate::DeflateConfig> {
    let mut all = Vec::new();
    for server_nct in [false, true] {
        for client_nct in [false, true] {
            for server_bits in [9u8, 12, 15] {
                for client_bits in [9u8, 12, 15] {
                    let mut c = enim_labore_occaecati::deflate::DeflateConfig::default();
                    c.server_no_context_takeover = server_nct;
                    c.client_no_context_takeover = client_nct;
                    c.server_max_window_bits = Some(server_bits);
                    c.client_max_window_bits = Some(client_bits);
                    c.threshold = 0;
                    all.push(c);
                }
            }
        }
    }
    all
}

/// A peer process (Node `ws`, Python `websockets`) that printed `LISTENING <port>` first. It
/// exits when its stdin closes (drop `child.stdin`); `kill_on_drop` covers the rest.
pub struct Peer {
    pub child: tokio::process::Child,
    pub port: u16,
    /// The rest of its stdout. Keep reading it (or call [`Peer::drain`]): a peer that writes to
    /// a closed pipe dies of EPIPE.
    pub lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Peer {
    /// Starts `program args…` and waits (30 s at most) for its `LISTENING` line.
    pub async fn spawn(program: &std::path::Path, args: &[&str], show_stderr: bool) -> Peer {
        use std::process::Stdio;
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if show_stderr {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("peer did not start in 30 s")
            .unwrap()
            .expect("peer exited before listening");
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Peer { child, port, lines }
    }

    /// Reads the peer's further output in the background, discarding it.
    pub fn drain(self) -> tokio::process::Child {
        let mut lines = self.lines;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child
    }
}

/// Certificates made at test time: a CA and leaves it signs.
pub mod certs {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };

    /// A test CA.
    pub struct Ca {
        pub pem: String,
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    /// A certificate (PEM) and its key (PEM).
    pub struct Leaf {
        pub cert: String,
        pub key: String,
    }

    impl Ca {
        pub fn new(name: &str) -> Ca {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            Ca {
                pem: cert.pem(),
                cert,
                key,
            }
        }

        /// A server certificate for `names` (DNS names or IP addresses).
        pub fn server(&self, names: &[&str]) -> Leaf {
            self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, false)
        }

        /// A server certificate for `names` that expired in 2021.
        pub fn expired_server(&self, names: &[&str]) -> Leaf {
            self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, true)
        }

        /// A client certificate.
        pub fn client(&self, name: &str) -> Leaf {
            self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
        }

        fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names.clone()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, names[0].clone());
            params.extended_key_usages = vec![usage];
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
            Leaf {
                cert: cert.pem(),
                key: key.serialize_pem(),
            }
        }
    }

    /// Writes `contents` to a file in a fresh temporary directory kept for the test's life.
    pub fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("elo-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

/// The seed library's test peers (`ws` under Node): tests/interop/node.
pub mod node {
    use std::path::PathBuf;
    use std::time::Duration;

    /// The folder of server.js and client.js.
    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node")
    }

    /// Whether node and `ws` are installed; says the test was skipped when not, and fails
    /// under CI, where they must be.
    pub fn available(test: &str) -> bool {
        let ok = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            && dir().join("node_modules/ws/package.json").exists();
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: node or tests/interop/node/node_modules missing under CI"
            );
            eprintln!("{test}: skipped (run `npm ci` in tests/interop/node)");
        }
        ok
    }

    /// Runs client.js against `url` with `extra` arguments (60 s at most): whether it
    /// succeeded, its stdout and its stderr.
    pub async fn run_client(url: &str, extra: &[&str]) -> (bool, String, String) {
        let output = tokio::process::Command::new("node")
            .arg(dir().join("client.js"))
            .arg(url)
            .args(extra)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("node client timed out")
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs client.js and asserts it printed `OK`.
    pub async fn client_passes(url: &str, extra: &[&str]) {
        let (ok, stdout, stderr) = run_client(url, extra).await;
        assert!(
            ok && stdout.starts_with("OK"),
            "{url} {extra:?}\n{stdout}\n{stderr}"
        );
    }

    /// Starts server.js with `args`.
    pub async fn server(args: &[&str]) -> super::Peer {
        let script = dir().join("server.js");
        let mut all = vec![script.to_str().unwrap()];
        all.extend_from_slice(args);
        super::Peer::spawn(std::path::Path::new("node"), &all, false).await
    }
}

/// Reads one server frame (unmasked): (first byte, payload).
pub async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.unwrap();
    let len = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await.unwrap()),
        127 => tcp.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    tcp.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// This process's resident memory, in KiB (each nextest test is a process of its own).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time this process has used, to the nanosecond, including the running thread's
/// current slice (which `/proc` counters only add at the next reschedule).
pub fn cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    (status == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// A client and a server connected through an in-memory pipe by the real handshakes
/// (`ServerBuilder::accept`, `ClientBuilder::connect_on`): for tests on tokio's paused clock,
/// which advances only when every task waits, so timings are exact and machine load can't
/// move them. Answers (client, server).
pub async fn pipe_pair(
    server: &ServerBuilder,
    client: &enim_labore_occaecati::ClientBuilder,
) -> (
    enim_labore_occaecati::WebSocket<tokio::io::DuplexStream>,
    enim_labore_occaecati::WebSocket<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(256 << 10);
    let (client, server) = tokio::join!(
        client.connect_on(a, "ws://localhost/"),
        server.accept(b, None)
    );
    (client.unwrap().0, server.unwrap().0)
}

//! Runs the built `elo` binary: serve, connect, bench, errors and signals.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use enim_labore_occaecati::server::{Server, Verdict};
use enim_labore_occaecati::{connect, Message};

const ELO: &str = env!("CARGO_BIN_EXE_elo");

/// A child process killed when the test ends, whatever happens.
struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `elo serve --port 0 ARGS…` and reads the URL from its first stdout line.
fn serve(args: &[&str]) -> Running {
    let mut child = Command::new(ELO)
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn elo serve");
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    Running { child, url }
}

fn elo(args: &[&str]) -> Output {
    Command::new(ELO)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run elo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The process failed with exit status 1 and one `elo: error:` line, no panic. Only a
/// `connected to …` line may come before it (for failures after the handshake). Answers the
/// error line.
fn assert_one_line_error(output: &Output, needle: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let (error, before) = lines.split_last().expect("an error line");
    assert!(error.starts_with("elo: error: "), "{stderr}");
    assert!(
        before.iter().all(|l| l.starts_with("connected to ")) && before.len() <= 1,
        "{stderr}"
    );
    assert!(error.contains(needle), "{stderr:?} lacks {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    error.to_string()
}

/// A failure before the handshake completed: the error is the only line.
fn assert_only_line_error(output: &Output, needle: &str) {
    assert_one_line_error(output, needle);
    assert_eq!(text(&output.stderr).lines().count(), 1);
}

#[test]
fn connect_execute_round_trips_against_serve() {
    let server = serve(&[]);
    let output = elo(&["connect", &server.url, "-x", "hello", "-x", "two\nlines"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "< hello\n< two\\nlines\n");
}

#[test]
fn connect_wait_counts_replies_and_times_out() {
    let server = serve(&[]);
    // Waits for fewer replies than sent: exits after the first.
    let output = elo(&["connect", &server.url, "-x", "a", "-x", "b", "-w", "1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "< a\n");
    // More than will ever come: a timeout is an error.
    let output = elo(&[
        "connect",
        &server.url,
        "-x",
        "a",
        "-w",
        "2",
        "--timeout",
        "0.5",
    ]);
    assert_one_line_error(&output, "timed out");
    assert_eq!(text(&output.stdout), "< a\n");
}

#[test]
fn serve_path_and_max_payload() {
    let server = serve(&["--path", "/chat", "--max-payload", "10"]);
    assert!(server.url.ends_with("/chat"), "{}", server.url);
    let output = elo(&["connect", &server.url, "-x", "small"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Another path: the server answers 400.
    let other = server.url.replace("/chat", "/other");
    assert_only_line_error(&elo(&["connect", &other, "-x", "x"]), "HTTP 400");
    // Too big: closed with 1009.
    let output = elo(&["connect", &server.url, "-x", "far too large"]);
    assert_one_line_error(&output, "1009");
}

#[test]
fn broadcast_relays_to_the_other_clients_only() {
    let mut server = serve(&["--mode", "broadcast"]);
    // The listener waits for one message without sending any.
    let mut listener = Command::new(ELO)
        .args(["connect", &server.url, "-w", "1", "--timeout", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut connected = String::new();
    BufReader::new(listener.stderr.as_mut().unwrap())
        .read_line(&mut connected)
        .unwrap();
    assert!(connected.starts_with("connected to"), "{connected}");
    // The server subscribes a client just after its handshake, and then logs it: the
    // broadcast can't overtake the subscription once the log line is out.
    let mut server_log = BufReader::new(server.child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("] connected") {
        line.clear();
        assert!(
            server_log.read_line(&mut line).unwrap() > 0,
            "server log ended"
        );
    }
    // The sender gets nothing back: broadcast skips it.
    let output = elo(&[
        "connect",
        &server.url,
        "-x",
        "hi all",
        "-w",
        "1",
        "--timeout",
        "1",
    ]);
    assert_one_line_error(&output, "timed out");
    assert_eq!(text(&output.stdout), "");
    let status = listener.wait().unwrap();
    let mut stdout = String::new();
    listener
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success());
    assert_eq!(stdout, "< hi all\n");
}

#[test]
fn bench_prints_figures_for_a_one_second_run() {
    let server = serve(&[]);
    for mode in [&[][..], &["--binary", "--payload", "1000"][..]] {
        let started = Instant::now();
        let mut args = vec![
            "bench",
            &server.url,
            "--duration",
            "1",
            "--connections",
            "2",
            "--in-flight",
            "4",
        ];
        args.extend_from_slice(mode);
        let output = elo(&args);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(started.elapsed() < Duration::from_secs(10));
        // Not a terminal: no progress line.
        assert_eq!(text(&output.stderr), "");
        let messages: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("messages:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no message count in {stdout}"));
        assert!(messages > 0, "{stdout}");
        for needle in ["msg/s", "MB/s", "p50", "p90", "p99", "max"] {
            assert!(stdout.contains(needle), "{stdout} lacks {needle}");
        }
    }
}

#[test]
fn bench_refuses_a_server_that_does_not_echo() {
    // A broadcast server hands each connection the other one's messages: caught by the
    // sequence numbers, not measured.
    let server = serve(&["--mode", "broadcast"]);
    let output = elo(&["bench", &server.url, "--duration", "1", "-c", "2"]);
    assert_one_line_error(&output, "does not echo");
}

#[test]
fn bad_urls_and_refused_connections_are_one_line_errors() {
    assert_only_line_error(&elo(&["connect", "not a url"]), "bad URL");
    assert_only_line_error(&elo(&["connect", "ftp://127.0.0.1/"]), "bad URL");
    assert_only_line_error(&elo(&["bench", "ws://", "-d", "1"]), "bad URL");
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    assert_only_line_error(&elo(&["connect", &url, "-x", "x"]), "connection refused");
    assert_only_line_error(&elo(&["bench", &url, "-d", "1"]), "connection refused");
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["connect"][..],
        &["connect", "ws://x/", "-H", "no colon"],
        &["bench", "ws://x/", "--connections", "0"],
        &["bench", "ws://x/", "--duration", "soon"],
        &["serve", "--port", "70000"],
        &["serve", "--mode", "shout"],
        &["serve", "--path", "nopath"],
        &["frobnicate"],
    ] {
        let output = elo(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!text(&output.stderr).contains("panicked"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_handshake_shows_status_and_body() {
    let server = Server::builder()
        .verify(|info| {
            let ok = info.headers().get("authorization").map(|v| v.as_bytes())
                == Some(&b"Bearer letmein"[..]);
            async move {
                if ok {
                    Verdict::accept()
                } else {
                    Verdict::reject(401).with_body("missing token\nsecond line")
                }
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            let _ = ws.send(message).await;
        }
    }));
    let rejected = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || elo(&["connect", &url, "-x", "hi"]))
            .await
            .unwrap()
    };
    let stderr = assert_one_line_error(&rejected, "HTTP 401 Unauthorized");
    assert_eq!(text(&rejected.stderr).lines().count(), 1);
    assert!(stderr.contains("missing token\\nsecond line"), "{stderr}");
    // With the header, the same server accepts.
    let accepted = tokio::task::spawn_blocking(move || {
        elo(&[
            "connect",
            &url,
            "-H",
            "Authorization: Bearer letmein",
            "-x",
            "hi",
        ])
    })
    .await
    .unwrap();
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    assert_eq!(text(&accepted.stdout), "< hi\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_closes_clients_with_1001_and_exits_zero() {
    let mut server = serve(&[]);
    let (mut ws, _) = connect(&server.url).await.unwrap();
    ws.send("ping?").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("ping?")));

    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());

    let end = tokio::time::timeout(Duration::from_secs(10), ws.recv())
        .await
        .expect("the server closes us");
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert_eq!(ws.close_frame().map(|f| f.code.as_u16()), Some(1001));

    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        let mut stderr = String::new();
        server
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(status.1.contains("SIGINT"), "{}", status.1);
    assert!(status.1.contains("] closed 1001"), "{}", status.1);
}

#[test]
fn sigterm_stops_the_server_too() {
    let mut server = serve(&[]);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn interactive_session_sends_lines_pings_and_closes() {
    use std::io::Write;
    let server = serve(&[]);
    let mut client = Command::new(ELO)
        .args(["connect", &server.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    for (input, expected) in [
        ("hello there\n", "< hello there\n"),
        ("/ping abc\n", "< pong abc\n"),
        ("/close 1005\n", ""),
        ("/unknown is text\n", "< /unknown is text\n"),
    ] {
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
        if expected.is_empty() {
            continue;
        }
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, expected);
    }
    stdin.write_all(b"/close 4000 see you\n").unwrap();
    let status = client.wait().unwrap();
    let mut stderr = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("close code 1005 may not be sent"),
        "{stderr}"
    );
    assert!(stderr.contains("closed: 4000 see you"), "{stderr}");
}

#[test]
fn serve_and_connect_with_deflate() {
    let server = serve(&["--deflate"]);
    let long = "compressible ".repeat(500);
    let output = elo(&[
        "connect",
        &server.url,
        "--deflate",
        "-x",
        &long,
        "-x",
        "short",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("permessage-deflate"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), format!("< {long}\n< short\n"));
    // Without --deflate nothing is offered.
    let output = elo(&["connect", &server.url, "-x", "plain"]);
    assert!(output.status.success());
    assert!(!text(&output.stderr).contains("permessage-deflate"));
}

#[test]
fn serve_h2c_and_connect_and_bench_over_http2() {
    let mut server = serve(&["--h2c"]);
    let output = elo(&["connect", &server.url, "--http2", "-x", "over h2"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("(HTTP/2 stream 1, HTTP 200"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "< over h2\n");
    // The same port still takes HTTP/1.1 upgrades.
    let output = elo(&["connect", &server.url, "-x", "over h1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("(HTTP 101"));
    // Eight WebSockets on one HTTP/2 connection, checked message by message.
    let output = elo(&[
        "bench",
        &server.url,
        "--http2",
        "-c",
        "8",
        "-d",
        "1",
        "-k",
        "4",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("msg/s"),
        "{}",
        text(&output.stdout)
    );
    // The server's log tells how each WebSocket came.
    let _ = server.child.kill();
    let mut log = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("connected / over HTTP/2 (extended CONNECT, stream 1)"),
        "{log}"
    );
    assert!(log.lines().any(|l| l.ends_with("connected /")), "{log}");
}

//! Runs every example binary (see examples/README.md) and checks what it does: servers are
//! started on port 0 and driven with the library's client; clients are pointed at servers
//! started here.

use crate::common;
use crate::support;

use std::time::{Duration, Instant};

use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::{connect, ClientBuilder, Config, ErrorKind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{run, spawn, start};

const LIMIT: Duration = Duration::from_secs(30);

/// An echo server of the library on a free port; answers its URL.
async fn echo_server() -> String {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    url
}

/// Runs a client example against `url` off the async threads.
async fn run_client(name: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(name, &args, LIMIT)
    })
    .await
    .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn recv_text(ws: &mut enim_labore_occaecati::WebSocket<impl ClientIo>) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), ws.recv())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("a message, not a close");
    message.as_text().expect("text").to_owned()
}

trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> ClientIo for T {}

/// Sends a raw HTTP/1.1 request and answers the whole response.
async fn http_get(addr: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    rest.split('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_client_sends_and_receives_text() {
    let url = echo_server().await;
    let output = run_client("text_client", vec![url]).await;
    assert_eq!(stdout(&output), "received: something\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_client_goes_through_tinyproxy() {
    // The proxies of scripts/proxies/start.sh (scripts/test.sh starts them).
    let path = std::env::var("ELO_PROXY_ENV")
        .unwrap_or_else(|_| "/tmp/elo-proxies/proxies.env".to_owned());
    let Ok(env) = std::fs::read_to_string(&path) else {
        assert!(std::env::var_os("CI").is_none(), "{path} missing under CI");
        eprintln!("proxy_client_goes_through_tinyproxy: skipped (no proxies)");
        return;
    };
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .to_owned()
    };
    let url = echo_server().await;
    let proxy = format!(
        "http://{}:{}@{}",
        var("ELO_PROXY_USER"),
        var("ELO_PROXY_PASS"),
        var("ELO_HTTP_PROXY_AUTH")
    );
    let output = run_client("proxy_client", vec![url.clone(), proxy]).await;
    assert_eq!(stdout(&output), "received: through the proxy\n");
    // Wrong credentials: the proxy's refusal is the error.
    let wrong = format!("http://nobody:x@{}", var("ELO_HTTP_PROXY_AUTH"));
    let output = run_client("proxy_client", vec![url, wrong]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("proxy"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_client_sends_an_f32_array() {
    let url = echo_server().await;
    let output = run_client("binary_client", vec![url]).await;
    assert_eq!(
        stdout(&output),
        "received 20 bytes: [0.0, 0.5, 1.0, 1.5, 2.0]\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_server_greets_and_prints_messages() {
    let mut server = start("simple_server", &["127.0.0.1:0"]);
    let (mut ws, _) = connect(&server.url).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "something");
    ws.send("hi there").await.unwrap();
    server.wait_for_line("received: hi there");
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_server_upgrades_from_hyper_and_serves_plain_http() {
    let mut server = start("external_server", &["127.0.0.1:0"]);
    let (mut ws, _) = connect(&server.url).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "something");
    ws.send("over hyper").await.unwrap();
    server.wait_for_line("received: over hyper");
    ws.close(None).await.unwrap();

    let addr = host_port(&server.url).to_owned();
    let plain = http_get(&addr, "/").await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(plain.contains("plain HTTP here"), "{plain}");
    // An upgrade request without a key fails the library's validation: 400.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_http_server_routes_by_path() {
    let server = start("shared_http_server", &["127.0.0.1:0"]);
    let base = server.url.replace("http://", "ws://");
    let (mut foo, _) = connect(&format!("{base}foo")).await.unwrap();
    let (mut bar, _) = ClientBuilder::new()
        .protocol("shout")
        .connect(&format!("{base}bar"))
        .await
        .unwrap();
    assert_eq!(bar.protocol(), Some("shout"));
    foo.send("hello").await.unwrap();
    bar.send("hello").await.unwrap();
    assert_eq!(recv_text(&mut foo).await, "hello");
    assert_eq!(recv_text(&mut bar).await, "HELLO");
    foo.close(None).await.unwrap();
    bar.close(None).await.unwrap();

    let error = connect(&format!("{base}elsewhere")).await.unwrap_err();
    assert_eq!(error.http_response().unwrap().status(), 404);
    let health = http_get(host_port(&server.url), "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_server_serves_wss_with_a_certificate() {
    use enim_labore_occaecati::tls::ClientTls;
    let ca = common::certs::Ca::new("example CA");
    let leaf = ca.server(&["localhost"]);
    let cert = common::certs::write_temp("cert.pem", &leaf.cert);
    let key = common::certs::write_temp("key.pem", &leaf.key);
    let server = start(
        "external_server",
        &[
            "127.0.0.1:0",
            "--tls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    let url = server.url.replace("127.0.0.1", "localhost");
    assert!(url.starts_with("wss://"), "{url}");
    let tls = ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap();
    let (mut ws, _) = ClientBuilder::new().tls(tls).connect(&url).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "something");
    ws.close(None).await.unwrap();
    // Without the CA the certificate is refused, and the error says why.
    let error = connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_rejects_with_401_and_hands_the_user_to_the_handler() {
    // The library's own server, then the same hook on a hyper server.
    for mode in [&["127.0.0.1:0"][..], &["127.0.0.1:0", "hyper"]] {
        client_auth(start("client_auth", mode)).await;
    }
}

async fn client_auth(mut server: support::Running) {
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let mut client = ClientBuilder::new();
        for (name, value) in headers {
            client = client.header(name, value);
        }
        let error = client.connect(&server.url).await.unwrap_err();
        let response = error.http_response().expect("an HTTP answer");
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(&response.body()[..], b"a valid bearer token is required\n");
    }
    let (mut ws, _) = ClientBuilder::new()
        .header("Authorization", "Bearer bob-token")
        .connect(&server.url)
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "hello, bob");
    ws.send("hi").await.unwrap();
    server.wait_for_line("Received message hi from user bob");
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_all_includes_the_sender() {
    let server = start("broadcast", &["127.0.0.1:0", "all"]);
    // Hearing itself proves a client is registered: a server registers a client in its own
    // task after the handshake, so a broadcast right after `connect` could miss it.
    let (mut a, _) = connect(&server.url).await.unwrap();
    a.send("a is here").await.unwrap();
    assert_eq!(recv_text(&mut a).await, "a is here");
    let (mut b, _) = connect(&server.url).await.unwrap();
    b.send("b is here").await.unwrap();
    assert_eq!(recv_text(&mut b).await, "b is here");
    assert_eq!(recv_text(&mut a).await, "b is here");
    a.send("to everyone").await.unwrap();
    assert_eq!(recv_text(&mut a).await, "to everyone");
    assert_eq!(recv_text(&mut b).await, "to everyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_others_skips_the_sender() {
    let server = start("broadcast", &["127.0.0.1:0", "others"]);
    let (mut a, _) = connect(&server.url).await.unwrap();
    let (mut b, _) = connect(&server.url).await.unwrap();
    // b probes until a hears one: then both are registered (b's handler runs, so b is).
    for n in 0.. {
        b.send(format!("probe {n}")).await.unwrap();
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(200), a.recv()).await {
            assert!(message
                .unwrap()
                .unwrap()
                .as_text()
                .unwrap()
                .starts_with("probe"));
            break;
        }
        assert!(n < 50, "a never heard b");
    }
    a.send("from a").await.unwrap();
    // b's next message is a's, not one of its own probes.
    assert_eq!(recv_text(&mut b).await, "from a");
    // a hears nothing but (late) probes: not its own message.
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(300), a.recv()).await {
        let message = message.unwrap().unwrap();
        assert!(
            message.as_text().unwrap().starts_with("probe"),
            "{message:?}"
        );
    }
    assert!(start_fails("broadcast", &["127.0.0.1:0", "some"]));
}

/// The example exits with an error status instead of listening.
fn start_fails(name: &str, args: &[&str]) -> bool {
    !run(name, args, LIMIT).status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_time_times_pings() {
    let url = echo_server().await;
    let output = run_client("round_trip_time", vec![url, "3".into()]).await;
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"connected"), "{out}");
    assert_eq!(lines.last(), Some(&"disconnected"), "{out}");
    let rtts: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Round-trip time: "))
        .map(|l| l.trim_end_matches(" ms").parse().unwrap())
        .collect();
    assert_eq!(rtts.len(), 3, "{out}");
    assert!(rtts.iter().all(|&ms| ms > 0.0 && ms < 5_000.0), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_reports_the_peer_and_x_forwarded_for() {
    let mut server = start("client_ip", &["127.0.0.1:0"]);
    let (mut ws, _) = connect(&server.url).await.unwrap();
    assert_eq!(
        recv_text(&mut ws).await,
        "your address: 127.0.0.1, forwarded for: nobody"
    );
    server.wait_for_line("your address: 127.0.0.1, forwarded for: nobody");
    let (mut ws, _) = ClientBuilder::new()
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .connect(&server.url)
        .await
        .unwrap();
    assert_eq!(
        recv_text(&mut ws).await,
        "your address: 127.0.0.1, forwarded for: 203.0.113.7"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_server_keeps_live_clients_and_terminates_silent_ones() {
    let mut server = start("heartbeat_server", &["127.0.0.1:0", "100"]);

    // A live client answers pings (automatically, while it is in `recv`): still served after
    // several intervals.
    let (mut live, _) = connect(&server.url).await.unwrap();
    let listening = tokio::time::timeout(Duration::from_millis(700), live.recv()).await;
    assert!(listening.is_err(), "{listening:?}");
    live.send("still here").await.unwrap();
    assert_eq!(recv_text(&mut live).await, "still here");

    // A client that reads but never answers pings is cut off after about two intervals.
    let mut config = Config::default();
    config.auto_pong = false;
    config.receive_control_frames = true;
    let (mut silent, _) = ClientBuilder::new()
        .config(config)
        .connect(&server.url)
        .await
        .unwrap();
    let mut pings = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.recv())
            .await
            .expect("terminated in time")
        {
            Ok(Some(Message::Ping(_))) => pings += 1,
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            end => break end,
        }
    };
    assert!(pings >= 1);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::AbnormalClosure);
    let line = server.line();
    assert!(
        line.starts_with("terminating 127.0.0.1:") && line.ends_with("no pong since the last ping"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_client_stays_while_pinged_and_terminates_when_not() {
    let server = start("heartbeat_server", &["127.0.0.1:0", "100"]);
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = spawn("heartbeat_client", &[&url, "100"]);
        assert_eq!(client.line(), "connected");
        for _ in 0..3 {
            assert_eq!(client.line(), "ping from the server");
        }
    })
    .await
    .unwrap();

    // A server that never pings: the client gives up after the interval plus 1 s.
    let silent = echo_server().await;
    let started = Instant::now();
    let output = run_client("heartbeat_client", vec![silent, "100".into()]).await;
    assert_eq!(
        stdout(&output),
        "connected\nno ping for 1.1s: terminating\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(1100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_stream_pipes_stdin_to_the_server_and_back_to_stdout() {
    let url = echo_server().await;
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(support::example("byte_stream"))
            .arg(&url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello through a byte stream\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(stdout(&output), "hello through a byte stream\n");
}

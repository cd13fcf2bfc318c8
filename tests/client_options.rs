//! Client options modelled on the seed library's client (Node `ws`): `mask_generator`
//! (`generateMask`), URL user info sent as Basic authentication, `on_redirect` and the headers
//! dropped on redirects (`followRedirects`, the `'redirect'` event), `local_addr`
//! (`localAddress`), `family`, and `WebSocket::url`. Every test talks over loopback to a real
//! peer (our `Server`, or a hand-written one speaking exactly the bytes it needs), and every
//! wait is bounded.

use crate::common;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::certs::Ca;
use enim_labore_occaecati::client::IpFamily;
use enim_labore_occaecati::server::{ClientInfo, Server, Verdict};
use enim_labore_occaecati::tls::{ClientTls, ServerTls};
use enim_labore_occaecati::{ClientBuilder, ErrorKind, WebSocket};
use http::header::{AUTHORIZATION, COOKIE, HOST};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound on every wait: far above what loopback needs, so only a hang trips it.
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in {LIMIT:?}"))
}

/// What a server saw of one upgrade request.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, info: &ClientInfo) {
    log.lock().unwrap().push(Seen {
        target: info.request().uri().to_string(),
        headers: info.headers().clone(),
        remote: info.remote_addr(),
    });
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

/// Every value of header `name`, as text.
fn values(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Reads until the peer closes, discarding: the server side of a connection a test only opens.
async fn hold<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Ok(Some(_)) = ws.recv().await {}
}

/// Our `Server` on `addr`, accepting every client and recording its request in the log.
async fn recording_server(addr: &str) -> enim_labore_occaecati::Result<(SocketAddr, Log)> {
    let log = Log::default();
    let writer = log.clone();
    let server = Server::builder()
        .verify(move |info| {
            record(&writer, info);
            async { Verdict::accept() }
        })
        .bind(addr)
        .await?;
    let local = server.local_addr()?;
    tokio::spawn(server.serve(|ws, _| hold(ws)));
    Ok((local, log))
}

/// A plain HTTP server answering every request with `status` and `Location: location`,
/// recording the request heads (lower-cased).
async fn redirector(status: u16, location: String) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let head = common::read_head(&mut tcp).await;
            log.lock().unwrap().push(head.to_ascii_lowercase());
            let response = format!(
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = tcp.write_all(response.as_bytes()).await;
        }
    });
    (addr, heads)
}

/// Reads one client frame with a payload under 126 bytes: its first byte, masking key and
/// payload as sent (masked).
async fn read_masked_frame(tcp: &mut TcpStream) -> (u8, [u8; 4], Vec<u8>) {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(head[1] & 0x80, 0x80, "a client frame must be masked");
    let len = usize::from(head[1] & 0x7f);
    assert!(len < 126, "the test sends short frames only");
    let mut key = [0u8; 4];
    tcp.read_exact(&mut key).await.unwrap();
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (head[0], key, payload)
}

/// The keys a counting generator gives: call `n` (from 1) yields `[n, n+16, n+32, n+48]`.
fn counted_key(n: u8) -> [u8; 4] {
    [n, n + 0x10, n + 0x20, n + 0x30]
}

#[tokio::test]
async fn mask_generator_supplies_every_masking_key() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server side by hand: the 101, then the frames exactly as the client wrote them.
    let peer = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        common::raw_accept(&mut tcp).await;
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(read_masked_frame(&mut tcp).await);
        }
        frames
    });

    let mut calls = 0u8;
    let client = ClientBuilder::new().deflate(None).mask_generator(move || {
        calls += 1;
        counted_key(calls)
    });
    let (mut ws, _) = bounded("connect", client.connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    let zeros = vec![0u8; 8];
    ws.send("hello, masked").await.unwrap();
    ws.send(zeros.clone()).await.unwrap();
    ws.send("again").await.unwrap();
    let frames = bounded("the peer reading 3 frames", peer).await.unwrap();

    let sent: [(u8, &[u8]); 3] = [(0x81, b"hello, masked"), (0x82, &zeros), (0x81, b"again")];
    for (i, ((first, key, masked), (opcode, message))) in frames.iter().zip(sent).enumerate() {
        assert_eq!(*first, opcode, "frame {i}");
        assert_eq!(
            *key,
            counted_key(i as u8 + 1),
            "frame {i}: the generator's key"
        );
        let unmasked: Vec<u8> = masked
            .iter()
            .enumerate()
            .map(|(j, b)| b ^ key[j % 4])
            .collect();
        assert_eq!(unmasked, message, "frame {i} unmasks to the message");
    }
    // Zeros masked are the key itself: the key was applied, not just sent.
    assert_eq!(frames[1].2, [counted_key(2), counted_key(2)].concat());
}

#[tokio::test]
async fn url_user_info_is_sent_as_basic_auth() {
    let (addr, log) = recording_server("127.0.0.1:0").await.unwrap();
    let port = addr.port();
    // Percent-encoded `us@er` and `p:ss w`.
    let url = format!("ws://us%40er:p%3Ass%20w@127.0.0.1:{port}/chat?room=1");

    let (ws, _) = bounded("connect", ClientBuilder::new().connect(&url))
        .await
        .unwrap();
    assert_eq!(
        ws.url(),
        Some(format!("ws://127.0.0.1:{port}/chat?room=1").as_str()),
        "url() leaves the user info out"
    );
    drop(ws);
    // An Authorization header set by the caller wins over the URL's user info.
    let explicit = ClientBuilder::new().header("Authorization", "Bearer from-the-caller");
    let (ws, _) = bounded("connect", explicit.connect(&url)).await.unwrap();
    drop(ws);
    // A user name alone: an empty password.
    let (ws, _) = bounded(
        "connect",
        ClientBuilder::new().connect(&format!("ws://user@127.0.0.1:{port}/")),
    )
    .await
    .unwrap();
    drop(ws);

    let seen = seen(&log);
    assert_eq!(seen.len(), 3);
    // base64("us@er:p:ss w")
    assert_eq!(
        values(&seen[0].headers, AUTHORIZATION),
        ["Basic dXNAZXI6cDpzcyB3"]
    );
    assert_eq!(seen[0].target, "/chat?room=1");
    assert_eq!(
        values(&seen[0].headers, HOST),
        [format!("127.0.0.1:{port}")]
    );
    for (name, value) in &seen[0].headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains("us%40er") && !value.contains("us@er") && !value.contains("p:ss"),
            "{name}: {value} carries the user info"
        );
    }
    assert_eq!(
        values(&seen[1].headers, AUTHORIZATION),
        ["Bearer from-the-caller"]
    );
    // base64("user:")
    assert_eq!(values(&seen[2].headers, AUTHORIZATION), ["Basic dXNlcjo="]);
}

#[tokio::test]
async fn on_redirect_sees_each_hop_and_edits_the_next_request() {
    let (last, log) = recording_server("127.0.0.1:0").await.unwrap();
    let final_url = format!("ws://{last}/final?x=1");
    // first --302--> second --307--> last, each on another port. `http:` is taken as `ws:`.
    let (second, second_heads) = redirector(307, format!("http://{last}/final?x=1")).await;
    let (first, first_heads) = redirector(302, format!("ws://{second}/next")).await;

    let hops = Arc::new(Mutex::new(Vec::new()));
    let hops_seen = hops.clone();
    let client = ClientBuilder::new()
        .max_redirects(2)
        .header("Authorization", "Bearer secret")
        .header("Cookie", "session=1")
        .header("X-Drop-Me", "1")
        .on_redirect(move |hop, headers| {
            hops_seen.lock().unwrap().push((
                hop.number(),
                hop.status().as_u16(),
                hop.from().to_string(),
                hop.to().to_string(),
                // Already dropped for another port when the callback runs.
                headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE),
            ));
            headers.remove("x-drop-me");
            headers.insert("x-hop", hop.number().into());
            if hop.number() == 2 {
                headers.insert(COOKIE, "chosen=2".parse().unwrap());
            }
        });
    let (ws, response) = bounded("connect", client.connect(&format!("ws://{first}/start")))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(ws.url(), Some(final_url.as_str()), "url() is the last URL");
    drop(ws);

    assert_eq!(
        *hops.lock().unwrap(),
        [
            (
                1,
                302,
                format!("ws://{first}/start"),
                format!("ws://{second}/next"),
                false
            ),
            (
                2,
                307,
                format!("ws://{second}/next"),
                final_url.clone(),
                false
            ),
        ]
    );
    let first_heads = first_heads.lock().unwrap().clone();
    assert_eq!(first_heads.len(), 1);
    assert!(
        first_heads[0].contains("x-drop-me: 1"),
        "{}",
        first_heads[0]
    );
    assert!(first_heads[0].contains("cookie: session=1"));
    let second_heads = second_heads.lock().unwrap().clone();
    assert_eq!(second_heads.len(), 1);
    let head = &second_heads[0];
    assert!(head.starts_with("get /next http/1.1"), "{head}");
    assert!(head.contains("x-hop: 1"), "{head}");
    assert!(
        !head.contains("x-drop-me") && !head.contains("cookie") && !head.contains("authorization")
    );

    let seen = seen(&log);
    assert_eq!(seen.len(), 1);
    let last = &seen[0];
    assert_eq!(last.target, "/final?x=1");
    assert_eq!(values(&last.headers, "x-hop"), ["2"]);
    assert_eq!(values(&last.headers, COOKIE), ["chosen=2"]);
    assert!(!last.headers.contains_key("x-drop-me"));
    assert!(!last.headers.contains_key(AUTHORIZATION));
}

#[tokio::test]
async fn a_redirect_from_wss_to_ws_drops_credentials_on_the_same_host_and_port() {
    let ca = Ca::new("elo test CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap();
    // One port speaking TLS and plain TCP (told apart by the first byte), so `wss:` and `ws:`
    // share host and port: only the downgrade can be why headers are dropped.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let writer = log.clone();
    let builder = Server::builder().verify(move |info| {
        record(&writer, info);
        let verdict = match info.path() {
            "/secure" => Verdict::reject(302)
                .with_header("Location", &format!("wss://127.0.0.1:{port}/still-secure")),
            "/still-secure" => Verdict::reject(301)
                .with_header("Location", &format!("ws://127.0.0.1:{port}/plain")),
            _ => Verdict::accept(),
        };
        async move { verdict }
    });
    tokio::spawn(async move {
        while let Ok((tcp, remote)) = listener.accept().await {
            let (builder, tls) = (builder.clone(), tls.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if !matches!(tcp.peek(&mut first).await, Ok(1)) {
                    return;
                }
                if first[0] == 0x16 {
                    // A TLS handshake record.
                    let Ok(tls) = tls.accept(tcp).await else {
                        return;
                    };
                    if let Ok((ws, _)) = builder.accept(tls, Some(remote)).await {
                        hold(ws).await;
                    }
                } else if let Ok((ws, _)) = builder.accept(tcp, Some(remote)).await {
                    hold(ws).await;
                }
            });
        }
    });

    let client = ClientBuilder::new()
        .tls(ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap())
        .max_redirects(2)
        .header("Cookie", "session=1");
    let url = format!("wss://user:secret@127.0.0.1:{port}/secure");
    let (ws, _) = bounded("connect", client.connect(&url)).await.unwrap();
    assert_eq!(
        ws.url(),
        Some(format!("ws://127.0.0.1:{port}/plain").as_str())
    );
    drop(ws);

    let seen = seen(&log);
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/secure", "/still-secure", "/plain"]);
    // base64("user:secret")
    for hop in &seen[..2] {
        assert_eq!(
            values(&hop.headers, AUTHORIZATION),
            ["Basic dXNlcjpzZWNyZXQ="],
            "{}: wss to wss on the same host keeps Authorization",
            hop.target
        );
        assert_eq!(
            values(&hop.headers, COOKIE),
            ["session=1"],
            "{}",
            hop.target
        );
    }
    assert!(
        !seen[2].headers.contains_key(AUTHORIZATION),
        "{:?}",
        seen[2]
    );
    assert!(!seen[2].headers.contains_key(COOKIE), "{:?}", seen[2]);
}

/// The loopback address the tests bind clients to: all of 127.0.0.0/8 is loopback on Linux,
/// elsewhere only 127.0.0.1 may be bound.
fn other_loopback() -> IpAddr {
    if cfg!(target_os = "linux") {
        "127.0.0.2".parse().unwrap()
    } else {
        "127.0.0.1".parse().unwrap()
    }
}

#[tokio::test]
async fn local_addr_binds_the_client_socket() {
    let (addr, log) = recording_server("127.0.0.1:0").await.unwrap();
    let local = other_loopback();
    let client = ClientBuilder::new().local_addr(local);
    let (ws, _) = bounded("connect", client.connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    drop(ws);
    assert_eq!(seen(&log)[0].remote.unwrap().ip(), local);

    // A local address of the other family leaves no address to connect to.
    let error = bounded(
        "connect",
        ClientBuilder::new()
            .local_addr("::1".parse().unwrap())
            .connect(&format!("ws://{addr}/")),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
    assert_eq!(seen(&log).len(), 1);
}

/// An HTTP `CONNECT` proxy that records the address of each client, then relays.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let log = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut client, peer)) = listener.accept().await {
            log.lock().unwrap().push(peer);
            tokio::spawn(async move {
                let head = common::read_head(&mut client).await;
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or_default()
                    .to_owned();
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, peers)
}

#[tokio::test]
async fn local_addr_applies_to_the_connection_to_a_proxy() {
    let (addr, log) = recording_server("127.0.0.1:0").await.unwrap();
    let (proxy, proxy_peers) = connect_proxy().await;
    let local = other_loopback();
    let client = ClientBuilder::new()
        .local_addr(local)
        .family(IpFamily::V4)
        .proxy(enim_labore_occaecati::client::Proxy::http(
            "127.0.0.1",
            proxy.port(),
        ));
    let (ws, _) = bounded("connect", client.connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    drop(ws);
    let proxy_peers = proxy_peers.lock().unwrap().clone();
    assert_eq!(proxy_peers.len(), 1);
    assert_eq!(
        proxy_peers[0].ip(),
        local,
        "the proxy saw the bound address"
    );
    // The server sees the proxy's own connection.
    assert_eq!(
        seen(&log)[0].remote.unwrap().ip(),
        "127.0.0.1".parse::<IpAddr>().unwrap()
    );
}

/// An IPv6 server on `[::1]:P` and an IPv4 one on `127.0.0.1:P`, the same port: `P` and the
/// logs of the IPv4 and IPv6 servers, or why `::1` can't be bound.
async fn dual_stack_servers() -> Result<(u16, Log, Log), String> {
    let mut last = String::new();
    for _ in 0..20 {
        let (v6, v6_log) = recording_server("[::1]:0")
            .await
            .map_err(|e| format!("cannot bind [::1]: {e}"))?;
        match recording_server(&format!("127.0.0.1:{}", v6.port())).await {
            Ok((_, v4_log)) => return Ok((v6.port(), v4_log, v6_log)),
            // The port is taken on IPv4: try another.
            Err(e) => last = e.to_string(),
        }
    }
    panic!("no port free on both 127.0.0.1 and [::1]: {last}");
}

#[tokio::test]
async fn family_restricts_the_resolved_addresses() {
    let v4_ip: IpAddr = "127.0.0.1".parse().unwrap();
    let v6_ip: IpAddr = "::1".parse().unwrap();
    let (port, v4_log, v6_log) = match dual_stack_servers().await {
        Ok(servers) => servers,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "IPv6 loopback needed under CI: {why}"
            );
            eprintln!("family_restricts_the_resolved_addresses: IPv6 part skipped: {why}");
            let (addr, log) = recording_server("127.0.0.1:0").await.unwrap();
            let url = format!("ws://localhost:{}/", addr.port());
            let client = ClientBuilder::new().family(IpFamily::V4);
            let (ws, _) = bounded("connect", client.connect(&url)).await.unwrap();
            drop(ws);
            assert_eq!(seen(&log)[0].remote.unwrap().ip(), v4_ip);
            let client = ClientBuilder::new().family(IpFamily::V6);
            let error = bounded("connect", client.connect(&format!("ws://{addr}/")))
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Io, "{error}");
            return;
        }
    };
    let localhost = format!("ws://localhost:{port}/");
    let v4 = ClientBuilder::new().family(IpFamily::V4);
    let v6 = ClientBuilder::new().family(IpFamily::V6);

    // IPv4 through the name: the IPv4 server, whatever the resolver's order.
    let (ws, _) = bounded("connect", v4.connect(&localhost)).await.unwrap();
    drop(ws);
    assert_eq!(seen(&v4_log).len(), 1);
    assert_eq!(seen(&v4_log)[0].remote.unwrap().ip(), v4_ip);
    assert!(seen(&v6_log).is_empty());

    // IPv6 through the name, when the system resolves `localhost` to `::1` too; else the
    // name has no address of that family, which is an error, not a fallback to IPv4.
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", port))
        .await
        .unwrap()
        .collect();
    if resolved.iter().any(|a| a.ip() == v6_ip) {
        let (ws, _) = bounded("connect", v6.connect(&localhost)).await.unwrap();
        drop(ws);
        assert_eq!(seen(&v6_log).len(), 1);
        assert_eq!(seen(&v6_log)[0].remote.unwrap().ip(), v6_ip);
    } else {
        eprintln!("localhost resolves to {resolved:?} only: checking that IPv6 finds nothing");
        let error = bounded("connect", v6.connect(&localhost))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Io, "{error}");
        let why = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            why.as_deref()
                .unwrap_or_default()
                .contains("no IPv6 address"),
            "{why:?}"
        );
        let (ws, _) = bounded("connect", v6.connect(&format!("ws://[::1]:{port}/")))
            .await
            .unwrap();
        drop(ws);
        assert_eq!(seen(&v6_log).len(), 1);
        assert_eq!(seen(&v6_log)[0].remote.unwrap().ip(), v6_ip);
    }
    assert_eq!(seen(&v4_log).len(), 1, "IPv6 never fell back to IPv4");

    // An address literal of the other family is refused the same way.
    let error = bounded("connect", v4.connect(&format!("ws://[::1]:{port}/")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
    assert_eq!(seen(&v6_log).len(), 1);
}

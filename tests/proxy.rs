//! The client through real proxies: tinyproxy (HTTP CONNECT, with and without basic auth),
//! danted (SOCKS5, remote DNS) and microsocks (SOCKS5 with username/password), started by
//! `scripts/proxies/start.sh`, which writes their addresses to `/tmp/elo-proxies/proxies.env`
//! (or `$ELO_PROXY_ENV`). `scripts/test.sh` starts them; without them these tests say they
//! were skipped, except under CI, where they fail.

use crate::common;

use std::collections::HashMap;

use common::certs::Ca;
use enim_labore_occaecati::client::Proxy;
use enim_labore_occaecati::server::Server;
use enim_labore_occaecati::tls::{ClientTls, ServerTls};
use enim_labore_occaecati::{ClientBuilder, ErrorKind, ProxyFailure};

fn proxies(test: &str) -> Option<HashMap<String, String>> {
    let path = std::env::var("ELO_PROXY_ENV")
        .unwrap_or_else(|_| "/tmp/elo-proxies/proxies.env".to_owned());
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {path} missing under CI (scripts/proxies/start.sh)"
        );
        eprintln!("{test}: skipped (no proxies: run scripts/proxies/start.sh)");
        return None;
    };
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn proxy_at(kind: fn(String, u16) -> Proxy, address: &str) -> Proxy {
    let (host, port) = address.rsplit_once(':').unwrap();
    kind(host.to_owned(), port.parse().unwrap())
}

fn http(address: &str) -> Proxy {
    proxy_at(Proxy::http, address)
}

fn socks(address: &str) -> Proxy {
    proxy_at(Proxy::socks5, address)
}

/// An echo server: plain, or TLS with a certificate for localhost from `ca`.
async fn echo_server(tls: Option<&Ca>) -> u16 {
    let mut builder = Server::builder();
    if let Some(ca) = tls {
        let leaf = ca.server(&["localhost"]);
        builder =
            builder.tls(ServerTls::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap());
    }
    let server = builder.bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.serve(|mut ws, _| async move {
        while let Ok(Some(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    port
}

async fn round_trip(client: &ClientBuilder, url: &str) {
    let (mut ws, _) = client
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    ws.send("through the proxy").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("through the proxy")
    );
    ws.close(None).await.unwrap();
}

async fn proxy_failure(client: &ClientBuilder, url: &str) -> ProxyFailure {
    let error = client.connect(url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Proxy, "{error}");
    error.proxy_failure().cloned().unwrap()
}

#[tokio::test]
async fn http_connect_through_tinyproxy() {
    let Some(env) = proxies("http_connect_through_tinyproxy") else {
        return;
    };
    let ca = Ca::new("proxy test CA");
    let plain = echo_server(None).await;
    let secure = echo_server(Some(&ca)).await;
    let tls = ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap();

    let open = ClientBuilder::new().proxy(http(&env["ELO_HTTP_PROXY"]));
    round_trip(&open, &format!("ws://127.0.0.1:{plain}/")).await;
    // TLS inside the tunnel: the certificate is checked for the target's name.
    round_trip(
        &open.clone().tls(tls.clone()),
        &format!("wss://localhost:{secure}/"),
    )
    .await;
    // The proxy can't reach the target: its status is the error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(
        proxy_failure(&open, &format!("ws://127.0.0.1:{closed}/")).await,
        ProxyFailure::HttpStatus(500)
    );

    let auth = &env["ELO_HTTP_PROXY_AUTH"];
    let anonymous = ClientBuilder::new().proxy(http(auth));
    assert_eq!(
        proxy_failure(&anonymous, &format!("ws://127.0.0.1:{plain}/")).await,
        ProxyFailure::HttpStatus(407)
    );
    let wrong = ClientBuilder::new().proxy(http(auth).with_credentials("elo", "wrong"));
    assert!(matches!(
        proxy_failure(&wrong, &format!("ws://127.0.0.1:{plain}/")).await,
        ProxyFailure::HttpStatus(401 | 407)
    ));
    let user = &env["ELO_PROXY_USER"];
    let pass = &env["ELO_PROXY_PASS"];
    let authed = ClientBuilder::new().proxy(http(auth).with_credentials(user, pass));
    round_trip(&authed, &format!("ws://localhost:{plain}/")).await;
    round_trip(&authed.tls(tls), &format!("wss://localhost:{secure}/")).await;
}

#[tokio::test]
async fn socks5_through_dante_and_microsocks() {
    let Some(env) = proxies("socks5_through_dante_and_microsocks") else {
        return;
    };
    let ca = Ca::new("proxy test CA");
    let plain = echo_server(None).await;
    let secure = echo_server(Some(&ca)).await;
    let tls = ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap();

    // danted, no authentication; "localhost" is resolved by the proxy (remote DNS).
    let dante = ClientBuilder::new().proxy(socks(&env["ELO_SOCKS5_PROXY"]));
    round_trip(&dante, &format!("ws://localhost:{plain}/")).await;
    round_trip(
        &dante.clone().tls(tls.clone()),
        &format!("wss://localhost:{secure}/"),
    )
    .await;
    // A destination its rules refuse: reply code 2 (not allowed by ruleset).
    let blocked = &env["ELO_SOCKS5_BLOCKED_HOST"];
    assert_eq!(
        proxy_failure(&dante, &format!("ws://{blocked}:{plain}/")).await,
        ProxyFailure::SocksReply(2)
    );

    // microsocks, username and password required.
    let auth = &env["ELO_SOCKS5_PROXY_AUTH"];
    let anonymous = ClientBuilder::new().proxy(socks(auth));
    assert_eq!(
        proxy_failure(&anonymous, &format!("ws://127.0.0.1:{plain}/")).await,
        ProxyFailure::SocksNoAcceptableAuth
    );
    let wrong = ClientBuilder::new().proxy(socks(auth).with_credentials("elo", "wrong"));
    assert_eq!(
        proxy_failure(&wrong, &format!("ws://127.0.0.1:{plain}/")).await,
        ProxyFailure::SocksAuthFailed
    );
    let user = &env["ELO_PROXY_USER"];
    let pass = &env["ELO_PROXY_PASS"];
    let url = Proxy::parse(&format!("socks5h://{user}:{pass}@{auth}")).unwrap();
    let authed = ClientBuilder::new().proxy(url);
    round_trip(&authed, &format!("ws://localhost:{plain}/")).await;
    round_trip(&authed.tls(tls), &format!("wss://localhost:{secure}/")).await;
}

/// The environment variables, when the user opts in. This is the only test in this binary that
/// touches the process environment.
#[tokio::test]
async fn proxy_from_the_environment() {
    let Some(env) = proxies("proxy_from_the_environment") else {
        return;
    };
    let plain = echo_server(None).await;
    let url = format!("ws://localhost:{plain}/");
    let auth = &env["ELO_SOCKS5_PROXY_AUTH"];
    let (user, pass) = (&env["ELO_PROXY_USER"], &env["ELO_PROXY_PASS"]);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        std::env::remove_var(name);
    }

    // Wrong credentials in ALL_PROXY: the failure proves the variable was used.
    std::env::set_var("ALL_PROXY", format!("socks5h://{user}:wrong@{auth}"));
    let from_env = ClientBuilder::new().proxy_from_env();
    assert_eq!(
        proxy_failure(&from_env, &url).await,
        ProxyFailure::SocksAuthFailed
    );
    // Without opting in, the variables are ignored.
    round_trip(&ClientBuilder::new(), &url).await;
    // NO_PROXY lists the host: direct.
    std::env::set_var("NO_PROXY", "example.com,localhost");
    round_trip(&from_env, &url).await;
    std::env::remove_var("NO_PROXY");
    // HTTP_PROXY wins over ALL_PROXY for ws://.
    std::env::set_var("HTTP_PROXY", format!("http://{}", env["ELO_HTTP_PROXY"]));
    round_trip(&from_env, &url).await;
    std::env::remove_var("HTTP_PROXY");
    std::env::set_var("ALL_PROXY", format!("socks5h://{user}:{pass}@{auth}"));
    round_trip(&from_env, &url).await;
    std::env::remove_var("ALL_PROXY");
}

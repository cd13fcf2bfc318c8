//! wss:// end to end: our TLS server and client with certificates made at test time, every
//! verification failure named, client certificates, SNI, and the seed library (Node `ws` on
//! `https`) as the TLS peer in both directions.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::certs::{write_temp, Ca, Leaf};
use enim_labore_occaecati::server::{Server, ServerStream};
use enim_labore_occaecati::tls::rustls::pki_types::pem::PemObject;
use enim_labore_occaecati::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use enim_labore_occaecati::tls::{rustls, ClientTls, ServerTls, TlsFailure};
use enim_labore_occaecati::{ClientBuilder, ErrorKind, Message, WebSocket};

/// A TLS echo server with `leaf`; answers its port.
async fn tls_echo(tls: ServerTls) -> u16 {
    let server = Server::builder()
        .tls(tls)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.serve(|ws: WebSocket<ServerStream>, _| echo(ws)));
    port
}

async fn echo(mut ws: WebSocket<ServerStream>) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

fn server_tls(leaf: &Leaf) -> ServerTls {
    ServerTls::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap()
}

fn trusting(ca: &Ca) -> ClientTls {
    ClientTls::new().add_root_pem(ca.pem.as_bytes()).unwrap()
}

async fn round_trip(builder: &ClientBuilder, url: &str) {
    let (mut ws, response) = builder.connect(url).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send("over TLS").await.unwrap();
    let big = vec![7u8; 1 << 20];
    ws.send(big.clone()).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("over TLS")
    );
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::Binary(big.into())
    );
    ws.close(None).await.unwrap();
}

async fn tls_failure(builder: &ClientBuilder, url: &str) -> TlsFailure {
    let error = builder.connect(url).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
    error.tls_failure().cloned().unwrap()
}

#[tokio::test]
async fn wss_round_trip_with_a_private_ca() {
    let ca = Ca::new("elo test CA");
    let port = tls_echo(server_tls(&ca.server(&["localhost", "127.0.0.1"]))).await;
    let client = ClientBuilder::new().tls(trusting(&ca));
    round_trip(&client, &format!("wss://localhost:{port}/")).await;
    round_trip(&client, &format!("wss://127.0.0.1:{port}/")).await;
}

#[tokio::test]
async fn tls_failures_are_named() {
    let ca = Ca::new("elo test CA");
    let port = tls_echo(server_tls(&ca.server(&["localhost"]))).await;
    let url = format!("wss://localhost:{port}/");

    // Not trusting the CA: unknown issuer, with a readable message.
    let error = ClientBuilder::new().connect(&url).await.unwrap_err();
    assert_eq!(error.tls_failure(), Some(&TlsFailure::UnknownIssuer));
    assert!(error.to_string().contains("unknown issuer"), "{error}");

    // The certificate is for localhost, not for 127.0.0.1.
    let trusted = ClientBuilder::new().tls(trusting(&ca));
    let failure = tls_failure(&trusted, &format!("wss://127.0.0.1:{port}/")).await;
    assert_eq!(failure, TlsFailure::NameMismatch);

    // Expired.
    let port = tls_echo(server_tls(&ca.expired_server(&["localhost"]))).await;
    let failure = tls_failure(&trusted, &format!("wss://localhost:{port}/")).await;
    assert_eq!(failure, TlsFailure::Expired);

    // A plain server answering a TLS client.
    let plain = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = plain.local_addr().unwrap();
    tokio::spawn(plain.serve(|ws, _| echo(ws)));
    let error = trusted
        .connect(&format!("wss://localhost:{}/", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error}");
}

#[tokio::test]
async fn skipping_verification_and_choosing_the_server_name() {
    let ca = Ca::new("elo test CA");
    let port = tls_echo(server_tls(&ca.server(&["ws.internal.test"]))).await;
    let insecure = ClientBuilder::new().tls(ClientTls::new().danger_accept_invalid_certs(true));
    round_trip(&insecure, &format!("wss://127.0.0.1:{port}/")).await;
    // SNI and verification for another name than the URL's host.
    let named = ClientBuilder::new().tls(trusting(&ca).server_name("ws.internal.test"));
    round_trip(&named, &format!("wss://127.0.0.1:{port}/")).await;
}

#[tokio::test]
async fn client_certificates() {
    let ca = Ca::new("elo test CA");
    let leaf = ca.server(&["localhost"]);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
        )
        .unwrap();
    let port = tls_echo(ServerTls::from_rustls(Arc::new(config))).await;
    let url = format!("wss://localhost:{port}/");

    let client = ca.client("client.test");
    let with_cert = ClientBuilder::new().tls(
        trusting(&ca)
            .client_certificate_pem(client.cert.as_bytes(), client.key.as_bytes())
            .unwrap(),
    );
    round_trip(&with_cert, &url).await;

    // Without one, the server refuses; with TLS 1.3 the refusal arrives after the client's
    // handshake, as an alert on the first read or as the end of the stream.
    let without = ClientBuilder::new().tls(trusting(&ca));
    let error = without.connect(&url).await.unwrap_err();
    assert!(
        matches!(
            error.kind(),
            ErrorKind::Tls | ErrorKind::Io | ErrorKind::Handshake
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn handshake_timeout_covers_tls() {
    use enim_labore_occaecati::HandshakeLimits;
    let ca = Ca::new("elo test CA");
    let mut limits = HandshakeLimits::default();
    limits.timeout = Duration::from_millis(300);
    let server = Server::builder()
        .tls(server_tls(&ca.server(&["localhost"])))
        .handshake_limits(limits)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|ws, _| echo(ws)));
    // A client that connects and never starts TLS is dropped.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
    )
    .await
    .expect("server kept a silent TLS client past the handshake timeout");
    assert!(matches!(read, Ok(0) | Err(_)));
}

#[tokio::test]
async fn our_client_against_node_https_server() {
    if !common::node::available("our_client_against_node_https_server") {
        return;
    }
    let ca = Ca::new("elo test CA");
    let leaf = ca.server(&["localhost"]);
    let cert = write_temp("cert.pem", &leaf.cert);
    let key = write_temp("key.pem", &leaf.key);
    let peer =
        common::node::server(&["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]).await;
    let port = peer.port;
    let _child = peer.drain();
    let client = ClientBuilder::new().tls(trusting(&ca));
    let (mut ws, _) = client
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    ws.send("hello node over TLS").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("hello node over TLS")
    );
    ws.close(None).await.unwrap();
    // And the failure is named against a real TLS peer too.
    let error = ClientBuilder::new()
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(error.tls_failure(), Some(&TlsFailure::UnknownIssuer));
}

#[tokio::test]
async fn node_client_against_our_tls_server() {
    if !common::node::available("node_client_against_our_tls_server") {
        return;
    }
    let ca = Ca::new("elo test CA");
    let port = tls_echo(server_tls(&ca.server(&["localhost"]))).await;
    let ca_file = write_temp("ca.pem", &ca.pem);
    common::node::client_passes(
        &format!("wss://localhost:{port}/"),
        &["--ca", ca_file.to_str().unwrap(), "--echo-only"],
    )
    .await;
}

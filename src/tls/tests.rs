//! The server's TLS stream against tokio-rustls' client, over loopback TCP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream as ClientTlsStream;

use super::{ServerTls, ServerTlsStream};

fn certificate() -> (ServerTls, Arc<rustls::ClientConfig>) {
    certificate_for(rustls::DEFAULT_VERSIONS)
}

fn certificate_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (ServerTls, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server = ServerTls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server.unwrap(), Arc::new(client))
}

/// A handshaken pair: our server stream and tokio-rustls' client, both over one TCP connection.
async fn connected(
    client: Arc<rustls::ClientConfig>,
    server: &ServerTls,
) -> (ServerTlsStream<TcpStream>, ClientTlsStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connect = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .unwrap()
    };
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await.unwrap()
    };
    let (client, server) = tokio::join!(connect, accept);
    (server, client)
}

/// A client that sends `bytes` over plain TCP, and the server's side of its connection.
async fn raw_client(bytes: &[u8]) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(bytes).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (tcp, accepted)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Writes `data` as vectored writes of slices of the given sizes, in turn.
async fn write_in_slices<W: AsyncWrite + Unpin>(out: &mut W, data: &[u8], sizes: &[usize]) {
    let mut at = 0;
    let mut turn = 0;
    while at < data.len() {
        let mut slices = Vec::new();
        let mut end = at;
        for _ in 0..8 {
            let size = sizes[turn % sizes.len()].min(data.len() - end);
            turn += 1;
            slices.push(io::IoSlice::new(&data[end..end + size]));
            end += size;
        }
        at += out.write_vectored(&slices).await.unwrap();
    }
    out.flush().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_holds_no_buffer() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    assert_eq!(server.buffers_held(), 0, "after the handshake");

    let data = pattern(300_000);
    let (_, received) = tokio::join!(
        async {
            client.write_all(&data).await.unwrap();
            client.flush().await.unwrap();
        },
        async {
            let mut received = vec![0; data.len()];
            server.read_exact(&mut received).await.unwrap();
            received
        }
    );
    assert!(received == data);
    server.write_all(&data).await.unwrap();
    server.flush().await.unwrap();
    let mut echoed = vec![0; data.len()];
    client.read_exact(&mut echoed).await.unwrap();
    assert!(echoed == data);
    // Freed once it waits for the peer, as a driver's pending read does.
    wait_for_input(&mut server).await;
    assert_eq!(server.buffers_held(), 0, "after 300 KB each way");
}

#[tokio::test]
async fn data_crosses_both_ways_at_once_in_records_of_any_size() {
    let (server_tls, client_tls) = certificate();
    let (server, client) = connected(client_tls, &server_tls).await;
    let data = pattern(3 * 1024 * 1024 + 17);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    // The server echoes what it reads, in vectored writes of odd slices (small ones gathered
    // into one record, large ones taken alone); the client sends in writes of odd sizes too.
    let echo = async {
        let mut buf = vec![0; 70_000];
        loop {
            let n = server_read.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            write_in_slices(
                &mut server_write,
                &buf[..n],
                &[1000, 999, 700, 1023, 1, 13, 20_000, 5, 16_384],
            )
            .await;
        }
        server_write.shutdown().await.unwrap();
    };
    let send = async {
        write_in_slices(&mut client_write, &data, &[3, 16_385, 100_000, 1]).await;
        client_write.shutdown().await.unwrap();
    };
    let receive = async {
        let mut received = Vec::new();
        client_read.read_to_end(&mut received).await.unwrap();
        received
    };
    let ((), (), received) = tokio::join!(echo, send, receive);
    assert_eq!(received.len(), data.len());
    assert!(received == data);
}

#[tokio::test]
async fn a_key_update_from_the_client_is_answered() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    for round in 0..3u8 {
        // Asks the server to update its keys too: its answer must go out before its data.
        client.get_mut().1.refresh_traffic_keys().unwrap();
        client.write_all(&[round; 1000]).await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0; 1000];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [round; 1000]);
        server.write_all(&[round + 100; 1000]).await.unwrap();
        server.flush().await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [round + 100; 1000]);
    }
}

#[tokio::test]
async fn close_notify_ends_the_data_both_ways() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    client.write_all(b"last words").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");

    server.write_all(b"and mine").await.unwrap();
    server.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"and mine");
}

#[tokio::test]
async fn an_end_without_close_notify_is_an_unexpected_eof() {
    let (server_tls, client_tls) = certificate();
    let (mut server, client) = connected(client_tls, &server_tls).await;
    let (mut tcp, _) = client.into_inner();
    tcp.shutdown().await.unwrap();
    let mut got = Vec::new();
    let error = server.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn a_forged_record_is_an_error_and_the_peer_gets_an_alert() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    // Application data that doesn't decrypt, under the client's TLS.
    let forged = [0x17, 0x03, 0x03, 0x00, 0x20].into_iter().chain([0xAB; 32]);
    client
        .get_mut()
        .0
        .write_all(&forged.collect::<Vec<_>>())
        .await
        .unwrap();
    let error = server.read(&mut [0; 100]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let cause = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(cause, Some(&rustls::Error::DecryptError));
    // The error sticks: the record isn't processed again (a second fatal alert), and nothing
    // is encrypted after the alert.
    for _ in 0..2 {
        let again = server.read(&mut [0; 100]).await.unwrap_err();
        let cause = again
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert_eq!(cause, Some(&rustls::Error::DecryptError));
    }
    assert!(server.write_all(b"too late").await.is_err());
    // The close path's shutdown sends the alert, not a close_notify.
    server.shutdown().await.unwrap();
    let alert = client.read(&mut [0; 100]).await.unwrap_err();
    let cause = alert
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert_eq!(
        cause,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::BadRecordMac
        ))
    );
}

#[tokio::test]
async fn a_client_that_is_not_tls_gets_an_alert_and_a_named_failure() {
    let (server_tls, _) = certificate();
    let (mut tcp, accepted) = raw_client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let error = server_tls.accept(accepted).await.unwrap_err();
    assert_eq!(error.kind(), crate::ErrorKind::Tls);
    // An alert record (content type 21) answers it.
    let mut answer = [0; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[0], 21);
}

#[tokio::test]
async fn a_handshake_message_cut_by_another_record_is_refused() {
    let (server_tls, _) = certificate();
    // Two bytes of a ClientHello's header in one record, then a ChangeCipherSpec record:
    // rustls fails while it still holds the first part, which the alert's encoding must see.
    let (mut tcp, accepted) = raw_client(&[
        0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00, // handshake record, 2 bytes
        0x14, 0x03, 0x03, 0x00, 0x01, 0x01, // change_cipher_spec record
    ])
    .await;
    let error = server_tls.accept(accepted).await.unwrap_err();
    assert_eq!(error.kind(), crate::ErrorKind::Tls);
    // rustls queues no alert for this one (its buffered API neither): the connection ends.
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
}

/// Polls one read, as a driver's pending read does: it must wait (nothing was sent).
async fn wait_for_input(server: &mut ServerTlsStream<TcpStream>) {
    let mut nothing = [0; 16];
    let waiting = std::future::poll_fn(|cx| {
        let mut buf = tokio::io::ReadBuf::new(&mut nothing);
        std::task::Poll::Ready(Pin::new(&mut *server).poll_read(cx, &mut buf))
    })
    .await;
    assert!(waiting.is_pending());
}

#[tokio::test]
async fn a_connection_that_only_sends_keeps_no_buffer_between_messages() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    wait_for_input(&mut server).await;
    let message = pattern(200_000);
    for _ in 0..3 {
        server.write_all(&message).await.unwrap();
        server.flush().await.unwrap();
        assert_eq!(server.buffers_held(), 0);
        let mut got = vec![0; message.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == message);
    }
}

#[tokio::test]
async fn a_peer_trickling_bytes_gets_no_room_for_whole_records() {
    let (server_tls, client_tls) = certificate();
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    // The first bytes of a record's header, straight onto the socket.
    client.get_mut().0.write_all(&[0x17, 0x03]).await.unwrap();
    client.get_mut().0.flush().await.unwrap();
    // Loopback delivers within the write; the loop only guards against a slow wake-up.
    for _ in 0..100 {
        wait_for_input(&mut server).await;
        if server.buffers_held() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let held = server.buffers_held();
    assert!(
        held > 0 && held <= 2 * super::server_stream::MIN_READ_ROOM,
        "{held} bytes held"
    );
}

#[tokio::test]
async fn tls_1_2_carries_data_both_ways_and_closes() {
    let (server_tls, client_tls) = certificate_for(&[&rustls::version::TLS12]);
    let (mut server, mut client) = connected(client_tls, &server_tls).await;
    assert_eq!(
        server.connection().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let data = pattern(100_000);
    client.write_all(&data).await.unwrap();
    client.flush().await.unwrap();
    let mut got = vec![0; data.len()];
    server.read_exact(&mut got).await.unwrap();
    assert!(got == data);
    server.write_all(&data).await.unwrap();
    server.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).await.unwrap();
    assert!(echoed == data);
}

#[tokio::test]
async fn the_name_the_client_asked_for_is_kept() {
    let (server_tls, client_tls) = certificate();
    let (server, _client) = connected(client_tls.clone(), &server_tls).await;
    assert_eq!(server.server_name(), Some("localhost"));

    let mut without_sni = (*client_tls).clone();
    without_sni.enable_sni = false;
    let (server, _client) = connected(Arc::new(without_sni), &server_tls).await;
    assert_eq!(server.server_name(), None);

    // A configuration of the caller's own, through from_rustls, too.
    let own = ServerTls::from_rustls(server_tls.rustls_config());
    let (server, _client) = connected(client_tls, &own).await;
    assert_eq!(server.server_name(), Some("localhost"));
}

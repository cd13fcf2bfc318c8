//! The server's tracked clients as handles (the seed's `wss.clients`, each a socket to send to,
//! close or terminate): `ServerHandle::send_to`, `close_client`, `terminate_client` and
//! `client_addr` by `ClientId`, against clients over loopback.

use std::time::Duration;

use enim_labore_occaecati::client::ClientStream;
use enim_labore_occaecati::server::{ClientId, Delivery, Server};
use enim_labore_occaecati::{connect, CloseCode, CloseFrame, ErrorKind, Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// The next message (`None` once closed), within the limit.
async fn first(ws: &mut WebSocket<ClientStream>) -> Option<Message> {
    timeout(LIMIT, ws.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn send_to_close_and_terminate_one_client_by_id() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    // Each handler announces its client's id, then reads until the connection ends.
    let (ids_tx, mut ids) = mpsc::unbounded_channel::<ClientId>();
    tokio::spawn(server.serve(move |mut ws, info| {
        let ids_tx = ids_tx.clone();
        async move {
            ids_tx.send(info.id().expect("tracked")).unwrap();
            while let Ok(Some(_)) = ws.recv().await {}
        }
    }));

    let url = format!("ws://{addr}");
    let mut clients = Vec::new();
    let mut client_ids = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&url).await.unwrap().0);
        client_ids.push(timeout(LIMIT, ids.recv()).await.unwrap().unwrap());
    }
    let [a, b, c] = [client_ids[0], client_ids[1], client_ids[2]];
    let ClientStream::Plain(tcp) = clients[1].get_ref() else {
        panic!("a plain TCP client")
    };
    assert_eq!(
        handle.client_addr(b),
        tcp.local_addr().ok(),
        "each client's address"
    );

    // One client only: the others get the next broadcast as their first message.
    assert_eq!(handle.send_to(a, "only you"), Delivery::Queued);
    assert_eq!(handle.broadcast("everyone").queued, 3);
    assert_eq!(
        first(&mut clients[0]).await,
        Some(Message::text("only you"))
    );
    assert_eq!(
        first(&mut clients[0]).await,
        Some(Message::text("everyone"))
    );
    assert_eq!(
        first(&mut clients[1]).await,
        Some(Message::text("everyone"))
    );
    assert_eq!(
        first(&mut clients[2]).await,
        Some(Message::text("everyone"))
    );

    // A close frame that may not be sent is refused before anything is queued.
    let error = handle
        .close_client(b, Some(CloseFrame::new(1005u16, "")))
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);

    // Close one: the client sees the close frame, answers it, and the handshake completes.
    handle
        .close_client(b, Some(CloseFrame::new(4001u16, "bye, b")))
        .unwrap();
    assert_eq!(first(&mut clients[1]).await, None);
    let frame = clients[1].close_frame().unwrap();
    assert_eq!(frame.code, CloseCode::from(4001u16));
    assert_eq!(frame.reason, "bye, b");

    // Terminate one: no close frame, the connection just ends (1006 to the client).
    assert!(handle.terminate_client(c));
    let error = timeout(LIMIT, clients[2].recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AbnormalClosure, "{error}");
    assert!(!handle.terminate_client(c), "a client is terminated once");

    // The first client is untouched by all of it.
    clients[0].send("still here").await.unwrap();
    assert_eq!(handle.send_to(a, "and you are"), Delivery::Queued);
    assert_eq!(
        first(&mut clients[0]).await,
        Some(Message::text("and you are"))
    );
    clients[0].close(None).await.unwrap();
}

//! The server's HTTP/2 connections (RFC 8441): each extended CONNECT goes through the same
//! decision as an HTTP/1.1 upgrade (`accept::decide`), is answered `200` instead of `101`, and
//! its stream runs the handler in a task of its own, registered like any other client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response};

use super::accept::{connection, decide, ClientInfo, Decision};
use super::{connection_task, ServerBuilder, ServerStream, Shared};
use crate::handshake::server::{
    connect_accept_headers, http2_head, rejection, remove_connection_headers,
};
use crate::http2::{Http2Stream, PREFACE};
use crate::io::WebSocket;

/// Whether a connection speaks HTTP/2.
pub(super) enum Detected {
    Http2(ServerStream),
    Http1(ServerStream),
    /// Dropped: it sent neither in time.
    Neither,
}

/// HTTP/2 when TLS negotiated `h2` (ALPN), or, with `cleartext`, when a plain connection opens
/// with the HTTP/2 preface (peeked, so an HTTP/1.1 request is read whole by its handshake).
pub(super) async fn detect(options: &ServerBuilder, stream: ServerStream) -> Detected {
    if !options.http2.enabled {
        return Detected::Http1(stream);
    }
    match &stream {
        #[cfg(feature = "tls")]
        ServerStream::Tls(tls) if tls.alpn_protocol() == Some(b"h2") => Detected::Http2(stream),
        ServerStream::Plain(tcp) if options.http2.cleartext => {
            let mut head = [0u8; PREFACE.len()];
            let peeked = tokio::time::timeout(options.limits.timeout, async {
                // Peek until the preface is whole or ruled out. A peek that finds data leaves
                // the socket readable, so a partial preface is peeked again after a pause, not
                // in a spin.
                loop {
                    let n = tcp.peek(&mut head).await?;
                    if n == 0 || n == head.len() || head[..n] != PREFACE[..n] {
                        return std::io::Result::Ok(n);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            })
            .await;
            match peeked {
                Ok(Ok(n)) if head[..n] == *PREFACE => Detected::Http2(stream),
                Ok(Ok(_)) => Detected::Http1(stream),
                // Not even the preface's length in the handshake time: the connection is
                // dropped, as an upgrade that doesn't come in time would be.
                _ => Detected::Neither,
            }
        }
        _ => Detected::Http1(stream),
    }
}

/// Serves one HTTP/2 connection until it ends: its settings (extended CONNECT on, the stream
/// limit, the windows), each stream in a task, a GOAWAY when the server shuts down.
pub(super) async fn serve<F, Fut>(
    shared: &Arc<Shared>,
    handler: &Arc<F>,
    io: ServerStream,
    remote: Option<SocketAddr>,
) where
    F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let options = &shared.options;
    let settings = &options.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .enable_connect_protocol()
        .max_concurrent_streams(settings.max_streams)
        .initial_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window())
        .max_frame_size(settings.max_frame_size)
        .max_header_list_size(u32::try_from(options.limits.max_head_size).unwrap_or(u32::MAX));
    let handshake = builder.handshake::<_, Bytes>(io);
    let Ok(Ok(mut h2)) = tokio::time::timeout(options.limits.timeout, handshake).await else {
        return;
    };
    let mut going_away = false;
    // A connection without a WebSocket for the handshake timeout is closed, as a TCP
    // connection that doesn't finish its upgrade would be.
    let idle = tokio::time::sleep(options.limits.timeout);
    tokio::pin!(idle);
    let mut opened = false;
    let mut closing = false;
    loop {
        let shutdown = shared.shutdown.notified();
        tokio::pin!(shutdown);
        shutdown.as_mut().enable();
        if !going_away && shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            h2.graceful_shutdown();
            going_away = true;
        }
        // `accept` also drives the connection: it is polled until the connection ends.
        tokio::select! {
            next = h2.accept() => match next {
                Some(Ok((request, respond))) => {
                    opened = true;
                    let task = tokio::spawn(run_stream(
                        shared.clone(),
                        handler.clone(),
                        request,
                        respond,
                        remote,
                    ));
                    shared.registry.track_task(task.abort_handle());
                }
                Some(Err(_)) | None => return,
            },
            () = shutdown, if !going_away => {
                h2.graceful_shutdown();
                going_away = true;
            }
            // After a GOAWAY the same clock bounds the wait for the peer to finish: a peer
            // that neither opens streams nor answers would keep the connection forever.
            () = &mut idle => {
                let deadline = tokio::time::Instant::now() + options.limits.timeout;
                if h2.has_streams() || std::mem::take(&mut opened) {
                    idle.as_mut().reset(deadline);
                } else if closing {
                    return;
                } else if going_away {
                    // A last GOAWAY and the connection's close, flushed while `accept` is
                    // polled; one more period at most.
                    h2.abrupt_shutdown(h2::Reason::NO_ERROR);
                    closing = true;
                    idle.as_mut().reset(deadline);
                } else {
                    h2.graceful_shutdown();
                    going_away = true;
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// One stream's task: the decision, the answer, then the handler. As for a connection's task
/// (`run_connection`), the decision runs in a boxed future that owns the request, so the task
/// keeps room only for the handler's future, the guard and a pointer while the stream is open.
fn run_stream<F, Fut>(
    shared: Arc<Shared>,
    handler: Arc<F>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    remote: Option<SocketAddr>,
) -> impl Future<Output = ()> + Send + 'static
where
    F: Fn(WebSocket<ServerStream>, ClientInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    connection_task(Box::pin(async move {
        let opened = open_stream(&shared, request, respond, remote);
        shared.start(&*handler, opened).await
    }))
}

/// Decides on a stream's request (within the handshake timeout) and answers it: `200` and a
/// WebSocket on the stream, or the refusal's status, headers and body.
async fn open_stream(
    shared: &Shared,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    remote: Option<SocketAddr>,
) -> Option<(WebSocket<ServerStream>, ClientInfo)> {
    let options = &shared.options;
    let (parts, recv) = request.into_parts();
    let mut head = Request::from_parts(parts, ());
    let protocol = head.extensions_mut().remove::<h2::ext::Protocol>();
    let head = http2_head(head, protocol.as_ref().map(h2::ext::Protocol::as_str));
    let decision = tokio::time::timeout(options.limits.timeout, decide(options, head, remote));
    let Ok(decision) = decision.await else {
        respond.send_reset(h2::Reason::CANCEL);
        return None;
    };
    match decision {
        Decision::Accept { info, headers } => {
            let mut response = Response::new(());
            *response.headers_mut() = connect_accept_headers(info.protocol.as_deref(), &headers);
            let send = respond.send_response(response, false).ok()?;
            let stream =
                ServerStream::Http2(Box::new(Http2Stream::new(send, recv, options.http2.linger)));
            let conn = connection(options, &info);
            let ws = WebSocket::from_parts(stream, conn, BytesMut::new(), info.protocol.clone());
            Some((ws, *info))
        }
        Decision::Refuse(refusal) => {
            let (mut parts, body) =
                rejection(refusal.status, &refusal.headers, &refusal.body).into_parts();
            remove_connection_headers(&mut parts.headers);
            let head = Response::from_parts(parts, ());
            if let Ok(mut send) = respond.send_response(head, body.is_empty()) {
                let _ = send.send_data(body, true);
            }
            None
        }
    }
}

//! Entry points of the fuzz targets (`fuzz/`): each takes arbitrary bytes and runs one parser
//! or the protocol core on them. A panic is a bug; so is a broken invariant, asserted here
//! (the same input fed whole and in pieces gives the same events). The regression tests of
//! crashes the fuzzers found call these too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::{Config, HandshakeLimits};
use crate::deflate::{negotiation, DeflateConfig, Negotiated};
use crate::handshake::head::{parse_request, parse_response, HeadReader};
use crate::proto::close::CloseFrame;
use crate::proto::connection::{Connection, Role};

/// The protocol core on arbitrary bytes. The first byte chooses the role (bit 0: client),
/// permessage-deflate (bit 1), fragment delivery (bit 2) and unchecked text (bit 3); the
/// second seeds the split points. The input is fed whole, then in pieces: the events (messages
/// and the error that ends them) and the bytes the core wants to send must be the same.
pub fn connection(data: &[u8]) {
    let [flags, seed, input @ ..] = data else {
        return;
    };
    let role = if flags & 1 == 1 {
        Role::Client
    } else {
        Role::Server
    };
    let config = Config {
        // Small limits, so the fuzzer reaches them.
        max_message_size: 1 << 16,
        max_frame_size: 1 << 15,
        max_fragments: 64,
        deliver_fragments: flags & 4 != 0,
        validate_utf8: flags & 8 == 0,
        max_write_buffer: 1 << 10,
        ..Config::default()
    };
    let deflate = flags & 2 != 0;
    let whole = run_connection(role, &config, deflate, input, &[]);
    let cuts = split_points(*seed, input.len());
    let pieces = run_connection(role, &config, deflate, input, &cuts);
    assert_eq!(
        whole, pieces,
        "whole and split inputs gave different results"
    );
}

/// Where to cut `len` bytes: a cheap generator seeded by the input, so the fuzzer explores
/// splits too (every byte alone when `seed` is 0).
fn split_points(seed: u8, len: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    let mut state = u32::from(seed);
    while at < len {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        at += 1 + (state >> 16) as usize % (usize::from(seed) + 1);
        cuts.push(at.min(len));
    }
    cuts
}

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<String>,
    output: Vec<u8>,
    closed_by_eof: bool,
}

fn run_connection(
    role: Role,
    config: &Config,
    deflate: bool,
    input: &[u8],
    cuts: &[usize],
) -> Outcome {
    let mut conn =
        Connection::new(role, config.clone()).with_mask_generator(Box::new(|| [1, 2, 3, 4]));
    if deflate {
        let params = Negotiated {
            local_no_context_takeover: false,
            remote_no_context_takeover: false,
            local_max_window_bits: 15,
            remote_max_window_bits: 15,
        };
        conn = conn.with_deflate(params, DeflateConfig::default());
    }
    let mut events = Vec::new();
    let mut failed = false;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        if failed || end < start {
            break;
        }
        conn.receive_data(&input[start..end]);
        start = end;
        failed = drain(&mut conn, &mut events);
    }
    let closed_by_eof = !failed;
    if closed_by_eof {
        conn.receive_eof();
        drain(&mut conn, &mut events);
    }
    Outcome {
        events,
        output: conn.take_output().to_vec(),
        closed_by_eof,
    }
}

/// Takes every event the core has; true once it has failed.
fn drain(conn: &mut Connection, events: &mut Vec<String>) -> bool {
    loop {
        match conn.next_message() {
            Ok(Some(message)) => events.push(format!("{message:?}")),
            Ok(None) => return false,
            Err(error) => {
                events.push(format!("error {error:?}"));
                return true;
            }
        }
    }
}

fn small_limits() -> HandshakeLimits {
    HandshakeLimits {
        max_head_size: 4 << 10,
        max_headers: 32,
        ..HandshakeLimits::default()
    }
}

/// The server's handshake: the head read in pieces (split by the first byte), parsed, checked
/// as an upgrade request, and negotiated (subprotocols, permessage-deflate), as a server does.
pub fn handshake_request(data: &[u8]) {
    let Some(request) = read_and_parse(data, parse_request) else {
        return;
    };
    if let Ok(upgrade) = crate::handshake::server::validate_request(&request) {
        assert_eq!(
            crate::handshake::accept_key(upgrade.key.as_bytes()).len(),
            28
        );
    }
    let offers = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|v| v.as_bytes());
    let _ = negotiation::accept_offer(offers, &DeflateConfig::default());
}

/// The first byte seeds the split points, the rest is read as a head (`read_head`) and parsed.
fn read_and_parse<T, E>(
    data: &[u8],
    parse: fn(&[u8], &HandshakeLimits) -> Result<T, E>,
) -> Option<T> {
    let [seed, input @ ..] = data else {
        return None;
    };
    let limits = small_limits();
    let head = read_head(*seed, input, &limits)?;
    parse(&head, &limits).ok()
}

/// Reads a head the way the server and client do: appended in pieces, the end looked for
/// after each. `None` when the limits refuse it or it never ends.
fn read_head(seed: u8, input: &[u8], limits: &HandshakeLimits) -> Option<BytesMut> {
    let mut reader = HeadReader::new();
    let mut start = 0;
    for end in split_points(seed, input.len()) {
        reader.buffer().extend_from_slice(&input[start..end]);
        start = end;
        match reader.find_end(limits) {
            Ok(Some(len)) => {
                let (head, rest) = reader.take(len);
                assert_eq!(head.len() + rest.len(), end);
                return Some(head);
            }
            Ok(None) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The client's handshake: a response head read in pieces, parsed, and checked against what
/// a client offered (two subprotocols, permessage-deflate).
pub fn handshake_response(data: &[u8]) {
    let Some(response) = read_and_parse(data, parse_response) else {
        return;
    };
    let offered = ["chat".to_owned(), "superchat".to_owned()];
    let _ = crate::handshake::client::validate_response(
        &response,
        "dGhlIHNhbXBsZSBub25jZQ==",
        &offered,
        true,
    );
    let answers = response
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|v| v.as_bytes());
    let _ = negotiation::validate_answer(answers, &DeflateConfig::default());
}

/// The permessage-deflate offer (server) and answer (client) parsers on header values
/// (one per line), under each of a few configurations. What a server accepts has window bits
/// in range, and the answer it builds is a well-formed extension header.
pub fn deflate_parameters(data: &[u8]) {
    let [which, input @ ..] = data else {
        return;
    };
    let values: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let config = match which % 4 {
        0 => DeflateConfig::default(),
        1 => DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        },
        2 => DeflateConfig {
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(9),
            ..DeflateConfig::default()
        },
        _ => DeflateConfig {
            server_max_window_bits: Some(8),
            ..DeflateConfig::default()
        },
    };
    if let Ok(Some((header, params))) = negotiation::accept_offer(values.iter().copied(), &config) {
        for bits in [params.local_max_window_bits, params.remote_max_window_bits] {
            assert!((8..=15).contains(&bits), "window bits {bits}");
        }
        // The answer the server built must be well-formed.
        let parsed = crate::deflate::extensions::parse([header.as_bytes()]);
        assert!(parsed.is_ok(), "unparsable answer {header:?}");
    }
    let _ = negotiation::validate_answer(values.iter().copied(), &config);
}

/// The `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` list parsers and the token
/// matcher, on header values (one per line). Every subprotocol accepted is a token. (The
/// parsers are single left-to-right passes; an input that made one slow would be a timeout.)
pub fn header_lists(data: &[u8]) {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Ok(value) = http::HeaderValue::from_bytes(line) else {
            continue;
        };
        headers.append(http::header::SEC_WEBSOCKET_PROTOCOL, value.clone());
        headers.append(http::header::SEC_WEBSOCKET_EXTENSIONS, value.clone());
        headers.append(http::header::CONNECTION, value);
    }
    if let Ok(protocols) = crate::handshake::parse_subprotocols(&headers) {
        for protocol in &protocols {
            assert!(crate::handshake::is_token(protocol.as_bytes()));
        }
    }
    let _ = crate::deflate::extensions::parse(
        headers
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let _ = crate::handshake::header_has_token(&headers, http::header::CONNECTION, "upgrade");
}

/// Close frame payloads: what parses must encode back to the same bytes.
pub fn close_payload(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(Some(frame)) = CloseFrame::parse(&payload) {
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded);
        assert_eq!(&encoded[..], data, "close frame did not round-trip");
    }
}

/// The HTTP CONNECT and SOCKS5 replies a proxy sends (the first byte chooses which and whether
/// with credentials); the reply is read from the fuzz input, what the client writes is dropped.
pub fn proxy_replies(data: &[u8]) {
    let [which, input @ ..] = data else {
        return;
    };
    let credentials = ("user".to_owned(), "secret".to_owned());
    let credentials = (which & 2 != 0).then_some(&credentials);
    let mut peer = ScriptedPeer { input, written: 0 };
    let limits = small_limits();
    if which & 1 == 0 {
        let connect =
            crate::client::proxy::http_connect(&mut peer, "example.com", 443, credentials, &limits);
        let _ = run_ready(connect);
    } else {
        let connect = crate::client::proxy::socks5_connect(peer, "example.com", 443, credentials);
        let _ = run_ready(connect);
    }
}

/// URL parsing: client URLs (`ws://`, `wss://`, `ws+unix:`), their user info, and proxy URLs.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((target, uri)) = crate::client::url::parse_target(text) {
        let _ = crate::client::url::display_url(&target, &uri);
        if let Ok((uri, _credentials)) = crate::client::url::take_user_info(uri) {
            let _ = crate::handshake::client::host_header(&uri);
            let _ = crate::client::url::effective_port(&uri);
        }
    }
    let _ = crate::client::Proxy::parse(text);
}

/// A peer that answers with the fuzz input and then end of file, and swallows what is written.
struct ScriptedPeer<'a> {
    input: &'a [u8],
    written: usize,
}

impl AsyncRead for ScriptedPeer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.input.len());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedPeer<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Polls a future whose I/O is always ready (the scripted peer) to completion. It must
/// complete: a future still pending after that would wait forever on a real socket too.
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(std::sync::Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a proxy handshake on an always-ready peer did not finish");
}

/// A waker that does nothing: the polls are driven by hand (`Waker::noop` needs Rust 1.85).
struct NoWake;

impl std::task::Wake for NoWake {
    fn wake(self: std::sync::Arc<Self>) {}
}

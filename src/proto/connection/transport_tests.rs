//! The transport contract, whole: a client and a server core joined by a pipe that only moves
//! bytes, tells the end of the stream and the time, as any transport does. No tokio, no socket.

use std::time::{Duration, Instant};

use super::{Connection, Role, State};
use crate::config::{Config, Heartbeat};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::error::{Failure, ProtocolError, SendError};
use crate::proto::message::Message;

/// Moves everything `from` owes to `to`, then lets `to` parse it; what `to` handed out.
fn pump(from: &mut Connection, to: &mut Connection) -> Vec<Message> {
    let bytes = from.take_output();
    to.receive_data(&bytes);
    let mut messages = Vec::new();
    while let Ok(Some(message)) = to.next_message() {
        messages.push(message);
    }
    messages
}

fn pair(config: Config) -> (Connection, Connection) {
    (
        Connection::new(Role::Client, config.clone()),
        Connection::new(Role::Server, config),
    )
}

#[test]
fn echo_and_clean_close_over_a_pipe() {
    let (mut client, mut server) = pair(Config::default());
    client.send(&Message::text("hello")).unwrap();
    let received = pump(&mut client, &mut server);
    assert_eq!(received, [Message::text("hello")]);
    server.send(&received[0]).unwrap();
    assert_eq!(pump(&mut server, &mut client), [Message::text("hello")]);

    // The client closes; the server echoes and, the handshake done, closes the transport.
    client
        .send_close(Some(&CloseFrame::new(1000u16, "bye")))
        .unwrap();
    assert_eq!(client.state(), State::Closing);
    let at_server = pump(&mut client, &mut server);
    assert!(matches!(&at_server[..], [Message::Close(Some(f))] if f.code == CloseCode::NORMAL));
    assert!(server.is_read_closed());
    assert!(!server.awaits_transport_close(), "the server closes first");
    assert!(server.has_output(), "the echo is owed");
    pump(&mut server, &mut client);
    assert_eq!(server.failure(), None);

    // The client, its handshake done, waits for the server to close the stream.
    assert!(client.is_read_closed());
    assert!(client.awaits_transport_close());
    client.receive_eof();
    assert!(!client.awaits_transport_close());
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.failure(), None);
    assert_eq!(client.abnormal_close_code(), None);
}

#[test]
fn stream_end_before_the_close_frame_is_an_abnormal_closure() {
    let (mut client, mut server) = pair(Config::default());
    client.send(&Message::text("half")).unwrap();
    pump(&mut client, &mut server);
    server.receive_eof();
    assert!(server.is_read_closed());
    assert_eq!(server.failure(), Some(Failure::AbnormalClosure));
    assert_eq!(server.abnormal_close_code(), Some(CloseCode::ABNORMAL));
    assert!(!server.awaits_transport_close());
}

#[test]
fn protocol_error_queues_its_close_frame_and_is_the_outcome() {
    let mut server = Connection::new(Role::Server, Config::default());
    // An unmasked frame from a client: 1002.
    server.receive_data(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(server.next_message(), Err(ProtocolError::UnmaskedFrame));
    assert!(server.is_read_closed());
    assert_eq!(
        server.failure(),
        Some(Failure::Protocol(ProtocolError::UnmaskedFrame))
    );
    assert_eq!(server.abnormal_close_code(), Some(CloseCode::PROTOCOL));
    assert_eq!(&server.take_output()[..], [0x88, 0x02, 0x03, 0xea]);
    assert_eq!(server.send(&Message::text("late")), Err(SendError::Closed));
}

#[test]
fn close_handshake_times_out_and_drops_what_is_owed() {
    let config = Config {
        close_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let (mut client, _server) = pair(config);
    let t0 = Instant::now();
    assert!(
        !client.needs_clock(),
        "an open connection keeps no deadline"
    );
    client.send_close(None).unwrap();
    assert!(client.needs_clock());
    assert!(!client.handle_timeout(t0));
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert!(!client.handle_timeout(t0 + Duration::from_secs(9)));
    assert!(!client.is_read_closed());

    assert!(client.handle_timeout(t0 + Duration::from_secs(10)));
    assert!(client.is_timed_out() && client.is_read_closed());
    assert_eq!(client.failure(), Some(Failure::CloseTimeout));
    assert!(!client.has_output(), "nothing more is written");
    assert_eq!(client.poll_timeout(), None);
    assert!(!client.needs_clock());
}

#[test]
fn heartbeat_pings_measures_the_round_trip_and_times_out() {
    let config = Config {
        heartbeat: Some(Heartbeat::new(
            Duration::from_secs(10),
            Duration::from_secs(5),
        )),
        ..Config::default()
    };
    let (mut client, mut server) = pair(config);
    let t0 = Instant::now();
    assert!(client.needs_clock());
    client.handle_timeout(t0);
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert!(!client.has_output());

    // The first ping, answered by the server's automatic pong a second later.
    assert!(client.handle_timeout(t0 + Duration::from_secs(10)));
    assert!(matches!(
        &pump(&mut client, &mut server)[..],
        [Message::Ping(_)]
    ));
    client.handle_timeout(t0 + Duration::from_secs(11));
    assert!(matches!(
        &pump(&mut server, &mut client)[..],
        [Message::Pong(_)]
    ));
    assert_eq!(client.rtt(), Some(Duration::from_secs(1)));
    // The next ping is due an interval after the first went out.
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(20)));

    // The second goes unanswered: the connection ends 5 s later, without a close frame.
    assert!(client.handle_timeout(t0 + Duration::from_secs(20)));
    assert!(matches!(
        &pump(&mut client, &mut server)[..],
        [Message::Ping(_)]
    ));
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(25)));
    assert!(client.handle_timeout(t0 + Duration::from_secs(25)));
    assert_eq!(client.failure(), Some(Failure::HeartbeatTimeout));
    assert!(client.is_timed_out() && !client.has_output());
}

#[test]
fn the_close_timeout_takes_over_from_the_heartbeat() {
    let config = Config {
        heartbeat: Some(Heartbeat::new(
            Duration::from_secs(10),
            Duration::from_secs(5),
        )),
        close_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let (mut client, _server) = pair(config);
    let t0 = Instant::now();
    client.handle_timeout(t0);
    client.send_close(None).unwrap();
    client.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(4)));
    assert!(client.handle_timeout(t0 + Duration::from_secs(10)));
    assert_eq!(client.failure(), Some(Failure::CloseTimeout));
}

#[test]
fn a_clean_handshake_stays_clean_when_the_server_never_closes_the_stream() {
    let config = Config {
        close_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let (mut client, mut server) = pair(config);
    let t0 = Instant::now();
    client.send_close(None).unwrap();
    client.handle_timeout(t0);
    pump(&mut client, &mut server);
    pump(&mut server, &mut client);
    assert!(client.awaits_transport_close());
    assert!(client.handle_timeout(t0 + Duration::from_secs(2)));
    assert!(!client.awaits_transport_close());
    assert_eq!(client.failure(), None, "the handshake itself completed");
}

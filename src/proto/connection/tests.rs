//! Byte-vector tests of the protocol core. Each input is fed whole, byte by byte and in random
//! splits, and must give the same messages and output.

use super::output::MAX_SPARE_STAGING;
use super::*;
use crate::proto::close::CloseFrame;
use crate::proto::error::ProtocolError;
use crate::proto::message::{Message, Utf8Bytes};
use crate::proto::spares::{Spares, STAGING};
use proptest::prelude::*;
use std::io::IoSlice;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn client() -> Connection {
    Connection::new(Role::Client, Config::default()).with_mask_generator(Box::new(|| KEY))
}

/// A masked frame as a client sends it.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    crate::proto::mask::apply_mask_naive(&mut out[start..], KEY, 0);
    out
}

type Outcome = (Vec<Message>, Option<ProtocolError>, Vec<u8>);

/// Feeds `input` to a fresh connection in pieces cut at `cuts`, collecting every message, the
/// first error and all output.
fn run(mut conn: Connection, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut messages = Vec::new();
    let mut error = None;
    let mut start = 0;
    'outer: for cut in cuts {
        conn.receive_data(&input[start..cut]);
        start = cut;
        loop {
            match conn.next_message() {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }
    (messages, error, conn.take_output().to_vec())
}

fn all_ways(make: fn() -> Connection, input: &[u8]) -> Outcome {
    let whole = run(make(), input, &[]);
    let bytewise: Vec<usize> = (0..input.len()).collect();
    assert_eq!(run(make(), input, &bytewise), whole, "byte by byte");
    whole
}

#[test]
fn rfc_single_frame_unmasked_text_to_client() {
    let (messages, error, _) = all_ways(client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(messages, [Message::text("Hello")]);
    assert_eq!(error, None);
}

#[test]
fn rfc_single_frame_masked_text_to_server() {
    let input = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let (messages, error, _) = all_ways(server, &input);
    assert_eq!(messages, [Message::text("Hello")]);
    assert_eq!(error, None);
}

#[test]
fn rfc_fragmented_text() {
    let input = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    let (messages, _, _) = all_ways(client, &input);
    assert_eq!(messages, [Message::text("Hello")]);
}

#[test]
fn rfc_ping_gets_pong_with_same_payload() {
    let input = masked(0x89, b"Hello");
    let (messages, error, output) = all_ways(server, &input);
    assert_eq!(messages, [Message::Ping(Bytes::from_static(b"Hello"))]);
    assert_eq!(error, None);
    assert_eq!(output, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn owed_pongs_are_bounded_by_the_write_buffer() {
    let mut input = Vec::new();
    for i in 0..1000u32 {
        input.extend(masked(0x89, &i.to_be_bytes()));
    }
    // With room in the write buffer, every ping is answered.
    let (messages, _, output) = run(server(), &input, &[]);
    assert_eq!(messages.len(), 1000);
    assert_eq!(output.len(), 1000 * 6);
    // A peer that doesn't read is owed only the latest pong beyond the buffer's limit.
    let config = Config {
        max_write_buffer: 60,
        ..Config::default()
    };
    let (messages, _, output) = run(Connection::new(Role::Server, config), &input, &[]);
    assert_eq!(messages.len(), 1000);
    assert_eq!(output.len(), 11 * 6);
    assert_eq!(output[60..], [0x8a, 0x04, 0, 0, 0x03, 0xe7]);
}

#[test]
fn rfc_binary_lengths() {
    for len in [0usize, 125, 126, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let input = masked(0x82, &payload);
        let (messages, error, _) = run(server(), &input, &[3, 7, len / 2]);
        assert_eq!(error, None, "len {len}");
        assert_eq!(messages, [Message::Binary(payload.into())], "len {len}");
    }
}

#[test]
fn fragmented_with_interleaved_ping() {
    let mut input = masked(0x01, b"Hel");
    input.extend(masked(0x89, b"p"));
    input.extend(masked(0x00, b"l"));
    input.extend(masked(0x80, b"o"));
    let (messages, error, output) = all_ways(server, &input);
    assert_eq!(error, None);
    assert_eq!(
        messages,
        [
            Message::Ping(Bytes::from_static(b"p")),
            Message::text("Hello")
        ]
    );
    assert_eq!(output, [0x8a, 0x01, b'p']);
}

#[test]
fn close_is_echoed_with_code() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let input = masked(0x88, &payload);
    let mut conn = server();
    conn.receive_data(&input);
    let message = conn.next_message().unwrap().unwrap();
    assert_eq!(
        message,
        Message::Close(Some(CloseFrame::new(1000u16, "bye")))
    );
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.take_output().to_vec(), b"\x88\x05\x03\xe8bye");
    // Nothing is parsed after the close frame.
    conn.receive_data(&masked(0x81, b"late"));
    assert_eq!(conn.next_message(), Ok(None));
    assert_eq!(
        conn.send(&Message::text("x")),
        Err(crate::proto::error::SendError::Closed)
    );
}

#[test]
fn empty_close_is_echoed_empty() {
    let (messages, _, output) = all_ways(server, &masked(0x88, b""));
    assert_eq!(messages, [Message::Close(None)]);
    assert_eq!(output, [0x88, 0x00]);
}

#[test]
fn local_close_then_peer_close() {
    let mut conn = server();
    conn.send_close(Some(&CloseFrame::new(4000u16, "done")))
        .unwrap();
    assert_eq!(conn.state(), State::Closing);
    assert_eq!(conn.take_output().to_vec(), b"\x88\x06\x0f\xa0done");
    conn.receive_data(&masked(0x81, b"still"));
    assert_eq!(conn.next_message(), Ok(Some(Message::text("still"))));
    conn.receive_data(&masked(0x88, &4000u16.to_be_bytes()));
    assert!(matches!(conn.next_message(), Ok(Some(Message::Close(_)))));
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.take_output().is_empty(), "no second close frame");
}

fn error_of(make: fn() -> Connection, input: &[u8]) -> (ProtocolError, Vec<u8>) {
    let (_, error, output) = all_ways(make, input);
    (error.expect("an error"), output)
}

fn close_frame(code: u16) -> Vec<u8> {
    let mut v = vec![0x88, 0x02];
    v.extend_from_slice(&code.to_be_bytes());
    v
}

#[test]
fn protocol_errors_and_their_close_codes() {
    let cases: Vec<(Vec<u8>, ProtocolError, u16)> = vec![
        (masked(0x83, b""), ProtocolError::InvalidOpcode(3), 1002),
        (masked(0x8b, b""), ProtocolError::InvalidOpcode(11), 1002),
        (masked(0xc1, b"x"), ProtocolError::ReservedBitsSet, 1002),
        (
            masked(0x09, b""),
            ProtocolError::FragmentedControlFrame,
            1002,
        ),
        (
            masked(0x89, &[0; 126]),
            ProtocolError::ControlFrameTooLong,
            1002,
        ),
        (vec![0x81, 0x01, b'x'], ProtocolError::UnmaskedFrame, 1002),
        (
            masked(0x80, b"x"),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (masked(0x81, &[0xff]), ProtocolError::InvalidUtf8, 1007),
        (
            masked(0x88, &[0x03]),
            ProtocolError::InvalidClosePayload,
            1002,
        ),
        (
            masked(0x88, &999u16.to_be_bytes()),
            ProtocolError::InvalidCloseCode(999),
            1002,
        ),
        (
            masked(0x88, &[0x03, 0xe8, 0xff]),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
            ProtocolError::InvalidPayloadLength,
            1002,
        ),
    ];
    for (input, expected, code) in cases {
        let (error, output) = error_of(server, &input);
        assert_eq!(error, expected);
        assert_eq!(error.close_code().as_u16(), code);
        assert_eq!(output, close_frame(code), "{expected:?}");
    }
    let (error, output) = error_of(client, &masked(0x81, b"x"));
    assert_eq!(error, ProtocolError::MaskedFrame);
    // The client masks its close frame.
    assert_eq!(output[..2], [0x88, 0x82]);
}

#[test]
fn huge_declared_length_fails_before_buffering() {
    // A 2^40-byte frame: refused from its header alone.
    let mut input = vec![0x82, 0xff];
    input.extend_from_slice(&(1u64 << 40).to_be_bytes());
    input.extend_from_slice(&KEY);
    let mut conn = server();
    conn.receive_data(&input);
    assert_eq!(conn.next_message(), Err(ProtocolError::FrameTooBig));
    assert!(conn.read_buffer().capacity() < 1 << 20);
    assert_eq!(conn.take_output().to_vec(), close_frame(1009));
}

#[test]
fn message_and_fragment_limits() {
    let config = Config {
        max_message_size: 10,
        max_fragments: 3,
        ..Config::default()
    };
    let make = |config: &Config| Connection::new(Role::Server, config.clone());
    let mut conn = make(&config);
    conn.receive_data(&[masked(0x02, b"123456"), masked(0x80, b"7890a")].concat());
    assert_eq!(conn.next_message(), Err(ProtocolError::MessageTooBig));
    let mut conn = make(&config);
    conn.receive_data(
        &[
            masked(0x02, b""),
            masked(0x00, b""),
            masked(0x00, b""),
            masked(0x80, b""),
        ]
        .concat(),
    );
    assert_eq!(conn.next_message(), Err(ProtocolError::TooManyFragments));
    assert_eq!(conn.take_output().to_vec(), close_frame(1008));
    let mut conn = make(&config);
    conn.receive_data(&masked(0x82, b"0123456789"));
    assert_eq!(
        conn.next_message(),
        Ok(Some(Message::binary(&b"0123456789"[..])))
    );
}

#[test]
fn invalid_utf8_fails_fast_inside_a_frame() {
    // The frame declares 20 bytes; the invalid byte arrives in the first 8.
    let mut payload = b"hello".to_vec();
    payload.push(0xff);
    payload.extend_from_slice(&[b'a'; 14]);
    let input = masked(0x81, &payload);
    let mut conn = server();
    conn.receive_data(&input[..2 + 4 + 8]);
    assert_eq!(conn.next_message(), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn invalid_utf8_fails_fast_per_fragment() {
    let mut conn = server();
    conn.receive_data(&masked(0x01, "κόσμε".as_bytes()));
    assert_eq!(conn.next_message(), Ok(None));
    conn.receive_data(&masked(0x00, &[0xf4, 0x90, 0x80, 0x80]));
    assert_eq!(conn.next_message(), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn with_validation_off_text_is_handed_out_unchecked_as_bytes() {
    let config = Config {
        validate_utf8: false,
        ..Config::default()
    };
    let unchecked = |data: &'static [u8]| {
        Ok(Some(Message::Fragment(crate::proto::Fragment {
            kind: DataKind::Text,
            data: Bytes::from_static(data),
            fin: true,
        })))
    };
    let mut conn = Connection::new(Role::Server, config);
    // Whole, and in fragments: never checked, never a `Utf8Bytes`.
    conn.receive_data(&masked(0x81, &[0xff]));
    assert_eq!(conn.next_message(), unchecked(&[0xff]));
    conn.receive_data(&masked(0x01, &[b'a', 0xc0]));
    conn.receive_data(&masked(0x80, &[0xfe]));
    assert_eq!(conn.next_message(), unchecked(&[b'a', 0xc0, 0xfe]));
    // Valid text is no different.
    conn.receive_data(&masked(0x81, b"ok"));
    assert_eq!(conn.next_message(), unchecked(b"ok"));
}

#[test]
fn client_masks_into_its_own_buffer() {
    let mut conn = client();
    let payload = Bytes::from_static(b"Hello");
    conn.send_data(DataKind::Text, &payload, true).unwrap();
    assert_eq!(payload, &b"Hello"[..]);
    assert_eq!(
        conn.take_output().to_vec(),
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

#[test]
fn fragmented_send_and_control_rules() {
    let mut conn = server();
    conn.send_data(DataKind::Text, &Bytes::from_static(b"Hel"), false)
        .unwrap();
    assert!(conn
        .send_data(DataKind::Binary, &Bytes::new(), true)
        .is_err());
    conn.send(&Message::Ping(Bytes::from_static(b"p"))).unwrap();
    conn.send_data(DataKind::Text, &Bytes::from_static(b"lo"), true)
        .unwrap();
    assert_eq!(
        conn.take_output().to_vec(),
        [0x01, 0x03, b'H', b'e', b'l', 0x89, 0x01, b'p', 0x80, 0x02, b'l', b'o']
    );
    assert!(conn
        .send(&Message::Ping(Bytes::from(vec![0; 126])))
        .is_err());
    assert!(conn
        .send_close(Some(&CloseFrame::new(1006u16, "")))
        .is_err());
}

#[test]
fn large_payloads_are_queued_without_copy() {
    let mut conn = server();
    let payload = Bytes::from(vec![7u8; 100_000]);
    conn.send(&Message::Binary(payload.clone())).unwrap();
    conn.send(&Message::text("tail")).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = conn.output_slices(&mut slices);
    assert_eq!(n, 3);
    assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    let total: usize = slices[..n].iter().map(|s| s.len()).sum();
    assert_eq!(total, conn.buffered_amount());
    conn.consume_output(total - 3);
    assert_eq!(conn.buffered_amount(), 3);
}

#[test]
fn small_frames_reuse_the_start_of_the_staging_buffer_once_written() {
    // Once written whole, the staging buffer starts over where it began: a frame staged next
    // goes to the same address, not past what was written (which would leave ever less room
    // and make the buffer move its start back later).
    let mut conn = server();
    for round in 0..5u8 {
        conn.send(&Message::Binary(Bytes::from(vec![round; 1000])))
            .unwrap();
    }
    let mut slices = [IoSlice::new(&[]); 4];
    assert_eq!(conn.output_slices(&mut slices), 1);
    let (start, len) = (slices[0].as_ptr(), slices[0].len());
    assert_eq!(len, 5 * 1004);
    conn.consume_output(len);
    for round in 0..3u8 {
        conn.send(&Message::Binary(Bytes::from(vec![round; 1000])))
            .unwrap();
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(conn.output_slices(&mut slices), 1);
        assert_eq!(slices[0].as_ptr(), start, "round {round}");
        let len = slices[0].len();
        conn.consume_output(len);
        assert!(!conn.has_output());
    }
    // A partial write still moves the start past what was written.
    conn.send(&Message::Binary(Bytes::from(vec![9u8; 1000])))
        .unwrap();
    conn.consume_output(4);
    let mut slices = [IoSlice::new(&[]); 4];
    assert_eq!(conn.output_slices(&mut slices), 1);
    assert_eq!(&slices[0][..], &[9u8; 1000][..]);
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(
        messages in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 1usize..4), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        // Build a stream of messages, each in `parts` fragments, text ones valid UTF-8.
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (text, data, parts) in messages {
            let data: Vec<u8> = if text {
                String::from_utf8_lossy(&data).into_owned().into_bytes()
            } else {
                data
            };
            let chunk = data.len().div_ceil(parts).max(1);
            let pieces: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(chunk).collect() };
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = if i > 0 { 0 } else if text { 1 } else { 2 };
                let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
                input.extend(masked(fin | opcode, piece));
            }
            expected.push(if text {
                Message::Text(Utf8Bytes::try_from(Bytes::from(data)).unwrap())
            } else {
                Message::Binary(Bytes::from(data))
            });
        }
        let (whole, error, _) = run(server(), &input, &[]);
        prop_assert_eq!(error, None);
        prop_assert_eq!(&whole, &expected);
        let (split, error, _) = run(server(), &input, &cuts);
        prop_assert_eq!(error, None);
        prop_assert_eq!(split, expected);
    }

    #[test]
    fn client_server_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 1..5)) {
        let mut sender = client();
        for p in &payloads {
            sender.send(&Message::Binary(Bytes::from(p.clone()))).unwrap();
        }
        let wire = sender.take_output();
        let (received, error, _) = run(server(), &wire, &[]);
        prop_assert_eq!(error, None);
        let expected: Vec<Message> = payloads.into_iter().map(|p| Message::Binary(Bytes::from(p))).collect();
        prop_assert_eq!(received, expected);
    }
}

/// Without context takeover on our side, whole messages are compressed by the thread's shared
/// compressor: the connection holds none of its own, and each message inflates alone, for both
/// roles and at the smallest window too. A message sent in compressed fragments still gets one
/// of its own.
#[test]
fn no_context_takeover_compresses_whole_messages_with_the_shared_compressor() {
    use crate::deflate::codec::{Decompressor, TAIL};
    use crate::deflate::{DeflateConfig, Negotiated};
    let text = "a compressible message, ".repeat(100);
    for (make, bits) in [
        (server as fn() -> Connection, 15),
        (server, 8),
        (client, 15),
    ] {
        let params = Negotiated {
            local_no_context_takeover: true,
            remote_no_context_takeover: true,
            local_max_window_bits: bits,
            remote_max_window_bits: bits,
        };
        let mut conn = make().with_deflate(params, DeflateConfig::default());
        for _ in 0..2 {
            conn.send(&Message::text(text.clone())).unwrap();
            let mut out = conn.take_output();
            assert_eq!(out[0], 0x80 | 0x40 | 0x01, "FIN, RSV1, text");
            let masked = out[1] & 0x80 != 0;
            let mut start = if out[1] & 0x7f == 126 { 4 } else { 2 };
            if masked {
                let key = [out[start], out[start + 1], out[start + 2], out[start + 3]];
                start += 4;
                crate::proto::mask::apply_mask(&mut out[start..], key, 0);
            }
            // Each one inflates with a fresh inflater of the negotiated window: no context
            // before it, no distance beyond the window.
            let mut plain = bytes::BytesMut::new();
            let mut inflater = Decompressor::new(bits);
            inflater
                .inflate(&out[start..], &mut plain, 1 << 20)
                .unwrap();
            inflater.inflate(&TAIL, &mut plain, 1 << 20).unwrap();
            assert_eq!(&plain[..], text.as_bytes(), "window {bits}");
            assert!(conn.deflate.as_ref().unwrap().compressor.is_none());
        }
        let part = bytes::Bytes::from(text.clone());
        conn.send_data_with_compression(DataKind::Text, &part, false, true)
            .unwrap();
        assert!(conn.deflate.as_ref().unwrap().compressor.is_some());
        conn.send_data_with_compression(DataKind::Text, &part, true, true)
            .unwrap();
    }
}

#[test]
fn a_batch_goes_out_as_its_messages_would_one_by_one() {
    use crate::deflate::{DeflateConfig, Negotiated};
    use crate::proto::prepared::{PreparedBatch, PreparedMessage};
    let long = "long enough to be compressed; ".repeat(10);
    let small = [
        PreparedMessage::text("a"),
        PreparedMessage::binary(vec![7; 40]),
    ];
    let mixed = [
        PreparedMessage::text("b"),
        PreparedMessage::text(long.as_str()),
        PreparedMessage::text("c"),
    ];
    let params = |takeover_off: bool| Negotiated {
        local_no_context_takeover: takeover_off,
        remote_no_context_takeover: takeover_off,
        local_max_window_bits: 15,
        remote_max_window_bits: 15,
    };
    let config = DeflateConfig {
        threshold: 64,
        ..DeflateConfig::default()
    };
    // Without permessage-deflate; with it and no context takeover (the shared compressor);
    // with context takeover (a compressor of its own).
    for (name, takeover_off) in [
        ("plain", None),
        ("shared compressor", Some(true)),
        ("own compressor", Some(false)),
    ] {
        let make = || match takeover_off {
            None => server(),
            Some(off) => server().with_deflate(params(off), config.clone()),
        };
        for messages in [&small[..], &mixed[..]] {
            let batch = PreparedBatch::new(messages).unwrap();
            let one_by_one = |conn: &mut Connection| {
                for message in messages {
                    conn.send_prepared(message).unwrap();
                }
            };
            let mut expected = make();
            one_by_one(&mut expected);
            let mut conn = make();
            conn.send_prepared_batch(&batch).unwrap();
            let sent = conn.take_output();
            assert_eq!(sent, expected.take_output(), "{name}");
            // The next message after the batch is compressed with the same history too.
            one_by_one(&mut expected);
            one_by_one(&mut conn);
            assert_eq!(conn.take_output(), expected.take_output(), "{name}, after");
            if messages.len() == 3 && takeover_off.is_some() {
                assert_eq!(sent[3] & 0x40, 0x40, "{name}: the long one compressed");
            }
        }
    }
}

/// Writes all of `conn`'s output in pieces of `piece` bytes (partial writes).
fn write_in_pieces(conn: &mut Connection, piece: usize) -> usize {
    let mut written = 0;
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.output_slices(&mut slices);
        let available: usize = slices[..n].iter().map(|s| s.len()).sum();
        let step = available.min(piece);
        conn.consume_output(step);
        written += step;
    }
    written
}

/// Written in pieces (each advancing the staging buffer's start), a staging buffer goes to the
/// thread's spares with its whole allocation once all is written, and one over 64 KiB is freed
/// instead: the bound is checked on the allocation, not on what the advances left of it.
#[test]
fn a_staging_buffer_written_in_pieces_goes_to_the_spares_whole_or_is_freed() {
    for (messages, kept) in [(16, true), (100, false)] {
        let mut conn = server();
        for _ in 0..messages {
            conn.send(&Message::binary(vec![7u8; 1024])).unwrap();
        }
        let staged = conn.buffered_amount();
        assert_eq!(write_in_pieces(&mut conn, 10_000), staged);
        assert_eq!(
            conn.output_capacity(),
            0,
            "nothing kept once all is written"
        );
        let spares = STAGING.with(Spares::buffers);
        if kept {
            assert_eq!(spares.len(), 1, "{spares:?}");
            assert!(spares[0].1 >= staged, "the whole allocation: {spares:?}");
            // The next message is staged in it.
            conn.send(&Message::binary(vec![7u8; 1024])).unwrap();
            assert!(STAGING.with(Spares::buffers).is_empty());
            assert!(conn.output_capacity() >= staged);
            write_in_pieces(&mut conn, 10_000);
        } else {
            assert!(
                spares
                    .iter()
                    .all(|&(_, capacity)| capacity <= MAX_SPARE_STAGING),
                "{spares:?}"
            );
            assert!(spares.len() <= 1, "only the earlier buffer: {spares:?}");
        }
    }
}

/// Large payloads are queued as shared chunks after what is staged (sealed first): written in
/// pieces, they come out in order, and the frame list goes to the spares too.
#[test]
fn shared_chunks_and_staged_frames_come_out_in_order_and_leave_nothing_behind() {
    let mut conn = server();
    let large = vec![9u8; 20_000];
    conn.send(&Message::binary(vec![1u8; 10])).unwrap();
    conn.send(&Message::binary(large.clone())).unwrap();
    conn.send(&Message::binary(vec![2u8; 10])).unwrap();
    let expected = {
        let mut copy = server();
        copy.send(&Message::binary(vec![1u8; 10])).unwrap();
        copy.send(&Message::binary(large.clone())).unwrap();
        copy.send(&Message::binary(vec![2u8; 10])).unwrap();
        copy.take_output()
    };
    let mut out = Vec::new();
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.output_slices(&mut slices);
        // Partial writes of 3 000 bytes at most, across slice boundaries.
        let mut step = 0;
        for slice in &slices[..n] {
            let take = slice.len().min(3_000 - step);
            out.extend_from_slice(&slice[..take]);
            step += take;
            if step == 3_000 {
                break;
            }
        }
        conn.consume_output(step);
    }
    assert_eq!(out, &expected[..]);
    assert_eq!(conn.output_capacity(), 0);
}

//! Compression speed and size of the library's codec (zlib-rs) against zlib-ng, on the corpus
//! of `benches/deflate.rs` (1000 JSON-like 16 KiB messages), raw deflate with a 15-bit window,
//! context takeover, a sync flush per message, at levels 1, 6 and 9: best of 7 rounds each.

use std::time::Instant;

use bytes::BytesMut;
use enim_labore_occaecati::deflate::DeflateConfig;
use enim_labore_occaecati::internals::Compressor;
use flate2::{Compress, Compression, FlushCompress};

const COUNT: usize = 1000;
const SIZE: usize = 16 << 10;
const ROUNDS: usize = 7;

/// The records `benches/deflate.rs` compresses (and `benches/deflate-node.js` makes).
fn corpus_message(i: usize) -> Vec<u8> {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < SIZE {
        let record = format!(
            r#"{{"id":{},"user":"user-{}","text":"message number {} of batch {}","ok":{}}},"#,
            i * 1000 + n,
            (i + n) % 97,
            n,
            i,
            n % 3 == 0
        );
        text.push_str(&record);
        n += 1;
    }
    text.truncate(SIZE);
    text.into_bytes()
}

/// Seconds and compressed bytes for the whole corpus through the library's compressor.
fn zlib_rs(messages: &[Vec<u8>], level: u8) -> (f64, usize) {
    let mut config = DeflateConfig::default();
    config.level = level;
    let mut compressor = Compressor::new(15, &config).keep_history();
    let start = Instant::now();
    let mut bytes = 0;
    for m in messages {
        let mut out = BytesMut::new();
        compressor.compress(m, &mut out).unwrap();
        bytes += out.len();
    }
    (start.elapsed().as_secs_f64(), bytes)
}

/// The same through zlib-ng; the sync flush's empty block tail (4 bytes) is left out, as the
/// library's compressor leaves it out (RFC 7692 §7.2.1).
fn zlib_ng(messages: &[Vec<u8>], level: u8) -> (f64, usize) {
    let mut z = Compress::new_with_window_bits(Compression::new(u32::from(level)), false, 15);
    let start = Instant::now();
    let mut bytes = 0;
    for m in messages {
        let mut out: Vec<u8> = Vec::with_capacity(SIZE + 64);
        let before = z.total_in();
        // Done once all input is in and the flush left room in the output.
        loop {
            let consumed = (z.total_in() - before) as usize;
            z.compress_vec(&m[consumed..], &mut out, FlushCompress::Sync)
                .unwrap();
            if (z.total_in() - before) as usize == m.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(4096);
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        bytes += out.len() - 4;
    }
    (start.elapsed().as_secs_f64(), bytes)
}

fn main() {
    let messages: Vec<Vec<u8>> = (0..COUNT).map(corpus_message).collect();
    let mb = (COUNT * SIZE) as f64 / 1e6;
    println!("| level | zlib-rs MB/s | zlib-rs bytes | zlib-ng MB/s | zlib-ng bytes | zlib-ng / zlib-rs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for level in [1u8, 6, 9] {
        let (mut rs, mut ng) = ((f64::MAX, 0), (f64::MAX, 0));
        for _ in 0..ROUNDS {
            let (t, n) = zlib_rs(&messages, level);
            rs = (rs.0.min(t), n);
            let (t, n) = zlib_ng(&messages, level);
            ng = (ng.0.min(t), n);
        }
        println!(
            "| {level} | {:.1} | {} | {:.1} | {} | {:.2} |",
            mb / rs.0,
            rs.1,
            mb / ng.0,
            ng.1,
            rs.0 / ng.0
        );
    }
}

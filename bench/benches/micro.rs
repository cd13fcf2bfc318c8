//! Micro-benchmarks of the protocol core: masking throughput (word-at-a-time vs byte-by-byte)
//! and frame decoding rate.
//!
//! ```text
//! cargo bench -p elo-bench
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use enim_labore_occaecati::internals::{apply_mask, apply_mask_naive};
use enim_labore_occaecati::proto::Connection;
use enim_labore_occaecati::{Config, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for (label, len) in [("1KiB", 1024usize), ("1MiB", 1 << 20)] {
        let mut buf: Vec<u8> = (0..len).map(|i| i as u8).collect();
        // Decimal bytes, so criterion reports GB/s.
        group.throughput(Throughput::BytesDecimal(len as u64));
        group.bench_function(format!("apply_mask/{label}"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
        group.bench_function(format!("apply_mask_naive/{label}"), |b| {
            b.iter(|| apply_mask_naive(black_box(&mut buf), black_box(KEY), 0))
        });
    }
    group.finish();
}

/// `count` masked 16-byte binary frames, as a client sends them.
fn masked_frames(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 22);
    for n in 0..count {
        let mut payload = [0u8; 16];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = (n + i) as u8;
        }
        apply_mask(&mut payload, KEY, 0);
        out.extend_from_slice(&[0x82, 0x80 | 16]);
        out.extend_from_slice(&KEY);
        out.extend_from_slice(&payload);
    }
    out
}

fn decoding(c: &mut Criterion) {
    const FRAMES: usize = 1000;
    let bytes = masked_frames(FRAMES);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("1000x16B_masked_binary", |b| {
        b.iter(|| {
            let mut conn = Connection::new(Role::Server, Config::default());
            conn.receive_data(black_box(&bytes));
            let mut n = 0;
            while let Some(message) = conn.next_message().expect("valid frames") {
                black_box(message);
                n += 1;
            }
            assert_eq!(n, FRAMES);
        })
    });
    group.finish();
}

criterion_group!(benches, masking, decoding);
criterion_main!(benches);

//! Reply latencies of the echo load: for each message, from the moment its frame was fully
//! written to the moment its reply was parsed, counted in log-linear buckets (8 per power of
//! two, so a percentile is within 1/8 of its value). The load generator runs every connection
//! on one thread, so the relaxed counters are never contended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: u64 = 8;
/// Up to about 2^40 µs (12 days): the last bucket takes anything longer.
const BUCKETS: usize = 8 * 40;

/// The counts, shared by every connection of a load.
pub struct Latencies {
    buckets: Vec<AtomicU64>,
}

fn bucket(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let exp = 63 - u64::from(micros.leading_zeros()); // >= 3
    let sub = (micros >> (exp - 3)) & (SUB - 1);
    (((exp - 2) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The largest value of a bucket, in microseconds.
fn bucket_top(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let exp = index / SUB + 2;
    let sub = index % SUB;
    ((SUB + sub + 1) << (exp - 3)) - 1
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

impl Latencies {
    /// No latency recorded yet.
    pub fn new() -> Latencies {
        Latencies {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one message's latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far, for `quantile` between two snapshots.
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// The `q` quantile (0..=1) of the counts recorded between two snapshots, in microseconds
/// (the top of its bucket); NaN when nothing was recorded.
pub fn quantile(before: &[u64], after: &[u64], q: f64) -> f64 {
    let counts: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bucket_top(i) as f64;
        }
    }
    f64::NAN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_an_eighth_and_quantiles_pick_the_rank() {
        for v in [0u64, 1, 7, 8, 9, 15, 16, 100, 1000, 12_345, 1 << 30] {
            let top = bucket_top(bucket(v));
            assert!(top >= v && top <= v + v / 8 + 1, "{v} -> {top}");
        }
        let l = Latencies::new();
        let before = l.snapshot();
        for us in 1..=100 {
            l.record(Duration::from_micros(us));
        }
        let after = l.snapshot();
        assert_eq!(quantile(&before, &after, 0.5), 51.0); // 50 is in the bucket 48..=51
        assert!(quantile(&before, &after, 0.99) >= 99.0);
        assert!(quantile(&after, &after, 0.5).is_nan());
    }
}

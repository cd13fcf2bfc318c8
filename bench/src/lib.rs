//! The parts of the benchmark that need no WebSocket peer, so that their tests build without
//! the peers (feature `peers`, on by default, builds the `elo-bench` binary and the micro
//! benchmarks): the load generator's frames and latencies, and the report's statistics.

pub mod frames;
pub mod latency;
pub mod stats;

#!/usr/bin/env bash
# Soak and fault run of the echo server (`elo serve`), on loopback, bounded in time:
#
#   scripts/soak.sh [SECONDS] [CONNECTIONS]      (defaults: 180 s, 10 000 connections)
#
# Holds CONNECTIONS connections at once: idle ones that answer pings, well-behaved echo
# clients checking every message in order, readers that stop reading, and a process holding
# connections that is stopped (SIGSTOP) a third of the way in, so its peers vanish without a
# FIN; beside them, in loops: resets mid-frame and mid-handshake, ping floods, floods of
# one-byte fragments, decompression bombs and handshakes trickled a byte at a time. The server
# runs with a heartbeat (what finds the vanished peers) and a 1 MiB message limit.
#
# Reports the server's RSS (before, with the idle connections, under load, peak, final), its
# file descriptors before and after, the outcome of every fault by kind, and the echoes
# checked; fails if a well-behaved client's message is lost or reordered, a descriptor leaks,
# a silent peer is kept, memory is not handed back after the clients leave, or the server
# panics or dies. ELO_SOAK_PARTS=echo,stalled,faults (or a fault's name) narrows a run;
# ELO_SOAK_DEFLATE=off makes the clients not offer permessage-deflate.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-180}"
connections="${2:-10000}"
# Both processes hold a descriptor per connection, and then some.
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < connections + 1024 )); then
  echo "soak: the file limit ($(ulimit -n)) is too low for $connections connections" >&2
  exit 1
fi
cargo build --release -p elo -p elo-bench
exec target/release/elo-bench soak --elo target/release/elo \
  --connections "$connections" --seconds "$seconds" --heartbeat 5

#!/usr/bin/env bash
# WebSockets over HTTP/2 against WebSockets on their own TLS connections, side by side:
# `elo serve --tls` and `elo bench` (the same load tool both ways), N WebSockets either on one
# HTTP/2 connection (`--http2`) or on N TLS connections, for 16 B and 1 KiB messages.
# Per run: messages/s (elo bench) and server memory per WebSocket (its RSS mid-run, every
# WebSocket open and busy, minus its RSS before any client, over N). Rounds interleave the two
# modes; the table shows each row's median.
#
# Usage: scripts/bench-http2.sh [CONNECTIONS] [SECONDS] [ROUNDS]   (default 1000 3 3)
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-1000}
seconds=${2:-3}
rounds=${3:-3}
cargo build --release -q -p elo
elo=target/release/elo
dir=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
  -days 1 -subj /CN=localhost -addext "subjectAltName=DNS:localhost" \
  -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
ulimit -n 65536 2>/dev/null || true
pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# One run: prints "msgs/s bytes-per-websocket".
run() {
  local mode=$1 payload=$2
  rm -f "$dir/out"
  "${pin_server[@]}" "$elo" serve --port 0 --tls "$dir/cert.pem" "$dir/key.pem" \
    --http2-max-streams "$connections" --quiet >"$dir/out" 2>/dev/null &
  local server=$!
  until grep -q listening "$dir/out" 2>/dev/null; do sleep 0.05; done
  local url; url=$(awk '{print $3; exit}' "$dir/out" | sed 's/127.0.0.1/localhost/')
  local before; before=$(rss_kib "$server")
  local flags=(--ca "$dir/cert.pem" -c "$connections" -p "$payload" -d "$seconds")
  [ "$mode" = h2 ] && flags+=(--http2)
  "${pin_client[@]}" "$elo" bench "${flags[@]}" "$url" >"$dir/bench" 2>&1 &
  local bench=$!
  # Mid-run: every WebSocket is open and busy (the connects come before the clock starts).
  sleep "$(echo "$seconds / 2 + 1" | bc -l)"
  local during; during=$(rss_kib "$server")
  wait "$bench"
  kill "$server"; wait "$server" 2>/dev/null || true
  local rate; rate=$(awk '/^messages:/ {print $4}' "$dir/bench")
  echo "$rate $(( (during - before) * 1024 / connections ))"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "$connections WebSockets, ${seconds} s per run, $rounds rounds interleaved; medians"
printf '| payload | transport | msgs/s | server bytes per busy WebSocket |\n'
printf '| --- | --- | ---: | ---: |\n'
for payload in 16 1024; do
  : >"$dir/h1" ; : >"$dir/h2"
  for _ in $(seq "$rounds"); do
    run h1 "$payload" >>"$dir/h1"
    run h2 "$payload" >>"$dir/h2"
  done
  for mode in h1 h2; do
    label="$connections TLS connections"
    [ "$mode" = h2 ] && label="1 HTTP/2 connection"
    rate=$(cut -d' ' -f1 "$dir/$mode" | median)
    mem=$(cut -d' ' -f2 "$dir/$mode" | median)
    printf '| %s B | %s | %s | %s |\n' "$payload" "$label" "$rate" "$mem"
  done
done

#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (two at a time, one per core) and fails on any
# crash, panic, timeout or out-of-memory report. Findings are kept in fuzz/artifacts/TARGET/;
# each found input becomes a regression test (fuzz/regressions/TARGET/, run by tests/fuzz_inputs.rs).
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# libFuzzer through cargo-fuzz, on this machine's stable toolchain: `-s none` (the sanitizers
# need a nightly compiler). Safe Rust needs no AddressSanitizer for memory safety; panics,
# arithmetic overflow (debug assertions are on), hangs (-timeout) and memory growth
# (-rss_limit_mb) are what the run catches.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cd fuzz
cargo fuzz build -s none -O --debug-assertions
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  listed=$(cargo fuzz list)
  mapfile -t targets <<<"$listed"
fi
if [ ${#targets[@]} -eq 0 ] || [ -z "${targets[0]}" ]; then
  echo "fuzz: no targets" >&2
  exit 1
fi
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
jobs="${FUZZ_JOBS:-$(nproc)}"
(( jobs >= 1 )) || jobs=1
logs=$(mktemp -d)

run_one() {
  local target="$1"
  mkdir -p "corpus/$target" "artifacts/$target"
  # The committed seeds are read, never written: new inputs go to corpus/.
  # In a subshell whose `times` then gives the fuzzer's CPU time (user, system).
  (
    rc=0
    "$bin/$target" "corpus/$target" "seeds/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
      >"$logs/$target.log" 2>&1 || rc=$?
    times >"$logs/$target.cpu"
    exit "$rc"
  )
}

# "0m1.5s 0m0.25s" (user, system) -> whole seconds of CPU.
cpu_seconds() {
  awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); sub("s", "", t[2]); s += t[1] * 60 + t[2] } printf "%d", s }' "$1"
}

failed=0
declare -A status
# In batches of $jobs, each waited for by its own pid: every exit status is kept.
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  batch=("${targets[@]:i:jobs}")
  declare -A pids=()
  for target in "${batch[@]}"; do
    run_one "$target" &
    pids[$target]=$!
  done
  for target in "${batch[@]}"; do
    if wait "${pids[$target]}"; then status[$target]=ok; else status[$target]=FAILED; fi
  done
done

total_cpu=0
printf '| target | seconds | CPU s | executions | exec/s | coverage | result |\n|---|---:|---:|---:|---:|---:|---|\n'
for target in "${targets[@]}"; do
  result="${status[$target]}"
  [ "$result" = ok ] || failed=1
  log="$logs/$target.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  cpu=$(cpu_seconds "$logs/$target.cpu" 2>/dev/null || echo 0)
  total_cpu=$((total_cpu + ${cpu:-0}))
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "${cpu:-?}" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "$result"
  if [ "$result" = FAILED ]; then
    echo "--- $target: the end of its log" >&2
    tail -40 "$log" >&2
  fi
done
echo "CPU time fuzzed: ${total_cpu} s"
rm -rf "$logs"
exit "$failed"

#!/usr/bin/env bash
# Stop the proxies started by start.sh (pid files in $STATE_DIR, default
# /tmp/elo-proxies) and remove proxies.env. Safe to run when nothing runs.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -d $STATE_DIR ]] || exit 0

# Remove the env file first so no test picks up addresses that are going away.
rm -f "$ENV_FILE"

stopped=()
for name in "${SERVERS[@]}" verify_http; do
    pidfile=$STATE_DIR/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    [[ $pid =~ ^[0-9]+$ ]] || continue
    alive "$pid" || continue
    # Only signal what we started: the pid may have been recycled since.
    comm=$(ps -o comm= -p "$pid" 2>/dev/null || true)
    want=${SERVER_COMM[$name]:-python}
    [[ $comm == "$want"* ]] || {
        echo "proxies: pid $pid ($comm) is not our $name ($want), left alone" >&2
        continue
    }
    # start.sh runs each server under setsid, so the pid is its own process
    # group leader: signalling the group also ends danted's child processes.
    target=$pid
    [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') == "$pid" ]] && target=-$pid
    kill -TERM -- "$target" 2>/dev/null || true
    stopped+=("$name:$pid:$target")
done

# Give them up to 5 s to exit, then SIGKILL what is left.
for entry in "${stopped[@]}"; do
    IFS=: read -r name pid target <<<"$entry"
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "proxies: $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
        kill -KILL -- "$target" 2>/dev/null || true
    fi
done

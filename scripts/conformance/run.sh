#!/usr/bin/env bash
# Run the Autobahn conformance suite against the project's examples and check
# the report.
#
# Usage: run.sh [options] RUNNER DIRECTION [CASES] [OUTDIR] [-- SUBJECT_ARGS...]
#
#   RUNNER     wstest | kosoku
#   DIRECTION  server  the runner's fuzzingclient drives our echo server
#              client  the runner's fuzzingserver serves our autobahn_client
#   CASES      comma-separated case patterns, `*` globs or exact ids
#              (default 1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.* = 301 cases;
#              `all` = every case, 1-13, 517 cases)
#   OUTDIR     where runner.log, subject.log, spec.json and reports/ go
#              (default $CARGO_TARGET_DIR or target/ + conformance/RUNNER-DIRECTION)
#   SUBJECT_ARGS  appended to the subject's command line (e.g. --deflate)
#
# Options:
#   --exclude PATTERNS      comma-separated cases to leave out (runner and checker)
#   --timeout SECS          limit for the whole run (default $CONFORMANCE_TIMEOUT,
#                           else 3000 if 12.* / 13.* are selected, else 900)
#   --startup-timeout SECS  wait this long for the listening port (default 60)
#   --agent NAME            agent name the client reports / wstest labels the
#                           server with (default enim-labore-occaecati)
#   --allow-kosoku-defects  tolerate kosoku 0.1.0's known defects (see check.py)
#   --expect-min N          also fail if the report holds fewer than N cases
#   --no-install            do not run install.sh first
#   --profile NAME          cargo profile the subjects were built with (default
#                           release; scripts/test.sh builds them with `ci`)
#
# Environment:
#   SERVER_CMD  how to start the server under test. Placeholders {addr}
#               (127.0.0.1:PORT), {port}, {url} (ws://127.0.0.1:PORT); without
#               any placeholder `127.0.0.1:PORT` is appended. The command also
#               sees $PORT, $ADDR, $URL, $AGENT. Run with bash -c in its own
#               process group. Default: target/PROFILE/examples/echo_server {addr}
#   CLIENT_CMD  how to start the client under test. Placeholders {url}, {agent},
#               {addr}, {port}; without any, `ws://127.0.0.1:PORT AGENT` is
#               appended. Default: target/PROFILE/examples/autobahn_client {url} {agent}
#   SUBJECT_ARGS  extra subject arguments (word-split), before those after --
#   RUNNER_ARGS   extra runner arguments (word-split), e.g. "-p 2" for kosoku
#   CONFORMANCE_HOME, CONFORMANCE_PY27, CONFORMANCE_PY3: see install.sh
#
# This script never builds anything: build the examples first, e.g.
#   cargo build --release --examples
# Exit status: 0 clean; 1 not clean, cases missing, time-out, subject crash;
# 2 usage or setup error.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; }

REPO=$(cd "$CONFORMANCE_DIR/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$REPO/$TARGET
DEFAULT_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*"

EXCLUDE=""
TIMEOUT=${CONFORMANCE_TIMEOUT:-}
STARTUP_TIMEOUT=60
AGENT=enim-labore-occaecati
INSTALL=1
PROFILE=release
CHECK_ARGS=()
positional=()
subject_args=()
while (($#)); do
    case $1 in
        --exclude) EXCLUDE=${2?}; shift 2 ;;
        --exclude=*) EXCLUDE=${1#*=}; shift ;;
        --timeout) TIMEOUT=${2?}; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --startup-timeout) STARTUP_TIMEOUT=${2?}; shift 2 ;;
        --startup-timeout=*) STARTUP_TIMEOUT=${1#*=}; shift ;;
        --agent) AGENT=${2?}; shift 2 ;;
        --agent=*) AGENT=${1#*=}; shift ;;
        --allow-kosoku-defects) CHECK_ARGS+=(--allow-kosoku-defects); shift ;;
        --expect-min) CHECK_ARGS+=(--expect-min "${2?}"); shift 2 ;;
        --expect-min=*) CHECK_ARGS+=(--expect-min "${1#*=}"); shift ;;
        --no-install) INSTALL=0; shift ;;
        --profile) PROFILE=${2?}; shift 2 ;;
        --profile=*) PROFILE=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; subject_args=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) positional+=("$1"); shift ;;
    esac
done
((${#positional[@]} >= 2 && ${#positional[@]} <= 4)) || { usage >&2; exit 2; }
RUNNER=${positional[0]}
DIRECTION=${positional[1]}
CASES=${positional[2]:-$DEFAULT_CASES}
[[ $CASES == all ]] && CASES='*'
# 1-10 take ~15-25 s, 1-13 with deflate ~16 min (wstest, loaded 2-core box).
if [[ -z $TIMEOUT ]]; then
    if [[ ,$CASES, =~ ,(\*|12|13)[.,*] ]]; then TIMEOUT=3000; else TIMEOUT=900; fi
fi
case $RUNNER in wstest | kosoku) ;; *) die "runner must be wstest or kosoku, not '$RUNNER'" ;; esac
case $DIRECTION in
    server | fuzzingclient) DIRECTION=server ;;
    client | fuzzingserver) DIRECTION=client ;;
    *) die "direction must be server or client, not '$DIRECTION'" ;;
esac
OUT=${positional[3]:-$TARGET/conformance/$RUNNER-$DIRECTION}
[[ $PROFILE =~ ^[A-Za-z0-9_-]+$ ]] || die "profile must be a cargo profile name, not '$PROFILE'"
PROFILE_DIR=$TARGET/$PROFILE
[[ $PROFILE == dev ]] && PROFILE_DIR=$TARGET/debug
[[ $TIMEOUT =~ ^[0-9]+$ && $STARTUP_TIMEOUT =~ ^[0-9]+$ ]] || die "timeouts must be whole seconds"
[[ $AGENT =~ ^[A-Za-z0-9._-]+$ ]] || die "agent name must match [A-Za-z0-9._-]+"

if [[ -n ${SUBJECT_ARGS:-} ]]; then
    read -ra env_subject_args <<<"$SUBJECT_ARGS"
    subject_args=("${env_subject_args[@]}" "${subject_args[@]}")
fi
runner_args=()
if [[ -n ${RUNNER_ARGS:-} ]]; then read -ra runner_args <<<"$RUNNER_ARGS"; fi

PY3=$(find_py3) || die "no Python >= 3.10 found (set CONFORMANCE_PY3)"
if ((INSTALL)); then
    "$CONFORMANCE_DIR/install.sh" "$RUNNER" || die "install.sh $RUNNER failed"
fi
RUNNER_BIN=$CONFORMANCE_HOME/bin/$RUNNER
[[ -x $RUNNER_BIN ]] || die "$RUNNER_BIN missing: run $CONFORMANCE_DIR/install.sh"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPORTS=$OUT/reports
rm -rf "$REPORTS"
rm -f "$OUT/runner.log" "$OUT/subject.log" "$OUT/spec.json"

IFS=, read -ra case_list <<<"$CASES"
exclude_list=()
if [[ -n $EXCLUDE ]]; then IFS=, read -ra exclude_list <<<"$EXCLUDE"; fi

# ---------------------------------------------------------------- processes
# Everything we start runs in its own process group (setsid), so that a
# `cargo run` wrapper and its child, or timeout and its child, go together.
GROUPS_STARTED=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid still=()
    for pid in "${GROUPS_STARTED[@]}"; do
        if kill -0 -- "-$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            still+=("$pid")
        fi
    done
    local i
    for ((i = 0; i < 50 && ${#still[@]}; i++)); do
        sleep 0.1
        local alive=()
        for pid in "${still[@]}"; do
            if kill -0 -- "-$pid" 2>/dev/null; then alive+=("$pid"); fi
        done
        still=("${alive[@]}")
    done
    for pid in "${still[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_group LOG CMD... : start CMD in the background in a new process group;
# sets LAST_PID (= its process group id).
start_group() {
    local log=$1
    shift
    setsid "$@" >>"$log" 2>&1 </dev/null &
    LAST_PID=$!
    GROUPS_STARTED+=("$LAST_PID")
}

# wait_pid PID : wait for it, set WAIT_RC (interruptible, so traps still run).
wait_pid() {
    WAIT_RC=0
    wait "$1" || WAIT_RC=$?
}

free_port() {
    "$PY3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# is_listening PORT : some socket is in LISTEN state on that port (reads /proc,
# so the peer never sees a probe connection).
is_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# wait_listening PORT PID WHAT
wait_listening() {
    local port=$1 pid=$2 what=$3 deadline=$((SECONDS + STARTUP_TIMEOUT))
    while ! is_listening "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait_pid "$pid"
            echo "conformance: $what exited (status $WAIT_RC) before listening on port $port" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "conformance: $what not listening on port $port after ${STARTUP_TIMEOUT}s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# expand_cmd TEMPLATE DEFAULT_ARGS : fill placeholders, append subject args.
expand_cmd() {
    local cmd=$1 default_args=$2
    if [[ $cmd != *'{addr}'* && $cmd != *'{port}'* && $cmd != *'{url}'* && $cmd != *'{agent}'* ]]; then
        cmd+=" $default_args"
    fi
    cmd=${cmd//\{addr\}/$ADDR}
    cmd=${cmd//\{port\}/$PORT}
    cmd=${cmd//\{url\}/$URL}
    cmd=${cmd//\{agent\}/$AGENT}
    if ((${#subject_args[@]})); then cmd+=$(printf ' %q' "${subject_args[@]}"); fi
    printf '%s' "$cmd"
}

show_log() {
    [[ -s $1 ]] || return 0
    echo "---- last lines of $1 ----" >&2
    tail -n "${2:-25}" "$1" >&2
}

write_spec() { # fuzzingclient|fuzzingserver
    "$PY3" - "$1" "$OUT/spec.json" "$REPORTS" "$URL" "$AGENT" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
mode, path, outdir, url, agent, cases, exclude = sys.argv[1:]
split = lambda s: [p.strip() for p in s.split(",") if p.strip()]
spec = {"outdir": outdir, "cases": split(cases), "exclude-cases": split(exclude),
        "exclude-agent-cases": {}}
if mode == "fuzzingclient":
    spec["servers"] = [{"agent": agent, "url": url}]
else:
    spec["url"] = url
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
}

runner_cmd() { # fuzzingclient|fuzzingserver -> RUNNER_CMD array
    local mode=$1 p
    if [[ $RUNNER == wstest ]]; then
        write_spec "$mode"
        RUNNER_CMD=("$RUNNER_BIN" -m "$mode" -s "$OUT/spec.json")
        [[ $mode == fuzzingserver ]] && RUNNER_CMD+=(-u 0) # no embedded web server
    else
        RUNNER_CMD=("$RUNNER_BIN" -m "$mode" -o "$REPORTS")
        for p in "${case_list[@]}"; do RUNNER_CMD+=(-i "$p"); done
        for p in "${exclude_list[@]}"; do RUNNER_CMD+=(-x "$p"); done
        if [[ $mode == fuzzingclient ]]; then RUNNER_CMD+=("$URL"); else RUNNER_CMD+=("$ADDR"); fi
    fi
    RUNNER_CMD+=("${runner_args[@]}")
}

# --------------------------------------------------------------------- run
PORT=$(free_port)
ADDR=127.0.0.1:$PORT
URL=ws://$ADDR
export PORT ADDR URL AGENT
FAIL=()
START=$SECONDS
echo "conformance: $RUNNER, $DIRECTION direction, cases $CASES${EXCLUDE:+ minus $EXCLUDE}, timeout ${TIMEOUT}s, port $PORT"
echo "conformance: logs and reports in $OUT"

if [[ $DIRECTION == server ]]; then
    if [[ -n ${SERVER_CMD:-} ]]; then
        template=$SERVER_CMD
    else
        bin=$PROFILE_DIR/examples/echo_server
        [[ -x $bin ]] || die "$bin not built (cargo build --profile $PROFILE --example echo_server), or set SERVER_CMD"
        template="$(printf '%q' "$bin") {addr}"
    fi
    subject=$(expand_cmd "$template" "$ADDR")
    echo "conformance: server: $subject"
    start_group "$OUT/subject.log" bash -c "exec $subject"
    SUBJECT_PID=$LAST_PID
    if ! wait_listening "$PORT" "$SUBJECT_PID" "server under test"; then
        show_log "$OUT/subject.log"
        exit 1
    fi

    runner_cmd fuzzingclient
    echo "conformance: runner: ${RUNNER_CMD[*]}"
    start_group "$OUT/runner.log" timeout -k 10 "$TIMEOUT" "${RUNNER_CMD[@]}"
    wait_pid "$LAST_PID"
    runner_rc=$WAIT_RC
    if ((runner_rc == 124 || runner_rc == 137)); then
        FAIL+=("runner timed out after ${TIMEOUT}s")
    elif [[ $RUNNER == wstest ]] && ((runner_rc != 0)); then
        FAIL+=("wstest exited with status $runner_rc")
    elif ((runner_rc > 1)); then
        FAIL+=("kosoku exited with status $runner_rc")
    fi
    if ! kill -0 "$SUBJECT_PID" 2>/dev/null; then
        wait_pid "$SUBJECT_PID"
        FAIL+=("server under test exited (status $WAIT_RC) during the run")
        show_log "$OUT/subject.log"
    fi
else
    runner_cmd fuzzingserver
    echo "conformance: runner: ${RUNNER_CMD[*]}"
    start_group "$OUT/runner.log" timeout -k 10 $((TIMEOUT + 60)) "${RUNNER_CMD[@]}"
    RUNNER_PID=$LAST_PID
    if ! wait_listening "$PORT" "$RUNNER_PID" "$RUNNER fuzzingserver"; then
        show_log "$OUT/runner.log"
        exit 1
    fi

    if [[ -n ${CLIENT_CMD:-} ]]; then
        template=$CLIENT_CMD
    else
        bin=$PROFILE_DIR/examples/autobahn_client
        [[ -x $bin ]] || die "$bin not built (cargo build --profile $PROFILE --example autobahn_client), or set CLIENT_CMD"
        template="$(printf '%q' "$bin") {url} {agent}"
    fi
    subject=$(expand_cmd "$template" "$URL $AGENT")
    echo "conformance: client: $subject"
    start_group "$OUT/subject.log" timeout -k 10 "$TIMEOUT" bash -c "exec $subject"
    wait_pid "$LAST_PID"
    client_rc=$WAIT_RC
    if ((client_rc == 124 || client_rc == 137)); then
        FAIL+=("client under test timed out after ${TIMEOUT}s")
    elif ((client_rc != 0)); then
        FAIL+=("client under test exited with status $client_rc")
    fi
    if ((client_rc != 0)); then show_log "$OUT/subject.log"; fi

    # kosoku writes its report and exits once the client has sent
    # /updateReports; wstest writes it while answering /updateReports and
    # keeps serving, so it is stopped once the report is there.
    if [[ $RUNNER == wstest ]]; then deadline=$((SECONDS + 10)); else deadline=$((SECONDS + 30)); fi
    while kill -0 "$RUNNER_PID" 2>/dev/null && ((SECONDS < deadline)); do
        if [[ $RUNNER == wstest && -f $REPORTS/index.json ]]; then
            sleep 1
            break
        fi
        sleep 0.2
    done
    if kill -0 "$RUNNER_PID" 2>/dev/null; then
        if [[ $RUNNER == kosoku ]]; then
            FAIL+=("kosoku fuzzingserver did not finish (did the client send /updateReports?)")
        fi
        kill -TERM -- "-$RUNNER_PID" 2>/dev/null || true
    fi
    wait_pid "$RUNNER_PID"
fi

echo "conformance: run took $((SECONDS - START))s"
check_args=(--label "$RUNNER $DIRECTION" --cases "$CASES")
[[ -n $EXCLUDE ]] && check_args+=(--exclude "$EXCLUDE")
# kosoku's fuzzingclient names the agent after the server's `Server` header.
if [[ $DIRECTION == client || $RUNNER == wstest ]]; then check_args+=(--agent "$AGENT"); fi
check_rc=0
"$PY3" "$CONFORMANCE_DIR/check.py" "$REPORTS" "${check_args[@]}" "${CHECK_ARGS[@]}" || check_rc=$?
if ((check_rc != 0)) && [[ ! -f $REPORTS/index.json ]]; then show_log "$OUT/runner.log"; fi
for f in "${FAIL[@]}"; do echo "conformance: FAIL: $f"; done
if ((check_rc == 2)); then exit 2; fi
if ((check_rc != 0 || ${#FAIL[@]})); then exit 1; fi
exit 0

# shellcheck shell=bash
# Steps of a test run, each under a time limit. A failed or timed-out step does not stop the
# steps after it; steps_summary prints every step's result and seconds, the total, and
# `N passed, M failed`, and fails if any step did.
#
#   source scripts/lib/steps.sh
#   steps_init LOG_DIR
#   step NAME LIMIT CMD...      run now; output live and in LOG_DIR/NN-slug.log
#   step_bg NAME LIMIT CMD...   queue to run in the background, started (in order) while fewer
#                               than $STEPS_JOBS background steps run (default 2), also while
#                               foreground steps run; output to its log only, a line when it
#                               starts and when it ends (with the log's tail if it failed)
#   steps_wait                  wait for every background step
#   steps_summary               the table; status 1 if any step failed
#
# CMD may be a shell function of the caller: every function is exported to the step's bash,
# which runs it with `set -euo pipefail`; the variables it reads must be exported.
# A step runs in a session of its own (setsid), under coreutils `timeout`: at LIMIT seconds
# its whole process group gets SIGTERM, 15 s later SIGKILL, and it counts as failed, named.
# An interrupt or exit of the caller ends every running step the same way, then runs
# $STEPS_ON_EXIT (a command line, e.g. stopping servers the steps started).

STEPS_JOBS=${STEPS_JOBS:-2}
STEPS_DIR=
STEPS_START=
STEP_NAMES=()
STEP_RESULTS=()
STEP_SECS=()
STEP_START=()
STEP_LIMIT=()
STEP_CMD=()
STEPS_QUEUE=() # indices of background steps not started yet
declare -A STEPS_BG=() # pid -> step index, for background steps still running
declare -A STEPS_FG=() # pid -> step index, for the foreground step running

steps_init() {
    STEPS_DIR=$1
    rm -rf "$STEPS_DIR"
    mkdir -p "$STEPS_DIR"
    STEPS_START=$EPOCHREALTIME
    trap '_steps_stop_all; exit 130' INT
    trap '_steps_stop_all; exit 143' TERM
    trap '_steps_stop_all; eval "${STEPS_ON_EXIT:-}"' EXIT
}

# The step's log: NN-slug.log, NN its index.
_steps_log() {
    local slug
    slug=$(printf '%s' "$2" | tr -cs 'A-Za-z0-9.' '-' | sed 's/^-//; s/-$//')
    printf '%s/%02d-%s.log' "$STEPS_DIR" "$1" "${slug:0:60}"
}

# _steps_start INDEX LIMIT CMD... : start a step in its own session; sets _STEPS_PID.
_steps_start() {
    local i=$1 limit=$2 log
    shift 2
    log=$(_steps_log "$i" "${STEP_NAMES[i]}")
    # shellcheck disable=SC2046 # the names of the caller's functions, one word each
    export -f $(compgen -A function)
    # The inner bash writes when the command ended, so a step reaped late is timed right, and
    # runs functions as strictly as the caller would.
    STEP_END_FILE=$STEPS_DIR/.end.$i setsid timeout -k 15 "$limit" bash -c 'trap "echo \$EPOCHREALTIME >\"\$STEP_END_FILE\"" EXIT; set -euo pipefail; "$@"' \
        step "$@" >"$log" 2>&1 </dev/null &
    _STEPS_PID=$!
    STEP_START[i]=$EPOCHREALTIME
}

# _steps_finish INDEX STATUS LIMIT : record the result of a step that ended.
_steps_finish() {
    local i=$1 rc=$2 limit=$3 end_file=$STEPS_DIR/.end.$1 end
    end=$EPOCHREALTIME
    if [[ -s $end_file ]]; then end=$(<"$end_file"); fi
    STEP_SECS[i]=$(awk -v a="${STEP_START[i]}" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    if ((rc == 0)); then
        STEP_RESULTS[i]=ok
    elif ((rc == 124 || rc == 137)) && [[ ${STEP_SECS[i]} -ge $((limit - 1)) ]]; then
        STEP_RESULTS[i]="TIMED OUT (${limit} s)"
    else
        STEP_RESULTS[i]="FAILED (exit $rc)"
    fi
}

_steps_new() { # NAME LIMIT -> index in _STEPS_I
    _STEPS_I=${#STEP_NAMES[@]}
    STEP_NAMES[_STEPS_I]=$1
    STEP_LIMIT[_STEPS_I]=$2
    STEP_RESULTS[_STEPS_I]="not run"
    STEP_SECS[_STEPS_I]=
}

step() {
    local name=$1 limit=$2 rc=0 tail_pid fg
    shift 2
    _steps_new "$name" "$limit"
    local i=$_STEPS_I log
    log=$(_steps_log "$i" "$name")
    printf '\n==> %s (limit %s s)\n' "$name" "$limit"
    _steps_start "$i" "$limit" "$@"
    fg=$_STEPS_PID
    STEPS_FG[$fg]=$i
    tail -n +1 -f --pid="$fg" "$log" 2>/dev/null &
    tail_pid=$!
    # Background steps that end meanwhile are reaped, and queued ones started, as they go.
    while :; do
        _steps_reap_one "$fg"
        [[ $_STEPS_REAPED == "$fg" ]] && { rc=$_STEPS_RC; break; }
        if [[ -z $_STEPS_REAPED ]]; then # not expected: wait for the step alone
            wait "$fg" || rc=$?
            break
        fi
    done
    unset "STEPS_FG[$fg]"
    wait "$tail_pid" 2>/dev/null || true
    _steps_finish "$i" "$rc" "$limit"
    if [[ ${STEP_RESULTS[i]} != ok ]]; then
        printf '==> %s: %s after %s s (log: %s)\n' "$name" "${STEP_RESULTS[i]}" "${STEP_SECS[i]}" "$log"
    fi
    return 0
}

step_bg() {
    local name=$1 limit=$2
    shift 2
    _steps_new "$name" "$limit"
    STEP_CMD[_STEPS_I]=$(printf '%q ' "$@")
    STEPS_QUEUE+=("$_STEPS_I")
    _steps_fill
}

# Starts queued background steps while fewer than $STEPS_JOBS run.
_steps_fill() {
    local i
    while ((${#STEPS_QUEUE[@]} && ${#STEPS_BG[@]} < STEPS_JOBS)); do
        i=${STEPS_QUEUE[0]}
        STEPS_QUEUE=("${STEPS_QUEUE[@]:1}")
        printf '==> started: %s (limit %s s)\n' "${STEP_NAMES[i]}" "${STEP_LIMIT[i]}"
        eval "_steps_start $i ${STEP_LIMIT[i]} ${STEP_CMD[i]}"
        STEPS_BG[$_STEPS_PID]=$i
    done
}

# _steps_reap_one [PID]: waits until a background step or PID ends; sets _STEPS_REAPED to
# its pid and _STEPS_RC to its status. A background step is recorded and reported, and the
# queue refilled.
_steps_reap_one() {
    local pid= rc=0 i log
    wait -n -p pid "$@" "${!STEPS_BG[@]}" || rc=$?
    _STEPS_REAPED=$pid
    _STEPS_RC=$rc
    [[ -n $pid && -n ${STEPS_BG[$pid]:-} ]] || return 0
    i=${STEPS_BG[$pid]}
    unset "STEPS_BG[$pid]"
    _steps_finish "$i" "$rc" "${STEP_LIMIT[i]}"
    printf '==> finished: %s: %s in %s s\n' "${STEP_NAMES[i]}" "${STEP_RESULTS[i]}" "${STEP_SECS[i]}"
    if [[ ${STEP_RESULTS[i]} != ok ]]; then
        log=$(_steps_log "$i" "${STEP_NAMES[i]}")
        echo "---- last lines of $log ----"
        tail -n 40 "$log"
        echo "----"
    fi
    _steps_fill
}

steps_wait() {
    while ((${#STEPS_BG[@]} || ${#STEPS_QUEUE[@]})); do
        _steps_fill
        _steps_reap_one
    done
}

# Ends every running step's session (interrupt, or the caller exiting early).
_steps_stop_all() {
    local pid
    for pid in "${!STEPS_BG[@]}" "${!STEPS_FG[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
}

steps_summary() {
    steps_wait
    local i passed=0 failed=0 width=4 total
    for i in "${!STEP_NAMES[@]}"; do
        ((${#STEP_NAMES[i]} > width)) && width=${#STEP_NAMES[i]}
    done
    total=$(awk -v a="$STEPS_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    printf '\n==> summary (logs in %s)\n' "$STEPS_DIR"
    printf '  %-*s  %-22s %7s\n' "$width" step result seconds
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-*s  %-22s %7s\n' "$width" "${STEP_NAMES[i]}" "${STEP_RESULTS[i]}" "${STEP_SECS[i]}"
        if [[ ${STEP_RESULTS[i]} == ok ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    printf '  %-*s  %-22s %7s\n' "$width" "total (wall clock)" "" "$total"
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

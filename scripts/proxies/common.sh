# shellcheck shell=bash disable=SC2034
# Shared helpers for start.sh, stop.sh and verify.sh (sourced, not executed).

# danted lives in /usr/sbin, which a non-login PATH (CI) may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PROXIES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${STATE_DIR:-/tmp/elo-proxies}
ENV_FILE=$STATE_DIR/proxies.env

# Credentials of the two authenticating proxies (the Rust tests hard-code them too).
PROXY_USER=elo
PROXY_PASS=s3cret

# The four servers: name -> process name (as `ps -o comm=` shows it).
SERVERS=(http http_auth socks5 socks5_auth)
declare -A SERVER_COMM=([http]=tinyproxy [http_auth]=tinyproxy [socks5]=danted [socks5_auth]=microsocks)

die() {
    echo "proxies: error: $*" >&2
    exit 1
}

# A python3 for port picking and the raw protocol probes; pyenv's shim may be
# missing from CI's PATH, Debian's own one is the fallback.
find_py() {
    local p
    for p in "${PYTHON:-}" python3 /usr/bin/python3; do
        [[ -n $p ]] && command -v "$p" >/dev/null 2>&1 && {
            echo "$p"
            return 0
        }
    done
    return 1
}

# alive PID: true while PID runs (a zombie waiting for its reaper counts as gone).
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $stat && $stat != Z* ]]
}

# port_open PORT: true when 127.0.0.1:PORT accepts a TCP connection.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port NAME PID PORT LOGFILE...: wait (PROXY_START_TIMEOUT s, default 10)
# until PORT accepts; fail loudly, with the end of the logs, if the server died
# or the port stays closed.
wait_port() {
    local name=$1 pid=$2 port=$3 secs=${PROXY_START_TIMEOUT:-10} i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        if ! alive "$pid"; then
            echo "proxies: $name (pid $pid) exited before listening on 127.0.0.1:$port" >&2
            tail -n 30 "$@" >&2 2>/dev/null || true
            return 1
        fi
        port_open "$port" && return 0
        sleep 0.1
    done
    echo "proxies: $name (pid $pid) not accepting on 127.0.0.1:$port after ${secs}s" >&2
    tail -n 30 "$@" >&2 2>/dev/null || true
    return 1
}

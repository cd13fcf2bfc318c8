#!/usr/bin/env bash
# Start four real proxies on 127.0.0.1 for the WebSocket client's proxy tests:
#   ELO_HTTP_PROXY         tinyproxy, HTTP CONNECT / absolute-form, no auth
#   ELO_HTTP_PROXY_AUTH    tinyproxy with `BasicAuth elo s3cret`
#   ELO_SOCKS5_PROXY       dante (danted), SOCKS5 method "none" (no auth)
#   ELO_SOCKS5_PROXY_AUTH  microsocks, SOCKS5 username/password elo / s3cret
# Missing servers are installed with apt-get. Each server is checked to accept
# TCP within 10 s, then $STATE_DIR/proxies.env is written and printed.
#
# Usage: scripts/proxies/start.sh            (then: set -a; . /tmp/elo-proxies/proxies.env; set +a)
#        scripts/proxies/stop.sh
#        scripts/proxies/verify.sh           (end-to-end checks with curl + raw probes)
#
# Env: STATE_DIR (default /tmp/elo-proxies): configs, logs, pid files, proxies.env.
#      ELO_HTTP_PROXY_PORT, ELO_HTTP_PROXY_AUTH_PORT, ELO_SOCKS5_PROXY_PORT,
#      ELO_SOCKS5_PROXY_AUTH_PORT: fixed ports instead of free ephemeral ones.
#
# Idempotent: proxies already running from this STATE_DIR are stopped first.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case ${1:-} in
    "") ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "start.sh takes no arguments (see --help)" ;;
esac

mkdir -p "$STATE_DIR"

# One start/stop at a time per STATE_DIR (parallel test jobs may call us).
exec 9>"$STATE_DIR/.lock"
command -v flock >/dev/null 2>&1 && flock 9

# ---------------------------------------------------------------- install ---
# apt_install PKG...: install without recommends; refresh the package lists
# only if the first attempt fails (a fresh machine may have none).
apt_install() {
    [[ $# -gt 0 ]] || return 0
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $* (or install them first)"
    echo "proxies: installing $* ..." >&2
    # dante-server's postinst starts a system-wide danted through invoke-rc.d;
    # a policy-rc.d that denies (exit 101) keeps that from happening. Docker
    # images ship one already; otherwise put one in place just for this step.
    local made_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local log=$STATE_DIR/apt.log rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
    } >"$log" 2>&1 || rc=$?
    [[ -n $made_policy ]] && rm -f /usr/sbin/policy-rc.d
    if [[ $rc -ne 0 ]]; then
        tail -n 30 "$log" >&2
        die "apt-get install $* failed (log: $log)"
    fi
}

pkgs=()
# tinyproxy-bin is just the binary: no /etc config, no system service.
command -v tinyproxy >/dev/null 2>&1 || pkgs+=(tinyproxy-bin)
command -v danted >/dev/null 2>&1 || pkgs+=(dante-server)
command -v microsocks >/dev/null 2>&1 || pkgs+=(microsocks)
find_py >/dev/null || pkgs+=(python3)
apt_install "${pkgs[@]}"
PY=$(find_py) || die "no python3"

# ------------------------------------------------------------------ ports ---
# Restart cleanly if a previous start.sh left servers running.
"$PROXIES_DIR/stop.sh"

# Free ephemeral ports, all bound at once so the four are distinct. A port
# could in theory be taken by someone else before our server binds it: then
# our server exits and wait_port fails loudly.
read -r p1 p2 p3 p4 < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
declare -A PORT=(
    [http]=${ELO_HTTP_PROXY_PORT:-$p1}
    [http_auth]=${ELO_HTTP_PROXY_AUTH_PORT:-$p2}
    [socks5]=${ELO_SOCKS5_PROXY_PORT:-$p3}
    [socks5_auth]=${ELO_SOCKS5_PROXY_AUTH_PORT:-$p4}
)
for name in "${SERVERS[@]}"; do
    port=${PORT[$name]}
    [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port' for $name"
    ! port_open "$port" || die "127.0.0.1:$port ($name) is already in use"
done

# ---------------------------------------------------------------- configs ---
# tinyproxy 1.11: no ConnectPort line => CONNECT is allowed to every port (the
# Debian /etc config restricts it to 443/563; we do not use that file). It
# does not refuse loopback destinations. No User line: as root it warns
# "You SHOULD set a UserName" and stays root, which is fine on 127.0.0.1.
tinyproxy_conf() { # NAME PORT [extra lines...]
    local name=$1 port=$2
    shift 2
    cat <<EOF
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 100
LogFile "$STATE_DIR/$name.log"
LogLevel Info
Allow 127.0.0.1
EOF
    printf '%s\n' "$@"
}
tinyproxy_conf http "${PORT[http]}" >"$STATE_DIR/http.conf"
tinyproxy_conf http_auth "${PORT[http_auth]}" "BasicAuth $PROXY_USER $PROXY_PASS" >"$STATE_DIR/http_auth.conf"

# dante 1.4.2 (1.4 syntax: socksmethod/clientmethod, `client pass` + `socks pass`).
# As root danted wants user.privileged/user.unprivileged, otherwise it warns
# that the unprivileged uid is 0; as non-root they must be left out.
dante_users=
if [[ $(id -u) -eq 0 ]]; then
    dante_users=$'user.privileged: root\nuser.unprivileged: nobody'
fi
cat >"$STATE_DIR/socks5.conf" <<EOF
logoutput: $STATE_DIR/socks5.log
$dante_users
internal: 127.0.0.1 port = ${PORT[socks5]}
external: lo
clientmethod: none
socksmethod: none

client pass {
    from: 127.0.0.1/32 to: 0.0.0.0/0
    log: error
}
# Deterministic "not allowed by ruleset" (reply 0x02) target for tests.
socks block {
    from: 0.0.0.0/0 to: 127.0.0.2/32
    log: error connect
}
# Domain names (remote DNS, ATYP 3) are resolved by danted and matched by the
# resolved address: "localhost" -> 127.0.0.1 passes. Only loopback targets.
socks pass {
    from: 127.0.0.1/32 to: 127.0.0.0/8
    command: connect
    log: error connect disconnect
}
socks pass {
    from: 127.0.0.1/32 to: ::1/128
    command: connect
    log: error connect disconnect
}
socks block {
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: error connect
}
EOF
danted -V -f "$STATE_DIR/socks5.conf" >"$STATE_DIR/socks5.check" 2>&1 || {
    cat "$STATE_DIR/socks5.check" >&2
    die "danted rejected $STATE_DIR/socks5.conf"
}

# ----------------------------------------------------------------- launch ---
# All run in the foreground of their own session (setsid: the pid is also the
# process group, so stop.sh can end danted's children with it), backgrounded
# here, stdin closed so nothing waits on the terminal, and without fd 9 so the
# servers do not hold the start/stop lock.
launch() { # NAME CMD...
    local name=$1
    shift
    setsid "$@" </dev/null >"$STATE_DIR/$name.out" 2>&1 9>&- &
    echo $! >"$STATE_DIR/$name.pid"
}
launch http tinyproxy -d -c "$STATE_DIR/http.conf"
launch http_auth tinyproxy -d -c "$STATE_DIR/http_auth.conf"
launch socks5 danted -f "$STATE_DIR/socks5.conf" # no -D: -D would daemonize
launch socks5_auth microsocks -i 127.0.0.1 -p "${PORT[socks5_auth]}" -u "$PROXY_USER" -P "$PROXY_PASS"

for name in "${SERVERS[@]}"; do
    # tinyproxy and danted log to $name.log, microsocks only to stderr ($name.out).
    wait_port "$name" "$(cat "$STATE_DIR/$name.pid")" "${PORT[$name]}" \
        "$STATE_DIR/$name.out" "$STATE_DIR/$name.log" || {
        "$PROXIES_DIR/stop.sh"
        die "could not start $name"
    }
done

# --------------------------------------------------------------- env file ---
# Plain KEY=value lines: `set -a; . proxies.env; set +a` in bash, or parse.
cat >"$ENV_FILE.tmp" <<EOF
ELO_HTTP_PROXY=127.0.0.1:${PORT[http]}
ELO_HTTP_PROXY_AUTH=127.0.0.1:${PORT[http_auth]}
ELO_SOCKS5_PROXY=127.0.0.1:${PORT[socks5]}
ELO_SOCKS5_PROXY_AUTH=127.0.0.1:${PORT[socks5_auth]}
ELO_PROXY_USER=$PROXY_USER
ELO_PROXY_PASS=$PROXY_PASS
ELO_SOCKS5_BLOCKED_HOST=127.0.0.2
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"

#!/usr/bin/env bash
# End-to-end check of the proxies that start.sh started: a throwaway HTTP
# server on 127.0.0.1 is fetched through each proxy with curl (absolute-form,
# CONNECT tunnel, SOCKS5 with remote and local DNS), the auth proxies must
# refuse without / with wrong credentials, then probe.py pins the exact bytes
# each server answers. Exit 0 when everything matched. Installs curl if missing.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -f $ENV_FILE ]] || die "$ENV_FILE missing: run scripts/proxies/start.sh first"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

if ! command -v curl >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl >/dev/null; }
fi
PY=$(find_py) || die "no python3"

# The target: python's http.server on a free port, serving one known file.
WWW=$STATE_DIR/www
mkdir -p "$WWW"
export HELLO_BODY="elo proxy test $$"
printf '%s' "$HELLO_BODY" >"$WWW/hello.txt"
ECHO_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" -m http.server --bind 127.0.0.1 --directory "$WWW" "$ECHO_PORT" >"$STATE_DIR/verify_http.log" 2>&1 &
echo $! >"$STATE_DIR/verify_http.pid"
trap 'kill "$(cat "$STATE_DIR/verify_http.pid")" 2>/dev/null; rm -f "$STATE_DIR/verify_http.pid"' EXIT
wait_port verify_http "$(cat "$STATE_DIR/verify_http.pid")" "$ECHO_PORT" "$STATE_DIR/verify_http.log"

failed=0
# expect DESC WANT_EXIT WANT_OUTPUT CURL_ARGS...: curl's exit code and output
# (body, or the -w write-out) must both match.
expect() {
    local desc=$1 want_rc=$2 want_out=$3 out rc=0
    shift 3
    out=$(curl -sS --max-time 5 "$@" 2>"$STATE_DIR/curl.err") || rc=$?
    if [[ $rc == "$want_rc" && $out == "$want_out" ]]; then
        echo "ok   $desc: exit $rc, '$out'"
    else
        echo "FAIL $desc: exit $rc (want $want_rc), '$out' (want '$want_out') $(cat "$STATE_DIR/curl.err")"
        failed=$((failed + 1))
    fi
}
URL=http://127.0.0.1:$ECHO_PORT/hello.txt
URL_LH=http://localhost:$ECHO_PORT/hello.txt
CRED=$ELO_PROXY_USER:$ELO_PROXY_PASS

echo "== tinyproxy (no auth) $ELO_HTTP_PROXY"
expect "absolute-form GET" 0 "$HELLO_BODY" -x "http://$ELO_HTTP_PROXY" "$URL"
expect "CONNECT 127.0.0.1 (-p)" 0 "$HELLO_BODY" -p -x "http://$ELO_HTTP_PROXY" "$URL"
expect "CONNECT localhost (-p)" 0 "$HELLO_BODY" -p -x "http://$ELO_HTTP_PROXY" "$URL_LH"

echo "== tinyproxy (BasicAuth) $ELO_HTTP_PROXY_AUTH"
expect "CONNECT without credentials" 56 "407" -o /dev/null -w '%{http_connect}' -p -x "http://$ELO_HTTP_PROXY_AUTH" "$URL"
expect "CONNECT wrong password" 56 "401" -o /dev/null -w '%{http_connect}' -p -x "http://$ELO_HTTP_PROXY_AUTH" -U "$ELO_PROXY_USER:wrong" "$URL"
expect "CONNECT -U user:pass" 0 "$HELLO_BODY" -p -x "http://$ELO_HTTP_PROXY_AUTH" -U "$CRED" "$URL"
expect "CONNECT user:pass@ in proxy URL" 0 "$HELLO_BODY" -p -x "http://$CRED@$ELO_HTTP_PROXY_AUTH" "$URL_LH"
expect "absolute-form GET without credentials" 0 "407" -o /dev/null -w '%{http_code}' -x "http://$ELO_HTTP_PROXY_AUTH" "$URL"
expect "absolute-form GET --proxy-user" 0 "$HELLO_BODY" -x "http://$ELO_HTTP_PROXY_AUTH" --proxy-user "$CRED" "$URL"

echo "== danted (SOCKS5, no auth) $ELO_SOCKS5_PROXY"
expect "--socks5-hostname localhost (remote DNS)" 0 "$HELLO_BODY" --socks5-hostname "$ELO_SOCKS5_PROXY" "$URL_LH"
expect "--socks5 127.0.0.1" 0 "$HELLO_BODY" --socks5 "$ELO_SOCKS5_PROXY" "$URL"
expect "blocked host $ELO_SOCKS5_BLOCKED_HOST" 97 "" --socks5 "$ELO_SOCKS5_PROXY" "http://$ELO_SOCKS5_BLOCKED_HOST:$ECHO_PORT/"

echo "== microsocks (SOCKS5, user/pass) $ELO_SOCKS5_PROXY_AUTH"
expect "without credentials" 97 "" --socks5-hostname "$ELO_SOCKS5_PROXY_AUTH" "$URL_LH"
expect "wrong password" 97 "" --socks5-hostname "$ELO_SOCKS5_PROXY_AUTH" -U "$ELO_PROXY_USER:wrong" "$URL_LH"
expect "-U user:pass, remote DNS" 0 "$HELLO_BODY" --socks5-hostname "$ELO_SOCKS5_PROXY_AUTH" -U "$CRED" "$URL_LH"
expect "socks5h://user:pass@ proxy URL" 0 "$HELLO_BODY" -x "socks5h://$CRED@$ELO_SOCKS5_PROXY_AUTH" "$URL"

echo "== byte-level probes"
"$PY" "$PROXIES_DIR/probe.py" "$ECHO_PORT" || failed=$((failed + 1))

if ((failed)); then
    echo "proxies verify: $failed FAILED (logs in $STATE_DIR)"
    exit 1
fi
echo "proxies verify: all checks OK"

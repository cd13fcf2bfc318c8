#!/usr/bin/env bash
# The project's test command: installs the test peers, runs every cargo test, then the whole
# Autobahn suite (cases 1-13, permessage-deflate included) with both runners in both
# directions (our server, our client).
#
#   bash scripts/test.sh            everything
#   SKIP_CONFORMANCE=1 bash scripts/test.sh   cargo tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test peers (Node ws, Python websockets, Chromium, proxies, Autobahn wstest and kosoku)"
if command -v npm >/dev/null 2>&1; then
    (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "npm not found: the Node interop tests will be skipped (they fail under CI)"
fi
# Python websockets for tests/interop_deflate.rs, in a venv of its own.
venv=target/interop-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/python/requirements.txt
fi
if [[ ! -x /usr/bin/chromium ]]; then
    # tests/browser.rs drives the browser example with headless Chromium.
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
        echo "installing chromium (for tests/browser.rs)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            >/dev/null || echo "chromium install failed: tests/browser.rs fails under CI"
    else
        echo "chromium not found: tests/browser.rs will be skipped (it fails under CI)"
    fi
fi
if [[ -z ${SKIP_CONFORMANCE:-} ]]; then
    bash scripts/conformance/install.sh
fi
# Real proxies for tests/proxy.rs (tinyproxy, danted, microsocks on 127.0.0.1); their
# addresses go to $STATE_DIR/proxies.env, which the tests read.
export STATE_DIR=${STATE_DIR:-/tmp/elo-proxies}
export ELO_PROXY_ENV=$STATE_DIR/proxies.env
if bash scripts/proxies/start.sh >/dev/null; then
    trap 'bash scripts/proxies/stop.sh >/dev/null 2>&1 || true' EXIT
else
    echo "the proxies did not start: tests/proxy.rs fails under CI"
fi

step "cargo test --workspace --all-features"
cargo test --workspace --all-features

if [[ -n ${SKIP_CONFORMANCE:-} ]]; then
    exit 0
fi

step "building the conformance subjects"
cargo build --release --examples

# Every case, 1-13. The echo server runs with permessage-deflate enabled (clients of cases 1-10
# don't offer it); the client offers it in the form each case needs.
CASES=all
failed=0
passed=0
for runner in wstest kosoku; do
    for direction in server client; do
        step "Autobahn $CASES with $runner, our $direction"
        extra=()
        [[ $runner == kosoku ]] && extra=(--allow-kosoku-defects)
        subject=()
        [[ $direction == server ]] && subject=(-- --deflate)
        if bash scripts/conformance/run.sh --no-install --timeout 1200 "${extra[@]}" \
            "$runner" "$direction" "$CASES" "target/conformance/$runner-$direction" "${subject[@]}"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
done
echo
echo "conformance: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

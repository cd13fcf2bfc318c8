#!/usr/bin/env bash
# Installs the message brokers the fan-out tests join servers through: Debian's redis-server
# and nats-server (binaries only: no service is started; the tests start their own through
# run.sh). The package lists are refreshed only if the first attempt fails.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
pkgs=()
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
command -v nats-server >/dev/null 2>&1 || pkgs+=(nats-server)
if ((${#pkgs[@]} == 0)); then
    echo "already installed: $(redis-server --version | cut -d' ' -f1-3), nats-server $(nats-server --version 2>&1 | tr -d '\n')"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "brokers: need root to apt-get install ${pkgs[*]}" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# Debian's redis-server package would start a system-wide server: a policy-rc.d that denies
# keeps it from doing so (as for the proxies).
made_policy=
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
rc=0
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } || rc=$?
[[ -n $made_policy ]] && rm -f /usr/sbin/policy-rc.d
exit $rc

#!/usr/bin/env bash
# Runs one broker in the foreground on 127.0.0.1:PORT, as the fan-out tests use it: nothing
# persisted, nothing logged to disk. The broker replaces this shell (exec), so the caller's
# SIGKILL reaches the broker itself, as a crash would.
#
#   scripts/brokers/run.sh redis PORT
#   scripts/brokers/run.sh nats PORT
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
case ${1:-}:${2:-} in
    redis:[0-9]*)
        exec redis-server --bind 127.0.0.1 --port "$2" --save "" --appendonly no \
            --daemonize no --protected-mode yes --loglevel notice --logfile ""
        ;;
    nats:[0-9]*)
        exec nats-server --addr 127.0.0.1 --port "$2" --no_advertise
        ;;
    *)
        echo "usage: scripts/brokers/run.sh redis|nats PORT" >&2
        exit 2
        ;;
esac

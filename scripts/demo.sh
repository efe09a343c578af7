#!/usr/bin/env bash
# `make demo`: the service on the built-in simulated PBX, with a Redis.
# Uses the Redis answering on DEMO_REDIS_PORT (default 6379) or starts a
# private one under ./var/; stops everything it started on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
port="${DEMO_REDIS_PORT:-6379}"
listen="${DEMO_LISTEN:-tcp:8080:interface=127.0.0.1}"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  echo "no Redis on 127.0.0.1:$port: starting a private one under ./var/"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$PWD/var" --logfile "$PWD/var/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

web_port="${listen#tcp:}"; web_port="${web_port%%:*}"
echo
echo "  callcenter demo: dashboard at http://127.0.0.1:${web_port}/   (Ctrl-C stops it)"
echo
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/twistd --nodaemon --pidfile= callcenter --simulate \
  --listen "$listen" --redis "redis://127.0.0.1:${port}/0" --redis-prefix "callcenter-demo:" \
  --report var/report.csv &
pids+=($!)
wait "${pids[-1]}"

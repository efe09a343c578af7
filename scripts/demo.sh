#!/usr/bin/env bash
# `make demo`: the service on the built-in simulated PBX.
# Redis: a private redis-server on a free loopback port, its files under
# ./var/demo-redis/ (never whatever answers on 6379), unless DEMO_REDIS_URL
# names one.  The dashboard listens on DEMO_LISTEN (a Twisted endpoint,
# default tcp:8080:interface=127.0.0.1).  Ctrl-C stops everything it
# started and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
listen="${DEMO_LISTEN:-tcp:8080:interface=127.0.0.1}"
redis_url="${DEMO_REDIS_URL:-}"
twistd=.venv/bin/twistd
[ -x "$twistd" ] || { echo "demo: $twistd missing: run make setup first" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
# Ctrl-C or a kill is how a demo ends: not an error.
trap 'stop; exit 0' INT TERM

if [ -z "$redis_url" ]; then
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p var/demo-redis
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$PWD/var/demo-redis" --logfile "$PWD/var/demo-redis/redis.log" &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis_url="redis://127.0.0.1:${port}/0"
  redis_note="a private Redis at $redis_url (set DEMO_REDIS_URL to use another)"
else
  redis_note="the Redis of DEMO_REDIS_URL, keys under callcenter-demo:"
fi

mkdir -p var
web_port="${listen#*:}"; web_port="${web_port%%:*}"
scheme=http; [[ "$listen" == ssl:* ]] && scheme=https
echo
echo "  callcenter demo: dashboard at ${scheme}://127.0.0.1:${web_port}/   (Ctrl-C stops it)"
echo "  using $redis_note"
echo
"$twistd" --nodaemon --pidfile= callcenter --simulate \
  --listen "$listen" --redis "$redis_url" --redis-prefix "callcenter-demo:" \
  --report var/demo-report.csv &
pids+=($!)
set +e
wait "${pids[-1]}"
status=$?
set -e
# twistd ended by itself (a start-up error): pass its status on.
exit "$status"

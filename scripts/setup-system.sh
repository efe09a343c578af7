#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that `make test` / `make demo` need, only
# when they are missing, so a machine that has them is left alone.
# Usage: scripts/setup-system.sh redis-server [chromium ...]
set -euo pipefail
missing=()
for pkg in "$@"; do
  case "$pkg" in
    redis-server) command -v redis-server >/dev/null 2>&1 || missing+=(redis-server) ;;
    chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
    promtool) command -v promtool >/dev/null 2>&1 || missing+=(prometheus) ;;  # promtool ships in it
    nodejs) command -v npm >/dev/null 2>&1 || missing+=(nodejs npm) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

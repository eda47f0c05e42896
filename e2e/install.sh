#!/usr/bin/env bash
# Installs what the browser test needs, when it is missing: Debian's Chromium (never a
# downloaded browser) and e2e/node_modules from the lock file.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "e2e: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

# npm ci when node_modules is missing or older than package.json or the lock file.
installed=node_modules/.package-lock.json
if [[ ! -f $installed || package.json -nt $installed || package-lock.json -nt $installed ]]; then
  npm ci --no-audit --no-fund
fi

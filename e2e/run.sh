#!/usr/bin/env bash
# Real-browser test of the Swagger UI: builds the release server, starts it on a free port and
# drives /docs in Debian's headless Chromium (swagger-ui.mjs). Screenshots: target/e2e/screenshots.
# E2E_SKIP_INSTALL=1: install nothing (Chromium and e2e/node_modules must already be there).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo build --release --locked

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ ${E2E_SKIP_INSTALL:-} != 1 && $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "e2e: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

# npm ci when node_modules is missing or older than package.json or the lock file.
installed=e2e/node_modules/.package-lock.json
if [[ ! -f $installed || e2e/package.json -nt $installed || e2e/package-lock.json -nt $installed ]]; then
  if [[ ${E2E_SKIP_INSTALL:-} == 1 ]]; then
    echo "e2e: e2e/node_modules is missing or stale; run: (cd e2e && npm ci)" >&2
    exit 1
  fi
  (cd e2e && npm ci --no-audit --no-fund)
fi

log=$(mktemp)
cleanup() {
  [[ -n ${server:-} ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT

# The server dies on its own after 10 minutes whatever happens. Every setting is given
# explicitly so that a developer's .env cannot change the test.
BIND_ADDR=127.0.0.1:0 SECRET_KEY=e2e-test-secret-key-not-for-production-0123456789 \
  USERS_FILE= LOGIN_THROTTLE=on ACCESS_TOKEN_EXPIRE_MINUTES=30 TRUSTED_PROXIES= RUST_LOG=info \
  timeout 600 target/release/oauth2-jwt-server >"$log" 2>&1 &
server=$!

base=
for _ in $(seq 100); do
  base=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n1 | cut -d' ' -f3) && [[ -n $base ]] && break
  kill -0 "$server" 2>/dev/null || { echo "e2e: the server exited:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $base ]] || { echo "e2e: no 'listening on' line from the server:" >&2; cat "$log" >&2; exit 1; }
curl -fsS --retry 20 --retry-delay 0 --retry-connrefused -o /dev/null "$base/openapi.json"
echo "e2e: server at $base"

status=0
BASE_URL=$base SCREENSHOT_DIR=$root/target/e2e/screenshots timeout 300 node e2e/swagger-ui.mjs || status=$?
if [[ $status != 0 ]]; then
  echo "e2e: server log:" >&2
  cat "$log" >&2
fi
exit "$status"

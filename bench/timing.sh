#!/usr/bin/env bash
# Does timing reveal which usernames exist? Alternates logins for an unknown username and
# wrong-password logins for johndoe, one at a time, and compares the medians.
#
#   bench/timing.sh            # N=40 of each, about 10 s after the build
#   BASE_URL=http://127.0.0.1:8000 bench/timing.sh   # any running server (throttling off)
set -euo pipefail
# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
cd "$(dirname "$0")/.."
: "${N:=40}" "${BASE_URL:=}"

server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; true' EXIT
if [ -z "$BASE_URL" ]; then
  cargo build --release --locked --bin oauth2-jwt-server >&2
  log=$(mktemp)
  BIND_ADDR=127.0.0.1:0 LOGIN_THROTTLE=off SECRET_KEY=timing-bench-key-0123456789abcdef \
    RUST_LOG=warn,oauth2_jwt_server=info timeout 600 target/release/oauth2-jwt-server >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    BASE_URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1) && [ -n "$BASE_URL" ] && break
    sleep 0.1
  done
  [ -n "$BASE_URL" ] || { echo "timing: the server did not start" >&2; cat "$log" >&2; exit 1; }
fi

login() {  # login USER PASSWORD -> "status seconds"
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$BASE_URL/token" -d "username=$1&password=$2"
}
login johndoe warm-up-wrong >/dev/null
rows=$(mktemp)
for _ in $(seq "$N"); do
  echo "unknown $(login nosuchuser secret)" >>"$rows"
  echo "wrong $(login johndoe wrong-password)" >>"$rows"
done
python3 - "$rows" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
assert all(status == "401" for _, status, _ in rows), "every login must be a 401"
median = {kind: statistics.median(float(t) for k, _, t in rows if k == kind) * 1000 for kind in ("unknown", "wrong")}
n = sum(1 for k, _, _ in rows if k == "unknown")
print(f"{n} of each, one at a time: unknown username median {median['unknown']:.1f} ms, "
      f"wrong password median {median['wrong']:.1f} ms, ratio {median['unknown'] / median['wrong']:.3f}")
PY
rm -f "$rows"

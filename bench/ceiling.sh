#!/usr/bin/env bash
# How close reads come to the machine's HTTP limit: GET /users/me/ at 64 connections against
# (1) bare hyper answering a fixed body, (2) axum with one such route, (3) this server with a
# real token. Alternates the three ROUNDS times and prints the median req/s of each.
#
#   bench/ceiling.sh               # ROUNDS=3 DUR=5 CONNS=64, about 1 min after the build
#   SERVER_ENV="METRICS_ADDR=127.0.0.1:0 LOG_FORMAT=json" bench/ceiling.sh   # the server with these settings
set -euo pipefail
# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
cd "$(dirname "$0")/.."
: "${ROUNDS:=3}" "${DUR:=5}" "${CONNS:=64}" "${SERVER_ENV:=}"
command -v wrk >/dev/null || { echo "ceiling: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --locked --bin oauth2-jwt-server --example http_ceiling >&2

work=$(mktemp -d)
server=""
stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=""
}
trap 'stop; rm -rf "$work"' EXIT

# start NAME COMMAND...: runs it on a free port (under `timeout`), sets BASE.
start() {
  local name=$1 port; shift
  BIND_ADDR=127.0.0.1:0 SECRET_KEY=ceiling-bench-key-0123456789abcdef LOGIN_THROTTLE=off \
    RUST_LOG=warn,oauth2_jwt_server=info timeout 300 "$@" >"$work/$name.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$work/$name.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "ceiling: $name did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
  BASE=http://127.0.0.1:$port
}

# run NAME: one wrk run against BASE, appends "NAME rps" to the results.
run() {
  local token
  token=$(curl -fsS "$BASE/token" -d 'username=johndoe&password=secret' 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null || echo none)
  sleep 1
  WRK_TOKEN=$token wrk -t1 -c"$CONNS" -d"${DUR}s" -s bench/wrk.lua "$BASE/users/me/" |
    sed -n 's/^RESULT //p' | python3 -c "import json,sys; print('$1', json.load(sys.stdin)['rps'])" >>"$work/rows"
}

for round in $(seq "$ROUNDS"); do
  for name in hyper axum server; do
    case $name in
      hyper) start hyper target/release/examples/http_ceiling hyper ;;
      axum) start axum target/release/examples/http_ceiling axum ;;
      # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
      server) start server env $SERVER_ENV target/release/oauth2-jwt-server ;;
    esac
    run "$name"
    stop
    echo "ceiling: round $round $(tail -n 1 "$work/rows")" >&2
  done
done
python3 - "$work/rows" "$CONNS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {n: statistics.median(float(r) for m, r in rows if m == n) for n in ("hyper", "axum", "server")}
print(f"GET /users/me/ at {sys.argv[2]} connections, median req/s of each:")
for name, label in [("hyper", "bare hyper, fixed body"), ("axum", "axum, one fixed route"), ("server", "this server, token checked")]:
    print(f"  {label:28} {med[name]:>10.0f}  ({med[name] / med['hyper']:.0%} of bare hyper)")
print(f"this server / axum with one fixed route: {med['server'] / med['axum']:.1%}")
# The same ratio within each round (the two ran seconds apart), which drifts less with the load
# of a shared machine.
axum = [float(r) for m, r in rows if m == "axum"]
server = [float(r) for m, r in rows if m == "server"]
per_round = sorted(s / a for s, a in zip(server, axum))
print(f"  per round: median {statistics.median(per_round):.1%}, from {per_round[0]:.1%} to {per_round[-1]:.1%}")
PY

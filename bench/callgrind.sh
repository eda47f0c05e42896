#!/usr/bin/env bash
# Instructions per GET /users/me/ under callgrind, for this server and for axum with one fixed
# route (bench/ceiling.sh's `http_ceiling axum`): steady on a busy machine, where req/s is not.
# Each server runs under valgrind with one worker thread; wrk (-c4) warms it for 2 s, then
# callgrind counts DUR seconds of requests. The profiles stay in target/callgrind/ for
# callgrind_annotate.
#
#   bench/callgrind.sh                      # both, about 1 min after the build
#   SERVER_ENV="METRICS_ADDR=127.0.0.1:0" bench/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DUR:=10}" "${SERVER_ENV:=}"
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "callgrind: $tool is missing (apt-get install -y valgrind wrk)" >&2; exit 2; }
done
cargo build --release --locked --bin oauth2-jwt-server --example http_ceiling >&2

out=$PWD/target/callgrind
mkdir -p "$out"
release=$PWD/target/release
pid=""
stop() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap stop EXIT

# measure NAME COMMAND...: prints "NAME <instructions per request>".
measure() {
  local name=$1 port="" base token requests total vg
  shift
  rm -f "$out/$name".*
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
  env BIND_ADDR=127.0.0.1:0 SECRET_KEY=callgrind-bench-key-0123456789abcdef LOGIN_THROTTLE=off \
    SHUTDOWN_DRAIN_SECS=0 RUST_LOG=warn,oauth2_jwt_server=info TOKIO_WORKER_THREADS=1 $SERVER_ENV \
    timeout 300 valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" "$@" >"$out/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$out/$name.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.2
  done
  [ -n "$port" ] || { echo "callgrind: $name did not start" >&2; cat "$out/$name.log" >&2; exit 1; }
  base=http://127.0.0.1:$port
  token=$(curl -fsS "$base/token" -d 'username=johndoe&password=secret' 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null || echo none)
  WRK_TOKEN=$token wrk -t1 -c4 -d2s -s bench/wrk.lua "$base/users/me/" >/dev/null
  # `timeout` is valgrind's parent: the counts are its child's.
  vg=$(pgrep -P "$pid" | head -n 1)
  callgrind_control -z "$vg" >/dev/null 2>&1
  requests=$(WRK_TOKEN=$token wrk -t1 -c4 -d"${DUR}s" -s bench/wrk.lua "$base/users/me/" |
    sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
  callgrind_control -d "$vg" >/dev/null 2>&1
  stop
  total=$(sed -n 's/^summary: //p' "$(ls -t "$out/$name.out".* | head -n 1)")
  echo "$name $((total / requests))"
}

echo "GET /users/me/ at 4 connections, instructions per request (callgrind):"
measure axum "$release/examples/http_ceiling" axum
measure server "$release/oauth2-jwt-server"

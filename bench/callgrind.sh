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
release=$PWD/target/release
out=$PWD/target/callgrind
mkdir -p "$out"
# shellcheck source=bench/servers.sh
. bench/servers.sh

# measure NAME COMMAND...: prints "NAME <instructions per request>".
measure() {
  local name=$1 token requests total
  shift
  rm -f "$out/$name".*
  # start_server runs one program: this one execs valgrind, so PID[NAME] is valgrind's.
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s %s\n' \
    "$out/$name.out" "$*" >"$WORK/$name.sh"
  chmod +x "$WORK/$name.sh"
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
  start_server "$name" "$WORK/$name.sh" SECRET_KEY=callgrind-bench-key-0123456789abcdef \
    LOGIN_THROTTLE=off TOKIO_WORKER_THREADS=1 $SERVER_ENV
  token=$(curl -fsS "${URL[$name]}/token" -d 'username=johndoe&password=secret' 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null || echo none)
  WRK_TOKEN=$token wrk -t1 -c4 -d2s -s bench/wrk.lua "${URL[$name]}/users/me/" >/dev/null
  callgrind_control -z "${PID[$name]}" >/dev/null 2>&1
  requests=$(WRK_TOKEN=$token wrk -t1 -c4 -d"${DUR}s" -s bench/wrk.lua "${URL[$name]}/users/me/" |
    sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
  callgrind_control -d "${PID[$name]}" >/dev/null 2>&1
  total=$(sed -n 's/^summary: //p' "$(ls -t "$out/$name.out".* | head -n 1)")
  echo "$name $((total / requests))"
}

echo "GET /users/me/ at 4 connections, instructions per request (callgrind):"
measure axum "$release/examples/http_ceiling" axum
measure server "$release/oauth2-jwt-server"

# Servers of ours for the benchmarks that run several side by side (backends.sh, instances.sh,
# versus.sh). Source this file from the checkout's root; it makes a work directory ($WORK) and
# stops every server and removes the directory at exit, after the script's own `on_exit`.
#   say TEXT...                          # a line on stderr
#   start_server NAME BINARY [VAR=VALUE...]
#       # BINARY from $WORK (no .env there) on a free port, with RUST_LOG=warn,...=info and the
#       # given settings; sets URL[NAME] and PID[NAME] (the server's own pid, for load.sh).

# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
WORK=$(mktemp -d)
WRAPPERS=()
declare -A URL PID

say() { echo "bench: $*" >&2; }
on_exit() { :; }

stop_servers() {
  local pid
  for pid in "${WRAPPERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  on_exit
  rm -rf "$WORK"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

start_server() {
  local name=$1 bin=$2 line=""
  shift 2
  (cd "$WORK" && env BIND_ADDR=127.0.0.1:0 RUST_LOG=warn,oauth2_jwt_server=info "$@" \
    timeout -k 5 3600 "$bin") >"$WORK/$name.log" 2>&1 &
  WRAPPERS+=("$!")
  for _ in $(seq 100); do
    line=$(sed -n 's#.*listening on \(http://[0-9.:]*\).*#\1#p' "$WORK/$name.log" | head -n1)
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || { say "$name did not start:"; cat "$WORK/$name.log" >&2; exit 1; }
  URL[$name]=$line
  PID[$name]=$(ps -o pid= --ppid "${WRAPPERS[-1]}" | tr -d ' ')
  say "$name: pid ${PID[$name]} on $line"
}

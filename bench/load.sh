#!/usr/bin/env bash
# Load benchmark: builds the release server, starts it on a free port, and drives it with wrk.
#
#   bench/load.sh                                   # about 1.5 min with the defaults
#   DUR=2 LDUR=3 SCENARIOS="me_c64 login_c4 mix" bench/load.sh
#   BASE_URL=http://127.0.0.1:8300 LABEL="FastAPI reference" OUT=target/bench/ref.json bench/load.sh
#
# Prints a table and writes target/bench/results.json (chart it with bench/chart.py).
#
# Knobs (environment):
#   DUR=5          seconds per read scenario       LDUR=6   seconds per login scenario (+4 at 16+)
#   SCENARIOS      names, in order: me_cN, items_cN, login_cN, badlogin_cN (unknown user),
#                  refresh_cN (N clients exchanging refresh tokens, with examples/refresh_load;
#                  the server needs REFRESH_TOKEN_EXPIRE_DAYS), mix
#                  (GET /users/me/ at 16 connections while 4 logins are kept in flight), mix_cN
#                  (the same with N logins in flight: a login storm)
#   BASE_URL       benchmark a server that is already running instead of starting ours;
#   SERVER_PID     ... and its PID, for RSS and CPU figures (else looked up with `ss`)
#   LABEL          name of the target in the results (default "this server" or BASE_URL)
#   OUT            results file (default target/bench/results.json)
#   WRK_THREADS=1  wrk threads: one leaves the most CPU to the server on a 2-core machine
#   HASH_WORKERS, HASH_QUEUE are passed on to the server we start.
set -euo pipefail
# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${DUR:=5}" "${LDUR:=6}" "${WRK_THREADS:=1}" "${BASE_URL:=}" "${SERVER_PID:=}"
: "${SCENARIOS:=me_c1 me_c64 me_c256 items_c64 login_c1 login_c4 login_c16 badlogin_c4 mix}"
: "${OUT:=target/bench/results.json}"
LOGIN_BODY='grant_type=password&username=johndoe&password=secret'
BAD_BODY='grant_type=password&username=nosuchuser&password=secret'
# A fixed key, so runs are alike; it only ever signs tokens for this throwaway server.
SECRET_KEY_FOR_BENCH=bench-only-secret-key-0123456789abcdef0123456789abcdef
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d)
WRAPPER=""  # PID of the `timeout` that runs our server
HELPERS=()  # background jobs of a scenario (RSS sampler, mix's login load), ended on exit
PIDS=()     # server processes whose CPU and RSS are measured

say() { echo "bench: $*" >&2; }

cleanup() {
  local pid
  for pid in "${HELPERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # The server runs under `timeout` too, so it dies even if this trap never runs (kill -9).
  if [ -n "$WRAPPER" ]; then
    kill -TERM "$WRAPPER" 2>/dev/null || true
    wait "$WRAPPER" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_tools() {
  local tool
  for tool in curl python3 ps; do
    command -v "$tool" >/dev/null || { say "missing $tool"; exit 2; }
  done
  command -v wrk >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    say "installing wrk from Debian's packages"
    # The package lists may be stale or missing on a fresh machine: update once and retry.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  else
    say "wrk is missing: install it with  sudo apt-get install -y wrk"
    exit 2
  fi
}

# ---- /proc figures (pure bash: a sampler that forks would steal CPU from the server) ----

rss_kb() {  # summed VmRSS of PIDS
  local pid key value _ sum=0
  for pid in "${PIDS[@]}"; do
    while read -r key value _; do
      [ "$key" = VmRSS: ] && sum=$((sum + value)) && break
    done 2>/dev/null <"/proc/$pid/status" || true
  done
  echo "$sum"
}

cpu_ticks() {  # summed user+system CPU of PIDS, in clock ticks
  local pid line fields sum=0
  for pid in "${PIDS[@]}"; do
    read -r line 2>/dev/null <"/proc/$pid/stat" || continue
    read -ra fields <<<"${line##*) }"  # drop "pid (comm) ": the name may hold spaces
    sum=$((sum + fields[11] + fields[12]))
  done
  echo "$sum"
}

# Stops the run when a server we measure has gone (a crash would otherwise look like errors).
server_alive() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && continue
    say "server pid $pid has gone"
    [ -n "$WRAPPER" ] && tail -n 20 "$WORK/server.log" >&2
    exit 1
  done
}

# Waits (30 s at most) until the server uses under 5% of a core: wrk abandons logins in flight
# at its deadline and a server may go on hashing them, which would leak into the next scenario.
wait_idle() {
  [ ${#PIDS[@]} -gt 0 ] || { sleep 1; return; }
  local end=$((SECONDS + 30)) before after
  while [ $SECONDS -lt $end ]; do
    before=$(cpu_ticks); sleep 0.5; after=$(cpu_ticks)
    [ $(((after - before) * 1000 / CLK_TCK)) -lt 25 ] && return
  done
  say "server still busy after 30 s"
}

# Records the peak RSS in $WORK/rss_peak, 5 times a second, until $WORK/stop appears.
sample_rss() {
  local peak=0 now end=$((SECONDS + $1 + 60))
  while [ ! -e "$WORK/stop" ] && [ $SECONDS -lt $end ]; do
    now=$(rss_kb)
    [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" >"$WORK/rss_peak"
    sleep 0.2
  done
}

# ---- the server ----

start_server() {
  say "building the release binary"
  cargo build --release --locked
  # Run from an empty directory so that no .env file changes the configuration. The
  # `listening on` line is an info event of the binary's own target; request lines (target
  # "http") stay at warn.
  (cd "$WORK" && BIND_ADDR=127.0.0.1:0 SECRET_KEY=$SECRET_KEY_FOR_BENCH LOGIN_THROTTLE=off \
    RUST_LOG=warn,oauth2_jwt_server=info \
    exec timeout -k 5 "$(max_life)" "$ROOT/target/release/oauth2-jwt-server") >"$WORK/server.log" 2>&1 &
  WRAPPER=$!
  local _
  for _ in $(seq 100); do  # 10 s
    BASE_URL=$(sed -n 's#.*listening on \(http://[0-9.:]*\).*#\1#p' "$WORK/server.log" | head -n1)
    [ -n "$BASE_URL" ] && break
    kill -0 "$WRAPPER" 2>/dev/null || { say "the server exited:"; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$BASE_URL" ] || { say "no 'listening on' line after 10 s"; cat "$WORK/server.log" >&2; exit 1; }
  SERVER_PID=$(ps -o pid= --ppid "$WRAPPER" | tr -d ' ')
  say "server pid $SERVER_PID on $BASE_URL"
}

# Upper bound on the server's life: the scenarios plus generous draining time.
max_life() {
  local n; n=$(wc -w <<<"$SCENARIOS")
  echo $((120 + n * (DUR + LDUR + 40)))
}

# The PID of whatever listens on BASE_URL's port, when SERVER_PID was not given.
find_server_pid() {
  local port=${BASE_URL##*:}; port=${port%%/*}
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true
}

# The server and its direct children (a multi-process server such as gunicorn).
set_pids() {
  [ -n "$SERVER_PID" ] || SERVER_PID=$(find_server_pid)
  [ -n "$SERVER_PID" ] || { say "server PID unknown: no RSS or CPU figures"; return; }
  mapfile -t PIDS < <(echo "$SERVER_PID"; ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
}

# Logs in, sets TOKEN and checks that the routes answer as the tutorial's do.
login() {
  local answer code
  answer=$(curl -sS -m 30 --data "$LOGIN_BODY" "$BASE_URL/token")
  TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$answer") ||
    { say "login failed: $answer"; exit 1; }
  code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE_URL/users/me/items/")
  [ "$code" = 200 ] || { say "GET /users/me/items/ answered $code"; exit 1; }
  code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' --data "$BAD_BODY" "$BASE_URL/token")
  [ "$code" = 401 ] || { say "unknown-user login answered $code, not 401"; exit 1; }
}

# ---- scenarios ----

# start_wrk OUT CONNS SECONDS PATH METHOD BODY TOKEN: runs wrk in the background, output to OUT,
# and sets WRK_PID. Waiting on it with `wait` (not $(...)) lets Ctrl-C stop the run at once.
start_wrk() {
  local out=$1 conns=$2 secs=$3 threads=$WRK_THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  WRK_METHOD=$5 WRK_BODY=$6 WRK_TOKEN=$7 \
    wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s -s bench/wrk.lua "$BASE_URL$4" >"$out" 2>&1 &
  WRK_PID=$!
  HELPERS+=("$WRK_PID")
}

# The JSON line that wrk.lua printed in OUT; stops the run if there is none.
wrk_result() {
  local line
  line=$(sed -n 's/^RESULT //p' "$1")
  [ -n "$line" ] || { say "wrk gave no result:"; cat "$1" >&2; exit 1; }
  echo "$line"
}

# Appends one row: the wrk JSON with the scenario's name, connections and server figures added.
add_row() {  # add_row NAME CONNS JSON CPU_US_PER_REQ CPU_S RSS_KB
  echo "${3%\}},\"scenario\":\"$1\",\"conns\":$2,\"cpu_us_per_req\":$4,\"cpu_s\":$5,\"rss_peak_kb\":$6}" >>"$WORK/rows"
}

run_scenario() {
  local name=$1 conns path=/users/me/ method=GET body="" token=$TOKEN secs=$DUR storm=""
  case $name in
    me_c[0-9]*) conns=${name#me_c} ;;
    items_c[0-9]*) conns=${name#items_c}; path=/users/me/items/ ;;
    login_c[0-9]*) conns=${name#login_c}; path=/token; method=POST; body=$LOGIN_BODY; token=""; secs=$LDUR ;;
    badlogin_c[0-9]*) conns=${name#badlogin_c}; path=/token; method=POST; body=$BAD_BODY; token=""; secs=$LDUR ;;
    refresh_c[0-9]*) conns=${name#refresh_c}; path=/token; method=REFRESH; secs=$LDUR ;;
    mix) conns=16; storm=4 ;;
    mix_c[0-9]*) conns=16; storm=${name#mix_c} ;;
    *) say "unknown scenario $name"; exit 2 ;;
  esac
  # At 16+ concurrent logins each one waits seconds for a hashing thread: give wrk time to see
  # more than the first wave complete.
  [ "$method" = POST ] && [ "$conns" -ge 16 ] && secs=$((LDUR + 4))
  server_alive
  wait_idle
  say "$name: $conns connections, ${secs}s"
  rm -f "$WORK/stop" "$WORK/rss_peak"
  local ticks0 ticks1 sampler="" reads logins=""
  ticks0=$(cpu_ticks)
  [ ${#PIDS[@]} -gt 0 ] && { sample_rss "$secs" & sampler=$!; HELPERS+=("$sampler"); }
  if [ -n "$storm" ]; then
    # Logins start 1 s early and end 1 s late, so they cover the whole read window.
    start_wrk "$WORK/logins" "$storm" $((secs + 2)) /token POST "$LOGIN_BODY" ""
    local logins_wrk=$WRK_PID
    sleep 1
    start_wrk "$WORK/reads" "$conns" "$secs" "$path" GET "" "$token"
    wait "$WRK_PID" "$logins_wrk" || true
    logins=$(wrk_result "$WORK/logins")
  elif [ "$method" = REFRESH ]; then
    # wrk cannot follow a rotating token: each client here uses the one its last answer gave.
    "$ROOT/target/release/examples/refresh_load" "$BASE_URL" "$conns" "$secs" >"$WORK/reads" 2>&1 &
    WRK_PID=$!
    HELPERS+=("$WRK_PID")
    wait "$WRK_PID" || true
  else
    start_wrk "$WORK/reads" "$conns" "$secs" "$path" "$method" "$body" "$token"
    wait "$WRK_PID" || true
  fi
  reads=$(wrk_result "$WORK/reads")
  touch "$WORK/stop"
  [ -n "$sampler" ] && wait "$sampler"
  HELPERS=()
  ticks1=$(cpu_ticks)
  local rss=null cpu=null per_req=null
  [ -s "$WORK/rss_peak" ] && rss=$(cat "$WORK/rss_peak")
  if [ ${#PIDS[@]} -gt 0 ]; then
    cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    # In mix the CPU is shared by two kinds of request, so no per-request figure.
    if [ -z "$storm" ]; then
      local requests=${reads#*\"requests\":}
      requests=${requests%%,*}
      [ "$requests" -gt 0 ] && per_req=$(((ticks1 - ticks0) * 1000000 / CLK_TCK / requests))
    fi
  fi
  if [ "$name" = mix ]; then
    add_row mix_me_c16 16 "$reads" null "$cpu" "$rss"
    add_row mix_login_c4 4 "$logins" null "$cpu" "$rss"
  elif [ -n "$storm" ]; then
    add_row "${name}_me_c16" 16 "$reads" null "$cpu" "$rss"
    add_row "${name}_login" "$storm" "$logins" null "$cpu" "$rss"
  else
    add_row "$name" "$conns" "$reads" "$per_req" "$cpu" "$rss"
  fi
}

# ---- the report ----

# Prints the table and writes OUT: {"meta": {...}, "scenarios": {name: figures, ...}}.
report() {
  mkdir -p "$(dirname "$OUT")"
  python3 - "$WORK/rows" "$OUT" <<'PY'
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
env = os.environ
def num(name):
    value = env.get(name, "")
    return int(value) if value.isdigit() else None
meta = {
    "label": env["LABEL"], "base_url": env["BASE_URL"], "commit": env["COMMIT"] or None,
    "when": env["WHEN"], "nproc": os.cpu_count(), "loadavg1_at_start": float(env["LOAD1"]),
    "dur_s": int(env["DUR"]), "ldur_s": int(env["LDUR"]), "wrk_threads": int(env["WRK_THREADS"]),
    "rss_idle_start_kb": num("RSS_START"), "rss_idle_end_kb": num("RSS_END"),
}
# Name and connections first, then wrk's figures, then the server's.
scenarios = {row.pop("scenario"): {"conns": row.pop("conns"), **row} for row in rows}
with open(sys.argv[2], "w") as out:
    json.dump({"meta": meta, "scenarios": scenarios}, out, indent=1)
    out.write("\n")

def cell(value, fmt):
    return "-" if value is None else format(value, fmt)
print(f"\n{meta['label']} ({meta['base_url']}), {meta['when']}, load {meta['loadavg1_at_start']}")
head = ("scenario", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx", "errors", "cpu us/req", "peak RSS MB")
print("{:<14}{:>6}{:>10}{:>9}{:>9}{:>8}{:>7}{:>11}{:>12}".format(*head))
for name, r in scenarios.items():
    rss = r["rss_peak_kb"] / 1024 if r["rss_peak_kb"] is not None else None
    print(f"{name:<14}{r['conns']:>6}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
          f"{r['non2xx']:>8}{r['socket_errors'] + r['timeouts']:>7}"
          f"{cell(r['cpu_us_per_req'], 'd'):>11}{cell(rss, '.1f'):>12}")
idle = [cell(meta[k] and meta[k] / 1024, ".1f") for k in ("rss_idle_start_kb", "rss_idle_end_kb")]
print(f"idle RSS MB: {idle[0]} before, {idle[1]} after.  non-2xx = HTTP status >= 400 "
      "(expected in badlogin); errors = socket errors + timeouts")
print(f"results: {sys.argv[2]}")
PY
}

main() {
  local name
  for name in $SCENARIOS; do  # fail before building anything
    [[ $name =~ ^((me|items|login|badlogin|refresh|mix)_c[1-9][0-9]*|mix)$ ]] || { say "unknown scenario $name"; exit 2; }
  done
  if [[ " $SCENARIOS " == *" refresh_c"* ]]; then
    say "building examples/refresh_load"
    cargo build --release --locked --example refresh_load
  fi
  need_tools
  LOAD1=$(cut -d' ' -f1 /proc/loadavg)
  WHEN=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [ -n "$BASE_URL" ]; then
    BASE_URL=${BASE_URL%/}
    : "${LABEL:=$BASE_URL}"
  else
    start_server
    : "${LABEL:=this server}"
  fi
  set_pids
  RSS_START=""; [ ${#PIDS[@]} -gt 0 ] && RSS_START=$(rss_kb)
  login
  : >"$WORK/rows"
  for name in $SCENARIOS; do
    run_scenario "$name"
  done
  wait_idle
  RSS_END=""; [ ${#PIDS[@]} -gt 0 ] && RSS_END=$(rss_kb)
  # The commit of the server we built (an outside server's version is unknown to us).
  COMMIT=""
  if [ -n "$WRAPPER" ]; then
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || true)
    [ -n "$COMMIT" ] && [ -n "$(git status --porcelain 2>/dev/null | head -n1)" ] && COMMIT="$COMMIT+dirty"
  fi
  # Anything the server logged at warn or above during the run (startup notices aside).
  if [ -n "$WRAPPER" ] && grep -v -e 'LOGIN_THROTTLE=off' -e ' INFO ' "$WORK/server.log" | grep -q .; then
    say "server log lines at warn or above:"; grep -v ' INFO ' "$WORK/server.log" | tail -n 20 >&2
  fi
  export LABEL BASE_URL COMMIT WHEN LOAD1 DUR LDUR WRK_THREADS RSS_START RSS_END
  report
}

main "$@"

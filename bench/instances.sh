#!/usr/bin/env bash
# One instance against two on one PostgreSQL, in one run, throttling on: reads and logins per
# second, and the login latency with the throttle's counters shared through the database
# against counters in the process. Servers, all started at once with the tutorial's users:
#   memory   one instance, users in memory, in-process throttle (the default)
#   pg-1     one instance on PostgreSQL (shared throttle)
#   pg-2     two instances on the same PostgreSQL, the load split between them
# Each scenario runs on each in turn, the order rotating every round; medians are printed.
#
#   bench/instances.sh                 # 3 rounds, about 3 min
#   ROUNDS=5 DUR=8 bench/instances.sh
#
# Writes target/bench/instances.json. Needs wrk and Debian's postgresql (installed when root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${ROUNDS:=3}" "${DUR:=5}" "${LDUR:=8}" "${OUT:=target/bench/instances.json}"
# shellcheck source=bench/postgres.sh
. bench/postgres.sh

# shellcheck source=bench/servers.sh
. bench/servers.sh
on_exit() { pg_down; }

command -v wrk >/dev/null || {
  [ "$(id -u)" = 0 ] || { say "wrk is missing: sudo apt-get install -y wrk"; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
say "building the release binary"
cargo build --release --locked
BIN=$ROOT/target/release/oauth2-jwt-server
KEY=bench-only-secret-key-0123456789abcdef
cp src/store/seed_users.json "$WORK/seed.json"

# start NAME [DATABASE_URL]: a server with the throttle on, behind a trusted "proxy" (wrk).
start() {
  start_server "$1" "$BIN" SECRET_KEY=$KEY TRUSTED_PROXIES=127.0.0.1 ${2:+DATABASE_URL=$2}
}

pg_up
DB=$(pg_url bench)
(cd "$WORK" && DATABASE_URL=$DB "$BIN" users import seed.json >/dev/null)
start memory
start pg-1 "$DB"
start pg-2a "$DB"
start pg-2b "$DB"
TOKEN=$(curl -s -d username=johndoe -d password=secret "${URL[memory]}/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
LOGIN='grant_type=password&username=johndoe&password=secret'

# wrk_to NAME URL CONNS SECS PATH METHOD BODY TOKEN: one wrk in the background, output in $WORK.
wrk_to() {
  WRK_METHOD=$6 WRK_BODY=$7 WRK_TOKEN=$8 WRK_CLIENTS=16 \
    wrk -t1 -c"$3" -d"${4}s" --timeout 30s -s bench/wrk.lua "$2$5" >"$WORK/$1.out" 2>&1 &
  WRKS+=("$!")
}

# run SCENARIO SETUP ROUND: the scenario against one setup (pg-2: both instances at once, the
# connections split); appends one JSON line per instance to $WORK/rows.
run() {
  local scenario=$1 setup=$2 round=$3 conns secs path method body token targets
  case $scenario in
    me_c64) conns=64; secs=$DUR; path=/users/me/; method=GET; body=""; token=$TOKEN ;;
    login_c1) conns=1; secs=$LDUR; path=/token; method=POST; body=$LOGIN; token="" ;;
    login_c4) conns=4; secs=$LDUR; path=/token; method=POST; body=$LOGIN; token="" ;;
  esac
  # Two wrk processes share the connections for every setup (both against the one instance,
  # or one against each of the pair), so the client side is alike; one login at a time is a
  # single client, against the first instance of the pair.
  if [ "$conns" -eq 1 ]; then
    targets=$setup; [ "$setup" = pg-2 ] && targets=pg-2a
  else
    conns=$((conns / 2))
    case $setup in pg-2) targets="pg-2a pg-2b" ;; *) targets="$setup $setup" ;; esac
  fi
  say "round $round/$ROUNDS: $scenario on $setup"
  WRKS=()
  local n=0 target
  for target in $targets; do
    n=$((n + 1))
    wrk_to "wrk$n" "${URL[$target]}" "$conns" "$secs" "$path" "$method" "$body" "$token"
  done
  wait "${WRKS[@]}"
  for n in $(seq "$n"); do
    echo "{\"scenario\":\"$scenario\",\"setup\":\"$setup\",\"round\":$round,$(sed -n 's/^RESULT {//p' "$WORK/wrk$n.out")" >>"$WORK/rows"
  done
  # wrk abandons logins in flight at its deadline; let the servers finish hashing them.
  [ "$method" = POST ] && sleep 2
  return 0
}

: >"$WORK/rows"
setups=(memory pg-1 pg-2)
for round in $(seq "$ROUNDS"); do
  for scenario in me_c64 login_c1 login_c4; do
    for i in 0 1 2; do
      run "$scenario" "${setups[$(((i + round - 1) % 3))]}" "$round"
    done
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK/rows" "$OUT" <<'PY'
import collections, json, os, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
# Per round, a setup's figures: req/s summed over its instances, latencies the worst of them.
per_round = collections.defaultdict(list)
for row in rows:
    per_round[(row["scenario"], row["setup"], row["round"])].append(row)
merged = collections.defaultdict(list)
for (scenario, setup, _), parts in per_round.items():
    merged[(scenario, setup)].append({
        "rps": sum(p["rps"] for p in parts),
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "failed": sum(p["non2xx"] + p["socket_errors"] + p["timeouts"] for p in parts),
    })
summary = {}
for (scenario, setup), runs in merged.items():
    summary.setdefault(scenario, {})[setup] = {
        key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_ms", "p99_ms")
    } | {"failed": sum(run["failed"] for run in runs), "rounds": len(runs)}
json.dump({"nproc": os.cpu_count(), "scenarios": summary}, open(sys.argv[2], "w"), indent=1)
print(f"\nmedians of {len(runs)} rounds on {os.cpu_count()} cores; throttling on; pg-2 = two instances, load split")
print("{:<10}{:<8}{:>10}{:>9}{:>9}{:>8}".format("scenario", "setup", "req/s", "p50 ms", "p99 ms", "failed"))
for scenario in ("me_c64", "login_c1", "login_c4"):
    for setup in ("memory", "pg-1", "pg-2"):
        r = summary[scenario][setup]
        print(f"{scenario:<10}{setup:<8}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['failed']:>8}")
print(f"results: {sys.argv[2]}")
PY

#!/usr/bin/env bash
# The three user stores side by side, in one run: the server in memory (the default), on an
# SQLite file and on a throwaway PostgreSQL, all three started at once with the tutorial's
# users, then each scenario run against each in turn (the order rotating every round), with
# bench/load.sh. Prints medians over the rounds and each store's ratio to the in-memory one.
#
#   bench/backends.sh                                  # me_c64 and login_c4, 3 rounds (about 2 min)
#   ROUNDS=5 SCENARIOS="me_c64 items_c64 login_c4" bench/backends.sh
#   SERVER_ENV="REFRESH_TOKEN_EXPIRE_DAYS=30" SCENARIOS="refresh_c4 login_c4" bench/backends.sh
#                                                      # refresh grants per second, per store
#
# Writes target/bench/backends.json. Needs wrk (installed by load.sh when root) and Debian's
# postgresql (installed here when root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${ROUNDS:=3}" "${SCENARIOS:=me_c64 login_c4}" "${DUR:=5}" "${LDUR:=6}" "${BACKENDS:=memory sqlite postgres}"
: "${OUT:=target/bench/backends.json}" "${SERVER_ENV:=}"
export DUR LDUR
# shellcheck source=bench/postgres.sh
. bench/postgres.sh

# shellcheck source=bench/servers.sh
. bench/servers.sh
on_exit() { pg_down; }

say "building the release binary"
cargo build --release --locked
BIN=$ROOT/target/release/oauth2-jwt-server
cp src/store/seed_users.json "$WORK/seed.json"

# start NAME [DATABASE_URL]: the server with the tutorial's users (imported into the database).
start() {
  local name=$1 database=${2:-}
  if [ -n "$database" ]; then
    (cd "$WORK" && DATABASE_URL=$database "$BIN" users import seed.json >/dev/null)
  fi
  # shellcheck disable=SC2086 # SERVER_ENV is a list of VAR=VALUE words
  start_server "$name" "$BIN" SECRET_KEY=bench-only-secret-key-0123456789abcdef LOGIN_THROTTLE=off \
    ${database:+DATABASE_URL=$database} $SERVER_ENV
}

for backend in $BACKENDS; do
  case $backend in
    memory) start memory ;;
    sqlite) start sqlite "sqlite://$WORK/users.db" ;;
    postgres) pg_up; start postgres "$(pg_url bench)" ;;
    *) say "unknown backend $backend"; exit 2 ;;
  esac
done

read -ra order <<<"$BACKENDS"
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for i in "${!order[@]}"; do
      backend=${order[$(((i + round - 1) % ${#order[@]}))]}
      say "round $round/$ROUNDS: $scenario on $backend"
      BASE_URL=${URL[$backend]} SERVER_PID=${PID[$backend]} LABEL=$backend SCENARIOS=$scenario \
        OUT=$WORK/results/$round-$scenario-$backend.json bench/load.sh >/dev/null
    done
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK" "$OUT" "$BACKENDS" "$SCENARIOS" <<'PY'
import glob, json, os, statistics, sys
work, out, backends, scenarios = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
runs = {}
for path in glob.glob(os.path.join(work, "results", "*.json")):
    data = json.load(open(path))
    for name, figures in data["scenarios"].items():
        runs.setdefault((data["meta"]["label"], name), []).append(figures)
summary = {}
for (backend, scenario), rows in runs.items():
    summary.setdefault(scenario, {})[backend] = {
        key: statistics.median(row[key] for row in rows) for key in ("rps", "p50_ms", "p99_ms")
    } | {"rounds": len(rows), "non2xx": sum(row["non2xx"] for row in rows),
         "errors": sum(row["socket_errors"] + row["timeouts"] for row in rows)}
with open(out, "w") as f:
    json.dump({"nproc": os.cpu_count(), "scenarios": summary}, f, indent=1)
print(f"\nmedians of {len(next(iter(runs.values())))} rounds, {os.cpu_count()} cores; ratio = req/s / in-memory req/s")
print("{:<12}{:<10}{:>10}{:>9}{:>9}{:>8}{:>8}".format("scenario", "store", "req/s", "p50 ms", "p99 ms", "ratio", "errors"))
for scenario in scenarios:
    base = summary[scenario].get("memory", {}).get("rps")
    for backend in backends:
        r = summary[scenario][backend]
        ratio = f"{r['rps'] / base:.3f}" if base else "-"
        print(f"{scenario:<12}{backend:<10}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{ratio:>8}{r['non2xx'] + r['errors']:>8}")
print(f"results: {out}")
PY

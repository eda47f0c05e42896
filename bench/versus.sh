#!/usr/bin/env bash
# Two builds of the server side by side, in one run: A and B, each a git revision (default: the
# working tree) started with its own settings; each scenario runs on both in turn, ROUNDS
# times, the order alternating; prints medians and B's ratio to A. For the cost of a change
# on the same machine at the same time, e.g.:
#
#   A_REV=836cabd B_ENV="REFRESH_TOKEN_EXPIRE_DAYS=30" B_REVOKE=1 bench/versus.sh
#       # today's read path against the one before refresh tokens, with the revocation check
#       # doing its full work (B_REVOKE=1 revokes one access token on B before measuring)
#   A_ENV="" B_ENV="METRICS_ADDR=127.0.0.1:0" SCENARIOS=me_c64 bench/versus.sh
#
# Knobs: A_REV, B_REV (a commit; unset: the working tree), A_ENV, B_ENV (settings, space
# separated), B_REVOKE, SCENARIOS (bench/load.sh's names; me_c64 by default), ROUNDS (5), DUR.
# A revision is built once into target/versus/ (a git worktree and its own target directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${A_REV:=}" "${B_REV:=}" "${A_ENV:=}" "${B_ENV:=}" "${B_REVOKE:=}" "${SCENARIOS:=me_c64}" "${ROUNDS:=5}" "${DUR:=5}"
: "${OUT:=target/bench/versus.json}"
export DUR
# shellcheck source=bench/servers.sh
. bench/servers.sh

# binary REV: the release binary of REV (the working tree when empty), built if needed.
binary() {
  if [ -z "$1" ]; then
    cargo build --release --locked --bin oauth2-jwt-server >&2
    echo "$ROOT/target/release/oauth2-jwt-server"
    return
  fi
  local rev src
  rev=$(git rev-parse --short "$1")
  src=$ROOT/target/versus/src-$rev
  [ -d "$src" ] || git worktree add --detach "$src" "$rev" >&2
  (cd "$src" && CARGO_TARGET_DIR=$ROOT/target/versus/build-$rev cargo build --release --locked --bin oauth2-jwt-server >&2)
  echo "$ROOT/target/versus/build-$rev/release/oauth2-jwt-server"
}

# start NAME BINARY SETTINGS: the server with these settings (VAR=VALUE words).
start() {
  # shellcheck disable=SC2086 # the settings are words
  start_server "$1" "$2" SECRET_KEY=bench-only-secret-key-0123456789abcdef LOGIN_THROTTLE=off $3
}

start A "$(binary "$A_REV")" "$A_ENV"
start B "$(binary "$B_REV")" "$B_ENV"
if [ -n "$B_REVOKE" ]; then
  # One revoked token makes every read do the whole check (hash the signature, look it up).
  token=$(curl -s -d username=johndoe -d password=secret "${URL[B]}/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  [ "$(curl -s -o /dev/null -w '%{http_code}' -d "token=$token" "${URL[B]}/revoke")" = 200 ] || { say "B cannot revoke: set REFRESH_TOKEN_EXPIRE_DAYS"; exit 2; }
fi

mkdir -p "$WORK/results"
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for side in $([ $((round % 2)) = 1 ] && echo A B || echo B A); do
      say "round $round/$ROUNDS: $scenario on $side"
      BASE_URL=${URL[$side]} SERVER_PID=${PID[$side]} LABEL=$side SCENARIOS=$scenario \
        OUT=$WORK/results/$round-$scenario-$side.json bench/load.sh >/dev/null
    done
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK/results" "$OUT" "$SCENARIOS" "A ${A_REV:-working tree} ${A_ENV:-defaults}" "B ${B_REV:-working tree} ${B_ENV:-defaults}${B_REVOKE:+, one token revoked}" <<'PY'
import glob, json, os, statistics, sys
runs = {}
for path in glob.glob(os.path.join(sys.argv[1], "*.json")):
    data = json.load(open(path))
    for name, figures in data["scenarios"].items():
        runs.setdefault((name, data["meta"]["label"]), []).append(figures)
summary = {}
for (scenario, side), rows in runs.items():
    summary.setdefault(scenario, {})[side] = {key: statistics.median(r[key] for r in rows) for key in ("rps", "p50_ms", "p99_ms")} | {
        "rounds": len(rows), "failed": sum(r["non2xx"] + r["socket_errors"] + r["timeouts"] for r in rows)}
json.dump({"a": sys.argv[4], "b": sys.argv[5], "nproc": os.cpu_count(), "scenarios": summary}, open(sys.argv[2], "w"), indent=1)
print(f"\n{sys.argv[4]}\n{sys.argv[5]}\nmedians on {os.cpu_count()} cores; ratio = B req/s / A req/s")
print("{:<12}{:>11}{:>11}{:>8}{:>10}{:>10}{:>8}".format("scenario", "A req/s", "B req/s", "ratio", "A p99 ms", "B p99 ms", "failed"))
for scenario in sys.argv[3].split():
    a, b = summary[scenario]["A"], summary[scenario]["B"]
    print(f"{scenario:<12}{a['rps']:>11.1f}{b['rps']:>11.1f}{b['rps'] / a['rps']:>8.3f}{a['p99_ms']:>10.2f}{b['p99_ms']:>10.2f}{a['failed'] + b['failed']:>8}")
print(f"results: {sys.argv[2]}")
PY

#!/usr/bin/env bash
# Contract fuzzing with schemathesis: builds the release server, starts it on a free loopback
# port, logs in as johndoe and lets schemathesis check every answer against /openapi.json
# (server errors, undocumented statuses, bodies, content types and headers).
#
#   contract/run.sh                  # settings from contract/schemathesis.toml
#   contract/run.sh --seed 1234      # extra options go to `schemathesis run`, e.g. to replay a run
#   contract/run.sh -n 20            # fewer examples per operation
#
# Three schemathesis runs (johndoe on every operation; the disabled alice and a forged token on
# the protected routes). Exits with the first failing run's status, 0 when all pass. The server's
# log is kept in target/contract/server.log.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
requirements=contract/requirements.txt
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

# The venv is (re)made when it is missing or was installed from other pins.
if [[ ! -x $venv/bin/schemathesis ]] || ! cmp -s "$requirements" "$venv/installed-requirements.txt"; then
    echo "contract: installing schemathesis into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    cp "$requirements" "$venv/installed-requirements.txt"
fi

cargo build --release --locked

mkdir -p target/contract
log=target/contract/server.log
: >"$log"
server_pid=
stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap stop_server EXIT

# A fixed key (tokens are only ever used against this process) and no login throttling, so that
# the fuzzer's many failed logins are answered 401, not 429.
BIND_ADDR=127.0.0.1:0 \
    SECRET_KEY=contract-fuzzing-0123456789abcdef0123456789abcdef0123456789abcdef \
    LOGIN_THROTTLE=off \
    RUST_LOG=${RUST_LOG:-info} \
    timeout 1200 target/release/oauth2-jwt-server >"$log" 2>&1 &
server_pid=$!

port=
for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $port ]]; then
    echo "contract: the server did not start; its log:" >&2
    cat "$log" >&2
    exit 1
fi
base=http://127.0.0.1:$port
echo "contract: server on $base (log: $log)" >&2

login() {
    curl -fsS --max-time 10 --data-urlencode "username=$1" --data-urlencode "password=$2" "$base/token" |
        "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
john=$(login johndoe secret)
alice=$(login alice secretalice)

# One schemathesis run per identity; the first failing run's status is the script's.
status=0
fuzz() {
    local name=$1 token=$2
    shift 2
    echo >&2
    echo "contract: === $name ===" >&2
    local code=0
    CONTRACT_TOKEN=$token timeout 900 "$venv/bin/schemathesis" --config-file contract/schemathesis.toml \
        run "$base/openapi.json" "$@" || code=$?
    if ((status == 0 && code != 0)); then status=$code; fi
}
# Every operation, as the active user johndoe: 200s, and the login form's 401/422/400s.
fuzz "all operations as johndoe" "$john" "$@"
# The protected routes' error answers: 400 Inactive user, and 401 for a token that is not ours.
# (Their warnings only say that every answer was an error, which is the point here.)
fuzz "protected routes as the disabled alice" "$alice" --include-method GET --warnings off "$@"
fuzz "protected routes with a forged token" "${john%?????}xxxxx" --include-method GET --warnings off "$@"
exit "$status"

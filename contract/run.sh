#!/usr/bin/env bash
# Contract fuzzing with schemathesis: builds the release server, starts it on a free loopback
# port, logs in as johndoe and lets schemathesis check every answer against /openapi.json
# (server errors, undocumented statuses, bodies, content types and headers).
#
#   contract/run.sh                  # settings from contract/schemathesis.toml
#   contract/run.sh --seed 1234      # extra options go to `schemathesis run`, e.g. to replay a run
#   contract/run.sh -n 20            # fewer examples per operation
#
# Five schemathesis runs: johndoe on every operation; the disabled alice and a forged token on
# the protected routes; then a second server with the token lifecycle on (refresh tokens and
# /revoke, RFC 6749 errors, a key set and its route), and a third in scopes mode (SCOPES), every
# operation. Exits with the first
# failing run's status, 0 when all pass. The servers' logs are kept in target/contract/.
set -euo pipefail
# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
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
server_pids=()
stop_servers() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_servers EXIT

# start_server NAME [SETTING=VALUE...]: the release server on a free port, its log in
# target/contract/NAME.log; sets base. A fixed key (tokens are only ever used against this
# process) and no login throttling, so that the fuzzer's many failed logins are answered 401
# (or 400 invalid_grant), not 429.
start_server() {
    local name=$1 log=target/contract/$1.log port=
    shift
    : >"$log"
    env BIND_ADDR=127.0.0.1:0 \
        SECRET_KEY=contract-fuzzing-0123456789abcdef0123456789abcdef0123456789abcdef \
        LOGIN_THROTTLE=off \
        RUST_LOG="${RUST_LOG:-info}" \
        "$@" timeout 1200 target/release/oauth2-jwt-server >"$log" 2>&1 &
    server_pids+=("$!")
    for _ in $(seq 100); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" | head -n 1)
        [[ -n $port ]] && break
        kill -0 "${server_pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        echo "contract: the $name server did not start; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    base=http://127.0.0.1:$port
    echo "contract: $name server on $base (log: $log)" >&2
}
start_server server

# login USER PASSWORD [SCOPE]: an access token.
login() {
    curl -fsS --max-time 10 --data-urlencode "username=$1" --data-urlencode "password=$2" \
        --data-urlencode "scope=${3:-}" "$base/token" |
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

# The token lifecycle switched on: refresh grant and /revoke, RFC 6749 errors, a key set and
# its route; the document the server serves then describes them. Fewer examples: the login
# form was fuzzed above.
keys=target/contract/jwt-keys.json
printf '{"keys": [%s]}\n' "$(target/release/oauth2-jwt-server keys generate --alg EdDSA)" >"$keys"
start_server lifecycle REFRESH_TOKEN_EXPIRE_DAYS=30 TOKEN_ERRORS=rfc6749 JWT_KEYS_FILE="$keys"
fuzz "token lifecycle: all operations as johndoe" "$(login johndoe secret)" --max-examples 150 "$@"

# Scopes mode (the chapter's SCOPES): the scopes in the document, /status/, the 401s that name
# a route's scopes; johndoe's token has both scopes, so every route can answer 200.
start_server scopes SCOPES='{"me": "Read information about the current user.", "items": "Read items."}'
fuzz "scopes: all operations as johndoe" "$(login johndoe secret 'me items')" --max-examples 100 "$@"
exit "$status"

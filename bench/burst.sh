#!/usr/bin/env bash
# A burst of simultaneous wrong guesses, as an attacker would send them: N connections are
# opened first, then every one sends its login at the same instant (a thread barrier). Prints
# how many were answered 401 (hashed and counted) and how many 429 (refused at once).
#
#   bench/burst.sh                       # 30 guesses for johndoe from one client, server on defaults
#   N=60 KIND=user bench/burst.sh        # one username from 60 addresses (X-Forwarded-For)
#   N=80 KIND=ip bench/burst.sh          # 80 usernames from one client
#   BASE_URL=http://127.0.0.1:8000 bench/burst.sh   # a running server (KIND=user needs
#                                                   # TRUSTED_PROXIES=127.0.0.1 there)
set -euo pipefail
# Our servers stop at once on SIGTERM (no readiness drain) between runs.
export SHUTDOWN_DRAIN_SECS="${SHUTDOWN_DRAIN_SECS:-0}"
cd "$(dirname "$0")/.."
: "${N:=30}" "${KIND:=user-ip}" "${BASE_URL:=}"

server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; true' EXIT
if [ -z "$BASE_URL" ]; then
  cargo build --release --locked --bin oauth2-jwt-server >&2
  log=$(mktemp)
  # Defaults, except that KIND=user needs the loopback proxy trusted to vary the client address.
  BIND_ADDR=127.0.0.1:0 TRUSTED_PROXIES=127.0.0.1 SECRET_KEY=burst-bench-key-0123456789abcdef \
    RUST_LOG=warn,oauth2_jwt_server=info timeout 600 target/release/oauth2-jwt-server >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    BASE_URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1) && [ -n "$BASE_URL" ] && break
    sleep 0.1
  done
  [ -n "$BASE_URL" ] || { echo "burst: the server did not start" >&2; cat "$log" >&2; exit 1; }
fi

python3 - "$BASE_URL" "$N" "$KIND" <<'PY'
import collections, http.client, sys, threading, time, urllib.parse
base, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
url = urllib.parse.urlparse(base)
barrier = threading.Barrier(n)
results = [None] * n

def guess(i):
    username = f"nosuchuser{i}" if kind == "ip" else "johndoe"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if kind == "user":
        headers["x-forwarded-for"] = f"198.51.{100 + i // 250}.{i % 250 + 1}"
    body = urllib.parse.urlencode({"username": username, "password": f"wrong-{i}"})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.connect()
    barrier.wait()
    started = time.monotonic()
    conn.request("POST", "/token", body, headers)
    response = conn.getresponse()
    response.read()
    results[i] = (response.status, time.monotonic() - started)
    conn.close()

threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
for thread in threads: thread.start()
for thread in threads: thread.join()
counts = collections.Counter(status for status, _ in results)
slowest = {status: max(t for s, t in results if s == status) * 1000 for status in counts}
print(f"{n} simultaneous wrong guesses ({kind}): " + ", ".join(
    f"{counts[s]} answered {s} (slowest {slowest[s]:.0f} ms)" for s in sorted(counts)))
PY

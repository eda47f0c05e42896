# A throwaway PostgreSQL for the benchmarks, from Debian's package: its own data directory,
# listening only on a unix socket there. Source this file, then:
#   pg_up                # starts it; sets PG_DIR and PG_SOCKET_URL (a URL prefix for pg_url)
#   pg_url NAME          # creates database NAME and prints its DATABASE_URL
#   pg_down              # stops it and removes the directory (also call it from your EXIT trap)
# Installs the package when it is missing and we are root (apt-get), else says how.

PG_DIR=""

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "bench: installing Debian's postgresql" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    else
      echo "bench: PostgreSQL is missing: sudo apt-get install -y postgresql" >&2
      return 2
    fi
  fi
  echo "$bin"
}

# Runs a PostgreSQL program as the postgres user when we are root (initdb refuses root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_up() {
  local bin
  bin=$(pg_bin) || return 2
  PG_BIN=$bin
  PG_DIR=$(mktemp -d /tmp/pgbench.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  pg_as_owner "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
  # Durable settings as a production server would have them: the benchmark measures what a
  # user would see, fsync included.
  pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -s \
    -o "-c listen_addresses='' -k $PG_DIR -c max_connections=200" start
  PG_SOCKET_URL="postgres://postgres@$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PG_DIR")"
}

pg_url() {
  pg_as_owner "$PG_BIN/psql" -q -h "$PG_DIR" -U postgres -d postgres -c "CREATE DATABASE $1" >/dev/null
  echo "$PG_SOCKET_URL/$1"
}

pg_down() {
  [ -n "$PG_DIR" ] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -s stop 2>/dev/null || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

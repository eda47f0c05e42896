#!/usr/bin/env bash
# Installs what the PostgreSQL tests need, when it is missing: Debian's postgresql package (its
# binaries in /usr/lib/postgresql/<version>/bin; the tests start their own throwaway servers,
# so the cluster the package may create is not used).
set -euo pipefail

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "postgres: /usr/lib/postgresql/*/bin/initdb is missing; install it with: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
fi

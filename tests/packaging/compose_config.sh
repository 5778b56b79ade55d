#!/usr/bin/env bash
# Validates docker/compose.yaml without a Docker engine: `docker-compose config` parses and
# normalizes the file, or prints what is wrong. Then checks what the tests rely on: both
# services published on 127.0.0.1 only, 2PC enabled, and the xact user and databases.
#
#   compose_config.sh <compose.yaml>
# Exit 77 (skipped) when neither docker-compose nor `docker compose` is installed, unless
# CI=true: CI installs docker-compose (scripts/install-deps.sh test), so missing is a failure.
set -euo pipefail

compose_file=${1:?usage: $0 <compose.yaml>}
[[ -f $compose_file ]] || {
  echo "compose_config: $compose_file does not exist" >&2
  exit 1
}

if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if [[ ${CI:-} == true ]]; then
    echo "compose_config: docker-compose is not installed (CI=true: failing; run scripts/install-deps.sh test)" >&2
    exit 1
  fi
  echo "compose_config: docker-compose is not installed: skipped"
  exit 77
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The file reads XACT_* variables for its ports; validate it with the defaults.
env -u XACT_PG_PORT -u XACT_MYSQL_PORT "${compose[@]}" -f "$compose_file" config >"$out"
cat "$out"

failed=0
expect() {
  if ! grep -Eq -- "$1" "$out"; then
    echo "compose_config: expected /$1/ in the normalized file: $2" >&2
    failed=1
  fi
}
expect 'max_prepared_transactions=[1-9]' "PostgreSQL needs max_prepared_transactions > 0 for 2PC"
expect 'image: (docker\.io/(library/)?)?postgres:15' "PostgreSQL 15"
expect 'image: (docker\.io/(library/)?)?mysql:8' "MySQL 8"
expect 'xact_test2' "the second database"
expect 'healthcheck' "healthchecks"
# Every published port is bound to loopback. docker-compose 1.x prints the short form
# "127.0.0.1:15432:5432/tcp", Compose v2 the long form with host_ip and published.
short_ports=$(grep -Ec '^\s*- "?([0-9.]+:)?[0-9]+:[0-9]+(/[a-z]+)?"?$' "$out" || true)
short_loopback=$(grep -Ec '^\s*- "?127\.0\.0\.1:[0-9]+:[0-9]+(/[a-z]+)?"?$' "$out" || true)
long_ports=$(grep -Ec '^\s*(- )?published:' "$out" || true)
long_loopback=$(grep -Ec '^\s*(- )?host_ip: "?127\.0\.0\.1"?$' "$out" || true)
if [[ $short_ports -ne $short_loopback || $long_ports -ne $long_loopback ]]; then
  echo "compose_config: a port is published on an address other than 127.0.0.1" >&2
  failed=1
fi
if ((short_ports + long_ports < 2)); then
  echo "compose_config: expected a published port for each of postgres and mysql" >&2
  failed=1
fi
if [[ $failed -ne 0 ]]; then
  exit 1
fi
echo "compose_config: $compose_file is valid"

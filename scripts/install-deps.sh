#!/usr/bin/env bash
# Installs the Debian packages xact needs, and only those that are missing.
#
#   scripts/install-deps.sh [demo|test]     (default: demo)
#
#   demo  what building the library and running the demo needs
#   test  demo + the database client libraries and the PostgreSQL/MariaDB servers the
#         integration tests start, python3-transaction (reference semantics) and
#         docker-compose (to validate docker/compose.yaml without a Docker engine)
#
# Runs as root (or through sudo when it is there), with no standard input. Already
# installed packages are never upgraded (--no-upgrade): a test run must not change the
# machine more than it has to. `apt-get update` runs only when something is missing and
# the package lists are absent or stale, or when an install failed on an old list.
set -euo pipefail

readonly DEMO_PACKAGES=(
  build-essential cmake pkg-config
  libboost-dev libboost-program-options-dev
  libgtest-dev libsqlite3-dev libbenchmark-dev libisal-dev
  ccache libtomlplusplus-dev
)
readonly TEST_PACKAGES=(
  "${DEMO_PACKAGES[@]}"
  libpqxx-dev libmysqlcppconn-dev
  mariadb-server mariadb-client postgresql-15
  python3-transaction docker-compose
)
# Package lists older than this are refreshed before installing anything.
readonly MAX_LIST_AGE_SECONDS=$((24 * 60 * 60))

log() { printf 'install-deps: %s\n' "$*" >&2; }

usage() {
  echo "usage: $0 [demo|test]" >&2
  exit 2
}

set_name=${1:-demo}
case "$set_name" in
  demo) wanted=("${DEMO_PACKAGES[@]}") ;;
  test) wanted=("${TEST_PACKAGES[@]}") ;;
  -h | --help) usage ;;
  *) usage ;;
esac

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    log "not root and no sudo: cannot install packages"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-upgrade --no-install-recommends
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

is_installed() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
  [[ $status == ii* ]]
}

missing=()
for pkg in "${wanted[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#wanted[@]} packages of the '$set_name' set are installed"
  exit 0
fi
log "missing: ${missing[*]}"

lists_are_fresh() {
  local newest=0 mtime f
  shopt -s nullglob
  for f in /var/lib/apt/lists/*_InRelease /var/lib/apt/lists/*_Release; do
    mtime=$(stat -c %Y "$f")
    ((mtime > newest)) && newest=$mtime
  done
  shopt -u nullglob
  ((newest > 0 && $(date +%s) - newest < MAX_LIST_AGE_SECONDS))
}

updated=0
apt_update() {
  log "apt-get update"
  "${SUDO[@]}" apt-get update -q </dev/null
  updated=1
}

lists_are_fresh || apt_update

# Package scripts must not start a system-wide MariaDB on port 3306: the tests start their
# own throwaway servers. A policy-rc.d that answers 101 ("action forbidden") stops
# invoke-rc.d. An existing policy is left as it is.
for pkg in "${missing[@]}"; do
  if [[ $pkg == mariadb-server ]] && [[ ! -e /usr/sbin/policy-rc.d ]]; then
    log "creating /usr/sbin/policy-rc.d (exit 101) so no system MariaDB is started"
    printf '#!/bin/sh\n# Written by xact scripts/install-deps.sh: no service starts on install.\nexit 101\n' |
      "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  fi
done

if ! "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null; then
  if [[ $updated -eq 1 ]]; then
    log "apt-get install failed"
    exit 1
  fi
  log "apt-get install failed; refreshing the package lists and trying again"
  apt_update
  "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null
fi

still_missing=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still_missing+=("$pkg")
done
if [[ ${#still_missing[@]} -ne 0 ]]; then
  log "still not installed: ${still_missing[*]}"
  exit 1
fi
log "installed: ${missing[*]}"

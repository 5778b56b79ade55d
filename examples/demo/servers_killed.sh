#!/usr/bin/env bash
# The demo under load while its database servers are killed at random instants
# (ctest demo_servers_killed, demo_servers_killed_crash).
#
#   servers_killed.sh XACT_DEMO [--crash] [--seconds S] [--seed N]
#
# Runs `XACT_DEMO --require-servers --clients 4 --seconds S` (with --crash: run 1 is also killed
# at a random crash point, restarted and recovered) and, during its load, at random instants:
# kill-pg and kill-mysql (SIGKILL, restart at once) and one outage of one server (down-pg/up-pg
# or down-mysql/up-mysql, 1-2 s). Then it requires the demo's exit status 0 and its
# "invariants: PASS", and that neither server keeps anything of the demo's transactions:
# no prepared transaction of its resource in pg_prepared_xacts and no xact XA branch in
# XA RECOVER (waiting up to 20 s, as a test running beside it may hold some for a moment). The
# demo itself checks, before its PASS, that its re-driver finished everything and that no branch
# of its node is left prepared in PostgreSQL or fenced in the session table.
#
# The servers are those of scripts/servers.sh (source DIR/env.sh): without them it exits 77
# (a skip), or 1 with CI=true. The seed (--seed, or XACT_CHAOS_SEED) reproduces the instants.
set -uo pipefail

readonly LEFTOVER_WAIT_SECONDS=20

say() { printf 'servers_killed: %s\n' "$*"; }
# The word ctest's FAIL_REGULAR_EXPRESSION looks for, once, with the reason.
fail() {
  say "FAIL: $*"
  exit 1
}

[[ $# -ge 1 ]] || {
  echo "usage: $0 XACT_DEMO [--crash] [--seconds S] [--seed N]" >&2
  exit 2
}
demo=$1
shift
crash=0
seconds=
seed=${XACT_CHAOS_SEED:-}
while [[ $# -gt 0 ]]; do
  case $1 in
    --crash) crash=1 ;;
    --seconds)
      seconds=$2
      shift
      ;;
    --seed)
      seed=$2
      shift
      ;;
    *)
      echo "$0: unknown option $1" >&2
      exit 2
      ;;
  esac
  shift
done
# The load's length: with --crash, run 1 and run 2 each run this long.
[[ -n $seconds ]] || seconds=$((crash ? 6 : 9))
[[ -x $demo ]] || fail "$demo is not an executable"

# What --require-servers asks for, and what it takes to kill the servers and to look into them.
missing=()
for v in XACT_SERVERS_SCRIPT XACT_SERVERS_DIR XACT_PG_URI XACT_PG_HOST XACT_PG_PORT XACT_PG_USER \
  XACT_PG_PASSWORD XACT_PG_DB XACT_MYSQL_HOST XACT_MYSQL_PORT XACT_MYSQL_USER \
  XACT_MYSQL_PASSWORD XACT_MYSQL_DB; do
  [[ -n ${!v:-} ]] || missing+=("$v")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  msg="${missing[*]} not set (scripts/servers.sh start DIR; source DIR/env.sh)"
  if [[ ${CI:-} == true ]]; then
    fail "$msg"
  fi
  say "$msg: skipped"
  exit 77
fi
psql_bin=psql
[[ -n ${XACT_PG_BIN_DIR:-} && -x $XACT_PG_BIN_DIR/psql ]] && psql_bin=$XACT_PG_BIN_DIR/psql
command -v "$psql_bin" >/dev/null || fail "no psql"
command -v mariadb >/dev/null || fail "no mariadb client"

pg_query() {
  PGPASSWORD=$XACT_PG_PASSWORD PGCONNECT_TIMEOUT=3 "$psql_bin" -X -A -t -q -v ON_ERROR_STOP=1 \
    -h "$XACT_PG_HOST" -p "$XACT_PG_PORT" -U "$XACT_PG_USER" -d "$XACT_PG_DB" -c "$1"
}
my_query() {
  mariadb --no-defaults --connect-timeout=3 -N -B -h "$XACT_MYSQL_HOST" -P "$XACT_MYSQL_PORT" \
    -u "$XACT_MYSQL_USER" "-p$XACT_MYSQL_PASSWORD" "$XACT_MYSQL_DB" -e "$1"
}
servers() { "$XACT_SERVERS_SCRIPT" "$1" "$XACT_SERVERS_DIR"; }

# --- the schedule -------------------------------------------------------------------------------

[[ -n $seed ]] || seed=$(((RANDOM << 15 | RANDOM) % 1000000))
RANDOM=$seed
# The events fall in [0.5, window - 1.5] seconds after the load started, in tenths of a second.
# With --crash, run 1 usually dies at its crash point within a second or two (hit 1-50 of a step,
# at hundreds of commits a second) and run 2 then loads for `seconds`: the window is that long.
window=$((crash ? seconds + 2 : seconds))
span=$((window * 10 - 20))
at() { echo $((5 + RANDOM % span)); }
outage_server=$((RANDOM % 2 ? 1 : 0))
outage_tenths=$((10 + RANDOM % 11))
events=(
  "$(at) kill-pg"
  "$(at) kill-mysql"
  "$(at) outage-$([[ $outage_server == 1 ]] && echo pg || echo mysql)"
)
mapfile -t events < <(printf '%s\n' "${events[@]}" | sort -n)
say "seed $seed (--seed $seed reproduces this schedule); load $seconds s$([[ $crash == 1 ]] && echo ' per run, with --crash')"
for e in "${events[@]}"; do
  read -r t what <<<"$e"
  say "  at $((t / 10)).$((t % 10)) s: $what$([[ $what == outage-* ]] && echo " for $((outage_tenths / 10)).$((outage_tenths % 10)) s")"
done

# --- the run ------------------------------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/xact-servers-killed.XXXXXX")
demo_pid=
cleanup() {
  [[ -n $demo_pid ]] && kill -KILL "$demo_pid" 2>/dev/null
  # Never leave a server down, whatever happened.
  "$XACT_SERVERS_SCRIPT" status "$XACT_SERVERS_DIR" >/dev/null 2>&1 || {
    servers up-pg >/dev/null 2>&1
    servers up-mysql >/dev/null 2>&1
  }
  rm -rf "$work"
}
trap cleanup EXIT

args=(--require-servers --clients 4 --seconds "$seconds")
[[ $crash == 1 ]] && args+=(--crash)
say "$demo ${args[*]}"
"$demo" "${args[@]}" >"$work/out" 2>&1 &
demo_pid=$!
tail -n +1 -f --pid="$demo_pid" "$work/out" &
tail_pid=$!

# The clock starts when the load does (the demo's "serving on" line), so that the events hit the
# load and not the start-up; with --crash, run 2's start-up may be hit too.
for ((i = 0; i < 600; i++)); do
  grep -q 'serving on' "$work/out" && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.05
done
start_ns=$(date +%s%N)
for e in "${events[@]}"; do
  read -r t what <<<"$e"
  now_tenths=$((($(date +%s%N) - start_ns) / 100000000))
  [[ $t -gt $now_tenths ]] && sleep "$(((t - now_tenths) / 10)).$(((t - now_tenths) % 10))"
  kill -0 "$demo_pid" 2>/dev/null || {
    say "the demo ended before $what: not run"
    break
  }
  now_tenths=$((($(date +%s%N) - start_ns) / 100000000))
  say "$((now_tenths / 10)).$((now_tenths % 10)) s: $what"
  case $what in
    kill-pg | kill-mysql) servers "$what" || fail "$what did not restart the server" ;;
    outage-*)
      servers "down-${what#outage-}" || fail "down-${what#outage-} failed"
      sleep "$((outage_tenths / 10)).$((outage_tenths % 10))"
      servers "up-${what#outage-}" || fail "up-${what#outage-} failed"
      ;;
  esac
  now_tenths=$((($(date +%s%N) - start_ns) / 100000000))
  say "$((now_tenths / 10)).$((now_tenths % 10)) s: $what done"
done

wait "$demo_pid"
status=$?
demo_pid=
wait "$tail_pid" 2>/dev/null
[[ $status -eq 0 ]] || fail "the demo exited with status $status (seed $seed)"
grep -q 'invariants: PASS' "$work/out" || fail "no 'invariants: PASS' line (seed $seed)"

# --- leftovers ----------------------------------------------------------------------------------

# The demo's PostgreSQL branches are named by its resource, "postgres:profiles" (the gid's last
# part is the name in hex); xact's XA branches have format id 0x7861 (30817).
bqual_hex=$(printf '%s' 'postgres:profiles' | od -An -tx1 | tr -d ' \n')
pg_left_sql="SELECT count(*) FROM pg_prepared_xacts WHERE database = '$XACT_PG_DB' AND gid LIKE 'xact-%-$bqual_hex'"
deadline=$((SECONDS + LEFTOVER_WAIT_SECONDS))
while :; do
  pg_left=$(pg_query "$pg_left_sql" 2>&1) || pg_left="? ($pg_left)"
  if xa=$(my_query "XA RECOVER" 2>&1); then
    xa_left=$(awk -F'\t' '$1 == 30817' <<<"$xa" | grep -c .)
  else
    xa_left="? ($xa)"
  fi
  [[ $pg_left == 0 && $xa_left == 0 ]] && break
  if [[ $SECONDS -ge $deadline ]]; then
    fail "left behind after ${LEFTOVER_WAIT_SECONDS} s (seed $seed): $pg_left prepared transactions of postgres:profiles in pg_prepared_xacts, $xa_left xact XA branches in XA RECOVER"
  fi
  sleep 0.5
done
say "nothing left behind: no prepared transaction, no XA branch"
say "PASS (seed $seed)"

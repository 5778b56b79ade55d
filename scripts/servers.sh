#!/usr/bin/env bash
# Throwaway PostgreSQL 15 and MariaDB 10.11 servers for xact's integration and crash tests.
#
#   scripts/servers.sh start         DIR   initialize and start both, write DIR/env.sh
#   scripts/servers.sh stop          DIR   stop both (idempotent; kills what does not stop)
#   scripts/servers.sh status        DIR   exit 0 when both answer
#   scripts/servers.sh restart-pg    DIR   clean restart of PostgreSQL
#   scripts/servers.sh kill-pg       DIR   SIGKILL every PostgreSQL process, start again (a crash)
#   scripts/servers.sh restart-mysql DIR   clean restart of MariaDB
#   scripts/servers.sh kill-mysql    DIR   SIGKILL mariadbd, start again (a crash)
#   scripts/servers.sh down-pg       DIR   SIGKILL every PostgreSQL process and leave it down
#   scripts/servers.sh up-pg         DIR   start PostgreSQL again (after down-pg)
#   scripts/servers.sh down-mysql    DIR   SIGKILL mariadbd and leave it down
#   scripts/servers.sh up-mysql      DIR   start MariaDB again (after down-mysql)
#
# Everything lives in DIR: data, sockets, logs, pid files. Both servers listen on 127.0.0.1
# only, on free ports the script picks (never 5432/3306), with fsync on, so a prepared
# transaction survives kill-pg/kill-mysql exactly as it would survive a real crash.
# Tests read the connection settings from DIR/env.sh (`source DIR/env.sh`):
#   XACT_PG_{HOST,PORT,USER,PASSWORD,DB,DB2,URI,URI2}, XACT_MYSQL_{HOST,PORT,USER,PASSWORD,DB,DB2}
# and, to restart or crash a server themselves (`"$XACT_SERVERS_SCRIPT" kill-pg "$XACT_SERVERS_DIR"`):
#   XACT_SERVERS_DIR, XACT_SERVERS_SCRIPT, XACT_PG_BIN_DIR, XACT_PG_DATA, XACT_PG_SOCKET_DIR,
#   XACT_MYSQL_DATA, XACT_MYSQL_SOCKET, XACT_MYSQL_PID_FILE
# A test that restarts a server must hold a ctest RESOURCE_LOCK against the other tests.
#
# As root, PostgreSQL runs as the `postgres` user (initdb refuses root) and MariaDB as root;
# as any other user, both run as that user.
set -euo pipefail

readonly PG_VERSION=15
readonly PG_BIN_DIR=${XACT_PG_BIN_DIR:-/usr/lib/postgresql/$PG_VERSION/bin}
readonly MARIADBD=${XACT_MARIADBD:-/usr/sbin/mariadbd}
readonly DB_USER=xact
readonly DB_PASSWORD=xact
readonly DB_NAME=xact_test
readonly DB_NAME2=xact_test2
readonly HOST=127.0.0.1
readonly START_TIMEOUT_SECONDS=60

SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
readonly SCRIPT_PATH

log() { printf 'servers: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,15p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
[[ -n $2 ]] || usage
if [[ $cmd == start ]]; then
  mkdir -p "$2"
elif [[ ! -d $2 ]]; then
  [[ $cmd == stop ]] && exit 0
  die "$2 does not exist: run '$0 start $2' first"
fi
DIR=$(cd "$2" && pwd)
readonly DIR

readonly PG_DATA=$DIR/pg
readonly PG_RUN=$DIR/pg-run
readonly PG_LOG=$PG_RUN/postgres.log
readonly MY_DATA=$DIR/my
readonly MY_RUN=$DIR/my-run
readonly MY_SOCKET=$MY_RUN/mariadb.sock
readonly MY_PID_FILE=$MY_RUN/mariadb.pid
readonly MY_LOG=$MY_RUN/mariadb.err
readonly STATE_FILE=$DIR/ports.env
readonly ENV_FILE=$DIR/env.sh

if [[ $(id -u) -eq 0 ]]; then
  PG_OS_USER=postgres
  MY_USER_ARGS=(--user=root)
else
  PG_OS_USER=$(id -un)
  MY_USER_ARGS=()
fi
readonly PG_OS_USER

# Runs a command as the owner of the PostgreSQL cluster.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

# --- ports ------------------------------------------------------------------------------

port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null
  fi
}

# Prints a port nobody listens on, below the ephemeral range (32768+) so that outgoing
# connections do not take it between the probe and the server's bind.
free_port() {
  local avoid=${1:-} port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12000))
    [[ $port == "$avoid" ]] && continue
    port_in_use "$port" && continue
    echo "$port"
    return 0
  done
  die "found no free port in 20000-31999"
}

load_state() {
  [[ -f $STATE_FILE ]] || die "$STATE_FILE is missing: run '$0 start $DIR' first"
  # shellcheck source=/dev/null
  source "$STATE_FILE"
}

save_state() {
  {
    printf 'PG_PORT=%q\n' "$PG_PORT"
    printf 'MY_PORT=%q\n' "$MY_PORT"
  } >"$STATE_FILE"
}

# --- PostgreSQL -------------------------------------------------------------------------

pg_pid() {
  [[ -f $PG_DATA/postmaster.pid ]] || return 1
  local pid
  pid=$(head -n1 "$PG_DATA/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

pg_init() {
  command -v "$PG_BIN_DIR/initdb" >/dev/null || die "no $PG_BIN_DIR/initdb: install postgresql-$PG_VERSION (scripts/install-deps.sh test)"
  # The cluster owner must reach DIR; mktemp -d makes it 0700 and root-owned.
  chmod a+x "$DIR"
  as_pg test -x "$DIR" || die "user $PG_OS_USER cannot enter $DIR (a parent directory is private): choose a directory under /tmp"
  rm -rf "$PG_DATA" "$PG_RUN"
  mkdir -p "$PG_DATA" "$PG_RUN"
  chmod 700 "$PG_DATA"
  if [[ $(id -u) -eq 0 ]]; then chown "$PG_OS_USER:" "$PG_DATA" "$PG_RUN"; fi
  as_pg "$PG_BIN_DIR/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_RUN/initdb.log" 2>&1 ||
    {
      cat "$PG_RUN/initdb.log" >&2
      die "initdb failed"
    }
  pg_write_conf
}

pg_write_conf() {
  # postgresql.auto.conf wins over postgresql.conf and is meant for generated settings.
  as_pg tee "$PG_DATA/postgresql.auto.conf" >/dev/null <<EOF
# Written by xact scripts/servers.sh
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_prepared_transactions = 64
max_connections = 100
fsync = on
synchronous_commit = on
full_page_writes = on
# Crash restarts (kill-pg) sync the data directory before recovery; syncfs does it in one call
# (1.4 s instead of 6.6 s here) with the same durability.
recovery_init_sync_method = syncfs
# The deadlock tests wait this long for the detector (default 1 s).
deadlock_timeout = 100ms
logging_collector = off
log_min_messages = warning
EOF
}

pg_start() {
  local attempt
  for attempt in 1 2 3; do
    if as_pg "$PG_BIN_DIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$START_TIMEOUT_SECONDS" \
      start >/dev/null; then
      return 0
    fi
    # Another process may have taken the port since it was probed: pick a new one.
    if grep -q 'could not bind\|Address already in use' "$PG_LOG" 2>/dev/null && [[ $attempt -lt 3 ]]; then
      PG_PORT=$(free_port "$MY_PORT")
      log "PostgreSQL port taken, retrying on $PG_PORT"
      pg_write_conf
      save_state
      write_env
      continue
    fi
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start (log: $PG_LOG)"
  done
}

pg_stop() {
  [[ -d $PG_DATA ]] || return 0
  pg_pid >/dev/null || return 0
  if ! as_pg "$PG_BIN_DIR/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
    log "PostgreSQL did not stop in time: killing it"
    pg_kill_all
  fi
}

# SIGKILLs the postmaster and every backend it started, then waits until they are gone (a
# new postmaster refuses to start while an old backend still holds the shared memory).
pg_kill_all() {
  local pid children i
  pid=$(pg_pid) || return 0
  children=$(pgrep -P "$pid" || true)
  # shellcheck disable=SC2086
  kill -KILL "$pid" $children 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    # shellcheck disable=SC2086
    kill -0 "$pid" $children 2>/dev/null || return 0
    sleep 0.1
  done
  die "PostgreSQL processes $pid $children survived SIGKILL"
}

pg_psql() {
  as_pg "$PG_BIN_DIR/psql" -X -q -h "$PG_RUN" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

pg_setup() {
  # Least privilege: the tests' role owns its databases and may create others, nothing
  # more (docker/compose.yaml makes it a superuser; code that passes here passes there).
  pg_psql -d postgres >/dev/null <<EOF
CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
GRANT pg_signal_backend TO $DB_USER;
CREATE DATABASE $DB_NAME OWNER $DB_USER;
CREATE DATABASE $DB_NAME2 OWNER $DB_USER;
EOF
}

# --- MariaDB ----------------------------------------------------------------------------

my_pid() {
  [[ -f $MY_PID_FILE ]] || return 1
  local pid
  pid=$(cat "$MY_PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

my_admin() {
  mariadb-admin --no-defaults --socket="$MY_SOCKET" -uroot "$@"
}

my_sql() {
  mariadb --no-defaults --socket="$MY_SOCKET" -uroot "$@"
}

my_init() {
  command -v mariadb-install-db >/dev/null || die "no mariadb-install-db: install mariadb-server (scripts/install-deps.sh test)"
  rm -rf "$MY_DATA" "$MY_RUN"
  mkdir -p "$MY_DATA" "$MY_RUN"
  mariadb-install-db --no-defaults "${MY_USER_ARGS[@]}" --datadir="$MY_DATA" \
    --skip-test-db --skip-name-resolve --auth-root-authentication-method=socket \
    >"$MY_RUN/install-db.log" 2>&1 ||
    {
      cat "$MY_RUN/install-db.log" >&2
      die "mariadb-install-db failed"
    }
}

my_start() {
  local attempt pid i
  for attempt in 1 2 3; do
    rm -f "$MY_PID_FILE"
    : >"$MY_LOG"
    # No daemon mode: setsid detaches it from our session, so a Ctrl-C of the test run
    # does not reach it; stop/kill-mysql end it.
    setsid "$MARIADBD" --no-defaults "${MY_USER_ARGS[@]}" \
      --datadir="$MY_DATA" --bind-address="$HOST" --port="$MY_PORT" \
      --socket="$MY_SOCKET" --pid-file="$MY_PID_FILE" --log-error="$MY_LOG" \
      --skip-name-resolve --innodb-flush-log-at-trx-commit=1 --max-connections=200 \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
      </dev/null >>"$MY_LOG" 2>&1 &
    pid=$!
    for ((i = 0; i < START_TIMEOUT_SECONDS * 10; i++)); do
      if my_admin --connect-timeout=2 ping >/dev/null 2>&1; then
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q 'Address already in use\|Do you already have another' "$MY_LOG" && [[ $attempt -lt 3 ]]; then
      MY_PORT=$(free_port "$PG_PORT")
      log "MariaDB port taken, retrying on $MY_PORT"
      save_state
      write_env
      continue
    fi
    kill -KILL "$pid" 2>/dev/null || true
    tail -n 30 "$MY_LOG" >&2 || true
    die "MariaDB did not start (log: $MY_LOG)"
  done
}

my_stop() {
  local pid i
  pid=$(my_pid) || return 0
  my_admin --connect-timeout=5 shutdown >/dev/null 2>&1 || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "MariaDB did not stop in time: killing it"
  my_kill
}

my_kill() {
  local pid i
  pid=$(my_pid) || return 0
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  die "mariadbd $pid survived SIGKILL"
}

my_setup() {
  # `*` and `_` escaped: the grant covers xact_test, xact_test2 and any xact_test_* a test
  # creates for itself. XA_RECOVER_ADMIN (MySQL 8) does not exist on MariaDB 10.11, where
  # XA RECOVER needs no privilege.
  my_sql <<EOF
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE DATABASE IF NOT EXISTS \`$DB_NAME2\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'$HOST' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`xact\\_test%\`.* TO '$DB_USER'@'$HOST';
EOF
  if my_sql -e "GRANT XA_RECOVER_ADMIN ON *.* TO '$DB_USER'@'$HOST'" 2>/dev/null; then
    log "granted XA_RECOVER_ADMIN"
  fi
  my_sql -e "FLUSH PRIVILEGES"
}

# --- env.sh -----------------------------------------------------------------------------

write_env() {
  local tmp=$ENV_FILE.tmp
  {
    echo "# Written by xact scripts/servers.sh: source it before running the tests."
    local -a vars=(
      XACT_SERVERS_DIR "$DIR"
      XACT_SERVERS_SCRIPT "$SCRIPT_PATH"
      XACT_PG_HOST "$HOST"
      XACT_PG_PORT "$PG_PORT"
      XACT_PG_USER "$DB_USER"
      XACT_PG_PASSWORD "$DB_PASSWORD"
      XACT_PG_DB "$DB_NAME"
      XACT_PG_DB2 "$DB_NAME2"
      XACT_PG_URI "postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT/$DB_NAME"
      XACT_PG_URI2 "postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT/$DB_NAME2"
      XACT_PG_BIN_DIR "$PG_BIN_DIR"
      XACT_PG_DATA "$PG_DATA"
      XACT_PG_SOCKET_DIR "$PG_RUN"
      XACT_MYSQL_HOST "$HOST"
      XACT_MYSQL_PORT "$MY_PORT"
      XACT_MYSQL_USER "$DB_USER"
      XACT_MYSQL_PASSWORD "$DB_PASSWORD"
      XACT_MYSQL_DB "$DB_NAME"
      XACT_MYSQL_DB2 "$DB_NAME2"
      XACT_MYSQL_DATA "$MY_DATA"
      XACT_MYSQL_SOCKET "$MY_SOCKET"
      XACT_MYSQL_PID_FILE "$MY_PID_FILE"
    )
    local i
    for ((i = 0; i < ${#vars[@]}; i += 2)); do
      printf 'export %s=%q\n' "${vars[i]}" "${vars[i + 1]}"
    done
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

# --- commands ---------------------------------------------------------------------------

stop_if_failed() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "start failed: stopping what was started"
    cmd_stop || true
  fi
  return "$status"
}

cmd_start() {
  if [[ -f $STATE_FILE ]] && { pg_pid >/dev/null || my_pid >/dev/null; }; then
    die "servers are already running in $DIR: '$0 stop $DIR' first"
  fi
  PG_PORT=$(free_port)
  MY_PORT=$(free_port "$PG_PORT")
  save_state
  write_env
  # If anything below fails, leave nothing running.
  trap stop_if_failed EXIT

  pg_init
  pg_start
  pg_setup
  log "PostgreSQL $PG_VERSION on $HOST:$PG_PORT (data $PG_DATA)"

  my_init
  my_start
  my_setup
  log "MariaDB $("$MARIADBD" --version | awk '{print $3}') on $HOST:$MY_PORT (data $MY_DATA)"
  log "settings: source $ENV_FILE"
  trap - EXIT
}

cmd_stop() {
  local failed=0
  if [[ -f $STATE_FILE ]]; then
    # shellcheck source=/dev/null
    source "$STATE_FILE"
  fi
  pg_stop || failed=1
  my_stop || failed=1
  return "$failed"
}

cmd_status() {
  load_state
  local ok=0
  if as_pg "$PG_BIN_DIR/pg_isready" -q -h "$HOST" -p "$PG_PORT"; then
    log "PostgreSQL up on $HOST:$PG_PORT"
  else
    log "PostgreSQL down"
    ok=1
  fi
  if my_admin --connect-timeout=2 ping >/dev/null 2>&1; then
    log "MariaDB up on $HOST:$MY_PORT"
  else
    log "MariaDB down"
    ok=1
  fi
  return "$ok"
}

case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart-pg)
    load_state
    pg_stop
    pg_start
    ;;
  kill-pg)
    load_state
    pg_kill_all
    pg_start
    ;;
  restart-mysql)
    load_state
    my_stop
    my_start
    ;;
  kill-mysql)
    load_state
    my_kill
    my_start
    ;;
  down-pg)
    load_state
    pg_kill_all
    ;;
  up-pg)
    load_state
    pg_start
    ;;
  down-mysql)
    load_state
    my_kill
    ;;
  up-mysql)
    load_state
    my_start
    ;;
  *) usage ;;
esac

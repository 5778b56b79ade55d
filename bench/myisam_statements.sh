#!/usr/bin/env bash
# The server's side of the MyISAM session store's price (issue 19): each statement shape the
# store could send, run by mariadb-slap from N concurrent clients against one row of a MyISAM
# table laid out like the store's, against the bare UPDATE in the same run, alternating rounds.
# Client-side work (Connector/C++, the coordinator) is not in these figures: they bound what any
# design sending these statements can reach.
#   source <servers dir>/env.sh    # scripts/servers.sh start <dir>
#   bash bench/myisam_statements.sh [--clients N] [--queries Q] [--rounds R]
set -euo pipefail

clients=8 queries=16000 rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --queries) queries=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--clients N] [--queries Q] [--rounds R]" >&2; exit 2 ;;
  esac
done
: "${XACT_MYSQL_PORT:?source the env.sh that scripts/servers.sh start wrote}"
conn=(-h "${XACT_MYSQL_HOST:-127.0.0.1}" -P "$XACT_MYSQL_PORT" -u "${XACT_MYSQL_USER:-xact}"
  "-p${XACT_MYSQL_PASSWORD:-xact}")
db=${XACT_MYSQL_DB:-xact_test}
table=xact_bench_myisam_statements

mariadb "${conn[@]}" "$db" -e "
  DROP TABLE IF EXISTS $table;
  CREATE TABLE $table (sid VARBINARY(128) NOT NULL, name VARBINARY(255) NOT NULL,
    value LONGBLOB NULL, version BIGINT NOT NULL, expires_us BIGINT NOT NULL,
    owner_node BINARY(16) NULL, owner_gtrid BINARY(28) NULL, owner_version BIGINT NULL,
    before_value LONGBLOB NULL, before_version BIGINT NULL, fenced_at_us BIGINT NULL,
    PRIMARY KEY (sid, name), KEY owner (owner_node, owner_gtrid)) ENGINE=MyISAM;
  INSERT INTO $table (sid, name, value, version, expires_us)
    VALUES ('s1', 'n', 'v', 1, 9223372036854775807);"
trap 'mariadb "${conn[@]}" "$db" -e "DROP TABLE IF EXISTS $table" || true' EXIT

owner="'gtridgtridgtridgtridgtrid123'"
expired="expires_us <= 1"
free="($expired OR owner_gtrid IS NULL OR owner_gtrid = VALUES(owner_gtrid))"
declare -A sql
names=(bare upsert_returning upsert update_in_row drop_fence)
sql[bare]="UPDATE $table SET value = 'value-xyz', version = version + 1 WHERE sid = 's1' AND name = 'n'"
# The store's write today (MyIsamSessionStore, MariaDB 10.5+): the before-image copied inside
# the row, the fence set, the row sent back.
sql[upsert]="INSERT INTO $table (sid, name, value, version, expires_us, owner_node, owner_gtrid,
  owner_version, before_value, before_version, fenced_at_us) VALUES ('s1', 'n', 'value-xyz', 1,
  9223372036854775807, 'nodenodenodenode', $owner, 1, NULL, NULL, 5) ON DUPLICATE KEY UPDATE
  before_value = IF($expired, NULL, IF(owner_gtrid IS NULL, value, before_value)),
  before_version = IF($expired, NULL, IF(owner_gtrid IS NULL, version, before_version)),
  fenced_at_us = IF($expired OR owner_gtrid IS NULL, 5, fenced_at_us),
  value = IF($free, VALUES(value), value), version = IF($expired, 1, IF($free, version + 1, version)),
  owner_version = IF($free, version, owner_version),
  owner_node = IF($free, VALUES(owner_node), owner_node),
  owner_gtrid = IF($free, VALUES(owner_gtrid), owner_gtrid),
  expires_us = IF($expired, VALUES(expires_us), expires_us)"
sql[upsert_returning]="${sql[upsert]} RETURNING value, version, expires_us, owner_gtrid,
  owner_version, before_value, before_version, fenced_at_us"
# The cheapest fenced write a store could send: an UPDATE of an existing, unexpired row that
# keeps the before-image in the row, without sending anything back.
sql[update_in_row]="UPDATE $table SET before_value = IF(owner_gtrid IS NULL, value, before_value),
  before_version = IF(owner_gtrid IS NULL, version, before_version),
  fenced_at_us = IF(owner_gtrid IS NULL, 5, fenced_at_us), value = 'value-xyz',
  version = version + 1, owner_version = version, owner_node = 'nodenodenodenode',
  owner_gtrid = $owner WHERE sid = 's1' AND name = 'n' AND expires_us > 1
  AND (owner_gtrid IS NULL OR owner_gtrid = $owner)"
# A commit's statement for one row (the store batches several commits into one).
sql[drop_fence]="UPDATE $table SET owner_node = NULL, owner_gtrid = NULL, owner_version = NULL,
  before_value = NULL, before_version = NULL, fenced_at_us = NULL WHERE sid = 's1' AND name = 'n'"

declare -A total
for n in "${names[@]}"; do total[$n]=0; done
for ((r = 1; r <= rounds; r++)); do
  for n in "${names[@]}"; do
    # One line: mariadb-slap would run only the first line of the statement.
    out=$(mariadb-slap "${conn[@]}" --create-schema="$db" --query="$(tr "\n" " " <<<"${sql[$n]}")" \
      --concurrency="$clients" --number-of-queries="$queries" --iterations=1 2>&1)
    s=$(awk '/Average number of seconds to run all queries/ {print $(NF-1)}' <<<"$out")
    if [ -z "$s" ] || grep -q "ERROR" <<<"$out"; then
      echo "myisam_statements.sh: shape '$n' failed:" >&2
      echo "$out" >&2
      exit 1
    fi
    total[$n]=$(awk -v a="${total[$n]}" -v b="$s" 'BEGIN {print a + b}')
  done
done
printf '%d clients, %d statements per shape, %d rounds (load: %s)\n' "$clients" "$queries" \
  "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %22s %8s\n' shape "µs/statement (wall)" "÷ bare"
for n in "${names[@]}"; do
  awk -v name="$n" -v t="${total[$n]}" -v bare="${total[bare]}" -v q=$((queries * rounds)) \
    'BEGIN {printf "%-18s %21.1f %8.2fx\n", name, t * 1e6 / q, t / bare}'
done

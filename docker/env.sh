# shellcheck shell=bash
# The XACT_* settings matching docker/compose.yaml: `source docker/env.sh` after
# `docker compose -f docker/compose.yaml up -d --wait`. The ports follow XACT_PG_PORT /
# XACT_MYSQL_PORT when set (compose reads the same variables).
export XACT_PG_HOST=127.0.0.1
export XACT_PG_PORT=${XACT_PG_PORT:-15432}
export XACT_PG_USER=xact
export XACT_PG_PASSWORD=xact
export XACT_PG_DB=xact_test
export XACT_PG_DB2=xact_test2
export XACT_PG_URI=postgresql://xact:xact@127.0.0.1:${XACT_PG_PORT}/xact_test
export XACT_PG_URI2=postgresql://xact:xact@127.0.0.1:${XACT_PG_PORT}/xact_test2
export XACT_MYSQL_HOST=127.0.0.1
export XACT_MYSQL_PORT=${XACT_MYSQL_PORT:-13306}
export XACT_MYSQL_USER=xact
export XACT_MYSQL_PASSWORD=xact
export XACT_MYSQL_DB=xact_test
export XACT_MYSQL_DB2=xact_test2
# Not set here: XACT_SERVERS_DIR and the restart/kill hooks, which only the native servers
# of scripts/servers.sh offer; the crash tests that need them skip (or fail under CI=true).

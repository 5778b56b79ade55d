#include <xact/postgres/postgres_resource.hpp>

#include <libpq-fe.h>

#include <cinttypes>
#include <cstdio>

#include <pqxx/connection_base>

#include <xact/errors.hpp>
#include <xact/postgres/errors.hpp>

namespace xact::postgres {

namespace {

// The database named by a libpq connection string or URI, or "" when it names none (libpq
// then defaults to the user name, which only the server can confirm).
std::string dbname_of(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string why = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    throw UsageError("PostgresOptions::conninfo is not a valid libpq connection string: " + why);
  }
  std::string dbname;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (std::string_view(o->keyword) == "dbname" && o->val != nullptr) dbname = o->val;
  }
  PQconninfoFree(options);
  return dbname;
}

// What xact splices into protocol statements: its own gids and savepoint names.
void check_token(const std::string& token, const char* what) {
  const bool ok =
      !token.empty() && token.size() < 200 &&
      token.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz-_") == std::string::npos;
  if (!ok)
    throw UsageError(std::string("postgresql: refusing to use '") + token + "' as a " + what);
}

std::string quoted_gid(const Xid& xid) {
  std::string gid = xid.to_gid();
  check_token(gid, "transaction id");
  return "'" + gid + "'";
}

}  // namespace

std::shared_ptr<PostgresResource> PostgresResource::create(PostgresOptions options) {
  if (options.conninfo.empty()) {
    // libpq would fall back to PG* environment variables; a participant's database must be
    // named on purpose, because its resource name must never change.
    throw UsageError("PostgresOptions::conninfo is empty: give the connection string or URI");
  }
  std::string name = options.name;
  if (name.empty()) {
    std::string db = dbname_of(options.conninfo);
    if (db.empty()) {
      SessionSettings settings;
      settings.application_name = options.application_name;
      auto c = PgConnection::open(options.conninfo, settings, "postgresql");
      db = c->execute("SELECT current_database()").one().get<std::string>(0);
    }
    name = "pg:" + db;
    if (name.size() > Xid::kMaxBqual) {
      throw UsageError("the resource name '" + name + "' is longer than " +
                       std::to_string(Xid::kMaxBqual) +
                       " bytes: give a shorter PostgresOptions::name");
    }
  }
  check_branch_name(name);
  options.name = name;
  if (options.pool.name.empty() || options.pool.name == sql::PoolOptions().name) {
    options.pool.name = name;
  }

  SessionSettings settings;
  settings.lock_timeout = options.lock_timeout;
  settings.application_name = options.application_name;
  const std::string context = "resource '" + name + "'";
  auto pool = sql::ConnectionPool::create(
      [conninfo = options.conninfo, settings, context]() -> std::unique_ptr<sql::Connection> {
        return PgConnection::open(conninfo, settings, context);
      },
      options.pool);
  return std::shared_ptr<PostgresResource>(
      new PostgresResource(name, std::move(options), std::move(pool)));
}

PostgresResource::PostgresResource(std::string name, PostgresOptions options,
                                   std::shared_ptr<sql::ConnectionPool> pool)
    : SqlResource(std::move(name), std::move(pool)), options_(std::move(options)) {}

std::string PostgresResource::context() const { return "resource '" + options_.name + "'"; }

std::unique_ptr<PgConnection> PostgresResource::open_connection() const {
  SessionSettings settings;
  settings.lock_timeout = options_.lock_timeout;
  settings.application_name = options_.application_name;
  return PgConnection::open(options_.conninfo, settings, context());
}

void PostgresResource::enlist(Transaction& txn, pqxx::connection_base& connection) {
  enlist_connection(txn, PgConnection::borrow(connection, context()));
}

void PostgresResource::enlist(Transaction& txn, std::shared_ptr<PgConnection> connection) {
  enlist_connection(txn, std::move(connection));
}

PgConnection& PostgresResource::pg(sql::Connection& conn) const {
  // Every connection of this resource is one: its pool's factory makes PgConnections, and
  // enlist() takes nothing else.
  return static_cast<PgConnection&>(conn);
}

std::exception_ptr PostgresResource::map_error(const std::exception_ptr& error,
                                               sql::Phase phase) const noexcept {
  try {
    return postgres::map_error(error, phase, context());
  } catch (...) {
    return error;
  }
}

// ---- the statements of each step ----------------------------------------------------------------

void PostgresResource::begin_branch(sql::Connection& conn, const Xid&) {
  pg(conn).run_protocol(options_.isolation == Isolation::serializable
                            ? "BEGIN ISOLATION LEVEL SERIALIZABLE"
                            : "BEGIN ISOLATION LEVEL REPEATABLE READ",
                        sql::Phase::statement);
}

bool PostgresResource::branch_wrote(sql::Connection& conn) {
  if (!options_.detect_read_only) return true;
  // A transaction gets an id at its first change (a row written or locked, DDL); without one
  // it has nothing to commit. pg_current_xact_id_if_assigned() is PostgreSQL 13+.
  const char* query = pg(conn).server_version() >= 130000
                          ? "SELECT pg_current_xact_id_if_assigned() IS NOT NULL"
                          : "SELECT txid_current_if_assigned() IS NOT NULL";
  return pg(conn).run_protocol(query, sql::Phase::prepare).one().get<bool>(0);
}

void PostgresResource::prepare_branch(sql::Connection& conn, const Xid& xid) {
  // PREPARE TRANSACTION answers "ROLLBACK", not an error, in a transaction that a failed
  // statement aborted, and libpqxx 6.4 does not show the command tag. The SELECT before it,
  // in the same round trip, fails there instead (25P02), and the PREPARE is not run.
  try {
    pg(conn).run_protocol("SELECT 1; PREPARE TRANSACTION " + quoted_gid(xid), sql::Phase::prepare);
  } catch (const sql::SqlError& e) {
    if (e.sqlstate() != "25P02") throw;
    throw sql::SqlError(context() +
                            ": PostgreSQL cannot prepare the branch: a statement in it failed "
                            "and was not rolled back to a savepoint (run on the branch's "
                            "connection outside xact's execute?), so the server aborted it",
                        e.sqlstate());
  }
}

void PostgresResource::commit_branch(sql::Connection& conn, const Xid&) {
  // In an aborted transaction COMMIT answers "ROLLBACK" without an error; the SELECT before it
  // fails there instead (25P02), in the same round trip.
  pg(conn).run_protocol("SELECT 1; COMMIT", sql::Phase::commit_one_phase);
}

void PostgresResource::rollback_branch(sql::Connection& conn, const Xid&) {
  pg(conn).run_protocol("ROLLBACK", sql::Phase::rollback);
}

void PostgresResource::commit_prepared_branch(sql::Connection& conn, const Xid& xid) {
  pg(conn).run_protocol("COMMIT PREPARED " + quoted_gid(xid), sql::Phase::commit_prepared);
}

void PostgresResource::rollback_prepared_branch(sql::Connection& conn, const Xid& xid) {
  pg(conn).run_protocol("ROLLBACK PREPARED " + quoted_gid(xid), sql::Phase::rollback_prepared);
}

bool PostgresResource::server_session_running(sql::Connection& conn, const std::string& session) {
  // PgConnection::session_name's notation: "pid=P start=S" or "pid=P".
  std::int64_t pid = 0;
  std::int64_t start = 0;
  const int fields = std::sscanf(session.c_str(), "pid=%" SCNd64 " start=%" SCNd64, &pid, &start);
  if (fields < 1 || pid <= 0) {
    throw ResourceError(context() + ": cannot read the server session '" + session + "'");
  }
  if (fields == 1) {
    // A pid alone may by now name another backend: wait for it, never end it.
    return !pg(conn).execute("SELECT 1 FROM pg_stat_activity WHERE pid = $1", {pid}).empty();
  }
  // The backend of a lost connection has nothing more to do for anyone: end it rather than
  // wait until it notices its client is gone (a half-open TCP connection can take hours).
  // PostgreSQL 14 and later wait up to the timeout for it to exit (true once it has).
  PgConnection& c = pg(conn);
  const bool waits = c.server_version() >= 140000;
  const sql::Result r =
      c.execute(std::string("SELECT pg_terminate_backend(pid") + (waits ? ", 1000" : "") +
                    ") FROM pg_stat_activity WHERE pid = $1 AND "
                    "floor(extract(epoch FROM backend_start) * 1000000)::bigint = $2",
                {pid, start});
  return !r.empty() && !(waits && r.one().get<bool>(0));
}

std::vector<sql::SqlResource::PreparingSession> PostgresResource::sessions_preparing(
    sql::Connection& conn) {
  // prepare_branch's statement: "SELECT 1; PREPARE TRANSACTION '<gid>'".
  static constexpr std::string_view kPrepare = "PREPARE TRANSACTION '";
  const sql::Result r = pg(conn).execute(
      "SELECT pid, floor(extract(epoch FROM backend_start) * 1000000)::bigint, query "
      "FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND "
      "pid <> pg_backend_pid() AND query LIKE '%PREPARE TRANSACTION ''xact-%'");
  std::vector<PreparingSession> out;
  for (const auto& row : r) {
    const auto query = row.get<std::string>(2);
    const auto at = query.find(kPrepare);
    if (at == std::string::npos) continue;
    const auto begin = at + kPrepare.size();
    const auto end = query.find('\'', begin);
    if (end == std::string::npos) continue;
    auto xid = Xid::from_gid(std::string_view(query).substr(begin, end - begin));
    if (!xid) continue;
    out.push_back({std::move(*xid),
                   PgConnection::session_name(row.get<std::int64_t>(0), row.get<std::int64_t>(1))});
  }
  return out;
}

std::vector<Xid> PostgresResource::prepared_branches(sql::Connection& conn) {
  const sql::Result r = pg(conn).run_protocol(
      "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE "
      "'xact-%'",
      sql::Phase::recover);
  std::vector<Xid> ids;
  for (const auto& row : r) {
    if (auto xid = Xid::from_gid(row.get<std::string>(0))) ids.push_back(std::move(*xid));
  }
  return ids;
}

void PostgresResource::set_savepoint(sql::Connection& conn, const std::string& name) {
  check_token(name, "savepoint name");
  pg(conn).run_protocol("SAVEPOINT " + name, sql::Phase::statement);
}

void PostgresResource::rollback_to_savepoint(sql::Connection& conn, const std::string& name) {
  check_token(name, "savepoint name");
  pg(conn).run_protocol("ROLLBACK TO SAVEPOINT " + name, sql::Phase::statement);
}

}  // namespace xact::postgres

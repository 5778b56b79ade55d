#include "pg_test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>

#include <xact/errors.hpp>
#include <xact/manager.hpp>

// libpqxx 6.4 leaks the PGresult of a statement that finds the connection broken (its
// make_result() asks the dead connection for its encoding, and throws, before it takes
// ownership of the result). xact cannot free what libpqxx dropped; the tests that break
// connections on purpose would fail every LeakSanitizer run on it. (libpqxx 7 fixed it.)
// Matched by module: LeakSanitizer's fast unwinder cannot name the frames inside libpqxx.
extern "C" const char* __lsan_default_suppressions() { return "leak:libpqxx-6.4.so\n"; }

namespace xact::pgtest {

namespace {

using testing::env_or_empty;

std::mutex& nodes_mutex() {
  static std::mutex m;
  return m;
}
std::set<NodeId>& nodes() {
  static std::set<NodeId> s;
  return s;
}

// After every test binary's run: no prepared transaction of this process's nodes may be left in
// either database. Leftovers fail the run and are rolled back, so one failure does not hold
// locks (and VACUUM) hostage for the tests after it.
class NoLeftoverPreparedTransactions : public ::testing::Environment {
 public:
  void SetUp() override {
    // The node of transactions begun by managers without a decision log.
    ExplicitTransactionManager tm;
    track_node(tm.begin().gtrid().node());
    tm.abort();
  }
  void TearDown() override {
    const PgEnv* env = pg_env();
    if (env == nullptr) return;
    std::set<NodeId> tracked;
    {
      std::lock_guard lock(nodes_mutex());
      tracked = nodes();
    }
    for (const std::string& uri : {env->uri, env->uri2}) {
      try {
        Plain db(uri);
        const auto r =
            db.run("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()");
        for (const auto& row : r) {
          const std::string gid = row[0].as<std::string>();
          const auto xid = Xid::from_gid(gid);
          if (!xid || tracked.count(xid->gtrid.node()) == 0) continue;  // another process's
          ADD_FAILURE() << "prepared transaction left behind: " << gid;
          db.run("ROLLBACK PREPARED " + db.conn().quote(gid));
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cannot check for prepared transactions left behind: " << e.what();
      }
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kLeftoverCheck =
    ::testing::AddGlobalTestEnvironment(new NoLeftoverPreparedTransactions);

}  // namespace

const PgEnv* pg_env() {
  static const std::optional<PgEnv> env = []() -> std::optional<PgEnv> {
    PgEnv e;
    e.uri = env_or_empty("XACT_PG_URI");
    e.uri2 = env_or_empty("XACT_PG_URI2");
    if (e.uri.empty() || e.uri2.empty()) return std::nullopt;
    e.db = env_or_empty("XACT_PG_DB");
    e.db2 = env_or_empty("XACT_PG_DB2");
    e.servers_script = env_or_empty("XACT_SERVERS_SCRIPT");
    e.servers_dir = env_or_empty("XACT_SERVERS_DIR");
    if (e.servers_dir.empty()) e.servers_script.clear();
    return e;
  }();
  return env ? &*env : nullptr;
}

TempTable::TempTable(std::string uri, std::string columns)
    : uri_(std::move(uri)), name_(unique_name("xact_it")) {
  Plain(uri_).run("CREATE TABLE " + name_ + " (" + columns + ")");
}

TempTable::~TempTable() {
  try {
    Plain(uri_).run("DROP TABLE IF EXISTS " + name_);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot drop test table " << name_ << ": " << e.what();
  }
}

pqxx::result Plain::run(const std::string& sql) {
  pqxx::nontransaction tx(conn_);
  return tx.exec(sql);
}

std::optional<std::string> Plain::value(const std::string& table, const std::string& key) {
  pqxx::nontransaction tx(conn_);
  const auto r = tx.exec_params("SELECT v FROM " + table + " WHERE k = $1", key);
  if (r.empty() || r[0][0].is_null()) return std::nullopt;
  return r[0][0].as<std::string>();
}

std::int64_t Plain::count(const std::string& sql) {
  pqxx::nontransaction tx(conn_);
  return tx.exec(sql)[0][0].as<std::int64_t>();
}

std::vector<std::string> Plain::prepared_gids() {
  std::vector<std::string> out;
  for (const auto& row : run("SELECT gid FROM pg_prepared_xacts ORDER BY gid")) {
    out.push_back(row[0].as<std::string>());
  }
  return out;
}

int Plain::backend_pid() { return conn_.backendpid(); }

postgres::PostgresOptions options(const std::string& uri, std::string name) {
  postgres::PostgresOptions o;
  o.conninfo = uri;
  o.name = name.empty() ? unique_name("pg") : std::move(name);
  o.pool.acquire_timeout = std::chrono::seconds(10);
  return o;
}

void track_node(const NodeId& node) {
  std::lock_guard lock(nodes_mutex());
  nodes().insert(node);
}

void DecisionProbe::commit_one_phase(Transaction&, const CommitRecord*) {
  if (at_decision_) at_decision_();
  if (act_ == Act::fail) throw ResourceError("decision probe: the last resource failed");
  if (act_ == Act::in_doubt) throw InDoubtError("decision probe: connection lost during commit");
}

void put(postgres::PostgresResource& rm, Transaction& txn, const std::string& table,
         const std::string& key, const std::string& value) {
  rm.execute(txn,
             "INSERT INTO " + table +
                 " (k, v) VALUES ($1, $2) "
                 "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
             {key, value});
}

}  // namespace xact::pgtest

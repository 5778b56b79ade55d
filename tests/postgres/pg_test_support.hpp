// What the PostgreSQL integration tests share: the server's settings (XACT_PG_*, written by
// scripts/servers.sh), skipping or failing when they are missing, tables of their own, plain
// libpqxx reads outside xact, and the check that no test leaves a prepared transaction.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <xact/postgres/postgres_resource.hpp>
#include <xact/testing/servers.hpp>
#include <xact/xid.hpp>

namespace xact::pgtest {

struct PgEnv {
  std::string uri;   // XACT_PG_URI  (database XACT_PG_DB)
  std::string uri2;  // XACT_PG_URI2 (database XACT_PG_DB2, same cluster)
  std::string db;
  std::string db2;
  std::string servers_script;  // XACT_SERVERS_SCRIPT, empty when not available
  std::string servers_dir;     // XACT_SERVERS_DIR
};

/// The settings, or null when XACT_PG_URI / XACT_PG_URI2 are not set.
const PgEnv* pg_env();
using testing::under_ci;
using testing::unique_name;

/// Skips the test (fails it under CI=true) when no server is configured. Use in a test body or
/// SetUp(); it returns from the calling function.
#define XACT_REQUIRE_PG()                                                                     \
  do {                                                                                        \
    if (::xact::pgtest::pg_env() == nullptr) {                                                \
      if (::xact::pgtest::under_ci()) {                                                       \
        FAIL() << "CI=true but XACT_PG_URI/XACT_PG_URI2 are not set: start the servers "      \
                  "(scripts/servers.sh start DIR; source DIR/env.sh) or run scripts/test.sh"; \
      }                                                                                       \
      GTEST_SKIP() << "no PostgreSQL: set XACT_PG_URI and XACT_PG_URI2 (scripts/servers.sh "  \
                      "start DIR; source DIR/env.sh)";                                        \
    }                                                                                         \
  } while (0)

/// The same for tests that restart the server (XACT_SERVERS_SCRIPT and XACT_SERVERS_DIR).
#define XACT_REQUIRE_PG_SERVER_CONTROL()                                                      \
  do {                                                                                        \
    XACT_REQUIRE_PG();                                                                        \
    if (::xact::pgtest::pg_env()->servers_script.empty()) {                                   \
      if (::xact::pgtest::under_ci()) FAIL() << "CI=true but XACT_SERVERS_SCRIPT is not set"; \
      GTEST_SKIP() << "the server cannot be restarted from here (XACT_SERVERS_SCRIPT and "    \
                      "XACT_SERVERS_DIR unset, e.g. docker/compose.yaml)";                    \
    }                                                                                         \
  } while (0)

/// A table of its own, created at construction and dropped at destruction:
/// k text PRIMARY KEY, v text (or the given columns).
class TempTable {
 public:
  explicit TempTable(std::string uri, std::string columns = "k text PRIMARY KEY, v text");
  ~TempTable();
  TempTable(const TempTable&) = delete;
  TempTable& operator=(const TempTable&) = delete;
  const std::string& name() const { return name_; }
  const std::string& uri() const { return uri_; }

 private:
  std::string uri_;
  std::string name_;
};

/// A plain libpqxx connection, outside xact, for reading committed data and for setting up.
class Plain {
 public:
  explicit Plain(const std::string& uri) : conn_(uri) {}
  pqxx::connection& conn() { return conn_; }
  /// Runs one statement in its own transaction (autocommit).
  pqxx::result run(const std::string& sql);
  /// v of key k in `table`, committed; nullopt when absent.
  std::optional<std::string> value(const std::string& table, const std::string& key);
  std::int64_t count(const std::string& sql);
  /// gids of every prepared transaction in the cluster.
  std::vector<std::string> prepared_gids();
  int backend_pid();

 private:
  pqxx::connection conn_;
};

/// Options for a PostgresResource on `uri` with a name of its own (so tests running in
/// parallel never share one) unless `name` is given.
postgres::PostgresOptions options(const std::string& uri, std::string name = {});

/// The leftover check covers prepared transactions of these nodes (the process's ephemeral
/// node is registered automatically; add the node of every decision log a test opens).
void track_node(const NodeId& node);

/// Runs `XACT_SERVERS_SCRIPT <command> XACT_SERVERS_DIR` (kill-pg, restart-pg); true on success.
inline bool servers(const std::string& command) { return testing::run_servers_script(command); }

/// A last resource (one-phase only) for putting the participants under test in a known state:
/// it is committed after every other participant voted yes, runs `at_decision` there, and then
/// acts: commits (the transaction commits), fails (everything rolls back), or reports an
/// in-doubt commit (the others stay prepared, for recovery).
class DecisionProbe : public ResourceManager, public OnePhaseCommit {
 public:
  enum class Act { commit, fail, in_doubt };
  explicit DecisionProbe(Act act = Act::commit, std::function<void()> at_decision = {})
      : act_(act), at_decision_(std::move(at_decision)) {}
  std::string resource_name() const override { return "zz-decision-probe"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override {}
  void tpc_abort(Transaction&) noexcept override {}
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  bool can_prepare() const override { return false; }
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;

 private:
  Act act_;
  std::function<void()> at_decision_;
};

/// Inserts or replaces k = v through `rm` in `txn`.
void put(postgres::PostgresResource& rm, Transaction& txn, const std::string& table,
         const std::string& key, const std::string& value);

}  // namespace xact::pgtest

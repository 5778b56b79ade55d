// `xact recover --config FILE --foreign [--roll-back-node NODE_ID]`, the installed tool, against
// the branches a lost coordinator left prepared in the resources of a configuration file: a
// process using a second file (the same resources, its own decision log, so another node) is
// killed after every voter prepared and before its commit record, and its log directory is then
// deleted. The resources are two object databases on file storages and a SQLite database (a last
// resource: it holds no prepared branch), and - when the servers are there (scripts/servers.sh;
// CI=true makes their absence a failure) - a real PostgreSQL and a real MariaDB database.
// --foreign lists every branch of the lost node, changing no file; --roll-back-node with
// --dry-run only says what it would do; without it, every branch is rolled back and recorded as a
// heuristic outcome, and the rows commit again.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/retry.hpp>
#include <xact/testing/crash_harness.hpp>

#include "xact_runner.hpp"

#if defined(XACT_TEST_WITH_POSTGRES)
#include <xact/postgres/postgres_resource.hpp>
#endif
#if defined(XACT_TEST_WITH_MYSQL)
#include <xact/mysql/mysql_resource.hpp>
#endif

namespace xact {
namespace {

using testing::TempDir;
using tools_test::count_lines;
using tools_test::has;
using tools_test::run_xact;
using tools_test::snapshot_files;
using tools_test::ToolRun;

bool servers_configured() {
  return std::getenv("XACT_PG_HOST") != nullptr && std::getenv("XACT_MYSQL_HOST") != nullptr;
}
bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

class RecoverForeign : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    servers_ = GetParam();
    if (servers_) {
#if !defined(XACT_TEST_WITH_POSTGRES) || !defined(XACT_TEST_WITH_MYSQL)
      GTEST_SKIP() << "built without the PostgreSQL or MySQL adapter";
#endif
      if (!servers_configured()) {
        if (under_ci()) FAIL() << "CI=true but XACT_PG_*/XACT_MYSQL_* are not set";
        GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
      }
    }
    table_ = "foreign_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    // The same resources under two decision logs: ours, and the lost coordinator's.
    std::string resources = "[[database]]\nname = \"main\"\nstorage = \"file:" +
                            (data_ / "main.fs") +
                            "\"\n\n"
                            "[[database]]\nname = \"other\"\nstorage = \"file:" +
                            (data_ / "other.fs") +
                            "\"\n\n"
                            "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"" +
                            (data_ / "app.db") + "\"\nlast_resource = true\n";
    if (servers_) {
      resources +=
          "\n[[sql]]\nname = \"orders\"\nkind = \"postgres\"\n"
          "uri = \"postgresql://${XACT_PG_USER}@${XACT_PG_HOST}:${XACT_PG_PORT}/${XACT_PG_DB}\"\n"
          "password_env = \"XACT_PG_PASSWORD\"\n\n"
          "[[sql]]\nname = \"stock\"\nkind = \"mysql\"\n"
          "uri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:${XACT_MYSQL_PORT}/"
          "${XACT_MYSQL_DB}\"\npassword_env = \"XACT_MYSQL_PASSWORD\"\n";
    }
    std::ofstream(ours_) << "[decision_log]\ndirectory = \"" << (logs_ / "ours") << "\"\n\n"
                         << resources;
    std::ofstream(lost_) << "[decision_log]\ndirectory = \"" << (logs_ / "lost") << "\"\n\n"
                         << resources;

    auto app = config::load(ours_);  // creates our log, the storages and the SQLite file
    run(*app.manager, [&](Transaction& txn) {
      app.sql_resource("app").execute(txn, "CREATE TABLE t (k TEXT PRIMARY KEY)");
    });
#if defined(XACT_TEST_WITH_POSTGRES) && defined(XACT_TEST_WITH_MYSQL)
    if (servers_) {
      dynamic_cast<postgres::PostgresResource&>(app.sql_resource("orders"))
          .open_connection()
          ->execute("CREATE TABLE " + table_ + " (k TEXT PRIMARY KEY)");
      dynamic_cast<mysql::MySqlResource&>(app.sql_resource("stock"))
          .open_connection()
          ->execute("CREATE TABLE " + table_ + " (k VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB");
    }
#endif
  }

  void TearDown() override {
#if defined(XACT_TEST_WITH_POSTGRES) && defined(XACT_TEST_WITH_MYSQL)
    if (servers_ && !table_.empty() && servers_configured()) {
      // A failed test may have left the lost node's branches prepared, holding the tables'
      // locks: roll them back first (nothing happens when there is none).
      if (!lost_node_.empty()) {
        run_xact(scratch_, {"recover", "--config", ours_, "--foreign", "--roll-back-node",
                            lost_node_});
      }
      try {
        auto app = config::load(ours_);
        dynamic_cast<postgres::PostgresResource&>(app.sql_resource("orders"))
            .open_connection()
            ->execute("DROP TABLE IF EXISTS " + table_);
        dynamic_cast<mysql::MySqlResource&>(app.sql_resource("stock"))
            .open_connection()
            ->execute("DROP TABLE IF EXISTS " + table_);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cleanup: " << e.what();
      }
    }
#endif
  }

  // The transaction both coordinators commit: every voter, no last resource (the decision log
  // decides, so a kill before the commit record leaves every branch prepared).
  void commit_everything(config::Application& app) {
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto main = app.database("main").open(o);
    auto other = app.database("other").open(o);
    run(*app.manager, [&](Transaction& txn) {
      main->root()->set("n", 1);
      other->root()->set("n", 1);
      if (servers_) {
        app.sql_resource("orders").execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
        app.sql_resource("stock").execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
      }
    });
  }

  // How many of the voters hold the transaction.
  int count_committed(config::Application& app) {
    int yes = 0;
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    for (const char* name : {"main", "other"}) {
      auto conn = app.database(name).open(o);
      run(*app.manager, [&](Transaction&) {
        if (const auto* n = conn->root()->find("n")) yes += n->as_int() == 1 ? 1 : 0;
      });
    }
    if (servers_) {
      for (const char* resource : {"orders", "stock"}) {
        run(*app.manager, [&](Transaction& txn) {
          yes += static_cast<int>(
              app.sql_resource(resource).execute(txn, "SELECT k FROM " + table_).size());
        });
      }
    }
    return yes;
  }

  int voters() const { return servers_ ? 4 : 2; }

  static inline int counter_ = 0;
  bool servers_ = false;
  TempDir data_;
  TempDir logs_;
  TempDir scratch_;
  std::string ours_ = logs_ / "ours.toml";
  std::string lost_ = logs_ / "lost.toml";
  std::string table_;
  std::string lost_node_;
};

TEST_P(RecoverForeign, ListsAndRollsBackALostNodesBranchesInEveryResource) {
  // The lost coordinator: killed with every voter prepared, then its log directory is lost.
  const auto child = testing::run_in_child(
      [&] {
        config::LoadOptions options;
        options.run_recovery = false;
        auto app = config::load(lost_, options);
        commit_everything(app);
        return 0;
      },
      "coordinator.before_commit_record", 1);
  ASSERT_TRUE(child.killed) << child.describe();
  lost_node_ = DecisionLog::inspect(io::Env::posix(), logs_ / "lost").node.to_hex();
  std::filesystem::remove_all(logs_ / "lost");
  const std::string our_log = logs_ / "ours";
  const std::string our_node = DecisionLog::inspect(io::Env::posix(), our_log).node.to_hex();
  ASSERT_NE(lost_node_, our_node);

  // Our own recovery never touches them.
  const ToolRun plain = run_xact(scratch_, {"recover", "--config", ours_});
  EXPECT_EQ(plain.code, 0) << plain.out << plain.err;

  // The listing names every branch, by node and resource, and changes no file.
  const auto data_before = snapshot_files(data_.path());
  const auto log_before = snapshot_files(our_log);
  const ToolRun list = run_xact(scratch_, {"recover", "--config", ours_, "--foreign"});
  ASSERT_EQ(list.code, 0) << list.out << list.err;
  EXPECT_TRUE(has(list.out, "prepared branches of other nodes: " + std::to_string(voters())));
  std::vector<std::string> resources{"objects:main", "objects:other"};
  if (servers_) resources.insert(resources.end(), {"orders", "stock"});
  for (const auto& r : resources) {
    EXPECT_TRUE(has(list.out, "node " + lost_node_ + "  resource " + r + "  gid ")) << r;
  }
  EXPECT_FALSE(has(list.out, "resource app ")) << "SQLite holds no prepared branch";
  EXPECT_EQ(snapshot_files(data_.path()), data_before);
  EXPECT_EQ(snapshot_files(our_log), log_before);

  // Our own node is never rolled back blindly; a malformed node id is a usage error.
  const ToolRun own = run_xact(
      scratch_, {"recover", "--config", ours_, "--foreign", "--roll-back-node", our_node});
  EXPECT_EQ(own.code, 1) << own.out << own.err;
  EXPECT_TRUE(has(own.err, "is this decision log's own node")) << own.err;
  const ToolRun bad =
      run_xact(scratch_, {"recover", "--config", ours_, "--foreign", "--roll-back-node", "xyz"});
  EXPECT_EQ(bad.code, 2) << bad.err;
  const ToolRun alone =
      run_xact(scratch_, {"recover", "--config", ours_, "--roll-back-node", lost_node_});
  EXPECT_EQ(alone.code, 2) << alone.err;
  EXPECT_TRUE(has(alone.err, "--roll-back-node needs --foreign")) << alone.err;

  // A dry run says what it would roll back and does nothing. (The refused run above opened the
  // log for writing, as every run that may record heuristics does: a new epoch.)
  const auto log_before_dry_run = snapshot_files(our_log);
  const ToolRun dry = run_xact(scratch_, {"recover", "--config", ours_, "--foreign",
                                          "--roll-back-node", lost_node_, "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(has(dry.out, "would roll back (lost node)")) << dry.out;
  EXPECT_EQ(snapshot_files(data_.path()), data_before);
  EXPECT_EQ(snapshot_files(our_log), log_before_dry_run);

  // The roll-back: every branch, each recorded as a heuristic outcome in our log.
  const ToolRun roll = run_xact(
      scratch_, {"recover", "--config", ours_, "--foreign", "--roll-back-node", lost_node_});
  ASSERT_EQ(roll.code, 0) << roll.out << roll.err;
  for (const auto& r : resources) EXPECT_TRUE(has(roll.out, r)) << r << '\n' << roll.out;
  const ToolRun heuristics = run_xact(scratch_, {"heuristics", "list", our_log});
  ASSERT_EQ(heuristics.code, 0) << heuristics.err;
  EXPECT_EQ(count_lines(heuristics.out), static_cast<std::size_t>(voters()) + 1)
      << heuristics.out;  // the header line and one per branch
  EXPECT_TRUE(has(heuristics.out, "rolled back for a lost node")) << heuristics.out;

  const ToolRun after = run_xact(scratch_, {"recover", "--config", ours_, "--foreign"});
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_TRUE(has(after.out, "prepared branches of other nodes: 0")) << after.out;

  // Nothing of the lost transaction is anywhere, and the same rows commit now (no lock left).
  auto app = config::load(ours_);
  EXPECT_TRUE(app.recovery_report.complete()) << app.recovery_report.describe();
  EXPECT_EQ(count_committed(app), 0);
  commit_everything(app);
  EXPECT_EQ(count_committed(app), voters());
}

INSTANTIATE_TEST_SUITE_P(Files, RecoverForeign, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(Servers, RecoverForeign, ::testing::Values(true));

}  // namespace
}  // namespace xact

// `xact recover --config FILE`, the installed tool (no test store in it), against what a process
// using the same configuration file left behind when it was killed at one of the coordinator's
// crash points: an object database on a file storage (two of them, so the decision log decides
// when no last resource takes part), a real SQLite database (the last resource), and - when the
// servers are there (scripts/servers.sh; CI=true makes their absence a failure) - a real
// PostgreSQL and a real MariaDB database. After the tool, every store holds the transaction or
// none does, and loading the file again finds nothing left to recover.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/crash_point.hpp>
#include <xact/retry.hpp>
#include <xact/sql/connection.hpp>
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
using tools_test::run_xact;
using tools_test::ToolRun;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool servers_configured() {
  return std::getenv("XACT_PG_HOST") != nullptr && std::getenv("XACT_MYSQL_HOST") != nullptr;
}
bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

struct Case {
  std::string crash_point;
  unsigned hit = 1;
  bool last_resource = true;  // SQLite takes part (and decides)
  bool committed = false;     // what recovery must end with
};

std::string name_of(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.crash_point.substr(info.param.crash_point.find('.') + 1) +
                     std::to_string(info.param.hit) + (info.param.last_resource ? "_lr" : "_log");
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class RecoverConfig : public ::testing::TestWithParam<std::tuple<Case, bool>> {
 protected:
  void SetUp() override {
    servers_ = std::get<1>(GetParam());
    if (servers_) {
#if !defined(XACT_TEST_WITH_POSTGRES) || !defined(XACT_TEST_WITH_MYSQL)
      GTEST_SKIP() << "built without the PostgreSQL or MySQL adapter";
#endif
      if (!servers_configured()) {
        if (under_ci()) FAIL() << "CI=true but XACT_PG_*/XACT_MYSQL_* are not set";
        GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
      }
    }
    table_ = "cfg_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    std::string text = "[decision_log]\ndirectory = \"" + (dir_ / "xact") +
                       "\"\n\n"
                       "[[database]]\nname = \"main\"\nstorage = \"file:" +
                       (dir_ / "main.fs") +
                       "\"\n\n"
                       "[[database]]\nname = \"other\"\nstorage = \"file:" +
                       (dir_ / "other.fs") +
                       "\"\ncache_size = 100\n\n"
                       "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"" +
                       (dir_ / "app.db") + "\"\nlast_resource = true\n";
    if (servers_) {
      text +=
          "\n[[sql]]\nname = \"orders\"\nkind = \"postgres\"\n"
          "uri = \"postgresql://${XACT_PG_USER}@${XACT_PG_HOST}:${XACT_PG_PORT}/${XACT_PG_DB}\"\n"
          "password_env = \"XACT_PG_PASSWORD\"\n\n"
          "[[sql]]\nname = \"stock\"\nkind = \"mysql\"\n"
          "uri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:${XACT_MYSQL_PORT}/"
          "${XACT_MYSQL_DB}\"\npassword_env = \"XACT_MYSQL_PASSWORD\"\n";
    }
    std::ofstream(file_) << text;

    auto app = config::load(file_);
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
      try {
        auto app = config::load(file_);
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

  // The transaction the child commits (and is killed in).
  void commit_everything(config::Application& app, bool last_resource) {
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto main = app.database("main").open(o);
    auto other = app.database("other").open(o);
    run(*app.manager, [&](Transaction& txn) {
      main->root()->set("n", 1);
      other->root()->set("n", 1);
      if (last_resource) app.sql_resource("app").execute(txn, "INSERT INTO t VALUES ('k')");
      if (servers_) {
        app.sql_resource("orders").execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
        app.sql_resource("stock").execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
      }
    });
  }

  // How many of the stores hold the transaction, and how many could.
  std::pair<int, int> count_committed(config::Application& app, bool last_resource) {
    int yes = 0;
    int stores = 0;
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    for (const char* name : {"main", "other"}) {
      auto conn = app.database(name).open(o);
      run(*app.manager, [&](Transaction&) {
        ++stores;
        if (const auto* n = conn->root()->find("n")) yes += n->as_int() == 1 ? 1 : 0;
      });
    }
    const auto count = [&](const std::string& resource, const std::string& table) {
      run(*app.manager, [&](Transaction& txn) {
        ++stores;
        yes += static_cast<int>(
            app.sql_resource(resource).execute(txn, "SELECT k FROM " + table).size());
      });
    };
    if (last_resource) count("app", "t");
    if (servers_) {
      count("orders", table_);
      count("stock", table_);
    }
    return {yes, stores};
  }

  static inline int counter_ = 0;
  bool servers_ = false;
  TempDir dir_;
  TempDir scratch_;
  std::string file_ = dir_ / "app.toml";
  std::string table_;
};

TEST_P(RecoverConfig, TheToolLeavesEveryStoreAllOrNothing) {
  const Case& c = std::get<0>(GetParam());
  const auto child = testing::run_in_child(
      [&] {
        config::LoadOptions options;
        options.run_recovery = false;
        auto app = config::load(file_, options);
        commit_everything(app, c.last_resource);
        return 0;
      },
      c.crash_point, c.hit);
  ASSERT_TRUE(child.killed) << child.describe();

  const ToolRun dry = run_xact(scratch_, {"recover", "--config", file_, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.out << dry.err;
  const ToolRun tool = run_xact(scratch_, {"recover", "--config", file_});
  ASSERT_EQ(tool.code, 0) << tool.out << tool.err;
  EXPECT_TRUE(has(tool.out, "configuration '" + file_ + "'")) << tool.out;

  auto app = config::load(file_);  // recovers again: nothing may be left
  EXPECT_TRUE(app.recovery_report.complete()) << app.recovery_report.describe();
  EXPECT_TRUE(app.recovery_report.actions.empty()) << app.recovery_report.describe();
  const auto [yes, stores] = count_committed(app, c.last_resource);
  EXPECT_EQ(yes, c.committed ? stores : 0) << tool.out;
  // The same rows commit again: no lock or prepared branch is left.
  if (!c.committed) commit_everything(app, c.last_resource);
}

const Case kCases[] = {
    {"coordinator.after_commit", 1, true, false},
    {"coordinator.after_vote", 1, true, false},
    {"coordinator.after_vote", 2, true, false},
    {"coordinator.after_last_resource", 1, true, true},
    {"coordinator.after_finish", 1, true, true},
    {"coordinator.before_commit_record", 1, false, false},
    {"coordinator.after_commit_record", 1, false, true},
    {"coordinator.after_finish", 1, false, true},
};

INSTANTIATE_TEST_SUITE_P(Files, RecoverConfig,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(false)),
                         [](const auto& info) {
                           return name_of({std::get<0>(info.param), info.index});
                         });
INSTANTIATE_TEST_SUITE_P(Servers, RecoverConfig,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(true)),
                         [](const auto& info) {
                           return name_of({std::get<0>(info.param), info.index});
                         });

// The installed tool has no test store: --resource kv:... is unknown there.
TEST(InstalledTool, KnowsNoTestStore) {
  TempDir scratch;
  const ToolRun run = run_xact(scratch, {"recover", scratch.path(), "--resource", "a=kv:/x"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "unknown resource kind 'kv'")) << run.err;
  EXPECT_TRUE(has(run.err, "xact recover --config FILE")) << run.err;
}

TEST(InstalledTool, ABadConfigurationFileIsNamedWithItsLine) {
  TempDir scratch;
  const std::string file = scratch / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"/x\"\n[[database]]\nname = \"m\"\n"
                         "storage = \"memory:\"\ncache = 3\n";
  const ToolRun run = run_xact(scratch, {"recover", "--config", file});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, file + ":6: key 'database[0].cache': unknown key")) << run.err;
}

TEST(InstalledTool, ConfigTakesNoLogDirectory) {
  TempDir scratch;
  const ToolRun run = run_xact(scratch, {"recover", "--config", scratch / "app.toml", "/var/x"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "unexpected argument '/var/x': the command takes options only"))
      << run.err;
}

TEST(InstalledTool, AMissingStorageIsOwedNotCreated) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"" << (dir / "xact")
                      << "\"\n[[database]]\nname = \"m\"\nstorage = \"file:" << (dir / "m.fs")
                      << "\"\n[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \""
                      << (dir / "app.db") << "\"\n";
  { config::load(file); }  // creates the log and both files
  std::remove((dir / "m.fs").c_str());
  const ToolRun run = run_xact(dir, {"recover", "--config", file});
  EXPECT_TRUE(has(run.err, "cannot open resource 'objects:m'")) << run.err;
  EXPECT_FALSE(std::ifstream(dir / "m.fs").good());  // not created
}

// A server that refuses the password, and one that is not there: both are owed (exit 3), the
// other resources are recovered, and the password is in no line the tool prints, not even
// with --verbose.
TEST(InstalledTool, AnUnreachableServerIsOwedAndItsPasswordIsNeverPrinted) {
#if !defined(XACT_TEST_WITH_POSTGRES) || !defined(XACT_TEST_WITH_MYSQL)
  GTEST_SKIP() << "built without the PostgreSQL or MySQL adapter";
#endif
  if (!servers_configured()) {
    if (under_ci()) FAIL() << "CI=true but XACT_PG_*/XACT_MYSQL_* are not set";
    GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
  }
  const std::string secret = "Wr0ng-s3cret-" + std::to_string(::getpid());
  ASSERT_EQ(::setenv("XACT_CFG_TEST_SECRET", secret.c_str(), 1), 0);
  TempDir dir;
  const std::string file = dir / "app.toml";
  std::ofstream(file)
      << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n"
      << "[[database]]\nname = \"main\"\nstorage = \"file:" << (dir / "main.fs") << "\"\n"
      << "[[sql]]\nname = \"orders\"\nkind = \"postgres\"\n"
         "uri = \"postgresql://${XACT_PG_USER}@${XACT_PG_HOST}:${XACT_PG_PORT}/${XACT_PG_DB}"
         "?connect_timeout=5\"\npassword_env = \"XACT_CFG_TEST_SECRET\"\n"
      << "[[sql]]\nname = \"stock\"\nkind = \"mysql\"\n"
         "uri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:${XACT_MYSQL_PORT}/${XACT_MYSQL_DB}\"\n"
         "password_env = \"XACT_CFG_TEST_SECRET\"\n"
      << "[[sql]]\nname = \"gone\"\nkind = \"postgres\"\n"
         "uri = \"postgresql://nobody@127.0.0.1:1/none?connect_timeout=5\"\n"
         "password_env = \"XACT_CFG_TEST_SECRET\"\n";
  {
    config::LoadOptions options;
    options.run_recovery = false;  // the servers refuse: nothing to ask them now
    config::load(file, options);   // creates the log and the file storage
  }
  for (const bool verbose : {false, true}) {
    std::vector<std::string> args{"recover", "--config", file};
    if (verbose) args.push_back("--verbose");
    const ToolRun run = run_xact(dir, args);
    EXPECT_EQ(run.code, 3) << run.out << run.err;
    EXPECT_TRUE(has(run.out + run.err, "orders")) << run.out << run.err;
    EXPECT_TRUE(has(run.out + run.err, "stock")) << run.out << run.err;
    EXPECT_TRUE(has(run.out + run.err, "gone")) << run.out << run.err;
    EXPECT_FALSE(has(run.out + run.err, secret)) << run.out << run.err;
  }
  ::unsetenv("XACT_CFG_TEST_SECRET");
}

}  // namespace
}  // namespace xact

// One transaction across PostgreSQL (PREPARE TRANSACTION), MariaDB (XA) and SQLite (the one-phase
// last resource that carries the decision): committed everywhere, rolled back everywhere when any
// step fails, and after the application is killed at each step, recovered to the same outcome
// everywhere. After each test no PostgreSQL prepared transaction and no XA branch of its node is
// left.
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/recovery.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/recording_resource.hpp>
#include <xact/testing/servers.hpp>
#include <xact/transaction.hpp>

#include "../mysql/mysql_test_support.hpp"

namespace xact::crosstest {
namespace {

using mytest::my_env;
using testing::unique_name;

std::string pg_uri() { return testing::env_or_empty("XACT_PG_URI"); }

class CrossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (pg_uri().empty() || my_env() == nullptr) {
      if (testing::under_ci()) {
        FAIL() << "CI=true but XACT_PG_URI / XACT_MYSQL_* are not set: run scripts/test.sh";
      }
      GTEST_SKIP() << "needs PostgreSQL and MariaDB (scripts/servers.sh start DIR; source "
                      "DIR/env.sh)";
    }
    servers_ = true;
    pg_table_ = unique_name("x");
    pqxx::connection c(pg_uri());
    pqxx::nontransaction(c).exec("CREATE TABLE " + pg_table_ + " (k text PRIMARY KEY, v text)");
    my_table_ = std::make_unique<mytest::TempTable>();
    my_reader_ = std::make_unique<mytest::Plain>();
    pg_name_ = unique_name("pg");
    my_name_ = unique_name("my");
    sqlite()->open_connection()->execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  }
  void TearDown() override {
    if (!servers_) return;
    // Nothing of the nodes this test used may be left prepared anywhere.
    pqxx::connection c(pg_uri());
    for (const auto& row : pqxx::nontransaction(c).exec("SELECT gid FROM pg_prepared_xacts")) {
      const auto xid = Xid::from_gid(row[0].as<std::string>());
      if (xid && nodes_.count(xid->gtrid.node()) != 0) {
        ADD_FAILURE() << "PostgreSQL prepared transaction left: " << xid->to_gid();
        pqxx::nontransaction(c).exec("ROLLBACK PREPARED " + c.quote(xid->to_gid()));
      }
    }
    for (const auto& xid : my_reader_->xact_branches()) {
      if (nodes_.count(xid.gtrid.node()) != 0) ADD_FAILURE() << "XA branch left: " << xid.to_gid();
    }
    pqxx::nontransaction(c).exec("DROP TABLE IF EXISTS " + pg_table_);
  }

  std::shared_ptr<postgres::PostgresResource> pg() {
    postgres::PostgresOptions o;
    o.conninfo = pg_uri();
    o.name = pg_name_;
    o.pool.max_size = 2;
    return postgres::PostgresResource::create(o);
  }
  std::shared_ptr<mysql::MySqlResource> my() {
    return mysql::MySqlResource::create(mytest::options(my_name_));
  }
  std::shared_ptr<sqlite::SqliteResource> sqlite() {
    sqlite::SqliteOptions o;
    o.path = dir_ / "app.db";
    o.name = "sqlite:app";
    return sqlite::SqliteResource::create(o);
  }

  // The same write in all three stores.
  void write_all(Transaction& txn, postgres::PostgresResource& p, mysql::MySqlResource& m,
                 sqlite::SqliteResource& s, const std::string& k, const std::string& v) {
    p.execute(txn, "INSERT INTO " + pg_table_ + " (k, v) VALUES ($1, $2)", {k, v});
    mytest::put(m, txn, my_table_->name(), k, v);
    s.execute(txn, "INSERT INTO kv (k, v) VALUES (?, ?)", {k, v});
    nodes_.insert(txn.gtrid().node());
  }

  std::optional<std::string> pg_value(const std::string& k) {
    pqxx::connection c(pg_uri());
    const auto r =
        pqxx::nontransaction(c).exec_params("SELECT v FROM " + pg_table_ + " WHERE k = $1", k);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::string>();
  }
  std::optional<std::string> my_value(const std::string& k) {
    return my_reader_->value(my_table_->name(), k);
  }
  std::optional<std::string> sqlite_value(const std::string& k) {
    const auto r = sqlite()->open_connection()->execute("SELECT v FROM kv WHERE k = ?", {k});
    if (r.empty()) return std::nullopt;
    return r[0].get<std::string>(0);
  }
  void expect_everywhere(const std::string& k, const std::optional<std::string>& v,
                         const std::string& why) {
    EXPECT_EQ(pg_value(k), v) << "PostgreSQL " << why;
    EXPECT_EQ(my_value(k), v) << "MariaDB " << why;
    EXPECT_EQ(sqlite_value(k), v) << "SQLite " << why;
  }

  bool servers_ = false;
  testing::TempDir dir_;
  std::string pg_table_;
  std::unique_ptr<mytest::TempTable> my_table_;
  std::unique_ptr<mytest::Plain> my_reader_;
  std::string pg_name_, my_name_;
  std::set<NodeId> nodes_;
};

// A cross-store lock cycle that no database can see: T1 holds SQLite's write lock and waits for a
// PostgreSQL row lock that T2 holds, while T2 asks for SQLite's write lock. The busy timeout is an
// hour: T2 must give way at once (a retryable conflict), which lets T1 finish; T2's retry then
// completes too. (Before the rule, this test hung for the busy timeout.)
TEST_F(CrossTest, ACrossStoreLockCycleWithSqliteEndsAtOnceAndBothTransactionsComplete) {
  auto p = pg();
  sqlite::SqliteOptions o;
  o.path = dir_ / "app.db";
  o.name = "sqlite:app";
  o.busy_timeout = std::chrono::hours(1);
  auto s = sqlite::SqliteResource::create(o);
  pqxx::connection c(pg_uri());
  pqxx::nontransaction(c).exec("INSERT INTO " + pg_table_ + " VALUES ('r', '0')");

  std::promise<void> t1_holds_sqlite, t2_holds_row, t1_done;
  auto t1_done_f = t1_done.get_future().share();
  auto t1_holds_sqlite_f = t1_holds_sqlite.get_future().share();
  std::vector<std::exception_ptr> t2_failures;
  std::mutex nodes_mutex;  // nodes_ is the fixture's, shared by both threads
  auto note_node = [&](Transaction& txn) {
    std::lock_guard lock(nodes_mutex);
    nodes_.insert(txn.gtrid().node());
  };
  auto t2 = std::async(std::launch::async, [&] {
    ExplicitTransactionManager tm;
    RetryPolicy policy;
    policy.attempts = 5;
    // Retry once T1 is through (a retry at once could take the row again before T1 asks for
    // it, and give way again: real back-off spreads them, the test orders them).
    policy.sleep = [t1_done_f](std::chrono::microseconds) { t1_done_f.wait(); };
    bool first = true;
    for (Attempts a(tm, policy); a.next();) {
      try {
        auto& txn = a.transaction();
        note_node(txn);
        p->execute(txn, "UPDATE " + pg_table_ + " SET v = v || 't2' WHERE k = 'r'");
        if (first) {
          first = false;
          t2_holds_row.set_value();
          t1_holds_sqlite_f.wait();
        }
        s->execute(txn, "INSERT INTO kv (k, v) VALUES ($1, $2)",
                   {"t2-" + std::to_string(a.attempt()), "t2"});
        a.commit();
      } catch (...) {
        t2_failures.push_back(std::current_exception());
        a.failed(std::current_exception());
      }
    }
  });
  {
    struct Done {  // T2's retry waits for it, whatever happens here
      std::promise<void>& p;
      ~Done() { p.set_value(); }
    } done{t1_done};
    ExplicitTransactionManager tm;
    auto& txn = tm.begin();
    note_node(txn);
    s->execute(txn, "INSERT INTO kv (k, v) VALUES ($1, $2)", {"t1", "t1"});  // SQLite first
    t1_holds_sqlite.set_value();
    t2_holds_row.get_future().wait();
    p->execute(txn, "UPDATE " + pg_table_ + " SET v = v || 't1' WHERE k = 'r'");  // T2's row
    EXPECT_TRUE(tm.commit().complete());
  }
  t2.get();
  ASSERT_EQ(t2_failures.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(t2_failures[0]), ConflictError);
  EXPECT_EQ(pg_value("r"), "0t1t2") << "T1 first, then T2's retry";
  EXPECT_EQ(sqlite_value("t1"), "t1");
  EXPECT_EQ(sqlite_value("t2-2"), "t2");
}

TEST_F(CrossTest, OneTransactionCommitsInPostgresMariaDbAndSqlite) {
  auto p = pg();
  auto m = my();
  auto s = sqlite();
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  write_all(txn, *p, *m, *s, "k", "v");
  const auto outcome = tm.commit();
  EXPECT_TRUE(outcome.complete());
  EXPECT_TRUE(outcome.decision_logged) << "SQLite carried the decision";
  expect_everywhere("k", "v", "after the commit");
  EXPECT_TRUE(s->decisions().empty()) << "the marker is forgotten once everyone finished";
}

// A failure injected at each step of the protocol (by a fourth participant that fails there, or
// by SQLite failing to store the decision) rolls back all three.
class CrossFailureTest : public CrossTest, public ::testing::WithParamInterface<testing::Step> {};

TEST_P(CrossFailureTest, AFailureAtAnyStepRollsBackEverywhere) {
  auto p = pg();
  auto m = my();
  auto s = sqlite();
  const testing::Step step = GetParam();
  if (step == testing::Step::commit_one_phase) {
    s->open_connection()->execute(
        "CREATE TRIGGER no_decisions BEFORE INSERT ON xact_decisions "
        "BEGIN SELECT RAISE(ABORT, 'injected: the decision cannot be stored'); END");
  }
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  write_all(txn, *p, *m, *s, "k", "v");
  testing::RecordingOptions o;
  o.fail_at = step == testing::Step::commit_one_phase ? testing::Step::none : step;
  auto failing = std::make_shared<testing::RecordingResource>(
      "zz-failing", std::make_shared<testing::CallLog>(), o);
  failing->set(txn, "x");
  EXPECT_ANY_THROW(tm.commit());
  tm.abort();
  expect_everywhere("k", std::nullopt, "after a failure");
  EXPECT_TRUE(s->decisions().empty());
  EXPECT_TRUE(failing->prepared().empty());
}

INSTANTIATE_TEST_SUITE_P(Steps, CrossFailureTest,
                         ::testing::Values(testing::Step::tpc_begin, testing::Step::commit,
                                           testing::Step::tpc_vote,
                                           testing::Step::commit_one_phase),
                         [](const ::testing::TestParamInfo<testing::Step>& info) {
                           switch (info.param) {
                             case testing::Step::tpc_begin: return std::string("tpc_begin");
                             case testing::Step::commit: return std::string("commit");
                             case testing::Step::tpc_vote: return std::string("tpc_vote");
                             default: return std::string("sqlite_decision");
                           }
                         });

// The application killed at each step; recovery (PostgreSQL and MariaDB recoverable, SQLite the
// decision store) makes all three agree: committed iff SQLite's marker was committed.
using testing::CrashCase;

class CrossCrashTest : public CrossTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(CrossCrashTest, RecoveryMakesAllThreeAgree) {
  const CrashCase c = GetParam();
  const std::string log_dir = dir_ / "log";
  const auto run = testing::run_in_child(
      [&] {
        auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), log_dir));
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        auto p = pg();
        auto m = my();
        auto s = sqlite();
        auto& txn = tm.begin();
        write_all(txn, *p, *m, *s, "k", "v");
        tm.commit();
        return 42;
      },
      c.point, c.hit);
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();

  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), log_dir));
  nodes_.insert(log->node_id());
  auto s = sqlite();
  Recovery recovery(log);
  recovery.register_resource(pg());
  recovery.register_resource(my());
  recovery.register_resource(s);
  const RecoveryReport report = recovery.run();
  ASSERT_TRUE(report.complete()) << report.describe();
  expect_everywhere("k", c.commits() ? std::optional<std::string>("v") : std::nullopt,
                    "after recovery from " + c.point + ": " + report.describe());
  s->forget_decisions_before(log->node_id(), log->epoch());
  EXPECT_TRUE(s->decisions().empty());
}

// Two prepared participants: each killed after its finish.
INSTANTIATE_TEST_SUITE_P(
    Points, CrossCrashTest,
    ::testing::ValuesIn(testing::decision_in_last_resource_crash_cases("sqlite:app", 2)),
    testing::crash_case_name);

}  // namespace
}  // namespace xact::crosstest

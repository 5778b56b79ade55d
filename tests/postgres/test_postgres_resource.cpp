// PostgresResource against a server: one-phase and two-phase commits, two databases of one
// cluster in one transaction, read-only votes, failed statements, savepoints, an enlisted
// libpqxx connection, and the retryable errors (serialization failure, deadlock, lock timeout,
// a lost connection) retried to success by xact::run.
#include <xact/postgres/postgres_resource.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <thread>

#include <xact/manager.hpp>
#include <xact/retry.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

using postgres::PgConnection;
using postgres::PostgresResource;
using namespace std::chrono_literals;

RetryPolicy quick_retries(int attempts = 3) {
  RetryPolicy p;
  p.attempts = attempts;
  p.sleep = [](std::chrono::microseconds) {};
  return p;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

class PostgresResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_PG();
    t1_ = std::make_unique<TempTable>(pg_env()->uri);
    t2_ = std::make_unique<TempTable>(pg_env()->uri2);
    db1_ = std::make_unique<Plain>(pg_env()->uri);
    db2_ = std::make_unique<Plain>(pg_env()->uri2);
    rm1_ = PostgresResource::create(options(pg_env()->uri));
    rm2_ = PostgresResource::create(options(pg_env()->uri2));
  }
  void TearDown() override { tm_.abort(); }

  std::optional<std::string> v1(const std::string& k) { return db1_->value(t1_->name(), k); }
  std::optional<std::string> v2(const std::string& k) { return db2_->value(t2_->name(), k); }
  void put1(Transaction& txn, const std::string& k, const std::string& v) {
    put(*rm1_, txn, t1_->name(), k, v);
  }
  void put2(Transaction& txn, const std::string& k, const std::string& v) {
    put(*rm2_, txn, t2_->name(), k, v);
  }

  std::unique_ptr<TempTable> t1_, t2_;
  std::unique_ptr<Plain> db1_, db2_;
  std::shared_ptr<PostgresResource> rm1_, rm2_;
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
};

TEST_F(PostgresResourceTest, TheOnlyParticipantCommitsInOnePhase) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put1(txn, "b", "2");
  const auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.complete());
  EXPECT_FALSE(outcome.decision_logged);
  EXPECT_EQ(v1("a"), "1");
  EXPECT_EQ(v1("b"), "2");
  EXPECT_EQ(rm1_->pool()->stats().idle, 1u);
}

TEST_F(PostgresResourceTest, TwoDatabasesOfOneClusterArePreparedUnderDistinctGidsThenCommitted) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put2(txn, "a", "2");
  const std::string gid1 = txn.xid_for(*rm1_).to_gid();
  const std::string gid2 = txn.xid_for(*rm2_).to_gid();
  std::vector<std::string> prepared;
  std::int64_t in_db1 = -1, in_db2 = -1;
  std::optional<std::string> seen = "not called";
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::commit, [&] {
    prepared = db1_->prepared_gids();
    in_db1 = db1_->count(
        "SELECT count(*) FROM pg_prepared_xacts WHERE database = "
        "current_database() AND gid = " +
        db1_->conn().quote(gid1));
    in_db2 = db2_->count(
        "SELECT count(*) FROM pg_prepared_xacts WHERE database = "
        "current_database() AND gid = " +
        db2_->conn().quote(gid2));
    seen = v1("a");
  }));
  EXPECT_TRUE(tm_.commit().complete());
  EXPECT_NE(gid1, gid2);
  EXPECT_TRUE(contains(prepared, gid1));
  EXPECT_TRUE(contains(prepared, gid2));
  EXPECT_EQ(in_db1, 1) << "each branch is prepared in its own database";
  EXPECT_EQ(in_db2, 1);
  EXPECT_EQ(seen, std::nullopt) << "prepared is not committed";
  EXPECT_EQ(v1("a"), "1");
  EXPECT_EQ(v2("a"), "2");
  EXPECT_FALSE(contains(db1_->prepared_gids(), gid1));
  EXPECT_FALSE(contains(db1_->prepared_gids(), gid2));
}

TEST_F(PostgresResourceTest, RecoveryIsPerDatabase) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put2(txn, "a", "2");
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::in_doubt));
  const Xid x1 = txn.xid_for(*rm1_);
  const Xid x2 = txn.xid_for(*rm2_);
  EXPECT_THROW(tm_.commit(), InDoubtError);
  tm_.abort();
  const NodeId node = x1.gtrid.node();
  EXPECT_EQ(rm1_->recover(node), std::vector<Xid>{x1});
  EXPECT_EQ(rm2_->recover(node), std::vector<Xid>{x2});
  EXPECT_EQ(rm1_->rollback_prepared(x1), RecoverableResource::Outcome::done);
  EXPECT_EQ(rm2_->commit_prepared(x2), RecoverableResource::Outcome::done);
  EXPECT_EQ(v1("a"), std::nullopt);
  EXPECT_EQ(v2("a"), "2");
  EXPECT_EQ(rm2_->rollback_prepared(x2), RecoverableResource::Outcome::unknown_id);
}

TEST_F(PostgresResourceTest, ABranchWithoutStatementsVotesReadOnly) {
  auto& txn = tm_.begin();
  txn.join(rm1_);
  put2(txn, "a", "2");
  const std::string gid1 = txn.xid_for(*rm1_).to_gid();
  std::vector<std::string> prepared;
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::commit,
                                           [&] { prepared = db1_->prepared_gids(); }));
  tm_.commit();
  EXPECT_FALSE(contains(prepared, gid1));
  EXPECT_EQ(rm1_->pool()->stats().created, 0u) << "no statement, no connection";
}

TEST_F(PostgresResourceTest, WithDetectionABranchThatOnlyReadVotesReadOnly) {
  auto o = options(pg_env()->uri);
  o.detect_read_only = true;
  auto reader = PostgresResource::create(o);
  db1_->run("INSERT INTO " + t1_->name() + " VALUES ('row', 'v')");
  for (const bool lock_rows : {false, true}) {
    auto& txn = tm_.begin();
    reader->execute(txn,
                    std::string("SELECT k FROM ") + t1_->name() + (lock_rows ? " FOR UPDATE" : ""));
    reader->execute(txn, "SELECT 1");
    put2(txn, "a", "2");
    const std::string gid = txn.xid_for(*reader).to_gid();
    std::vector<std::string> prepared;
    txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::commit,
                                             [&] { prepared = db1_->prepared_gids(); }));
    tm_.commit();
    // SELECT ... FOR UPDATE locks: that branch writes (row locks) and must hold them.
    EXPECT_EQ(contains(prepared, gid), lock_rows) << (lock_rows ? "FOR UPDATE" : "plain SELECT");
  }
  // Without detection (the default) a branch that ran any statement is prepared.
  auto& txn = tm_.begin();
  rm1_->execute(txn, "SELECT 1");
  put2(txn, "b", "2");
  const std::string gid = txn.xid_for(*rm1_).to_gid();
  std::vector<std::string> prepared;
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::commit,
                                           [&] { prepared = db1_->prepared_gids(); }));
  tm_.commit();
  EXPECT_TRUE(contains(prepared, gid));
}

TEST_F(PostgresResourceTest, AFailedStatementFailsTheCommitAndNothingIsWritten) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put2(txn, "a", "2");
  try {
    rm1_->execute(txn, "INSERT INTO " + t1_->name() + " (k, v) VALUES ($1, $2)", {"a", "dup"});
    FAIL() << "a duplicate key must fail";
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
  }
  EXPECT_THROW(tm_.commit(), sql::SqlError) << "commit() surfaces the failed statement";
  tm_.abort();
  EXPECT_EQ(v1("a"), std::nullopt);
  EXPECT_EQ(v2("a"), std::nullopt);
  EXPECT_EQ(rm1_->pool()->stats().open, rm1_->pool()->stats().idle) << "connections returned";
}

TEST_F(PostgresResourceTest, ASavepointRollbackRecoversFromAFailedStatement) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put2(txn, "a", "2");
  auto sp = txn.savepoint();
  put1(txn, "b", "1");
  EXPECT_THROW(rm1_->execute(txn, "SELECT 1/0"), sql::SqlError);
  sp.rollback();
  put1(txn, "c", "1");
  EXPECT_TRUE(tm_.commit().complete());
  EXPECT_EQ(v1("a"), "1");
  EXPECT_EQ(v1("b"), std::nullopt);
  EXPECT_EQ(v1("c"), "1");
  EXPECT_EQ(v2("a"), "2");
}

TEST_F(PostgresResourceTest, AStatementThatFailedOutsideExecuteStopsThePrepare) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  put2(txn, "a", "2");
  // The application's own SQL on the branch's connection, straight through libpqxx: xact does
  // not see the error, but PostgreSQL aborted the branch.
  auto& conn = static_cast<PgConnection&>(rm1_->connection(txn));
  EXPECT_THROW(pqxx::nontransaction(conn.native()).exec("SELECT 1/0"), pqxx::sql_error);
  try {
    tm_.commit();
    FAIL() << "the aborted branch must not be reported prepared";
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.sqlstate(), "25P02");
    EXPECT_NE(std::string(e.what()).find("cannot prepare"), std::string::npos) << e.what();
  }
  tm_.abort();
  EXPECT_EQ(v2("a"), std::nullopt) << "the other database rolled back too";
}

TEST_F(PostgresResourceTest, AStatementThatFailedOutsideExecuteStopsAOnePhaseCommit) {
  auto& txn = tm_.begin();
  put1(txn, "a", "1");
  auto& conn = static_cast<PgConnection&>(rm1_->connection(txn));
  EXPECT_THROW(pqxx::nontransaction(conn.native()).exec("SELECT 1/0"), pqxx::sql_error);
  try {
    tm_.commit();
    FAIL() << "COMMIT of an aborted transaction is a rollback; it must not look like a commit";
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.sqlstate(), "25P02");
  }
  tm_.abort();
  EXPECT_EQ(v1("a"), std::nullopt);
}

TEST_F(PostgresResourceTest, AnEnlistedLibpqxxConnectionCarriesTheBranch) {
  pqxx::connection mine(pg_env()->uri);
  auto& txn = tm_.begin();
  rm1_->enlist(txn, mine);
  put1(txn, "a", "1");
  {
    // The application's own statement on its own connection, in the same branch.
    pqxx::nontransaction own(mine);
    own.exec_params("INSERT INTO " + t1_->name() + " (k, v) VALUES ($1, $2)", "b", "1");
  }
  put2(txn, "a", "2");
  EXPECT_TRUE(tm_.commit().complete());
  EXPECT_EQ(v1("a"), "1");
  EXPECT_EQ(v1("b"), "1");
  EXPECT_EQ(v2("a"), "2");
  EXPECT_EQ(rm1_->pool()->stats().created, 0u) << "the pool was not used for the branch";
  pqxx::work after(mine);  // the application's again, idle
  EXPECT_EQ(after.exec("SELECT 1")[0][0].as<int>(), 1);
  after.commit();
}

TEST_F(PostgresResourceTest, ASerializationFailureIsRetriedToSuccessByRun) {
  db1_->run("INSERT INTO " + t1_->name() + " VALUES ('acct', '100')");
  std::vector<std::exception_ptr> failures;
  int attempts = 0;
  for (Attempts a(tm_, quick_retries()); a.next();) {
    try {
      ++attempts;
      auto& txn = a.transaction();
      const int balance =
          std::stoi(rm1_->execute(txn, "SELECT v FROM " + t1_->name() + " WHERE k = 'acct'")
                        .one()
                        .get<std::string>(0));  // the snapshot is taken here
      if (attempts == 1) {
        // Someone else commits a change to the row after our snapshot.
        db1_->run("UPDATE " + t1_->name() + " SET v = '200' WHERE k = 'acct'");
      }
      rm1_->execute(txn, "UPDATE " + t1_->name() + " SET v = $1 WHERE k = 'acct'",
                    {std::to_string(balance + 1)});
      put2(txn, "log", std::to_string(attempts));
      a.commit();
    } catch (...) {
      failures.push_back(std::current_exception());
      a.failed(std::current_exception());
    }
  }
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(failures[0]), SerializationFailure);
  EXPECT_EQ(v1("acct"), "201") << "the retry read the other transaction's value";
  EXPECT_EQ(v2("log"), "2");
}

TEST_F(PostgresResourceTest, ADeadlockIsMappedAndTheVictimIsRetriedToSuccess) {
  db1_->run("INSERT INTO " + t1_->name() + " VALUES ('r1', '0'), ('r2', '0')");
  const std::string table = t1_->name();
  // Two transactions, both through xact, lock r1 and r2 in opposite orders. Which one the server
  // picks as the victim depends on whose deadlock check runs first (on a loaded machine, not
  // always the one that waited longer), so neither side may run a statement outside xact's
  // error mapping: whichever is picked must see a DeadlockError and be retried to success.
  struct Side {
    std::string name;
    std::string first, second;  // the rows, in this side's order
    std::promise<void> holds_first;
    std::promise<int> pid;
    std::promise<void> finished;
    std::vector<std::exception_ptr> failures;
    int attempts = 0;
  };
  Side us{"us", "r1", "r2"};
  Side them{"them", "r2", "r1"};
  auto them_holds_r2 = them.holds_first.get_future();
  auto our_pid = us.pid.get_future();
  auto them_finished = them.finished.get_future().share();
  auto us_finished = us.finished.get_future().share();

  // `wait_before_second` runs on the first attempt between the two UPDATEs.
  auto run_side = [&](Side& side, ExplicitTransactionManager& tm,
                      const std::function<void(Transaction&)>& wait_before_second,
                      std::shared_future<void> other_finished) {
    RetryPolicy policy = quick_retries();
    // Retry once the other side committed: a retry that waited for its row lock would fail
    // again, with a serialization failure (its snapshot predates the other's commit).
    policy.sleep = [other_finished](std::chrono::microseconds) { other_finished.wait(); };
    for (Attempts a(tm, policy); a.next();) {
      try {
        ++side.attempts;
        auto& txn = a.transaction();
        rm1_->execute(txn, "UPDATE " + table + " SET v = $1 WHERE k = $2", {side.name, side.first});
        if (side.attempts == 1) wait_before_second(txn);
        rm1_->execute(txn, "UPDATE " + table + " SET v = $1 WHERE k = $2",
                      {side.name, side.second});
        put2(txn, "done-" + side.name, std::to_string(side.attempts));
        a.commit();
      } catch (...) {
        side.failures.push_back(std::current_exception());
        a.failed(std::current_exception());
      }
    }
    side.finished.set_value();
  };

  auto other = std::async(std::launch::async, [&] {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    run_side(
        them, tm,
        [&](Transaction&) {
          them.holds_first.set_value();
          // Ask for r1 only once we wait for r2: then the cycle is certain.
          const int pid = our_pid.get();
          Plain watcher(pg_env()->uri);
          while (watcher.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                               "'Lock' AND pid = " +
                               std::to_string(pid)) == 0) {
            std::this_thread::sleep_for(5ms);
          }
        },
        us_finished);
  });
  run_side(
      us, tm_,
      [&](Transaction& txn) {
        them_holds_r2.wait();
        us.pid.set_value(rm1_->execute(txn, "SELECT pg_backend_pid()").one().get<int>(0));
      },
      them_finished);
  other.get();

  // Exactly one side was the victim: it failed once, with the mapped error, and its retry won.
  ASSERT_EQ(us.failures.size() + them.failures.size(), 1u);
  Side& victim = us.failures.empty() ? them : us;
  EXPECT_EQ(victim.attempts, 2);
  EXPECT_EQ((us.failures.empty() ? us : them).attempts, 1);
  EXPECT_THROW(std::rethrow_exception(victim.failures[0]), DeadlockError);
  EXPECT_EQ(v1("r1"), victim.name) << "the retry committed last";
  EXPECT_EQ(v1("r2"), victim.name);
  EXPECT_EQ(v2("done-us"), std::to_string(us.attempts));
  EXPECT_EQ(v2("done-them"), std::to_string(them.attempts));
}

// The same statement text as for MySQL and SQLite runs as written; `?` stays jsonb's operator.
TEST_F(PostgresResourceTest, DollarPlaceholdersServeTheSameStatementAsOnTheOtherStores) {
  const std::string t = t1_->name();
  auto& txn = tm_.begin();
  rm1_->execute(txn, "INSERT INTO " + t + " (k, v) VALUES ($2, $1) /* $3 */", {"one", "two"});
  rm1_->execute(txn, "INSERT INTO " + t + " (k, v) VALUES ($1, '$1 -- $2')", {"three"});
  const auto r = rm1_->execute(
      txn, "SELECT k FROM " + t + " WHERE v = $1 OR k = $1 OR v = '$2' ORDER BY k", {"one"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].get<std::string>(0), "two");
  EXPECT_EQ(rm1_->execute(txn, "SELECT CASE WHEN '{\"k\": 1}'::jsonb ? $1 THEN 'yes' END", {"k"})
                .one()
                .get<std::string>(0),
            "yes");
  tm_.commit();
  EXPECT_EQ(v1("three"), "$1 -- $2");
}

TEST_F(PostgresResourceTest, ALockHeldByAPreparedBranchTimesOutRetryably) {
  db1_->run("INSERT INTO " + t1_->name() + " VALUES ('k', 'old')");
  // A branch left prepared (the coordinator lost the decision): it holds the row lock.
  auto& txn = tm_.begin();
  put1(txn, "k", "prepared");
  put2(txn, "k", "prepared");
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::in_doubt));
  const Xid stuck = txn.xid_for(*rm1_);
  const Xid stuck2 = txn.xid_for(*rm2_);
  EXPECT_THROW(tm_.commit(), InDoubtError);
  tm_.abort();

  auto o = options(pg_env()->uri);
  o.lock_timeout = 100ms;
  auto writer = PostgresResource::create(o);
  int attempts = 0;
  std::vector<std::exception_ptr> failures;
  RetryPolicy policy = quick_retries();
  // Between the attempts, recovery settles the stuck branch.
  policy.sleep = [&](std::chrono::microseconds) {
    rm1_->rollback_prepared(stuck);
    rm2_->rollback_prepared(stuck2);
  };
  for (Attempts a(tm_, policy); a.next();) {
    try {
      ++attempts;
      writer->execute(a.transaction(), "UPDATE " + t1_->name() + " SET v = 'new' WHERE k = 'k'");
      a.commit();
    } catch (...) {
      failures.push_back(std::current_exception());
      a.failed(std::current_exception());
    }
  }
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(failures[0]), sql::LockTimeoutError);
  EXPECT_EQ(v1("k"), "new");
}

TEST_F(PostgresResourceTest, AConnectionLostBeforeTheDecisionIsRetriedOnAFreshConnection) {
  int attempts = 0;
  std::vector<std::exception_ptr> failures;
  for (Attempts a(tm_, quick_retries()); a.next();) {
    try {
      ++attempts;
      auto& txn = a.transaction();
      put1(txn, "a", std::to_string(attempts));
      if (attempts == 1) {
        const int pid = rm1_->execute(txn, "SELECT pg_backend_pid()").one().get<int>(0);
        db1_->run("SELECT pg_terminate_backend(" + std::to_string(pid) + ", 5000)");
      }
      put2(txn, "a", std::to_string(attempts));
      put1(txn, "b", std::to_string(attempts));
      a.commit();
    } catch (...) {
      failures.push_back(std::current_exception());
      a.failed(std::current_exception());
    }
  }
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(failures[0]), sql::ConnectionLost);
  EXPECT_EQ(v1("a"), "2");
  EXPECT_EQ(v1("b"), "2");
  EXPECT_EQ(v2("a"), "2");
}

TEST_F(PostgresResourceTest, ManyThreadsShareTheResources) {
  constexpr int kThreads = 4;
  constexpr int kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> committed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
      for (int i = 0; i < kEach; ++i) {
        xact::run(tm, [&](Transaction& txn) {
          const std::string k = std::to_string(t) + "-" + std::to_string(i);
          put1(txn, k, "1");
          put2(txn, k, "2");
        });
        ++committed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(committed.load(), kThreads * kEach);
  EXPECT_EQ(db1_->count("SELECT count(*) FROM " + t1_->name()), kThreads * kEach);
  EXPECT_EQ(db2_->count("SELECT count(*) FROM " + t2_->name()), kThreads * kEach);
  EXPECT_LE(rm1_->pool()->stats().created, static_cast<std::uint64_t>(kThreads));
}

}  // namespace
}  // namespace xact::pgtest

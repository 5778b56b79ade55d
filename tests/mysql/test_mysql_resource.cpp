// MySqlResource against MariaDB: the XA statements of each step, binary-safe XA RECOVER, the
// one-phase commit of a single participant, deadlocks and lock wait timeouts, savepoints, and
// the transactional-engine check.
#include <algorithm>
#include <atomic>
#include <latch>
#include <thread>

#include <cppconn/connection.h>
#include <cppconn/statement.h>

#include <xact/manager.hpp>
#include <xact/retry.hpp>
#include <xact/testing/recording_resource.hpp>
#include <xact/transaction.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

using mysql::MySqlResource;

// A last resource that reports an in-doubt commit: the MySQL branch stays prepared.
std::shared_ptr<testing::RecordingResource> in_doubt_last() {
  testing::RecordingOptions o;
  o.last_resource = true;
  o.fail_at = testing::Step::commit_one_phase;
  o.thrower = [](testing::Step) { throw InDoubtError("probe: lost during commit"); };
  return std::make_shared<testing::RecordingResource>("zz-probe",
                                                      std::make_shared<testing::CallLog>(), o);
}

class MySqlResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_MYSQL();
    table_ = std::make_unique<TempTable>();
    plain_ = std::make_unique<Plain>();
    rm_ = MySqlResource::create(options());
  }
  std::optional<std::string> v(const std::string& k) { return plain_->value(table_->name(), k); }

  std::unique_ptr<TempTable> table_;
  std::unique_ptr<Plain> plain_;
  std::shared_ptr<MySqlResource> rm_;
};

TEST_F(MySqlResourceTest, TheOnlyParticipantCommitsInOnePhaseWithoutPreparing) {
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  put(*rm_, txn, table_->name(), "a", "1");
  const auto outcome = tm.commit();
  EXPECT_TRUE(outcome.committed);
  EXPECT_FALSE(outcome.decision_logged);
  EXPECT_EQ(v("a"), "1");
  EXPECT_TRUE(plain_->branches_of(txn.xid_for(*rm_).gtrid.node()).empty());
}

TEST_F(MySqlResourceTest, PreparedBranchIsListedBinarySafelyAndCommittedById) {
  Xid xid;
  {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    auto& txn = tm.begin();
    put(*rm_, txn, table_->name(), "p", "prepared");
    txn.join(in_doubt_last());
    xid = txn.xid_for(*rm_);
    EXPECT_THROW(tm.commit(), InDoubtError);
    tm.abort();
  }
  // The gtrid is binary (node id, epoch, sequence): XA RECOVER's data column must come back
  // byte for byte.
  EXPECT_EQ(plain_->branches_of(xid.gtrid.node()), std::vector<Xid>{xid});
  EXPECT_EQ(rm_->recover(xid.gtrid.node()), std::vector<Xid>{xid});
  EXPECT_TRUE(rm_->recover(NodeId::random()).empty()) << "another node's ids are not listed";
  auto other = MySqlResource::create(options());
  EXPECT_TRUE(other->recover(xid.gtrid.node()).empty()) << "another resource's ids are not listed";
  EXPECT_EQ(v("p"), std::nullopt);
  EXPECT_EQ(rm_->commit_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(v("p"), "prepared");
  EXPECT_EQ(rm_->commit_prepared(xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(rm_->rollback_prepared(xid), RecoverableResource::Outcome::unknown_id);
}

TEST_F(MySqlResourceTest, AnotherProgramsPreparedXaBranchIsNeitherListedNorTouched) {
  // XA statements cannot be server-side prepared statements: run them on the native connection.
  Plain other;
  const std::string id = "'" + unique_name("foreign") + "',''," + "1";
  std::unique_ptr<::sql::Statement> st(other.conn().native().createStatement());
  st->execute("XA START " + id);
  st->execute("INSERT INTO " + table_->name() + " VALUES ('f', 'foreign')");
  st->execute("XA END " + id);
  st->execute("XA PREPARE " + id);
  // The server lists it (format id 1, not xact's) ...
  const auto rows = plain_->conn().xa_recover();
  EXPECT_TRUE(
      std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.format_id == 1; }));
  // ... xact's parsing skips it, so neither recovery nor the leftover check ever touches it.
  for (const Xid& x : plain_->xact_branches()) EXPECT_EQ(x.format_id, Xid::kFormatId);
  EXPECT_NO_THROW(rm_->recover(NodeId::random()));
  st->execute("XA ROLLBACK " + id);
  EXPECT_EQ(v("f"), std::nullopt);
}

TEST_F(MySqlResourceTest, ADeadlockIsMappedAndRetriedToSuccessByRun) {
  TempTable counters("k VARCHAR(8) PRIMARY KEY, n INT NOT NULL");
  plain_->run("INSERT INTO " + counters.name() + " VALUES ('a', 0), ('b', 0)");
  std::latch both_hold_one(2);
  std::atomic<int> attempts{0};
  std::atomic<int> deadlocks{0};
  auto worker = [&](const std::string& first, const std::string& second) {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    RetryPolicy policy;
    policy.attempts = 5;
    xact::run(
        tm,
        [&](Transaction& txn) {
          const int attempt = ++attempts;
          rm_->execute(txn, "UPDATE " + counters.name() + " SET n = n + 1 WHERE k = ?", {first});
          if (attempt <= 2) both_hold_one.arrive_and_wait();
          try {
            rm_->execute(txn, "UPDATE " + counters.name() + " SET n = n + 1 WHERE k = ?", {second});
          } catch (const DeadlockError&) {
            ++deadlocks;
            // The server rolled the branch back: the connection refuses the next statement
            // without sending it.
            EXPECT_THROW(rm_->execute(txn, "SELECT 1"), DeadlockError);
            throw;
          }
        },
        policy);
  };
  std::thread t1(worker, "a", "b");
  std::thread t2(worker, "b", "a");
  t1.join();
  t2.join();
  EXPECT_EQ(deadlocks.load(), 1);
  EXPECT_EQ(attempts.load(), 3);
  EXPECT_EQ(plain_->run("SELECT n FROM " + counters.name() + " WHERE k = 'a'").one().get<int>(0),
            2);
  EXPECT_EQ(plain_->run("SELECT n FROM " + counters.name() + " WHERE k = 'b'").one().get<int>(0),
            2);
}

TEST_F(MySqlResourceTest,
       ALockWaitTimeoutIsRetryableAndFailsTheBranchUnlessRolledBackToASavepoint) {
  auto opts = options();
  opts.connect.lock_wait_timeout = std::chrono::seconds(1);
  auto rm = MySqlResource::create(opts);
  plain_->run("INSERT INTO " + table_->name() + " VALUES ('x', 'old'), ('y', 'old')");
  // A prepared branch holds the row lock (as one left by a crash would).
  Xid holder;
  {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    auto& txn = tm.begin();
    put(*rm_, txn, table_->name(), "x", "held");
    txn.join(in_doubt_last());
    holder = txn.xid_for(*rm_);
    EXPECT_THROW(tm.commit(), InDoubtError);
    tm.abort();
  }
  {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    auto& txn = tm.begin();
    put(*rm, txn, table_->name(), "y", "mine");
    EXPECT_THROW(put(*rm, txn, table_->name(), "x", "mine"), sql::LockTimeoutError);
    EXPECT_TRUE(rm->should_retry(std::make_exception_ptr(sql::LockTimeoutError("t"))));
    EXPECT_THROW(tm.commit(), sql::LockTimeoutError) << "the branch may not commit half its work";
    tm.abort();
  }
  EXPECT_EQ(v("y"), "old");
  {
    ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
    auto& txn = tm.begin();
    put(*rm, txn, table_->name(), "y", "mine");
    auto sp = txn.savepoint();
    EXPECT_THROW(put(*rm, txn, table_->name(), "x", "mine"), sql::LockTimeoutError);
    sp.rollback();
    EXPECT_TRUE(tm.commit().committed) << "rolled back to the savepoint, the rest commits";
  }
  EXPECT_EQ(v("y"), "mine");
  EXPECT_EQ(rm_->rollback_prepared(holder), RecoverableResource::Outcome::done);
  EXPECT_EQ(v("x"), "old");
}

TEST_F(MySqlResourceTest, AFailedStatementRollsBackOnlyItselfAndTheBranchGoesOn) {
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  rm_->execute(txn, "INSERT INTO " + table_->name() + " VALUES ('d', '1')");
  EXPECT_THROW(rm_->execute(txn, "INSERT INTO " + table_->name() + " VALUES ('d', '2')"),
               sql::SqlError);
  std::make_shared<testing::RecordingResource>("zz-voter", std::make_shared<testing::CallLog>())
      ->set(txn, "x");
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_EQ(v("d"), "1");
}

TEST_F(MySqlResourceTest, SavepointsWorkInsideAnXaBranch) {
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  put(*rm_, txn, table_->name(), "s1", "kept");
  auto sp = txn.savepoint();
  put(*rm_, txn, table_->name(), "s2", "undone");
  sp.rollback();
  std::make_shared<testing::RecordingResource>("zz-voter", std::make_shared<testing::CallLog>())
      ->set(txn, "x");
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_EQ(v("s1"), "kept");
  EXPECT_EQ(v("s2"), std::nullopt);
}

TEST_F(MySqlResourceTest, ResultsAreTypedAndBytesRoundTrip) {
  TempTable t(
      "id BIGINT PRIMARY KEY, u BIGINT UNSIGNED, d DOUBLE, b VARBINARY(16), s TEXT, "
      "n DECIMAL(10,2), z INT NULL");
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  const sql::Bytes blob = {0, 1, 0xff, 0};
  rm_->execute(txn, "INSERT INTO " + t.name() + " VALUES (?, ?, ?, ?, ?, ?, ?)",
               {1, std::int64_t{18}, 1.5, blob, "héllo", "12.50", nullptr});
  const auto r = rm_->execute(txn, "SELECT * FROM " + t.name());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].get<std::int64_t>("id"), 1);
  EXPECT_EQ(r[0].get<std::int64_t>("u"), 18);
  EXPECT_EQ(r[0].get<double>("d"), 1.5);
  EXPECT_EQ(r[0].get<sql::Bytes>("b"), blob);
  EXPECT_EQ(r[0].get<std::string>("s"), "héllo");
  EXPECT_EQ(r[0].get<std::string>("n"), "12.50");
  EXPECT_EQ(r[0].get<std::optional<int>>("z"), std::nullopt);
  EXPECT_EQ(
      rm_->execute(txn, "UPDATE " + t.name() + " SET d = 2 WHERE id = ?", {1}).affected_rows(), 1);
  tm.commit();
}

// The same statement text as for PostgreSQL and SQLite: `$n` becomes `?` with the parameters
// reordered and repeated; literals and comments keep their `$n`.
TEST_F(MySqlResourceTest, DollarPlaceholdersServeTheSameStatementAsOnTheOtherStores) {
  const std::string t = table_->name();
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  rm_->execute(txn, "INSERT INTO " + t + " (k, v) VALUES ($2, $1) /* $3 */", {"one", "two"});
  rm_->execute(txn, "INSERT INTO " + t + " (k, v) VALUES ($1, '$1 -- $2')", {"three"});
  const auto r = rm_->execute(
      txn, "SELECT k FROM " + t + " WHERE v = $1 OR k = $1 OR v = '$2' ORDER BY k", {"one"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].get<std::string>(0), "two");
  EXPECT_THROW(rm_->execute(txn, "SELECT $1, ?", {"a", "b"}), UsageError) << "mixed styles";
  EXPECT_THROW(rm_->execute(txn, "SELECT $1, $2", {"a"}), UsageError) << "count checked";
  // The native style still works on its own.
  EXPECT_EQ(
      rm_->execute(txn, "SELECT v FROM " + t + " WHERE k = ?", {"two"}).one().get<std::string>(0),
      "one");
  tm.commit();
  EXPECT_EQ(v("three"), "$1 -- $2");
}

TEST_F(MySqlResourceTest, RequireTransactionalAcceptsInnoDbAndRefusesMyIsamNamingTheEngine) {
  EXPECT_NO_THROW(rm_->require_transactional(table_->name()));
  EXPECT_NO_THROW(rm_->require_transactional(my_env()->connect.database + "." + table_->name()));
  TempTable sessions("k VARCHAR(64) PRIMARY KEY, v VARCHAR(255)", "MyISAM");
  try {
    rm_->require_transactional(sessions.name());
    ADD_FAILURE() << "a MyISAM table passed";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(sessions.name()), std::string::npos) << what;
    EXPECT_NE(what.find("MyISAM"), std::string::npos) << what;
    EXPECT_NE(what.find("ROLLBACK"), std::string::npos) << what;
  }
  EXPECT_THROW(rm_->require_transactional("no_such_table_here"), UsageError);
}

TEST_F(MySqlResourceTest, AnEnlistedConnectionCarriesTheBranchAndIsTheApplicationsAgainAfter) {
  auto mine = std::shared_ptr<mysql::MySqlConnection>(rm_->open_connection());
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};
  auto& txn = tm.begin();
  rm_->enlist(txn, mine);
  put(*rm_, txn, table_->name(), "e", "enlisted");
  EXPECT_EQ(&rm_->connection(txn), mine.get());
  std::make_shared<testing::RecordingResource>("zz-voter", std::make_shared<testing::CallLog>())
      ->set(txn, "x");
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_EQ(v("e"), "enlisted");
  EXPECT_EQ(
      mine->execute("SELECT v FROM " + table_->name() + " WHERE k = 'e'").one().get<std::string>(0),
      "enlisted");
}

TEST_F(MySqlResourceTest, IsolationIsSerializableByDefault) {
  auto c = rm_->open_connection();
  const auto level = c->execute("SELECT @@SESSION.tx_isolation").one().get<std::string>(0);
  EXPECT_EQ(level, "SERIALIZABLE");
}

}  // namespace
}  // namespace xact::mytest

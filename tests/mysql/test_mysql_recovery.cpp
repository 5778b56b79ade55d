// Recovery of XA branches on MariaDB: prepared work outlives its connections and its process,
// and xact::Recovery, reading the decision log of an application killed between prepare and
// commit, commits or rolls back both databases together.
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/recording_resource.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

using mysql::MySqlResource;

class MySqlRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_MYSQL();
    t1_ = std::make_unique<TempTable>();
    t2_ = std::make_unique<TempTable>("k VARCHAR(64) PRIMARY KEY, v VARCHAR(255)", "InnoDB",
                                      my_env()->db2);
    db1_ = std::make_unique<Plain>();
    db2_ = std::make_unique<Plain>(my_env()->db2);
    name1_ = unique_name("my1");
    name2_ = unique_name("my2");
  }
  // A fresh instance, as a restarted process would make it.
  std::shared_ptr<MySqlResource> rm1() { return MySqlResource::create(options(name1_)); }
  std::shared_ptr<MySqlResource> rm2() {
    return MySqlResource::create(options(name2_, my_env()->db2));
  }
  std::optional<std::string> v1(const std::string& k) { return db1_->value(t1_->name(), k); }
  std::optional<std::string> v2(const std::string& k) { return db2_->value(t2_->name(), k); }

  // The child: one transaction over both databases with a decision log in `dir`.
  int child_transaction(const std::string& dir) {
    auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir));
    ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
    auto a = rm1();
    auto b = rm2();
    auto& txn = tm.begin();
    put(*a, txn, t1_->name(), "k", "committed?");
    put(*b, txn, t2_->name(), "k", "committed?");
    tm.commit();
    return 42;
  }

  RecoveryReport recover(const std::string& dir, NodeId* node = nullptr) {
    auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir));
    if (node != nullptr) *node = log->node_id();
    Recovery recovery(log);
    recovery.register_resource(rm1());
    recovery.register_resource(rm2());
    return recovery.run();
  }

  std::unique_ptr<TempTable> t1_, t2_;
  std::unique_ptr<Plain> db1_, db2_;
  std::string name1_, name2_;
};

#ifndef XACT_MYSQL_SERVER_CRASH_TESTS
TEST_F(MySqlRecoveryTest, PreparedBranchesSurviveDisconnectAndAreCommittedAfterReconnect) {
  Xid x1, x2;
  {
    auto a = rm1();
    auto b = rm2();
    ExplicitTransactionManager tm;
    auto& txn = tm.begin();
    put(*a, txn, t1_->name(), "k", "v1");
    put(*b, txn, t2_->name(), "k", "v2");
    testing::RecordingOptions o;
    o.last_resource = true;
    o.fail_at = testing::Step::commit_one_phase;
    o.thrower = [](testing::Step) { throw InDoubtError("probe: lost during commit"); };
    txn.join(std::make_shared<testing::RecordingResource>("zz-probe",
                                                          std::make_shared<testing::CallLog>(), o));
    x1 = txn.xid_for(*a);
    x2 = txn.xid_for(*b);
    EXPECT_THROW(tm.commit(), InDoubtError);
    tm.abort();
  }  // every connection of a and b is closed here
  EXPECT_EQ(v1("k"), std::nullopt);
  EXPECT_EQ(db1_->branches_of(x1.gtrid.node()).size(), 2u)
      << "both branches outlived their connections";

  auto a = rm1();
  auto b = rm2();
  EXPECT_EQ(a->recover(x1.gtrid.node()), std::vector<Xid>{x1});
  EXPECT_EQ(b->recover(x2.gtrid.node()), std::vector<Xid>{x2});
  EXPECT_EQ(a->commit_prepared(x1), RecoverableResource::Outcome::done);
  EXPECT_EQ(b->commit_prepared(x2), RecoverableResource::Outcome::done);
  EXPECT_EQ(v1("k"), "v1");
  EXPECT_EQ(v2("k"), "v2");
  EXPECT_EQ(a->commit_prepared(x1), RecoverableResource::Outcome::unknown_id);
  EXPECT_TRUE(db1_->branches_of(x1.gtrid.node()).empty());
}

using testing::CrashCase;

class MySqlAppCrashTest : public MySqlRecoveryTest,
                          public ::testing::WithParamInterface<CrashCase> {};

TEST_P(MySqlAppCrashTest, RecoveryThroughTheCoordinatorFinishesBothDatabasesAlike) {
  testing::check_prepared_pair_crash(
      GetParam(),
      {[&](const std::string& dir) { return child_transaction(dir); },
       [&](const std::string& dir, NodeId* node) { return recover(dir, node); },
       [&](const std::string& key) { return v1(key); },
       [&](const std::string& key) { return v2(key); },
       [&](const NodeId& node) { return db1_->branches_of(node).empty(); }});
}

// Killed between prepare and commit: presumed abort rolls back what has no decision; a durable
// decision commits both, also where one had finished already.
INSTANTIATE_TEST_SUITE_P(Points, MySqlAppCrashTest,
                         ::testing::ValuesIn(testing::prepared_pair_crash_cases()),
                         testing::crash_case_name);

#else
// The server killed (SIGKILL) while a branch is prepared, started again: the branch is still
// there and recovery commits it.
TEST_F(MySqlRecoveryTest, APreparedBranchSurvivesAServerCrash) {
  if (my_env()->servers_script.empty()) {
    if (under_ci()) FAIL() << "CI=true but XACT_SERVERS_SCRIPT is not set";
    GTEST_SKIP() << "the server cannot be restarted from here (XACT_SERVERS_SCRIPT unset)";
  }
  testing::TempDir dir;
  const auto run = testing::run_in_child([&] { return child_transaction(dir.path()); },
                                         "coordinator.after_commit_record");
  if (!run.killed) GTEST_SKIP() << "crash points are compiled out";
  db1_.reset();
  db2_.reset();
  ASSERT_TRUE(servers("kill-mysql")) << "servers.sh kill-mysql failed";
  db1_ = std::make_unique<Plain>();
  db2_ = std::make_unique<Plain>(my_env()->db2);
  NodeId node;
  const RecoveryReport report = recover(dir.path(), &node);
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_EQ(v1("k"), "committed?");
  EXPECT_EQ(v2("k"), "committed?");
  EXPECT_TRUE(db1_->branches_of(node).empty());
}

#endif

}  // namespace
}  // namespace xact::mytest

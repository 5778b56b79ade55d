// Recovery of PostgreSQL branches: prepared work outlives its connections and its process, and
// xact::Recovery, reading the decision log of an application that was killed between prepare
// and commit, commits or rolls back both databases together.
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

using postgres::PostgresResource;

class PostgresRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_PG();
    t1_ = std::make_unique<TempTable>(pg_env()->uri);
    t2_ = std::make_unique<TempTable>(pg_env()->uri2);
    db1_ = std::make_unique<Plain>(pg_env()->uri);
    db2_ = std::make_unique<Plain>(pg_env()->uri2);
    name1_ = unique_name("pg1");
    name2_ = unique_name("pg2");
  }
  // A fresh instance, as a restarted process would make it.
  std::shared_ptr<PostgresResource> rm1() {
    return PostgresResource::create(options(pg_env()->uri, name1_));
  }
  std::shared_ptr<PostgresResource> rm2() {
    return PostgresResource::create(options(pg_env()->uri2, name2_));
  }
  std::optional<std::string> v1(const std::string& k) { return db1_->value(t1_->name(), k); }
  std::optional<std::string> v2(const std::string& k) { return db2_->value(t2_->name(), k); }
  std::int64_t prepared_of(const NodeId& node) {
    std::int64_t n = 0;
    for (const auto& gid : db1_->prepared_gids()) {
      if (auto xid = Xid::from_gid(gid); xid && xid->gtrid.node() == node) ++n;
    }
    return n;
  }

  // The child: one transaction over both databases, committed with a decision log in `dir`,
  // killed at the armed crash point. Returns 42 if the commit completed (no crash point hit).
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

  // The parent, after the child died: recovery from the child's log, as the restarted
  // application would run it at start-up.
  RecoveryReport recover(const std::string& dir, NodeId* node = nullptr) {
    auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir));
    track_node(log->node_id());
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

TEST_F(PostgresRecoveryTest, PreparedWorkSurvivesDisconnectAndIsCommittedAfterReconnect) {
  Xid x1, x2;
  {
    auto a = rm1();
    auto b = rm2();
    ExplicitTransactionManager tm;
    auto& txn = tm.begin();
    put(*a, txn, t1_->name(), "k", "v1");
    put(*b, txn, t2_->name(), "k", "v2");
    txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::in_doubt));
    x1 = txn.xid_for(*a);
    x2 = txn.xid_for(*b);
    EXPECT_THROW(tm.commit(), InDoubtError);
    tm.abort();
  }  // every connection of a and b is closed here
  EXPECT_EQ(v1("k"), std::nullopt);
  EXPECT_EQ(prepared_of(x1.gtrid.node()), 2) << "both branches outlived their connections";

  auto a = rm1();
  auto b = rm2();
  EXPECT_EQ(a->recover(x1.gtrid.node()), std::vector<Xid>{x1});
  EXPECT_EQ(b->recover(x2.gtrid.node()), std::vector<Xid>{x2});
  EXPECT_EQ(a->commit_prepared(x1), RecoverableResource::Outcome::done);
  EXPECT_EQ(b->commit_prepared(x2), RecoverableResource::Outcome::done);
  EXPECT_EQ(v1("k"), "v1");
  EXPECT_EQ(v2("k"), "v2");
  EXPECT_EQ(a->commit_prepared(x1), RecoverableResource::Outcome::unknown_id)
      << "a second commit finds nothing: counted as done";
  EXPECT_EQ(prepared_of(x1.gtrid.node()), 0);
}

using testing::CrashCase;

class PostgresAppCrashTest : public PostgresRecoveryTest,
                             public ::testing::WithParamInterface<CrashCase> {};

TEST_P(PostgresAppCrashTest, RecoveryThroughTheCoordinatorFinishesBothDatabasesAlike) {
  testing::check_prepared_pair_crash(
      GetParam(),
      {[&](const std::string& dir) { return child_transaction(dir); },
       [&](const std::string& dir, NodeId* node) { return recover(dir, node); },
       [&](const std::string& key) { return v1(key); },
       [&](const std::string& key) { return v2(key); },
       [&](const NodeId& node) { return prepared_of(node) == 0; }});
}

// Killed between prepare and commit: presumed abort rolls back what has no decision; a durable
// decision commits both, also where one had finished already.
INSTANTIATE_TEST_SUITE_P(KilledBetweenPrepareAndCommit, PostgresAppCrashTest,
                         ::testing::ValuesIn(testing::prepared_pair_crash_cases()),
                         testing::crash_case_name);

}  // namespace
}  // namespace xact::pgtest

// The PostgreSQL server killed (SIGKILL, then started again: scripts/servers.sh kill-pg) while
// xact has work there. These tests run alone (RUN_SERIAL): nothing else may use the server
// while it restarts.
#include <xact/manager.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/retry.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

using postgres::PostgresResource;

class PostgresServerCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_PG_SERVER_CONTROL();
    t1_ = std::make_unique<TempTable>(pg_env()->uri);
    t2_ = std::make_unique<TempTable>(pg_env()->uri2);
    rm1_ = PostgresResource::create(options(pg_env()->uri));
    rm2_ = PostgresResource::create(options(pg_env()->uri2));
  }
  void kill_server() { ASSERT_TRUE(servers("kill-pg")) << "scripts/servers.sh kill-pg failed"; }
  std::optional<std::string> v1(const std::string& k) {
    return Plain(pg_env()->uri).value(t1_->name(), k);
  }
  std::optional<std::string> v2(const std::string& k) {
    return Plain(pg_env()->uri2).value(t2_->name(), k);
  }

  std::unique_ptr<TempTable> t1_, t2_;
  std::shared_ptr<PostgresResource> rm1_, rm2_;
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
};

TEST_F(PostgresServerCrashTest, PreparedBranchesSurviveAServerCrashAndAreRecovered) {
  auto& txn = tm_.begin();
  put(*rm1_, txn, t1_->name(), "k", "v1");
  put(*rm2_, txn, t2_->name(), "k", "v2");
  txn.join(std::make_shared<DecisionProbe>(DecisionProbe::Act::in_doubt));
  const Xid x1 = txn.xid_for(*rm1_);
  const Xid x2 = txn.xid_for(*rm2_);
  EXPECT_THROW(tm_.commit(), InDoubtError);
  tm_.abort();

  kill_server();

  // The same resource objects: their pooled connections died with the server; the pool's
  // health check replaces them without the caller noticing.
  EXPECT_EQ(rm1_->recover(x1.gtrid.node()), std::vector<Xid>{x1});
  EXPECT_EQ(rm2_->recover(x2.gtrid.node()), std::vector<Xid>{x2});
  EXPECT_EQ(rm1_->commit_prepared(x1), RecoverableResource::Outcome::done);
  EXPECT_EQ(rm2_->commit_prepared(x2), RecoverableResource::Outcome::done);
  EXPECT_EQ(v1("k"), "v1");
  EXPECT_EQ(v2("k"), "v2");
  EXPECT_GE(rm1_->pool()->stats().discarded, 1u);
}

// A participant whose tpc_finish crashes the server; it sorts first, so it finishes before the
// PostgreSQL branches, whose phase 2 then meets a restarted server.
class CrashAtFinish : public ResourceManager {
 public:
  explicit CrashAtFinish(std::function<void()> crash) : crash_(std::move(crash)) {}
  std::string resource_name() const override { return "a-crash-at-finish"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override { crash_(); }
  void tpc_abort(Transaction&) noexcept override {}

 private:
  std::function<void()> crash_;
};

TEST_F(PostgresServerCrashTest, PhaseTwoAfterAServerCrashReconnectsAndCommits) {
  auto& txn = tm_.begin();
  put(*rm1_, txn, t1_->name(), "k", "v1");
  put(*rm2_, txn, t2_->name(), "k", "v2");
  txn.join(std::make_shared<CrashAtFinish>([this] { kill_server(); }));
  const auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.complete()) << (outcome.pending.empty() ? "" : outcome.pending[0].error);
  EXPECT_EQ(v1("k"), "v1");
  EXPECT_EQ(v2("k"), "v2");
}

TEST_F(PostgresServerCrashTest, AServerCrashBeforeTheDecisionIsRetriedByRun) {
  int attempts = 0;
  RetryPolicy policy;
  policy.sleep = [](std::chrono::microseconds) {};
  xact::run(
      tm_,
      [&](Transaction& txn) {
        ++attempts;
        put(*rm1_, txn, t1_->name(), "k", std::to_string(attempts));
        if (attempts == 1) kill_server();
        put(*rm2_, txn, t2_->name(), "k", std::to_string(attempts));
      },
      policy);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(v1("k"), "2");
  EXPECT_EQ(v2("k"), "2");
}

}  // namespace
}  // namespace xact::pgtest

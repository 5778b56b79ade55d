#include <xact/testing/conformance.hpp>

#include <xact/errors.hpp>
#include <xact/manager.hpp>

namespace xact::testing {

void PrintTo(const ConformanceParam& param, std::ostream* os) { *os << param.name; }

std::string conformance_name(const ::testing::TestParamInfo<ConformanceParam>& info) {
  return info.param.name;
}

// Binaries that link xact::testing only for its test resources do not instantiate the suite.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ResourceManagerConformance);

void ResourceManagerConformance::SetUp() { target_ = GetParam().make(); }

void ResourceManagerConformance::TearDown() { target_.reset(); }

namespace {

// The conformance suite is about the resource manager under test, not the decision's
// durability: its two-participant transactions run without a decision log.
const ManagerOptions kUnlogged{.allow_unlogged_decisions = true};

// A second participant that acts at a chosen step. As a last resource (can_prepare false) it
// is committed after every other participant voted yes, which puts the RM under test in its
// prepared state at a known moment.
class Probe : public ResourceManager, public OnePhaseCommit {
 public:
  enum class Act { none, fail_vote, fail_finish, fail_last, in_doubt_last };
  Probe(Act act, std::function<void()> at_decision = {})
      : act_(act), at_decision_(std::move(at_decision)) {}

  std::string resource_name() const override { return "conformance-probe"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override {
    if (act_ == Act::fail_vote) throw ResourceError("probe votes no");
    return Vote::yes;
  }
  void tpc_finish(Transaction&) override {
    if (act_ == Act::fail_finish) throw ResourceError("probe: connection lost in tpc_finish");
  }
  void tpc_abort(Transaction&) noexcept override {}
  OnePhaseCommit* one_phase_commit() noexcept override { return is_last() ? this : nullptr; }
  void commit_one_phase(Transaction&, const CommitRecord*) override {
    if (at_decision_) at_decision_();
    if (act_ == Act::fail_last) throw ResourceError("probe: last resource failed to commit");
    if (act_ == Act::in_doubt_last) throw InDoubtError("probe: connection lost during commit");
  }
  bool can_prepare() const override { return !is_last(); }

 private:
  bool is_last() const {
    return act_ == Act::fail_last || act_ == Act::in_doubt_last || at_decision_ != nullptr;
  }
  Act act_;
  std::function<void()> at_decision_;
};

// A last resource (it cannot prepare) commits as the decision and never votes yes; the probes
// that must act after every yes vote take the last-resource seat themselves, which a second
// last resource would be refused.
bool is_last_resource(ResourceManager& rm) {
  auto* one_phase = rm.one_phase_commit();
  return one_phase != nullptr && !one_phase->can_prepare();
}

// Leaves the RM under test prepared: the probe, as last resource, reports an in-doubt commit.
Xid prepare_and_leave_in_doubt(ConformanceTarget& target, ResourceManager& rm,
                               ExplicitTransactionManager& tm, const std::string& key) {
  auto& txn = tm.begin();
  target.write(rm, txn, key, "prepared");
  txn.join(std::make_shared<Probe>(Probe::Act::in_doubt_last));
  const Xid xid = txn.xid_for(rm);
  EXPECT_THROW(tm.commit(), InDoubtError);
  tm.abort();
  return xid;
}

}  // namespace

TEST_P(ResourceManagerConformance, ResourceNameIsAStableBranchQualifier) {
  auto a = target_->open();
  auto b = target_->open();
  EXPECT_NO_THROW(check_branch_name(a->resource_name()));
  EXPECT_EQ(a->resource_name(), b->resource_name());
  EXPECT_EQ(a->sort_key(), b->sort_key());
}

TEST_P(ResourceManagerConformance, CommitPublishesTheWrite) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  target_->write(*rm, tm.begin(), "k1", "v1");
  EXPECT_TRUE(tm.commit().complete());
  EXPECT_EQ(target_->read_committed("k1"), "v1");
}

TEST_P(ResourceManagerConformance, CommitWithAnotherParticipantPublishesTheWrite) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  target_->write(*rm, txn, "k2", "v2");
  txn.join(std::make_shared<Probe>(Probe::Act::none));
  EXPECT_TRUE(tm.commit().complete());
  EXPECT_EQ(target_->read_committed("k2"), "v2");
}

TEST_P(ResourceManagerConformance, AbortDiscardsTheWrite) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  target_->write(*rm, tm.begin(), "k3", "v3");
  tm.abort();
  EXPECT_EQ(target_->read_committed("k3"), std::nullopt);
  // The RM is usable for the next transaction.
  target_->write(*rm, tm.begin(), "k3", "again");
  tm.commit();
  EXPECT_EQ(target_->read_committed("k3"), "again");
}

TEST_P(ResourceManagerConformance, NothingIsVisibleBeforeTheDecision) {
  auto rm = target_->open();
  if (is_last_resource(*rm)) GTEST_SKIP() << "a last resource's commit is the decision";
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  target_->write(*rm, txn, "k4", "v4");
  std::optional<std::string> seen_at_decision = "not called";
  txn.join(std::make_shared<Probe>(Probe::Act::none,
                                   [&] { seen_at_decision = target_->read_committed("k4"); }));
  tm.commit();
  EXPECT_EQ(seen_at_decision, std::nullopt) << "a yes vote must not publish the write";
  EXPECT_EQ(target_->read_committed("k4"), "v4");
}

TEST_P(ResourceManagerConformance, ANoVoteElsewhereRollsBackTheWrite) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  target_->write(*rm, txn, "k5", "v5");
  txn.join(std::make_shared<Probe>(Probe::Act::fail_vote));
  EXPECT_THROW(tm.commit(), ResourceError);
  tm.abort();
  EXPECT_EQ(target_->read_committed("k5"), std::nullopt);
}

TEST_P(ResourceManagerConformance, TpcAbortAfterAYesVoteRollsBackAndIsIdempotent) {
  auto rm = target_->open();
  if (is_last_resource(*rm)) GTEST_SKIP() << "a last resource never votes yes";
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  auto keep = txn.shared_from_this();
  target_->write(*rm, txn, "k6", "v6");
  txn.join(std::make_shared<Probe>(Probe::Act::fail_last));  // after every yes vote
  EXPECT_THROW(tm.commit(), ResourceError);
  tm.abort();
  EXPECT_EQ(target_->read_committed("k6"), std::nullopt);
  EXPECT_NO_THROW(rm->tpc_abort(*keep)) << "tpc_abort must be idempotent";
  EXPECT_EQ(target_->read_committed("k6"), std::nullopt);
}

TEST_P(ResourceManagerConformance, TpcFinishIsIdempotent) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  auto keep = txn.shared_from_this();
  target_->write(*rm, txn, "k7", "v7");
  txn.join(std::make_shared<Probe>(Probe::Act::none));
  tm.commit();
  EXPECT_NO_THROW(rm->tpc_finish(*keep));
  EXPECT_EQ(target_->read_committed("k7"), "v7");
}

TEST_P(ResourceManagerConformance, AFailingFinishElsewhereDoesNotStopThisOne) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  target_->write(*rm, txn, "k8", "v8");
  txn.join(std::make_shared<Probe>(Probe::Act::fail_finish));
  auto outcome = tm.commit();
  EXPECT_TRUE(outcome.committed);
  ASSERT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(outcome.pending[0].resource, "conformance-probe");
  EXPECT_EQ(target_->read_committed("k8"), "v8");
}

TEST_P(ResourceManagerConformance, JoinedWithoutChangesCommitsNothing) {
  auto rm = target_->open();
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  txn.join(rm);
  txn.join(std::make_shared<Probe>(Probe::Act::none));
  EXPECT_TRUE(tm.commit().committed);
}

TEST_P(ResourceManagerConformance, SavepointRollbackUndoesLaterWrites) {
  auto rm = target_->open();
  if (rm->savepoint_support() == nullptr) GTEST_SKIP() << "no savepoint support";
  ExplicitTransactionManager tm(kUnlogged);
  auto& txn = tm.begin();
  target_->write(*rm, txn, "k9", "before");
  auto sp = txn.savepoint();
  target_->write(*rm, txn, "k9", "after");
  target_->write(*rm, txn, "k10", "after");
  sp.rollback();
  tm.commit();
  EXPECT_EQ(target_->read_committed("k9"), "before");
  EXPECT_EQ(target_->read_committed("k10"), std::nullopt);
}

TEST_P(ResourceManagerConformance, PreparedWorkSurvivesANewInstanceAndRecoveryCommitsIt) {
  auto rm = target_->open();
  if (rm->recoverable() == nullptr) GTEST_SKIP() << "no recovery support";
  ExplicitTransactionManager tm(kUnlogged);
  const Xid xid = prepare_and_leave_in_doubt(*target_, *rm, tm, "k11");
  EXPECT_EQ(target_->read_committed("k11"), std::nullopt) << "prepared is not committed";
  rm.reset();  // as if the process died

  auto fresh = target_->open();
  auto listed = fresh->recoverable()->recover(xid.gtrid.node());
  ASSERT_NE(std::find(listed.begin(), listed.end(), xid), listed.end())
      << "recover() must list the prepared id " << xid.to_gid();
  EXPECT_EQ(fresh->recoverable()->commit_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(target_->read_committed("k11"), "prepared");
  EXPECT_EQ(fresh->recoverable()->commit_prepared(xid), RecoverableResource::Outcome::unknown_id)
      << "re-driving a finished commit reports the id as unknown, never fails";
  listed = fresh->recoverable()->recover(xid.gtrid.node());
  EXPECT_EQ(std::find(listed.begin(), listed.end(), xid), listed.end());
}

TEST_P(ResourceManagerConformance, RecoveryRollsBackPreparedWork) {
  auto rm = target_->open();
  if (rm->recoverable() == nullptr) GTEST_SKIP() << "no recovery support";
  ExplicitTransactionManager tm(kUnlogged);
  const Xid xid = prepare_and_leave_in_doubt(*target_, *rm, tm, "k12");
  auto fresh = target_->open();
  EXPECT_EQ(fresh->recoverable()->rollback_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(fresh->recoverable()->rollback_prepared(xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(target_->read_committed("k12"), std::nullopt);
}

TEST_P(ResourceManagerConformance, RecoverListsOnlyTheGivenNodesIds) {
  auto rm = target_->open();
  if (rm->recoverable() == nullptr) GTEST_SKIP() << "no recovery support";
  ExplicitTransactionManager tm(kUnlogged);
  const Xid xid = prepare_and_leave_in_doubt(*target_, *rm, tm, "k13");
  auto fresh = target_->open();
  auto other = fresh->recoverable()->recover(NodeId::random());
  EXPECT_EQ(std::find(other.begin(), other.end(), xid), other.end());
  fresh->recoverable()->rollback_prepared(xid);
}

}  // namespace xact::testing

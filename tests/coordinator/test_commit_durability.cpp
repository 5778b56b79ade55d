// The coordinator and its decision log together: exactly one forced write per committed
// transaction with two or more voters and none otherwise (counted through the Env), pending
// completions recorded for recovery, and crashes at every step of a commit that never lose a
// reported decision and never invent one.
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/kv_resource.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

#include <algorithm>

namespace xact {
namespace {

using testing::CallLog;
using testing::KvResource;
using testing::KvStore;
using testing::RecordingOptions;
using testing::RecordingResource;
using testing::Step;

bool unfinished_contains(const DecisionLog& log, const Gtrid& g) {
  auto u = log.unfinished();
  return std::any_of(u.begin(), u.end(), [&](const CommitRecord& r) { return r.gtrid == g; });
}

class CommitDurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = DecisionLog::open(env_, "/xact-log");
    tm_ = std::make_unique<ExplicitTransactionManager>(ManagerOptions{log_, std::nullopt});
  }
  std::shared_ptr<KvResource> memory(const std::string& name) {
    return std::make_shared<KvResource>(name, KvStore::in_memory());
  }
  std::shared_ptr<RecordingResource> recording(const std::string& name, RecordingOptions o = {}) {
    return std::make_shared<RecordingResource>(name, calls_, std::move(o));
  }
  // Syncs of the log's files and directory caused by `fn`.
  template <class F>
  std::uint64_t syncs_during(F&& fn) {
    const auto before = env_.syncs() + env_.dir_syncs();
    fn();
    return env_.syncs() + env_.dir_syncs() - before;
  }

  io::FaultInjectionEnv env_;
  std::shared_ptr<DecisionLog> log_;
  std::unique_ptr<ExplicitTransactionManager> tm_;
  std::shared_ptr<CallLog> calls_ = std::make_shared<CallLog>();
};

TEST_F(CommitDurabilityTest, TwoOrMoreVotersCostExactlyOneForcedWrite) {
  for (int voters : {2, 3, 5}) {
    std::vector<std::shared_ptr<KvResource>> rms;
    for (int i = 0; i < voters; ++i) rms.push_back(memory("m" + std::to_string(i)));
    CommitOutcome outcome;
    const auto syncs = syncs_during([&] {
      auto& txn = tm_->begin();
      for (auto& rm : rms) rm->put(txn, "k", "v");
      outcome = tm_->commit();
    });
    EXPECT_EQ(syncs, 1u) << voters << " voters";
    EXPECT_TRUE(outcome.decision_logged);
    EXPECT_TRUE(outcome.complete());
    EXPECT_TRUE(log_->unfinished().empty()) << "done is recorded (unforced) after phase 2";
  }
}

TEST_F(CommitDurabilityTest, OnePhaseSingleVoterReadOnlyAndAbortedTransactionsForceNothing) {
  auto m = memory("m");
  RecordingOptions no_one_phase;  // prepares, so it is a voter
  auto r = recording("r", no_one_phase);
  RecordingOptions ro;
  ro.read_only = true;
  auto ro1 = recording("ro1", ro), ro2 = recording("ro2", ro);
  RecordingOptions last;
  last.last_resource = true;
  auto l = recording("l", last);

  EXPECT_EQ(syncs_during([&] {  // one participant, one phase
              m->put(tm_->begin(), "k", "1");
              tm_->commit();
            }),
            0u);
  EXPECT_EQ(syncs_during([&] {  // one voter, the others read-only
              auto& txn = tm_->begin();
              r->set(txn, "1");
              ro1->set(txn, "1");
              ro2->set(txn, "1");
              tm_->commit();
            }),
            0u);
  EXPECT_EQ(syncs_during([&] {  // all read-only
              auto& txn = tm_->begin();
              ro1->set(txn, "1");
              ro2->set(txn, "1");
              tm_->commit();
            }),
            0u);
  EXPECT_EQ(syncs_during([&] {  // the last resource carries the decision
              auto& txn = tm_->begin();
              r->set(txn, "2");
              m->put(txn, "k", "2");
              l->set(txn, "2");
              EXPECT_TRUE(tm_->commit().decision_logged);
            }),
            0u);
  EXPECT_EQ(syncs_during([&] {  // aborted
              auto& txn = tm_->begin();
              r->set(txn, "3");
              m->put(txn, "k", "3");
              tm_->abort();
            }),
            0u);
  RecordingOptions no;
  no.fail_at = Step::tpc_vote;
  auto n = recording("no", no);
  EXPECT_EQ(syncs_during([&] {  // failed before the decision
              auto& txn = tm_->begin();
              m->put(txn, "k", "4");
              n->set(txn, "4");
              EXPECT_THROW(tm_->commit(), ResourceError);
              tm_->abort();
            }),
            0u);
  EXPECT_EQ(m->store()->get("k"), "2");
}

TEST_F(CommitDurabilityTest, AFailedFinishLeavesTheCommitUnfinishedForRecovery) {
  RecordingOptions flaky;
  flaky.fail_at = Step::tpc_finish;
  auto a = recording("a", flaky), b = recording("b");
  a->set_unreachable(true);  // the re-driver cannot finish it either, for now
  auto& txn = tm_->begin();
  a->set(txn, "1");
  b->set(txn, "1");
  const Gtrid g = txn.gtrid();
  auto outcome = tm_->commit();
  ASSERT_EQ(outcome.pending.size(), 1u);
  ASSERT_TRUE(unfinished_contains(*log_, g));
  // Once it answers, the re-driver finishes it and writes the done record.
  a->set_unreachable(false);
  ASSERT_TRUE(log_->redriver().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(a->committed(), "1");
  EXPECT_FALSE(unfinished_contains(*log_, g));
}

TEST_F(CommitDurabilityTest, AFailedFinishOfASingleVoterIsRecordedSoRecoveryDoesNotPresumeAbort) {
  RecordingOptions flaky;
  flaky.fail_at = Step::tpc_finish;
  RecordingOptions ro;
  ro.read_only = true;
  auto a = recording("a", flaky), r = recording("r", ro);
  a->set_unreachable(true);  // keeps the record unfinished for the check
  auto& txn = tm_->begin();
  a->set(txn, "1");
  r->set(txn, "1");
  const Gtrid g = txn.gtrid();
  std::uint64_t syncs = 0;
  CommitOutcome outcome;
  syncs = syncs_during([&] { outcome = tm_->commit(); });
  ASSERT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(syncs, 1u) << "the record is forced before commit() reports the pending branch";
  auto u = log_->unfinished();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].gtrid, g);
  ASSERT_EQ(u[0].participants.size(), 1u);
  EXPECT_EQ(u[0].participants[0].resource, "a");
  a->set_unreachable(false);
  ASSERT_TRUE(log_->redriver().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(a->committed(), "1");
}

TEST_F(CommitDurabilityTest, AFailedCommitRecordWriteLeavesEveryVoterPreparedAndInDoubt) {
  auto a = recording("a"), b = recording("b");
  auto& txn = tm_->begin();
  a->set(txn, "1");
  b->set(txn, "1");
  env_.fail_nth_sync(1);
  EXPECT_THROW(tm_->commit(), InDoubtError);
  EXPECT_EQ(a->prepared().size(), 1u);
  EXPECT_EQ(b->prepared().size(), 1u);
  const auto calls = calls_->entries();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "a.tpc_abort"), 0);
  tm_->abort();
  // Fail-stop: later commits that need the log are refused, in doubt, nothing rolled back.
  auto& t2 = tm_->begin();
  a->set(t2, "2");
  b->set(t2, "2");
  EXPECT_THROW(tm_->commit(), InDoubtError);
  tm_->abort();
}

// A crash (everything not synced is lost) after each mutating step of a two-voter commit.
TEST(CommitCrashTest, ACrashAtEveryStepNeverLosesAReportedDecisionNorInventsOne) {
  bool reached_the_end = false;
  for (std::uint64_t step = 0; step < 64 && !reached_the_end; ++step) {
    io::FaultInjectionEnv env;
    Gtrid committed_gtrid, failed_gtrid;
    bool reported = false;
    {
      std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
      ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
      auto a = std::make_shared<KvResource>("a", KvStore::in_memory());
      auto b = std::make_shared<KvResource>("b", KvStore::in_memory());
      // One transaction that fails before its decision, one that commits, then a crash.
      RecordingOptions no;
      no.fail_at = Step::tpc_vote;
      auto n = std::make_shared<RecordingResource>("n", nullptr, no);
      env.halt_after(step);
      {
        auto& txn = tm.begin();
        a->put(txn, "k", "x");
        n->set(txn, "x");
        failed_gtrid = txn.gtrid();
        EXPECT_THROW(tm.commit(), ResourceError);
        tm.abort();
      }
      {
        auto& txn = tm.begin();
        a->put(txn, "k", "1");
        b->put(txn, "k", "1");
        committed_gtrid = txn.gtrid();
        try {
          reported = tm.commit().committed;
        } catch (const InDoubtError&) {
          // The log could not make the record durable: either outcome is allowed.
        }
        tm.abort();
      }
      reached_the_end = !env.halted();
      env.crash();
    }
    std::unique_ptr<DecisionLog> reopened = DecisionLog::open(env, "/log");
    EXPECT_FALSE(reopened->is_committed(failed_gtrid)) << "invented decision, step " << step;
    if (reported) {
      EXPECT_TRUE(unfinished_contains(*reopened, committed_gtrid))
          << "lost a reported decision, step " << step;
    }
  }
  EXPECT_TRUE(reached_the_end) << "the loop must reach a run without a crash";
}

}  // namespace
}  // namespace xact

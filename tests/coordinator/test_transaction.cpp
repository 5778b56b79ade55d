// The two-phase commit as the participants see it: call order, sort order, votes, failures at
// every step, hooks, doom, timeouts, savepoints.
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <thread>

namespace xact {
namespace {

using testing::CallLog;
using testing::RecordingOptions;
using testing::RecordingResource;
using testing::Step;
using Calls = std::vector<std::string>;

class TransactionTest : public ::testing::Test {
 protected:
  std::shared_ptr<RecordingResource> rm(const std::string& name, RecordingOptions o = {}) {
    return std::make_shared<RecordingResource>(name, log_, std::move(o));
  }
  Calls calls() const { return log_->entries(); }

  std::shared_ptr<CallLog> log_ = std::make_shared<CallLog>();
  // Most tests here are about the call order, not the decision's durability.
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
};

TEST_F(TransactionTest, CommitWithoutParticipantsSucceeds) {
  tm_.begin();
  auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.committed);
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(tm_.current(), nullptr);
}

TEST_F(TransactionTest, OneParticipantGetsTheFullProtocolInOrder) {
  auto a = rm("a");
  a->set(tm_.begin(), "1");
  tm_.commit();
  EXPECT_EQ(calls(), (Calls{"a.tpc_begin", "a.commit", "a.tpc_vote", "a.tpc_finish"}));
  EXPECT_EQ(a->committed(), "1");
}

TEST_F(TransactionTest, EachPhaseRunsOverAllParticipantsBeforeTheNext) {
  auto a = rm("a"), b = rm("b"), c = rm("c");
  auto& txn = tm_.begin();
  c->set(txn, "c");
  a->set(txn, "a");
  b->set(txn, "b");
  auto outcome = tm_.commit();
  EXPECT_EQ(calls(), (Calls{"a.tpc_begin", "b.tpc_begin", "c.tpc_begin", "a.commit", "b.commit",
                            "c.commit", "a.tpc_vote", "b.tpc_vote", "c.tpc_vote", "a.tpc_finish",
                            "b.tpc_finish", "c.tpc_finish"}));
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(c->committed(), "c");
}

TEST_F(TransactionTest, SortKeysOfMixedKindsOrderIntegersFirstWithoutCrashing) {
  RecordingOptions s1, i2, i10;
  s1.sort_key = SortKey("alpha");
  i2.sort_key = SortKey(2);
  i10.sort_key = SortKey(10);
  auto x = rm("x", s1), y = rm("y", i10), z = rm("z", i2);
  auto& txn = tm_.begin();
  x->set(txn, "1");
  y->set(txn, "1");
  z->set(txn, "1");
  tm_.commit();
  auto e = calls();
  EXPECT_EQ((Calls{e[0], e[1], e[2]}), (Calls{"z.tpc_begin", "y.tpc_begin", "x.tpc_begin"}));
}

TEST_F(TransactionTest, DuplicateSortKeysAreRefusedAtJoin) {
  RecordingOptions o;
  o.sort_key = SortKey(1);
  auto a = rm("a", o), b = rm("b", o);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  try {
    b->set(txn, "1");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("same sort key"), std::string::npos) << e.what();
  }
}

TEST_F(TransactionTest, DuplicateResourceNamesAreRefusedAtJoin) {
  RecordingOptions o;
  o.sort_key = SortKey(7);
  auto a = rm("same"), b = rm("same", o);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  EXPECT_THROW(b->set(txn, "1"), UsageError);
}

TEST_F(TransactionTest, JoiningTwiceIsANoOp) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  a->set(txn, "2");
  EXPECT_EQ(txn.participant_count(), 1u);
  tm_.commit();
  EXPECT_EQ(a->committed(), "2");
}

TEST_F(TransactionTest, ReadOnlyVotersTakeNoPartInPhaseTwo) {
  RecordingOptions ro;
  ro.read_only = true;
  auto a = rm("a"), b = rm("b", ro), c = rm("c");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  c->set(txn, "1");
  tm_.commit();
  EXPECT_EQ(log_->of("b"), (Calls{"tpc_begin", "commit", "tpc_vote"}));
  EXPECT_EQ(log_->of("a").back(), "tpc_finish");
  EXPECT_EQ(log_->of("c").back(), "tpc_finish");
}

TEST_F(TransactionTest, AbortCallsAbortOnEveryParticipantAndDropsTheWork) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  tm_.abort();
  EXPECT_EQ(calls(), (Calls{"a.abort", "b.abort"}));
  EXPECT_FALSE(a->committed());
  EXPECT_EQ(tm_.current(), nullptr);
}

// A failure at each phase-1 step rolls back every participant through the right call.
struct PhaseFailure {
  Step step;
  const char* name;
};

class FailureAtStepTest : public TransactionTest,
                          public ::testing::WithParamInterface<PhaseFailure> {};

TEST_P(FailureAtStepTest, FailureBeforeTheDecisionRollsBackEveryoneThroughTheRightCall) {
  RecordingOptions failing;
  failing.fail_at = GetParam().step;
  auto a = rm("a"), b = rm("b", failing), c = rm("c");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  c->set(txn, "1");
  EXPECT_THROW(tm_.commit(), ResourceError);
  EXPECT_EQ(txn.status(), TransactionStatus::commit_failed);
  for (const char* name : {"a", "b", "c"}) {
    auto mine = log_->of(name);
    const bool begun = std::find(mine.begin(), mine.end(), "tpc_begin") != mine.end();
    // Never abort() after tpc_begin; exactly one of them at the end.
    EXPECT_EQ(mine.back(), begun ? "tpc_abort" : "abort") << name;
    EXPECT_EQ(std::count(mine.begin(), mine.end(), "abort") +
                  std::count(mine.begin(), mine.end(), "tpc_abort"),
              1)
        << name;
    EXPECT_EQ(std::count(mine.begin(), mine.end(), "tpc_finish"), 0) << name;
  }
  EXPECT_FALSE(a->committed());
  EXPECT_FALSE(c->committed());
  EXPECT_TRUE(a->prepared().empty());
  // The failed transaction must be aborted before anything else.
  EXPECT_THROW(tm_.commit(), TransactionFailedError);
  EXPECT_THROW(tm_.begin(), UsageError);
  log_->clear();
  tm_.abort();
  EXPECT_TRUE(calls().empty()) << "the failed commit already rolled everything back";
  EXPECT_EQ(txn.status(), TransactionStatus::aborted);
  tm_.begin();  // now possible
}

INSTANTIATE_TEST_SUITE_P(Phases, FailureAtStepTest,
                         ::testing::Values(PhaseFailure{Step::tpc_begin, "tpc_begin"},
                                           PhaseFailure{Step::commit, "commit"},
                                           PhaseFailure{Step::tpc_vote, "tpc_vote"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(TransactionTest, AFailingFinishDoesNotStopTheOthersNorFailTheCommit) {
  RecordingOptions failing;
  failing.fail_at = Step::tpc_finish;
  auto a = rm("a", failing), b = rm("b"), c = rm("c");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "2");
  c->set(txn, "3");
  const auto before = counters().pending_completions;
  CommitOutcome outcome;
  ASSERT_NO_THROW(outcome = tm_.commit());
  EXPECT_TRUE(outcome.committed);
  ASSERT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(outcome.pending[0].resource, "a");
  EXPECT_EQ(outcome.pending[0].xid.bqual, "a");
  EXPECT_NE(outcome.pending[0].error.find("injected"), std::string::npos);
  EXPECT_EQ(b->committed(), "2");
  EXPECT_EQ(c->committed(), "3");
  EXPECT_EQ(txn.status(), TransactionStatus::committed);
  EXPECT_EQ(counters().pending_completions, before + 1);
  // The re-driver finishes it with commit_prepared on the branch id (this manager has no
  // decision log: the process's re-driver).
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(a->committed(), "1");
  EXPECT_TRUE(a->prepared().empty());
  EXPECT_EQ(a->commit_prepared(outcome.pending[0].xid), RecoverableResource::Outcome::unknown_id);
}

TEST_F(TransactionTest, OneParticipantWithOnePhaseSupportSkipsThePrepare) {
  RecordingOptions o;
  o.one_phase = true;
  auto a = rm("a", o);
  a->set(tm_.begin(), "1");
  auto outcome = tm_.commit();
  EXPECT_EQ(calls(), (Calls{"a.tpc_begin", "a.commit", "a.commit_one_phase"}));
  EXPECT_FALSE(outcome.decision_logged);
  EXPECT_EQ(a->committed(), "1");
}

TEST_F(TransactionTest, TheLastResourceCommitsAfterEveryVoteAndCarriesTheDecision) {
  RecordingOptions last;
  last.last_resource = true;
  last.sort_key = SortKey(-1);  // sorts first, still committed last
  auto a = rm("a"), b = rm("b"), l = rm("l", last);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  l->set(txn, "1");
  auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.decision_logged);
  EXPECT_EQ(calls(), (Calls{"l.tpc_begin", "a.tpc_begin", "b.tpc_begin", "l.commit", "a.commit",
                            "b.commit", "a.tpc_vote", "b.tpc_vote", "l.commit_one_phase+decision",
                            "a.tpc_finish", "b.tpc_finish", "l.forget_decision"}));
}

TEST_F(TransactionTest, AFailingLastResourceRollsBackTheVoters) {
  RecordingOptions last;
  last.last_resource = true;
  last.fail_at = Step::commit_one_phase;
  auto a = rm("a"), l = rm("l", last);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  l->set(txn, "1");
  EXPECT_THROW(tm_.commit(), ResourceError);
  EXPECT_EQ(log_->of("a").back(), "tpc_abort");
  EXPECT_TRUE(a->prepared().empty());
}

TEST_F(TransactionTest, AnInDoubtLastResourceLeavesTheVotersPreparedForRecovery) {
  RecordingOptions last;
  last.last_resource = true;
  last.fail_at = Step::commit_one_phase;
  last.thrower = [](Step) { throw InDoubtError("connection lost during COMMIT"); };
  auto a = rm("a"), b = rm("b"), l = rm("l", last);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  l->set(txn, "1");
  EXPECT_THROW(tm_.commit(), InDoubtError);
  EXPECT_EQ(log_->of("a").back(), "tpc_vote");
  EXPECT_EQ(a->prepared().size(), 1u);
  EXPECT_EQ(b->prepared().size(), 1u);
  EXPECT_FALSE(txn.is_retryable(txn.failure()));
  tm_.abort();
  EXPECT_EQ(a->prepared().size(), 1u) << "abort of an in-doubt transaction touches nothing";
}

TEST_F(TransactionTest, ASecondLastResourceIsRefusedAtJoinNamingBoth) {
  RecordingOptions last;
  last.last_resource = true;
  auto l1 = rm("l1", last), l2 = rm("l2", last);
  auto& txn = tm_.begin();
  l1->set(txn, "1");
  try {
    l2->set(txn, "1");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'l1'"), std::string::npos) << what;
    EXPECT_NE(what.find("'l2'"), std::string::npos) << what;
  }
  EXPECT_FALSE(txn.has_joined(*l2));
  EXPECT_EQ(txn.status(), TransactionStatus::active) << "a refused join changes nothing";
  tm_.commit();
  EXPECT_EQ(l1->committed(), "1");
}

TEST_F(TransactionTest, LateJoinDuringCommitFailsTheCommit) {
  auto a = rm("a"), late = rm("late");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  a->options().fail_at = Step::none;
  // A participant that tries to bring in another during its vote.
  class Joiner : public RecordingResource {
   public:
    using RecordingResource::RecordingResource;
    std::shared_ptr<RecordingResource> other;
    Vote tpc_vote(Transaction& t) override {
      t.join(other);
      return RecordingResource::tpc_vote(t);
    }
  };
  auto j = std::make_shared<Joiner>("j", log_);
  j->other = late;
  j->set(txn, "1");
  try {
    tm_.commit();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("late join"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(log_->of("late").empty());
  EXPECT_FALSE(a->committed());
}

TEST_F(TransactionTest, BeforeCommitHooksRunOnceAndMayStillJoin) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  int runs = 0;
  txn.add_before_commit_hook([&] {
    ++runs;
    b->set(txn, "hook");
    txn.add_before_commit_hook([&] { ++runs; });
  });
  tm_.commit();
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(b->committed(), "hook");
}

TEST_F(TransactionTest, AfterCommitHooksAreToldTheOutcomeAndTheirErrorsDoNotUndoIt) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  std::vector<bool> told;
  txn.add_after_commit_hook([&](bool ok) {
    told.push_back(ok);
    throw std::runtime_error("hook broke");
  });
  txn.add_after_commit_hook([&](bool ok) { told.push_back(ok); });
  EXPECT_NO_THROW(tm_.commit());
  EXPECT_EQ(told, (std::vector<bool>{true, true}));
  EXPECT_EQ(a->committed(), "1");

  RecordingOptions failing;
  failing.fail_at = Step::tpc_vote;
  auto f = rm("f", failing);
  auto& t2 = tm_.begin();
  f->set(t2, "1");
  told.clear();
  t2.add_after_commit_hook([&](bool ok) { told.push_back(ok); });
  EXPECT_THROW(tm_.commit(), ResourceError);
  EXPECT_EQ(told, (std::vector<bool>{false}));
  tm_.abort();
}

TEST_F(TransactionTest, AbortHooksRunExactlyOnceOnEveryAbortPath) {
  // Path 1: plain abort.
  int before = 0, after = 0;
  auto& t1 = tm_.begin();
  t1.add_before_abort_hook([&] { ++before; });
  t1.add_after_abort_hook([&] { ++after; });
  tm_.abort();
  tm_.abort();
  EXPECT_EQ(before, 1);
  EXPECT_EQ(after, 1);

  // Path 2: a failed commit, then the abort it requires.
  before = after = 0;
  RecordingOptions failing;
  failing.fail_at = Step::commit;
  auto f = rm("f", failing);
  auto& t2 = tm_.begin();
  f->set(t2, "1");
  std::vector<std::string> order;
  t2.add_before_abort_hook([&] { order.push_back("before:" + log_->of("f").back()); });
  t2.add_after_abort_hook([&] { order.push_back("after:" + log_->of("f").back()); });
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  EXPECT_EQ(order, (std::vector<std::string>{"before:commit", "after:tpc_abort"}));

  // Path 3: the RAII guard.
  order.clear();
  {
    TransactionGuard g(tm_);
    g->add_after_abort_hook([&] { order.push_back("guard"); });
  }
  EXPECT_EQ(order, (std::vector<std::string>{"guard"}));

  // Path 4: a failing before-commit hook fails the commit and aborts.
  order.clear();
  auto& t4 = tm_.begin();
  t4.add_before_commit_hook([] { throw ConflictError("hook saw a conflict"); });
  t4.add_after_abort_hook([&] { order.push_back("after"); });
  EXPECT_THROW(tm_.commit(), ConflictError);
  tm_.abort();
  EXPECT_EQ(order, (std::vector<std::string>{"after"}));
}

TEST_F(TransactionTest, ADoomedTransactionCanOnlyBeAborted) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  EXPECT_FALSE(tm_.is_doomed());
  tm_.doom();
  EXPECT_TRUE(txn.is_doomed());
  EXPECT_EQ(txn.status(), TransactionStatus::doomed);
  EXPECT_THROW(tm_.commit(), DoomedTransactionError);
  EXPECT_TRUE(calls().empty()) << "nothing reaches the participants";
  tm_.abort();
  EXPECT_EQ(calls(), (Calls{"a.abort"}));
}

TEST_F(TransactionTest, ATimedOutTransactionRefusesJoinAndCommit) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  txn.set_timeout(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(txn.is_doomed());
  EXPECT_THROW(b->set(txn, "1"), TransactionTimeoutError);
  EXPECT_THROW(tm_.commit(), TransactionTimeoutError);
  EXPECT_FALSE(a->committed());
  tm_.abort();
  EXPECT_EQ(calls(), (Calls{"a.abort"}));
}

TEST_F(TransactionTest, ManagerTimeoutAppliesToEveryTransaction) {
  ExplicitTransactionManager tm(ManagerOptions{nullptr, std::chrono::milliseconds(1), true});
  auto& txn = tm.begin();
  ASSERT_TRUE(txn.deadline().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_THROW(tm.commit(), TransactionTimeoutError);
  tm.abort();
}

TEST_F(TransactionTest, WrongCallOrderNamesTheState) {
  auto& txn = tm_.begin();
  tm_.commit();
  try {
    txn.commit();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("committed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(txn.doom(), UsageError);
  EXPECT_THROW(txn.savepoint(), UsageError);
  EXPECT_THROW(rm("a")->set(txn, "1"), UsageError);
}

TEST_F(TransactionTest, MetadataAndPerTransactionData) {
  auto& txn = tm_.begin();
  txn.set_user("/ alice");
  txn.note("first");
  txn.note("second");
  txn.set_extension("request", "GET /x");
  int key = 0;
  EXPECT_EQ(txn.find_data(&key), nullptr);
  txn.data(&key) = 42;
  ASSERT_NE(txn.find_data(&key), nullptr);
  EXPECT_EQ(std::any_cast<int>(*txn.find_data(&key)), 42);
  EXPECT_EQ(txn.user(), "/ alice");
  EXPECT_EQ(txn.description(), "first\nsecond");
  EXPECT_EQ(txn.extension().at("request"), "GET /x");
}

TEST_F(TransactionTest, BranchIdsShareTheGtridAndUseTheResourceName) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  const Xid xa = txn.xid_for(*a), xb = txn.xid_for(*b);
  EXPECT_EQ(xa.gtrid, xb.gtrid);
  EXPECT_EQ(xa.bqual, "a");
  EXPECT_NE(xa.to_gid(), xb.to_gid());
  auto& next = (tm_.commit(), tm_.begin());
  EXPECT_NE(next.gtrid(), xa.gtrid);
}

// ---- savepoints ---------------------------------------------------------------------------

TEST_F(TransactionTest, SavepointRollbackRestoresEveryParticipant) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "a1");
  b->set(txn, "b1");
  auto sp = txn.savepoint();
  a->set(txn, "a2");
  b->set(txn, "b2");
  sp.rollback();
  tm_.commit();
  EXPECT_EQ(a->committed(), "a1");
  EXPECT_EQ(b->committed(), "b1");
}

TEST_F(TransactionTest, RollingBackInvalidatesLaterSavepointsButNotItself) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  auto sp1 = txn.savepoint();
  a->set(txn, "2");
  auto sp2 = txn.savepoint();
  a->set(txn, "3");
  sp1.rollback();
  EXPECT_FALSE(sp2.valid());
  EXPECT_THROW(sp2.rollback(), UsageError);
  a->set(txn, "4");
  EXPECT_TRUE(sp1.valid());
  sp1.rollback();
  tm_.commit();
  EXPECT_EQ(a->committed(), "1");
  EXPECT_FALSE(sp1.valid()) << "the transaction ended";
}

TEST_F(TransactionTest, AParticipantThatJoinedAfterTheSavepointIsAbortedOnRollback) {
  auto a = rm("a"), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  auto sp = txn.savepoint();
  b->set(txn, "1");
  sp.rollback();
  EXPECT_EQ(log_->of("b"), (Calls{"abort"}));
  EXPECT_FALSE(txn.has_joined(*b));
  tm_.commit();
  EXPECT_FALSE(b->committed());
  EXPECT_EQ(a->committed(), "1");
}

TEST_F(TransactionTest, SavepointFailsForAParticipantWithoutSupportUnlessOptimistic) {
  RecordingOptions nosp;
  nosp.savepoints = false;
  auto a = rm("a"), n = rm("plain", nosp);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  n->set(txn, "1");
  try {
    txn.savepoint();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'plain'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(txn.status(), TransactionStatus::active) << "a refused savepoint changes nothing";
  auto sp = txn.savepoint(/*optimistic=*/true);
  EXPECT_THROW(sp.rollback(), UsageError);
  tm_.commit();
  EXPECT_EQ(n->committed(), "1");
}

TEST_F(TransactionTest, AFailedSavepointRollbackPoisonsTheTransaction) {
  RecordingOptions bad;
  bad.fail_at = Step::savepoint_rollback;
  auto a = rm("a", bad);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  auto sp = txn.savepoint();
  EXPECT_THROW(sp.rollback(), ResourceError);
  EXPECT_EQ(txn.status(), TransactionStatus::commit_failed);
  EXPECT_THROW(tm_.commit(), TransactionFailedError);
  tm_.abort();
  EXPECT_FALSE(a->committed());
}

// ---- synchronizers ----------------------------------------------------------------------------

struct RecordingSynchronizer : Synchronizer {
  std::vector<std::string> seen;
  void new_transaction(Transaction&) override { seen.push_back("new"); }
  void before_completion(Transaction&) override { seen.push_back("before"); }
  void after_completion(Transaction& t) override {
    seen.push_back("after:" + std::string(to_string(t.status())));
  }
};

TEST_F(TransactionTest, SynchronizersSeeEveryTransactionBoundary) {
  auto s = std::make_shared<RecordingSynchronizer>();
  tm_.register_synchronizer(s);
  tm_.begin();
  tm_.commit();
  tm_.begin();
  tm_.abort();
  RecordingOptions failing;
  failing.fail_at = Step::tpc_vote;
  auto f = rm("f", failing);
  f->set(tm_.begin(), "1");
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  EXPECT_EQ(s->seen,
            (std::vector<std::string>{"new", "before", "after:committed", "new", "before",
                                      "after:aborted", "new", "before", "after:commit_failed"}));
  tm_.unregister_synchronizer(*s);
  tm_.begin();
  EXPECT_EQ(s->seen.size(), 9u);
  tm_.abort();
}

TEST_F(TransactionTest, CountersCountCommitsAbortsAndConflicts) {
  const auto before = counters();
  tm_.begin();
  tm_.commit();
  tm_.begin();
  tm_.abort();
  RecordingOptions conflicting;
  conflicting.fail_at = Step::commit;
  conflicting.thrower = [](Step) { throw ConflictError("someone else wrote it"); };
  auto c = rm("c", conflicting);
  c->set(tm_.begin(), "1");
  EXPECT_THROW(tm_.commit(), ConflictError);
  tm_.abort();
  const auto after = counters();
  EXPECT_EQ(after.commits - before.commits, 1u);
  EXPECT_EQ(after.aborts - before.aborts, 2u);
  EXPECT_EQ(after.conflicts - before.conflicts, 1u);
  EXPECT_EQ(after.commit_failures - before.commit_failures, 1u);
}

TEST_F(TransactionTest, TheLogSinkReceivesWarnings) {
  std::vector<std::string> messages;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level >= LogLevel::warning) messages.emplace_back(m);
  });
  RecordingOptions failing;
  failing.fail_at = Step::tpc_finish;
  auto a = rm("a", failing), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  tm_.commit();
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  set_log_sink(nullptr);
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages.front().find("'a' failed to finish"), std::string::npos) << messages.front();
}

// ---- the state machine: what hooks, synchronizers and resource managers may call -----------
//
// Every call of {doom, abort, commit, join, savepoint + rollback, manager.begin()} from every
// hook and synchronizer callback, against the table in <xact/transaction.hpp>. Each cell is a
// named case: <where>__<call>.

enum class Where {
  new_transaction,
  before_commit_hook,
  before_completion_at_commit,
  after_commit_hook,
  after_completion_after_commit,
  after_commit_hook_of_a_failed_commit,
  before_abort_hook,
  after_abort_hook,
  before_completion_at_abort,
  after_completion_after_abort,
};
enum class Call { doom, abort, commit, join, savepoint_and_rollback, begin };
enum class Then { ok, usage_error };
// How the transaction ends: its commit succeeds, fails as doomed, fails with the injected
// error (the failed-commit scenario), or it is aborted (the abort scenarios).
enum class Ends { committed, doomed, failed, aborted };

struct Cell {
  Where where;
  Call call;
  Then then;
  Ends ends;
};

const char* name_of(Where w) {
  switch (w) {
    case Where::new_transaction: return "new_transaction";
    case Where::before_commit_hook: return "before_commit_hook";
    case Where::before_completion_at_commit: return "before_completion_at_commit";
    case Where::after_commit_hook: return "after_commit_hook";
    case Where::after_completion_after_commit: return "after_completion_after_commit";
    case Where::after_commit_hook_of_a_failed_commit: return "after_commit_hook_of_a_failed_commit";
    case Where::before_abort_hook: return "before_abort_hook";
    case Where::after_abort_hook: return "after_abort_hook";
    case Where::before_completion_at_abort: return "before_completion_at_abort";
    case Where::after_completion_after_abort: return "after_completion_after_abort";
  }
  return "?";
}

const char* name_of(Call c) {
  switch (c) {
    case Call::doom: return "doom";
    case Call::abort: return "abort";
    case Call::commit: return "commit";
    case Call::join: return "join";
    case Call::savepoint_and_rollback: return "savepoint_and_rollback";
    case Call::begin: return "manager_begin";
  }
  return "?";
}

const char* name_of(Ends e) {
  switch (e) {
    case Ends::committed: return "committed";
    case Ends::doomed: return "doomed";
    case Ends::failed: return "failed";
    case Ends::aborted: return "aborted";
  }
  return "?";
}

void PrintTo(const Cell& c, std::ostream* os) {
  *os << name_of(c.where) << " -> " << name_of(c.call) << " "
      << (c.then == Then::ok ? "allowed" : "refused") << ", ends " << name_of(c.ends);
}

// The table, one row per callback, cells in the order of Call.
struct Row {
  Where where;
  std::array<std::pair<Then, Ends>, 6> cells;
};

std::vector<Cell> state_machine_cells() {
  using enum Then;
  using enum Ends;
  // Before the 2PC starts the transaction is still open: doom and abort doom it (the commit
  // fails), joins and savepoints work, commit and begin are refused (no re-entry).
  const std::array<std::pair<Then, Ends>, 6> before = {{{ok, doomed},
                                                        {ok, doomed},
                                                        {usage_error, committed},
                                                        {ok, committed},
                                                        {ok, committed},
                                                        {usage_error, committed}}};
  // After the decision: committed; abort is ignored, everything else is refused.
  const std::array<std::pair<Then, Ends>, 6> after = {{{usage_error, committed},
                                                       {ok, committed},
                                                       {usage_error, committed},
                                                       {usage_error, committed},
                                                       {usage_error, committed},
                                                       {usage_error, committed}}};
  // While rolling back: doom and abort are no-ops (it is being aborted), the rest is refused.
  auto rolling_back = [](Ends e) {
    return std::array<std::pair<Then, Ends>, 6>{
        {{ok, e}, {ok, e}, {usage_error, e}, {usage_error, e}, {usage_error, e}, {usage_error, e}}};
  };
  const Row rows[] = {
      {Where::new_transaction, before},
      {Where::before_commit_hook, before},
      {Where::before_completion_at_commit, before},
      {Where::after_commit_hook, after},
      {Where::after_completion_after_commit, after},
      {Where::after_commit_hook_of_a_failed_commit, rolling_back(failed)},
      {Where::before_abort_hook, rolling_back(aborted)},
      {Where::after_abort_hook, rolling_back(aborted)},
      {Where::before_completion_at_abort, rolling_back(aborted)},
      {Where::after_completion_after_abort, rolling_back(aborted)},
  };
  const Call calls[] = {
      Call::doom, Call::abort, Call::commit, Call::join, Call::savepoint_and_rollback, Call::begin};
  std::vector<Cell> out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < 6; ++i) {
      out.push_back({row.where, calls[i], row.cells[i].first, row.cells[i].second});
    }
  }
  return out;
}

// A synchronizer whose callbacks each run a one-shot action and count after_completion.
struct ScriptedSynchronizer : Synchronizer {
  std::function<void(Transaction&)> on_new, on_before, on_after;
  int after_completions = 0;
  static void fire(std::function<void(Transaction&)>& slot, Transaction& t) {
    if (!slot) return;
    auto f = std::move(slot);
    slot = nullptr;
    f(t);
  }
  void new_transaction(Transaction& t) override { fire(on_new, t); }
  void before_completion(Transaction& t) override { fire(on_before, t); }
  void after_completion(Transaction& t) override {
    ++after_completions;
    fire(on_after, t);
  }
};

class StateMachineTest : public ::testing::TestWithParam<Cell> {};

TEST_P(StateMachineTest, CallFromCallbackFollowsTheTable) {
  const Cell cell = GetParam();
  // An implicit manager: its begin() would abort a transaction left open, the harmful case.
  BasicTransactionManager tm(/*explicit_mode=*/false,
                             ManagerOptions{.allow_unlogged_decisions = true});
  auto log = std::make_shared<CallLog>();
  RecordingOptions a_options;
  if (cell.where == Where::after_commit_hook_of_a_failed_commit) a_options.fail_at = Step::tpc_vote;
  auto a = std::make_shared<RecordingResource>("a", log, a_options);
  auto j = std::make_shared<RecordingResource>("j", log);
  auto sync = std::make_shared<ScriptedSynchronizer>();
  tm.register_synchronizer(sync);

  std::optional<Then> then;
  std::string unexpected;
  auto act = [&](Transaction& t) {
    try {
      switch (cell.call) {
        case Call::doom: t.doom(); break;
        case Call::abort: t.abort(); break;
        case Call::commit: t.commit(); break;
        case Call::join: j->set(t, "j"); break;
        case Call::savepoint_and_rollback: {
          auto sp = t.savepoint();
          sp.rollback();
          break;
        }
        case Call::begin: tm.begin(); break;
      }
      then = Then::ok;
    } catch (const UsageError&) {
      then = Then::usage_error;
    } catch (...) {
      unexpected = error_message(std::current_exception());
    }
  };

  if (cell.where == Where::new_transaction) sync->on_new = act;
  Transaction& txn = tm.begin();
  auto keep = txn.shared_from_this();
  a->set(txn, "1");
  switch (cell.where) {
    case Where::new_transaction: break;
    case Where::before_commit_hook: txn.add_before_commit_hook([&] { act(txn); }); break;
    case Where::before_completion_at_commit:
    case Where::before_completion_at_abort: sync->on_before = act; break;
    case Where::after_commit_hook:
    case Where::after_commit_hook_of_a_failed_commit:
      txn.add_after_commit_hook([&](bool) { act(txn); });
      break;
    case Where::after_completion_after_commit:
    case Where::after_completion_after_abort: sync->on_after = act; break;
    case Where::before_abort_hook: txn.add_before_abort_hook([&] { act(txn); }); break;
    case Where::after_abort_hook: txn.add_after_abort_hook([&] { act(txn); }); break;
  }

  std::optional<Ends> ends;
  const bool by_abort = cell.where == Where::before_abort_hook ||
                        cell.where == Where::after_abort_hook ||
                        cell.where == Where::before_completion_at_abort ||
                        cell.where == Where::after_completion_after_abort;
  if (by_abort) {
    tm.abort();
    if (txn.status() == TransactionStatus::aborted) ends = Ends::aborted;
  } else {
    try {
      txn.commit();
      ends = Ends::committed;
    } catch (const DoomedTransactionError&) {
      ends = Ends::doomed;
    } catch (const ResourceError&) {
      ends = Ends::failed;
    } catch (...) {
      unexpected = "commit: " + error_message(std::current_exception());
    }
  }

  EXPECT_EQ(unexpected, "");
  ASSERT_TRUE(then.has_value()) << "the callback never ran";
  EXPECT_EQ(*then, cell.then) << (*then == Then::ok ? "allowed" : "refused");
  ASSERT_TRUE(ends.has_value());
  EXPECT_EQ(name_of(*ends), std::string(name_of(cell.ends)));

  // Whatever the cell: the reported outcome is the real one, every participant ends exactly
  // once, and after_completion runs exactly once.
  tm.abort();
  EXPECT_EQ(a->committed().has_value(), cell.ends == Ends::committed);
  EXPECT_TRUE(a->prepared().empty());
  const bool j_joined = cell.call == Call::join && cell.then == Then::ok;
  EXPECT_EQ(j->committed().has_value(), j_joined && cell.ends == Ends::committed);
  for (const auto& rm : {std::string("a"), std::string("j")}) {
    const auto mine = log->of(rm);
    const auto ends_of = std::count(mine.begin(), mine.end(), "abort") +
                         std::count(mine.begin(), mine.end(), "tpc_abort") +
                         std::count(mine.begin(), mine.end(), "tpc_finish");
    EXPECT_EQ(ends_of, rm == "a" || j_joined ? 1 : 0) << rm;
  }
  EXPECT_EQ(sync->after_completions, 1);
  EXPECT_NE(txn.status(), TransactionStatus::committing);
  EXPECT_EQ(tm.current(), nullptr);
  EXPECT_NO_THROW(tm.begin()) << "the manager is usable afterwards";
  tm.abort();
}

INSTANTIATE_TEST_SUITE_P(EveryCallFromEveryCallback, StateMachineTest,
                         ::testing::ValuesIn(state_machine_cells()), [](const auto& info) {
                           return std::string(name_of(info.param.where)) + "__" +
                                  name_of(info.param.call);
                         });

// ---- the rules behind the table, one test each -------------------------------------------

TEST_F(TransactionTest, DoomFromABeforeCommitHookOrSynchronizerIsNeverCommitted) {
  struct Dooming : Synchronizer {
    void before_completion(Transaction& t) override {
      if (t.status() == TransactionStatus::active) t.doom();
    }
  };
  for (int via_sync = 0; via_sync < 2; ++via_sync) {
    auto a = rm("a" + std::to_string(via_sync));
    auto s = std::make_shared<Dooming>();
    if (via_sync) tm_.register_synchronizer(s);
    auto& txn = tm_.begin();
    a->set(txn, "1");
    if (!via_sync) txn.add_before_commit_hook([&] { txn.doom(); });
    std::vector<bool> told;
    txn.add_after_commit_hook([&](bool ok) { told.push_back(ok); });
    EXPECT_THROW(tm_.commit(), DoomedTransactionError);
    EXPECT_EQ(told, (std::vector<bool>{false}));
    EXPECT_FALSE(a->committed());
    tm_.abort();
    tm_.unregister_synchronizer(*s);
  }
}

TEST_F(TransactionTest, AbortFromABeforeCommitHookFailsTheCommitAndRunsTheAbortHooks) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  int before_abort = 0, after_abort = 0;
  std::vector<bool> told;
  txn.add_before_commit_hook([&] { txn.abort(); });
  txn.add_before_abort_hook([&] { ++before_abort; });
  txn.add_after_abort_hook([&] { ++after_abort; });
  txn.add_after_commit_hook([&](bool ok) { told.push_back(ok); });
  try {
    tm_.commit();
    FAIL() << "aborted work was reported committed";
  } catch (const DoomedTransactionError& e) {
    EXPECT_NE(std::string(e.what()).find("abort()"), std::string::npos) << e.what();
  }
  EXPECT_EQ(told, (std::vector<bool>{false}));
  EXPECT_EQ(before_abort, 1);
  EXPECT_EQ(after_abort, 1);
  EXPECT_EQ(log_->of("a"), (Calls{"abort"}));
  EXPECT_FALSE(a->committed());
  tm_.abort();
  EXPECT_EQ(before_abort, 1) << "the hooks ran once";
}

TEST_F(TransactionTest, CommitFromInsideCommitIsAUsageErrorAndCompletesOnce) {
  auto a = rm("a");
  auto s = std::make_shared<RecordingSynchronizer>();
  tm_.register_synchronizer(s);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  txn.add_before_commit_hook([&] { txn.commit(); });  // lets the UsageError out
  try {
    tm_.commit();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("inside commit()"), std::string::npos) << e.what();
  }
  const auto a_calls = log_->of("a");
  EXPECT_EQ(std::count(a_calls.begin(), a_calls.end(), "tpc_begin"), 0);
  EXPECT_FALSE(a->committed());
  tm_.abort();
  EXPECT_EQ(s->seen, (std::vector<std::string>{"new", "before", "after:commit_failed"}))
      << "before_completion and after_completion once each: the failed commit's rollback is "
         "an abort, which synchronizers hear before and after (as Zope's abort() tells them)";
  tm_.unregister_synchronizer(*s);
}

// A resource manager that calls `during` on the transaction from one of its phase-1 steps.
class ActingResource : public RecordingResource {
 public:
  using RecordingResource::RecordingResource;
  Step at = Step::tpc_vote;
  std::function<void(Transaction&)> during;
  void commit(Transaction& t) override {
    if (at == Step::commit && during) during(t);
    RecordingResource::commit(t);
  }
  Vote tpc_vote(Transaction& t) override {
    if (at == Step::tpc_vote && during) during(t);
    return RecordingResource::tpc_vote(t);
  }
  void tpc_finish(Transaction& t) override {
    if (at == Step::tpc_finish && during) during(t);
    RecordingResource::tpc_finish(t);
  }
};

TEST_F(TransactionTest, DoomOrAbortFromAResourceManagerBeforeTheDecisionFailsTheCommit) {
  for (bool use_abort : {false, true}) {
    log_->clear();
    auto a = rm("a");
    auto r = std::make_shared<ActingResource>("r", log_);
    r->during = [&](Transaction& t) { use_abort ? t.abort() : t.doom(); };
    auto& txn = tm_.begin();
    a->set(txn, "1");
    r->set(txn, "1");
    EXPECT_THROW(tm_.commit(), DoomedTransactionError) << (use_abort ? "abort" : "doom");
    EXPECT_EQ(log_->of("a").back(), "tpc_abort");
    EXPECT_EQ(log_->of("r").back(), "tpc_abort");
    EXPECT_FALSE(a->committed());
    EXPECT_TRUE(a->prepared().empty());
    tm_.abort();
  }
}

TEST_F(TransactionTest, AJoinRefusedBeforeTheDecisionFailsTheCommitEvenIfSwallowed) {
  for (Step step : {Step::commit, Step::tpc_vote}) {
    log_->clear();
    auto a = rm("a"), late = rm("late");
    auto r = std::make_shared<ActingResource>("r", log_);
    r->at = step;
    r->during = [&](Transaction& t) {
      try {
        t.join(late);
      } catch (const UsageError&) {
        // the resource manager swallows the refusal
      }
    };
    auto& txn = tm_.begin();
    a->set(txn, "1");
    r->set(txn, "1");
    const auto before = counters().late_joins;
    try {
      tm_.commit();
      FAIL() << "the commit dropped a late joiner's work";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("'late'"), std::string::npos) << e.what();
    }
    EXPECT_EQ(counters().late_joins, before + 1);
    EXPECT_FALSE(a->committed());
    EXPECT_TRUE(log_->of("late").empty());
    tm_.abort();
  }
}

TEST_F(TransactionTest, AParticipantJoiningAgainDuringCommitIsNoLateJoiner) {
  auto r = std::make_shared<ActingResource>("r", log_);
  r->during = [&](Transaction& t) { t.join(r); };
  auto& txn = tm_.begin();
  r->set(txn, "1");
  const auto before = counters().late_joins;
  EXPECT_NO_THROW(tm_.commit());
  EXPECT_EQ(r->committed(), "1");
  EXPECT_EQ(counters().late_joins, before);
}

TEST_F(TransactionTest, AJoinRefusedAfterTheDecisionIsLoggedAsAnErrorAndCounted) {
  std::vector<std::string> errors;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::error) errors.emplace_back(m);
  });
  auto a = rm("a"), late1 = rm("late1"), late2 = rm("late2");
  auto r = std::make_shared<ActingResource>("r", log_);
  r->at = Step::tpc_finish;
  r->during = [&](Transaction& t) {
    try {
      t.join(late1);
    } catch (const UsageError&) {
    }
  };
  auto& txn = tm_.begin();
  a->set(txn, "1");
  r->set(txn, "1");
  txn.add_after_commit_hook([&](bool) { late2->set(txn, "x"); });  // its error is logged too
  const auto before = counters().late_joins;
  CommitOutcome outcome;
  EXPECT_NO_THROW(outcome = tm_.commit());
  set_log_sink(nullptr);
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(a->committed(), "1");
  EXPECT_EQ(counters().late_joins, before + 2);
  auto mentions = [&](const std::string& name) {
    return std::count_if(errors.begin(), errors.end(), [&](const std::string& m) {
      return m.find("late join: resource '" + name + "'") != std::string::npos;
    });
  };
  EXPECT_GE(mentions("late1"), 1) << ::testing::PrintToString(errors);
  EXPECT_GE(mentions("late2"), 1) << ::testing::PrintToString(errors);
  EXPECT_TRUE(log_->of("late1").empty());
  EXPECT_FALSE(late2->committed());
}

TEST_F(TransactionTest, BeginFromAHookOfTheCurrentTransactionIsRefused) {
  BasicTransactionManager tm(/*explicit_mode=*/false);
  auto a = rm("a");
  auto& txn = tm.begin();
  a->set(txn, "1");
  std::string refused;
  txn.add_after_commit_hook([&](bool) {
    try {
      tm.begin();
    } catch (const UsageError& e) {
      refused = e.what();
    }
  });
  tm.commit();
  EXPECT_NE(refused.find("begin() called while"), std::string::npos) << refused;
  EXPECT_EQ(tm.current(), nullptr) << "no transaction was begun behind the application's back";
}

// ---- "in doubt" only after a decision ------------------------------------------------------

struct InDoubtAt {
  Step step;
  const char* name;
};

void PrintTo(const InDoubtAt& at, std::ostream* os) { *os << at.name; }

class InDoubtBeforeTheDecisionTest : public TransactionTest,
                                     public ::testing::WithParamInterface<InDoubtAt> {};

TEST_P(InDoubtBeforeTheDecisionTest, CountsAsANoVoteAndCommitThrowsARetryableError) {
  RecordingOptions lost;
  lost.fail_at = GetParam().step;
  lost.thrower = [](Step) { throw InDoubtError("connection lost"); };
  auto a = rm("a"), b = rm("b", lost), c = rm("c");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  c->set(txn, "1");
  int before_abort = 0, after_abort = 0;
  txn.add_before_abort_hook([&] { ++before_abort; });
  txn.add_after_abort_hook([&] { ++after_abort; });
  const auto in_doubt_before = counters().in_doubt;
  std::exception_ptr error;
  try {
    tm_.commit();
  } catch (const InDoubtError&) {
    FAIL() << "reported in doubt before any decision existed";
  } catch (const TransientError& e) {
    error = std::current_exception();
    try {
      std::rethrow_if_nested(e);
      ADD_FAILURE() << "the original error is not nested";
    } catch (const InDoubtError& original) {
      EXPECT_STREQ(original.what(), "connection lost");
    }
  }
  ASSERT_TRUE(error);
  EXPECT_TRUE(txn.is_retryable(error));
  EXPECT_EQ(counters().in_doubt, in_doubt_before);
  EXPECT_EQ(before_abort, 1);
  EXPECT_EQ(after_abort, 1);
  for (const char* name : {"a", "b", "c"}) {
    auto mine = log_->of(name);
    const bool begun = std::find(mine.begin(), mine.end(), "tpc_begin") != mine.end();
    EXPECT_EQ(mine.back(), begun ? "tpc_abort" : "abort") << name;
  }
  EXPECT_EQ(log_->of("b").back(), "tpc_abort") << "the participant that lost its connection is "
                                                  "told to roll back (by id, on a new one)";
  EXPECT_TRUE(a->prepared().empty());
  EXPECT_TRUE(c->prepared().empty());
  tm_.abort();
}

INSTANTIATE_TEST_SUITE_P(Steps, InDoubtBeforeTheDecisionTest,
                         ::testing::Values(InDoubtAt{Step::tpc_begin, "tpc_begin"},
                                           InDoubtAt{Step::commit, "commit"},
                                           InDoubtAt{Step::tpc_vote, "tpc_vote"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(TransactionTest, InDoubtFromABeforeCommitHookCountsAsANoVote) {
  auto a = rm("a");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  txn.add_before_commit_hook([] { throw InDoubtError("hook lost its connection"); });
  EXPECT_THROW(tm_.commit(), TransientError);
  EXPECT_EQ(log_->of("a"), (Calls{"abort"}));
  tm_.abort();
}

TEST_F(TransactionTest, ASingleVoterWhoseFinishFailsReportsTheDecisionLogged) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> decisions = DecisionLog::open(env, "/log");
  ExplicitTransactionManager tm(ManagerOptions{decisions, std::nullopt});
  RecordingOptions flaky;
  flaky.fail_at = Step::tpc_finish;
  auto a = rm("a", flaky);
  // Unreachable until checked: the re-driver's thread would otherwise finish the branch (the
  // second tpc_finish succeeds) and mark the record done before it is looked at.
  a->set_unreachable(true);
  auto& txn = tm.begin();
  a->set(txn, "1");
  const Gtrid g = txn.gtrid();
  const CommitOutcome outcome = tm.commit();
  ASSERT_EQ(outcome.pending.size(), 1u);
  const auto unfinished = decisions->unfinished();
  ASSERT_EQ(unfinished.size(), 1u) << "the commit record was written for recovery";
  EXPECT_EQ(unfinished[0].gtrid, g);
  EXPECT_TRUE(outcome.decision_logged);
  a->set_unreachable(false);
  ASSERT_TRUE(decisions->redriver().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(a->committed(), "1") << "the re-driver finished the branch";
}

// ---- clean-up order --------------------------------------------------------------------------

TEST_F(TransactionTest, AFailedCommitCleansUpInTheDocumentedOrder) {
  // Joined out of sort order, failing in a before-commit hook (before the sort of phase 1):
  // before-abort hooks, then abort() in sort-key order, after-abort hooks, synchronizers'
  // after_completion, after-commit hooks (false): Zope's order (tests/conformance).
  auto s = std::make_shared<RecordingSynchronizer>();
  tm_.register_synchronizer(s);
  auto a = rm("a"), b = rm("b"), c = rm("c");
  auto& txn = tm_.begin();
  c->set(txn, "1");
  a->set(txn, "1");
  b->set(txn, "1");
  txn.add_before_commit_hook([] { throw ConflictError("hook"); });
  txn.add_before_abort_hook([&] { log_->add("hook.before_abort"); });
  txn.add_after_commit_hook([&](bool) { log_->add("hook.after_commit"); });
  txn.add_after_abort_hook([&] { log_->add("hook.after_abort"); });
  EXPECT_THROW(tm_.commit(), ConflictError);
  EXPECT_EQ(calls(), (Calls{"hook.before_abort", "a.abort", "b.abort", "c.abort",
                            "hook.after_abort", "hook.after_commit"}));
  EXPECT_EQ(s->seen.back(), "after:commit_failed");
  tm_.abort();
  tm_.unregister_synchronizer(*s);
}

TEST_F(TransactionTest, ASavepointRollbackRollsBackInJoinOrderThenAbortsLaterJoinersInJoinOrder) {
  auto a = rm("a"), b = rm("b"), x = rm("x"), y = rm("y");
  auto& txn = tm_.begin();
  b->set(txn, "1");
  a->set(txn, "1");
  auto sp = txn.savepoint();
  x->set(txn, "1");
  y->set(txn, "1");
  log_->clear();
  sp.rollback();
  EXPECT_EQ(calls(), (Calls{"b.savepoint_rollback", "a.savepoint_rollback", "x.abort", "y.abort"}));
  EXPECT_EQ(txn.participant_count(), 2U) << "the later joiners left the transaction";
  tm_.abort();
}

TEST_F(TransactionTest, AFailedSavepointInsideABeforeCommitHookCannotLetTheCommitGoOn) {
  RecordingOptions bad;
  bad.fail_at = Step::savepoint_rollback;
  auto a = rm("a", bad);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  txn.add_before_commit_hook([&] {
    auto sp = txn.savepoint();
    try {
      sp.rollback();
    } catch (const ResourceError&) {
      // swallowed by the hook
    }
  });
  EXPECT_THROW(tm_.commit(), TransactionFailedError);
  EXPECT_FALSE(a->committed());
  const auto a_calls = log_->of("a");
  EXPECT_EQ(std::count(a_calls.begin(), a_calls.end(), "tpc_begin"), 0);
  tm_.abort();
}

// ---- reports from resource managers during a rollback --------------------------------------

// A participant that reports what it found while it is rolled back (tpc_abort, abort).
class ReportingResource : public RecordingResource {
 public:
  using RecordingResource::RecordingResource;
  std::function<void(Transaction&)> at_rollback;
  void tpc_abort(Transaction& t) noexcept override {
    RecordingResource::tpc_abort(t);
    if (at_rollback) at_rollback(t);
  }
  void abort(Transaction& t) noexcept override {
    RecordingResource::abort(t);
    if (at_rollback) at_rollback(t);
  }
};

// Collects the library's error-level messages, or those of `at_least` and above (the re-driver
// logs from its own thread).
class ErrorSink {
 public:
  explicit ErrorSink(LogLevel at_least = LogLevel::error) {
    set_log_sink([this, at_least](LogLevel level, std::string_view m) {
      if (level < at_least) return;
      std::lock_guard lock(mu_);
      messages_.emplace_back(level, m);
    });
  }
  ~ErrorSink() { set_log_sink(nullptr); }
  bool has(std::string_view part, LogLevel level) {
    std::lock_guard lock(mu_);
    return std::any_of(messages_.begin(), messages_.end(), [&](const auto& e) {
      return e.first == level && e.second.find(part) != std::string::npos;
    });
  }
  bool has(std::string_view part) { return has(part, LogLevel::error); }

 private:
  std::mutex mu_;
  std::vector<std::pair<LogLevel, std::string>> messages_;
};

TEST_F(TransactionTest, ATpcAbortThatFailsIsLoggedAndTheRedriverRollsBackItsBranch) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> decisions = DecisionLog::open(env, "/log");
  ExplicitTransactionManager tm(ManagerOptions{decisions, std::nullopt});
  RecordingOptions stuck, no;
  stuck.fail_at = Step::tpc_abort;  // its rollback fails once (a server gone for a moment)
  no.fail_at = Step::tpc_vote;
  auto a = rm("a", stuck), b = rm("b", no);
  ErrorSink sink(LogLevel::warning);
  auto& txn = tm.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  try {
    tm.commit();
    FAIL() << "b voted no";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos)
        << "the commit fails with b's no vote, not with a's failed rollback: " << e.what();
  }
  // a's log may already go on: the re-driver got a's branch when its tpc_abort failed and
  // works on its own thread, so a's tpc_abort is looked for, not taken as the last call.
  const auto a_calls = log_->of("a");
  EXPECT_NE(std::find(a_calls.begin(), a_calls.end(), "tpc_abort"), a_calls.end());
  EXPECT_EQ(log_->of("b").back(), "tpc_abort") << "the clean-up went on after a's failure";
  EXPECT_TRUE(sink.has("resource 'a': rollback of", LogLevel::warning))
      << "a's failure is logged as a warning (not an error: the re-driver has the rollback)";
  tm.abort();
  ASSERT_TRUE(decisions->redriver().wait_idle(std::chrono::seconds(60)));
  EXPECT_TRUE(a->prepared().empty())
      << "the re-driver rolled back the branch the failed tpc_abort left prepared";
  EXPECT_FALSE(a->committed());
}

TEST_F(TransactionTest, AHeuristicFoundDuringTpcAbortIsRecordedInTheDecisionLogAndListed) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> decisions = DecisionLog::open(env, "/log");
  ExplicitTransactionManager tm(ManagerOptions{decisions, std::nullopt});
  RecordingOptions no;
  no.fail_at = Step::tpc_vote;
  // A compensating participant: its undo found someone else's value where it wrote its own.
  auto c = std::make_shared<ReportingResource>("c", log_);
  c->at_rollback = [&](Transaction& t) {
    t.report_heuristic(*c, "the compensation found 'x' where this transaction wrote '1'",
                       RecoverableResource::Outcome::heuristic_commit);
  };
  auto b = rm("b", no);
  ErrorSink sink;
  const auto before = counters().heuristics;
  auto& txn = tm.begin();
  b->set(txn, "1");
  c->set(txn, "1");
  EXPECT_THROW(tm.commit(), ResourceError);
  ASSERT_EQ(txn.heuristics().size(), 1u);
  const HeuristicOutcome& seen = txn.heuristics()[0];
  EXPECT_EQ(seen.resource, "c");
  EXPECT_EQ(seen.xid, txn.xid_for(*c));
  EXPECT_EQ(seen.outcome, RecoverableResource::Outcome::heuristic_commit);
  EXPECT_TRUE(seen.recorded);
  EXPECT_EQ(counters().heuristics, before + 1);
  EXPECT_TRUE(sink.has("heuristic outcome on resource 'c'"));
  const Gtrid g = txn.gtrid();
  tm.abort();
  // Durably, as recovery records them (what `xact heuristics list` shows).
  const auto listed = decisions->heuristics();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].gtrid, g);
  EXPECT_EQ(listed[0].resource, "c");
  EXPECT_EQ(listed[0].bqual, "c");
  EXPECT_EQ(listed[0].outcome, "heuristic commit");
  EXPECT_NE(listed[0].detail.find("found 'x'"), std::string::npos) << listed[0].detail;
}

TEST_F(TransactionTest, ReportsDuringAbortAndSavepointRollbackWithoutADecisionLogAreKeptAndLogged) {
  auto a = rm("a");
  auto late = std::make_shared<ReportingResource>("late", log_);
  late->at_rollback = [&](Transaction& t) {
    t.report_heuristic(*late, "partly undone", RecoverableResource::Outcome::heuristic_mixed);
  };
  ErrorSink sink(LogLevel::warning);
  auto& txn = tm_.begin();
  a->set(txn, "1");
  Savepoint sp = txn.savepoint();
  late->set(txn, "2");
  sp.rollback();  // aborts the participant that joined after the savepoint
  EXPECT_EQ(log_->of("late").back(), "abort");
  ASSERT_EQ(txn.heuristics().size(), 1u);
  EXPECT_EQ(txn.heuristics()[0].resource, "late");
  EXPECT_EQ(txn.heuristics()[0].outcome, RecoverableResource::Outcome::heuristic_mixed);
  EXPECT_FALSE(txn.heuristics()[0].recorded) << "no decision log to record it in";
  EXPECT_TRUE(sink.has("not recorded (no decision log)"));
  EXPECT_EQ(txn.status(), TransactionStatus::active) << "a heuristic report never fails it";
  late->at_rollback = [&](Transaction& t) { t.report_rollback_failure(*late, "connection reset"); };
  late->set(txn, "3");
  tm_.abort();  // abort() never throws, reports or not
  // The failed rollback may be re-driven (the heuristic's record drew a transaction id): wait.
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  const Calls late_calls = log_->of("late");
  EXPECT_EQ(std::count(late_calls.begin(), late_calls.end(), "abort"), 2)
      << "at the savepoint rollback and at abort()";
  // A warning: the re-driver has the rollback.
  EXPECT_TRUE(sink.has("resource 'late': rollback of", LogLevel::warning));
  EXPECT_TRUE(sink.has("connection reset", LogLevel::warning));
  EXPECT_FALSE(a->committed());
}

// Rule: a participant that joined after a savepoint and cannot be aborted when the savepoint is
// rolled back fails the transaction: what it wrote may still be there, and a transaction going
// on would commit it. Everything rolls back, the failed one is not asked twice, and its branch is
// rolled back by id by the re-driver (it drew a transaction id).
TEST_F(TransactionTest, ALaterJoinerThatCannotBeAbortedAtASavepointRollbackFailsTheTransaction) {
  auto a = rm("a");
  RecordingOptions stuck;
  stuck.fail_at = Step::abort;
  auto late = rm("late", stuck);
  auto fine = rm("fine");  // joins after the savepoint too, and aborts
  auto& txn = tm_.begin();
  a->set(txn, "1");
  Savepoint sp = txn.savepoint();
  late->set(txn, "2");
  fine->set(txn, "2");
  (void)txn.xid_for(*late);  // as a compensating resource does to fence its write
  const auto handed = Redriver::process().stats().handed_off;
  try {
    sp.rollback();
    FAIL() << "the savepoint rollback succeeded though 'late' could not be aborted";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos) << e.what();
  }
  EXPECT_EQ(txn.status(), TransactionStatus::commit_failed);
  EXPECT_EQ(log_->of("a"), (Calls{"savepoint", "savepoint_rollback", "abort"}))
      << "rolled back to the savepoint, then everything rolled back";
  EXPECT_THROW(tm_.commit(), TransactionFailedError);
  tm_.abort();
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(Redriver::process().stats().handed_off, handed + 1);
  EXPECT_EQ(log_->of("late"), (Calls{"abort", "rollback_prepared"}))
      << "aborted once, then rolled back by id by the re-driver";
  EXPECT_EQ(log_->of("fine"), (Calls{"abort"})) << "aborted once, at the savepoint rollback";
  EXPECT_FALSE(a->committed());
  EXPECT_FALSE(late->committed());
}

// Rule: an abort() that fails on a participant which never got tpc_begin but drew a transaction
// id (a compensating store's fences carry it) is handed to the re-driver like a failed
// tpc_abort: rolled back by id as soon as the resource answers, not only after a restart.
TEST_F(TransactionTest, AFailedAbortOfAJoinedRecoverableParticipantIsRedriven) {
  RecordingOptions stuck;
  stuck.fail_at = Step::abort;
  auto a = rm("a", stuck), b = rm("b");
  auto& txn = tm_.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  (void)txn.xid_for(*a);
  a->set_unreachable(true);  // the re-driver's first calls fail too
  const auto handed = Redriver::process().stats().handed_off;
  tm_.abort();
  EXPECT_EQ(Redriver::process().stats().handed_off, handed + 1) << "only a, whose abort failed";
  a->set_unreachable(false);
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(log_->of("a").front(), "abort");
  EXPECT_EQ(log_->of("a").back(), "rollback_prepared");
  EXPECT_EQ(log_->of("b"), (Calls{"abort"}));
}

// Without a transaction id nothing was left under one: no hand-off, recovery has nothing either.
TEST_F(TransactionTest, AFailedAbortWithoutATransactionIdIsOnlyLogged) {
  RecordingOptions stuck;
  stuck.fail_at = Step::abort;
  auto a = rm("a", stuck);
  ErrorSink sink;
  a->set(tm_.begin(), "1");
  const auto handed = Redriver::process().stats().handed_off;
  tm_.abort();
  EXPECT_EQ(Redriver::process().stats().handed_off, handed);
  EXPECT_TRUE(sink.has("resource 'a': rollback of"));
  EXPECT_EQ(log_->of("a"), (Calls{"abort"}));
}

// ---- the decision needs a log ----------------------------------------------------------------

TEST_F(TransactionTest, TwoVotersWithoutADecisionLogAreRefusedBeforeAnyonePreparesNamingTheFix) {
  ExplicitTransactionManager tm;  // no decision log, nothing allowed
  auto a = rm("a"), b = rm("b");
  auto& txn = tm.begin();
  a->set(txn, "1");
  b->set(txn, "1");
  try {
    tm.commit();
    FAIL() << "two voters committed without a decision log";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("DecisionLog"), std::string::npos) << m;
    EXPECT_NE(m.find("allow_unlogged_decisions = true"), std::string::npos) << m;
    EXPECT_NE(m.find("'a', 'b'"), std::string::npos) << m;
  }
  EXPECT_EQ(calls(), (Calls{"a.abort", "b.abort"})) << "nobody was told to prepare";
  EXPECT_EQ(txn.status(), TransactionStatus::commit_failed);
  tm.abort();
}

TEST_F(TransactionTest, WithoutADecisionLogOneVoterOrALastResourceNeedsNoneAndTheOptionAllowsMore) {
  {
    ExplicitTransactionManager tm;
    rm("a")->set(tm.begin(), "1");
    EXPECT_TRUE(tm.commit().complete()) << "one participant: no decision to log";
  }
  {
    ExplicitTransactionManager tm;
    RecordingOptions last;
    last.last_resource = true;
    auto a = rm("a"), l = rm("l", last);
    auto& txn = tm.begin();
    a->set(txn, "1");
    l->set(txn, "1");
    EXPECT_TRUE(tm.commit().complete()) << "the last resource carries the decision";
  }
  {
    ExplicitTransactionManager tm(ManagerOptions{.allow_unlogged_decisions = true});
    auto a = rm("a"), b = rm("b");
    auto& txn = tm.begin();
    a->set(txn, "1");
    b->set(txn, "1");
    const CommitOutcome outcome = tm.commit();
    EXPECT_TRUE(outcome.complete());
    EXPECT_FALSE(outcome.decision_logged) << "allowed, and nothing recorded";
    EXPECT_EQ(b->committed(), "1");
  }
}

}  // namespace
}  // namespace xact

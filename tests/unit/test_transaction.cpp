// The two-phase commit as the participants see it: call order, sort order, votes, failures at
// every step, hooks, doom, timeouts, savepoints.
#include <xact/errors.hpp>
#include <xact/log.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

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
  ExplicitTransactionManager tm_;
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
  EXPECT_EQ(txn.status(), Status::commit_failed);
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
  EXPECT_EQ(txn.status(), Status::aborted);
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
  EXPECT_EQ(txn.status(), Status::committed);
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

TEST_F(TransactionTest, TwoLastResourcesFailTheCommit) {
  RecordingOptions last;
  last.last_resource = true;
  RecordingOptions last2 = last;
  auto l1 = rm("l1", last), l2 = rm("l2", last2);
  auto& txn = tm_.begin();
  l1->set(txn, "1");
  l2->set(txn, "1");
  EXPECT_THROW(tm_.commit(), UsageError);
  EXPECT_EQ(log_->of("l1"), (Calls{"abort"}));
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
  EXPECT_EQ(txn.status(), Status::doomed);
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
  ExplicitTransactionManager tm(ManagerOptions{nullptr, std::chrono::milliseconds(1)});
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
  EXPECT_EQ(txn.status(), Status::active) << "a refused savepoint changes nothing";
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
  EXPECT_EQ(txn.status(), Status::commit_failed);
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

}  // namespace
}  // namespace xact

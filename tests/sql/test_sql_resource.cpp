// xact::sql::SqlResource over the fake database: what runs at each protocol step, read-only
// votes, one-phase commit, failed statements, savepoints, enlisted connections, phase 2 after
// a lost connection, retry classification, and many threads sharing one resource.
#include <xact/sql/sql_resource.hpp>

#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

#include <xact/diagnostics.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/retry.hpp>
#include <xact/testing/conformance.hpp>
#include <xact/testing/recording_resource.hpp>

#include "fake_sql.hpp"

namespace xact::sql {
namespace {

using fake::FakeConnection;
using fake::FakeDb;
using fake::FakeNative;
using fake::FakeResource;
using testing::CallLog;
using testing::RecordingOptions;
using testing::RecordingResource;

std::vector<std::string> without_exec(const std::vector<std::string>& log) {
  std::vector<std::string> out;
  for (const auto& e : log) {
    if (e.rfind("exec ", 0) != 0) out.push_back(e);
  }
  return out;
}

RecordingOptions last_resource_options(testing::Step fail_at = testing::Step::none,
                                       std::function<void(testing::Step)> thrower = {}) {
  RecordingOptions o;
  o.last_resource = true;
  o.fail_at = fail_at;
  o.thrower = std::move(thrower);
  return o;
}

class SqlResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink([this](LogLevel level, std::string_view message) {
      if (level >= LogLevel::warning) warnings_.emplace_back(message);
    });
  }
  void TearDown() override { set_log_sink({}); }

  std::shared_ptr<RecordingResource> other(RecordingOptions o = {}) {
    return std::make_shared<RecordingResource>("zz-other", calls_, std::move(o));
  }
  std::string gid(Transaction& txn) { return txn.xid_for(*rm_).to_gid(); }

  std::shared_ptr<FakeDb> db_ = std::make_shared<FakeDb>();
  std::shared_ptr<FakeResource> rm_ = FakeResource::create("sql:test", db_);
  std::shared_ptr<CallLog> calls_ = std::make_shared<CallLog>();
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
  std::vector<std::string> warnings_;
};

TEST_F(SqlResourceTest, TheFirstStatementJoinsAndBeginsLaterOnesReuseTheBranch) {
  auto& txn = tm_.begin();
  EXPECT_FALSE(rm_->has_branch(txn));
  rm_->execute(txn, "put", {"a", "1"});
  rm_->execute(txn, "put", {"b", "2"});
  EXPECT_TRUE(txn.has_joined(*rm_));
  EXPECT_TRUE(rm_->has_branch(txn));
  EXPECT_EQ(db_->log(), (std::vector<std::string>{"BEGIN", "exec put", "exec put"}));
  EXPECT_EQ(rm_->pool()->stats().open, 1u);
  tm_.commit();
}

TEST_F(SqlResourceTest, TheOnlyParticipantCommitsInOnePhase) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  const auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(without_exec(db_->log()), (std::vector<std::string>{"BEGIN", "COMMIT"}));
  EXPECT_EQ(db_->get("a"), "1");
  EXPECT_EQ(rm_->pool()->stats().idle, 1u) << "the connection went back to the pool";
}

TEST_F(SqlResourceTest, WithAnotherParticipantTheBranchIsPreparedThenCommittedById) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  other()->set(txn, "x");
  const std::string g = gid(txn);
  tm_.commit();
  EXPECT_EQ(without_exec(db_->log()),
            (std::vector<std::string>{"BEGIN", "PREPARE " + g, "COMMIT PREPARED " + g}));
  EXPECT_EQ(db_->get("a"), "1");
  EXPECT_TRUE(db_->prepared_gids().empty());
  EXPECT_EQ(rm_->pool()->stats().open, 1u) << "one connection served the branch and phase 2";
}

TEST_F(SqlResourceTest, ABranchWithoutStatementsVotesReadOnlyAndRunsNothing) {
  auto& txn = tm_.begin();
  txn.join(rm_);
  other()->set(txn, "x");
  tm_.commit();
  EXPECT_TRUE(db_->log().empty());
  EXPECT_EQ(rm_->pool()->stats().created, 0u) << "not even a connection";
}

TEST_F(SqlResourceTest, ABranchTheDialectFindsUnchangedVotesReadOnly) {
  db_->branch_wrote = false;
  auto& txn = tm_.begin();
  rm_->execute(txn, "get", {"a"});
  auto o = other();
  o->set(txn, "x");
  const auto outcome = tm_.commit();
  EXPECT_FALSE(outcome.decision_logged);
  EXPECT_EQ(without_exec(db_->log()), (std::vector<std::string>{"BEGIN", "ROLLBACK"}));
}

TEST_F(SqlResourceTest, AFailedStatementFailsTheCommitBeforeAnyoneVotes) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  EXPECT_THROW(rm_->execute(txn, "fail"), SqlError);  // the application catches it, goes on
  other()->set(txn, "x");
  EXPECT_THROW(tm_.commit(), SqlError) << "commit() surfaces the statement's error";
  tm_.abort();
  const auto calls = calls_->of("zz-other");
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "tpc_vote"), 0) << "nobody voted";
  EXPECT_EQ(without_exec(db_->log()), (std::vector<std::string>{"BEGIN", "ROLLBACK"}));
  EXPECT_EQ(db_->get("a"), std::nullopt);
}

TEST_F(SqlResourceTest, ASavepointRollbackUndoesLaterStatementsAndClearsTheFailure) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  auto sp = txn.savepoint();
  rm_->execute(txn, "put", {"b", "2"});
  EXPECT_THROW(rm_->execute(txn, "fail"), SqlError);
  sp.rollback();
  rm_->execute(txn, "put", {"c", "3"});
  tm_.commit();
  EXPECT_EQ(db_->get("a"), "1");
  EXPECT_EQ(db_->get("b"), std::nullopt);
  EXPECT_EQ(db_->get("c"), "3");
  EXPECT_EQ(without_exec(db_->log()),
            (std::vector<std::string>{"BEGIN", "SAVEPOINT xact_sp_1", "ROLLBACK TO xact_sp_1",
                                      "COMMIT"}));
}

TEST_F(SqlResourceTest, ASavepointTakenBeforeTheBranchBeganRollsBackAllOfIt) {
  auto& txn = tm_.begin();
  txn.join(rm_);
  auto sp = txn.savepoint();
  rm_->execute(txn, "put", {"a", "1"});
  sp.rollback();
  EXPECT_FALSE(rm_->has_branch(txn));
  rm_->execute(txn, "put", {"b", "2"});
  sp.rollback();  // more than once
  rm_->execute(txn, "put", {"c", "3"});
  tm_.commit();
  EXPECT_EQ(db_->data(), (std::map<std::string, std::string>{{"c", "3"}}));
}

TEST_F(SqlResourceTest, ASavepointRollbackToBeforeTheJoinAbortsTheBranchAndItCanRejoin) {
  auto o = other();
  auto& txn = tm_.begin();
  o->set(txn, "x");
  auto sp = txn.savepoint();
  rm_->execute(txn, "put", {"a", "1"});
  sp.rollback();  // the coordinator aborts the late joiner
  EXPECT_FALSE(txn.has_joined(*rm_));
  rm_->execute(txn, "put", {"b", "2"});
  tm_.commit();
  EXPECT_EQ(db_->data(), (std::map<std::string, std::string>{{"b", "2"}}));
  EXPECT_EQ(rm_->pool()->stats().open, 1u);
}

// A branch extension that writes its pending puts at commit, and records what it was told.
class PendingPuts : public BranchExtension {
 public:
  void before_vote(Transaction& txn, SqlResource& rm) override {
    events.push_back("before_vote");
    for (const auto& [k, v] : pending) rm.execute(txn, "put", {k, v});
    pending.clear();
  }
  void rolled_back(Transaction&) noexcept override {
    events.push_back("rolled_back");
    pending.clear();
  }
  std::function<void()> savepoint(Transaction&) override {
    return [this, saved = pending] {
      events.push_back("undo");
      pending = saved;
    };
  }
  std::map<std::string, std::string> pending;
  std::vector<std::string> events;
};

TEST_F(SqlResourceTest, ExtensionsWriteInTheBranchAtCommitBeforeAnyoneVotes) {
  auto ext = std::make_shared<PendingPuts>();
  auto o = other();
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  rm_->add_extension(txn, ext);
  rm_->add_extension(txn, ext);  // once
  ext->pending["b"] = "2";
  o->set(txn, "x");
  const std::string g = gid(txn);
  tm_.commit();
  EXPECT_EQ(ext->events, (std::vector<std::string>{"before_vote"}));
  EXPECT_EQ(db_->log(), (std::vector<std::string>{"BEGIN", "exec put", "exec put", "PREPARE " + g,
                                                  "COMMIT PREPARED " + g}));
  EXPECT_EQ(db_->get("b"), "2");
}

TEST_F(SqlResourceTest, AnExtensionThatThrowsFailsTheCommitBeforeAnyoneVotes) {
  struct Failing : PendingPuts {
    void before_vote(Transaction& txn, SqlResource& rm) override { rm.execute(txn, "fail"); }
  };
  auto ext = std::make_shared<Failing>();
  auto o = other();
  auto& txn = tm_.begin();
  rm_->add_extension(txn, ext);
  o->set(txn, "x");
  EXPECT_THROW(tm_.commit(), SqlError);
  tm_.abort();
  const auto calls = calls_->of("zz-other");
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "tpc_vote"), 0) << "nobody voted";
  EXPECT_EQ(ext->events, (std::vector<std::string>{"rolled_back"}));
}

TEST_F(SqlResourceTest, AbortTellsExtensionsAndWritesNothing) {
  auto ext = std::make_shared<PendingPuts>();
  auto& txn = tm_.begin();
  rm_->add_extension(txn, ext);
  ext->pending["a"] = "1";
  tm_.abort();
  EXPECT_EQ(ext->events, (std::vector<std::string>{"rolled_back"}));
  EXPECT_TRUE(db_->data().empty());
}

TEST_F(SqlResourceTest, ASavepointRollbackUndoesExtensionsAndDropsLaterOnes) {
  auto early = std::make_shared<PendingPuts>();
  auto late = std::make_shared<PendingPuts>();
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  rm_->add_extension(txn, early);
  early->pending["b"] = "2";
  auto sp = txn.savepoint();
  early->pending["c"] = "3";
  rm_->add_extension(txn, late);
  late->pending["d"] = "4";
  sp.rollback();
  EXPECT_EQ(early->events, (std::vector<std::string>{"undo"}));
  EXPECT_EQ(late->events, (std::vector<std::string>{"rolled_back"}));
  tm_.commit();
  EXPECT_EQ(db_->data(), (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));
}

TEST_F(SqlResourceTest, AbortRollsBackAndReturnsTheConnection) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  tm_.abort();
  EXPECT_EQ(without_exec(db_->log()), (std::vector<std::string>{"BEGIN", "ROLLBACK"}));
  EXPECT_EQ(rm_->pool()->stats().idle, 1u);
  EXPECT_EQ(db_->get("a"), std::nullopt);
}

TEST_F(SqlResourceTest, ANoVoteElsewhereRollsBackThePreparedBranchByIdOnce) {
  auto& txn = tm_.begin();
  auto keep = txn.shared_from_this();
  rm_->execute(txn, "put", {"a", "1"});
  auto last = std::make_shared<RecordingResource>(
      "zz-last", calls_, last_resource_options(testing::Step::commit_one_phase));
  last->set(txn, "x");
  const std::string g = gid(txn);
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  rm_->tpc_abort(*keep);  // idempotent: nothing more runs
  EXPECT_EQ(without_exec(db_->log()),
            (std::vector<std::string>{"BEGIN", "PREPARE " + g, "ROLLBACK PREPARED " + g}));
  EXPECT_TRUE(db_->prepared_gids().empty());
}

TEST_F(SqlResourceTest, AnUnknownIdAtFinishCountsAsDoneAndIsLogged) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  other()->set(txn, "x");
  db_->fail_next("commit_prepared", std::make_exception_ptr(UnknownIdError("gone")));
  const auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.complete());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("counted as done"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("at FAKE COMMIT"), std::string::npos) << warnings_[0];
}

TEST_F(SqlResourceTest, PhaseTwoReplacesAConnectionThatDiedAfterItsHealthCheck) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  other()->set(txn, "x");
  const std::string g = gid(txn);
  // The pooled connection passes its check, then fails at COMMIT PREPARED (the server went
  // away in between): one retry on a new connection.
  db_->fail_next("commit_prepared", std::make_exception_ptr(ConnectionLost("died")));
  const auto outcome = tm_.commit();
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(db_->get("a"), "1");
  const auto log = without_exec(db_->log());
  EXPECT_EQ(std::count(log.begin(), log.end(), "COMMIT PREPARED " + g), 2);
  EXPECT_EQ(db_->connections_made(), 2);
}

// A last resource that runs `at_decision` when it is committed, i.e. after every vote.
class AtDecision : public ResourceManager, public OnePhaseCommit {
 public:
  explicit AtDecision(std::function<void()> f) : f_(std::move(f)) {}
  std::string resource_name() const override { return "zz-decision"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override {}
  void tpc_abort(Transaction&) noexcept override {}
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  void commit_one_phase(Transaction&, const CommitRecord*) override { f_(); }
  bool can_prepare() const override { return false; }

 private:
  std::function<void()> f_;
};

TEST_F(SqlResourceTest, APendingCompletionIsFinishedByTheRedriverOnceTheDatabaseIsBack) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  txn.join(std::make_shared<AtDecision>([&] { db_->set_down(true); }));
  const Xid xid = txn.xid_for(*rm_);
  const auto outcome = tm_.commit();  // committed: the last resource carried the decision
  EXPECT_TRUE(outcome.committed);
  ASSERT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(outcome.pending[0].resource, "sql:test");
  EXPECT_EQ(db_->get("a"), std::nullopt) << "still prepared while the database is down";
  EXPECT_FALSE(Redriver::process().wait_idle(std::chrono::steady_clock::now()));

  // The database comes back: the re-driver commits the branch on a fresh connection, with no
  // call from the application.
  db_->set_down(false);
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(db_->get("a"), "1");
  EXPECT_TRUE(db_->prepared_gids().empty());
  EXPECT_TRUE(rm_->recover(xid.gtrid.node()).empty());
}

TEST_F(SqlResourceTest, ARollbackPreparedThatCannotReachTheDatabaseIsFinishedByTheRedriver) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  txn.join(std::make_shared<AtDecision>([&] {
    db_->set_down(true);
    throw ResourceError("the last resource failed");
  }));
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  EXPECT_EQ(db_->prepared_gids().size(), 1u) << "still prepared while the database is down";
  db_->set_down(false);
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_TRUE(db_->prepared_gids().empty());
  EXPECT_EQ(db_->get("a"), std::nullopt);
}

TEST_F(SqlResourceTest, WarningsNameTheDialectsStatementsForPreparedBranches) {
  // MariaDB has no ROLLBACK PREPARED: an operator reading the log looks for XA ROLLBACK.
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  txn.join(std::make_shared<AtDecision>([&] {
    db_->set_down(true);
    throw ResourceError("the last resource failed");
  }));
  const Xid xid = txn.xid_for(*rm_);
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  const auto names = [&](std::string_view what) {
    return std::any_of(warnings_.begin(), warnings_.end(),
                       [&](const std::string& w) { return w.find(what) != std::string::npos; });
  };
  db_->set_down(false);
  // After the re-driver is idle nothing logs any more (its thread wrote warnings too).
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_TRUE(db_->prepared_gids().empty());
  EXPECT_TRUE(names("FAKE ROLLBACK of " + xid.to_gid()));
  EXPECT_FALSE(names("ROLLBACK PREPARED"));
}

TEST_F(SqlResourceTest, RunRetriesWhileTheDatabaseIsDownUntilItIsBack) {
  int attempts = 0;
  RetryPolicy policy;
  policy.sleep = [](std::chrono::microseconds) {};
  policy.on_retry = [&](const RetryEvent& e) {
    if (e.attempt == 3) db_->set_down(false);  // back after three failed attempts
  };
  auto r = xact::run_with_outcome(
      tm_,
      [&](Transaction& txn) {
        if (++attempts == 1) {
          rm_->execute(txn, "put", {"a", "lost"});
          db_->set_down(true);  // the connection is lost before the decision
        }
        rm_->execute(txn, "put", {"b", std::to_string(attempts)});
      },
      policy);
  EXPECT_EQ(r.attempts, 4);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(db_->get("a"), std::nullopt) << "the first attempt was rolled back";
  EXPECT_EQ(db_->get("b"), "4");
}

TEST_F(SqlResourceTest, APrepareThatLosesItsConnectionIsRolledBackByIdToo) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  other()->set(txn, "x");
  const std::string g = gid(txn);
  db_->kill_connections();  // the branch connection dies: the prepare's outcome is unknown
  EXPECT_THROW(tm_.commit(), ConnectionLost);
  tm_.abort();
  const auto log = without_exec(db_->log());
  EXPECT_NE(std::find(log.begin(), log.end(), "ROLLBACK PREPARED " + g), log.end());
}

TEST_F(SqlResourceTest, RetryClassificationCoversTransientsLostConnectionsAndNativeErrors) {
  auto& txn = tm_.begin();
  txn.join(rm_);
  auto yes = [&](std::exception_ptr e) { return rm_->should_retry(e); };
  EXPECT_TRUE(yes(std::make_exception_ptr(LockTimeoutError("lock"))));
  EXPECT_TRUE(yes(std::make_exception_ptr(ConnectionLost("lost"))));
  EXPECT_TRUE(yes(std::make_exception_ptr(FakeNative("deadlock"))));
  EXPECT_TRUE(yes(std::make_exception_ptr(FakeNative("lost"))));
  EXPECT_FALSE(yes(std::make_exception_ptr(FakeNative("syntax"))));
  EXPECT_FALSE(yes(std::make_exception_ptr(SqlError("constraint", "23505"))));
  EXPECT_FALSE(yes(std::make_exception_ptr(InDoubtError("doubt"))));
  EXPECT_FALSE(yes(nullptr));
  EXPECT_TRUE(txn.is_retryable(std::make_exception_ptr(FakeNative("lock_timeout"))))
      << "the transaction asks its participants";
  tm_.abort();
}

TEST_F(SqlResourceTest, RunRetriesALostConnectionOnAFreshOne) {
  int attempts = 0;
  RetryPolicy policy;
  policy.sleep = [](std::chrono::microseconds) {};
  xact::run(
      tm_,
      [&](Transaction& txn) {
        ++attempts;
        rm_->execute(txn, "put", {"a", std::to_string(attempts)});
        if (attempts == 1) db_->kill_connections();
        rm_->execute(txn, "put", {"b", "x"});
      },
      policy);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(db_->get("a"), "2");
  EXPECT_EQ(db_->connections_made(), 2);
}

TEST_F(SqlResourceTest, ALostConnectionDuringOnePhaseCommitIsInDoubtAndNotRetried) {
  int attempts = 0;
  RetryPolicy policy;
  policy.sleep = [](std::chrono::microseconds) {};
  EXPECT_THROW(xact::run(
                   tm_,
                   [&](Transaction& txn) {
                     ++attempts;
                     rm_->execute(txn, "put", {"a", "1"});
                     txn.add_before_commit_hook([&] { db_->kill_connections(); });
                   },
                   policy),
               InDoubtError);
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(rm_->pool()->stats().open, 0u) << "the connection of an in-doubt commit is closed";
}

TEST_F(SqlResourceTest, AnEnlistedConnectionServesTheBranchAndIsNotPooled) {
  auto mine = std::make_shared<FakeConnection>(db_);
  auto& txn = tm_.begin();
  rm_->enlist(txn, mine);
  rm_->execute(txn, "put", {"a", "1"});
  rm_->connection(txn).execute("put", {"b", "2"});
  EXPECT_EQ(&rm_->connection(txn), mine.get());
  tm_.commit();
  EXPECT_EQ(db_->get("b"), "2");
  EXPECT_EQ(rm_->pool()->stats().created, 0u);
  EXPECT_EQ(mine.use_count(), 1) << "released when the branch ended";
  EXPECT_NO_THROW(mine->execute("put", {"c", "3"})) << "the application's again";
}

TEST_F(SqlResourceTest, AnEnlistedConnectionAlsoCarriesPhaseTwo) {
  auto mine = std::make_shared<FakeConnection>(db_);
  auto& txn = tm_.begin();
  rm_->enlist(txn, mine);
  rm_->execute(txn, "put", {"a", "1"});
  other()->set(txn, "x");
  const std::string g = gid(txn);
  tm_.commit();
  EXPECT_EQ(without_exec(db_->log()),
            (std::vector<std::string>{"BEGIN", "PREPARE " + g, "COMMIT PREPARED " + g}));
  EXPECT_EQ(db_->get("a"), "1");
  EXPECT_EQ(rm_->pool()->stats().created, 0u);
  EXPECT_EQ(mine.use_count(), 1);
}

TEST_F(SqlResourceTest, EnlistingAfterTheFirstStatementIsAUsageError) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  EXPECT_THROW(rm_->enlist(txn, std::make_shared<FakeConnection>(db_)), UsageError);
  tm_.abort();
}

TEST_F(SqlResourceTest, StatementsAfterTheVoteAreRefused) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  auto keep = txn.shared_from_this();
  tm_.commit();
  EXPECT_THROW(rm_->execute(*keep, "put", {"a", "2"}), UsageError);
}

TEST_F(SqlResourceTest, RecoveryListsOnlyThisNodesAndThisResourcesIds) {
  auto& txn = tm_.begin();
  rm_->execute(txn, "put", {"a", "1"});
  auto last = std::make_shared<RecordingResource>(
      "zz-last", calls_, last_resource_options(testing::Step::commit_one_phase, [](testing::Step) {
        throw InDoubtError("probe: in doubt");
      }));
  last->set(txn, "x");
  const Xid xid = txn.xid_for(*rm_);
  EXPECT_THROW(tm_.commit(), InDoubtError);
  tm_.abort();

  auto twin = FakeResource::create("sql:test", db_);       // same database, same name
  auto stranger = FakeResource::create("sql:other", db_);  // same database, another resource
  EXPECT_EQ(twin->recover(xid.gtrid.node()), std::vector<Xid>{xid});
  EXPECT_TRUE(stranger->recover(xid.gtrid.node()).empty());
  EXPECT_TRUE(twin->recover(NodeId::random()).empty());
  EXPECT_EQ(twin->commit_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(twin->commit_prepared(xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(db_->get("a"), "1");
}

TEST_F(SqlResourceTest, ManyThreadsShareOneResource) {
  PoolOptions o;
  o.max_size = 2;
  auto shared = FakeResource::create("sql:shared", db_, o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ExplicitTransactionManager tm;
      for (int i = 0; i < 50; ++i) {
        auto& txn = tm.begin();
        shared->execute(txn, "put", {"t" + std::to_string(t), std::to_string(i)});
        tm.commit();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(db_->get("t" + std::to_string(t)), "49");
  EXPECT_LE(db_->connections_made(), 2);
}

// The conformance suite over the fake database: the protocol logic of SqlResource, without a
// server (the PostgreSQL adapter passes the same suite against a real one).
class FakeTarget : public testing::ConformanceTarget {
 public:
  std::shared_ptr<ResourceManager> open() override { return FakeResource::create("sql:conf", db_); }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    static_cast<FakeResource&>(rm).execute(txn, "put", {key, value});
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    return db_->get(key);
  }

 private:
  std::shared_ptr<FakeDb> db_ = std::make_shared<FakeDb>();
};

using testing::ResourceManagerConformance;
INSTANTIATE_TEST_SUITE_P(FakeSql, ResourceManagerConformance,
                         ::testing::Values(testing::ConformanceParam{
                             "fake_sql", [] { return std::make_unique<FakeTarget>(); }}),
                         testing::conformance_name);

}  // namespace
}  // namespace xact::sql

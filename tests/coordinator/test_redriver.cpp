// The re-driver: a branch whose tpc_finish (or tpc_abort) failed is finished while the process
// runs, as soon as its resource answers again; recovery leaves it alone meanwhile; shutdown
// never waits for a resource that does not answer.
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/redriver.hpp>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace xact {
namespace {

using namespace std::chrono_literals;

// Generous bound for what must happen "soon" on a loaded machine; reaching it is a failure,
// not a measurement.
constexpr auto kPatience = 60s;

// A participant whose server can be taken down and brought back; thread-safe, since the
// re-driver calls it from its own thread.
class Server : public ResourceManager, public RecoverableResource {
 public:
  explicit Server(std::string name) : name_(std::move(name)) {}
  std::string resource_name() const override { return name_; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction& txn) override { xid_ = txn.xid_for(*this); }
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override {
    std::lock_guard lock(mu_);
    if (refuse_vote_) {
      if (at_refusal_) at_refusal_();
      throw ResourceError(name_ + ": no");
    }
    prepared_.insert(xid_);
    return Vote::yes;
  }
  void tpc_finish(Transaction&) override {
    if (commit_prepared(xid_) == Outcome::unknown_id) throw UsageError("finish of nothing");
  }
  void tpc_abort(Transaction& txn) noexcept override {
    try {
      rollback_prepared(xid_);
    } catch (...) {  // the server is down: the coordinator hands the branch to the re-driver
      txn.report_rollback_failure(*this, std::current_exception());
    }
  }
  RecoverableResource* recoverable() noexcept override { return this; }

  std::vector<Xid> recover(const NodeId&) override {
    std::lock_guard lock(mu_);
    check_up();
    return {prepared_.begin(), prepared_.end()};
  }
  Outcome commit_prepared(const Xid& xid) override { return decide(xid, true); }
  Outcome rollback_prepared(const Xid& xid) override { return decide(xid, false); }

  void set_down(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
    cv_.notify_all();
  }
  // The next vote throws, running `f` first (with the lock held: f must not call back).
  void refuse_next_vote(std::function<void()> f) {
    std::lock_guard lock(mu_);
    refuse_vote_ = true;
    at_refusal_ = std::move(f);
  }
  // Makes every call block until release() (a server that accepts and never answers).
  void hang() {
    std::lock_guard lock(mu_);
    hang_ = true;
  }
  void release() {
    std::lock_guard lock(mu_);
    hang_ = false;
    cv_.notify_all();
  }
  void set_heuristic(bool h) {
    std::lock_guard lock(mu_);
    heuristic_ = h;
  }
  // Waits until at least `n` calls were refused since the start.
  bool wait_refusals(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return refusals_ >= n; });
  }
  bool wait_hanging() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return hanging_ > 0; });
  }
  bool is_prepared(const Xid& x) {
    std::lock_guard lock(mu_);
    return prepared_.count(x) > 0;
  }
  // A branch prepared here by a transaction no longer in this process.
  void add_prepared(const Xid& x) {
    std::lock_guard lock(mu_);
    prepared_.insert(x);
  }
  bool is_committed(const Xid& x) {
    std::lock_guard lock(mu_);
    return committed_.count(x) > 0;
  }
  bool is_rolled_back(const Xid& x) {
    std::lock_guard lock(mu_);
    return rolled_back_.count(x) > 0;
  }

 private:
  void check_up() {
    if (down_) {
      ++refusals_;
      cv_.notify_all();
      throw ResourceError("connection refused (" + name_ + " is down)");
    }
  }
  Outcome decide(const Xid& xid, bool commit) {
    std::unique_lock lock(mu_);
    if (hang_) {
      ++hanging_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hang_; });
      --hanging_;
    }
    check_up();
    if (heuristic_) return commit ? Outcome::heuristic_rollback : Outcome::heuristic_commit;
    if (!prepared_.erase(xid)) return Outcome::unknown_id;
    (commit ? committed_ : rolled_back_).insert(xid);
    return Outcome::done;
  }

  const std::string name_;
  Xid xid_;  // of the transaction in progress (one at a time per test)
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<Xid> prepared_, committed_, rolled_back_;
  bool down_ = false;
  bool hang_ = false;
  bool heuristic_ = false;
  bool refuse_vote_ = false;
  std::function<void()> at_refusal_;
  int refusals_ = 0;
  int hanging_ = 0;
};

// Sorts first and takes `victim` down in its own tpc_finish: the victim's phase two then meets
// a server that is gone, as when a database dies between the decision and COMMIT PREPARED.
class KillAtFinish : public ResourceManager {
 public:
  explicit KillAtFinish(std::shared_ptr<Server> victim) : victim_(std::move(victim)) {}
  std::string resource_name() const override { return "0-kill-at-finish"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override { victim_->set_down(true); }
  void tpc_abort(Transaction&) noexcept override {}

 private:
  std::shared_ptr<Server> victim_;
};

class RedriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink([](LogLevel, std::string_view) {});
    DecisionLogOptions small;  // no 8 MiB of zeros per test (slow under the sanitizers)
    small.segment_bytes = 64 << 10;
    small.preallocate = false;
    log_ = DecisionLog::open(env_, "/log", small);
    log_->redriver().set_options({1ms, 20ms, 2000ms});
  }
  void TearDown() override {
    tm_.abort();
    log_.reset();
    set_log_sink(nullptr);
  }
  // Commits a transaction over `a` and `b` in which `b` goes down at phase two.
  CommitOutcome commit_with_b_dying(Xid* xid_b) {
    auto& txn = tm_.begin();
    txn.join(a_);
    txn.join(b_);
    txn.join(std::make_shared<KillAtFinish>(b_));
    *xid_b = txn.xid_for(*b_);
    return tm_.commit();
  }

  io::MemEnv env_;
  std::shared_ptr<DecisionLog> log_;
  ExplicitTransactionManager tm_{ManagerOptions{nullptr, std::nullopt}};
  std::shared_ptr<Server> a_ = std::make_shared<Server>("a");
  std::shared_ptr<Server> b_ = std::make_shared<Server>("b");
};

TEST_F(RedriverTest, APendingCompletionIsFinishedWhileTheProcessRunsOnceTheResourceAnswers) {
  tm_.set_options(ManagerOptions{log_, std::nullopt});
  const auto before = counters();
  Xid xb;
  const CommitOutcome outcome = commit_with_b_dying(&xb);
  ASSERT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(outcome.pending[0].resource, "b");

  // While b is down nothing can finish it: it stays owed, prepared, and the commit unfinished.
  ASSERT_TRUE(b_->wait_refusals(3)) << "the re-driver keeps asking";
  EXPECT_FALSE(log_->redriver().wait_idle(std::chrono::steady_clock::now()));
  const auto owed = log_->redriver().owed();
  ASSERT_EQ(owed.size(), 1u);
  EXPECT_EQ(owed[0].xid, xb);
  EXPECT_TRUE(owed[0].commit);
  EXPECT_TRUE(b_->is_prepared(xb));
  EXPECT_TRUE(log_->is_committed(xb.gtrid));

  b_->set_down(false);  // the server is back; nobody restarts anything
  ASSERT_TRUE(log_->redriver().wait_idle(kPatience)) << "the branch was never finished";
  EXPECT_TRUE(b_->is_committed(xb));
  EXPECT_FALSE(log_->is_committed(xb.gtrid)) << "the done record is written once all finished";
  EXPECT_FALSE(log_->in_flight(xb.gtrid));
  const auto after = counters();
  EXPECT_EQ(after.completions_redriven - before.completions_redriven, 1u);
  EXPECT_GE(after.redrive_failures - before.redrive_failures, 2u) << "refusals 2 and 3";
  const auto stats = log_->redriver().stats();
  EXPECT_EQ(stats.handed_off, 1u);
  EXPECT_EQ(stats.finished, 1u);
  EXPECT_EQ(stats.owed, 0u);
}

TEST_F(RedriverTest, AFailedRollbackIsFinishedWhileTheProcessRuns) {
  tm_.set_options(ManagerOptions{log_, std::nullopt});
  auto& txn = tm_.begin();
  txn.join(a_);
  txn.join(b_);
  const Xid xa = txn.xid_for(*a_);
  // a votes yes, then b votes no and takes a's server down with it: a's tpc_abort fails.
  b_->refuse_next_vote([this] { a_->set_down(true); });
  EXPECT_THROW(tm_.commit(), ResourceError);
  tm_.abort();
  ASSERT_TRUE(a_->wait_refusals(2));
  EXPECT_TRUE(a_->is_prepared(xa)) << "nothing can roll it back while the server is down";
  EXPECT_TRUE(log_->in_flight(xa.gtrid)) << "recovery in this process leaves it to the re-driver";

  a_->set_down(false);
  ASSERT_TRUE(log_->redriver().wait_idle(kPatience));
  EXPECT_TRUE(a_->is_rolled_back(xa));
  EXPECT_FALSE(log_->in_flight(xa.gtrid));
}

TEST_F(RedriverTest, RecoveryInTheSameProcessLeavesWhatTheRedriverOwnsAlone) {
  tm_.set_options(ManagerOptions{log_, std::nullopt});
  Xid xb;
  ASSERT_EQ(commit_with_b_dying(&xb).pending.size(), 1u);
  Recovery recovery(log_);
  recovery.register_resource(a_);
  recovery.register_resource(b_);
  const auto report = recovery.run();  // b is still down: the branch is the re-driver's
  for (const auto& action : report.actions) {
    EXPECT_NE(action.xid.gtrid, xb.gtrid) << "recovery raced the re-driver: " << report.describe();
  }
  for (const auto& owed : report.owed) {
    EXPECT_NE(owed.xid.gtrid, xb.gtrid) << "owed twice: " << report.describe();
  }
  b_->set_down(false);
  ASSERT_TRUE(log_->redriver().wait_idle(kPatience));
  EXPECT_TRUE(b_->is_committed(xb));
}

TEST_F(RedriverTest, WithoutADecisionLogTheProcessRedriverFinishesIt) {
  tm_.set_options(ManagerOptions{.allow_unlogged_decisions = true});
  Xid xb;
  ASSERT_EQ(commit_with_b_dying(&xb).pending.size(), 1u);
  ASSERT_TRUE(b_->wait_refusals(1));
  b_->set_down(false);
  ASSERT_TRUE(Redriver::process().wait_idle(kPatience));
  EXPECT_TRUE(b_->is_committed(xb));
}

TEST_F(RedriverTest, AHeuristicOutcomeIsRecordedInTheDecisionLog) {
  tm_.set_options(ManagerOptions{log_, std::nullopt});
  b_->set_heuristic(true);
  Xid xb;
  ASSERT_EQ(commit_with_b_dying(&xb).pending.size(), 1u);
  b_->set_down(false);
  ASSERT_TRUE(log_->redriver().wait_idle(kPatience));
  const auto h = log_->heuristics();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].resource, "b");
  EXPECT_EQ(h[0].outcome, "heuristic rollback");
  EXPECT_EQ(log_->redriver().stats().heuristics, 1u);
}

TEST_F(RedriverTest, ShutdownDoesNotWaitForAResourceThatNeverAnswers) {
  auto redriver = std::make_unique<Redriver>(nullptr, RedriverOptions{1ms, 20ms, 50ms});
  Xid xid;
  xid.gtrid = Gtrid(NodeId::random(), 1, 1);
  xid.bqual = "b";
  b_->hang();
  redriver->hand_off(xid.gtrid, /*commit=*/true, {{b_, xid, "test"}});
  ASSERT_TRUE(b_->wait_hanging());
  redriver.reset();  // returns after the grace although the call never came back
  b_->release();     // lets the left-over thread end
}

// Availability: a resource whose calls hang (a server that accepts and never answers) holds up
// only its own branches; another resource's owed branch, handed off after it, is finished
// meanwhile (its locks are not held until the first server answers).
TEST_F(RedriverTest, AResourceWhoseCallsHangDoesNotHoldUpAnotherResourcesBranches) {
  auto redriver = std::make_unique<Redriver>(nullptr, RedriverOptions{1ms, 20ms, 2000ms});
  Xid xa, xb;
  xa.gtrid = Gtrid(NodeId::random(), 1, 3);
  xa.bqual = "a";
  xb.gtrid = Gtrid(NodeId::random(), 1, 4);
  xb.bqual = "b";
  a_->add_prepared(xa);
  b_->add_prepared(xb);
  a_->hang();
  redriver->hand_off(xa.gtrid, /*commit=*/true, {{a_, xa, "test"}});
  ASSERT_TRUE(a_->wait_hanging());
  redriver->hand_off(xb.gtrid, /*commit=*/false, {{b_, xb, "test"}});
  // b's worker rolls b back, then drops the branch from what the re-driver owes: wait for both
  // (b's state alone changes before the re-driver's books do).
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while ((!b_->is_rolled_back(xb) || redriver->owns(xb.gtrid)) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(b_->is_rolled_back(xb)) << "b's rollback waited for a's hanging call";
  EXPECT_TRUE(a_->is_prepared(xa));
  ASSERT_EQ(redriver->owed().size(), 1u);
  EXPECT_EQ(redriver->owed()[0].resource, "a");
  EXPECT_TRUE(redriver->owns(xa.gtrid));
  EXPECT_FALSE(redriver->owns(xb.gtrid));
  a_->release();
  ASSERT_TRUE(redriver->wait_idle(kPatience));
  EXPECT_TRUE(a_->is_committed(xa));
  EXPECT_EQ(redriver->stats().finished, 2u);
}

// A resource that owed nothing any more and is owed again is re-driven again (its worker ended
// with its last branch; the next hand-off starts another).
TEST_F(RedriverTest, AResourceOwedAgainAfterItsBranchesFinishedIsRedrivenAgain) {
  auto redriver = std::make_unique<Redriver>(nullptr, RedriverOptions{1ms, 20ms, 2000ms});
  for (std::uint64_t i = 0; i < 20; ++i) {
    Xid x;
    x.gtrid = Gtrid(NodeId::random(), 1, 10 + i);
    x.bqual = "a";
    a_->add_prepared(x);
    redriver->hand_off(x.gtrid, /*commit=*/i % 2 == 0, {{a_, x, "test"}});
    if (i % 3 == 0) {
      ASSERT_TRUE(redriver->wait_idle(kPatience)) << "branch " << i;
      EXPECT_FALSE(a_->is_prepared(x));
    }
  }
  ASSERT_TRUE(redriver->wait_idle(kPatience));
  EXPECT_EQ(redriver->stats().finished, 20u);
  EXPECT_EQ(redriver->stats().heuristics, 0u);
}

TEST_F(RedriverTest, ABranchOfAResourceThatCannotFinishByIdIsLoggedNotOwed) {
  auto redriver = std::make_unique<Redriver>(nullptr);
  std::vector<std::string> errors;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::error) errors.emplace_back(m);
  });
  Xid xid;
  xid.gtrid = Gtrid(NodeId::random(), 1, 2);
  xid.bqual = "b";
  // Not a RecoverableResource: nothing can finish a branch of it by id.
  class Plain : public ResourceManager {
   public:
    std::string resource_name() const override { return "plain"; }
    void abort(Transaction&) noexcept override {}
    void tpc_begin(Transaction&) override {}
    void commit(Transaction&) override {}
    Vote tpc_vote(Transaction&) override { return Vote::yes; }
    void tpc_finish(Transaction&) override {}
    void tpc_abort(Transaction&) noexcept override {}
  };
  redriver->hand_off(xid.gtrid, true, {{std::make_shared<Plain>(), xid, "test"}});
  set_log_sink([](LogLevel, std::string_view) {});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("not a RecoverableResource"), std::string::npos) << errors[0];
  EXPECT_TRUE(redriver->wait_idle(std::chrono::steady_clock::now()));
}

}  // namespace
}  // namespace xact

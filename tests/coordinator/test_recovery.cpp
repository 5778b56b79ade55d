// Recovery: commit what the log committed, roll back the rest (presumed abort), re-drive
// pending completions, wait for unreadable last resources, skip what is in flight, report
// unreachable resources once, record heuristic outcomes until an operator forgets them.
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

namespace xact {
namespace {

// A recoverable resource whose prepared ids, failures and heuristics the test sets directly.
// Recovery needs no ResourceManager: a name and this interface (a RecoveryTarget).
class ScriptedResource : public RecoverableResource {
 public:
  explicit ScriptedResource(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  std::vector<Xid> recover(const NodeId& node) override {
    if (unreachable) throw ResourceError("connection refused (" + name_ + ")");
    std::vector<Xid> out;
    for (const auto& x : prepared) {
      if (x.gtrid.node() == node) out.push_back(x);
    }
    return out;
  }
  std::vector<Xid> recover_all_nodes() override {
    if (unreachable) throw ResourceError("connection refused (" + name_ + ")");
    return {prepared.begin(), prepared.end()};
  }
  Outcome commit_prepared(const Xid& xid) override {
    if (unreachable) throw ResourceError("connection refused (" + name_ + ")");
    if (heuristic.count(xid)) return Outcome::heuristic_rollback;
    if (!prepared.erase(xid)) return Outcome::unknown_id;
    committed.insert(xid);
    return Outcome::done;
  }
  Outcome rollback_prepared(const Xid& xid) override {
    if (unreachable) throw ResourceError("connection refused (" + name_ + ")");
    if (!prepared.erase(xid)) return Outcome::unknown_id;
    rolled_back.insert(xid);
    return Outcome::done;
  }

  std::set<Xid> prepared, committed, rolled_back, heuristic;
  // Atomic: a test flips it while background recovery calls this resource.
  std::atomic<bool> unreachable{false};

 private:
  std::string name_;
};

class LastResourceStore : public DecisionStore {
 public:
  Lookup lookup_decision(const Gtrid& g) override {
    if (unreadable) return Lookup::unreadable;
    return decisions.count(g) ? Lookup::committed : Lookup::not_found;
  }
  void forget_decision(const Gtrid& g) noexcept override { decisions.erase(g); }
  std::size_t forget_decisions_before(const NodeId& node, std::uint32_t epoch) override {
    pruned.emplace_back(node, epoch);
    return std::erase_if(decisions,
                         [&](const Gtrid& g) { return g.node() == node && g.epoch() < epoch; });
  }
  std::set<Gtrid> decisions;
  std::vector<std::pair<NodeId, std::uint32_t>> pruned;
  bool unreadable = false;
};

RecoveryTarget target(const std::shared_ptr<ScriptedResource>& r) {
  return RecoveryTarget{r->name(), r, nullptr};
}
RecoveryTarget target(const std::shared_ptr<LastResourceStore>& s) {
  return RecoveryTarget{"last", nullptr, s};
}

Xid xid_of(const Gtrid& g, const std::string& bqual) {
  Xid x;
  x.gtrid = g;
  x.bqual = bqual;
  return x;
}

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    log_.reset();
    log_ = DecisionLog::open(env_, "/log");
    recovery_ = std::make_unique<Recovery>(log_);
    recovery_->register_resource(target(a_));
    recovery_->register_resource(target(b_));
  }
  void commit_record(const Gtrid& g) {
    log_->log_commit(CommitRecord{g, {{"a", "a"}, {"b", "b"}}, 0});
  }

  io::MemEnv env_;
  std::shared_ptr<DecisionLog> log_;
  std::unique_ptr<Recovery> recovery_;
  std::shared_ptr<ScriptedResource> a_ = std::make_shared<ScriptedResource>("a");
  std::shared_ptr<ScriptedResource> b_ = std::make_shared<ScriptedResource>("b");
};

TEST_F(RecoveryTest, CommitsIdsWithACommitRecordAndRollsBackTheRest) {
  const Gtrid committed = log_->new_gtrid(), not_committed = log_->new_gtrid();
  for (const auto& g : {committed, not_committed}) {
    a_->prepared.insert(xid_of(g, "a"));
    b_->prepared.insert(xid_of(g, "b"));
    log_->release(g);
  }
  commit_record(committed);
  const auto report = recovery_->run();
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_TRUE(a_->committed.count(xid_of(committed, "a")));
  EXPECT_TRUE(b_->committed.count(xid_of(committed, "b")));
  EXPECT_TRUE(a_->rolled_back.count(xid_of(not_committed, "a")));
  EXPECT_TRUE(b_->rolled_back.count(xid_of(not_committed, "b")));
  EXPECT_TRUE(a_->prepared.empty());
  EXPECT_TRUE(log_->unfinished().empty()) << "the done record is written once all finished";
}

TEST_F(RecoveryTest, ARedriveThatFindsNoSuchIdCountsAsDoneAndSaysItIsNormal) {
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  commit_record(g);
  b_->prepared.insert(xid_of(g, "b"));  // a already finished before the crash
  const auto report = recovery_->run();
  EXPECT_TRUE(report.complete());
  const auto it = std::find_if(report.actions.begin(), report.actions.end(), [](const auto& a) {
    return a.kind == RecoveryAction::Kind::already_finished && a.resource == "a";
  });
  ASSERT_NE(it, report.actions.end()) << report.describe();
  EXPECT_NE(it->detail.find("counted as done"), std::string::npos);
  // What happens after every crash must not read like an anomaly.
  EXPECT_NE(it->detail.find("normal"), std::string::npos) << it->detail;
  EXPECT_EQ(report.describe().find("administrator"), std::string::npos) << report.describe();
  EXPECT_TRUE(log_->unfinished().empty());
}

TEST_F(RecoveryTest, AnIdThatVanishesBetweenListingAndDecidingKeepsTheAdministratorCaveat) {
  // A resource that lists an id as prepared and then no longer holds it: someone else finished
  // it meanwhile, which recovery cannot tell from an administrator's hand.
  class Vanishing : public ScriptedResource {
   public:
    using ScriptedResource::ScriptedResource;
    std::vector<Xid> recover(const NodeId& node) override {
      auto out = ScriptedResource::recover(node);
      prepared.clear();
      return out;
    }
  };
  auto v = std::make_shared<Vanishing>("v");
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  v->prepared.insert(xid_of(g, "v"));
  recovery_->register_resource(target(v));
  const auto report = recovery_->run();
  const auto it = std::find_if(report.actions.begin(), report.actions.end(), [](const auto& a) {
    return a.kind == RecoveryAction::Kind::already_finished && a.resource == "v";
  });
  ASSERT_NE(it, report.actions.end()) << report.describe();
  EXPECT_NE(it->detail.find("administrator"), std::string::npos) << it->detail;
}

TEST_F(RecoveryTest, TheFirstCompleteRunDropsTheDecisionMarkersOfEarlierRuns) {
  auto last = std::make_shared<LastResourceStore>();
  const Gtrid old_run = log_->new_gtrid();  // an epoch that has ended after the reopen below
  log_->release(old_run);
  last->decisions.insert(old_run);
  recovery_.reset();
  open();
  recovery_->register_resource(target(last));
  const Gtrid current = log_->new_gtrid();
  log_->release(current);
  last->decisions.insert(current);

  b_->unreachable = true;  // an incomplete run must not drop anything
  EXPECT_FALSE(recovery_->run().complete());
  EXPECT_TRUE(last->pruned.empty());
  EXPECT_EQ(last->decisions.count(old_run), 1u);

  b_->unreachable = false;
  EXPECT_TRUE(recovery_->run().complete());
  ASSERT_EQ(last->pruned.size(), 1u);
  EXPECT_EQ(last->pruned[0].first, log_->node_id());
  EXPECT_EQ(last->pruned[0].second, log_->epoch());
  EXPECT_EQ(last->decisions.count(old_run), 0u) << "the library pruned it, not the application";
  EXPECT_EQ(last->decisions.count(current), 1u) << "the current epoch's markers stay";
  recovery_->run();
  EXPECT_EQ(last->pruned.size(), 1u) << "once per process";
}

TEST_F(RecoveryTest, IdsOfAnotherNodeAreNeverTouched) {
  const Xid foreign = xid_of(Gtrid(NodeId::random(), 1, 1), "a");
  a_->prepared.insert(foreign);
  // A resource that (wrongly) lists every node's ids still only gets its own decided.
  class Leaky : public ScriptedResource {
   public:
    using ScriptedResource::ScriptedResource;
    std::vector<Xid> recover(const NodeId&) override { return {prepared.begin(), prepared.end()}; }
  };
  auto leaky = std::make_shared<Leaky>("c");
  leaky->prepared.insert(xid_of(foreign.gtrid, "c"));
  recovery_->register_resource(target(leaky));
  const auto report = recovery_->run();
  EXPECT_TRUE(report.actions.empty()) << report.describe();
  EXPECT_EQ(a_->prepared.size(), 1u);
  EXPECT_EQ(leaky->prepared.size(), 1u);
}

TEST_F(RecoveryTest, ForeignPreparedIdsAreListedAndALostNodesAreRolledBackOnlyOnRequest) {
  const NodeId lost = NodeId::random();
  const NodeId alive = NodeId::random();
  const Xid of_lost = xid_of(Gtrid(lost, 3, 1), "a");
  const Xid of_alive = xid_of(Gtrid(alive, 1, 1), "b");
  const Gtrid mine = log_->new_gtrid();
  log_->release(mine);
  a_->prepared.insert(of_lost);
  b_->prepared.insert(of_alive);
  a_->prepared.insert(xid_of(mine, "a"));

  std::vector<OwedWork> unreadable;
  const auto foreign = recovery_->list_foreign(&unreadable);
  EXPECT_TRUE(unreadable.empty());
  ASSERT_EQ(foreign.size(), 2u) << "this node's own id is not foreign";
  EXPECT_TRUE(a_->rolled_back.empty() && b_->rolled_back.empty()) << "listing changes nothing";

  const auto dry = recovery_->roll_back_lost_node(lost, /*dry_run=*/true);
  EXPECT_EQ(dry.actions.size(), 1u) << dry.describe();
  EXPECT_TRUE(a_->prepared.count(of_lost));
  EXPECT_TRUE(log_->heuristics().empty());

  const auto report = recovery_->roll_back_lost_node(lost);
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_TRUE(a_->rolled_back.count(of_lost));
  EXPECT_TRUE(b_->prepared.count(of_alive)) << "another node's branch was touched";
  EXPECT_TRUE(a_->prepared.count(xid_of(mine, "a"))) << "this node's branch was touched";
  // Recorded as a heuristic decision, durably.
  recovery_.reset();
  open();
  const auto h = log_->heuristics();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].gtrid, of_lost.gtrid);
  EXPECT_EQ(h[0].outcome, "rolled back for a lost node");
  EXPECT_NE(h[0].detail.find(lost.to_hex()), std::string::npos);
  EXPECT_THROW(recovery_->roll_back_lost_node(log_->node_id()), UsageError);
}

TEST_F(RecoveryTest, AResourceThatCannotListOtherNodesIsReportedNotReadAsNone) {
  class Plain : public ScriptedResource {
   public:
    using ScriptedResource::ScriptedResource;
    std::vector<Xid> recover_all_nodes() override {
      return RecoverableResource::recover_all_nodes();  // the default
    }
  };
  recovery_->register_resource(target(std::make_shared<Plain>("c")));
  std::vector<OwedWork> unreadable;
  recovery_->list_foreign(&unreadable);
  ASSERT_EQ(unreadable.size(), 1u);
  EXPECT_EQ(unreadable[0].resource, "c");
  EXPECT_NE(unreadable[0].reason.find("cannot list"), std::string::npos);
}

TEST(RecoveryAfterToleratedDamage, PresumedAbortThatMayHaveBeenALostCommitIsRecordedAsHeuristic) {
  io::MemEnv env;
  auto a = std::make_shared<ScriptedResource>("a");
  Gtrid lost, later;
  {
    auto log = DecisionLog::open(env, "/log");
    lost = log->new_gtrid();
    log->log_commit(CommitRecord{lost, {{"a", "a"}}, 0});
  }
  a->prepared.insert(xid_of(lost, "a"));
  // The segment goes missing: its commit record with it.
  for (const auto& name : env.list_dir("/log")) {
    if (name.starts_with("decisions-")) env.remove_file("/log/" + name);
  }
  EXPECT_THROW(DecisionLog::open(env, "/log"), StorageError);
  DecisionLogOptions options;
  options.tolerate_corruption = true;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log", options);
  later = log->new_gtrid();
  log->release(later);
  a->prepared.insert(xid_of(later, "a"));  // of an epoch after the damage: decided plainly
  Recovery recovery(log);
  recovery.register_resource(target(a));

  const auto dry = recovery.run(/*dry_run=*/true);
  EXPECT_NE(dry.describe().find("recorded as a heuristic outcome"), std::string::npos)
      << dry.describe();

  const auto report = recovery.run();
  EXPECT_TRUE(a->rolled_back.count(xid_of(lost, "a")));
  EXPECT_TRUE(a->rolled_back.count(xid_of(later, "a")));
  const auto h = log->heuristics();
  ASSERT_EQ(h.size(), 1u) << report.describe();
  EXPECT_EQ(h[0].gtrid, lost);
  EXPECT_EQ(h[0].outcome, "presumed abort after log damage");
  EXPECT_NE(h[0].detail.find("is missing"), std::string::npos) << h[0].detail;
}

TEST_F(RecoveryTest, OnDemandRecoverySkipsTransactionsInFlightInThisProcess) {
  ExplicitTransactionManager tm(ManagerOptions{log_, std::nullopt});
  auto& txn = tm.begin();
  const Gtrid g = txn.gtrid();
  a_->prepared.insert(xid_of(g, "a"));  // prepared, its decision not yet made
  EXPECT_TRUE(log_->in_flight(g));
  recovery_->run();
  EXPECT_EQ(a_->prepared.size(), 1u) << "a running transaction's branch was decided";
  tm.abort();
  EXPECT_FALSE(log_->in_flight(g));
  recovery_->run();
  EXPECT_TRUE(a_->rolled_back.count(xid_of(g, "a")));
}

TEST_F(RecoveryTest, TheLastResourceDecidesAndAnUnreadableOneMakesIdsWait) {
  auto last = std::make_shared<LastResourceStore>();
  recovery_->register_resource(target(last));
  const Gtrid decided = log_->new_gtrid(), undecided = log_->new_gtrid();
  for (const auto& g : {decided, undecided}) {
    a_->prepared.insert(xid_of(g, "a"));
    log_->release(g);
  }
  last->decisions.insert(decided);

  last->unreadable = true;
  auto report = recovery_->run();
  EXPECT_EQ(a_->prepared.size(), 2u) << "never presume abort while the decision may exist";
  EXPECT_EQ(report.owed.size(), 2u) << report.describe();

  last->unreadable = false;
  report = recovery_->run();
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_TRUE(a_->committed.count(xid_of(decided, "a")));
  EXPECT_TRUE(a_->rolled_back.count(xid_of(undecided, "a")));
  EXPECT_TRUE(last->decisions.empty()) << "the marker is forgotten once everything is decided";
}

TEST_F(RecoveryTest, AnUnreachableResourceIsReportedOnceAndItsWorkOwed) {
  std::vector<std::string> warnings;
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::warning && m.find("unreachable") != std::string_view::npos &&
        m.find("recovery: resource") != std::string_view::npos) {
      warnings.emplace_back(m);
    }
  });
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  commit_record(g);
  a_->prepared.insert(xid_of(g, "a"));
  b_->prepared.insert(xid_of(g, "b"));
  b_->unreachable = true;
  for (int i = 0; i < 3; ++i) {
    const auto report = recovery_->run();
    EXPECT_FALSE(report.complete());
    EXPECT_FALSE(report.owed.empty());
  }
  EXPECT_EQ(warnings.size(), 1u) << "one report, not one per attempt";
  EXPECT_TRUE(log_->is_committed(g)) << "still owed: no done record";
  b_->unreachable = false;
  EXPECT_TRUE(recovery_->run().complete());
  set_log_sink(nullptr);
  EXPECT_TRUE(b_->committed.count(xid_of(g, "b")));
  EXPECT_FALSE(log_->is_committed(g));
}

TEST_F(RecoveryTest, ACommittedTransactionWhoseResourceIsNotRegisteredIsOwed) {
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  log_->log_commit(CommitRecord{g, {{"a", "a"}, {"gone", "gone"}}, 0});
  a_->prepared.insert(xid_of(g, "a"));
  const auto report = recovery_->run();
  ASSERT_EQ(report.owed.size(), 1u) << report.describe();
  EXPECT_EQ(report.owed[0].resource, "gone");
  EXPECT_NE(report.owed[0].reason.find("register"), std::string::npos);
  EXPECT_TRUE(log_->is_committed(g));
}

TEST_F(RecoveryTest, HeuristicOutcomesAreRecordedDurablyUntilAnOperatorForgetsThem) {
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  commit_record(g);
  a_->prepared.insert(xid_of(g, "a"));
  a_->heuristic.insert(xid_of(g, "a"));  // an administrator rolled it back
  b_->prepared.insert(xid_of(g, "b"));
  const auto before = counters().heuristics;
  const auto report = recovery_->run();
  EXPECT_EQ(counters().heuristics, before + 1);
  ASSERT_EQ(log_->heuristics().size(), 1u) << report.describe();
  EXPECT_EQ(log_->heuristics()[0].resource, "a");
  EXPECT_EQ(log_->heuristics()[0].outcome, "heuristic rollback");

  // Durable: across a checkpoint and a reopen.
  log_->checkpoint();
  recovery_.reset();
  open();
  ASSERT_EQ(log_->heuristics().size(), 1u);
  EXPECT_EQ(DecisionLog::inspect(env_, "/log").heuristics.size(), 1u);
  EXPECT_FALSE(log_->forget_heuristic(g, "b"));
  EXPECT_TRUE(log_->forget_heuristic(g, "a"));
  EXPECT_TRUE(log_->heuristics().empty());
  recovery_.reset();
  open();
  EXPECT_TRUE(log_->heuristics().empty()) << "forgetting is durable too";
}

TEST_F(RecoveryTest, ADryRunReportsWhatItWouldDoAndChangesNothing) {
  const Gtrid committed = log_->new_gtrid(), not_committed = log_->new_gtrid();
  for (const auto& g : {committed, not_committed}) {
    a_->prepared.insert(xid_of(g, "a"));
    log_->release(g);
  }
  commit_record(committed);
  const auto report = recovery_->run(/*dry_run=*/true);
  EXPECT_TRUE(report.dry_run);
  EXPECT_GE(report.actions.size(), 2u) << report.describe();
  EXPECT_EQ(a_->prepared.size(), 2u);
  EXPECT_TRUE(a_->committed.empty());
  EXPECT_TRUE(log_->is_committed(committed));
  EXPECT_NE(report.describe().find("would"), std::string::npos);
}

TEST_F(RecoveryTest, BackgroundRecoveryRetriesOwedWorkUntilDone) {
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  commit_record(g);
  b_->prepared.insert(xid_of(g, "b"));
  b_->unreachable = true;
  set_log_sink([](LogLevel, std::string_view) {});
  EXPECT_FALSE(recovery_->run().complete());
  recovery_->start_background(std::chrono::milliseconds(5));
  b_->unreachable = false;
  // A generous bound only against a hang: a loaded (sanitizer) run may take many intervals.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!recovery_->last_report().complete() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  recovery_->stop_background();
  set_log_sink(nullptr);
  EXPECT_TRUE(recovery_->last_report().complete());
  EXPECT_TRUE(b_->committed.count(xid_of(g, "b")));
}

TEST(RecoveryAfterLogFailure, RefusesToPresumeAbortWhileTheLogIsStopped) {
  io::FaultInjectionEnv env;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
  Recovery recovery(log);
  auto a = std::make_shared<ScriptedResource>("a");
  recovery.register_resource(target(a));
  const Gtrid g = log->new_gtrid();
  log->release(g);
  a->prepared.insert(xid_of(g, "a"));
  env.fail_nth_sync(1);
  EXPECT_THROW(log->log_commit(CommitRecord{g, {{"a", "a"}}, 0}), LogFailedError);
  // The record may be on disk after all: deciding now could roll back a commit.
  EXPECT_THROW(recovery.run(), LogFailedError);
  EXPECT_EQ(a->prepared.size(), 1u);
}

TEST(RecoveryRegistration, AResourceWithNothingToRecoverIsRefused) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
  Recovery recovery(log);
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
  EXPECT_THROW(recovery.register_resource(std::make_shared<Plain>()), UsageError);
}

TEST_F(RecoveryTest, ADecisionStoreThatThrowsIsReadAsUnreadableAndTheBranchWaits) {
  class Throwing : public LastResourceStore {
   public:
    Lookup lookup_decision(const Gtrid&) override { throw ResourceError("store gone"); }
  };
  auto store = std::make_shared<Throwing>();
  recovery_->register_resource(RecoveryTarget{"last", nullptr, store});
  const Gtrid g = log_->new_gtrid();
  log_->release(g);
  a_->prepared.insert(xid_of(g, "a"));
  const auto report = recovery_->run();
  EXPECT_FALSE(report.complete()) << report.describe();
  EXPECT_EQ(a_->prepared.size(), 1u) << "presumed aborted although the decision may be there";
}

TEST(RecoveryRegistration, ATargetNeedsABranchNameAndSomethingToAsk) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
  Recovery recovery(log);
  EXPECT_THROW(recovery.register_resource(RecoveryTarget{"a", nullptr, nullptr}), UsageError);
  EXPECT_THROW(recovery.register_resource(
                   RecoveryTarget{"", std::make_shared<ScriptedResource>(""), nullptr}),
               UsageError);
  EXPECT_THROW(recovery.register_resource(std::shared_ptr<ResourceManager>()), UsageError);
}

TEST(RecoveryRegistration, AFullResourceManagerIsStillRegisteredByItsNameAndCapabilities) {
  // The overload taking a ResourceManager builds the target from resource_name(),
  // recoverable() and decision_store(), and keeps the resource manager alive itself.
  class FullRm : public ResourceManager, public ScriptedResource, public LastResourceStore {
   public:
    FullRm() : ScriptedResource("full") {}
    std::string resource_name() const override { return "full"; }
    void abort(Transaction&) noexcept override {}
    void tpc_begin(Transaction&) override {}
    void commit(Transaction&) override {}
    Vote tpc_vote(Transaction&) override { return Vote::yes; }
    void tpc_finish(Transaction&) override {}
    void tpc_abort(Transaction&) noexcept override {}
    RecoverableResource* recoverable() noexcept override { return this; }
    DecisionStore* decision_store() noexcept override { return this; }
  };
  io::MemEnv env;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
  Recovery recovery(log);
  const Gtrid decided = log->new_gtrid(), undecided = log->new_gtrid();
  std::weak_ptr<FullRm> weak;
  {
    auto rm = std::make_shared<FullRm>();
    weak = rm;
    for (const auto& g : {decided, undecided}) {
      rm->prepared.insert(xid_of(g, "full"));
      log->release(g);
    }
    rm->decisions.insert(decided);
    const RecoveryTarget t = RecoveryTarget::of(rm);
    EXPECT_EQ(t.name, "full");
    EXPECT_EQ(t.recoverable.get(), static_cast<RecoverableResource*>(rm.get()));
    EXPECT_EQ(t.decision_store.get(), static_cast<DecisionStore*>(rm.get()));
    recovery.register_resource(rm);
  }
  ASSERT_FALSE(weak.expired()) << "recovery must keep the registered resource manager alive";
  const auto report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  auto rm = weak.lock();
  EXPECT_TRUE(rm->committed.count(xid_of(decided, "full"))) << report.describe();
  EXPECT_TRUE(rm->rolled_back.count(xid_of(undecided, "full"))) << report.describe();
}

TEST(DecisionLogInspect, ReadsALogInUseWithoutItsLock) {
  io::MemEnv env;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(env, "/log");
  const Gtrid g = log->new_gtrid();
  log->log_commit(CommitRecord{g, {{"a", "a"}}, 0});
  const auto seen = DecisionLog::inspect(env, "/log");
  EXPECT_EQ(seen.node, log->node_id());
  ASSERT_EQ(seen.unfinished.size(), 1u);
  EXPECT_EQ(seen.unfinished[0].gtrid, g);
  EXPECT_THROW(DecisionLog::inspect(env, "/nothing"), StorageError);
}

}  // namespace
}  // namespace xact

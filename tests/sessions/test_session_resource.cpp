// SessionResource: fenced writes through to the store, before-image reads, undo newest first,
// heuristics instead of overwrites, expiry, savepoints, retries, recovery, many threads.
#include <xact/sessions/memory_session_store.hpp>
#include <xact/sessions/session_resource.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/redriver.hpp>
#include <xact/retry.hpp>
#include <xact/testing/kv_resource.hpp>
#include <xact/transaction.hpp>

namespace xact::sessions {
namespace {

class SessionResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = DecisionLog::open(env_, "/log", small_log());
    MemorySessionStoreOptions so;
    so.idle_timeout = std::chrono::seconds(60);
    so.clock = [this] { return wall_clock_us() + skew_us_.load(); };
    store_ = std::make_shared<MemorySessionStore>(so);
    rm_ = make_rm();
    sid_ = new_session_id();
  }
  static DecisionLogOptions small_log() {
    DecisionLogOptions o;
    o.segment_bytes = 1 << 16;
    o.preallocate = false;
    return o;
  }
  std::shared_ptr<SessionResource> make_rm(
      std::chrono::microseconds lease = std::chrono::minutes(10)) {
    SessionResourceOptions o;
    o.decision_log = log_;
    o.fence_lease = lease;
    return SessionResource::create(store_, o);
  }
  ManagerOptions mopts() {
    ManagerOptions o;
    o.decision_log = log_;
    return o;
  }

  io::MemEnv env_;
  std::shared_ptr<DecisionLog> log_;
  std::atomic<std::int64_t> skew_us_{0};
  std::shared_ptr<MemorySessionStore> store_;
  std::shared_ptr<SessionResource> rm_;
  std::string sid_;
};

TEST_F(SessionResourceTest, CommittedWriteIsAPlainValueAfterwards) {
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  // Writes go through at once: a request outside xact sees it.
  EXPECT_EQ(store_->get(sid_, "cart"), "book");
  EXPECT_TRUE(store_->read_entry(sid_, "cart")->fence.has_value());
  txn.commit();
  auto e = store_->read_entry(sid_, "cart");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value, "book");
  EXPECT_EQ(e->fence, std::nullopt);
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(SessionResourceTest, AbortLeavesNothingOfTheAttempt) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  rm_->set(txn, sid_, "user", "ann");
  rm_->erase(txn, sid_, "cart");
  EXPECT_EQ(rm_->get(txn, sid_, "cart"), std::nullopt);
  txn.abort();
  EXPECT_EQ(store_->get_all(sid_), (std::map<std::string, std::string>{{"cart", "pen"}}));
  EXPECT_EQ(store_->read_entry(sid_, "cart")->version, 1u);
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
  EXPECT_TRUE(log_->heuristics().empty());
}

TEST_F(SessionResourceTest, SecondTransactionWritingAFencedValueConflictsAtOnce) {
  ExplicitTransactionManager tm1(mopts()), tm2(mopts());
  Transaction& t1 = tm1.begin();
  Transaction& t2 = tm2.begin();
  rm_->set(t1, sid_, "cart", "book");
  EXPECT_THROW(rm_->set(t2, sid_, "cart", "lamp"), ConflictError);
  EXPECT_TRUE(t2.is_retryable(std::make_exception_ptr(ConflictError("x"))));
  t2.abort();
  t1.commit();
  EXPECT_EQ(store_->get(sid_, "cart"), "book");
}

TEST_F(SessionResourceTest, ReaderOfAFencedValueGetsTheBeforeImage) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm1(mopts()), tm2(mopts());
  Transaction& t1 = tm1.begin();
  rm_->set(t1, sid_, "cart", "book");
  rm_->set(t1, sid_, "new", "x");
  Transaction& t2 = tm2.begin();
  EXPECT_EQ(rm_->get(t2, sid_, "cart"), "pen");
  EXPECT_EQ(rm_->get(t2, sid_, "new"), std::nullopt);
  EXPECT_EQ(rm_->get_all(t2, sid_), (std::map<std::string, std::string>{{"cart", "pen"}}));
  EXPECT_EQ(rm_->get(t1, sid_, "cart"), "book");  // its own write
  t2.abort();
  t1.abort();
}

TEST_F(SessionResourceTest, WriteAfterReadIsACompareAndSetAgainstTheReadVersion) {
  store_->set(sid_, "n", "1");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  EXPECT_EQ(rm_->get(txn, sid_, "n"), "1");
  store_->set(sid_, "n", "5");  // someone else, after the read
  EXPECT_THROW(rm_->set(txn, sid_, "n", "2"), ConflictError);
  txn.abort();
  EXPECT_EQ(store_->get(sid_, "n"), "5");
}

TEST_F(SessionResourceTest, UndoRunsNewestFirstThroughRepeatedWrites) {
  store_->set(sid_, "k", "v0");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "k", "v1");
  rm_->set(txn, sid_, "k", "v2");
  rm_->erase(txn, sid_, "k");
  rm_->set(txn, sid_, "k", "v3");
  EXPECT_EQ(store_->read_entry(sid_, "k")->fence->before_value, "v0");
  txn.abort();
  auto e = store_->read_entry(sid_, "k");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value, "v0");
  EXPECT_EQ(e->version, 1u);
  EXPECT_EQ(e->fence, std::nullopt);
}

TEST_F(SessionResourceTest, OutsideWriterBeforeAbortIsAHeuristicNotAnOverwrite) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  rm_->set(txn, sid_, "user", "ann");
  const Gtrid gtrid = txn.gtrid();
  store_->set(sid_, "cart", "outside");  // a request outside xact
  txn.abort();
  EXPECT_EQ(store_->get(sid_, "cart"), "outside");     // never overwritten
  EXPECT_EQ(store_->get(sid_, "user"), std::nullopt);  // the rest was undone
  auto hs = log_->heuristics();
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].gtrid, gtrid);
  EXPECT_EQ(hs[0].resource, "sessions");
  EXPECT_EQ(hs[0].outcome, "heuristic mixed");
  EXPECT_NE(hs[0].detail.find("a writer outside xact"), std::string::npos) << hs[0].detail;
  EXPECT_EQ(hs[0].detail.find(sid_), std::string::npos) << "the whole session id leaked";
  // What `xact heuristics list` reads (DecisionLog::inspect, without the lock) shows it too.
  const auto inspected = DecisionLog::inspect(env_, "/log").heuristics;
  ASSERT_EQ(inspected.size(), 1u);
  EXPECT_EQ(inspected[0].gtrid, gtrid);
}

TEST_F(SessionResourceTest, ValueAlreadyEqualToTheBeforeImageCountsAsUndone) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  store_->set(sid_, "cart", "pen");  // someone put the old value back
  txn.abort();
  EXPECT_EQ(store_->get(sid_, "cart"), "pen");
  EXPECT_TRUE(log_->heuristics().empty());
}

TEST_F(SessionResourceTest, UndoNeverRevivesAnExpiredSession) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  skew_us_ += std::chrono::microseconds(std::chrono::seconds(61)).count();
  txn.abort();
  EXPECT_TRUE(store_->get_all(sid_).empty());
  EXPECT_TRUE(store_->read_session(sid_).empty());
  EXPECT_TRUE(log_->heuristics().empty());
}

TEST_F(SessionResourceTest, UndoNeverRevivesAnInvalidatedSession) {
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  store_->invalidate(sid_);  // the user logged out meanwhile
  txn.abort();
  EXPECT_TRUE(store_->get_all(sid_).empty());
  EXPECT_TRUE(log_->heuristics().empty());
}

TEST_F(SessionResourceTest, CommittedWriteRefreshesTheExpiryAnUnfinishedOneDoesNot) {
  store_->set(sid_, "a", "1");
  const std::int64_t before = store_->read_entry(sid_, "a")->expires_us;
  skew_us_ += 30'000'000;
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "b", "2");
  EXPECT_EQ(store_->read_entry(sid_, "a")->expires_us, before);
  txn.commit();
  EXPECT_GE(store_->read_entry(sid_, "a")->expires_us, before + 29'000'000);
}

TEST_F(SessionResourceTest, SavepointRollbackRestoresTheValueAtTheSavepoint) {
  store_->set(sid_, "k", "v0");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "k", "v1");
  Savepoint sp = txn.savepoint();
  rm_->set(txn, sid_, "k", "v2");
  rm_->set(txn, sid_, "j", "new");
  sp.rollback();
  EXPECT_EQ(store_->get(sid_, "k"), "v1");
  EXPECT_EQ(store_->get(sid_, "j"), std::nullopt);
  EXPECT_EQ(rm_->get(txn, sid_, "k"), "v1");
  // Still fenced by the transaction, with the original before-image.
  EXPECT_EQ(store_->read_entry(sid_, "k")->fence->before_value, "v0");
  rm_->set(txn, sid_, "k", "v3");
  txn.commit();
  EXPECT_EQ(store_->get(sid_, "k"), "v3");
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(SessionResourceTest, OnlyReadingVotesReadOnly) {
  store_->set(sid_, "k", "v");
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  EXPECT_EQ(rm_->get(txn, sid_, "k"), "v");
  EXPECT_FALSE(txn.has_joined(*rm_));
  rm_->erase(txn, sid_, "absent");  // changes nothing
  EXPECT_EQ(rm_->tpc_vote(txn), Vote::read_only);
  txn.abort();
}

TEST_F(SessionResourceTest, ConflictRetryLeavesExactlyTheRetrysEffects) {
  auto kv = testing::KvStore::in_memory();
  auto kvrm = std::make_shared<testing::KvResource>("kv", kv);
  store_->set(sid_, "visits", "0");
  ExplicitTransactionManager tm(mopts());
  int attempt = 0;
  RetryPolicy policy;
  policy.attempts = 3;
  policy.sleep = [](std::chrono::microseconds) {};
  xact::run(
      tm,
      [&](Transaction& txn) {
        ++attempt;
        const int n = std::stoi(*rm_->get(txn, sid_, "visits"));
        rm_->set(txn, sid_, "visits", std::to_string(n + 1));
        rm_->set(txn, sid_, "attempt-" + std::to_string(attempt), "ran");
        kvrm->put(txn, "order", "attempt " + std::to_string(attempt));
        if (attempt == 1) throw ConflictError("simulated conflict from another participant");
      },
      policy);
  EXPECT_EQ(attempt, 2);
  EXPECT_EQ(store_->get_all(sid_),
            (std::map<std::string, std::string>{{"attempt-2", "ran"}, {"visits", "1"}}));
  EXPECT_EQ(kv->get("order"), "attempt 2");
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(SessionResourceTest, TwoVoterCommitWithAKvParticipant) {
  auto kv = testing::KvStore::in_memory();
  auto kvrm = std::make_shared<testing::KvResource>("kv", kv);
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm_->set(txn, sid_, "cart", "book");
  kvrm->put(txn, "order", "1");
  CommitOutcome out = txn.commit();
  EXPECT_TRUE(out.decision_logged);
  EXPECT_EQ(store_->get(sid_, "cart"), "book");
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(SessionResourceTest, FenceOlderThanTheLeaseIsBrokenWithAHeuristicRecord) {
  auto rm = make_rm(std::chrono::milliseconds(1));
  const Gtrid dead = log_->new_gtrid();
  log_->release(dead);
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "k", std::nullopt,
      Entry{"stuck", 1, 0, Fence{dead, 1, std::nullopt, 0, wall_clock_us() - 10'000}}));
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm->set(txn, sid_, "k", "mine");
  txn.commit();
  EXPECT_EQ(store_->get(sid_, "k"), "mine");
  auto hs = log_->heuristics();
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].gtrid, dead);
  EXPECT_NE(hs[0].detail.find("broken"), std::string::npos);
}

TEST_F(SessionResourceTest, RecoveryCompensatesADeadTransactionsFencesAndCommitsLoggedOnes) {
  store_->set(sid_, "a", "a0");
  store_->set(sid_, "b", "b0");
  const Gtrid aborted = log_->new_gtrid();
  const Gtrid committed = log_->new_gtrid();
  // What two transactions of a process that died left behind.
  auto a0 = store_->read_entry(sid_, "a");
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "a", a0, Entry{"a1", 2, 0, Fence{aborted, 2, "a0", 1, wall_clock_us()}}));
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "new", std::nullopt,
      Entry{"n1", 1, 0, Fence{aborted, 1, std::nullopt, 0, wall_clock_us()}}));
  auto b0 = store_->read_entry(sid_, "b");
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "b", b0, Entry{"b1", 2, 0, Fence{committed, 2, "b0", 1, wall_clock_us()}}));
  log_->log_commit(CommitRecord{committed, {{"sessions", "sessions"}, {"kv", "kv"}}, 0});
  log_->release(aborted);
  log_->release(committed);
  EXPECT_EQ(rm_->recover(aborted.node()).size(), 2u);

  Recovery recovery(log_);
  recovery.register_resource(rm_);
  RecoveryReport report = recovery.run();
  EXPECT_EQ(store_->get_all(sid_), (std::map<std::string, std::string>{{"a", "a0"}, {"b", "b1"}}));
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
  EXPECT_TRUE(log_->heuristics().empty());
}

TEST_F(SessionResourceTest, RecoveryRecordsAnOutsideWriteAsAHeuristic) {
  store_->set(sid_, "a", "a0");
  const Gtrid dead = log_->new_gtrid();
  auto a0 = store_->read_entry(sid_, "a");
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "a", a0, Entry{"a1", 2, 0, Fence{dead, 2, "a0", 1, wall_clock_us()}}));
  log_->release(dead);
  // An outside writer changes the value but (being a plain store) would drop the fence; keep
  // one fenced value elsewhere so the transaction is still listed.
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "z", std::nullopt,
      Entry{"z1", 1, 0, Fence{dead, 1, std::nullopt, 0, wall_clock_us()}}));
  auto cur = store_->read_entry(sid_, "z");
  Entry changed = *cur;
  changed.value = "outside";
  changed.version = 2;
  ASSERT_TRUE(store_->compare_and_swap(sid_, "z", cur, changed));  // still fenced, other value
  EXPECT_EQ(rm_->rollback_prepared(Xid{Xid::kFormatId, dead, "sessions"}),
            RecoverableResource::Outcome::done);
  EXPECT_EQ(store_->get(sid_, "a"), "a0");
  EXPECT_EQ(store_->get(sid_, "z"), "outside");
  ASSERT_EQ(log_->heuristics().size(), 1u);
  // Nothing stays fenced: recovery does not find the transaction again.
  EXPECT_TRUE(rm_->recover(dead.node()).empty());
}

// A store that fails every compensation while `fail` is set.
struct FailingStore : MemorySessionStore {
  std::atomic<bool> fail{false};
  std::optional<Entry> read_entry(const std::string& s, const std::string& n) override {
    if (fail) throw ResourceError("store unreachable");
    return MemorySessionStore::read_entry(s, n);
  }
};

TEST_F(SessionResourceTest, AbortNeverThrowsWhenTheStoreFails) {
  auto failing = std::make_shared<FailingStore>();
  SessionResourceOptions o;
  o.decision_log = log_;
  auto rm = SessionResource::create(failing, o);
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm->set(txn, sid_, "k", "v");
  const Gtrid g = txn.gtrid();
  failing->fail = true;
  EXPECT_NO_THROW(rm->tpc_abort(txn));
  EXPECT_NO_THROW(txn.abort());
  failing->fail = false;
  EXPECT_EQ(failing->list_fenced_by(g).size(), 1u);
  EXPECT_EQ(rm->rollback_prepared(Xid{Xid::kFormatId, g, "sessions"}),
            RecoverableResource::Outcome::done);
  EXPECT_EQ(failing->get(sid_, "k"), std::nullopt);
}

// Rule: an abort that cannot compensate (the store out of reach) is finished by the re-driver as
// soon as the store answers again: the aborted value does not stay in the store, fenced, until a
// restart's recovery or the fence's lease (the seed's "vanished at some apparently random time").
TEST_F(SessionResourceTest, AnAbortThatCannotCompensateIsFinishedByTheRedriverWhenTheStoreAnswers) {
  auto failing = std::make_shared<FailingStore>();
  SessionResourceOptions o;
  o.decision_log = log_;
  auto rm = SessionResource::create(failing, o);
  ExplicitTransactionManager tm(mopts());
  ASSERT_TRUE(
      failing->compare_and_swap(sid_, "k", std::nullopt, Entry{"before", 1, 0, std::nullopt}));
  Transaction& txn = tm.begin();
  rm->set(txn, sid_, "k", "aborted");
  const Gtrid g = txn.gtrid();
  failing->fail = true;
  tm.abort();
  EXPECT_EQ(failing->get(sid_, "k"), "aborted") << "nothing could be compensated yet";
  ASSERT_EQ(log_->redriver().owed().size(), 1u) << "the abort's branch is owed by the re-driver";
  EXPECT_FALSE(log_->redriver().owed()[0].commit);
  failing->fail = false;  // the store answers again; no restart, no recovery run
  ASSERT_TRUE(log_->redriver().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(failing->get(sid_, "k"), "before");
  EXPECT_TRUE(failing->list_fenced_by(g).empty());
  EXPECT_TRUE(rm->recover(g.node()).empty());
  EXPECT_TRUE(log_->heuristics().empty());
}

// A store whose next write lands and then fails as if the reply had been lost (a connection
// to a server that went away after the statement ran), and that calls that failure transient.
struct LostReplyStore : MemorySessionStore {
  struct Lost : ResourceError {
    using ResourceError::ResourceError;
  };
  std::atomic<int> lose{0};        // writes still to fail after landing
  std::atomic<int> fail_reads{0};  // reads still to fail
  std::optional<Entry> read_entry(const std::string& s, const std::string& n) override {
    if (fail_reads > 0) {
      --fail_reads;
      throw Lost("session store: cannot connect");
    }
    return MemorySessionStore::read_entry(s, n);
  }
  FencedWrite write_fenced(const std::string& s, const std::string& n, const std::string& v,
                           const Gtrid& owner, std::int64_t now, Entry& result,
                           std::optional<Entry>& before) override {
    const FencedWrite w = MemorySessionStore::write_fenced(s, n, v, owner, now, result, before);
    if (lose > 0) {
      --lose;
      throw Lost("session store: the connection was lost after the write was sent");
    }
    return w;
  }
  bool is_transient(const std::exception_ptr& e) const noexcept override {
    try {
      std::rethrow_exception(e);
    } catch (const Lost&) {
      return true;
    } catch (...) {
      return false;
    }
  }
};

TEST_F(SessionResourceTest, AWriteWhoseReplyWasLostIsCompensatedByIdWhenTheTransactionAborts) {
  auto lossy = std::make_shared<LostReplyStore>();
  lossy->set(sid_, "k", "before");
  SessionResourceOptions o;
  o.decision_log = log_;
  auto rm = SessionResource::create(lossy, o);
  ExplicitTransactionManager tm(mopts());
  Transaction& txn = tm.begin();
  rm->set(txn, sid_, "other", "x");
  lossy->lose = 1;
  EXPECT_THROW(rm->set(txn, sid_, "k", "attempt"), LostReplyStore::Lost);
  EXPECT_EQ(lossy->get(sid_, "k"), "attempt");  // it landed, fenced by the transaction
  // The write may have landed: the transaction cannot commit it...
  EXPECT_TRUE(txn.is_doomed());
  EXPECT_THROW(txn.commit(), DoomedTransactionError);
  // ...and its abort compensates it by id, with the write it knows of.
  txn.abort();
  EXPECT_EQ(lossy->get(sid_, "k"), "before");
  EXPECT_EQ(lossy->get(sid_, "other"), std::nullopt);
  EXPECT_TRUE(lossy->list_fenced(std::nullopt).empty());
  EXPECT_TRUE(txn.heuristics().empty());
}

TEST_F(SessionResourceTest, AStoreOutOfReachIsRetriedAndTheRetryLeavesOnlyItsEffects) {
  auto lossy = std::make_shared<LostReplyStore>();
  lossy->set(sid_, "visits", "0");
  SessionResourceOptions o;
  o.decision_log = log_;
  auto rm = SessionResource::create(lossy, o);
  EXPECT_TRUE(rm->should_retry(std::make_exception_ptr(LostReplyStore::Lost("lost"))));
  EXPECT_FALSE(rm->should_retry(std::make_exception_ptr(ResourceError("table crashed"))));
  ExplicitTransactionManager tm(mopts());
  RetryPolicy policy;
  policy.attempts = 3;
  policy.sleep = [](std::chrono::microseconds) {};
  int attempts = 0;
  lossy->fail_reads = 1;  // the first attempt's read: a read alone does not join, this one does
  lossy->lose = 1;        // the second attempt's first write lands, its reply is lost
  xact::run(
      tm,
      [&](Transaction& txn) {
        ++attempts;
        const int n = std::stoi(*rm->get(txn, sid_, "visits"));
        rm->set(txn, sid_, "attempt", std::to_string(attempts));  // blind: write_fenced
        rm->set(txn, sid_, "visits", std::to_string(n + 1));
      },
      policy);
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(lossy->get_all(sid_),
            (std::map<std::string, std::string>{{"attempt", "3"}, {"visits", "1"}}));
  EXPECT_TRUE(lossy->list_fenced(std::nullopt).empty());
}

TEST_F(SessionResourceTest, ThousandsOfConcurrentSessionsStayConsistent) {
  constexpr int kThreads = 8, kSessions = 250, kRounds = 4;
  std::vector<std::string> ids;
  for (int i = 0; i < kThreads * kSessions; ++i) ids.push_back(new_session_id());
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ExplicitTransactionManager tm;
      for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kSessions; ++i) {
          const std::string& sid = ids[t * kSessions + i];
          // Every thread also increments one shared counter session: real contention.
          const std::string& shared = ids[i % 16];
          if ((i + round) % 5 == 0) {  // an attempt that ends in an abort
            Transaction& txn = tm.begin();
            try {
              rm_->set(txn, sid, "round", "aborted");
              auto n = rm_->get(txn, shared, "hits");
              rm_->set(txn, shared, "hits", std::to_string(n ? std::stoi(*n) + 1 : 1));
            } catch (const ConflictError&) {
              ++conflicts;
            }
            txn.abort();
            continue;
          }
          RetryPolicy p;
          p.attempts = 0;
          p.deadline = std::chrono::seconds(120);
          p.initial_backoff = std::chrono::microseconds(50);
          p.on_retry = [&](const RetryEvent&) { ++conflicts; };
          xact::run(
              tm,
              [&](Transaction& txn) {
                rm_->set(txn, sid, "round", std::to_string(round));
                auto n = rm_->get(txn, shared, "hits");
                rm_->set(txn, shared, "hits", std::to_string(n ? std::stoi(*n) + 1 : 1));
              },
              p);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // Aborted transactions left nothing: the counters add up to the committed ones exactly.
  int expected_total = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < kSessions; ++i) expected_total += ((i + round) % 5 == 0) ? 0 : kThreads;
  }
  int total = 0;
  for (int s = 0; s < 16; ++s) {
    if (auto v = store_->get(ids[s], "hits")) total += std::stoi(*v);
  }
  EXPECT_EQ(total, expected_total) << conflicts.load() << " conflicts retried";
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kSessions; ++i) {
      const int last = kRounds - 1;
      const auto v = store_->get(ids[t * kSessions + i], "round");
      if ((i + last) % 5 != 0) {
        EXPECT_EQ(v, std::to_string(last));
      }
    }
  }
}

}  // namespace
}  // namespace xact::sessions

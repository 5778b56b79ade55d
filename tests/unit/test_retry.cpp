// Retrying whole transactions: a deadline (or bounded attempts), back-off with full jitter, what
// is retryable, in-doubt never, the on_retry hook, and run_with_outcome's report.
#include <xact/errors.hpp>
#include <xact/log.hpp>
#include <xact/redriver.hpp>
#include <xact/retry.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

namespace xact {
namespace {

using testing::CallLog;
using testing::RecordingOptions;
using testing::RecordingResource;
using testing::Step;

class RetryTest : public ::testing::Test {
 protected:
  RetryPolicy policy(int attempts) {
    RetryPolicy p;
    p.attempts = attempts;
    p.jitter = false;
    p.initial_backoff = std::chrono::microseconds(100);
    p.max_backoff = std::chrono::microseconds(350);
    p.sleep = [this](std::chrono::microseconds d) { waits_.push_back(d.count()); };
    return p;
  }
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
  std::vector<std::int64_t> waits_;
  std::shared_ptr<CallLog> log_ = std::make_shared<CallLog>();
};

TEST_F(RetryTest, ATransientErrorIsRetriedUntilSuccessWithExponentialBackoff) {
  const auto before = counters().retries;
  int calls = 0;
  auto a = std::make_shared<RecordingResource>("a", log_);
  int result = run(
      tm_,
      [&](Transaction& txn) {
        a->set(txn, std::to_string(++calls));
        if (calls < 4) throw ConflictError("conflict");
        return calls * 10;
      },
      policy(5));
  EXPECT_EQ(result, 40);
  EXPECT_EQ(a->committed(), "4");
  EXPECT_EQ(waits_, (std::vector<std::int64_t>{100, 200, 350}));
  EXPECT_EQ(counters().retries - before, 3u);
  EXPECT_EQ(tm_.current(), nullptr);
}

TEST_F(RetryTest, AttemptsAreBounded) {
  int calls = 0;
  EXPECT_THROW(run(
                   tm_,
                   [&] {
                     ++calls;
                     throw SerializationFailure("40001");
                   },
                   policy(3)),
               SerializationFailure);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(tm_.current(), nullptr) << "the last attempt was aborted";
}

TEST_F(RetryTest, ANonTransientErrorIsNotRetried) {
  int calls = 0;
  EXPECT_THROW(run(
                   tm_,
                   [&] {
                     ++calls;
                     throw std::invalid_argument("bad input");
                   },
                   policy(5)),
               std::invalid_argument);
  EXPECT_EQ(calls, 1);
}

TEST_F(RetryTest, DoesNotRetryInDoubtError) {
  int calls = 0;
  // Even a participant that says "retry everything" cannot make an in-doubt outcome retried.
  RecordingOptions o;
  o.retry_everything = true;
  auto a = std::make_shared<RecordingResource>("a", log_, o);
  EXPECT_THROW(run(
                   tm_,
                   [&](Transaction& txn) {
                     a->set(txn, "1");
                     ++calls;
                     throw InDoubtError("lost connection during commit");
                   },
                   policy(5)),
               InDoubtError);
  EXPECT_EQ(calls, 1);
}

TEST_F(RetryTest, AParticipantsShouldRetryIsAskedBeforeTheAbortDropsIt) {
  RecordingOptions o;
  o.retry_everything = true;
  o.fail_at = Step::tpc_vote;
  o.fail_times = 2;
  auto a = std::make_shared<RecordingResource>("a", log_, o);
  int calls = 0;
  run(
      tm_, [&](Transaction& txn) { a->set(txn, std::to_string(++calls)); }, policy(5));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(a->committed(), "3");
}

TEST_F(RetryTest, FailureAtCommitOfAParticipantIsRetriedWhenTransient) {
  RecordingOptions o;
  o.fail_at = Step::commit;
  o.thrower = [](Step) { throw DeadlockError("deadlock detected"); };
  auto a = std::make_shared<RecordingResource>("a", log_, o);
  int calls = 0;
  run(
      tm_, [&](Transaction& txn) { a->set(txn, std::to_string(++calls)); }, policy(3));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(a->committed(), "2");
}

TEST_F(RetryTest, TheAttemptsLoopRetriesLikeRun) {
  int calls = 0;
  for (Attempts at(tm_, policy(3)); at.next();) {
    try {
      ++calls;
      if (at.attempt() == 1) throw ReadConflictError("read conflict");
      at.commit();
    } catch (...) {
      at.failed(std::current_exception());
    }
  }
  EXPECT_EQ(calls, 2);
}

TEST_F(RetryTest, JitterKeepsEveryWaitWithinTheBackoff) {
  auto p = policy(6);
  p.jitter = true;
  EXPECT_THROW(run(
                   tm_, [&] { throw ConflictError("c"); }, p),
               ConflictError);
  const std::vector<std::int64_t> caps{100, 200, 350, 350, 350};
  ASSERT_EQ(waits_.size(), caps.size());
  for (std::size_t i = 0; i < caps.size(); ++i) {
    EXPECT_GE(waits_[i], 0);
    EXPECT_LE(waits_[i], caps[i]);
  }
}

TEST_F(RetryTest, APolicyThatNeverEndsIsAUsageError) {
  RetryPolicy p;
  p.deadline = std::chrono::milliseconds(0);
  p.attempts = 0;
  EXPECT_THROW(Attempts(tm_, p), UsageError);
  EXPECT_THROW(Attempts(tm_, policy(-1)), UsageError);
}

// A clock that moves only when the loop waits.
struct FakeTime {
  RetryPolicy::Clock::time_point now{};
  std::vector<std::int64_t> waits;
  void install(RetryPolicy& p) {
    p.now = [this] { return now; };
    p.sleep = [this](std::chrono::microseconds d) {
      waits.push_back(d.count());
      now += d;
    };
  }
};

TEST_F(RetryTest, TheDefaultPolicyRetriesForTenSecondsWithBackoffFrom2msTo500msWithFullJitter) {
  const RetryPolicy defaults;
  EXPECT_EQ(defaults.deadline, std::chrono::seconds(10));
  EXPECT_EQ(defaults.attempts, 0) << "no attempt limit but the deadline";
  EXPECT_EQ(defaults.initial_backoff, std::chrono::milliseconds(2));
  EXPECT_EQ(defaults.max_backoff, std::chrono::milliseconds(500));
  EXPECT_TRUE(defaults.jitter);

  for (bool jitter : {false, true}) {
    RetryPolicy p;
    p.jitter = jitter;
    FakeTime t;
    t.install(p);
    int calls = 0;
    EXPECT_THROW(run(
                     tm_,
                     [&] {
                       ++calls;
                       throw ConflictError("c");
                     },
                     p),
                 ConflictError);
    ASSERT_GE(t.waits.size(), 2u);
    std::int64_t cap = 2000, total = 0;
    for (std::size_t i = 0; i < t.waits.size(); ++i) {
      EXPECT_GE(t.waits[i], 0);
      EXPECT_LE(t.waits[i], cap) << "wait " << i;
      if (!jitter && i + 1 < t.waits.size()) {
        EXPECT_EQ(t.waits[i], cap) << "wait " << i;
      }
      total += t.waits[i];
      cap = std::min<std::int64_t>(cap * 2, 500'000);
    }
    EXPECT_EQ(total, 10'000'000) << "retried until the deadline, the last wait cut to fit";
    EXPECT_EQ(calls, static_cast<int>(t.waits.size()) + 1);
  }
}

TEST_F(RetryTest, RunWithOutcomeReportsTheValueOutcomeAttemptsAndErrors) {
  RecordingOptions unfinished;
  unfinished.fail_at = Step::tpc_finish;  // a pending completion the caller must see
  auto a = std::make_shared<RecordingResource>("a", log_, unfinished);
  auto b = std::make_shared<RecordingResource>("b", log_);
  int calls = 0;
  auto r = run_with_outcome(
      tm_,
      [&](Transaction& txn) {
        ++calls;
        if (calls == 1) throw ConflictError("first");
        if (calls == 2) throw DeadlockError("second");
        a->set(txn, "x");
        b->set(txn, "y");
        return std::string("value");
      },
      policy(5));
  EXPECT_EQ(r.value, "value");
  EXPECT_EQ(r.attempts, 3);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(error_message(r.errors[0]), "first");
  EXPECT_EQ(error_message(r.errors[1]), "second");
  EXPECT_TRUE(r.outcome.committed);
  ASSERT_EQ(r.outcome.pending.size(), 1u) << "the pending completion reaches the caller";
  EXPECT_EQ(r.outcome.pending[0].resource, "a");
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));

  auto v = run_with_outcome(
      tm_, [&](Transaction& txn) { b->set(txn, "z"); }, policy(5));
  EXPECT_EQ(v.attempts, 1);
  EXPECT_TRUE(v.errors.empty());
  EXPECT_TRUE(v.outcome.complete());
}

TEST_F(RetryTest, OnRetryIsToldEachFailedAttemptItsErrorAndTheWait) {
  std::vector<RetryEvent> events;
  auto p = policy(5);
  p.on_retry = [&](const RetryEvent& e) { events.push_back(e); };
  int calls = 0;
  run(
      tm_,
      [&] {
        if (++calls < 3) throw ConflictError("attempt " + std::to_string(calls));
      },
      p);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].attempt, 1);
  EXPECT_EQ(error_message(events[0].error), "attempt 1");
  EXPECT_EQ(events[0].wait.count(), 100);
  EXPECT_EQ(events[1].attempt, 2);
  EXPECT_EQ(events[1].wait.count(), 200);
  EXPECT_EQ(waits_, (std::vector<std::int64_t>{100, 200})) << "called before the wait";
}

TEST_F(RetryTest, AnExceptionFromOnRetryEndsTheLoop) {
  auto p = policy(5);
  p.on_retry = [](const RetryEvent&) { throw std::runtime_error("stop"); };
  int calls = 0;
  EXPECT_THROW(run(
                   tm_,
                   [&] {
                     ++calls;
                     throw ConflictError("c");
                   },
                   p),
               std::runtime_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(tm_.current(), nullptr) << "the failed attempt was aborted";
}

TEST_F(RetryTest, RunWithOutcomeNeverRetriesInDoubtError) {
  int calls = 0;
  EXPECT_THROW(run_with_outcome(tm_,
                                [&] {
                                  ++calls;
                                  throw InDoubtError("lost connection during commit");
                                }),
               InDoubtError);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace xact

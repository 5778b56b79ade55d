// Retrying whole transactions: a deadline (or bounded attempts), back-off with full jitter, what
// is retryable, in-doubt never, the on_retry hook, and run_with_outcome's report; RetryState's
// decisions without the wait, and a coroutine that waits for them on an Asio timer.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
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

// --- RetryState: the decisions without the wait ------------------------------------------------

std::exception_ptr conflict(const std::string& what = "conflict") {
  return std::make_exception_ptr(ConflictError(what));
}

TEST_F(RetryTest, RetryStateSaysRetryWithTheExponentialBackoffAndNeverWaitsItself) {
  auto p = policy(5);
  p.sleep = [](std::chrono::microseconds) { ADD_FAILURE() << "RetryState must not wait"; };
  const auto before = counters().retries;
  RetryState state(p);
  EXPECT_EQ(state.attempt(), 0);
  std::vector<std::int64_t> waits;
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(state.begin_attempt());
    EXPECT_EQ(state.attempt(), i);
    const RetryDecision d = state.failed(conflict(), true);
    EXPECT_TRUE(d);
    EXPECT_EQ(d.reason, RetryDecision::Reason::retry);
    waits.push_back(d.wait.count());
  }
  EXPECT_EQ(waits, (std::vector<std::int64_t>{100, 200, 350, 350}));
  EXPECT_EQ(state.backoff().count(), 350) << "capped at max_backoff";
  ASSERT_TRUE(state.begin_attempt());
  const RetryDecision last = state.failed(conflict(), true);
  EXPECT_FALSE(last);
  EXPECT_EQ(last.reason, RetryDecision::Reason::no_attempt_left);
  EXPECT_EQ(last.wait.count(), 0);
  EXPECT_FALSE(state.begin_attempt()) << "five attempts in all";
  EXPECT_EQ(state.attempt(), 5);
  EXPECT_EQ(state.errors().size(), 5u);
  EXPECT_EQ(counters().retries - before, 4u) << "each retry counted once";
}

TEST_F(RetryTest, RetryStateDoesNotRetryANonRetryableErrorNorCallOnRetry) {
  auto p = policy(5);
  int hooks = 0;
  p.on_retry = [&](const RetryEvent&) { ++hooks; };
  RetryState state(p);
  ASSERT_TRUE(state.begin_attempt());
  const auto error = std::make_exception_ptr(std::invalid_argument("bad input"));
  const RetryDecision d = state.failed(error, false);
  EXPECT_FALSE(d);
  EXPECT_EQ(d.reason, RetryDecision::Reason::not_retryable);
  EXPECT_EQ(d.wait.count(), 0);
  EXPECT_EQ(hooks, 0);
  ASSERT_EQ(state.errors().size(), 1u);
  EXPECT_EQ(state.errors()[0], error);
  EXPECT_EQ(state.backoff().count(), 100) << "no retry, no growth";
}

TEST_F(RetryTest, RetryStateBeforeAnyAttemptRetriesNothing) {
  RetryState state(policy(5));
  const RetryDecision d = state.failed(conflict(), true);
  EXPECT_FALSE(d);
  EXPECT_EQ(d.reason, RetryDecision::Reason::not_retryable);
}

TEST_F(RetryTest, RetryStateAsksTheTransactionBeforeTheAbortAndAbortsIt) {
  RecordingOptions o;
  o.retry_everything = true;  // a participant's RetryClassifier says yes to any error
  auto a = std::make_shared<RecordingResource>("a", log_, o);
  RetryState state(policy(5));

  ASSERT_TRUE(state.begin_attempt());
  Transaction& first = tm_.begin();
  a->set(first, "1");
  const RetryDecision d1 =
      state.failed(first, std::make_exception_ptr(std::runtime_error("lost connection")));
  EXPECT_TRUE(d1) << "the participant's should_retry was asked before the abort dropped it";
  EXPECT_EQ(tm_.current(), nullptr) << "the failed attempt's transaction is aborted";

  ASSERT_TRUE(state.begin_attempt());
  Transaction& second = tm_.begin();
  a->set(second, "2");
  const RetryDecision d2 =
      state.failed(second, std::make_exception_ptr(InDoubtError("lost connection during commit")));
  EXPECT_FALSE(d2) << "in doubt is never retried, whatever a participant says";
  EXPECT_EQ(d2.reason, RetryDecision::Reason::not_retryable);
  EXPECT_EQ(tm_.current(), nullptr);
  EXPECT_FALSE(a->committed().has_value());

  ASSERT_TRUE(state.begin_attempt());
  Transaction& third = tm_.begin();
  EXPECT_TRUE(state.failed(third, conflict())) << "a ConflictError is retryable by its type";
  EXPECT_FALSE(state.failed(tm_.begin(), std::make_exception_ptr(std::logic_error("bug"))))
      << "an ordinary error with no participant to vouch for it is not";
  EXPECT_EQ(tm_.current(), nullptr);
}

TEST_F(RetryTest, RetryStateCutsTheLastWaitToTheDeadlineThenStops) {
  RetryPolicy p;
  p.deadline = std::chrono::milliseconds(10);
  p.jitter = false;  // waits 2, 4, then 8 ms cut to the 4 ms left
  FakeTime t;
  t.install(p);
  RetryState state(p);
  std::vector<std::int64_t> waits, elapsed;
  RetryDecision d;
  do {
    ASSERT_TRUE(state.begin_attempt());
    d = state.failed(conflict(), true);
    elapsed.push_back(d.elapsed.count());
    if (d) {
      waits.push_back(d.wait.count());
      t.now += d.wait;  // the caller waits (on a timer, say)
    }
  } while (d);
  EXPECT_EQ(waits, (std::vector<std::int64_t>{2000, 4000, 4000}));
  EXPECT_EQ(elapsed, (std::vector<std::int64_t>{0, 2000, 6000, 10000}));
  EXPECT_EQ(d.reason, RetryDecision::Reason::deadline_passed);
  EXPECT_EQ(state.attempt(), 4);
  EXPECT_TRUE(t.waits.empty()) << "RetryState never calls the policy's sleep";
}

TEST_F(RetryTest, RetryStateWaitsStayWithinTheBackoffWithJitter) {
  auto p = policy(0);
  p.attempts = 0;
  p.deadline = std::chrono::hours(1);
  p.jitter = true;
  RetryState state(p);
  std::int64_t cap = 100;
  bool below_cap = false;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(state.begin_attempt());
    EXPECT_EQ(state.backoff().count(), cap);
    const RetryDecision d = state.failed(conflict(), true);
    ASSERT_TRUE(d);
    EXPECT_GE(d.wait.count(), 0);
    EXPECT_LE(d.wait.count(), cap) << "attempt " << i + 1;
    below_cap = below_cap || d.wait.count() < cap;
    cap = std::min<std::int64_t>(cap * 2, 350);
  }
  EXPECT_TRUE(below_cap) << "full jitter: 200 waits are not all at the bound";
}

TEST_F(RetryTest, RetryStateTellsOnRetryAndPropagatesItsException) {
  auto p = policy(5);
  std::vector<RetryEvent> events;
  p.on_retry = [&](const RetryEvent& e) {
    events.push_back(e);
    if (e.attempt == 2) throw std::runtime_error("stop");
  };
  RetryState state(p);
  ASSERT_TRUE(state.begin_attempt());
  const RetryDecision d = state.failed(conflict("attempt 1"), true);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].attempt, 1);
  EXPECT_EQ(error_message(events[0].error), "attempt 1");
  EXPECT_EQ(events[0].wait, d.wait);
  ASSERT_TRUE(state.begin_attempt());
  EXPECT_THROW(state.failed(conflict("attempt 2"), true), std::runtime_error);
}

TEST_F(RetryTest, RetryStateRejectsAPolicyThatNeverEnds) {
  RetryPolicy p;
  p.deadline = std::chrono::milliseconds(0);
  p.attempts = 0;
  EXPECT_THROW(RetryState{p}, UsageError);
  EXPECT_THROW(RetryState{policy(-1)}, UsageError);
}

// The point of RetryState: a coroutine waits for the back-off on a timer, and the thread serves
// other work meanwhile (a blocking sleep would hold the ticker until the retry loop ended).
TEST_F(RetryTest, ACoroutineWaitsForTheBackoffOnAnAsioTimerWithoutBlockingItsThread) {
  namespace asio = boost::asio;
  asio::io_context io;
  auto a = std::make_shared<RecordingResource>("a", log_);
  RetryPolicy p;
  p.attempts = 5;
  p.jitter = false;
  p.initial_backoff = std::chrono::milliseconds(100);  // waits of 100 and 200 ms
  p.sleep = [](std::chrono::microseconds) { ADD_FAILURE() << "the coroutine must not sleep"; };
  int calls = 0;
  std::vector<int> calls_seen_by_ticker;

  auto handler = [&]() -> asio::awaitable<int> {
    RetryState retry(p);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (retry.begin_attempt()) {
      Transaction& txn = tm_.begin();
      std::exception_ptr error;
      try {
        a->set(txn, std::to_string(++calls));
        if (calls < 3) throw ConflictError("conflict " + std::to_string(calls));
        txn.commit();
        co_return calls;
      } catch (...) {
        error = std::current_exception();
      }
      const RetryDecision d = retry.failed(txn, error);
      if (!d) std::rethrow_exception(error);
      timer.expires_after(d.wait);
      co_await timer.async_wait(asio::use_awaitable);
    }
    throw UsageError("no attempt left");
  };
  auto ticker = [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (const int ms : {20, 180}) {  // at 20 ms: in the first wait; at 200 ms: in the second
      timer.expires_after(std::chrono::milliseconds(ms));
      co_await timer.async_wait(asio::use_awaitable);
      calls_seen_by_ticker.push_back(calls);
    }
  };

  int result = 0;
  std::exception_ptr failure;
  asio::co_spawn(io, handler(), [&](std::exception_ptr e, int value) {
    failure = e;
    result = value;
  });
  asio::co_spawn(io, ticker(), asio::detached);
  io.run();  // one thread for both

  ASSERT_FALSE(failure) << error_message(failure);
  EXPECT_EQ(result, 3);
  EXPECT_EQ(a->committed(), "3");
  EXPECT_EQ(calls_seen_by_ticker, (std::vector<int>{1, 2}))
      << "the ticker ran during each back-off, on the same thread";
  EXPECT_EQ(tm_.current(), nullptr);
}

}  // namespace
}  // namespace xact

// Retrying whole transactions: bounded attempts, back-off, what is retryable, in-doubt never.
#include <xact/errors.hpp>
#include <xact/log.hpp>
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
  ExplicitTransactionManager tm_;
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

TEST_F(RetryTest, ZeroAttemptsIsAUsageError) { EXPECT_THROW(Attempts(tm_, policy(0)), UsageError); }

}  // namespace
}  // namespace xact

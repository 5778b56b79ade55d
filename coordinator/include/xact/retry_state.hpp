// The awaitable back-off: RetryState makes the retry loop's decisions (what is retried, the
// attempt limit, the deadline, the back-off with its jitter, on_retry, the retry counter and log
// line) and only returns the wait, so that a coroutine waits on a timer instead of blocking its
// thread. Attempts (<xact/attempts.hpp>) is built on it, so the two behave the same. The
// coroutine example is in <xact/retry.hpp>.
#pragma once

#include <chrono>
#include <exception>
#include <vector>

#include <xact/retry_policy.hpp>

namespace xact {

class Transaction;

/// What RetryState::failed decided about a failed attempt.
struct RetryDecision {
  enum class Reason {
    retry,            ///< retry after `wait`
    not_retryable,    ///< the error is not retryable (InDoubtError never is)
    no_attempt_left,  ///< RetryPolicy::attempts reached
    deadline_passed,  ///< RetryPolicy::deadline passed since the first attempt began
  };
  bool retry = false;
  Reason reason = Reason::not_retryable;
  /// The back-off to wait before the next attempt: uniform in [0, backoff] with jitter, cut to
  /// what is left of the deadline. Zero when not retrying.
  std::chrono::microseconds wait{};
  /// Since the first attempt began, when the decision was made.
  std::chrono::microseconds elapsed{};
  explicit operator bool() const noexcept { return retry; }
};

/// The retry policy's state across the attempts of one transaction, without the waiting: after a
/// failed attempt it says whether to retry and how long to wait first, so that the caller can
/// wait however it likes (a coroutine on a timer). The example is at the top of this file.
/// Thread-safety: one RetryState belongs to one attempt loop.
class RetryState {
 public:
  /// Throws UsageError for a negative `attempts`, or for neither an attempt limit nor a deadline.
  explicit RetryState(RetryPolicy policy = {});

  /// Starts the next attempt (the first one starts the deadline's clock); false when the attempt
  /// limit is reached. failed() already says so for a failed attempt; this guards loops that
  /// call it again.
  bool begin_attempt();
  /// Decides about the current attempt, which failed with `error`; `retryable` is what
  /// Transaction::is_retryable said, asked before the transaction was aborted. When the decision
  /// is to retry, first calls RetryPolicy::on_retry (an exception from it propagates), counts a
  /// retry and logs it. Records `error` (errors()). Before begin_attempt(): never a retry.
  RetryDecision failed(std::exception_ptr error, bool retryable);
  /// The same for the current attempt's transaction: asks `txn` whether `error` is retryable,
  /// aborts `txn`, then decides as above.
  RetryDecision failed(Transaction& txn, std::exception_ptr error);

  /// 1-based number of the current attempt (0 before the first).
  int attempt() const noexcept { return attempt_; }
  /// The back-off bound for the next wait: initial_backoff, times multiplier after each retry,
  /// at most max_backoff. The wait is this (no jitter) or uniform in [0, this].
  std::chrono::microseconds backoff() const noexcept { return backoff_; }
  /// The errors of the attempts that failed, oldest first.
  const std::vector<std::exception_ptr>& errors() const noexcept { return errors_; }
  const RetryPolicy& policy() const noexcept { return policy_; }

 private:
  RetryPolicy policy_;
  int attempt_ = 0;
  std::chrono::microseconds backoff_;
  RetryPolicy::Clock::time_point started_{};
  std::vector<std::exception_ptr> errors_;
};

}  // namespace xact

// Retrying a whole transaction after a transient error (a conflict, a serialization failure,
// a deadlock, a lost connection before the decision), for up to a deadline, with exponential
// back-off and full jitter.
//
//   auto total = xact::run(tm, [&](xact::Transaction& txn) { ...; return value; });
//
// or, to learn what happened (the CommitOutcome with its pending completions, how many attempts
// it took, and the errors of the failed ones):
//
//   auto r = xact::run_with_outcome(tm, [&](xact::Transaction& txn) { ...; return value; });
//   r.value; r.outcome.pending; r.attempts; r.errors;
//
// or, where the body cannot be a function, the attempts loop:
//
//   for (xact::Attempts a(tm); a.next();) {
//     try { work(a.transaction()); a.commit(); }
//     catch (...) { a.failed(std::current_exception()); }   // rethrows when not retried
//   }
//
// The default policy retries for up to 10 s after the first attempt began, waiting between
// attempts a uniform time in [0, backoff] (full jitter), the backoff growing from 2 ms to 500 ms.
// A deadline rather than a count: three attempts run out under contention, and no fixed count
// fits a server restart, which takes seconds; ten seconds covers one and still ends.
//
// An error is retried when Transaction::is_retryable says so (a TransientError, or a
// participant's RetryClassifier, asked before the abort drops the participant: the SQL
// resources say yes to a ConnectionLost, which they only raise before the decision, when the
// server has rolled the branch back; the next attempt gets a fresh connection from the pool,
// whose health check drops the dead ones). An InDoubtError is never retried: the commit may
// have happened. Each attempt is a new transaction; side effects outside the participants run
// again, so defer them to after-commit hooks. Thread-safety: an Attempts object belongs to one
// attempt loop.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include <xact/errors.hpp>
#include <xact/manager.hpp>

namespace xact {

/// What the on_retry hook is told before the wait that precedes the next attempt.
struct RetryEvent {
  int attempt = 0;                      ///< the attempt that failed (1-based)
  std::exception_ptr error;             ///< why it failed
  std::chrono::microseconds wait{};     ///< how long the loop waits before the next attempt
  std::chrono::microseconds elapsed{};  ///< since the first attempt began
};

struct RetryPolicy {
  using Clock = std::chrono::steady_clock;
  /// Retries stop once this much time has passed since the first attempt began (the wait
  /// before an attempt is cut to fit). 0: no time limit (then `attempts` must be set).
  std::chrono::milliseconds deadline{10'000};
  /// Attempts in all (1 = no retry); 0: no limit but the deadline.
  int attempts = 0;
  std::chrono::microseconds initial_backoff{2000};
  std::chrono::microseconds max_backoff{500'000};
  double multiplier = 2.0;
  /// Full jitter: each wait is uniform in [0, backoff], so retries of colliding requests spread.
  bool jitter = true;
  /// Called before each wait for a retry (for metrics and logs). An exception from it ends the
  /// loop with that exception (the failed attempt is aborted first).
  std::function<void(const RetryEvent&)> on_retry{};
  /// How to wait; tests replace it. Default: std::this_thread::sleep_for.
  std::function<void(std::chrono::microseconds)> sleep{};
  /// How to read the time for the deadline; tests replace it. Default: Clock::now.
  std::function<Clock::time_point()> now{};
};

class Attempts {
 public:
  /// Throws UsageError for a negative `attempts`, or for neither an attempt limit nor a deadline.
  explicit Attempts(TransactionManager& manager, RetryPolicy policy = {});
  ~Attempts();
  Attempts(const Attempts&) = delete;
  Attempts& operator=(const Attempts&) = delete;

  /// Begins the next attempt's transaction; false once an attempt committed.
  bool next();
  Transaction& transaction();
  /// Commits the current attempt; success ends the loop. The outcome is also kept (outcome()).
  CommitOutcome commit();
  /// Aborts the current attempt; returns (after the back-off) when `error` is retryable and the
  /// policy allows another attempt, rethrows it otherwise.
  void failed(std::exception_ptr error);
  /// 1-based number of the current attempt.
  int attempt() const noexcept { return attempt_; }
  /// The outcome of the attempt that committed (empty before).
  const CommitOutcome& outcome() const noexcept { return outcome_; }
  /// The errors of the attempts that failed, oldest first.
  const std::vector<std::exception_ptr>& errors() const noexcept { return errors_; }

 private:
  TransactionManager& manager_;
  RetryPolicy policy_;
  std::shared_ptr<Transaction> txn_;
  int attempt_ = 0;
  bool done_ = false;
  std::chrono::microseconds backoff_;
  RetryPolicy::Clock::time_point started_{};
  CommitOutcome outcome_;
  std::vector<std::exception_ptr> errors_;
};

/// What run_with_outcome returns: fn's value, the commit's outcome (pending completions
/// included), how many attempts it took, and the errors of the attempts that failed.
template <class T>
struct RunResult {
  T value;
  CommitOutcome outcome;
  int attempts = 0;
  std::vector<std::exception_ptr> errors;
};

template <>
struct RunResult<void> {
  CommitOutcome outcome;
  int attempts = 0;
  std::vector<std::exception_ptr> errors;
};

namespace detail {

// One attempt: runs fn (with or without the transaction) and commits. Returns fn's value, or
// nothing for a void fn (as a std::monostate-free empty struct).
struct NoValue {};

template <class F>
auto attempt_once(Attempts& attempts, F& fn) {
  if constexpr (std::is_invocable_v<F&, Transaction&>) {
    using R = std::invoke_result_t<F&, Transaction&>;
    if constexpr (std::is_void_v<R>) {
      fn(attempts.transaction());
      attempts.commit();
      return NoValue{};
    } else {
      R result = fn(attempts.transaction());
      attempts.commit();
      return result;
    }
  } else {
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      fn();
      attempts.commit();
      return NoValue{};
    } else {
      R result = fn();
      attempts.commit();
      return result;
    }
  }
}

template <class F>
using run_value_t =
    std::conditional_t<std::is_invocable_v<F&, Transaction&>, std::invoke_result<F&, Transaction&>,
                       std::invoke_result<F&>>;

}  // namespace detail

/// Runs `fn` (taking Transaction& or nothing) in a transaction and commits, retrying per
/// `policy`; returns what happened (see RunResult). Throws the last error when it is not
/// retryable or the policy allows no further attempt.
template <class F>
auto run_with_outcome(TransactionManager& manager, F&& fn, RetryPolicy policy = {}) {
  using R = typename detail::run_value_t<F>::type;
  Attempts attempts(manager, std::move(policy));
  while (attempts.next()) {
    try {
      auto value = detail::attempt_once(attempts, fn);
      if constexpr (std::is_void_v<R>) {
        (void)value;
        return RunResult<void>{attempts.outcome(), attempts.attempt(), attempts.errors()};
      } else {
        return RunResult<R>{std::move(value), attempts.outcome(), attempts.attempt(),
                            attempts.errors()};
      }
    } catch (...) {
      attempts.failed(std::current_exception());
    }
  }
  throw UsageError("xact::run: no attempt left");  // unreachable: failed() rethrows the last
}

/// Runs `fn` (taking Transaction& or nothing) in a transaction and commits, retrying per
/// `policy`. Returns fn's result. run_with_outcome tells more.
template <class F>
auto run(TransactionManager& manager, F&& fn, RetryPolicy policy = {}) {
  using R = typename detail::run_value_t<F>::type;
  if constexpr (std::is_void_v<R>) {
    run_with_outcome(manager, std::forward<F>(fn), std::move(policy));
  } else {
    return std::move(run_with_outcome(manager, std::forward<F>(fn), std::move(policy)).value);
  }
}

}  // namespace xact

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
//
// A back-off a coroutine can await. Attempts and run wait in RetryPolicy::sleep, which blocks the
// thread. A coroutine (Boost.Asio, one thread serving many requests) keeps the decisions and
// waits on a timer instead: a RetryState makes the same decisions as the loop (what is retried,
// the attempt limit, the deadline, the back-off with its jitter, on_retry, the retry counter and
// log line) and only returns the wait. Attempts is built on it, so the two behave the same.
//
//   xact::RetryState retry(policy);
//   while (retry.begin_attempt()) {
//     xact::Transaction& txn = tm.begin();
//     std::exception_ptr error;
//     try { co_await handle(txn); txn.commit(); co_return; }
//     catch (...) { error = std::current_exception(); }
//     const xact::RetryDecision d = retry.failed(txn, error);  // aborts txn
//     if (!d) std::rethrow_exception(error);
//     timer.expires_after(d.wait);
//     co_await timer.async_wait(asio::use_awaitable);
//   }
//
// (co_await is not allowed inside a handler, hence the error kept for after the catch.)
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
  /// How Attempts and run wait; tests replace it. Default: std::this_thread::sleep_for.
  /// RetryState does not wait (its caller does) and ignores it.
  std::function<void(std::chrono::microseconds)> sleep{};
  /// How to read the time for the deadline; tests replace it. Default: Clock::now.
  std::function<Clock::time_point()> now{};
};

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
  int attempt() const noexcept { return state_.attempt(); }
  /// The outcome of the attempt that committed (empty before).
  const CommitOutcome& outcome() const noexcept { return outcome_; }
  /// The errors of the attempts that failed, oldest first.
  const std::vector<std::exception_ptr>& errors() const noexcept { return state_.errors(); }

 private:
  TransactionManager& manager_;
  std::function<void(std::chrono::microseconds)> sleep_;
  RetryState state_;
  std::shared_ptr<Transaction> txn_;
  bool done_ = false;
  CommitOutcome outcome_;
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

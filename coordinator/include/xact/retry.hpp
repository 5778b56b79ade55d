// Retrying a whole transaction after a transient error (a conflict, a serialization failure,
// a deadlock), with bounded attempts and exponential back-off with jitter.
//
//   auto total = xact::run(tm, [&](xact::Transaction& txn) { ...; return value; });
//
// or, where the body cannot be a function, the attempts loop:
//
//   for (xact::Attempts a(tm); a.next();) {
//     try { work(a.transaction()); a.commit(); }
//     catch (...) { a.failed(std::current_exception()); }   // rethrows when not retried
//   }
//
// An error is retried when Transaction::is_retryable says so (a TransientError, or a
// participant's RetryClassifier, asked before the abort drops the participant). An
// InDoubtError is never retried: the commit may have happened. Each attempt is a new
// transaction; side effects outside the participants run again, so defer them to after-commit
// hooks. Thread-safety: an Attempts object belongs to one attempt loop.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include <xact/errors.hpp>
#include <xact/manager.hpp>

namespace xact {

struct RetryPolicy {
  int attempts = 3;  ///< attempts in all (1 = no retry)
  std::chrono::microseconds initial_backoff{2000};
  std::chrono::microseconds max_backoff{1'000'000};
  double multiplier = 2.0;
  /// Full jitter: each wait is uniform in [0, backoff], so retries of colliding requests spread.
  bool jitter = true;
  /// How to wait; tests replace it. Default: std::this_thread::sleep_for.
  std::function<void(std::chrono::microseconds)> sleep{};
};

class Attempts {
 public:
  explicit Attempts(TransactionManager& manager, RetryPolicy policy = {});
  ~Attempts();
  Attempts(const Attempts&) = delete;
  Attempts& operator=(const Attempts&) = delete;

  /// Begins the next attempt's transaction; false once an attempt committed.
  bool next();
  Transaction& transaction();
  /// Commits the current attempt; success ends the loop.
  CommitOutcome commit();
  /// Aborts the current attempt; returns (after the back-off) when `error` is retryable and
  /// attempts are left, rethrows it otherwise.
  void failed(std::exception_ptr error);
  /// 1-based number of the current attempt.
  int attempt() const noexcept { return attempt_; }

 private:
  TransactionManager& manager_;
  RetryPolicy policy_;
  std::shared_ptr<Transaction> txn_;
  int attempt_ = 0;
  bool done_ = false;
  std::chrono::microseconds backoff_;
};

/// Runs `fn` (taking Transaction& or nothing) in a transaction and commits, retrying per
/// `policy`. Returns fn's result.
template <class F>
auto run(TransactionManager& manager, F&& fn, RetryPolicy policy = {}) {
  Attempts attempts(manager, std::move(policy));
  while (attempts.next()) {
    try {
      if constexpr (std::is_invocable_v<F&, Transaction&>) {
        using R = std::invoke_result_t<F&, Transaction&>;
        if constexpr (std::is_void_v<R>) {
          fn(attempts.transaction());
          attempts.commit();
          return;
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
          return;
        } else {
          R result = fn();
          attempts.commit();
          return result;
        }
      }
    } catch (...) {
      attempts.failed(std::current_exception());
    }
  }
  throw UsageError("xact::run: no attempt left");  // unreachable: failed() rethrows the last
}

}  // namespace xact

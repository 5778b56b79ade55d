// The blocking retry loop, for a body that cannot be a function:
//
//   for (xact::Attempts a(tm); a.next();) {
//     try { work(a.transaction()); a.commit(); }
//     catch (...) { a.failed(std::current_exception()); }   // rethrows when not retried
//   }
//
// It waits in RetryPolicy::sleep (<xact/retry_policy.hpp>); its decisions are RetryState's
// (<xact/retry_state.hpp>). What is retried and why: <xact/retry.hpp>.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include <xact/manager.hpp>
#include <xact/retry_policy.hpp>
#include <xact/retry_state.hpp>
#include <xact/transaction.hpp>

namespace xact {

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

}  // namespace xact

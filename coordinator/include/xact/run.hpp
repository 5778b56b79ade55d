// xact::run and xact::run_with_outcome: a function run in a transaction and committed, retried
// per a RetryPolicy (<xact/retry_policy.hpp>) through Attempts (<xact/attempts.hpp>).
//
//   auto total = xact::run(tm, [&](xact::Transaction& txn) { ...; return value; });
//   auto r = xact::run_with_outcome(tm, [&](xact::Transaction& txn) { ...; return value; });
//   r.value; r.outcome.pending; r.attempts; r.errors;
//
// What is retried and why: <xact/retry.hpp>.
#pragma once

#include <exception>
#include <type_traits>
#include <utility>
#include <vector>

#include <xact/attempts.hpp>
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/retry_policy.hpp>
#include <xact/transaction.hpp>

namespace xact {

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

// A generic retrying wrapper: a handler in, a retrying handler out.
//
//   auto handler = xact::http::retrying(
//       [&](xact::Transaction& txn, const Order& order) { ...; return receipt; }, policy);
//   Receipt r = handler(order);   // each attempt: a fresh transaction, the same arguments
//
// Each call runs the handler in a fresh transaction of a manager of its own (an
// ExplicitTransactionManager, bound on the calling thread for the attempt so that resources
// asking current_manager() find it), commits, and on a failure decides with a RetryState (the
// same decisions as xact::run: what is retried, attempts, deadline, back-off with jitter, the
// retry logged at info level). The arguments are passed to every attempt as lvalues, so an
// attempt must not consume them. Throws the last error when it is not retried.
// Thread-safety: the returned callable may be called from several threads at once when the
// handler may be.
#pragma once

#include <exception>
#include <thread>
#include <type_traits>
#include <utility>

#include <xact/manager.hpp>
#include <xact/retry.hpp>

namespace xact::http {

template <class F>
auto retrying(F fn, RetryPolicy policy = {}, ManagerOptions manager_options = {}) {
  return [fn = std::move(fn), policy = std::move(policy),
          manager_options = std::move(manager_options)](auto&&... args) mutable {
    using R = std::invoke_result_t<F&, Transaction&, decltype(args)&...>;
    ExplicitTransactionManager manager(manager_options);
    RetryState state(policy);
    while (state.begin_attempt()) {
      std::exception_ptr error;
      Transaction* txn = nullptr;
      try {
        ManagerBinding binding(manager);
        txn = &manager.begin();
        if constexpr (std::is_void_v<R>) {
          fn(*txn, args...);
          txn->commit();
          return;
        } else {
          R result = fn(*txn, args...);
          txn->commit();
          return result;
        }
      } catch (...) {
        error = std::current_exception();
      }
      if (txn == nullptr) std::rethrow_exception(error);  // begin() failed
      const RetryDecision d = state.failed(*txn, error);
      if (!d) std::rethrow_exception(error);
      if (policy.sleep) {
        policy.sleep(d.wait);
      } else {
        std::this_thread::sleep_for(d.wait);
      }
    }
    throw UsageError("xact::http::retrying: no attempt left");  // unreachable
  };
}

}  // namespace xact::http

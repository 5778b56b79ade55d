// How a transaction is retried: RetryPolicy (the deadline, the attempt limit, the back-off and
// its jitter, the on_retry hook) and RetryEvent (what the hook is told). The loops that follow
// it are in <xact/retry_state.hpp> (the decisions without the wait), <xact/attempts.hpp> (the
// blocking loop) and <xact/run.hpp> (xact::run); <xact/retry.hpp> includes them all and shows
// each in use.
#pragma once

#include <chrono>
#include <exception>
#include <functional>

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

}  // namespace xact
